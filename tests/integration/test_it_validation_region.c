/* Integration: validation of region reads and writes, one by one and REGION_WRITE_MULTI. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fixture.h"
#include "common/it_util.h"
#include "common/testsrv.h"
#include "common/val_fx.h"

static void test_region_index(void **state)
{
	struct it_fx *x = *state;
	struct vfurt_client_region_info ri;
	struct vfurt_client_io_fds io;
	struct vfio_irq_info ii;

	assert_int_equal(val_rd(x->c, VFURT_MAX_REGIONS, 0, 4), -EINVAL);
	assert_int_equal(val_rd(x->c, 0xffffffffu, 0, 4), -EINVAL);
	assert_int_equal(val_rd(x->c, TD_REGION_DEVSPEC + 1, 0, 4), -EINVAL);
	assert_int_equal(val_wr(x->c, VFURT_MAX_REGIONS, 0, 4, 4), -EINVAL);
	assert_int_equal(vfurt_client_region_info(x->c, TD_REGION_DEVSPEC + 1, &ri), -EINVAL);
	assert_int_equal(vfurt_client_region_info(x->c, 0xffffffffu, &ri), -EINVAL);
	assert_int_equal(vfurt_client_irq_info(x->c, VFURT_IRQ_NUM, &ii), -EINVAL);
	assert_int_equal(vfurt_client_region_io_fds(x->c, VFURT_MAX_REGIONS, &io), -EINVAL);

	/* BAR3 is absent: described with size 0, not accessible */
	assert_int_equal(vfurt_client_region_info(x->c, VFURT_REGION_BAR3, &ri), 0);
	assert_int_equal(ri.size, 0);
	assert_int_equal(ri.flags, 0);
	vfurt_client_region_info_release(&ri);
	assert_int_equal(val_rd(x->c, VFURT_REGION_BAR3, 0, 4), -EINVAL);
	assert_int_equal(val_wr(x->c, VFURT_REGION_BAR3, 0, 4, 4), -EINVAL);
	assert_int_equal(vfurt_client_region_io_fds(x->c, VFURT_REGION_BAR3, &io), -EINVAL);
	assert_true(it_alive(x->c));
}

static void test_region_bounds(void **state)
{
	struct it_fx *x = *state;

	assert_int_equal(val_rd(x->c, VFURT_REGION_BAR1, UINT64_MAX - 1, 4), -EINVAL);
	assert_int_equal(val_rd(x->c, VFURT_REGION_BAR1, UINT64_MAX, 1), -EINVAL);
	assert_int_equal(val_wr(x->c, VFURT_REGION_BAR1, UINT64_MAX - 3, 4, 4), -EINVAL);
	assert_int_equal(val_rd(x->c, VFURT_REGION_BAR1, TD_BAR1_SIZE - 2, 4), -EINVAL);
	assert_int_equal(val_rd(x->c, VFURT_REGION_BAR1, TD_BAR1_SIZE, 1), -EINVAL);
	assert_int_equal(val_wr(x->c, VFURT_REGION_BAR2, 255, 2, 2), -EINVAL);
	assert_int_equal(val_rd(x->c, VFURT_REGION_BAR1, TD_BAR1_SIZE - 4, 4), 0);
	assert_int_equal(val_rd(x->c, VFURT_REGION_BAR1, 0, TD_BAR1_SIZE), 0);
	assert_int_equal(val_rd(x->c, VFURT_REGION_BAR1, 0, TD_BAR1_SIZE + 1), -EINVAL);
	/* count 0 */
	assert_int_equal(val_rd(x->c, VFURT_REGION_BAR1, 0, 0), -EINVAL);
	assert_int_equal(val_wr(x->c, VFURT_REGION_BAR1, 0, 0, 0), -EINVAL);
	assert_true(it_alive(x->c));
}

