/* The multi-core polling runtime: pinned workers, pollers, cross-core calls. */
#ifndef VFURT_RUNTIME_H
#define VFURT_RUNTIME_H

/*
 * A struct vfurt_runtime runs one worker thread per CPU of its core list,
 * each pinned (hwloc) and owning an io_uring that carries its sockets
 * (accept, recvmsg with SCM_RIGHTS), eventfds and timeouts. Devices are
 * served on UNIX sockets like struct vfurt_server does, but each device has
 * a home worker (its socket and control plane) and may expose pollable queues
 * that the runtime spreads over the workers.
 *
 * A worker pass: drain a bounded batch of cross-core messages, run active
 * pollers, run due timed pollers, flush the irq batch, then reap socket
 * completions. In busy mode a worker never sleeps; in adaptive mode it spins
 * while work arrives and then sleeps in io_uring_wait_cqe_timeout, woken by
 * socket, eventfd or ioeventfd activity or its next timer.
 *
 * Threading: create/start/stop/destroy from one control thread;
 * add_device and remove_device from any thread, before and after start.
 * Poller and queue functions from the owning worker's thread unless noted.
 *
 * Embedding without threads of ours: with opts.no_threads the runtime
 * creates no thread. vfurt_runtime_start() then only sets up each worker's
 * io_uring, and the embedder runs the workers from its own loop:
 *
 *     for (;;) {
 *         vfurt_worker_run_pass(w);
 *         uint64_t t = vfurt_worker_next_deadline(w);   // arms wake-ups
 *         poll vfurt_worker_fd(w) for POLLIN until t (runtime clock)
 *     }
 *
 * like spdk_thread_poll() and spdk_thread_next_poller_expiration(). One
 * embedder thread may run several workers, or each its own; a worker's pass
 * runs on one thread at a time (vfurt_worker_run_pass refuses a second).
 * A worker's io_uring requests belong to the thread whose pass submitted
 * them: Linux runs their completion work there, and cancels them when that
 * thread exits (the runtime re-arms them at the next pass). Run each
 * worker's passes from a long-lived thread. A cross-worker call (add or
 * remove a device, vfurt_dev_call) runs on the calling thread when no pass
 * of the target worker is running, else in its next pass.
 */

#include <stdbool.h>
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

struct vfurt_runtime;
struct vfurt_worker;
struct vfurt_poller;

enum vfurt_poll_mode {
	VFURT_POLL_BUSY = 0,     /* spin forever: lowest latency, one core each */
	VFURT_POLL_ADAPTIVE = 1, /* spin while busy, then sleep until activity */
};

/* Monotonic clock in nanoseconds; replaceable for deterministic tests. */
typedef uint64_t (*vfurt_clock_fn)(void *arg);

struct vfurt_runtime_opts {
	size_t opts_size;                 /* sizeof(struct vfurt_runtime_opts) */
	const char *cores;                /* "0-3,6,8-9"; NULL = "0" */
	enum vfurt_poll_mode poll_mode;
	uint32_t adaptive_spin_us;        /* idle spinning before sleeping (default 100) */
	uint32_t adaptive_sleep_max_us;   /* longest sleep without a timer (default 100000) */
	/* longest sleep while a queue cannot be woken (VFURT_ARM_POLL, e.g.
	 * NVMe doorbells in an mmapped page without shadow doorbells;
	 * default 1000) */
	uint32_t adaptive_poll_sleep_us;
	/* Write every irq trigger's eventfd at once instead of once per
	 * eventfd at the end of the pass (for measuring what batching buys). */
	bool irq_unbatched;
	struct vfurt_log log;
	struct vfurt_conn_opts conn;      /* limits advertised to clients */
	/*
	 * Embedder-threads mode: create the workers but no threads and pin
	 * nothing; the caller drives passes with vfurt_worker_run_pass() from
	 * its own threads (see "Embedding without threads of ours" above).
	 * The CPU list is parsed but not checked against the machine. Before
	 * vfurt_runtime_start() passes run pollers and cross-worker messages
	 * only; after it they also serve devices' sockets.
	 */
	bool no_threads;
	vfurt_clock_fn clock;             /* NULL = CLOCK_MONOTONIC */
	void *clock_arg;
	/* the quota of fd-backed DMA windows of every client (engine.h), owned
	 * by the caller and possibly shared with servers and other runtimes;
	 * NULL: the runtime creates its own from conn's dma_maps_process_max
	 * and dma_maps_min_per_client */
	struct vfurt_dma_quota *dma_quota;
};

