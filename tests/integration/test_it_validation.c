/* Integration: every validation rule answers a precise errno and the connection survives. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/it_util.h"
#include "common/testsrv.h"

#define IOVA 0x100000ull
#define PG 4096u
#define RW (VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE)
#define HDR sizeof(struct vfio_user_header)

/* dev[0], dev[1]: test devices; dev[2]: a device with a read-only BAR0. */
struct vx {
	struct testsrv *ts;
	struct vfurt_dev *dev[3];
	struct testdev_stats *st[2];
	struct vfurt_client *c;  /* on dev[0] */
	struct vfurt_client *c2; /* on dev[1]: must keep working whatever c does */
	int base_fds;
};

static uint8_t rbuf[1 << 17];

/* ---- a device with a read-only region ------------------------------------- */

static ssize_t ro_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			 uint64_t off, bool is_write)
{
	if (is_write)
		return -EIO; /* never reached: the engine refuses first */
	memset(buf, 0x5a, count);
	return (ssize_t)count;
}

static struct vfurt_dev *ro_dev_create(void)
{
	struct vfurt_dev_opts o = { .opts_size = sizeof(o), .name = "it-ro" };
	struct vfurt_region_desc r = {
		.desc_size = sizeof(r), .size = 4096, .flags = VFURT_REGION_READ,
		.access = ro_access, .fd = -1,
	};
	struct vfurt_dev *dev = vfurt_dev_create(&o);

	if (!dev || vfurt_dev_setup_region(dev, VFURT_REGION_BAR0, &r)) {
		vfurt_dev_destroy(dev);
		return NULL;
	}
	return dev;
}

/* ---- fixture ------------------------------------------------------------------ */

static int vx_start(void **state, const struct testdev_opts *d0,
		    const struct vfurt_conn_opts *co, uint32_t cflags)
{
	struct vx *x = calloc(1, sizeof(*x));

	*state = x;
	if (!x)
		return -1;
	x->dev[0] = testdev_create("it-val0", d0, &x->st[0]);
	x->dev[1] = testdev_create("it-val1", NULL, &x->st[1]);
	x->dev[2] = ro_dev_create();
	if (!x->dev[0] || !x->dev[1] || !x->dev[2])
		return -1;
	x->ts = testsrv_start(x->dev, 3, co);
	if (!x->ts)
		return -1;
	x->base_fds = test_count_fds();
	x->c = it_connect(testsrv_path(x->ts, 0), cflags);
	x->c2 = it_connect(testsrv_path(x->ts, 1), 0);
	return x->c && x->c2 ? 0 : -1;
}

static int setup(void **state)
{
	return vx_start(state, NULL, NULL, 0);
}

static int setup_no_handshake(void **state)
{
	return vx_start(state, NULL, NULL, VFURT_CLIENT_NO_HANDSHAKE);
}

static int teardown(void **state)
{
	struct vx *x = *state;
	int rc = 0;

	if (!x)
		return 0;
	vfurt_client_close(x->c);
	vfurt_client_close(x->c2);
	if (it_check_fds(x->base_fds))
		rc = -1;
	testsrv_stop(x->ts);
	testdev_stats_free(x->st[0]);
	testdev_stats_free(x->st[1]);
	free(x);
	return rc;
}

/* The other device on the same server is unaffected. */
static void guard_ok(struct vx *x)
{
	uint32_t v = 0;

	assert_true(it_alive(x->c2));
	assert_int_equal(it_wr32(x->c2, VFURT_REGION_BAR0, 0x40, 0x600dc0de), 0);
	assert_int_equal(it_rd32(x->c2, VFURT_REGION_BAR0, 0x40, &v), 0);
	assert_int_equal(v, 0x600dc0de);
}

/* A request built by hand; the reply payload lands in rbuf. */
static int req(struct vfurt_client *c, uint16_t cmd, const void *p, size_t len, const int *fds,
	       size_t nfds)
{
	return vfurt_client_request(c, cmd, 0, p, len, fds, nfds, rbuf, sizeof(rbuf), NULL,
				    NULL, NULL);
}

/* ---- VERSION ------------------------------------------------------------------ */

static void test_command_before_version(void **state)
{
	struct vx *x = *state;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	struct vfio_user_dma_map map = { .argsz = sizeof(map), .flags = RW, .addr = IOVA,
					 .size = PG };

	assert_int_equal(req(x->c, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), NULL, 0),
			 -EINVAL);
	assert_int_equal(req(x->c, VFIO_USER_DMA_MAP, &map, sizeof(map), NULL, 0), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 0);
	assert_int_equal(atomic_load(&x->st[0]->attach), 0);
	/* VERSION is still accepted afterwards */
	assert_int_equal(it_raw_version(x->c, 0, 0, "{}", NULL), 0);
	assert_int_equal(atomic_load(&x->st[0]->attach), 1);
	assert_true(it_alive(x->c));
}

