/* Unit tests of the worker pass with fake workers (no threads) and a fake clock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <vfurt/runtime.h>

#define US 1000ull    /* ns */
#define MS 1000000ull /* ns */
#define T0 (1000 * MS) /* the fake clock's start: not 0, to catch "0 = unset" mixups */

#define RING_CAPACITY 1023u /* 1024 slots, one kept empty */
#define INBOX_BATCH 64u

struct fx {
	struct vfurt_runtime *rt;
	struct vfurt_worker *w0;
	struct vfurt_worker *w1;
	uint64_t now;   /* the fake clock */
	unsigned reads; /* how often the runtime read it */
};

static uint64_t fake_clock(void *arg)
{
	struct fx *f = arg;

	f->reads++;
	return f->now;
}

static int setup_cores(void **state, const char *cores)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vfurt_runtime_opts o = {
		.opts_size = sizeof(o),
		.cores = cores,
		.no_threads = true,
		.clock = fake_clock,
	};
	char err[128] = "";

	assert_non_null(f);
	f->now = T0;
	o.clock_arg = f;
	f->rt = vfurt_runtime_create(&o, err, sizeof(err));
	assert_non_null(f->rt);
	f->w0 = vfurt_runtime_worker(f->rt, 0);
	f->w1 = vfurt_runtime_worker(f->rt, 1);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_cores(state, "0-1");
}

static int teardown(void **state)
{
	struct fx *f = *state;

	vfurt_runtime_destroy(f->rt);
	free(f);
	return 0;
}

static struct vfurt_worker_stats stats(const struct fx *f, uint32_t i)
{
	struct vfurt_worker_stats st = { .stats_size = sizeof(st) };

	memset(&st, 0xa5, sizeof(st));
	st.stats_size = sizeof(st);
	assert_int_equal(vfurt_runtime_get_worker_stats(f->rt, i, &st), 0);
	return st;
}

/* ---- test pollers and messages ------------------------------------------ */

/* A test poller: counts runs, records where it ran, optionally acts. */
struct tp {
	struct fx *f;
	struct vfurt_poller *self;
	int ret;                     /* VFURT_POLLER_BUSY or _IDLE */
	unsigned runs;
	uint64_t last_run_ns;        /* fake clock at the last run */
	struct vfurt_worker *ran_on; /* vfurt_worker_self() at the last run */
	unsigned unregister_at;      /* unregister itself on this run (0 = never) */
	struct tp *kill;             /* unregister this other poller when run */
	uint64_t advance_ns;         /* move the fake clock forward when run */
};

static int tp_fn(void *arg)
{
	struct tp *t = arg;

	t->runs++;
	t->last_run_ns = t->f->now;
	t->ran_on = vfurt_worker_self();
	t->f->now += t->advance_ns;
	if (t->kill && t->kill->self) {
		vfurt_poller_unregister(&t->kill->self);
		assert_null(t->kill->self);
	}
	if (t->unregister_at && t->runs == t->unregister_at) {
		vfurt_poller_unregister(&t->self);
		assert_null(t->self);
	}
	return t->ret;
}

static void tp_register(struct tp *t, struct fx *f, struct vfurt_worker *w, uint64_t period_us,
			int ret)
{
	memset(t, 0, sizeof(*t));
	t->f = f;
	t->ret = ret;
	t->self = vfurt_poller_register(w, tp_fn, t, period_us);
	assert_non_null(t->self);
}

/* A test message: counts runs and records the worker and the order. */
struct msg {
	unsigned runs;
	struct vfurt_worker *ran_on;
	unsigned *order;  /* shared sequence counter */
	unsigned seq;     /* *order at the run */
};

static void msg_fn(void *arg)
{
	struct msg *m = arg;

	m->runs++;
	m->ran_on = vfurt_worker_self();
	if (m->order)
		m->seq = (*m->order)++;
}

static void count_fn(void *arg)
{
	(*(unsigned *)arg)++;
}

/* ---- creation ----------------------------------------------------------- */

