/* Guest memory faults: a SIGBUS on a DMA window whose backing file shrank is contained, internal to io/. */
#ifndef VFURT_IO_FAULT_H
#define VFURT_IO_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A client can DMA-map a memfd (or a tmpfs/hugetlbfs file) that is not
 * sealed against shrinking and truncate it afterwards: the next touch of the
 * lost pages raises SIGBUS, which would kill every device of every VM in the
 * process. The guard turns that into a per-client event instead:
 *
 *  - every fd-backed window is registered here (fault_register) after its
 *    mmap and unregistered (fault_unregister) before its munmap;
 *  - the SIGBUS handler looks si_addr up among the registered ranges
 *    (lock-free, async-signal-safe), maps anonymous memory over the whole
 *    window with MAP_FIXED so the faulting access completes harmlessly, and
 *    marks the window's domain (one per device) as lost;
 *  - devices compare vfurt_fault_domain_count() before and after touching
 *    guest memory and fail that I/O; the engine disconnects the client.
 *
 * A fault outside every window is not ours: the previous handler runs (or
 * the default action, which kills the process as before).
 */

/* What one device knows about its client's lost windows. Written by the
 * signal handler (any thread), read by the device and the engine. */
struct vfurt_fault_domain {
	_Atomic uint64_t faults;    /* windows lost, ever: devices compare snapshots */
	_Atomic uint64_t lost_iova; /* iova + 1 of the first window lost since clear, 0: none */
	_Atomic bool claimed;       /* an engine thread is disconnecting the client */
};

/* Number of registrable windows, process wide (sealed memfds need none). */
#define VFURT_FAULT_SLOTS 4096u

/*
 * Install the process's SIGBUS handler (refcounted: the first call installs
 * it, keeping the previous action to chain to; a later call installs it
 * again if somebody replaced it meanwhile, chaining to theirs). Called by
 * vfurt_server_create and vfurt_runtime_create. Any thread, not from a
 * signal handler. Returns 0 or the sigaction errno (negative).
 */
int vfr_fault_guard_acquire(void);

/* Drop one reference; the last restores the previous SIGBUS action. */
void vfr_fault_guard_release(void);

/*
 * Register [base, base+len) (page aligned, one mmap of a window at `iova`
 * with mmap protection `prot`) for domain dom, which must outlive the
 * registration. Returns 0, -ENOSPC (every slot in use) or -EINVAL.
 * Any thread, not from a signal handler.
 */
int vfr_fault_register(struct vfurt_fault_domain *dom, void *base, size_t len,
			 uint64_t iova, int prot);

/* Forget the range starting at base (no-op if not registered). Call before
 * the munmap, when no thread touches the window any more. */
void vfr_fault_unregister(struct vfurt_fault_domain *dom, void *base);

/* true when fd is a memfd sealed with F_SEAL_SHRINK: it cannot lose pages. */
bool vfr_fault_fd_sealed(int fd);

/* Windows of dom lost so far (monotonic; acquire load). */
static inline uint64_t vfurt_fault_domain_count(const struct vfurt_fault_domain *dom)
{
	return atomic_load_explicit(&((struct vfurt_fault_domain *)dom)->faults,
				    memory_order_acquire);
}

/* The first lost window's iova since the last clear, if any. */
bool vfr_fault_domain_lost(const struct vfurt_fault_domain *dom, uint64_t *iova);

/* Report a loss found without a signal (a kernel copy failed with EFAULT). */
void vfr_fault_domain_mark(struct vfurt_fault_domain *dom, uint64_t iova);

/* true for exactly one caller per loss: that caller arranges the disconnect. */
bool vfr_fault_domain_claim(struct vfurt_fault_domain *dom);

/* The client went away with its windows: forget the pending loss. */
void vfr_fault_domain_clear(struct vfurt_fault_domain *dom);

#endif /* VFURT_IO_FAULT_H */
