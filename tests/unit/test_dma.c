/* Unit tests for io/dma.c: window table, snapshots, sg translation, fd handling. */
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
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/testsrv.h"

#include "io/dma.h"

#define PG 4096u


static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int make_memfd(size_t size)
{
	int fd = memfd_create("test_dma", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static struct vfurt_dma_table *new_table(uint32_t max_maps)
{
	struct vfurt_dma_table *t = vfr_dma_table_create(max_maps, PG);

	assert_non_null(t);
	return t;
}

static void test_create_bad_pgsize(void **state)
{
	(void)state;
	errno = 0;
	assert_null(vfr_dma_table_create(8, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(vfr_dma_table_create(8, 2048));
	assert_null(vfr_dma_table_create(8, 4096 + 4096 / 2));
	vfr_dma_table_destroy(NULL);
}

/* Write through the table's mapping, read back through an independent one. */
static void test_add_fd_shared_mapping(void **state)
{
	(void)state;
	int base_fds = test_count_fds();
	struct vfurt_dma_table *t = new_table(8);
	int fd = make_memfd(4 * PG);
	int keep = dup(fd);
	struct vfurt_dma_region r;
	uint8_t *other;

	assert_true(keep >= 0);
	assert_int_equal(vfr_dma_table_add(t, 0x100000, 2 * PG, fd, PG,
					     VFURT_DMA_READ | VFURT_DMA_WRITE, &r), 0);
	assert_true(fd_open(fd)); /* the table owns it: closed at unmap */
	assert_int_equal(r.iova, 0x100000);
	assert_int_equal(r.size, 2 * PG);
	assert_int_equal(r.prot, VFURT_DMA_READ | VFURT_DMA_WRITE);
	assert_non_null(r.vaddr);
	assert_int_equal(vfr_dma_table_count(t), 1);

	memset(r.vaddr, 0xa5, 2 * PG);
	((uint8_t *)r.vaddr)[PG + 7] = 0x42;

	other = mmap(NULL, 4 * PG, PROT_READ, MAP_SHARED, keep, 0);
	assert_true(other != MAP_FAILED);
	assert_int_equal(other[0], 0);        /* before fd_offset: untouched */
	assert_int_equal(other[PG], 0xa5);    /* iova 0x100000 = file offset PG */
	assert_int_equal(other[2 * PG + 7], 0x42);
	assert_int_equal(other[3 * PG], 0);   /* after the window */

	uint8_t *p = vfr_dma_table_ptr(t, 0x100000 + PG + 7, 1, VFURT_DMA_READ);
	assert_ptr_equal(p, (uint8_t *)r.vaddr + PG + 7);
	assert_int_equal(*p, 0x42);

	assert_int_equal(vfr_dma_table_remove(t, 0x100000, 2 * PG, NULL, NULL), 0);
	assert_int_equal(vfr_dma_table_count(t), 0);
	assert_null(vfr_dma_table_ptr(t, 0x100000, 1, VFURT_DMA_READ));
	/* The data stays in the memfd after the table's mapping is gone. */
	assert_int_equal(other[2 * PG + 7], 0x42);

	munmap(other, 4 * PG);
	close(keep);
	vfr_dma_table_destroy(t);
	assert_int_equal(test_count_fds(), base_fds);
}

static void test_add_readonly_mapping(void **state)
{
	(void)state;
	struct vfurt_dma_table *t = new_table(8);
	int fd = make_memfd(PG);
	int keep = dup(fd);
	struct vfurt_dma_region r;

	assert_int_equal(pwrite(keep, "hello", 5, 0), 5);
	assert_int_equal(vfr_dma_table_add(t, 0, PG, fd, 0, VFURT_DMA_READ, &r), 0);
	assert_memory_equal(r.vaddr, "hello", 5);
	assert_non_null(vfr_dma_table_ptr(t, 0, 5, VFURT_DMA_READ));
	assert_null(vfr_dma_table_ptr(t, 0, 5, VFURT_DMA_WRITE));
	assert_null(vfr_dma_table_ptr(t, 0, 5, VFURT_DMA_READ | VFURT_DMA_WRITE));
	close(keep);
	vfr_dma_table_destroy(t);
}

static void test_add_without_fd(void **state)
{
	(void)state;
	struct vfurt_dma_table *t = new_table(8);
	struct vfurt_dma_region r;
	struct vfurt_sg sg[2];

	memset(&r, 0xff, sizeof(r));
	assert_int_equal(vfr_dma_table_add(t, 0x2000, 3 * PG, -1, 0x123, VFURT_DMA_WRITE, &r), 0);
	assert_null(r.vaddr);
	assert_int_equal(r.iova, 0x2000);
	assert_int_equal(r.size, 3 * PG);
	assert_int_equal(r.prot, VFURT_DMA_WRITE);
	assert_null(vfr_dma_table_ptr(t, 0x2000, 8, VFURT_DMA_WRITE));
	assert_int_equal(vfr_dma_table_to_sg(t, 0x2100, 0x100, VFURT_DMA_WRITE, sg, 2), 1);
	assert_int_equal(sg[0].iova, 0x2100);
	assert_int_equal(sg[0].len, 0x100);
	assert_null(sg[0].vaddr);
	/* out may be NULL */
	assert_int_equal(vfr_dma_table_add(t, 0x10000, PG, -1, 0, VFURT_DMA_READ, NULL), 0);
	assert_int_equal(vfr_dma_table_count(t), 2);
	vfr_dma_table_destroy(t);
}

static void test_overlaps(void **state)
{
	(void)state;
	struct vfurt_dma_table *t = new_table(16);
	const uint32_t rw = VFURT_DMA_READ | VFURT_DMA_WRITE;

	assert_int_equal(vfr_dma_table_add(t, 0x10000, 4 * PG, -1, 0, rw, NULL), 0);
	/* left edge, right edge, inside, covering, identical */
	assert_int_equal(vfr_dma_table_add(t, 0xf000, 2 * PG, -1, 0, rw, NULL), -EEXIST);
	assert_int_equal(vfr_dma_table_add(t, 0x13000, 2 * PG, -1, 0, rw, NULL), -EEXIST);
	assert_int_equal(vfr_dma_table_add(t, 0x11000, PG, -1, 0, rw, NULL), -EEXIST);
	assert_int_equal(vfr_dma_table_add(t, 0xf000, 6 * PG, -1, 0, rw, NULL), -EEXIST);
	assert_int_equal(vfr_dma_table_add(t, 0x10000, 4 * PG, -1, 0, rw, NULL), -EEXIST);
	assert_int_equal(vfr_dma_table_count(t), 1);
	/* adjacent on both sides is fine */
	assert_int_equal(vfr_dma_table_add(t, 0xf000, PG, -1, 0, rw, NULL), 0);
	assert_int_equal(vfr_dma_table_add(t, 0x14000, PG, -1, 0, rw, NULL), 0);
	/* now a window overlapping two existing ones */
	assert_int_equal(vfr_dma_table_add(t, 0x13000, 3 * PG, -1, 0, rw, NULL), -EEXIST);
	assert_int_equal(vfr_dma_table_count(t), 3);
	vfr_dma_table_destroy(t);
}

static void test_overlap_keeps_fd(void **state)
{
	(void)state;
	struct vfurt_dma_table *t = new_table(4);
	int fd = make_memfd(PG);

	assert_int_equal(vfr_dma_table_add(t, 0, PG, -1, 0, VFURT_DMA_READ, NULL), 0);
	assert_int_equal(vfr_dma_table_add(t, 0, PG, fd, 0, VFURT_DMA_READ, NULL), -EEXIST);
	assert_true(fd_open(fd));
	close(fd);
	vfr_dma_table_destroy(t);
}

static void test_max_maps_and_limits(void **state)
{
	(void)state;
	struct vfurt_dma_table *t = new_table(2);
	int fd = make_memfd(PG);

	assert_int_equal(vfr_dma_table_add(t, 0, PG, -1, 0, VFURT_DMA_READ, NULL), 0);
	assert_int_equal(vfr_dma_table_add(t, 2 * PG, PG, -1, 0, VFURT_DMA_READ, NULL), 0);
	assert_int_equal(vfr_dma_table_add(t, 4 * PG, PG, -1, 0, VFURT_DMA_READ, NULL), -ENOSPC);
	assert_int_equal(vfr_dma_table_add(t, 4 * PG, PG, fd, 0, VFURT_DMA_READ, NULL), -ENOSPC);
	assert_true(fd_open(fd));
	assert_int_equal(vfr_dma_table_count(t), 2);

	assert_int_equal(vfr_dma_table_set_limits(t, 4, PG), -EBUSY);
	vfr_dma_table_remove_all(t, NULL, NULL);
	assert_int_equal(vfr_dma_table_set_limits(t, 4, 3000), -EINVAL);
	assert_int_equal(vfr_dma_table_set_limits(t, 3, 2 * PG), 0);
	/* new page size applies */
	assert_int_equal(vfr_dma_table_add(t, PG, 2 * PG, -1, 0, VFURT_DMA_READ, NULL), -EINVAL);
	for (uint64_t i = 0; i < 3; i++)
		assert_int_equal(vfr_dma_table_add(t, i * 4 * PG, 2 * PG, -1, 0,
						     VFURT_DMA_READ, NULL), 0);
	assert_int_equal(vfr_dma_table_add(t, 64 * PG, 2 * PG, -1, 0, VFURT_DMA_READ, NULL),
			 -ENOSPC);
	close(fd);
	vfr_dma_table_destroy(t);
}

static void test_invalid_args(void **state)
{
	(void)state;
	struct vfurt_dma_table *t = new_table(8);
	int fd = make_memfd(4 * PG);
	const uint32_t r = VFURT_DMA_READ;

	assert_int_equal(vfr_dma_table_add(t, 0, 0, -1, 0, r, NULL), -EINVAL);
	assert_int_equal(vfr_dma_table_add(t, 0x800, PG, -1, 0, r, NULL), -EINVAL);
	assert_int_equal(vfr_dma_table_add(t, 0, PG + 1, -1, 0, r, NULL), -EINVAL);
	assert_int_equal(vfr_dma_table_add(t, 0, PG, -1, 0, 0, NULL), -EINVAL);
	assert_int_equal(vfr_dma_table_add(t, 0, PG, -1, 0, 1u << 2, NULL), -EINVAL);
	assert_int_equal(vfr_dma_table_add(t, 0, PG, -1, 0, r | (1u << 31), NULL), -EINVAL);
	/* iova + size wraps */
	assert_int_equal(vfr_dma_table_add(t, UINT64_MAX - PG + 1, PG, -1, 0, r, NULL), -EINVAL);
	assert_int_equal(vfr_dma_table_add(t, UINT64_MAX - PG + 1, 2 * PG, -1, 0, r, NULL),
			 -EINVAL);
	assert_int_equal(vfr_dma_table_add(t, PG, UINT64_MAX - PG + 1, -1, 0, r, NULL), -EINVAL);
	/* fd offset misaligned or absurd; the fd stays with the caller */
	assert_int_equal(vfr_dma_table_add(t, 0, PG, fd, 0x200, r, NULL), -EINVAL);
	assert_int_equal(vfr_dma_table_add(t, 0, PG, fd, UINT64_MAX - PG + 1, r, NULL), -EINVAL);
	assert_int_equal(vfr_dma_table_add(t, 0, 0, fd, 0, r, NULL), -EINVAL);
	assert_true(fd_open(fd));
	assert_int_equal(vfr_dma_table_count(t), 0);
	/* the highest page below the wrap is fine */
	assert_int_equal(vfr_dma_table_add(t, UINT64_MAX - 2 * PG + 1, PG, -1, 0, r, NULL), 0);
	assert_null(vfr_dma_table_ptr(t, UINT64_MAX - 2 * PG + 1, 2 * PG, r));
	close(fd);
	vfr_dma_table_destroy(t);
}

static void test_mmap_failure_keeps_fd(void **state)
{
	(void)state;
	int base_fds = test_count_fds();
	struct vfurt_dma_table *t = new_table(8);
	int efd = eventfd(0, EFD_CLOEXEC);
	int rofd;
	int fd = make_memfd(PG);
	char path[64];

	assert_true(efd >= 0);
	assert_int_equal(vfr_dma_table_add(t, 0, PG, efd, 0, VFURT_DMA_READ, NULL), -ENODEV);
	assert_true(fd_open(efd));
	close(efd);

	/* Writable shared mapping of a read-only descriptor: EACCES. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rofd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(rofd >= 0);
	assert_int_equal(vfr_dma_table_add(t, 0, PG, rofd, 0,
					     VFURT_DMA_READ | VFURT_DMA_WRITE, NULL), -EACCES);
	assert_true(fd_open(rofd));
	assert_int_equal(vfr_dma_table_count(t), 0);
	/* but read-only works */
	assert_int_equal(vfr_dma_table_add(t, 0, PG, rofd, 0, VFURT_DMA_READ, NULL), 0);
	assert_true(fd_open(rofd)); /* the table's now */
	close(fd);
	vfr_dma_table_destroy(t);
	assert_int_equal(test_count_fds(), base_fds);
}

struct unmap_log {
	struct vfurt_dma_table *t;
	int calls;
	uint64_t iova[8];
	uint64_t size[8];
	bool published[8]; /* window still visible to readers during the call */
	uint32_t count_seen;
};

static void before_unmap(void *arg, const struct vfurt_dma_region *r)
{
	struct unmap_log *l = arg;

	assert_true(l->calls < 8);
	l->iova[l->calls] = r->iova;
	l->size[l->calls] = r->size;
	struct vfurt_sg sg;
	l->published[l->calls] = vfr_dma_table_to_sg(l->t, r->iova, r->size, 0, &sg, 1) == 1;
	if (r->vaddr) /* still mapped: touching it must not fault */
		((volatile uint8_t *)r->vaddr)[0] = 1;
	l->count_seen = vfr_dma_table_count(l->t);
	l->calls++;
}

static void test_remove_exact(void **state)
{
	(void)state;
	struct vfurt_dma_table *t = new_table(8);
	struct unmap_log l = { .t = t };
	const uint32_t r = VFURT_DMA_READ | VFURT_DMA_WRITE;
	int fd = make_memfd(4 * PG);

	assert_int_equal(vfr_dma_table_add(t, 0x10000, 4 * PG, fd, 0, r, NULL), 0);
	assert_int_equal(vfr_dma_table_add(t, 0x20000, PG, -1, 0, r, NULL), 0);

	assert_int_equal(vfr_dma_table_remove(t, 0x10000, PG, before_unmap, &l), -ENOENT);
	assert_int_equal(vfr_dma_table_remove(t, 0x11000, PG, before_unmap, &l), -ENOENT);
	assert_int_equal(vfr_dma_table_remove(t, 0x10000, 8 * PG, before_unmap, &l), -ENOENT);
	assert_int_equal(vfr_dma_table_remove(t, 0xf000, 5 * PG, before_unmap, &l), -ENOENT);
	assert_int_equal(vfr_dma_table_remove(t, 0x30000, PG, before_unmap, &l), -ENOENT);
	assert_int_equal(vfr_dma_table_remove(t, 0x10000, 0, before_unmap, &l), -EINVAL);
	assert_int_equal(vfr_dma_table_remove(t, UINT64_MAX, 2, before_unmap, &l), -EINVAL);
	assert_int_equal(l.calls, 0);
	assert_int_equal(vfr_dma_table_count(t), 2);

	assert_int_equal(vfr_dma_table_remove(t, 0x10000, 4 * PG, before_unmap, &l), 0);
	assert_int_equal(l.calls, 1);
	assert_int_equal(l.iova[0], 0x10000);
	assert_int_equal(l.size[0], 4 * PG);
	assert_true(l.published[0]);
	assert_int_equal(l.count_seen, 2);
	assert_int_equal(vfr_dma_table_count(t), 1);
	assert_int_equal(vfr_dma_table_remove(t, 0x10000, 4 * PG, before_unmap, &l), -ENOENT);

	/* last window: table becomes empty, callback optional */
	assert_int_equal(vfr_dma_table_remove(t, 0x20000, PG, NULL, NULL), 0);
	assert_int_equal(vfr_dma_table_count(t), 0);
	assert_int_equal(vfr_dma_table_remove(t, 0x20000, PG, NULL, NULL), -ENOENT);
	vfr_dma_table_destroy(t);
}

static void test_remove_all(void **state)
{
	(void)state;
	int base_fds = test_count_fds();
	struct vfurt_dma_table *t = new_table(8);
	struct unmap_log l = { .t = t };

	vfr_dma_table_remove_all(t, before_unmap, &l); /* empty: nothing */
	assert_int_equal(l.calls, 0);
	for (uint64_t i = 0; i < 5; i++) {
		int fd = (i % 2) ? make_memfd(PG) : -1;

		assert_int_equal(vfr_dma_table_add(t, (4 - i) * 2 * PG, PG, fd, 0,
						     VFURT_DMA_READ | VFURT_DMA_WRITE, NULL), 0);
	}
	vfr_dma_table_remove_all(t, before_unmap, &l);
	assert_int_equal(l.calls, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(l.iova[i], (uint64_t)i * 2 * PG); /* in iova order */
		assert_true(l.published[i]);
	}
	assert_int_equal(l.count_seen, 5);
	assert_int_equal(vfr_dma_table_count(t), 0);
	/* usable again */
	assert_int_equal(vfr_dma_table_add(t, 0, PG, -1, 0, VFURT_DMA_READ, NULL), 0);
	vfr_dma_table_remove_all(t, NULL, NULL);
	assert_int_equal(vfr_dma_table_count(t), 0);
	vfr_dma_table_destroy(t);
	assert_int_equal(test_count_fds(), base_fds);
}

/* Two adjacent fd-backed windows at 0x10000 (2 pages) and 0x12000 (1 page,
 * read-only), then a hole, then a window at 0x20000. */
static struct vfurt_dma_table *sg_table(struct vfurt_dma_region *w)
{
	struct vfurt_dma_table *t = new_table(8);

	assert_int_equal(vfr_dma_table_add(t, 0x12000, PG, make_memfd(PG), 0,
					     VFURT_DMA_READ, &w[1]), 0);
	assert_int_equal(vfr_dma_table_add(t, 0x10000, 2 * PG, make_memfd(2 * PG), 0,
					     VFURT_DMA_READ | VFURT_DMA_WRITE, &w[0]), 0);
	assert_int_equal(vfr_dma_table_add(t, 0x20000, PG, -1, 0,
					     VFURT_DMA_READ | VFURT_DMA_WRITE, &w[2]), 0);
	return t;
}

static void test_to_sg(void **state)
{
	(void)state;
	struct vfurt_dma_region w[3];
	struct vfurt_dma_table *t = sg_table(w);
	struct vfurt_sg sg[4];

	/* inside one window */
	assert_int_equal(vfr_dma_table_to_sg(t, 0x10010, 0x20, VFURT_DMA_WRITE, sg, 4), 1);
	assert_int_equal(sg[0].iova, 0x10010);
	assert_int_equal(sg[0].len, 0x20);
	assert_ptr_equal(sg[0].vaddr, (uint8_t *)w[0].vaddr + 0x10);

	/* across two adjacent windows */
	assert_int_equal(vfr_dma_table_to_sg(t, 0x11f00, 0x200, VFURT_DMA_READ, sg, 4), 2);
	assert_int_equal(sg[0].iova, 0x11f00);
	assert_int_equal(sg[0].len, 0x100);
	assert_ptr_equal(sg[0].vaddr, (uint8_t *)w[0].vaddr + 0x1f00);
	assert_int_equal(sg[1].iova, 0x12000);
	assert_int_equal(sg[1].len, 0x100);
	assert_ptr_equal(sg[1].vaddr, w[1].vaddr);

	/* exactly both windows */
	assert_int_equal(vfr_dma_table_to_sg(t, 0x10000, 3 * PG, VFURT_DMA_READ, sg, 2), 2);
	assert_int_equal(sg[0].len, 2 * PG);
	assert_int_equal(sg[1].len, PG);

	/* too few entries */
	assert_int_equal(vfr_dma_table_to_sg(t, 0x11f00, 0x200, VFURT_DMA_READ, sg, 1), -ENOSPC);
	assert_int_equal(vfr_dma_table_to_sg(t, 0x11f00, 0x200, VFURT_DMA_READ, NULL, 0),
			 -ENOSPC);
	/* the second window is read-only */
	assert_int_equal(vfr_dma_table_to_sg(t, 0x11f00, 0x200, VFURT_DMA_WRITE, sg, 4), -EACCES);
	assert_int_equal(vfr_dma_table_to_sg(t, 0x11f00, 0x200, VFURT_DMA_WRITE, sg, 1), -EACCES);
	/* running into the hole, starting in it, before everything, after everything */
	assert_int_equal(vfr_dma_table_to_sg(t, 0x12f00, 0x200, VFURT_DMA_READ, sg, 4), -ENOENT);
	assert_int_equal(vfr_dma_table_to_sg(t, 0x12f00, 0x200, VFURT_DMA_READ, sg, 1), -ENOENT);
	assert_int_equal(vfr_dma_table_to_sg(t, 0x13000, 0x10, VFURT_DMA_READ, sg, 4), -ENOENT);
	assert_int_equal(vfr_dma_table_to_sg(t, 0x0, 0x10, VFURT_DMA_READ, sg, 4), -ENOENT);
	assert_int_equal(vfr_dma_table_to_sg(t, 0xff00, 0x200, VFURT_DMA_READ, sg, 4), -ENOENT);
	assert_int_equal(vfr_dma_table_to_sg(t, 0x20000, PG + 1, VFURT_DMA_READ, sg, 4), -ENOENT);
	assert_int_equal(vfr_dma_table_to_sg(t, 0x10000, 0x20000, VFURT_DMA_READ, sg, 4), -ENOENT);
	/* bad arguments */
	assert_int_equal(vfr_dma_table_to_sg(t, 0x10000, 0, VFURT_DMA_READ, sg, 4), -EINVAL);
	assert_int_equal(vfr_dma_table_to_sg(t, UINT64_MAX - 4, 0x10, VFURT_DMA_READ, sg, 4),
			 -EINVAL);
	assert_int_equal(vfr_dma_table_to_sg(t, 0x10000, 1, VFURT_DMA_READ, sg, -1), -EINVAL);
	/* a window without fd gives vaddr NULL */
	assert_int_equal(vfr_dma_table_to_sg(t, 0x20000, PG, VFURT_DMA_WRITE, sg, 4), 1);
	assert_null(sg[0].vaddr);
	vfr_dma_table_destroy(t);
}

static void test_ptr(void **state)
{
	(void)state;
	struct vfurt_dma_region w[3];
	struct vfurt_dma_table *t = sg_table(w);

	assert_ptr_equal(vfr_dma_table_ptr(t, 0x10000, 2 * PG, VFURT_DMA_WRITE), w[0].vaddr);
	assert_ptr_equal(vfr_dma_table_ptr(t, 0x11ff8, 8, VFURT_DMA_READ | VFURT_DMA_WRITE),
			 (uint8_t *)w[0].vaddr + 0x1ff8);
	assert_ptr_equal(vfr_dma_table_ptr(t, 0x12004, 4, VFURT_DMA_READ),
			 (uint8_t *)w[1].vaddr + 4);
	/* straddles two windows, even though both are mapped */
	assert_null(vfr_dma_table_ptr(t, 0x11ffc, 8, VFURT_DMA_READ));
	assert_null(vfr_dma_table_ptr(t, 0x10000, 3 * PG, VFURT_DMA_READ));
	/* prot, hole, no fd, bad length */
	assert_null(vfr_dma_table_ptr(t, 0x12000, 4, VFURT_DMA_WRITE));
	assert_null(vfr_dma_table_ptr(t, 0x13000, 4, VFURT_DMA_READ));
	assert_null(vfr_dma_table_ptr(t, 0x12ffc, 8, VFURT_DMA_READ));
	assert_null(vfr_dma_table_ptr(t, 0xfffc, 8, VFURT_DMA_READ));
	assert_null(vfr_dma_table_ptr(t, 0x20000, 4, VFURT_DMA_READ));
	assert_null(vfr_dma_table_ptr(t, 0x10000, 0, VFURT_DMA_READ));
	assert_null(vfr_dma_table_ptr(t, UINT64_MAX, 2, VFURT_DMA_READ));
	vfr_dma_table_destroy(t);
}

/* Binary search over many windows added in a scrambled order. */
static void test_many_windows(void **state)
{
	(void)state;
	enum { N = 97 };
	struct vfurt_dma_table *t = new_table(N);
	struct vfurt_sg sg[N];

	for (uint32_t k = 0; k < N; k++) {
		uint64_t i = (k * 37u) % N; /* 37 is coprime with 97 */

		assert_int_equal(vfr_dma_table_add(t, 0x100000 + i * 2 * PG, PG, -1, 0,
						     VFURT_DMA_READ, NULL), 0);
	}
	assert_int_equal(vfr_dma_table_count(t), N);
	for (uint64_t i = 0; i < N; i++) {
		uint64_t iova = 0x100000 + i * 2 * PG;

		assert_int_equal(vfr_dma_table_to_sg(t, iova + 8, PG - 8, VFURT_DMA_READ, sg, 1), 1);
		assert_int_equal(sg[0].iova, iova + 8);
		assert_int_equal(vfr_dma_table_to_sg(t, iova + PG, 1, VFURT_DMA_READ, sg, 1),
				 -ENOENT);
		assert_int_equal(vfr_dma_table_add(t, iova, PG, -1, 0, VFURT_DMA_READ, NULL),
				 -EEXIST);
	}
	/* remove every third, check the rest are intact */
	for (uint64_t i = 0; i < N; i += 3)
		assert_int_equal(vfr_dma_table_remove(t, 0x100000 + i * 2 * PG, PG, NULL, NULL), 0);
	for (uint64_t i = 0; i < N; i++) {
		int want = (i % 3 == 0) ? -ENOENT : 1;

		assert_int_equal(vfr_dma_table_to_sg(t, 0x100000 + i * 2 * PG, PG,
						       VFURT_DMA_READ, sg, 1), want);
	}
	vfr_dma_table_destroy(t);
}

struct retire_log {
	int calls;
	void *snap[16];
	void (*free_fn)(void *);
};

static void retire_hook(void *arg, void *snapshot, void (*free_fn)(void *))
{
	struct retire_log *l = arg;

	assert_non_null(snapshot);
	assert_true(l->calls < 16);
	l->snap[l->calls++] = snapshot;
	l->free_fn = free_fn;
}

static void test_retire_hook(void **state)
{
	(void)state;
	struct vfurt_dma_table *t = new_table(8);
	struct retire_log l = { 0 };
	struct vfurt_sg sg;

	vfr_dma_table_set_retire(t, retire_hook, &l);
	/* first add replaces the empty table: nothing to retire */
	assert_int_equal(vfr_dma_table_add(t, 0, PG, -1, 0, VFURT_DMA_READ, NULL), 0);
	assert_int_equal(l.calls, 0);
	assert_int_equal(vfr_dma_table_add(t, PG, PG, -1, 0, VFURT_DMA_READ, NULL), 0);
	assert_int_equal(l.calls, 1);
	/* failed operations publish nothing */
	assert_int_equal(vfr_dma_table_add(t, PG, PG, -1, 0, VFURT_DMA_READ, NULL), -EEXIST);
	assert_int_equal(vfr_dma_table_remove(t, 8 * PG, PG, NULL, NULL), -ENOENT);
	assert_int_equal(l.calls, 1);
	assert_int_equal(vfr_dma_table_remove(t, 0, PG, NULL, NULL), 0);
	assert_int_equal(l.calls, 2);
	assert_ptr_not_equal(l.snap[0], l.snap[1]);
	/* retired snapshots are still readable until freed: the old one held both */
	assert_int_equal(*(uint32_t *)l.snap[1], 2);
	assert_int_equal(vfr_dma_table_to_sg(t, PG, PG, VFURT_DMA_READ, &sg, 1), 1);
	vfr_dma_table_remove_all(t, NULL, NULL);
	assert_int_equal(l.calls, 3);
	assert_int_equal(*(uint32_t *)l.snap[2], 1);
	assert_non_null(l.free_fn);
	for (int i = 0; i < l.calls; i++)
		l.free_fn(l.snap[i]);

	/* NULL restores free-at-once */
	vfr_dma_table_set_retire(t, NULL, NULL);
	assert_int_equal(vfr_dma_table_add(t, 0, PG, -1, 0, VFURT_DMA_READ, NULL), 0);
	assert_int_equal(vfr_dma_table_add(t, PG, PG, -1, 0, VFURT_DMA_READ, NULL), 0);
	assert_int_equal(l.calls, 3);
	vfr_dma_table_destroy(t);
}

/* Lots of fd-backed adds/removes, failures included, leave no descriptor behind. */
static void test_no_fd_leak(void **state)
{
	(void)state;
	int base_fds = test_count_fds();
	struct vfurt_dma_table *t = new_table(4);
	int fds[6];

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 6; i++) {
			int ret;

			fds[i] = make_memfd(PG);
			ret = vfr_dma_table_add(t, (uint64_t)i * PG, PG, fds[i], 0,
						  VFURT_DMA_READ | VFURT_DMA_WRITE, NULL);
			if (i < 4) {
				assert_int_equal(ret, 0);
			} else {
				assert_int_equal(ret, -ENOSPC);
				close(fds[i]); /* still ours */
			}
		}
		assert_int_equal(test_count_fds(), base_fds + 4); /* the windows' fds */
		assert_int_equal(vfr_dma_table_remove(t, 0, PG, NULL, NULL), 0);
		assert_int_equal(test_count_fds(), base_fds + 3);
		vfr_dma_table_remove_all(t, NULL, NULL);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(vfr_dma_table_add(t, (uint64_t)i * PG, PG, make_memfd(PG), 0,
						     VFURT_DMA_READ, NULL), 0);
	vfr_dma_table_destroy(t); /* unmaps what is left */
	assert_int_equal(test_count_fds(), base_fds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_bad_pgsize),
		cmocka_unit_test(test_add_fd_shared_mapping),
		cmocka_unit_test(test_add_readonly_mapping),
		cmocka_unit_test(test_add_without_fd),
		cmocka_unit_test(test_overlaps),
		cmocka_unit_test(test_overlap_keeps_fd),
		cmocka_unit_test(test_max_maps_and_limits),
		cmocka_unit_test(test_invalid_args),
		cmocka_unit_test(test_mmap_failure_keeps_fd),
		cmocka_unit_test(test_remove_exact),
		cmocka_unit_test(test_remove_all),
		cmocka_unit_test(test_to_sg),
		cmocka_unit_test(test_ptr),
		cmocka_unit_test(test_many_windows),
		cmocka_unit_test(test_retire_hook),
		cmocka_unit_test(test_no_fd_leak),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
