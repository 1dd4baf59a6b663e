/* The runtime object: workers on a core list, devices on sockets, hosting hooks, stats. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include <vfurt/abi.h>
#include <vfurt/server.h>

#include "io/fault.h" /* an io/ internal runtime/ may use (CMakeLists.txt) */
#include "cpuset.h"
#include "rt_internal.h"
#include "tsan.h"

#define DEFAULT_SPIN_US 100u
#define DEFAULT_POLL_SLEEP_US 1000u
#define DEFAULT_SLEEP_MAX_US 100000u

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

struct vfurt_runtime *vfurt_runtime_create(const struct vfurt_runtime_opts *opts, char *err,
					   size_t errlen)
{
	struct vfurt_runtime_opts o = { 0 };
	int cpus[VFURT_MAX_CPUS];
	struct vfurt_runtime *rt;
	char why[256] = "";
	size_t n = 0;
	int rc;

	if (vfurt_abi_copy_in(&o, sizeof(o), opts,
			      VFURT_ABI_SIZE(struct vfurt_runtime_opts, clock_arg))) {
		set_err(err, errlen, "missing options or bad opts_size");
		errno = EINVAL;
		return NULL;
	}
	if (o.poll_mode != VFURT_POLL_BUSY && o.poll_mode != VFURT_POLL_ADAPTIVE) {
		set_err(err, errlen, "unknown poll mode");
		errno = EINVAL;
		return NULL;
	}
	rc = vfurt_cpulist_parse(o.cores ? o.cores : "0", cpus, VFURT_MAX_CPUS, &n, why,
				 sizeof(why));
	if (!rc && !o.no_threads)
		rc = vfurt_cpulist_validate(cpus, n, why, sizeof(why));
	if (rc) {
		set_err(err, errlen, why);
		errno = -rc;
		return NULL;
	}

	rt = calloc(1, sizeof(*rt));
	if (!rt)
		goto err_nomem;
	/* the process's SIGBUS guard lives while a runtime does (io/fault.c) */
	rc = vfurt_fault_guard_acquire();
	if (rc) {
		free(rt);
		set_err(err, errlen, "cannot install the SIGBUS handler");
		errno = -rc;
		return NULL;
	}
	rt->dma_quota = o.dma_quota;
	if (!rt->dma_quota) {
		rt->dma_quota = vfurt_dma_quota_create(o.conn.dma_maps_process_max,
						       o.conn.dma_maps_min_per_client);
		if (!rt->dma_quota)
			goto err_release_guard;
		rt->own_quota = true;
	}
	rt->log = o.log;
	rt->conn_opts = o.conn;
	if (!rt->conn_opts.opts_size)
		rt->conn_opts.opts_size = sizeof(rt->conn_opts);
	rt->mode = o.poll_mode;
	rt->spin_ns = (o.adaptive_spin_us ? o.adaptive_spin_us : DEFAULT_SPIN_US) * 1000ull;
	rt->sleep_max_ns = (o.adaptive_sleep_max_us ? o.adaptive_sleep_max_us
						    : DEFAULT_SLEEP_MAX_US) * 1000ull;
	rt->poll_sleep_ns = (o.adaptive_poll_sleep_us ? o.adaptive_poll_sleep_us
						      : DEFAULT_POLL_SLEEP_US) * 1000ull;
	rt->irq_unbatched = o.irq_unbatched;
	rt->no_threads = o.no_threads;
	rt->clock = o.clock;
	rt->clock_arg = o.clock_arg;
	ck_epoch_init(&rt->epoch);
	rt->workers = calloc(n, sizeof(*rt->workers));
	if (!rt->workers)
		goto err_free_quota;
	for (uint32_t i = 0; i < n; i++) {
		if (rt_worker_init(rt, &rt->workers[i], i, cpus[i])) {
			while (i-- > 0)
				rt_worker_fini(&rt->workers[i]);
			goto err_free_workers;
		}
	}
	rt->nr_workers = (uint32_t)n;
	return rt;

err_free_workers:
	free(rt->workers);
err_free_quota:
	if (rt->own_quota)
		vfurt_dma_quota_destroy(rt->dma_quota);
err_release_guard:
	vfurt_fault_guard_release();
	free(rt);
err_nomem:
	set_err(err, errlen, "out of memory");
	errno = ENOMEM;
	return NULL;
}

uint32_t vfurt_runtime_worker_count(const struct vfurt_runtime *rt)
{
	return rt->nr_workers;
}

struct vfurt_worker *vfurt_runtime_worker(const struct vfurt_runtime *rt, uint32_t i)
{
	return i < rt->nr_workers ? &rt->workers[i] : NULL;
}

