/* NVMe PRP walk: vfr_nvme_map_data turning PRP1/PRP2 (entries, lists, chained lists) into iovecs through the DMA table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/nvme/nvme_internal.h"
#include "io/device_internal.h"

#include "suites.h"

/*
 * Guest memory: GUEST_PAGES pages of one memfd, mapped as 1 window or split
 * into equal windows at contiguous iovas. Data buffers are pages below
 * LIST_PAGE0, PRP lists pages above it. Consecutive buffers of a command are
 * DATA_STRIDE pages apart: never adjacent, so every page is its own iovec
 * (as with a guest's scattered page cache), and with 64 windows of 16 pages
 * each entry is looked up in a different window. NR_CMDS commands per size,
 * with different buffers and lists, are walked in turn.
 */
#define GUEST_PAGES 1024u  /* 4 MiB */
#define LIST_PAGE0 896u    /* data in pages [0, 896), PRP lists from here */
#define DATA_STRIDE 37u    /* coprime with LIST_PAGE0: 256 distinct pages */
#define CMD_STRIDE 101u    /* first buffer of command c: page c * CMD_STRIDE */
#define NR_CMDS 8u
#define IOVA_BASE 0x100000000ull
#define MAX_PAGES 256u     /* 1 MiB */
#define CHAIN_LIST_OFF 3072u /* 1 MiB list starts here: 128 slots, then a chain */
#define BATCH 64u

enum prp_size { PRP_4K, PRP_8K, PRP_128K, PRP_1M, PRP_NR_SIZES };

static const uint32_t prp_pages[PRP_NR_SIZES] = { 1, 2, 32, MAX_PAGES };

struct prp_fx {
	struct vfurt_dev *dev;
	struct nvme_ctrl *ctrl; /* only ->dev is used by the walk */
	uint32_t windows;
	struct nvme_sqe cmds[PRP_NR_SIZES][NR_CMDS];
};

static uint64_t page_iova(uint32_t page)
{
	return IOVA_BASE + (uint64_t)page * NVME_PAGE;
}

static uint64_t data_iova(uint32_t cmd, uint32_t i)
{
	return page_iova((cmd * CMD_STRIDE + i * DATA_STRIDE) % LIST_PAGE0);
}

/* Write one PRP list entry into guest memory. */
static int put_entry(struct prp_fx *fx, uint64_t iova, uint64_t v)
{
	void *p = vfurt_dma_ptr(fx->dev, iova, sizeof(v), VFURT_DMA_WRITE);

	if (!p)
		return -EFAULT;
	memcpy(p, &v, sizeof(v));
	return 0;
}

/*
 * Fill PRP1/PRP2 of command c for size sz. next_list is the first free
 * list page; lists use one page (128 KiB) or two (1 MiB, the first one
 * entered at CHAIN_LIST_OFF so that it holds 127 entries and the chain).
 */
static int build_cmd(struct prp_fx *fx, enum prp_size sz, uint32_t c, uint32_t *next_list)
{
	struct nvme_sqe *cmd = &fx->cmds[sz][c];
	uint32_t pages = prp_pages[sz];
	uint64_t list, slot;
	uint32_t chained = 0;

	memset(cmd, 0, sizeof(*cmd));
	cmd->opc = 0x02; /* Read; PSDT 0 = PRP */
	cmd->dptr[0] = data_iova(c, 0);
	if (pages == 1)
		return 0;
	if (pages == 2) {
		cmd->dptr[1] = data_iova(c, 1);
		return 0;
	}
	if (*next_list + (sz == PRP_1M ? 2u : 1u) > GUEST_PAGES)
		return -ENOSPC;
	list = page_iova(*next_list) + (sz == PRP_1M ? CHAIN_LIST_OFF : 0);
	cmd->dptr[1] = list;
	slot = list;
	for (uint32_t i = 1; i < pages; i++) {
		/* last slot of a list page, more than one page left: chain */
		if (((slot + 8) & (NVME_PAGE - 1)) == 0 && pages - i > 1) {
			uint64_t next = page_iova(*next_list + 1);

			if (put_entry(fx, slot, next))
				return -EFAULT;
			slot = next;
			chained = 1;
		}
		if (put_entry(fx, slot, data_iova(c, i)))
			return -EFAULT;
		slot += 8;
	}
	*next_list += 1 + chained;
	return 0;
}

/* Walk every command once outside the timer: the layout must map with
 * one iovec per page and nothing left over. */
static int check_cmds(struct prp_fx *fx)
{
	struct iovec iov[MAX_PAGES];

	for (int sz = 0; sz < PRP_NR_SIZES; sz++) {
		uint64_t len = (uint64_t)prp_pages[sz] * NVME_PAGE;

		for (uint32_t c = 0; c < NR_CMDS; c++) {
			uint64_t total = 0;
			int n = 0;

			if (vfr_nvme_map_data(fx->ctrl, &fx->cmds[sz][c], len, VFURT_DMA_WRITE, iov,
					  MAX_PAGES, &n))
				return -EINVAL;
			for (int i = 0; i < n; i++)
				total += iov[i].iov_len;
			if ((uint32_t)n != prp_pages[sz] || total != len)
				return -EINVAL;
		}
	}
	return 0;
}

