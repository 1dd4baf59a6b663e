/* Poller sets: active pollers in registration order, timed pollers in a deadline min-heap. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "poller.h"

#define NO_INDEX UINT32_MAX

enum poller_state {
	POLLER_ACTIVE, /* period 0: in ps->active at idx */
	POLLER_TIMED,  /* in ps->heap at idx, or idx == NO_INDEX while on the due list of a run */
	POLLER_DEAD,   /* unregistered during a run; freed when the run ends */
};

struct vfurt_poller {
	vfurt_poller_fn fn;
	vfurt_poller_arm_fn arm;       /* active pollers only; NULL = none */
	void *arg;
	uint64_t period_ns;
	uint64_t deadline_ns;
	uint64_t seq;                  /* registration order: tie-break for equal deadlines */
	struct vfurt_worker *worker;   /* for the public API; never dereferenced here */
	struct vfurt_poller_set *owner;
	enum poller_state state;
	uint32_t idx;                  /* position in ps->active or ps->heap */
	struct vfurt_poller *next_due; /* due list of a timed run */
	struct vfurt_poller *next_dead;
};

struct vfurt_poller_set {
	/* Active pollers in registration order; during a run dead ones stay in
	 * place (and new ones are appended) until the run ends. */
	struct vfurt_poller **active;
	uint32_t n_active;      /* used slots, including dead ones during a run */
	uint32_t cap_active;
	uint32_t live_active;

	/* Binary min-heap on (deadline_ns, seq). cap_heap >= live_timed at all
	 * times, so putting a poller back after it ran never allocates. */
	struct vfurt_poller **heap;
	uint32_t n_heap;
	uint32_t cap_heap;
	uint32_t live_timed;    /* in the heap or on the due list of a run */

	uint64_t next_seq;
	unsigned running;       /* nesting depth of run_active/run_timed */
	bool active_dirty;      /* dead pollers left in ps->active */
	struct vfurt_poller *dead; /* freed when the outermost run ends */
};

/* ---- heap ------------------------------------------------------------- */

static bool earlier(const struct vfurt_poller *a, const struct vfurt_poller *b)
{
	if (a->deadline_ns != b->deadline_ns)
		return a->deadline_ns < b->deadline_ns;
	return a->seq < b->seq;
}

static void heap_place(struct vfurt_poller_set *ps, uint32_t i, struct vfurt_poller *p)
{
	ps->heap[i] = p;
	p->idx = i;
}

static void sift_up(struct vfurt_poller_set *ps, uint32_t i)
{
	struct vfurt_poller *p = ps->heap[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (!earlier(p, ps->heap[parent]))
			break;
		heap_place(ps, i, ps->heap[parent]);
		i = parent;
	}
	heap_place(ps, i, p);
}

static void sift_down(struct vfurt_poller_set *ps, uint32_t i)
{
	struct vfurt_poller *p = ps->heap[i];
	uint32_t n = ps->n_heap;

	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m;

		if (l >= n)
			break;
		m = (r < n && earlier(ps->heap[r], ps->heap[l])) ? r : l;
		if (!earlier(ps->heap[m], p))
			break;
		heap_place(ps, i, ps->heap[m]);
		i = m;
	}
	heap_place(ps, i, p);
}

/* Needs a free slot: guaranteed by cap_heap >= live_timed. */
static void heap_push(struct vfurt_poller_set *ps, struct vfurt_poller *p)
{
	assert(ps->n_heap < ps->cap_heap);
	heap_place(ps, ps->n_heap++, p);
	sift_up(ps, p->idx);
}

static void heap_remove(struct vfurt_poller_set *ps, struct vfurt_poller *p)
{
	uint32_t i = p->idx;
	struct vfurt_poller *last;

	assert(i < ps->n_heap && ps->heap[i] == p);
	last = ps->heap[--ps->n_heap];
	p->idx = NO_INDEX;
	if (last == p)
		return;
	heap_place(ps, i, last);
	/* The moved element may belong above or below slot i. */
	if (i > 0 && earlier(last, ps->heap[(i - 1) / 2]))
		sift_up(ps, i);
	else
		sift_down(ps, i);
}