/*
 * Validate the core list against the machine (hwloc) and the process's
 * allowed CPUs, and create the workers (not yet running). opts is read
 * during the call only (cores is parsed, not kept).
 * Returns NULL with errno: EINVAL (opts, unknown poll mode, CPU list
 * syntax, a CPU that does not exist or is not allowed, duplicates), ENOMEM,
 * EIO (the hwloc topology cannot be loaded), or sigaction's errno (the
 * SIGBUS guard, see vfurt_server_create); with a one-line reason in err
 * (errlen bytes; err may be NULL: "Error messages" in docs/device-api.md).
 * Thread: the control thread.
 */
VFURT_EXPORT struct vfurt_runtime *vfurt_runtime_create(const struct vfurt_runtime_opts *opts,
							char *err, size_t errlen);

/*
 * Serve dev on a UNIX socket (as vfurt_server_add_device) with home worker
 * `worker` (< worker count), or any negative value for round robin. Before
 * or after vfurt_runtime_start: a device added to a running runtime accepts
 * a client as soon as this returns. On success the runtime owns dev; on
 * failure the caller still does. Returns 0, -EINVAL (rt or dev NULL, worker
 * out of range, path NULL or empty), -ESHUTDOWN (the runtime was stopped),
 * -ENAMETOOLONG, -EADDRINUSE, -EEXIST (as vfurt_listen_unix), -EBUSY (dev is
 * already served), -ENOMEM, or the errno of socket/bind/chmod/listen.
 * Thread: any, except a done callback of vfurt_runtime_remove_device.
 */
VFURT_EXPORT int vfurt_runtime_add_device(struct vfurt_runtime *rt, struct vfurt_dev *dev,
					  const char *path, mode_t mode, int worker);

/* How a removal ended (vfurt_remove_done_fn). */
enum vfurt_remove_how {
	VFURT_REMOVE_IDLE = 0,     /* no client was attached */
	VFURT_REMOVE_RELEASED = 1, /* the client detached within the timeout */
	VFURT_REMOVE_FORCED = 2,   /* the client was disconnected: it did not
				    * detach within the timeout (0: at once),
				    * or the runtime stopped first */
};

/*
 * Called once a removal is complete: the socket file is gone, the device
 * destroyed and everything it held (fds, memory, queues, pollers) released.
 * Runs on the device's home worker thread (or on the thread calling
 * vfurt_runtime_stop/destroy, or on the caller's thread when nothing ran
 * yet): it must not block, and must not call vfurt_runtime_stop/destroy.
 */
typedef void (*vfurt_remove_done_fn)(void *arg, enum vfurt_remove_how how);

/*
 * Stop serving dev, asynchronously and gracefully, as VFIO removes a device:
 * refuse new clients at once; with a client attached, trigger the device's
 * REQ irq (VFIO_PCI_REQ_IRQ_INDEX: vfio-pci in QEMU turns it into a
 * hot-unplug request to the guest) and give the client timeout_ms to detach
 * by itself. A client without a REQ eventfd (QEMU 10.2's vfio-user-pci sets
 * none) cannot be asked: it is given the same time to detach, for an
 * unplug started through the VMM (QMP device_del). Then force the detach
 * (queues stopped, I/O in flight completed or failed, DMA unmapped, the
 * client disconnected). Then destroy dev and call
 * done(arg, how) (done may be NULL). Nothing waits in a worker meanwhile:
 * the other devices of dev's worker keep being served. timeout_ms 0 forces
 * at once. Returns 0 (done will be called exactly once), -EINVAL (rt or dev
 * NULL), -ENOENT (dev is not served by rt), -EALREADY (a removal of dev is
 * in progress), -ENOMEM. On an error done is not called and dev stays.
 * Thread: any; the device may not be used by the caller after 0.
 */
VFURT_EXPORT int vfurt_runtime_remove_device(struct vfurt_runtime *rt, struct vfurt_dev *dev,
					     uint32_t timeout_ms, vfurt_remove_done_fn done,
					     void *arg);

/* ---- live upgrade (include/vfurt/state.h, docs/restart.md) ------------ */

struct vfurt_state;
struct vfurt_state_cur;

