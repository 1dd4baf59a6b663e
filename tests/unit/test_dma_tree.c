/* Unit tests for io/dma_tree.c: the window tree against a reference model, persistence, readers. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/dma.h"
#include "io/dma_tree.h"

#define PG 4096ull
#define BASE 0x10000000ull

/*
 * The reference: page p of the test's address space belongs to window
 * owner[p] - 1 (0: no window); windows are fixed-size records. Slow and
 * obviously right.
 */
struct model {
	uint32_t pages;
	uint32_t *owner;
	uint64_t *start; /* page index of each window, by id */
	uint32_t *len;   /* pages */
	uint32_t *live;  /* ids of the live windows, unordered */
	uint32_t *pos;   /* index of id in live */
	uint32_t *ids;   /* free ids, a stack */
	uint32_t nids;
	uint32_t nlive;
	uint32_t cap;
};

static void model_init(struct model *m, uint32_t pages, uint32_t cap)
{
	m->pages = pages;
	m->cap = cap;
	m->owner = calloc(pages, sizeof(*m->owner));
	m->start = calloc(cap, sizeof(*m->start));
	m->len = calloc(cap, sizeof(*m->len));
	m->live = calloc(cap, sizeof(*m->live));
	m->pos = calloc(cap, sizeof(*m->pos));
	m->ids = calloc(cap, sizeof(*m->ids));
	m->nlive = 0;
	assert_true(m->owner && m->start && m->len && m->live && m->pos && m->ids);
	for (uint32_t i = 0; i < cap; i++)
		m->ids[i] = cap - 1 - i;
	m->nids = cap;
}

static void model_free(struct model *m)
{
	free(m->owner);
	free(m->start);
	free(m->len);
	free(m->live);
	free(m->pos);
	free(m->ids);
}

static bool model_free_range(const struct model *m, uint64_t p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (m->owner[p + i])
			return false;
	return true;
}

static void model_add(struct model *m, uint64_t p, uint32_t n)
{
	uint32_t id;

	assert_true(m->nids > 0);
	id = m->ids[--m->nids];
	assert_int_equal(m->len[id], 0);
	m->start[id] = p;
	m->len[id] = n;
	for (uint32_t i = 0; i < n; i++)
		m->owner[p + i] = id + 1;
	m->pos[id] = m->nlive;
	m->live[m->nlive++] = id;
}

static void model_del(struct model *m, uint32_t id)
{
	uint32_t at = m->pos[id];

	for (uint32_t i = 0; i < m->len[id]; i++)
		m->owner[m->start[id] + i] = 0;
	m->len[id] = 0;
	m->ids[m->nids++] = id;
	m->live[at] = m->live[--m->nlive];
	m->pos[m->live[at]] = at;
}

/* xorshift64*: deterministic, seeded per test */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static uint64_t iova_of(uint64_t page)
{
	return BASE + page * PG;
}

/* to_sg over [addr, addr+len) agrees with the model (holes, pieces, ENOSPC). */
static void check_lookup(const struct model *m, struct vfurt_dma_table *t, uint64_t *seed)
{
	enum { MAX_SG = 4 };
	struct vfurt_sg sg[MAX_SG];
	uint64_t p = rnd(seed) % m->pages;
	uint64_t off = rnd(seed) % PG;
	uint64_t len = 1 + rnd(seed) % (6 * PG);
	uint64_t addr = iova_of(p) + off;
	uint64_t cur = addr, end = addr + len;
	int want = 0;
	int got = vfr_dma_table_to_sg(t, addr, len, VFURT_DMA_READ, sg, MAX_SG);

	/* the model's answer, piece by piece */
	while (cur < end) {
		uint64_t page = (cur - BASE) / PG;
		uint32_t id;
		uint64_t wend;

		if (page >= m->pages || !m->owner[page]) {
			want = -ENOENT;
			break;
		}
		id = m->owner[page] - 1;
		wend = iova_of(m->start[id] + m->len[id]);
		if (want < MAX_SG && got >= 0) {
			assert_int_equal(sg[want].iova, cur);
			assert_int_equal(sg[want].len, (wend < end ? wend : end) - cur);
		}
		want++;
		cur = wend;
	}
	if (want > MAX_SG)
		want = -ENOSPC;
	assert_int_equal(got, want);
	/* ptr: no window here has memory behind it, so always NULL */
	assert_null(vfr_dma_table_ptr(t, addr, len, VFURT_DMA_READ));
}

