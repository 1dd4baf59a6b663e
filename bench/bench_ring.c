/* Cross-core message ring: enqueue+dequeue on one thread, and producer/consumer across two pinned CPUs. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "runtime/ring.h"

#include "suites.h"

#define RING_SLOTS 1024u
#define RING_BATCH 64u

static void noop_msg(void *arg)
{
	(void)arg;
}

static void *ring_setup(int64_t arg, const char **why)
{
	struct vfurt_msg_ring *r = vfr_ring_create(RING_SLOTS);

	if (!r)
		*why = "vfr_ring_create failed";
	return r;
}

static void ring_teardown(void *fx)
{
	vfr_ring_destroy(fx);
}

/* One message in and out again: the uncontended cost of a cross-core send
 * plus its receipt, without the cache-line transfer. */
static void bm_ring_pair(struct vfurt_bench_state *st)
{
	struct vfurt_msg_ring *r = vfurt_bench_fixture(st);
	struct vfurt_ring_msg in = { .fn = noop_msg, .arg = NULL };
	struct vfurt_ring_msg out = { 0 };
	uint64_t lost = 0;

	while (vfurt_bench_keep_running_batch(st, RING_BATCH)) {
		for (unsigned i = 0; i < RING_BATCH; i++) {
			in.arg = (void *)(uintptr_t)i;
			if (!vfr_ring_enqueue_mpsc(r, &in) || !vfr_ring_dequeue_sc(r, &out))
				lost++;
			vfurt_bench_sink(out.arg);
		}
	}
	if (lost)
		vfurt_bench_counter(st, "lost", (double)lost);
}

/* A burst of 32 sends, then 32 receipts (a worker's inbox drain). */
static void bm_ring_burst(struct vfurt_bench_state *st)
{
	struct vfurt_msg_ring *r = vfurt_bench_fixture(st);
	struct vfurt_ring_msg in = { .fn = noop_msg, .arg = NULL };
	struct vfurt_ring_msg out = { 0 };
	uint64_t lost = 0;

	while (vfurt_bench_keep_running_batch(st, 32)) {
		for (unsigned i = 0; i < 32; i++)
			if (!vfr_ring_enqueue_mpsc(r, &in))
				lost++;
		for (unsigned i = 0; i < 32; i++)
			if (!vfr_ring_dequeue_sc(r, &out))
				lost++;
		vfurt_bench_sink(out.fn);
	}
	if (lost)
		vfurt_bench_counter(st, "lost", (double)lost);
}

/* ---- producer on CPU 0, consumer on CPU 1 -------------------------------- */

struct ring_2t {
	struct vfurt_msg_ring *r;
	pthread_t consumer;
	_Atomic bool stop;
	_Atomic bool pinned;
	_Atomic uint64_t received;
};

static void *consumer_main(void *arg)
{
	struct ring_2t *fx = arg;
	struct vfurt_ring_msg m;
	uint64_t n = 0;

	atomic_store(&fx->pinned, vfurt_bench_pin_self(1) == 0);
	while (!atomic_load_explicit(&fx->stop, memory_order_relaxed)) {
		if (vfr_ring_dequeue_sc(fx->r, &m)) {
			n++;
			if ((n & 1023) == 0)
				atomic_store_explicit(&fx->received, n, memory_order_relaxed);
		} else {
			vfurt_bench_relax();
		}
	}
	atomic_store(&fx->received, n);
	return NULL;
}

static void *ring_2t_setup(int64_t arg, const char **why)
{
	struct ring_2t *fx;

	if (vfurt_bench_cpus_allowed() < 2) {
		*why = "needs 2 CPUs";
		return NULL;
	}
	fx = calloc(1, sizeof(*fx));
	if (!fx)
		return NULL;
	fx->r = vfr_ring_create(RING_SLOTS);
	if (!fx->r)
		goto err_free;
	if (pthread_create(&fx->consumer, NULL, consumer_main, fx))
		goto err_ring;
	return fx;

err_ring:
	vfr_ring_destroy(fx->r);
err_free:
	free(fx);
	return NULL;
}

static void ring_2t_teardown(void *p)
{
	struct ring_2t *fx = p;

	atomic_store(&fx->stop, true);
	pthread_join(fx->consumer, NULL);
	vfr_ring_destroy(fx->r);
	free(fx);
}

/* Throughput of one producer feeding one consumer spinning on another core
 * (the runtime's worker_send path between two busy workers). */
static void bm_ring_2thread(struct vfurt_bench_state *st)
{
	struct ring_2t *fx = vfurt_bench_fixture(st);
	struct vfurt_ring_msg in = { .fn = noop_msg, .arg = NULL };
	uint64_t full = 0;
	uint64_t sent = 0;

	vfurt_bench_pin_self(0);
	while (vfurt_bench_keep_running_batch(st, RING_BATCH)) {
		for (unsigned i = 0; i < RING_BATCH; i++) {
			while (!vfr_ring_enqueue_mpsc(fx->r, &in)) {
				full++;
				vfurt_bench_relax();
			}
		}
		sent += RING_BATCH;
	}
	vfurt_bench_set_items(st, (int64_t)sent);
	vfurt_bench_counter(st, "full_spins", (double)full / (double)(sent ? sent : 1));
	vfurt_bench_label(st, atomic_load(&fx->pinned) ? "pinned 0->1" : "not pinned");
}

const struct vfurt_bench_case bench_ring_cases[] = {
	{ .name = "ring/enq_deq_pair", .fn = bm_ring_pair, .setup = ring_setup,
	  .teardown = ring_teardown },
	{ .name = "ring/burst32", .fn = bm_ring_burst, .setup = ring_setup,
	  .teardown = ring_teardown },
	{ .name = "ring/2thread_throughput", .fn = bm_ring_2thread, .setup = ring_2t_setup,
	  .teardown = ring_2t_teardown },
	{ .name = NULL },
};
