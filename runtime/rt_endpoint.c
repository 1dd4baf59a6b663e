/* Endpoint events on the home worker: accept, recv, send, watches, drops, connection timers. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vfurt/server.h>

#include "rt_internal.h"

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
		sqe = vfr_rt_get_sqe(w);
		if (!sqe)
			continue; /* still armed on the old fd: rearmed when it fires */
		io_uring_prep_poll_remove(sqe, (__u64)(uintptr_t)op);
		io_uring_sqe_set_data(sqe, NULL);
		w->pending_sqes++;
		op->stale = true;
	}
	ep->nr_watches = (uint32_t)vfurt_dev_watches(ep->dev, ep->watches, RT_MAX_WATCHES);
}

void vfr_rt_endpoint_arm(struct vfurt_worker *w, struct rt_endpoint *ep)
{
	if (!w->ring_ok || ep->frozen)
		return;
	if (ep->thaw_pending) {
		/* restored from a previous process: served from now on */
		ep->thaw_pending = false;
		vfurt_dev_thaw(ep->dev);
	}
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

	uint64_t msgs;

	if (ep->conn)
		vfurt_conn_get_stats(ep->conn, &st);
	msgs = ep->msgs_done + st.msgs;
	/* the worker's count: messages of every endpoint it ever served */
	atomic_store_explicit(&ep->home->st.msgs,
			      atomic_load_explicit(&ep->home->st.msgs, memory_order_relaxed) + msgs -
			      atomic_load_explicit(&ep->msgs, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(&ep->msgs, msgs, memory_order_relaxed);
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

void vfr_rt_endpoint_drop(struct rt_endpoint *ep, int why)
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
			int res;

			/* reaped already, by an earlier wait of this kind */
			if (vfr_rt_take_postponed(ep->home, &ep->recv_op, &res)) {
				ep->recv_op.armed = false;
				if (res > 0)
					close_cmsg_fds(&ep->msg);
				break;
			}
			if (io_uring_wait_cqe(&ep->home->ring, &cqe))
				break;
			op = io_uring_cqe_get_data(cqe);
			res = cqe->res;
			io_uring_cqe_seen(&ep->home->ring, cqe);
			if (op == &ep->recv_op) {
				/* it may have completed with data before the cancel */
				ep->recv_op.armed = false;
				if (res > 0)
					close_cmsg_fds(&ep->msg);
			} else if (op) {
				/* another endpoint's (or this one's accept, a watch):
				 * handled by the pass's reap, in order, once this
				 * drop is done; nothing another client sent is lost */
				vfr_rt_postpone_cqe(ep->home, op, res);
			}
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
		vfr_log_refused_client(&w->log, &ep->refuse_rl, vfurt_dev_name(ep->dev));
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

		/* cancelled with nothing read: the thread that submitted it exited
		 * (an embedder's, no_threads mode); the event's end re-arms it */
		if (res == -ECANCELED)
			return;
		if (res <= 0) {
			vfr_rt_endpoint_drop(ep, res == 0 ? -ECONNRESET : res);
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
			vfr_rt_endpoint_drop(ep, rc);
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

bool vfr_rt_worker_tick(struct vfurt_worker *w, uint64_t now_ns)
{
	bool clients = false;

	if (now_ns - w->last_tick_ns < RT_TICK_NS)
		return true; /* not yet: assume clients, sleep no longer than a tick */
	w->last_tick_ns = now_ns;
	if (w->zombies) {
		vfr_rt_zombies_step(w);
		clients = true; /* tick again soon: cancels may still be owed */
	}
	for (uint32_t i = 0; i < w->nr_eps; i++) {
		struct rt_endpoint *ep = w->eps[i];
		int rc;

		if (vfr_rt_remove_step(w, ep, now_ns)) {
			i--; /* ep left w->eps */
			continue;
		}

		if (ep->accept_backoff) {
			ep->accept_backoff = false;
			clients = true; /* tick again soon if it fails again */
			vfr_rt_endpoint_arm(w, ep);
		}
		/* frozen for an upgrade: its output belongs to the state image
		 * now (a flush here would send it twice) */
		if (!ep->conn || ep->frozen)
			continue;
		rc = vfurt_conn_tick(ep->conn, now_ns / 1000000u);
		if (rc)
			vfr_rt_endpoint_drop(ep, rc);
		else
			clients = true;
		/* also takes up reading where a quiesce completed */
		vfr_rt_endpoint_arm(w, ep);
	}
	return clients;
}

/* On the home worker: a window of the client lost its backing (io/fault.c).
 * The device failed what hit it; the client goes, the others stay. */
static void drop_if_lost(struct rt_endpoint *ep)
{
	uint64_t iova = 0;

	if (!ep->conn || !ep->dev || !vfurt_dev_dma_lost(ep->dev, &iova))
		return;
	vfurt_logf(vfurt_dev_log(ep->dev), VFURT_LOG_ERR,
		   "%s: client's DMA window iova 0x%llx lost its backing (file truncated?): "
		   "disconnecting", vfurt_dev_name(ep->dev), (unsigned long long)iova);
	vfr_rt_endpoint_drop(ep, 0);
}

static void drop_lost_msg(void *arg)
{
	struct rt_endpoint *ep = arg;

	if (!ep->zombie && !ep->gone) {
		drop_if_lost(ep);
		publish_ep_stats(ep);
		if (!vfr_rt_remove_step(ep->home, ep, vfr_rt_now(ep->rt)))
			vfr_rt_endpoint_arm(ep->home, ep);
	}
	vfr_rt_ep_put(ep); /* taken by vfr_rt_lost_notify */
}

/* From a queue poller (any worker): the disconnect must wait until the
 * poller has returned, and happen on the home worker. */
void vfr_rt_lost_notify(struct rt_endpoint *ep)
{
	if (!vfurt_dev_dma_loss_claim(ep->dev))
		return;
	vfr_rt_ep_get(ep);
	/* a full inbox: the next event on the endpoint drops it instead */
	if (vfurt_worker_send(ep->home, drop_lost_msg, ep)) {
		vfurt_logf(&ep->rt->log, VFURT_LOG_WARN, "%s: disconnect deferred",
			   vfurt_dev_name(ep->dev));
		vfr_rt_ep_put(ep);
	}
}

void vfr_rt_endpoint_event(struct vfurt_worker *w, struct rt_op *op, int res)
{
	struct rt_endpoint *ep = op->ep;

	if (ep->zombie) {
		/* a removed device's op ended (cancelled, or completed first) */
		if (op->kind == RT_OP_ACCEPT && res >= 0)
			close(res);
		else if (op->kind == RT_OP_RECV && res > 0)
			close_cmsg_fds(&ep->msg);
		vfr_rt_zombies_step(w);
		return;
	}
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
				vfr_rt_endpoint_drop(ep, rc);
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
	if (!vfr_rt_remove_step(w, ep, vfr_rt_now(ep->rt)))
		vfr_rt_endpoint_arm(w, ep);
}
