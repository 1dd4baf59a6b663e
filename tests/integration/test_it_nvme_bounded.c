/* Bounded work per command and per pass: MDTS, large Write Zeroes / Deallocate in steps, a flooding tenant does not starve its neighbour. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/bdev.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "hostsim/nvme_host.h"

/*
 * Controller A: a RAM namespace of 4 KiB blocks, just over 256 MiB, so one
 * Write Zeroes can name 256 MiB (65536 blocks, the most NLB can say).
 * Controller B: a small RAM namespace of 512-byte blocks. Both are homed on
 * the one worker, so everything A makes the worker do delays B.
 */
#define A_BLOCKS (65536u + 256u)
#define BIG_NLB 65536u /* 256 MiB of 4 KiB blocks */
#define BIG_SLBA 1u    /* blocks 0 and BIG_SLBA + BIG_NLB are the neighbours */
#define QENT 256u
/* Liveness bound on B's longest wait, as seen by B's client thread:
 * generous (a pass is ~0.1-0.5 ms of work), since on a loaded 2-CPU host
 * the threads of the test themselves wait for a CPU. Not a speed test: the
 * counts of B's reads while A is busy are what tell bounded from inline. */
#define MAX_GAP_NS 2000000000ull

struct fx {
	struct testsrv *ts;
	struct nvme_host *ha;
	struct nvme_host *hb;
	int fds_before;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct vfurt_dev *make_ctrl(const char *name, uint32_t bs, uint64_t blocks)
{
	return nvme_fx_small_ctrl(name, bs, blocks * bs, QENT);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	/* the clients sleep on their interrupts: 2 CPUs are shared with the worker */
	struct nvme_host_opts ho = { .timeout_ms = 60000, .irq_wait = true };
	struct vfurt_dev *devs[2];

	assert_non_null(f);
	f->fds_before = test_count_fds();
	devs[0] = make_ctrl("nvmeA", 4096, A_BLOCKS);
	devs[1] = make_ctrl("nvmeB", 512, 2048);
	assert_non_null(devs[0]);
	assert_non_null(devs[1]);
	/* one worker: both controllers and all their queues share it */
	f->ts = testsrv_start_rt(devs, 2, NULL, "0", VFURT_POLL_ADAPTIVE);
	assert_non_null(f->ts);
	f->ha = nh_open(testsrv_path(f->ts, 0), &ho);
	f->hb = nh_open(testsrv_path(f->ts, 1), &ho);
	assert_non_null(f->ha);
	assert_non_null(f->hb);
	assert_int_equal(nh_enable(f->ha), 0);
	assert_int_equal(nh_enable(f->hb), 0);
	assert_int_equal(nh_set_num_queues(f->ha, 4, 4, NULL), 0);
	assert_int_equal(nh_set_num_queues(f->hb, 4, 4, NULL), 0);
	assert_int_equal(nh_create_io_pair(f->ha, 1, QENT, 1), 0);
	assert_int_equal(nh_create_io_pair(f->hb, 1, QENT, 1), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int rc;

	nh_close(f->ha);
	nh_close(f->hb);
	testsrv_stop(f->ts);
	rc = it_check_fds(f->fds_before); /* a leak fails the test */
	free(f);
	return rc;
}

/* ---- B's liveness probe: QD1 reads, the longest wait between answers ---- */

struct probe {
	struct nvme_host *h;
	void *buf;
	pthread_t t;
	atomic_bool stop;
	atomic_ulong done;
	uint64_t max_gap_ns;
	int err;
};

static void *probe_main(void *arg)
{
	struct probe *p = arg;
	uint64_t last = now_ns();

	while (!atomic_load(&p->stop)) {
		int rc = nh_read(p->h, 1, 1, 7, 1, p->buf, 512, NULL);
		uint64_t t = now_ns();

		if (rc) {
			p->err = rc;
			break;
		}
		if (t - last > p->max_gap_ns)
			p->max_gap_ns = t - last;
		last = t;
		atomic_fetch_add(&p->done, 1);
	}
	return NULL;
}

static void probe_start(struct fx *f, struct probe *p)
{
	memset(p, 0, sizeof(*p));
	p->h = f->hb;
	p->buf = nh_alloc(f->hb, 4096);
	assert_non_null(p->buf);
	assert_int_equal(pthread_create(&p->t, NULL, probe_main, p), 0);
	/* the first answer: B is served before A's load starts */
	while (atomic_load(&p->done) == 0 && !p->err)
		usleep(1000);
}

static void probe_stop(struct fx *f, struct probe *p)
{
	atomic_store(&p->stop, true);
	pthread_join(p->t, NULL);
	nh_free(f->hb, p->buf, 4096);
	assert_int_equal(p->err, 0);
	printf("# B: %lu reads, longest wait %.2f ms\n", atomic_load(&p->done),
	       (double)p->max_gap_ns / 1e6);
	assert_true(p->max_gap_ns < MAX_GAP_NS);
}

/* ---- data helpers -------------------------------------------------------- */

static const uint64_t marks[] = { 0, BIG_SLBA, BIG_SLBA + BIG_NLB / 2, BIG_SLBA + BIG_NLB - 1,
				  BIG_SLBA + BIG_NLB };

static bool inside(uint64_t lba)
{
	return lba >= BIG_SLBA && lba < BIG_SLBA + BIG_NLB;
}

/* Non-zero data in the range's first, middle and last blocks and both neighbours. */
static void write_marks(struct fx *f)
{
	void *buf = nh_alloc(f->ha, 4096);

	assert_non_null(buf);
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		it_fill(buf, 4096, (uint32_t)(0x100 + i));
		assert_int_equal(nh_write(f->ha, 1, 1, marks[i], 1, buf, 4096, NULL), 0);
	}
	nh_free(f->ha, buf, 4096);
}

/* Inside the range: zero (the marks and a 128 KiB span); outside: intact. */
static void check_marks(struct fx *f)
{
	uint8_t *buf = nh_alloc(f->ha, 128u << 10);
	uint8_t want[4096];
	static const uint8_t zero[4096];

	assert_non_null(buf);
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		assert_int_equal(nh_read(f->ha, 1, 1, marks[i], 1, buf, 4096, NULL), 0);
		it_fill(want, 4096, (uint32_t)(0x100 + i));
		assert_memory_equal(buf, inside(marks[i]) ? zero : want, 4096);
	}
	assert_int_equal(nh_read(f->ha, 1, 1, BIG_SLBA + 1000, 32, buf, 128u << 10, NULL), 0);
	for (size_t off = 0; off < (128u << 10); off += 4096)
		assert_memory_equal(buf + off, zero, 4096);
	nh_free(f->ha, buf, 128u << 10);
}