static int setup_small_xfer(void **state)
{
	struct vfurt_conn_opts co = { .opts_size = sizeof(co), .max_data_xfer_size = 4096 };

	return val_start(state, NULL, &co, 0);
}

static void test_region_count_over_max(void **state)
{
	struct it_fx *x = *state;
	uint8_t *big = malloc(3 * 4096);

	assert_non_null(big);
	assert_int_equal(val_rd(x->c, VFURT_REGION_BAR1, 0, 4096), 0);
	assert_int_equal(val_rd(x->c, VFURT_REGION_BAR1, 0, 4097), -EINVAL);
	assert_int_equal(val_wr(x->c, VFURT_REGION_BAR1, 0, 4097, 4097), -EINVAL);
	assert_int_equal(val_wr(x->c, VFURT_REGION_BAR1, 0, 4096, 4096), 0);
	/* the client library splits by the negotiated size */
	it_fill(big, 3 * 4096, 5);
	assert_int_equal(vfurt_client_region_write(x->c, VFURT_REGION_BAR1, 100, big, 3 * 4096),
			 0);
	memset(big, 0, 3 * 4096);
	assert_int_equal(vfurt_client_region_read(x->c, VFURT_REGION_BAR1, 100, big, 3 * 4096), 0);
	assert_true(it_check(big, 3 * 4096, 5));
	free(big);
	assert_true(it_alive(x->c));
}

static void test_region_write_len_mismatch(void **state)
{
	struct it_fx *x = *state;
	uint32_t v = 0;

	assert_int_equal(it_wr32(x->c, VFURT_REGION_BAR0, 0x30, 0x12345678), 0);
	assert_int_equal(val_wr(x->c, VFURT_REGION_BAR0, 0x30, 8, 4), -EINVAL);
	assert_int_equal(val_wr(x->c, VFURT_REGION_BAR0, 0x30, 4, 8), -EINVAL);
	assert_int_equal(val_wr(x->c, VFURT_REGION_BAR0, 0x30, 4, 0), -EINVAL);
	assert_int_equal(it_rd32(x->c, VFURT_REGION_BAR0, 0x30, &v), 0);
	assert_int_equal(v, 0x12345678);
	assert_true(it_alive(x->c));
}

static void test_region_write_read_only(void **state)
{
	struct it_fx *x = *state;
	struct vfurt_client *c = it_connect(testsrv_path(x->ts, 2), 0);
	struct vfurt_client_region_info ri;
	struct vfio_user_write_multi_entry e = { .region = 0, .offset = 0, .count = 4 };
	uint32_t v = 0;

	assert_non_null(c);
	assert_int_equal(vfurt_client_region_info(c, VFURT_REGION_BAR0, &ri), 0);
	assert_int_equal(ri.flags, VFIO_REGION_INFO_FLAG_READ);
	vfurt_client_region_info_release(&ri);
	assert_int_equal(it_rd32(c, VFURT_REGION_BAR0, 0, &v), 0);
	assert_int_equal(v, 0x5a5a5a5a);
	assert_int_equal(it_wr32(c, VFURT_REGION_BAR0, 0, 1), -EPERM);
	assert_int_equal(vfurt_client_region_write_multi(c, &e, 1, false), -EPERM);
	assert_int_equal(it_rd32(c, VFURT_REGION_BAR0, 0, &v), 0);
	vfurt_client_close(c);
}

static void test_write_multi_not_negotiated(void **state)
{
	struct it_fx *x = *state;
	struct vfio_user_write_multi_entry e = { .region = VFURT_REGION_BAR0, .offset = 0x50,
						 .count = 4, .data = { 1, 2, 3, 4 } };
	struct vfurt_client_opts o = it_opts(VFURT_CLIENT_NO_WRITE_MULTIPLE);
	uint32_t v = 0;

	vfurt_client_close(x->c);
	x->c = it_connect_retry(testsrv_path(x->ts, 0), &o);
	assert_non_null(x->c);
	assert_int_equal(vfurt_client_region_write_multi(x->c, &e, 1, false), -EINVAL);
	assert_int_equal(it_rd32(x->c, VFURT_REGION_BAR0, 0x50, &v), 0);
	assert_int_equal(v, 0);
	assert_true(it_alive(x->c));
}

