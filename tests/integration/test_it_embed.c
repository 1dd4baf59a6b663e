/* The embedder-threads mode: a test's own loop runs the workers' passes and sleeps on their fds. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/vfio.h>

#include <vfurt/client.h>
#include <vfurt/gpio.h>
#include <vfurt/runtime.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "hostsim/nvme_host.h"

#define NW 2u

struct loop {
	struct vfurt_runtime *rt;
	pthread_t t;
	int stop_fd;          /* the test's own wake-up: an eventfd */
	atomic_ulong passes;
	atomic_ulong sleeps;  /* polls that waited (timeout != 0) */
	atomic_ulong woken;   /* of them, ended by a worker fd */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The embedder's event loop: every worker's pass, then sleep on their fds
 * and its own until the earliest deadline, like an SPDK reactor. */
static void *loop_main(void *arg)
{
	struct loop *l = arg;

	for (;;) {
		struct pollfd pfd[NW + 1];
		uint64_t deadline = UINT64_MAX;
		bool busy = false;
		int timeout;
		int n;

		for (uint32_t i = 0; i < NW; i++)
			busy |= vfurt_worker_run_pass(vfurt_runtime_worker(l->rt, i));
		atomic_fetch_add(&l->passes, 1);
		if (busy)
			continue;
		for (uint32_t i = 0; i < NW; i++) {
			uint64_t d = vfurt_worker_next_deadline(vfurt_runtime_worker(l->rt, i));

			if (d < deadline)
				deadline = d;
			pfd[i] = (struct pollfd){ .fd = vfurt_worker_fd(vfurt_runtime_worker(l->rt, i)),
						  .events = POLLIN };
		}
		pfd[NW] = (struct pollfd){ .fd = l->stop_fd, .events = POLLIN };
		if (deadline == UINT64_MAX) {
			timeout = -1;
		} else {
			uint64_t now = now_ns();

			timeout = deadline <= now ? 0 : (int)((deadline - now + 999999) / 1000000);
		}
		if (timeout)
			atomic_fetch_add(&l->sleeps, 1);
		n = poll(pfd, NW + 1, timeout);
		if (n > 0 && (pfd[NW].revents & POLLIN))
			break;
		if (n > 0 && timeout)
			atomic_fetch_add(&l->woken, 1);
	}
	return NULL;
}

struct fx {
	struct loop l;
	struct vfurt_dev *nvme;
	char dir[64];
	char nvme_path[128];
	char gpio_path[128];
	int fds_before;
};

static int setup(void **state)
{
	struct vfurt_runtime_opts o = { .opts_size = sizeof(o), .no_threads = true,
					.poll_mode = VFURT_POLL_ADAPTIVE, .cores = "0-1",
					.log = it_dev_log("embed") };
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	f->fds_before = test_count_fds();
	snprintf(f->dir, sizeof(f->dir), "/tmp/vfurt-embed-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->nvme_path, sizeof(f->nvme_path), "%s/nvme.sock", f->dir);
	snprintf(f->gpio_path, sizeof(f->gpio_path), "%s/gpio.sock", f->dir);
	f->l.rt = vfurt_runtime_create(&o, err, sizeof(err));
	assert_non_null(f->l.rt);
	/* before start: on worker 1 */
	f->nvme = nvme_fx_small_ctrl("e-nvme", 512, 1u << 20, 256);
	assert_int_equal(vfurt_runtime_add_device(f->l.rt, f->nvme, f->nvme_path, 0600, 1), 0);
	assert_int_equal(vfurt_worker_fd(vfurt_runtime_worker(f->l.rt, 0)), -1);
	assert_int_equal(vfurt_runtime_start(f->l.rt), 0);
	f->l.stop_fd = eventfd(0, EFD_CLOEXEC);
	assert_true(f->l.stop_fd >= 0);
	assert_int_equal(pthread_create(&f->l.t, NULL, loop_main, &f->l), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	const uint64_t one = 1;
	int rc;

	assert_int_equal(write(f->l.stop_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	pthread_join(f->l.t, NULL);
	close(f->l.stop_fd);
	vfurt_runtime_destroy(f->l.rt);
	rmdir(f->dir);
	rc = it_check_fds(f->fds_before);
	free(f);
	return rc;
}

/* NVMe I/O verified through the embedder's loop, which sleeps between the
 * commands and is woken by the client's activity. */
static void test_embed_nvme_io(void **state)
{
	struct fx *f = *state;
	struct nvme_host *h = nh_open(f->nvme_path, NULL);
	unsigned long sleeps;

	assert_non_null(h);
	assert_int_equal(nh_enable(h), 0);
	assert_int_equal(nh_set_num_queues(h, 2, 2, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, 32, 1), 0);
	for (uint32_t i = 0; i < 200; i++)
		assert_int_equal(nh_write_read_check(h, 1, 1, i % 128, 512, i + 7, NULL, NULL), 0);
	/* idle: the loop sleeps, and the next command still gets served */
	sleeps = atomic_load(&f->l.sleeps);
	usleep(50 * 1000);
	assert_true(atomic_load(&f->l.sleeps) > sleeps);
	assert_int_equal(nh_write_read_check(h, 1, 1, 3, 512, 99, NULL, NULL), 0);
	assert_true(atomic_load(&f->l.woken) > 0);
	nh_close(h);
}

static void on_done(void *arg, enum vfurt_remove_how how)
{
	atomic_store((atomic_int *)arg, (int)how + 1);
}

/* Live add and remove while the embedder's loop runs the workers: the
 * cross-worker calls run on the loop's thread or in its passes. */
static void test_embed_live_add_remove(void **state)
{
	struct fx *f = *state;
	struct vfurt_gpio_opts go = { .opts_size = sizeof(go), .name = "e-gpio" };
	struct vfurt_dev *g = vfurt_gpio_create(&go);
	struct vfurt_client *c;
	atomic_int done = 0;
	uint32_t v;

	assert_non_null(g);
	assert_int_equal(vfurt_runtime_add_device(f->l.rt, g, f->gpio_path, 0600, 0), 0);
	c = it_connect(f->gpio_path, 0);
	assert_non_null(c);
	for (int i = 0; i < 50; i++)
		assert_int_equal(it_rd32(c, VFIO_PCI_BAR2_REGION_INDEX, 0, &v), 0);
	vfurt_client_close(c);
	assert_int_equal(vfurt_runtime_remove_device(f->l.rt, g, 1000, on_done, &done), 0);
	for (int i = 0; i < 5000 && !atomic_load(&done); i++)
		usleep(1000);
	/* idle, or forced when the close had not reached the server yet */
	assert_true(atomic_load(&done) > 0);
}

/* Outside no_threads mode there is no fd to give, and the deadline says
 * "now". */
static void test_threaded_has_no_fd(void **state)
{
	struct vfurt_runtime_opts o = { .opts_size = sizeof(o), .cores = "0" };
	struct vfurt_runtime *rt = vfurt_runtime_create(&o, NULL, 0);

	(void)state;
	assert_non_null(rt);
	assert_int_equal(vfurt_runtime_start(rt), 0);
	assert_int_equal(vfurt_worker_fd(vfurt_runtime_worker(rt, 0)), -1);
	assert_int_equal(vfurt_worker_next_deadline(vfurt_runtime_worker(rt, 0)), 0);
	vfurt_runtime_destroy(rt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_embed_nvme_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_embed_live_add_remove, setup, teardown),
		cmocka_unit_test(test_threaded_has_no_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
