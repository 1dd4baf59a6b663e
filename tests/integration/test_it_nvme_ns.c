/* Live NVMe namespace management: add, resize, remove while a host does I/O; AEN, log 04h, identify, bad inputs. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/bdev.h>
#include <vfurt/gpio.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "hostsim/nvme_host.h"

/*
 * The controller is nvme_fx_ram_ctrl (ns 1: 8 MiB of 512-byte blocks, ns 2:
 * 16 MiB of 4 KiB ones) served either by the caller-driven server, where the
 * namespace calls run on the server's thread between two passes
 * (testsrv_call), or by the runtime, where the test's own thread calls
 * vfurt_nvme_ns_* and vfurt_dev_call carries them to the controller's home
 * worker while that worker and the I/O queue's worker serve the host.
 *
 * Until the runtime implements the host's `call` op, vfurt_dev_call runs the
 * body on the caller's thread, racing the home worker: the *_rt cases skip
 * then (need_cross_thread_call) and run by themselves once it lands.
 */

#define NS1_BLOCKS (NFX_NS1_SIZE / NFX_NS1_BS)
#define BATCH 16u
#define AEN_WAIT_MS 5000
#define QUIET_MS 300

struct nsfx {
	struct nvme_fx *f; /* first member: nvme_fx_teardown's state */
	struct vfurt_dev *dev;
	bool rt;
};

static int setup_any(void **state, bool rt)
{
	/* the runtime serves admin and I/O on different workers: no guest page
	 * goes from one to the other (see nvme_host_opts.no_reuse) */
	struct nvme_host_opts ho = { .mem_size = 256u << 20, .no_reuse = true };
	struct nsfx *x = calloc(1, sizeof(*x));
	void *fs;

	assert_non_null(x);
	x->f = nvme_fx_new(&fs);
	x->dev = nvme_fx_ram_ctrl();
	x->rt = rt;
	nvme_fx_serve(x->f, &x->dev, 1, rt ? it_cores() : NULL, VFURT_POLL_ADAPTIVE);
	x->f->h = nvme_fx_host_io(x->f, 0, rt ? &ho : NULL, true);
	*state = x;
	return 0;
}

static int setup_srv(void **state)
{
	return setup_any(state, false);
}

static int setup_rt(void **state)
{
	return setup_any(state, true);
}

static int teardown(void **state)
{
	struct nsfx *x = *state;
	void *fs = x->f;
	int rc = nvme_fx_teardown(&fs);

	free(x);
	return rc;
}

/* ---- the namespace calls, on the right thread ----------------------------------- */

struct ns_op {
	struct vfurt_dev *dev;
	int op; /* 'a'dd, 'r'emove, 's' resize */
	uint32_t nsid;
	struct vfurt_bdev *bdev;
	uint64_t blocks;
	int rc;
};

static void ns_op_fn(void *arg)
{
	struct ns_op *o = arg;

	switch (o->op) {
	case 'a':
		o->rc = vfurt_nvme_ns_add(o->dev, o->nsid, o->bdev);
		break;
	case 'r':
		o->rc = vfurt_nvme_ns_remove(o->dev, o->nsid);
		break;
	default:
		o->rc = vfurt_nvme_ns_resize(o->dev, o->nsid, o->blocks);
		break;
	}
}

/* Caller-driven: on the server thread; runtime: from this thread. */
static int ns_run(struct nsfx *x, struct ns_op *o)
{
	o->dev = x->dev;
	if (x->rt)
		ns_op_fn(o);
	else
		testsrv_call(x->f->ts, ns_op_fn, o);
	return o->rc;
}

static int ns_add(struct nsfx *x, uint32_t nsid, struct vfurt_bdev *b)
{
	struct ns_op o = { .op = 'a', .nsid = nsid, .bdev = b };

	return ns_run(x, &o);
}

static int ns_remove(struct nsfx *x, uint32_t nsid)
{
	struct ns_op o = { .op = 'r', .nsid = nsid };

	return ns_run(x, &o);
}

static int ns_resize(struct nsfx *x, uint32_t nsid, uint64_t blocks)
{
	struct ns_op o = { .op = 's', .nsid = nsid, .blocks = blocks };

	return ns_run(x, &o);
}

static struct vfurt_bdev *ram(uint32_t bs, uint64_t size)
{
	struct vfurt_bdev *b = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "added", .block_size = bs,
		.size_bytes = size });

	assert_non_null(b);
	return b;
}