static void prp_teardown(void *p)
{
	struct prp_fx *fx = p;

	vfurt_dev_destroy(fx->dev);
	free(fx->ctrl);
	free(fx);
}

static void *prp_setup(int64_t windows, const char **why)
{
	struct vfurt_dev_opts o = { .opts_size = sizeof(o), .name = "bench-prp" };
	struct prp_fx *fx = calloc(1, sizeof(*fx));
	uint32_t next_list = LIST_PAGE0;
	uint64_t win_size;
	int memfd = -1;

	if (!fx)
		return NULL;
	*why = "device or memfd setup failed";
	fx->windows = (uint32_t)windows;
	if (fx->windows == 0 || GUEST_PAGES % fx->windows)
		goto err;
	win_size = (uint64_t)GUEST_PAGES / fx->windows * NVME_PAGE;
	fx->dev = vfurt_dev_create(&o);
	fx->ctrl = calloc(1, sizeof(*fx->ctrl));
	memfd = memfd_create("vfurt-bench-prp", MFD_CLOEXEC);
	if (!fx->dev || !fx->ctrl || memfd < 0 ||
	    ftruncate(memfd, (off_t)GUEST_PAGES * NVME_PAGE))
		goto err;
	fx->ctrl->dev = fx->dev;
	for (uint32_t i = 0; i < fx->windows; i++) {
		int fd = dup(memfd);

		/* the table closes fd on success only */
		if (fd < 0 || vfr_dma_table_add(fx->dev->dma, IOVA_BASE + i * win_size, win_size,
						  fd, i * win_size,
						  VFURT_DMA_READ | VFURT_DMA_WRITE, NULL)) {
			if (fd >= 0)
				close(fd);
			*why = "vfr_dma_table_add failed";
			goto err;
		}
	}
	close(memfd);
	memfd = -1;
	*why = "building the PRP lists failed";
	for (int sz = 0; sz < PRP_NR_SIZES; sz++)
		for (uint32_t c = 0; c < NR_CMDS; c++)
			if (build_cmd(fx, sz, c, &next_list))
				goto err;
	if (check_cmds(fx)) {
		*why = "vfr_nvme_map_data did not map the PRPs as laid out";
		goto err;
	}
	return fx;

err:
	if (memfd >= 0)
		close(memfd);
	prp_teardown(fx);
	return NULL;
}

/* One op = one command's data pointer mapped (a Read: guest memory written). */
static void prp_walk(struct vfurt_bench_state *st, enum prp_size sz)
{
	struct prp_fx *fx = vfurt_bench_fixture(st);
	uint64_t len = (uint64_t)prp_pages[sz] * NVME_PAGE;
	struct iovec iov[MAX_PAGES];
	uint64_t errors = 0;
	uint32_t k = 0;
	char label[64];

	while (vfurt_bench_keep_running_batch(st, BATCH)) {
		for (unsigned i = 0; i < BATCH; i++) {
			int n;

			if (vfr_nvme_map_data(fx->ctrl, &fx->cmds[sz][k++ % NR_CMDS], len,
					  VFURT_DMA_WRITE, iov, MAX_PAGES, &n))
				errors++;
			vfurt_bench_sink(iov[0].iov_base);
		}
	}
	/* items are pages: items_per_second is PRP entries translated per second */
	vfurt_bench_set_items(st, (int64_t)(vfurt_bench_iterations(st) * prp_pages[sz]));
	snprintf(label, sizeof(label), "%u page%s, %u window%s; items = pages", prp_pages[sz],
		 prp_pages[sz] == 1 ? "" : "s", fx->windows, fx->windows == 1 ? "" : "s");
	vfurt_bench_label(st, label);
	if (errors)
		vfurt_bench_counter(st, "errors", (double)errors);
}

static void bm_4k(struct vfurt_bench_state *st)
{
	prp_walk(st, PRP_4K);
}

static void bm_8k(struct vfurt_bench_state *st)
{
	prp_walk(st, PRP_8K);
}

static void bm_128k(struct vfurt_bench_state *st)
{
	prp_walk(st, PRP_128K);
}

static void bm_1m(struct vfurt_bench_state *st)
{
	prp_walk(st, PRP_1M);
}

const struct vfurt_bench_case bench_prp_cases[] = {
	{ .name = "prp/4K_prp1", .fn = bm_4k, .setup = prp_setup, .teardown = prp_teardown,
	  .arg_name = "windows", .args = { 1 }, .nargs = 1 },
	{ .name = "prp/8K_prp1_prp2", .fn = bm_8k, .setup = prp_setup, .teardown = prp_teardown,
	  .arg_name = "windows", .args = { 1 }, .nargs = 1 },
	{ .name = "prp/128K_list", .fn = bm_128k, .setup = prp_setup, .teardown = prp_teardown,
	  .arg_name = "windows", .args = { 1, 64 }, .nargs = 2 },
	{ .name = "prp/1M_chained_list", .fn = bm_1m, .setup = prp_setup,
	  .teardown = prp_teardown, .arg_name = "windows", .args = { 1 }, .nargs = 1 },
	{ .name = NULL },
};
