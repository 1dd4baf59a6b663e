/* Protocol engine driver interface: feed a connection's bytes, get replies sent. */
#ifndef VFURT_ENGINE_H
#define VFURT_ENGINE_H

/*
 * A struct vfurt_conn is the server side of one vfio-user connection to one
 * device. It is thread-free and I/O-agnostic on the receive side: a driver
 * (the caller-driven struct vfurt_server, the runtime's io_uring workers, an
 * embedder's own loop) asks where to put the next bytes (vfurt_conn_rx_iov),
 * reads them however it likes (recvmsg, io_uring), and hands them back with
 * any SCM_RIGHTS fds (vfurt_conn_rx_feed). Complete messages are validated,
 * dispatched to the device, and answered synchronously on the socket.
 *
 * Threading: one thread drives a connection and its device at a time.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <vfurt/device.h>
#include <vfurt/export.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfurt_conn;

/* Limits this server advertises in VERSION. Zero fields take defaults. */
struct vfurt_conn_opts {
	size_t opts_size;            /* sizeof(struct vfurt_conn_opts) */
	uint32_t max_data_xfer_size; /* default 1 MiB, at most 16 MiB */
	uint32_t max_msg_fds;        /* default 16, at most 64 */
	/* DMA windows one client may hold (advertised in VERSION): default
	 * 1,024, at most 65,535; a DMA_MAP beyond fails with ENOSPC */
	uint32_t max_dma_maps;
	int timeout_ms;              /* DMA_READ/DMA_WRITE reply wait; default 5000 */
	bool no_twin_socket;         /* do not offer twin-socket mode */
	/* VERSION must arrive this soon after connecting; default 2000, < 0: never */
	int version_timeout_ms;
	/* queued output that makes no progress this long closes; default 5000 */
	int drain_timeout_ms;
	/* output queued beyond these stops the reading of commands until the
	 * client drains it: default 4 MiB (at most 64 MiB) and 1,024 messages
	 * (at most 65,536) */
	uint32_t max_queued_bytes;
	uint32_t max_queued_msgs;
	/* eventfds a client may hold installed (SET_IRQS) at once: default
	 * 1024, at most 8192; beyond, SET_IRQS fails with EMFILE */
	uint32_t max_irq_fds;
	/*
	 * Process-wide, not per connection: read once by the server or runtime
	 * that creates its DMA quota (vfurt_dma_quota_create; ignored when it
	 * is given a shared one, and by vfurt_conn_create). 0: defaults.
	 */
	uint32_t dma_maps_process_max;    /* fd-backed windows of all clients */
	uint32_t dma_maps_min_per_client; /* kept free for each device's client */
};

struct vfurt_conn_stats {
	size_t stats_size;    /* set by the caller: sizeof(struct vfurt_conn_stats) */
	uint64_t msgs;        /* commands received */
	uint64_t errors;      /* commands answered (or dropped, No_reply) with an error */
	uint64_t dma_msgs;    /* DMA_READ/DMA_WRITE sent to the client */
	uint32_t max_msg_fds_client;   /* negotiated: fds the client accepts */
	uint32_t max_data_xfer_client; /* negotiated: client's max transfer */
	bool negotiated;
	bool twin_socket;
};

/*
 * Create the engine for a freshly accepted socket `fd` serving `dev`.
 * Takes ownership of fd on success. The device must outlive the connection.
 * opts may be NULL (defaults); opts_size 0 also means the defaults (a zeroed
 * conn member of another options struct), otherwise include/vfurt/abi.h.
 * Returns NULL with errno EINVAL (dev NULL, fd < 0, opts_size out of range),
 * EBUSY (the device has a client attached), ENOMEM.
 */
VFURT_EXPORT struct vfurt_conn *vfurt_conn_create(struct vfurt_dev *dev, int fd,
						  const struct vfurt_conn_opts *opts);

/*
 * Tear down: if the client was attached, unmap all its DMA windows
 * (ops->dma_unmap first), close its irq fds, call ops->detach, keep device
 * state. Closes the socket(s). NULL is ignored.
 */
VFURT_EXPORT void vfurt_conn_destroy(struct vfurt_conn *conn);

