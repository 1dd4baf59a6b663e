/* Unit tests for logging: escaping of untrusted text, the token bucket, the per-client limit on a real connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/engine.h>
#include <vfurt/gpio.h>
#include <vfurt/log.h>
#include <vfurt/vfio_user.h>

#include "io/log_internal.h"

/* A sink that keeps every line. */
struct capture {
	char lines[256][1024];
	int n;
};

static void capture_fn(void *arg, int level, const char *msg)
{
	struct capture *cap = arg;

	(void)level;
	if (cap->n < 256)
		snprintf(cap->lines[cap->n++], sizeof(cap->lines[0]), "%s", msg);
}

static int count_with(const struct capture *cap, const char *needle)
{
	int k = 0;

	for (int i = 0; i < cap->n; i++)
		k += strstr(cap->lines[i], needle) != NULL;
	return k;
}

/* ---- escaping ------------------------------------------------------------ */

static void test_escape_controls(void **state)
{
	struct capture *cap = calloc(1, sizeof(*cap));
	struct vfurt_log log = { .fn = capture_fn, .arg = cap, .level = VFURT_LOG_DEBUG };

	(void)state;
	vfurt_logf(&log, VFURT_LOG_WARN, "%s: hello", "dev\nerror: forged\x1b[31m\t\\\x7f\xc3\xa9");
	assert_int_equal(cap->n, 1);
	assert_string_equal(cap->lines[0],
			    "dev\\nerror: forged\\x1b[31m\\t\\\\\\x7f\\xc3\\xa9: hello");
	free(cap);
}

