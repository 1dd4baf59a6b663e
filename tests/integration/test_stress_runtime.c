/* Stress test of the multi-core runtime: 8 devices on 2 workers, 8 client threads, shutdown mid-load. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/runtime.h>

#include "common/it_util.h"

#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif

#define NDEV 8
#define IOVA 0x200000ull
#define WIN 0x10000ull        /* the DMA window each client maps and unmaps */
#define DMA_OFF 0x1000ull     /* where in the window the device DMAs */
#define DMA_LEN 256u
#define Q_OFF 0x3000ull       /* what the queues translate */
#define Q_LEN 512u
#define POSTED_PER_ITER 8u
#define IRQ_EVERY 16u
#define SHUTDOWN_MIN_ITERS 5u /* each client is this far before the stop */
#define SHUTDOWN_MAX_ITERS 1000000u /* bound only: the stop comes long before */

/* ---- per-client work ---------------------------------------------------- */

struct client_ctx {
	const char *path;
	unsigned idx;
	unsigned iters;       /* iterations to do (shutdown: an upper bound) */
	bool expect_stop;     /* the server goes away mid-loop */
	atomic_uint progress; /* completed iterations, read by the main thread */
	atomic_bool finished; /* the loop ended (any reason) */
	/* results, read after join */
	int fail_rc;          /* first failing call's return value (0: none) */
	int fail_line;
	int mismatch_line;    /* a value read back was wrong (never allowed) */
	unsigned maps;
	unsigned unmaps;
	unsigned fires;
	uint64_t msgs;        /* requests sent: a lower bound of what the server handled */
};

#define CALL(ctx, expr, nmsgs)                                      \
	do {                                                        \
		int rc_ = (expr);                                   \
		(ctx)->msgs += (nmsgs);                             \
		if (rc_ != 0) {                                     \
			(ctx)->fail_rc = rc_;                       \
			(ctx)->fail_line = __LINE__;                \
			goto out;                                   \
		}                                                   \
	} while (0)

#define CHECK(ctx, cond)                                            \
	do {                                                        \
		if (!(cond)) {                                      \
			(ctx)->mismatch_line = __LINE__;            \
			goto out;                                   \
		}                                                   \
	} while (0)

static uint32_t seed_of(const struct client_ctx *x, unsigned i)
{
	return x->idx * 1000003u + i;
}