static void test_second_version(void **state)
{
	struct vx *x = *state;

	assert_int_equal(it_raw_version(x->c, 0, 0, "{}", NULL), -EINVAL);
	assert_int_equal(it_raw_version(x->c, 0, 0, NULL, NULL), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->attach), 1);
	assert_true(it_alive(x->c));
}

static void test_bad_major(void **state)
{
	struct vx *x = *state;
	struct vfurt_client_opts o = it_opts(VFURT_CLIENT_SET_VERSION);

	/* the error reply comes first, then the server hangs up */
	assert_int_equal(it_raw_version(x->c, 1, 0, "{}", NULL), -ENOTSUP);
	assert_true(it_server_closed(x->c));
	assert_int_equal(atomic_load(&x->st[0]->attach), 0);
	guard_ok(x);

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
	struct vx *x = *state;
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
	guard_ok(x);
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
	struct vx *x = *state;
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

/* ---- headers and commands ------------------------------------------------------- */

static void test_header_flags(void **state)
{
	struct vx *x = *state;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	static const uint32_t bad[] = { 1u << 6, 1u << 31, VFIO_USER_F_ERROR };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint16_t id = vfurt_client_next_msg_id(x->c);

		assert_int_equal(it_send_hdr(x->c, id, VFIO_USER_DEVICE_GET_INFO, bad[i],
					     HDR + sizeof(info), &info, sizeof(info), NULL, 0), 0);
		assert_int_equal(it_recv_reply(x->c, id, VFIO_USER_DEVICE_GET_INFO, NULL, 0,
					       NULL), -EINVAL);
	}
	assert_true(it_alive(x->c));
}

/* A reply-type message from the client answers nothing: the server drops
 * it (and any fd) and the next reply belongs to the next command. */
static void test_reply_from_client_dropped(void **state)
{
	struct vx *x = *state;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	int n0 = test_count_fds();
	int efd = it_eventfd();
	uint16_t id;
	int id2;
	struct vfurt_client_stats cs = { .stats_size = sizeof(cs) };

	id = vfurt_client_next_msg_id(x->c);
	assert_int_equal(it_send_hdr(x->c, id, VFIO_USER_DEVICE_GET_INFO, VFIO_USER_F_TYPE_REPLY,
				     HDR + sizeof(info), &info, sizeof(info), &efd, 1), 0);
	id = vfurt_client_next_msg_id(x->c);
	assert_int_equal(it_send_hdr(x->c, id, VFIO_USER_DMA_READ,
				     VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR, HDR, NULL, 0,
				     NULL, 0), 0);
	id2 = it_send_cmd(x->c, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info), NULL, 0);
	assert_int_equal(it_recv_reply(x->c, (uint16_t)id2, VFIO_USER_DEVICE_GET_INFO, &info,
				       sizeof(info), NULL), 0);
	assert_int_equal(vfurt_client_get_stats(x->c, &cs), 0);
	assert_int_equal(cs.stale_replies, 0);
	close(efd);
	assert_int_equal(test_count_fds(), n0); /* the server closed its copy */
	assert_true(it_alive(x->c));
}

static void test_unknown_commands(void **state)
{
	static const uint16_t cmds[] = { 0, VFIO_USER_MAX_COMMAND, 100, 0xffff };
	struct vx *x = *state;
	uint8_t payload[32] = { 0 };

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_int_equal(req(x->c, cmds[i], NULL, 0, NULL, 0), -EINVAL);
		assert_int_equal(req(x->c, cmds[i], payload, sizeof(payload), NULL, 0), -EINVAL);
	}
	assert_true(it_alive(x->c));
}

static void test_dma_rw_from_client(void **state)
{
	struct vx *x = *state;
	struct vfio_user_dma_access a = { .addr = IOVA, .count = 0 };

	assert_int_equal(req(x->c, VFIO_USER_DMA_READ, &a, sizeof(a), NULL, 0), -EINVAL);
	assert_int_equal(req(x->c, VFIO_USER_DMA_WRITE, &a, sizeof(a), NULL, 0), -EINVAL);
	assert_true(it_alive(x->c));
}

