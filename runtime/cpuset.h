/* CPU lists ("0-3,6,8-9"): parsing and validation against the machine. */
#ifndef VFURT_RUNTIME_CPUSET_H
#define VFURT_RUNTIME_CPUSET_H

#include <stddef.h>

#define VFURT_MAX_CPUS 1024

/*
 * Parse a CPU list: comma-separated CPUs and inclusive ranges "a-b" (a <= b),
 * decimal, each < VFURT_MAX_CPUS, no duplicates, no empty items, no spaces.
 * Writes the CPUs in the order given to cpus[0..*n) (max entries).
 * Returns 0 or -EINVAL with a one-line reason in err.
 */
int vfr_cpulist_parse(const char *s, int *cpus, size_t max, size_t *n, char *err,
			size_t errlen);

/*
 * Check every CPU exists in the hwloc topology (and is online) and is in the
 * calling process's affinity mask. Returns 0, -EINVAL with a reason naming
 * the first bad CPU and the CPUs that are available ("CPU 7 does not exist
 * on this machine (available: 0-1)"), or -ENOMEM / -EIO when the
 * topology cannot be loaded.
 */
int vfr_cpulist_validate(const int *cpus, size_t n, char *err, size_t errlen);

/*
 * Keep the calling thread off cpus[0..n) (the workers' CPUs): bind it to the
 * rest of its affinity mask, so that control-plane work (building devices,
 * the control socket) does not preempt a polling worker. desc (may be NULL)
 * gets the CPU list it now runs on. Returns 0, -ENOENT (no CPU is left: the
 * mask is unchanged), -ENOMEM, -EIO (no topology), or the bind's errno.
 */
int vfr_cpu_bind_away(const int *cpus, size_t n, char *desc, size_t desclen);

/* Pin the calling thread to CPU cpu (hwloc). Returns 0, -EINVAL, -ENOMEM,
 * -EIO (no topology) or the bind's errno. */
int vfr_cpu_pin_self(int cpu);

#endif /* VFURT_RUNTIME_CPUSET_H */
