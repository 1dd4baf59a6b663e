/* vfu-bench --probe: times a second device's answers while the load runs (a neighbour on the worker). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vfurt/client.h>

#include "vfu_bench.h"

#define PROBE_REGION_CONFIG 7u /* VFIO_PCI_CONFIG_REGION_INDEX */
#define PROBE_TIMEOUT_MS 30000 /* a stalled worker is what we measure: wait long */

struct vb_probe {
	struct vb_bench *b;
	struct vfurt_client *c;
	pthread_t thread;
	bool started;
	int rc;
	uint64_t errors;
	uint64_t max_gap_ns;   /* longest time between two answers, inside the window */
	struct vb_hist hist;   /* answers to reads sent inside [ramp end, end] */
};

static void *probe_main(void *arg)
{
	struct vb_probe *p = arg;
	struct vb_bench *b = p->b;
	uint64_t last = 0;

	vb_wait_go(b);
	while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
		uint64_t end = __atomic_load_n(&b->end_ns, __ATOMIC_RELAXED);
		uint64_t t0 = vb_now_ns(), t1;
		uint16_t vid;
		int rc;

		if (t0 >= end)
			break;
		rc = vfurt_client_region_read(p->c, PROBE_REGION_CONFIG, 0, &vid, sizeof(vid));
		t1 = vb_now_ns();
		if (rc) {
			p->errors++;
			p->rc = rc;
			break;
		}
		if (t0 >= b->ramp_end_ns && t1 <= end) {
			vb_hist_add(&p->hist, t1 - t0);
			if (last && t1 - last > p->max_gap_ns)
				p->max_gap_ns = t1 - last;
			last = t1;
		}
		if (b->c.probe_interval_us) {
			struct timespec ts = { .tv_sec = b->c.probe_interval_us / 1000000u,
					       .tv_nsec = (long)(b->c.probe_interval_us % 1000000u) *
							  1000 };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

int vb_probe_start(struct vb_bench *b)
{
	struct vfurt_client_opts o = { .opts_size = sizeof(o), .timeout_ms = PROBE_TIMEOUT_MS };
	struct vb_probe *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return -ENOMEM;
	p->b = b;
	vb_hist_reset(&p->hist);
	p->c = vfurt_client_connect(b->c.probe, &o);
	if (!p->c) {
		rc = -errno;
		fprintf(stderr, "vfu-bench: --probe=%s: %s\n", b->c.probe, strerror(-rc));
		free(p);
		return rc;
	}
	b->probe = p;
	rc = -pthread_create(&p->thread, NULL, probe_main, p);
	if (rc) {
		fprintf(stderr, "vfu-bench: probe thread: %s\n", strerror(-rc));
		return rc;
	}
	p->started = true;
	return 0;
}

void vb_probe_join(struct vb_bench *b)
{
	if (!b->probe || !b->probe->started)
		return;
	pthread_join(b->probe->thread, NULL);
	b->probe->started = false;
}

void vb_probe_print(const struct vb_bench *b, bool json)
{
	const struct vb_probe *p = b->probe;
	const struct vb_hist *h;

	if (!p)
		return;
	h = &p->hist;
	if (json) {
		printf("  \"probe\": {\n    \"socket\": \"%s\",\n    \"interval_us\": %u,\n"
		       "    \"reads\": %" PRIu64 ",\n    \"errors\": %" PRIu64 ",\n"
		       "    \"lat_ns\": { \"p50\": %" PRIu64 ", \"p99\": %" PRIu64
		       ", \"max\": %" PRIu64 " },\n    \"max_gap_ns\": %" PRIu64 "\n  },\n",
		       b->c.probe, b->c.probe_interval_us, h->n, p->errors,
		       vb_hist_percentile(h, 50), vb_hist_percentile(h, 99), h->max_ns,
		       p->max_gap_ns);
		return;
	}
	printf("probe %s: %" PRIu64 " reads (one per %u us), latency p50 %.2f us p99 %.2f us "
	       "max %.2f us, longest gap between answers %.2f ms%s\n",
	       b->c.probe, h->n, b->c.probe_interval_us,
	       (double)vb_hist_percentile(h, 50) / 1e3, (double)vb_hist_percentile(h, 99) / 1e3,
	       (double)h->max_ns / 1e3, (double)p->max_gap_ns / 1e6,
	       p->errors ? " (stopped by an error)" : "");
}

void vb_probe_free(struct vb_bench *b)
{
	if (!b->probe)
		return;
	vfurt_client_close(b->probe->c);
	free(b->probe);
	b->probe = NULL;
}
