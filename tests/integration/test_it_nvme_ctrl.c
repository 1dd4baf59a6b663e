/* Integration tests of NVMe controller state: enable, disable, shutdown, identify, reset. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/nvme.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "hostsim/nvme_host.h"
#include "common/skip.h"

static void test_enable_disable(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint64_t cap;
	uint32_t vs, csts, cc;

	assert_int_equal(nh_reg_read64(h, NH_REG_CAP, &cap), 0);
	assert_true((cap & 0xffff) >= 1);          /* MQES */
	assert_true(cap & (1ull << 16));           /* CQR: contiguous queues */
	assert_true(cap & (1ull << 37));           /* CSS: NVM command set */
	assert_int_equal((cap >> 48) & 0xf, 0);    /* MPSMIN 4 KiB */
	assert_true(((cap >> 24) & 0xff) >= 1);    /* TO */
	assert_int_equal(nh_db_stride(h), 4u << ((cap >> 32) & 0xf));
	assert_int_equal(nh_reg_read32(h, NH_REG_VS, &vs), 0);
	assert_true(vs >= 0x00010200u);
	assert_true(nh_doorbells_mapped(h));
	assert_true(nh_nvec(h) >= 2);

	assert_int_equal(nh_reg_read32(h, NH_REG_CSTS, &csts), 0);
	assert_int_equal(csts & (NH_CSTS_RDY | NH_CSTS_CFS), NH_CSTS_RDY);
	assert_int_equal(nh_reg_read32(h, NH_REG_CC, &cc), 0);
	assert_int_equal(cc & 0x00fff0f1u, NH_CC_IOCQES(4) | NH_CC_IOSQES(6) | NH_CC_EN);

	/* disable: RDY drops, queues are gone */
	assert_int_equal(nh_disable(h), 0);
	assert_int_equal(nh_reg_read32(h, NH_REG_CSTS, &csts), 0);
	assert_int_equal(csts & NH_CSTS_RDY, 0);

	/* several cycles, each followed by working admin and I/O */
	for (int i = 0; i < 3; i++) {
		uint8_t id[NH_PAGE];

		assert_int_equal(nh_enable(h), 0);
		assert_int_equal(nh_identify(h, NH_CNS_CTRL, 0, id), 0);
		assert_int_equal(nh_set_num_queues(h, 2, 2, NULL), 0);
		assert_int_equal(nh_create_io_pair(h, 1, NFX_QENT, 1), 0);
		good_io(h, 1, 100 + (uint32_t)i);
	}

	/* normal shutdown completes; the controller comes back after a reset */
	assert_int_equal(nh_shutdown(h), 0);
	assert_int_equal(nh_enable(h), 0);
	assert_int_equal(nh_set_num_queues(h, 2, 2, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, NFX_QENT, 1), 0);
	good_io(h, 1, 200);
}

static void test_identify(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint8_t id[NH_PAGE];
	uint16_t vid, ssvid, pci_vid;
	uint32_t nn, list[NH_PAGE / 4];
	const struct { uint32_t nsid, bs, size; } ns[2] = {
		{ 1, NFX_NS1_BS, NFX_NS1_SIZE }, { 2, NFX_NS2_BS, NFX_NS2_SIZE },
	};

	assert_int_equal(nh_identify(h, NH_CNS_CTRL, 0, id), 0);
	memcpy(&vid, id + 0, 2);
	memcpy(&ssvid, id + 2, 2);
	assert_int_equal(vfurt_client_region_read(nh_client(h), VFURT_REGION_CONFIG, 0, &pci_vid,
						  2), 0);
	assert_int_equal(vid, pci_vid);
	assert_true(vid != 0 && vid != 0xffff);
	assert_memory_equal(id + 4, "VFURT-TEST-0001     ", 20);         /* SN, space padded */
	assert_memory_equal(id + 24, "vfu-rt test NVMe", 16);             /* MN */
	for (int i = 24 + 16; i < 64; i++)
		assert_int_equal(id[i], ' ');
	assert_true(id[64] > ' ');                                       /* FR */
	assert_true(id[77] >= 1);                                        /* MDTS */
	assert_int_equal(id[512], 0x66);                                 /* SQES */
	assert_int_equal(id[513], 0x44);                                 /* CQES */
	memcpy(&nn, id + 516, 4);
	assert_int_equal(nn, VFURT_NVME_MAX_NS);  /* NN: nsids one may add at, 2 active */

	for (int i = 0; i < 2; i++) {
		uint64_t nsze, ncap;
		uint8_t flbas;

		memset(id, 0xa5, sizeof(id));
		assert_int_equal(nh_identify(h, NH_CNS_NS, ns[i].nsid, id), 0);
		memcpy(&nsze, id + 0, 8);
		memcpy(&ncap, id + 8, 8);
		flbas = id[26] & 0xf;
		assert_int_equal(nsze, ns[i].size / ns[i].bs);
		assert_int_equal(ncap, nsze);
		assert_true(flbas <= id[25]);                            /* NLBAF */
		assert_int_equal(1u << id[128 + 4 * flbas + 2], ns[i].bs); /* LBADS */
		assert_int_equal(id[128 + 4 * flbas] | id[128 + 4 * flbas + 1] << 8, 0); /* MS */
	}

	/* active namespace list: 1, 2, then zeroes */
	assert_int_equal(nh_identify(h, NH_CNS_NS_ACTIVE_LIST, 0, list), 0);
	assert_int_equal(list[0], 1);
	assert_int_equal(list[1], 2);
	assert_int_equal(list[2], 0);
	assert_int_equal(nh_identify(h, NH_CNS_NS_ACTIVE_LIST, 1, list), 0);
	assert_int_equal(list[0], 2);
	assert_int_equal(list[1], 0);

	/* an inactive nsid (within NN) reads as zeroes; one beyond NN is invalid */
	memset(id, 0xa5, sizeof(id));
	assert_int_equal(nh_identify(h, NH_CNS_NS, 3, id), 0);
	for (size_t i = 0; i < sizeof(id); i++)
		assert_int_equal(id[i], 0);
	assert_int_equal(nh_identify(h, NH_CNS_NS, VFURT_NVME_MAX_NS + 1, id), NH_SC_INVALID_NS);
	/* an unknown CNS */
	assert_int_equal(nh_identify(h, 0x7f, 0, id), NH_SC_INVALID_FIELD);
	good_io(h, 1, 1);
}

