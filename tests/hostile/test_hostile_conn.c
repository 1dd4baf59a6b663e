/* Hostile clients on the socket: slow readers, squatters, DMA requests left unanswered. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/hostile.h"

/* Limits small enough for a test to cross them in well under a second. */
static const struct vfurt_conn_opts limits = {
	.opts_size = sizeof(struct vfurt_conn_opts),
	.timeout_ms = 300,
	.version_timeout_ms = 300,
	.drain_timeout_ms = 500,
	.max_queued_bytes = 256 * 1024,
	.max_irq_fds = 6,
};

static int setup_rt(void **state)
{
	struct hx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	assert_int_equal(hx_start(x, true, &limits), 0);
	*state = x;
	return 0;
}

static int setup_srv(void **state)
{
	struct hx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	assert_int_equal(hx_start(x, false, &limits), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct hx *x = *state;
	int rc = hx_finish(x);

	free(x);
	return rc;
}

static const char *attacked(struct hx *x)
{
	return testsrv_path(x->ts, 1);
}

/* Queue n REGION_READs of the whole of BAR1 (64 KiB replies) unread. */
static void send_big_reads(struct vfurt_client *c, int n)
{
	struct vfio_user_region_access a = {
		.offset = 0, .region = VFURT_REGION_BAR1, .count = TD_BAR1_SIZE,
	};

	for (int i = 0; i < n; i++)
		assert_true(it_send_cmd(c, VFIO_USER_REGION_READ, 0, &a, sizeof(a), NULL, 0) >= 0);
}

/*
 * A client that sends requests and never reads the replies: its replies
 * queue up to the bound, then its requests are no longer read; with no
 * progress for drain_timeout_ms it is disconnected with a log line. The
 * victim on the same worker never waits for it.
 */
static void test_reader_that_never_reads(void **state)
{
	struct hx *x = *state;
	struct vfurt_client *c = it_connect(attacked(x), 0);

	assert_non_null(c);
	send_big_reads(c, 64); /* 4 MiB of replies for a 256 KiB bound */
	assert_true(logcap_wait(&x->lc, "bytes queued on the main socket", 3000));
	assert_int_equal(it_wait_ctr(&x->st[1]->detach, 1), 1);
	assert_true(it_server_closed(c));
	vfurt_client_close(c);
	/* the slot is free again: a good client gets the device */
	c = it_reconnect(attacked(x), 0);
	assert_non_null(c);
	assert_true(it_alive(c));
	vfurt_client_close(c);
}

/* A client that reads, slowly: it makes progress, so it is never cut off,
 * and every reply arrives; the victim is not slowed meanwhile. */
static void test_slow_reader_is_served(void **state)
{
	struct hx *x = *state;
	struct vfurt_client *c = it_connect(attacked(x), 0);
	uint16_t first = (uint16_t)(vfurt_client_next_msg_id(c) + 1); /* that one is used up */
	static uint8_t buf[TD_BAR1_SIZE + 64];

	assert_non_null(c);
	send_big_reads(c, 16);
	for (int i = 0; i < 16; i++) {
		size_t len = 0;
		struct vfio_user_header h;

		usleep(100 * 1000); /* 1.6 s in all: more than the drain timeout */
		assert_int_equal(vfurt_client_recv_raw(c, &h, buf, sizeof(buf), &len, NULL, NULL), 0);
		assert_int_equal(h.msg_id, (uint16_t)(first + i));
		assert_int_equal(h.flags & VFIO_USER_F_ERROR, 0);
	}
	assert_true(it_alive(c));
	vfurt_client_close(c);
}

/* A reader that half-closes after flooding: the server cannot read more nor
 * send; it is cut off at the drain timeout, without a busy loop on its
 * hang-up (the probe would show it). */
static void test_flood_then_half_close(void **state)
{
	struct hx *x = *state;
	struct vfurt_client *c = it_connect(attacked(x), 0);

	assert_non_null(c);
	send_big_reads(c, 64);
	assert_int_equal(shutdown(vfurt_client_fd(c), SHUT_WR), 0);
	assert_int_equal(it_wait_ctr(&x->st[1]->detach, 1), 1);
	assert_true(logcap_wait(&x->lc, "disconnecting", 3000));
	vfurt_client_close(c);
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* EOF within ms: the server closed this socket. */
static bool closed_within(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char b;

	return poll(&p, 1, ms) == 1 && recv(fd, &b, 1, MSG_DONTWAIT) <= 0;
}

/*
 * A connection that never sends VERSION: while it lasts, a second client is
 * refused at once (closed, not left waiting); after version_timeout_ms the
 * squatter is closed with a log line and the real client gets the device.
 */
static void test_squatter_without_version(void **state)
{
	struct hx *x = *state;
	int squat = raw_connect(attacked(x));
	int second;
	struct vfurt_client *c;

	usleep(50 * 1000); /* accepted */
	second = raw_connect(attacked(x));
	assert_true(closed_within(second, 1000)); /* refused at once */
	close(second);
	assert_true(closed_within(squat, 3000));
	assert_true(logcap_wait(&x->lc, "no VERSION within 300 ms", 1000));
	close(squat);
	c = it_reconnect(attacked(x), 0);
	assert_non_null(c);
	assert_true(it_alive(c));
	vfurt_client_close(c);
}

/* A squatter that sends half a VERSION header and stops. */
static void test_squatter_partial_header(void **state)
{
	struct hx *x = *state;
	int squat = raw_connect(attacked(x));
	const uint8_t half[8] = { 1, 0, 1, 0 };
	struct vfurt_client *c;

	assert_int_equal(send(squat, half, sizeof(half), MSG_NOSIGNAL), (ssize_t)sizeof(half));
	assert_true(closed_within(squat, 3000));
	close(squat);
	c = it_reconnect(attacked(x), 0);
	assert_non_null(c);
	vfurt_client_close(c);
}

/*
 * A client that maps memory without an fd, makes the device DMA there, and
 * never answers the DMA_READ: the device's transfer fails with -ETIMEDOUT
 * after timeout_ms and the client is disconnected; the request never held
 * the worker.
 */
static void test_dma_request_unanswered(void **state)
{
	struct hx *x = *state;
	struct vfurt_client *c = it_connect(attacked(x), 0);
	uint8_t *guest = aligned_alloc(4096, 4096);
	uint32_t op = 1, st = 0;

	assert_non_null(c);
	assert_non_null(guest);
	assert_int_equal(vfurt_client_dma_map_mem(c, 0x100000, 4096, guest,
						  VFIO_USER_DMA_MAP_FLAG_READ |
							  VFIO_USER_DMA_MAP_FLAG_WRITE, 0), 0);
	assert_int_equal(it_wr64(c, VFURT_REGION_BAR0, TD_REG_DMA_IOVA, 0x100000), 0);
	assert_int_equal(it_wr64(c, VFURT_REGION_BAR0, TD_REG_DMA_LEN, 4096), 0);
	assert_int_equal(vfurt_client_region_write_posted(c, VFURT_REGION_BAR0,
							  TD_REG_DMA_DOORBELL, &op, 4), 0);
	/* no call into the client: nobody answers */
	assert_int_equal(it_wait_ctr(&x->st[1]->detach, 1), 1);
	assert_true(logcap_wait(&x->lc, "did not answer DMA_READ", 1000));
	vfurt_client_close(c);
	free(guest);
	c = it_reconnect(attacked(x), 0);
	assert_non_null(c);
	assert_int_equal(it_rd32(c, VFURT_REGION_BAR0, TD_REG_DMA_STATUS, &st), 0);
	assert_int_equal((int32_t)st, -ETIMEDOUT);
	vfurt_client_close(c);
}

/* Many attackers in turn do not leak: fds are checked at teardown, RSS
 * here stays within a bound of its start. */
static void test_repeated_slow_readers_no_growth(void **state)
{
	struct hx *x = *state;
	long rss0 = hostile_rss_kib();

	for (int round = 0; round < 4; round++) {
		struct vfurt_client *c = it_reconnect(attacked(x), 0);

		assert_non_null(c);
		send_big_reads(c, 32);
		assert_int_equal(it_wait_ctr(&x->st[1]->detach, (unsigned)round + 1),
				 (unsigned)round + 1);
		vfurt_client_close(c);
	}
	/* each round queued up to ~0.5 MiB; all of it is freed */
	assert_true(hostile_rss_kib() - rss0 < 16 * 1024);
}

/* The eventfds a client holds are bounded (max_irq_fds): beyond, SET_IRQS
 * fails with EMFILE and changes nothing; replacing an fd is not growth. */
static void test_irq_fd_quota(void **state)
{
	struct hx *x = *state;
	struct vfurt_client *c = it_connect(attacked(x), 0);
	int efd[TD_MSIX_VECTORS + 1];
	int n0;

	assert_non_null(c);
	for (unsigned i = 0; i <= TD_MSIX_VECTORS; i++)
		efd[i] = it_eventfd();
	n0 = test_count_fds();
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFURT_IRQ_MSIX, 0, TD_MSIX_VECTORS, efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), -EMFILE);
	assert_int_equal(test_count_fds(), n0); /* the server kept none */
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFURT_IRQ_MSIX, 0, 6, efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFURT_IRQ_MSIX, 6, 1, &efd[6],
						       VFIO_IRQ_SET_ACTION_TRIGGER), -EMFILE);
	/* a new fd in a slot that has one: the count stays */
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFURT_IRQ_MSIX, 0, 1,
						       &efd[TD_MSIX_VECTORS],
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	/* freeing some makes room */
	assert_int_equal(vfurt_client_set_irqs(c, VFURT_IRQ_MSIX, 0, 0,
					       VFIO_IRQ_SET_ACTION_TRIGGER, NULL), 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFURT_IRQ_MSIX, 2, 6, &efd[2],
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_true(it_alive(c));
	vfurt_client_close(c);
	for (unsigned i = 0; i <= TD_MSIX_VECTORS; i++)
		close(efd[i]);
}

