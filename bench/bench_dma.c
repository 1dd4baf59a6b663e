/* DMA table: to_sg and ptr lookups among 1-1024 fd-backed windows, and map storms; tree vs the old flat array. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/dma.h"

#include "dma_flat_baseline.h"
#include "suites.h"

/*
 * Every case runs twice: dma/... on the table of io/dma.c (the B+ tree) and
 * dma_flat/... on the sorted array it replaced (dma_flat_baseline.c), with
 * the same windows and the same lookup sequence, so that one invocation
 * compares them (bench/run.sh interleaves the repetitions).
 */

#define WIN_SIZE 4096ull
#define IOVA_BASE 0x100000000ull
#define NR_LOOKUPS 1024u /* pseudo-random sequence of windows, reused */

struct dma_fx {
	struct vfurt_dma_table *t;
	struct flat_dma_table *ft;
	uint32_t windows;
	uint64_t iovas[NR_LOOKUPS]; /* start of the window each lookup targets */
};

static void dma_teardown(void *p)
{
	struct dma_fx *fx = p;

	vfr_dma_table_destroy(fx->t);
	flat_dma_table_destroy(fx->ft);
	free(fx);
}

/*
 * Back every window with its own page of one memfd, as a VMM maps guest RAM
 * in pieces. Contiguous iovas, so a lookup walks the whole sorted table.
 */
static void *dma_setup(int64_t windows, const char **why)
{
	struct dma_fx *fx = calloc(1, sizeof(*fx));
	uint32_t x = 12345;
	int memfd;

	if (!fx)
		return NULL;
	fx->windows = (uint32_t)windows;
	fx->t = vfr_dma_table_create(fx->windows, WIN_SIZE);
	fx->ft = flat_dma_table_create(fx->windows, WIN_SIZE);
	memfd = memfd_create("vfurt-bench-dma", MFD_CLOEXEC);
	if (!fx->t || !fx->ft || memfd < 0 || ftruncate(memfd, (off_t)(WIN_SIZE * fx->windows))) {
		*why = "DMA table or memfd setup failed";
		goto err;
	}
	for (uint32_t i = 0; i < fx->windows; i++) {
		int fd = dup(memfd), ffd = dup(memfd);

		/* the tables close fd on success only */
		if (fd < 0 || vfr_dma_table_add(fx->t, IOVA_BASE + i * WIN_SIZE, WIN_SIZE, fd,
						  i * WIN_SIZE, VFURT_DMA_READ | VFURT_DMA_WRITE,
						  NULL)) {
			if (fd >= 0)
				close(fd);
			if (ffd >= 0)
				close(ffd);
			*why = "vfr_dma_table_add failed";
			goto err;
		}
		if (ffd < 0 || flat_dma_table_add(fx->ft, IOVA_BASE + i * WIN_SIZE, WIN_SIZE, ffd,
						  i * WIN_SIZE, VFURT_DMA_READ | VFURT_DMA_WRITE,
						  NULL)) {
			if (ffd >= 0)
				close(ffd);
			*why = "flat_dma_table_add failed";
			goto err;
		}
	}
	close(memfd);
	for (uint32_t i = 0; i < NR_LOOKUPS; i++) {
		x = x * 1103515245u + 12345u; /* LCG: a fixed, branch-unfriendly order */
		fx->iovas[i] = IOVA_BASE + (uint64_t)((x >> 8) % fx->windows) * WIN_SIZE;
	}
	return fx;

err:
	if (memfd >= 0)
		close(memfd);
	dma_teardown(fx);
	return NULL;
}

/*
 * The three lookups, stamped out for both tables (TABLE: the fixture's
 * field, PFX: the function prefix), so that each calls its table's
 * functions directly, as the devices do.
 */
