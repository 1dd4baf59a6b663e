/* Caller-driven driver: epoll over listening and connected sockets, plain syscalls. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vfurt/abi.h>
#include <vfurt/server.h>

#include "device_internal.h"
#include "fault.h"
#include "log_internal.h"

enum ep_kind { EP_LISTEN, EP_CONN, EP_WATCH };

#define SERVER_MAX_WATCHES 64

struct endpoint;

/* epoll user data: which socket of which endpoint. */
struct ep_tag {
	enum ep_kind kind;
	struct endpoint *ep;
	uint32_t watch;
};

struct endpoint {
	struct vfurt_server *srv;
	struct vfurt_dev *dev;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int lfd;
	struct vfurt_conn *conn;
	struct ep_tag ltag;
	struct ep_tag ctag;
	struct vfurt_dev_watch watches[SERVER_MAX_WATCHES];
	struct ep_tag wtags[SERVER_MAX_WATCHES];
	int wfds[SERVER_MAX_WATCHES]; /* our dups of watches[].fd, in the epoll set */
	size_t nr_watches;
	uint32_t watch_gen;
	uint32_t cevents; /* what the connection socket is registered for */
	bool accept_paused; /* listener unwatched until the next tick (EMFILE) */
	struct log_ratelimit refuse_rl; /* "refusing a second client": anyone may connect */
};

struct vfurt_server {
	int epfd;
	struct vfurt_log log;
	struct vfurt_conn_opts copts;
	struct vfurt_dma_quota *quota; /* of every device's fd-backed windows */
	bool own_quota;
	struct endpoint **eps;
	size_t n;
	size_t cap;
	uint64_t last_tick_ms;
};

/* Connection timers run this often (vfurt_conn_tick). */
#define SERVER_TICK_MS 100

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct vfurt_server *vfurt_server_create(const struct vfurt_server_opts *opts)
{
	struct vfurt_server_opts o = { 0 };
	struct vfurt_server *srv;
	int rc;

	if (opts && vfurt_abi_copy_in(&o, sizeof(o), opts,
				      VFURT_ABI_SIZE(struct vfurt_server_opts, conn))) {
		errno = EINVAL;
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		errno = ENOMEM;
		return NULL;
	}
	/* the process's SIGBUS guard lives while a server does (fault.c) */
	rc = vfr_fault_guard_acquire();
	if (rc < 0) {
		free(srv);
		errno = -rc;
		return NULL;
	}
	srv->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->epfd < 0) {
		int e = errno;

		vfr_fault_guard_release();
		free(srv);
		errno = e;
		return NULL;
	}
	srv->log = o.log;
	srv->copts = o.conn;
	if (!srv->copts.opts_size)
		srv->copts.opts_size = sizeof(srv->copts);
	srv->quota = o.dma_quota;
	if (!srv->quota) {
		srv->quota = vfurt_dma_quota_create(o.conn.dma_maps_process_max,
						    o.conn.dma_maps_min_per_client);
		if (!srv->quota) {
			close(srv->epfd);
			vfr_fault_guard_release();
			free(srv);
			errno = ENOMEM;
			return NULL;
		}
		srv->own_quota = true;
	}
	return srv;
}

/*
 * Is somebody accepting on this path? A server that was just killed can
 * still take connections for a few milliseconds: its io_uring drops the
 * listening socket asynchronously, after the process is reaped. So the
 * path is live only if it keeps accepting for a while (the probe fails at
 * the first refusal).
 */
static bool socket_alive(const struct sockaddr_un *sa)
{
	const struct timespec gap = { .tv_nsec = 20 * 1000 * 1000 };

	for (int i = 0; i < 10; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool up;

		if (fd < 0)
			return true; /* be conservative: do not unlink */
		up = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
		close(fd);
		if (!up)
			return false;
		nanosleep(&gap, NULL);
	}
	return true;
}

int vfurt_listen_unix(const char *path, mode_t mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;
	int rc;

	if (!path || !*path)
		return -EINVAL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		if (socket_alive(&sa))
			return -EADDRINUSE;
		unlink(path); /* stale socket of a previous run */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto err_close;
	}
	if (mode && chmod(path, mode) < 0) {
		rc = -errno;
		goto err_unlink;
	}
	if (listen(fd, 16) < 0) {
		rc = -errno;
		goto err_unlink;
	}
	return fd;

err_unlink:
	unlink(path);
err_close:
	close(fd);
	return rc;
}

