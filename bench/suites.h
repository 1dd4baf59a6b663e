/* Case tables of the benchmark source files (each ended by a NULL name), listed by registry.c. */
#ifndef VFURT_BENCH_SUITES_H
#define VFURT_BENCH_SUITES_H

#include "shim.h"

extern const struct vfurt_bench_case bench_ring_cases[];
extern const struct vfurt_bench_case bench_poller_cases[];
extern const struct vfurt_bench_case bench_irq_cases[];
extern const struct vfurt_bench_case bench_region_cases[];
extern const struct vfurt_bench_case bench_dma_cases[];
extern const struct vfurt_bench_case bench_prp_cases[];
extern const struct vfurt_bench_case bench_decode_cases[];
extern const struct vfurt_bench_case bench_floor_cases[];

#endif /* VFURT_BENCH_SUITES_H */
