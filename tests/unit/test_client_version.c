/* Unit tests of the client library: VERSION negotiation, capabilities, rejected replies. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>
#include <json-c/json.h>

#include <vfurt/client.h>

#include "common/fake_srv.h"
#include "common/testsrv.h"

static int64_t json_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

static void fk_version_only(struct fake *f)
{
	FK_CHECK(f, fk_version(f));
}

static void test_version_caps(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/vfurt-client-XXXXXX";
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct json_object *root, *jc, *v;
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":65536,"
		       "\"pgsizes\":12288,\"max_dma_maps\":100,\"write_multiple\":true,"
		       "\"unknown_key\":[1,2]}}";
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", dir);
	f.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f.listen_fd >= 0);
	assert_int_equal(bind(f.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f.listen_fd, 1), 0);
	f.fn = fk_version_only;
	assert_int_equal(pthread_create(&f.th, NULL, fake_main, &f), 0);

	c = vfurt_client_connect(sa.sun_path, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_get_caps(c, &caps), 0);
	assert_int_equal(caps.major, 0);
	assert_int_equal(caps.minor, 0);
	assert_true(caps.server_json);
	assert_int_equal(caps.max_msg_fds, 8);
	assert_int_equal(caps.max_data_xfer_size, 65536);
	assert_int_equal(caps.pgsizes, 12288);
	assert_int_equal(caps.max_dma_maps, 100);
	assert_true(caps.write_multiple);
	assert_false(caps.twin_socket);
	assert_int_equal(caps.client_max_msg_fds, 16);
	assert_int_equal(vfurt_client_twin_fd(c), -1);
	assert_true(vfurt_client_fd(c) >= 0);
	assert_non_null(strstr(vfurt_client_server_json(c), "max_dma_maps"));
	vfurt_client_close(c);
	fake_join(&f);

	/* What we proposed: QEMU's defaults. */
	assert_non_null(f.client_json);
	root = json_tokener_parse(f.client_json);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "capabilities", &jc));
	assert_int_equal(json_int(jc, "max_msg_fds"), 16);
	assert_int_equal(json_int(jc, "max_data_xfer_size"), 1 << 20);
	assert_int_equal(json_int(jc, "pgsizes"), 4096);
	assert_int_equal(json_int(jc, "max_dma_maps"), 65535);
	assert_true(json_object_object_get_ex(jc, "write_multiple", &v));
	assert_true(json_object_get_boolean(v));
	assert_false(json_object_object_get_ex(jc, "twin_socket", &v));
	json_object_put(root);

	unlink(sa.sun_path);
	rmdir(dir);
	fake_finish(&f);
}

static void test_version_overrides(void **state)
{
	struct vfurt_client_opts o = {
		.opts_size = sizeof(o), .timeout_ms = 2000, .max_msg_fds = 4,
		.max_data_xfer_size = 8192, .pgsizes = 4096 | 2097152, .max_dma_maps = 10,
		.flags = VFURT_CLIENT_NO_WRITE_MULTIPLE | VFURT_CLIENT_TWIN_SOCKET,
	};
	struct json_object *root, *jc, *v, *t;
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	f.reply_json = NULL;
	c = fake_start(&f, fk_version_only, &o);
	assert_non_null(c);
	/* No JSON back: the spec's defaults. */
	assert_int_equal(vfurt_client_get_caps(c, &caps), 0);
	assert_false(caps.server_json);
	assert_int_equal(caps.max_msg_fds, 1);
	assert_int_equal(caps.max_data_xfer_size, 1 << 20);
	assert_int_equal(caps.pgsizes, 4096);
	assert_int_equal(caps.max_dma_maps, 65535);
	assert_false(caps.write_multiple);
	assert_false(caps.twin_socket);
	assert_int_equal(caps.client_max_data_xfer_size, 8192);
	assert_null(vfurt_client_server_json(c));
	vfurt_client_close(c);
	fake_join(&f);

	root = json_tokener_parse(f.client_json);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "capabilities", &jc));
	assert_int_equal(json_int(jc, "max_msg_fds"), 4);
	assert_int_equal(json_int(jc, "max_data_xfer_size"), 8192);
	assert_int_equal(json_int(jc, "pgsizes"), 4096 | 2097152);
	assert_int_equal(json_int(jc, "max_dma_maps"), 10);
	assert_true(json_object_object_get_ex(jc, "write_multiple", &v));
	assert_false(json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(jc, "twin_socket", &t));
	assert_true(json_object_object_get_ex(t, "supported", &v));
	assert_true(json_object_get_boolean(v));
	json_object_put(root);
	fake_finish(&f);
}