/*
 * Bring every device to a safe point for handing it to another process:
 * each device's model stops starting work and finishes what is in flight
 * (vfurt_dev_freeze; its client is still served meanwhile), then the
 * runtime stops reading and accepting on its sockets and waits for its
 * connection to be quiet. Waits at most timeout_ms in all, polling every
 * millisecond; no worker waits. On success nothing is served until
 * vfurt_runtime_thaw (or the process ends); on failure everything is
 * thawed again. Returns 0, -EINVAL, -ESHUTDOWN (not started, or stopped),
 * -ETIMEDOUT, -EBUSY (a device is being removed), -ENOTSUP (a device's
 * model has no save/restore), -ENOMEM, or a model's refusal; err (if not
 * NULL) names the device and the reason. Thread: any but a worker.
 */
VFURT_EXPORT int vfurt_runtime_freeze(struct vfurt_runtime *rt, uint32_t timeout_ms, char *err,
				      size_t errlen);

/* Serve again after vfurt_runtime_freeze (an upgrade that failed): every
 * device's model is thawed (it re-raises what the guest may be owed) and
 * its sockets read again. Thread: any but a worker. */
VFURT_EXPORT void vfurt_runtime_thaw(struct vfurt_runtime *rt);

/*
 * Write frozen dev's endpoint into the open section of s: its socket path,
 * listening socket, home worker, the device (vfurt_dev_save) and its
 * client's connection (vfurt_conn_save). Returns 0, -EINVAL, -ENOENT (dev
 * is not served here), -EBUSY (not frozen), or the save's error. Thread:
 * any but a worker.
 */
VFURT_EXPORT int vfurt_runtime_save_device(struct vfurt_runtime *rt, struct vfurt_dev *dev,
					   struct vfurt_state *s);

/*
 * In the new process, before vfurt_runtime_start: serve dev (created from
 * the same configuration as the saved one) on the listening socket of the
 * section c that vfurt_runtime_save_device wrote, with its state and its
 * client restored; its home worker is the saved one (modulo the worker
 * count). dev is thawed when its worker first runs. Returns 0 or a
 * negative errno with the reason in err (the image does not fit: -EBADMSG;
 * or as vfurt_runtime_add_device, vfurt_dev_restore, vfurt_conn_restore).
 * On failure the process must not serve: it holds part of the previous
 * process's state (end it; the previous process still serves). Thread:
 * the one that starts the runtime.
 */
VFURT_EXPORT int vfurt_runtime_restore_device(struct vfurt_runtime *rt, struct vfurt_dev *dev,
					      const struct vfurt_state_cur *c, char *err,
					      size_t errlen);

/*
 * The device served on socket path `path` (as given to add_device), or NULL.
 * The pointer stays valid until a removal of it completes. Thread: any.
 */
VFURT_EXPORT struct vfurt_dev *vfurt_runtime_find_device(struct vfurt_runtime *rt,
							 const char *path);

/*
 * One device's statistics as a JSON object, the same one
 * vfurt_runtime_stats_json lists under "devices": {"name", "socket",
 * "home_worker", "connected", "removing", "msgs", "errors", "queues":[{...,
 * "worker"}]}. Returns a malloc'ed string (caller frees) or NULL with errno
 * ENOENT (dev not served by rt) or ENOMEM. Thread: any (gathered on dev's
 * home worker while the runtime runs).
 */
VFURT_EXPORT char *vfurt_runtime_device_json(struct vfurt_runtime *rt, struct vfurt_dev *dev);

/* Start the worker threads, once. Returns 0, -EINVAL (rt NULL, started
 * before, or no_threads mode), or io_uring_queue_init's or pthread_create's
 * error (-ENOMEM, -EPERM, -EAGAIN...); on failure nothing is left running
 * and the runtime cannot be started again (destroy it). A worker that cannot
 * pin itself runs unpinned, with a warning. Thread: the control thread. */
VFURT_EXPORT int vfurt_runtime_start(struct vfurt_runtime *rt);

/*
 * Graceful stop: stop accepting, finish the message in progress on every
 * connection, close connections (as on a client disconnect), remove socket
 * files, join the workers. Idempotent. Thread: the control thread.
 */
VFURT_EXPORT void vfurt_runtime_stop(struct vfurt_runtime *rt);

/* Stop if running, destroy devices, free. NULL is ignored. Thread: the
 * control thread. */
VFURT_EXPORT void vfurt_runtime_destroy(struct vfurt_runtime *rt);

/* ---- workers ----------------------------------------------------------- */

/*
 * The number of workers: one per CPU of opts->cores, fixed when the runtime
 * is created (>= 1). rt must not be NULL. Thread: any.
 */