/* Replies that carry fds (GET_REGION_IO_FDS) asked for in a flood and never
 * read: the queued dups are bounded, the client is cut off, and every fd
 * comes back (checked at teardown). */
static void test_fd_reply_flood(void **state)
{
	struct hx *x = *state;
	struct vfurt_client *c = it_connect(attacked(x), 0);
	struct vfio_user_region_io_fds_request rq = {
		.argsz = 4096, .index = VFURT_REGION_BAR0,
	};
	int n0 = test_count_fds();
	int peak = n0;

	assert_non_null(c);
	for (int i = 0; i < 2000; i++) {
		int n;

		if (it_send_cmd(c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, 0, &rq, sizeof(rq), NULL,
				0) < 0)
			break; /* the server stopped reading and our buffer is full */
		n = test_count_fds();
		peak = n > peak ? n : peak;
		if (x->st[1]->detach)
			break;
	}
	assert_int_equal(it_wait_ctr(&x->st[1]->detach, 1), 1);
	/* at most the queue's fd bound (256) plus one reply's worth, doubled
	 * for what sits in the socket */
	assert_true(peak - n0 < 2 * (256 + 64));
	vfurt_client_close(c);
}

static long cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000L;
}

/*
 * The process runs out of fds (RLIMIT_NOFILE) while clients connect: the
 * accept fails, and must neither spin (the listener stays readable, an
 * io_uring accept re-armed at once fails at once) nor disturb the victim;
 * once fds are back, the next client is accepted.
 */
