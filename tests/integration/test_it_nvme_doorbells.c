/* Integration tests of NVMe doorbells: by message, shadow doorbells, invalid doorbell writes. */
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

/* Doorbells written with REGION_WRITE instead of the mmap'ed page. */
static void test_doorbell_messages(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;

	assert_false(nh_doorbells_mapped(h));
	for (uint32_t i = 0; i < 8; i++)
		good_io(h, 1, 300 + i);
	nvme_fx_rw_verify(h, 1, 2, NFX_NS2_BS, 0, 8 * NH_PAGE, 0, NULL, NULL, 310);
}

/* Doorbell Buffer Config: shadow doorbells and EventIdx. */
static void test_shadow_doorbells(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint8_t id[NH_PAGE];
	uint16_t oacs;
	struct nh_stats st;
	uint8_t *bufs[32];
	uint16_t cids[32];

	assert_int_equal(nh_identify(h, NH_CNS_CTRL, 0, id), 0);
	memcpy(&oacs, id + 256, 2);
	assert_true(oacs & (1u << 8)); /* vfu-rt advertises Doorbell Buffer Config */
	/* PRP1 not page aligned is refused */
	{
		struct nh_sqe sqe = { .cdw0 = NH_ADM_DBBUF, .prp1 = nh_mem_iova(h) + 8,
				      .prp2 = nh_mem_iova(h) + NH_PAGE };

		assert_int_equal(nh_admin(h, &sqe, NULL), NH_SC_INVALID_FIELD);
	}
	assert_int_equal(nh_dbbuf_enable(h), 0);
	/* the queue created before and one created after */
	assert_int_equal(nh_create_io_pair(h, 2, NFX_QENT, 2), 0);
	for (int round = 0; round < 4; round++) {
		good_io(h, 1, 500 + (uint32_t)round);
		good_io(h, 2, 600 + (uint32_t)round);
	}
	/* a burst: the controller is polling, so most doorbells can be skipped */
	for (int i = 0; i < 32; i++) {
		struct nh_io io = { .opc = NH_CMD_WRITE, .nsid = 2, .slba = (uint64_t)i, .nlb = 1,
				    .len = NFX_NS2_BS };

		bufs[i] = nh_alloc(h, NFX_NS2_BS);
		it_fill(bufs[i], NFX_NS2_BS, 700 + (uint32_t)i);
		io.buf = bufs[i];
		assert_int_equal(nh_io_submit(h, 2, &io, &cids[i]), 0);
	}
	for (int i = 0; i < 32; i++)
		assert_int_equal(nh_wait(h, 2, cids[i], NULL, -1), 0);
	for (int i = 0; i < 32; i++) {
		memset(bufs[i], 0, NFX_NS2_BS);
		assert_int_equal(nh_read(h, 2, 2, (uint64_t)i, 1, bufs[i], NFX_NS2_BS, NULL), 0);
		assert_true(it_check(bufs[i], NFX_NS2_BS, 700 + (uint32_t)i));
		nh_free(h, bufs[i], NFX_NS2_BS);
	}
	/* the controller publishes EventIdx for the SQs it serves */
	assert_true(nh_dbbuf_eventidx(h, 2, false) != 0);
	nh_get_stats(h, &st);
	print_message("shadow doorbells: %llu written, %llu skipped\n",
		      (unsigned long long)st.mmio_doorbells, (unsigned long long)st.shadow_skipped);
	/* after a controller reset shadow doorbells are off until configured again */
	assert_int_equal(nh_enable(h), 0);
	assert_int_equal(nh_set_num_queues(h, 2, 2, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, NFX_QENT, 1), 0);
	good_io(h, 1, 800);
}

/* An SQ tail doorbell beyond the queue size: Asynchronous Event (error,
 * invalid doorbell write value), the queue stops; other queues carry on. */
