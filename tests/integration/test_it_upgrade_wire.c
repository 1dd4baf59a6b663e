/* Live upgrade: what a client's socket carries across it (docs/restart.md) - a message
 * half received, an fd whose payload is missing, replies not read yet, requests sent
 * while the daemon is frozen. The socket never sees EOF and the new process answers. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/client.h>
#include <vfurt/device.h>
#include <vfurt/vfio_user.h>

#include "common/it_util.h"
#include "common/upgrade_fx.h"
#include "hostsim/nvme_host.h"

#define HDR sizeof(struct vfio_user_header)
#define ACC sizeof(struct vfio_user_region_access)
#define BAR2 VFURT_REGION_BAR2
#define CFG VFURT_REGION_CONFIG
#define OUT0_7 0u  /* the GPIO card's output register, bits 0-7 */
#define OUT8_15 4u
#define WIN_IOVA 0x200000000ull /* the DMA window of case c: above the host's RAM (4 GiB + 4 MiB) */
#define WIN_SIZE (64u << 10)
#define PIPE_MAX 4000u          /* case d: requests sent at most */
#define PIPE_LEN 64u            /* bytes each reads */

struct fx {
	struct dproc d;
	struct vfurt_client *g;  /* on the GPIO card */
	struct nvme_host *h;     /* on the NVMe controller, when there is one */
	int gfd;                 /* g's socket, as it was before the upgrade */
	struct stat gst;
	int mfd;                 /* case c's memfd, -1: none */
	char gsock[192], nsock[192];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->mfd = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int rc;

	nh_close(f->h);
	vfurt_client_close(f->g);
	if (f->mfd >= 0)
		close(f->mfd);
	rc = upfx_dfinish(&f->d);
	free(f);
	return rc;
}

/* A daemon on core 0 with a GPIO card (and an NVMe controller when nvme),
 * f->g connected to the card. */
static void start(struct fx *f, const char *tag, bool nvme)
{
	char gdev[300], ndev[300];
	const char *args[] = { "--cores=0", "--device", gdev, nvme ? "--device" : NULL, ndev,
			       NULL };

	upfx_need_binaries();
	upfx_dinit(&f->d, tag);
	upfx_sockp(&f->d, f->gsock, sizeof(f->gsock), "g0");
	upfx_sockp(&f->d, f->nsock, sizeof(f->nsock), "n0");
	snprintf(gdev, sizeof(gdev), "gpio,socket=%.200s", f->gsock);
	snprintf(ndev, sizeof(ndev), "nvme,socket=%.200s,backend=ram,size=16M", f->nsock);
	upfx_dstart(&f->d, args);
	f->g = it_connect(f->gsock, 0);
	assert_non_null(f->g);
	f->gfd = vfurt_client_fd(f->g);
	assert_int_equal(fstat(f->gfd, &f->gst), 0);
}

/* Client socket fd saw no EOF (nothing to read, or data but not end of
 * stream) and is still the same socket. */
static void no_eof(int fd, const struct stat *was, const char *who)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	struct stat st;
	char b;

	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_ino == was->st_ino && st.st_dev == was->st_dev);
	assert_true(poll(&p, 1, 0) >= 0);
	if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
		fail_msg("%s: the client's socket saw a hangup (revents %#x)", who, p.revents);
	if ((p.revents & POLLIN) && recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		fail_msg("%s: the client's socket saw EOF", who);
}

/* The checks after an upgrade on every case: the GPIO client's socket is
 * the one it was, without EOF, and answers; the daemon is the new pid. */
static void after(struct fx *f, const struct upg *u, const char *who)
{
	no_eof(f->gfd, &f->gst, who);
	assert_int_equal(f->d.pid, (pid_t)u->new_pid);
	assert_true(it_alive(f->g));
	assert_int_equal(upfx_log_errors(&f->d, NULL), 0);
}

static uint8_t rd8(struct vfurt_client *c, uint64_t off)
{
	uint8_t v = 0xee;

	assert_int_equal(vfurt_client_region_read(c, BAR2, off, &v, 1), 0);
	return v;
}

/* A REGION_READ or REGION_WRITE message (header + access [+ data]) into buf;
 * its length. */
