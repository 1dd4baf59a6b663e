/* Process-wide quota of fd-backed DMA windows (vm.max_map_count), internal side. */
#ifndef VFURT_IO_DMA_QUOTA_H
#define VFURT_IO_DMA_QUOTA_H

#include <stdint.h>

#include <vfurt/engine.h>

#define VFURT_DMA_QUOTA_DEFAULT_MIN 64u
#define VFURT_DMA_QUOTA_FALLBACK_MAX 32765u /* half of the kernel's default 65,530 */

/*
 * One device's share of a quota. used is written by the thread that
 * mutates the device's DMA table only; the quota's counters are atomic, so
 * devices on different threads share one quota without a lock.
 */
struct vfurt_dma_quota_acct {
	struct vfurt_dma_quota *q; /* NULL: not joined, nothing is counted */
	uint32_t reserved;         /* windows set aside for this device */
	uint32_t used;             /* fd-backed windows it holds */
};

/*
 * Join q with a (not joined): reserve up to min_per_client windows for it,
 * fewer when the quota has no more unreserved room. Returns the number
 * reserved (0..min_per_client). Any thread.
 */
uint32_t vfr_dma_quota_join(struct vfurt_dma_quota *q, struct vfurt_dma_quota_acct *a);

/* Leave: release the reservation. The device must hold no window (used 0).
 * Not joined: nothing happens. */
void vfr_dma_quota_leave(struct vfurt_dma_quota_acct *a);

/* Count one more fd-backed window: from the reservation while it lasts,
 * then from the shared room. Returns 0, or -ENOMEM when the quota is
 * exhausted (counted as refused). Not joined: 0. */
int vfr_dma_quota_take(struct vfurt_dma_quota_acct *a);

/* Count one window less (it was unmapped). */
void vfr_dma_quota_give(struct vfurt_dma_quota_acct *a);

#endif /* VFURT_IO_DMA_QUOTA_H */
