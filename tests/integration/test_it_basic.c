/* Integration: the success path of every command, real sockets, fds and mappings. */
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
#include <json-c/json.h>

#include "common/fixture.h"
#include "common/it_util.h"
#include "common/testsrv.h"

#define DMA_IOVA 0x100000ull
#define DMA_SIZE 0x10000ull

/* One test device, c connected to it. */
static int fx_start(void **state, const struct testdev_opts *dopts,
		    const struct vfurt_conn_opts *copts, const struct vfurt_client_opts *co)
{
	struct it_fx_opts o = { .name = "it-basic", .dev0 = dopts, .conn = copts, .client = co };

	return it_fx_start(state, &o);
}

static int setup(void **state)
{
	return fx_start(state, NULL, NULL, NULL);
}

/* Close the client and wait until the server has detached it, then check the
 * server dropped everything it had (it_fx_teardown). */
static int teardown(void **state)
{
	struct it_fx *f = *state;

	if (f && f->c) {
		unsigned detach = atomic_load(&f->st[0]->detach);

		vfurt_client_close(f->c);
		f->c = NULL;
		it_wait_ctr(&f->st[0]->detach, detach + 1);
	}
	return it_fx_teardown(state);
}

/* ---- VERSION ------------------------------------------------------------- */

static int64_t json_cap(struct json_object *caps, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(caps, key, &v))
		return -1;
	return json_object_get_int64(v);
}

static int setup_limits(void **state)
{
	struct vfurt_conn_opts co = {
		.opts_size = sizeof(co), .max_data_xfer_size = 256 * 1024,
		.max_msg_fds = 8, .max_dma_maps = 100,
	};

	return fx_start(state, NULL, &co, NULL);
}

static void test_version_negotiated(void **state)
{
	struct it_fx *f = *state;
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	const char *js = vfurt_client_server_json(f->c);
	struct json_object *root, *caps_o, *wm;

	assert_int_equal(vfurt_client_get_caps(f->c, &caps), 0);
	assert_int_equal(caps.major, 0);
	assert_int_equal(caps.minor, 0);
	assert_true(caps.server_json);
	assert_int_equal(caps.max_msg_fds, 8);
	assert_int_equal(caps.max_data_xfer_size, 256 * 1024);
	assert_int_equal(caps.max_dma_maps, 100);
	assert_int_equal(caps.pgsizes, 4096);
	assert_true(caps.write_multiple);
	assert_false(caps.twin_socket);
	assert_int_equal(vfurt_client_twin_fd(f->c), -1);
	assert_int_equal(caps.client_max_msg_fds, VFURT_CLIENT_DEFAULT_MAX_MSG_FDS);
	assert_int_equal(caps.client_max_data_xfer_size, 1u << 20);

	/* the client's view matches the JSON the server sent */
	assert_non_null(js);
	root = json_tokener_parse(js);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "capabilities", &caps_o));
	assert_int_equal(json_cap(caps_o, "max_msg_fds"), 8);
	assert_int_equal(json_cap(caps_o, "max_data_xfer_size"), 256 * 1024);
	assert_int_equal(json_cap(caps_o, "max_dma_maps"), 100);
	assert_int_equal(json_cap(caps_o, "pgsizes"), 4096);
	assert_true(json_object_object_get_ex(caps_o, "write_multiple", &wm));
	assert_true(json_object_get_boolean(wm));
	/* twin socket offered only when asked for */
	assert_false(json_object_object_get_ex(caps_o, "twin_socket", &wm));
	json_object_put(root);
	assert_true(it_alive(f->c));
}

static void test_version_no_json(void **state)
{
	struct it_fx *f = *state;
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct vfurt_client *c;
	uint8_t *buf = aligned_alloc(4096, DMA_SIZE);
	uint64_t served;

	/* SPDK style: no capabilities at all; the server uses the defaults
	 * (1 fd per message to us, 1 MiB transfers) and still answers JSON */
	vfurt_client_close(f->c);
	f->c = NULL;
	c = it_reconnect(testsrv_path(f->ts, 0), VFURT_CLIENT_NO_JSON);
	assert_non_null(c);
	f->c = c;
	assert_int_equal(vfurt_client_get_caps(c, &caps), 0);
	assert_int_equal(caps.major, 0);
	assert_int_equal(caps.minor, 0);
	assert_true(caps.server_json);
	assert_true(it_alive(c));

	/* message-based DMA works with the default transfer size */
	assert_non_null(buf);
	it_fill(buf, DMA_SIZE, 7);
	assert_int_equal(vfurt_client_dma_map_mem(c, DMA_IOVA, DMA_SIZE, buf,
						  VFIO_USER_DMA_MAP_FLAG_READ |
						  VFIO_USER_DMA_MAP_FLAG_WRITE, 0), 0);
	assert_int_equal(it_dev_dma(c, 1, DMA_IOVA, DMA_SIZE), 0);
	served = vfurt_client_dma_served(c);
	assert_true(served >= 1);
	/* one fd per message is what a no-JSON client accepts: io fds fit */
	{
		struct vfurt_client_io_fds io;

		assert_int_equal(vfurt_client_region_io_fds(c, VFURT_REGION_BAR0, &io), 0);
		assert_int_equal(io.nfds, 1);
		vfurt_client_io_fds_release(&io);
	}
	assert_int_equal(vfurt_client_dma_unmap(c, DMA_IOVA, DMA_SIZE, 0), 0);
	free(buf);
}

static void test_version_minor_min(void **state)
{
	struct it_fx *f = *state;
	struct vfurt_client_opts o = it_opts(VFURT_CLIENT_SET_VERSION);
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };

	vfurt_client_close(f->c);
	o.version_major = 0;
	o.version_minor = 7;
	f->c = it_connect_retry(testsrv_path(f->ts, 0), &o);
	assert_non_null(f->c);
	assert_int_equal(vfurt_client_get_caps(f->c, &caps), 0);
	assert_int_equal(caps.major, 0);
	assert_int_equal(caps.minor, 0); /* min(client 7, server 0) */
	assert_true(it_alive(f->c));
}

/* ---- device, regions --------------------------------------------------------- */