/*
 * Submit n copies of *io on A's queue 1 while B's probe runs; every one
 * succeeds, B's longest wait stays under MAX_GAP_NS, and B completes at
 * least min_between reads between the submission and A's first answer
 * (which with the backend's round robin comes near the end of the batch;
 * done inline, B got at most the one read it had in flight).
 */
static void batch_vs_probe(struct fx *f, const struct nh_io *io, unsigned n,
			   unsigned long min_between)
{
	uint16_t cid[64];
	struct probe p;
	unsigned long before, first = 0;

	assert_true(n <= 64);
	probe_start(f, &p);
	before = atomic_load(&p.done);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(nh_io_submit(f->ha, 1, io, &cid[i]), 0);
	for (unsigned i = 0; i < n; i++) {
		while (nh_outstanding(f->ha, 1, cid[i])) {
			int r = nh_reap(f->ha, 1);

			assert_true(r >= 0);
			if (!first && r > 0)
				first = atomic_load(&p.done);
			if (!r)
				usleep(200);
		}
		assert_int_equal(nh_wait(f->ha, 1, cid[i], NULL, 0), NH_SC_SUCCESS);
	}
	probe_stop(f, &p);
	printf("# B: %lu reads between A's submission and its first completion\n",
	       first - before);
	assert_true(first - before >= min_between);
}

/* ---- tests ------------------------------------------------------------- */

/* MDTS and WZSL are advertised; a transfer of exactly MDTS works, one page
 * more fails with Invalid Field in Command. */