/* Every command's fixed part one byte short (argsz claims the full size). */
static void test_short_payloads(void **state)
{
	static const struct { uint16_t cmd; size_t len; } tab[] = {
		{ VFIO_USER_DMA_MAP, sizeof(struct vfio_user_dma_map) },
		{ VFIO_USER_DMA_UNMAP, sizeof(struct vfio_user_dma_unmap) },
		{ VFIO_USER_DEVICE_GET_INFO, sizeof(struct vfio_user_device_info) },
		{ VFIO_USER_DEVICE_GET_REGION_INFO, sizeof(struct vfio_region_info) },
		{ VFIO_USER_DEVICE_GET_REGION_IO_FDS, sizeof(struct vfio_user_region_io_fds_request) },
		{ VFIO_USER_DEVICE_GET_IRQ_INFO, sizeof(struct vfio_irq_info) },
		{ VFIO_USER_DEVICE_SET_IRQS, sizeof(struct vfio_irq_set) },
		{ VFIO_USER_REGION_READ, sizeof(struct vfio_user_region_access) },
		{ VFIO_USER_REGION_WRITE, sizeof(struct vfio_user_region_access) },
		{ VFIO_USER_REGION_WRITE_MULTI, sizeof(struct vfio_user_write_multi) },
	};
	struct vx *x = *state;
	uint8_t p[64];

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		uint32_t argsz = (uint32_t)tab[i].len;

		memset(p, 0, sizeof(p));
		memcpy(p, &argsz, sizeof(argsz));
		for (size_t len = 0; len < tab[i].len; len += 3) {
			int rc = req(x->c, tab[i].cmd, p, len, NULL, 0);

			if (rc != -EINVAL)
				fail_msg("%s with %zu bytes: %d", vfio_user_cmd_name(tab[i].cmd),
					 len, rc);
		}
	}
	/* REGION_READ carries no data; DEVICE_RESET carries nothing at all */
	assert_int_equal(req(x->c, VFIO_USER_REGION_READ, p, sizeof(struct vfio_user_region_access) + 4,
			     NULL, 0), -EINVAL);
	assert_int_equal(req(x->c, VFIO_USER_DEVICE_RESET, p, 4, NULL, 0), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->reset), 0);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 0);
	assert_true(it_alive(x->c));
}

static void test_argsz_too_small(void **state)
{
	struct vx *x = *state;
	struct vfio_user_device_info info = { .argsz = sizeof(info) - 1 };
	struct vfio_region_info ri = { .argsz = sizeof(ri) - 1 };
	struct vfio_irq_info ii = { .argsz = sizeof(ii) - 1, .index = VFURT_IRQ_MSIX };
	struct vfio_user_region_io_fds_request io = { .argsz = sizeof(io) - 1 };
	struct vfio_user_dma_map map = { .argsz = sizeof(map) - 1, .flags = RW, .addr = IOVA,
					 .size = PG };
	struct vfio_user_dma_unmap um = { .argsz = sizeof(um) - 1, .addr = IOVA, .size = PG };
	struct vfio_irq_set set = { .argsz = sizeof(set) - 1,
				    .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				    .index = VFURT_IRQ_MSIX, .start = 0, .count = 1 };
	uint8_t setbuf[sizeof(set) + 4] = { 0 };

	assert_int_equal(req(x->c, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), NULL, 0), -EINVAL);
	assert_int_equal(req(x->c, VFIO_USER_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0),
			 -EINVAL);
	assert_int_equal(req(x->c, VFIO_USER_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), NULL, 0), -EINVAL);
	assert_int_equal(req(x->c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &io, sizeof(io), NULL, 0),
			 -EINVAL);
	assert_int_equal(req(x->c, VFIO_USER_DMA_MAP, &map, sizeof(map), NULL, 0), -EINVAL);
	assert_int_equal(req(x->c, VFIO_USER_DMA_UNMAP, &um, sizeof(um), NULL, 0), -EINVAL);
	assert_int_equal(req(x->c, VFIO_USER_DEVICE_SET_IRQS, &set, sizeof(set), NULL, 0), -EINVAL);
	/* argsz claiming more than the message holds */
	set.argsz = sizeof(setbuf) + 1;
	memcpy(setbuf, &set, sizeof(set));
	assert_int_equal(req(x->c, VFIO_USER_DEVICE_SET_IRQS, setbuf, sizeof(setbuf), NULL, 0),
			 -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 0);
	assert_int_equal(atomic_load(&x->st[0]->irq_state), 0);
	assert_true(it_alive(x->c));
}

/* ---- regions -------------------------------------------------------------------- */

static int rd(struct vfurt_client *c, uint32_t region, uint64_t off, uint32_t count)
{
	struct vfio_user_region_access a = { .offset = off, .region = region, .count = count };

	return req(c, VFIO_USER_REGION_READ, &a, sizeof(a), NULL, 0);
}

static int wr(struct vfurt_client *c, uint32_t region, uint64_t off, uint32_t count,
	      size_t datalen)
{
	uint8_t *p = calloc(1, sizeof(struct vfio_user_region_access) + datalen);
	struct vfio_user_region_access a = { .offset = off, .region = region, .count = count };
	int rc;

	assert_non_null(p);
	memcpy(p, &a, sizeof(a));
	memset(p + sizeof(a), 0xee, datalen);
	rc = req(c, VFIO_USER_REGION_WRITE, p, sizeof(a) + datalen, NULL, 0);
	free(p);
	return rc;
}