/* The socket fd (owned by the connection). */
VFURT_EXPORT int vfurt_conn_fd(const struct vfurt_conn *conn);

/*
 * Where the next received bytes go. *want_fds is true while reading a header,
 * the only place fds can arrive. The iov stays valid until the next feed.
 */
VFURT_EXPORT void vfurt_conn_rx_iov(struct vfurt_conn *conn, struct iovec *iov,
				    bool *want_fds);

/*
 * Account n > 0 bytes read into the last rx iov, with the fds received with
 * them (ownership passes to the engine, even on error); n 0 means EOF.
 * Dispatches complete messages. Returns 0 to keep going, or a negative errno
 * when the connection must be closed: -EPROTO (a size below 16, a reply
 * that matches no request of ours, or a VERSION the server refused, after
 * its Error reply), -EMSGSIZE (a size above the limit), -ECONNRESET (EOF),
 * -EPIPE or sendmsg's errno (a reply could not be sent, or the connection
 * broke earlier), -ENOMEM (a message to park for a quiesce).
 */
VFURT_EXPORT int vfurt_conn_rx_feed(struct vfurt_conn *conn, size_t n, int *fds,
				    size_t nfds);

/*
 * Plain-syscall driver step: read with recvmsg(MSG_DONTWAIT) until the socket
 * has no more data or a fairness budget of reads is used up (call again
 * while the socket polls readable), feeding the engine. Returns 0
 * (connection alive), or a negative errno to close: as vfurt_conn_rx_feed,
 * or recvmsg's errno.
 */
VFURT_EXPORT int vfurt_conn_on_readable(struct vfurt_conn *conn);

/*
 * True while the engine takes no more commands: one waits for an
 * asynchronous quiesce, or the client left more output unread than the
 * connection's bound (max_queued_bytes/msgs). Do not feed more; read again
 * once it turns false (after vfurt_dev_quiesced or vfurt_conn_on_writable).
 */
VFURT_EXPORT bool vfurt_conn_paused(const struct vfurt_conn *conn);

/*
 * Sends never wait for the client: what its socket does not take is queued.
 * While vfurt_conn_want_write() is true, watch the socket for POLLOUT and
 * call vfurt_conn_on_writable() when it is writable, which returns 0, or a
 * negative errno to close the connection (sendmsg's: -EPIPE,
 * -ECONNRESET...).
 */
VFURT_EXPORT bool vfurt_conn_want_write(const struct vfurt_conn *conn);
VFURT_EXPORT int vfurt_conn_on_writable(struct vfurt_conn *conn);

/*
 * The connection's timers; call at least every 100 ms with a monotonic
 * clock in milliseconds. Closes (returns -ETIMEDOUT) a client that did not
 * send VERSION within version_timeout_ms, that left its queued output
 * unread for drain_timeout_ms, or that did not answer a DMA request within
 * timeout_ms; -EPIPE when the connection broke meanwhile (its twin socket,
 * say), or sendmsg's errno from flushing queued output (the twin socket's
 * is flushed here). Each with one log line. Returns 0 to keep the
 * connection.
 */
VFURT_EXPORT int vfurt_conn_tick(struct vfurt_conn *conn, uint64_t now_ms);

/* ---- restart: carrying a device and its client to a new process ------- */

struct vfurt_state;
struct vfurt_state_cur;

/*
 * Bring dev to a safe point for a live upgrade (docs/restart.md): -EBUSY
 * while a message waits for an asynchronous quiesce or the model's freeze
 * says work is in flight (call again; keep serving the connection
 * meanwhile, its replies to DMA requests are what the device waits for),
 * 0 once frozen, -ENOTSUP for a model without save and restore, or the
 * model's refusal. Thread: the device's.
 */
VFURT_EXPORT int vfurt_dev_freeze(struct vfurt_dev *dev);

/* Leave the frozen state (ops->thaw): after a failed upgrade, or in the new
 * process once it serves. Thread: the device's. */
VFURT_EXPORT void vfurt_dev_thaw(struct vfurt_dev *dev);

/*
 * Write dev's state into the open section of s: the fds of its regions
 * and io fds, its irq state (masks, pending bits), its PCI config space
 * and the model's section (ops->save). dev must be frozen. The client's
 * part is vfurt_conn_save's. Returns 0, -EINVAL, -ENOTSUP (no ops->save),
 * or the error of a put or of the model.
 */