static void test_mdts(void **state)
{
	struct fx *f = *state;
	uint8_t *id = nh_alloc(f->ha, 4096);
	uint64_t cap;
	uint32_t max;
	void *buf;

	assert_non_null(id);
	assert_int_equal(nh_reg_read64(f->ha, 0x0, &cap), 0);
	assert_int_equal((cap >> 48) & 0xf, 0); /* CAP.MPSMIN: 4 KiB */
	assert_int_equal(nh_identify(f->ha, 0x01, 0, id), 0);
	assert_int_equal(id[77], 5);            /* MDTS: 2^5 pages */
	max = 4096u << id[77];
	assert_int_equal(nh_identify(f->ha, 0x06, 0, id), 0);
	assert_int_equal(id[1], 16);            /* WZSL: 256 MiB with 4 KiB blocks */
	assert_int_equal(nh_identify(f->hb, 0x06, 0, id), 0);
	assert_int_equal(id[1], 13);            /* 32 MiB: NLB's limit at 512 B */
	nh_free(f->ha, id, 4096);

	buf = nh_alloc(f->ha, max + 4096);
	assert_non_null(buf);
	memset(buf, 0x3c, max + 4096);
	assert_int_equal(nh_write(f->ha, 1, 1, 0, max / 4096, buf, max, NULL), NH_SC_SUCCESS);
	assert_int_equal(nh_read(f->ha, 1, 1, 0, max / 4096, buf, max, NULL), NH_SC_SUCCESS);
	assert_int_equal(nh_read(f->ha, 1, 1, 0, max / 4096 + 1, buf, max + 4096, NULL),
			 NH_SC_INVALID_FIELD);
	assert_int_equal(nh_write(f->ha, 1, 1, 0, max / 4096 + 1, buf, max + 4096, NULL),
			 NH_SC_INVALID_FIELD);
	nh_free(f->ha, buf, max + 4096);
	/* the same bytes in 512-byte blocks */
	buf = nh_alloc(f->hb, max + 4096);
	assert_non_null(buf);
	assert_int_equal(nh_read(f->hb, 1, 1, 0, max / 512, buf, max, NULL), NH_SC_SUCCESS);
	assert_int_equal(nh_read(f->hb, 1, 1, 0, max / 512 + 1, buf, max + 512, NULL),
			 NH_SC_INVALID_FIELD);
	nh_free(f->hb, buf, max + 4096);
	/* the controller is still fine */
	assert_int_equal(nh_write_read_check(f->ha, 1, 1, 3, 4096, 0x77, NULL, NULL), 0);
}

/* 16 Write Zeroes of 256 MiB each (4 GiB of zeroing) in steps, B served
 * all along; then the same with DEAC (the backend releases instead). */
static void test_big_write_zeroes(void **state)
{
	struct fx *f = *state;
	struct nh_io io = { .opc = NH_CMD_WRITE_ZEROES, .nsid = 1, .slba = BIG_SLBA,
			    .nlb = BIG_NLB };

	write_marks(f);
	batch_vs_probe(f, &io, 16, 3);
	check_marks(f);

	/* releasing is ~16 times cheaper than zeroing: liveness only */
	write_marks(f);
	io.cdw12 = 1u << 25; /* DEAC */
	batch_vs_probe(f, &io, 16, 0);
	check_marks(f);
	/* released memory is written again */
	assert_int_equal(nh_write_read_check(f->ha, 1, 1, BIG_SLBA + 5, 4096, 0x55, NULL, NULL),
			 0);
}

/* Deallocate of 256 MiB, as one range and as 64 ranges of 4 MiB. */
static void test_big_deallocate(void **state)
{
	struct fx *f = *state;
	struct nh_dsm_range *r = nh_alloc(f->ha, 4096);
	struct nh_io io = { .opc = NH_CMD_DSM, .nsid = 1, .buf = r, .len = 4096,
			    .cdw11 = 1u << 2 };

	assert_non_null(r);
	memset(r, 0, 4096);
	r[0].slba = BIG_SLBA;
	r[0].nlb = BIG_NLB;
	write_marks(f);
	io.cdw10 = 0; /* one range */
	batch_vs_probe(f, &io, 4, 0);
	check_marks(f);

	/* 64 ranges, in reverse order */
	for (unsigned i = 0; i < 64; i++) {
		r[i].slba = BIG_SLBA + (63u - i) * (BIG_NLB / 64);
		r[i].nlb = BIG_NLB / 64;
	}
	write_marks(f);
	io.cdw10 = 63;
	batch_vs_probe(f, &io, 4, 0);
	check_marks(f);
	nh_free(f->ha, r, 4096);
}

/*
 * A Delete I/O SQ and a shutdown behind a backlog of 16 Write Zeroes of
 * 256 MiB: the controller works the backlog off in bounded passes (it used
 * to wait in one loop on the worker), answers when it is done, and B is
 * served meanwhile. Every command of the deleted SQ completes first.
 */