/* Single-threaded host: every queue is polled in run_once on the one thread
 * that is also every device's home (so VFURT_QUEUE_HOME and any other hint
 * resolve to it), irqs written at once, nothing to synchronise before an
 * unmap, and no dma_retire: a DMA_MAP frees the table nodes it replaced at
 * once, since every reader runs on this thread, between messages. */
static int host_queue_start(void *host, struct vfurt_dev *dev, struct vfurt_queue *q, int hint)
{
	return 0;
}

static void host_queue_stop(void *host, struct vfurt_dev *dev, struct vfurt_queue *q)
{
}

static const struct vfurt_dev_host_ops server_host_ops = {
	.ops_size = sizeof(server_host_ops),
	.queue_start = host_queue_start,
	.queue_stop = host_queue_stop,
};

static void watches_del(struct endpoint *ep);

/*
 * Watch the device's fds. epoll keys a registration on the open file and
 * keeps it until every descriptor of that file is closed, the client's
 * included: register our own dup, so that the registration can always be
 * deleted (watches_del) before the device closes its copy.
 */
static int watches_add(struct endpoint *ep)
{
	int rc;

	ep->watch_gen = vfurt_dev_watch_gen(ep->dev);
	ep->nr_watches = vfurt_dev_watches(ep->dev, ep->watches, SERVER_MAX_WATCHES);
	for (size_t i = 0; i < ep->nr_watches; i++)
		ep->wfds[i] = -1;
	for (size_t i = 0; i < ep->nr_watches; i++) {
		struct epoll_event wev = { .events = EPOLLIN, .data.ptr = &ep->wtags[i] };

		ep->wtags[i] = (struct ep_tag){ EP_WATCH, ep, (uint32_t)i };
		ep->wfds[i] = fcntl(ep->watches[i].fd, F_DUPFD_CLOEXEC, 0);
		if (ep->wfds[i] < 0 ||
		    epoll_ctl(ep->srv->epfd, EPOLL_CTL_ADD, ep->wfds[i], &wev) < 0) {
			rc = -errno;
			watches_del(ep);
			return rc;
		}
	}
	return 0;
}

static void watches_del(struct endpoint *ep)
{
	for (size_t i = 0; i < ep->nr_watches; i++) {
		if (ep->wfds[i] < 0)
			continue;
		epoll_ctl(ep->srv->epfd, EPOLL_CTL_DEL, ep->wfds[i], NULL);
		close(ep->wfds[i]);
		ep->wfds[i] = -1;
	}
	ep->nr_watches = 0;
}

/* After a message or a disconnect: take the device's new watch set. A
 * later event of the same epoll batch may still name an old slot; every
 * ready handler reads non-blocking, so that costs one empty read. */
static void watches_refresh(struct endpoint *ep)
{
	int rc;

	if (vfurt_dev_watch_gen(ep->dev) == ep->watch_gen)
		return;
	watches_del(ep);
	rc = watches_add(ep);
	if (rc)
		vfurt_logf(&ep->srv->log, VFURT_LOG_ERR, "%s: cannot watch its fds: %s",
			   ep->dev->name, strerror(-rc));
}

/* Count dev's fd-backed windows against q; say so when q cannot reserve
 * the minimum for it any more (too many devices for its size). */
static void quota_join(const struct vfurt_log *log, struct vfurt_dev *dev,
		       struct vfurt_dma_quota *q)
{
	struct vfurt_dma_quota_stats st = { .stats_size = sizeof(st) };
	uint32_t got = vfurt_dev_set_dma_quota(dev, q);

	vfurt_dma_quota_get_stats(q, &st);
	if (got < st.min_per_client)
		vfurt_logf(log, VFURT_LOG_WARN,
			   "%s: only %u of dma_maps_min_per_client %u fd-backed DMA windows "
			   "reserved (dma_maps_process_max %u for %u devices)",
			   dev->name, got, st.min_per_client, st.limit, st.devices);
}

int vfurt_server_add_device(struct vfurt_server *srv, struct vfurt_dev *dev, const char *path,
			    mode_t mode)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct endpoint *ep;
	int rc;

	if (!srv || !dev || !path)
		return -EINVAL;
	if (srv->n == srv->cap) {
		size_t ncap = srv->cap ? srv->cap * 2 : 8;
		struct endpoint **n = realloc(srv->eps, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		srv->eps = n;
		srv->cap = ncap;
	}
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->srv = srv;
	ep->dev = dev;
	ep->ltag = (struct ep_tag){ EP_LISTEN, ep, 0 };
	ep->ctag = (struct ep_tag){ EP_CONN, ep, 0 };
	rc = vfurt_listen_unix(path, mode);
	if (rc < 0)
		goto err_free;
	ep->lfd = rc;
	snprintf(ep->path, sizeof(ep->path), "%s", path);
	ev.data.ptr = &ep->ltag;
	if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, ep->lfd, &ev) < 0) {
		rc = -errno;
		goto err_close;
	}
	rc = watches_add(ep);
	if (rc)
		goto err_del_watches;
	rc = vfurt_dev_set_host(dev, &server_host_ops, srv);
	if (rc)
		goto err_del_watches;
	quota_join(&srv->log, dev, srv->quota);
	srv->eps[srv->n++] = ep;
	vfurt_logf(&srv->log, VFURT_LOG_INFO, "%s: listening on %s", dev->name, path);
	return 0;