static void test_version_no_json(void **state)
{
	struct vfurt_client_opts o = {
		.opts_size = sizeof(o), .timeout_ms = 2000, .flags = VFURT_CLIENT_NO_JSON,
	};
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_version_only, &o);
	assert_non_null(c);
	assert_int_equal(vfurt_client_get_caps(c, &caps), 0);
	assert_int_equal(caps.max_msg_fds, 8);
	assert_true(caps.write_multiple);
	vfurt_client_close(c);
	fake_join(&f);
	assert_int_equal(f.client_version_len, 4);
	assert_null(f.client_json);
	fake_finish(&f);
}

/* Connect with a given VERSION reply and expect failure with errno `err`. */
static void expect_connect_fails(struct fake *f, uint32_t flags, int err)
{
	struct vfurt_client_opts o = { .opts_size = sizeof(o), .timeout_ms = 2000, .flags = flags };
	struct vfurt_client *c;

	c = fake_start(f, fk_version_only, &o);
	assert_null(c);
	assert_int_equal(errno, err);
	fake_finish(f);
}

static void test_version_rejects(void **state)
{
	struct fake f;

	fake_init(&f);
	f.reply_major = 1; /* different major */
	expect_connect_fails(&f, 0, EPROTO);

	fake_init(&f);
	f.reply_minor = 1; /* bigger minor than we proposed (0) */
	expect_connect_fails(&f, 0, EPROTO);

	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_msg_fds\":"; /* truncated */
	expect_connect_fails(&f, 0, EPROTO);

	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_msg_fds\":\"many\"}}"; /* wrong type */
	expect_connect_fails(&f, 0, EPROTO);

	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_data_xfer_size\":0}}";
	expect_connect_fails(&f, 0, EPROTO);

	fake_init(&f);
	f.reply_json = "[1,2,3]";
	expect_connect_fails(&f, 0, EPROTO);

	/* Twin socket enabled although we did not propose it. */
	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":0}}}";
	expect_connect_fails(&f, 0, EPROTO);

	/* Twin enabled but the fd is missing: inconsistent, must abort. */
	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":0}}}";
	expect_connect_fails(&f, VFURT_CLIENT_TWIN_SOCKET, EPROTO);

	/* Required twin declined. */
	fake_init(&f);
	expect_connect_fails(&f, VFURT_CLIENT_TWIN_SOCKET | VFURT_CLIENT_REQUIRE_TWIN,
			     EPROTONOSUPPORT);
}

static void fk_version_error(struct fake *f)
{
	FK_CHECK(f, fk_expect(f, VFIO_USER_VERSION));
	FK_CHECK(f, fk_error(f, ENOTSUP) == 0);
}

static void test_version_error_reply(void **state)
{
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_version_error, NULL);
	assert_null(c);
	assert_int_equal(errno, ENOTSUP);
	fake_finish(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fake_fds_setup, fake_fds_teardown)
		T(test_version_caps),
		T(test_version_overrides),
		T(test_version_no_json),
		T(test_version_rejects),
		T(test_version_error_reply),
#undef T
	};

	return cmocka_run_group_tests_name("unit: client version", tests, NULL, NULL);
}