#define DMA_LOOKUP_CASES(SUFFIX, TABLE, PFX)                                                  \
	/* 512 bytes inside one window into an SGL (a PRP entry's worth). */                  \
	static void bm_to_sg##SUFFIX(struct vfurt_bench_state *st)                           \
	{                                                                                     \
		struct dma_fx *fx = vfurt_bench_fixture(st);                                  \
		struct vfurt_sg sg[4];                                                        \
		uint64_t errors = 0;                                                          \
		uint32_t k = 0;                                                               \
                                                                                              \
		while (vfurt_bench_keep_running_batch(st, 64)) {                              \
			for (int i = 0; i < 64; i++) {                                        \
				uint64_t iova = fx->iovas[k++ & (NR_LOOKUPS - 1)] + 1024;     \
                                                                                              \
				if (PFX##_to_sg(fx->TABLE, iova, 512, VFURT_DMA_READ, sg, 4) != 1) \
					errors++;                                             \
				vfurt_bench_sink(sg[0].vaddr);                                \
			}                                                                     \
		}                                                                             \
		if (errors)                                                                   \
			vfurt_bench_counter(st, "errors", (double)errors);                    \
	}                                                                                     \
                                                                                              \
	/* A direct pointer to a 64-byte command in guest memory. */                          \
	static void bm_ptr##SUFFIX(struct vfurt_bench_state *st)                             \
	{                                                                                     \
		struct dma_fx *fx = vfurt_bench_fixture(st);                                  \
		uint64_t errors = 0;                                                          \
		uint32_t k = 0;                                                               \
                                                                                              \
		while (vfurt_bench_keep_running_batch(st, 64)) {                              \
			for (int i = 0; i < 64; i++) {                                        \
				uint64_t iova = fx->iovas[k++ & (NR_LOOKUPS - 1)] + 64;       \
				void *p = PFX##_ptr(fx->TABLE, iova, 64, VFURT_DMA_WRITE);    \
                                                                                              \
				if (!p)                                                       \
					errors++;                                             \
				vfurt_bench_sink(p);                                          \
			}                                                                     \
		}                                                                             \
		if (errors)                                                                   \
			vfurt_bench_counter(st, "errors", (double)errors);                    \
	}                                                                                     \
                                                                                              \
	/* A 4 KiB buffer straddling two windows: two SGL pieces. */                          \
	static void bm_to_sg_cross##SUFFIX(struct vfurt_bench_state *st)                     \
	{                                                                                     \
		struct dma_fx *fx = vfurt_bench_fixture(st);                                  \
		uint64_t last = IOVA_BASE + (fx->windows - 1) * WIN_SIZE;                     \
		struct vfurt_sg sg[4];                                                        \
		uint64_t errors = 0;                                                          \
		uint32_t k = 0;                                                               \
                                                                                              \
		while (vfurt_bench_keep_running_batch(st, 64)) {                              \
			for (int i = 0; i < 64; i++) {                                        \
				uint64_t iova = fx->iovas[k++ & (NR_LOOKUPS - 1)];            \
                                                                                              \
				if (iova == last)                                             \
					iova -= WIN_SIZE;                                     \
				if (PFX##_to_sg(fx->TABLE, iova + 2048, 4096, VFURT_DMA_READ, sg, \
						4) != 2)                                      \
					errors++;                                             \
				vfurt_bench_sink(sg[1].vaddr);                                \
			}                                                                     \
		}                                                                             \
		if (errors)                                                                   \
			vfurt_bench_counter(st, "errors", (double)errors);                    \
	}

DMA_LOOKUP_CASES(, t, vfr_dma_table)
DMA_LOOKUP_CASES(_flat, ft, flat_dma_table)

/*
 * A client's map storm, table only: N windows without fds (no mmap) added
 * in ascending iova order into an empty table, then the table destroyed;
 * one op is one map. The flat table copies its whole array per map, so its
 * op grows with N; the tree's grows with log N.
 */
static void bm_map_storm(struct vfurt_bench_state *st)
{
	uint32_t n = (uint32_t)vfurt_bench_arg(st);

	while (vfurt_bench_keep_running_batch(st, n)) {
		struct vfurt_dma_table *t = vfr_dma_table_create(n, WIN_SIZE);

		for (uint32_t i = 0; t && i < n; i++)
			if (vfr_dma_table_add(t, IOVA_BASE + i * WIN_SIZE, WIN_SIZE, -1, 0,
						VFURT_DMA_READ, NULL))
				break;
		vfurt_bench_sink(t);
		vfr_dma_table_destroy(t);
	}
}

static void bm_map_storm_flat(struct vfurt_bench_state *st)
{
	uint32_t n = (uint32_t)vfurt_bench_arg(st);

	while (vfurt_bench_keep_running_batch(st, n)) {
		struct flat_dma_table *t = flat_dma_table_create(n, WIN_SIZE);

		for (uint32_t i = 0; t && i < n; i++)
			if (flat_dma_table_add(t, IOVA_BASE + i * WIN_SIZE, WIN_SIZE, -1, 0,
					       VFURT_DMA_READ, NULL))
				break;
		vfurt_bench_sink(t);
		flat_dma_table_destroy(t);
	}
}