int vfurt_runtime_add_device(struct vfurt_runtime *rt, struct vfurt_dev *dev, const char *path,
			     mode_t mode, int worker)
{
	struct rt_endpoint *ep;
	struct vfurt_worker *home;
	int rc;

	if (!rt || !dev || rt->started || rt->no_threads)
		return -EINVAL;
	if (worker >= (int)rt->nr_workers)
		return -EINVAL;
	home = &rt->workers[worker >= 0 ? (uint32_t)worker : rt->next_home++ % rt->nr_workers];
	if (rt->nr_eps == rt->cap_eps) {
		uint32_t ncap = rt->cap_eps ? rt->cap_eps * 2 : 8;
		struct rt_endpoint **n = realloc(rt->eps, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		rt->eps = n;
		rt->cap_eps = ncap;
	}
	{
		struct rt_endpoint **n = realloc(home->eps, (home->nr_eps + 1) * sizeof(*n));

		if (!n)
			return -ENOMEM;
		home->eps = n;
	}
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->rt = rt;
	ep->home = home;
	ep->dev = dev;
	ep->lfd = -1;
	rc = vfurt_listen_unix(path, mode);
	if (rc < 0)
		goto err_free;
	ep->lfd = rc;
	snprintf(ep->path, sizeof(ep->path), "%s", path);
	rc = vfurt_dev_set_host(dev, &rt_host_ops, rt);
	if (rc)
		goto err_close;
	{
		struct vfurt_dma_quota_stats qs = { .stats_size = sizeof(qs) };
		uint32_t got = vfurt_dev_set_dma_quota(dev, rt->dma_quota);

		vfurt_dma_quota_get_stats(rt->dma_quota, &qs);
		if (got < qs.min_per_client)
			vfurt_logf(&rt->log, VFURT_LOG_WARN,
				   "%s: only %u of dma_maps_min_per_client %u fd-backed DMA windows "
				   "reserved (dma_maps_process_max %u for %u devices)",
				   vfurt_dev_name(dev), got, qs.min_per_client, qs.limit,
				   qs.devices);
	}
	/* a device logging to the runtime's stderr sink: tag its lines with the
	 * worker that serves it */
	if (vfurt_dev_log(dev)->fn == vfurt_log_stderr && home->log.fn == vfurt_log_stderr) {
		struct vfurt_log l = *vfurt_dev_log(dev);

		l.arg = home->log.arg;
		vfurt_dev_set_log(dev, &l);
	}
	ep->accept_op = (struct rt_op){ .kind = RT_OP_ACCEPT, .ep = ep };
	ep->recv_op = (struct rt_op){ .kind = RT_OP_RECV, .ep = ep };
	ep->send_op = (struct rt_op){ .kind = RT_OP_SEND, .ep = ep };
	ep->watch_gen = vfurt_dev_watch_gen(dev);
	ep->nr_watches = (uint32_t)vfurt_dev_watches(dev, ep->watches, RT_MAX_WATCHES);
	for (uint32_t i = 0; i < RT_MAX_WATCHES; i++)
		ep->watch_ops[i] = (struct rt_op){ .kind = RT_OP_WATCH, .ep = ep, .watch = i };
	rt->eps[rt->nr_eps++] = ep;
	home->eps[home->nr_eps++] = ep;
	vfurt_logf(&home->log, VFURT_LOG_INFO, "%s: listening on %s", vfurt_dev_name(dev), path);
	return 0;

err_close:
	close(ep->lfd);
	unlink(path);
err_free:
	free(ep);
	return rc;
}

/*
 * Process-wide fds: every client may hold up to max_irq_fds eventfds plus a
 * few of its own (sockets, twin, region fds); with the soft RLIMIT_NOFILE
 * raised to the hard one, check that all devices' clients fit at once, so
 * that one client's fds can never starve another's accept or SET_IRQS.
 */
static void check_fd_budget(struct vfurt_runtime *rt)
{
	uint64_t per = (rt->conn_opts.max_irq_fds ? rt->conn_opts.max_irq_fds : 1024) + 16;
	uint64_t need = rt->nr_eps * per + 256;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < need) {
		struct rlimit up = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };

		if (up.rlim_cur != RLIM_INFINITY && up.rlim_cur > need * 4)
			up.rlim_cur = need * 4;
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		vfurt_logf(&rt->log, VFURT_LOG_WARN,
			   "%u devices may hold %llu fds (max_irq_fds %llu each), but RLIMIT_NOFILE "
			   "is %llu: raise it or lower max_irq_fds, or one client can exhaust "
			   "the others' fds",
			   rt->nr_eps, (unsigned long long)need, (unsigned long long)(per - 16),
			   (unsigned long long)rl.rlim_cur);
}