VFURT_EXPORT uint32_t vfurt_runtime_worker_count(const struct vfurt_runtime *rt);

/*
 * Worker i, for i < vfurt_runtime_worker_count(rt) (in the order of
 * opts->cores), or NULL when i is out of range. rt must not be NULL. The
 * worker belongs to the runtime and stays valid until vfurt_runtime_destroy
 * (also while stopped). Thread: any.
 */
VFURT_EXPORT struct vfurt_worker *vfurt_runtime_worker(const struct vfurt_runtime *rt, uint32_t i);

/*
 * The worker whose pass is running on the calling thread: on a worker
 * thread, from pollers, queue functions, cross-worker calls and device
 * callbacks it runs; inside vfurt_worker_run_pass(w), w. NULL on any other
 * thread (the control thread, an embedder's threads, a worker thread
 * after its runtime stopped). Thread: any.
 */
VFURT_EXPORT struct vfurt_worker *vfurt_worker_self(void);

/* w's index in its runtime (0 .. vfurt_runtime_worker_count - 1), as in
 * vfurt_runtime_worker() and the stats. w must not be NULL. Thread: any. */
VFURT_EXPORT uint32_t vfurt_worker_id(const struct vfurt_worker *w);

/* The CPU w runs on: its entry of opts->cores. Its thread pins itself there
 * when it starts (a failure is logged as a warning and the thread runs
 * unpinned); with no_threads nothing is pinned. w must not be NULL.
 * Thread: any. */
VFURT_EXPORT int vfurt_worker_cpu(const struct vfurt_worker *w);

/* ---- queue placement --------------------------------------------------- */

/*
 * The runtime polls each device queue (vfurt_dev_queue_add in device.h) as
 * a poller on one worker, chosen by the queue's hint:
 *  - VFURT_QUEUE_HOME: the device's home worker (vfurt_runtime_add_device),
 *    which also handles its messages and watched fds (NVMe: the admin
 *    queue, which creates and deletes the I/O queues);
 *  - a key k >= 0: worker k mod n, n the worker count (NVMe: the CQ id, so
 *    a CQ and its SQs share a worker and keep it across pauses);
 *  - VFURT_QUEUE_ANY (or any other negative hint): worker (queue index) mod n.
 * Starting or stopping a queue is a call run on that worker, which the
 * caller waits for (serving its own inbox meanwhile, so two workers placing
 * queues on each other do not deadlock). A queue fn's 1 (did work) counts as
 * its poller's VFURT_POLLER_BUSY.
 */

/* ---- pollers ----------------------------------------------------------- */

#define VFURT_POLLER_IDLE 0
#define VFURT_POLLER_BUSY 1

/* Return VFURT_POLLER_BUSY when it did work (keeps the worker spinning). */
typedef int (*vfurt_poller_fn)(void *arg);

/*
 * Register fn on worker w: period_us 0 = run every pass, otherwise at most
 * once per period. Thread: w's thread, or any thread before the runtime
 * starts. Returns NULL with errno EINVAL (w or fn NULL, period_us too large
 * to add to the clock) or ENOMEM.
 */
VFURT_EXPORT struct vfurt_poller *vfurt_poller_register(struct vfurt_worker *w,
							vfurt_poller_fn fn, void *arg,
							uint64_t period_us);

/*
 * Unregister and free *p, then set *p = NULL. Safe from inside the poller's
 * own callback (or another poller's on the same worker): it will not run
 * again. NULL or *p NULL is ignored. Thread: the owning worker.
 */
VFURT_EXPORT void vfurt_poller_unregister(struct vfurt_poller **p);

/*
 * Arm callback of an active poller (adaptive mode): before its worker
 * sleeps, fn(arg, true) enables the poller's wake-up notification (which
 * must end in vfurt_worker_wake() of this worker) and re-checks for work;
 * it returns a vfurt_arm value (device.h): VFURT_ARM_PENDING keeps the worker
 * awake, VFURT_ARM_POLL caps the sleep at adaptive_poll_sleep_us. After the
 * sleep fn(arg, false). Active pollers without one do not hold the worker
 * awake (they are only run when something else wakes it). fn NULL removes
 * it. Thread: the owning worker, or any thread before the runtime starts.
 */
typedef int (*vfurt_poller_arm_fn)(void *arg, bool arm);
VFURT_EXPORT void vfurt_poller_set_arm(struct vfurt_poller *p, vfurt_poller_arm_fn fn);