static void test_device_info(void **state)
{
	struct it_fx *f = *state;
	struct vfio_user_device_info info;

	assert_int_equal(vfurt_client_device_info(f->c, &info), 0);
	assert_int_equal(info.argsz, sizeof(info));
	assert_int_equal(info.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
	assert_int_equal(info.num_regions, TD_REGION_DEVSPEC + 1);
	assert_int_equal(info.num_irqs, VFURT_IRQ_NUM);
}

struct region_expect {
	uint64_t size;
	bool mmap;
	bool caps;
};

static void test_region_info_all(void **state)
{
	static const struct region_expect ex[TD_REGION_DEVSPEC + 1] = {
		[VFURT_REGION_BAR0] = { TD_BAR0_SIZE, true, true },
		[VFURT_REGION_BAR1] = { TD_BAR1_SIZE, false, false },
		[VFURT_REGION_BAR2] = { 256, false, false },
		[VFURT_REGION_BAR4] = { 0x2000, false, false },
		[VFURT_REGION_CONFIG] = { 4096, false, false },
		[TD_REGION_DEVSPEC] = { 4096, false, true },
	};
	struct it_fx *f = *state;
	struct vfurt_client_region_info ri;

	for (uint32_t i = 0; i <= TD_REGION_DEVSPEC; i++) {
		uint32_t want = 0;

		assert_int_equal(vfurt_client_region_info(f->c, i, &ri), 0);
		assert_int_equal(ri.index, i);
		assert_int_equal(ri.size, ex[i].size);
		if (ex[i].size)
			want = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
		if (ex[i].mmap)
			want |= VFIO_REGION_INFO_FLAG_MMAP;
		if (ex[i].caps)
			want |= VFIO_REGION_INFO_FLAG_CAPS;
		assert_int_equal(ri.flags, want);
		/* only the mappable region comes with an fd */
		if (ex[i].mmap)
			assert_true(ri.fd >= 0);
		else
			assert_int_equal(ri.fd, -1);
		assert_int_equal(ri.has_sparse, i == VFURT_REGION_BAR0);
		assert_int_equal(ri.has_type, i == TD_REGION_DEVSPEC);
		if (i == VFURT_REGION_BAR0) {
			assert_int_equal(ri.nr_sparse, 1);
			assert_int_equal(ri.sparse[0].offset, TD_MMAP_OFF);
			assert_int_equal(ri.sparse[0].size, TD_MMAP_SIZE);
			assert_int_equal(ri.offset, 0);
			assert_int_equal(ri.nr_caps, 1);
			assert_true(ri.argsz > sizeof(struct vfio_region_info));
		} else if (i == TD_REGION_DEVSPEC) {
			assert_int_equal(ri.type, 0x1234);
			assert_int_equal(ri.subtype, 1);
			assert_int_equal(ri.nr_caps, 1);
		} else {
			assert_int_equal(ri.argsz, sizeof(struct vfio_region_info));
			assert_int_equal(ri.nr_caps, 0);
		}
		vfurt_client_region_info_release(&ri);
	}
	/* one past the last region */
	assert_int_equal(vfurt_client_region_info(f->c, TD_REGION_DEVSPEC + 1, &ri), -EINVAL);
	assert_int_equal(ri.fd, -1);
	assert_true(it_alive(f->c));
}

/*
 * What QEMU's vfio_user_device_io_get_region_info accepts: FLAG_CAPS only
 * with cap_offset inside [32, argsz] (argsz as the reply reports it).
 */
static bool qemu_accepts(const struct vfio_region_info *ri)
{
	return !(ri->flags & VFIO_REGION_INFO_FLAG_CAPS) ||
	       (ri->cap_offset >= sizeof(*ri) && ri->cap_offset <= ri->argsz);
}

/* argsz too small: the server answers the fixed part with the full argsz,
 * no fd and no FLAG_CAPS (the chain is not in the reply); asking again with
 * that argsz gets the capabilities and fd. */
static void test_region_info_argsz_retry(void **state)
{
	struct it_fx *f = *state;
	struct vfio_region_info req = { .argsz = sizeof(req), .index = VFURT_REGION_BAR0 };
	uint8_t reply[256];
	struct vfio_region_info ri;
	int fds[4];
	size_t rlen = 0, nfds = 4;
	uint32_t full;

	assert_int_equal(vfurt_client_request(f->c, VFIO_USER_DEVICE_GET_REGION_INFO, 0, &req,
					      sizeof(req), NULL, 0, reply, sizeof(reply), &rlen,
					      fds, &nfds), 0);
	assert_int_equal(rlen, sizeof(ri));
	assert_int_equal(nfds, 0);
	memcpy(&ri, reply, sizeof(ri));
	assert_true(ri.argsz > sizeof(ri));
	/* regression: FLAG_CAPS with cap_offset 0 made QEMU refuse the device */
	assert_false(ri.flags & VFIO_REGION_INFO_FLAG_CAPS);
	assert_int_equal(ri.cap_offset, 0);
	assert_true(qemu_accepts(&ri));
	assert_true(ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_int_equal(ri.size, TD_BAR0_SIZE);
	full = ri.argsz;

	req.argsz = full;
	nfds = 4;
	assert_int_equal(vfurt_client_request(f->c, VFIO_USER_DEVICE_GET_REGION_INFO, 0, &req,
					      sizeof(req), NULL, 0, reply, sizeof(reply), &rlen,
					      fds, &nfds), 0);
	assert_int_equal(rlen, full);
	assert_int_equal(nfds, 1);
	memcpy(&ri, reply, sizeof(ri));
	assert_true(ri.flags & VFIO_REGION_INFO_FLAG_CAPS);
	assert_int_equal(ri.cap_offset, sizeof(ri));
	assert_true(qemu_accepts(&ri));
	{
		struct vfio_region_info_cap_sparse_mmap sp;

		memcpy(&sp, reply + ri.cap_offset, sizeof(sp));
		assert_int_equal(sp.header.id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
		assert_int_equal(sp.nr_areas, 1);
	}
	close(fds[0]);

	/* a bigger argsz than needed is fine: the reply is exactly the full size */
	req.argsz = full + 100;
	nfds = 4;
	assert_int_equal(vfurt_client_request(f->c, VFIO_USER_DEVICE_GET_REGION_INFO, 0, &req,
					      sizeof(req), NULL, 0, reply, sizeof(reply), &rlen,
					      fds, &nfds), 0);
	assert_int_equal(rlen, full);
	assert_int_equal(nfds, 1);
	close(fds[0]);
}

/*
 * QEMU's vfio_device_get_region_info for every region: ask with argsz 32,
 * copy argsz bytes of the reply back, check it as QEMU does, and retry while
 * the reply's argsz grows (dropping the fd of the short reply).
 */
static void test_region_info_qemu_flow(void **state)
{
	struct it_fx *f = *state;
	struct vfio_user_device_info di;

	assert_int_equal(vfurt_client_device_info(f->c, &di), 0);
	for (uint32_t i = 0; i < di.num_regions; i++) {
		uint8_t reply[256];
		struct vfio_region_info ri;
		uint32_t argsz = sizeof(ri);
		int tries = 0;

		for (;;) {
			struct vfio_region_info req = { .argsz = argsz, .index = i };
			int fds[2];
			size_t rlen = 0, nfds = 2;

			assert_int_equal(vfurt_client_request(f->c, VFIO_USER_DEVICE_GET_REGION_INFO,
							      0, &req, sizeof(req), NULL, 0, reply,
							      sizeof(reply), &rlen, fds, &nfds), 0);
			assert_true(rlen >= sizeof(ri) && rlen <= argsz);
			memcpy(&ri, reply, sizeof(ri));
			for (size_t k = 0; k < nfds; k++)
				close(fds[k]);
			assert_true(qemu_accepts(&ri));
			if (ri.argsz <= argsz)
				break;
			argsz = ri.argsz;
			assert_true(++tries < 2);
		}
		/* regions with capabilities show them on the final reply */
		assert_int_equal(!!(ri.flags & VFIO_REGION_INFO_FLAG_CAPS),
				 i == VFURT_REGION_BAR0 || i == TD_REGION_DEVSPEC);
		assert_int_equal(tries, !!(ri.flags & VFIO_REGION_INFO_FLAG_CAPS));
	}
	assert_true(it_alive(f->c));
}

static void test_mmap_sparse(void **state)
{
	struct it_fx *f = *state;
	uint8_t buf[64], back[64];
	uint8_t *p;
	size_t len;
	void *addr;

	assert_int_equal(vfurt_client_region_mmap(f->c, VFURT_REGION_BAR0, 0,
						  PROT_READ | PROT_WRITE, &addr, &len), 0);
	assert_int_equal(len, TD_MMAP_SIZE);
	p = addr;

	/* client stores through the mapping, the server sees them */
	it_fill(buf, sizeof(buf), 1);
	memcpy(p + 0x10, buf, sizeof(buf));
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_BAR0, TD_MMAP_OFF + 0x10,
						  back, sizeof(back)), 0);
	assert_memory_equal(back, buf, sizeof(buf));

	/* writes through messages show up in the mapping */
	it_fill(buf, sizeof(buf), 2);
	assert_int_equal(vfurt_client_region_write(f->c, VFURT_REGION_BAR0,
						   TD_MMAP_OFF + 0x1800, buf, sizeof(buf)), 0);
	assert_memory_equal(p + 0x1800, buf, sizeof(buf));
	assert_int_equal(munmap(addr, len), 0);

	/* the whole region cannot be mapped when it has sparse areas */
	assert_int_equal(vfurt_client_region_mmap(f->c, VFURT_REGION_BAR0, -1, PROT_READ,
						  &addr, &len), -EINVAL);
	/* nor can a trapped region */
	assert_int_equal(vfurt_client_region_mmap(f->c, VFURT_REGION_BAR1, -1, PROT_READ,
						  &addr, &len), -EINVAL);
}

static void test_region_io_fds(void **state)
{
	struct it_fx *f = *state;
	int devfd = testdev_ioeventfd(f->dev[0]);
	struct vfurt_client_io_fds io;
	uint64_t one = 1, v = 0;

	assert_int_equal(vfurt_client_region_io_fds(f->c, VFURT_REGION_BAR0, &io), 0);
	assert_int_equal(io.index, VFURT_REGION_BAR0);
	assert_int_equal(io.count, 1);
	assert_int_equal(io.nfds, 1);
	assert_int_equal(io.subs[0].offset, TD_REG_IOEVENTFD);
	assert_int_equal(io.subs[0].size, 4);
	assert_int_equal(io.subs[0].type, VFIO_USER_IO_FD_TYPE_IOEVENTFD);
	assert_int_equal(io.subs[0].fd_index, 0);
	assert_int_equal(io.subs[0].flags, 0);

	/* the received fd is the device's eventfd: a write wakes the device */
	(void)it_eventfd_take(devfd);
	assert_false(it_readable(devfd, 0));
	assert_int_equal(write(io.fds[0], &one, sizeof(one)), sizeof(one));
	assert_true(it_readable(devfd, IT_TIMEOUT_MS));
	assert_int_equal(read(devfd, &v, sizeof(v)), sizeof(v));
	assert_int_equal(v, 1);
	vfurt_client_io_fds_release(&io);

	/* a region without ioeventfds: no sub-regions, no fds */
	assert_int_equal(vfurt_client_region_io_fds(f->c, VFURT_REGION_BAR1, &io), 0);
	assert_int_equal(io.count, 0);
	assert_int_equal(io.nfds, 0);
	vfurt_client_io_fds_release(&io);
	assert_true(it_alive(f->c));
}

/* ---- interrupts ---------------------------------------------------------- */

static void test_irq_info_all(void **state)
{
	static const struct { uint32_t count, flags; } ex[VFURT_IRQ_NUM] = {
		[VFURT_IRQ_INTX] = { 1, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
				       VFIO_IRQ_INFO_AUTOMASKED },
		[VFURT_IRQ_MSI] = { 4, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
				      VFIO_IRQ_INFO_NORESIZE },
		[VFURT_IRQ_MSIX] = { TD_MSIX_VECTORS, VFIO_IRQ_INFO_EVENTFD |
				      VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_NORESIZE },
		[VFURT_IRQ_ERR] = { 1, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE },
		[VFURT_IRQ_REQ] = { 1, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE },
	};
	struct it_fx *f = *state;
	struct vfio_irq_info info;

	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++) {
		assert_int_equal(vfurt_client_irq_info(f->c, i, &info), 0);
		assert_int_equal(info.argsz, sizeof(info));
		assert_int_equal(info.index, i);
		assert_int_equal(info.count, ex[i].count);
		assert_int_equal(info.flags, ex[i].flags);
	}
}

