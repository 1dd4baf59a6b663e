/* Runtime internals shared by rt*.c (runtime object, endpoints, hosting, stats) and worker.c. */
#ifndef VFURT_RUNTIME_RT_INTERNAL_H
#define VFURT_RUNTIME_RT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <ck_epoch.h>
#include <liburing.h>

#include <vfurt/engine.h>
#include <vfurt/runtime.h>

#include "io/log_internal.h" /* an io/ internal runtime/ may use (CMakeLists.txt) */
#include "poller.h"
#include "ring.h"

#define RT_RING_SLOTS 1024u      /* cross-core inbox per worker */
#define RT_DEFERRED_SLOTS (2u * RT_RING_SLOTS) /* set aside by a nested inbox poll */
#define RT_INBOX_BATCH 64u       /* messages drained per pass */
#define RT_IRQ_BATCH 256u        /* distinct eventfds per pass */
#define RT_URING_ENTRIES 256u
#define RT_MAX_WATCHES 64u
#define RT_CMSG_FDS 64u

struct rt_endpoint;

/* What an io_uring completion belongs to (user_data points at one). */
enum rt_op_kind {
	RT_OP_ACCEPT,
	RT_OP_RECV,
	RT_OP_WATCH,
	RT_OP_WAKE,
	RT_OP_SEND,              /* POLLOUT while the connection has output queued */
};

struct rt_op {
	enum rt_op_kind kind;
	struct rt_endpoint *ep;
	uint32_t watch;          /* RT_OP_WATCH: index into ep->watches */
	bool armed;
	bool stale;              /* RT_OP_WATCH: polls an fd no longer watched */
};

/* A device served by the runtime: its socket, connection and watched fds. */
struct rt_endpoint {
	struct vfurt_runtime *rt;
	struct vfurt_worker *home;
	struct vfurt_dev *dev;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int lfd;
	struct vfurt_conn *conn;
	/* receive in flight */
	struct msghdr msg;
	struct iovec iov;
	struct {
		_Alignas(struct cmsghdr) char buf[CMSG_SPACE(sizeof(int) * RT_CMSG_FDS)];
	} cmsg;
	struct rt_op accept_op;
	struct rt_op recv_op;
	struct rt_op send_op;
	struct vfurt_dev_watch watches[RT_MAX_WATCHES];
	struct rt_op watch_ops[RT_MAX_WATCHES];
	uint32_t nr_watches;
	uint32_t watch_gen;      /* vfurt_dev_watch_gen() the set was taken at */
	bool closing;
	bool accept_backoff;
	/* live upgrade (rt_upgrade.c), home worker's: nothing is armed while
	 * frozen; thaw_pending: a restored device is thawed when first armed */
	bool frozen;
	bool dev_frozen;         /* vfurt_dev_freeze returned 0 */
	bool thaw_pending;     /* accept failed for want of fds: retry at the tick */
	/* removal (vfurt_runtime_remove_device): asked for under rt->lock,
	 * then driven by the home worker (removing and after: its fields) */
	bool remove_asked;
	bool removing;
	bool zombie;             /* device destroyed: waiting for its io_uring ops */
	bool cancels_sent;       /* zombie: cancels of its armed ops submitted */
	bool gone;               /* out of rt->eps: stats calls skip it */
	enum vfurt_remove_how how;
	uint64_t remove_deadline_ns;
	uint32_t remove_timeout_ms;
	vfurt_remove_done_fn remove_done;
	void *remove_arg;
	_Atomic uint32_t refs;   /* rt->eps holds one; stats readers take one */
	struct rt_endpoint *zombie_next;
	struct log_ratelimit refuse_rl; /* "refusing a second client": anyone may connect */
	/* stats of past connections (the live one is read from conn) */
	uint64_t msgs_done;
	uint64_t errors_done;
	_Atomic uint64_t msgs;   /* published copy for stats readers */
	_Atomic uint64_t errors;
	_Atomic bool connected;
};

/* Per-worker counters, written by the worker with relaxed stores. */
struct rt_stats {
	_Atomic uint64_t passes;
	_Atomic uint64_t busy_passes;
	_Atomic uint64_t msgs;
	_Atomic uint64_t ring_msgs;
	_Atomic uint64_t irqs_raised;
	_Atomic uint64_t irqs_written;
	_Atomic uint64_t sleeps;
	_Atomic uint64_t irq_submit_fallbacks; /* irq writes done by write(2) after a failed submit */
	_Atomic uint64_t busy_ns;
	_Atomic uint64_t start_ns;
};

/* A completion kept for later (struct vfurt_worker.postponed). */
struct rt_cqe {
	struct rt_op *op;
	int res;
};