err_del_watches:
	watches_del(ep);
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, ep->lfd, NULL);
err_close:
	close(ep->lfd);
	unlink(path);
err_free:
	free(ep);
	return rc;
}

int vfurt_server_fd(const struct vfurt_server *srv)
{
	return srv->epfd;
}

size_t vfurt_server_device_count(const struct vfurt_server *srv)
{
	return srv->n;
}

struct vfurt_dev *vfurt_server_device(const struct vfurt_server *srv, size_t i)
{
	return i < srv->n ? srv->eps[i]->dev : NULL;
}

static void drop_conn(struct endpoint *ep, int why)
{
	if (!ep->conn)
		return;
	epoll_ctl(ep->srv->epfd, EPOLL_CTL_DEL, vfurt_conn_fd(ep->conn), NULL);
	if (why && why != -ECONNRESET)
		vfurt_logf(&ep->srv->log, VFURT_LOG_WARN, "%s: closing connection: %s",
			   ep->dev->name, strerror(-why));
	else
		vfurt_logf(&ep->srv->log, VFURT_LOG_DEBUG, "%s: client disconnected", ep->dev->name);
	vfurt_conn_destroy(ep->conn);
	ep->conn = NULL;
}

static void on_accept(struct endpoint *ep)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &ep->ctag };
	int fd = accept4(ep->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		/* out of fds: the listener stays readable, so stop watching it
		 * until the next tick rather than spin on it */
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
			struct epoll_event off = { .events = 0, .data.ptr = &ep->ltag };

			vfurt_logf(&ep->srv->log, VFURT_LOG_WARN, "%s: accept: %s", ep->dev->name,
				   strerror(errno));
			if (epoll_ctl(ep->srv->epfd, EPOLL_CTL_MOD, ep->lfd, &off) == 0)
				ep->accept_paused = true;
		}
		return; /* EAGAIN or a client that went away */
	}
	if (ep->conn) {
		vfr_log_refused_client(&ep->srv->log, &ep->refuse_rl, ep->dev->name);
		close(fd);
		return;
	}
	ep->conn = vfurt_conn_create(ep->dev, fd, &ep->srv->copts);
	if (!ep->conn) {
		vfurt_logf(&ep->srv->log, VFURT_LOG_ERR, "%s: cannot create connection: %s",
			   ep->dev->name, strerror(errno));
		close(fd);
		return;
	}
	if (epoll_ctl(ep->srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		vfurt_conn_destroy(ep->conn);
		ep->conn = NULL;
		return;
	}
	ep->cevents = ev.events;
	vfurt_logf(&ep->srv->log, VFURT_LOG_DEBUG, "%s: client connected", ep->dev->name);
}

/*
 * Register the connection for what it can take: reading unless paused (a
 * quiesce, or output over its bound), writing while output is queued.
 * While paused, hang-ups are not asked for either (they would be reported
 * for ever without a read); a full hang-up is always reported and drops it.
 */
static void conn_update_events(struct endpoint *ep)
{
	struct epoll_event ev = { .data.ptr = &ep->ctag };

	if (!ep->conn)
		return;
	ev.events = vfurt_conn_paused(ep->conn) ? 0 : EPOLLIN | EPOLLRDHUP;
	if (vfurt_conn_want_write(ep->conn))
		ev.events |= EPOLLOUT;
	if (ev.events == ep->cevents)
		return;
	if (epoll_ctl(ep->srv->epfd, EPOLL_CTL_MOD, vfurt_conn_fd(ep->conn), &ev) == 0)
		ep->cevents = ev.events;
}

static void on_conn(struct endpoint *ep, uint32_t events)
{
	int rc = 0;

	if (!ep->conn)
		return;
	if (events & EPOLLOUT)
		rc = vfurt_conn_on_writable(ep->conn);
	if (!rc && (events & (EPOLLIN | EPOLLRDHUP)) && !vfurt_conn_paused(ep->conn))
		rc = vfurt_conn_on_readable(ep->conn);
	else if (!rc && (events & (EPOLLHUP | EPOLLERR)))
		rc = -ECONNRESET;
	if (rc) {
		drop_conn(ep, rc);
		return;
	}
	conn_update_events(ep);
}

