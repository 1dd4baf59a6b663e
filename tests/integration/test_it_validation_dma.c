/* Integration: validation of DMA_MAP and DMA_UNMAP: flags, ranges, fds, limits. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fixture.h"
#include "common/it_util.h"
#include "common/testsrv.h"
#include "common/val_fx.h"

#define IOVA 0x100000ull
#define PG 4096u
#define RW (VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE)

static int map(struct vfurt_client *c, uint64_t iova, uint64_t size, uint32_t flags,
	       uint64_t off, const int *fds, size_t nfds)
{
	struct vfio_user_dma_map m = { .argsz = sizeof(m), .flags = flags, .offset = off,
				       .addr = iova, .size = size };

	return val_req(c, VFIO_USER_DMA_MAP, &m, sizeof(m), fds, nfds);
}

static int unmap(struct vfurt_client *c, uint64_t iova, uint64_t size, uint32_t flags)
{
	struct vfio_user_dma_unmap u = { .argsz = sizeof(u), .flags = flags, .addr = iova,
					 .size = size };

	return val_req(c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), NULL, 0);
}

static void test_dma_map_invalid(void **state)
{
	struct it_fx *x = *state;

	assert_int_equal(map(x->c, IOVA, 4 * PG, RW, 0, NULL, 0), 0);
	/* overlaps: inside, straddling either end, covering */
	assert_int_equal(map(x->c, IOVA + PG, PG, RW, 0, NULL, 0), -EEXIST);
	assert_int_equal(map(x->c, IOVA - PG, 2 * PG, RW, 0, NULL, 0), -EEXIST);
	assert_int_equal(map(x->c, IOVA + 3 * PG, 2 * PG, RW, 0, NULL, 0), -EEXIST);
	assert_int_equal(map(x->c, IOVA - PG, 6 * PG, RW, 0, NULL, 0), -EEXIST);
	/* adjacent is fine */
	assert_int_equal(map(x->c, IOVA + 4 * PG, PG, RW, 0, NULL, 0), 0);
	assert_int_equal(map(x->c, IOVA - PG, PG, RW, 0, NULL, 0), 0);

	assert_int_equal(map(x->c, 0x900000, 0, RW, 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, 0x900800, PG, RW, 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, 0x900000, PG + 1, RW, 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, UINT64_MAX - PG + 1, 2 * PG, RW, 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, 0x900000, PG, 0, 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, 0x900000, PG, RW | (1u << 2), 0, NULL, 0), -EINVAL);
	assert_int_equal(map(x->c, 0x900000, PG, 1u << 31, 0, NULL, 0), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 3);
	assert_true(it_alive(x->c));
}

static void test_dma_map_fds_invalid(void **state)
{
	struct it_fx *x = *state;
	int n0 = test_count_fds();
	int fds[2] = { it_memfd(4 * PG), it_memfd(4 * PG) };
	int pfd[2];
	int n1;

	assert_true(fds[0] >= 0 && fds[1] >= 0);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	n1 = test_count_fds();
	/* two fds: refused, both server copies closed */
	assert_int_equal(map(x->c, IOVA, PG, RW, 0, fds, 2), -EINVAL);
	assert_int_equal(test_count_fds(), n1);
	/* fd offset not page aligned */
	assert_int_equal(map(x->c, IOVA, PG, RW, 0x800, fds, 1), -EINVAL);
	assert_int_equal(test_count_fds(), n1);
	/* an fd that cannot be mapped */
	assert_true(map(x->c, IOVA, PG, RW, 0, pfd, 1) < 0);
	assert_int_equal(test_count_fds(), n1);
	/* a good one: the server keeps the mapping and one fd (a live upgrade
	 * hands it on) */
	assert_int_equal(map(x->c, IOVA, PG, RW, PG, fds, 1), 0);
	assert_int_equal(test_count_fds(), n1 + 1);
	/* overlapping with an fd */
	assert_int_equal(map(x->c, IOVA, PG, RW, 0, fds + 1, 1), -EEXIST);
	assert_int_equal(test_count_fds(), n1 + 1);
	assert_int_equal(atomic_load(&x->st[0]->dma_map), 1);
	close(fds[0]);
	close(fds[1]);
	close(pfd[0]);
	close(pfd[1]);
	assert_int_equal(test_count_fds(), n0 + 1); /* the window still mapped */
	assert_true(it_alive(x->c));
}

static int setup_max_maps(void **state)
{
	struct vfurt_conn_opts co = { .opts_size = sizeof(co), .max_dma_maps = 2 };

	return val_start(state, NULL, &co, 0);
}

static void test_dma_map_limit(void **state)
{
	struct it_fx *x = *state;
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };

	assert_int_equal(vfurt_client_get_caps(x->c, &caps), 0);
	assert_int_equal(caps.max_dma_maps, 2);
	assert_int_equal(map(x->c, IOVA, PG, RW, 0, NULL, 0), 0);
	assert_int_equal(map(x->c, IOVA + PG, PG, RW, 0, NULL, 0), 0);
	assert_int_equal(map(x->c, IOVA + 2 * PG, PG, RW, 0, NULL, 0), -ENOSPC);
	assert_int_equal(unmap(x->c, IOVA, PG, 0), 0);
	assert_int_equal(map(x->c, IOVA + 2 * PG, PG, RW, 0, NULL, 0), 0);
	assert_true(it_alive(x->c));
}