int vfurt_runtime_start(struct vfurt_runtime *rt)
{
	int rc;

	if (!rt || rt->started || rt->no_threads)
		return -EINVAL;
	rt->started = true;
	check_fd_budget(rt);
	for (uint32_t i = 0; i < rt->nr_workers; i++) {
		rc = rt_worker_start(&rt->workers[i]);
		if (rc) {
			vfurt_logf(&rt->log, VFURT_LOG_ERR, "cannot start worker %u: %s", i,
				   strerror(-rc));
			vfurt_runtime_stop(rt);
			return rc;
		}
	}
	return 0;
}

static int run_on(struct vfurt_runtime *rt, struct vfurt_worker *w, void (*fn)(void *),
		  void *arg);

/* On worker w: refuse new clients and close every connection it homes, as a
 * client disconnect would (the message in progress has been answered: a
 * worker runs this between messages). */
static void shutdown_endpoints(void *arg)
{
	struct vfurt_worker *w = arg;

	for (uint32_t i = 0; i < w->nr_eps; i++) {
		w->eps[i]->closing = true;
		rt_endpoint_drop(w->eps[i], 0);
	}
}

void vfurt_runtime_stop(struct vfurt_runtime *rt)
{
	if (!rt || !rt->started || rt->stopped)
		return;
	/* phase 1, all workers running: close connections on their home
	 * workers (a detach may remove queues polled by other workers) */
	for (uint32_t i = 0; i < rt->nr_workers; i++)
		if (atomic_load(&rt->workers[i].thread_started))
			run_on(rt, &rt->workers[i], shutdown_endpoints, &rt->workers[i]);
	/* phase 2: stop and join the threads */
	for (uint32_t i = 0; i < rt->nr_workers; i++)
		rt_worker_join(&rt->workers[i]);
	rt->stopped = true;
	/* no reader is left: free the table versions still deferred */
	for (uint32_t i = 0; i < rt->nr_workers; i++)
		rt_worker_reclaim(&rt->workers[i]);
	for (uint32_t i = 0; i < rt->nr_eps; i++) {
		struct rt_endpoint *ep = rt->eps[i];

		rt_endpoint_drop(ep, 0); /* threads are gone: safe here */
		if (ep->lfd >= 0) {
			close(ep->lfd);
			unlink(ep->path);
			ep->lfd = -1;
		}
	}
}

void vfurt_runtime_destroy(struct vfurt_runtime *rt)
{
	if (!rt)
		return;
	vfurt_runtime_stop(rt);
	for (uint32_t i = 0; i < rt->nr_eps; i++) {
		struct rt_endpoint *ep = rt->eps[i];

		if (ep->lfd >= 0) {
			close(ep->lfd);
			unlink(ep->path);
		}
		/* the device's destroy removes its queues: do it while the
		 * worker poller sets still exist */
		vfurt_dev_destroy(ep->dev);
		free(ep);
	}
	for (uint32_t i = 0; i < rt->nr_workers; i++)
		rt_worker_fini(&rt->workers[i]);
	free(rt->workers);
	free(rt->eps);
	if (rt->own_quota)
		vfurt_dma_quota_destroy(rt->dma_quota); /* its devices left it */
	vfurt_fault_guard_release();
	free(rt);
}

/* ---- endpoint events (home worker) ------------------------------------- */

static void arm_recv(struct vfurt_worker *w, struct rt_endpoint *ep)
{
	struct io_uring_sqe *sqe;
	bool want_fds;

	if (!ep->conn || ep->recv_op.armed || vfurt_conn_paused(ep->conn))
		return;
	sqe = io_uring_get_sqe(&w->ring);
	if (!sqe)
		return; /* retried on the next pass */
	vfurt_conn_rx_iov(ep->conn, &ep->iov, &want_fds);
	memset(&ep->msg, 0, sizeof(ep->msg));
	ep->msg.msg_iov = &ep->iov;
	ep->msg.msg_iovlen = 1;
	if (want_fds) {
		ep->msg.msg_control = ep->cmsg.buf;
		ep->msg.msg_controllen = sizeof(ep->cmsg.buf);
	}
	io_uring_prep_recvmsg(sqe, vfurt_conn_fd(ep->conn), &ep->msg, MSG_CMSG_CLOEXEC);
	io_uring_sqe_set_data(sqe, &ep->recv_op);
	ep->recv_op.armed = true;
	w->pending_sqes++;
}

/* Replies the client's socket did not take wait in the connection's queue:
 * poll for room. */
static void arm_send(struct vfurt_worker *w, struct rt_endpoint *ep)
{
	struct io_uring_sqe *sqe;

	if (!ep->conn || ep->send_op.armed || !vfurt_conn_want_write(ep->conn))
		return;
	sqe = io_uring_get_sqe(&w->ring);
	if (!sqe)
		return; /* retried at the next event or tick */
	io_uring_prep_poll_add(sqe, vfurt_conn_fd(ep->conn), POLLOUT);
	io_uring_sqe_set_data(sqe, &ep->send_op);
	ep->send_op.armed = true;
	w->pending_sqes++;
}

