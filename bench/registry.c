/* The explicit list of benchmark suites and the result pairs the run summary compares. */
#include "suites.h"

/* Cheapest first, sockets last; the machine's socket floor right before the
 * vfio-user round trips it bounds. */
const struct vfurt_bench_suite vfurt_bench_suites[] = {
	{ "ring", bench_ring_cases },
	{ "poller", bench_poller_cases },
	{ "irq", bench_irq_cases },
	{ "dma", bench_dma_cases },
	{ "prp", bench_prp_cases },
	{ "decode", bench_decode_cases },
	{ "floor", bench_floor_cases },
	{ "region", bench_region_cases },
};
const size_t vfurt_bench_nsuites = sizeof(vfurt_bench_suites) / sizeof(vfurt_bench_suites[0]);

const struct vfurt_bench_compare vfurt_bench_compares[] = {
	{ "irq flush, 1 eventfd: direct write() vs io_uring (one submit)",
	  "irq/direct_write/fds:1", "irq/uring_submit/fds:1" },
	{ "irq flush, 8 distinct eventfds: direct write() vs io_uring (one submit)",
	  "irq/direct_write/fds:8", "irq/uring_submit/fds:8" },
	{ "irq flush, 32 distinct eventfds: direct write() vs io_uring (one submit)",
	  "irq/direct_write/fds:32", "irq/uring_submit/fds:32" },
	{ "irq flush, 32 distinct eventfds: direct write() vs io_uring (submit and wait)",
	  "irq/direct_write/fds:32", "irq/uring_submit_wait/fds:32" },
	{ "32 triggers of one vector: a write per trigger vs coalesced into one write",
	  "irq/direct_write/fds:1", "irq/coalesced_same_fd/triggers:32" },
	{ "NVMe PRP walk, 128 KiB (PRP1 + 31-entry list, scattered pages): 1 vs 64 DMA windows",
	  "prp/128K_list/windows:1", "prp/128K_list/windows:64" },
	{ "REGION_WRITE round trip: caller-driven server (busy) vs runtime (busy)",
	  "region/server_busy/write4", "region/rt_busy/write4" },
	{ "REGION_WRITE round trip: caller-driven server (blocking) vs runtime (adaptive)",
	  "region/server_block/write4", "region/rt_adaptive/write4" },
	{ "REGION_WRITE, busy-polling client: caller-driven server (busy) vs runtime (busy)",
	  "region/server_busy/write4_busy_client", "region/rt_busy/write4_busy_client" },
	{ "REGION_READ round trip: caller-driven server (busy) vs runtime (busy)",
	  "region/server_busy/read4", "region/rt_busy/read4" },
	{ "posted REGION_WRITE throughput: caller-driven server (busy) vs runtime (busy)",
	  "region/server_busy/posted_write4", "region/rt_busy/posted_write4" },
	{ "waking the worker: write after 1 ms idle, runtime busy vs adaptive (asleep)",
	  "region/rt_busy/write4_after_idle_1ms", "region/rt_adaptive/write4_after_idle_1ms" },
};
const size_t vfurt_bench_ncompares =
	sizeof(vfurt_bench_compares) / sizeof(vfurt_bench_compares[0]);