static void test_drain_backlog(void **state)
{
	struct fx *f = *state;
	struct nh_io io = { .opc = NH_CMD_WRITE_ZEROES, .nsid = 1, .slba = BIG_SLBA,
			    .nlb = BIG_NLB };
	struct nh_stats st0, st1;
	struct probe p;
	uint16_t cid;

	probe_start(f, &p);
	nh_get_stats(f->ha, &st0);
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(nh_io_submit(f->ha, 1, &io, &cid), 0);
	/* a read behind them: once it is answered, the 16 were fetched too (a
	 * Delete drops commands not fetched yet) */
	assert_int_equal(nh_write_read_check(f->ha, 1, 1, 0, 4096, 0x11, NULL, NULL), 0);
	assert_int_equal(nh_delete_sq(f->ha, 1), 0);
	nh_get_stats(f->ha, &st1);
	probe_stop(f, &p);
	/* the 16 (reaped by nh_delete_sq), the write and read, and the
	 * Delete's own completion */
	assert_int_equal(st1.completions - st0.completions, 19);
	assert_int_equal(st1.strays, st0.strays);
	assert_int_equal(nh_delete_cq(f->ha, 1), 0);

	assert_int_equal(nh_create_io_pair(f->ha, 1, QENT, 1), 0);
	probe_start(f, &p);
	nh_get_stats(f->ha, &st0);
	for (unsigned i = 0; i < 16; i++)
		assert_int_equal(nh_io_submit(f->ha, 1, &io, &cid), 0);
	assert_int_equal(nh_write_read_check(f->ha, 1, 1, 0, 4096, 0x12, NULL, NULL), 0);
	assert_int_equal(nh_shutdown(f->ha), 0);
	probe_stop(f, &p);
	while (nh_reap(f->ha, 1) > 0)
		;
	nh_get_stats(f->ha, &st1);
	assert_int_equal(st1.completions - st0.completions, 18);
}

/* ---- flood -------------------------------------------------------------- */

struct flood {
	struct nvme_host *h;
	void *buf[128];
	pthread_t t;
	atomic_bool stop;
	unsigned long done;
	int err;
};

#define FLOOD_QD 128u
#define FLOOD_BS (128u << 10)

/* Keep A's SQ full of MDTS-sized reads until told to stop. */
static void *flood_main(void *arg)
{
	struct flood *fl = arg;
	uint16_t cid[FLOOD_QD];
	bool busy[FLOOD_QD] = { false };
	unsigned inflight = 0;

	while (!fl->err && (!atomic_load(&fl->stop) || inflight)) {
		int r;

		for (unsigned i = 0; i < FLOOD_QD && !atomic_load(&fl->stop); i++) {
			struct nh_io io = { .opc = NH_CMD_READ, .nsid = 1,
					    .slba = (uint64_t)i * (FLOOD_BS / 4096),
					    .nlb = FLOOD_BS / 4096, .buf = fl->buf[i],
					    .len = FLOOD_BS };

			if (busy[i])
				continue;
			r = nh_io_submit(fl->h, 1, &io, &cid[i]);
			if (r == -EAGAIN)
				break;
			if (r) {
				fl->err = r;
				break;
			}
			busy[i] = true;
			inflight++;
		}
		r = nh_reap(fl->h, 1);
		if (r == 0)
			r = nh_wait_irq(fl->h, 1, 1); /* sleep: B's client needs a CPU too */
		if (r < 0) {
			fl->err = r;
			break;
		}
		for (unsigned i = 0; i < FLOOD_QD; i++) {
			if (!busy[i] || nh_outstanding(fl->h, 1, cid[i]))
				continue;
			r = nh_wait(fl->h, 1, cid[i], NULL, 0);
			if (r) {
				fl->err = r < 0 ? r : -EIO;
				break;
			}
			busy[i] = false;
			inflight--;
			fl->done++;
		}
	}
	return NULL;
}

/* A keeps 128 reads of 128 KiB queued for a second and a half; B's QD1
 * reads keep completing, and A gets served too. */
static void test_flood_fairness(void **state)
{
	struct fx *f = *state;
	struct flood fl = { .h = f->ha };
	struct probe p;

	for (unsigned i = 0; i < FLOOD_QD; i++) {
		fl.buf[i] = nh_alloc(f->ha, FLOOD_BS);
		assert_non_null(fl.buf[i]);
	}
	probe_start(f, &p);
	assert_int_equal(pthread_create(&fl.t, NULL, flood_main, &fl), 0);
	usleep(1500 * 1000);
	atomic_store(&fl.stop, true);
	pthread_join(fl.t, NULL);
	probe_stop(f, &p);
	assert_int_equal(fl.err, 0);
	printf("# A: %lu reads of 128 KiB\n", fl.done);
	assert_true(fl.done > 0);
	assert_true(atomic_load(&p.done) >= 10);
	for (unsigned i = 0; i < FLOOD_QD; i++)
		nh_free(f->ha, fl.buf[i], FLOOD_BS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mdts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_write_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_deallocate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flood_fairness, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