static void arm_accept(struct vfurt_worker *w, struct rt_endpoint *ep)
{
	struct io_uring_sqe *sqe;

	if (ep->accept_op.armed || ep->lfd < 0 || ep->closing || ep->accept_backoff ||
	    atomic_load(&w->stop))
		return;
	sqe = io_uring_get_sqe(&w->ring);
	if (!sqe)
		return;
	io_uring_prep_accept(sqe, ep->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, &ep->accept_op);
	ep->accept_op.armed = true;
	w->pending_sqes++;
}

static void arm_watch(struct vfurt_worker *w, struct rt_endpoint *ep, uint32_t i)
{
	struct io_uring_sqe *sqe;

	if (ep->watch_ops[i].armed || atomic_load(&w->stop))
		return;
	sqe = io_uring_get_sqe(&w->ring);
	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, ep->watches[i].fd, POLLIN);
	io_uring_sqe_set_data(sqe, &ep->watch_ops[i]);
	ep->watch_ops[i].armed = true;
	w->pending_sqes++;
}

/*
 * The device's watch set changed (the client installed or dropped its INTx
 * unmask eventfd): cancel the polls of the old set and take the new one.
 * A cancelled poll still completes once, marked stale, and its slot is
 * rearmed with the new fd after that.
 */
static void refresh_watches(struct vfurt_worker *w, struct rt_endpoint *ep)
{
	uint32_t gen = vfurt_dev_watch_gen(ep->dev);

	if (gen == ep->watch_gen)
		return;
	ep->watch_gen = gen;
	for (uint32_t i = 0; i < ep->nr_watches; i++) {
		struct rt_op *op = &ep->watch_ops[i];
		struct io_uring_sqe *sqe;

		if (!op->armed || op->stale)
			continue;
		sqe = io_uring_get_sqe(&w->ring);
		if (!sqe && io_uring_submit(&w->ring) >= 0) {
			w->pending_sqes = 0;
			sqe = io_uring_get_sqe(&w->ring);
		}
		if (!sqe)
			continue; /* still armed on the old fd: rearmed when it fires */
		io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)op);
		io_uring_sqe_set_data(sqe, NULL);
		w->pending_sqes++;
		op->stale = true;
	}
	ep->nr_watches = (uint32_t)vfurt_dev_watches(ep->dev, ep->watches, RT_MAX_WATCHES);
}

void rt_endpoint_arm(struct vfurt_worker *w, struct rt_endpoint *ep)
{
	if (!w->ring_ok)
		return;
	refresh_watches(w, ep);
	arm_accept(w, ep);
	arm_recv(w, ep);
	arm_send(w, ep);
	for (uint32_t i = 0; i < ep->nr_watches; i++)
		arm_watch(w, ep, i);
}

static void publish_ep_stats(struct rt_endpoint *ep)
{
	struct vfurt_conn_stats st = { .stats_size = sizeof(st) };

	if (ep->conn)
		vfurt_conn_get_stats(ep->conn, &st);
	atomic_store_explicit(&ep->msgs, ep->msgs_done + st.msgs, memory_order_relaxed);
	atomic_store_explicit(&ep->errors, ep->errors_done + st.errors, memory_order_relaxed);
}

/* Close the fds a discarded recvmsg completion received. */
static void close_cmsg_fds(struct msghdr *msg)
{
	if (!msg->msg_control)
		return;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			close(fd);
		}
	}
}

