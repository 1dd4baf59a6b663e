/* vfu-bench: core-to-core floor, a cache-line ping-pong between the client's and the server's first CPUs. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "vfu_bench.h"

#define BATCH 128u            /* round trips per timed batch */
#define MAX_BATCHES 16384u
#define STALL_NS 200000000ull /* no answer for 200 ms: the other CPU is busy */
#define SPIN_CHECK 0x3fffu    /* look at the clock every 16k spins */

/*
 * The initiator writes ping = i, the responder answers pong = i: each
 * round trip moves ping's line to the responder and pong's line back.
 * Spinning is plain loads (no pause), like the NVMe queues' busy polling.
 */
struct pingpong {
	_Alignas(VB_LINE) uint64_t ping;
	_Alignas(VB_LINE) uint64_t pong;
	_Alignas(VB_LINE) int ready;  /* the responder runs on its CPU */
	int quit;
};

static void *responder(void *arg)
{
	struct pingpong *pp = arg;
	uint64_t last = 0;
	unsigned spins = 0;

	__atomic_store_n(&pp->ready, 1, __ATOMIC_RELEASE);
	for (;;) {
		uint64_t v = __atomic_load_n(&pp->ping, __ATOMIC_ACQUIRE);

		if (v != last) {
			last = v;
			__atomic_store_n(&pp->pong, v, __ATOMIC_RELEASE);
			continue;
		}
		if (!(++spins & SPIN_CHECK) && __atomic_load_n(&pp->quit, __ATOMIC_ACQUIRE))
			return NULL;
	}
}

/* Wait until pong == want; -ETIMEDOUT after STALL_NS. */
static int await_pong(struct pingpong *pp, uint64_t want)
{
	uint64_t since = 0;
	unsigned spins = 0;

	while (__atomic_load_n(&pp->pong, __ATOMIC_ACQUIRE) != want) {
		if (!(++spins & SPIN_CHECK)) {
			uint64_t t = vb_now_ns();

			if (!since)
				since = t;
			else if (t - since > STALL_NS)
				return -ETIMEDOUT;
		}
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The initiator's side, on the calling thread (already pinned to cpu_a). */
static int initiate(struct pingpong *pp, unsigned ms, double *batch_ns, double *rtt_ns)
{
	uint64_t deadline, t0 = vb_now_ns();
	uint64_t seq = 0;
	uint32_t n = 0;
	int rc;

	while (!__atomic_load_n(&pp->ready, __ATOMIC_ACQUIRE)) {
		if (vb_now_ns() - t0 > STALL_NS)
			return -ETIMEDOUT;
		sched_yield();
	}
	/* warm-up: both lines settle, both CPUs leave their idle states */
	for (uint32_t i = 0; i < 4 * BATCH; i++) {
		__atomic_store_n(&pp->ping, ++seq, __ATOMIC_RELEASE);
		rc = await_pong(pp, seq);
		if (rc)
			return rc;
	}
	deadline = vb_now_ns() + (uint64_t)ms * 1000000u;
	while (n < MAX_BATCHES) {
		uint64_t a = vb_now_ns(), z;

		for (uint32_t i = 0; i < BATCH; i++) {
			__atomic_store_n(&pp->ping, ++seq, __ATOMIC_RELEASE);
			rc = await_pong(pp, seq);
			if (rc)
				return rc;
		}
		z = vb_now_ns();
		batch_ns[n++] = (double)(z - a) / BATCH;
		if (z >= deadline)
			break;
	}
	/* the median batch: a preempted batch or two do not move it */
	qsort(batch_ns, n, sizeof(*batch_ns), cmp_double);
	*rtt_ns = batch_ns[n / 2];
	return 0;
}

int vb_c2c_rtt(int cpu_a, int cpu_b, unsigned ms, double *rtt_ns)
{
	struct pingpong *pp = vb_calloc_lines(1, sizeof(*pp));
	double *batch_ns = calloc(MAX_BATCHES, sizeof(*batch_ns));
	cpu_set_t old, set;
	pthread_attr_t attr;
	pthread_t thr;
	int rc;

	if (!pp || !batch_ns) {
		rc = -ENOMEM;
		goto out_free;
	}
	if (cpu_a < 0 || cpu_b < 0 || cpu_a >= CPU_SETSIZE || cpu_b >= CPU_SETSIZE) {
		rc = -EINVAL;
		goto out_free;
	}
	rc = -pthread_getaffinity_np(pthread_self(), sizeof(old), &old);
	if (rc)
		goto out_free;
	rc = -pthread_attr_init(&attr);
	if (rc)
		goto out_free;
	CPU_ZERO(&set);
	CPU_SET(cpu_b, &set);
	rc = -pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	if (!rc)
		rc = -pthread_create(&thr, &attr, responder, pp);
	pthread_attr_destroy(&attr);
	if (rc)
		goto out_free;
	CPU_ZERO(&set);
	CPU_SET(cpu_a, &set);
	rc = -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (!rc)
		rc = initiate(pp, ms, batch_ns, rtt_ns);
	__atomic_store_n(&pp->quit, 1, __ATOMIC_RELEASE);
	pthread_join(thr, NULL);
	pthread_setaffinity_np(pthread_self(), sizeof(old), &old);
out_free:
	free(batch_ns);
	free(pp);
	return rc;
}
