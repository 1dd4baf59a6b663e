/* The DMA table before the B+ tree (a sorted array copied per map), kept as the benchmark's baseline. */
#include "dma_flat_baseline.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Verbatim from io/dma.c at 267daf0 but for the names and the hooks this
 * benchmark does not use (fault guard, sync, retire): the lookups are the
 * same code, so dma/ and dma_flat/ cases compare the data structures. */

struct snapshot {
	uint32_t n;
	struct vfurt_dma_entry e[];
};

struct flat_dma_table {
	_Atomic(struct snapshot *) cur; /* written only by the mutating thread */
	uint32_t max_maps;
	uint64_t pgsize;
};

static bool pgsize_ok(uint64_t pgsize)
{
	return pgsize >= 4096 && (pgsize & (pgsize - 1)) == 0;
}

/* Snapshot the mutating thread published itself: no ordering needed. */
static struct snapshot *own_snapshot(const struct flat_dma_table *t)
{
	return atomic_load_explicit(&((struct flat_dma_table *)t)->cur,
				    memory_order_relaxed);
}

/* Pairs with the release store in publish(): entries are visible once the
 * pointer is. */
static const struct snapshot *read_snapshot(const struct flat_dma_table *t)
{
	return atomic_load_explicit(&((struct flat_dma_table *)t)->cur,
				    memory_order_acquire);
}

static uint64_t entry_end(const struct vfurt_dma_entry *e)
{
	return e->r.iova + e->r.size; /* cannot wrap: checked in add */
}

/* Index of the first window that ends after iova (n if none). Windows do not
 * overlap, so ends are sorted like starts. */