void rt_endpoint_drop(struct rt_endpoint *ep, int why)
{
	struct vfurt_conn_stats st = { .stats_size = sizeof(st) };
	struct vfurt_conn *conn = ep->conn;

	if (!conn)
		return;
	if (ep->recv_op.armed && ep->home->ring_ok && !ep->rt->stopped) {
		/* the in-flight recvmsg points into the connection: cancel it and
		 * wait for its completion before freeing */
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ep->home->ring);

		if (sqe) {
			io_uring_prep_cancel(sqe, &ep->recv_op, 0);
			io_uring_sqe_set_data(sqe, NULL);
			io_uring_submit(&ep->home->ring);
		}
		while (ep->recv_op.armed) {
			struct io_uring_cqe *cqe;
			struct rt_op *op;

			if (io_uring_wait_cqe(&ep->home->ring, &cqe))
				break;
			op = io_uring_cqe_get_data(cqe);
			if (op == &ep->recv_op) {
				/* it may have completed with data before the cancel */
				ep->recv_op.armed = false;
				if (cqe->res > 0)
					close_cmsg_fds(&ep->msg);
			}
			else if (op) {
				/* shutting down: do not process, but do not leak */
				op->armed = false;
				if (op->kind == RT_OP_ACCEPT && cqe->res >= 0)
					close(cqe->res);
				if (op->kind == RT_OP_RECV && cqe->res > 0)
					close_cmsg_fds(&op->ep->msg);
			}
			io_uring_cqe_seen(&ep->home->ring, cqe);
		}
	}
	ep->recv_op.armed = false;
	/* a POLLOUT on the old socket: its completion (cancelled) only clears
	 * armed; the poll holds the file, so it must not wait for ever */
	if (ep->send_op.armed && ep->home->ring_ok && !ep->rt->stopped) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ep->home->ring);

		if (sqe) {
			io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)&ep->send_op);
			io_uring_sqe_set_data(sqe, NULL);
			ep->home->pending_sqes++;
		}
	}
	vfurt_conn_get_stats(conn, &st);
	ep->msgs_done += st.msgs;
	ep->errors_done += st.errors;
	if (why && why != -ECONNRESET)
		vfurt_logf(&ep->home->log, VFURT_LOG_WARN, "%s: closing connection: %s",
			   vfurt_dev_name(ep->dev), strerror(-why));
	/* the device's detach may run other workers' messages on this thread
	 * (run_on), which may drop this endpoint again: detach it first */
	ep->conn = NULL;
	vfurt_conn_destroy(conn);
	atomic_store(&ep->connected, false);
	publish_ep_stats(ep);
}

static void on_accept(struct vfurt_worker *w, struct rt_endpoint *ep, int fd)
{
	if (fd < 0) {
		/* out of fds: an accept re-armed at once would fail again at
		 * once; wait for the next tick, and log once per tick */
		if (fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM || fd == -ENOBUFS)
			ep->accept_backoff = true;
		if (fd != -ECANCELED)
			vfurt_logf(&w->log, VFURT_LOG_WARN, "%s: accept: %s",
				   vfurt_dev_name(ep->dev), strerror(-fd));
		return;
	}
	if (ep->closing) {
		close(fd);
		return;
	}
	if (ep->conn) {
		uint64_t more;
		char extra[64] = "";

		if (log_ratelimit_take_now(&ep->refuse_rl, &more)) {
			if (more)
				snprintf(extra, sizeof(extra), " (and %llu more since the last such "
					 "line)", (unsigned long long)more);
			vfurt_logf(&w->log, VFURT_LOG_WARN,
				   "%s: refusing a second client while one is connected%s",
				   vfurt_dev_name(ep->dev), extra);
		}
		close(fd);
		return;
	}
	ep->conn = vfurt_conn_create(ep->dev, fd, &ep->rt->conn_opts);
	if (!ep->conn) {
		vfurt_logf(&w->log, VFURT_LOG_ERR, "%s: cannot create connection: %s",
			   vfurt_dev_name(ep->dev), strerror(errno));
		close(fd);
		return;
	}
	atomic_store(&ep->connected, true);
}

/* Feed a recvmsg completion, then keep reading with plain non-blocking
 * recvmsg while data is already queued (pipelined messages cost no io_uring
 * round trip); io_uring is re-armed only to wait. */
static void on_recv(struct vfurt_worker *w, struct rt_endpoint *ep, int res)
{
	struct msghdr *msg = &ep->msg;

	for (int budget = 64;; budget--) {
		int fds[RT_CMSG_FDS];
		size_t nfds = 0;
		bool want_fds;
		int rc;

		if (res <= 0) {
			rt_endpoint_drop(ep, res == 0 ? -ECONNRESET : res);
			return;
		}
		if (msg->msg_control) {
			for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
				size_t k;

				if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
					continue;
				k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				for (size_t i = 0; i < k && nfds < RT_CMSG_FDS; i++)
					memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int),
					       sizeof(int));
			}
		}
		rc = vfurt_conn_rx_feed(ep->conn, (size_t)res, fds, nfds);
		if (rc) {
			rt_endpoint_drop(ep, rc);
			return;
		}
		/* fairness: after a budget of reads, let the other endpoints in;
		 * the io_uring recv armed below picks up the rest */
		if (vfurt_conn_paused(ep->conn) || budget == 0)
			return;
		vfurt_conn_rx_iov(ep->conn, &ep->iov, &want_fds);
		memset(msg, 0, sizeof(*msg));
		msg->msg_iov = &ep->iov;
		msg->msg_iovlen = 1;
		if (want_fds) {
			msg->msg_control = ep->cmsg.buf;
			msg->msg_controllen = sizeof(ep->cmsg.buf);
		}
		res = (int)recvmsg(vfurt_conn_fd(ep->conn), msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (res < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			res = -errno;
		}
	}
	(void)w;
}