VFURT_EXPORT int vfurt_dev_save(struct vfurt_dev *dev, struct vfurt_state *s);

/*
 * In the new process: dev was just created from the same configuration and
 * no client is attached. Take over the previous process's region and io
 * fds (keeping this process's fd numbers), restore irq state and PCI
 * config space, then the model (ops->restore). Returns 0, -EINVAL,
 * -ENOTSUP, -EBUSY (a client is attached), -EBADMSG (the image does not
 * fit this device), or the model's error; on error the image's fds are
 * left to vfurt_state_destroy and dev must be destroyed (it may hold some
 * of the previous process's files now).
 */
VFURT_EXPORT int vfurt_dev_restore(struct vfurt_dev *dev, const struct vfurt_state_cur *c);

/* True when conn can be saved: no message waits for a quiesce or is being
 * handled, no DMA request waits for its reply, nothing half read on the
 * twin socket. Thread: the connection's. */
VFURT_EXPORT bool vfurt_conn_quiet(const struct vfurt_conn *conn);

/*
 * Write conn into the open section of s: its socket(s), negotiated values,
 * statistics, a message half received (bytes and fds), queued output, the
 * client's DMA windows (with their fds) and irq eventfds. The driver must
 * have stopped reading the socket (no receive in flight) and conn must be
 * quiet. conn keeps everything (s holds dups). Returns 0, -EINVAL, -EBUSY
 * (not quiet), -EPIPE (broken), or a put's error.
 */
VFURT_EXPORT int vfurt_conn_save(struct vfurt_conn *conn, struct vfurt_state *s);

/*
 * Re-create a connection saved by vfurt_conn_save for dev (restored with
 * vfurt_dev_restore first), with this process's opts: the DMA windows are
 * mapped again (ops->dma_map for each), the eventfds installed, ops->attach
 * called as after VERSION, and queued output is sent once the driver
 * serves the connection (nothing is sent here). Returns the connection, or
 * NULL with errno EINVAL, EBUSY (a client is attached), EBADMSG (a record
 * is missing or out of range, e.g. the client negotiated more than these
 * opts allow), ENOMEM, or the error of a DMA map.
 */
VFURT_EXPORT struct vfurt_conn *vfurt_conn_restore(struct vfurt_dev *dev,
						   const struct vfurt_conn_opts *opts,
						   const struct vfurt_state_cur *c);

/* ---- hosting a device ------------------------------------------------- */

/*
 * What a driver that serves devices provides to them. The caller-driven
 * server and the multi-core runtime each install one on every device they
 * serve (vfurt_dev_set_host); devices reach it through device.h.
 */
struct vfurt_dev_host_ops {
	size_t ops_size;
	/*
	 * Start polling q (vfurt_dev_queue_add). worker_hint is the hint given
	 * there (also vfurt_queue_hint(q)): the host resolves it to one of its
	 * threads, VFURT_QUEUE_HOME to the one that handles dev's messages.
	 * Return 0 or a negative errno.
	 */
	int (*queue_start)(void *host, struct vfurt_dev *dev, struct vfurt_queue *q,
			   int worker_hint);
	/* Stop polling q; return only once its fn cannot run anymore. */
	void (*queue_stop)(void *host, struct vfurt_dev *dev, struct vfurt_queue *q);
	/*
	 * Wait until no other thread can still use a DMA snapshot published
	 * before this call (epoch synchronisation); called before unmapping a
	 * window. NULL = single-threaded host, nothing to wait for.
	 */
	void (*dma_sync)(void *host, struct vfurt_dev *dev);
	/*
	 * Signal an irq eventfd. The runtime batches: it marks fd pending in
	 * the calling worker's batch and writes it once at the end of the pass.
	 * Return 0 when the write was done or queued. NULL = write(2) at once.
	 */
	int (*irq_signal)(void *host, struct vfurt_dev *dev, int fd);
	/* Wake the thread polling q if it sleeps (vfurt_dev_queue_kick). Any
	 * thread. NULL = the host never sleeps with queues to poll. */
	void (*queue_kick)(void *host, struct vfurt_dev *dev, struct vfurt_queue *q);
	/* ---- fields below were added later: ops_size tells whether a host has them */
	/*
	 * Free ptr with free_fn(ptr) once no other thread can still be reading
	 * it: an old version of dev's DMA table, replaced by a DMA_MAP or
	 * DMA_UNMAP. Called on the thread that drives dev's connection, which
	 * may keep translating meanwhile. Must not fail (fall back to waiting
	 * for the readers, then freeing). The runtime defers it with
	 * ck_epoch_call; NULL = free at once (no reader on another thread).
	 */
	void (*dma_retire)(void *host, struct vfurt_dev *dev, void *ptr, void (*free_fn)(void *ptr));
	/*
	 * Run fn(arg) on the thread that handles dev's messages and return
	 * when it has run (vfurt_dev_call). Called from any thread, including
	 * that one (then fn runs at once). Returns 0 or a negative errno (fn
	 * did not run). NULL = the caller's thread is that thread (the
	 * caller-driven server): fn runs at once.
	 */
	int (*call)(void *host, struct vfurt_dev *dev, void (*fn)(void *arg), void *arg);
};

