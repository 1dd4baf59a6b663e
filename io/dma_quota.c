/* Process-wide quota of fd-backed DMA windows: reservations per device, one shared room. */
#include "dma_quota.h"

#include <vfurt/abi.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * One counter does it: committed = the sum of every joined device's
 * reservation plus the windows each maps beyond its own reservation. A
 * window beyond a reservation needs committed + 1 <= limit; a window within
 * it is already counted. So whatever the other clients do, a device always
 * gets its reserved windows, and together they never exceed the limit.
 */
struct vfurt_dma_quota {
	uint32_t limit;
	uint32_t min_per_client;
	_Atomic uint32_t committed;
	_Atomic uint32_t mapped;
	_Atomic uint32_t devices;
	_Atomic uint64_t refused;
};

/* Half of what the kernel allows the process: the rest stays for the
 * process's own mappings (libraries, heaps, stacks, io_uring rings). */
static uint32_t default_limit(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	unsigned long long v = 0;

	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	if (v < 2)
		return VFURT_DMA_QUOTA_FALLBACK_MAX;
	return v / 2 > UINT32_MAX ? UINT32_MAX : (uint32_t)(v / 2);
}

struct vfurt_dma_quota *vfurt_dma_quota_create(uint32_t process_max, uint32_t min_per_client)
{
	struct vfurt_dma_quota *q = calloc(1, sizeof(*q));

	if (!q) {
		errno = ENOMEM;
		return NULL;
	}
	q->limit = process_max ? process_max : default_limit();
	q->min_per_client = min_per_client ? min_per_client : VFURT_DMA_QUOTA_DEFAULT_MIN;
	return q;
}

void vfurt_dma_quota_destroy(struct vfurt_dma_quota *q)
{
	free(q);
}

int vfurt_dma_quota_get_stats(const struct vfurt_dma_quota *q, struct vfurt_dma_quota_stats *st)
{
	struct vfurt_dma_quota *m = (struct vfurt_dma_quota *)q;
	struct vfurt_dma_quota_stats s = { .stats_size = sizeof(s) };

	if (!q)
		return -EINVAL;
	s.limit = q->limit;
	s.min_per_client = q->min_per_client;
	s.committed = atomic_load_explicit(&m->committed, memory_order_relaxed);
	s.mapped = atomic_load_explicit(&m->mapped, memory_order_relaxed);
	s.devices = atomic_load_explicit(&m->devices, memory_order_relaxed);
	s.refused = atomic_load_explicit(&m->refused, memory_order_relaxed);
	return vfurt_abi_copy_out(st, &s, sizeof(s),
				  VFURT_ABI_SIZE(struct vfurt_dma_quota_stats, refused));
}

uint32_t vfr_dma_quota_join(struct vfurt_dma_quota *q, struct vfurt_dma_quota_acct *a)
{
	uint32_t c = atomic_load_explicit(&q->committed, memory_order_relaxed);
	uint32_t want;

	do {
		want = q->limit - c < q->min_per_client ? q->limit - c : q->min_per_client;
	} while (!atomic_compare_exchange_weak_explicit(&q->committed, &c, c + want,
							memory_order_relaxed,
							memory_order_relaxed));
	a->q = q;
	a->reserved = want;
	a->used = 0;
	atomic_fetch_add_explicit(&q->devices, 1, memory_order_relaxed);
	return want;
}

void vfr_dma_quota_leave(struct vfurt_dma_quota_acct *a)
{
	if (!a->q)
		return;
	/* windows still counted (a caller bug) go back with the reservation */
	while (a->used)
		vfr_dma_quota_give(a);
	atomic_fetch_sub_explicit(&a->q->committed, a->reserved, memory_order_relaxed);
	atomic_fetch_sub_explicit(&a->q->devices, 1, memory_order_relaxed);
	a->q = NULL;
	a->reserved = 0;
}

int vfr_dma_quota_take(struct vfurt_dma_quota_acct *a)
{
	struct vfurt_dma_quota *q = a->q;
	uint32_t c;

	if (!q)
		return 0;
	if (a->used >= a->reserved) {
		c = atomic_load_explicit(&q->committed, memory_order_relaxed);
		do {
			if (c >= q->limit) {
				atomic_fetch_add_explicit(&q->refused, 1, memory_order_relaxed);
				return -ENOMEM;
			}
		} while (!atomic_compare_exchange_weak_explicit(&q->committed, &c, c + 1,
								memory_order_relaxed,
								memory_order_relaxed));
	}
	a->used++;
	atomic_fetch_add_explicit(&q->mapped, 1, memory_order_relaxed);
	return 0;
}

void vfr_dma_quota_give(struct vfurt_dma_quota_acct *a)
{
	struct vfurt_dma_quota *q = a->q;

	if (!q || !a->used)
		return;
	a->used--;
	if (a->used >= a->reserved)
		atomic_fetch_sub_explicit(&q->committed, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&q->mapped, 1, memory_order_relaxed);
}
