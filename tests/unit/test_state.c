/* State images: records, sections, fds, the transport and what a corrupt image gets. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/state.h>

static int nr_open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

static struct vfurt_state *build(int efd)
{
	struct vfurt_state *s = vfurt_state_create();
	uint8_t blob[13];

	assert_non_null(s);
	memset(blob, 0xab, sizeof(blob));
	assert_int_equal(vfurt_state_put_u64(s, 1, 0x1122334455667788ull), 0);
	assert_int_equal(vfurt_state_open(s, 2), 0);
	assert_int_equal(vfurt_state_put_u32(s, 1, 7), 0);
	assert_int_equal(vfurt_state_put(s, 2, blob, sizeof(blob)), 0);
	assert_int_equal(vfurt_state_open(s, 3), 0);
	assert_int_equal(vfurt_state_put_str(s, 1, "nvme0"), 0);
	assert_int_equal(vfurt_state_put_fd(s, 2, efd), 0);
	assert_int_equal(vfurt_state_close(s), 0);
	assert_int_equal(vfurt_state_put_bool(s, 4, true), 0);
	assert_int_equal(vfurt_state_close(s), 0);
	assert_int_equal(vfurt_state_put_u32(s, 3, 9), 0);
	return s;
}

static void check(struct vfurt_state *s, int efd)
{
	struct vfurt_state_cur root, a, b;
	uint8_t blob[13], want[13];
	uint64_t v64, cnt;
	uint32_t v32;
	char name[16];
	bool flag;
	int fd;

	memset(want, 0xab, sizeof(want));
	assert_int_equal(vfurt_state_root(s, &root), 0);
	assert_int_equal(vfurt_state_get_u64(&root, 1, &v64), 0);
	assert_true(v64 == 0x1122334455667788ull);
	assert_int_equal(vfurt_state_get_u32(&root, 3, &v32), 0);
	assert_int_equal(v32, 9);
	assert_int_equal(vfurt_state_get_u32(&root, 99, &v32), -ENOENT);
	assert_int_equal(vfurt_state_get_u32(&root, 1, &v32), -EBADMSG); /* 8 bytes */
	assert_int_equal(vfurt_state_sub(&root, 2, &a), 0);
	assert_int_equal(vfurt_state_get_u32(&a, 1, &v32), 0);
	assert_int_equal(v32, 7);
	assert_int_equal(vfurt_state_get(&a, 2, blob, sizeof(blob)), 0);
	assert_memory_equal(blob, want, sizeof(blob));
	assert_int_equal(vfurt_state_get_bool(&a, 4, &flag), 0);
	assert_true(flag);
	assert_int_equal(vfurt_state_sub(&a, 3, &b), 0);
	assert_int_equal(vfurt_state_get_str(&b, 1, name, sizeof(name)), 0);
	assert_string_equal(name, "nvme0");
	assert_int_equal(vfurt_state_get_str(&b, 1, name, 3), -ENAMETOOLONG);
	fd = vfurt_state_take_fd(&b, 2);
	assert_true(fd >= 0);
	assert_int_equal(vfurt_state_take_fd(&b, 2), -EBADF);
	/* the same eventfd: a write on one is read on the other */
	cnt = 3;
	assert_int_equal(write(efd, &cnt, sizeof(cnt)), sizeof(cnt));
	assert_int_equal(read(fd, &cnt, sizeof(cnt)), sizeof(cnt));
	assert_true(cnt == 3);
	close(fd);
	/* a section is not a record of the same tag, and vice versa */
	assert_int_equal(vfurt_state_sub(&root, 1, &a), -ENOENT);
}

static void test_round_trip(void **st)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	int base = nr_open_fds();
	struct vfurt_state *s = build(efd);

	(void)st;
	assert_int_equal(vfurt_state_nr_fds(s), 1);
	assert_int_equal(vfurt_state_size(s) % 8, 0);
	check(s, efd);
	vfurt_state_destroy(s);
	assert_int_equal(nr_open_fds(), base);
	close(efd);
}