struct vfurt_worker {
	struct vfurt_runtime *rt;
	uint32_t id;
	int cpu;
	pthread_t thread;
	_Atomic bool thread_started;
	struct io_uring ring;
	bool ring_ok;
	unsigned pending_sqes;
	struct vfurt_poller_set *pollers;
	struct vfurt_msg_ring *inbox;
	ck_epoch_record_t epoch_rec;
	int wake_fd;             /* eventfd: wakes an adaptive worker */
	struct rt_op wake_op;
	uint64_t wake_buf;
	_Atomic int sleeping;
	_Atomic bool stop;
	_Atomic(const char *) where; /* vfurt_runtime_worker_where */
	/* endpoints homed here */
	struct rt_endpoint **eps;
	uint32_t nr_eps;
	/* irq batch of this pass */
	int irq_fds[RT_IRQ_BATCH];
	uint32_t nr_irq;
	/* completions reaped while waiting for a cancelled recv (endpoint drop):
	 * handled by the pass's reap, in order */
	struct rt_cqe *postponed;
	uint32_t nr_postponed;
	uint32_t cap_postponed;
	/* removed endpoints waiting for their io_uring ops (rt_remove.c) */
	struct rt_endpoint *zombies;
	/* no_threads mode: the thread running a pass (an address unique to it)
	 * or 0; next_deadline armed the wake-ups */
	_Atomic uintptr_t owner;
	bool embed_armed;
	int embed_arm;           /* the pollers' answer when armed */
	/* messages set aside by a nested inbox poll */
	struct vfurt_ring_msg *deferred;
	uint32_t nr_deferred;
	uint32_t cap_deferred;
	uint64_t idle_since_ns;
	uint64_t last_tick_ns;   /* connection timers (vfr_rt_worker_tick) */
	bool wake_rearm;         /* the wake read could not be re-armed yet */
	bool has_clients;        /* some endpoint homed here has a connection */
	struct rt_stats st;
	char log_prefix[24];
	struct vfurt_log log;    /* runtime log, prefixed with the worker id */
};

/* Record what the calling worker is doing (for vfurt_runtime_worker_where);
 * returns what it was doing, for putting back. w NULL: not a worker. */
static inline const char *rt_worker_where(struct vfurt_worker *w, const char *what)
{
	return w ? atomic_exchange_explicit(&w->where, what, memory_order_relaxed) : NULL;
}

struct vfurt_runtime {
	struct vfurt_log log;
	struct vfurt_conn_opts conn_opts;
	struct vfurt_dma_quota *dma_quota; /* of every device's fd-backed windows */
	bool own_quota;
	enum vfurt_poll_mode mode;
	uint64_t spin_ns;
	uint64_t sleep_max_ns;
	uint64_t poll_sleep_ns;   /* cap while a queue answers VFURT_ARM_POLL */
	bool irq_unbatched;
	bool no_threads;
	vfurt_clock_fn clock;
	void *clock_arg;
	ck_epoch_t epoch;
	struct vfurt_worker *workers;
	uint32_t nr_workers;
	/* every endpoint served or being removed; the array under lock (any
	 * thread reads it: stats, find, remove) */
	pthread_mutex_t lock;
	struct rt_endpoint **eps;
	uint32_t nr_eps;
	uint32_t cap_eps;
	_Atomic uint32_t next_home;
	bool started;
	bool stopped;
};

uint64_t vfr_rt_now(const struct vfurt_runtime *rt);
/* vfurt_runtime_add_device on a listening socket lfd >= 0 (taken on success
 * only; path is not bound or unlinked here), or a new one (lfd -1). */
int vfr_rt_add_endpoint(struct vfurt_runtime *rt, struct vfurt_dev *dev, const char *path,
			mode_t mode, int worker, int lfd);
/* Check the RLIMIT_NOFILE room for every device's clients (rt.c). */
void vfr_rt_check_fd_budget(struct vfurt_runtime *rt);

/* worker.c */
int vfr_rt_worker_init(struct vfurt_runtime *rt, struct vfurt_worker *w, uint32_t id, int cpu);
void vfr_rt_worker_fini(struct vfurt_worker *w);
/* Set up w's io_uring and arm its endpoints (no thread). 0 or -errno. */
int vfr_rt_worker_ring_init(struct vfurt_worker *w);
/* vfr_rt_worker_ring_init, then start w's thread. 0 or -errno. */
int vfr_rt_worker_start(struct vfurt_worker *w);
void vfr_rt_worker_join(struct vfurt_worker *w);
/* Run every callback deferred on w's epoch record now (ck_epoch_reclaim):
 * only once no thread can read what they free (w's thread joined). */
void vfr_rt_worker_reclaim(struct vfurt_worker *w);
/* Queue an eventfd write into the calling worker's batch; false when the
 * caller must write it now: not a worker, the batch is full, or the runtime
 * runs unbatched (the write is counted as written then). */
bool vfr_rt_irq_batch_add(int fd);
/* While the calling worker waits for another worker (which may be waiting
 * for it): run its queued messages whose fn is `nestable`, set the others
 * aside for its next pass. Returns how many were dequeued. */
