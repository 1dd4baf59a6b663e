/* DMA window tree: path-copying insert and remove with splits, merges and borrows. */
#include "dma_tree.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define INNER_SIZE sizeof(struct vfurt_dma_inner)
#define LEAF_SIZE sizeof(struct vfurt_dma_leaf)
/* The payload of a node being built or freed (the mutating thread only). */
#define CHILD(nd) (((struct vfurt_dma_inner *)(nd))->child)
#define ENT(nd) (((struct vfurt_dma_leaf *)(nd))->ent)

/* The nodes one operation allocates (to undo) and replaces (to retire).
 * Per level: the path node, a sibling, and up to two new nodes; plus a
 * new root. */
#define OP_NODES (4u * DMA_TREE_DEPTH + 1u)

struct op {
	struct vfurt_dma_node *fresh[OP_NODES];
	unsigned nfresh;
	struct vfurt_dma_node *retired; /* chain */
};

static struct vfurt_dma_node *node_new(struct op *op, unsigned height)
{
	size_t size = height ? INNER_SIZE : LEAF_SIZE;
	struct vfurt_dma_node *nd;

	if (op->nfresh == OP_NODES)
		return NULL; /* cannot happen within DMA_TREE_DEPTH */
	nd = malloc(size);
	if (!nd)
		return NULL;
	/* header and keys; the payload is written by the caller */
	memset(nd, 0, offsetof(struct vfurt_dma_node, keys));
	for (unsigned i = 0; i < DMA_TREE_SLOTS; i++)
		nd->keys[i] = UINT64_MAX;
	nd->height = (uint8_t)height;
	op->fresh[op->nfresh++] = nd;
	return nd;
}

/* A node of the old version the new one does not use. */
static void op_retire(struct op *op, const struct vfurt_dma_node *old)
{
	struct vfurt_dma_node *nd = (struct vfurt_dma_node *)old;

	/* only retire_next is written: the node's content stays intact for
	 * the readers that still walk the old version */
	nd->retire_next = op->retired;
	op->retired = nd;
}

/* Undo an operation that failed: nothing was published, nothing retired. */
static int op_fail(struct op *op, int err)
{
	/* retire links already written on old nodes are harmless: they are
	 * rewritten when those nodes are really retired */
	while (op->nfresh > 0)
		free(op->fresh[--op->nfresh]);
	return err;
}

static uint64_t last_key(const struct vfurt_dma_node *nd)
{
	return nd->keys[nd->n - 1];
}

/* The items of a node being built, before they are cut into nodes: at most
 * one node's worth plus one (insert) or two nodes' worth (merge, borrow). */
struct items {
	unsigned height;
	unsigned n;
	uint64_t keys[2 * DMA_TREE_MAX];
	union {
		const struct vfurt_dma_node *child[2 * DMA_TREE_MAX];
		struct vfurt_dma_entry ent[2 * DMA_TREE_MAX];
	} u;
};

static void items_take(struct items *it, const struct vfurt_dma_node *src)
{
	memcpy(&it->keys[it->n], src->keys, src->n * sizeof(it->keys[0]));
	if (it->height)
		memcpy(&it->u.child[it->n], CHILD(src), src->n * sizeof(it->u.child[0]));
	else
		memcpy(&it->u.ent[it->n], ENT(src), src->n * sizeof(it->u.ent[0]));
	it->n += src->n;
}

/* A node holding items [from, from + count) of it. */
static struct vfurt_dma_node *items_node(struct op *op, const struct items *it, unsigned from,
					 unsigned count)
{
	struct vfurt_dma_node *nd = node_new(op, it->height);

	if (!nd)
		return NULL;
	nd->n = (uint16_t)count;
	memcpy(nd->keys, &it->keys[from], count * sizeof(nd->keys[0]));
	if (it->height)
		memcpy(CHILD(nd), &it->u.child[from], count * sizeof(CHILD(nd)[0]));
	else
		memcpy(ENT(nd), &it->u.ent[from], count * sizeof(ENT(nd)[0]));
	return nd;
}

/*
 * Cut it into one node, or two when it does not fit. at_end/at_start: the
 * item that made it overflow was appended after the last (prepended before
 * the first) window of the whole tree; the new node then takes only the
 * minimum, so that a client mapping windows in ascending (descending) order
 * leaves its nodes three quarters full rather than half. Returns the number
 * of nodes (1 or 2), 0 on ENOMEM.
 */