static void *client_main(void *arg)
{
	struct client_ctx *x = arg;
	struct vfurt_client *c = it_connect(x->path, 0);
	uint8_t buf[DMA_LEN], back[DMA_LEN];
	int memfd = it_memfd(WIN);
	int efd = it_eventfd();

	if (!c) {
		x->fail_rc = -errno;
		x->fail_line = __LINE__;
		goto out;
	}
	if (memfd < 0 || efd < 0) {
		x->fail_rc = -EIO;
		x->fail_line = __LINE__;
		goto out;
	}
	CALL(x, it_msix_enable(c, 1), 4);
	CALL(x, vfurt_client_set_irqs_eventfd(c, VFURT_IRQ_MSIX, 0, 1, &efd,
					      VFIO_IRQ_SET_ACTION_TRIGGER), 1);
	/* the device's queues (on both workers) translate this range whenever
	 * the window is mapped, and miss while it is not */
	CALL(x, it_wr64(c, VFURT_REGION_BAR0, TD_REG_Q_LEN, Q_LEN), 1);
	CALL(x, it_wr64(c, VFURT_REGION_BAR0, TD_REG_Q_IOVA, IOVA + Q_OFF), 1);

	for (unsigned i = 0; i < x->iters; i++) {
		uint64_t v = (uint64_t)x->idx << 48 | i, r = 0;
		uint64_t reg = 0x10 + (i % 8) * 8;
		uint32_t seed = seed_of(x, i), last = 0;

		/* a register write and its read back */
		CALL(x, it_wr64(c, VFURT_REGION_BAR0, reg, v), 1);
		CALL(x, it_rd64(c, VFURT_REGION_BAR0, reg, &r), 1);
		CHECK(x, r == v);

		/* map the window (its fd goes to the server), let the device DMA
		 * through it in one direction or the other, unmap */
		it_fill(buf, sizeof(buf), seed);
		if (i % 2 == 0)
			CHECK(x, pwrite(memfd, buf, sizeof(buf), DMA_OFF) == (ssize_t)sizeof(buf));
		else
			CALL(x, vfurt_client_region_write(c, VFURT_REGION_BAR1, 0, buf,
							  sizeof(buf)), 1);
		CALL(x, vfurt_client_dma_map(c, IOVA, WIN, memfd, 0,
					     VFIO_USER_DMA_MAP_FLAG_READ |
					     VFIO_USER_DMA_MAP_FLAG_WRITE,
					     VFURT_CLIENT_DMA_SEND_FD), 1);
		x->maps++;
		CALL(x, it_dev_dma(c, i % 2 == 0 ? 1 : 2, IOVA + DMA_OFF, DMA_LEN), 4);
		CALL(x, vfurt_client_dma_unmap(c, IOVA, WIN, 0), 1);
		x->unmaps++;
		memset(back, 0, sizeof(back));
		if (i % 2 == 0)
			CALL(x, vfurt_client_region_read(c, VFURT_REGION_BAR1, 0, back,
							 sizeof(back)), 1);
		else
			CHECK(x, pread(memfd, back, sizeof(back), DMA_OFF) == (ssize_t)sizeof(back));
		CHECK(x, it_check(back, sizeof(back), seed));

		/* now and then an interrupt, delivered through the irq batch */
		if (i % IRQ_EVERY == x->idx % IRQ_EVERY) {
			uint64_t n = 0;

			CALL(x, it_irq_fire(c, VFURT_IRQ_MSIX, 0), 2);
			CALL(x, vfurt_client_wait_eventfd(c, efd, IT_TIMEOUT_MS, &n), 0);
			CHECK(x, n >= 1);
			x->fires++;
		}

		/* posted writes are applied in order before a later read */
		for (uint32_t k = 0; k < POSTED_PER_ITER; k++) {
			uint32_t w = i * POSTED_PER_ITER + k;

			CALL(x, vfurt_client_region_write_posted(c, VFURT_REGION_BAR0, 0x90, &w,
								 sizeof(w)), 1);
		}
		CALL(x, it_rd32(c, VFURT_REGION_BAR0, 0x90, &last), 1);
		CHECK(x, last == i * POSTED_PER_ITER + POSTED_PER_ITER - 1);

		atomic_fetch_add(&x->progress, 1);
	}
out:
	atomic_store(&x->finished, true);
	vfurt_client_close(c);
	if (memfd >= 0)
		close(memfd);
	if (efd >= 0)
		close(efd);
	return NULL;
}

/* ---- fixture ------------------------------------------------------------ */

struct fx {
	struct testsrv *ts;
	struct vfurt_dev *dev[NDEV];
	struct testdev_stats *st[NDEV];
	struct client_ctx cl[NDEV];
	pthread_t th[NDEV];
	int fds_before;
	int ncpu;
};

static bool under_tsan(void)
{
#ifdef STRESS_TSAN
	return true;
#else
	return getenv("VFURT_TSAN") != NULL;
#endif
}

/* The first two CPUs this process may run on ("0-1" on a plain 2-CPU
 * machine), or the only one; *n gets the count. */
