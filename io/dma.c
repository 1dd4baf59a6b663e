/* DMA table: client windows in a persistent B+ tree, versions swapped atomically. */
#include "dma.h"
#include "dma_quota.h"
#include "dma_tree.h"
#include "fault.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The published version is a tree root (dma_tree.h). Nodes are never
 * modified after publication: readers may hold them until the retire hook
 * frees them. NULL stands for the empty table, so emptying it (remove_all,
 * destroy) never allocates.
 */
struct vfurt_dma_table {
	_Atomic(struct vfurt_dma_node *) root; /* written only by the mutating thread */
	uint32_t max_maps;
	uint64_t pgsize;
	vfurt_dma_retire_fn retire;
	void *retire_arg;
	void (*sync)(void *arg);  /* wait for readers of older versions */
	void *sync_arg;
	struct vfurt_fault_domain *fault; /* windows that can shrink register here */
	struct vfurt_dma_quota_acct *quota; /* fd-backed windows count here */
};

static bool pgsize_ok(uint64_t pgsize)
{
	return pgsize >= 4096 && (pgsize & (pgsize - 1)) == 0;
}

/* Version the mutating thread published itself: no ordering needed. */
static struct vfurt_dma_node *own_root(const struct vfurt_dma_table *t)
{
	return atomic_load_explicit(&((struct vfurt_dma_table *)t)->root,
				    memory_order_relaxed);
}

/* Pairs with the release store in publish(): a version's nodes are visible
 * once its root is. */
static const struct vfurt_dma_node *read_root(const struct vfurt_dma_table *t)
{
	return atomic_load_explicit(&((struct vfurt_dma_table *)t)->root,
				    memory_order_acquire);
}

static uint64_t entry_end(const struct vfurt_dma_entry *e)
{
	return e->r.iova + e->r.size; /* cannot wrap: checked in add */
}

/* Hand what an operation replaced to the retire hook (one call). */
static void retire_chain(struct vfurt_dma_table *t, struct vfurt_dma_node *chain)
{
	if (!chain)
		return;
	if (t->retire)
		t->retire(t->retire_arg, chain, vfr_dma_tree_free_chain);
	else
		vfr_dma_tree_free_chain(chain);
}

static void publish(struct vfurt_dma_table *t, struct vfurt_dma_node *root)
{
	atomic_store_explicit(&t->root, root, memory_order_release);
}

/* Fault hook: forget the range before it goes away (fault.c). */
static void unmap_entry(const struct vfurt_dma_table *t, const struct vfurt_dma_entry *e)
{
	if (!e->map_base)
		return;
	if (t->fault)
		vfr_fault_unregister(t->fault, e->map_base);
	munmap(e->map_base, e->map_len);
	if (e->fd >= 0)
		close(e->fd);
	if (t->quota)
		vfr_dma_quota_give(t->quota);
}

static void unmap_cb(void *arg, const struct vfurt_dma_entry *e)
{
	unmap_entry(arg, e);
}

struct vfurt_dma_table *vfr_dma_table_create(uint32_t max_maps, uint64_t pgsize)
{
	struct vfurt_dma_table *t;