static void make_efds(struct it_fx *f, int *efd, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		efd[i] = it_fx_own(f, it_eventfd());
		assert_true(efd[i] >= 0);
	}
}

static void close_efds(struct it_fx *f, int *efd, size_t n)
{
	for (size_t i = 0; i < n; i++)
		it_fx_close(f, efd[i]);
}

/* Which of the eventfds are readable right now, as a bit mask (consumed). */
static unsigned fired(int *efd, size_t n)
{
	unsigned m = 0;

	for (size_t i = 0; i < n; i++)
		if (it_eventfd_take(efd[i]))
			m |= 1u << i;
	return m;
}

static void test_msix_eventfd_trigger(void **state)
{
	struct it_fx *f = *state;
	int efd[TD_MSIX_VECTORS];

	make_efds(f, efd, TD_MSIX_VECTORS);
	/* 8 fds in messages of at most the server's max_msg_fds */
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 0, TD_MSIX_VECTORS,
						       efd, VFIO_IRQ_SET_ACTION_TRIGGER), 0);

	/* MSI-X still disabled in config space: the vector becomes pending */
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(fired(efd, TD_MSIX_VECTORS), 0);

	/* enabling MSI-X and unmasking the vectors delivers it */
	assert_int_equal(it_msix_enable(f->c, TD_MSIX_VECTORS), 0);
	assert_true(it_readable(efd[0], IT_TIMEOUT_MS));
	assert_int_equal(fired(efd, TD_MSIX_VECTORS), 1u << 0);

	for (uint32_t v = 0; v < TD_MSIX_VECTORS; v++) {
		assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, v), 0);
		assert_true(it_readable(efd[v], IT_TIMEOUT_MS));
		assert_int_equal(fired(efd, TD_MSIX_VECTORS), 1u << v);
	}
	/* a vector the device does not have */
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, TD_MSIX_VECTORS), -EINVAL);

	/* de-assign vector 3: a trigger no longer reaches its eventfd */
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 3, 1, NULL,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 3), -ENOENT);
	assert_int_equal(fired(efd, TD_MSIX_VECTORS), 0);

	/* disable the whole index (start = count = 0, DATA_NONE | TRIGGER) */
	assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_MSIX, 0, 0,
					       VFIO_IRQ_SET_ACTION_TRIGGER, NULL), 0);
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 1), -ENOENT);
	assert_int_equal(fired(efd, TD_MSIX_VECTORS), 0);
	close_efds(f, efd, TD_MSIX_VECTORS);
}

static int setup_few_fds(void **state)
{
	struct vfurt_conn_opts co = { .opts_size = sizeof(co), .max_msg_fds = 3 };

	return fx_start(state, NULL, &co, NULL);
}