static unsigned items_cut(struct op *op, const struct items *it, bool at_end, bool at_start,
			  struct vfurt_dma_node **a, struct vfurt_dma_node **b)
{
	unsigned left;

	*b = NULL;
	if (it->n <= DMA_TREE_MAX) {
		*a = items_node(op, it, 0, it->n);
		return *a ? 1 : 0;
	}
	left = at_end ? it->n - DMA_TREE_MIN : at_start ? DMA_TREE_MIN : it->n / 2;
	*a = items_node(op, it, 0, left);
	*b = *a ? items_node(op, it, left, it->n - left) : NULL;
	return *b ? 2 : 0;
}

/* Where a descent went: the node and the slot taken at each level. */
struct path {
	const struct vfurt_dma_node *nd[DMA_TREE_DEPTH];
	unsigned slot[DMA_TREE_DEPTH];
};

int vfr_dma_tree_insert(const struct vfurt_dma_node *root, const struct vfurt_dma_entry *e,
			  struct vfurt_dma_node **out, struct vfurt_dma_node **retired)
{
	static _Thread_local struct items it; /* 8 KiB: off the worker's stack */
	uint64_t key = e->r.iova + e->r.size;
	struct op op = { .nfresh = 0 };
	struct path p;
	struct vfurt_dma_node *a, *b;
	bool at_end = true, at_start = true;
	unsigned h, top;

	if (!root) {
		a = node_new(&op, 0);
		if (!a)
			return -ENOMEM;
		a->n = 1;
		a->keys[0] = key;
		ENT(a)[0] = *e;
		a->total = 1;
		*out = a;
		*retired = NULL;
		return 0;
	}
	top = root->height;
	if (top + 1 >= DMA_TREE_DEPTH)
		return -ENOSPC; /* 2^32 windows would not get here */
	/* descend: the first child ending after the new window's start, or
	 * the last child when none does (an append) */
	p.nd[top] = root;
	for (h = top; ; h--) {
		const struct vfurt_dma_node *nd = p.nd[h];
		unsigned i = vfurt_dma_node_rank(nd, e->r.iova);

		if (h == 0) {
			p.slot[0] = i;
			at_end = at_end && i == nd->n;
			at_start = at_start && i == 0;
			break;
		}
		if (i >= nd->n)
			i = nd->n - 1u;
		at_end = at_end && i == nd->n - 1u;
		at_start = at_start && i == 0;
		p.slot[h] = i;
		p.nd[h - 1] = CHILD(nd)[i];
	}

	/* the leaf with the entry in place */
	it.height = 0;
	it.n = 0;
	items_take(&it, p.nd[0]);
	memmove(&it.keys[p.slot[0] + 1], &it.keys[p.slot[0]],
		(it.n - p.slot[0]) * sizeof(it.keys[0]));
	memmove(&it.u.ent[p.slot[0] + 1], &it.u.ent[p.slot[0]],
		(it.n - p.slot[0]) * sizeof(it.u.ent[0]));
	it.keys[p.slot[0]] = key;
	it.u.ent[p.slot[0]] = *e;
	it.n++;
	if (!items_cut(&op, &it, at_end, at_start, &a, &b))
		return op_fail(&op, -ENOMEM);
	op_retire(&op, p.nd[0]);

	/* each parent: the new child (or two) in place of the old one */
	for (h = 1; h <= top; h++) {
		const struct vfurt_dma_node *nd = p.nd[h];
		unsigned i = p.slot[h];
		struct vfurt_dma_node *na, *nb;

		it.height = h;
		it.n = 0;
		items_take(&it, nd);
		it.keys[i] = last_key(a);
		it.u.child[i] = a;
		if (b) {
			memmove(&it.keys[i + 2], &it.keys[i + 1], (it.n - i - 1) * sizeof(it.keys[0]));
			memmove(&it.u.child[i + 2], &it.u.child[i + 1],
				(it.n - i - 1) * sizeof(it.u.child[0]));
			it.keys[i + 1] = last_key(b);
			it.u.child[i + 1] = b;
			it.n++;
		}
		if (!items_cut(&op, &it, at_end, at_start, &na, &nb))
			return op_fail(&op, -ENOMEM);
		op_retire(&op, nd);
		a = na;
		b = nb;
	}
	if (b) {
		/* the root split: one level more */
		struct vfurt_dma_node *r = node_new(&op, top + 1);

		if (!r)
			return op_fail(&op, -ENOMEM);
		r->n = 2;
		r->keys[0] = last_key(a);
		r->keys[1] = last_key(b);
		CHILD(r)[0] = a;
		CHILD(r)[1] = b;
		a = r;
	}
	a->total = root->total + 1;
	*out = a;
	*retired = op.retired;
	return 0;
}

