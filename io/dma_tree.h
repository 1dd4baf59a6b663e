/* DMA window tree: a persistent (path-copying) B+ tree keyed by window end, internal to io/. */
#ifndef VFURT_IO_DMA_TREE_H
#define VFURT_IO_DMA_TREE_H

#include <stdint.h>

#include "dma.h"

/*
 * Why this shape (io/dma.c used to copy a sorted array on every map, which
 * made 65,535 maps quadratic):
 *
 * - Keys are window END addresses (iova + size, exclusive). Windows never
 *   overlap, so ends sort like starts, and "the first key > addr" is the
 *   only window that can contain addr: one search per level, no backtrack.
 * - Every node has DMA_TREE_SLOTS dense uint64_t keys; the slots past n hold
 *   UINT64_MAX and the last slot always does. A fixed six-step branchless
 *   search over 64 slots then needs no bounds check (no address a lookup
 *   can ask for is UINT64_MAX: iova + len does not wrap), and the keys of a
 *   node are contiguous, apart from what they index (children or entries).
 * - 63 keys per node: 1,024 windows are two levels, 65,535 at most five.
 * - Nodes are immutable once published. An insert or remove copies the
 *   nodes on its path (and a sibling when it splits, merges or borrows),
 *   O(B log_B n), publishes the new root with a release store, and hands the
 *   replaced nodes, chained through retire_next, to the table's retire hook.
 *   Readers never lock and never see a half-built version.
 */
#define DMA_TREE_SLOTS 64u
#define DMA_TREE_MAX (DMA_TREE_SLOTS - 1u) /* keys per node */
#define DMA_TREE_MIN 16u                   /* a non-root node below this merges or borrows */
#define DMA_TREE_DEPTH 8u                  /* > the height of 65,535 windows at minimum fill */

struct vfurt_dma_node {
	uint32_t total;  /* windows in the whole tree; meaningful in a root only */
	uint16_t n;      /* keys used */
	uint8_t height;  /* 0: leaf */
	uint8_t pad_;
	/* the next node retired with this one (written by the mutating thread
	 * once the node is unreachable from the published root; no reader
	 * looks at it) */
	struct vfurt_dma_node *retire_next;
	uint64_t keys[DMA_TREE_SLOTS]; /* leaf: window ends; inner: child's last key */
};

/* What follows the keys: an inner node's children, a leaf's windows (a leaf
 * is 4,056 bytes, an inner node 1,032). */
struct vfurt_dma_inner {
	struct vfurt_dma_node hdr;
	struct vfurt_dma_node *child[DMA_TREE_MAX];
};

struct vfurt_dma_leaf {
	struct vfurt_dma_node hdr;
	struct vfurt_dma_entry ent[DMA_TREE_MAX];
};

/* Child i of an inner node, window i of a leaf. */
static inline const struct vfurt_dma_node *vfurt_dma_node_child(const struct vfurt_dma_node *nd,
								unsigned i)
{
	return ((const struct vfurt_dma_inner *)nd)->child[i];
}

static inline const struct vfurt_dma_entry *vfurt_dma_node_ent(const struct vfurt_dma_node *nd,
							       unsigned i)
{
	return &((const struct vfurt_dma_leaf *)nd)->ent[i];
}

/* Number of keys <= x: the slot of the first key > x (0..63). Six loads
 * with no branch: the compiler turns each step into a compare and an add. */
static inline unsigned vfurt_dma_node_rank(const struct vfurt_dma_node *nd, uint64_t x)
{
	const uint64_t *k = nd->keys;
	unsigned i = 0;

	i += (unsigned)(k[i + 31] <= x) << 5;
	i += (unsigned)(k[i + 15] <= x) << 4;
	i += (unsigned)(k[i + 7] <= x) << 3;
	i += (unsigned)(k[i + 3] <= x) << 2;
	i += (unsigned)(k[i + 1] <= x) << 1;
	i += (unsigned)(k[i] <= x);
	return i;
}

