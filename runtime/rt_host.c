/* The hosting hooks a device calls: queue placement, kicks, DMA grace periods, irqs. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include <vfurt/server.h>

#include "rt_internal.h"
#include "tsan.h"

/* A function run on a given worker while the caller waits. */
struct sync_call {
	void (*fn)(void *arg);
	void *arg;
	bool nestable;
	_Atomic int done;
};

static void sync_call_run(void *p)
{
	struct sync_call *c = p;

	c->fn(c->arg);
	atomic_store_explicit(&c->done, 1, memory_order_release);
}

/* The same, for calls that are safe to run nested inside the target's own
 * message handling (they touch poller sets and read counters only). */
static void sync_call_run_nestable(void *p)
{
	struct sync_call *c = p;

	/* a body of its own (done = 2): the worker tells the two apart by
	 * address, so identical-code folding must not merge them */
	c->fn(c->arg);
	atomic_store_explicit(&c->done, 2, memory_order_release);
}

/* One turn of a wait for another worker: serve the nestable calls sent to
 * the caller (that worker may be waiting for one of them), else yield. */
static void serve_or_yield(void)
{
	if (!vfr_rt_worker_poll_inbox(sync_call_run_nestable))
		sched_yield();
}

/*
 * Run fn(arg) on worker w and wait for it to finish. Directly when the caller
 * is w, or when no worker thread runs (before start, after stop). Never call
 * it for a worker that waits on the caller. Returns 0 or -EINVAL.
 */
static int run_on_flags(struct vfurt_runtime *rt, struct vfurt_worker *w, void (*fn)(void *),
			void *arg, bool nestable)
{
	struct sync_call c = { .fn = fn, .arg = arg, .nestable = nestable };
	void (*thunk)(void *) = nestable ? sync_call_run_nestable : sync_call_run;
	struct vfurt_worker *self = vfurt_worker_self();
	const char *was;
	int rc;

	if (self == w || !rt->started || rt->stopped) {
		fn(arg);
		return 0;
	}
	if (rt->no_threads) {
		/* an embedder's threads run the passes: when none runs w's now
		 * (or this thread does, further up), run fn here as w */
		bool mine = atomic_load(&w->owner) == vfr_rt_thread_token();

		if (mine || vfr_rt_worker_claim(w)) {
			struct vfurt_worker *prev = vfr_rt_worker_enter(w);

			fn(arg);
			vfr_rt_worker_enter(prev);
			if (!mine) {
				vfr_rt_worker_release(w);
				/* what fn queued (an accept to arm, cancels) is
				 * submitted by w's next pass, on the embedder's
				 * thread, which owns w's io_uring requests */
				vfurt_worker_wake(w);
			}
			return 0;
		}
	}
	/* a worker waiting here keeps serving its own inbox: the target may be
	 * waiting for us in the same way (two devices attaching at once, each
	 * placing a queue on the other's worker) */
	was = rt_worker_where(self, "waiting for another worker");
	while ((rc = vfurt_worker_send(w, thunk, &c)) == -EAGAIN)
		serve_or_yield();
	if (!rc)
		while (!atomic_load_explicit(&c.done, memory_order_acquire))
			serve_or_yield();
	rt_worker_where(self, was);
	return rc;
}

/* Control-plane calls: run between messages, never nested. */
int vfr_rt_run_on(struct vfurt_runtime *rt, struct vfurt_worker *w, void (*fn)(void *), void *arg)
{
	return run_on_flags(rt, w, fn, arg, false);
}

/* What the runtime keeps per started queue (vfurt_queue_set_host_data). */
struct rt_qhost {
	struct vfurt_poller *poller;
	struct rt_endpoint *ep;
	struct vfurt_queue *q;
};

struct queue_call {
	struct vfurt_worker *w;
	struct rt_qhost *qh;
	int rc;
};

static int queue_poller(void *arg)
{
	struct rt_qhost *qh = arg;
	struct vfurt_dev *dev = vfurt_queue_dev(qh->q);
	int rc = vfurt_queue_poll(qh->q);

	/* one relaxed-cost load per pass; the rest only after a fault */
	if (vfurt_dev_dma_lost(dev, NULL))
		vfr_rt_lost_notify(qh->ep);
	return rc;
}

static int queue_arm(void *arg, bool arm)
{
	struct rt_qhost *qh = arg;

	return vfurt_queue_arm(qh->q, arm);
}

static void queue_register_on(void *arg)
{
	struct queue_call *c = arg;
	struct vfurt_poller *p = vfurt_poller_register(c->w, queue_poller, c->qh, 0);

	if (p)
		vfurt_poller_set_arm(p, queue_arm);
	c->qh->poller = p;
	c->rc = p ? 0 : -ENOMEM;
}

static void queue_unregister_on(void *arg)
{
	struct queue_call *c = arg;

	vfurt_poller_unregister(&c->qh->poller);
}

/* Where q is polled: its hint resolved as runtime.h says ("queue placement"). */
struct vfurt_worker *vfr_rt_queue_worker(const struct rt_endpoint *ep, struct vfurt_queue *q)
{
	int hint = vfurt_queue_hint(q);
	uint32_t i = hint >= 0 ? (uint32_t)hint : vfurt_queue_index(q);

	if (hint == VFURT_QUEUE_HOME)
		return ep->home;
	return &ep->rt->workers[i % ep->rt->nr_workers];
}