static void check_all(const struct model *m, struct vfurt_dma_table *t, int *height)
{
	assert_int_equal(vfr_dma_table_check(t, height), 0);
	assert_int_equal(vfr_dma_table_count(t), m->nlive);
}

/* One random step: insert (any place: often overlapping) or remove (exact,
 * or a near miss that must be -ENOENT). */
static void step(struct model *m, struct vfurt_dma_table *t, uint64_t *seed, unsigned insert_pct)
{
	if (m->nlive == 0 || rnd(seed) % 100 < insert_pct) {
		uint32_t n = 1 + (uint32_t)(rnd(seed) % 3);
		uint64_t p = rnd(seed) % (m->pages - n);
		bool ok = model_free_range(m, p, n) && m->nids > 0;
		int rc = vfr_dma_table_add(t, iova_of(p), n * PG, -1, 0, VFURT_DMA_READ, NULL);

		assert_int_equal(rc, ok ? 0 : -EEXIST);
		if (ok)
			model_add(m, p, n);
	} else {
		uint32_t id = m->live[rnd(seed) % m->nlive];
		uint64_t iova = iova_of(m->start[id]);
		uint64_t size = m->len[id] * PG;

		switch (rnd(seed) % 8) {
		case 0: /* wrong size */
			assert_int_equal(vfr_dma_table_remove(t, iova, size + PG, NULL, NULL),
					 -ENOENT);
			break;
		case 1: /* inside, not at the start */
			if (m->len[id] > 1)
				assert_int_equal(vfr_dma_table_remove(t, iova + PG, size - PG,
									NULL, NULL), -ENOENT);
			break;
		default:
			assert_int_equal(vfr_dma_table_remove(t, iova, size, NULL, NULL), 0);
			model_del(m, id);
		}
	}
}

/* Grow to tens of thousands of windows and shrink back to none, in random
 * order: the tree goes up to four levels and down again, every node split,
 * merge and borrow of every level checked against the model. */
static void test_random_grow_shrink(void **state)
{
	(void)state;
	enum { PAGES = 1u << 20, TARGET = 160000 };
	struct vfurt_dma_table *t = vfr_dma_table_create(UINT32_MAX, PG);
	struct model m;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int height = -1, max_height = -1;
	unsigned ops = 0, seen_heights = 0;

	assert_non_null(t);
	model_init(&m, PAGES, TARGET + 16);
	/* small: the root leaf splits and merges back over and over */
	for (int i = 0; i < 20000; i++) {
		step(&m, t, &seed, m.nlive < 80 ? 60 : 40);
		check_lookup(&m, t, &seed);
		if (i % 97 == 0) {
			check_all(&m, t, &height);
			seen_heights |= 1u << (height + 1);
		}
	}
	/* grow */
	while (m.nlive < TARGET) {
		step(&m, t, &seed, 85);
		if (++ops % 8 == 0)
			check_lookup(&m, t, &seed);
		if (ops % 20011 == 0) {
			check_all(&m, t, &height);
			max_height = height > max_height ? height : max_height;
		}
	}
	check_all(&m, t, &height);
	max_height = height > max_height ? height : max_height;
	fprintf(stderr, "grown to %u windows, height %d\n", m.nlive, height);
	assert_true(max_height >= 3); /* four levels */
	/* shrink: every level merges away again */
	while (m.nlive > 0) {
		step(&m, t, &seed, 15);
		if (++ops % 8 == 0)
			check_lookup(&m, t, &seed);
		if (ops % 4999 == 0 || m.nlive < 200) {
			check_all(&m, t, &height);
			seen_heights |= 1u << (height + 1);
		}
	}
	check_all(&m, t, &height);
	assert_int_equal(height, -1);
	/* heights -1 (empty) through 3 were all passed through */
	seen_heights |= 1u << (max_height + 1);
	assert_int_equal(seen_heights & 0x1f, 0x1f);
	model_free(&m);
	vfr_dma_table_destroy(t);
}

/* Ascending, descending and interleaved orders: the appending splits keep
 * nodes fuller, and removal in another order merges them all away. */
