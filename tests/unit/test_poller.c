/* Unit tests for runtime/poller.c with a fake clock: order, deadlines, unregister during runs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/poller.h"

#define MS 1000000ull /* ns */
#define MAX_LOG 64

/* What the callbacks did, in order. */
struct trace {
	int log[MAX_LOG];
	int n;
};

/* One test poller: its id, what it returns, and what it does to the set. */
struct tp {
	struct trace *tr;
	struct vfurt_poller_set *ps;
	struct vfurt_poller *self;
	int id;
	int ret;
	unsigned runs;
	bool remove_self;
	struct tp *remove_other;     /* unregister this one when called */
	bool add_active;             /* register `added` (active) when called */
	struct tp *added;
	uint64_t add_period_us;
};

static int tp_fn(void *arg)
{
	struct tp *t = arg;

	t->runs++;
	if (t->tr && t->tr->n < MAX_LOG)
		t->tr->log[t->tr->n++] = t->id;
	if (t->remove_other && t->remove_other->self) {
		vfr_poller_set_remove(t->ps, t->remove_other->self);
		t->remove_other->self = NULL;
		t->remove_other = NULL;
	}
	if (t->add_active && t->added) {
		t->added->self = vfr_poller_set_add(t->ps, NULL, tp_fn, t->added,
						     t->add_period_us, 0);
		assert_non_null(t->added->self);
		t->add_active = false;
	}
	if (t->remove_self && t->self) {
		vfr_poller_set_remove(t->ps, t->self);
		t->self = NULL;
	}
	return t->ret;
}

static void tp_init(struct tp *t, struct vfurt_poller_set *ps, struct trace *tr, int id)
{
	memset(t, 0, sizeof(*t));
	t->ps = ps;
	t->tr = tr;
	t->id = id;
	t->ret = VFURT_POLLER_IDLE;
}

static void tp_add(struct tp *t, uint64_t period_us, uint64_t now)
{
	t->self = vfr_poller_set_add(t->ps, NULL, tp_fn, t, period_us, now);
	assert_non_null(t->self);
}