static uint32_t lower_bound(const struct snapshot *s, uint64_t iova)
{
	uint32_t lo = 0;
	uint32_t hi = s ? s->n : 0;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (entry_end(&s->e[mid]) <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct snapshot *snapshot_alloc(uint32_t n)
{
	struct snapshot *s = malloc(sizeof(*s) + (size_t)n * sizeof(s->e[0]));

	if (s)
		s->n = n;
	return s;
}

static void retire_snapshot(struct flat_dma_table *t, struct snapshot *old)
{
	(void)t;
	free(old);
}

static void publish(struct flat_dma_table *t, struct snapshot *s)
{
	atomic_store_explicit(&t->cur, s, memory_order_release);
}

static void unmap_entry(const struct flat_dma_table *t, const struct vfurt_dma_entry *e)
{
	(void)t;
	if (e->map_base)
		munmap(e->map_base, e->map_len);
}

struct flat_dma_table *flat_dma_table_create(uint32_t max_maps, uint64_t pgsize)
{
	struct flat_dma_table *t;

	if (!pgsize_ok(pgsize)) {
		errno = EINVAL;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL; /* errno = ENOMEM from calloc */
	atomic_init(&t->cur, NULL);
	t->max_maps = max_maps;
	t->pgsize = pgsize;
	return t;
}

void flat_dma_table_destroy(struct flat_dma_table *t)
{
	struct snapshot *s;

	if (!t)
		return;
	s = own_snapshot(t);
	for (uint32_t i = 0; s && i < s->n; i++)
		unmap_entry(t, &s->e[i]);
	/* No reader may outlive the table, so skip the retire hook. */
	free(s);
	free(t);
}





/*
 * A window past the end of its file would SIGBUS the whole server on first
 * touch: refuse it for files whose size is known (memfd, tmpfs, hugetlbfs,
 * regular files). Devices (e.g. /dev/shm-less DAX) report no size and are
 * trusted to the mmap call.
 */
static int check_file_size(int fd, uint64_t fd_offset, uint64_t size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && (st.st_size < 0 || fd_offset + size > (uint64_t)st.st_size))
		return -EINVAL;
	return 0;
}

int flat_dma_table_add(struct flat_dma_table *t, uint64_t iova, uint64_t size,
			int fd, uint64_t fd_offset, uint32_t prot,
			struct vfurt_dma_region *out)
{
	const uint32_t all_prot = VFURT_DMA_READ | VFURT_DMA_WRITE;
	struct snapshot *old, *s;
	struct vfurt_dma_entry ne = { 0 };
	uint32_t n, pos;
	int ret;

	assert(t);
	/* Everything below comes from the client's DMA_MAP: validate, never assert. */
	if (prot == 0 || (prot & ~all_prot) != 0)
		return -EINVAL;
	if (size == 0 || size > UINT64_MAX - iova)
		return -EINVAL;
	if ((iova | size) & (t->pgsize - 1))
		return -EINVAL;
	if (fd >= 0) {
		if (fd_offset & (t->pgsize - 1))
			return -EINVAL;
		if (size > SIZE_MAX || fd_offset > (uint64_t)INT64_MAX ||
		    size > (uint64_t)INT64_MAX - fd_offset)
			return -EINVAL;
		ret = check_file_size(fd, fd_offset, size);
		if (ret)
			return ret;
	}

	old = own_snapshot(t);
	n = old ? old->n : 0;
	pos = lower_bound(old, iova);
	if (pos < n && old->e[pos].r.iova < iova + size)
		return -EEXIST;
	if (n >= t->max_maps)
		return -ENOSPC;

	s = snapshot_alloc(n + 1);
	if (!s)
		return -ENOMEM;

	ne.r.iova = iova;
	ne.r.size = size;
	ne.r.prot = prot;
	ne.fd_offset = fd_offset;
	if (fd >= 0) {
		int mprot = ((prot & VFURT_DMA_READ) ? PROT_READ : 0) |
			    ((prot & VFURT_DMA_WRITE) ? PROT_WRITE : 0);
		void *p = mmap(NULL, (size_t)size, mprot, MAP_SHARED, fd, (off_t)fd_offset);

		if (p == MAP_FAILED) {
			ret = -errno;
			goto err_free_snapshot;
		}
		ne.map_base = p;
		ne.map_len = (size_t)size;
		ne.r.vaddr = p;
	}

	if (pos > 0)
		memcpy(s->e, old->e, (size_t)pos * sizeof(s->e[0]));
	s->e[pos] = ne;
	if (n > pos)
		memcpy(&s->e[pos + 1], &old->e[pos], (size_t)(n - pos) * sizeof(s->e[0]));

	publish(t, s);
	retire_snapshot(t, old);
	if (fd >= 0)
		close(fd); /* the mapping keeps the memory alive */
	if (out)
		*out = ne.r;
	return 0;

err_free_snapshot:
	free(s);
	return ret;
}

int flat_dma_table_remove(struct flat_dma_table *t, uint64_t iova, uint64_t size)
{
	struct snapshot *old, *s = NULL;
	struct vfurt_dma_entry gone;
	uint32_t pos;

	assert(t);
	if (size == 0 || size > UINT64_MAX - iova)
		return -EINVAL;
	old = own_snapshot(t);
	pos = lower_bound(old, iova);
	if (!old || pos >= old->n || old->e[pos].r.iova != iova || old->e[pos].r.size != size)
		return -ENOENT;

	/* Allocate before telling anyone, so a failure leaves nothing half done. */
	if (old->n > 1) {
		s = snapshot_alloc(old->n - 1);
		if (!s)
			return -ENOMEM;
		memcpy(s->e, old->e, (size_t)pos * sizeof(s->e[0]));
		memcpy(&s->e[pos], &old->e[pos + 1],
		       (size_t)(old->n - pos - 1) * sizeof(s->e[0]));
	}

	gone = old->e[pos];
	publish(t, s);
	unmap_entry(t, &gone);
	retire_snapshot(t, old);
	return 0;
}



int flat_dma_table_to_sg(const struct flat_dma_table *t, uint64_t iova, uint64_t len,
			  uint32_t prot, struct vfurt_sg *sg, int max_sg)
{
	const struct snapshot *s;
	uint64_t cur = iova;
	uint64_t left = len;
	uint32_t pos;
	int count = 0;

	assert(t);
	/* iova/len come from guest descriptors. */
	if (len == 0 || len > UINT64_MAX - iova || max_sg < 0)
		return -EINVAL;
	s = read_snapshot(t);
	pos = lower_bound(s, iova);

	/* Walk the whole range even after sg is full, so that a hole or a
	 * permission problem is reported in preference to -ENOSPC. */
	while (left > 0) {
		const struct vfurt_dma_entry *e;
		uint64_t piece;

		if (!s || pos >= s->n || s->e[pos].r.iova > cur)
			return -ENOENT;
		e = &s->e[pos];
		if ((e->r.prot & prot) != prot)
			return -EACCES;
		piece = entry_end(e) - cur;
		if (piece > left)
			piece = left;
		if (count < max_sg) {
			sg[count].iova = cur;
			sg[count].len = piece;
			sg[count].vaddr = e->r.vaddr ?
				(uint8_t *)e->r.vaddr + (cur - e->r.iova) : NULL;
		}
		if (count < INT32_MAX)
			count++;
		cur += piece;
		left -= piece;
		pos++;
	}
	return count > max_sg ? -ENOSPC : count;
}

void *flat_dma_table_ptr(const struct flat_dma_table *t, uint64_t iova, uint64_t len,
			  uint32_t prot)
{
	const struct snapshot *s;
	const struct vfurt_dma_entry *e;
	uint32_t pos;

	assert(t);
	if (len == 0 || len > UINT64_MAX - iova)
		return NULL;
	s = read_snapshot(t);
	pos = lower_bound(s, iova);
	if (!s || pos >= s->n)
		return NULL;
	e = &s->e[pos];
	if (e->r.iova > iova || iova + len > entry_end(e))
		return NULL;
	if (!e->r.vaddr || (e->r.prot & prot) != prot)
		return NULL;
	return (uint8_t *)e->r.vaddr + (iova - e->r.iova);
}