static void test_create_fake_workers(void **state)
{
	struct fx *f = *state;

	assert_int_equal(vfurt_runtime_worker_count(f->rt), 2);
	assert_non_null(f->w0);
	assert_non_null(f->w1);
	assert_ptr_not_equal(f->w0, f->w1);
	assert_null(vfurt_runtime_worker(f->rt, 2));
	assert_int_equal(vfurt_worker_id(f->w0), 0);
	assert_int_equal(vfurt_worker_id(f->w1), 1);
	assert_int_equal(vfurt_worker_cpu(f->w0), 0);
	assert_int_equal(vfurt_worker_cpu(f->w1), 1);
	/* a fresh runtime: every counter 0 (total_ns too: no thread started) */
	for (uint32_t i = 0; i < 2; i++) {
		struct vfurt_worker_stats st = stats(f, i);

		assert_int_equal(st.passes, 0);
		assert_int_equal(st.busy_passes, 0);
		assert_int_equal(st.msgs, 0);
		assert_int_equal(st.ring_msgs, 0);
		assert_int_equal(st.irqs_raised, 0);
		assert_int_equal(st.irqs_written, 0);
		assert_int_equal(st.sleeps, 0);
		assert_int_equal(st.busy_ns, 0);
		assert_int_equal(st.total_ns, 0);
	}
	assert_int_equal(vfurt_runtime_get_worker_stats(f->rt, 2, &(struct vfurt_worker_stats){
				 .stats_size = sizeof(struct vfurt_worker_stats) }), -EINVAL);
	assert_int_equal(vfurt_runtime_get_worker_stats(f->rt, 0, &(struct vfurt_worker_stats){
				 .stats_size = 0 }), -EINVAL);
	assert_int_equal(vfurt_runtime_get_worker_stats(f->rt, 0, NULL), -EINVAL);
	/* embedder-threads mode: start sets up the rings, no thread; once */
	assert_int_equal(vfurt_worker_fd(f->w0), -1);
	assert_int_equal(vfurt_runtime_start(f->rt), 0);
	assert_true(vfurt_worker_fd(f->w0) >= 0);
	assert_true(vfurt_worker_fd(f->w1) >= 0);
	assert_int_equal(vfurt_runtime_start(f->rt), -EINVAL);
	assert_string_equal(vfurt_runtime_worker_where(f->rt, 0), "not running");
}

