/* Integration tests of guest memory faults: a client truncates the memfd behind a DMA window (docs/security.md). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/bdev.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>

#include "common/it_util.h"
#include "hostsim/nvme_host.h"
#include "io/fault.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#define LOST_IOVA 0x200000000ull /* above the host's guest RAM (4 GiB + 64 MiB) */
#define LOST_SIZE 0x10000u
#define QENT 16u

/* What the two controllers logged (server threads write, the test reads). */
struct cap {
	pthread_mutex_t mu;
	int unsealed; /* "F_SEAL_SHRINK" warnings */
	int lost;     /* "lost its backing ...: disconnecting" lines */
	int cfs;      /* "controller fatal status" lines */
};

static struct cap cap0 = { .mu = PTHREAD_MUTEX_INITIALIZER };
static struct cap cap1 = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void cap_log(void *arg, int level, const char *msg)
{
	struct cap *c = arg;

	pthread_mutex_lock(&c->mu);
	if (strstr(msg, "not sealed with F_SEAL_SHRINK"))
		c->unsealed++;
	if (strstr(msg, "lost its backing (file truncated?): disconnecting"))
		c->lost++;
	if (strstr(msg, "controller fatal status"))
		c->cfs++;
	pthread_mutex_unlock(&c->mu);
	if (getenv("VFURT_TEST_VERBOSE"))
		fprintf(stderr, "[%d] %s\n", level, msg);
}

static int cap_get(struct cap *c, const int *field)
{
	int v;

	pthread_mutex_lock(&c->mu);
	v = *field;
	pthread_mutex_unlock(&c->mu);
	return v;
}

/* Wait up to ms for *field >= want; returns the last value. */
static int cap_wait(struct cap *c, const int *field, int want, int ms)
{
	int v = cap_get(c, field);

	for (int i = 0; i < ms && v < want; i++) {
		usleep(1000);
		v = cap_get(c, field);
	}
	return v;
}

static void cap_reset(struct cap *c)
{
	pthread_mutex_lock(&c->mu);
	c->unsealed = c->lost = c->cfs = 0;
	pthread_mutex_unlock(&c->mu);
}

struct fx {
	struct testsrv *ts;
	struct nvme_host *h;  /* the hostile client, controller 0 */
	struct nvme_host *h2; /* a well-behaved client, controller 1 */
	int lost_fd;
};

static char file_path[64];

/* ns1: RAM (memcpy: the fault is a SIGBUS), or a file (io_uring: EFAULT). */
static struct vfurt_dev *make_ctrl(const char *name, struct cap *c, bool file)
{
	struct vfurt_bdev_file_opts fo = { .opts_size = sizeof(fo), .path = file_path,
					   .block_size = 512, .size_bytes = 4u << 20,
					   .create = 1 };
	struct vfurt_bdev *b = file ? vfurt_bdev_file_create(&fo)
				    : vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
					.opts_size = sizeof(struct vfurt_bdev_ram_opts),
					.name = "ns1", .block_size = 512, .size_bytes = 4u << 20 });
	struct vfurt_bdev *ns[1] = { b };
	struct vfurt_nvme_opts o = {
		.opts_size = sizeof(o),
		.name = name,
		.serial = "VFURT-FAULT-0001",
		.model = "vfu-rt fault test",
		.max_io_queues = 4,
		.max_queue_entries = 256,
		.ns = ns,
		.nr_ns = 1,
		.own_bdevs = true,
		.log = { .fn = cap_log, .arg = c, .level = VFURT_LOG_DEBUG },
	};

	assert_non_null(b);
	return vfurt_nvme_create(&o);
}

static struct nvme_host *host_up(const char *path)
{
	struct nvme_host *h = nh_open(path, NULL);

	assert_non_null(h);
	assert_int_equal(nh_enable(h), 0);
	assert_int_equal(nh_set_num_queues(h, 4, 4, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, QENT, 1), 0);
	return h;
}