static void test_region_index(void **state)
{
	struct vx *x = *state;
	struct vfurt_client_region_info ri;
	struct vfurt_client_io_fds io;
	struct vfio_irq_info ii;

	assert_int_equal(rd(x->c, VFURT_MAX_REGIONS, 0, 4), -EINVAL);
	assert_int_equal(rd(x->c, 0xffffffffu, 0, 4), -EINVAL);
	assert_int_equal(rd(x->c, TD_REGION_DEVSPEC + 1, 0, 4), -EINVAL);
	assert_int_equal(wr(x->c, VFURT_MAX_REGIONS, 0, 4, 4), -EINVAL);
	assert_int_equal(vfurt_client_region_info(x->c, TD_REGION_DEVSPEC + 1, &ri), -EINVAL);
	assert_int_equal(vfurt_client_region_info(x->c, 0xffffffffu, &ri), -EINVAL);
	assert_int_equal(vfurt_client_irq_info(x->c, VFURT_IRQ_NUM, &ii), -EINVAL);
	assert_int_equal(vfurt_client_region_io_fds(x->c, VFURT_MAX_REGIONS, &io), -EINVAL);

	/* BAR3 is absent: described with size 0, not accessible */
	assert_int_equal(vfurt_client_region_info(x->c, VFURT_REGION_BAR3, &ri), 0);
	assert_int_equal(ri.size, 0);
	assert_int_equal(ri.flags, 0);
	vfurt_client_region_info_release(&ri);
	assert_int_equal(rd(x->c, VFURT_REGION_BAR3, 0, 4), -EINVAL);
	assert_int_equal(wr(x->c, VFURT_REGION_BAR3, 0, 4, 4), -EINVAL);
	assert_int_equal(vfurt_client_region_io_fds(x->c, VFURT_REGION_BAR3, &io), -EINVAL);
	assert_true(it_alive(x->c));
}

static void test_region_bounds(void **state)
{
	struct vx *x = *state;

	assert_int_equal(rd(x->c, VFURT_REGION_BAR1, UINT64_MAX - 1, 4), -EINVAL);
	assert_int_equal(rd(x->c, VFURT_REGION_BAR1, UINT64_MAX, 1), -EINVAL);
	assert_int_equal(wr(x->c, VFURT_REGION_BAR1, UINT64_MAX - 3, 4, 4), -EINVAL);
	assert_int_equal(rd(x->c, VFURT_REGION_BAR1, TD_BAR1_SIZE - 2, 4), -EINVAL);
	assert_int_equal(rd(x->c, VFURT_REGION_BAR1, TD_BAR1_SIZE, 1), -EINVAL);
	assert_int_equal(wr(x->c, VFURT_REGION_BAR2, 255, 2, 2), -EINVAL);
	assert_int_equal(rd(x->c, VFURT_REGION_BAR1, TD_BAR1_SIZE - 4, 4), 0);
	assert_int_equal(rd(x->c, VFURT_REGION_BAR1, 0, TD_BAR1_SIZE), 0);
	assert_int_equal(rd(x->c, VFURT_REGION_BAR1, 0, TD_BAR1_SIZE + 1), -EINVAL);
	/* count 0 */
	assert_int_equal(rd(x->c, VFURT_REGION_BAR1, 0, 0), -EINVAL);
	assert_int_equal(wr(x->c, VFURT_REGION_BAR1, 0, 0, 0), -EINVAL);
	assert_true(it_alive(x->c));
}

static int setup_small_xfer(void **state)
{
	struct vfurt_conn_opts co = { .opts_size = sizeof(co), .max_data_xfer_size = 4096 };

	return vx_start(state, NULL, &co, 0);
}

static void test_region_count_over_max(void **state)
{
	struct vx *x = *state;
	uint8_t *big = malloc(3 * 4096);

	assert_non_null(big);
	assert_int_equal(rd(x->c, VFURT_REGION_BAR1, 0, 4096), 0);
	assert_int_equal(rd(x->c, VFURT_REGION_BAR1, 0, 4097), -EINVAL);
	assert_int_equal(wr(x->c, VFURT_REGION_BAR1, 0, 4097, 4097), -EINVAL);
	assert_int_equal(wr(x->c, VFURT_REGION_BAR1, 0, 4096, 4096), 0);
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
	struct vx *x = *state;
	uint32_t v = 0;

	assert_int_equal(it_wr32(x->c, VFURT_REGION_BAR0, 0x30, 0x12345678), 0);
	assert_int_equal(wr(x->c, VFURT_REGION_BAR0, 0x30, 8, 4), -EINVAL);
	assert_int_equal(wr(x->c, VFURT_REGION_BAR0, 0x30, 4, 8), -EINVAL);
	assert_int_equal(wr(x->c, VFURT_REGION_BAR0, 0x30, 4, 0), -EINVAL);
	assert_int_equal(it_rd32(x->c, VFURT_REGION_BAR0, 0x30, &v), 0);
	assert_int_equal(v, 0x12345678);
	assert_true(it_alive(x->c));
}

