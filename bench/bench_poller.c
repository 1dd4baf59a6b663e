/* Worker pass overhead: a no_threads runtime with N idle pollers, timed pollers, and inbox messages. */
#include <errno.h>
#include <stdlib.h>

#include <vfurt/runtime.h>

#include "suites.h"

#define MAX_POLLERS 64

struct pass_fx {
	struct vfurt_runtime *rt;
	struct vfurt_worker *w;
	uint64_t calls; /* poller and message invocations */
};

static int idle_poller(void *arg)
{
	struct pass_fx *fx = arg;

	fx->calls++;
	return VFURT_POLLER_IDLE;
}

static void count_msg(void *arg)
{
	struct pass_fx *fx = arg;

	fx->calls++;
}

/* A runtime whose single worker (CPU 0) is driven from this thread. */
static struct pass_fx *pass_fx_create(const char **why)
{
	struct vfurt_runtime_opts o = { .opts_size = sizeof(o), .cores = "0",
					.poll_mode = VFURT_POLL_BUSY, .no_threads = true };
	struct pass_fx *fx = calloc(1, sizeof(*fx));
	static const char fail[] = "vfurt_runtime_create(no_threads) failed";

	if (!fx)
		return NULL;
	fx->rt = vfurt_runtime_create(&o, NULL, 0);
	if (!fx->rt) {
		*why = fail;
		free(fx);
		return NULL;
	}
	fx->w = vfurt_runtime_worker(fx->rt, 0);
	return fx;
}

static void pass_teardown(void *p)
{
	struct pass_fx *fx = p;

	vfurt_runtime_destroy(fx->rt);
	free(fx);
}

static void *setup_pollers(int64_t n, uint64_t period_us, const char **why)
{
	struct pass_fx *fx = pass_fx_create(why);

	if (!fx)
		return NULL;
	for (int64_t i = 0; i < n && i < MAX_POLLERS; i++) {
		if (!vfurt_poller_register(fx->w, idle_poller, fx, period_us)) {
			*why = "vfurt_poller_register failed";
			pass_teardown(fx);
			return NULL;
		}
	}
	return fx;
}

static void *active_setup(int64_t n, const char **why)
{
	return setup_pollers(n, 0, why);
}

/* Timed pollers that are never due inside a run: the pass only checks the
 * cached earliest deadline. */
static void *timed_setup(int64_t n, const char **why)
{
	return setup_pollers(n, 10u * 1000u * 1000u, why);
}

/* One worker pass (inbox, active pollers, due timers, irq flush). */
static void bm_pass(struct vfurt_bench_state *st)
{
	struct pass_fx *fx = vfurt_bench_fixture(st);
	uint64_t busy = 0;

	fx->calls = 0;
	while (vfurt_bench_keep_running_batch(st, 16))
		for (int i = 0; i < 16; i++)
			busy += vfurt_worker_run_pass(fx->w);
	vfurt_bench_counter(st, "poller_calls_per_pass",
			    (double)fx->calls /
				    (double)(vfurt_bench_iterations(st) ? vfurt_bench_iterations(st) : 1));
	if (busy)
		vfurt_bench_counter(st, "busy_passes", (double)busy);
}

static void *inbox_setup(int64_t arg, const char **why)
{
	return pass_fx_create(why);
}

/* vfurt_worker_send of `batch` messages, then the pass that runs them; one
 * op is one message (same thread: the ring's cost without cache misses). */
static void bm_inbox(struct vfurt_bench_state *st)
{
	struct pass_fx *fx = vfurt_bench_fixture(st);
	uint64_t batch = (uint64_t)vfurt_bench_arg(st);
	uint64_t refused = 0;

	fx->calls = 0;
	while (vfurt_bench_keep_running_batch(st, batch)) {
		for (uint64_t i = 0; i < batch; i++)
			if (vfurt_worker_send(fx->w, count_msg, fx))
				refused++;
		vfurt_worker_run_pass(fx->w);
	}
	if (refused)
		vfurt_bench_counter(st, "refused", (double)refused);
}

const struct vfurt_bench_case bench_poller_cases[] = {
	{ .name = "pass/idle_pollers", .fn = bm_pass, .setup = active_setup,
	  .teardown = pass_teardown, .arg_name = "n", .args = { 0, 1, 8, 64 }, .nargs = 4 },
	{ .name = "pass/timed_not_due", .fn = bm_pass, .setup = timed_setup,
	  .teardown = pass_teardown, .arg_name = "n", .args = { 64 }, .nargs = 1 },
	{ .name = "pass/inbox_msg", .fn = bm_inbox, .setup = inbox_setup,
	  .teardown = pass_teardown, .arg_name = "batch", .args = { 1, 32 }, .nargs = 2 },
	{ .name = NULL },
};