static void test_bad_doorbell(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	struct nh_cqe cqe;
	uint8_t log[64 * 4];
	uint16_t aer;

	assert_int_equal(nh_create_io_pair(h, 2, NFX_QENT, 2), 0);
	assert_int_equal(nh_aer_submit(h, &aer), 0);
	/* the AER stays outstanding while nothing happens */
	good_io(h, 1, 1);
	assert_int_equal(nh_wait(h, 0, aer, NULL, 50), -ETIMEDOUT);

	assert_int_equal(nh_ring_raw(h, 2, false, NFX_QENT + 5), 0);
	assert_int_equal(nh_wait(h, 0, aer, &cqe, -1), 0);
	assert_int_equal(cqe.dw0 & 0x7, 0);           /* type: error status */
	assert_int_equal((cqe.dw0 >> 8) & 0xff, 0x01); /* invalid doorbell write value */
	assert_int_equal((cqe.dw0 >> 16) & 0xff, 0x01); /* log page: error information */
	/* the other queue still works; read the log to unmask the event */
	good_io(h, 1, 2);
	assert_int_equal(nh_get_log(h, 0x01, 0xffffffffu, false, log, sizeof(log)), 0);
	/* the broken queue pair can be deleted */
	assert_int_equal(nh_delete_sq(h, 2), 0);
	assert_int_equal(nh_delete_cq(h, 2), 0);
	/* and recreated (the stale doorbell bug of test_queue_pairs in
	 * test_it_nvme_queues.c: the new SQ saw the invalid tail again) */
	assert_int_equal(nh_create_io_pair(h, 2, NFX_QENT, 2), 0);
	good_io(h, 2, 3);
	assert_int_equal(nh_create_io_pair(h, 3, NFX_QENT, 3), 0);
	good_io(h, 3, 3);

	/* a CQ head doorbell beyond the CQ size: the same event */
	assert_int_equal(nh_aer_submit(h, &aer), 0);
	assert_int_equal(nh_ring_raw(h, 3, true, NFX_QENT + 1), 0);
	assert_int_equal(nh_wait(h, 0, aer, &cqe, -1), 0);
	assert_int_equal(cqe.dw0 & 0x7, 0);
	assert_int_equal((cqe.dw0 >> 8) & 0xff, 0x01);
	assert_int_equal(nh_get_log(h, 0x01, 0xffffffffu, false, log, sizeof(log)), 0);
	good_io(h, 1, 4);

	/* A doorbell of a queue that does not exist: "write to invalid doorbell
	 * register" event. Only a trapped write can be seen (a write to the
	 * mapped page cannot), so it is sent by message here. */
	assert_int_equal(nh_aer_submit(h, &aer), 0);
	assert_int_equal(vfurt_client_region_write(nh_client(h), VFURT_REGION_BAR0,
						   NH_REG_DBS + 7u * 2u * nh_db_stride(h),
						   &(uint32_t){ 1 }, 4), 0);
	assert_int_equal(nh_wait(h, 0, aer, &cqe, -1), 0);
	assert_int_equal(cqe.dw0 & 0x7, 0);
	assert_int_equal((cqe.dw0 >> 8) & 0xff, 0x00);
	assert_int_equal(nh_get_log(h, 0x01, 0xffffffffu, false, log, sizeof(log)), 0);
	/* the queue pair still works, and the AER limit was not leaked */
	good_io(h, 1, 5);
	for (int i = 0; i < 4; i++)
		assert_int_equal(nh_aer_submit(h, NULL), 0);
	good_io(h, 1, 6);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, nvme_fx_setup, nvme_fx_teardown)
#define TS(fn, s) cmocka_unit_test_setup_teardown(fn, s, nvme_fx_teardown)
	const struct CMUnitTest tests[] = {
		TS(test_doorbell_messages, nvme_fx_setup_db_msg),
		T(test_shadow_doorbells),
		T(test_bad_doorbell),
#undef T
#undef TS
	};

	nvme_fx_filters();
	return test_run_group("integration: NVMe doorbells", tests, NULL, NULL);
}
