/* Interrupt delivery cost: direct eventfd writes, coalescing, io_uring-submitted batches, the runtime's pass flush. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <liburing.h>

#include <vfurt/runtime.h>

#include "runtime/rt_internal.h"

#include "suites.h"

#define MAX_FDS 32
#define URING_ENTRIES 64u

static const uint64_t one = 1;

struct irq_fx {
	int fds[MAX_FDS];
	int nfds;
	struct io_uring ring;
	bool ring_ok;
	unsigned inflight;   /* io_uring writes submitted, not yet reaped */
	uint64_t inline_cqes; /* completions already posted when submit returned */
	uint64_t cqes;
};

static void irq_teardown(void *p)
{
	struct irq_fx *fx = p;

	if (fx->ring_ok)
		io_uring_queue_exit(&fx->ring);
	for (int i = 0; i < fx->nfds; i++)
		close(fx->fds[i]);
	free(fx);
}

static void *irq_setup(int64_t n, bool uring, const char **why)
{
	struct irq_fx *fx = calloc(1, sizeof(*fx));
	int rc;

	if (!fx)
		return NULL;
	for (int i = 0; i < n && i < MAX_FDS; i++) {
		fx->fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fx->fds[i] < 0) {
			*why = "eventfd failed";
			goto err;
		}
		fx->nfds++;
	}
	if (uring) {
		rc = io_uring_queue_init(URING_ENTRIES, &fx->ring, 0);
		if (rc) {
			*why = "io_uring_queue_init failed (io_uring disabled?)";
			goto err;
		}
		fx->ring_ok = true;
	}
	return fx;

err:
	irq_teardown(fx);
	return NULL;
}

static void *direct_setup(int64_t n, const char **why)
{
	return irq_setup(n, false, why);
}

static void *uring_setup(int64_t n, const char **why)
{
	return irq_setup(n, true, why);
}

static void write_one(int fd)
{
	ssize_t r;

	do {
		r = write(fd, &one, sizeof(one));
	} while (r < 0 && errno == EINTR);
}

/* One write(2) per eventfd: what the runtime's flush does today. */
static void bm_direct_write(struct vfurt_bench_state *st)
{
	struct irq_fx *fx = vfurt_bench_fixture(st);

	while (vfurt_bench_keep_running_batch(st, (uint64_t)fx->nfds))
		for (int i = 0; i < fx->nfds; i++)
			write_one(fx->fds[i]);
	vfurt_bench_set_items(st, (int64_t)vfurt_bench_iterations(st));
}

static unsigned reap(struct irq_fx *fx)
{
	struct io_uring_cqe *cqe;
	unsigned head;
	unsigned n = 0;

	io_uring_for_each_cqe(&fx->ring, head, cqe)
		n++;
	io_uring_cq_advance(&fx->ring, n);
	fx->inflight -= n;
	fx->cqes += n;
	return n;
}

/* Queue one write SQE per eventfd. The SQ and CQ always have room: at
 * most URING_ENTRIES writes are in flight. */
static void queue_writes(struct irq_fx *fx)
{
	while (fx->inflight + (unsigned)fx->nfds > URING_ENTRIES) {
		struct io_uring_cqe *cqe;

		if (io_uring_wait_cqe(&fx->ring, &cqe))
			break;
		reap(fx);
	}
	for (int i = 0; i < fx->nfds; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&fx->ring);

		io_uring_prep_write(sqe, fx->fds[i], &one, sizeof(one), 0);
		sqe->user_data = (uint64_t)i;
	}
	fx->inflight += (unsigned)fx->nfds;
}

static void uring_report(struct vfurt_bench_state *st, struct irq_fx *fx)
{
	struct io_uring_cqe *cqe;

	while (fx->inflight && io_uring_wait_cqe(&fx->ring, &cqe) == 0)
		reap(fx);
	vfurt_bench_set_items(st, (int64_t)vfurt_bench_iterations(st));
	if (fx->cqes)
		vfurt_bench_counter(st, "inline_completion_frac",
				    (double)fx->inline_cqes / (double)fx->cqes);
}

/* One io_uring_enter for the whole batch; completions reaped without
 * waiting (as a worker would at its next pass). */
static void bm_uring_submit(struct vfurt_bench_state *st)
{
	struct irq_fx *fx = vfurt_bench_fixture(st);

	fx->inline_cqes = fx->cqes = 0;
	while (vfurt_bench_keep_running_batch(st, (uint64_t)fx->nfds)) {
		queue_writes(fx);
		io_uring_submit(&fx->ring);
		fx->inline_cqes += reap(fx);
	}
	uring_report(st, fx);
}