/* ---- host side helpers --------------------------------------------------------- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Enable Namespace Attribute Notices (AEC bit 8) and put an AER out. */
static uint16_t aen_arm(struct nvme_host *h, bool notices)
{
	uint16_t cid;

	assert_int_equal(nh_set_features(h, 0x0b, notices ? 1u << 8 : 0u, NULL), 0);
	assert_int_equal(nh_aer_submit(h, &cid), 0);
	return cid;
}

/* The AER completes as Notice / Namespace Attribute Changed / log 04h. */
static void aen_expect_ns_changed(struct nvme_host *h, uint16_t cid)
{
	struct nh_cqe cqe;

	assert_int_equal(nh_wait(h, 0, cid, &cqe, AEN_WAIT_MS), 0);
	assert_int_equal(cqe.dw0 & 0x7u, 0x2u);          /* type: notice */
	assert_int_equal((cqe.dw0 >> 8) & 0xffu, 0x00u); /* namespace attribute changed */
	assert_int_equal((cqe.dw0 >> 16) & 0xffu, 0x04u); /* log page 04h */
}

/* Read (and clear) the Changed Namespace List; it must be exactly want[0..n). */
static void changed_log_expect(struct nvme_host *h, const uint32_t *want, size_t n)
{
	uint8_t log[NH_PAGE];

	/* as Linux reads it: NSID FFFFFFFFh, RAE clear */
	assert_int_equal(nh_get_log(h, 0x04, 0xffffffffu, false, log, sizeof(log)), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(le32(log + 4 * i), want[i]);
	assert_int_equal(le32(log + 4 * n), 0);
}

/* Identify CNS 02h from nsid 0 must list exactly want[0..n). */
static void active_list_expect(struct nvme_host *h, const uint32_t *want, size_t n)
{
	uint8_t list[NH_PAGE];

	assert_int_equal(nh_identify(h, NH_CNS_NS_ACTIVE_LIST, 0, list), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(le32(list + 4 * i), want[i]);
	assert_int_equal(le32(list + 4 * n), 0);
}

/* Identify Namespace: NSZE (= NCAP = NUSE) and the LBA size. */
static uint64_t id_nsze(struct nvme_host *h, uint32_t nsid, uint32_t *bs)
{
	uint8_t id[NH_PAGE];
	uint64_t nsze, ncap, nuse;

	memset(id, 0xa5, sizeof(id));
	assert_int_equal(nh_identify(h, NH_CNS_NS, nsid, id), 0);
	memcpy(&nsze, id, 8);
	memcpy(&ncap, id + 8, 8);
	memcpy(&nuse, id + 16, 8);
	assert_int_equal(ncap, nsze);
	assert_int_equal(nuse, nsze);
	if (bs)
		*bs = nsze ? 1u << id[130] : 0;
	return nsze;
}

/* A batch of one-block writes in flight on queue 1: block i of nsid at
 * base + i with seed + i. */
struct batch {
	uint16_t cid[BATCH];
	uint8_t *buf[BATCH];
	uint32_t bs;
	uint32_t nsid;
	uint64_t base;
	uint32_t seed;
	int st[BATCH];
};

static void batch_start(struct nvme_host *h, struct batch *b, uint32_t nsid, uint32_t bs,
			uint64_t base, uint32_t seed)
{
	b->bs = bs;
	b->nsid = nsid;
	b->base = base;
	b->seed = seed;
	for (uint32_t i = 0; i < BATCH; i++) {
		struct nh_io io = { .opc = NH_CMD_WRITE, .nsid = nsid, .slba = base + i, .nlb = 1 };

		b->buf[i] = nh_alloc(h, bs);
		assert_non_null(b->buf[i]);
		it_fill(b->buf[i], bs, seed + i);
		io.buf = b->buf[i];
		io.len = bs;
		assert_int_equal(nh_io_submit(h, 1, &io, &b->cid[i]), 0);
	}
}

static void batch_wait(struct nvme_host *h, struct batch *b)
{
	for (uint32_t i = 0; i < BATCH; i++) {
		b->st[i] = nh_wait(h, 1, b->cid[i], NULL, -1);
		nh_free(h, b->buf[i], b->bs);
	}
}

/* Every write of the batch succeeded and reads back. */
static void batch_verify(struct nvme_host *h, struct batch *b)
{
	uint8_t *r = nh_alloc(h, b->bs);

	assert_non_null(r);
	for (uint32_t i = 0; i < BATCH; i++) {
		assert_int_equal(b->st[i], 0);
		assert_int_equal(nh_read(h, 1, b->nsid, b->base + i, 1, r, b->bs, NULL), 0);
		if (!it_check(r, b->bs, b->seed + i))
			fail_msg("ns %u lba %llu: data differ", b->nsid,
				 (unsigned long long)(b->base + i));
	}
	nh_free(h, r, b->bs);
}

/* One block at lba of nsid: write seed, read back. */
static int rw_at(struct nvme_host *h, uint32_t nsid, uint64_t lba, uint32_t bs, uint32_t seed)
{
	int wst = 0, rst = 0, rc = nh_write_read_check(h, 1, nsid, lba, bs, seed, &wst, &rst);

	return rc == -EBADMSG ? rc : (wst ? wst : rst);
}

static int read_at(struct nvme_host *h, uint32_t nsid, uint64_t lba, uint32_t nlb, uint32_t bs,
		   uint32_t seed)
{
	size_t len = (size_t)nlb * bs;
	uint8_t *r = nh_alloc(h, len);
	int st;

	assert_non_null(r);
	st = nh_read(h, 1, nsid, lba, nlb, r, len, NULL);
	if (st == 0 && seed && !it_check(r, len, seed))
		st = -EBADMSG;
	nh_free(h, r, len);
	return st;
}

/* ---- add ------------------------------------------------------------------------- */

/*
 * With writes to ns 1 in flight: add a 4 KiB RAM namespace at the lowest
 * free nsid (3). The writes complete and read back; the host gets the
 * notice, finds nsid 3 in log 04h (read once: then empty), in the active
 * list and in Identify Namespace, and does I/O on it; vfurt_nvme_ns_list
 * reports the three.
 */
static void test_add_during_io(void **state)
{
	struct nsfx *x = *state;
	struct nvme_host *h = x->f->h;
	const uint32_t added[] = { 3 }, active[] = { 1, 2, 3 };
	struct vfurt_nvme_ns_info info[4];
	struct batch b;
	uint16_t aer = aen_arm(h, true);
	uint32_t bs;

	for (uint32_t round = 0; round < 3; round++) {
		batch_start(h, &b, 1, NFX_NS1_BS, 100 + round * BATCH, 1000 + round * 100);
		if (round == 1)
			assert_int_equal(ns_add(x, 0, ram(4096, 4u << 20)), 3);
		batch_wait(h, &b);
		batch_verify(h, &b);
	}
	aen_expect_ns_changed(h, aer);
	changed_log_expect(h, added, 1);
	changed_log_expect(h, NULL, 0); /* read: the news are taken */
	active_list_expect(h, active, 3);
	assert_int_equal(id_nsze(h, 3, &bs), (4u << 20) / 4096);
	assert_int_equal(bs, 4096);
	assert_int_equal(rw_at(h, 3, 0, 4096, 31), 0);
	assert_int_equal(rw_at(h, 3, 1023, 4096, 32), 0);
	assert_int_equal(rw_at(h, 3, 1024, 4096, 33), NH_SC_LBA_RANGE);
	good_io(h, 1, 34);

	for (size_t i = 0; i < 4; i++)
		info[i].info_size = sizeof(info[i]);
	assert_int_equal(vfurt_nvme_ns_list(x->dev, info, 4), 3);
	assert_int_equal(info[2].nsid, 3);
	assert_int_equal(info[2].block_size, 4096);
	assert_int_equal(info[2].num_blocks, 1024);
	assert_int_equal(info[0].num_blocks, NS1_BLOCKS);
	/* an added namespace at a chosen nsid, then no AER out: delivered at
	 * the host's next AER */
	assert_int_equal(ns_add(x, 7, ram(512, 1u << 20)), 7);
	aer = aen_arm(h, true);
	aen_expect_ns_changed(h, aer);
	changed_log_expect(h, (const uint32_t[]){ 7 }, 1);
	assert_int_equal(rw_at(h, 7, 2047, 512, 35), 0);
	/* I/O to an nsid that is not active */
	assert_int_equal(rw_at(h, 5, 0, 512, 36), NH_SC_INVALID_NS);
	assert_int_equal(rw_at(h, 33, 0, 512, 36), NH_SC_INVALID_NS);
}

/* ---- resize ---------------------------------------------------------------------- */

/*
 * Grow ns 1 to four times its size, then shrink it to 1000 blocks, with
 * writes in flight each time: Identify shows each NSZE after its notice,
 * I/O past the end fails with LBA Out of Range, inside it works, and data
 * below the new end survives both.
 */
static void test_resize(void **state)
{
	struct nsfx *x = *state;
	struct nvme_host *h = x->f->h;
	const uint32_t one[] = { 1 };
	struct batch b;
	uint16_t aer = aen_arm(h, true);

	assert_int_equal(rw_at(h, 1, 10, 512, 51), 0);
	assert_int_equal(rw_at(h, 1, NS1_BLOCKS - 1, 512, 52), 0);
	assert_int_equal(rw_at(h, 1, NS1_BLOCKS, 512, 53), NH_SC_LBA_RANGE);

	batch_start(h, &b, 1, 512, 200, 5000);
	assert_int_equal(ns_resize(x, 1, 4 * NS1_BLOCKS), 0);
	batch_wait(h, &b);
	batch_verify(h, &b);
	aen_expect_ns_changed(h, aer);
	changed_log_expect(h, one, 1);
	assert_int_equal(id_nsze(h, 1, NULL), 4 * NS1_BLOCKS);
	assert_int_equal(read_at(h, 1, 10, 1, 512, 51), 0);
	assert_int_equal(read_at(h, 1, NS1_BLOCKS - 1, 1, 512, 52), 0);
	assert_int_equal(rw_at(h, 1, 4 * NS1_BLOCKS - 1, 512, 54), 0);
	assert_int_equal(read_at(h, 1, NS1_BLOCKS, 1, 512, 0), 0);
	assert_int_equal(rw_at(h, 1, 4 * NS1_BLOCKS, 512, 55), NH_SC_LBA_RANGE);

	aer = aen_arm(h, true);
	batch_start(h, &b, 1, 512, 300, 6000);
	assert_int_equal(ns_resize(x, 1, 1000), 0);
	batch_wait(h, &b);
	batch_verify(h, &b);
	aen_expect_ns_changed(h, aer);
	changed_log_expect(h, one, 1);
	assert_int_equal(id_nsze(h, 1, NULL), 1000);
	assert_int_equal(read_at(h, 1, 10, 1, 512, 51), 0);
	assert_int_equal(rw_at(h, 1, 999, 512, 56), 0);
	assert_int_equal(read_at(h, 1, 1000, 1, 512, 0), NH_SC_LBA_RANGE);
	assert_int_equal(read_at(h, 1, 999, 2, 512, 0), NH_SC_LBA_RANGE);
	assert_int_equal(rw_at(h, 1, NS1_BLOCKS - 1, 512, 57), NH_SC_LBA_RANGE);
	assert_int_equal(nh_write_zeroes(h, 1, 1, 990, 20, false), NH_SC_LBA_RANGE);
	assert_int_equal(nh_write_zeroes(h, 1, 1, 990, 10, false), 0);
	/* the same size again: nothing changes, no notice */
	aer = aen_arm(h, true);
	assert_int_equal(ns_resize(x, 1, 1000), 0);
	assert_int_equal(nh_wait(h, 0, aer, NULL, QUIET_MS), -ETIMEDOUT);
	good_io(h, 1, 58);
}

/* ---- remove ---------------------------------------------------------------------- */

/*
 * Remove ns 2 with writes to it in flight: they complete (successfully: the
 * removal waits for them) or fail cleanly, later commands get Invalid
 * Namespace or Format; Identify shows it inactive, the notice and log 04h
 * name it; ns 1 keeps working. A new namespace can take the nsid again.
 */
static void test_remove_during_io(void **state)
{
	struct nsfx *x = *state;
	struct nvme_host *h = x->f->h;
	const uint32_t two[] = { 2 }, active[] = { 1, 2 };
	struct batch b;
	uint16_t aer = aen_arm(h, true);
	uint32_t bs;

	batch_start(h, &b, 2, NFX_NS2_BS, 0, 7000);
	assert_int_equal(ns_remove(x, 2), 0);
	batch_wait(h, &b);
	for (uint32_t i = 0; i < BATCH; i++)
		if (b.st[i] != 0 && b.st[i] != NH_SC_INVALID_NS && b.st[i] != NH_SC(0, 0x07))
			fail_msg("write %u in flight at the removal: status %#x", i, b.st[i]);
	assert_int_equal(rw_at(h, 2, 0, 4096, 71), NH_SC_INVALID_NS);
	assert_int_equal(nh_flush(h, 1, 2), NH_SC_INVALID_NS);
	assert_int_equal(nh_flush(h, 1, 0xffffffffu), 0); /* the remaining ones */
	aen_expect_ns_changed(h, aer);
	changed_log_expect(h, two, 1);
	active_list_expect(h, active, 1);
	assert_int_equal(id_nsze(h, 2, &bs), 0); /* inactive: zeroes */
	good_io(h, 1, 72);
	assert_int_equal(ns_remove(x, 2), -ENOENT);

	/* nsid 2 again, a fresh (zeroed) device */
	aer = aen_arm(h, true);
	assert_int_equal(ns_add(x, 2, ram(4096, 1u << 20)), 2);
	aen_expect_ns_changed(h, aer);
	changed_log_expect(h, two, 1);
	active_list_expect(h, active, 2);
	assert_int_equal(read_at(h, 2, 0, 1, 4096, 0), 0);
	assert_int_equal(rw_at(h, 2, 255, 4096, 73), 0);
	assert_int_equal(rw_at(h, 2, 256, 4096, 74), NH_SC_LBA_RANGE);

	/* remove ns 1 too while its writes are in flight, with nothing left */
	batch_start(h, &b, 1, 512, 0, 7100);
	assert_int_equal(ns_remove(x, 1), 0);
	assert_int_equal(ns_remove(x, 2), 0);
	batch_wait(h, &b);
	active_list_expect(h, NULL, 0);
	assert_int_equal(nh_flush(h, 1, 0xffffffffu), 0);
	assert_int_equal(rw_at(h, 1, 0, 512, 75), NH_SC_INVALID_NS);
	assert_int_equal(vfurt_nvme_ns_list(x->dev, NULL, 0), 0);
}

/* ---- AEC --------------------------------------------------------------------------- */

/*
 * Namespace Attribute Notices disabled (AEC bit 8 clear): a change does not
 * complete the outstanding AER, but log 04h has it. Enabling the notices
 * afterwards does not send the event that was never raised (the spec: the
 * controller does not send a disabled event); the next change does.
 */
static void test_aen_masked_by_aec(void **state)
{
	struct nsfx *x = *state;
	struct nvme_host *h = x->f->h;
	uint16_t aer = aen_arm(h, false);
	uint32_t dw0 = 0xffffffffu;

	assert_int_equal(ns_add(x, 0, ram(512, 1u << 20)), 3);
	assert_int_equal(nh_wait(h, 0, aer, NULL, QUIET_MS), -ETIMEDOUT);
	changed_log_expect(h, (const uint32_t[]){ 3 }, 1);
	assert_int_equal(ns_resize(x, 3, 4096), 0);
	assert_int_equal(nh_wait(h, 0, aer, NULL, QUIET_MS), -ETIMEDOUT);

	assert_int_equal(nh_set_features(h, 0x0b, 1u << 8, NULL), 0);
	assert_int_equal(nh_get_features(h, 0x0b, 0, &dw0), 0);
	assert_int_equal(dw0, 1u << 8);
	assert_int_equal(nh_wait(h, 0, aer, NULL, QUIET_MS), -ETIMEDOUT);
	assert_int_equal(ns_resize(x, 3, 8192), 0);
	aen_expect_ns_changed(h, aer);
	changed_log_expect(h, (const uint32_t[]){ 3 }, 1);
	assert_int_equal(id_nsze(h, 3, NULL), 8192);

	/* a second change before the log was read: masked until it is */
	aer = aen_arm(h, true);
	assert_int_equal(ns_resize(x, 3, 100), 0);
	aen_expect_ns_changed(h, aer);
	aer = aen_arm(h, true);
	assert_int_equal(ns_remove(x, 3), 0);
	assert_int_equal(nh_wait(h, 0, aer, NULL, QUIET_MS), -ETIMEDOUT);
	changed_log_expect(h, (const uint32_t[]){ 3 }, 1);
	assert_int_equal(ns_add(x, 4, ram(512, 1u << 20)), 4);
	aen_expect_ns_changed(h, aer);
	changed_log_expect(h, (const uint32_t[]){ 4 }, 1);
}

/*
 * Changes while the host has the controller disabled (CC.EN = 0: no queues)
 * or shut down: they take effect at once, and the host finds them when it
 * enables the controller again and scans, as after any reset.
 */
static void test_change_while_disabled(void **state)
{
	struct nsfx *x = *state;
	struct nvme_host *h = x->f->h;
	const uint32_t active[] = { 1, 3 };

	assert_int_equal(nh_shutdown(h), 0);
	assert_int_equal(ns_resize(x, 1, 100), 0);
	assert_int_equal(nh_disable(h), 0);
	assert_int_equal(ns_remove(x, 2), 0);
	assert_int_equal(ns_add(x, 3, ram(512, 1u << 20)), 3);
	assert_int_equal(nh_enable(h), 0);
	assert_int_equal(nh_set_num_queues(h, NFX_MAX_IOQ, NFX_MAX_IOQ, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, NFX_QENT, 1), 0);
	active_list_expect(h, active, 2);
	assert_int_equal(id_nsze(h, 1, NULL), 100);
	assert_int_equal(id_nsze(h, 2, NULL), 0);
	assert_int_equal(rw_at(h, 3, 2047, 512, 61), 0);
	assert_int_equal(rw_at(h, 1, 100, 512, 62), NH_SC_LBA_RANGE);
	good_io(h, 1, 63);
}

/* ---- hostile and bad inputs ------------------------------------------------------- */

static int rs_submit(void *chan_ctx, struct vfurt_bdev_req *req, const struct vfurt_bdev_io *io)
{
	(void)chan_ctx;
	(void)io;
	vfurt_bdev_req_complete(req, 0);
	return 0;
}

/* A backend built before resize existed (ops_size without it), without
 * Write Zeroes or Deallocate unless caps says so. */
static struct vfurt_bdev *old_backend(uint32_t caps)
{
	static const struct vfurt_bdev_ops ops = {
		.ops_size = offsetof(struct vfurt_bdev_ops, resize), .submit = rs_submit,
	};
	struct vfurt_bdev_opts o = {
		.opts_size = sizeof(o), .name = "old", .block_size = 512, .num_blocks = 64,
		.caps = caps,
	};
	struct vfurt_bdev *b = vfurt_bdev_create(&o, &ops, NULL);

	assert_non_null(b);
	return b;
}

static struct vfurt_bdev *null_bdev(uint32_t bs)
{
	struct vfurt_bdev *b = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .block_size = bs,
		.size_bytes = 64 * bs });

	assert_non_null(b);
	return b;
}