/* Wake worker w if it sleeps (adaptive mode); cheap when it is awake. Any
 * thread. */
VFURT_EXPORT void vfurt_worker_wake(struct vfurt_worker *w);

/* ---- cross-worker calls ----------------------------------------------- */

typedef void (*vfurt_msg_fn)(void *arg);

/*
 * Run fn(arg) on worker `to` during its next pass. Any thread may call it
 * (multi-producer ring per worker, bounded), including `to` itself. Returns
 * 0 (queued: fn will run exactly once), -EAGAIN (ring full: retry later) or
 * -EINVAL (to or fn NULL); fn is not queued on an error.
 */
VFURT_EXPORT int vfurt_worker_send(struct vfurt_worker *to, vfurt_msg_fn fn, void *arg);

/* ---- test and embedding support --------------------------------------- */

/* Run one pass of w on the calling thread (no_threads mode, or from w's own
 * thread); vfurt_worker_self() is w meanwhile. Returns true when the pass
 * did work; false also when another thread is running a pass of w (nothing
 * was done). */
VFURT_EXPORT bool vfurt_worker_run_pass(struct vfurt_worker *w);

/*
 * no_threads mode, after vfurt_runtime_start: the latest time (runtime
 * clock, opts.clock or CLOCK_MONOTONIC, in ns) at which the embedder must
 * run w's next pass; 0 = at once (work is pending), UINT64_MAX = only when
 * vfurt_worker_fd(w) becomes readable. Arms w's wake-ups (queue
 * notifications, vfurt_worker_wake): call it right before the embedder
 * sleeps; the next vfurt_worker_run_pass disarms them. Thread: the one
 * running w's passes.
 */
VFURT_EXPORT uint64_t vfurt_worker_next_deadline(struct vfurt_worker *w);

/*
 * no_threads mode, after vfurt_runtime_start: a file descriptor that polls
 * readable (POLLIN) when w has events to handle (socket activity, a wake-up,
 * a cross-worker message); -1 before start or in threaded mode. Owned by the
 * runtime; do not read or close it. Thread: any.
 */
VFURT_EXPORT int vfurt_worker_fd(const struct vfurt_worker *w);

/* ---- statistics -------------------------------------------------------- */

struct vfurt_worker_stats {
	size_t stats_size;      /* set by the caller: sizeof(struct vfurt_worker_stats) */
	uint64_t passes;
	uint64_t busy_passes;   /* passes that did work */
	uint64_t msgs;          /* vfio-user commands handled */
	uint64_t ring_msgs;     /* cross-core messages run */
	uint64_t irqs_raised;   /* triggers marked pending in the batch */
	uint64_t irqs_written;  /* eventfd writes after coalescing */
	uint64_t sleeps;        /* adaptive-mode sleeps */
	uint64_t busy_ns;       /* time in passes that did work */
	uint64_t total_ns;      /* time since start */
	uint64_t irq_submit_fallbacks; /* irq batches written by write(2): io_uring submit failed */
};

/*
 * What worker i is doing right now, as a short static string ("running
 * pollers", "handling messages", "waiting for another worker", "waiting for
 * an epoch grace period", "sleeping", "between passes", "not running"), or
 * NULL when i is out of range. Any thread; meant for diagnosing a worker
 * that does not stop (the daemon logs it when a shutdown times out).
 */
VFURT_EXPORT const char *vfurt_runtime_worker_where(const struct vfurt_runtime *rt, uint32_t i);

/*
 * Fill *st with worker i's counters; the caller sets st->stats_size first
 * (include/vfurt/abi.h). Returns 0 or -EINVAL (rt or st NULL, i out of range,
 * stats_size out of range). Any thread (relaxed atomic reads: each counter is
 * exact, the set is not a snapshot).
 */
VFURT_EXPORT int vfurt_runtime_get_worker_stats(const struct vfurt_runtime *rt, uint32_t i,
						struct vfurt_worker_stats *st);

/*
 * All statistics as a JSON document: {"workers":[...], "devices":[{"name",
 * "socket", "home_worker", "connected", "msgs", "errors", "queues":[...]}]}.
 * Returns a malloc'ed string (caller frees) or NULL with errno ENOMEM. Any
 * thread (while the runtime runs, each device's part is gathered by a call
 * on its home worker, which the caller waits for).
 */
VFURT_EXPORT char *vfurt_runtime_stats_json(const struct vfurt_runtime *rt);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_RUNTIME_H */