bool rt_worker_tick(struct vfurt_worker *w, uint64_t now_ns)
{
	bool clients = false;

	if (now_ns - w->last_tick_ns < RT_TICK_NS)
		return true; /* not yet: assume clients, sleep no longer than a tick */
	w->last_tick_ns = now_ns;
	for (uint32_t i = 0; i < w->nr_eps; i++) {
		struct rt_endpoint *ep = w->eps[i];
		int rc;

		if (ep->accept_backoff) {
			ep->accept_backoff = false;
			clients = true; /* tick again soon if it fails again */
			rt_endpoint_arm(w, ep);
		}
		if (!ep->conn)
			continue;
		rc = vfurt_conn_tick(ep->conn, now_ns / 1000000u);
		if (rc)
			rt_endpoint_drop(ep, rc);
		else
			clients = true;
		/* also takes up reading where a quiesce completed */
		rt_endpoint_arm(w, ep);
	}
	return clients;
}

/* On the home worker: a window of the client lost its backing (io/fault.c).
 * The device failed what hit it; the client goes, the others stay. */
static void drop_if_lost(struct rt_endpoint *ep)
{
	uint64_t iova = 0;

	if (!ep->conn || !vfurt_dev_dma_lost(ep->dev, &iova))
		return;
	vfurt_logf(vfurt_dev_log(ep->dev), VFURT_LOG_ERR,
		   "%s: client's DMA window iova 0x%llx lost its backing (file truncated?): "
		   "disconnecting", vfurt_dev_name(ep->dev), (unsigned long long)iova);
	rt_endpoint_drop(ep, 0);
}

static void drop_lost_msg(void *arg)
{
	struct rt_endpoint *ep = arg;

	drop_if_lost(ep);
	publish_ep_stats(ep);
	rt_endpoint_arm(ep->home, ep);
}

/* From a queue poller (any worker): the disconnect must wait until the
 * poller has returned, and happen on the home worker. */
static void lost_notify(struct vfurt_runtime *rt, struct vfurt_dev *dev)
{
	if (!vfurt_dev_dma_loss_claim(dev))
		return;
	for (uint32_t i = 0; i < rt->nr_eps; i++) {
		struct rt_endpoint *ep = rt->eps[i];

		/* a full inbox: the next event on the endpoint drops it instead */
		if (ep->dev == dev && vfurt_worker_send(ep->home, drop_lost_msg, ep))
			vfurt_logf(&rt->log, VFURT_LOG_WARN, "%s: disconnect deferred",
				   vfurt_dev_name(dev));
	}
}

void rt_endpoint_event(struct vfurt_worker *w, struct rt_op *op, int res)
{
	struct rt_endpoint *ep = op->ep;

	switch (op->kind) {
	case RT_OP_ACCEPT:
		on_accept(w, ep, res);
		break;
	case RT_OP_RECV:
		if (ep->conn)
			on_recv(w, ep, res);
		break;
	case RT_OP_SEND:
		if (ep->conn && res != -ECANCELED) {
			int rc = vfurt_conn_on_writable(ep->conn);

			if (rc)
				rt_endpoint_drop(ep, rc);
		}
		break;
	case RT_OP_WATCH:
		if (op->stale)
			op->stale = false; /* the cancelled poll of an old fd */
		else if (res > 0 && op->watch < ep->nr_watches)
			ep->watches[op->watch].ready(ep->dev, ep->watches[op->watch].ctx);
		break;
	default:
		break;
	}
	drop_if_lost(ep);
	publish_ep_stats(ep);
	rt_endpoint_arm(w, ep);
}

/* ---- hosting hooks ----------------------------------------------------- */

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
	if (!rt_worker_poll_inbox(sync_call_run_nestable))
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
static int run_on(struct vfurt_runtime *rt, struct vfurt_worker *w, void (*fn)(void *),
		  void *arg)
{
	return run_on_flags(rt, w, fn, arg, false);
}

struct queue_call {
	struct vfurt_worker *w;
	struct vfurt_queue *q;
	int rc;
};

static int queue_poller(void *arg)
{
	struct vfurt_queue *q = arg;
	struct vfurt_dev *dev = vfurt_queue_dev(q);
	int rc = vfurt_queue_poll(q);

	/* one relaxed-cost load per pass; the rest only after a fault */
	if (vfurt_dev_dma_lost(dev, NULL))
		lost_notify(vfurt_worker_self()->rt, dev);
	return rc;
}

static int queue_arm(void *arg, bool arm)
{
	return vfurt_queue_arm(arg, arm);
}

