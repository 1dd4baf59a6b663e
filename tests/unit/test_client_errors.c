/* Unit tests of the client library: error replies, timeouts, disconnects, raw requests, bad use. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <vfurt/client.h>

#include "common/fake_srv.h"
#include "common/testsrv.h"

static void fk_errors(struct fake *f)
{
	struct vfio_user_device_info di = { .argsz = 16, .flags = VFIO_DEVICE_FLAGS_PCI,
					    .num_regions = 9, .num_irqs = 5 };

	FK_CHECK(f, fk_version(f));
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	FK_CHECK(f, fk_error(f, ENOENT) == 0);
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_RESET));
	FK_CHECK(f, fk_error(f, 0) == 0);
	/* A reply that names another command. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	FK_CHECK(f, fk_send(f->sock, f->hdr->msg_id, VFIO_USER_DEVICE_RESET,
			    VFIO_USER_F_TYPE_REPLY, 0, NULL, 0, NULL, 0) == 0);
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	FK_CHECK(f, f->len == 16);
	FK_CHECK(f, fk_reply(f, &di, sizeof(di), NULL, 0) == 0);
}

static void test_error_replies(void **state)
{
	struct vfio_user_device_info di;
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_errors, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_device_info(c, &di), -ENOENT);
	assert_int_equal(vfurt_client_reset(c), -EIO);
	assert_int_equal(vfurt_client_device_info(c, &di), -EPROTO);
	assert_int_equal(vfurt_client_device_info(c, &di), 0);
	assert_int_equal(di.flags, VFIO_DEVICE_FLAGS_PCI);
	assert_int_equal(di.num_regions, 9);
	assert_int_equal(di.num_irqs, 5);
	vfurt_client_close(c);
	fake_finish(&f);
}

static void fk_slow(struct fake *f)
{
	struct vfio_user_device_info di = { .argsz = 16, .num_regions = 1 };
	uint16_t first;

	FK_CHECK(f, fk_version(f));
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	first = f->hdr->msg_id;
	/* Do not answer; the client times out and asks again. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	FK_CHECK(f, f->hdr->msg_id != first);
	di.num_regions = 1;
	FK_CHECK(f, fk_send(f->sock, first, VFIO_USER_DEVICE_GET_INFO, VFIO_USER_F_TYPE_REPLY, 0,
			    &di, sizeof(di), NULL, 0) == 0);
	di.num_regions = 2;
	FK_CHECK(f, fk_reply(f, &di, sizeof(di), NULL, 0) == 0);
	/* Then disconnect in the middle of a request. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_RESET));
	close(f->sock);
	f->sock = -1;
}

static void test_timeout_and_disconnect(void **state)
{
	struct vfio_user_device_info di;
	struct vfurt_client_stats st = { .stats_size = sizeof(st) };
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_slow, NULL);
	assert_non_null(c);
	vfurt_client_set_timeout(c, 200);
	assert_int_equal(vfurt_client_device_info(c, &di), -ETIMEDOUT);
	vfurt_client_set_timeout(c, 2000);
	/* The late reply to the first request is dropped, not mistaken. */
	assert_int_equal(vfurt_client_device_info(c, &di), 0);
	assert_int_equal(di.num_regions, 2);
	assert_int_equal(vfurt_client_get_stats(c, &st), 0);
	assert_int_equal(st.stale_replies, 1);
	assert_int_equal(vfurt_client_reset(c), -ECONNRESET);
	assert_int_equal(vfurt_client_reset(c), -ECONNRESET);
	assert_int_equal(vfurt_client_poll_server(c, 0), -ECONNRESET);
	vfurt_client_close(c);
	fake_finish(&f);
}

static void fk_raw(struct fake *f)
{
	uint8_t out[24] = { 1, 2, 3 };
	int efd = eventfd(0, EFD_CLOEXEC);

	FK_CHECK(f, fk_version(f));
	FK_CHECK(f, fk_recv(f) == 0);
	FK_CHECK(f, f->hdr->cmd == 99 && f->len == 3 && f->nfds == 1);
	FK_CHECK(f, fk_error(f, ENOSYS) == 0);
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_FEATURE));
	FK_CHECK(f, f->len == 8 && f->hdr->msg_id == 0x77 + 1);
	FK_CHECK(f, fk_reply(f, out, sizeof(out), &efd, 1) == 0);
	close(efd);
	/* A reply too big for the caller's buffer. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	FK_CHECK(f, fk_reply(f, out, sizeof(out), NULL, 0) == 0);
}

static void test_raw(void **state)
{
	struct vfio_user_header h;
	uint8_t raw[16 + 3];
	uint8_t reply[64];
	uint32_t feat[2] = { 8, 0 };
	size_t len, nfds;
	int fds[2] = { -1, -1 };
	int efd = eventfd(0, EFD_CLOEXEC);
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_raw, NULL);
	assert_non_null(c);
	h = (struct vfio_user_header){ .msg_id = vfurt_client_next_msg_id(c), .cmd = 99,
				       .msg_size = sizeof(raw) };
	memcpy(raw, &h, sizeof(h));
	memcpy(raw + sizeof(h), "abc", 3);
	assert_int_equal(vfurt_client_send_raw(c, raw, sizeof(raw), &efd, 1), 0);
	nfds = 2;
	assert_int_equal(vfurt_client_recv_raw(c, &h, reply, sizeof(reply), &len, fds, &nfds), 0);
	assert_true(h.flags & VFIO_USER_F_ERROR);
	assert_int_equal(h.error_no, ENOSYS);
	assert_int_equal(h.cmd, 99);
	assert_int_equal(len, 0);
	assert_int_equal(nfds, 0);

	/* request(): fresh msg_id, payload copied out, fds handed over. */
	while (vfurt_client_next_msg_id(c) != 0x77)
		;
	nfds = 2;
	assert_int_equal(vfurt_client_request(c, VFIO_USER_DEVICE_FEATURE, 0, feat, sizeof(feat),
					      NULL, 0, reply, sizeof(reply), &len, fds, &nfds), 0);
	assert_int_equal(len, 24);
	assert_int_equal(reply[2], 3);
	assert_int_equal(nfds, 1);
	assert_true(fcntl(fds[0], F_GETFD) >= 0);
	close(fds[0]);
	assert_int_equal(vfurt_client_request(c, VFIO_USER_DEVICE_GET_INFO, 0, NULL, 0, NULL, 0,
					      reply, 8, &len, NULL, NULL), -EMSGSIZE);
	assert_int_equal(len, 24);
	vfurt_client_close(c);
	close(efd);
	fake_finish(&f);
}

static void test_bad_args(void **state)
{
	struct vfurt_client_opts o = { .opts_size = sizeof(o), .flags = 1u << 30 };
	int sv[2];

	assert_null(vfurt_client_connect(NULL, NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(vfurt_client_connect("/nonexistent/vfurt.sock", NULL));
	assert_int_equal(errno, ENOENT);
	/* Unknown flags: the socket is still consumed. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_null(vfurt_client_connect_fd(sv[0], &o));
	assert_int_equal(errno, EINVAL);
	close(sv[1]);
	vfurt_client_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fake_fds_setup, fake_fds_teardown)
		T(test_error_replies),
		T(test_timeout_and_disconnect),
		T(test_raw),
		T(test_bad_args),
#undef T
	};

	return cmocka_run_group_tests_name("unit: client errors", tests, NULL, NULL);
}
