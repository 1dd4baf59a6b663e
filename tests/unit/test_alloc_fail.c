/*
 * Allocation failure on every create/add/map path: the Nth allocation of
 * the test thread fails, for every N until the path needs no more; each
 * failure must come back as an error with everything unwound (no fd left
 * open here; no memory left, which the ASan build's leak check proves).
 * Linked with -Wl,--wrap for the allocators (tests/CMakeLists.txt).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/bdev.h>
#include <vfurt/engine.h>
#include <vfurt/gpio.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>
#include <vfurt/server.h>

#include "common/testsrv.h"
#include "io/dma.h"

/* ---- the injector ------------------------------------------------------- */

/* Only the test thread's allocations count and fail: worker threads a path
 * starts allocate on their own schedule. */
static _Thread_local bool armed;
static _Thread_local long fail_at;
static _Thread_local long seen;

static bool fail_now(void)
{
	if (!armed)
		return false;
	return seen++ == fail_at;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
char *__real_strdup(const char *s);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);
char *__wrap_strdup(const char *s);

void *__wrap_malloc(size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_aligned_alloc(a, n);
}

int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
	if (fail_now())
		return ENOMEM;
	return __real_posix_memalign(p, a, n);
}

char *__wrap_strdup(const char *s)
{
	if (fail_now()) {
		errno = ENOMEM;
		return NULL;
	}
	return __real_strdup(s);
}

/*
 * Run path() with allocation k failing, for k = 0, 1, ... until a run
 * sees fewer allocations than k (every allocation point was hit). A run
 * with an injected failure must fail; a run without one must succeed. Each
 * leaves no fd open. Returns the number of allocation points.
 */
static long sweep(const char *what, int (*path)(void *arg), void *arg)
{
	int fds0 = test_count_fds();
	long k;

	for (k = 0; k < 100000; k++) {
		int rc;
		bool injected;

		seen = 0;
		fail_at = k;
		armed = true;
		rc = path(arg);
		armed = false;
		injected = seen > k;
		if (injected && rc == 0) {
			fprintf(stderr, "%s: allocation %ld failed, yet the call succeeded\n", what, k);
			fail();
		}
		if (!injected && rc != 0) {
			fprintf(stderr, "%s: failed (%d) with no allocation failing\n", what, rc);
			fail();
		}
		if (test_count_fds() != fds0) {
			fprintf(stderr, "%s: allocation %ld failing left %d fds open (had %d)\n", what,
				k, test_count_fds(), fds0);
			fail();
		}
		if (!injected)
			break;
	}
	fprintf(stderr, "%s: %ld allocation points, each failure unwound\n", what, k);
	return k;
}

/* ---- the paths ------------------------------------------------------------ */

static int gpio_path(void *arg)
{
	struct vfurt_gpio_opts o = { .opts_size = sizeof(o), .name = "gpio-af" };
	struct vfurt_dev *dev = vfurt_gpio_create(&o);

	(void)arg;
	if (!dev)
		return -errno;
	armed = false;
	vfurt_dev_destroy(dev);
	return 0;
}

static int nvme_path(void *arg)
{
	struct vfurt_bdev *b = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "ns-af", .block_size = 512,
		.size_bytes = 1u << 20 });
	struct vfurt_nvme_opts o = {
		.opts_size = sizeof(o), .name = "nvme-af", .nr_ns = 1, .own_bdevs = true,
	};
	struct vfurt_dev *dev;

	(void)arg;
	if (!b)
		return -ENOMEM;
	o.ns = &b;
	dev = vfurt_nvme_create(&o);
	if (!dev) {
		int rc = -errno;

		armed = false;
		vfurt_bdev_destroy(b); /* on failure the caller keeps its bdevs */
		return rc;
	}
	armed = false;
	vfurt_dev_destroy(dev);
	return 0;
}

static struct vfurt_dev *gpio_unarmed(void)
{
	struct vfurt_gpio_opts o = { .opts_size = sizeof(o), .name = "gpio-af" };
	bool was = armed;
	struct vfurt_dev *dev;

	armed = false;
	dev = vfurt_gpio_create(&o);
	armed = was;
	assert_non_null(dev);
	return dev;
}

static int server_path(void *arg)
{
	const char *dir = arg;
	struct vfurt_server_opts so = { .opts_size = sizeof(so) };
	struct vfurt_dev *dev = gpio_unarmed();
	struct vfurt_server *srv = vfurt_server_create(&so);
	char path[256];
	int rc;

	if (!srv) {
		vfurt_dev_destroy(dev);
		return -ENOMEM;
	}
	snprintf(path, sizeof(path), "%s/srv.sock", dir);
	rc = vfurt_server_add_device(srv, dev, path, 0600);
	if (rc)
		vfurt_dev_destroy(dev); /* not taken on failure */
	armed = false;
	vfurt_server_destroy(srv);
	return rc;
}