/* Random unmap + map at 1,024 windows: the steady state of a VMM that
 * remaps (a balloon, hotplug), one op is one remove and one add. */
static void bm_remap(struct vfurt_bench_state *st)
{
	struct dma_fx *fx = vfurt_bench_fixture(st);
	struct vfurt_dma_table *t = vfr_dma_table_create(fx->windows, WIN_SIZE);
	uint32_t k = 0;

	for (uint32_t i = 0; t && i < fx->windows; i++)
		(void)vfr_dma_table_add(t, IOVA_BASE + i * WIN_SIZE, WIN_SIZE, -1, 0,
					  VFURT_DMA_READ, NULL);
	while (vfurt_bench_keep_running(st)) {
		uint64_t iova = fx->iovas[k++ & (NR_LOOKUPS - 1)];

		(void)vfr_dma_table_remove(t, iova, WIN_SIZE, NULL, NULL);
		(void)vfr_dma_table_add(t, iova, WIN_SIZE, -1, 0, VFURT_DMA_READ, NULL);
	}
	vfr_dma_table_destroy(t);
}

static void bm_remap_flat(struct vfurt_bench_state *st)
{
	struct dma_fx *fx = vfurt_bench_fixture(st);
	struct flat_dma_table *t = flat_dma_table_create(fx->windows, WIN_SIZE);
	uint32_t k = 0;

	for (uint32_t i = 0; t && i < fx->windows; i++)
		(void)flat_dma_table_add(t, IOVA_BASE + i * WIN_SIZE, WIN_SIZE, -1, 0,
					 VFURT_DMA_READ, NULL);
	while (vfurt_bench_keep_running(st)) {
		uint64_t iova = fx->iovas[k++ & (NR_LOOKUPS - 1)];

		(void)flat_dma_table_remove(t, iova, WIN_SIZE);
		(void)flat_dma_table_add(t, iova, WIN_SIZE, -1, 0, VFURT_DMA_READ, NULL);
	}
	flat_dma_table_destroy(t);
}

const struct vfurt_bench_case bench_dma_cases[] = {
	{ .name = "dma/to_sg_512B", .fn = bm_to_sg, .setup = dma_setup, .teardown = dma_teardown,
	  .arg_name = "windows", .args = { 1, 64, 1024 }, .nargs = 3 },
	{ .name = "dma_flat/to_sg_512B", .fn = bm_to_sg_flat, .setup = dma_setup,
	  .teardown = dma_teardown, .arg_name = "windows", .args = { 1, 64, 1024 }, .nargs = 3 },
	{ .name = "dma/ptr_64B", .fn = bm_ptr, .setup = dma_setup, .teardown = dma_teardown,
	  .arg_name = "windows", .args = { 1, 64, 1024 }, .nargs = 3 },
	{ .name = "dma_flat/ptr_64B", .fn = bm_ptr_flat, .setup = dma_setup,
	  .teardown = dma_teardown, .arg_name = "windows", .args = { 1, 64, 1024 }, .nargs = 3 },
	{ .name = "dma/to_sg_4K_2windows", .fn = bm_to_sg_cross, .setup = dma_setup,
	  .teardown = dma_teardown, .arg_name = "windows", .args = { 64, 1024 }, .nargs = 2 },
	{ .name = "dma_flat/to_sg_4K_2windows", .fn = bm_to_sg_cross_flat, .setup = dma_setup,
	  .teardown = dma_teardown, .arg_name = "windows", .args = { 64, 1024 }, .nargs = 2 },
	{ .name = "dma/remap", .fn = bm_remap, .setup = dma_setup, .teardown = dma_teardown,
	  .arg_name = "windows", .args = { 1024 }, .nargs = 1 },
	{ .name = "dma_flat/remap", .fn = bm_remap_flat, .setup = dma_setup,
	  .teardown = dma_teardown, .arg_name = "windows", .args = { 1024 }, .nargs = 1 },
	/* one op = one map; the 65,535 flat storm alone takes seconds */
	{ .name = "dma/map_storm", .fn = bm_map_storm, .arg_name = "windows",
	  .args = { 1024, 8192, 65535 }, .nargs = 3 },
	{ .name = "dma_flat/map_storm", .fn = bm_map_storm_flat, .arg_name = "windows",
	  .args = { 1024, 8192, 65535 }, .nargs = 3 },
	{ .name = NULL },
};
