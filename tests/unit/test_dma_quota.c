/* Unit tests for io/dma_quota.c: reservations, the shared room, exhaustion, concurrent devices. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "io/dma_quota.h"

static struct vfurt_dma_quota_stats stats(const struct vfurt_dma_quota *q)
{
	struct vfurt_dma_quota_stats st = { .stats_size = sizeof(st) };

	vfurt_dma_quota_get_stats(q, &st);
	return st;
}

static unsigned take_all(struct vfurt_dma_quota_acct *a, unsigned max)
{
	unsigned n = 0;

	while (n < max && vfr_dma_quota_take(a) == 0)
		n++;
	return n;
}

/* A greedy device gets its reservation and the shared room, never the
 * others' reservations; what it gives back is shared again. */
static void test_reservations_hold(void **state)
{
	(void)state;
	struct vfurt_dma_quota *q = vfurt_dma_quota_create(100, 10);
	struct vfurt_dma_quota_acct a = { 0 }, b = { 0 }, c = { 0 };

	assert_non_null(q);
	assert_int_equal(vfr_dma_quota_join(q, &a), 10);
	assert_int_equal(vfr_dma_quota_join(q, &b), 10);
	assert_int_equal(vfr_dma_quota_join(q, &c), 10);
	assert_int_equal(stats(q).committed, 30);
	assert_int_equal(take_all(&a, 1000), 80); /* 10 + the 70 shared */
	assert_int_equal(vfr_dma_quota_take(&a), -ENOMEM);
	assert_int_equal(stats(q).refused, 2); /* take_all's last try and this one */
	assert_int_equal(take_all(&b, 1000), 10);  /* exactly its reservation */
	assert_int_equal(take_all(&c, 5), 5);
	assert_int_equal(stats(q).mapped, 95);
	assert_int_equal(stats(q).committed, 100);
	/* a gives 20 back: the shared room is 20 again, b may take it */
	for (int i = 0; i < 20; i++)
		vfr_dma_quota_give(&a);
	assert_int_equal(take_all(&b, 1000), 20);
	/* within its reservation c is never refused */
	assert_int_equal(take_all(&c, 5), 5);
	assert_int_equal(vfr_dma_quota_take(&c), -ENOMEM);
	/* leaving returns every window and the reservation */
	vfr_dma_quota_leave(&a);
	vfr_dma_quota_leave(&b);
	vfr_dma_quota_leave(&c);
	assert_int_equal(stats(q).committed, 0);
	assert_int_equal(stats(q).mapped, 0);
	assert_int_equal(stats(q).devices, 0);
	vfr_dma_quota_leave(&a); /* not joined: nothing */
	vfurt_dma_quota_destroy(q);
}

/* More devices than the quota can reserve for: the last ones get what is
 * left (down to 0), and not joining counts nothing. */
static void test_overcommitted_reservations(void **state)
{
	(void)state;
	struct vfurt_dma_quota *q = vfurt_dma_quota_create(25, 10);
	struct vfurt_dma_quota_acct a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, none = { 0 };

	assert_int_equal(vfr_dma_quota_join(q, &a), 10);
	assert_int_equal(vfr_dma_quota_join(q, &b), 10);
	assert_int_equal(vfr_dma_quota_join(q, &c), 5);
	assert_int_equal(vfr_dma_quota_join(q, &d), 0);
	assert_int_equal(vfr_dma_quota_take(&d), -ENOMEM);
	assert_int_equal(take_all(&c, 100), 5);
	assert_int_equal(vfr_dma_quota_take(&none), 0);
	vfr_dma_quota_give(&none);
	vfr_dma_quota_leave(&a);
	assert_int_equal(take_all(&d, 100), 10); /* a's reservation became shared room */
	vfr_dma_quota_leave(&b);
	vfr_dma_quota_leave(&c);
	vfr_dma_quota_leave(&d);
	assert_int_equal(stats(q).committed, 0);
	vfurt_dma_quota_destroy(q);
}

/* Defaults: half of vm.max_map_count, 64 per device. */
static void test_defaults(void **state)
{
	(void)state;
	struct vfurt_dma_quota *q = vfurt_dma_quota_create(0, 0);
	struct vfurt_dma_quota_stats st = stats(q);

	assert_true(st.limit >= 1);
	assert_int_equal(st.min_per_client, VFURT_DMA_QUOTA_DEFAULT_MIN);
	vfurt_dma_quota_destroy(q);
}

/* Devices on several threads take and give at once: the bound holds. */
struct worker_arg {
	struct vfurt_dma_quota_acct acct;
	unsigned peak;
};

static void *churn(void *p)
{
	struct worker_arg *w = p;

	for (int round = 0; round < 200; round++) {
		unsigned n = take_all(&w->acct, 500);

		w->peak = n > w->peak ? n : w->peak;
		while (n--)
			vfr_dma_quota_give(&w->acct);
	}
	return NULL;
}

static void test_concurrent_devices(void **state)
{
	(void)state;
	enum { T = 4 };
	struct vfurt_dma_quota *q = vfurt_dma_quota_create(1000, 50);
	struct worker_arg w[T] = { 0 };
	pthread_t th[T];

	for (int i = 0; i < T; i++)
		assert_int_equal(vfr_dma_quota_join(q, &w[i].acct), 50);
	for (int i = 0; i < T; i++)
		assert_int_equal(pthread_create(&th[i], NULL, churn, &w[i]), 0);
	for (int i = 0; i < T; i++) {
		pthread_join(th[i], NULL);
		assert_true(w[i].peak >= 50); /* never below its reservation */
		assert_true(w[i].peak <= 500);
	}
	assert_int_equal(stats(q).mapped, 0);
	assert_int_equal(stats(q).committed, 4 * 50);
	for (int i = 0; i < T; i++)
		vfr_dma_quota_leave(&w[i].acct);
	vfurt_dma_quota_destroy(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reservations_hold),
		cmocka_unit_test(test_overcommitted_reservations),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_concurrent_devices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
