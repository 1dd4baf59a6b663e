/* Live upgrade, the runtime's part: freeze every endpoint at a safe point, save it, restore it in the next process. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vfurt/state.h>

#include "rt_internal.h"

/*
 * Freezing, per endpoint, on its home worker (docs/restart.md):
 *  1. the device: vfurt_dev_freeze until it answers 0, while the
 *     connection is still served (the replies to its DMA requests come on
 *     the socket);
 *  2. the io: nothing is re-armed (ep->frozen), the armed accept, recv,
 *     POLLOUT and watch polls are cancelled; what completes meanwhile is
 *     handled as usual (a message that arrived is answered);
 *  3. done when nothing is armed, the connection is quiet and the device
 *     still frozen (a message handled in 2 may have given it work).
 * Nothing waits on a worker: the control thread asks every millisecond.
 */

enum {
	RT_T_PATH = 1,
	RT_T_LFD = 2,
	RT_T_WORKER = 3,
	RT_S_DEV = 4,
	RT_S_CONN = 5,
};

#define FREEZE_POLL_NS 1000000ull
#define FREEZE_SLOW_NS 200000000ull /* warn: the pause is getting long */

struct ep_step {
	struct rt_endpoint *ep;
	int rc;          /* 0: this step is done for ep */
	bool stop_io;
	const char *why; /* -EBUSY: what it waits for */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* On the home worker: one step of freezing ep. */
static void freeze_step_on(void *arg)
{
	struct ep_step *x = arg;
	struct rt_endpoint *ep = x->ep;
	int rc;

	if (ep->removing || ep->remove_asked || ep->zombie) {
		x->rc = -EBUSY; /* finish the removal first */
		return;
	}
	rc = vfurt_dev_freeze(ep->dev);
	if (rc) {
		x->rc = rc;
		x->why = "work in flight";
		return;
	}
	ep->dev_frozen = true;
	if (!x->stop_io) {
		x->rc = 0;
		return;
	}
	if (!ep->frozen) {
		ep->frozen = true;
		/* a full SQ leaves some armed: cancelled again below */
		vfr_rt_ep_cancel_ops(ep->home, ep);
		if (ep->home->ring_ok)
			io_uring_submit(&ep->home->ring);
	}
	if (vfr_rt_ep_ops_armed(ep)) {
		/* cancels may not have fit: ask again (a second cancel of an op
		 * already cancelled finds nothing, harmlessly) */
		if (vfr_rt_ep_cancel_ops(ep->home, ep) && ep->home->ring_ok)
			io_uring_submit(&ep->home->ring);
		x->rc = -EBUSY;
		x->why = "io_uring requests being cancelled";
		return;
	}
	if (ep->conn && !vfurt_conn_quiet(ep->conn)) {
		x->rc = -EBUSY;
		x->why = "its connection is busy";
		return;
	}
	x->rc = 0;
}

static void thaw_on(void *arg)
{
	struct rt_endpoint *ep = arg;

	if (!ep->frozen && !ep->dev_frozen)
		return;
	ep->frozen = false;
	ep->dev_frozen = false;
	vfurt_dev_thaw(ep->dev);
	if (!ep->zombie && !ep->gone)
		vfr_rt_endpoint_arm(ep->home, ep);
}

/* Every endpoint, with a reference each; *n set. NULL with *n 0 when none
 * or out of memory (-ENOMEM in *rc). */
static struct rt_endpoint **eps_snapshot(struct vfurt_runtime *rt, uint32_t *n, int *rc)
{
	struct rt_endpoint **v;

