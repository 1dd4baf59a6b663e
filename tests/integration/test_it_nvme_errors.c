/* Integration tests of bad NVMe commands: each gets its status and the controller carries on. */
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

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "hostsim/nvme_host.h"
#include "common/skip.h"

static void test_bad_io_commands(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint8_t *buf = nh_alloc(h, 4 * NH_PAGE);
	uint64_t outside = nh_mem_iova(h) + nh_mem_size(h) + 16 * NH_PAGE;
	struct nh_sqe sqe;

	/* invalid opcode */
	sqe = (struct nh_sqe){ .cdw0 = 0x7f, .nsid = 1 };
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_INVALID_OPCODE);
	good_io(h, 1, 1);
	/* invalid namespace */
	assert_int_equal(nh_read(h, 1, 3, 0, 1, buf, NFX_NS1_BS, NULL), NH_SC_INVALID_NS);
	assert_int_equal(nh_read(h, 1, 0, 0, 1, buf, NFX_NS1_BS, NULL), NH_SC_INVALID_NS);
	good_io(h, 1, 2);
	/* LBA out of range: past the end, and slba + nlb overflowing */
	assert_int_equal(nh_read(h, 1, 1, NFX_NS1_SIZE / NFX_NS1_BS - 1, 2, buf,
				 2 * NFX_NS1_BS, NULL), NH_SC_LBA_RANGE);
	assert_int_equal(nh_write(h, 1, 2, NFX_NS2_SIZE / NFX_NS2_BS, 1, buf, NFX_NS2_BS, NULL),
			 NH_SC_LBA_RANGE);
	assert_int_equal(nh_read(h, 1, 1, UINT64_MAX, 2, buf, 2 * NFX_NS1_BS, NULL),
			 NH_SC_LBA_RANGE);
	good_io(h, 1, 3);
	/* PRP1 outside mapped memory */
	sqe = (struct nh_sqe){ .cdw0 = NH_CMD_READ, .nsid = 1, .prp1 = outside, .cdw12 = 0 };
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_DATA_XFER_ERROR);
	good_io(h, 1, 4);
	/* PRP2 outside, two pages */
	sqe = (struct nh_sqe){ .cdw0 = NH_CMD_WRITE, .nsid = 1, .prp1 = nh_iova(h, buf),
			       .prp2 = outside, .cdw12 = 15 };
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_DATA_XFER_ERROR);
	/* a PRP list pointer outside, and a list whose entry is outside */
	sqe.cdw12 = 23; /* 3 pages: list */
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_DATA_XFER_ERROR);
	{
		uint64_t *list = (uint64_t *)(void *)(buf + 2 * NH_PAGE);

		list[0] = nh_iova(h, buf + NH_PAGE);
		list[1] = outside;
		sqe.prp2 = nh_iova(h, list);
		assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_DATA_XFER_ERROR);
		/* a list entry with an offset */
		list[1] = nh_iova(h, buf) + 8;
		assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_PRP_INVALID_OFFSET);
	}
	/* PRP2 (second page) with an offset */
	sqe = (struct nh_sqe){ .cdw0 = NH_CMD_WRITE, .nsid = 1, .prp1 = nh_iova(h, buf),
			       .prp2 = nh_iova(h, buf + NH_PAGE) + 4, .cdw12 = 15 };
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_PRP_INVALID_OFFSET);
	good_io(h, 1, 5);
	/* more than MDTS */
	{
		uint8_t id[NH_PAGE];
		uint32_t nlb;

		assert_int_equal(nh_identify(h, NH_CNS_CTRL, 0, id), 0);
		/* vfu-rt sets an MDTS that NLB can exceed */
		assert_true(id[77] != 0 && ((NH_PAGE << id[77]) / NFX_NS1_BS) < 0x10000);
		nlb = (NH_PAGE << id[77]) / NFX_NS1_BS + 1;
		sqe = (struct nh_sqe){ .cdw0 = NH_CMD_READ, .nsid = 1, .prp1 = nh_iova(h, buf),
				       .cdw12 = nlb - 1 };
		assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_INVALID_FIELD);
	}
	/* a reserved PSDT value */
	sqe = (struct nh_sqe){ .cdw0 = NH_CMD_READ | 3u << 14, .nsid = 1,
			       .prp1 = nh_iova(h, buf) };
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_INVALID_FIELD);
	/* fused operation the controller does not support */
	sqe = (struct nh_sqe){ .cdw0 = NH_CMD_READ | 1u << 8, .nsid = 1,
			       .prp1 = nh_iova(h, buf) };
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_INVALID_FIELD);
	good_io(h, 1, 6);
	nh_free(h, buf, 4 * NH_PAGE);
}

