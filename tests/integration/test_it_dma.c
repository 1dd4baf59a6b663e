/* Integration: DMA windows that go wrong — permissions, client refusals, bad backing files. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fixture.h"
#include "common/it_util.h"
#include "common/testsrv.h"

#define IOVA 0x100000ull
#define PG 4096u
#define RD VFIO_USER_DMA_MAP_FLAG_READ
#define WR VFIO_USER_DMA_MAP_FLAG_WRITE
#define RW (RD | WR)

/* One test device, c connected to it. */
static int setup(void **state)
{
	struct it_fx_opts o = { .name = "it-dma" };

	return it_fx_start(state, &o);
}

static int raw_map(struct vfurt_client *c, uint64_t iova, uint64_t size, uint32_t flags,
		   uint64_t off, int fd)
{
	struct vfio_user_dma_map m = { .argsz = sizeof(m), .flags = flags, .offset = off,
				       .addr = iova, .size = size };

	return vfurt_client_request(c, VFIO_USER_DMA_MAP, 0, &m, sizeof(m), fd >= 0 ? &fd : NULL,
				    fd >= 0 ? 1 : 0, NULL, 0, NULL, NULL, NULL);
}

/* The device may only do what the window allows, on both paths. */
static void test_dma_prot_enforced(void **state)
{
	struct it_fx *x = *state;
	static uint8_t ro[PG] __attribute__((aligned(PG)));
	static uint8_t wo[PG] __attribute__((aligned(PG)));
	int mfd = it_memfd(2 * PG);

	assert_true(mfd >= 0);
	assert_int_equal(vfurt_client_dma_map_mem(x->c, IOVA, PG, ro, RD, 0), 0);
	assert_int_equal(vfurt_client_dma_map_mem(x->c, IOVA + PG, PG, wo, WR, 0), 0);
	assert_int_equal(vfurt_client_dma_map(x->c, IOVA + 2 * PG, PG, mfd, 0, RD,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_int_equal(vfurt_client_dma_map(x->c, IOVA + 3 * PG, PG, mfd, PG, WR,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	/* op 1 reads guest memory, op 2 writes it */
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 64), 0);
	assert_int_equal(it_dev_dma(x->c, 2, IOVA, 64), -EACCES);
	assert_int_equal(it_dev_dma(x->c, 2, IOVA + PG, 64), 0);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA + PG, 64), -EACCES);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA + 2 * PG, 64), 0);
	assert_int_equal(it_dev_dma(x->c, 2, IOVA + 2 * PG, 64), -EACCES);
	assert_int_equal(it_dev_dma(x->c, 2, IOVA + 3 * PG, 64), 0);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA + 3 * PG, 64), -EACCES);
	/* a range that needs both permissions across windows */
	assert_int_equal(it_dev_dma(x->c, 1, IOVA + PG - 32, 64), -EACCES);
	assert_true(it_alive(x->c));
	assert_int_equal(vfurt_client_dma_unmap(x->c, 0, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL), 0);
	close(mfd);
}

/* A window the client library does not know of (mapped with a raw
 * DMA_MAP): the client answers DMA_READ/DMA_WRITE with EFAULT, the device
 * sees that errno, and the connection goes on. */
static void test_dma_refused_by_client(void **state)
{
	struct it_fx *x = *state;
	struct vfurt_client_stats cs = { .stats_size = sizeof(cs) };

	assert_int_equal(raw_map(x->c, IOVA, 4 * PG, RW, 0, -1), 0);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 128), -EFAULT);
	assert_int_equal(it_dev_dma(x->c, 2, IOVA + PG, 128), -EFAULT);
	assert_int_equal(vfurt_client_get_stats(x->c, &cs), 0);
	assert_int_equal(cs.dma_errors, 2);
	assert_int_equal(cs.dma_reads + cs.dma_writes, 0);
	assert_true(it_alive(x->c));
	assert_int_equal(vfurt_client_dma_unmap(x->c, IOVA, 4 * PG, 0), 0);
}

/* A window mapped read-write from an fd the server can only map read-only. */
static void test_dma_map_readonly_fd(void **state)
{
	struct it_fx *x = *state;
	int mfd = it_memfd(PG);
	char path[64];
	int rofd;

	assert_true(mfd >= 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
	rofd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(rofd >= 0);
	assert_int_equal(raw_map(x->c, IOVA, PG, RW, 0, rofd), -EACCES);
	assert_int_equal(raw_map(x->c, IOVA, PG, WR, 0, rofd), -EACCES);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 0);
	/* read-only is what it allows */
	assert_int_equal(raw_map(x->c, IOVA, PG, RD, 0, rofd), 0);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 64), 0);
	assert_int_equal(it_dev_dma(x->c, 2, IOVA, 64), -EACCES);
	assert_int_equal(vfurt_client_dma_unmap(x->c, IOVA, PG, 0), 0);
	close(rofd);
	close(mfd);
	assert_true(it_alive(x->c));
}