static void test_region_write_read_only(void **state)
{
	struct vx *x = *state;
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

/* ---- REGION_WRITE_MULTI ------------------------------------------------------------ */

static void test_write_multi_not_negotiated(void **state)
{
	struct vx *x = *state;
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
	rc = req(c, VFIO_USER_REGION_WRITE_MULTI, p, len, NULL, 0);
	free(p);
	return rc;
}

static void test_write_multi_invalid(void **state)
{
	struct vx *x = *state;
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

/* ---- DMA_MAP / DMA_UNMAP ------------------------------------------------------------ */

static int map(struct vfurt_client *c, uint64_t iova, uint64_t size, uint32_t flags,
	       uint64_t off, const int *fds, size_t nfds)
{
	struct vfio_user_dma_map m = { .argsz = sizeof(m), .flags = flags, .offset = off,
				       .addr = iova, .size = size };

	return req(c, VFIO_USER_DMA_MAP, &m, sizeof(m), fds, nfds);
}

static int unmap(struct vfurt_client *c, uint64_t iova, uint64_t size, uint32_t flags)
{
	struct vfio_user_dma_unmap u = { .argsz = sizeof(u), .flags = flags, .addr = iova,
					 .size = size };

	return req(c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), NULL, 0);
}

static void test_dma_map_invalid(void **state)
{
	struct vx *x = *state;

	assert_int_equal(map(x->c, IOVA, 4 * PG, RW, 0, NULL, 0), 0);
	/* overlaps: inside, straddling either end, covering */
	assert_int_equal(map(x->c, IOVA + PG, PG, RW, 0, NULL, 0), -EEXIST);
	assert_int_equal(map(x->c, IOVA - PG, 2 * PG, RW, 0, NULL, 0), -EEXIST);
	assert_int_equal(map(x->c, IOVA + 3 * PG, 2 * PG, RW, 0, NULL, 0), -EEXIST);
	assert_int_equal(map(x->c, IOVA - PG, 6 * PG, RW, 0, NULL, 0), -EEXIST);
	/* adjacent is fine */
	assert_int_equal(map(x->c, IOVA + 4 * PG, PG, RW, 0, NULL, 0), 0);
	assert_int_equal(map(x->c, IOVA - PG, PG, RW, 0, NULL, 0), 0);

	assert_int_equal(map(x->c, 0x900000, 0, RW, 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, 0x900800, PG, RW, 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, 0x900000, PG + 1, RW, 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, UINT64_MAX - PG + 1, 2 * PG, RW, 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, 0x900000, PG, 0, 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, 0x900000, PG, RW | (1u << 2), 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, 0x900000, PG, 1u << 31, 0, NULL, 0), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 3);
	assert_true(it_alive(x->c));
}

static void test_dma_map_fds_invalid(void **state)
{
	struct vx *x = *state;
	int n0 = test_count_fds();
	int fds[2] = { it_memfd(4 * PG), it_memfd(4 * PG) };
	int pfd[2];
	int n1;

	assert_true(fds[0] >= 0 && fds[1] >= 0);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	n1 = test_count_fds();
	/* two fds: refused, both server copies closed */
	assert_int_equal(map(x->c, IOVA, PG, RW, 0, fds, 2), -EINVAL);
	assert_int_equal(test_count_fds(), n1);
	/* fd offset not page aligned */
	assert_int_equal(map(x->c, IOVA, PG, RW, 0x800, fds, 1), -EINVAL);
	assert_int_equal(test_count_fds(), n1);
	/* an fd that cannot be mapped */
	assert_true(map(x->c, IOVA, PG, RW, 0, pfd, 1) < 0);
	assert_int_equal(test_count_fds(), n1);
	/* a good one: the server keeps the mapping, not the fd */
	assert_int_equal(map(x->c, IOVA, PG, RW, PG, fds, 1), 0);
	assert_int_equal(test_count_fds(), n1);
	/* overlapping with an fd */
	assert_int_equal(map(x->c, IOVA, PG, RW, 0, fds + 1, 1), -EEXIST);
	assert_int_equal(test_count_fds(), n1);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 1);
	close(fds[0]);
	close(fds[1]);
	close(pfd[0]);
	close(pfd[1]);
	assert_int_equal(test_count_fds(), n0);
	assert_true(it_alive(x->c));
}

static int setup_max_maps(void **state)
{
	struct vfurt_conn_opts co = { .opts_size = sizeof(co), .max_dma_maps = 2 };

	return vx_start(state, NULL, &co, 0);
}

static void test_dma_map_limit(void **state)
{
	struct vx *x = *state;
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };

	assert_int_equal(vfurt_client_get_caps(x->c, &caps), 0);
	assert_int_equal(caps.max_dma_maps, 2);
	assert_int_equal(map(x->c, IOVA, PG, RW, 0, NULL, 0), 0);
	assert_int_equal(map(x->c, IOVA + PG, PG, RW, 0, NULL, 0), 0);
	assert_int_equal(map(x->c, IOVA + 2 * PG, PG, RW, 0, NULL, 0), -ENOSPC);
	assert_int_equal(unmap(x->c, IOVA, PG, 0), 0);
	assert_int_equal(map(x->c, IOVA + 2 * PG, PG, RW, 0, NULL, 0), 0);
	assert_true(it_alive(x->c));
}