/* The same, but waiting until every write of the batch completed. */
static void bm_uring_submit_wait(struct vfurt_bench_state *st)
{
	struct irq_fx *fx = vfurt_bench_fixture(st);

	fx->inline_cqes = fx->cqes = 0;
	while (vfurt_bench_keep_running_batch(st, (uint64_t)fx->nfds)) {
		queue_writes(fx);
		io_uring_submit_and_wait(&fx->ring, fx->inflight);
		fx->inline_cqes += reap(fx);
	}
	uring_report(st, fx);
}

/* N triggers of one vector during a pass, one write at its end: pending
 * flag set per trigger, the eventfd written once (SPDK's need_kick). */
static void bm_coalesced(struct vfurt_bench_state *st)
{
	struct irq_fx *fx = vfurt_bench_fixture(st);
	uint64_t n = (uint64_t)vfurt_bench_arg(st);
	volatile bool pending = false;

	while (vfurt_bench_keep_running_batch(st, n)) {
		for (uint64_t i = 0; i < n; i++)
			pending = true;
		if (pending) {
			write_one(fx->fds[0]);
			pending = false;
		}
	}
	vfurt_bench_set_items(st, (int64_t)vfurt_bench_iterations(st));
}

static void *one_fd_setup(int64_t n, const char **why)
{
	return irq_setup(1, false, why);
}

/* ---- through the runtime's irq batch ------------------------------------ */

struct rt_irq_fx {
	struct vfurt_runtime *rt;
	struct vfurt_worker *w;
	int fd;
	uint32_t triggers;  /* per pass */
	uint64_t direct;    /* triggers the batch refused (written by the caller) */
};

/* Raise `triggers` irqs on the same eventfd, as a queue poller completing
 * several commands of one queue would. */
static int irq_poller(void *arg)
{
	struct rt_irq_fx *fx = arg;

	for (uint32_t i = 0; i < fx->triggers; i++) {
		if (!vfr_rt_irq_batch_add(fx->fd)) {
			write_one(fx->fd);
			fx->direct++;
		}
	}
	return VFURT_POLLER_BUSY;
}

static void rt_irq_teardown(void *p)
{
	struct rt_irq_fx *fx = p;

	vfurt_runtime_destroy(fx->rt);
	close(fx->fd);
	free(fx);
}

static void *rt_irq_setup(int64_t triggers, const char **why)
{
	struct vfurt_runtime_opts o = { .opts_size = sizeof(o), .cores = "0",
					.poll_mode = VFURT_POLL_BUSY, .no_threads = true };
	struct rt_irq_fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return NULL;
	fx->triggers = (uint32_t)triggers;
	fx->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fx->fd < 0)
		goto err_free;
	fx->rt = vfurt_runtime_create(&o, NULL, 0);
	if (!fx->rt)
		goto err_close;
	fx->w = vfurt_runtime_worker(fx->rt, 0);
	if (!vfurt_poller_register(fx->w, irq_poller, fx, 0))
		goto err_rt;
	return fx;

err_rt:
	vfurt_runtime_destroy(fx->rt);
err_close:
	close(fx->fd);
err_free:
	free(fx);
	*why = "no_threads runtime setup failed";
	return NULL;
}

/* A whole worker pass whose poller raises N irqs of one vector; the pass
 * flushes them with one write. One op is one trigger. */
static void bm_rt_pass(struct vfurt_bench_state *st)
{
	struct rt_irq_fx *fx = vfurt_bench_fixture(st);

	fx->direct = 0;
	while (vfurt_bench_keep_running_batch(st, fx->triggers))
		vfurt_worker_run_pass(fx->w);
	vfurt_bench_set_items(st, (int64_t)vfurt_bench_iterations(st));
	if (fx->direct)
		vfurt_bench_counter(st, "unbatched", (double)fx->direct);
}

const struct vfurt_bench_case bench_irq_cases[] = {
	{ .name = "irq/direct_write", .fn = bm_direct_write, .setup = direct_setup,
	  .teardown = irq_teardown, .arg_name = "fds", .args = { 1, 8, 32 }, .nargs = 3 },
	{ .name = "irq/uring_submit", .fn = bm_uring_submit, .setup = uring_setup,
	  .teardown = irq_teardown, .arg_name = "fds", .args = { 1, 8, 32 }, .nargs = 3 },
	{ .name = "irq/uring_submit_wait", .fn = bm_uring_submit_wait, .setup = uring_setup,
	  .teardown = irq_teardown, .arg_name = "fds", .args = { 1, 8, 32 }, .nargs = 3 },
	{ .name = "irq/coalesced_same_fd", .fn = bm_coalesced, .setup = one_fd_setup,
	  .teardown = irq_teardown, .arg_name = "triggers", .args = { 32 }, .nargs = 1 },
	{ .name = "irq/runtime_pass_same_fd", .fn = bm_rt_pass, .setup = rt_irq_setup,
	  .teardown = rt_irq_teardown, .arg_name = "triggers", .args = { 1, 32 }, .nargs = 2 },
	{ .name = NULL },
};