/* Child process body for test_dma_map_beyond_file_end: returns an exit code. */
static int beyond_eof_child(void)
{
	struct testdev_stats *st;
	struct vfurt_dev *dev = testdev_create("it-dma-eof", NULL, &st);
	struct testsrv *ts = dev ? testsrv_start(&dev, 1, NULL) : NULL;
	struct vfurt_client *c = ts ? it_connect(testsrv_path(ts, 0), 0) : NULL;
	int mfd = it_memfd(PG);
	int rc;

	if (!c || mfd < 0)
		return 10;
	/* four pages of a one-page file */
	rc = raw_map(c, IOVA, 4 * PG, RW, 0, mfd);
	if (rc == -EINVAL)
		return 0; /* refused up front */
	if (rc)
		return 11;
	/* accepted: the device touching page 3 must not take the server down */
	rc = it_dev_dma(c, 1, IOVA + 3 * PG, 64);
	return rc < 0 ? 0 : 12;
}

/*
 * A DMA_MAP whose fd range lies beyond the end of the file maps fine, but
 * the first device access there raises SIGBUS in the server. Run in a
 * child so that a crash is reported instead of killing this test program.
 */
static void test_dma_map_beyond_file_end(void **state)
{
	int status = 0;
	pid_t pid;

	(void)state;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* cmocka's handlers would hide the signal from waitpid */
		signal(SIGBUS, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		_exit(beyond_eof_child());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* Regression: a window past the end of its memfd used to be mapped, and
	 * the first device access killed the whole server with SIGBUS. */
	if (WIFSIGNALED(status))
		fail_msg("server process killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Windows near the top of the address space and a large sparse window. */
static void test_dma_edges(void **state)
{
	struct it_fx *x = *state;
	const uint64_t top = UINT64_MAX - 2 * (uint64_t)PG + 1; /* ends 4 KiB below 2^64 */
	static uint8_t g[PG] __attribute__((aligned(PG)));
	uint8_t bar[64];

	it_fill(g, PG, 91);
	assert_int_equal(vfurt_client_dma_map_mem(x->c, top, PG, g, RW, 0), 0);
	assert_int_equal(it_dev_dma(x->c, 1, top + PG - 64, 64), 0);
	assert_int_equal(vfurt_client_region_read(x->c, VFURT_REGION_BAR1, 0, bar, 64), 0);
	assert_memory_equal(bar, g + PG - 64, 64);
	/* running off the window, and off the address space */
	assert_int_equal(it_dev_dma(x->c, 1, top + PG - 32, 64), -ENOENT);
	assert_int_equal(it_dev_dma(x->c, 1, UINT64_MAX - 31, 64), -EINVAL);
	assert_int_equal(vfurt_client_dma_unmap(x->c, top, PG, 0), 0);

	/* a 1 GiB window of which only the part touched is ever transferred */
	{
		int mfd = it_memfd(1ull << 30);

		assert_true(mfd >= 0);
		assert_int_equal(vfurt_client_dma_map(x->c, 1ull << 32, 1ull << 30, mfd, 0, RW,
						      VFURT_CLIENT_DMA_SEND_FD), 0);
		assert_int_equal(it_dev_dma(x->c, 2, (1ull << 32) + (1ull << 30) - 4096, 4096), 0);
		assert_int_equal(vfurt_client_dma_unmap(x->c, 1ull << 32, 1ull << 30, 0), 0);
		close(mfd);
	}
	assert_true(it_alive(x->c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dma_prot_enforced, setup, it_fx_teardown),
		cmocka_unit_test_setup_teardown(test_dma_refused_by_client, setup, it_fx_teardown),
		cmocka_unit_test_setup_teardown(test_dma_map_readonly_fd, setup, it_fx_teardown),
		cmocka_unit_test(test_dma_map_beyond_file_end),
		cmocka_unit_test_setup_teardown(test_dma_edges, setup, it_fx_teardown),
	};

	return cmocka_run_group_tests_name("integration: dma errors", tests, NULL, NULL);
}
