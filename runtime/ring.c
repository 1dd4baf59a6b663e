/* Bounded MPSC (fn, arg) message ring: ck_ring's typed mpsc functions over a slot array. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include <ck_ring.h>

#include "ring.h"

/*
 * Messages are copied by value into the slot array (CK_RING_PROTOTYPE), so
 * the ring needs no per-message allocation. The _mpsc variants are ck's
 * set for many producers and one consumer: reserve claims a slot by CAS on
 * p_head, commit publishes claims in ticket order through p_tail (store
 * fence first); dequeue is the single-consumer path (load fence after
 * reading p_tail, plain c_head store, no CAS).
 */
CK_RING_PROTOTYPE(vfurt_ring_msg, vfurt_ring_msg)

/*
 * ThreadSanitizer does not see ck_pr's inline-assembly atomics and fences,
 * so it would report the slot copies as races. The ring functions are left
 * uninstrumented and the ordering ck provides is told to TSan explicitly: a
 * producer releases before its slot is published, the consumer acquires
 * after taking a message, so whatever a sender wrote before sending is
 * ordered before the receiver's use of it (the memory that arg points to).
 */
#if defined(__SANITIZE_THREAD__)
#define RING_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RING_TSAN 1
#endif
#endif

#ifdef RING_TSAN
#include <sanitizer/tsan_interface.h>
#define RING_NO_TSAN __attribute__((no_sanitize("thread")))
#define ring_tsan_release(a) __tsan_release(a)
#define ring_tsan_acquire(a) __tsan_acquire(a)
#else
#define RING_NO_TSAN
#define ring_tsan_release(a) ((void)(a))
#define ring_tsan_acquire(a) ((void)(a))
#endif

struct vfurt_msg_ring {
	struct ck_ring ring;            /* first: ck pads its counters to cache lines */
	struct vfurt_ring_msg *slots;   /* `size` entries, owned */
};

struct vfurt_msg_ring *vfr_ring_create(uint32_t size)
{
	struct vfurt_msg_ring *r;
	void *mem;
	int rc;

	if (size < 4 || (size & (size - 1)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	/* Keep the producer and consumer counters on their own cache lines. */
	rc = posix_memalign(&mem, CK_MD_CACHELINE, sizeof(*r));
	if (rc != 0) {
		errno = rc;
		return NULL;
	}
	r = mem;
	r->slots = calloc(size, sizeof(*r->slots));
	if (!r->slots) {
		errno = ENOMEM;
		goto err_free_ring;
	}
	ck_ring_init(&r->ring, size);
	return r;

err_free_ring:
	free(r);
	return NULL;
}

void vfr_ring_destroy(struct vfurt_msg_ring *r)
{
	if (!r)
		return;
	free(r->slots);
	free(r);
}

/*
 * ck publishes multi-producer slots in ticket order: a producer that has
 * claimed a slot waits until every earlier claim is published. ck's own wait
 * is a pure pause loop, so on an oversubscribed CPU a producer descheduled
 * between claim and publish leaves the others spinning out whole time slices
 * (measured: ~200 messages/s with 4 producers on 2 loaded cores). Wait for
 * our turn here instead, yielding after a short spin; ck's commit then
 * finds p_tail == ticket at once (only the holder of `ticket` advances it).
 */
#define RING_TURN_SPINS 128

RING_NO_TSAN static void wait_turn(const struct ck_ring *ring, unsigned int ticket)
{
	unsigned int spins = 0;

	while (ck_pr_load_uint(&ring->p_tail) != ticket) {
		if (++spins < RING_TURN_SPINS)
			ck_pr_stall();
		else
			sched_yield();
	}
}

RING_NO_TSAN bool vfr_ring_enqueue_mpsc(struct vfurt_msg_ring *r, const struct vfurt_ring_msg *m)
{
	struct vfurt_ring_msg *slot;
	unsigned int ticket;

	/* Claims a slot (CAS on p_head); NULL when the ring is full. */
	slot = ck_ring_enqueue_reserve_mpsc_vfurt_ring_msg(&r->ring, r->slots, &ticket);
	if (!slot)
		return false;
	*slot = *m;
	/* Before the publish below, so that a consumer that sees this message
	 * has acquired everything the sender wrote before sending it. */
	ring_tsan_release(r);
	wait_turn(&r->ring, ticket);
	ck_ring_enqueue_commit_mpsc(&r->ring, ticket);
	return true;
}

RING_NO_TSAN bool vfr_ring_dequeue_sc(struct vfurt_msg_ring *r, struct vfurt_ring_msg *m)
{
	if (!ck_ring_dequeue_mpsc_vfurt_ring_msg(&r->ring, r->slots, m))
		return false;
	ring_tsan_acquire(r);
	return true;
}

uint32_t vfr_ring_count(const struct vfurt_msg_ring *r)
{
	return ck_ring_size(&r->ring);
}
