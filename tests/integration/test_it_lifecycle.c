/* Integration: connect/disconnect, what a disconnect releases, pipelining, server teardown. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fixture.h"
#include "common/it_util.h"
#include "common/testsrv.h"

#define IOVA 0x100000ull
#define PG 4096u
#define RW (VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE)
#define HDR sizeof(struct vfio_user_header)

/* Two test devices on one server; c talks to dev[0]. */
static int lx_start(void **state, const struct testdev_opts *d0,
		    const struct vfurt_conn_opts *co, const struct vfurt_client_opts *o)
{
	struct it_fx_opts fo = { .name = "it-life", .ntestdev = 2, .dev0 = d0, .conn = co,
				 .client = o };

	return it_fx_start(state, &fo);
}

static int setup(void **state)
{
	return lx_start(state, NULL, NULL, NULL);
}

/* Close c and wait until the server has detached it. */
static void disconnect(struct it_fx *x)
{
	unsigned d = atomic_load(&x->st[0]->detach);

	vfurt_client_close(x->c);
	x->c = NULL;
	assert_int_equal(it_wait_ctr(&x->st[0]->detach, d + 1), d + 1);
}

static struct vfurt_client *reconnect(struct it_fx *x, uint32_t flags)
{
	struct vfurt_client_opts o = it_opts(flags);

	x->c = it_connect_retry(testsrv_path(x->ts, 0), &o);
	assert_non_null(x->c);
	return x->c;
}

/* ---- state and resources across a disconnect ------------------------------ */

static void test_state_survives_reconnect(void **state)
{
	struct it_fx *x = *state;
	uint8_t big[512], back[512];
	uint32_t v = 0;
	uint16_t cmd = 0;

	it_fill(big, sizeof(big), 61);
	assert_int_equal(it_wr32(x->c, VFURT_REGION_BAR0, 0x10, 0xcafef00d), 0);
	assert_int_equal(vfurt_client_region_write(x->c, VFURT_REGION_BAR1, 0x4000, big,
						   sizeof(big)), 0);
	assert_int_equal(it_wr32(x->c, TD_REGION_DEVSPEC, 0x100, 0x1234), 0);
	cmd = 0x0406; /* memory, bus master, INTx disable */
	assert_int_equal(vfurt_client_region_write(x->c, VFURT_REGION_CONFIG, 4, &cmd, 2), 0);
	disconnect(x);
	/* a client going away does not reset the device */
	assert_int_equal(atomic_load(&x->st[0]->reset), 0);

	reconnect(x, 0);
	assert_int_equal(it_rd32(x->c, VFURT_REGION_BAR0, 0x10, &v), 0);
	assert_int_equal(v, 0xcafef00d);
	assert_int_equal(vfurt_client_region_read(x->c, VFURT_REGION_BAR1, 0x4000, back,
						  sizeof(back)), 0);
	assert_memory_equal(back, big, sizeof(big));
	assert_int_equal(it_rd32(x->c, TD_REGION_DEVSPEC, 0x100, &v), 0);
	assert_int_equal(v, 0x1234);
	cmd = 0;
	assert_int_equal(vfurt_client_region_read(x->c, VFURT_REGION_CONFIG, 4, &cmd, 2), 0);
	assert_int_equal(cmd & 0x0406, 0x0406);
	assert_int_equal(atomic_load(&x->st[0]->attach), 2);
	assert_int_equal(atomic_load(&x->st[0]->detach), 1);
}

