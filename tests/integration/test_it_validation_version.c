/* Integration: every VERSION rule answers a precise errno and the connection survives. */
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

#define IOVA 0x100000ull
#define PG 4096u
#define RW (VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE)

static void test_command_before_version(void **state)
{
	struct it_fx *x = *state;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	struct vfio_user_dma_map map = { .argsz = sizeof(map), .flags = RW, .addr = IOVA,
					 .size = PG };

	assert_int_equal(val_req(x->c, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), NULL, 0),
			 -EINVAL);
	assert_int_equal(val_req(x->c, VFIO_USER_DMA_MAP, &map, sizeof(map), NULL, 0), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 0);
	assert_int_equal(atomic_load(&x->st[0]->attach), 0);
	/* VERSION is still accepted afterwards */
	assert_int_equal(it_raw_version(x->c, 0, 0, "{}", NULL), 0);
	assert_int_equal(atomic_load(&x->st[0]->attach), 1);
	assert_true(it_alive(x->c));
}

static void test_second_version(void **state)
{
	struct it_fx *x = *state;

	assert_int_equal(it_raw_version(x->c, 0, 0, "{}", NULL), -EINVAL);
	assert_int_equal(it_raw_version(x->c, 0, 0, NULL, NULL), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->attach), 1);
	assert_true(it_alive(x->c));
}

static void test_bad_major(void **state)
{
	struct it_fx *x = *state;
	struct vfurt_client_opts o = it_opts(VFURT_CLIENT_SET_VERSION);

	/* the error reply comes first, then the server hangs up */
	assert_int_equal(it_raw_version(x->c, 1, 0, "{}", NULL), -ENOTSUP);
	assert_true(it_server_closed(x->c));
	assert_int_equal(atomic_load(&x->st[0]->attach), 0);
	val_guard_ok(x);

	/* through the library: connect fails with the server's errno */
	vfurt_client_close(x->c);
	o.version_major = 2;
	errno = 0;
	x->c = it_connect_retry(testsrv_path(x->ts, 0), &o);
	assert_null(x->c);
	assert_int_equal(errno, ENOTSUP);
	/* a correct client gets in afterwards */
	x->c = it_reconnect(testsrv_path(x->ts, 0), 0);
	assert_non_null(x->c);
	assert_true(it_alive(x->c));
}

static void test_version_bad_json(void **state)
{
	static const char *const bad[] = {
		"{",
		"[1]",
		"\"capabilities\"",
		"42",
		"{\"capabilities\":5}",
		"{\"capabilities\":[]}",
		"{\"capabilities\":{\"max_msg_fds\":\"16\"}}",
		"{\"capabilities\":{\"max_msg_fds\":0}}",
		"{\"capabilities\":{\"max_msg_fds\":-1}}",
		"{\"capabilities\":{\"max_data_xfer_size\":0}}",
		"{\"capabilities\":{\"max_data_xfer_size\":1.5}}",
		"{\"capabilities\":{\"max_data_xfer_size\":4294967296}}",
		"{\"capabilities\":{\"pgsizes\":8192}}",
		"{\"capabilities\":{\"pgsizes\":\"4096\"}}",
		"{\"capabilities\":{\"max_dma_maps\":true}}",
		"{\"capabilities\":{\"write_multiple\":1}}",
		"{\"capabilities\":{\"twin_socket\":true}}",
		"{\"capabilities\":{\"twin_socket\":{\"supported\":\"yes\"}}}",
	};
	struct it_fx *x = *state;
	struct vfio_user_version v = { 0 };
	char unterminated[sizeof(v) + 2];
	int id;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (it_raw_version(x->c, 0, 0, bad[i], NULL) != -EINVAL)
			fail_msg("VERSION with %s was not refused with EINVAL", bad[i]);
	}
	/* JSON without its terminating NUL */
	memcpy(unterminated, &v, sizeof(v));
	memcpy(unterminated + sizeof(v), "{}", 2);
	id = it_send_cmd(x->c, VFIO_USER_VERSION, 0, unterminated, sizeof(unterminated), NULL, 0);
	assert_true(id >= 0);
	assert_int_equal(it_recv_reply(x->c, (uint16_t)id, VFIO_USER_VERSION, NULL, 0, NULL),
			 -EINVAL);
	/* a payload shorter than major/minor */
	id = it_send_cmd(x->c, VFIO_USER_VERSION, 0, &v, 2, NULL, 0);
	assert_int_equal(it_recv_reply(x->c, (uint16_t)id, VFIO_USER_VERSION, NULL, 0, NULL),
			 -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->attach), 0);

	/* none of that broke the connection: a good VERSION still works */
	assert_int_equal(it_raw_version(x->c, 0, 0, "{\"capabilities\":{}}", NULL), 0);
	assert_true(it_alive(x->c));
	val_guard_ok(x);
}

static void test_version_json_tolerated(void **state)
{
	static const char *const ok[] = {
		"",
		"{}",
		"{\"other\":[1,2,3]}",
		"{\"capabilities\":{\"unknown_key\":{\"a\":1},\"max_msg_fds\":1}}",
		"{\"capabilities\":{\"pgsizes\":12288,\"migration\":{\"pgsize\":4096}}}",
	};
	struct it_fx *x = *state;
	uint16_t minor = 99;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct vfurt_client *c;

		if (i > 0) {
			vfurt_client_close(x->c);
			x->c = NULL;
			c = it_reconnect(testsrv_path(x->ts, 0), VFURT_CLIENT_NO_HANDSHAKE);
			assert_non_null(c);
			x->c = c;
		}
		if (it_raw_version(x->c, 0, 3, ok[i], &minor) != 0)
			fail_msg("VERSION with '%s' refused", ok[i]);
		assert_int_equal(minor, 0);
		assert_true(it_alive(x->c));
		assert_int_equal(it_wait_ctr(&x->st[0]->detach, (unsigned)i), i);
	}
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, val_setup, it_fx_teardown)
#define TS(fn, s) cmocka_unit_test_setup_teardown(fn, s, it_fx_teardown)
	const struct CMUnitTest tests[] = {
		TS(test_command_before_version, val_setup_no_handshake),
		T(test_second_version),
		TS(test_bad_major, val_setup_no_handshake),
		TS(test_version_bad_json, val_setup_no_handshake),
		TS(test_version_json_tolerated, val_setup_no_handshake),
#undef T
#undef TS
	};

	return cmocka_run_group_tests_name("validation: VERSION", tests, NULL, NULL);
}