static void test_bad_sgl(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint8_t *buf = nh_alloc(h, 4 * NH_PAGE);
	uint64_t outside = nh_mem_iova(h) + nh_mem_size(h) + 16 * NH_PAGE;
	struct nh_sgl_desc *seg = (struct nh_sgl_desc *)(void *)(buf + 2 * NH_PAGE);
	uint8_t id[NH_PAGE];
	uint32_t sgls;
	struct nh_sqe sqe;

	assert_int_equal(nh_identify(h, NH_CNS_CTRL, 0, id), 0);
	memcpy(&sgls, id + 536, 4);
	assert_int_equal(sgls & 3u, 1u); /* SGLs supported (test_it_nvme_io.c) */
#define SGL1(a, l, t) ((struct nh_sqe){ .cdw0 = NH_CMD_READ | NH_PSDT_SGL, .nsid = 1,	\
	.prp1 = (a), .prp2 = (uint64_t)(l) | (uint64_t)((t) << 4) << 56 })
	/* data block outside mapped memory */
	sqe = SGL1(outside, NFX_NS1_BS, NH_SGL_DATA_BLOCK);
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_DATA_XFER_ERROR);
	good_io(h, 1, 1);
	/* a segment outside mapped memory */
	sqe = SGL1(outside, 32, NH_SGL_LAST_SEGMENT);
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_DATA_XFER_ERROR);
	/* a data block in a segment pointing outside */
	memset(seg, 0, NH_PAGE);
	seg[0] = (struct nh_sgl_desc){ .addr = outside, .len = NFX_NS1_BS };
	sqe = SGL1(nh_iova(h, seg), 16, NH_SGL_LAST_SEGMENT);
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_DATA_XFER_ERROR);
	good_io(h, 1, 2);
	/* bad descriptor types: reserved in SGL1, reserved in a segment, keyed */
	sqe = SGL1(nh_iova(h, buf), NFX_NS1_BS, 0xeu);
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_SGL_INVALID_TYPE);
	seg[0] = (struct nh_sgl_desc){ .addr = nh_iova(h, buf), .len = NFX_NS1_BS, .type = 0xe0 };
	sqe = SGL1(nh_iova(h, seg), 16, NH_SGL_LAST_SEGMENT);
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_SGL_INVALID_TYPE);
	sqe = SGL1(nh_iova(h, buf), NFX_NS1_BS, 0x4u);
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_SGL_INVALID_TYPE);
	good_io(h, 1, 3);
	/* data shorter than the transfer */
	sqe = SGL1(nh_iova(h, buf), NFX_NS1_BS - 16, NH_SGL_DATA_BLOCK);
	assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_SGL_INVALID_DATA);
	/* a segment length that is not a multiple of 16, or zero */
	seg[0] = (struct nh_sgl_desc){ .addr = nh_iova(h, buf), .len = NFX_NS1_BS };
	sqe = SGL1(nh_iova(h, seg), 20, NH_SGL_LAST_SEGMENT);
	{
		int st = nh_exec(h, 1, &sqe, NULL);

		assert_true(st == NH_SC_SGL_INVALID_SEG || st == NH_SC_SGL_INVALID_COUNT ||
			    st == NH_SC_INVALID_FIELD);
	}
	/* a Last Segment descriptor inside the last segment */
	seg[0] = (struct nh_sgl_desc){ .addr = nh_iova(h, buf), .len = 256 };
	seg[1] = (struct nh_sgl_desc){ .addr = nh_iova(h, seg + 8), .len = 16,
				       .type = NH_SGL_LAST_SEGMENT << 4 };
	seg[8] = (struct nh_sgl_desc){ .addr = nh_iova(h, buf) + 256, .len = 256 };
	sqe = SGL1(nh_iova(h, seg), 32, NH_SGL_LAST_SEGMENT);
	{
		int st = nh_exec(h, 1, &sqe, NULL);

		assert_true(st == NH_SC_SGL_INVALID_SEG || st == NH_SC_SGL_INVALID_COUNT ||
			    st == NH_SC_SGL_INVALID_TYPE);
	}
	/* a segment that points to itself forever */
	seg[0] = (struct nh_sgl_desc){ .addr = nh_iova(h, seg), .len = 16,
				       .type = NH_SGL_SEGMENT << 4 };
	sqe = SGL1(nh_iova(h, seg), 16, NH_SGL_SEGMENT);
	assert_true(nh_exec(h, 1, &sqe, NULL) > 0);
#undef SGL1
	good_io(h, 1, 4);
	nh_free(h, buf, 4 * NH_PAGE);
}