/*
 * CC.EN = 0 with commands outstanding (inflight) or after they completed,
 * with an AER outstanding, then enable again: I/O works. The same for
 * DEVICE_RESET.
 */
static void reset_test(struct nvme_host *h, bool inflight)
{
	size_t len = 32 * NFX_NS1_BS;
	uint8_t *buf = nh_alloc(h, len);
	uint32_t csts;

	for (int round = 0; round < 3; round++) {
		uint16_t cid[24];

		for (int i = 0; i < 24; i++) {
			struct nh_io io = { .opc = (i & 1) ? NH_CMD_READ : NH_CMD_WRITE,
					    .nsid = 1, .slba = (uint64_t)i * 32,
					    .nlb = 32, .buf = buf, .len = len };

			assert_int_equal(nh_io_submit(h, 1, &io, &cid[i]), 0);
		}
		for (int i = 0; !inflight && i < 24; i++)
			assert_int_equal(nh_wait(h, 1, cid[i], NULL, -1), 0);
		/* an AER outstanding too: it must simply be dropped */
		assert_int_equal(nh_aer_submit(h, NULL), 0);
		assert_int_equal(nh_disable(h), 0);
		assert_int_equal(nh_reg_read32(h, NH_REG_CSTS, &csts), 0);
		assert_int_equal(csts & (NH_CSTS_RDY | NH_CSTS_CFS), 0);
		assert_int_equal(nh_enable(h), 0);
		assert_int_equal(nh_set_num_queues(h, 2, 2, NULL), 0);
		assert_int_equal(nh_create_io_pair(h, 1, NFX_QENT, 1), 0);
		good_io(h, 1, 400 + (uint32_t)round);
	}
	/* DEVICE_RESET (FLR-like), too */
	for (int i = 0; i < 8; i++) {
		struct nh_io io = { .opc = NH_CMD_WRITE, .nsid = 1, .slba = (uint64_t)i * 32,
				    .nlb = 32, .buf = buf, .len = len };
		uint16_t cid;

		assert_int_equal(nh_io_submit(h, 1, &io, &cid), 0);
		if (!inflight)
			assert_int_equal(nh_wait(h, 1, cid, NULL, -1), 0);
	}
	assert_int_equal(vfurt_client_reset(nh_client(h)), 0);
	assert_int_equal(nh_pci_reinit(h), 0);
	assert_int_equal(nh_reg_read32(h, NH_REG_CSTS, &csts), 0);
	assert_int_equal(csts & NH_CSTS_RDY, 0);
	assert_int_equal(nh_enable(h), 0);
	assert_int_equal(nh_set_num_queues(h, 2, 2, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, NFX_QENT, 1), 0);
	good_io(h, 1, 450);
	nh_free(h, buf, len);
}

static void test_reset_idle(void **state)
{
	struct nvme_fx *f = *state;

	reset_test(f->h, false);
}

/* Regression: vfr_nvme_ctrl_reset (nvme_regs.c) used to free the SQs before the
 * CQs; vfr_nvme_cq_free then destroyed the bdev channels, whose cancelled
 * requests' callbacks (nvme_io.c io_cb -> req_done) touched r->sq, already
 * freed: heap-use-after-free / SIGSEGV whenever I/O is in flight. */
static void test_reset_during_io(void **state)
{
	struct nvme_fx *f = *state;

	reset_test(f->h, true);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, nvme_fx_setup, nvme_fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_enable_disable),
		T(test_identify),
		T(test_reset_idle),
		T(test_reset_during_io),
#undef T
	};

	nvme_fx_filters();
	return test_run_group("integration: NVMe controller state", tests, NULL, NULL);
}
