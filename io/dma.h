/* DMA table: client memory windows (iova -> server address), internal to io/. */
#ifndef VFURT_IO_DMA_H
#define VFURT_IO_DMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/device.h>

/*
 * The table holds the client's DMA windows sorted by iova, in a persistent
 * B+ tree (dma_tree.h): lookups (to_sg/ptr) walk an immutable version in
 * O(log n) without locks; add/remove copy the O(log n) nodes on their path,
 * publish the new root with a release store, and hand the replaced nodes
 * (one chain per operation) to the retire hook (default: freed at once).
 * The multi-core runtime installs a ck_epoch based retire hook (through the
 * host's dma_retire) so that readers on other workers never see freed
 * memory. Only one thread mutates a table; any thread may look up.
 */
struct vfurt_dma_table;

/* One window. */
struct vfurt_dma_entry {
	struct vfurt_dma_region r; /* iova, size, vaddr (NULL: no fd), prot */
	void *map_base;            /* what mmap returned (page aligned), or NULL */
	size_t map_len;
	uint64_t fd_offset;        /* offset given by the client */
	int fd;                    /* the client's fd, kept for a live upgrade, or -1 */
};

/* Called with what an operation replaced (one object per operation; its
 * first field is the uint32_t window count of the version it belonged to);
 * must eventually call free_fn(snapshot), once no reader can hold it. */
typedef void (*vfurt_dma_retire_fn)(void *arg, void *snapshot, void (*free_fn)(void *));

/*
 * Create a table allowing at most max_maps windows. pgsize is the DMA page
 * size (power of two, >= 4096): iova, size and fd offset of mapped windows
 * must be multiples of it. Returns NULL on ENOMEM/EINVAL.
 */
struct vfurt_dma_table *vfr_dma_table_create(uint32_t max_maps, uint64_t pgsize);

/* Unmap every window and free the table. NULL is ignored. */
void vfr_dma_table_destroy(struct vfurt_dma_table *t);

/* Change limits (after VERSION negotiation). Only while the table is empty:
 * returns 0 or -EBUSY / -EINVAL. */
int vfr_dma_table_set_limits(struct vfurt_dma_table *t, uint32_t max_maps, uint64_t pgsize);

/*
 * Install a synchronisation hook called after a removal is published and
 * before the window is unmapped: it must return only when no thread can
 * still hold a pointer obtained from an older snapshot (the runtime's
 * ck_epoch synchronize). NULL = no other readers.
 */
void vfr_dma_table_set_sync(struct vfurt_dma_table *t, void (*fn)(void *arg), void *arg);

struct vfurt_fault_domain;

/* Register every fd-backed window whose file can shrink with the fault
 * guard, for dom (fault.h); NULL: don't. Set while the table is empty. */
void vfr_dma_table_set_fault(struct vfurt_dma_table *t, struct vfurt_fault_domain *dom);

/* Install the snapshot retire hook (NULL restores free-at-once). */
void vfr_dma_table_set_retire(struct vfurt_dma_table *t, vfurt_dma_retire_fn fn, void *arg);

struct vfurt_dma_quota_acct;

/* Count fd-backed windows against a process-wide quota (dma_quota.h);
 * NULL: don't. Set while the table is empty. */
void vfr_dma_table_set_quota(struct vfurt_dma_table *t, struct vfurt_dma_quota_acct *acct);

/*
 * Add window [iova, iova+size). With fd >= 0 it is mmapped MAP_SHARED at
 * fd_offset with PROT_READ/PROT_WRITE from prot, and the table owns the fd
 * (on success only; on failure the caller still owns it) until the window
 * goes: a live upgrade hands it to the next process (vfr_dma_table_foreach). prot is a mask of
 * VFURT_DMA_READ/VFURT_DMA_WRITE, at least one. On success *out (if not
 * NULL) describes the new window.
 * Returns 0, -EINVAL (size 0, iova+size overflow, misaligned, bad prot),
 * -EEXIST (overlaps a window), -ENOSPC (max_maps reached, or no fault guard
 * slot left for a file that can shrink), -ENOMEM (the process-wide quota of
 * fd-backed windows is used up, or no memory), or the mmap errno.
 */
int vfr_dma_table_add(struct vfurt_dma_table *t, uint64_t iova, uint64_t size,
			int fd, uint64_t fd_offset, uint32_t prot,
			struct vfurt_dma_region *out);

/*
 * Remove the window that exactly matches [iova, iova+size). before_unmap (if
 * not NULL) is called with the window before it is unpublished and
 * unmapped. Returns 0, -ENOENT (no exact match), -EINVAL (size 0 or
 * overflow), -ENOMEM (new tree nodes; nothing changed, before_unmap not
 * called).
 */
int vfr_dma_table_remove(struct vfurt_dma_table *t, uint64_t iova, uint64_t size,
			   void (*before_unmap)(void *arg, const struct vfurt_dma_region *r),
			   void *arg);

/* Remove every window, calling before_unmap for each (all of them before
 * the table is unpublished). Never fails: the empty table is a NULL snapshot. */
void vfr_dma_table_remove_all(struct vfurt_dma_table *t,
				void (*before_unmap)(void *arg, const struct vfurt_dma_region *r),
				void *arg);

/* Call fn for every window, in iova order. The mutating thread. */
void vfr_dma_table_foreach(const struct vfurt_dma_table *t,
			     void (*fn)(void *arg, const struct vfurt_dma_entry *e), void *arg);

/* Number of windows. Any thread. */
uint32_t vfr_dma_table_count(const struct vfurt_dma_table *t);

/* Check the tree's invariants (for tests): 0 or -EUCLEAN; *height (if not
 * NULL) = levels - 1, -1 when empty. The mutating thread. */
int vfr_dma_table_check(const struct vfurt_dma_table *t, int *height);

/* Same contract as vfurt_dma_to_sg() / vfurt_dma_ptr() in device.h. Any
 * thread; allocation free. to_sg reports -ENOENT/-EACCES anywhere in the
 * range in preference to -ENOSPC; max_sg < 0 is -EINVAL. */
int vfr_dma_table_to_sg(const struct vfurt_dma_table *t, uint64_t iova, uint64_t len,
			  uint32_t prot, struct vfurt_sg *sg, int max_sg);
void *vfr_dma_table_ptr(const struct vfurt_dma_table *t, uint64_t iova, uint64_t len,
			  uint32_t prot);

#endif /* VFURT_IO_DMA_H */
