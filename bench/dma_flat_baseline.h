/* The DMA table before the B+ tree (a sorted array copied per map), kept as the benchmark's baseline. */
#ifndef VFURT_BENCH_DMA_FLAT_BASELINE_H
#define VFURT_BENCH_DMA_FLAT_BASELINE_H

#include <stdint.h>

#include "io/dma.h"

/*
 * io/dma.c up to the commit that replaced it, minus the fault guard and
 * quota hooks: each add copies the whole sorted snapshot (O(n)), lookups
 * binary-search it. Same contracts as the vfurt_dma_table_* calls of the
 * same names; for bench/bench_dma.c only.
 */
struct flat_dma_table;

struct flat_dma_table *flat_dma_table_create(uint32_t max_maps, uint64_t pgsize);
void flat_dma_table_destroy(struct flat_dma_table *t);
int flat_dma_table_add(struct flat_dma_table *t, uint64_t iova, uint64_t size, int fd,
		       uint64_t fd_offset, uint32_t prot, struct vfurt_dma_region *out);
int flat_dma_table_remove(struct flat_dma_table *t, uint64_t iova, uint64_t size);
int flat_dma_table_to_sg(const struct flat_dma_table *t, uint64_t iova, uint64_t len,
			 uint32_t prot, struct vfurt_sg *sg, int max_sg);
void *flat_dma_table_ptr(const struct flat_dma_table *t, uint64_t iova, uint64_t len,
			 uint32_t prot);

#endif /* VFURT_BENCH_DMA_FLAT_BASELINE_H */
