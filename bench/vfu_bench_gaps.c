/* vfu-bench: the longest time a queue pair went without a completion, and --gaps, the log of every long one. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vfu_bench.h"

/* Long gaps kept per job (1 MiB): a stall every ms for a minute. */
#define GAPS_PER_JOB 65536u

int vb_gaps_setup(struct vb_bench *b)
{
	for (uint32_t i = 0; i < b->c.jobs; i++) {
		struct vb_job *j = &b->jobs[i];

		if (!b->c.gaps)
			continue;
		j->gaps = calloc(GAPS_PER_JOB, sizeof(*j->gaps));
		if (!j->gaps)
			return -ENOMEM;
		j->cap_gaps = GAPS_PER_JOB;
		j->gap_min_ns = (uint64_t)b->c.gap_min_us * 1000u;
	}
	return 0;
}

uint64_t vb_gaps_max(const struct vb_bench *b, uint32_t *job)
{
	uint64_t max = 0;

	for (uint32_t i = 0; i < b->c.jobs; i++) {
		if (b->jobs[i].max_gap_ns > max) {
			max = b->jobs[i].max_gap_ns;
			if (job)
				*job = i;
		}
	}
	return max;
}

/* CLOCK_REALTIME - CLOCK_MONOTONIC now, in ns (the clocks run at one rate
 * short of an NTP step, which a benchmark run may ignore). */
static int64_t realtime_offset_ns(void)
{
	struct timespec m, r;

	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &r);
	return ((int64_t)r.tv_sec - (int64_t)m.tv_sec) * 1000000000ll +
	       ((int64_t)r.tv_nsec - (int64_t)m.tv_nsec);
}

int vb_gaps_write(const struct vb_bench *b)
{
	int64_t off = realtime_offset_ns();
	FILE *f;
	int rc = 0;

	if (!b->c.gaps)
		return 0;
	f = fopen(b->c.gaps, "w");
	if (!f) {
		rc = -errno;
		fprintf(stderr, "vfu-bench: --gaps=%s: %s\n", b->c.gaps, strerror(-rc));
		return rc;
	}
	fprintf(f, "# job from_realtime_ns to_realtime_ns gap_ns (gaps >= %u us)\n",
		b->c.gap_min_us);
	for (uint32_t i = 0; i < b->c.jobs; i++) {
		const struct vb_job *j = &b->jobs[i];

		for (uint32_t k = 0; k < j->n_gaps; k++)
			fprintf(f, "qp%u %" PRId64 " %" PRId64 " %" PRIu64 "\n", j->qid,
				(int64_t)j->gaps[k].from_ns + off, (int64_t)j->gaps[k].to_ns + off,
				j->gaps[k].to_ns - j->gaps[k].from_ns);
		if (j->lost_gaps)
			fprintf(f, "# qp%u: %" PRIu64 " more gaps not kept\n", j->qid, j->lost_gaps);
	}
	if (fclose(f) != 0) {
		rc = -errno;
		fprintf(stderr, "vfu-bench: --gaps=%s: %s\n", b->c.gaps, strerror(-rc));
	}
	return rc;
}