static void test_out_of_fds_at_accept(void **state)
{
	struct hx *x = *state;
	enum { N = 4 };
	int s[N];
	struct rlimit old, low;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	long cpu0, used;
	struct vfurt_client *c;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", attacked(x));
	for (int i = 0; i < N; i++) {
		s[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(s[i] >= 0);
	}
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)test_count_fds() + 8; /* room for test_count_fds itself */
	/* fill what is left, so that the server's accept finds none */
	{
		int pad[16], np = 0;

		assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
		while (np < 16 && (pad[np] = dup(0)) >= 0)
			np++;
		for (int i = 0; i < N; i++)
			(void)connect(s[i], (struct sockaddr *)&sa, sizeof(sa));
		cpu0 = cpu_ms();
		usleep(1000 * 1000);
		used = cpu_ms() - cpu0;
		while (np > 0)
			close(pad[--np]);
	}
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	fprintf(stderr, "out of fds for 1 s: %ld ms of CPU\n", used);
	assert_true(used < 500); /* a spinning accept takes most of a core */
	for (int i = 0; i < N; i++)
		close(s[i]);
	c = it_reconnect(attacked(x), 0);
	assert_non_null(c);
	assert_true(it_alive(c));
	vfurt_client_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reader_that_never_reads, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_reader_that_never_reads, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader_is_served, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader_is_served, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_flood_then_half_close, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_flood_then_half_close, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_squatter_without_version, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_squatter_without_version, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_squatter_partial_header, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_dma_request_unanswered, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_dma_request_unanswered, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_repeated_slow_readers_no_growth, setup_rt,
						teardown),
		cmocka_unit_test_setup_teardown(test_irq_fd_quota, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_irq_fd_quota, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_fd_reply_flood, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_fd_reply_flood, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_fds_at_accept, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_fds_at_accept, setup_srv, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