static void test_bad_inputs(void **state)
{
	struct nsfx *x = *state;
	struct nvme_host *h = x->f->h;
	struct vfurt_nvme_ns_info info[3] = { { .info_size = sizeof(info[0]) } };
	struct vfurt_dev *gpio;
	struct vfurt_bdev *b = null_bdev(512), *extra;
	int nsid;

	/* nsids */
	assert_int_equal(ns_remove(x, 0), -EINVAL);
	assert_int_equal(ns_remove(x, VFURT_NVME_MAX_NS + 1), -EINVAL);
	assert_int_equal(ns_remove(x, 0xffffffffu), -EINVAL);
	assert_int_equal(ns_remove(x, 5), -ENOENT);
	assert_int_equal(ns_add(x, VFURT_NVME_MAX_NS + 1, b), -EINVAL);
	assert_int_equal(ns_add(x, 0xffffffffu, b), -EINVAL);
	assert_int_equal(ns_add(x, 1, b), -EEXIST);
	assert_int_equal(ns_add(x, 0, NULL), -EINVAL);
	assert_int_equal(ns_resize(x, 1, 0), -EINVAL);
	assert_int_equal(ns_resize(x, 0, 10), -EINVAL);
	assert_int_equal(ns_resize(x, 33, 10), -EINVAL);
	assert_int_equal(ns_resize(x, 9, 10), -ENOENT);
	assert_int_equal(ns_resize(x, 1, UINT64_MAX), -EINVAL);
	assert_int_equal(id_nsze(h, 1, NULL), NS1_BLOCKS);
	/* one bdev as two namespaces */
	assert_int_equal(vfurt_nvme_ns_list(x->dev, info, 1), 2);
	assert_int_equal(ns_add(x, 9, (struct vfurt_bdev *)info[0].bdev), -EEXIST);
	/* not an NVMe controller */
	gpio = vfurt_gpio_create(&(struct vfurt_gpio_opts){ .opts_size =
							    sizeof(struct vfurt_gpio_opts) });
	assert_non_null(gpio);
	assert_int_equal(vfurt_nvme_ns_add(gpio, 0, b), -EINVAL);
	assert_int_equal(vfurt_nvme_ns_remove(gpio, 1), -EINVAL);
	assert_int_equal(vfurt_nvme_ns_resize(gpio, 1, 10), -EINVAL);
	assert_int_equal(vfurt_nvme_ns_list(gpio, info, 1), -EINVAL);
	assert_int_equal(vfurt_nvme_ns_list(gpio, NULL, 0), -EINVAL);
	vfurt_dev_destroy(gpio);
	assert_int_equal(vfurt_nvme_ns_add(NULL, 0, b), -EINVAL);
	assert_int_equal(vfurt_nvme_ns_list(NULL, NULL, 0), -EINVAL);
	/* ns_list arguments */
	assert_int_equal(vfurt_nvme_ns_list(x->dev, NULL, 1), -EINVAL);
	info[0].info_size = 4;
	assert_int_equal(vfurt_nvme_ns_list(x->dev, info, 1), -EINVAL);
	info[0].info_size = sizeof(info[0]);
	/* a 520-byte block bdev cannot even be made: bdevs are 512 or 4096 */
	assert_null(vfurt_bdev_create(&(struct vfurt_bdev_opts){ .opts_size =
		sizeof(struct vfurt_bdev_opts), .block_size = 520, .num_blocks = 8 },
		&(struct vfurt_bdev_ops){ .ops_size = sizeof(struct vfurt_bdev_ops),
					  .submit = rs_submit }, NULL));
	/* ONCS promises Write Zeroes and Deallocate on every namespace */
	extra = old_backend(0);
	assert_int_equal(ns_add(x, 0, extra), -EINVAL);
	vfurt_bdev_destroy(extra);
	/* a backend that cannot resize */
	extra = old_backend(VFURT_BDEV_CAP_WRITE_ZEROES | VFURT_BDEV_CAP_DEALLOCATE);
	nsid = ns_add(x, 0, extra);
	assert_int_equal(nsid, 3);
	assert_int_equal(ns_resize(x, 3, 128), -ENOTSUP);
	assert_int_equal(id_nsze(h, 3, NULL), 64);

	/* fill every nsid: the 33rd namespace has no room */
	assert_int_equal(ns_add(x, 0, b), 4);
	for (uint32_t i = 5; i <= VFURT_NVME_MAX_NS; i++)
		assert_int_equal(ns_add(x, 0, null_bdev(i % 2 ? 512 : 4096)), (int)i);
	extra = null_bdev(512);
	assert_int_equal(ns_add(x, 0, extra), -ENOSPC);
	vfurt_bdev_destroy(extra); /* refused: still ours */
	assert_int_equal(vfurt_nvme_ns_list(x->dev, info, 3), VFURT_NVME_MAX_NS);
	assert_int_equal(info[2].nsid, 3);
	assert_int_equal(vfurt_nvme_ns_list(x->dev, NULL, 0), VFURT_NVME_MAX_NS);
	{
		uint8_t list[NH_PAGE];

		assert_int_equal(nh_identify(h, NH_CNS_NS_ACTIVE_LIST, 0, list), 0);
		for (uint32_t i = 0; i < VFURT_NVME_MAX_NS; i++)
			assert_int_equal(le32(list + 4 * i), i + 1);
		assert_int_equal(le32(list + 4 * VFURT_NVME_MAX_NS), 0);
		assert_int_equal(nh_identify(h, NH_CNS_NS_ACTIVE_LIST, 30, list), 0);
		assert_int_equal(le32(list), 31);
		assert_int_equal(le32(list + 4), 32);
		assert_int_equal(le32(list + 8), 0);
	}
	/* null: reads leave the buffer, so only the statuses mean something */
	assert_int_equal(read_at(h, 32, 63, 1, 4096, 0), 0);
	assert_int_equal(read_at(h, 31, 64, 1, 512, 0), NH_SC_LBA_RANGE);
	assert_int_equal(nh_flush(h, 1, 0xffffffffu), 0);
	good_io(h, 1, 82);
	/* the teardown destroys the controller with 32 namespaces it owns */
}