static void test_ordered_inserts(void **state)
{
	(void)state;
	enum { N = 65535 };
	uint64_t seed = 42;

	for (int order = 0; order < 3; order++) {
		struct vfurt_dma_table *t = vfr_dma_table_create(N, PG);
		uint32_t *perm = malloc(N * sizeof(*perm));
		int height;

		assert_non_null(t);
		assert_non_null(perm);
		for (uint32_t i = 0; i < N; i++) {
			uint64_t k = order == 0 ? i : order == 1 ? N - 1 - i
				     : (i % 2 ? i / 2 : N - 1 - i / 2);

			assert_int_equal(vfr_dma_table_add(t, iova_of(2 * k), PG, -1, 0,
							     VFURT_DMA_READ, NULL), 0);
		}
		assert_int_equal(vfr_dma_table_count(t), N);
		assert_int_equal(vfr_dma_table_check(t, &height), 0);
		fprintf(stderr, "order %d: %u windows, height %d\n", order, N, height);
		assert_true(height <= 3);
		/* the quota is the table's max_maps */
		assert_int_equal(vfr_dma_table_add(t, iova_of(2 * N), PG, -1, 0, VFURT_DMA_READ,
						     NULL), -ENOSPC);
		for (uint32_t i = 0; i < N; i++)
			perm[i] = i;
		for (uint32_t i = N - 1; i > 0; i--) {
			uint32_t j = (uint32_t)(rnd(&seed) % (i + 1)), x = perm[i];

			perm[i] = perm[j];
			perm[j] = x;
		}
		for (uint32_t i = 0; i < N; i++) {
			struct vfurt_sg sg;

			assert_int_equal(vfr_dma_table_to_sg(t, iova_of(2 * perm[i]) + 5, 7,
							       VFURT_DMA_READ, &sg, 1), 1);
			assert_int_equal(vfr_dma_table_to_sg(t, iova_of(2 * perm[i] + 1), 7,
							       VFURT_DMA_READ, &sg, 1), -ENOENT);
			assert_int_equal(vfr_dma_table_remove(t, iova_of(2 * perm[i]), PG, NULL,
								NULL), 0);
			if (i % 4096 == 0)
				assert_int_equal(vfr_dma_table_check(t, NULL), 0);
		}
		assert_int_equal(vfr_dma_table_count(t), 0);
		assert_int_equal(vfr_dma_table_check(t, &height), 0);
		assert_int_equal(height, -1);
		free(perm);
		vfr_dma_table_destroy(t);
	}
}

/* Every size of a one-leaf table (1..63 windows, the rank that skips
 * steps): each window found at its first and last byte, each gap not. */
static void test_small_tables(void **state)
{
	(void)state;
	for (uint32_t n = 1; n <= DMA_TREE_MAX + 1; n++) {
		struct vfurt_dma_table *t = vfr_dma_table_create(n, PG);
		struct vfurt_sg sg;
		int height;

		assert_non_null(t);
		for (uint32_t i = 0; i < n; i++)
			assert_int_equal(vfr_dma_table_add(t, iova_of(2 * i + 1), PG, -1, 0,
							     VFURT_DMA_READ, NULL), 0);
		assert_int_equal(vfr_dma_table_check(t, &height), 0);
		assert_int_equal(height, n <= DMA_TREE_MAX ? 0 : 1);
		for (uint32_t i = 0; i < n; i++) {
			assert_int_equal(vfr_dma_table_to_sg(t, iova_of(2 * i + 1), 1,
							       VFURT_DMA_READ, &sg, 1), 1);
			assert_int_equal(sg.iova, iova_of(2 * i + 1));
			assert_int_equal(vfr_dma_table_to_sg(t, iova_of(2 * i + 2) - 1, 1,
							       VFURT_DMA_READ, &sg, 1), 1);
			assert_int_equal(vfr_dma_table_to_sg(t, iova_of(2 * i), PG,
							       VFURT_DMA_READ, &sg, 1), -ENOENT);
		}
		assert_int_equal(vfr_dma_table_to_sg(t, iova_of(2 * n + 1), 1, VFURT_DMA_READ,
						       &sg, 1), -ENOENT);
		assert_int_equal(vfr_dma_table_to_sg(t, UINT64_MAX - 1, 1, VFURT_DMA_READ, &sg, 1),
				 -ENOENT);
		vfr_dma_table_destroy(t);
	}
}