static int setup_any(void **state, bool rt, bool file)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vfurt_dev *devs[2];

	assert_non_null(f);
	cap_reset(&cap0);
	cap_reset(&cap1);
	if (file) {
		int fd;

		snprintf(file_path, sizeof(file_path), "/tmp/vfurt-fault-XXXXXX");
		fd = mkstemp(file_path);
		assert_true(fd >= 0);
		close(fd);
	}
	devs[0] = make_ctrl("nvme0", &cap0, file);
	devs[1] = make_ctrl("nvme1", &cap1, false);
	assert_non_null(devs[0]);
	assert_non_null(devs[1]);
	f->ts = rt ? testsrv_start_rt(devs, 2, NULL,
				      sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? "0-1" : "0",
				      VFURT_POLL_ADAPTIVE)
		   : testsrv_start(devs, 2, NULL);
	assert_non_null(f->ts);
	f->h = host_up(testsrv_path(f->ts, 0));
	f->h2 = host_up(testsrv_path(f->ts, 1));
	f->lost_fd = -1;
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_any(state, false, false);
}

static int setup_rt(void **state)
{
	return setup_any(state, true, false);
}

static int setup_file(void **state)
{
	return setup_any(state, false, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	nh_close(f->h);
	nh_close(f->h2);
	testsrv_stop(f->ts);
	if (f->lost_fd >= 0)
		close(f->lost_fd);
	if (file_path[0]) {
		unlink(file_path);
		file_path[0] = 0;
	}
	free(f);
	return 0;
}

/* Map an unsealed memfd window at LOST_IOVA, fd passed to the server. */
static void map_window(struct fx *f)
{
	f->lost_fd = it_memfd(LOST_SIZE);
	assert_true(f->lost_fd >= 0);
	assert_int_equal(vfurt_client_dma_map(nh_client(f->h), LOST_IOVA, LOST_SIZE, f->lost_fd, 0,
					      VFIO_USER_DMA_MAP_FLAG_READ |
						      VFIO_USER_DMA_MAP_FLAG_WRITE,
					      VFURT_CLIENT_DMA_SEND_FD),
			 0);
}

/* The hostile step: the client shrinks the file behind the window. The
 * test never touches its own mapping of it. */
static void truncate_window(struct fx *f)
{
	assert_int_equal(ftruncate(f->lost_fd, 0), 0);
}

/* The other controller, served by the same process, still works. */
static void other_device_answers(struct fx *f)
{
	int wst = -1, rst = -1;

	assert_int_equal(nh_write_read_check(f->h2, 1, 1, 16, 512, 0x5eed, &wst, &rst), 0);
	assert_int_equal(wst, 0);
	assert_int_equal(rst, 0);
}

/* cmocka replaces the SIGBUS handler for each test body: take it back as
 * the server had it (the extra reference is dropped at the end). */
static void guard_back(void)
{
	assert_int_equal(vfr_fault_guard_acquire(), 0);
}

static void io_into_lost_window(void **state, uint8_t opc)
{
	struct fx *f = *state;
	struct nh_sqe sqe = { 0 };
	struct nh_cqe cqe;
	uint16_t cid;
	int rc;

	guard_back();
	map_window(f);
	truncate_window(f);
	sqe.cdw0 = opc;
	sqe.nsid = 1;
	sqe.prp1 = LOST_IOVA; /* 4 KiB: PRP1 alone */
	sqe.cdw10 = 0;
	sqe.cdw12 = 7; /* 8 blocks of 512 */
	assert_int_equal(nh_submit(f->h, 1, &sqe, &cid), 0);
	rc = nh_wait(f->h, 1, cid, &cqe, 3000);
	if (getenv("VFURT_TEST_VERBOSE"))
		fprintf(stderr, "I/O status %d\n", rc);
	/* the CQ is intact: the status arrives before the disconnect does */
	if (rc >= 0)
		assert_int_equal(rc, NH_SC_DATA_XFER_ERROR);
	assert_int_equal(cap_wait(&cap0, &cap0.lost, 1, 3000), 1);
	assert_true(it_server_closed(nh_client(f->h)));
	assert_int_equal(cap_get(&cap1, &cap1.lost), 0);
	other_device_answers(f);
	vfr_fault_guard_release();
}

static void test_read_into_lost_window(void **state)
{
	io_into_lost_window(state, 0x02);
}

static void test_write_from_lost_window(void **state)
{
	io_into_lost_window(state, 0x01);
}

/* An I/O SQ placed in the window: the fetch hits lost memory. */
static void test_sq_in_lost_window(void **state)
{
	struct fx *f = *state;
	struct nh_sqe sqe = { 0 };
	uint32_t csts = 0;

	guard_back();
	map_window(f);
	assert_int_equal(nh_create_cq(f->h, 2, QENT, 1), 0);
	sqe.cdw0 = 0x01; /* Create I/O SQ 2 on CQ 2, physically contiguous */
	sqe.prp1 = LOST_IOVA;
	sqe.cdw10 = (QENT - 1u) << 16 | 2u;
	sqe.cdw11 = 2u << 16 | 1u;
	assert_int_equal(nh_admin(f->h, &sqe, NULL), 0);
	truncate_window(f);
	assert_int_equal(nh_ring_raw(f->h, 2, false, 1), 0);
	assert_int_equal(cap_wait(&cap0, &cap0.lost, 1, 3000), 1);
	assert_int_equal(cap_get(&cap0, &cap0.cfs), 1);
	/* CSTS.CFS, if the register read still gets through */
	if (nh_reg_read32(f->h, 0x1c, &csts) == 0)
		assert_true(csts & 2u);
	assert_true(it_server_closed(nh_client(f->h)));
	other_device_answers(f);
	vfr_fault_guard_release();
}

/* DMA_MAP of unsealed memfds: one warning per client; a sealed one: none. */
static void test_unsealed_warned_once(void **state)
{
	struct fx *f = *state;
	int sealed = memfd_create("it-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	/* nh_open's guest RAM is an unsealed memfd: warned already */
	assert_int_equal(cap_get(&cap0, &cap0.unsealed), 1);
	map_window(f);
	assert_int_equal(cap_get(&cap0, &cap0.unsealed), 1);
	assert_true(sealed >= 0);
	assert_int_equal(ftruncate(sealed, LOST_SIZE), 0);
	assert_int_equal(fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	assert_int_equal(vfurt_client_dma_map(nh_client(f->h), LOST_IOVA + LOST_SIZE, LOST_SIZE,
					      sealed, 0, VFIO_USER_DMA_MAP_FLAG_READ,
					      VFURT_CLIENT_DMA_SEND_FD),
			 0);
	close(sealed);
	assert_int_equal(cap_get(&cap0, &cap0.unsealed), 1);
	assert_int_equal(cap_get(&cap1, &cap1.unsealed), 1);
}

/* ---- the handler itself, in child processes ------------------------------ */

static void child_quiet(void)
{
	struct rlimit no_core = { 0, 0 };

	(void)setrlimit(RLIMIT_CORE, &no_core);
	/* cmocka catches SIGBUS/SIGSEGV for its reports: a program's child
	 * starts from the default action, which is what the guard chains to */
	signal(SIGBUS, SIG_DFL);
	signal(SIGSEGV, SIG_DFL);
}

/* A page of a memfd truncated under its mapping: touching it is SIGBUS. */
static volatile uint8_t *lost_page(void)
{
	int fd = it_memfd(4096);
	void *p;

	if (fd < 0)
		_exit(90);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || ftruncate(fd, 0) < 0)
		_exit(91);
	close(fd);
	return p;
}

static int run_child(void (*fn)(void))
{
	pid_t pid;
	int st = 0;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		child_quiet();
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static struct vfurt_fault_domain child_dom;

/* Registered window: the access completes (reads zeros), the domain counts it. */
static void child_in_window(void)
{
	volatile uint8_t *p = lost_page();

	if (vfr_fault_guard_acquire() ||
	    vfr_fault_register(&child_dom, (void *)p, 4096, 0x1000, PROT_READ | PROT_WRITE))
		_exit(92);
	if (p[100] != 0)
		_exit(93);
	p[200] = 1;
	if (vfurt_fault_domain_count(&child_dom) != 1)
		_exit(94);
	_exit(0);
}

/* Same fault, not registered (another window is): not masked. */
static void child_outside_window(void)
{
	volatile uint8_t *p = lost_page();
	void *other = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (other == MAP_FAILED || vfr_fault_guard_acquire() ||
	    vfr_fault_register(&child_dom, other, 4096, 0x1000, PROT_READ))
		_exit(92);
	(void)p[100];
	_exit(0); /* must not get here */
}

/* A plain bad pointer: SIGSEGV is not ours at all. */
static void child_segv(void)
{
	volatile uint8_t *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED || vfr_fault_guard_acquire())
		_exit(92);
	(void)p[0];
	_exit(0);
}

static void on_prev(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	_exit(42);
}

/* A handler installed before ours gets the faults that are not ours. */
static void child_chains(void)
{
	struct sigaction sa;
	volatile uint8_t *p;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_prev;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) < 0 || vfr_fault_guard_acquire())
		_exit(92);
	p = lost_page();
	(void)p[1];
	_exit(0);
}