static int host_queue_start(void *host, struct vfurt_dev *dev, struct vfurt_queue *q, int hint)
{
	struct rt_endpoint *ep = host;
	struct queue_call c = { .w = vfr_rt_queue_worker(ep, q) };
	int rc;

	(void)dev;
	(void)hint;
	c.qh = calloc(1, sizeof(*c.qh));
	if (!c.qh)
		return -ENOMEM;
	c.qh->ep = ep;
	c.qh->q = q;
	rc = run_on_flags(ep->rt, c.w, queue_register_on, &c, true);
	if (!rc)
		rc = c.rc;
	if (rc) {
		free(c.qh);
		return rc;
	}
	vfurt_queue_set_host_data(q, c.qh);
	return 0;
}

static void host_queue_stop(void *host, struct vfurt_dev *dev, struct vfurt_queue *q)
{
	struct rt_endpoint *ep = host;
	struct queue_call c = { .w = vfr_rt_queue_worker(ep, q), .qh = vfurt_queue_host_data(q) };

	(void)dev;
	if (!c.qh)
		return;
	run_on_flags(ep->rt, c.w, queue_unregister_on, &c, true);
	vfurt_queue_set_host_data(q, NULL);
	free(c.qh);
}

static void host_queue_kick(void *host, struct vfurt_dev *dev, struct vfurt_queue *q)
{
	(void)dev;
	vfurt_worker_wake(vfr_rt_queue_worker(host, q));
}

static int host_call(void *host, struct vfurt_dev *dev, void (*fn)(void *arg), void *arg)
{
	struct rt_endpoint *ep = host;

	(void)dev;
	return vfr_rt_run_on(ep->rt, ep->home, fn, arg);
}

/*
 * ck_epoch wait callback: a worker waiting for the others to leave their
 * epoch sections keeps serving the nestable calls sent to it. The worker it
 * waits for may itself be waiting, inside its section, for one of them (a
 * poller stopping a queue that lives here); without this the two spin
 * forever.
 */
static void epoch_wait_serve(ck_epoch_t *epoch, ck_epoch_record_t *rec, void *arg)
{
	(void)epoch;
	(void)rec;
	(void)arg;
	serve_or_yield();
}

static void host_dma_sync(void *host, struct vfurt_dev *dev)
{
	struct vfurt_runtime *rt = ((struct rt_endpoint *)host)->rt;

	/* our own batch may hold an eventfd that is about to be closed */
	vfr_rt_irq_batch_flush();
	/* every reader holds DMA pointers and eventfds only inside an epoch
	 * section */
	if (rt->started && !rt->stopped) {
		struct vfurt_worker *self = vfurt_worker_self();
		const char *was = rt_worker_where(self, "waiting for an epoch grace period");

		ck_epoch_synchronize_wait(&rt->epoch, epoch_wait_serve, NULL);
		vfurt_tsan_acquire(&rt->epoch);
		rt_worker_where(self, was);
	}
}

/* An old DMA table version waiting for its grace period (ck_epoch_call). */
struct rt_retired {
	ck_epoch_entry_t entry; /* first: the callback gets its address */
	struct vfurt_runtime *rt;
	void *ptr;
	void (*free_fn)(void *ptr);
};

/* Dispatched by ck_epoch_poll/ck_epoch_reclaim on the worker that retired
 * it, once every section that could see ptr has ended. */
static void retired_free(ck_epoch_entry_t *e)
{
	struct rt_retired *r = (struct rt_retired *)(void *)e;

	/* the readers' sections released the epoch before ending (worker.c) */
	vfurt_tsan_acquire(&r->rt->epoch);
	r->free_fn(r->ptr);
	free(r);
}

/*
 * DMA_MAP/DMA_UNMAP replaced a version of the table that queue pollers on
 * other workers may still walk: free it after a grace period. The home
 * worker defers it on its own epoch record (dispatched by its passes and at
 * stop); with no worker thread running, nobody can read it any more.
 */
static void host_dma_retire(void *host, struct vfurt_dev *dev, void *ptr,
			    void (*free_fn)(void *ptr))
{
	struct vfurt_runtime *rt = ((struct rt_endpoint *)host)->rt;
	struct vfurt_worker *self = vfurt_worker_self();
	struct rt_retired *r;

	(void)dev;
	if (!rt->started || rt->stopped) {
		free_fn(ptr);
		return;
	}
	r = self && self->rt == rt ? malloc(sizeof(*r)) : NULL;
	if (!r) {
		/* not a worker of ours, or no memory: wait for the readers here */
		const char *was = rt_worker_where(self, "waiting for an epoch grace period");

		ck_epoch_synchronize_wait(&rt->epoch, epoch_wait_serve, NULL);
		vfurt_tsan_acquire(&rt->epoch);
		rt_worker_where(self, was);
		free_fn(ptr);
		return;
	}
	r->rt = rt;
	r->ptr = ptr;
	r->free_fn = free_fn;
	ck_epoch_call(&self->epoch_rec, &r->entry, retired_free);
}

static int host_irq_signal(void *host, struct vfurt_dev *dev, int fd)
{
	const uint64_t one = 1;

	if (vfr_rt_irq_batch_add(fd))
		return 0;
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

const struct vfurt_dev_host_ops vfr_rt_host_ops = {
	.ops_size = sizeof(struct vfurt_dev_host_ops),
	.queue_start = host_queue_start,
	.queue_stop = host_queue_stop,
	.dma_sync = host_dma_sync,
	.irq_signal = host_irq_signal,
	.queue_kick = host_queue_kick,
	.dma_retire = host_dma_retire,
	.call = host_call,
};