static void test_bad_admin_commands(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint8_t *ring = nh_alloc(h, NH_PAGE);
	struct nh_sqe sqe;

	/* invalid admin opcode */
	sqe = (struct nh_sqe){ .cdw0 = 0x3e };
	assert_int_equal(nh_admin(h, &sqe, NULL), NH_SC_INVALID_OPCODE);
	/* a reserved admin opcode (03h) */
	sqe = (struct nh_sqe){ .cdw0 = 0x03, .nsid = 1 };
	assert_int_equal(nh_admin(h, &sqe, NULL), NH_SC_INVALID_OPCODE);
	good_io(h, 1, 1);

	/* CQ with an interrupt vector the device does not have */
	sqe = (struct nh_sqe){ .cdw0 = NH_ADM_CREATE_CQ, .prp1 = nh_iova(h, ring),
			       .cdw10 = (NFX_QENT - 1) << 16 | 2, .cdw11 = 200u << 16 | 3 };
	assert_int_equal(nh_admin(h, &sqe, NULL), NH_SC_INVALID_VECTOR);
	/* create over an existing queue: CQ 1 and SQ 1 */
	assert_int_equal(nh_create_cq(h, 1, NFX_QENT, 1), NH_SC_QID_INVALID);
	assert_int_equal(nh_create_sq(h, 1, 1, NFX_QENT), NH_SC_QID_INVALID);
	/* queue ids: 0, beyond the granted number */
	assert_int_equal(nh_create_cq(h, (uint16_t)(NFX_MAX_IOQ + 1), NFX_QENT, -1),
			 NH_SC_QID_INVALID);
	sqe = (struct nh_sqe){ .cdw0 = NH_ADM_CREATE_CQ, .prp1 = nh_iova(h, ring),
			       .cdw10 = (NFX_QENT - 1) << 16 | 0, .cdw11 = 1 };
	assert_int_equal(nh_admin(h, &sqe, NULL), NH_SC_QID_INVALID);
	/* sizes: 1 entry, more than MQES + 1 */
	assert_int_equal(nh_create_cq(h, 2, 1 + 1, -1), 0);
	assert_int_equal(nh_delete_cq(h, 2), 0);
	sqe = (struct nh_sqe){ .cdw0 = NH_ADM_CREATE_CQ, .prp1 = nh_iova(h, ring),
			       .cdw10 = 0u << 16 | 2, .cdw11 = 1 };
	assert_int_equal(nh_admin(h, &sqe, NULL), NH_SC_QUEUE_SIZE);
	if (nh_max_entries(h) < 0x10000) {
		sqe.cdw10 = nh_max_entries(h) << 16 | 2;
		assert_int_equal(nh_admin(h, &sqe, NULL), NH_SC_QUEUE_SIZE);
	}
	/* not physically contiguous (PC = 0) with CAP.CQR set */
	sqe = (struct nh_sqe){ .cdw0 = NH_ADM_CREATE_CQ, .prp1 = nh_iova(h, ring),
			       .cdw10 = (NFX_QENT - 1) << 16 | 2, .cdw11 = 0 };
	assert_int_equal(nh_admin(h, &sqe, NULL), NH_SC_INVALID_FIELD);
	/* an SQ on a CQ that does not exist */
	assert_int_equal(nh_create_sq(h, 2, 5, NFX_QENT), NH_SC_CQ_INVALID);
	assert_int_equal(nh_create_sq(h, 2, 0, NFX_QENT), NH_SC_CQ_INVALID);
	/* delete a CQ that still has an SQ */
	assert_int_equal(nh_delete_cq(h, 1), NH_SC_INVALID_QUEUE_DELETION);
	/* delete queues that do not exist, or the admin queue */
	assert_int_equal(nh_delete_sq(h, 5), NH_SC_QID_INVALID);
	assert_int_equal(nh_delete_cq(h, 5), NH_SC_QID_INVALID);
	assert_int_equal(nh_delete_sq(h, 0), NH_SC_QID_INVALID);
	assert_int_equal(nh_delete_cq(h, 0), NH_SC_QID_INVALID);
	good_io(h, 1, 2);
	/* an unknown log page, an unknown feature */
	{
		uint8_t log[512];
		uint32_t dw0;

		assert_int_equal(nh_get_log(h, 0x6f, 0xffffffffu, false, log, sizeof(log)),
				 NH_SC_INVALID_LOG_PAGE);
		assert_int_equal(nh_get_features(h, 0x6f, 0, &dw0), NH_SC_INVALID_FIELD);
	}
	/* Set Features Number of Queues once queues exist: sequence error */
	assert_int_equal(nh_set_num_queues(h, 2, 2, NULL), NH_SC_CMD_SEQ_ERROR);
	/* delete SQ then CQ: works */
	assert_int_equal(nh_delete_sq(h, 1), 0);
	assert_int_equal(nh_delete_cq(h, 1), 0);
	assert_int_equal(nh_create_io_pair(h, 2, NFX_QENT, 2), 0);
	good_io(h, 2, 3);
	/* and the pair can be created again (stale doorbell bug, see
	 * test_queue_pairs in test_it_nvme_queues.c) */
	assert_int_equal(nh_create_io_pair(h, 1, NFX_QENT, 1), 0);
	good_io(h, 1, 4);
	nh_free(h, ring, NH_PAGE);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, nvme_fx_setup, nvme_fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_bad_io_commands),
		T(test_bad_sgl),
		T(test_bad_admin_commands),
#undef T
	};

	nvme_fx_filters();
	return test_run_group("integration: NVMe bad commands", tests, NULL, NULL);
}