	if (!pgsize_ok(pgsize)) {
		errno = EINVAL;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL; /* errno = ENOMEM from calloc */
	atomic_init(&t->root, NULL);
	t->max_maps = max_maps;
	t->pgsize = pgsize;
	return t;
}

void vfr_dma_table_destroy(struct vfurt_dma_table *t)
{
	struct vfurt_dma_node *root;

	if (!t)
		return;
	root = own_root(t);
	vfr_dma_tree_foreach(root, unmap_cb, t);
	/* No reader may outlive the table, so skip the retire hook. */
	vfr_dma_tree_free_chain(vfr_dma_tree_chain_all(root));
	free(t);
}

int vfr_dma_table_set_limits(struct vfurt_dma_table *t, uint32_t max_maps, uint64_t pgsize)
{
	assert(t);
	if (!pgsize_ok(pgsize))
		return -EINVAL;
	if (vfr_dma_table_count(t) != 0)
		return -EBUSY;
	t->max_maps = max_maps;
	t->pgsize = pgsize;
	return 0;
}

void vfr_dma_table_set_sync(struct vfurt_dma_table *t, void (*fn)(void *arg), void *arg)
{
	t->sync = fn;
	t->sync_arg = arg;
}

void vfr_dma_table_set_fault(struct vfurt_dma_table *t, struct vfurt_fault_domain *dom)
{
	assert(t);
	t->fault = dom;
}

void vfr_dma_table_set_retire(struct vfurt_dma_table *t, vfurt_dma_retire_fn fn, void *arg)
{
	assert(t);
	t->retire = fn;
	t->retire_arg = fn ? arg : NULL;
}

void vfr_dma_table_set_quota(struct vfurt_dma_table *t, struct vfurt_dma_quota_acct *acct)
{
	assert(t);
	t->quota = acct;
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

int vfr_dma_table_add(struct vfurt_dma_table *t, uint64_t iova, uint64_t size,
			int fd, uint64_t fd_offset, uint32_t prot,
			struct vfurt_dma_region *out)
{
	const uint32_t all_prot = VFURT_DMA_READ | VFURT_DMA_WRITE;
	struct vfurt_dma_node *old, *root, *retired;
	const struct vfurt_dma_node *leaf;
	struct vfurt_dma_entry ne = { 0 };
	bool counted = false;
	unsigned slot;
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

	old = own_root(t);
	/* the first window ending after iova is the only one that can overlap */
	leaf = vfurt_dma_tree_seek(old, iova, &slot);
	if (leaf && vfurt_dma_node_ent(leaf, slot)->r.iova < iova + size)
		return -EEXIST;
	if ((old ? old->total : 0) >= t->max_maps)
		return -ENOSPC;

	ne.r.iova = iova;
	ne.r.size = size;
	ne.r.prot = prot;
	ne.fd_offset = fd_offset;
	ne.fd = -1;
	if (fd >= 0) {
		int mprot = ((prot & VFURT_DMA_READ) ? PROT_READ : 0) |
			    ((prot & VFURT_DMA_WRITE) ? PROT_WRITE : 0);
		void *p;

		/* every fd-backed window is one mapping of the process */
		if (t->quota) {
			ret = vfr_dma_quota_take(t->quota);
			if (ret)
				return ret;
			counted = true;
		}
		p = mmap(NULL, (size_t)size, mprot, MAP_SHARED, fd, (off_t)fd_offset);
		if (p == MAP_FAILED) {
			ret = -errno;
			goto err_give;
		}
		ne.map_base = p;
		ne.map_len = (size_t)size;
		ne.fd = fd;
		ne.r.vaddr = p;
		/* Fault hook: a file that can shrink would SIGBUS us (fault.c). */
		if (t->fault && !vfr_fault_fd_sealed(fd)) {
			ret = vfr_fault_register(t->fault, p, (size_t)size, iova, mprot);
			if (ret)
				goto err_unmap;
		}
	}

	ret = vfr_dma_tree_insert(old, &ne, &root, &retired);
	if (ret)
		goto err_unregister;
	publish(t, root);
	retire_chain(t, retired);
	if (out)
		*out = ne.r;
	return 0;

err_unregister:
	if (ne.map_base && t->fault)
		vfr_fault_unregister(t->fault, ne.map_base);
err_unmap:
	if (ne.map_base)
		munmap(ne.map_base, ne.map_len);
err_give:
	if (counted)
		vfr_dma_quota_give(t->quota);
	return ret;
}

int vfr_dma_table_remove(struct vfurt_dma_table *t, uint64_t iova, uint64_t size,
			   void (*before_unmap)(void *arg, const struct vfurt_dma_region *r),
			   void *arg)
{
	struct vfurt_dma_node *root, *retired;
	struct vfurt_dma_entry gone;
	int ret;

	assert(t);
	if (size == 0 || size > UINT64_MAX - iova)
		return -EINVAL;
	/* Build before telling anyone, so a failure leaves nothing half done. */
	ret = vfr_dma_tree_remove(own_root(t), iova, size, &root, &retired, &gone);
	if (ret)
		return ret;
	if (before_unmap)
		before_unmap(arg, &gone.r);
	publish(t, root);
	/* nobody may still be reading the window when it goes away */
	if (t->sync)
		t->sync(t->sync_arg);
	unmap_entry(t, &gone);
	retire_chain(t, retired);
	return 0;
}

struct notify_call {
	void (*fn)(void *arg, const struct vfurt_dma_region *r);
	void *arg;
};

static void notify_cb(void *arg, const struct vfurt_dma_entry *e)
{
	struct notify_call *c = arg;

	c->fn(c->arg, &e->r);
}

void vfr_dma_table_remove_all(struct vfurt_dma_table *t,
				void (*before_unmap)(void *arg, const struct vfurt_dma_region *r),
				void *arg)
{
	struct vfurt_dma_node *old;

	assert(t);
	old = own_root(t);
	if (!old)
		return;
	if (before_unmap) {
		struct notify_call c = { before_unmap, arg };

		vfr_dma_tree_foreach(old, notify_cb, &c);
	}
	publish(t, NULL);
	if (t->sync)
		t->sync(t->sync_arg);
	vfr_dma_tree_foreach(old, unmap_cb, t);
	/* the empty version shares no node with the old one: retire them all */
	retire_chain(t, vfr_dma_tree_chain_all(old));
}

void vfr_dma_table_foreach(const struct vfurt_dma_table *t,
			     void (*fn)(void *arg, const struct vfurt_dma_entry *e), void *arg)
{
	vfr_dma_tree_foreach(own_root(t), fn, arg);
}

uint32_t vfr_dma_table_count(const struct vfurt_dma_table *t)
{
	const struct vfurt_dma_node *root;

	assert(t);
	root = read_root(t);
	return root ? root->total : 0;
}

int vfr_dma_table_check(const struct vfurt_dma_table *t, int *height)
{
	assert(t);
	return vfr_dma_tree_check(own_root(t), height);
}

int vfr_dma_table_to_sg(const struct vfurt_dma_table *t, uint64_t iova, uint64_t len,
			  uint32_t prot, struct vfurt_sg *sg, int max_sg)
{
	const struct vfurt_dma_node *root, *leaf;
	uint64_t cur = iova;
	uint64_t left = len;
	unsigned slot = 0;
	int count = 0;

	assert(t);
	/* iova/len come from guest descriptors. */
	if (len == 0 || len > UINT64_MAX - iova || max_sg < 0)
		return -EINVAL;
	root = read_root(t);
	leaf = vfurt_dma_tree_seek(root, iova, &slot);

	/* Walk the whole range even after sg is full, so that a hole or a
	 * permission problem is reported in preference to -ENOSPC. */
	while (left > 0) {
		const struct vfurt_dma_entry *e;
		uint64_t piece;

		if (!leaf || vfurt_dma_node_ent(leaf, slot)->r.iova > cur)
			return -ENOENT;
		e = vfurt_dma_node_ent(leaf, slot);
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
		/* the next window: in the same leaf, or found from the root */
		if (left > 0 && ++slot >= leaf->n)
			leaf = vfurt_dma_tree_seek(root, cur, &slot);
	}
	return count > max_sg ? -ENOSPC : count;
}

void *vfr_dma_table_ptr(const struct vfurt_dma_table *t, uint64_t iova, uint64_t len,
			  uint32_t prot)
{
	const struct vfurt_dma_node *leaf;
	const struct vfurt_dma_entry *e;
	unsigned slot = 0;

	assert(t);
	if (len == 0 || len > UINT64_MAX - iova)
		return NULL;
	leaf = vfurt_dma_tree_seek(read_root(t), iova, &slot);
	if (!leaf)
		return NULL;
	e = vfurt_dma_node_ent(leaf, slot);
	if (e->r.iova > iova || iova + len > entry_end(e))
		return NULL;
	if (!e->r.vaddr || (e->r.prot & prot) != prot)
		return NULL;
	return (uint8_t *)e->r.vaddr + (iova - e->r.iova);
}