/* The ops_size of a host built before dma_retire existed; still accepted. */
#define VFURT_DEV_HOST_OPS_SIZE_V1 (offsetof(struct vfurt_dev_host_ops, queue_kick) + \
				    sizeof(void (*)(void)))

/* Install (or with ops NULL remove) the host of dev. ops is copied (the
 * first ops_size bytes; later fields read as NULL). Returns 0, -EBUSY (a
 * host is installed), -EINVAL (ops_size below VFURT_DEV_HOST_OPS_SIZE_V1). */
VFURT_EXPORT int vfurt_dev_set_host(struct vfurt_dev *dev, const struct vfurt_dev_host_ops *ops,
				    void *host);

/* The queue's poll function, for hosts: run it once. */
VFURT_EXPORT int vfurt_queue_poll(struct vfurt_queue *q);

/* The queue's arm callback, for hosts (vfurt_dev_queue_set_arm): returns a
 * vfurt_arm value; VFURT_ARM_POLL when the queue has none. */
VFURT_EXPORT int vfurt_queue_arm(struct vfurt_queue *q, bool arm);

/* The queue's placement hint and its per-device index (0, 1, ...). */
VFURT_EXPORT int vfurt_queue_hint(const struct vfurt_queue *q);
/* The device that owns q. Any thread. */
VFURT_EXPORT struct vfurt_dev *vfurt_queue_dev(const struct vfurt_queue *q);
VFURT_EXPORT uint32_t vfurt_queue_index(const struct vfurt_queue *q);

/* A host's private slot in the queue (e.g. its poller). */
VFURT_EXPORT void vfurt_queue_set_host_data(struct vfurt_queue *q, void *data);
VFURT_EXPORT void *vfurt_queue_host_data(const struct vfurt_queue *q);

struct vfurt_queue_stats {
	size_t stats_size;    /* set by the caller: sizeof(struct vfurt_queue_stats) */
	uint64_t polls;       /* times its poll function ran */
	uint64_t busy;        /* of those, the ones that did work */
};

/*
 * Fill *st with q's counters; the caller sets st->stats_size first
 * (include/vfurt/abi.h). Returns 0 or -EINVAL (q or st NULL, stats_size out
 * of range). Thread: any (relaxed reads).
 */
VFURT_EXPORT int vfurt_queue_get_stats(const struct vfurt_queue *q, struct vfurt_queue_stats *st);

/* Number of queues of dev and queue i (host iteration). */
VFURT_EXPORT uint32_t vfurt_dev_queue_count(const struct vfurt_dev *dev);
VFURT_EXPORT struct vfurt_queue *vfurt_dev_queue(const struct vfurt_dev *dev, uint32_t i);

/*
 * The fds a host must watch for dev (ioeventfds with a handler, ioregionfd
 * server ends, the client's INTx unmask eventfd), with the call to make
 * when one is readable. Returns the count written to fds/handlers (up to
 * max). The set changes as the client installs eventfds: when
 * vfurt_dev_watch_gen() changes (checked after each message and
 * disconnect), stop watching the old fds and watch the new set.
 */