static const char *cores(int *n)
{
	static char buf[32];
	cpu_set_t set;
	int cpu[2], k = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		for (int c = 0; c < CPU_SETSIZE && k < 2; c++)
			if (CPU_ISSET(c, &set))
				cpu[k++] = c;
	if (k == 0)
		cpu[k++] = 0;
	if (k == 2)
		snprintf(buf, sizeof(buf), "%d,%d", cpu[0], cpu[1]);
	else
		snprintf(buf, sizeof(buf), "%d", cpu[0]);
	*n = k;
	return buf;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What the main thread is doing, for the watchdog's message. */
static const char *volatile phase = "setup";

/* A hung runtime or client fails the test with a message instead of
 * waiting for ctest's timeout. */
static void watchdog_fired(int sig)
{
	static const char msg[] = "test_stress_runtime: watchdog: hung while ";
	const char *p = phase;

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0 ||
	    write(STDERR_FILENO, p, strlen(p)) < 0 || write(STDERR_FILENO, "\n", 1) < 0)
		_exit(2);
	_exit(1);
}

static void fx_start(struct fx *f, int mode, unsigned iters, bool expect_stop)
{
	struct testdev_opts o = { .queues = 2 };

	phase = "starting the runtime and clients";
	memset(f, 0, sizeof(*f));
	f->fds_before = test_count_fds();
	for (int i = 0; i < NDEV; i++) {
		char name[16];

		snprintf(name, sizeof(name), "st%d", i);
		f->dev[i] = testdev_create(name, &o, &f->st[i]);
		assert_non_null(f->dev[i]);
	}
	f->ts = testsrv_start_rt(f->dev, NDEV, NULL, cores(&f->ncpu), mode);
	assert_non_null(f->ts);
	assert_int_equal(vfurt_runtime_worker_count(testsrv_runtime(f->ts)), (unsigned)f->ncpu);
	for (int i = 0; i < NDEV; i++) {
		f->cl[i].path = testsrv_path(f->ts, (size_t)i);
		f->cl[i].idx = (unsigned)i;
		f->cl[i].iters = iters;
		f->cl[i].expect_stop = expect_stop;
		atomic_init(&f->cl[i].progress, 0);
		atomic_init(&f->cl[i].finished, false);
		assert_int_equal(pthread_create(&f->th[i], NULL, client_main, &f->cl[i]), 0);
	}
}

static void fx_join(struct fx *f)
{
	for (int i = 0; i < NDEV; i++)
		assert_int_equal(pthread_join(f->th[i], NULL), 0);
}

/* Print what went wrong; after a shutdown, one line for the expected errors. */
static void report(const struct fx *f, const char *what)
{
	unsigned lo = UINT32_MAX, hi = 0;

	for (int i = 0; i < NDEV; i++) {
		const struct client_ctx *x = &f->cl[i];
		unsigned n = atomic_load(&x->progress);
		bool expected = x->expect_stop && x->fail_rc < 0 && x->fail_rc != -ETIMEDOUT &&
				!x->mismatch_line;

		lo = n < lo ? n : lo;
		hi = n > hi ? n : hi;
		if (expected || (!x->fail_rc && !x->mismatch_line))
			continue;
		fprintf(stderr, "# %s: client %d after %u iterations: rc %d (%s) at line %d, "
			"mismatch at line %d%s\n", what, i, n, x->fail_rc, strerror(-x->fail_rc),
			x->fail_line, x->mismatch_line,
			x->fail_rc == -ETIMEDOUT ? " (no reply in time: a worker stuck?)" : "");
	}
	fprintf(stderr, "# %s: clients did %u..%u iterations\n", what, lo, hi);
}

/* Worker counters summed over the workers. */
struct wsum {
	uint64_t msgs, raised, written, passes, busy;
	bool busy_le_passes; /* per worker */
	bool all_passed;     /* every worker ran passes */
};

/* Wait (bounded) until the workers' counters caught up with the clients:
 * message and irq counters are published right after the work. */
static struct wsum worker_stats(struct fx *f)
{
	struct vfurt_runtime *rt = testsrv_runtime(f->ts);
	uint64_t want_msgs = 0, fires = 0;
	struct wsum s = { 0 };

