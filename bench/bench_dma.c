/* DMA address translation: to_sg and ptr lookups in a table of 1, 64 or 1024 fd-backed windows. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/dma.h"

#include "suites.h"

#define WIN_SIZE 4096ull
#define IOVA_BASE 0x100000000ull
#define NR_LOOKUPS 1024u /* pseudo-random sequence of windows, reused */

struct dma_fx {
	struct vfurt_dma_table *t;
	uint32_t windows;
	uint64_t iovas[NR_LOOKUPS]; /* start of the window each lookup targets */
};

static void dma_teardown(void *p)
{
	struct dma_fx *fx = p;

	vfurt_dma_table_destroy(fx->t);
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
	fx->t = vfurt_dma_table_create(fx->windows, WIN_SIZE);
	memfd = memfd_create("vfurt-bench-dma", MFD_CLOEXEC);
	if (!fx->t || memfd < 0 || ftruncate(memfd, (off_t)(WIN_SIZE * fx->windows))) {
		*why = "DMA table or memfd setup failed";
		goto err;
	}
	for (uint32_t i = 0; i < fx->windows; i++) {
		int fd = dup(memfd);

		/* the table closes fd on success only */
		if (fd < 0 || vfurt_dma_table_add(fx->t, IOVA_BASE + i * WIN_SIZE, WIN_SIZE, fd,
						  i * WIN_SIZE, VFURT_DMA_READ | VFURT_DMA_WRITE,
						  NULL)) {
			if (fd >= 0)
				close(fd);
			*why = "vfurt_dma_table_add failed";
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

/* 512 bytes inside one window into an SGL (a PRP entry's worth). */
static void bm_to_sg(struct vfurt_bench_state *st)
{
	struct dma_fx *fx = vfurt_bench_fixture(st);
	struct vfurt_sg sg[4];
	uint64_t errors = 0;
	uint32_t k = 0;

	while (vfurt_bench_keep_running_batch(st, 64)) {
		for (int i = 0; i < 64; i++) {
			uint64_t iova = fx->iovas[k++ & (NR_LOOKUPS - 1)] + 1024;

			if (vfurt_dma_table_to_sg(fx->t, iova, 512, VFURT_DMA_READ, sg, 4) != 1)
				errors++;
			vfurt_bench_sink(sg[0].vaddr);
		}
	}
	if (errors)
		vfurt_bench_counter(st, "errors", (double)errors);
}

/* A direct pointer to a 64-byte command in guest memory. */
static void bm_ptr(struct vfurt_bench_state *st)
{
	struct dma_fx *fx = vfurt_bench_fixture(st);
	uint64_t errors = 0;
	uint32_t k = 0;

	while (vfurt_bench_keep_running_batch(st, 64)) {
		for (int i = 0; i < 64; i++) {
			uint64_t iova = fx->iovas[k++ & (NR_LOOKUPS - 1)] + 64;
			void *p = vfurt_dma_table_ptr(fx->t, iova, 64, VFURT_DMA_WRITE);

			if (!p)
				errors++;
			vfurt_bench_sink(p);
		}
	}
	if (errors)
		vfurt_bench_counter(st, "errors", (double)errors);
}

/* A 4 KiB buffer straddling two windows: two SGL pieces. */
static void bm_to_sg_cross(struct vfurt_bench_state *st)
{
	struct dma_fx *fx = vfurt_bench_fixture(st);
	uint64_t last = IOVA_BASE + (fx->windows - 1) * WIN_SIZE;
	struct vfurt_sg sg[4];
	uint64_t errors = 0;
	uint32_t k = 0;

	while (vfurt_bench_keep_running_batch(st, 64)) {
		for (int i = 0; i < 64; i++) {
			uint64_t iova = fx->iovas[k++ & (NR_LOOKUPS - 1)];

			if (iova == last)
				iova -= WIN_SIZE;
			if (vfurt_dma_table_to_sg(fx->t, iova + 2048, 4096, VFURT_DMA_READ, sg, 4) !=
			    2)
				errors++;
			vfurt_bench_sink(sg[1].vaddr);
		}
	}
	if (errors)
		vfurt_bench_counter(st, "errors", (double)errors);
}

const struct vfurt_bench_case bench_dma_cases[] = {
	{ .name = "dma/to_sg_512B", .fn = bm_to_sg, .setup = dma_setup, .teardown = dma_teardown,
	  .arg_name = "windows", .args = { 1, 64, 1024 }, .nargs = 3 },
	{ .name = "dma/ptr_64B", .fn = bm_ptr, .setup = dma_setup, .teardown = dma_teardown,
	  .arg_name = "windows", .args = { 1, 64, 1024 }, .nargs = 3 },
	{ .name = "dma/to_sg_4K_2windows", .fn = bm_to_sg_cross, .setup = dma_setup,
	  .teardown = dma_teardown, .arg_name = "windows", .args = { 64, 1024 }, .nargs = 2 },
	{ .name = NULL },
};