/* CPUs are only parsed in this mode: any number goes, syntax still checked. */
static void test_create_cpus_not_validated(void **state)
{
	struct vfurt_runtime_opts o = { .opts_size = sizeof(o), .no_threads = true };
	struct vfurt_runtime *rt;
	char err[128] = "";

	(void)state;
	o.cores = "500,1000-1002";
	rt = vfurt_runtime_create(&o, err, sizeof(err));
	assert_non_null(rt);
	assert_int_equal(vfurt_runtime_worker_count(rt), 4);
	assert_int_equal(vfurt_worker_cpu(vfurt_runtime_worker(rt, 0)), 500);
	assert_int_equal(vfurt_worker_cpu(vfurt_runtime_worker(rt, 3)), 1002);
	vfurt_runtime_destroy(rt);

	o.cores = NULL; /* default "0" */
	rt = vfurt_runtime_create(&o, err, sizeof(err));
	assert_non_null(rt);
	assert_int_equal(vfurt_runtime_worker_count(rt), 1);
	vfurt_runtime_destroy(rt);

	o.cores = "1-x";
	errno = 0;
	assert_null(vfurt_runtime_create(&o, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	assert_true(err[0] != '\0');
}

/* ---- passes ------------------------------------------------------------- */

static void test_empty_pass_idle(void **state)
{
	struct fx *f = *state;
	struct vfurt_worker_stats st = { .stats_size = sizeof(st) };

	for (int i = 0; i < 10; i++)
		assert_false(vfurt_worker_run_pass(f->w0));
	st = stats(f, 0);
	assert_int_equal(st.passes, 10);
	assert_int_equal(st.busy_passes, 0);
	assert_int_equal(st.busy_ns, 0);
	assert_int_equal(stats(f, 1).passes, 0);
}

static void test_active_every_pass(void **state)
{
	struct fx *f = *state;
	struct tp a, b, c;

	tp_register(&a, f, f->w0, 0, VFURT_POLLER_IDLE);
	tp_register(&b, f, f->w0, 0, VFURT_POLLER_IDLE);
	tp_register(&c, f, f->w1, 0, VFURT_POLLER_IDLE);
	for (unsigned i = 1; i <= 50; i++) {
		/* the clock standing still or jumping does not matter to them */
		if (i % 7 == 0)
			f->now += 10 * MS;
		assert_false(vfurt_worker_run_pass(f->w0));
		assert_int_equal(a.runs, i);
		assert_int_equal(b.runs, i);
		assert_ptr_equal(a.ran_on, f->w0);
	}
	/* w1's poller ran on no pass of w0 */
	assert_int_equal(c.runs, 0);
	assert_false(vfurt_worker_run_pass(f->w1));
	assert_int_equal(c.runs, 1);
	assert_ptr_equal(c.ran_on, f->w1);
	assert_int_equal(a.runs, 50);
	vfurt_poller_unregister(&a.self);
	vfurt_poller_unregister(&b.self);
	vfurt_poller_unregister(&c.self);
	assert_null(a.self);
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(a.runs, 50);
}

/* A pass is busy when a poller reports busy, or a message ran. */
static void test_busy_idle(void **state)
{
	struct fx *f = *state;
	struct vfurt_worker_stats st = { .stats_size = sizeof(st) };
	struct tp idle, busy;
	unsigned n = 0;

	tp_register(&idle, f, f->w0, 0, VFURT_POLLER_IDLE);
	assert_false(vfurt_worker_run_pass(f->w0));
	tp_register(&busy, f, f->w0, 0, VFURT_POLLER_BUSY);
	assert_true(vfurt_worker_run_pass(f->w0));
	busy.ret = VFURT_POLLER_IDLE;
	assert_false(vfurt_worker_run_pass(f->w0));
	/* a message is work even when every poller is idle */
	assert_int_equal(vfurt_worker_send(f->w0, count_fn, &n), 0);
	assert_true(vfurt_worker_run_pass(f->w0));
	assert_int_equal(n, 1);
	assert_false(vfurt_worker_run_pass(f->w0));
	/* a busy timed poller makes its pass busy, and only that one */
	vfurt_poller_unregister(&busy.self);
	tp_register(&busy, f, f->w0, 1000, VFURT_POLLER_BUSY);
	assert_false(vfurt_worker_run_pass(f->w0));
	f->now += MS;
	assert_true(vfurt_worker_run_pass(f->w0));
	assert_false(vfurt_worker_run_pass(f->w0));

	st = stats(f, 0);
	assert_int_equal(st.passes, 8);
	assert_int_equal(st.busy_passes, 3);
	assert_int_equal(st.ring_msgs, 1);
	assert_int_equal(idle.runs, 8);
}

/* busy_ns: fake-clock time spent in busy passes only. */
static void test_busy_ns_fake_clock(void **state)
{
	struct fx *f = *state;
	struct tp t;

	tp_register(&t, f, f->w0, 0, VFURT_POLLER_BUSY);
	t.advance_ns = 700;
	vfurt_worker_run_pass(f->w0);
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(stats(f, 0).busy_ns, 1400);
	/* time spent in an idle pass is not busy time */
	t.ret = VFURT_POLLER_IDLE;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(stats(f, 0).busy_ns, 1400);
	assert_int_equal(stats(f, 0).busy_passes, 2);
	assert_int_equal(f->now, T0 + 2100);
}

/* ---- timed pollers ------------------------------------------------------ */

static void test_timed_at_deadline(void **state)
{
	struct fx *f = *state;
	struct tp t;

	tp_register(&t, f, f->w0, 1000, VFURT_POLLER_IDLE); /* due at T0 + 1 ms */
	assert_false(vfurt_worker_run_pass(f->w0));
	assert_int_equal(t.runs, 0);
	f->now = T0 + MS - 1;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 0);
	f->now = T0 + MS;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 1);
	assert_int_equal(t.last_run_ns, T0 + MS);
	assert_ptr_equal(t.ran_on, f->w0);
	/* once per deadline: more passes at the same time do nothing */
	for (int i = 0; i < 5; i++)
		vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 1);
	/* a slightly late pass keeps the phase: next due at T0 + 2 ms */
	f->now = T0 + 2 * MS + 300 * US;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 2);
	f->now = T0 + 3 * MS - 1;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 2);
	f->now = T0 + 3 * MS;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 3);
	/* timed pollers of w0 never run on w1 */
	f->now += 100 * MS;
	vfurt_worker_run_pass(f->w1);
	assert_int_equal(t.runs, 3);
}