static void expect_log(const struct trace *tr, const int *ids, int n)
{
	assert_int_equal(tr->n, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(tr->log[i], ids[i]);
}

/* ---- active pollers ---------------------------------------------------- */

static void test_active_order_and_busy(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct trace tr = { 0 };
	struct tp t[4];

	assert_non_null(ps);
	for (int i = 0; i < 4; i++) {
		tp_init(&t[i], ps, &tr, i);
		tp_add(&t[i], 0, 0);
	}
	t[1].ret = VFURT_POLLER_BUSY;
	t[3].ret = VFURT_POLLER_BUSY;
	assert_int_equal(vfr_poller_set_active_count(ps), 4);
	assert_int_equal(vfr_poller_set_timed_count(ps), 0);
	assert_int_equal(vfr_poller_set_next_deadline(ps), UINT64_MAX);

	assert_int_equal(vfr_poller_set_run_active(ps), 2);
	assert_int_equal(vfr_poller_set_run_active(ps), 2);
	t[3].ret = VFURT_POLLER_IDLE;
	assert_int_equal(vfr_poller_set_run_active(ps), 1);
	expect_log(&tr, (const int[]){ 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3 }, 12);

	/* Active pollers are not timed: run_timed leaves them alone. */
	assert_int_equal(vfr_poller_set_run_timed(ps, UINT64_MAX - 1), 0);
	assert_int_equal(tr.n, 12);

	/* Removal outside a run keeps the order of the rest. */
	vfr_poller_set_remove(ps, t[1].self);
	assert_int_equal(vfr_poller_set_active_count(ps), 3);
	tr.n = 0;
	vfr_poller_set_run_active(ps);
	expect_log(&tr, (const int[]){ 0, 2, 3 }, 3);
	vfr_poller_set_destroy(ps);
}

static void test_bad_args(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct tp t;

	tp_init(&t, ps, NULL, 0);
	errno = 0;
	assert_null(vfr_poller_set_add(ps, NULL, NULL, &t, 0, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vfr_poller_set_add(ps, NULL, tp_fn, &t, UINT64_MAX / 1000 + 1, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vfr_poller_set_add(ps, NULL, tp_fn, &t, 1, UINT64_MAX - 10));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(vfr_poller_set_active_count(ps), 0);
	assert_int_equal(vfr_poller_set_timed_count(ps), 0);
	vfr_poller_set_destroy(ps);
	vfr_poller_set_destroy(NULL);
}

/* ---- timed pollers ----------------------------------------------------- */

static void test_timed_runs_when_due(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct tp t;
	uint64_t now = 100 * MS;

	tp_init(&t, ps, NULL, 0);
	t.ret = VFURT_POLLER_BUSY;
	tp_add(&t, 10000, now); /* 10 ms */
	assert_int_equal(vfr_poller_set_timed_count(ps), 1);
	assert_int_equal(vfr_poller_set_active_count(ps), 0);
	assert_int_equal(vfr_poller_set_next_deadline(ps), now + 10 * MS);

	/* Not before its deadline, not even by 1 ns. */
	assert_int_equal(vfr_poller_set_run_timed(ps, now), 0);
	assert_int_equal(vfr_poller_set_run_timed(ps, now + 10 * MS - 1), 0);
	assert_int_equal(t.runs, 0);
	/* Active runs never touch it. */
	assert_int_equal(vfr_poller_set_run_active(ps), 0);
	assert_int_equal(t.runs, 0);

	/* Exactly at the deadline. */
	assert_int_equal(vfr_poller_set_run_timed(ps, now + 10 * MS), 1);
	assert_int_equal(t.runs, 1);
	assert_int_equal(vfr_poller_set_next_deadline(ps), now + 20 * MS);
	/* Once per call even if called again at the same time. */
	assert_int_equal(vfr_poller_set_run_timed(ps, now + 10 * MS), 0);
	assert_int_equal(t.runs, 1);

	/* A slightly late pass keeps the phase: next deadline is deadline + period. */
	assert_int_equal(vfr_poller_set_run_timed(ps, now + 23 * MS), 1);
	assert_int_equal(vfr_poller_set_next_deadline(ps), now + 30 * MS);
	assert_int_equal(t.runs, 2);
	vfr_poller_set_destroy(ps);
}

static void test_late_pass_no_burst(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct tp t;

	tp_init(&t, ps, NULL, 0);
	tp_add(&t, 10000, 0); /* due at 10 ms */

	/* 45 ms late (4.5 periods missed): one run, not five. */
	vfr_poller_set_run_timed(ps, 55 * MS);
	assert_int_equal(t.runs, 1);
	/* Rescheduled to now + period: no catch-up run, never twice per period. */
	assert_int_equal(vfr_poller_set_next_deadline(ps), 65 * MS);
	for (uint64_t ms = 56; ms < 65; ms++)
		vfr_poller_set_run_timed(ps, ms * MS);
	assert_int_equal(t.runs, 1);
	vfr_poller_set_run_timed(ps, 65 * MS);
	assert_int_equal(t.runs, 2);
	/* On time: the phase is kept (65, 75, ...), even when the pass is a
	 * little late. */
	vfr_poller_set_run_timed(ps, 76 * MS);
	assert_int_equal(t.runs, 3);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 85 * MS);

	/* An hour of missed deadlines: one run now, then periodic from now. */
	vfr_poller_set_run_timed(ps, 3600000 * MS);
	assert_int_equal(t.runs, 4);
	for (uint64_t ms = 3600001; ms < 3600010; ms++)
		vfr_poller_set_run_timed(ps, ms * MS);
	assert_int_equal(t.runs, 4);
	vfr_poller_set_run_timed(ps, 3600010 * MS);
	assert_int_equal(t.runs, 5);
	vfr_poller_set_destroy(ps);
}

static void test_next_deadline_tracks_heap(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct tp t[5];
	const uint64_t periods_us[5] = { 5000, 3000, 9000, 1000, 7000 };

	assert_int_equal(vfr_poller_set_next_deadline(ps), UINT64_MAX);
	for (int i = 0; i < 5; i++)
		tp_init(&t[i], ps, NULL, i);
	tp_add(&t[0], periods_us[0], 0);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 5 * MS);
	tp_add(&t[1], periods_us[1], 0);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 3 * MS);
	tp_add(&t[2], periods_us[2], 0);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 3 * MS);
	tp_add(&t[3], periods_us[3], 0);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 1 * MS);
	tp_add(&t[4], periods_us[4], 0);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 1 * MS);
	assert_int_equal(vfr_poller_set_timed_count(ps), 5);

	/* Remove the root (1 ms), then a non-root, then the new root. */
	vfr_poller_set_remove(ps, t[3].self);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 3 * MS);
	vfr_poller_set_remove(ps, t[2].self);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 3 * MS);
	vfr_poller_set_remove(ps, t[1].self);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 5 * MS);
	assert_int_equal(vfr_poller_set_timed_count(ps), 2);

	/* Running the root moves the earliest to the other poller. */
	assert_int_equal(vfr_poller_set_run_timed(ps, 5 * MS), 0);
	assert_int_equal(t[0].runs, 1);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 7 * MS);
	vfr_poller_set_remove(ps, t[4].self);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 10 * MS);
	vfr_poller_set_remove(ps, t[0].self);
	assert_int_equal(vfr_poller_set_next_deadline(ps), UINT64_MAX);
	assert_int_equal(vfr_poller_set_timed_count(ps), 0);
	vfr_poller_set_destroy(ps);
}