static void test_dma_unmap_invalid(void **state)
{
	struct vx *x = *state;

	assert_int_equal(map(x->c, IOVA, 4 * PG, RW, 0, NULL, 0), 0);
	/* no exact match */
	assert_int_equal(unmap(x->c, IOVA, PG, 0), -ENOENT);
	assert_int_equal(unmap(x->c, IOVA + PG, 3 * PG, 0), -ENOENT);
	assert_int_equal(unmap(x->c, IOVA, 8 * PG, 0), -ENOENT);
	assert_int_equal(unmap(x->c, 0x900000, PG, 0), -ENOENT);
	assert_int_equal(unmap(x->c, IOVA, 0, 0), -EINVAL);
	/* unmap-all takes no range */
	assert_int_equal(unmap(x->c, IOVA, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL), -EINVAL);
	assert_int_equal(unmap(x->c, 0, PG, VFIO_USER_DMA_UNMAP_FLAG_ALL), -EINVAL);
	/* dirty page tracking is not offered; unknown flags */
	assert_int_equal(unmap(x->c, IOVA, 4 * PG, VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP),
			 -ENOTSUP);
	assert_int_equal(unmap(x->c, IOVA, 4 * PG, 1u << 2), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 0);
	assert_int_equal(unmap(x->c, IOVA, 4 * PG, 0), 0);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 1);
	assert_true(it_alive(x->c));
}

/*
 * Regression (SPDK): its NVMe driver sends the region's fd along with
 * DMA_UNMAP, which libvfio-user accepts. The server takes it, closes it and
 * unmaps as usual; more than one fd is still refused.
 */
static void test_dma_unmap_with_fd(void **state)
{
	struct vx *x = *state;
	struct vfio_user_dma_unmap u = { .argsz = sizeof(u), .addr = IOVA, .size = 4 * PG };
	struct vfio_user_dma_unmap all = { .argsz = sizeof(all),
					   .flags = VFIO_USER_DMA_UNMAP_FLAG_ALL };
	struct vfio_user_dma_unmap echo;
	int n0 = test_count_fds();
	int fds[2] = { it_memfd(4 * PG), it_memfd(4 * PG) };
	int n1 = test_count_fds();

	assert_true(fds[0] >= 0 && fds[1] >= 0);
	assert_int_equal(map(x->c, IOVA, 4 * PG, RW, 0, fds, 1), 0);
	assert_int_equal(test_count_fds(), n1);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 64), 0); /* the device reaches it */

	/* two fds: refused, both server copies closed, still mapped */
	assert_int_equal(req(x->c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), fds, 2), -EINVAL);
	assert_int_equal(test_count_fds(), n1);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 0);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 64), 0);

	/* as SPDK sends it: accepted, the fd closed, the window gone */
	assert_int_equal(req(x->c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), fds, 1), 0);
	memcpy(&echo, rbuf, sizeof(echo));
	assert_int_equal(echo.addr, IOVA);
	assert_int_equal(echo.size, 4 * PG);
	assert_int_equal(test_count_fds(), n1);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 1);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 64), -ENOENT);
	assert_int_equal(unmap(x->c, IOVA, 4 * PG, 0), -ENOENT);

	/* an unmap that fails still closes the fd */
	assert_int_equal(req(x->c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), fds, 1), -ENOENT);
	assert_int_equal(test_count_fds(), n1);

	/* unmap-all with an fd */
	assert_int_equal(map(x->c, IOVA, 4 * PG, RW, 0, fds + 1, 1), 0);
	assert_int_equal(req(x->c, VFIO_USER_DMA_UNMAP, &all, sizeof(all), fds + 1, 1), 0);
	assert_int_equal(test_count_fds(), n1);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 2);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 64), -ENOENT);

	close(fds[0]);
	close(fds[1]);
	assert_int_equal(test_count_fds(), n0);
	assert_true(it_alive(x->c));
	guard_ok(x);
}

/* ---- SET_IRQS --------------------------------------------------------------------- */

static int set_irqs(struct vfurt_client *c, uint32_t flags, uint32_t index, uint32_t start,
		    uint32_t count, const uint8_t *data, size_t dlen, const int *fds, size_t nfds)
{
	uint8_t p[sizeof(struct vfio_irq_set) + 64];
	struct vfio_irq_set s = { .argsz = (uint32_t)(sizeof(s) + dlen), .flags = flags,
				  .index = index, .start = start, .count = count };

	assert_true(dlen <= 64);
	memcpy(p, &s, sizeof(s));
	if (dlen)
		memcpy(p + sizeof(s), data, dlen);
	return req(c, VFIO_USER_DEVICE_SET_IRQS, p, sizeof(s) + dlen, fds, nfds);
}

#define EVT (VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER)