/* to_sg across many adjacent windows crosses leaves (re-seeking from the
 * root) and stops at the first hole or missing permission. */
static void test_to_sg_across_leaves(void **state)
{
	(void)state;
	enum { N = 1000 };
	struct vfurt_dma_table *t = vfr_dma_table_create(N, PG);
	static struct vfurt_sg sg[N];

	assert_non_null(t);
	for (uint32_t i = 0; i < N; i++)
		assert_int_equal(vfr_dma_table_add(t, iova_of(i), PG, -1, 0,
						     i == 700 ? VFURT_DMA_WRITE : VFURT_DMA_READ,
						     NULL), 0);
	assert_int_equal(vfr_dma_table_to_sg(t, iova_of(0) + 1, 600 * PG, VFURT_DMA_READ, sg, N),
			 601);
	for (uint32_t i = 1; i < 600; i++) {
		assert_int_equal(sg[i].iova, iova_of(i));
		assert_int_equal(sg[i].len, PG);
	}
	assert_int_equal(sg[600].len, 1);
	/* more pieces than room: ENOSPC, unless a problem lies further on */
	assert_int_equal(vfr_dma_table_to_sg(t, iova_of(0), 600 * PG, VFURT_DMA_READ, sg, 10),
			 -ENOSPC);
	assert_int_equal(vfr_dma_table_to_sg(t, iova_of(0), 800 * PG, VFURT_DMA_READ, sg, 10),
			 -EACCES);
	assert_int_equal(vfr_dma_table_remove(t, iova_of(300), PG, NULL, NULL), 0);
	assert_int_equal(vfr_dma_table_to_sg(t, iova_of(0), 600 * PG, VFURT_DMA_READ, sg, 10),
			 -ENOENT);
	assert_int_equal(vfr_dma_table_to_sg(t, iova_of(N - 1), 2 * PG, VFURT_DMA_READ, sg, 10),
			 -ENOENT);
	vfr_dma_table_destroy(t);
}

/* Path copying never writes a published node: an old version reads the
 * same after any number of operations on newer ones. */
struct retired_set {
	struct vfurt_dma_node *chains[4096];
	unsigned n;
};

static void collect(struct retired_set *rs, struct vfurt_dma_node *chain)
{
	assert_true(rs->n < 4096);
	if (chain)
		rs->chains[rs->n++] = chain;
}

struct digest {
	uint64_t sum;
	uint32_t n;
};

static void digest_cb(void *arg, const struct vfurt_dma_entry *e)
{
	struct digest *d = arg;

	d->sum = d->sum * 31 + e->r.iova * 7 + e->r.size;
	d->n++;
}

static struct digest digest_of(const struct vfurt_dma_node *root)
{
	struct digest d = { 0 };

	vfr_dma_tree_foreach(root, digest_cb, &d);
	return d;
}

static void test_old_versions_intact(void **state)
{
	(void)state;
	static struct retired_set rs;
	struct vfurt_dma_node *cur = NULL, *v[8] = { NULL }, *out, *ret;
	struct digest dv[8];
	uint64_t seed = 7;
	int nv = 0;

	rs.n = 0;
	for (int i = 0; i < 3000; i++) {
		struct vfurt_dma_entry e = { 0 };
		int rc;

		if (i % 400 == 0 && nv < 8) {
			v[nv] = cur;
			dv[nv] = digest_of(cur);
			nv++;
		}
		e.r.iova = iova_of(rnd(&seed) % 8192);
		e.r.size = PG;
		e.r.prot = VFURT_DMA_READ;
		if (rnd(&seed) % 3) {
			unsigned slot;
			const struct vfurt_dma_node *l = vfurt_dma_tree_seek(cur, e.r.iova, &slot);

			if (l && vfurt_dma_node_ent(l, slot)->r.iova < e.r.iova + PG)
				continue; /* overlap: the table checks that, not the tree */
			rc = vfr_dma_tree_insert(cur, &e, &out, &ret);
		} else {
			struct vfurt_dma_entry gone;

			rc = vfr_dma_tree_remove(cur, e.r.iova, PG, &out, &ret, &gone);
			if (rc == -ENOENT)
				continue;
		}
		assert_int_equal(rc, 0);
		collect(&rs, ret);
		cur = out;
		for (int k = 0; k < nv; k++) {
			struct digest d = digest_of(v[k]);

			assert_int_equal(vfr_dma_tree_check(v[k], NULL), 0);
			assert_int_equal(d.n, dv[k].n);
			assert_true(d.sum == dv[k].sum);
		}
	}
	/* every node is freed exactly once: the retired ones and the live
	 * tree (ASan reports a double free or a leak) */
	for (unsigned i = 0; i < rs.n; i++)
		vfr_dma_tree_free_chain(rs.chains[i]);
	vfr_dma_tree_free_chain(vfr_dma_tree_chain_all(cur));
}

