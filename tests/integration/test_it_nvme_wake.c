/* Integration tests of NVMe doorbell notification: ioeventfds, shadow doorbells and sleeping workers, irq batching. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

#define NS_BS 512u
#define NS_SIZE (4u << 20)
#define MAX_IOQ 4u
#define QENT 64u
/*
 * A sleeping worker that nothing wakes sleeps this long, far beyond the
 * host's 5 s completion timeout: an I/O after an idle gap completes only if
 * its doorbell woke the worker (or the runtime capped the sleep).
 */
#define LONG_SLEEP_US 30000000u

static struct vfurt_dev *make_ctrl(const char *name, bool ioeventfd, bool per_cqe)
{
	struct vfurt_bdev *b = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "ns1", .block_size = NS_BS,
		.size_bytes = NS_SIZE });
	struct vfurt_bdev *ns[1] = { b };
	struct vfurt_nvme_opts o = {
		.opts_size = sizeof(o),
		.name = name,
		.max_io_queues = MAX_IOQ,
		.ns = ns,
		.nr_ns = 1,
		.own_bdevs = true,
		.ioeventfd = ioeventfd,
		.irq_per_completion = per_cqe,
	};

	assert_non_null(b);
	o.log = it_dev_log(name);
	return vfurt_nvme_create(&o);
}

/* Two controllers (the second one must keep working whatever the first
 * sees) on an adaptive runtime whose workers sleep "forever" unless woken. */
static struct testsrv *start(bool ioeventfd, bool unbatched, uint32_t poll_sleep_us)
{
	struct vfurt_dev *devs[2] = { make_ctrl("nvme0", ioeventfd, unbatched),
				      make_ctrl("nvme1", false, false) };
	struct vfurt_runtime_opts ro = {
		.opts_size = sizeof(ro),
		.cores = it_cores(),
		.poll_mode = VFURT_POLL_ADAPTIVE,
		.adaptive_sleep_max_us = LONG_SLEEP_US,
		.adaptive_poll_sleep_us = poll_sleep_us,
		.irq_unbatched = unbatched,
	};

	assert_non_null(devs[0]);
	assert_non_null(devs[1]);
	return testsrv_start_rt_opts(devs, 2, &ro);
}

static struct nvme_host *host_up(struct nvme_fx *f, size_t dev,
				 const struct nvme_host_opts *ho, bool dbbuf)
{
	struct nvme_host *h = nvme_fx_host(f, dev, ho);

	assert_int_equal(nh_set_num_queues(h, MAX_IOQ, MAX_IOQ, NULL), 0);
	if (dbbuf)
		assert_int_equal(nh_dbbuf_enable(h), 0);
	assert_int_equal(nh_create_io_pair(h, 1, QENT, 1), 0);
	return h;
}

static void io_ok_at(struct nvme_host *h, uint32_t seed, int line)
{
	int wst, rst;

	if (nh_write_read_check(h, 1, 1, seed % 64, NS_BS, seed, &wst, &rst))
		fail_msg("I/O (line %d): write %d read %d (or data differ)", line, wst, rst);
}

#define io_ok(h, seed) io_ok_at(h, seed, __LINE__)

