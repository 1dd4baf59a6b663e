/* Minimal device for the round-trip benchmarks: BAR0 of 4 KiB of plain registers. */
#ifndef VFURT_BENCH_BENCHDEV_H
#define VFURT_BENCH_BENCHDEV_H

#include <vfurt/device.h>

#define BENCHDEV_BAR0_SIZE 4096u

/*
 * Create the device: BAR0 (RW, trapped) whose access callback stores writes
 * in a register array and returns them on reads; nothing else (no config
 * space emulation, no irqs, no mmap). The device frees its state when
 * destroyed. NULL with errno on failure.
 */
struct vfurt_dev *benchdev_create(const char *name);

/* Accesses the callback served (read by the benchmark after a run). */
uint64_t benchdev_accesses(struct vfurt_dev *dev);

#endif /* VFURT_BENCH_BENCHDEV_H */