/* ---- a reader thread beside the mutating one (run under TSan too) ------- */

struct race {
	struct vfurt_dma_table *t;
	atomic_bool stop;
	atomic_ulong lookups;
	atomic_ulong bad;
	/* retired chains, freed only after the reader is gone */
	pthread_mutex_t lock;
	struct vfurt_dma_node **chains;
	size_t nchains, cap;
};

static void race_retire(void *arg, void *chain, void (*free_fn)(void *))
{
	struct race *r = arg;

	assert_true(free_fn == vfr_dma_tree_free_chain);
	pthread_mutex_lock(&r->lock);
	if (r->nchains == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->chains = realloc(r->chains, r->cap * sizeof(*r->chains));
		assert_non_null(r->chains);
	}
	r->chains[r->nchains++] = chain;
	pthread_mutex_unlock(&r->lock);
}

/* Window i (0..511) is always mapped at page 4i; others come and go. */
static void *race_reader(void *arg)
{
	struct race *r = arg;
	uint64_t seed = 99;

	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		struct vfurt_sg sg[2];
		uint64_t i = rnd(&seed) % 512;

		if (vfr_dma_table_to_sg(r->t, iova_of(4 * i) + 8, 64, VFURT_DMA_READ, sg, 2) != 1 ||
		    sg[0].iova != iova_of(4 * i) + 8)
			atomic_fetch_add(&r->bad, 1);
		atomic_fetch_add_explicit(&r->lookups, 1, memory_order_relaxed);
	}
	return NULL;
}

static void test_reader_beside_writer(void **state)
{
	(void)state;
	struct race r = { .nchains = 0 };
	pthread_t th;
	uint64_t seed = 5;

	pthread_mutex_init(&r.lock, NULL);
	r.t = vfr_dma_table_create(100000, PG);
	assert_non_null(r.t);
	vfr_dma_table_set_retire(r.t, race_retire, &r);
	for (uint64_t i = 0; i < 512; i++)
		assert_int_equal(vfr_dma_table_add(r.t, iova_of(4 * i), PG, -1, 0, VFURT_DMA_READ,
						     NULL), 0);
	assert_int_equal(pthread_create(&th, NULL, race_reader, &r), 0);
	for (int k = 0; k < 20000; k++) {
		uint64_t p = 4 * (rnd(&seed) % 512) + 1 + rnd(&seed) % 3;
		int rc = vfr_dma_table_add(r.t, iova_of(p), PG, -1, 0, VFURT_DMA_READ, NULL);

		if (rc == -EEXIST)
			assert_int_equal(vfr_dma_table_remove(r.t, iova_of(p), PG, NULL, NULL), 0);
		else
			assert_int_equal(rc, 0);
	}
	atomic_store(&r.stop, true);
	pthread_join(th, NULL);
	fprintf(stderr, "%lu lookups beside 20000 changes\n", atomic_load(&r.lookups));
	assert_int_equal(atomic_load(&r.bad), 0);
	for (size_t i = 0; i < r.nchains; i++)
		vfr_dma_tree_free_chain(r.chains[i]);
	free(r.chains);
	vfr_dma_table_destroy(r.t);
	pthread_mutex_destroy(&r.lock);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_grow_shrink),
		cmocka_unit_test(test_ordered_inserts),
		cmocka_unit_test(test_small_tables),
		cmocka_unit_test(test_to_sg_across_leaves),
		cmocka_unit_test(test_old_versions_intact),
		cmocka_unit_test(test_reader_beside_writer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