static bool is_fresh(const struct op *op, const struct vfurt_dma_node *nd)
{
	for (unsigned i = 0; i < op->nfresh; i++)
		if (op->fresh[i] == nd)
			return true;
	return false;
}

/*
 * Parent p lost a window under its child at slot i, whose items are now
 * cit: build that child (merged with, or borrowing from, a sibling when it
 * fell below the minimum) and write the parent's new items into pit.
 * Returns 0 or -ENOMEM.
 */
static int fix_child(struct op *op, const struct vfurt_dma_node *p, unsigned i,
		     const struct items *cit, struct items *pit)
{
	static _Thread_local struct items both;
	const struct vfurt_dma_node *sib;
	struct vfurt_dma_node *na, *nb;
	unsigned s, first;

	pit->height = p->height;
	pit->n = 0;
	items_take(pit, p);
	if (cit->n == 0) {
		/* an emptied child (only under a root): its slot goes */
		memmove(&pit->keys[i], &pit->keys[i + 1], (pit->n - i - 1) * sizeof(pit->keys[0]));
		memmove(&pit->u.child[i], &pit->u.child[i + 1],
			(pit->n - i - 1) * sizeof(pit->u.child[0]));
		pit->n--;
		return 0;
	}
	if (cit->n >= DMA_TREE_MIN || p->n == 1) {
		na = items_node(op, cit, 0, cit->n);
		if (!na)
			return -ENOMEM;
		pit->keys[i] = last_key(na);
		pit->u.child[i] = na;
		return 0;
	}
	/* the left sibling, or the right one for the first child; the items
	 * of both in order */
	s = i > 0 ? i - 1 : i + 1;
	sib = CHILD(p)[s];
	first = s < i ? s : i;
	both.height = cit->height;
	both.n = 0;
	if (s < i)
		items_take(&both, sib);
	memcpy(&both.keys[both.n], cit->keys, cit->n * sizeof(both.keys[0]));
	if (both.height)
		memcpy(&both.u.child[both.n], cit->u.child, cit->n * sizeof(both.u.child[0]));
	else
		memcpy(&both.u.ent[both.n], cit->u.ent, cit->n * sizeof(both.u.ent[0]));
	both.n += cit->n;
	if (s > i)
		items_take(&both, sib);
	/* fits in one: merge; else two halves, each above the minimum */
	if (!items_cut(op, &both, false, false, &na, &nb))
		return -ENOMEM;
	op_retire(op, sib);
	pit->keys[first] = last_key(na);
	pit->u.child[first] = na;
	if (nb) {
		pit->keys[first + 1] = last_key(nb);
		pit->u.child[first + 1] = nb;
	} else {
		memmove(&pit->keys[first + 1], &pit->keys[first + 2],
			(pit->n - first - 2) * sizeof(pit->keys[0]));
		memmove(&pit->u.child[first + 1], &pit->u.child[first + 2],
			(pit->n - first - 2) * sizeof(pit->u.child[0]));
		pit->n--;
	}
	return 0;
}

int vfr_dma_tree_remove(const struct vfurt_dma_node *root, uint64_t iova, uint64_t size,
			  struct vfurt_dma_node **out, struct vfurt_dma_node **retired,
			  struct vfurt_dma_entry *gone)
{
	static _Thread_local struct items bufs[2];
	struct items *cit = &bufs[0], *pit = &bufs[1];
	struct op op = { .nfresh = 0 };
	struct vfurt_dma_node *nr;
	struct path p;
	unsigned h, top, slot;
	int rc;

	if (!root)
		return -ENOENT;
	top = root->height;
	p.nd[top] = root;
	for (h = top; ; h--) {
		const struct vfurt_dma_node *nd = p.nd[h];
		unsigned i = vfurt_dma_node_rank(nd, iova);

		if (i >= nd->n)
			return -ENOENT;
		p.slot[h] = i;
		if (h == 0)
			break;
		p.nd[h - 1] = CHILD(nd)[i];
	}
	slot = p.slot[0];
	{
		const struct vfurt_dma_entry *e = &ENT(p.nd[0])[slot];

		if (e->r.iova != iova || e->r.size != size)
			return -ENOENT;
		*gone = *e;
	}