	for (int i = 0; i < NDEV; i++) {
		want_msgs += f->cl[i].msgs;
		fires += f->cl[i].fires;
	}
	for (int tries = 0; tries < 5000; tries++) {
		memset(&s, 0, sizeof(s));
		s.busy_le_passes = s.all_passed = true;
		for (uint32_t w = 0; w < vfurt_runtime_worker_count(rt); w++) {
			struct vfurt_worker_stats st = { .stats_size = sizeof(st) };

			if (vfurt_runtime_get_worker_stats(rt, w, &st))
				s.all_passed = false;
			s.msgs += st.msgs;
			s.raised += st.irqs_raised;
			s.written += st.irqs_written;
			s.passes += st.passes;
			s.busy += st.busy_passes;
			s.busy_le_passes &= st.busy_passes <= st.passes;
			s.all_passed &= st.passes > 0;
		}
		if (s.msgs >= want_msgs && s.written >= fires)
			break;
		usleep(1000);
	}
	return s;
}

static void check_worker_stats(const struct fx *f, const struct wsum *s)
{
	uint64_t want_msgs = 0, fires = 0;

	for (int i = 0; i < NDEV; i++) {
		want_msgs += f->cl[i].msgs;
		fires += f->cl[i].fires;
	}
	assert_true(s->all_passed);
	assert_true(s->busy_le_passes);
	assert_true(s->msgs >= want_msgs);
	assert_true(s->raised >= fires);
	assert_true(s->written >= fires);
	assert_true(s->written <= s->raised);
	assert_true(s->busy > 0);
}

static void check_devices_after_stop(struct fx *f, bool full)
{
	for (int i = 0; i < NDEV; i++) {
		struct testdev_stats *s = f->st[i];

		/* every window mapped was unmapped: by the client, or by the
		 * server when the connection closed */
		assert_int_equal(atomic_load(&s->dma_map), atomic_load(&s->dma_unmap));
		assert_true(atomic_load(&s->dma_map) >= f->cl[i].maps);
		if (full) {
			assert_int_equal(atomic_load(&s->dma_map), f->cl[i].iters);
			/* the queues did translate the window while it was mapped
			 * (the home worker runs its queue between the messages) */
			assert_true(atomic_load(&s->queue_polls) > 0);
		}
		assert_int_equal(atomic_load(&s->attach), 1);
		assert_int_equal(atomic_load(&s->detach), 1);
		assert_int_equal(atomic_load(&s->destroy), 1);
		/* the queues ran, on every worker (queue i on worker i mod n) */
		assert_true(atomic_load(&s->queue_polls) + atomic_load(&s->queue_misses) > 0);
		assert_int_equal(atomic_load(&s->queue_workers), f->ncpu == 2 ? 3u : 1u);
	}
}

/* On a leak: say what the open fds are (memfd "it-dma" = a client's DMA
 * window received by the server and never closed). */
static void dump_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[300], target[256];
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "#   fd %s -> %s\n", e->d_name, target);
	}
	closedir(d);
}

static void fx_free(struct fx *f)
{
	int fds;

	for (int i = 0; i < NDEV; i++)
		testdev_stats_free(f->st[i]);
	/* no socket, eventfd, memfd or io_uring left behind */
	fds = it_wait_fds(f->fds_before);
	if (fds != f->fds_before) {
		fprintf(stderr, "# %d fds open, %d before:\n", fds, f->fds_before);
		dump_fds();
	}
	assert_int_equal(fds, f->fds_before);
}

/* ---- tests -------------------------------------------------------------- */