static size_t region_msg(uint8_t *buf, uint16_t id, uint16_t cmd, uint32_t region, uint64_t off,
			 uint32_t count, const void *data)
{
	struct vfio_user_region_access a = { .offset = off, .region = region, .count = count };
	size_t n = HDR + ACC + (data ? count : 0);
	struct vfio_user_header h = { .msg_id = id, .cmd = cmd, .msg_size = (uint32_t)n };

	memcpy(buf, &h, HDR);
	memcpy(buf + HDR, &a, ACC);
	if (data)
		memcpy(buf + HDR + ACC, data, count);
	return n;
}

/* ---- a. half a header across the upgrade -------------------------------------------- */

static void test_half_header(void **state)
{
	struct fx *f = *state;
	uint8_t msg[64], reply[64];
	uint16_t id;
	size_t n, len = 0;
	struct upg u;

	start(f, "a", false);
	assert_int_equal(vfurt_client_region_write(f->g, BAR2, OUT0_7, &(uint8_t){ 0xc3 }, 1), 0);
	id = vfurt_client_next_msg_id(f->g);
	n = region_msg(msg, id, VFIO_USER_REGION_READ, BAR2, OUT0_7, 1, NULL);
	assert_int_equal(vfurt_client_send_raw(f->g, msg, 10, NULL, 0), 0);
	usleep(50000); /* the server has read the 10 bytes */
	upfx_upgrade_ok(&f->d, VIA_CTL, 1, &u);
	no_eof(f->gfd, &f->gst, "a, before the rest");
	assert_int_equal(vfurt_client_send_raw(f->g, msg + 10, n - 10, NULL, 0), 0);
	assert_int_equal(it_recv_reply(f->g, id, VFIO_USER_REGION_READ, reply, sizeof(reply), &len),
			 0);
	assert_int_equal(len, ACC + 1);
	assert_int_equal(reply[ACC], 0xc3);
	after(f, &u, "a");
}

/* ---- b. the header and half the payload ----------------------------------------------- */

static void test_half_payload(void **state)
{
	struct fx *f = *state;
	uint8_t msg[64], reply[64];
	uint16_t id;
	size_t n, len = 0;
	struct upg u;

	start(f, "b", false);
	assert_int_equal(rd8(f->g, OUT8_15), 0x00);
	id = vfurt_client_next_msg_id(f->g);
	n = region_msg(msg, id, VFIO_USER_REGION_WRITE, BAR2, OUT8_15, 1, &(uint8_t){ 0x69 });
	assert_int_equal(n, HDR + ACC + 1);
	assert_int_equal(vfurt_client_send_raw(f->g, msg, HDR + 8, NULL, 0), 0);
	usleep(50000);
	upfx_upgrade_ok(&f->d, VIA_CTL, 1, &u);
	no_eof(f->gfd, &f->gst, "b, before the rest");
	assert_int_equal(vfurt_client_send_raw(f->g, msg + HDR + 8, n - HDR - 8, NULL, 0), 0);
	assert_int_equal(it_recv_reply(f->g, id, VFIO_USER_REGION_WRITE, reply, sizeof(reply), &len),
			 0);
	assert_int_equal(len, ACC);
	assert_int_equal(rd8(f->g, OUT8_15), 0x69);
	after(f, &u, "b");
}

/* ---- c. a DMA_MAP whose fd came, its payload not yet -------------------------------------- */

