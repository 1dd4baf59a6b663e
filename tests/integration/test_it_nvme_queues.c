/* Integration tests of NVMe I/O queue pairs: create, delete (with I/O in flight), many queues. */
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

static void test_queue_pairs(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint32_t dw0 = 0;

	/* Number of Queues may only be set before any I/O queue exists */
	assert_int_equal(nh_enable(h), 0);
	/* the granted counts: as asked when within the limit */
	assert_int_equal(nh_set_num_queues(h, NFX_MAX_IOQ, NFX_MAX_IOQ, &dw0), 0);
	assert_int_equal(dw0 & 0xffff, NFX_MAX_IOQ - 1);
	assert_int_equal(dw0 >> 16, NFX_MAX_IOQ - 1);
	/* more than offered: the controller's maximum */
	assert_int_equal(nh_set_num_queues(h, 1000, 1000, &dw0), 0);
	assert_int_equal(dw0 & 0xffff, NFX_MAX_IOQ - 1);

	for (uint16_t q = 1; q <= NFX_MAX_IOQ; q++)
		assert_int_equal(nh_create_io_pair(h, q, 16 + q, (int)(q % nh_nvec(h))), 0);
	for (uint16_t q = 1; q <= NFX_MAX_IOQ; q++)
		good_io(h, q, q);
	for (uint16_t q = NFX_MAX_IOQ; q >= 2; q--) {
		assert_int_equal(nh_delete_sq(h, q), 0);
		assert_int_equal(nh_delete_cq(h, q), 0);
	}
	/* recreate a deleted queue with a different size (regression: the
	 * doorbell page used to keep the deleted queue's values, so the new
	 * queue started from a stale tail/head) */
	assert_int_equal(nh_create_io_pair(h, 2, 2, -1), 0);
	for (int i = 0; i < 5; i++)
		good_io(h, 2, 50 + (uint32_t)i); /* a 2-entry queue wraps every command */
	/* a fresh 2-entry queue: every command wraps the rings */
	assert_int_equal(nh_enable(h), 0);
	assert_int_equal(nh_set_num_queues(h, 4, 4, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, NFX_QENT, 1), 0);
	assert_int_equal(nh_create_io_pair(h, 2, 2, -1), 0);
	for (int i = 0; i < 5; i++)
		good_io(h, 2, 50 + (uint32_t)i);
	/* two SQs on one CQ */
	assert_int_equal(nh_create_sq(h, 3, 1, NFX_QENT), 0);
	good_io(h, 3, 60);
	good_io(h, 1, 61);
	assert_int_equal(nh_delete_sq(h, 3), 0);
}

/* Delete SQ with commands in flight: each is completed, aborted (SQ
 * deletion) or implicitly completed (no CQE, ever) by the time the Delete
 * completes; the CQ carries on. */
static void test_delete_sq_with_io(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	size_t len = 32 * NFX_NS1_BS;
	uint8_t *buf = nh_alloc(h, len);
	struct nh_sqe del = { .cdw0 = NH_ADM_DELETE_SQ, .cdw10 = 2 };
	uint16_t cid[16];

	assert_int_equal(nh_create_io_pair(h, 2, NFX_QENT, 2), 0);
	for (int i = 0; i < 16; i++) {
		struct nh_io io = { .opc = NH_CMD_WRITE, .nsid = 1, .slba = (uint64_t)i * 32,
				    .nlb = 32, .buf = buf, .len = len };

		assert_int_equal(nh_io_submit(h, 2, &io, &cid[i]), 0);
	}
	/* raw Delete: the host keeps SQ 2's slots to check them afterwards */
	assert_int_equal(nh_admin(h, &del, NULL), 0);
	for (int i = 0; i < 16; i++) {
		int st = nh_wait(h, 2, cid[i], NULL, 0);

		if (st == -ETIMEDOUT)
			cid[i] = UINT16_MAX; /* implicitly completed */
		else if (st != 0 && st != NH_SC_ABORT_SQ_DELETED)
			fail_msg("command %d after SQ deletion: %#x", i, st);
	}
	/* nothing more arrives for the deleted SQ */
	usleep(50 * 1000);
	assert_int_equal(nh_reap(h, 2), 0);
	for (int i = 0; i < 16; i++)
		if (cid[i] != UINT16_MAX)
			assert_false(nh_outstanding(h, 2, cid[i]));
	/* a new SQ on the same CQ works */
	assert_int_equal(nh_create_sq(h, 3, 2, NFX_QENT), 0);
	good_io(h, 3, 1);
	assert_int_equal(nh_delete_sq(h, 3), 0);
	assert_int_equal(nh_delete_cq(h, 2), 0);
	good_io(h, 1, 2);
	nh_free(h, buf, len);
}

/* Many commands outstanding on several queues, completed by two workers. */
static void test_multi_queue_runtime(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	enum { NQ = 4, DEPTH = 16, BLKS = 8 };
	size_t len = BLKS * NFX_NS1_BS;
	uint8_t *buf[NQ][DEPTH];
	uint16_t cid[NQ][DEPTH];

	for (uint16_t q = 2; q <= NQ; q++)
		assert_int_equal(nh_create_io_pair(h, q, NFX_QENT, q), 0);
	for (int round = 0; round < 3; round++) {
		uint8_t op = NH_CMD_WRITE;

		for (int pass = 0; pass < 2; pass++, op = NH_CMD_READ) {
			/* queue everything, then ring each SQ once */
			for (uint16_t q = 1; q <= NQ; q++) {
				for (int d = 0; d < DEPTH; d++) {
					struct nh_io io = {
						.opc = op, .nsid = 1,
						.slba = (uint64_t)((q - 1) * DEPTH + d) * BLKS,
						.nlb = BLKS, .len = len,
					};
					uint32_t seed = (uint32_t)(round * 10000 + q * 100 + d);

					if (op == NH_CMD_WRITE) {
						buf[q - 1][d] = nh_alloc(h, len);
						assert_non_null(buf[q - 1][d]);
						it_fill(buf[q - 1][d], len, seed);
					} else {
						memset(buf[q - 1][d], 0, len);
					}
					io.buf = buf[q - 1][d];
					assert_int_equal(nh_io_submit(h, q, &io, &cid[q - 1][d]), 0);
				}
			}
			for (uint16_t q = 1; q <= NQ; q++)
				for (int d = 0; d < DEPTH; d++)
					assert_int_equal(nh_wait(h, q, cid[q - 1][d], NULL, -1), 0);
		}
		for (uint16_t q = 1; q <= NQ; q++)
			for (int d = 0; d < DEPTH; d++) {
				uint32_t seed = (uint32_t)(round * 10000 + q * 100 + d);

				assert_true(it_check(buf[q - 1][d], len, seed));
				nh_free(h, buf[q - 1][d], len);
			}
	}
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, nvme_fx_setup, nvme_fx_teardown)
#define TS(fn, s) cmocka_unit_test_setup_teardown(fn, s, nvme_fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_queue_pairs),
		TS(test_multi_queue_runtime, nvme_fx_setup_rt),
		T(test_delete_sq_with_io),
#undef T
#undef TS
	};

	nvme_fx_filters();
	return test_run_group("integration: NVMe queues", tests, NULL, NULL);
}