/*
 * The same for a node with few keys: n < 2^s skips the steps wider than
 * 2^s (the answer lies in slots 0..2^s - 1, and slot 2^s - 1 holds
 * UINT64_MAX), so a table of a few windows costs one or two steps. Used for
 * a root leaf only (tables of up to 63 windows, the common case, whose n
 * the branches learn); in deeper trees the nodes of one lookup differ in n
 * and the branches would mispredict (measured: +3 ns at 1,024 windows).
 */
static inline unsigned vfurt_dma_node_rank_small(const struct vfurt_dma_node *nd, uint64_t x)
{
	const uint64_t *k = nd->keys;
	unsigned n = nd->n;
	unsigned i = 0;

	if (n >= 32)
		i += (unsigned)(k[i + 31] <= x) << 5;
	if (n >= 16)
		i += (unsigned)(k[i + 15] <= x) << 4;
	if (n >= 8)
		i += (unsigned)(k[i + 7] <= x) << 3;
	if (n >= 4)
		i += (unsigned)(k[i + 3] <= x) << 2;
	if (n >= 2)
		i += (unsigned)(k[i + 1] <= x) << 1;
	i += (unsigned)(k[i] <= x);
	return i;
}

/*
 * The leaf and slot of the first window ending after addr, or NULL when no
 * window does. addr < UINT64_MAX. Any thread, on a root it loaded with
 * acquire; allocation and lock free.
 */
static inline const struct vfurt_dma_node *vfurt_dma_tree_seek(const struct vfurt_dma_node *nd,
								uint64_t addr, unsigned *slot)
{
	unsigned i;

	if (!nd)
		return NULL;
	if (nd->height == 0) {
		i = vfurt_dma_node_rank_small(nd, addr);
		if (i >= nd->n)
			return NULL;
		*slot = i;
		return nd;
	}
	for (unsigned h = nd->height; h > 0; h--) {
		i = vfurt_dma_node_rank(nd, addr);
		if (i >= nd->n)
			return NULL;
		nd = vfurt_dma_node_child(nd, i);
	}
	i = vfurt_dma_node_rank(nd, addr);
	if (i >= nd->n)
		return NULL;
	*slot = i;
	return nd;
}

/*
 * Build the version of root with entry e added (the caller checked that it
 * overlaps nothing). On success *out is the new root (total updated) and
 * *retired the chain of root's nodes it no longer uses (NULL when root was
 * NULL). Returns 0 or -ENOMEM (nothing allocated stays, root untouched).
 * The mutating thread only.
 */
int vfr_dma_tree_insert(const struct vfurt_dma_node *root, const struct vfurt_dma_entry *e,
			  struct vfurt_dma_node **out, struct vfurt_dma_node **retired);

/*
 * Build the version of root without the window that is exactly
 * [iova, iova + size). On success *gone is that window, *out the new root
 * (NULL: empty) and *retired the replaced nodes. Returns 0, -ENOENT (no
 * exact match) or -ENOMEM; on error root is untouched. Mutating thread only.
 */
int vfr_dma_tree_remove(const struct vfurt_dma_node *root, uint64_t iova, uint64_t size,
			  struct vfurt_dma_node **out, struct vfurt_dma_node **retired,
			  struct vfurt_dma_entry *gone);

/* Chain every node of root through retire_next (for retiring a whole
 * version that shares nothing with the new one). Returns the head. */
struct vfurt_dma_node *vfr_dma_tree_chain_all(struct vfurt_dma_node *root);

/* Free a retire chain (a vfurt_dma_retire_fn free_fn). NULL is ignored. */
void vfr_dma_tree_free_chain(void *head);

/* Call fn for each window in iova order. */
void vfr_dma_tree_foreach(const struct vfurt_dma_node *root,
			    void (*fn)(void *arg, const struct vfurt_dma_entry *e), void *arg);

/*
 * Check the invariants (sorted disjoint windows, keys, sentinels, fill,
 * equal depth, totals); for tests. Returns 0 or -EUCLEAN, with the height
 * in *height (-1 for the empty tree) when height is not NULL.
 */
int vfr_dma_tree_check(const struct vfurt_dma_node *root, int *height);

#endif /* VFURT_IO_DMA_TREE_H */