/* Long enough for every worker to stop spinning (100 us) and sleep. */
static void idle_gap(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 20 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

/* The sleeps of all workers so far (a sleep is counted when it ends). */
static uint64_t total_sleeps(struct testsrv *ts)
{
	struct vfurt_runtime *rt = testsrv_runtime(ts);
	uint64_t n = 0;

	for (uint32_t i = 0; i < vfurt_runtime_worker_count(rt); i++) {
		struct vfurt_worker_stats st = { .stats_size = sizeof(st) };

		assert_int_equal(vfurt_runtime_get_worker_stats(rt, i, &st), 0);
		n += st.sleeps;
	}
	return n;
}

/*
 * An idle gap, and proof that the workers slept in it: each is seen
 * "sleeping" (vfurt_runtime_worker_where) before the test goes on, so what
 * the test does next has to wake one. Returns total_sleeps() then; after
 * the wake-up the count is higher (woke_up()). Without the check, a worker
 * that never went to sleep (busy mode by mistake, a poller that stays
 * busy) would pass every wake-up test.
 */
static uint64_t sleep_gap(struct testsrv *ts)
{
	struct vfurt_runtime *rt = testsrv_runtime(ts);

	idle_gap();
	for (uint32_t i = 0; i < vfurt_runtime_worker_count(rt); i++) {
		const char *where = vfurt_runtime_worker_where(rt, i);

		for (int t = 0; t < IT_SETTLE_MS * 10 && strcmp(where, "sleeping") != 0; t++) {
			usleep(100);
			where = vfurt_runtime_worker_where(rt, i);
		}
		if (strcmp(where, "sleeping") != 0)
			fail_msg("worker %u did not sleep in an idle gap: %s", i, where);
	}
	return total_sleeps(ts);
}

/* A sleep ended since sleep_gap() returned `before`. */
static void woke_up_at(struct testsrv *ts, uint64_t before, int line)
{
	uint64_t now = total_sleeps(ts);

	if (now <= before)
		fail_msg("line %d: no worker woke up (%llu sleeps before, %llu now)", line,
			 (unsigned long long)before, (unsigned long long)now);
}

#define woke_up(ts, before) woke_up_at(ts, before, __LINE__)

/* The ioeventfd controller traps its doorbell page and offers every I/O
 * doorbell (SQ tail, CQ head) as a 4-byte ioeventfd on one shared fd. */
static void test_ioeventfd_offer(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	struct vfurt_client_io_fds io = { 0 };
	struct nvme_host *h;

	f->ts = start(true, false, 0);
	f->h = h = nh_open(testsrv_path(f->ts, 0), NULL);
	assert_non_null(h);
	assert_false(nh_doorbells_mapped(h));
	assert_int_equal(vfurt_client_region_io_fds(nh_client(h), 0, &io), 0);
	assert_int_equal(io.count, 2u * MAX_IOQ);
	assert_int_equal(io.nfds, 1);
	for (uint32_t i = 0; i < io.count; i++) {
		const struct vfio_user_sub_region_io_fd *s = &io.subs[i];

		assert_int_equal(s->type, VFIO_USER_IO_FD_TYPE_IOEVENTFD);
		assert_int_equal(s->offset, NH_REG_DBS + (2u + i) * 4u); /* qid 1 on */
		assert_int_equal(s->size, 4);
		assert_int_equal(s->flags, 0);
		assert_int_equal(s->fd_index, 0);
	}
	vfurt_client_io_fds_release(&io);
	/* BAR0 has no fd and no MMAP at all: a client that maps every region
	 * with an fd (QEMU) would otherwise put the whole BAR, registers
	 * included, into the guest, and CC.EN would never reach us */
	{
		struct vfurt_client_region_info ri;

		assert_int_equal(vfurt_client_region_info(nh_client(h), 0, &ri), 0);
		assert_int_equal(ri.fd, -1);
		assert_false(ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
		assert_false(ri.has_sparse);
		vfurt_client_region_info_release(&ri);
	}
	/* the default controller maps the page and offers none */
	{
		struct nvme_host *h2 = nh_open(testsrv_path(f->ts, 1), NULL);

		assert_non_null(h2);
		assert_true(nh_doorbells_mapped(h2));
		assert_int_equal(vfurt_client_region_io_fds(nh_client(h2), 0, &io), 0);
		assert_int_equal(io.count, 0);
		vfurt_client_io_fds_release(&io);
		nh_close(h2);
	}
}

/*
 * The KVM path: shadow doorbells, the MMIO doorbell only when EventIdx asks,
 * as an ioeventfd signal. While I/O flows the pollers keep EventIdx
 * disarmed (no MMIO doorbells); after an idle gap the workers sleep with
 * EventIdx armed and the ioeventfd wakes them.
 */
static void test_ioeventfd_wakes_sleeping_worker(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	struct nvme_host_opts ho = { .doorbell_ioeventfd = true };
	struct nh_stats st;
	uint64_t sleeps;

	f->ts = start(true, false, LONG_SLEEP_US);
	f->h = host_up(f, 0, &ho, true);
	for (uint32_t i = 0; i < 200; i++)
		io_ok(f->h, i);
	for (uint32_t i = 0; i < 5; i++) {
		sleeps = sleep_gap(f->ts);
		io_ok(f->h, 1000 + i);
		woke_up(f->ts, sleeps);
	}
	nh_get_stats(f->h, &st);
	assert_true(st.ioeventfd_doorbells > 0);  /* and doorbells woke them */
	assert_true(st.shadow_skipped > 0);       /* busy: no MMIO doorbell */
	assert_true(st.ioeventfd_doorbells < st.mmio_doorbells + st.shadow_skipped);
}

/* An I/O doorbell signalled through the ioeventfd without shadow doorbells
 * carries no value: the controller reports a fatal status instead of
 * guessing, and the other controller on the same runtime keeps serving. */
static void test_ioeventfd_without_shadow_is_fatal(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	struct nvme_host_opts ho = { .doorbell_ioeventfd = true, .timeout_ms = 300 };
	struct nvme_host *other;
	uint32_t csts = 0;

	f->ts = start(true, false, 0);
	f->h = host_up(f, 0, &ho, false);
	assert_int_equal(nh_write(f->h, 1, 1, 0, 1, nh_alloc(f->h, NH_PAGE), NS_BS, NULL),
			 -ETIMEDOUT);
	for (int i = 0; i < 500 && !(csts & NH_CSTS_CFS); i++) {
		assert_int_equal(nh_reg_read32(f->h, NH_REG_CSTS, &csts), 0);
		if (!(csts & NH_CSTS_CFS))
			usleep(1000);
	}
	assert_true(csts & NH_CSTS_CFS);
	other = host_up(f, 1, NULL, false);
	io_ok(other, 7);
	nh_close(other);
	/* a controller reset clears it; by message the doorbells work */
	assert_int_equal(nh_disable(f->h), 0);
	nh_close(f->h);
	ho.doorbell_ioeventfd = false;
	ho.timeout_ms = 0;
	f->h = host_up(f, 0, &ho, false);
	io_ok(f->h, 8);
}

/* A VMM that ignores the ioeventfds (QEMU 10.1 does) traps every doorbell
 * into a REGION_WRITE: the write wakes the queue's worker, with or without
 * shadow doorbells. */
static void test_trapped_doorbells_wake(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	uint64_t sleeps;

	f->ts = start(true, false, LONG_SLEEP_US);
	f->h = host_up(f, 0, NULL, false);
	for (uint32_t i = 0; i < 3; i++) {
		sleeps = sleep_gap(f->ts);
		io_ok(f->h, i);
		woke_up(f->ts, sleeps);
	}
	assert_int_equal(nh_dbbuf_enable(f->h), 0);
	for (uint32_t i = 0; i < 3; i++) {
		sleeps = sleep_gap(f->ts);
		io_ok(f->h, 10 + i);
		woke_up(f->ts, sleeps);
	}
}

/* An error event raised by an I/O poller wakes the admin queue's worker. */
static void test_event_wakes_admin(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	struct nh_cqe cqe;
	uint64_t sleeps;
	uint16_t aer;

	f->ts = start(true, false, LONG_SLEEP_US);
	f->h = host_up(f, 0, NULL, false);
	assert_int_equal(nh_create_io_pair(f->h, 2, QENT, 2), 0);
	assert_int_equal(nh_aer_submit(f->h, &aer), 0);
	sleeps = sleep_gap(f->ts);
	assert_int_equal(nh_ring_raw(f->h, 2, false, QENT + 3), 0);
	assert_int_equal(nh_wait(f->h, 0, aer, &cqe, -1), 0);
	woke_up(f->ts, sleeps);
	assert_int_equal((cqe.dw0 >> 8) & 0xff, 0x01); /* invalid doorbell value */
	io_ok(f->h, 3);
}

/* Mapped doorbells cannot wake anybody: the adaptive runtime caps its
 * sleeps while such a queue exists (adaptive_poll_sleep_us), so I/O after
 * an idle gap still completes. */
static void test_mapped_doorbells_capped_sleep(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	uint64_t sleeps;

	f->ts = start(false, false, 0 /* default 1 ms */);
	f->h = host_up(f, 0, NULL, false);
	assert_true(nh_doorbells_mapped(f->h));
	for (uint32_t i = 0; i < 3; i++) {
		sleeps = sleep_gap(f->ts);
		io_ok(f->h, i);
		woke_up(f->ts, sleeps);
	}
}

/* irq_unbatched + irq_per_completion: every completion is its own eventfd
 * write (the comparison point of the batching benchmark). Batched: fewer
 * writes than triggers. */
static void irq_run(struct nvme_fx *f, bool unbatched, uint64_t *raised, uint64_t *written)
{
	struct nvme_host_opts ho = { .irq_wait = true };
	struct vfurt_runtime *rt;
	uint8_t *buf[16];
	uint16_t cid[16];

	f->ts = start(false, unbatched, 0);
	f->h = host_up(f, 0, &ho, false);
	for (uint32_t round = 0; round < 20; round++) {
		for (uint32_t i = 0; i < 16; i++) {
			struct nh_io io = { .opc = NH_CMD_READ, .nsid = 1, .slba = i, .nlb = 1 };

			buf[i] = nh_alloc(f->h, NH_PAGE);
			assert_non_null(buf[i]);
			io.buf = buf[i];
			io.len = NS_BS;
			assert_int_equal(nh_io_submit(f->h, 1, &io, &cid[i]), 0);
		}
		for (uint32_t i = 0; i < 16; i++) {
			assert_int_equal(nh_wait(f->h, 1, cid[i], NULL, -1), 0);
			nh_free(f->h, buf[i], NH_PAGE);
		}
	}
	rt = testsrv_runtime(f->ts);
	*raised = *written = 0;
	for (uint32_t i = 0; i < vfurt_runtime_worker_count(rt); i++) {
		struct vfurt_worker_stats st = { .stats_size = sizeof(st) };

		assert_int_equal(vfurt_runtime_get_worker_stats(rt, i, &st), 0);
		*raised += st.irqs_raised;
		*written += st.irqs_written;
	}
}

static void test_irq_unbatched(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	uint64_t raised, written;

	irq_run(f, true, &raised, &written);
	assert_true(raised >= 320); /* one per completion */
	assert_int_equal(written, raised);
}

static void test_irq_batched(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	uint64_t raised, written;

	irq_run(f, false, &raised, &written);
	assert_true(raised > 0);
	assert_true(written <= raised);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_ioeventfd_offer, nvme_fx_teardown),
		cmocka_unit_test_teardown(test_ioeventfd_wakes_sleeping_worker, nvme_fx_teardown),
		cmocka_unit_test_teardown(test_ioeventfd_without_shadow_is_fatal, nvme_fx_teardown),
		cmocka_unit_test_teardown(test_trapped_doorbells_wake, nvme_fx_teardown),
		cmocka_unit_test_teardown(test_event_wakes_admin, nvme_fx_teardown),
		cmocka_unit_test_teardown(test_mapped_doorbells_capped_sleep, nvme_fx_teardown),
		cmocka_unit_test_teardown(test_irq_unbatched, nvme_fx_teardown),
		cmocka_unit_test_teardown(test_irq_batched, nvme_fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