/* The server accepts 3 fds per message: 8 eventfds go in 3 SET_IRQS. */
static void test_set_irqs_split_by_max_fds(void **state)
{
	struct it_fx *f = *state;
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	int efd[TD_MSIX_VECTORS];

	assert_int_equal(vfurt_client_get_caps(f->c, &caps), 0);
	assert_int_equal(caps.max_msg_fds, 3);
	make_efds(f, efd, TD_MSIX_VECTORS);
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 0, TD_MSIX_VECTORS,
						       efd, VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(it_msix_enable(f->c, TD_MSIX_VECTORS), 0);
	for (uint32_t v = 0; v < TD_MSIX_VECTORS; v++) {
		assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, v), 0);
		assert_true(it_readable(efd[v], IT_TIMEOUT_MS));
		assert_int_equal(fired(efd, TD_MSIX_VECTORS), 1u << v);
	}
	/* 4 fds in one message are refused, none attached */
	{
		struct vfio_irq_set s = { .argsz = sizeof(s), .index = VFURT_IRQ_MSIX, .start = 0,
					  .count = 4, .flags = VFIO_IRQ_SET_DATA_EVENTFD |
							       VFIO_IRQ_SET_ACTION_TRIGGER };

		assert_int_equal(vfurt_client_request(f->c, VFIO_USER_DEVICE_SET_IRQS, 0, &s,
						      sizeof(s), efd, 4, NULL, 0, NULL, NULL,
						      NULL), -EINVAL);
	}
	close_efds(f, efd, TD_MSIX_VECTORS);
}

static void test_msix_mask_unmask(void **state)
{
	struct it_fx *f = *state;
	int efd[4];
	uint8_t pba = 0;
	unsigned st0;

	make_efds(f, efd, 4);
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 0, 4, efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(it_msix_enable(f->c, TD_MSIX_VECTORS), 0);
	st0 = atomic_load(&f->st[0]->irq_state);

	/* DATA_NONE mask: the trigger stays pending (PBA bit set) */
	assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_MSIX, 2, 1,
					       VFIO_IRQ_SET_ACTION_MASK, NULL), 0);
	assert_int_equal(atomic_load(&f->st[0]->irq_state), st0 + 1);
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 2), 0);
	assert_int_equal(fired(efd, 4), 0);
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_BAR4, 0x1000, &pba, 1), 0);
	assert_int_equal(pba & 0x0f, 1u << 2);
	/* DATA_NONE unmask delivers the pending interrupt */
	assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_MSIX, 2, 1,
					       VFIO_IRQ_SET_ACTION_UNMASK, NULL), 0);
	assert_int_equal(atomic_load(&f->st[0]->irq_state), st0 + 2);
	assert_true(it_readable(efd[2], IT_TIMEOUT_MS));
	assert_int_equal(fired(efd, 4), 1u << 2);
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_BAR4, 0x1000, &pba, 1), 0);
	assert_int_equal(pba & 0x0f, 0);

	/* DATA_BOOL: mask vectors 1 and 3 only */
	{
		const uint8_t mask[4] = { 0, 1, 0, 1 };
		const uint8_t unmask[4] = { 0, 1, 0, 0 };

		assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_MSIX, 0, 4,
						       VFIO_IRQ_SET_ACTION_MASK, mask), 0);
		for (uint32_t v = 0; v < 4; v++)
			assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, v), 0);
		assert_true(it_readable(efd[0], IT_TIMEOUT_MS));
		assert_true(it_readable(efd[2], IT_TIMEOUT_MS));
		assert_int_equal(fired(efd, 4), 1u << 0 | 1u << 2);
		assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_MSIX, 0, 4,
						       VFIO_IRQ_SET_ACTION_UNMASK, unmask), 0);
		assert_true(it_readable(efd[1], IT_TIMEOUT_MS));
		assert_int_equal(fired(efd, 4), 1u << 1);
		/* 3 is still masked and pending */
		assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_MSIX, 3, 1,
						       VFIO_IRQ_SET_ACTION_UNMASK, NULL), 0);
		assert_true(it_readable(efd[3], IT_TIMEOUT_MS));
		assert_int_equal(fired(efd, 4), 1u << 3);
	}
	close_efds(f, efd, 4);
}

/* ---- MSI-X with a client that emulates the table (QEMU) ------------------ */

#define TD_PBA_OFF 0x1000u

/* MSI-X enable (function mask clear) through config space only, as QEMU
 * forwards it; the table is never written. */
static void msix_cfg_enable(struct vfurt_client *c, bool on)
{
	int off = it_cfg_find_cap(c, 0x11);
	uint16_t ctrl;

	assert_true(off > 0);
	assert_int_equal(vfurt_client_region_read(c, VFURT_REGION_CONFIG, (uint64_t)off + 2,
						  &ctrl, 2), 0);
	ctrl = (uint16_t)(on ? (ctrl | 0x8000u) & ~0x4000u : ctrl & ~0x8000u);
	assert_int_equal(vfurt_client_region_write(c, VFURT_REGION_CONFIG, (uint64_t)off + 2,
						   &ctrl, 2), 0);
}

static uint8_t pba_bits(struct it_fx *f)
{
	uint8_t pba = 0xff;

	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_BAR4, TD_PBA_OFF, &pba, 1),
			 0);
	return pba;
}

/* The table's vector control mask bit of v as the server holds it (reads do
 * not make the client the table's owner). */
static bool table_masked(struct it_fx *f, uint32_t v)
{
	uint32_t ctrl = 0;

	assert_int_equal(it_rd32(f->c, VFURT_REGION_BAR4, v * 16u + 12u, &ctrl), 0);
	return ctrl & 1u;
}

/*
 * Regression (QEMU 10.2): QEMU emulates the MSI-X table and never writes
 * ours, so vectors used to stay masked from reset and no interrupt arrived.
 * Assigning an eventfd unmasks the table entry, as in the kernel's vfio-pci;
 * masking then goes through SET_IRQS and shows in the PBA QEMU reads.
 */
static void test_msix_client_emulated_table(void **state)
{
	struct it_fx *f = *state;
	int efd[4];

	make_efds(f, efd, 4);
	for (uint32_t v = 0; v < 4; v++)
		assert_true(table_masked(f, v));
	/* QEMU's order: the guest enables MSI-X, then the eventfds come */
	msix_cfg_enable(f->c, true);
	/* a trigger before any eventfd stays pending (the entry is masked) */
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 1), 0);
	assert_int_equal(pba_bits(f) & 0x0f, 1u << 1);
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 0, 4, efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	/* assignment unmasked the entries, which delivered the pending one */
	assert_true(it_readable(efd[1], IT_TIMEOUT_MS));
	assert_int_equal(fired(efd, 4), 1u << 1);
	assert_int_equal(pba_bits(f) & 0x0f, 0);
	for (uint32_t v = 0; v < 4; v++)
		assert_false(table_masked(f, v));
	for (uint32_t v = 0; v < 4; v++) {
		assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, v), 0);
		assert_true(it_readable(efd[v], IT_TIMEOUT_MS));
		assert_int_equal(fired(efd, 4), 1u << v);
	}
	/* vectors without an eventfd stay masked in the table */
	assert_true(table_masked(f, 4));

	/* guest masking arrives as SET_IRQS MASK: pending in the PBA ... */
	assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_MSIX, 2, 1,
					       VFIO_IRQ_SET_ACTION_MASK, NULL), 0);
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 2), 0);
	assert_false(it_readable(efd[2], 50));
	assert_int_equal(pba_bits(f) & 0x0f, 1u << 2);
	/* ... and UNMASK delivers it */
	assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_MSIX, 2, 1,
					       VFIO_IRQ_SET_ACTION_UNMASK, NULL), 0);
	assert_true(it_readable(efd[2], IT_TIMEOUT_MS));
	assert_int_equal(fired(efd, 4), 1u << 2);
	assert_int_equal(pba_bits(f) & 0x0f, 0);

	/* fd -1 masks the entry again; a new eventfd gets what was pending */
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 3, 1, NULL,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_true(table_masked(f, 3));
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 3), 0);
	assert_int_equal(pba_bits(f) & 0x0f, 1u << 3);
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 3, 1, &efd[3],
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_true(it_readable(efd[3], IT_TIMEOUT_MS));
	assert_int_equal(fired(efd, 4), 1u << 3);

	/* QEMU's NORESIZE dance: disable the index, assign everything again */
	assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_MSIX, 0, 0,
					       VFIO_IRQ_SET_ACTION_TRIGGER, NULL), 0);
	for (uint32_t v = 0; v < 4; v++)
		assert_true(table_masked(f, v));
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 0, 4, efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_true(it_readable(efd[0], IT_TIMEOUT_MS));
	assert_int_equal(fired(efd, 4), 1u << 0);

	/* MSI-X disabled in config space: masked whatever the table says */
	msix_cfg_enable(f->c, false);
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 1), 0);
	assert_false(it_readable(efd[1], 50));
	msix_cfg_enable(f->c, true);
	assert_true(it_readable(efd[1], IT_TIMEOUT_MS));
	assert_int_equal(fired(efd, 4), 1u << 1);
	close_efds(f, efd, 4);
}