static void test_escape_truncates_whole(void **state)
{
	char out[6];

	(void)state;
	assert_int_equal(vfr_log_escape("ab\x01", out, sizeof(out)), 2);
	assert_string_equal(out, "ab");
	assert_int_equal(vfr_log_escape("abc", out, sizeof(out)), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(vfr_log_escape("", out, 1), 0);
	assert_string_equal(out, "");
}

/* ---- token bucket --------------------------------------------------------- */

static void test_ratelimit_bucket(void **state)
{
	struct log_ratelimit rl = { 0 };
	uint64_t t = 5000000000ull, supp = 99;
	int ok = 0;

	(void)state;
	for (int i = 0; i < 100; i++)
		ok += vfr_log_ratelimit_take(&rl, t, &supp);
	assert_int_equal(ok, LOG_RL_BURST);
	assert_int_equal(rl.suppressed, 100 - LOG_RL_BURST);
	/* one line's worth of time: one line, carrying the count */
	t += 1000000000ull / LOG_RL_PER_S;
	assert_true(vfr_log_ratelimit_take(&rl, t, &supp));
	assert_int_equal(supp, 100 - LOG_RL_BURST);
	assert_false(vfr_log_ratelimit_take(&rl, t, &supp));
	assert_int_equal(supp, 0);
	/* a second: LOG_RL_PER_S lines */
	t += 1000000000ull;
	ok = 0;
	for (int i = 0; i < 100; i++)
		ok += vfr_log_ratelimit_take(&rl, t, &supp);
	assert_int_equal(ok, LOG_RL_PER_S);
	/* a long pause refills up to the burst, not beyond; time going back is no credit */
	t += 3600000000000ull;
	ok = 0;
	for (int i = 0; i < 100; i++)
		ok += vfr_log_ratelimit_take(&rl, t - (uint64_t)i, &supp);
	assert_int_equal(ok, LOG_RL_BURST);
}

/* ---- a client flooding the log with failing DMA_MAPs ----------------------- */

static void drain(int fd)
{
	char buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static void feed(struct vfurt_conn *conn, int peer, const void *msg, size_t n)
{
	const uint8_t *p = msg;

	while (n > 0) {
		struct iovec iov;
		bool want_fds;
		size_t k;

		vfurt_conn_rx_iov(conn, &iov, &want_fds);
		k = n < iov.iov_len ? n : iov.iov_len;
		memcpy(iov.iov_base, p, k);
		assert_int_equal(vfurt_conn_rx_feed(conn, k, NULL, 0), 0);
		drain(peer);
		p += k;
		n -= k;
	}
}

static void send_dma_map(struct vfurt_conn *conn, int peer, uint16_t id)
{
	struct {
		struct vfio_user_header h;
		struct vfio_user_dma_map m;
	} __attribute__((packed)) msg = {
		.h = { .msg_id = id, .cmd = VFIO_USER_DMA_MAP, .msg_size = sizeof(msg) },
		.m = { .argsz = sizeof(msg.m), .flags = VFIO_USER_DMA_MAP_FLAG_READ,
		       .addr = 0x100000, .size = 0x1000 },
	};

	feed(conn, peer, &msg, sizeof(msg));
}

/*
 * A GPIO card named name logging into cap at level, and a connection to it
 * over a socket pair (*peer: the client's end) that has completed VERSION.
 * Asserts.
 */
static struct vfurt_conn *conn_start(struct capture *cap, const char *name, int level,
				     struct vfurt_dev **dev, int *peer)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
	struct vfurt_gpio_opts go = { .opts_size = sizeof(go), .name = name };
	struct vfurt_conn_opts co = { .opts_size = sizeof(co) };
	uint8_t ver[16 + 4 + sizeof(json)];
	struct vfio_user_header h = { .msg_id = 1, .cmd = VFIO_USER_VERSION,
				      .msg_size = sizeof(ver) };
	struct vfurt_conn *conn;
	int sv[2];

	go.log = (struct vfurt_log){ .fn = capture_fn, .arg = cap, .level = level };
	*dev = vfurt_gpio_create(&go);
	assert_non_null(*dev);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	conn = vfurt_conn_create(*dev, sv[0], &co);
	assert_non_null(conn);
	memcpy(ver, &h, sizeof(h));
	memset(ver + 16, 0, 4); /* protocol 0.0 */
	memcpy(ver + 20, json, sizeof(json));
	feed(conn, sv[1], ver, sizeof(ver));
	*peer = sv[1];
	return conn;
}

static void test_conn_flood_limited(void **state)
{
	struct capture *cap = calloc(1, sizeof(*cap));
	const struct timespec pause = { .tv_nsec = 250 * 1000 * 1000 };
	struct vfurt_conn *conn;
	struct vfurt_dev *dev;
	int peer;
	int maps;

	(void)state;
	conn = conn_start(cap, "gp\x1b]0;x", VFURT_LOG_INFO, &dev, &peer);

	/* the first map takes the range, the next 99 overlap it and fail */
	for (uint16_t i = 0; i < 100; i++)
		send_dma_map(conn, peer, (uint16_t)(2 + i));
	maps = count_with(cap, "DMA_MAP");
	assert_true(maps >= (int)LOG_RL_BURST - 2 && maps <= (int)LOG_RL_BURST + 2);
	assert_int_equal(count_with(cap, "suppressed"), 0);
	/* the device name is escaped in every line */
	assert_int_equal(count_with(cap, "\x1b"), 0);
	assert_true(count_with(cap, "gp\\x1b]0;x: DMA_MAP") > 0);

	/* after a pause the next line says how many were dropped */
	nanosleep(&pause, NULL);
	send_dma_map(conn, peer, 200);
	assert_int_equal(count_with(cap, "log lines of this client suppressed"), 1);
	assert_int_equal(count_with(cap, "DMA_MAP"), maps + 1);

	vfurt_conn_destroy(conn);
	vfurt_dev_destroy(dev);
	close(peer);
	free(cap);
}

/* A GET_IRQ_INFO for an irq index that does not exist: it fails with only a
 * debug line ("... failed"). */
static void send_bad_irq_info(struct vfurt_conn *conn, int peer, uint16_t id)
{
	struct {
		struct vfio_user_header h;
		struct vfio_irq_info i;
	} __attribute__((packed)) msg = {
		.h = { .msg_id = id, .cmd = VFIO_USER_DEVICE_GET_IRQ_INFO, .msg_size = sizeof(msg) },
		.i = { .argsz = sizeof(msg.i), .index = 77 },
	};

	feed(conn, peer, &msg, sizeof(msg));
}

/* Debug lines have a budget of their own: a flood of failing commands under
 * a log that lets debug through (the daemon filters in its sink) still
 * leaves the client's warnings their budget. */
static void test_conn_debug_flood_spares_warnings(void **state)
{
	struct capture *cap = calloc(1, sizeof(*cap));
	struct vfurt_conn *conn;
	struct vfurt_dev *dev;
	int peer;

	(void)state;
	conn = conn_start(cap, "gpd", VFURT_LOG_DEBUG, &dev, &peer);
	for (uint16_t i = 0; i < 200; i++)
		send_bad_irq_info(conn, peer, (uint16_t)(2 + i));
	assert_true(count_with(cap, "failed") <= (int)LOG_RL_BURST + 2);
	/* the first DMA_MAP takes the range, the second overlaps it: a warning */
	send_dma_map(conn, peer, 300);
	send_dma_map(conn, peer, 301);
	assert_int_equal(count_with(cap, "DMA_MAP iova"), 1);
	vfurt_conn_destroy(conn);
	assert_int_equal(count_with(cap, "log lines of this client suppressed"), 1);
	vfurt_dev_destroy(dev);
	close(peer);
	free(cap);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_controls),
		cmocka_unit_test(test_escape_truncates_whole),
		cmocka_unit_test(test_ratelimit_bucket),
		cmocka_unit_test(test_conn_flood_limited),
		cmocka_unit_test(test_conn_debug_flood_spares_warnings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
