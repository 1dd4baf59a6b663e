/* Worker threads: pinning, the poll pass, io_uring completions, pollers, cross-core messages. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cpuset.h"
#include "rt_internal.h"
#include "tsan.h"

/* The worker of the calling thread: per thread, not per process. */
static __thread struct vfurt_worker *tls_worker;

uint64_t vfr_rt_now(const struct vfurt_runtime *rt)
{
	struct timespec ts;

	if (rt->clock)
		return rt->clock(rt->clock_arg);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	/* single writer: a relaxed load+store is enough and cheaper than a RMW */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

struct vfurt_worker *vfurt_worker_self(void)
{
	return tls_worker;
}

uint32_t vfurt_worker_id(const struct vfurt_worker *w)
{
	return w->id;
}

int vfurt_worker_cpu(const struct vfurt_worker *w)
{
	return w->cpu;
}

int vfr_rt_worker_init(struct vfurt_runtime *rt, struct vfurt_worker *w, uint32_t id, int cpu)
{
	memset(w, 0, sizeof(*w));
	w->rt = rt;
	w->id = id;
	w->cpu = cpu;
	w->wake_fd = -1;
	snprintf(w->log_prefix, sizeof(w->log_prefix), "vfu-rt[w%u]", id);
	w->log = rt->log;
	if (w->log.fn == vfurt_log_stderr)
		w->log.arg = w->log_prefix;
	w->pollers = vfr_poller_set_create();
	if (!w->pollers)
		return -ENOMEM;
	w->inbox = vfr_ring_create(RT_RING_SLOTS);
	if (!w->inbox)
		goto err_pollers;
	/* the nested inbox poll sets messages aside here: sized up front, so
	 * that the inbox path never allocates */
	w->cap_deferred = RT_DEFERRED_SLOTS;
	w->deferred = calloc(w->cap_deferred, sizeof(*w->deferred));
	if (!w->deferred)
		goto err_inbox;
	w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->wake_fd < 0)
		goto err_deferred;
	ck_epoch_register(&rt->epoch, &w->epoch_rec, NULL);
	w->wake_op.kind = RT_OP_WAKE;
	return 0;

err_deferred:
	free(w->deferred);
	w->deferred = NULL;
err_inbox:
	vfr_ring_destroy(w->inbox);
	w->inbox = NULL;
err_pollers:
	vfr_poller_set_destroy(w->pollers);
	return -ENOMEM;
}

void vfr_rt_worker_fini(struct vfurt_worker *w)
{
	struct vfurt_ring_msg m;

	/* messages nobody will run any more: run them here so that their
	 * senders' resources are released */
	while (w->inbox && vfr_ring_dequeue_sc(w->inbox, &m))
		m.fn(m.arg);
	if (w->ring_ok)
		io_uring_queue_exit(&w->ring);
	w->ring_ok = false;
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	w->wake_fd = -1;
	for (uint32_t i = 0; i < w->nr_deferred; i++)
		w->deferred[i].fn(w->deferred[i].arg);
	free(w->deferred);
	w->deferred = NULL;
	w->nr_deferred = 0;
	free(w->postponed);
	w->postponed = NULL;
	w->nr_postponed = w->cap_postponed = 0;
	vfr_ring_destroy(w->inbox);
	w->inbox = NULL;
	vfr_poller_set_destroy(w->pollers);
	w->pollers = NULL;
	vfr_rt_worker_reclaim(w); /* nothing deferred may be lost with the record */
	ck_epoch_unregister(&w->epoch_rec);
	free(w->eps);
	w->eps = NULL;
}

/* ---- pollers ----------------------------------------------------------- */

struct vfurt_poller *vfurt_poller_register(struct vfurt_worker *w, vfurt_poller_fn fn, void *arg,
					   uint64_t period_us)
{
	if (!w || !fn) {
		errno = EINVAL;
		return NULL;
	}
	return vfr_poller_set_add(w->pollers, w, fn, arg, period_us, vfr_rt_now(w->rt));
}

void vfurt_poller_unregister(struct vfurt_poller **p)
{
	if (!p || !*p)
		return;
	vfr_poller_set_remove(vfr_poller_owner(*p), *p);
	*p = NULL;
}

void vfurt_poller_set_arm(struct vfurt_poller *p, vfurt_poller_arm_fn fn)
{
	if (p)
		vfr_poller_arm_set(p, fn);
}

/* ---- cross-core messages ----------------------------------------------- */