static int runtime_path(void *arg)
{
	const char *dir = arg;
	struct vfurt_runtime_opts ro = { .opts_size = sizeof(ro), .cores = "0",
					 .poll_mode = VFURT_POLL_ADAPTIVE };
	struct vfurt_dev *dev = gpio_unarmed();
	struct vfurt_runtime *rt;
	char path[256];
	int rc;

	rt = vfurt_runtime_create(&ro, NULL, 0);
	if (!rt) {
		vfurt_dev_destroy(dev);
		return -ENOMEM;
	}
	snprintf(path, sizeof(path), "%s/rt.sock", dir);
	rc = vfurt_runtime_add_device(rt, dev, path, 0600, -1);
	if (rc)
		vfurt_dev_destroy(dev);
	if (!rc)
		rc = vfurt_runtime_start(rt);
	armed = false;
	vfurt_runtime_destroy(rt);
	return rc;
}

static int conn_path(void *arg)
{
	struct vfurt_dev *dev = arg;
	int sv[2];
	struct vfurt_conn *c;
	bool was = armed;

	armed = false;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	armed = was;
	c = vfurt_conn_create(dev, sv[0], NULL);
	armed = false;
	if (!c) {
		close(sv[0]);
		close(sv[1]);
		return -ENOMEM;
	}
	vfurt_conn_destroy(c);
	close(sv[1]);
	return 0;
}

struct map_arg {
	struct vfurt_dma_table *t;
	int memfd;
};

static int map_path(void *arg)
{
	struct map_arg *m = arg;
	int fd;
	int rc;

	armed = false;
	fd = fcntl(m->memfd, F_DUPFD_CLOEXEC, 0);
	armed = true;
	/* a second window next to the first: the insert that allocates */
	rc = vfr_dma_table_add(m->t, 0x200000, 0x10000, fd, 0, VFURT_DMA_READ | VFURT_DMA_WRITE,
				 NULL);
	armed = false;
	if (rc) {
		close(fd); /* the caller still owns it on failure */
		return rc;
	}
	rc = vfr_dma_table_remove(m->t, 0x200000, 0x10000, NULL, NULL);
	assert_int_equal(rc, 0);
	return 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_gpio_create(void **state)
{
	(void)state;
	assert_true(sweep("vfurt_gpio_create", gpio_path, NULL) > 0);
}

static void test_nvme_create(void **state)
{
	(void)state;
	assert_true(sweep("vfurt_nvme_create", nvme_path, NULL) > 0);
}

static void test_server_add(void **state)
{
	char dir[] = "/tmp/vfurt-af-XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_true(sweep("vfurt_server_create/add_device", server_path, dir) > 0);
	rmdir(dir);
}

static void test_runtime_add_start(void **state)
{
	char dir[] = "/tmp/vfurt-af-XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_true(sweep("vfurt_runtime_create/add_device/start", runtime_path, dir) > 0);
	rmdir(dir);
}

static void test_conn_create(void **state)
{
	struct vfurt_dev *dev = gpio_unarmed();

	(void)state;
	assert_true(sweep("vfurt_conn_create", conn_path, dev) > 0);
	vfurt_dev_destroy(dev);
}

static void test_dma_map(void **state)
{
	struct map_arg m = { .t = vfr_dma_table_create(1024, 4096) };

	(void)state;
	assert_non_null(m.t);
	m.memfd = memfd_create("af", MFD_CLOEXEC);
	assert_true(m.memfd >= 0);
	assert_int_equal(ftruncate(m.memfd, 0x10000), 0);
	/* one window already, so that the insert has neighbours */
	{
		int fd = fcntl(m.memfd, F_DUPFD_CLOEXEC, 0);

		assert_int_equal(vfr_dma_table_add(m.t, 0x100000, 0x10000, fd, 0,
						     VFURT_DMA_READ, NULL), 0);
	}
	sweep("vfr_dma_table_add", map_path, &m);
	vfr_dma_table_destroy(m.t);
	close(m.memfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gpio_create),
		cmocka_unit_test(test_nvme_create),
		cmocka_unit_test(test_server_add),
		cmocka_unit_test(test_runtime_add_start),
		cmocka_unit_test(test_conn_create),
		cmocka_unit_test(test_dma_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
