/* C interface to google-benchmark: C benchmark cases, their table, and timing helpers. */
#ifndef VFURT_BENCH_SHIM_H
#define VFURT_BENCH_SHIM_H

/*
 * Benchmark cases are plain C functions. shim.cc (the only C++ file)
 * registers them with google-benchmark from the explicit table in
 * registry.c (no constructors), runs them, and adds two counters to every
 * result: "cycles_per_op" (TSC cycles, rdtsc on x86_64) and "ns_per_op"
 * (wall clock). One benchmark iteration is one operation: cases that batch
 * operations advance the loop with vfurt_bench_keep_running_batch(st, n),
 * so the per-iteration time google-benchmark prints is the per-op time.
 * Every case is timed in real (wall clock) time, because several of them
 * block on another thread.
 *
 * Cases measure; they never assert a timing. A case that cannot run here
 * (no second CPU, no io_uring) calls vfurt_bench_skip() and returns.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Wraps one benchmark::State (one run of a case). Opaque to C. */
struct vfurt_bench_state;

/*
 * Advance the measured loop by one operation / by n operations. Returns
 * false when the run is over (then leave the loop and return). The timer
 * and cycle counter start at the first call.
 */
bool vfurt_bench_keep_running(struct vfurt_bench_state *st);
bool vfurt_bench_keep_running_batch(struct vfurt_bench_state *st, uint64_t n);

/* Operations counted so far in this run (after the loop: all of them). */
uint64_t vfurt_bench_iterations(const struct vfurt_bench_state *st);

/* The argument this run was registered with (see vfurt_bench_case.args). */
int64_t vfurt_bench_arg(const struct vfurt_bench_state *st);

/* The fixture returned by the case's setup (NULL without setup). */
void *vfurt_bench_fixture(const struct vfurt_bench_state *st);

/* Items processed in this run, reported as items_per_second. */
void vfurt_bench_set_items(struct vfurt_bench_state *st, int64_t n);

/* A user counter: plain value, or a rate (value / second of real time). */
void vfurt_bench_counter(struct vfurt_bench_state *st, const char *name, double v);
void vfurt_bench_counter_rate(struct vfurt_bench_state *st, const char *name, double v);

/* A label printed next to the result (copied). */
void vfurt_bench_label(struct vfurt_bench_state *st, const char *label);

/* Report that this case cannot run here, with a reason (copied). */
void vfurt_bench_skip(struct vfurt_bench_state *st, const char *why);

/* Stop/restart the timer and cycle counter around untimed work (costly:
 * not inside tight loops). */
void vfurt_bench_pause(struct vfurt_bench_state *st);
void vfurt_bench_resume(struct vfurt_bench_state *st);

/* Timestamp counter (rdtsc on x86_64; CLOCK_MONOTONIC ns elsewhere). */
uint64_t vfurt_bench_cycles(void);

/* Keep the compiler from discarding a computed value. */
void vfurt_bench_sink(const void *p);

/* Spin-wait hint for polling loops. */
static inline void vfurt_bench_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Pin the calling thread to one CPU. Returns 0 or a negative errno. */
int vfurt_bench_pin_self(int cpu);
/* Number of CPUs the process may run on. */
int vfurt_bench_cpus_allowed(void);

typedef void (*vfurt_bench_fn)(struct vfurt_bench_state *st);

/*
 * Fixture for a case: built before its first run with a given argument and
 * kept while consecutive runs (and consecutive cases naming the same setup
 * function and argument) reuse it, then torn down. Returns NULL with
 * *why set (static string) when the case cannot run here.
 */
typedef void *(*vfurt_bench_setup_fn)(int64_t arg, const char **why);
typedef void (*vfurt_bench_teardown_fn)(void *fixture);

#define VFURT_BENCH_MAX_ARGS 8

/* One benchmark case. Every value in args is a separate result named
 * "name/<arg_name>:<value>"; nargs 0 runs once with argument 0. */
struct vfurt_bench_case {
	const char *name;
	vfurt_bench_fn fn;
	vfurt_bench_setup_fn setup;       /* may be NULL */
	vfurt_bench_teardown_fn teardown; /* may be NULL */
	const char *arg_name;
	int64_t args[VFURT_BENCH_MAX_ARGS];
	size_t nargs;
};

/* A result pair the run summary compares (lower ns/op wins). */
struct vfurt_bench_compare {
	const char *question;
	const char *a; /* full result names, e.g. "irq/direct_write/fds:32" */
	const char *b;
};

/* The case table of one bench source file, ended by an entry with name
 * NULL; registry.c lists them all. */
struct vfurt_bench_suite {
	const char *name;
	const struct vfurt_bench_case *cases;
};

extern const struct vfurt_bench_suite vfurt_bench_suites[];
extern const size_t vfurt_bench_nsuites;
extern const struct vfurt_bench_compare vfurt_bench_compares[];
extern const size_t vfurt_bench_ncompares;

#ifdef __cplusplus
}
#endif

#endif /* VFURT_BENCH_SHIM_H */
