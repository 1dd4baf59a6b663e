/* Two NVMe controllers homed on different workers: cross-worker waits must not deadlock. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/vfio.h>

#include <vfurt/bdev.h>
#include <vfurt/client.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "hostsim/nvme_host.h"
#include "common/skip.h"

#define ROUNDS 300u
#define QENT 32u

struct fx {
	struct testsrv *ts;
	struct nvme_host *ha; /* controller A: home worker 0 */
	struct nvme_host *hb; /* controller B: home worker 1 */
	int fds_before;
};

static struct vfurt_dev *make_ctrl(const char *name)
{
	return nvme_fx_small_ctrl(name, 512, 1u << 20, 256);
}

static int setup(void **state)
{
	struct fx *f;
	struct vfurt_dev *devs[2];

	/* the deadlock needs two workers on two CPUs: each test skips (a skip
	 * in a setup function is an error to cmocka) */
	*state = NULL;
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return 0;
	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->fds_before = test_count_fds();
	devs[0] = make_ctrl("nvmeA");
	devs[1] = make_ctrl("nvmeB");
	assert_non_null(devs[0]);
	assert_non_null(devs[1]);
	/* round robin: A is homed on worker 0, B on worker 1 */
	f->ts = testsrv_start_rt(devs, 2, NULL, "0-1", VFURT_POLL_BUSY);
	assert_non_null(f->ts);
	f->ha = nh_open(testsrv_path(f->ts, 0), NULL);
	f->hb = nh_open(testsrv_path(f->ts, 1), NULL);
	assert_non_null(f->ha);
	assert_non_null(f->hb);
	assert_int_equal(nh_enable(f->ha), 0);
	assert_int_equal(nh_enable(f->hb), 0);
	assert_int_equal(nh_set_num_queues(f->hb, 4, 4, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int rc;

	if (!f)
		return 0;
	nh_close(f->ha);
	nh_close(f->hb);
	testsrv_stop(f->ts);
	rc = it_check_fds(f->fds_before); /* a leak fails the test */
	free(f);
	return rc;
}

/* The fixture, or a skip on a machine with one CPU. */
static struct fx *two_workers(void **state)
{
	if (!*state)
		test_skip("one CPU online: two workers on two CPUs are needed");
	return *state;
}

struct irq_churn {
	struct vfurt_client *c;
	atomic_bool stop;
	int err;
	unsigned rounds;
};

/* Controller A's client replaces its MSI-X vector 0 eventfd over and over:
 * each replacement makes worker 0 wait for an epoch grace period. */
static void *irq_churn_main(void *arg)
{
	struct irq_churn *ic = arg;

	while (!atomic_load(&ic->stop)) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		int rc;

		if (fd < 0) {
			ic->err = -errno;
			break;
		}
		rc = vfurt_client_set_irqs_eventfd(ic->c, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &fd,
						   VFIO_IRQ_SET_ACTION_TRIGGER);
		close(fd);
		if (rc) {
			ic->err = rc;
			break;
		}
		ic->rounds++;
	}
	return NULL;
}

/*
 * The interleaving of the deadlock seen with two controllers in one QEMU
 * guest: worker 1 runs controller B's admin poller (inside its epoch
 * section) and deletes an I/O queue that worker 0 polls, so it waits for
 * worker 0; worker 0 handles controller A's SET_IRQS and waits for worker 1
 * to leave its epoch section. Both used to spin forever. Every admin
 * command below would time out in the client (an error, not a hang) if the
 * workers deadlocked.
 */
static void test_queue_delete_vs_irq_sync(void **state)
{
	struct fx *f = two_workers(state);
	struct irq_churn ic = { .c = nh_client(f->ha) };
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, irq_churn_main, &ic), 0);
	for (unsigned i = 0; i < ROUNDS; i++) {
		/* qid 2 lands on worker 0 (qid mod workers), away from B's home */
		assert_int_equal(nh_create_io_pair(f->hb, 2, QENT, 2), 0);
		assert_int_equal(nh_delete_sq(f->hb, 2), 0);
		assert_int_equal(nh_delete_cq(f->hb, 2), 0);
	}
	atomic_store(&ic.stop, true);
	pthread_join(t, NULL);
	assert_int_equal(ic.err, 0);
	assert_true(ic.rounds > 0);
	/* both controllers still serve I/O */
	assert_int_equal(nh_create_io_pair(f->hb, 1, QENT, 1), 0);
	assert_int_equal(nh_write_read_check(f->hb, 1, 1, 0, 512, 0x5a, NULL, NULL), 0);
	assert_int_equal(nh_set_num_queues(f->ha, 4, 4, NULL), 0);
	assert_int_equal(nh_create_io_pair(f->ha, 1, QENT, 1), 0);
	assert_int_equal(nh_write_read_check(f->ha, 1, 1, 8, 512, 0xa5, NULL, NULL), 0);
}

/* vfurt_runtime_worker_where names what each worker does. */
static void test_worker_where(void **state)
{
	struct fx *f = two_workers(state);
	struct vfurt_runtime *rt = testsrv_runtime(f->ts);

	for (uint32_t i = 0; i < vfurt_runtime_worker_count(rt); i++) {
		const char *w = vfurt_runtime_worker_where(rt, i);

		assert_non_null(w);
		assert_string_not_equal(w, "not running");
	}
	assert_null(vfurt_runtime_worker_where(rt, vfurt_runtime_worker_count(rt)));
	assert_null(vfurt_runtime_worker_where(NULL, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_queue_delete_vs_irq_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_worker_where, setup, teardown),
	};

	return test_run_group("integration: NVMe cross-worker", tests, NULL, NULL);
}