/* Connection timers, and reading again where a quiesce completed. */
static void tick_conns(struct vfurt_server *srv)
{
	uint64_t now = mono_ms();
	bool tick = now - srv->last_tick_ms >= SERVER_TICK_MS;

	if (tick)
		srv->last_tick_ms = now;
	for (size_t i = 0; i < srv->n; i++) {
		struct endpoint *ep = srv->eps[i];
		int rc;

		if (tick && ep->accept_paused) {
			struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ep->ltag };

			if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, ep->lfd, &ev) == 0)
				ep->accept_paused = false;
		}
		if (!ep->conn)
			continue;
		rc = tick ? vfurt_conn_tick(ep->conn, now) : 0;
		if (rc) {
			drop_conn(ep, rc);
			watches_refresh(ep);
			continue;
		}
		conn_update_events(ep);
	}
}

int vfurt_server_next_timeout_ms(const struct vfurt_server *srv)
{
	for (size_t i = 0; i < srv->n; i++)
		if (srv->eps[i]->conn)
			return SERVER_TICK_MS;
	return -1;
}

/* Poll every device queue once; returns how many did work. */
static int poll_queues(struct vfurt_server *srv, bool *have_queues)
{
	int busy = 0;

	for (size_t i = 0; i < srv->n; i++) {
		struct vfurt_dev *dev = srv->eps[i]->dev;

		for (uint32_t k = 0; k < vfurt_dev_queue_count(dev); k++) {
			*have_queues = true;
			busy += vfurt_queue_poll(vfurt_dev_queue(dev, k)) ? 1 : 0;
		}
	}
	return busy;
}

/* A client whose window lost its backing (fault.c) goes: its device has
 * failed the I/O that hit it; the other devices keep serving. */
static void drop_lost(struct vfurt_server *srv)
{
	for (size_t i = 0; i < srv->n; i++) {
		struct endpoint *ep = srv->eps[i];
		uint64_t iova = 0;

		if (!ep->conn || !vfurt_dev_dma_lost(ep->dev, &iova))
			continue;
		/* the device's log: the line belongs to that device's client */
		vfurt_logf(&ep->dev->log, VFURT_LOG_ERR,
			   "%s: client's DMA window iova 0x%llx lost its backing (file truncated?): "
			   "disconnecting", ep->dev->name, (unsigned long long)iova);
		drop_conn(ep, 0);
		watches_refresh(ep);
	}
}

int vfurt_server_run_once(struct vfurt_server *srv, int timeout_ms)
{
	struct epoll_event evs[32];
	bool have_queues = false;
	int busy;
	int n;

	tick_conns(srv);
	busy = poll_queues(srv, &have_queues);
	/* queues are polled, not waited for: do not sleep while there are any;
	 * connections' timers need a tick every SERVER_TICK_MS */
	if (have_queues)
		timeout_ms = 0;
	for (size_t i = 0; i < srv->n && timeout_ms != 0; i++)
		if ((srv->eps[i]->conn || srv->eps[i]->accept_paused) &&
		    (timeout_ms < 0 || timeout_ms > SERVER_TICK_MS))
			timeout_ms = SERVER_TICK_MS;
	n = epoll_wait(srv->epfd, evs, 32, timeout_ms);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct ep_tag *tag = evs[i].data.ptr;

		if (tag->kind == EP_LISTEN)
			on_accept(tag->ep);
		else if (tag->kind == EP_WATCH)
			tag->ep->watches[tag->watch].ready(tag->ep->dev,
							   tag->ep->watches[tag->watch].ctx);
		else
			on_conn(tag->ep, evs[i].events);
		if (tag->kind != EP_WATCH)
			watches_refresh(tag->ep);
	}
	drop_lost(srv);
	return n + busy;
}

void vfurt_server_destroy(struct vfurt_server *srv)
{
	if (!srv)
		return;
	for (size_t i = 0; i < srv->n; i++) {
		struct endpoint *ep = srv->eps[i];

		drop_conn(ep, 0);
		watches_del(ep);
		close(ep->lfd);
		unlink(ep->path);
		vfurt_dev_destroy(ep->dev);
		free(ep);
	}
	free(srv->eps);
	close(srv->epfd);
	if (srv->own_quota)
		vfurt_dma_quota_destroy(srv->quota); /* after its devices left it */
	vfr_fault_guard_release();
	free(srv);
}