/* The same with the eventfd first and MSI-X enabled afterwards. */
static void test_msix_client_emulated_table_late_enable(void **state)
{
	struct it_fx *f = *state;
	int efd = it_fx_own(f, it_eventfd());

	assert_true(efd >= 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 0), 0);
	assert_false(it_readable(efd, 50));
	msix_cfg_enable(f->c, true);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(efd), 1);
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 0), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(efd), 1);

	/* a reset returns the table to power-on (all masked); QEMU sets the
	 * eventfds up again when the guest re-enables MSI-X */
	assert_int_equal(vfurt_client_reset(f->c), 0);
	assert_true(table_masked(f, 0));
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 0), 0);
	msix_cfg_enable(f->c, true);
	assert_false(it_readable(efd, 50));
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	it_fx_close(f, efd);
}

/* A client that writes the table keeps its masks: a later eventfd (QEMU
 * re-sends all of them on every new vector) does not unmask a vector the
 * client masked there. */
static void test_msix_client_table_keeps_masks(void **state)
{
	struct it_fx *f = *state;
	int efd[2];

	make_efds(f, efd, 2);
	assert_int_equal(it_msix_enable(f->c, 2), 0); /* writes entries 0, 1: unmasked */
	assert_int_equal(it_wr32(f->c, VFURT_REGION_BAR4, 1 * 16u + 12u, 1), 0); /* mask 1 */
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 0, 2, efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_true(table_masked(f, 1));
	assert_true(table_masked(f, 2)); /* never written, no eventfd */
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 1), 0);
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 0), 0);
	assert_true(it_readable(efd[0], IT_TIMEOUT_MS));
	assert_int_equal(fired(efd, 2), 1u << 0);
	assert_int_equal(pba_bits(f) & 0x03, 1u << 1);
	/* the client's own unmask delivers it */
	assert_int_equal(it_wr32(f->c, VFURT_REGION_BAR4, 1 * 16u + 12u, 0), 0);
	assert_true(it_readable(efd[1], IT_TIMEOUT_MS));
	assert_int_equal(fired(efd, 2), 1u << 1);
	/* removing the eventfd does not touch the client's table either */
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 0, 1, NULL,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_false(table_masked(f, 0));
	close_efds(f, efd, 2);
}

static void test_intx_automask(void **state)
{
	struct it_fx *f = *state;
	int efd = it_fx_own(f, it_eventfd());

	assert_true(efd >= 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_INTX, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_INTX, 0), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(efd), 1);

	/* level interrupt: masked by the first delivery until unmasked */
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_INTX, 0), 0);
	assert_false(it_readable(efd, 0));
	assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_INTX, 0, 1,
					       VFIO_IRQ_SET_ACTION_UNMASK, NULL), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(efd), 1);

	/* unmasked and nothing pending: nothing fires */
	assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_INTX, 0, 1,
					       VFIO_IRQ_SET_ACTION_UNMASK, NULL), 0);
	assert_false(it_readable(efd, 0));
	it_fx_close(f, efd);
}

/* SET_IRQS TRIGGER with DATA_NONE / DATA_BOOL: the client fires a vector. */
static void test_irq_client_trigger(void **state)
{
	struct it_fx *f = *state;
	const uint8_t no = 0, yes = 1;
	int efd = it_fx_own(f, it_eventfd());

	assert_true(efd >= 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_ERR, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_ERR, 0, 1,
					       VFIO_IRQ_SET_ACTION_TRIGGER, NULL), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(efd), 1);
	assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_ERR, 0, 1,
					       VFIO_IRQ_SET_ACTION_TRIGGER, &no), 0);
	assert_false(it_readable(efd, 0));
	assert_int_equal(vfurt_client_set_irqs(f->c, VFURT_IRQ_ERR, 0, 1,
					       VFIO_IRQ_SET_ACTION_TRIGGER, &yes), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	it_fx_close(f, efd);
}

/* ---- region access ---------------------------------------------------------- */

static void test_region_rw_sizes(void **state)
{
	static const struct { uint32_t region; uint64_t off; } where[] = {
		{ VFURT_REGION_BAR0, 0x10 },   { VFURT_REGION_BAR0, 0x3000 + 0x40 },
		{ VFURT_REGION_BAR1, 0x8000 }, { VFURT_REGION_BAR2, 0xf0 },
		{ TD_REGION_DEVSPEC, 0xff8 },
	};
	struct it_fx *f = *state;

	for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
		for (size_t sz = 1; sz <= 8; sz *= 2) {
			uint8_t out[8], in[8] = { 0 };

			it_fill(out, sz, (uint32_t)(w * 16 + sz));
			assert_int_equal(vfurt_client_region_write(f->c, where[w].region,
								   where[w].off, out, sz), 0);
			assert_int_equal(vfurt_client_region_read(f->c, where[w].region,
								  where[w].off, in, sz), 0);
			assert_memory_equal(in, out, sz);
		}
	}
	/* config space: the identity the test device was created with */
	{
		uint16_t id[2];

		assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_CONFIG, 0, id, 4), 0);
		assert_int_equal(id[0], 0x1af4);
		assert_int_equal(id[1], 0x10ff);
	}
}

static void test_region_rw_large(void **state)
{
	struct it_fx *f = *state;
	uint8_t *out = malloc(TD_BAR1_SIZE), *in = malloc(TD_BAR1_SIZE);

	assert_non_null(out);
	assert_non_null(in);
	it_fill(out, TD_BAR1_SIZE, 99);
	assert_int_equal(vfurt_client_region_write(f->c, VFURT_REGION_BAR1, 0, out,
						   TD_BAR1_SIZE), 0);
	memset(in, 0, TD_BAR1_SIZE);
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_BAR1, 0, in,
						  TD_BAR1_SIZE), 0);
	assert_memory_equal(in, out, TD_BAR1_SIZE);
	/* the last byte of the region */
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_BAR1, TD_BAR1_SIZE - 1,
						  in, 1), 0);
	assert_int_equal(in[0], out[TD_BAR1_SIZE - 1]);
	free(out);
	free(in);
}