/* Many timed pollers with different periods over a simulated 100 ms. */
static void test_timed_periods(void **state)
{
	enum { N = 8 };
	struct fx *f = *state;
	struct tp t[N];
	struct tp active;

	tp_register(&active, f, f->w0, 0, VFURT_POLLER_IDLE);
	for (int i = 0; i < N; i++)
		tp_register(&t[i], f, f->w0, (uint64_t)(i + 1) * 1000, VFURT_POLLER_IDLE);
	/* 10 passes per simulated millisecond */
	for (int k = 1; k <= 1000; k++) {
		f->now = T0 + (uint64_t)k * 100 * US;
		vfurt_worker_run_pass(f->w0);
		for (int i = 0; i < N; i++) {
			uint64_t period = (uint64_t)(i + 1) * MS;

			/* ran exactly at the pass that crossed each deadline */
			assert_int_equal(t[i].runs, (f->now - T0) / period);
			if (t[i].runs)
				assert_int_equal(t[i].last_run_ns,
						 T0 + t[i].runs * period);
		}
	}
	assert_int_equal(active.runs, 1000);
}

/* A pass far too late runs a timed poller once, not once per missed period,
 * and never twice within a period (runtime.h: "at most once per period"):
 * the next run is a full period after the late one. */
static void test_timed_late_no_burst(void **state)
{
	struct fx *f = *state;
	const uint64_t late = T0 + 50 * MS + 500 * US;
	struct tp t;

	tp_register(&t, f, f->w0, 1000, VFURT_POLLER_IDLE);
	f->now = late;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 1);
	for (int i = 0; i < 5; i++)
		vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 1);
	f->now = late + MS - 1;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 1);
	f->now = late + MS;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 2);
	assert_int_equal(t.last_run_ns, late + MS);
	/* on time again: the phase is kept from there */
	f->now = late + 2 * MS + 10 * US;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 3);
	f->now = late + 3 * MS - 1;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 3);
	f->now = late + 3 * MS;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 4);
}

/* ---- unregister from inside callbacks ----------------------------------- */

static void test_unregister_self(void **state)
{
	struct fx *f = *state;
	struct tp a, b, timed;

	tp_register(&a, f, f->w0, 0, VFURT_POLLER_BUSY);
	tp_register(&b, f, f->w0, 0, VFURT_POLLER_IDLE);
	a.unregister_at = 3;
	for (int i = 0; i < 6; i++)
		vfurt_worker_run_pass(f->w0);
	assert_int_equal(a.runs, 3);
	assert_null(a.self);
	/* the poller after it in the same pass kept running */
	assert_int_equal(b.runs, 6);
	/* its last run still counted as busy */
	assert_int_equal(stats(f, 0).busy_passes, 3);

	tp_register(&timed, f, f->w0, 1000, VFURT_POLLER_IDLE);
	timed.unregister_at = 2;
	for (int i = 1; i <= 5; i++) {
		f->now = T0 + (uint64_t)i * MS;
		vfurt_worker_run_pass(f->w0);
	}
	assert_int_equal(timed.runs, 2);
	assert_null(timed.self);
	assert_int_equal(b.runs, 11);
	/* unregistering a NULL handle is a no-op */
	vfurt_poller_unregister(&a.self);
	vfurt_poller_unregister(NULL);
}

/* One poller unregisters another of the same worker, before or after it. */
static void test_unregister_other(void **state)
{
	struct fx *f = *state;
	struct tp a, b, c, timed;

	tp_register(&a, f, f->w0, 0, VFURT_POLLER_IDLE);
	tp_register(&b, f, f->w0, 0, VFURT_POLLER_IDLE);
	tp_register(&c, f, f->w0, 0, VFURT_POLLER_IDLE);
	tp_register(&timed, f, f->w0, 1000, VFURT_POLLER_IDLE);
	b.kill = &c; /* c comes later in the pass: must not run */
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(a.runs, 1);
	assert_int_equal(b.runs, 1);
	assert_int_equal(c.runs, 0);
	assert_null(c.self);
	b.kill = &a; /* a runs before b in this pass, then never again */
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(a.runs, 2);
	assert_null(a.self);
	/* an active poller removes a timed one due in the same pass */
	b.kill = &timed;
	f->now = T0 + MS;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(timed.runs, 0);
	assert_null(timed.self);
	f->now = T0 + 10 * MS;
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(timed.runs, 0);
	assert_int_equal(a.runs, 2);
	assert_int_equal(b.runs, 4);
}

