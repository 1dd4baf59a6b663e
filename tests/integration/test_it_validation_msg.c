/* Integration: validation of message headers, commands, their fds and framing. */
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
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "common/fixture.h"
#include "common/it_util.h"
#include "common/testsrv.h"
#include "common/val_fx.h"

#define IOVA 0x100000ull
#define PG 4096u
#define RW (VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE)
#define HDR sizeof(struct vfio_user_header)

static void test_header_flags(void **state)
{
	struct it_fx *x = *state;
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
	struct it_fx *x = *state;
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
	struct it_fx *x = *state;
	uint8_t payload[32] = { 0 };

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_int_equal(val_req(x->c, cmds[i], NULL, 0, NULL, 0), -EINVAL);
		assert_int_equal(val_req(x->c, cmds[i], payload, sizeof(payload), NULL, 0),
				 -EINVAL);
	}
	assert_true(it_alive(x->c));
}

static void test_dma_rw_from_client(void **state)
{
	struct it_fx *x = *state;
	struct vfio_user_dma_access a = { .addr = IOVA, .count = 0 };

	assert_int_equal(val_req(x->c, VFIO_USER_DMA_READ, &a, sizeof(a), NULL, 0), -EINVAL);
	assert_int_equal(val_req(x->c, VFIO_USER_DMA_WRITE, &a, sizeof(a), NULL, 0), -EINVAL);
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
	struct it_fx *x = *state;
	uint8_t p[64];

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		uint32_t argsz = (uint32_t)tab[i].len;

		memset(p, 0, sizeof(p));
		memcpy(p, &argsz, sizeof(argsz));
		for (size_t len = 0; len < tab[i].len; len += 3) {
			int rc = val_req(x->c, tab[i].cmd, p, len, NULL, 0);

			if (rc != -EINVAL)
				fail_msg("%s with %zu bytes: %d", vfio_user_cmd_name(tab[i].cmd),
					 len, rc);
		}
	}
	/* REGION_READ carries no data; DEVICE_RESET carries nothing at all */
	assert_int_equal(val_req(x->c, VFIO_USER_REGION_READ, p,
				 sizeof(struct vfio_user_region_access) + 4, NULL, 0), -EINVAL);
	assert_int_equal(val_req(x->c, VFIO_USER_DEVICE_RESET, p, 4, NULL, 0), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->reset), 0);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 0);
	assert_true(it_alive(x->c));
}

static void test_argsz_too_small(void **state)
{
	struct it_fx *x = *state;
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

	assert_int_equal(val_req(x->c, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), NULL, 0),
			 -EINVAL);
	assert_int_equal(val_req(x->c, VFIO_USER_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0),
			 -EINVAL);
	assert_int_equal(val_req(x->c, VFIO_USER_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), NULL, 0),
			 -EINVAL);
	assert_int_equal(val_req(x->c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &io, sizeof(io), NULL,
				 0), -EINVAL);
	assert_int_equal(val_req(x->c, VFIO_USER_DMA_MAP, &map, sizeof(map), NULL, 0), -EINVAL);
	assert_int_equal(val_req(x->c, VFIO_USER_DMA_UNMAP, &um, sizeof(um), NULL, 0), -EINVAL);
	assert_int_equal(val_req(x->c, VFIO_USER_DEVICE_SET_IRQS, &set, sizeof(set), NULL, 0),
			 -EINVAL);
	/* argsz claiming more than the message holds */
	set.argsz = sizeof(setbuf) + 1;
	memcpy(setbuf, &set, sizeof(set));
	assert_int_equal(val_req(x->c, VFIO_USER_DEVICE_SET_IRQS, setbuf, sizeof(setbuf), NULL, 0),
			 -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 0);
	assert_int_equal(atomic_load(&x->st[0]->irq_state), 0);
	assert_true(it_alive(x->c));
}