static atomic_bool churn_stop;

/* Other windows come and go while the main thread faults. */
static void *churn(void *arg)
{
	static struct vfurt_fault_domain dom;
	uint8_t *base = arg;

	while (!atomic_load(&churn_stop)) {
		for (int i = 0; i < 64; i++)
			if (vfr_fault_register(&dom, base + (size_t)i * 4096, 4096,
						 (uint64_t)i << 12, PROT_READ))
				_exit(95);
		for (int i = 0; i < 64; i++)
			vfr_fault_unregister(&dom, base + (size_t)i * 4096);
	}
	return NULL;
}

#define CHURN_FAULTS 2000

static void child_churn(void)
{
	int fd = it_memfd(4096);
	void *other = mmap(NULL, 64 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile uint8_t *p;
	pthread_t t;

	if (fd < 0 || other == MAP_FAILED || vfr_fault_guard_acquire())
		_exit(92);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || ftruncate(fd, 0) < 0)
		_exit(91);
	if (pthread_create(&t, NULL, churn, other))
		_exit(96);
	if (vfr_fault_register(&child_dom, (void *)p, 4096, 0x1000, PROT_READ | PROT_WRITE))
		_exit(92);
	for (int i = 0; i < CHURN_FAULTS; i++) {
		/* the file's mapping back: the next touch faults again */
		if (mmap((void *)p, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) !=
		    (void *)p)
			_exit(97);
		(void)p[i % 4096];
	}
	atomic_store(&churn_stop, true);
	pthread_join(t, NULL);
	_exit(vfurt_fault_domain_count(&child_dom) == CHURN_FAULTS ? 0 : 98);
}