/* ---- cross-worker messages ---------------------------------------------- */

static void test_send_runs_on_target_next_pass(void **state)
{
	struct fx *f = *state;
	struct msg m = { 0 };

	assert_null(vfurt_worker_self());
	assert_int_equal(vfurt_worker_send(f->w1, msg_fn, &m), 0);
	/* other workers' passes do not run it */
	for (int i = 0; i < 3; i++)
		assert_false(vfurt_worker_run_pass(f->w0));
	assert_int_equal(m.runs, 0);
	assert_true(vfurt_worker_run_pass(f->w1));
	assert_int_equal(m.runs, 1);
	assert_ptr_equal(m.ran_on, f->w1);
	/* exactly once */
	assert_false(vfurt_worker_run_pass(f->w1));
	assert_int_equal(m.runs, 1);
	assert_int_equal(stats(f, 1).ring_msgs, 1);
	assert_int_equal(stats(f, 0).ring_msgs, 0);
	assert_null(vfurt_worker_self());
}

static void test_send_invalid(void **state)
{
	struct fx *f = *state;
	struct msg m = { 0 };

	assert_int_equal(vfurt_worker_send(NULL, msg_fn, &m), -EINVAL);
	assert_int_equal(vfurt_worker_send(f->w0, NULL, &m), -EINVAL);
	assert_false(vfurt_worker_run_pass(f->w0));
	assert_int_equal(stats(f, 0).ring_msgs, 0);
}

/* Messages run in the order one sender sent them; arg may be NULL. */
static void test_send_fifo(void **state)
{
	struct fx *f = *state;
	struct msg m[10] = { 0 };
	unsigned order = 0;
	unsigned n = 0;

	for (int i = 0; i < 10; i++) {
		m[i].order = &order;
		assert_int_equal(vfurt_worker_send(f->w0, msg_fn, &m[i]), 0);
	}
	vfurt_worker_run_pass(f->w0);
	for (unsigned i = 0; i < 10; i++) {
		assert_int_equal(m[i].runs, 1);
		assert_int_equal(m[i].seq, i);
	}
	assert_int_equal(vfurt_worker_send(f->w0, count_fn, &n), 0);
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(n, 1);
}

/* Ring capacity: 1023 messages without a pass, the next one -EAGAIN. */
static void test_send_ring_full(void **state)
{
	struct fx *f = *state;
	unsigned n = 0, other = 0;
	int rc = 0;
	unsigned sent = 0;

	while (sent < 4 * RING_CAPACITY && (rc = vfurt_worker_send(f->w0, count_fn, &n)) == 0)
		sent++;
	assert_int_equal(rc, -EAGAIN);
	assert_int_equal(sent, RING_CAPACITY);
	assert_int_equal(vfurt_worker_send(f->w0, count_fn, &n), -EAGAIN);
	/* the other worker's inbox is separate */
	assert_int_equal(vfurt_worker_send(f->w1, count_fn, &other), 0);
	assert_int_equal(n, 0);
	/* a pass frees a batch of slots, and exactly that many */
	assert_true(vfurt_worker_run_pass(f->w0));
	assert_int_equal(n, INBOX_BATCH);
	for (unsigned i = 0; i < INBOX_BATCH; i++)
		assert_int_equal(vfurt_worker_send(f->w0, count_fn, &n), 0);
	assert_int_equal(vfurt_worker_send(f->w0, count_fn, &n), -EAGAIN);
	/* everything accepted runs, once: 1023 + 64 messages */
	for (int i = 0; i < 100 && vfurt_worker_run_pass(f->w0); i++)
		;
	assert_int_equal(n, RING_CAPACITY + INBOX_BATCH);
	assert_int_equal(stats(f, 0).ring_msgs, RING_CAPACITY + INBOX_BATCH);
	assert_int_equal(vfurt_worker_send(f->w0, count_fn, &n), 0);
	assert_true(vfurt_worker_run_pass(f->w0));
	assert_int_equal(n, RING_CAPACITY + INBOX_BATCH + 1);
	vfurt_worker_run_pass(f->w1);
	assert_int_equal(other, 1);
}