static void test_region_write_posted(void **state)
{
	struct it_fx *f = *state;
	uint64_t v = 0x1122334455667788ull, back = 0;

	assert_int_equal(vfurt_client_region_write_posted(f->c, VFURT_REGION_BAR0, 0x20, &v,
							  sizeof(v)), 0);
	/* commands are processed in order: the read sees the posted write */
	assert_int_equal(it_rd64(f->c, VFURT_REGION_BAR0, 0x20, &back), 0);
	assert_int_equal(back, v);

	/* a posted write that fails produces no reply either */
	assert_int_equal(vfurt_client_region_write_posted(f->c, VFURT_REGION_BAR3, 0, &v, 4), 0);
	assert_true(it_alive(f->c));
	{
		struct vfurt_client_stats cs = { .stats_size = sizeof(cs) };

		assert_int_equal(vfurt_client_get_stats(f->c, &cs), 0);
		assert_int_equal(cs.stale_replies, 0);
	}
}

static void test_region_write_multi(void **state)
{
	struct it_fx *f = *state;
	struct vfio_user_write_multi_entry e[250];
	uint8_t back[0x100];

	/* 250 writes of 1..8 bytes: two messages of at most 200 entries */
	memset(e, 0, sizeof(e));
	for (size_t i = 0; i < 250; i++) {
		e[i].region = i < 200 ? VFURT_REGION_BAR1 : TD_REGION_DEVSPEC;
		e[i].offset = (i % 200) * 8;
		e[i].count = (uint32_t)(i % 8) + 1;
		it_fill(e[i].data, e[i].count, (uint32_t)i);
	}
	assert_int_equal(vfurt_client_region_write_multi(f->c, e, 250, false), 0);
	for (size_t i = 0; i < 250; i += 37) {
		uint8_t b[8];

		assert_int_equal(vfurt_client_region_read(f->c, e[i].region, e[i].offset, b,
							  e[i].count), 0);
		assert_memory_equal(b, e[i].data, e[i].count);
	}

	/* posted: applied in order before a following read */
	for (size_t i = 0; i < 32; i++) {
		e[i].region = VFURT_REGION_BAR0;
		e[i].offset = i * 8;
		e[i].count = 8;
		it_fill(e[i].data, 8, (uint32_t)(1000 + i));
	}
	assert_int_equal(vfurt_client_region_write_multi(f->c, e, 32, true), 0);
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_BAR0, 0, back, 0x100), 0);
	for (size_t i = 0; i < 32; i++)
		assert_memory_equal(back + i * 8, e[i].data, 8);
}

/* ---- DMA --------------------------------------------------------------------- */

#define RW (VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE)

static void test_dma_map_fd(void **state)
{
	struct it_fx *f = *state;
	int mfd = it_fx_own(f, it_memfd(DMA_SIZE));
	uint8_t *mem, *bar = malloc(DMA_SIZE);

	assert_true(mfd >= 0);
	assert_non_null(bar);
	mem = mmap(NULL, DMA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(vfurt_client_dma_map(f->c, DMA_IOVA, DMA_SIZE, mfd, 0, RW,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_int_equal(atomic_load(&f->st[0]->dma_map), 1);

	/* device reads guest memory directly */
	it_fill(mem, DMA_SIZE, 3);
	assert_int_equal(it_dev_dma(f->c, 1, DMA_IOVA, DMA_SIZE), 0);
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_BAR1, 0, bar, DMA_SIZE), 0);
	assert_true(it_check(bar, DMA_SIZE, 3));

	/* device writes guest memory directly, at an offset inside the window */
	it_fill(bar, 0x800, 4);
	assert_int_equal(vfurt_client_region_write(f->c, VFURT_REGION_BAR1, 0, bar, 0x800), 0);
	assert_int_equal(it_dev_dma(f->c, 2, DMA_IOVA + 0x1234, 0x800), 0);
	assert_true(it_check(mem + 0x1234, 0x800, 4));
	assert_true(it_check(mem, 0x1234, 3)); /* untouched before */

	/* the memory was shared, not messaged */
	assert_int_equal(vfurt_client_dma_served(f->c), 0);

	/* outside the window */
	assert_int_equal(it_dev_dma(f->c, 1, DMA_IOVA + DMA_SIZE - 8, 16), -ENOENT);

	assert_int_equal(vfurt_client_dma_unmap(f->c, DMA_IOVA, DMA_SIZE, 0), 0);
	assert_int_equal(atomic_load(&f->st[0]->dma_unmap), 1);
	assert_int_equal(it_dev_dma(f->c, 1, DMA_IOVA, 16), -ENOENT);
	munmap(mem, DMA_SIZE);
	it_fx_close(f, mfd);
	free(bar);
}

/* DMA without an fd: the device's accesses become DMA_READ/DMA_WRITE
 * messages the client serves while it waits for the doorbell write reply. */
static void dma_msg_roundtrip(struct it_fx *f, uint64_t len, uint32_t seed)
{
	uint8_t *guest = aligned_alloc(4096, DMA_SIZE);
	uint8_t *bar = malloc(DMA_SIZE);
	struct vfurt_client_stats cs = { .stats_size = sizeof(cs) };

	assert_non_null(guest);
	assert_non_null(bar);
	it_fill(guest, DMA_SIZE, seed);
	assert_int_equal(vfurt_client_dma_map_mem(f->c, DMA_IOVA, DMA_SIZE, guest, RW, 0), 0);

	assert_int_equal(it_dev_dma(f->c, 1, DMA_IOVA, len), 0);
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_BAR1, 0, bar, len), 0);
	assert_memory_equal(bar, guest, len);
	assert_int_equal(vfurt_client_get_stats(f->c, &cs), 0);
	assert_true(cs.dma_reads > 0);
	assert_int_equal(cs.dma_bytes, len);
	assert_int_equal(cs.dma_errors, 0);

	it_fill(bar, len, seed + 1);
	assert_int_equal(vfurt_client_region_write(f->c, VFURT_REGION_BAR1, 0, bar, len), 0);
	assert_int_equal(it_dev_dma(f->c, 2, DMA_IOVA, len), 0);
	assert_true(it_check(guest, len, seed + 1));
	assert_int_equal(vfurt_client_get_stats(f->c, &cs), 0);
	assert_true(cs.dma_writes > 0);
	assert_int_equal(cs.dma_bytes, 2 * len);
	assert_int_equal(vfurt_client_dma_served(f->c), cs.dma_reads + cs.dma_writes);

	assert_int_equal(vfurt_client_dma_unmap(f->c, DMA_IOVA, DMA_SIZE, 0), 0);
	free(guest);
	free(bar);
}

static void test_dma_map_mem_messages(void **state)
{
	struct it_fx *f = *state;
	struct vfurt_client_stats cs = { .stats_size = sizeof(cs) };

	dma_msg_roundtrip(f, DMA_SIZE, 11);
	assert_int_equal(vfurt_client_get_stats(f->c, &cs), 0);
	/* 64 KiB is below the 1 MiB transfer limit: one message each way */
	assert_int_equal(cs.dma_reads, 1);
	assert_int_equal(cs.dma_writes, 1);
	assert_int_equal(cs.twin_commands, 0);
}