	/* the leaf's items without the entry; each level builds the nodes of
	 * the level below and hands its own items up */
	cit->height = 0;
	cit->n = 0;
	items_take(cit, p.nd[0]);
	memmove(&cit->keys[slot], &cit->keys[slot + 1], (cit->n - slot - 1) * sizeof(cit->keys[0]));
	memmove(&cit->u.ent[slot], &cit->u.ent[slot + 1],
		(cit->n - slot - 1) * sizeof(cit->u.ent[0]));
	cit->n--;
	for (h = 1; h <= top; h++) {
		struct items *t;

		rc = fix_child(&op, p.nd[h], p.slot[h], cit, pit);
		if (rc)
			return op_fail(&op, rc);
		op_retire(&op, p.nd[h - 1]);
		t = cit;
		cit = pit;
		pit = t;
	}
	op_retire(&op, root);
	/* cit: the root's items */
	if (cit->n == 0) {
		nr = NULL;
	} else if (top > 0 && cit->n == 1 && is_fresh(&op, cit->u.child[0])) {
		/* a root left with one child (built by a merge) gives way to it */
		nr = (struct vfurt_dma_node *)cit->u.child[0];
	} else {
		nr = items_node(&op, cit, 0, cit->n);
		if (!nr)
			return op_fail(&op, -ENOMEM);
	}
	if (nr)
		nr->total = root->total - 1;
	*out = nr;
	*retired = op.retired;
	return 0;
}

struct vfurt_dma_node *vfr_dma_tree_chain_all(struct vfurt_dma_node *root)
{
	struct vfurt_dma_node *head = NULL, *tail;

	if (!root)
		return NULL;
	/* breadth first through the chain itself: no stack, no allocation */
	root->retire_next = NULL;
	head = tail = root;
	for (struct vfurt_dma_node *nd = head; nd; nd = nd->retire_next) {
		for (unsigned i = 0; nd->height && i < nd->n; i++) {
			struct vfurt_dma_node *ch = CHILD(nd)[i];

			ch->retire_next = NULL;
			tail->retire_next = ch;
			tail = ch;
		}
	}
	return head;
}

void vfr_dma_tree_free_chain(void *head)
{
	struct vfurt_dma_node *nd = head;

	while (nd) {
		struct vfurt_dma_node *next = nd->retire_next;

		free(nd);
		nd = next;
	}
}

void vfr_dma_tree_foreach(const struct vfurt_dma_node *root,
			    void (*fn)(void *arg, const struct vfurt_dma_entry *e), void *arg)
{
	if (!root)
		return;
	for (unsigned i = 0; i < root->n; i++) {
		if (root->height)
			vfr_dma_tree_foreach(CHILD(root)[i], fn, arg);
		else
			fn(arg, &ENT(root)[i]);
	}
}

/* Check the subtree under nd; *count += its windows, *prev_end: the end of
 * the window before it. */
static int check_node(const struct vfurt_dma_node *nd, unsigned height, bool is_root,
		      uint64_t *prev_end, uint32_t *count)
{
	if (nd->height != height || nd->n == 0 || nd->n > DMA_TREE_MAX)
		return -EUCLEAN;
	if (!is_root && nd->n < DMA_TREE_MIN)
		return -EUCLEAN;
	if (is_root && height > 0 && nd->n < 2)
		return -EUCLEAN;
	for (unsigned i = nd->n; i < DMA_TREE_SLOTS; i++)
		if (nd->keys[i] != UINT64_MAX)
			return -EUCLEAN;
	for (unsigned i = 0; i < nd->n; i++) {
		if (height) {
			const struct vfurt_dma_node *ch = CHILD(nd)[i];
			int rc = check_node(ch, height - 1, false, prev_end, count);

			if (rc)
				return rc;
			if (nd->keys[i] != last_key(ch))
				return -EUCLEAN;
		} else {
			const struct vfurt_dma_entry *e = &ENT(nd)[i];

			if (e->r.size == 0 || e->r.iova < *prev_end ||
			    nd->keys[i] != e->r.iova + e->r.size)
				return -EUCLEAN;
			*prev_end = nd->keys[i];
			(*count)++;
		}
	}
	return 0;
}

int vfr_dma_tree_check(const struct vfurt_dma_node *root, int *height)
{
	uint64_t prev_end = 0;
	uint32_t count = 0;
	int rc;

	if (height)
		*height = root ? root->height : -1;
	if (!root)
		return 0;
	rc = check_node(root, root->height, true, &prev_end, &count);
	if (!rc && count != root->total)
		rc = -EUCLEAN;
	return rc;
}