/* Many periods over a simulated second of 1 ms passes. */
static void test_many_timed_one_second(void **state)
{
	enum { N = 40 };
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct tp t[N];
	uint64_t now;

	for (int i = 0; i < N; i++) {
		tp_init(&t[i], ps, NULL, i);
		tp_add(&t[i], (uint64_t)(i + 1) * 1000, 0); /* 1 ms .. 40 ms */
	}
	for (now = 1 * MS; now <= 1000 * MS; now += MS) {
		vfr_poller_set_run_active(ps);
		if (vfr_poller_set_next_deadline(ps) <= now)
			vfr_poller_set_run_timed(ps, now);
		assert_true(vfr_poller_set_next_deadline(ps) > now);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(t[i].runs, 1000 / (i + 1));
	vfr_poller_set_destroy(ps);
}

/* Pollers due at the same time run in registration order. */
static void test_equal_deadlines_in_order(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct trace tr = { 0 };
	struct tp t[6];

	for (int i = 0; i < 6; i++) {
		tp_init(&t[i], ps, &tr, i);
		tp_add(&t[i], 2000, 0);
	}
	vfr_poller_set_run_timed(ps, 2 * MS);
	vfr_poller_set_run_timed(ps, 4 * MS);
	expect_log(&tr, (const int[]){ 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5 }, 12);
	vfr_poller_set_destroy(ps);
}

/* ---- changes from inside callbacks ------------------------------------- */

static void test_active_unregister_self(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct trace tr = { 0 };
	struct tp t[3];

	for (int i = 0; i < 3; i++) {
		tp_init(&t[i], ps, &tr, i);
		tp_add(&t[i], 0, 0);
	}
	t[1].remove_self = true;
	vfr_poller_set_run_active(ps);
	assert_null(t[1].self);
	assert_int_equal(vfr_poller_set_active_count(ps), 2);
	vfr_poller_set_run_active(ps);
	expect_log(&tr, (const int[]){ 0, 1, 2, 0, 2 }, 5);
	vfr_poller_set_destroy(ps);
}

static void test_active_unregister_other(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct trace tr = { 0 };
	struct tp t[4];

	for (int i = 0; i < 4; i++) {
		tp_init(&t[i], ps, &tr, i);
		tp_add(&t[i], 0, 0);
	}
	/* 1 removes a later poller (3: must not run in this pass) and 2
	 * removes an earlier one (0: already ran). */
	t[1].remove_other = &t[3];
	t[2].remove_other = &t[0];
	assert_int_equal(vfr_poller_set_run_active(ps), 0);
	expect_log(&tr, (const int[]){ 0, 1, 2 }, 3);
	assert_int_equal(vfr_poller_set_active_count(ps), 2);
	vfr_poller_set_run_active(ps);
	expect_log(&tr, (const int[]){ 0, 1, 2, 1, 2 }, 5);
	assert_int_equal(t[0].runs, 1);
	assert_int_equal(t[3].runs, 0);
	vfr_poller_set_destroy(ps);
}

static void test_active_register_inside(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct trace tr = { 0 };
	struct tp t[3], added, added_timed;

	for (int i = 0; i < 3; i++) {
		tp_init(&t[i], ps, &tr, i);
		tp_add(&t[i], 0, 0);
	}
	tp_init(&added, ps, &tr, 9);
	tp_init(&added_timed, ps, &tr, 8);
	t[0].add_active = true;
	t[0].added = &added;
	t[1].add_active = true;
	t[1].added = &added_timed;
	t[1].add_period_us = 1000;
	vfr_poller_set_run_active(ps);
	expect_log(&tr, (const int[]){ 0, 1, 2 }, 3);
	assert_non_null(added.self);
	assert_int_equal(vfr_poller_set_active_count(ps), 4);
	assert_int_equal(vfr_poller_set_timed_count(ps), 1);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 1 * MS);
	vfr_poller_set_run_active(ps);
	expect_log(&tr, (const int[]){ 0, 1, 2, 0, 1, 2, 9 }, 7);
	vfr_poller_set_run_timed(ps, 1 * MS);
	assert_int_equal(added_timed.runs, 1);
	vfr_poller_set_destroy(ps);
}