static int setup_small_xfer(void **state)
{
	struct vfurt_client_opts o = it_opts(0);

	o.max_data_xfer_size = 4096;
	return fx_start(state, NULL, NULL, &o);
}

static void test_dma_messages_split(void **state)
{
	struct it_fx *f = *state;
	struct vfurt_client_stats cs = { .stats_size = sizeof(cs) };
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };

	assert_int_equal(vfurt_client_get_caps(f->c, &caps), 0);
	assert_int_equal(caps.client_max_data_xfer_size, 4096);
	/* 16 KiB + 100 bytes in 4 KiB messages: 5 each way */
	dma_msg_roundtrip(f, 4 * 4096 + 100, 21);
	assert_int_equal(vfurt_client_get_stats(f->c, &cs), 0);
	assert_int_equal(cs.dma_reads, 5);
	assert_int_equal(cs.dma_writes, 5);
}

static int setup_twin(void **state)
{
	struct vfurt_client_opts o = it_opts(VFURT_CLIENT_TWIN_SOCKET | VFURT_CLIENT_REQUIRE_TWIN);

	o.max_data_xfer_size = 8192;
	return fx_start(state, NULL, NULL, &o);
}

static void test_dma_twin_socket(void **state)
{
	struct it_fx *f = *state;
	struct vfurt_client_stats cs = { .stats_size = sizeof(cs) };
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };

	assert_int_equal(vfurt_client_get_caps(f->c, &caps), 0);
	assert_true(caps.twin_socket);
	assert_true(vfurt_client_twin_fd(f->c) >= 0);
	dma_msg_roundtrip(f, DMA_SIZE, 31);
	assert_int_equal(vfurt_client_get_stats(f->c, &cs), 0);
	assert_int_equal(cs.dma_reads, DMA_SIZE / 8192);
	assert_int_equal(cs.dma_writes, DMA_SIZE / 8192);
	/* every server command came on the twin socket */
	assert_int_equal(cs.twin_commands, cs.dma_reads + cs.dma_writes);
	assert_int_equal(cs.stale_replies, 0);
	assert_true(it_alive(f->c));
}

static int setup_twin_declined(void **state)
{
	struct vfurt_conn_opts co = { .opts_size = sizeof(co), .no_twin_socket = true };
	struct vfurt_client_opts o = it_opts(VFURT_CLIENT_TWIN_SOCKET);

	return fx_start(state, NULL, &co, &o);
}

/* A server that does not offer the twin socket: DMA stays on the main one. */
static void test_dma_twin_declined(void **state)
{
	struct it_fx *f = *state;
	struct vfurt_client_opts o = it_opts(VFURT_CLIENT_TWIN_SOCKET | VFURT_CLIENT_REQUIRE_TWIN);
	struct vfurt_client_stats cs = { .stats_size = sizeof(cs) };
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct vfurt_client *c;

	assert_int_equal(vfurt_client_get_caps(f->c, &caps), 0);
	assert_false(caps.twin_socket);
	assert_int_equal(vfurt_client_twin_fd(f->c), -1);
	dma_msg_roundtrip(f, DMA_SIZE, 35);
	assert_int_equal(vfurt_client_get_stats(f->c, &cs), 0);
	assert_int_equal(cs.twin_commands, 0);

	/* a client that insists on it gives up */
	vfurt_client_close(f->c);
	errno = 0;
	c = it_connect_retry(testsrv_path(f->ts, 0), &o);
	assert_null(c);
	assert_int_equal(errno, EPROTONOSUPPORT);
	f->c = it_reconnect(testsrv_path(f->ts, 0), 0);
	assert_non_null(f->c);
}

/* One device DMA spanning an fd-backed window and a message window. */
static void test_dma_mixed_windows(void **state)
{
	struct it_fx *f = *state;
	const uint64_t half = DMA_SIZE / 2;
	int mfd = it_fx_own(f, it_memfd(half));
	uint8_t *guest = aligned_alloc(4096, half), *mem, *bar = malloc(DMA_SIZE);
	struct vfurt_client_stats cs = { .stats_size = sizeof(cs) };

	assert_true(mfd >= 0);
	assert_non_null(guest);
	assert_non_null(bar);
	mem = mmap(NULL, half, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	assert_true(mem != MAP_FAILED);
	it_fill(bar, DMA_SIZE, 41);
	memcpy(mem, bar, half);
	memcpy(guest, bar + half, half);
	assert_int_equal(vfurt_client_dma_map(f->c, DMA_IOVA, half, mfd, 0, RW,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_int_equal(vfurt_client_dma_map_mem(f->c, DMA_IOVA + half, half, guest, RW, 0), 0);

	assert_int_equal(it_dev_dma(f->c, 1, DMA_IOVA, DMA_SIZE), 0);
	memset(bar, 0, DMA_SIZE);
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_BAR1, 0, bar, DMA_SIZE), 0);
	assert_true(it_check(bar, DMA_SIZE, 41));
	assert_int_equal(vfurt_client_get_stats(f->c, &cs), 0);
	assert_int_equal(cs.dma_bytes, half); /* only the second half was messaged */

	/* unmap-all drops both */
	assert_int_equal(vfurt_client_dma_unmap(f->c, 0, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL), 0);
	assert_int_equal(atomic_load(&f->st[0]->dma_unmap), 2);
	assert_int_equal(it_dev_dma(f->c, 1, DMA_IOVA, 16), -ENOENT);
	assert_int_equal(it_dev_dma(f->c, 1, DMA_IOVA + half, 16), -ENOENT);
	munmap(mem, half);
	it_fx_close(f, mfd);
	free(guest);
	free(bar);
}

static void test_dma_unmap(void **state)
{
	struct it_fx *f = *state;
	uint8_t *g = aligned_alloc(4096, 4 * 4096);

	assert_non_null(g);
	memset(g, 0, 4 * 4096);
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(vfurt_client_dma_map_mem(f->c, DMA_IOVA + i * 0x10000, 4096,
							  g + i * 4096, RW, 0), 0);
	assert_int_equal(atomic_load(&f->st[0]->dma_map), 4);
	assert_int_equal(vfurt_client_dma_unmap(f->c, DMA_IOVA + 0x10000, 4096, 0), 0);
	assert_int_equal(atomic_load(&f->st[0]->dma_unmap), 1);
	assert_int_equal(it_dev_dma(f->c, 1, DMA_IOVA + 0x10000, 16), -ENOENT);
	assert_int_equal(it_dev_dma(f->c, 1, DMA_IOVA + 0x20000, 16), 0);
	/* the same range again is gone */
	assert_int_equal(vfurt_client_dma_unmap(f->c, DMA_IOVA + 0x10000, 4096, 0), -ENOENT);
	assert_int_equal(vfurt_client_dma_unmap(f->c, 0, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL), 0);
	assert_int_equal(atomic_load(&f->st[0]->dma_unmap), 4);
	assert_int_equal(it_dev_dma(f->c, 1, DMA_IOVA, 16), -ENOENT);
	/* unmap-all of nothing is fine */
	assert_int_equal(vfurt_client_dma_unmap(f->c, 0, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL), 0);
	/* the same iovas can be mapped again */
	assert_int_equal(vfurt_client_dma_map_mem(f->c, DMA_IOVA, 4096, g, RW, 0), 0);
	assert_int_equal(it_dev_dma(f->c, 2, DMA_IOVA, 16), 0);
	assert_int_equal(vfurt_client_dma_unmap(f->c, DMA_IOVA, 4096, 0), 0);
	free(g);
}

/* ---- reset, unsupported commands -------------------------------------------- */

static void test_device_reset(void **state)
{
	struct it_fx *f = *state;
	uint32_t v = 0;
	uint16_t cmd = 0x0006;

	assert_int_equal(it_wr32(f->c, VFURT_REGION_BAR0, 0x10, 0xdeadbeef), 0);
	assert_int_equal(vfurt_client_region_write(f->c, VFURT_REGION_CONFIG, 4, &cmd, 2), 0);
	cmd = 0;
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_CONFIG, 4, &cmd, 2), 0);
	assert_int_equal(cmd & 0x6, 0x6);

	assert_int_equal(vfurt_client_reset(f->c), 0);
	assert_int_equal(atomic_load(&f->st[0]->reset), 1);
	assert_int_equal(it_rd32(f->c, VFURT_REGION_BAR0, 0x10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_CONFIG, 4, &cmd, 2), 0);
	assert_int_equal(cmd & 0x6, 0);
	/* the connection stays attached */
	assert_int_equal(atomic_load(&f->st[0]->detach), 0);
	assert_true(it_alive(f->c));
}