/* The 4 KiB-only controller's WZSL does not hold for 512-byte blocks. */
static void test_add_conflicts_wzsl(void **state)
{
	struct vfurt_dev *dev = nvme_fx_small_ctrl("nvme4k", 4096, 1u << 20, 64);
	struct vfurt_bdev *b = null_bdev(512);

	(void)state;
	/* not served: vfurt_dev_call runs the body at once */
	assert_int_equal(vfurt_nvme_ns_add(dev, 0, b), -EINVAL);
	vfurt_bdev_destroy(b);
	b = null_bdev(4096);
	assert_int_equal(vfurt_nvme_ns_add(dev, 0, b), 2);
	assert_int_equal(vfurt_nvme_ns_resize(dev, 2, 1000), 0);
	assert_int_equal(vfurt_nvme_ns_list(dev, NULL, 0), 2);
	vfurt_dev_destroy(dev);
}

/* ---- the file backend -------------------------------------------------------------- */

/* A file namespace added live and grown: the file grows (ftruncate), data
 * below the old end stays, the new blocks read as zeroes; then shrunk and
 * removed. The controller has no volatile write cache (RAM only), so the
 * file namespace writes through (each write flushed). */
static void test_file_resize(void **state)
{
	struct nsfx *x = *state;
	struct nvme_host *h = x->f->h;
	struct vfurt_bdev_stats st0 = { .stats_size = sizeof(st0) }, st1 = st0;
	struct vfurt_bdev *b;
	struct stat st;
	uint16_t aer;
	int fd;

	snprintf(x->f->file, sizeof(x->f->file), "/tmp/vfurt-ns-XXXXXX");
	fd = mkstemp(x->f->file);
	assert_true(fd >= 0);
	close(fd);
	b = vfurt_bdev_file_create(&(struct vfurt_bdev_file_opts){
		.opts_size = sizeof(struct vfurt_bdev_file_opts), .path = x->f->file,
		.block_size = 4096, .size_bytes = 1u << 20, .create = 1 });
	assert_non_null(b);
	assert_int_equal(ns_add(x, 0, b), 3);
	assert_int_equal(vfurt_bdev_get_stats(b, &st0), 0);
	assert_int_equal(rw_at(h, 3, 255, 4096, 91), 0);
	/* write-through: the write was flushed although the host cannot ask */
	assert_int_equal(vfurt_bdev_get_stats(b, &st1), 0);
	assert_int_equal(st1.writes, st0.writes + 1);
	assert_int_equal(st1.flushes, st0.flushes + 1);
	assert_int_equal(rw_at(h, 3, 256, 4096, 92), NH_SC_LBA_RANGE);
	aer = aen_arm(h, true);
	assert_int_equal(ns_resize(x, 3, 1024), 0);
	aen_expect_ns_changed(h, aer);
	assert_int_equal(stat(x->f->file, &st), 0);
	assert_int_equal(st.st_size, 4u << 20);
	assert_int_equal(id_nsze(h, 3, NULL), 1024);
	assert_int_equal(read_at(h, 3, 255, 1, 4096, 91), 0);
	assert_int_equal(read_at(h, 3, 256, 1, 4096, 0), 0);
	assert_int_equal(rw_at(h, 3, 1023, 4096, 93), 0);
	assert_int_equal(ns_resize(x, 3, 16), 0);
	assert_int_equal(stat(x->f->file, &st), 0);
	assert_int_equal(st.st_size, 16 * 4096);
	assert_int_equal(rw_at(h, 3, 16, 4096, 94), NH_SC_LBA_RANGE);
	assert_int_equal(ns_remove(x, 3), 0);
	assert_int_equal(rw_at(h, 3, 0, 4096, 95), NH_SC_INVALID_NS);
}

