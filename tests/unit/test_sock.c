/* Unit tests of whole-message socket I/O with fd passing (io/sock.c). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/device.h>
#include <vfurt/server.h>

#include "io/sock.h"

static int sv[2];

static int setup(void **state)
{
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
}

static int teardown(void **state)
{
	close(sv[0]);
	close(sv[1]);
	return 0;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void roundtrip_with_fds(void **state)
{
	struct vfio_user_header h = { .msg_id = 7, .cmd = VFIO_USER_DMA_MAP, .msg_size = 16 + 5 };
	uint8_t buf[64];
	int fds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	int got[4];
	size_t n = 0;
	ssize_t len;

	assert_int_equal(vfr_sock_send_msg(sv[0], &h, "hello", 5, fds, 2, 1000), 0);
	len = vfr_sock_recv_msg(sv[1], buf, sizeof(buf), got, &n, 4, 1000);
	assert_int_equal(len, 21);
	assert_int_equal(n, 2);
	assert_memory_equal(buf + 16, "hello", 5);
	assert_true(fd_open(got[0]) && fd_open(got[1]));
	assert_int_not_equal(got[0], fds[0]);
	vfr_close_fds(got, n);
	assert_int_equal(got[0], -1);
	close(fds[0]);
	close(fds[1]);
}

static void too_big_closes_fds(void **state)
{
	struct vfio_user_header h = { .msg_id = 1, .cmd = 9, .msg_size = 16 + 100 };
	uint8_t payload[100] = { 0 };
	uint8_t buf[64];
	int fd = eventfd(0, EFD_CLOEXEC);
	int got[4] = { -1, -1, -1, -1 };
	size_t n = 0;

	assert_int_equal(vfr_sock_send_msg(sv[0], &h, payload, sizeof(payload), &fd, 1, 1000), 0);
	assert_int_equal(vfr_sock_recv_msg(sv[1], buf, sizeof(buf), got, &n, 4, 1000), -EMSGSIZE);
	assert_int_equal(n, 0);
	close(fd);
}

static void short_size_is_eproto(void **state)
{
	struct vfio_user_header h = { .msg_size = 8 };
	uint8_t buf[64];

	assert_int_equal(write(sv[0], &h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(vfr_sock_recv_msg(sv[1], buf, sizeof(buf), NULL, NULL, 0, 1000), -EPROTO);
}

static void eof_mid_message(void **state)
{
	struct vfio_user_header h = { .msg_size = 16 + 32 };
	uint8_t buf[64];

	assert_int_equal(write(sv[0], &h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(write(sv[0], "abc", 3), 3);
	shutdown(sv[0], SHUT_WR);
	assert_int_equal(vfr_sock_recv_msg(sv[1], buf, sizeof(buf), NULL, NULL, 0, 1000),
			 -ECONNRESET);
}

static void timeout(void **state)
{
	uint8_t buf[64];

	assert_int_equal(vfr_sock_recv_msg(sv[1], buf, sizeof(buf), NULL, NULL, 0, 20),
			 -ETIMEDOUT);
}

static void extra_fds_are_closed(void **state)
{
	struct vfio_user_header h = { .msg_size = 16 };
	int fds[3] = { eventfd(0, 0), eventfd(0, 0), eventfd(0, 0) };
	uint8_t buf[64];
	int got[1];
	size_t n = 0;

	assert_int_equal(vfr_sock_send_msg(sv[0], &h, NULL, 0, fds, 3, 1000), 0);
	/* only one fd is accepted: the others are closed, the message is kept */
	assert_int_equal(vfr_sock_recv_msg(sv[1], buf, sizeof(buf), got, &n, 1, 1000), -EMSGSIZE);
	assert_int_equal(n, 0);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
}

static void send_to_closed_peer(void **state)
{
	struct vfio_user_header h = { .msg_size = 16 };
	int rc;

	close(sv[1]);
	sv[1] = socket(AF_UNIX, SOCK_STREAM, 0); /* keep teardown simple */
	rc = vfr_sock_send_msg(sv[0], &h, NULL, 0, NULL, 0, 100);
	assert_true(rc == -EPIPE || rc == -ECONNRESET);
}