int vfr_rt_worker_poll_inbox(void (*nestable)(void *arg));
/* Write the calling worker's pending irqs now (before fds may be closed). */
void vfr_rt_irq_batch_flush(void);
/* An SQE of w's ring, submitting what is queued once to make room; NULL
 * when there is still none (the caller retries later). w's thread. */
struct io_uring_sqe *vfr_rt_get_sqe(struct vfurt_worker *w);
/* Keep a completion reaped out of turn for w's next reap (in order). */
void vfr_rt_postpone_cqe(struct vfurt_worker *w, struct rt_op *op, int res);
/* Take op's postponed completion, if one is kept: true with *res. */
bool vfr_rt_take_postponed(struct vfurt_worker *w, const struct rt_op *op, int *res);
/* no_threads mode: an address unique to the calling thread; claim w for
 * the calling thread (false: another thread runs a pass of w), release. */
uintptr_t vfr_rt_thread_token(void);
bool vfr_rt_worker_claim(struct vfurt_worker *w);
void vfr_rt_worker_release(struct vfurt_worker *w);
/* Make w the calling thread's worker (vfurt_worker_self); returns the
 * previous one, to put back. */
struct vfurt_worker *vfr_rt_worker_enter(struct vfurt_worker *w);

/* rt_host.c: device hosting */
extern const struct vfurt_dev_host_ops vfr_rt_host_ops;
/* Run fn(arg) on worker w and wait: directly when the caller is w or no worker
 * thread runs; control-plane calls, run between messages. 0 or -EINVAL. */
int vfr_rt_run_on(struct vfurt_runtime *rt, struct vfurt_worker *w, void (*fn)(void *), void *arg);
/* The worker that polls q of ep's device (runtime.h, "queue placement"). Any thread. */
struct vfurt_worker *vfr_rt_queue_worker(const struct rt_endpoint *ep, struct vfurt_queue *q);
/* Take ep out of rt->eps (under rt->lock) and mark it gone. Any thread. */
void vfr_rt_eps_remove(struct rt_endpoint *ep);
/* Take ep out of its home worker's list: the home worker, or no worker runs. */
void vfr_rt_home_remove(struct rt_endpoint *ep);
/* The endpoint serving dev, or NULL. The caller holds rt->lock. */
struct rt_endpoint *vfr_rt_ep_of(const struct vfurt_runtime *rt, const struct vfurt_dev *dev);
/* Drop a reference to ep (taken with vfr_rt_ep_get); the last frees it. */
void vfr_rt_ep_put(struct rt_endpoint *ep);
static inline void vfr_rt_ep_get(struct rt_endpoint *ep)
{
	atomic_fetch_add_explicit(&ep->refs, 1, memory_order_relaxed);
}

/* rt_endpoint.c: endpoint events */
/* Close the endpoint's connection as a client disconnect would (home worker). */
void vfr_rt_endpoint_drop(struct rt_endpoint *ep, int why);
/* Handle one completion for an endpoint (home worker). */
void vfr_rt_endpoint_event(struct vfurt_worker *w, struct rt_op *op, int res);
/* Arm accept/recv/watch operations for the endpoints of w. */
void vfr_rt_endpoint_arm(struct vfurt_worker *w, struct rt_endpoint *ep);
/* From a queue poller (any worker) after a DMA window of ep's device lost
 * its backing: have the home worker disconnect the client once the poller
 * returned. */
void vfr_rt_lost_notify(struct rt_endpoint *ep);
/* Home worker: begin removing ep (vfurt_runtime_remove_device). */
void vfr_rt_remove_start(void *ep);
/* Home worker: advance ep's removal (client gone, deadline passed, ops
 * drained). Returns true when ep was finished and must not be touched. */
bool vfr_rt_remove_step(struct vfurt_worker *w, struct rt_endpoint *ep, uint64_t now_ns);
/* Home worker: run the zombies' completions bookkeeping (from the tick). */
void vfr_rt_zombies_step(struct vfurt_worker *w);
/* Ask the kernel to end ep's armed io_uring operations (false: the SQ was
 * full, try again); whether any is still armed (rt_remove.c). */
bool vfr_rt_ep_cancel_ops(struct vfurt_worker *w, struct rt_endpoint *ep);
bool vfr_rt_ep_ops_armed(struct rt_endpoint *ep);
/* No worker runs any more (stop): finish every removal at once. */
void vfr_rt_remove_finish_stopped(struct vfurt_runtime *rt);
/* Drop ep from rt->eps, call its done callback, drop the list's reference. */
void vfr_rt_remove_complete(struct rt_endpoint *ep);

/* Connection timers run this often; an adaptive worker sleeps no longer
 * while it has a client. */
#define RT_TICK_NS (100ull * 1000 * 1000)

/* Every RT_TICK_NS: run the timers of w's connections (vfurt_conn_tick),
 * drop the ones that expired, re-arm the others. Returns true when w has a
 * connected client. */
bool vfr_rt_worker_tick(struct vfurt_worker *w, uint64_t now_ns);

#endif /* VFURT_RUNTIME_RT_INTERNAL_H */