static void test_adopt_keeps_number(void **st)
{
	int efd = eventfd(0, EFD_CLOEXEC), other = eventfd(0, EFD_CLOEXEC);
	struct vfurt_state *s = vfurt_state_create();
	struct vfurt_state_cur root;
	uint64_t cnt = 5;

	(void)st;
	assert_int_equal(vfurt_state_put_fd(s, 1, efd), 0);
	assert_int_equal(vfurt_state_root(s, &root), 0);
	assert_int_equal(vfurt_state_adopt_fd(&root, 1, other), 0);
	/* `other` is now efd's file */
	assert_int_equal(write(efd, &cnt, sizeof(cnt)), sizeof(cnt));
	assert_int_equal(read(other, &cnt, sizeof(cnt)), sizeof(cnt));
	assert_true(cnt == 5);
	assert_true(fcntl(other, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(vfurt_state_adopt_fd(&root, 1, other), -EBADF);
	assert_int_equal(vfurt_state_adopt_fd(&root, 2, other), -ENOENT);
	vfurt_state_destroy(s);
	close(efd);
	close(other);
}

static void test_bad_calls(void **st)
{
	struct vfurt_state *s = vfurt_state_create();
	struct vfurt_state_cur root;

	(void)st;
	assert_int_equal(vfurt_state_put(NULL, 1, "x", 1), -EINVAL);
	assert_int_equal(vfurt_state_put(s, 1 | VFURT_STATE_SECTION, "x", 1), -EINVAL);
	assert_int_equal(vfurt_state_put(s, 1, NULL, 1), -EINVAL);
	assert_int_equal(vfurt_state_put_fd(s, 1, -1), -EINVAL);
	assert_int_equal(vfurt_state_put_fd(s, 1, 4000), -EBADF);
	assert_int_equal(vfurt_state_close(s), -EINVAL);
	for (unsigned i = 0; i < VFURT_STATE_MAX_DEPTH; i++)
		assert_int_equal(vfurt_state_open(s, 1), 0);
	assert_int_equal(vfurt_state_open(s, 1), -E2BIG);
	assert_int_equal(vfurt_state_root(s, &root), -EINVAL); /* sections open */
	assert_int_equal(vfurt_state_send(s, -1, 0), -EINVAL);
	for (unsigned i = 0; i < VFURT_STATE_MAX_DEPTH; i++)
		assert_int_equal(vfurt_state_close(s), 0);
	assert_int_equal(vfurt_state_root(s, &root), 0);
	vfurt_state_destroy(s);
	vfurt_state_destroy(NULL);
}

static void test_transport(void **st)
{
	int efd = eventfd(0, EFD_CLOEXEC), sv[2];
	struct vfurt_state *s = build(efd), *r = NULL;
	char err[128];
	int base;

	(void)st;
	/* enough fds for several batches, and bytes for several chunks */
	for (int i = 0; i < 600; i++)
		assert_int_equal(vfurt_state_put_fd(s, 100 + (uint32_t)i, efd), 0);
	{
		static uint8_t big[200000];

		memset(big, 0x5a, sizeof(big));
		assert_int_equal(vfurt_state_put(s, 50, big, sizeof(big)), 0);
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	base = nr_open_fds();
	/* the socket buffer is smaller than the image: send from a child */
	if (fork() == 0) {
		close(sv[1]);
		_exit(vfurt_state_send(s, sv[0], 5000) ? 1 : 0);
	}
	assert_int_equal(vfurt_state_recv(sv[1], 5000, 0, &r, err, sizeof(err)), 0);
	assert_int_equal(vfurt_state_nr_fds(r), 601);
	assert_int_equal(vfurt_state_size(r), vfurt_state_size(s));
	check(r, efd);
	vfurt_state_destroy(r);
	assert_int_equal(nr_open_fds(), base);
	vfurt_state_destroy(s);
	close(sv[0]);
	close(sv[1]);
	close(efd);
}

static void test_recv_refuses(void **st)
{
	int efd = eventfd(0, EFD_CLOEXEC), sv[2];
	struct vfurt_state *s = build(efd), *r = NULL;
	char err[128];
	int base;

	(void)st;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	base = nr_open_fds();
	/* a build that reads another format version */
	assert_int_equal(vfurt_state_send(s, sv[0], 1000), 0);
	assert_int_equal(vfurt_state_recv(sv[1], 1000, 2, &r, err, sizeof(err)), -EPROTO);
	assert_null(r);
	assert_non_null(strstr(err, "format 1, this build reads 2"));
	/* drain what followed the header */
	while (recv(sv[1], err, sizeof(err), MSG_DONTWAIT) > 0)
		;
	assert_int_equal(nr_open_fds(), base);
	/* not an image */
	assert_int_equal(send(sv[0], "hello", 5, 0), 5);
	assert_int_equal(vfurt_state_recv(sv[1], 1000, 0, &r, err, sizeof(err)), -EPROTO);
	/* nothing comes */
	assert_int_equal(vfurt_state_recv(sv[1], 50, 0, &r, err, sizeof(err)), -ETIMEDOUT);
	/* the peer goes away half way */
	{
		uint64_t h[4] = { 0x474d495452554656ull, 1u | (1ull << 32), 64, 0 };

		assert_int_equal(send(sv[0], h, sizeof(h), 0), sizeof(h));
		close(sv[0]);
		assert_int_equal(vfurt_state_recv(sv[1], 1000, 0, &r, err, sizeof(err)),
				 -ECONNRESET);
	}
	assert_int_equal(nr_open_fds(), base - 1);
	vfurt_state_destroy(s);
	close(sv[1]);
	close(efd);
}

static void test_recv_corrupt(void **st)
{
	int efd = eventfd(0, EFD_CLOEXEC), sv[2];
	struct vfurt_state *r = NULL;
	uint64_t h[4] = { 0x474d495452554656ull, 1u, 8, 12345 }; /* wrong sum */
	uint64_t body = 42;
	char err[128];

	(void)st;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(send(sv[0], h, sizeof(h), 0), sizeof(h));
	assert_int_equal(send(sv[0], &body, sizeof(body), 0), sizeof(body));
	assert_int_equal(vfurt_state_recv(sv[1], 1000, 0, &r, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "checksum"));
	/* sizes out of bounds */
	h[2] = (uint64_t)VFURT_STATE_MAX_BYTES + 8;
	assert_int_equal(send(sv[0], h, sizeof(h), 0), sizeof(h));
	assert_int_equal(vfurt_state_recv(sv[1], 1000, 0, &r, err, sizeof(err)), -EBADMSG);
	/* a record that runs past its section */
	{
		struct vfurt_state *s = vfurt_state_create();
		struct vfurt_state_cur root;
		uint32_t tag;
		const void *v;
		size_t len;

		assert_int_equal(vfurt_state_put_u64(s, 1, 1), 0);
		assert_int_equal(vfurt_state_root(s, &root), 0);
		root.end -= 8; /* cut the value */
		assert_int_equal(vfurt_state_next(&root, &tag, &v, &len), -EBADMSG);
		assert_int_equal(vfurt_state_find(&root, 1, &v, &len), -EBADMSG);
		vfurt_state_destroy(s);
	}
	close(sv[0]);
	close(sv[1]);
	close(efd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_adopt_keeps_number),
		cmocka_unit_test(test_bad_calls),
		cmocka_unit_test(test_transport),
		cmocka_unit_test(test_recv_refuses),
		cmocka_unit_test(test_recv_corrupt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