static void run_full(int mode, unsigned iters, const char *what)
{
	struct fx f;
	double t0 = now_s();

	struct wsum ws;

	fx_start(&f, mode, iters, false);
	phase = "clients running";
	fx_join(&f);
	report(&f, what);
	ws = worker_stats(&f);
	/* stop before asserting: a failed assertion must not leave the
	 * runtime's busy workers spinning under the next test */
	phase = "stopping the runtime";
	testsrv_stop(f.ts);
	phase = "checks";
	for (int i = 0; i < NDEV; i++) {
		/* no lost reply: every call answered, every value right */
		assert_int_equal(f.cl[i].fail_rc, 0);
		assert_int_equal(f.cl[i].mismatch_line, 0);
		assert_int_equal(atomic_load(&f.cl[i].progress), iters);
		assert_int_equal(f.cl[i].maps, iters);
		assert_int_equal(f.cl[i].unmaps, iters);
		assert_true(f.cl[i].fires >= iters / IRQ_EVERY);
		assert_int_equal(atomic_load(&f.st[i]->dma_map), iters);
		assert_int_equal(atomic_load(&f.st[i]->dma_unmap), iters);
	}
	check_worker_stats(&f, &ws);
	check_devices_after_stop(&f, true);
	fx_free(&f);
	fprintf(stderr, "# %s: %d clients x %u iterations in %.1f s\n", what, NDEV, iters,
		now_s() - t0);
}

static unsigned busy_iters(void)
{
	return under_tsan() ? 300 : 1000;
}

static void test_stress_busy(void **state)
{
	(void)state;
	run_full(VFURT_POLL_BUSY, busy_iters(), "busy");
}

static void test_stress_adaptive(void **state)
{
	(void)state;
	run_full(VFURT_POLL_ADAPTIVE, under_tsan() ? 100 : 300, "adaptive");
}

/* Destroy the runtime while every client is connected and mid-loop: the
 * clients see errors (not hangs), nothing leaks. */
static void test_shutdown_under_load(void **state)
{
	struct fx f;
	double t0 = now_s(), deadline = t0 + (under_tsan() ? 120.0 : 30.0);
	bool all_running = false, any_finished = false;

	(void)state;
	fx_start(&f, VFURT_POLL_BUSY, SHUTDOWN_MAX_ITERS, true);
	phase = "clients running";
	/* until every client is well into its loop (or one already failed) */
	while (!all_running && !any_finished && now_s() < deadline) {
		all_running = true;
		for (int i = 0; i < NDEV; i++) {
			if (atomic_load(&f.cl[i].progress) < SHUTDOWN_MIN_ITERS)
				all_running = false;
			if (atomic_load(&f.cl[i].finished))
				any_finished = true;
		}
		if (!all_running)
			usleep(1000);
	}
	/* destroy, not just stop: the devices go away under the clients */
	phase = "destroying the runtime under load";
	testsrv_stop(f.ts);
	f.ts = NULL;
	phase = "joining the clients after the shutdown";
	fx_join(&f);
	phase = "checks";
	report(&f, "shutdown");
	assert_true(all_running && !any_finished);
	for (int i = 0; i < NDEV; i++) {
		const struct client_ctx *x = &f.cl[i];

		assert_int_equal(x->mismatch_line, 0);
		/* the loop ended on an error from the closed connection, not on
		 * a client timeout (the server closed it, it did not go silent) */
		assert_true(x->fail_rc < 0);
		assert_int_not_equal(x->fail_rc, -ETIMEDOUT);
		assert_true(atomic_load(&x->progress) < SHUTDOWN_MAX_ITERS);
	}
	check_devices_after_stop(&f, false);
	fx_free(&f);
	fprintf(stderr, "# shutdown under load: %.1f s\n", now_s() - t0);
}

/* Pre-test: fd baseline is taken inside each test; arm the watchdog. */
static int arm_watchdog(void **state)
{
	(void)state;
	alarm(under_tsan() ? 240 : 90);
	return 0;
}

static int disarm_watchdog(void **state)
{
	(void)state;
	alarm(0);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stress_busy, arm_watchdog, disarm_watchdog),
		cmocka_unit_test_setup_teardown(test_shutdown_under_load, arm_watchdog,
						disarm_watchdog),
		cmocka_unit_test_setup_teardown(test_stress_adaptive, arm_watchdog,
						disarm_watchdog),
	};

	signal(SIGALRM, watchdog_fired);
	/* a client writing to a socket the server just closed gets EPIPE */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