	*rc = 0;
	pthread_mutex_lock(&rt->lock);
	*n = rt->nr_eps;
	v = calloc(*n ? *n : 1, sizeof(*v));
	if (!v) {
		*n = 0;
		*rc = -ENOMEM;
	}
	for (uint32_t i = 0; v && i < *n; i++) {
		v[i] = rt->eps[i];
		vfr_rt_ep_get(v[i]);
	}
	pthread_mutex_unlock(&rt->lock);
	return v;
}

static void eps_release(struct rt_endpoint **v, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		vfr_rt_ep_put(v[i]);
	free(v);
}

/* Run step over every endpoint until all answer 0 or the deadline. */
static int freeze_phase(struct vfurt_runtime *rt, struct rt_endpoint **v, uint32_t n,
			bool stop_io, uint64_t deadline, char *err, size_t errlen)
{
	uint64_t t0 = mono_ns();
	bool told = false;

	for (;;) {
		struct timespec pause = { .tv_nsec = (long)FREEZE_POLL_NS };
		uint32_t busy = 0;

		for (uint32_t i = 0; i < n; i++) {
			struct ep_step x = { .ep = v[i], .stop_io = stop_io };
			int rc = vfr_rt_run_on(rt, v[i]->home, freeze_step_on, &x);

			if (!rc)
				rc = x.rc;
			if (rc == -EBUSY) {
				const char *why = x.why ? x.why : "a removal or quiesce";

				busy++;
				if (mono_ns() >= deadline) {
					snprintf(err, errlen, "%s did not reach a safe point in time (%s)",
						 vfurt_dev_name(v[i]->dev), why);
					return -ETIMEDOUT;
				}
				/* the guests are paused meanwhile: say who holds it up */
				if (!told && mono_ns() - t0 > FREEZE_SLOW_NS) {
					told = true;
					vfurt_logf(&rt->log, VFURT_LOG_WARN,
						   "upgrade: %s not at a safe point after %llu ms (%s)",
						   vfurt_dev_name(v[i]->dev),
						   (unsigned long long)(FREEZE_SLOW_NS / 1000000u), why);
				}
				continue;
			}
			if (rc) {
				snprintf(err, errlen, "%s cannot be frozen: %s%s",
					 vfurt_dev_name(v[i]->dev), strerror(-rc),
					 rc == -ENOTSUP ? " (its model has no save/restore)" : "");
				return rc;
			}
		}
		if (!busy)
			return 0;
		nanosleep(&pause, NULL);
	}
}

int vfurt_runtime_freeze(struct vfurt_runtime *rt, uint32_t timeout_ms, char *err, size_t errlen)
{
	char scratch[8];
	struct rt_endpoint **v;
	uint64_t deadline;
	uint32_t n;
	int rc;

	if (!err || !errlen) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	err[0] = '\0';
	if (!rt)
		return -EINVAL;
	if (!rt->started || rt->stopped) {
		snprintf(err, errlen, "the runtime is not serving");
		return -ESHUTDOWN;
	}
	deadline = mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	v = eps_snapshot(rt, &n, &rc);
	if (!v)
		return rc;
	rc = freeze_phase(rt, v, n, false, deadline, err, errlen);
	if (!rc)
		rc = freeze_phase(rt, v, n, true, deadline, err, errlen);
	eps_release(v, n);
	if (rc)
		vfurt_runtime_thaw(rt);
	return rc;
}

struct thaw_call {
	struct rt_endpoint *ep;
	_Atomic uint32_t *left;
};

static void thaw_msg(void *arg)
{
	struct thaw_call *x = arg;

	thaw_on(x->ep);
	atomic_fetch_sub_explicit(x->left, 1, memory_order_release);
}

void vfurt_runtime_thaw(struct vfurt_runtime *rt)
{
	struct thaw_call *calls;
	struct rt_endpoint **v;
	_Atomic uint32_t left;
	uint32_t n;
	int rc;

	if (!rt)
		return;
	v = eps_snapshot(rt, &n, &rc);
	if (!v)
		return;
	/* every worker thaws its devices at once (a device's thaw may wait
	 * for another worker: its queues are polled there); one at a time
	 * when the calls cannot be queued */
	calls = calloc(n ? n : 1, sizeof(*calls));
	atomic_init(&left, 0);
	for (uint32_t i = 0; i < n; i++) {
		if (calls && rt->started && !rt->stopped) {
			calls[i] = (struct thaw_call){ .ep = v[i], .left = &left };
			atomic_fetch_add(&left, 1);
			if (vfurt_worker_send(v[i]->home, thaw_msg, &calls[i]) == 0)
				continue;
			atomic_fetch_sub(&left, 1);
		}
		vfr_rt_run_on(rt, v[i]->home, thaw_on, v[i]);
	}
	while (atomic_load_explicit(&left, memory_order_acquire)) {
		struct timespec pause = { .tv_nsec = 50000 };

		nanosleep(&pause, NULL);
	}
	free(calls);
	eps_release(v, n);
}

struct save_call {
	struct rt_endpoint *ep;
	struct vfurt_state *s;
	int rc;
};

static void save_on(void *arg)
{
	struct save_call *x = arg;
	struct rt_endpoint *ep = x->ep;
	struct vfurt_state *s = x->s;
	int rc;

	if (!ep->frozen || !ep->dev_frozen || vfr_rt_ep_ops_armed(ep)) {
		x->rc = -EBUSY;
		return;
	}
	rc = vfurt_state_put_str(s, RT_T_PATH, ep->path);
	if (!rc)
		rc = vfurt_state_put_fd(s, RT_T_LFD, ep->lfd);
	if (!rc)
		rc = vfurt_state_put_u32(s, RT_T_WORKER, ep->home->id);
	if (!rc)
		rc = vfurt_state_open(s, RT_S_DEV);
	if (!rc)
		rc = vfurt_dev_save(ep->dev, s);
	if (!rc)
		rc = vfurt_state_close(s);
	if (!rc && ep->conn) {
		rc = vfurt_state_open(s, RT_S_CONN);
		if (!rc)
			rc = vfurt_conn_save(ep->conn, s);
		if (!rc)
			rc = vfurt_state_close(s);
	}
	x->rc = rc;
}

int vfurt_runtime_save_device(struct vfurt_runtime *rt, struct vfurt_dev *dev,
			      struct vfurt_state *s)
{
	struct save_call x = { .s = s };
	int rc;