static void test_fd_without_payload(void **state)
{
	struct fx *f = *state;
	struct nvme_host_opts ho = { .timeout_ms = 20000, .mem_size = 4u << 20, .nvec = 2 };
	struct vfio_user_dma_map map = {
		.argsz = sizeof(map), .flags = VFIO_USER_DMA_MAP_FLAG_READ |
		VFIO_USER_DMA_MAP_FLAG_WRITE, .offset = 0, .addr = WIN_IOVA, .size = WIN_SIZE,
	};
	struct vfio_user_header h = { .cmd = VFIO_USER_DMA_MAP,
				      .msg_size = (uint32_t)(HDR + sizeof(map)) };
	struct vfurt_client *c;
	struct nh_sqe sqe = { .cdw0 = NH_CMD_READ, .nsid = 1, .prp1 = WIN_IOVA + 4096,
			      .cdw10 = 7, .cdw12 = 0 };
	struct nh_cqe cqe;
	struct stat nst;
	struct upg u;
	uint8_t *p;
	int nfd;

	start(f, "c", true);
	f->h = nh_open(f->nsock, &ho);
	if (!f->h)
		fail_msg("nh_open %s: %s", f->nsock, strerror(errno));
	assert_int_equal(nh_enable(f->h), 0);
	assert_int_equal(nh_set_num_queues(f->h, 1, 1, NULL), 0);
	assert_int_equal(nh_create_io_pair(f->h, 1, 16, 1), 0);
	assert_true(nh_mem_iova(f->h) + nh_mem_size(f->h) <= WIN_IOVA);
	assert_int_equal(nh_write_read_check(f->h, 1, 1, 7, 512, 0x5eed, NULL, NULL), 0);
	c = nh_client(f->h);
	nfd = vfurt_client_fd(c);
	assert_int_equal(fstat(nfd, &nst), 0);
	f->mfd = it_memfd(WIN_SIZE);
	assert_true(f->mfd >= 0);

	h.msg_id = vfurt_client_next_msg_id(c);
	assert_int_equal(vfurt_client_send_raw(c, &h, HDR, &f->mfd, 1), 0);
	usleep(50000);
	upfx_upgrade_ok(&f->d, VIA_CTL, 2, &u);
	no_eof(nfd, &nst, "c, before the payload");
	assert_int_equal(vfurt_client_send_raw(c, &map, sizeof(map), NULL, 0), 0);
	assert_int_equal(it_recv_reply(c, h.msg_id, VFIO_USER_DMA_MAP, NULL, 0, NULL), 0);

	/* the controller reads block 7 into the window, through the fd it got */
	assert_int_equal(nh_exec(f->h, 1, &sqe, &cqe), 0);
	p = mmap(NULL, WIN_SIZE, PROT_READ, MAP_SHARED, f->mfd, 0);
	assert_true(p != MAP_FAILED);
	assert_true(it_check(p + 4096, 512, 0x5eed));
	assert_int_equal(munmap(p, WIN_SIZE), 0);
	no_eof(nfd, &nst, "c");
	after(f, &u, "c");
}

/* ---- d. replies the client did not read ------------------------------------------------- */

static void test_unread_replies(void **state)
{
	struct fx *f = *state;
	uint8_t cfg[256], msg[64], reply[ACC + PIPE_LEN];
	static uint16_t ids[PIPE_MAX];
	int small = 4096, fd;
	unsigned sent = 0;
	struct upg u;

	start(f, "d", false);
	fd = f->gfd;
	assert_int_equal(vfurt_client_region_read(f->g, CFG, 0, cfg, sizeof(cfg)), 0);
	/* the client does not read: its small receive buffer fills, then the
	 * server's send buffer, then the server's own output queue */
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	while (sent < PIPE_MAX) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		uint64_t off = (sent % 12u) * 16u;
		size_t n;

		if (poll(&p, 1, 300) <= 0)
			break; /* the server stopped reading: everything behind is queued */
		ids[sent] = vfurt_client_next_msg_id(f->g);
		n = region_msg(msg, ids[sent], VFIO_USER_REGION_READ, CFG, off, PIPE_LEN, NULL);
		assert_int_equal(vfurt_client_send_raw(f->g, msg, n, NULL, 0), 0);
		sent++;
	}
	usleep(100000); /* the server has answered what it read */
	fprintf(stderr, "d: %u requests pipelined before the upgrade\n", sent);
	assert_true(sent > 100);
	upfx_upgrade_ok(&f->d, VIA_CTL, 1, &u);
	fprintf(stderr, "d: the state image: %lu bytes, %lu fds\n", u.bytes, u.fds);
	/* the image carried the server's queued replies (an idle GPIO card's is < 1 KiB) */
	assert_true(u.bytes > 100u * (HDR + ACC + PIPE_LEN));
	no_eof(fd, &f->gst, "d, before reading");
	for (unsigned i = 0; i < sent; i++) {
		uint64_t off = (i % 12u) * 16u;
		size_t len = 0;
		int rc = it_recv_reply(f->g, ids[i], VFIO_USER_REGION_READ, reply, sizeof(reply),
				       &len);

		if (rc != 0)
			fail_msg("d: reply %u of %u (msg_id %u): %d", i, sent, ids[i], rc);
		assert_int_equal(len, ACC + PIPE_LEN);
		if (memcmp(reply + ACC, cfg + off, PIPE_LEN) != 0)
			fail_msg("d: reply %u (msg_id %u): wrong content", i, ids[i]);
	}
	/* nothing more: no reply came twice */
	{
		struct pollfd p = { .fd = fd, .events = POLLIN };

		assert_int_equal(poll(&p, 1, 200), 0);
	}
	after(f, &u, "d");
}