static void queue_register_on(void *arg)
{
	struct queue_call *c = arg;
	struct vfurt_poller *p = vfurt_poller_register(c->w, queue_poller, c->q, 0);

	if (p)
		vfurt_poller_set_arm(p, queue_arm);
	vfurt_queue_set_host_data(c->q, p);
	c->rc = p ? 0 : -ENOMEM;
}

static void queue_unregister_on(void *arg)
{
	struct queue_call *c = arg;
	struct vfurt_poller *p = vfurt_queue_host_data(c->q);

	vfurt_poller_unregister(&p);
	vfurt_queue_set_host_data(c->q, NULL);
}

/* Where q is polled: its hint resolved as runtime.h says ("queue placement").
 * Any thread: the endpoint list does not change once the runtime started. */
static struct vfurt_worker *queue_worker(struct vfurt_runtime *rt, struct vfurt_queue *q)
{
	int hint = vfurt_queue_hint(q);
	uint32_t i = hint >= 0 ? (uint32_t)hint : vfurt_queue_index(q);

	if (hint == VFURT_QUEUE_HOME)
		for (uint32_t k = 0; k < rt->nr_eps; k++)
			if (rt->eps[k]->dev == vfurt_queue_dev(q))
				return rt->eps[k]->home;
	return &rt->workers[i % rt->nr_workers];
}

static int host_queue_start(void *host, struct vfurt_dev *dev, struct vfurt_queue *q, int hint)
{
	struct vfurt_runtime *rt = host;
	struct queue_call c = { .w = queue_worker(rt, q), .q = q };
	int rc = run_on_flags(rt, c.w, queue_register_on, &c, true);

	return rc ? rc : c.rc;
}

static void host_queue_stop(void *host, struct vfurt_dev *dev, struct vfurt_queue *q)
{
	struct vfurt_runtime *rt = host;
	struct queue_call c = { .w = queue_worker(rt, q), .q = q };

	run_on_flags(rt, c.w, queue_unregister_on, &c, true);
}

