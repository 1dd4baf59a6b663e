/* Bounded multi-producer single-consumer message ring over Concurrency Kit's ck_ring. */
#ifndef VFURT_RUNTIME_RING_H
#define VFURT_RUNTIME_RING_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A ring of (fn, arg) messages. Any thread may enqueue (MPSC); only the
 * owning worker dequeues. Size is a power of two >= 4; one slot stays empty
 * (ck_ring semantics), so capacity is size - 1.
 */
struct vfurt_msg_ring;

struct vfurt_ring_msg {
	void (*fn)(void *arg);
	void *arg;
};

/* Create a ring of `size` slots (power of two). NULL with errno. */
struct vfurt_msg_ring *vfr_ring_create(uint32_t size);
void vfr_ring_destroy(struct vfurt_msg_ring *r);

/* Enqueue from any thread. Returns true, or false when full. */
bool vfr_ring_enqueue_mpsc(struct vfurt_msg_ring *r, const struct vfurt_ring_msg *m);

/* Dequeue on the owner thread. Returns true with *m filled, false if empty. */
bool vfr_ring_dequeue_sc(struct vfurt_msg_ring *r, struct vfurt_ring_msg *m);

/* Approximate number of queued messages (any thread). */
uint32_t vfr_ring_count(const struct vfurt_msg_ring *r);

#endif /* VFURT_RUNTIME_RING_H */