static int multi(struct vfurt_client *c, uint64_t wr_cnt,
		 const struct vfio_user_write_multi_entry *e, size_t n)
{
	size_t len = sizeof(struct vfio_user_write_multi) + n * sizeof(*e);
	uint8_t *p = malloc(len);
	int rc;

	assert_non_null(p);
	memcpy(p, &wr_cnt, sizeof(wr_cnt));
	if (n)
		memcpy(p + sizeof(wr_cnt), e, n * sizeof(*e));
	rc = val_req(c, VFIO_USER_REGION_WRITE_MULTI, p, len, NULL, 0);
	free(p);
	return rc;
}

static void test_write_multi_invalid(void **state)
{
	struct it_fx *x = *state;
	struct vfio_user_write_multi_entry e[VFIO_USER_MULTI_MAX + 1];
	uint8_t back[0x80];
	size_t i;

	memset(e, 0, sizeof(e));
	for (i = 0; i <= VFIO_USER_MULTI_MAX; i++) {
		e[i].region = VFURT_REGION_BAR0;
		e[i].offset = (i % 16) * 8;
		e[i].count = 8;
		memset(e[i].data, 0xa0 + (int)(i % 16), 8);
	}
	assert_int_equal(multi(x->c, 0, NULL, 0), -EINVAL);
	assert_int_equal(multi(x->c, VFIO_USER_MULTI_MAX + 1, e, VFIO_USER_MULTI_MAX + 1), -EINVAL);
	/* wr_cnt and the message size disagree */
	assert_int_equal(multi(x->c, 2, e, 3), -EINVAL);
	assert_int_equal(multi(x->c, 3, e, 2), -EINVAL);
	assert_int_equal(multi(x->c, UINT64_MAX, e, 2), -EINVAL);

	/* one bad entry among good ones: none is applied */
	e[3].count = VFIO_USER_MULTI_DATA + 1;
	assert_int_equal(multi(x->c, 5, e, 5), -EINVAL);
	e[3].count = 0;
	assert_int_equal(multi(x->c, 5, e, 5), -EINVAL);
	e[3].count = 8;
	e[4].region = VFURT_REGION_BAR3;
	assert_int_equal(multi(x->c, 5, e, 5), -EINVAL);
	e[4].region = VFURT_REGION_BAR2;
	e[4].offset = 252;
	assert_int_equal(multi(x->c, 5, e, 5), -EINVAL);
	e[4].region = VFURT_REGION_BAR0;
	e[4].offset = 0x20;
	assert_int_equal(vfurt_client_region_read(x->c, VFURT_REGION_BAR0, 0, back, sizeof(back)),
			 0);
	for (i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0);

	/* exactly the maximum is fine */
	assert_int_equal(multi(x->c, VFIO_USER_MULTI_MAX, e, VFIO_USER_MULTI_MAX), 0);
	assert_int_equal(vfurt_client_region_read(x->c, VFURT_REGION_BAR0, 0, back, sizeof(back)),
			 0);
	for (i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0xa0 + i / 8);
	assert_true(it_alive(x->c));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, val_setup, it_fx_teardown)
#define TS(fn, s) cmocka_unit_test_setup_teardown(fn, s, it_fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_region_index),
		T(test_region_bounds),
		TS(test_region_count_over_max, setup_small_xfer),
		T(test_region_write_len_mismatch),
		T(test_region_write_read_only),
		T(test_write_multi_not_negotiated),
		T(test_write_multi_invalid),
#undef T
#undef TS
	};

	return cmocka_run_group_tests_name("validation: regions", tests, NULL, NULL);
}