static void test_set_irqs_invalid(void **state)
{
	struct vx *x = *state;
	const uint8_t b[4] = { 1, 1, 1, 1 }, two = 2;
	int n0 = test_count_fds();
	int efd[17];
	int n1;

	for (int i = 0; i < 17; i++)
		assert_true((efd[i] = it_eventfd()) >= 0);
	n1 = test_count_fds();
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_NUM, 0, 1, NULL, 0, efd, 1), -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT, 0xffffffffu, 0, 1, NULL, 0, efd, 1), -EINVAL);
	/* exactly one action and one data type */
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK |
				  VFIO_IRQ_SET_ACTION_UNMASK, VFURT_IRQ_MSIX, 0, 1, NULL, 0,
				  NULL, 0), -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL |
				  VFIO_IRQ_SET_ACTION_MASK, VFURT_IRQ_MSIX, 0, 1, b, 1, NULL, 0),
			 -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_ACTION_MASK, VFURT_IRQ_MSIX, 0, 1, NULL, 0,
				  NULL, 0), -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE, VFURT_IRQ_MSIX, 0, 1, NULL, 0,
				  NULL, 0), -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT | (1u << 10), VFURT_IRQ_MSIX, 0, 1, NULL, 0, efd, 1),
			 -EINVAL);
	/* vectors beyond the index */
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, 7, 2, NULL, 0, efd, 2), -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, TD_MSIX_VECTORS, 1, NULL, 0, efd, 1),
			 -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, 1, 0xffffffffu, NULL, 0, NULL, 0),
			 -EINVAL);
	/* count 0 is only "disable the index" */
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				  VFURT_IRQ_MSIX, 0, 0, NULL, 0, NULL, 0), -EINVAL);
	/* BOOL data shorter than count, or not 0/1 */
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK,
				  VFURT_IRQ_MSIX, 0, 4, b, 2, NULL, 0), -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK,
				  VFURT_IRQ_MSIX, 0, 1, &two, 1, NULL, 0), -EINVAL);
	/* eventfd count differs from count; fds with DATA_NONE / DATA_BOOL */
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, 0, 2, NULL, 0, efd, 1), -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, 0, 1, NULL, 0, efd, 2), -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
				  VFURT_IRQ_MSIX, 0, 1, NULL, 0, efd, 1), -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
				  VFURT_IRQ_MSIX, 0, 1, b, 1, efd, 1), -EINVAL);
	/* masking an index that is not maskable */
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				  VFURT_IRQ_ERR, 0, 1, NULL, 0, NULL, 0), -EINVAL);
	/* more fds than the server's max_msg_fds (16) */
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, 0, 8, NULL, 0, efd, 17), -EINVAL);
	/* every fd the server received was closed again */
	assert_int_equal(test_count_fds(), n1);
	assert_int_equal(atomic_load(&x->st[0]->irq_state), 0);

	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_ERR, 0, 2, NULL, 0, efd, 2), -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_ERR, 0, 1, NULL, 0, efd, 2), -EINVAL);
	assert_int_equal(test_count_fds(), n1);
	/* nothing got attached: a trigger has no eventfd to fire */
	assert_int_equal(it_irq_fire(x->c, VFURT_IRQ_ERR, 0), -ENOENT);
	for (int i = 0; i < 17; i++)
		close(efd[i]);
	assert_int_equal(test_count_fds(), n0);
	assert_true(it_alive(x->c));
}

static void test_fds_with_other_commands(void **state)
{
	struct vx *x = *state;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	struct vfio_user_dma_unmap um = { .argsz = sizeof(um), .flags = VFIO_USER_DMA_UNMAP_FLAG_ALL };
	int n0 = test_count_fds();
	int efd = it_eventfd();
	int n1 = test_count_fds();

	assert_true(efd >= 0);
	assert_int_equal(req(x->c, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), &efd, 1),
			 -EINVAL);
	assert_int_equal(test_count_fds(), n1);
	assert_int_equal(wr(x->c, VFURT_REGION_BAR0, 0, 4, 4), 0);
	{
		uint8_t p[sizeof(struct vfio_user_region_access) + 4] = { 0 };
		struct vfio_user_region_access a = { .offset = 0, .region = 0, .count = 4 };

		memcpy(p, &a, sizeof(a));
		assert_int_equal(req(x->c, VFIO_USER_REGION_WRITE, p, sizeof(p), &efd, 1), -EINVAL);
	}
	/* DMA_UNMAP takes one fd (test_dma_unmap_with_fd), not two */
	assert_int_equal(req(x->c, VFIO_USER_DMA_UNMAP, &um, sizeof(um), (int[]){ efd, efd }, 2),
			 -EINVAL);
	assert_int_equal(req(x->c, VFIO_USER_DEVICE_RESET, NULL, 0, &efd, 1), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->reset), 0);
	assert_int_equal(test_count_fds(), n1);
	close(efd);
	assert_int_equal(test_count_fds(), n0);
	assert_true(it_alive(x->c));
}

static int setup_no_reset(void **state)
{
	struct testdev_opts d = { .no_reset = true };

	return vx_start(state, &d, NULL, 0);
}

static void test_reset_not_supported(void **state)
{
	struct vx *x = *state;
	struct vfio_user_device_info info;

	assert_int_equal(vfurt_client_device_info(x->c, &info), 0);
	assert_int_equal(info.flags, VFIO_DEVICE_FLAGS_PCI);
	assert_int_equal(vfurt_client_reset(x->c), -ENOTSUP);
	assert_int_equal(atomic_load(&x->st[0]->reset), 0);
	assert_true(it_alive(x->c));
}