/* ---- the runtime --------------------------------------------------------------- */

static void note_thread(void *arg)
{
	*(pthread_t *)arg = pthread_self();
}

/*
 * The runtime cases need vfurt_dev_call to run the body on the controller's
 * home worker (the runtime's `call` host op). Without it the body runs on
 * this thread, racing that worker (two threads adding the same queue's
 * poller: a poller left on a freed CQ): skip, saying why, rather than crash
 * now and then.
 */
static void need_cross_thread_call(struct nsfx *x)
{
	pthread_t ran = pthread_self();

	assert_int_equal(vfurt_dev_call(x->dev, note_thread, &ran), 0);
	if (pthread_equal(ran, pthread_self())) {
		fprintf(stderr, "skipped: vfurt_dev_call on the runtime runs on the caller's "
				"thread (no `call` host op yet)\n");
		skip();
	}
}

/* The same cases on the runtime (distinct names for NVME_TEST filters). */
static void test_add_during_io_rt(void **state)
{
	need_cross_thread_call(*state);
	test_add_during_io(state);
}

static void test_resize_rt(void **state)
{
	need_cross_thread_call(*state);
	test_resize(state);
}

static void test_remove_during_io_rt(void **state)
{
	need_cross_thread_call(*state);
	test_remove_during_io(state);
}

static void test_aen_masked_by_aec_rt(void **state)
{
	need_cross_thread_call(*state);
	test_aen_masked_by_aec(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_during_io, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_resize, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_remove_during_io, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_aen_masked_by_aec, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_change_while_disabled, setup_srv, teardown),
		cmocka_unit_test_setup_teardown(test_bad_inputs, setup_srv, teardown),
		cmocka_unit_test(test_add_conflicts_wzsl),
		cmocka_unit_test_setup_teardown(test_file_resize, setup_srv, teardown),
		/* the runtime: vfurt_dev_call crosses to the home worker */
		cmocka_unit_test_setup_teardown(test_add_during_io_rt, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_resize_rt, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_remove_during_io_rt, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_aen_masked_by_aec_rt, setup_rt, teardown),
	};

	nvme_fx_filters();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