/*
 * Write w's wake eventfd if w sleeps. Call after publishing the work: the
 * fence pairs with the sleeping store + fence in worker_sleep(), so either we
 * see the flag, or the worker's inbox check and arm/recheck see the work.
 * Returns 0 or -errno of the write.
 */
static int wake_if_sleeping(struct vfurt_worker *w)
{
	const uint64_t one = 1;

	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&w->sleeping, memory_order_relaxed) &&
	    write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

void vfurt_worker_wake(struct vfurt_worker *w)
{
	int rc;

	if (!w)
		return;
	rc = wake_if_sleeping(w);
	if (rc)
		vfurt_logf(&w->log, VFURT_LOG_WARN, "cannot wake worker: %s", strerror(-rc));
}

int vfurt_worker_send(struct vfurt_worker *to, vfurt_msg_fn fn, void *arg)
{
	struct vfurt_ring_msg m = { .fn = fn, .arg = arg };

	if (!to || !fn)
		return -EINVAL;
	if (!vfr_ring_enqueue_mpsc(to->inbox, &m))
		return -EAGAIN;
	/* queued: fn runs once whatever the wake-up does, so report success */
	vfurt_worker_wake(to);
	return 0;
}

static int drain_inbox(struct vfurt_worker *w);

int vfr_rt_worker_poll_inbox(void (*nestable)(void *arg))
{
	struct vfurt_worker *w = tls_worker;
	struct vfurt_ring_msg m;
	int n = 0;

	if (!w)
		return 0;
	while (n < (int)RT_INBOX_BATCH && w->nr_deferred < w->cap_deferred &&
	       vfr_ring_dequeue_sc(w->inbox, &m)) {
		n++;
		if (m.fn == nestable) {
			m.fn(m.arg);
			continue;
		}
		/* not safe in the middle of this worker's own work: keep it, in
		 * order, for the next pass */
		w->deferred[w->nr_deferred++] = m;
		/* full (twice the inbox set aside within one wait): leave the
		 * rest in the inbox rather than run one out of place */
		if (w->nr_deferred == w->cap_deferred)
			break;
	}
	return n;
}

static int drain_inbox(struct vfurt_worker *w)
{
	struct vfurt_ring_msg m;
	int n = 0;

	/* messages held back by a nested poll come first, in order */
	for (uint32_t i = 0; i < w->nr_deferred; i++) {
		m = w->deferred[i];
		m.fn(m.arg);
		n++;
	}
	w->nr_deferred = 0;
	while (n < (int)RT_INBOX_BATCH && vfr_ring_dequeue_sc(w->inbox, &m)) {
		m.fn(m.arg);
		n++;
	}
	if (n)
		stat_add(&w->st.ring_msgs, (uint64_t)n);
	return n;
}

/* ---- irq batch --------------------------------------------------------- */

bool vfr_rt_irq_batch_add(int fd)
{
	struct vfurt_worker *w = tls_worker;

	if (!w)
		return false;
	stat_add(&w->st.irqs_raised, 1);
	if (w->rt->irq_unbatched)
		goto write_now;
	for (uint32_t i = 0; i < w->nr_irq; i++)
		if (w->irq_fds[i] == fd)
			return true; /* coalesced into the pending write */
	if (w->nr_irq == RT_IRQ_BATCH)
		goto write_now; /* full */
	w->irq_fds[w->nr_irq++] = fd;
	return true;

write_now:
	stat_add(&w->st.irqs_written, 1); /* by the caller, right after this */
	return false;
}

static void flush_irqs(struct vfurt_worker *w);

void vfr_rt_irq_batch_flush(void)
{
	if (tls_worker)
		flush_irqs(tls_worker);
}

/* The value every irq eventfd write adds; io_uring reads it at submit. */
static const uint64_t irq_one = 1;

/*
 * Write each pending eventfd once. One distinct eventfd: a direct write(2)
 * is cheapest; two or more: one io_uring submit carries them all (measured
 * by bench/bench_irq.c: 1.2 us per write(2) vs 0.27 us per fd at 8 fds).
 * io_uring takes a file reference at submit, so an eventfd closed right
 * after this pass still gets its write, and never a reused fd number.
 */