/* After a reset MSI-X is disabled again, so a device trigger must not reach
 * the client's eventfd until the guest enables MSI-X anew. */
static void test_reset_masks_msix(void **state)
{
	struct it_fx *f = *state;
	int efd = it_fx_own(f, it_eventfd());

	assert_true(efd >= 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(it_msix_enable(f->c, TD_MSIX_VECTORS), 0);
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 0), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	(void)it_eventfd_take(efd);

	assert_int_equal(vfurt_client_reset(f->c), 0);
	/* regression: vfr_dev_do_reset() used to reset the irq layer after
	 * the PCI hook, unmasking vectors of a disabled MSI-X */
	(void)it_irq_fire(f->c, VFURT_IRQ_MSIX, 0);
	assert_false(it_readable(efd, 0));
	/* re-enabling delivers what became pending meanwhile */
	assert_int_equal(it_msix_enable(f->c, TD_MSIX_VECTORS), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	it_fx_close(f, efd);
}

static void test_unsupported_commands(void **state)
{
	struct it_fx *f = *state;
	uint8_t buf[64];
	uint32_t got = 0;
	size_t len = 0;
	struct vfio_user_dma_unmap dirty = { .argsz = sizeof(dirty) };

	memset(buf, 0, sizeof(buf));

	/* migration and DMA logging features */
	assert_int_equal(vfurt_client_device_feature(f->c, VFIO_DEVICE_FEATURE_PROBE | 1, NULL, 0,
						     buf, sizeof(buf), &len), -ENOTSUP);
	assert_int_equal(vfurt_client_device_feature(f->c, VFIO_DEVICE_FEATURE_GET | 2, NULL, 0,
						     buf, sizeof(buf), &len), -ENOTSUP);
	assert_int_equal(vfurt_client_device_feature(f->c, VFIO_DEVICE_FEATURE_SET | 6, buf, 16,
						     NULL, 0, NULL), -ENOTSUP);
	assert_int_equal(vfurt_client_mig_data_read(f->c, buf, sizeof(buf), &got), -ENOTSUP);
	assert_int_equal(vfurt_client_mig_data_write(f->c, buf, sizeof(buf)), -ENOTSUP);
	/* the retired DIRTY_PAGES command */
	assert_int_equal(vfurt_client_request(f->c, VFIO_USER_DIRTY_PAGES, 0, &dirty,
					      sizeof(dirty), NULL, 0, NULL, 0, NULL, NULL, NULL),
			 -ENOTSUP);
	assert_true(it_alive(f->c));
}

/* ---- asynchronous quiesce --------------------------------------------------- */

static int setup_async(void **state)
{
	struct testdev_opts d = { .async_quiesce = true };

	return fx_start(state, &d, NULL, NULL);
}

static void test_async_quiesce(void **state)
{
	struct it_fx *f = *state;
	int mfd = it_fx_own(f, it_memfd(DMA_SIZE));
	uint8_t *mem;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	struct vfio_user_dma_unmap um = { .argsz = sizeof(um), .addr = DMA_IOVA,
					  .size = DMA_SIZE };
	int id1, id2;

	assert_true(mfd >= 0);
	mem = mmap(NULL, DMA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(vfurt_client_dma_map(f->c, DMA_IOVA, DMA_SIZE, mfd, 0, RW,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_true(atomic_load(&f->st[0]->quiesce) >= 1);
	assert_int_equal(atomic_load(&f->st[0]->dma_map), 1);
	it_fill(mem, 256, 51);
	assert_int_equal(it_dev_dma(f->c, 1, DMA_IOVA, 256), 0);

	/* a parked command holds back the ones behind it: replies stay in order */
	id1 = it_send_cmd(f->c, VFIO_USER_DMA_UNMAP, 0, &um, sizeof(um), NULL, 0);
	id2 = it_send_cmd(f->c, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info), NULL, 0);
	assert_true(id1 >= 0 && id2 >= 0);
	assert_int_equal(it_recv_reply(f->c, (uint16_t)id1, VFIO_USER_DMA_UNMAP, &um,
				       sizeof(um), NULL), 0);
	assert_int_equal(it_recv_reply(f->c, (uint16_t)id2, VFIO_USER_DEVICE_GET_INFO, &info,
				       sizeof(info), NULL), 0);
	assert_int_equal(atomic_load(&f->st[0]->dma_unmap), 1);

	/* reset goes through the quiesce too */
	assert_int_equal(vfurt_client_reset(f->c), 0);
	assert_int_equal(atomic_load(&f->st[0]->reset), 1);
	assert_true(atomic_load(&f->st[0]->quiesce) >= 3);
	assert_true(it_alive(f->c));
	munmap(mem, DMA_SIZE);
	it_fx_close(f, mfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_version_negotiated, setup_limits, teardown),
		cmocka_unit_test_setup_teardown(test_version_no_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_minor_min, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_info_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_info_argsz_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_info_qemu_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mmap_sparse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_io_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irq_info_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_eventfd_trigger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_irqs_split_by_max_fds, setup_few_fds,
						teardown),
		cmocka_unit_test_setup_teardown(test_msix_mask_unmask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_client_emulated_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_client_emulated_table_late_enable, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_msix_client_table_keeps_masks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_intx_automask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irq_client_trigger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_rw_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_rw_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_write_posted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_region_write_multi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dma_map_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dma_map_mem_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dma_messages_split, setup_small_xfer, teardown),
		cmocka_unit_test_setup_teardown(test_dma_twin_socket, setup_twin, teardown),
		cmocka_unit_test_setup_teardown(test_dma_twin_declined, setup_twin_declined, teardown),
		cmocka_unit_test_setup_teardown(test_dma_mixed_windows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dma_unmap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_masks_msix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(test_async_quiesce, setup_async, teardown),
	};

	return cmocka_run_group_tests_name("integration: basic", tests, NULL, NULL);
}