/* A pass drains a bounded batch: 100 messages take a pass of 64 and one of 36. */
static void test_send_bounded_batch(void **state)
{
	struct fx *f = *state;
	struct vfurt_worker_stats st = { .stats_size = sizeof(st) };
	struct tp poller;
	unsigned n = 0;

	tp_register(&poller, f, f->w0, 0, VFURT_POLLER_IDLE);
	for (int i = 0; i < 100; i++)
		assert_int_equal(vfurt_worker_send(f->w0, count_fn, &n), 0);
	assert_true(vfurt_worker_run_pass(f->w0));
	assert_int_equal(n, INBOX_BATCH);
	/* the pollers still ran in that pass: the batch bound is what keeps
	 * them from being starved by a flood of messages */
	assert_int_equal(poller.runs, 1);
	st = stats(f, 0);
	assert_int_equal(st.ring_msgs, INBOX_BATCH);
	assert_int_equal(st.passes, 1);
	assert_int_equal(st.busy_passes, 1);
	assert_true(vfurt_worker_run_pass(f->w0));
	assert_int_equal(n, 100);
	assert_int_equal(poller.runs, 2);
	assert_false(vfurt_worker_run_pass(f->w0));
	st = stats(f, 0);
	assert_int_equal(st.ring_msgs, 100);
	assert_int_equal(st.passes, 3);
	assert_int_equal(st.busy_passes, 2);
}

/* A poller sending to its own worker: the message runs on the next pass. */
static int send_self_poller(void *arg)
{
	struct msg *m = arg;

	assert_int_equal(vfurt_worker_send(vfurt_worker_self(), msg_fn, m), 0);
	return VFURT_POLLER_IDLE;
}

static void test_send_from_poller(void **state)
{
	struct fx *f = *state;
	struct vfurt_poller *p;
	struct msg m = { 0 };

	p = vfurt_poller_register(f->w0, send_self_poller, &m, 0);
	assert_non_null(p);
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(m.runs, 0);
	vfurt_poller_unregister(&p);
	/* the pass that runs it is busy although no poller was */
	assert_true(vfurt_worker_run_pass(f->w0));
	assert_int_equal(m.runs, 1);
	assert_ptr_equal(m.ran_on, f->w0);
}

/* A message registers a poller on its worker (how the runtime places
 * queues): it runs from the next pass on. */
struct reg_call {
	struct fx *f;
	struct tp *t;
};

static void register_on_fn(void *arg)
{
	struct reg_call *c = arg;

	memset(c->t, 0, sizeof(*c->t));
	c->t->f = c->f;
	c->t->self = vfurt_poller_register(vfurt_worker_self(), tp_fn, c->t, 0);
	assert_non_null(c->t->self);
}

static void unregister_on_fn(void *arg)
{
	struct tp *t = arg;

	vfurt_poller_unregister(&t->self);
}

static void test_register_via_message(void **state)
{
	struct fx *f = *state;
	struct tp t;
	struct reg_call c = { .f = f, .t = &t };

	assert_int_equal(vfurt_worker_send(f->w1, register_on_fn, &c), 0);
	vfurt_worker_run_pass(f->w1);
	/* the poller was registered in this pass's drain, before the pollers
	 * ran: it runs in the same pass */
	assert_int_equal(t.runs, 1);
	assert_ptr_equal(t.ran_on, f->w1);
	vfurt_worker_run_pass(f->w0);
	assert_int_equal(t.runs, 1);
	vfurt_worker_run_pass(f->w1);
	assert_int_equal(t.runs, 2);
	assert_int_equal(vfurt_worker_send(f->w1, unregister_on_fn, &t), 0);
	vfurt_worker_run_pass(f->w1);
	assert_null(t.self);
	assert_int_equal(t.runs, 2);
}

/* ---- vfurt_worker_self --------------------------------------------------- */

struct self_probe {
	struct vfurt_worker *seen;
	struct vfurt_worker *inner; /* run this worker's pass inside the poller */
	struct vfurt_worker *after_inner;
};

static int self_poller(void *arg)
{
	struct self_probe *s = arg;

	s->seen = vfurt_worker_self();
	if (s->inner) {
		vfurt_worker_run_pass(s->inner);
		s->after_inner = vfurt_worker_self();
	}
	return VFURT_POLLER_IDLE;
}