static void test_disconnect_releases_dma_and_irqs(void **state)
{
	struct it_fx *x = *state;
	int mfd = it_memfd(8 * PG);
	int efd[TD_MSIX_VECTORS + 2];
	uint8_t *mem = aligned_alloc(PG, 4 * PG);
	struct vfurt_client_io_fds io;
	struct vfurt_client_region_info ri;
	void *bar;
	size_t barlen;
	int with_ours;

	assert_true(mfd >= 0);
	assert_non_null(mem);
	for (size_t i = 0; i < TD_MSIX_VECTORS + 2; i++)
		assert_true((efd[i] = it_eventfd()) >= 0);
	with_ours = x->base_fds + 1 + TD_MSIX_VECTORS + 2;

	assert_int_equal(vfurt_client_dma_map(x->c, IOVA, 4 * PG, mfd, 0, RW,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_int_equal(vfurt_client_dma_map(x->c, IOVA + 4 * PG, 4 * PG, mfd, 4 * PG, RW,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_int_equal(vfurt_client_dma_map_mem(x->c, IOVA + 16 * PG, 4 * PG, mem, RW, 0), 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(x->c, VFURT_IRQ_MSIX, 0, TD_MSIX_VECTORS,
						       efd, VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(x->c, VFURT_IRQ_INTX, 0, 1,
						       &efd[TD_MSIX_VECTORS],
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(x->c, VFURT_IRQ_ERR, 0, 1,
						       &efd[TD_MSIX_VECTORS + 1],
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	/* received fds and a BAR mapping on the client side too */
	assert_int_equal(vfurt_client_region_io_fds(x->c, VFURT_REGION_BAR0, &io), 0);
	assert_int_equal(vfurt_client_region_info(x->c, VFURT_REGION_BAR0, &ri), 0);
	assert_int_equal(vfurt_client_region_info_mmap(&ri, 0, PROT_READ | PROT_WRITE, &bar,
						       &barlen), 0);
	vfurt_client_io_fds_release(&io);
	vfurt_client_region_info_release(&ri);
	/* the server holds a copy of each of the 10 eventfds, and of the fd of
	 * each of the two fd-backed DMA windows */
	assert_int_equal(test_count_fds(), with_ours + 10 + 2 + 2 /* sockets */);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 3);

	disconnect(x);
	/* everything the server held for the client is gone, ours are not */
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 3);
	assert_int_equal(it_wait_fds(with_ours), with_ours);
	for (size_t i = 0; i < TD_MSIX_VECTORS + 2; i++)
		close(efd[i]);
	close(mfd);
	assert_int_equal(test_count_fds(), x->base_fds);
	munmap(bar, barlen);
	free(mem);

	/* the next client starts with no windows and no eventfds */
	reconnect(x, 0);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 16), -ENOENT);
	assert_int_equal(it_irq_fire(x->c, VFURT_IRQ_ERR, 0), -ENOENT);
}

static void test_attach_detach_counters(void **state)
{
	struct it_fx *x = *state;
	struct vfurt_client_opts o = it_opts(0);

	assert_int_equal(atomic_load(&x->st[0]->attach), 1);
	assert_int_equal(atomic_load(&x->st[0]->detach), 0);
	disconnect(x);

	/* connected but no VERSION yet: not attached, and no detach on close */
	reconnect(x, VFURT_CLIENT_NO_HANDSHAKE);
	assert_int_equal(atomic_load(&x->st[0]->attach), 1);
	assert_int_equal(it_raw_version(x->c, 0, 0, "{}", NULL), 0);
	assert_int_equal(atomic_load(&x->st[0]->attach), 2);
	disconnect(x);

	/* a refused VERSION attaches nothing */
	o.version_json = "{\"capabilities\":{\"pgsizes\":8192}}";
	x->c = it_connect_retry(testsrv_path(x->ts, 0), &o);
	assert_null(x->c);
	assert_int_equal(errno, EINVAL);
	reconnect(x, 0);
	assert_int_equal(atomic_load(&x->st[0]->attach), 3);
	assert_int_equal(atomic_load(&x->st[0]->detach), 2);
	/* the other device saw nothing */
	assert_int_equal(atomic_load(&x->st[1]->attach), 0);
	assert_int_equal(atomic_load(&x->st[1]->detach), 0);
}

static void test_many_cycles(void **state)
{
	struct it_fx *x = *state;
	int mfd = it_memfd(PG);
	int efd = it_eventfd();
	int ours;

	assert_true(mfd >= 0 && efd >= 0);
	ours = x->base_fds + 2;
	disconnect(x);
	for (unsigned i = 0; i < 200; i++) {
		uint32_t v = 0;

		reconnect(x, (i % 4 == 3) ? VFURT_CLIENT_TWIN_SOCKET : 0);
		assert_int_equal(it_rd32(x->c, VFURT_REGION_BAR0, 0x20, &v), 0);
		assert_int_equal(v, i);
		assert_int_equal(it_wr32(x->c, VFURT_REGION_BAR0, 0x20, i + 1), 0);
		assert_int_equal(vfurt_client_dma_map(x->c, IOVA, PG, mfd, 0, RW,
						      VFURT_CLIENT_DMA_SEND_FD), 0);
		assert_int_equal(vfurt_client_set_irqs_eventfd(x->c, VFURT_IRQ_ERR, 0, 1, &efd,
							       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
		disconnect(x);
		if (i % 50 == 49)
			assert_int_equal(it_wait_fds(ours), ours);
	}
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 200);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 200);
	assert_int_equal(atomic_load(&x->st[0]->attach), 201);
	close(mfd);
	close(efd);
	assert_int_equal(it_wait_fds(x->base_fds), x->base_fds);
	reconnect(x, 0);
}

/* Reconnecting right after a close, without waiting for the server to
 * notice the old connection went away. */
static void test_immediate_reconnect(void **state)
{
	struct it_fx *x = *state;
	unsigned refused = 0;

	for (unsigned i = 0; i < 50; i++) {
		vfurt_client_close(x->c);
		x->c = it_connect(testsrv_path(x->ts, 0), 0);
		if (!x->c) {
			refused++;
			reconnect(x, 0);
		}
		assert_true(it_alive(x->c));
	}
	if (refused)
		print_message("immediate reconnect refused %u of 50 times\n", refused);
	assert_int_equal(it_wait_ctr(&x->st[0]->detach, 50), 50);
}

/* ---- two devices, one misbehaving client ------------------------------------- */

static void test_two_devices_one_garbage(void **state)
{
	struct it_fx *x = *state;
	struct vfurt_client *good = it_connect(testsrv_path(x->ts, 1), 0);
	uint8_t junk[64];
	uint8_t pat[256], back[256];

	assert_non_null(good);
	for (unsigned i = 0; i < 20; i++) {
		/* garbage on dev0: a header claiming an absurd size, then noise */
		memset(junk, 0xff, sizeof(junk));
		junk[0] = (uint8_t)i;
		assert_int_equal(vfurt_client_send_raw(x->c, junk, sizeof(junk), NULL, 0), 0);
		/* dev1 keeps answering with its state intact */
		it_fill(pat, sizeof(pat), i);
		assert_int_equal(vfurt_client_region_write(good, VFURT_REGION_BAR1, i * 256u, pat,
							   sizeof(pat)), 0);
		assert_int_equal(vfurt_client_region_read(good, VFURT_REGION_BAR1, i * 256u, back,
							  sizeof(back)), 0);
		assert_memory_equal(back, pat, sizeof(pat));
		assert_true(it_server_closed(x->c));
		assert_int_equal(it_wait_ctr(&x->st[0]->detach, i + 1), i + 1);
		vfurt_client_close(x->c);
		reconnect(x, 0);
	}
	assert_int_equal(atomic_load(&x->st[1]->detach), 0);
	assert_int_equal(atomic_load(&x->st[1]->attach), 1);
	vfurt_client_close(good);
}

/* ---- pipelining --------------------------------------------------------------- */

#define WR32_LEN (sizeof(struct vfio_user_region_access) + 4)

/* Payload of a 4-byte REGION_WRITE of v at region/off into buf[WR32_LEN]. */
static void wr32_msg(uint8_t *buf, uint32_t region, uint64_t off, uint32_t v)
{
	struct vfio_user_region_access a = { .offset = off, .region = region, .count = 4 };

	memcpy(buf, &a, sizeof(a));
	memcpy(buf + sizeof(a), &v, 4);
}

static void test_pipelined_writes(void **state)
{
	struct it_fx *x = *state;
	int ids[50];
	uint8_t back[50 * 4];

	for (uint32_t i = 0; i < 50; i++) {
		uint8_t w[WR32_LEN];

		wr32_msg(w, VFURT_REGION_BAR1, 0x400 + i * 4, 0xa5000000u | i);
		ids[i] = it_send_cmd(x->c, VFIO_USER_REGION_WRITE, 0, w, sizeof(w), NULL, 0);
		assert_true(ids[i] >= 0);
	}
	for (uint32_t i = 0; i < 50; i++) {
		struct vfio_user_region_access r;

		assert_int_equal(it_recv_reply(x->c, (uint16_t)ids[i], VFIO_USER_REGION_WRITE, &r,
					       sizeof(r), NULL), 0);
		assert_int_equal(r.offset, 0x400 + i * 4);
		assert_int_equal(r.count, 4);
	}
	assert_int_equal(vfurt_client_region_read(x->c, VFURT_REGION_BAR1, 0x400, back,
						  sizeof(back)), 0);
	for (uint32_t i = 0; i < 50; i++) {
		uint32_t v;

		memcpy(&v, back + i * 4, 4);
		assert_int_equal(v, 0xa5000000u | i);
	}
}

/* Different commands, some with fds, some failing, in one burst. */
static void test_pipelined_mixed(void **state)
{
	struct it_fx *x = *state;
	int mfd = it_memfd(PG);
	int efd[4];
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	struct vfio_user_dma_map map = { .argsz = sizeof(map), .flags = RW, .addr = IOVA,
					 .size = PG };
	struct vfio_user_region_access rd = { .offset = 0x10, .region = VFURT_REGION_BAR0,
					      .count = 4 };
	struct vfio_user_region_access bad = { .offset = 0, .region = VFURT_REGION_BAR3,
					       .count = 4 };
	struct { uint16_t cmd; int id; int err; } q[16];
	size_t n = 0;
	uint8_t buf[256];

	assert_true(mfd >= 0);
	for (int i = 0; i < 4; i++)
		assert_true((efd[i] = it_eventfd()) >= 0);
	assert_int_equal(it_wr32(x->c, VFURT_REGION_BAR0, 0x10, 77), 0);
#define Q(cmd_, p_, l_, f_, nf_, err_) do { \
		q[n].cmd = (cmd_); q[n].err = (err_); \
		q[n].id = it_send_cmd(x->c, (cmd_), 0, (p_), (l_), (f_), (nf_)); \
		assert_true(q[n].id >= 0); n++; } while (0)
	Q(VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), NULL, 0, 0);
	Q(VFIO_USER_DMA_MAP, &map, sizeof(map), &mfd, 1, 0);
	Q(VFIO_USER_DMA_MAP, &map, sizeof(map), &mfd, 1, -EEXIST);
	Q(VFIO_USER_REGION_READ, &bad, sizeof(bad), NULL, 0, -EINVAL);
	for (uint32_t v = 0; v < 4; v++) {
		struct vfio_irq_set s = { .argsz = sizeof(s), .index = VFURT_IRQ_MSIX, .start = v,
					  .count = 1, .flags = VFIO_IRQ_SET_DATA_EVENTFD |
							       VFIO_IRQ_SET_ACTION_TRIGGER };

		Q(VFIO_USER_DEVICE_SET_IRQS, &s, sizeof(s), &efd[v], 1, 0);
	}
	Q(VFIO_USER_REGION_READ, &rd, sizeof(rd), NULL, 0, 0);
	Q(0x7777, NULL, 0, NULL, 0, -EINVAL);
	Q(VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), NULL, 0, 0);
#undef Q
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		int rc = it_recv_reply(x->c, (uint16_t)q[i].id, q[i].cmd, buf, sizeof(buf), &len);

		if (rc != q[i].err)
			fail_msg("reply %zu (%s): %d, want %d", i, vfio_user_cmd_name(q[i].cmd), rc,
				 q[i].err);
		if (q[i].cmd == VFIO_USER_REGION_READ && !rc) {
			uint32_t v;

			assert_int_equal(len, sizeof(rd) + 4);
			memcpy(&v, buf + sizeof(rd), 4);
			assert_int_equal(v, 77);
		}
	}
	/* the eventfds sent in the burst are attached */
	assert_int_equal(it_msix_enable(x->c, TD_MSIX_VECTORS), 0);
	for (uint32_t v = 0; v < 4; v++) {
		assert_int_equal(it_irq_fire(x->c, VFURT_IRQ_MSIX, v), 0);
		assert_true(it_readable(efd[v], IT_TIMEOUT_MS));
	}
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 1);
	for (int i = 0; i < 4; i++)
		close(efd[i]);
	close(mfd);
}