/* ---- framing: these close the connection, never the server ------------------------- */

static void reconnect_ok(struct vx *x)
{
	vfurt_client_close(x->c);
	x->c = it_reconnect(testsrv_path(x->ts, 0), 0);
	assert_non_null(x->c);
	assert_true(it_alive(x->c));
}

static void test_framing_size_too_small(void **state)
{
	struct vx *x = *state;

	for (uint32_t size = 0; size < HDR; size += 5) {
		assert_int_equal(it_send_hdr(x->c, vfurt_client_next_msg_id(x->c),
					     VFIO_USER_DEVICE_GET_INFO, 0, size, NULL, 0, NULL, 0),
				 0);
		assert_true(it_server_closed(x->c));
		guard_ok(x);
		assert_int_equal(it_wait_ctr(&x->st[0]->detach, size / 5 + 1), size / 5 + 1);
		reconnect_ok(x);
	}
}

static void test_framing_size_too_big(void **state)
{
	static const uint32_t sizes[] = {
		/* one byte over the largest REGION_WRITE plus slack */
		(uint32_t)(HDR + sizeof(struct vfio_user_region_access) + (1u << 20) + 65536 + 1),
		0x7fffffffu, 0xffffffffu,
	};
	struct vx *x = *state;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t junk[64] = { 0 };

		assert_int_equal(it_send_hdr(x->c, 1, VFIO_USER_REGION_WRITE, 0, sizes[i], junk,
					     sizeof(junk), NULL, 0), 0);
		assert_true(it_server_closed(x->c));
		guard_ok(x);
		reconnect_ok(x);
	}
}

static void test_framing_truncated(void **state)
{
	struct vx *x = *state;
	uint8_t part[10] = { 0 };

	/* a REGION_WRITE that announces 40 bytes and sends 26, then goes away */
	assert_int_equal(it_send_hdr(x->c, 7, VFIO_USER_REGION_WRITE, 0, HDR + 24, part,
				     sizeof(part), NULL, 0), 0);
	vfurt_client_close(x->c);
	x->c = NULL;
	assert_int_equal(it_wait_ctr(&x->st[0]->detach, 1), 1);
	guard_ok(x);
	reconnect_ok(x);

	/* half a header, before VERSION */
	vfurt_client_close(x->c);
	x->c = it_reconnect(testsrv_path(x->ts, 0), VFURT_CLIENT_NO_HANDSHAKE);
	assert_non_null(x->c);
	assert_int_equal(vfurt_client_send_raw(x->c, part, 8, NULL, 0), 0);
	reconnect_ok(x);
	guard_ok(x);
}

static void test_second_client_refused(void **state)
{
	struct vx *x = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vfurt_client *c;
	char b;
	int s;

	errno = 0;
	c = it_connect(testsrv_path(x->ts, 0), 0);
	assert_null(c);
	assert_true(errno == ECONNRESET || errno == EPIPE);

	/* at the socket level: accepted, then closed without a byte */
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", testsrv_path(x->ts, 0));
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_true(it_readable(s, IT_TIMEOUT_MS));
	assert_int_equal(read(s, &b, 1), 0);
	close(s);

	/* the first client never noticed */
	assert_int_equal(atomic_load(&x->st[0]->detach), 0);
	assert_int_equal(atomic_load(&x->st[0]->attach), 1);
	assert_true(it_alive(x->c));
	guard_ok(x);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TS(fn, s) cmocka_unit_test_setup_teardown(fn, s, teardown)
	const struct CMUnitTest tests[] = {
		TS(test_command_before_version, setup_no_handshake),
		T(test_second_version),
		TS(test_bad_major, setup_no_handshake),
		TS(test_version_bad_json, setup_no_handshake),
		TS(test_version_json_tolerated, setup_no_handshake),
		T(test_header_flags),
		T(test_reply_from_client_dropped),
		T(test_unknown_commands),
		T(test_dma_rw_from_client),
		T(test_short_payloads),
		T(test_argsz_too_small),
		T(test_region_index),
		T(test_region_bounds),
		TS(test_region_count_over_max, setup_small_xfer),
		T(test_region_write_len_mismatch),
		T(test_region_write_read_only),
		T(test_write_multi_not_negotiated),
		T(test_write_multi_invalid),
		T(test_dma_map_invalid),
		T(test_dma_map_fds_invalid),
		TS(test_dma_map_limit, setup_max_maps),
		T(test_dma_unmap_invalid),
		T(test_dma_unmap_with_fd),
		T(test_set_irqs_invalid),
		T(test_fds_with_other_commands),
		TS(test_reset_not_supported, setup_no_reset),
		T(test_framing_size_too_small),
		T(test_framing_size_too_big),
		T(test_framing_truncated),
		T(test_second_client_refused),
	};

	return cmocka_run_group_tests_name("integration: validation", tests, NULL, NULL);
}