static void assert_killed(int st, int sig)
{
#ifdef UNDER_ASAN
	/* ASan's own handler reports the fault and aborts or exits non-zero */
	(void)sig;
	assert_false(WIFEXITED(st) && WEXITSTATUS(st) == 0);
#else
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), sig);
#endif
}

static void test_handler_in_window_survives(void **state)
{
	int st = run_child(child_in_window);

	(void)state;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* Lookups stay right while other threads register and unregister. */
static void test_handler_under_churn(void **state)
{
	int st = run_child(child_churn);

	(void)state;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_handler_chains(void **state)
{
	int st = run_child(child_chains);

	(void)state;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 42);
}

static void test_handler_outside_window_kills(void **state)
{
	(void)state;
	assert_killed(run_child(child_outside_window), SIGBUS);
	assert_killed(run_child(child_segv), SIGSEGV);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handler_in_window_survives),
		cmocka_unit_test(test_handler_outside_window_kills),
		cmocka_unit_test(test_handler_chains),
		cmocka_unit_test(test_handler_under_churn),
		cmocka_unit_test_setup_teardown(test_unsealed_warned_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_into_lost_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_from_lost_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sq_in_lost_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_into_lost_window, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_write_from_lost_window, setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_read_into_lost_window, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_write_from_lost_window, setup_rt, teardown),
		cmocka_unit_test_setup_teardown(test_sq_in_lost_window, setup_rt, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