static void flush_irqs(struct vfurt_worker *w)
{
	uint32_t n = w->nr_irq;

	if (!n)
		return;
	if (n >= 2 && w->ring_ok && io_uring_sq_space_left(&w->ring) >= n) {
		for (uint32_t i = 0; i < n; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

			io_uring_prep_write(sqe, w->irq_fds[i], &irq_one, sizeof(irq_one), 0);
			io_uring_sqe_set_data(sqe, NULL);
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		}
		if (io_uring_submit(&w->ring) >= 0) {
			w->pending_sqes = 0;
			goto written;
		}
		/* not submitted (the SQEs stay queued for a later submit): write
		 * now rather than lose them; an extra count on an eventfd is one
		 * spurious interrupt at worst, a lost one can hang a guest */
		stat_add(&w->st.irq_submit_fallbacks, 1);
	}
	for (uint32_t i = 0; i < n; i++) {
		ssize_t r;

		do {
			r = write(w->irq_fds[i], &irq_one, sizeof(irq_one));
		} while (r < 0 && errno == EINTR);
	}
written:
	stat_add(&w->st.irqs_written, n);
	w->nr_irq = 0;
}

/* ---- the pass ---------------------------------------------------------- */

struct io_uring_sqe *vfr_rt_get_sqe(struct vfurt_worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	if (!sqe && io_uring_submit(&w->ring) >= 0) {
		w->pending_sqes = 0;
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

/*
 * Keep a read armed on the wake eventfd: without it an adaptive worker
 * could never be woken again. With no SQE free, submit what is queued and
 * try again; failing that, the next pass retries (wake_rearm), and the
 * worker sleeps at most a tick meanwhile.
 */
static void arm_wake(struct vfurt_worker *w)
{
	struct io_uring_sqe *sqe;

	if (!w->wake_rearm || w->wake_op.armed || !w->ring_ok || atomic_load(&w->stop))
		return;
	sqe = vfr_rt_get_sqe(w);
	if (!sqe)
		return;
	io_uring_prep_read(sqe, w->wake_fd, &w->wake_buf, sizeof(w->wake_buf), 0);
	io_uring_sqe_set_data(sqe, &w->wake_op);
	w->wake_op.armed = true;
	w->wake_rearm = false;
	w->pending_sqes++;
}

static void handle_completion(struct vfurt_worker *w, struct rt_op *op, int res, int *work)
{
	op->armed = false;
	if (op->kind == RT_OP_WAKE) {
		w->wake_rearm = true;
		arm_wake(w);
		return;
	}
	vfr_rt_endpoint_event(w, op, res);
	(*work)++;
}

void vfr_rt_postpone_cqe(struct vfurt_worker *w, struct rt_op *op, int res)
{
	if (w->nr_postponed == w->cap_postponed) {
		uint32_t ncap = w->cap_postponed ? w->cap_postponed * 2 : 64;
		struct rt_cqe *n = realloc(w->postponed, ncap * sizeof(*n));

		if (!n) {
			/* no memory for the bookkeeping: run it now, nested */
			int work = 0;

			handle_completion(w, op, res, &work);
			return;
		}
		w->postponed = n;
		w->cap_postponed = ncap;
	}
	w->postponed[w->nr_postponed++] = (struct rt_cqe){ .op = op, .res = res };
}

bool vfr_rt_take_postponed(struct vfurt_worker *w, const struct rt_op *op, int *res)
{
	for (uint32_t i = 0; i < w->nr_postponed; i++) {
		if (w->postponed[i].op != op)
			continue;
		*res = w->postponed[i].res;
		memmove(&w->postponed[i], &w->postponed[i + 1],
			(w->nr_postponed - i - 1) * sizeof(w->postponed[0]));
		w->nr_postponed--;
		return true;
	}
	return false;
}

struct vfurt_worker *vfr_rt_worker_enter(struct vfurt_worker *w)
{
	struct vfurt_worker *prev = tls_worker;

	tls_worker = w;
	return prev;
}

static void reap_completions(struct vfurt_worker *w, int *work)
{
	struct io_uring_cqe *cqes[32];
	unsigned n;

	if (!w->ring_ok)
		return;
	/* completions an endpoint drop reaped while it waited for its recv:
	 * one at a time, since handling one may postpone more */
	for (uint32_t i = 0; i < w->nr_postponed; i++)
		handle_completion(w, w->postponed[i].op, w->postponed[i].res, work);
	w->nr_postponed = 0;
	/* completions waiting as task work (COOP_TASKRUN): run it now */
	if (__atomic_load_n(w->ring.sq.kflags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN)
		io_uring_get_events(&w->ring);
	while ((n = io_uring_peek_batch_cqe(&w->ring, cqes, 32)) > 0) {
		for (unsigned i = 0; i < n; i++) {
			struct rt_op *op = io_uring_cqe_get_data(cqes[i]);
			int res = cqes[i]->res;

			io_uring_cqe_seen(&w->ring, cqes[i]);
			if (op)
				handle_completion(w, op, res, work);
		}
	}
}

/* An address unique to the calling thread (no_threads pass ownership). */
static __thread char tls_token;

uintptr_t vfr_rt_thread_token(void)
{
	return (uintptr_t)&tls_token;
}

bool vfr_rt_worker_claim(struct vfurt_worker *w)
{
	uintptr_t none = 0;

	return atomic_compare_exchange_strong(&w->owner, &none, vfr_rt_thread_token());
}

void vfr_rt_worker_release(struct vfurt_worker *w)
{
	atomic_store(&w->owner, (uintptr_t)0);
}

/* no_threads: the embedder slept after vfurt_worker_next_deadline; take
 * the wake-ups back. */
static void embed_disarm(struct vfurt_worker *w)
{
	if (!w->embed_armed)
		return;
	w->embed_armed = false;
	atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
	(void)vfr_poller_set_arm_all(w->pollers, false);
}

static bool run_pass(struct vfurt_worker *w);

bool vfurt_worker_run_pass(struct vfurt_worker *w)
{
	bool busy;

	if (!w->rt->no_threads)
		return run_pass(w);
	/* an embedder's threads: one pass of w at a time */
	if (!vfr_rt_worker_claim(w))
		return false;
	embed_disarm(w);
	busy = run_pass(w);
	vfr_rt_worker_release(w);
	return busy;
}

/*
 * When w's timers want it again: its next timed poller and, while it has a
 * client or owes the wake read a re-arm, the connection tick
 * (vfr_rt_worker_tick). UINT64_MAX: no timer. Both ways of sleeping use it.
 */
static uint64_t timer_deadline(const struct vfurt_worker *w, uint64_t now)
{
	uint64_t d = vfr_poller_set_next_deadline(w->pollers);

	if ((w->has_clients || w->wake_rearm) && now + RT_TICK_NS < d)
		d = now + RT_TICK_NS;
	return d;
}

/* vfurt_worker_next_deadline with w claimed. */
static uint64_t next_deadline(struct vfurt_worker *w)
{
	uint64_t now = vfr_rt_now(w->rt);
	uint64_t deadline;
	int arm;

	if (w->nr_deferred || w->nr_postponed || w->wake_rearm)
		return 0;
	deadline = timer_deadline(w, now);
	if (!w->embed_armed) {
		w->embed_armed = true;
		atomic_store_explicit(&w->sleeping, 1, memory_order_relaxed);
		/* pairs with the fence of vfurt_worker_send/wake, as in worker_sleep */
		atomic_thread_fence(memory_order_seq_cst);
		arm = vfr_poller_set_arm_all(w->pollers, true);
		w->embed_arm = arm;
	}
	arm = w->embed_arm;
	if (arm == VFURT_ARM_PENDING || vfr_ring_count(w->inbox))
		return 0;
	if (arm == VFURT_ARM_POLL && now + w->rt->poll_sleep_ns < deadline)
		deadline = now + w->rt->poll_sleep_ns;
	if (w->pending_sqes) {
		io_uring_submit(&w->ring);
		w->pending_sqes = 0;
	}
	if (io_uring_cq_ready(&w->ring) ||
	    (__atomic_load_n(w->ring.sq.kflags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN))
		return 0;
	return deadline;
}

uint64_t vfurt_worker_next_deadline(struct vfurt_worker *w)
{
	uint64_t t;

	if (!w->rt->no_threads || !w->ring_ok)
		return 0;
	/* another thread is in w (a cross-worker call): ask again soon */
	if (!vfr_rt_worker_claim(w))
		return 0;
	t = next_deadline(w);
	vfr_rt_worker_release(w);
	return t;
}

int vfurt_worker_fd(const struct vfurt_worker *w)
{
	return w && w->rt->no_threads && w->ring_ok ? w->ring.ring_fd : -1;
}

static bool run_pass(struct vfurt_worker *w)
{
	struct vfurt_worker *prev = tls_worker;
	ck_epoch_section_t section;
	uint64_t t0 = vfr_rt_now(w->rt);
	int work = 0;

	tls_worker = w;
	work += drain_inbox(w);
	/* pollers translate guest addresses: they run inside an epoch section
	 * so that DMA unmap can wait for them (vfr_rt_host_ops.dma_sync) */
	ck_epoch_begin(&w->epoch_rec, &section);
	rt_worker_where(w, "running pollers");
	work += vfr_poller_set_run_active(w->pollers);
	if (vfr_poller_set_next_deadline(w->pollers) <= t0)
		work += vfr_poller_set_run_timed(w->pollers, t0);
	flush_irqs(w);
	/* tell TSan what ck_epoch guarantees: the reads of this section happen
	 * before a synchronize that returns after it (rt_host.c host_dma_sync); the
	 * release must precede the end that lets the synchronize return */
	vfurt_tsan_release(&w->rt->epoch);
	ck_epoch_end(&w->epoch_rec, &section);
	/* control plane: vfio-user messages, accepts, ioeventfds */
	rt_worker_where(w, "handling messages");
	reap_completions(w, &work);
	arm_wake(w);
	w->has_clients = vfr_rt_worker_tick(w, t0);
	flush_irqs(w); /* triggers raised by message handlers */
	/* DMA table versions retired by this worker's DMA_MAP/UNMAPs
	 * (rt_host.c host_dma_retire): free those whose grace period is over, and
	 * move the epoch on for the others; outside the section, never
	 * blocking */
	if (w->epoch_rec.n_pending)
		ck_epoch_poll(&w->epoch_rec);
	if (w->ring_ok && w->pending_sqes) {
		io_uring_submit(&w->ring);
		w->pending_sqes = 0;
	}
	rt_worker_where(w, "between passes");
	tls_worker = prev;

	stat_add(&w->st.passes, 1);
	if (work) {
		stat_add(&w->st.busy_passes, 1);
		stat_add(&w->st.busy_ns, vfr_rt_now(w->rt) - t0);
	}
	return work > 0;
}

/* Adaptive mode: sleep in the kernel until a completion, a wake-up or the
 * next timer, bounded by sleep_max. */
static void worker_sleep(struct vfurt_worker *w)
{
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	uint64_t now = vfr_rt_now(w->rt);
	uint64_t deadline = timer_deadline(w, now);
	uint64_t wait_ns = w->rt->sleep_max_ns;
	int arm;

	if (deadline != UINT64_MAX)
		wait_ns = deadline > now ? deadline - now : 0;
	if (wait_ns > w->rt->sleep_max_ns)
		wait_ns = w->rt->sleep_max_ns;
	if (wait_ns == 0)
		return;
	atomic_store_explicit(&w->sleeping, 1, memory_order_relaxed);
	/* pairs with the fence in vfurt_worker_send() and vfurt_worker_wake():
	 * either the sender sees sleeping and writes wake_fd, or we see its
	 * message here. Arming comes after the store, so a kick caused by a
	 * notification we enable below always sees sleeping. */
	atomic_thread_fence(memory_order_seq_cst);
	arm = vfr_poller_set_arm_all(w->pollers, true);
	if (arm == VFURT_ARM_POLL && wait_ns > w->rt->poll_sleep_ns)
		wait_ns = w->rt->poll_sleep_ns;
	if (arm != VFURT_ARM_PENDING && vfr_ring_count(w->inbox) == 0 &&
	    !atomic_load(&w->stop)) {
		ts.tv_sec = (long long)(wait_ns / 1000000000ull);
		ts.tv_nsec = (long long)(wait_ns % 1000000000ull);
		rt_worker_where(w, "sleeping");
		io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		rt_worker_where(w, "between passes");
		w->pending_sqes = 0;
		stat_add(&w->st.sleeps, 1);
	}
	atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
	(void)vfr_poller_set_arm_all(w->pollers, false);
	if (arm == VFURT_ARM_PENDING)
		w->idle_since_ns = 0; /* spin again before the next try */
}

#define RT_ALTSTACK_SIZE (64u * 1024u)

/* The SIGBUS guard (io/fault.c) asks for SA_ONSTACK: give the worker an
 * alternate stack unless it has one (a sanitizer's). NULL: none added. */
static void *altstack_add(void)
{
	stack_t ss = { 0 };
	stack_t old;
	void *p;

	if (sigaltstack(NULL, &old) < 0 || !(old.ss_flags & SS_DISABLE))
		return NULL;
	p = malloc(RT_ALTSTACK_SIZE);
	if (!p)
		return NULL;
	ss.ss_sp = p;
	ss.ss_size = RT_ALTSTACK_SIZE;
	if (sigaltstack(&ss, NULL) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

static void altstack_remove(void *p)
{
	stack_t ss = { .ss_flags = SS_DISABLE };

	if (!p)
		return;
	(void)sigaltstack(&ss, NULL);
	free(p);
}

static void *worker_main(void *arg)
{
	struct vfurt_worker *w = arg;
	struct vfurt_runtime *rt = w->rt;
	void *alt = altstack_add();
	char name[16];
	int rc;

	snprintf(name, sizeof(name), "vfu-rt-w%u", w->id);
	pthread_setname_np(pthread_self(), name);
	rc = vfr_cpu_pin_self(w->cpu);
	if (rc)
		vfurt_logf(&w->log, VFURT_LOG_WARN, "cannot pin to CPU %d: %s", w->cpu,
			   strerror(-rc));
	else
		vfurt_logf(&w->log, VFURT_LOG_DEBUG, "running on CPU %d", w->cpu);
	tls_worker = w;
	atomic_store_explicit(&w->st.start_ns, vfr_rt_now(rt), memory_order_relaxed);
	w->idle_since_ns = vfr_rt_now(rt);
	while (!atomic_load_explicit(&w->stop, memory_order_acquire)) {
		bool busy = run_pass(w);

		if (rt->mode != VFURT_POLL_ADAPTIVE)
			continue;
		if (busy) {
			w->idle_since_ns = 0;
			continue;
		}
		if (!w->idle_since_ns)
			w->idle_since_ns = vfr_rt_now(rt);
		else if (vfr_rt_now(rt) - w->idle_since_ns >= rt->spin_ns)
			worker_sleep(w);
	}
	/* connections were closed by vfurt_runtime_stop() while every worker
	 * still ran (a device's detach may need its queues' workers) */
	run_pass(w);
	tls_worker = NULL;
	altstack_remove(alt);
	return NULL;
}

int vfr_rt_worker_ring_init(struct vfurt_worker *w)
{
	struct io_uring_sqe *sqe;
	int rc;

	/*
	 * Cooperative task running: socket completions are not pushed to a
	 * spinning worker with an IPI (slow in a VM: the busy runtime measured
	 * ~60 us per round trip that way); the kernel raises IORING_SQ_TASKRUN
	 * in the shared ring instead and liburing's peek enters the kernel to
	 * run the pending work only then. Older kernels: plain setup.
	 */
	rc = io_uring_queue_init(RT_URING_ENTRIES, &w->ring,
				 IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
	if (rc == -EINVAL)
		rc = io_uring_queue_init(RT_URING_ENTRIES, &w->ring, 0);
	if (rc < 0)
		return rc;
	w->ring_ok = true;
	sqe = io_uring_get_sqe(&w->ring);
	io_uring_prep_read(sqe, w->wake_fd, &w->wake_buf, sizeof(w->wake_buf), 0);
	io_uring_sqe_set_data(sqe, &w->wake_op);
	w->wake_op.armed = true;
	w->pending_sqes++;
	for (uint32_t i = 0; i < w->nr_eps; i++)
		vfr_rt_endpoint_arm(w, w->eps[i]);
	if (w->rt->no_threads) {
		/* the embedder's first poll of vfurt_worker_fd must find the
		 * reads armed */
		io_uring_submit(&w->ring);
		w->pending_sqes = 0;
	}
	return 0;
}

int vfr_rt_worker_start(struct vfurt_worker *w)
{
	int rc = vfr_rt_worker_ring_init(w);

	if (rc)
		return rc;
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc)
		return -rc;
	atomic_store(&w->thread_started, true);
	return 0;
}

void vfr_rt_worker_reclaim(struct vfurt_worker *w)
{
	if (w->epoch_rec.n_pending)
		ck_epoch_reclaim(&w->epoch_rec);
}

void vfr_rt_worker_join(struct vfurt_worker *w)
{
	const uint64_t one = 1;

	if (!atomic_load(&w->thread_started))
		return;
	atomic_store_explicit(&w->stop, true, memory_order_release);
	if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		vfurt_logf(&w->log, VFURT_LOG_WARN, "cannot wake worker: %s", strerror(errno));
	pthread_join(w->thread, NULL);
	atomic_store(&w->thread_started, false);
}