static void test_fds_with_other_commands(void **state)
{
	struct it_fx *x = *state;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	struct vfio_user_dma_unmap um = { .argsz = sizeof(um), .flags = VFIO_USER_DMA_UNMAP_FLAG_ALL };
	int n0 = test_count_fds();
	int efd = it_eventfd();
	int n1 = test_count_fds();

	assert_true(efd >= 0);
	assert_int_equal(val_req(x->c, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), &efd, 1),
			 -EINVAL);
	assert_int_equal(test_count_fds(), n1);
	assert_int_equal(val_wr(x->c, VFURT_REGION_BAR0, 0, 4, 4), 0);
	{
		uint8_t p[sizeof(struct vfio_user_region_access) + 4] = { 0 };
		struct vfio_user_region_access a = { .offset = 0, .region = 0, .count = 4 };

		memcpy(p, &a, sizeof(a));
		assert_int_equal(val_req(x->c, VFIO_USER_REGION_WRITE, p, sizeof(p), &efd, 1),
				 -EINVAL);
	}
	/* DMA_UNMAP takes one fd (test_dma_unmap_with_fd), not two */
	assert_int_equal(val_req(x->c, VFIO_USER_DMA_UNMAP, &um, sizeof(um),
				 (int[]){ efd, efd }, 2), -EINVAL);
	assert_int_equal(val_req(x->c, VFIO_USER_DEVICE_RESET, NULL, 0, &efd, 1), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->reset), 0);
	assert_int_equal(test_count_fds(), n1);
	close(efd);
	assert_int_equal(test_count_fds(), n0);
	assert_true(it_alive(x->c));
}

static int setup_no_reset(void **state)
{
	struct testdev_opts d = { .no_reset = true };

	return val_start(state, &d, NULL, 0);
}

static void test_reset_not_supported(void **state)
{
	struct it_fx *x = *state;
	struct vfio_user_device_info info;

	assert_int_equal(vfurt_client_device_info(x->c, &info), 0);
	assert_int_equal(info.flags, VFIO_DEVICE_FLAGS_PCI);
	assert_int_equal(vfurt_client_reset(x->c), -ENOTSUP);
	assert_int_equal(atomic_load(&x->st[0]->reset), 0);
	assert_true(it_alive(x->c));
}

/* ---- framing: these close the connection, never the server ------------------------- */

static void reconnect_ok(struct it_fx *x)
{
	vfurt_client_close(x->c);
	x->c = it_reconnect(testsrv_path(x->ts, 0), 0);
	assert_non_null(x->c);
	assert_true(it_alive(x->c));
}

static void test_framing_size_too_small(void **state)
{
	struct it_fx *x = *state;

	for (uint32_t size = 0; size < HDR; size += 5) {
		assert_int_equal(it_send_hdr(x->c, vfurt_client_next_msg_id(x->c),
					     VFIO_USER_DEVICE_GET_INFO, 0, size, NULL, 0, NULL, 0),
				 0);
		assert_true(it_server_closed(x->c));
		val_guard_ok(x);
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
	struct it_fx *x = *state;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t junk[64] = { 0 };

		assert_int_equal(it_send_hdr(x->c, 1, VFIO_USER_REGION_WRITE, 0, sizes[i], junk,
					     sizeof(junk), NULL, 0), 0);
		assert_true(it_server_closed(x->c));
		val_guard_ok(x);
		reconnect_ok(x);
	}
}

static void test_framing_truncated(void **state)
{
	struct it_fx *x = *state;
	uint8_t part[10] = { 0 };

	/* a REGION_WRITE that announces 40 bytes and sends 26, then goes away */
	assert_int_equal(it_send_hdr(x->c, 7, VFIO_USER_REGION_WRITE, 0, HDR + 24, part,
				     sizeof(part), NULL, 0), 0);
	vfurt_client_close(x->c);
	x->c = NULL;
	assert_int_equal(it_wait_ctr(&x->st[0]->detach, 1), 1);
	val_guard_ok(x);
	reconnect_ok(x);

	/* half a header, before VERSION */
	vfurt_client_close(x->c);
	x->c = it_reconnect(testsrv_path(x->ts, 0), VFURT_CLIENT_NO_HANDSHAKE);
	assert_non_null(x->c);
	assert_int_equal(vfurt_client_send_raw(x->c, part, 8, NULL, 0), 0);
	reconnect_ok(x);
	val_guard_ok(x);
}

static void test_second_client_refused(void **state)
{
	struct it_fx *x = *state;
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
	val_guard_ok(x);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, val_setup, it_fx_teardown)
#define TS(fn, s) cmocka_unit_test_setup_teardown(fn, s, it_fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_header_flags),
		T(test_reply_from_client_dropped),
		T(test_unknown_commands),
		T(test_dma_rw_from_client),
		T(test_short_payloads),
		T(test_argsz_too_small),
		T(test_fds_with_other_commands),
		TS(test_reset_not_supported, setup_no_reset),
		T(test_framing_size_too_small),
		T(test_framing_size_too_big),
		T(test_framing_truncated),
		T(test_second_client_refused),
#undef T
#undef TS
	};

	return cmocka_run_group_tests_name("validation: messages", tests, NULL, NULL);
}