/* Register many from one callback so the array grows during the run. */
static void test_active_register_grows_during_run(void **state)
{
	enum { N = 100 };
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct tp first, more[N];

	tp_init(&first, ps, NULL, 0);
	tp_add(&first, 0, 0);
	for (int i = 0; i < N; i++) {
		tp_init(&more[i], ps, NULL, i + 1);
		if (i + 1 < N) {
			more[i].add_active = true;
			more[i].added = &more[i + 1];
		}
	}
	first.add_active = true;
	first.added = &more[0];
	/* Each pass adds one more; none runs in the pass that added it. */
	for (int pass = 0; pass < N; pass++) {
		vfr_poller_set_run_active(ps);
		assert_int_equal(vfr_poller_set_active_count(ps), pass + 2);
		assert_int_equal(more[pass].runs, 0);
	}
	assert_int_equal(first.runs, N);
	assert_int_equal(more[0].runs, N - 1);
	vfr_poller_set_destroy(ps);
}

static void test_timed_unregister_self_and_others(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct trace tr = { 0 };
	struct tp t[5];

	for (int i = 0; i < 5; i++) {
		tp_init(&t[i], ps, &tr, i);
		tp_add(&t[i], 1000 + (uint64_t)i, 0); /* due in order 0..4 */
	}
	t[0].remove_self = true;
	t[1].remove_other = &t[3]; /* later in this run: must not run */
	t[2].remove_other = &t[1]; /* earlier in this run: already ran */
	t[4].ret = VFURT_POLLER_BUSY;
	assert_int_equal(vfr_poller_set_run_timed(ps, 10 * MS), 1);
	expect_log(&tr, (const int[]){ 0, 1, 2, 4 }, 4);
	assert_int_equal(vfr_poller_set_timed_count(ps), 2);
	/* The survivors were late: rescheduled to now + period (2: 1002 us). */
	assert_int_equal(vfr_poller_set_next_deadline(ps), 10 * MS + 1002000);
	vfr_poller_set_run_timed(ps, 12 * MS);
	expect_log(&tr, (const int[]){ 0, 1, 2, 4, 2, 4 }, 6);
	vfr_poller_set_destroy(ps);
}

