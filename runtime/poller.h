/* Poller sets: active pollers and timed pollers of one worker (single-threaded). */
#ifndef VFURT_RUNTIME_POLLER_H
#define VFURT_RUNTIME_POLLER_H

#include <stdbool.h>
#include <stdint.h>

#include <vfurt/runtime.h>

/*
 * A poller set belongs to one worker and is only touched by its thread.
 * Active pollers (period 0) run on every pass in registration order. Timed
 * pollers run when due; they are kept ordered by next deadline (a binary
 * min-heap or red-black tree) with the earliest deadline cached so that a pass
 * with nothing due costs one comparison. A timed poller that runs is
 * rescheduled to max(deadline + period, now) so that a late pass does not
 * cause a burst of catch-up runs.
 *
 * Unregistering is safe at any time on the owning thread, including from
 * inside any poller callback of the same set (its own or another's): the
 * poller is marked dead, never runs again, and is freed when the current run
 * finishes (or at once when no run is in progress).
 */
struct vfurt_poller_set;

struct vfurt_poller_set *vfr_poller_set_create(void);
/* Frees every poller still registered. */
void vfr_poller_set_destroy(struct vfurt_poller_set *ps);

/* Register; now_ns is the current clock (first deadline = now + period).
 * w is stored for vfurt_poller_unregister. NULL with errno on failure. */
struct vfurt_poller *vfr_poller_set_add(struct vfurt_poller_set *ps, struct vfurt_worker *w,
					  vfurt_poller_fn fn, void *arg, uint64_t period_us,
					  uint64_t now_ns);

/* Unregister (see above). */
void vfr_poller_set_remove(struct vfurt_poller_set *ps, struct vfurt_poller *p);

/* The set a poller belongs to (for vfurt_poller_unregister). */
struct vfurt_poller_set *vfr_poller_owner(const struct vfurt_poller *p);

/* Run every active poller once. Returns the number that reported busy. */
int vfr_poller_set_run_active(struct vfurt_poller_set *ps);

/* Run every timed poller whose deadline <= now_ns. Returns the number that
 * reported busy. */
int vfr_poller_set_run_timed(struct vfurt_poller_set *ps, uint64_t now_ns);

/* Set p's arm callback (vfurt_poller_set_arm). */
void vfr_poller_arm_set(struct vfurt_poller *p, vfurt_poller_arm_fn fn);

/*
 * arm=true: call every live active poller's arm callback with true and
 * return the strongest answer (VFURT_ARM_PENDING > VFURT_ARM_POLL >
 * VFURT_ARM_DONE; DONE when none has one). arm=false: call them with false;
 * returns VFURT_ARM_DONE.
 */
int vfr_poller_set_arm_all(struct vfurt_poller_set *ps, bool arm);

/* Earliest timed deadline, or UINT64_MAX when there is none. O(1). */
uint64_t vfr_poller_set_next_deadline(const struct vfurt_poller_set *ps);

/* Counts of registered (live) active and timed pollers. */
uint32_t vfr_poller_set_active_count(const struct vfurt_poller_set *ps);
uint32_t vfr_poller_set_timed_count(const struct vfurt_poller_set *ps);

#endif /* VFURT_RUNTIME_POLLER_H */