static void test_worker_self(void **state)
{
	struct fx *f = *state;
	struct self_probe s0 = { 0 }, s1 = { 0 };
	struct vfurt_poller *p0, *p1;

	assert_null(vfurt_worker_self());
	p0 = vfurt_poller_register(f->w0, self_poller, &s0, 0);
	p1 = vfurt_poller_register(f->w1, self_poller, &s1, 0);
	assert_non_null(p0);
	assert_non_null(p1);
	vfurt_worker_run_pass(f->w0);
	assert_ptr_equal(s0.seen, f->w0);
	assert_null(s1.seen);
	assert_null(vfurt_worker_self());
	vfurt_worker_run_pass(f->w1);
	assert_ptr_equal(s1.seen, f->w1);
	assert_null(vfurt_worker_self());
	/* a pass driven from inside another worker's pass (an embedder's
	 * nested loop) restores the outer worker afterwards */
	s0.inner = f->w1;
	s1.seen = NULL;
	vfurt_worker_run_pass(f->w0);
	assert_ptr_equal(s1.seen, f->w1);
	assert_ptr_equal(s0.after_inner, f->w0);
	assert_null(vfurt_worker_self());
	vfurt_poller_unregister(&p0);
	vfurt_poller_unregister(&p1);
}

/* ---- destroy ------------------------------------------------------------- */

/* Owned by a message: freed when it runs. A leak shows under ASan. */
struct owned {
	unsigned *ran;
	char payload[48];
};

static void owned_fn(void *arg)
{
	struct owned *o = arg;

	(*o->ran)++;
	free(o);
}

static void test_destroy_with_pollers_and_messages(void **state)
{
	struct fx *f = *state;
	struct tp a[3], t[3];
	unsigned ran = 0;

	for (int i = 0; i < 3; i++) {
		tp_register(&a[i], f, i % 2 ? f->w1 : f->w0, 0, VFURT_POLLER_BUSY);
		tp_register(&t[i], f, i % 2 ? f->w0 : f->w1, (uint64_t)(i + 1) * 500,
			    VFURT_POLLER_IDLE);
	}
	vfurt_worker_run_pass(f->w0);
	/* a poller that unregistered itself is freed at once, not at destroy */
	a[0].unregister_at = 2;
	vfurt_worker_run_pass(f->w0);
	assert_null(a[0].self);
	/* messages still queued at destroy run there, so that what they own
	 * is released */
	for (int i = 0; i < 5; i++) {
		struct owned *o = calloc(1, sizeof(*o));

		assert_non_null(o);
		o->ran = &ran;
		assert_int_equal(vfurt_worker_send(i % 2 ? f->w1 : f->w0, owned_fn, o), 0);
	}
	vfurt_runtime_destroy(f->rt);
	f->rt = NULL;
	assert_int_equal(ran, 5);
	/* the pollers' callbacks did not run during destroy */
	assert_int_equal(a[1].runs, 0);
	assert_int_equal(a[2].runs, 2);
}

/* A single fake worker ("0"), and the clock read through opts.clock only. */
static int setup_one(void **state)
{
	return setup_cores(state, "0");
}

static void test_single_worker_clock(void **state)
{
	struct fx *f = *state;
	struct tp t;
	unsigned reads;

	assert_int_equal(vfurt_runtime_worker_count(f->rt), 1);
	assert_null(vfurt_runtime_worker(f->rt, 1));
	tp_register(&t, f, f->w0, 250, VFURT_POLLER_IDLE);
	reads = f->reads;
	vfurt_worker_run_pass(f->w0);
	assert_true(f->reads > reads); /* the pass read the fake clock */
	for (int k = 1; k <= 40; k++) {
		f->now = T0 + (uint64_t)k * 125 * US;
		vfurt_worker_run_pass(f->w0);
		assert_int_equal(t.runs, (unsigned)k / 2);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_fake_workers, setup, teardown),
		cmocka_unit_test(test_create_cpus_not_validated),
		cmocka_unit_test_setup_teardown(test_empty_pass_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_active_every_pass, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_ns_fake_clock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timed_at_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timed_periods, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timed_late_no_burst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister_self, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister_other, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_runs_on_target_next_pass, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_send_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_ring_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_bounded_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_from_poller, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_via_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_self, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_with_pollers_and_messages, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_single_worker_clock, setup_one, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