static void test_dma_unmap_invalid(void **state)
{
	struct it_fx *x = *state;

	assert_int_equal(map(x->c, IOVA, 4 * PG, RW, 0, NULL, 0), 0);
	/* no exact match */
	assert_int_equal(unmap(x->c, IOVA, PG, 0), -ENOENT);
	assert_int_equal(unmap(x->c, IOVA + PG, 3 * PG, 0), -ENOENT);
	assert_int_equal(unmap(x->c, IOVA, 8 * PG, 0), -ENOENT);
	assert_int_equal(unmap(x->c, 0x900000, PG, 0), -ENOENT);
	assert_int_equal(unmap(x->c, IOVA, 0, 0), -EINVAL);
	/* unmap-all takes no range */
	assert_int_equal(unmap(x->c, IOVA, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL), -EINVAL);
	assert_int_equal(unmap(x->c, 0, PG, VFIO_USER_DMA_UNMAP_FLAG_ALL), -EINVAL);
	/* dirty page tracking is not offered; unknown flags */
	assert_int_equal(unmap(x->c, IOVA, 4 * PG, VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP),
			 -ENOTSUP);
	assert_int_equal(unmap(x->c, IOVA, 4 * PG, 1u << 2), -EINVAL);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 0);
	assert_int_equal(unmap(x->c, IOVA, 4 * PG, 0), 0);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 1);
	assert_true(it_alive(x->c));
}

/*
 * Regression (SPDK): its NVMe driver sends the region's fd along with
 * DMA_UNMAP, which libvfio-user accepts. The server takes it, closes it and
 * unmaps as usual; more than one fd is still refused.
 */
static void test_dma_unmap_with_fd(void **state)
{
	struct it_fx *x = *state;
	struct vfio_user_dma_unmap u = { .argsz = sizeof(u), .addr = IOVA, .size = 4 * PG };
	struct vfio_user_dma_unmap all = { .argsz = sizeof(all),
					   .flags = VFIO_USER_DMA_UNMAP_FLAG_ALL };
	struct vfio_user_dma_unmap echo;
	int n0 = test_count_fds();
	int fds[2] = { it_memfd(4 * PG), it_memfd(4 * PG) };
	int n1 = test_count_fds();

	assert_true(fds[0] >= 0 && fds[1] >= 0);
	assert_int_equal(map(x->c, IOVA, 4 * PG, RW, 0, fds, 1), 0);
	assert_int_equal(test_count_fds(), n1 + 1); /* the window's fd */
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 64), 0); /* the device reaches it */

	/* two fds: refused, both server copies closed, still mapped */
	assert_int_equal(val_req(x->c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), fds, 2), -EINVAL);
	assert_int_equal(test_count_fds(), n1 + 1); /* the window's fd */
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 0);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 64), 0);

	/* as SPDK sends it: accepted, the fd closed, the window gone */
	assert_int_equal(val_req(x->c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), fds, 1), 0);
	memcpy(&echo, val_rbuf, sizeof(echo));
	assert_int_equal(echo.addr, IOVA);
	assert_int_equal(echo.size, 4 * PG);
	assert_int_equal(test_count_fds(), n1);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 1);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 64), -ENOENT);
	assert_int_equal(unmap(x->c, IOVA, 4 * PG, 0), -ENOENT);

	/* an unmap that fails still closes the fd */
	assert_int_equal(val_req(x->c, VFIO_USER_DMA_UNMAP, &u, sizeof(u), fds, 1), -ENOENT);
	assert_int_equal(test_count_fds(), n1);

	/* unmap-all with an fd */
	assert_int_equal(map(x->c, IOVA, 4 * PG, RW, 0, fds + 1, 1), 0);
	assert_int_equal(val_req(x->c, VFIO_USER_DMA_UNMAP, &all, sizeof(all), fds + 1, 1), 0);
	assert_int_equal(test_count_fds(), n1);
	assert_int_equal(atomic_load(&x->st[0]->dma_unmap), 2);
	assert_int_equal(it_dev_dma(x->c, 1, IOVA, 64), -ENOENT);

	close(fds[0]);
	close(fds[1]);
	assert_int_equal(test_count_fds(), n0);
	assert_true(it_alive(x->c));
	val_guard_ok(x);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, val_setup, it_fx_teardown)
#define TS(fn, s) cmocka_unit_test_setup_teardown(fn, s, it_fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_dma_map_invalid),
		T(test_dma_map_fds_invalid),
		TS(test_dma_map_limit, setup_max_maps),
		T(test_dma_unmap_invalid),
		T(test_dma_unmap_with_fd),
#undef T
#undef TS
	};

	return cmocka_run_group_tests_name("validation: DMA", tests, NULL, NULL);
}