static void host_queue_kick(void *host, struct vfurt_dev *dev, struct vfurt_queue *q)
{
	(void)dev;
	vfurt_worker_wake(queue_worker(host, q));
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
	struct vfurt_runtime *rt = host;

	/* our own batch may hold an eventfd that is about to be closed */
	rt_irq_batch_flush();
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
	struct vfurt_runtime *rt = host;
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

	if (rt_irq_batch_add(fd))
		return 0;
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

const struct vfurt_dev_host_ops rt_host_ops = {
	.ops_size = sizeof(struct vfurt_dev_host_ops),
	.queue_start = host_queue_start,
	.queue_stop = host_queue_stop,
	.dma_sync = host_dma_sync,
	.irq_signal = host_irq_signal,
	.queue_kick = host_queue_kick,
	.dma_retire = host_dma_retire,
};

/* ---- statistics -------------------------------------------------------- */

const char *vfurt_runtime_worker_where(const struct vfurt_runtime *rt, uint32_t i)
{
	const char *what;

	if (!rt || i >= rt->nr_workers)
		return NULL;
	if (!atomic_load(&rt->workers[i].thread_started))
		return "not running";
	what = atomic_load_explicit(&rt->workers[i].where, memory_order_relaxed);
	return what ? what : "starting";
}

int vfurt_runtime_get_worker_stats(const struct vfurt_runtime *rt, uint32_t i,
				   struct vfurt_worker_stats *out)
{
	struct vfurt_worker_stats s = { .stats_size = sizeof(s) };
	struct vfurt_worker_stats *st = &s;
	const struct vfurt_worker *w;

	if (!rt || i >= rt->nr_workers)
		return -EINVAL;
	w = &rt->workers[i];
	st->passes = atomic_load_explicit(&w->st.passes, memory_order_relaxed);
	st->busy_passes = atomic_load_explicit(&w->st.busy_passes, memory_order_relaxed);
	st->msgs = 0;
	for (uint32_t k = 0; k < w->nr_eps; k++)
		st->msgs += atomic_load_explicit(&w->eps[k]->msgs, memory_order_relaxed);
	st->ring_msgs = atomic_load_explicit(&w->st.ring_msgs, memory_order_relaxed);
	st->irqs_raised = atomic_load_explicit(&w->st.irqs_raised, memory_order_relaxed);
	st->irqs_written = atomic_load_explicit(&w->st.irqs_written, memory_order_relaxed);
	st->sleeps = atomic_load_explicit(&w->st.sleeps, memory_order_relaxed);
	st->irq_submit_fallbacks = atomic_load_explicit(&w->st.irq_submit_fallbacks,
							memory_order_relaxed);
	st->busy_ns = atomic_load_explicit(&w->st.busy_ns, memory_order_relaxed);
	{
		uint64_t start = atomic_load_explicit(&w->st.start_ns, memory_order_relaxed);

		st->total_ns = start ? rt_now(rt) - start : 0;
	}
	return vfurt_abi_copy_out(out, &s, sizeof(s),
				  VFURT_ABI_SIZE(struct vfurt_worker_stats, irq_submit_fallbacks));
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

struct dev_stats_call {
	const struct vfurt_runtime *rt;
	const struct rt_endpoint *ep;
	struct json_object *obj;
};

/* On the device's home worker: describe the device and its queues. */
static void dev_stats_on(void *arg)
{
	struct dev_stats_call *c = arg;
	const struct rt_endpoint *ep = c->ep;
	struct json_object *d = c->obj;
	struct json_object *qs = json_object_new_array();

	json_object_object_add(d, "name", json_object_new_string(vfurt_dev_name(ep->dev)));
	json_object_object_add(d, "socket", json_object_new_string(ep->path));
	add_u64(d, "home_worker", ep->home->id);
	json_object_object_add(d, "connected", json_object_new_boolean(
		atomic_load_explicit(&ep->connected, memory_order_relaxed)));
	add_u64(d, "msgs", atomic_load_explicit(&ep->msgs, memory_order_relaxed));
	add_u64(d, "errors", atomic_load_explicit(&ep->errors, memory_order_relaxed));
	json_object_object_add(d, "queues", qs);
	for (uint32_t k = 0; k < vfurt_dev_queue_count(ep->dev); k++) {
		struct vfurt_queue *q = vfurt_dev_queue(ep->dev, k);
		struct json_object *jq = json_object_new_object();
		struct vfurt_queue_stats qst = { .stats_size = sizeof(qst) };

		vfurt_queue_get_stats(q, &qst);
		json_object_array_add(qs, jq);
		add_u64(jq, "index", vfurt_queue_index(q));
		add_u64(jq, "worker", queue_worker((struct vfurt_runtime *)c->rt, q)->id);
		add_u64(jq, "polls", qst.polls);
		add_u64(jq, "busy", qst.busy);
	}
}

char *vfurt_runtime_stats_json(const struct vfurt_runtime *rt)
{
	struct json_object *root = json_object_new_object();
	struct json_object *workers = json_object_new_array();
	struct json_object *devices = json_object_new_array();
	char *out = NULL;

	if (!root || !workers || !devices)
		goto out;
	json_object_object_add(root, "workers", workers);
	json_object_object_add(root, "devices", devices);
	json_object_object_add(root, "poll", json_object_new_string(
		rt->mode == VFURT_POLL_BUSY ? "busy" : "adaptive"));
	{
		struct json_object *q = json_object_new_object();
		struct vfurt_dma_quota_stats qs = { .stats_size = sizeof(qs) };

		vfurt_dma_quota_get_stats(rt->dma_quota, &qs);
		json_object_object_add(root, "dma_quota", q);
		add_u64(q, "limit", qs.limit);
		add_u64(q, "min_per_client", qs.min_per_client);
		add_u64(q, "mapped", qs.mapped);
		add_u64(q, "committed", qs.committed);
		add_u64(q, "refused", qs.refused);
	}
	for (uint32_t i = 0; i < rt->nr_workers; i++) {
		struct json_object *w = json_object_new_object();
		struct vfurt_worker_stats st = { .stats_size = sizeof(st) };

		vfurt_runtime_get_worker_stats(rt, i, &st);
		json_object_array_add(workers, w);
		add_u64(w, "id", i);
		add_u64(w, "cpu", (uint64_t)rt->workers[i].cpu);
		add_u64(w, "passes", st.passes);
		add_u64(w, "busy_passes", st.busy_passes);
		json_object_object_add(w, "busy_pct", json_object_new_double(
			st.total_ns ? 100.0 * (double)st.busy_ns / (double)st.total_ns : 0.0));
		add_u64(w, "msgs", st.msgs);
		add_u64(w, "ring_msgs", st.ring_msgs);
		add_u64(w, "irqs_raised", st.irqs_raised);
		add_u64(w, "irqs_written", st.irqs_written);
		add_u64(w, "sleeps", st.sleeps);
		add_u64(w, "irq_submit_fallbacks", st.irq_submit_fallbacks);
	}
	for (uint32_t i = 0; i < rt->nr_eps; i++) {
		struct dev_stats_call c = { .rt = rt, .ep = rt->eps[i] };

		/* the queue list belongs to the device's home worker */
		c.obj = json_object_new_object();
		if (!c.obj)
			goto out;
		run_on((struct vfurt_runtime *)rt, rt->eps[i]->home, dev_stats_on, &c);
		json_object_array_add(devices, c.obj);
	}
	out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
out:
	json_object_put(root);
	if (!out)
		errno = ENOMEM;
	return out;
}