/* ---- set -------------------------------------------------------------- */

struct vfurt_poller_set *vfr_poller_set_create(void)
{
	return calloc(1, sizeof(struct vfurt_poller_set));
}

void vfr_poller_set_destroy(struct vfurt_poller_set *ps)
{
	uint32_t i;

	if (!ps)
		return;
	assert(ps->running == 0 && ps->dead == NULL);
	for (i = 0; i < ps->n_active; i++)
		free(ps->active[i]);
	for (i = 0; i < ps->n_heap; i++)
		free(ps->heap[i]);
	free(ps->active);
	free(ps->heap);
	free(ps);
}

/* Make room for one more pointer in *arr (capacity *cap, needed slots `need`). */
static int grow(struct vfurt_poller ***arr, uint32_t *cap, uint32_t need)
{
	struct vfurt_poller **n;
	uint32_t ncap;

	if (need <= *cap)
		return 0;
	if (*cap > UINT32_MAX / 2)
		return -ENOMEM;
	ncap = *cap ? *cap * 2 : 8;
	n = realloc(*arr, (size_t)ncap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	*arr = n;
	*cap = ncap;
	return 0;
}

struct vfurt_poller *vfr_poller_set_add(struct vfurt_poller_set *ps, struct vfurt_worker *w,
					  vfurt_poller_fn fn, void *arg, uint64_t period_us,
					  uint64_t now_ns)
{
	struct vfurt_poller *p;
	uint64_t period_ns = period_us * 1000;
	int rc;

	if (!ps || !fn || period_us > UINT64_MAX / 1000 ||
	    (period_us && period_ns >= UINT64_MAX - now_ns)) {
		errno = EINVAL;
		return NULL;
	}
	if (period_us == 0)
		rc = grow(&ps->active, &ps->cap_active, ps->n_active + 1);
	else
		rc = grow(&ps->heap, &ps->cap_heap, ps->live_timed + 1);
	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	p->fn = fn;
	p->arg = arg;
	p->period_ns = period_ns;
	p->seq = ps->next_seq++;
	p->worker = w;
	p->owner = ps;
	if (period_us == 0) {
		p->state = POLLER_ACTIVE;
		p->idx = ps->n_active;
		/* Appended past the end a running pass captured, so it first
		 * runs on the next pass. */
		ps->active[ps->n_active++] = p;
		ps->live_active++;
	} else {
		p->state = POLLER_TIMED;
		p->deadline_ns = now_ns + period_ns;
		ps->live_timed++;
		heap_push(ps, p);
	}
	return p;
}

/* Drop p from ps->active now (no run in progress). */
static void active_erase(struct vfurt_poller_set *ps, struct vfurt_poller *p)
{
	uint32_t i = p->idx;

	assert(i < ps->n_active && ps->active[i] == p);
	memmove(&ps->active[i], &ps->active[i + 1],
		(size_t)(ps->n_active - i - 1) * sizeof(ps->active[0]));
	ps->n_active--;
	for (; i < ps->n_active; i++)
		ps->active[i]->idx = i;
}

void vfr_poller_set_remove(struct vfurt_poller_set *ps, struct vfurt_poller *p)
{
	assert(ps && p && p->owner == ps);
	assert(p->state != POLLER_DEAD);

	if (p->state == POLLER_ACTIVE) {
		ps->live_active--;
		if (ps->running) {
			/* A run may be iterating ps->active: leave the slot. */
			ps->active_dirty = true;
		} else {
			active_erase(ps, p);
		}
	} else {
		ps->live_timed--;
		/* idx is NO_INDEX while p sits on a run's due list. */
		if (p->idx != NO_INDEX)
			heap_remove(ps, p);
	}

	if (!ps->running) {
		free(p);
		return;
	}
	/* A run may still hold p (its loop, or the due list): defer the free. */
	p->state = POLLER_DEAD;
	p->next_dead = ps->dead;
	ps->dead = p;
}

struct vfurt_poller_set *vfr_poller_owner(const struct vfurt_poller *p)
{
	assert(p);
	return p->owner;
}

/* End of a run: at the outermost level, compact ps->active and free the dead. */
static void run_end(struct vfurt_poller_set *ps)
{
	struct vfurt_poller *p;
	uint32_t i, j;

	assert(ps->running > 0);
	if (--ps->running)
		return;
	if (ps->active_dirty) {
		for (i = 0, j = 0; i < ps->n_active; i++) {
			p = ps->active[i];
			if (p->state == POLLER_DEAD)
				continue;
			p->idx = j;
			ps->active[j++] = p;
		}
		ps->n_active = j;
		ps->active_dirty = false;
	}
	while ((p = ps->dead) != NULL) {
		ps->dead = p->next_dead;
		free(p);
	}
}

int vfr_poller_set_run_active(struct vfurt_poller_set *ps)
{
	uint32_t i, n;
	int busy = 0;

	assert(ps);
	ps->running++;
	/* Pollers added by callbacks land at index >= n and wait for the next
	 * pass; ps->active may be reallocated by such an add, so index it afresh. */
	n = ps->n_active;
	for (i = 0; i < n; i++) {
		struct vfurt_poller *p = ps->active[i];

		if (p->state != POLLER_ACTIVE)
			continue;
		if (p->fn(p->arg) > 0)
			busy++;
	}
	run_end(ps);
	return busy;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX - 1 : a + b;
}

int vfr_poller_set_run_timed(struct vfurt_poller_set *ps, uint64_t now_ns)
{
	struct vfurt_poller *due = NULL, **tail = &due, *p;
	int busy = 0;

	assert(ps);
	if (ps->n_heap == 0 || ps->heap[0]->deadline_ns > now_ns)
		return 0;
	ps->running++;
	/*
	 * Take every due poller out of the heap first, in deadline order, so
	 * each runs at most once per call even when its new deadline is again
	 * <= now_ns.
	 */
	while (ps->n_heap && ps->heap[0]->deadline_ns <= now_ns) {
		p = ps->heap[0];
		heap_remove(ps, p);
		p->next_due = NULL;
		*tail = p;
		tail = &p->next_due;
	}
	while ((p = due) != NULL) {
		due = p->next_due;
		if (p->state == POLLER_DEAD)
			continue;
		if (p->fn(p->arg) > 0)
			busy++;
		if (p->state == POLLER_DEAD)
			continue;
		/* Keep the phase when on time; when late by a period or more,
		 * restart from now: no catch-up burst, never twice in a period. */
		p->deadline_ns = sat_add(p->deadline_ns, p->period_ns);
		if (p->deadline_ns <= now_ns)
			p->deadline_ns = sat_add(now_ns, p->period_ns);
		heap_push(ps, p);
	}
	run_end(ps);
	return busy;
}

void vfr_poller_arm_set(struct vfurt_poller *p, vfurt_poller_arm_fn fn)
{
	assert(p);
	p->arm = fn;
}

int vfr_poller_set_arm_all(struct vfurt_poller_set *ps, bool arm)
{
	int res = VFURT_ARM_DONE;
	uint32_t n;

	assert(ps);
	ps->running++; /* an arm callback may unregister pollers */
	n = ps->n_active;
	for (uint32_t i = 0; i < n; i++) {
		struct vfurt_poller *p = ps->active[i];
		int r;

		if (p->state != POLLER_ACTIVE || !p->arm)
			continue;
		r = p->arm(p->arg, arm);
		if (arm && r == VFURT_ARM_PENDING)
			res = VFURT_ARM_PENDING;
		else if (arm && r == VFURT_ARM_POLL && res == VFURT_ARM_DONE)
			res = VFURT_ARM_POLL;
	}
	run_end(ps);
	return res;
}

uint64_t vfr_poller_set_next_deadline(const struct vfurt_poller_set *ps)
{
	assert(ps);
	return ps->n_heap ? ps->heap[0]->deadline_ns : UINT64_MAX;
}

uint32_t vfr_poller_set_active_count(const struct vfurt_poller_set *ps)
{
	assert(ps);
	return ps->live_active;
}

uint32_t vfr_poller_set_timed_count(const struct vfurt_poller_set *ps)
{
	assert(ps);
	return ps->live_timed;
}