/* ---- e. requests while the daemon is frozen ------------------------------------------------ */

struct upg_thread {
	struct dproc *d;
	struct upg u;
	atomic_bool done;
};

static void *upgrade_main(void *arg)
{
	struct upg_thread *t = arg;

	upfx_upgrade_try(t->d, VIA_CTL, NULL, &t->u);
	atomic_store(&t->done, true);
	return NULL;
}

static void test_requests_while_frozen(void **state)
{
	struct fx *f = *state;
	uint8_t cfg[256], reply[ACC + PIPE_LEN];
	static struct upg_thread t;
	unsigned n = 0, after_done = 0;
	pthread_t th;
	long t0, worst = 0, worst_at = 0, start_ms;
	bool worst_done = false;

	start(f, "e", false);
	assert_int_equal(vfurt_client_region_read(f->g, CFG, 0, cfg, sizeof(cfg)), 0);
	memset(&t, 0, sizeof(t));
	t.d = &f->d;
	start_ms = upfx_now_ms();
	assert_int_equal(pthread_create(&th, NULL, upgrade_main, &t), 0);
	/* one request at a time, each answered once, until a few after the upgrade */
	while (after_done < 20) {
		struct vfio_user_region_access a = { .offset = (n % 12u) * 16u, .region = CFG,
						     .count = PIPE_LEN };
		size_t len = 0;
		int id, rc;

		t0 = upfx_now_ms();
		id = it_send_cmd(f->g, VFIO_USER_REGION_READ, 0, &a, sizeof(a), NULL, 0);
		if (id < 0)
			fail_msg("e: request %u: send failed", n);
		rc = it_recv_reply(f->g, (uint16_t)id, VFIO_USER_REGION_READ, reply, sizeof(reply),
				   &len);
		if (rc != 0)
			fail_msg("e: request %u (msg_id %d): %d", n, id, rc);
		assert_int_equal(len, ACC + PIPE_LEN);
		if (memcmp(reply + ACC, cfg + a.offset, PIPE_LEN) != 0)
			fail_msg("e: request %u: wrong content", n);
		if (upfx_now_ms() - t0 > worst) {
			worst = upfx_now_ms() - t0;
			worst_at = t0 - start_ms;
			worst_done = atomic_load(&t.done);
		}
		n++;
		after_done += atomic_load(&t.done);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	fprintf(stderr, "e: %u requests, the slowest %ld ms (sent at +%ld ms%s), pause %.1f ms, "
		"the command took %ld ms\n", n, worst, worst_at,
		worst_done ? ", after the command returned" : "", t.u.pause_ms, t.u.took_ms);
	upfx_upgrade_check(&f->d, VIA_CTL, 1, &t.u);
	{
		struct vfurt_client_stats st = { .stats_size = sizeof(st) };
		struct pollfd p = { .fd = f->gfd, .events = POLLIN };

		assert_int_equal(vfurt_client_get_stats(f->g, &st), 0);
		assert_int_equal(st.stale_replies, 0);
		assert_int_equal(poll(&p, 1, 200), 0); /* no extra reply */
	}
	after(f, &t.u, "e");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_half_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_without_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unread_replies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requests_while_frozen, setup, teardown),
	};

	/* the successors of the daemon are reparented to us (upfx_upgrade_ok checks it) */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
		perror("PR_SET_CHILD_SUBREAPER");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (getenv("UPGRADE_TEST"))
		cmocka_set_test_filter(getenv("UPGRADE_TEST"));
	return cmocka_run_group_tests_name("integration: live upgrade, the client's wire", tests,
					   NULL, NULL);
}