/*
 * Commands that arrive while the server waits for a DMA_READ reply are kept
 * and run afterwards, in order, fds included: a posted doorbell write starts
 * a message-based DMA and the burst behind it reaches the server before the
 * client serves that DMA.
 */
static void test_pipeline_during_dma(void **state)
{
	struct it_fx *x = *state;
	uint8_t *guest = aligned_alloc(PG, 4 * PG);
	uint8_t bar[4 * PG];
	int efd = it_eventfd();
	uint32_t op = 1;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	struct vfio_irq_set s = { .argsz = sizeof(s), .index = VFURT_IRQ_ERR, .start = 0,
				  .count = 1, .flags = VFIO_IRQ_SET_DATA_EVENTFD |
						       VFIO_IRQ_SET_ACTION_TRIGGER };
	struct vfio_user_region_access wreply;
	uint8_t w[WR32_LEN];
	int id1, id2, id3;
	uint32_t v = 0;

	assert_non_null(guest);
	assert_true(efd >= 0);
	it_fill(guest, 4 * PG, 71);
	assert_int_equal(vfurt_client_dma_map_mem(x->c, IOVA, 4 * PG, guest, RW, 0), 0);
	assert_int_equal(it_wr64(x->c, VFURT_REGION_BAR0, TD_REG_DMA_IOVA, IOVA), 0);
	assert_int_equal(it_wr64(x->c, VFURT_REGION_BAR0, TD_REG_DMA_LEN, 4 * PG), 0);
	assert_int_equal(vfurt_client_region_write_posted(x->c, VFURT_REGION_BAR0,
							  TD_REG_DMA_DOORBELL, &op, 4), 0);
	id1 = it_send_cmd(x->c, VFIO_USER_DEVICE_SET_IRQS, 0, &s, sizeof(s), &efd, 1);
	wr32_msg(w, VFURT_REGION_BAR0, 0x80, 0xfeed);
	id2 = it_send_cmd(x->c, VFIO_USER_REGION_WRITE, 0, w, sizeof(w), NULL, 0);
	id3 = it_send_cmd(x->c, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info), NULL, 0);
	assert_true(id1 >= 0 && id2 >= 0 && id3 >= 0);
	/* receiving serves the DMA_READ; then the replies come in order */
	assert_int_equal(it_recv_reply(x->c, (uint16_t)id1, VFIO_USER_DEVICE_SET_IRQS, NULL, 0,
				       NULL), 0);
	assert_int_equal(it_recv_reply(x->c, (uint16_t)id2, VFIO_USER_REGION_WRITE, &wreply,
				       sizeof(wreply), NULL), 0);
	assert_int_equal(it_recv_reply(x->c, (uint16_t)id3, VFIO_USER_DEVICE_GET_INFO, &info,
				       sizeof(info), NULL), 0);
	assert_true(vfurt_client_dma_served(x->c) >= 1);
	assert_int_equal(it_rd32(x->c, VFURT_REGION_BAR0, TD_REG_DMA_STATUS, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(vfurt_client_region_read(x->c, VFURT_REGION_BAR1, 0, bar, sizeof(bar)), 0);
	assert_true(it_check(bar, sizeof(bar), 71));
	assert_int_equal(it_rd32(x->c, VFURT_REGION_BAR0, 0x80, &v), 0);
	assert_int_equal(v, 0xfeed);
	/* the eventfd that waited in the backlog was attached */
	assert_int_equal(it_irq_fire(x->c, VFURT_IRQ_ERR, 0), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	assert_int_equal(vfurt_client_dma_unmap(x->c, IOVA, 4 * PG, 0), 0);
	close(efd);
	free(guest);
}

static int setup_small_client_xfer(void **state)
{
	struct vfurt_client_opts o = it_opts(0);

	o.max_data_xfer_size = PG;
	return lx_start(state, NULL, NULL, &o);
}

/*
 * The same with a REGION_WRITE bigger than the client's max_data_xfer_size
 * (which bounds DMA_READ/WRITE only; the server accepts up to its own
 * 1 MiB): it must be kept for later like any other command.
 */
static void test_pipeline_large_write_during_dma(void **state)
{
	/* static: a failing assert must not look like a leak under ASan */
	static uint8_t guest[PG] __attribute__((aligned(PG)));
	static uint8_t msg[sizeof(struct vfio_user_region_access) + 4 * PG];
	static uint8_t back[4 * PG];
	struct it_fx *x = *state;
	const size_t n = 4 * PG;
	struct vfio_user_region_access a = { .offset = 0x8000, .region = VFURT_REGION_BAR1,
					     .count = (uint32_t)n };
	uint32_t op = 1;
	int id;

	it_fill(guest, PG, 81);
	assert_int_equal(vfurt_client_dma_map_mem(x->c, IOVA, PG, guest, RW, 0), 0);
	assert_int_equal(it_wr64(x->c, VFURT_REGION_BAR0, TD_REG_DMA_IOVA, IOVA), 0);
	assert_int_equal(it_wr64(x->c, VFURT_REGION_BAR0, TD_REG_DMA_LEN, PG), 0);
	assert_int_equal(vfurt_client_region_write_posted(x->c, VFURT_REGION_BAR0,
							  TD_REG_DMA_DOORBELL, &op, 4), 0);
	memcpy(msg, &a, sizeof(a));
	it_fill(msg + sizeof(a), n, 82);
	id = it_send_cmd(x->c, VFIO_USER_REGION_WRITE, 0, msg, sizeof(a) + n, NULL, 0);
	assert_true(id >= 0);
	/* Regression: commands pipelined during a DMA wait were received into a
	 * buffer sized by the client's max transfer, so this 16 KiB write used
	 * to fail and close the connection. */
	assert_int_equal(it_recv_reply(x->c, (uint16_t)id, VFIO_USER_REGION_WRITE, &a, sizeof(a),
				       NULL), 0);
	assert_int_equal(vfurt_client_region_read(x->c, VFURT_REGION_BAR1, 0x8000, back, n), 0);
	assert_true(it_check(back, n, 82));
	assert_int_equal(vfurt_client_region_read(x->c, VFURT_REGION_BAR1, 0, back, PG), 0);
	assert_true(it_check(back, PG, 81));
	assert_int_equal(atomic_load(&x->st[0]->detach), 0);
	assert_int_equal(vfurt_client_dma_unmap(x->c, IOVA, PG, 0), 0);
}

/* ---- clients that stop cooperating in the middle of a DMA --------------------------- */

static void test_client_gone_during_dma(void **state)
{
	struct it_fx *x = *state;
	uint8_t *guest = aligned_alloc(PG, 4 * PG);
	uint32_t op = 1;
	uint32_t st = 0;

	assert_non_null(guest);
	assert_int_equal(vfurt_client_dma_map_mem(x->c, IOVA, 4 * PG, guest, RW, 0), 0);
	assert_int_equal(it_wr64(x->c, VFURT_REGION_BAR0, TD_REG_DMA_IOVA, IOVA), 0);
	assert_int_equal(it_wr64(x->c, VFURT_REGION_BAR0, TD_REG_DMA_LEN, 4 * PG), 0);
	assert_int_equal(vfurt_client_region_write_posted(x->c, VFURT_REGION_BAR0,
							  TD_REG_DMA_DOORBELL, &op, 4), 0);
	disconnect(x); /* without serving the DMA_READ */
	free(guest);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 1);

	reconnect(x, 0);
	assert_int_equal(it_rd32(x->c, VFURT_REGION_BAR0, TD_REG_DMA_STATUS, &st), 0);
	assert_true((int32_t)st < 0);
	assert_true(it_alive(x->c));
}

static int setup_short_timeout(void **state)
{
	struct vfurt_conn_opts co = { .opts_size = sizeof(co), .timeout_ms = 200 };

	return lx_start(state, NULL, &co, NULL);
}

/* A client that never answers the server's DMA_READ: after its timeout the
 * server gives up on that connection only. */
static void test_client_not_serving_dma(void **state)
{
	struct it_fx *x = *state;
	struct vfurt_client *good = it_connect(testsrv_path(x->ts, 1), 0);
	uint8_t *guest = aligned_alloc(PG, PG);
	uint32_t op = 1, st = 0;

	assert_non_null(good);
	assert_non_null(guest);
	assert_int_equal(vfurt_client_dma_map_mem(x->c, IOVA, PG, guest, RW, 0), 0);
	assert_int_equal(it_wr64(x->c, VFURT_REGION_BAR0, TD_REG_DMA_IOVA, IOVA), 0);
	assert_int_equal(it_wr64(x->c, VFURT_REGION_BAR0, TD_REG_DMA_LEN, PG), 0);
	assert_int_equal(vfurt_client_region_write_posted(x->c, VFURT_REGION_BAR0,
							  TD_REG_DMA_DOORBELL, &op, 4), 0);
	assert_int_equal(it_wait_ctr(&x->st[0]->detach, 1), 1);
	assert_true(it_alive(good));
	/* what is left for the client: the unanswered DMA_READ, then EOF */
	assert_true(it_server_closed(x->c));
	vfurt_client_close(x->c);
	free(guest);
	reconnect(x, 0);
	assert_int_equal(it_rd32(x->c, VFURT_REGION_BAR0, TD_REG_DMA_STATUS, &st), 0);
	assert_int_equal((int32_t)st, -ETIMEDOUT);
	vfurt_client_close(good);
}

static int setup_async(void **state)
{
	struct testdev_opts d = { .async_quiesce = true };

	return lx_start(state, &d, NULL, NULL);
}

/* DMA_MAP parked for an asynchronous quiesce, and the client leaves. */
static void test_disconnect_while_quiescing(void **state)
{
	struct it_fx *x = *state;
	int mfd = it_memfd(PG);
	struct vfio_user_dma_map map = { .argsz = sizeof(map), .flags = RW, .addr = IOVA,
					 .size = PG };

	assert_true(mfd >= 0);
	for (unsigned i = 0; i < 10; i++) {
		assert_true(it_send_cmd(x->c, VFIO_USER_DMA_MAP, 0, &map, sizeof(map), &mfd, 1) >= 0);
		disconnect(x);
		assert_int_equal(atomic_load(&x->st[0]->dma_map),
				 atomic_load(&x->st[0]->dma_unmap));
		reconnect(x, 0);
	}
	close(mfd);
	assert_true(it_alive(x->c));
}

/* ---- server teardown with a live client --------------------------------------------- */

static void test_server_destroy_with_client(void **state)
{
	struct it_fx *x = *state;
	int mfd = it_memfd(PG);
	int efd = it_eventfd();
	uint8_t *guest = aligned_alloc(PG, PG);
	void *bar;
	size_t barlen;
	int before_server;
	struct vfio_user_device_info info;

	assert_true(mfd >= 0 && efd >= 0);
	assert_non_null(guest);
	assert_int_equal(vfurt_client_dma_map(x->c, IOVA, PG, mfd, 0, RW,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_int_equal(vfurt_client_dma_map_mem(x->c, IOVA + PG, PG, guest, RW, 0), 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(x->c, VFURT_IRQ_MSIX, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(vfurt_client_region_mmap(x->c, VFURT_REGION_BAR0, 0,
						  PROT_READ | PROT_WRITE, &bar, &barlen), 0);

	testsrv_stop(x->ts);
	x->ts = NULL;
	assert_int_equal(atomic_load(&x->st[0]->detach), 1);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 2);
	assert_int_equal(atomic_load(&x->st[0]->destroy), 1);
	assert_int_equal(atomic_load(&x->st[1]->destroy), 1);
	/* the client finds out on its next call */
	{
		int rc = vfurt_client_device_info(x->c, &info);

		assert_true(rc == -ECONNRESET || rc == -EPIPE);
	}
	/* a BAR mapping stays valid memory for the client */
	memset(bar, 0x11, barlen);
	munmap(bar, barlen);
	vfurt_client_close(x->c);
	x->c = NULL;
	close(mfd);
	close(efd);
	free(guest);
	/* the server's fds (listeners, epoll, device memfds, eventfds) are gone */
	/* per test device: memfd, 2 ioeventfds, 2 ioregionfd socket ends, and
	 * the server's own dups of the 2 it watches, in its epoll set */
	before_server = x->base_fds - 2 /* listen */ - 3 /* epoll, stop, call */ - 2 * (5 + 2);
	assert_int_equal(test_count_fds(), before_server);
	x->base_fds = before_server;
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, it_fx_teardown)
#define TS(fn, s) cmocka_unit_test_setup_teardown(fn, s, it_fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_state_survives_reconnect),
		T(test_disconnect_releases_dma_and_irqs),
		T(test_attach_detach_counters),
		T(test_many_cycles),
		T(test_immediate_reconnect),
		T(test_two_devices_one_garbage),
		T(test_pipelined_writes),
		T(test_pipelined_mixed),
		T(test_pipeline_during_dma),
		TS(test_pipeline_large_write_during_dma, setup_small_client_xfer),
		T(test_client_gone_during_dma),
		TS(test_client_not_serving_dma, setup_short_timeout),
		TS(test_disconnect_while_quiescing, setup_async),
		T(test_server_destroy_with_client),
	};

	return cmocka_run_group_tests_name("integration: lifecycle", tests, NULL, NULL);
}