struct vfurt_dev_watch {
	int fd;
	void (*ready)(struct vfurt_dev *dev, void *ctx); /* run on the home thread */
	void *ctx;
};
VFURT_EXPORT size_t vfurt_dev_watches(struct vfurt_dev *dev, struct vfurt_dev_watch *out,
				      size_t max);
VFURT_EXPORT uint32_t vfurt_dev_watch_gen(const struct vfurt_dev *dev);

/* ---- process-wide DMA quota ------------------------------------------- */

/*
 * Every fd-backed DMA window is one mmap of the server process, and the
 * kernel allows a process vm.max_map_count of them (65,530 by default) in
 * all: one greedy client could otherwise leave none for another device's
 * guest RAM. A quota bounds the fd-backed windows of all the clients of the
 * devices that share it, and keeps min_per_client of them free for each
 * device's client. Each vfurt_server and vfurt_runtime creates one for its
 * devices; to share one among several of them, create it here and pass it
 * in their options (it must outlive them).
 */
struct vfurt_dma_quota;

/*
 * Create a quota of process_max fd-backed windows (0: half of
 * /proc/sys/vm/max_map_count, or 32,765 when it cannot be read), of which
 * min_per_client (0: 64) are reserved for each device that joins it (as far
 * as the total allows). A DMA_MAP beyond the quota fails with ENOMEM.
 * Returns NULL with errno ENOMEM. Any thread; the quota is thread-safe.
 */
VFURT_EXPORT struct vfurt_dma_quota *vfurt_dma_quota_create(uint32_t process_max,
							    uint32_t min_per_client);

/* Free q; every server and runtime using it must be destroyed. NULL ignored. */
VFURT_EXPORT void vfurt_dma_quota_destroy(struct vfurt_dma_quota *q);

/* The quota's size and what is in use or reserved (relaxed; any thread). */
struct vfurt_dma_quota_stats {
	size_t stats_size;       /* set by the caller: sizeof(struct vfurt_dma_quota_stats) */
	uint32_t limit;          /* process_max */
	uint32_t min_per_client;
	uint32_t committed;      /* reservations + windows mapped beyond them */
	uint32_t mapped;         /* fd-backed windows mapped */
	uint32_t devices;        /* devices that joined */
	uint64_t refused;        /* DMA_MAPs refused with ENOMEM */
};
/* Fill *st (the caller sets st->stats_size first, include/vfurt/abi.h).
 * Returns 0 or -EINVAL (q or st NULL, stats_size out of range). */
VFURT_EXPORT int vfurt_dma_quota_get_stats(const struct vfurt_dma_quota *q,
					   struct vfurt_dma_quota_stats *st);

/*
 * For hosts: make dev's fd-backed windows count against q (NULL: leave its
 * quota), as the server and the runtime do for every device they serve.
 * Call while no client is attached. Returns the number of windows reserved
 * for dev (0..min_per_client).
 */
VFURT_EXPORT uint32_t vfurt_dev_set_dma_quota(struct vfurt_dev *dev, struct vfurt_dma_quota *q);

/*
 * Fill *st with the counters and negotiated values; the caller sets
 * st->stats_size first (include/vfurt/abi.h). Returns 0 or -EINVAL (conn or
 * st NULL, stats_size out of range). Thread: the connection's.
 */
VFURT_EXPORT int vfurt_conn_get_stats(const struct vfurt_conn *conn, struct vfurt_conn_stats *st);

/*
 * A DMA window of dev's client lost its backing memory (device.h,
 * vfurt_dma_lost_count): true and *iova (if not NULL) = that window's iova,
 * until the connection is destroyed. A host checks after serving messages
 * and queue polls and disconnects the client. Any thread.
 */
VFURT_EXPORT bool vfurt_dev_dma_lost(const struct vfurt_dev *dev, uint64_t *iova);

/* true for exactly one caller per loss (until the connection is destroyed):
 * the host thread that must arrange the disconnect. Any thread. */
VFURT_EXPORT bool vfurt_dev_dma_loss_claim(struct vfurt_dev *dev);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_ENGINE_H */
