/* Caller-driven server: serve devices on UNIX sockets from the embedder's loop. */
#ifndef VFURT_SERVER_H
#define VFURT_SERVER_H

/*
 * struct vfurt_server owns a set of devices, each listening on its own UNIX
 * socket path with at most one client at a time (a second client is
 * refused). It does no threading: the embedder calls vfurt_server_run_once()
 * from its loop, or waits on vfurt_server_fd() (an epoll fd, readable when
 * there is work) with its own poll/epoll/io_uring and then calls
 * run_once(srv, 0). While clients are connected, run_once must also be
 * called at least every 100 ms (vfurt_server_next_timeout_ms() says when):
 * the connections' timers (VERSION, output drain and DMA reply timeouts)
 * run there.
 *
 * Threading: one thread at a time per server object. Several servers may
 * live in one process.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfurt/device.h>
#include <vfurt/engine.h>
#include <vfurt/export.h>
#include <vfurt/log.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfurt_server;

struct vfurt_server_opts {
	size_t opts_size;           /* sizeof(struct vfurt_server_opts) */
	struct vfurt_log log;       /* server-level messages */
	struct vfurt_conn_opts conn; /* limits advertised to every client */
	/* the quota of fd-backed DMA windows the devices share (engine.h),
	 * owned by the caller, who may share it with other servers and
	 * runtimes; NULL: the server creates its own from conn's
	 * dma_maps_process_max and dma_maps_min_per_client */
	struct vfurt_dma_quota *dma_quota;
};

/* Create an empty server. NULL with errno (EINVAL, ENOMEM, or epoll's or
 * sigaction's). While any server or runtime exists the process has a SIGBUS
 * handler that contains faults on DMA windows whose file a client truncated
 * (the client is disconnected; docs/security.md); other SIGBUS faults go to
 * the handler installed before, or kill the process as usual. */
VFURT_EXPORT struct vfurt_server *vfurt_server_create(const struct vfurt_server_opts *opts);

/*
 * Serve dev on a new UNIX socket at path, created with permissions `mode`
 * (e.g. 0600; 0 keeps the umask default). A stale socket file nobody listens
 * on is replaced; a live one is -EADDRINUSE; another kind of file is
 * -EEXIST. On success the server owns dev; on failure the caller still does.
 * Returns 0, -EINVAL (srv, dev or path NULL, path empty), -ENAMETOOLONG
 * (path longer than a UNIX socket address takes: 107 bytes), -EBUSY (dev is
 * already served, by this or another server or runtime), -EADDRINUSE,
 * -EEXIST, -ENOMEM, or the errno of socket/bind/chmod/listen/epoll_ctl.
 * Thread: the server's.
 */
VFURT_EXPORT int vfurt_server_add_device(struct vfurt_server *srv, struct vfurt_dev *dev,
					 const char *path, mode_t mode);

/* An fd that polls readable when run_once has something to do. */
VFURT_EXPORT int vfurt_server_fd(const struct vfurt_server *srv);

/* How long an embedder waiting on vfurt_server_fd() may wait before calling
 * run_once for the timers: -1 (no client connected) or at most 100 ms. */
VFURT_EXPORT int vfurt_server_next_timeout_ms(const struct vfurt_server *srv);

/*
 * Wait up to timeout_ms (0 = do not wait, -1 = forever; while clients are
 * connected, at most 100 ms: it may then return 0 early) and handle what is
 * ready: run the connections' timers, accept clients, process their messages, drop broken connections
 * (only that connection; the others keep being served). Every device queue
 * (vfurt_dev_queue_add), whatever its placement hint, is polled once per call
 * on the calling thread, which is also every device's home thread. Returns the number
 * of events handled (>= 0), or -EINTR when a signal interrupted the wait.
 */
VFURT_EXPORT int vfurt_server_run_once(struct vfurt_server *srv, int timeout_ms);

/*
 * Create a non-blocking, close-on-exec UNIX stream socket listening on path
 * with permissions `mode` (0 keeps the umask default), set before listen(2)
 * so no client can connect while it is wider. A stale socket file nobody
 * answers on (a killed server's) is replaced. Returns the fd, or -EINVAL
 * (empty path), -ENAMETOOLONG, -EADDRINUSE (a server answers there), -EEXIST
 * (a file that is not a socket), or the errno of socket/bind/chmod/listen.
 * Thread: any.
 */
VFURT_EXPORT int vfurt_listen_unix(const char *path, mode_t mode);

/* Number of devices, and whether device i currently has a client. */
VFURT_EXPORT size_t vfurt_server_device_count(const struct vfurt_server *srv);
VFURT_EXPORT struct vfurt_dev *vfurt_server_device(const struct vfurt_server *srv, size_t i);

/* Close every connection (as on a client disconnect), remove the socket
 * files, destroy the devices and the server. NULL is ignored. */
VFURT_EXPORT void vfurt_server_destroy(struct vfurt_server *srv);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_SERVER_H */