/* A timed poller removes the heap root (a poller not due in this run). */
static void test_timed_remove_root_from_callback(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct tp a, b, c;

	tp_init(&a, ps, NULL, 0);
	tp_init(&b, ps, NULL, 1);
	tp_init(&c, ps, NULL, 2);
	tp_add(&a, 1000, 0);  /* due 1 ms */
	tp_add(&b, 2000, 0);  /* due 2 ms: root once a is taken out */
	tp_add(&c, 5000, 0);
	a.remove_other = &b;
	vfr_poller_set_run_timed(ps, 1 * MS);
	assert_int_equal(a.runs, 1);
	assert_null(b.self);
	assert_int_equal(vfr_poller_set_timed_count(ps), 2);
	assert_int_equal(vfr_poller_set_next_deadline(ps), 2 * MS); /* a again */
	for (uint64_t ms = 2; ms <= 10; ms++)
		vfr_poller_set_run_timed(ps, ms * MS);
	assert_int_equal(a.runs, 10);
	assert_int_equal(b.runs, 0);
	assert_int_equal(c.runs, 2);
	vfr_poller_set_destroy(ps);
}

/* An active poller removes timed pollers, one of them the root. */
static void test_active_removes_timed(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct tp act, act2, root, other;

	tp_init(&act, ps, NULL, 0);
	tp_init(&act2, ps, NULL, 1);
	tp_init(&root, ps, NULL, 2);
	tp_init(&other, ps, NULL, 3);
	tp_add(&act, 0, 0);
	tp_add(&act2, 0, 0);
	tp_add(&root, 1000, 0);
	tp_add(&other, 3000, 0);
	act.remove_other = &root;
	act2.remove_other = &other;
	vfr_poller_set_run_active(ps);
	assert_int_equal(vfr_poller_set_timed_count(ps), 0);
	assert_int_equal(vfr_poller_set_next_deadline(ps), UINT64_MAX);
	assert_int_equal(vfr_poller_set_run_timed(ps, 100 * MS), 0);
	assert_int_equal(root.runs + other.runs, 0);
	vfr_poller_set_destroy(ps);
}

/* A timed callback removes an active poller; the active run skips it. */
static void test_timed_removes_active(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct tp act, timed;

	tp_init(&act, ps, NULL, 0);
	tp_init(&timed, ps, NULL, 1);
	tp_add(&act, 0, 0);
	tp_add(&timed, 1000, 0);
	timed.remove_other = &act;
	vfr_poller_set_run_timed(ps, 1 * MS);
	assert_int_equal(vfr_poller_set_active_count(ps), 0);
	vfr_poller_set_run_active(ps);
	assert_int_equal(act.runs, 0);
	vfr_poller_set_destroy(ps);
}

/* Remove everything, including itself, from one callback; then reuse the set. */
static int remove_all_fn(void *arg)
{
	struct tp *t = arg; /* t[0..3]; t[0] is the caller */

	for (int i = 0; i < 4; i++) {
		if (t[i].self) {
			vfr_poller_set_remove(t[i].ps, t[i].self);
			t[i].self = NULL;
		}
	}
	return VFURT_POLLER_BUSY;
}

static void test_remove_all_inside_run(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct tp t[4];

	for (int i = 0; i < 4; i++)
		tp_init(&t[i], ps, NULL, i);
	t[0].self = vfr_poller_set_add(ps, NULL, remove_all_fn, t, 0, 0);
	assert_non_null(t[0].self);
	tp_add(&t[1], 0, 0);
	tp_add(&t[2], 1000, 0);
	tp_add(&t[3], 2000, 0);
	assert_int_equal(vfr_poller_set_run_active(ps), 1);
	assert_int_equal(vfr_poller_set_active_count(ps), 0);
	assert_int_equal(vfr_poller_set_timed_count(ps), 0);
	assert_int_equal(t[1].runs, 0);

	tp_add(&t[1], 0, 0);
	vfr_poller_set_run_active(ps);
	assert_int_equal(t[1].runs, 1);
	vfr_poller_set_destroy(ps);
}

static void test_owner(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct vfurt_poller_set *ps2 = vfr_poller_set_create();
	struct tp a, b;

	tp_init(&a, ps, NULL, 0);
	tp_init(&b, ps2, NULL, 1);
	tp_add(&a, 0, 0);
	tp_add(&b, 5, 0);
	assert_ptr_equal(vfr_poller_owner(a.self), ps);
	assert_ptr_equal(vfr_poller_owner(b.self), ps2);
	vfr_poller_set_remove(vfr_poller_owner(b.self), b.self);
	assert_int_equal(vfr_poller_set_timed_count(ps2), 0);
	vfr_poller_set_destroy(ps);
	vfr_poller_set_destroy(ps2);
}