static void bad_args(void **state)
{
	struct iovec iov[9] = { 0 };
	int fds[VFURT_SOCK_MAX_FDS + 1] = { 0 };
	struct vfio_user_header h = { .msg_size = 16 };

	assert_int_equal(vfr_sock_send(sv[0], iov, 0, NULL, 0, 10), -EINVAL);
	assert_int_equal(vfr_sock_send(sv[0], iov, 9, NULL, 0, 10), -EINVAL);
	assert_int_equal(vfr_sock_send_msg(sv[0], &h, NULL, 0, fds, VFURT_SOCK_MAX_FDS + 1, 10),
			 -EINVAL);
}

/* vfurt_listen_unix: a stale socket file (nobody accepts) is replaced, a live one is
 * -EADDRINUSE and left alone, anything else at the path is -EEXIST. */
static void listen_stale_and_live(void **state)
{
	char dir[] = "/tmp/vfurt-sock-XXXXXX";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int stale, live, again;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
	/* bound and closed, never listened: what a crashed daemon leaves */
	stale = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(stale >= 0);
	assert_int_equal(bind(stale, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(stale);
	live = vfurt_listen_unix(sa.sun_path, 0600);
	assert_true(live >= 0);
	assert_int_equal(stat(sa.sun_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* somebody is accepting: refused, the socket stays */
	again = vfurt_listen_unix(sa.sun_path, 0600);
	assert_int_equal(again, -EADDRINUSE);
	assert_int_equal(stat(sa.sun_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	close(live);
	unlink(sa.sun_path);
	/* not a socket: never unlinked */
	fp = fopen(sa.sun_path, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(vfurt_listen_unix(sa.sun_path, 0600), -EEXIST);
	assert_int_equal(unlink(sa.sun_path), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* The errnos server.h promises for bad paths and a device served twice. */
static void listen_and_add_errnos(void **state)
{
	char dir[] = "/tmp/vfurt-sock-XXXXXX";
	char path[256];
	char longp[200];
	struct vfurt_dev_opts o = { .opts_size = sizeof(o), .name = "d" };
	struct vfurt_server *a = vfurt_server_create(NULL);
	struct vfurt_server *b = vfurt_server_create(NULL);
	struct vfurt_dev *dev = vfurt_dev_create(&o);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(dev);
	assert_non_null(mkdtemp(dir));
	memset(longp, 'x', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(vfurt_listen_unix("", 0), -EINVAL);
	assert_int_equal(vfurt_listen_unix(NULL, 0), -EINVAL);
	assert_int_equal(vfurt_listen_unix(longp, 0), -ENAMETOOLONG);
	assert_int_equal(vfurt_server_add_device(a, dev, longp, 0), -ENAMETOOLONG);
	assert_int_equal(vfurt_server_add_device(a, dev, "", 0), -EINVAL);
	assert_int_equal(vfurt_server_add_device(a, NULL, "x", 0), -EINVAL);
	snprintf(path, sizeof(path), "%s/a", dir);
	assert_int_equal(vfurt_server_add_device(a, dev, path, 0600), 0);
	/* served already: refused, and b leaves no socket file behind */
	snprintf(path, sizeof(path), "%s/b", dir);
	assert_int_equal(vfurt_server_add_device(b, dev, path, 0600), -EBUSY);
	assert_int_equal(access(path, F_OK), -1);
	vfurt_server_destroy(b);
	vfurt_server_destroy(a); /* destroys dev and removes dir/a */
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(roundtrip_with_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(too_big_closes_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(short_size_is_eproto, setup, teardown),
		cmocka_unit_test_setup_teardown(eof_mid_message, setup, teardown),
		cmocka_unit_test_setup_teardown(timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(extra_fds_are_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(send_to_closed_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_args, setup, teardown),
		cmocka_unit_test(listen_stale_and_live),
		cmocka_unit_test(listen_and_add_errnos),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