	if (!rt || !dev || !s)
		return -EINVAL;
	pthread_mutex_lock(&rt->lock);
	x.ep = vfr_rt_ep_of(rt, dev);
	if (x.ep)
		vfr_rt_ep_get(x.ep);
	pthread_mutex_unlock(&rt->lock);
	if (!x.ep)
		return -ENOENT;
	rc = vfr_rt_run_on(rt, x.ep->home, save_on, &x);
	vfr_rt_ep_put(x.ep);
	return rc ? rc : x.rc;
}

struct restore_call {
	struct rt_endpoint *ep;
	const struct vfurt_state_cur *c;
	int rc;
};

/* Before start (the caller's thread) or on the home worker. */
static void restore_on(void *arg)
{
	struct restore_call *x = arg;
	struct rt_endpoint *ep = x->ep;
	struct vfurt_state_cur sub;
	int rc;

	rc = vfurt_state_sub(x->c, RT_S_DEV, &sub);
	if (!rc)
		rc = vfurt_dev_restore(ep->dev, &sub);
	if (rc) {
		x->rc = rc;
		return;
	}
	rc = vfurt_state_sub(x->c, RT_S_CONN, &sub);
	if (rc == 0) {
		ep->conn = vfurt_conn_restore(ep->dev, &ep->rt->conn_opts, &sub);
		if (!ep->conn) {
			x->rc = -errno;
			return;
		}
		atomic_store(&ep->connected, true);
		ep->watch_gen = vfurt_dev_watch_gen(ep->dev) - 1; /* take the new set */
	} else if (rc != -ENOENT) {
		x->rc = rc;
		return;
	}
	x->rc = 0;
}

int vfurt_runtime_restore_device(struct vfurt_runtime *rt, struct vfurt_dev *dev,
				 const struct vfurt_state_cur *c, char *err, size_t errlen)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct restore_call x = { .c = c };
	char scratch[8];
	uint32_t worker;
	int lfd, rc;

	if (!err || !errlen) {
		err = scratch;
		errlen = sizeof(scratch);
	}
	err[0] = '\0';
	if (!rt || !dev || !c)
		return -EINVAL;
	if (rt->started) {
		snprintf(err, errlen, "devices are restored before the runtime starts");
		return -EBUSY;
	}
	rc = vfurt_state_get_str(c, RT_T_PATH, path, sizeof(path));
	if (!rc)
		rc = vfurt_state_get_u32(c, RT_T_WORKER, &worker);
	if (rc) {
		snprintf(err, errlen, "%s: no socket path or worker in the image",
			 vfurt_dev_name(dev));
		return -EBADMSG;
	}
	if (worker >= rt->nr_workers)
		worker = worker % rt->nr_workers; /* fewer workers now: spread again */
	lfd = vfurt_state_take_fd(c, RT_T_LFD);
	if (lfd < 0) {
		snprintf(err, errlen, "%s: no listening socket in the image", vfurt_dev_name(dev));
		return -EBADMSG;
	}
	rc = vfr_rt_add_endpoint(rt, dev, path, 0, (int)worker, lfd);
	if (rc) {
		close(lfd);
		snprintf(err, errlen, "%s: %s", vfurt_dev_name(dev), strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&rt->lock);
	x.ep = vfr_rt_ep_of(rt, dev);
	pthread_mutex_unlock(&rt->lock);
	restore_on(&x); /* not started: no worker runs */
	if (x.rc) {
		snprintf(err, errlen, "%s: the image does not fit this device: %s",
			 vfurt_dev_name(dev), strerror(-x.rc));
		return x.rc;
	}
	/* frozen until vfurt_runtime_thaw: the workers may start meanwhile
	 * (the new process starts them before it says "restored", so that
	 * the pause does not include creating and pinning them) */
	x.ep->frozen = true;
	x.ep->dev_frozen = true;
	return 0;
}