/* Destroy with live pollers of both kinds (ASan reports any leak). */
static void test_destroy_with_live_pollers(void **state)
{
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct tp t[50];

	for (int i = 0; i < 50; i++) {
		tp_init(&t[i], ps, NULL, i);
		tp_add(&t[i], (i % 2) ? (uint64_t)i * 100 : 0, 0);
	}
	assert_int_equal(vfr_poller_set_active_count(ps), 25);
	assert_int_equal(vfr_poller_set_timed_count(ps), 25);
	vfr_poller_set_run_active(ps);
	vfr_poller_set_run_timed(ps, 3 * MS);
	vfr_poller_set_destroy(ps);
}

/* A model of one timed poller for the mixed test: its expected deadline. */
struct model {
	struct tp t;
	const uint64_t *now;
	uint64_t period_ns;
	uint64_t deadline;
};

static int model_fn(void *arg)
{
	struct model *m = arg;

	/* Never before it is due; then deadline + period, or now + period. */
	assert_true(*m->now >= m->deadline);
	m->t.runs++;
	m->deadline += m->period_ns;
	if (m->deadline <= *m->now)
		m->deadline = *m->now + m->period_ns;
	return VFURT_POLLER_IDLE;
}

/* Heap order and the cached earliest under a deterministic mix of adds,
 * removes and runs, checked against a model. */
static void test_heap_random_mix(void **state)
{
	enum { N = 64 };
	struct vfurt_poller_set *ps = vfr_poller_set_create();
	struct model m[N];
	uint32_t x = 12345, live = 0;
	uint64_t now = 0, min;
	unsigned runs = 0;

	memset(m, 0, sizeof(m));
	for (int i = 0; i < N; i++)
		m[i].now = &now;
	for (int step = 0; step < 20000; step++) {
		struct model *mi;

		x = x * 1103515245u + 12345u;
		mi = &m[(x >> 8) % N];
		if (!mi->t.self) {
			uint64_t us = 1 + (x >> 20) % 50;

			mi->period_ns = us * 1000;
			mi->deadline = now + mi->period_ns;
			mi->t.self = vfr_poller_set_add(ps, NULL, model_fn, mi, us, now);
			assert_non_null(mi->t.self);
			live++;
		} else if ((x >> 4) & 1) {
			vfr_poller_set_remove(ps, mi->t.self);
			mi->t.self = NULL;
			live--;
		}
		now += (x >> 12) % 30000;
		vfr_poller_set_run_timed(ps, now);
		assert_int_equal(vfr_poller_set_timed_count(ps), live);

		min = UINT64_MAX;
		for (int j = 0; j < N; j++)
			if (m[j].t.self && m[j].deadline < min)
				min = m[j].deadline;
		/* every live poller is due in the future after a run */
		assert_true(min > now);
		assert_int_equal(vfr_poller_set_next_deadline(ps), min);
	}
	for (int j = 0; j < N; j++)
		runs += m[j].t.runs;
	assert_true(runs > 1000);
	vfr_poller_set_destroy(ps);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_active_order_and_busy),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_timed_runs_when_due),
		cmocka_unit_test(test_late_pass_no_burst),
		cmocka_unit_test(test_next_deadline_tracks_heap),
		cmocka_unit_test(test_many_timed_one_second),
		cmocka_unit_test(test_equal_deadlines_in_order),
		cmocka_unit_test(test_active_unregister_self),
		cmocka_unit_test(test_active_unregister_other),
		cmocka_unit_test(test_active_register_inside),
		cmocka_unit_test(test_active_register_grows_during_run),
		cmocka_unit_test(test_timed_unregister_self_and_others),
		cmocka_unit_test(test_timed_remove_root_from_callback),
		cmocka_unit_test(test_active_removes_timed),
		cmocka_unit_test(test_timed_removes_active),
		cmocka_unit_test(test_remove_all_inside_run),
		cmocka_unit_test(test_owner),
		cmocka_unit_test(test_destroy_with_live_pollers),
		cmocka_unit_test(test_heap_random_mix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
