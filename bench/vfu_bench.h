/* vfu-bench internals: configuration, per-job state and the helpers shared by the load generator's files. */
#ifndef VFURT_BENCH_VFU_BENCH_H
#define VFURT_BENCH_VFU_BENCH_H

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Log-linear histogram of nanosecond values: exact below 128, then 128
 * linear sub-buckets per power of two, so a bucket's midpoint is within
 * 1/256 (0.4 %) of any value in it. 7424 buckets cover the whole uint64_t.
 */
#define VB_HIST_SUB_BITS 7u
#define VB_HIST_SUB (1u << VB_HIST_SUB_BITS)
#define VB_HIST_BUCKETS ((64u - VB_HIST_SUB_BITS + 1u) * VB_HIST_SUB)

struct vb_hist {
	uint64_t n;
	uint64_t sum_ns;
	double sum_sq;   /* for the standard deviation */
	uint64_t min_ns;
	uint64_t max_ns;
	uint64_t bucket[VB_HIST_BUCKETS];
};

/* Empty the histogram. */
void vb_hist_reset(struct vb_hist *h);
/* Count one value. Hot path: no allocation, no branches beyond the bucket choice. */
void vb_hist_add(struct vb_hist *h, uint64_t ns);
/* Add every count of src into dst. */
void vb_hist_merge(struct vb_hist *dst, const struct vb_hist *src);
/* The value at percentile p (0..100], bucket midpoint clamped to [min, max]; 0 when empty. */
uint64_t vb_hist_percentile(const struct vb_hist *h, double p);
double vb_hist_mean(const struct vb_hist *h);
double vb_hist_stddev(const struct vb_hist *h);

/*
 * Write an SVG chart of the cumulative latency distribution to path: log-scale
 * latency on x, 0-100 % on y, one line per non-empty histogram (read, write;
 * either may be NULL), p50/p99/p99.9 marked, title as the heading.
 * 0 or a negative errno.
 */
int vb_plot_svg(const char *path, const struct vb_hist *read, const struct vb_hist *write,
		const char *title);

/* ---- configuration and state ---------------------------------------------- */

/* ZEROES: Write Zeroes of bs; TRIM: Dataset Management Deallocate of one
 * range of bs (both counted as writes). */
enum vb_rw { VB_RW_READ, VB_RW_WRITE, VB_RW_RANDREAD, VB_RW_RANDWRITE, VB_RW_RANDRW,
	     VB_RW_ZEROES, VB_RW_TRIM };
enum { VB_DIR_READ = 0, VB_DIR_WRITE = 1 };

#define VB_MAX_JOBS 64u
#define VB_LINE 64u /* cache line: what threads write is kept on lines of its own */

/* --doorbell: how the guest side rings. */
enum vb_doorbell {
	VB_DB_MMAP,      /* store into the mmapped BAR page */
	VB_DB_MESSAGE,   /* REGION_WRITE per doorbell */
	VB_DB_IOEVENTFD, /* shadow doorbells + the controller's ioeventfds */
};

struct vb_cfg {
	const char *socket;
	bool self_serve;
	const char *server_cpus;
	pid_t server_pid;  /* --server-pid (with --socket); 0 = none */
	const char *backend;
	uint64_t size;
	uint32_t block_size;
	uint32_t nsid;
	enum vb_rw rw;
	uint32_t rwmixread;
	uint64_t bs;
	uint32_t iodepth;
	uint32_t jobs;
	uint64_t runtime_ms;
	uint64_t ramp_ms;
	const char *cpus;
	enum vb_doorbell doorbell;
	bool irq;
	bool irq_unbatched; /* --irq-batch=off (self-serve) */
	bool server_adaptive; /* --server-poll=adaptive (self-serve) */
	uint32_t thinktime_us; /* --thinktime: stall after completions (fio's) */
	bool thinktime_random; /* --thinktime-random: uniform in [0, 2 x thinktime) */
	bool direct;       /* --direct: file backend with O_DIRECT (self-serve) */
	bool json;
	bool no_floor;     /* --no-floor: skip the core-to-core measurement */
	const char *plot;  /* --plot=FILE.svg */
	const char *probe; /* --probe=SOCKET: a second device whose answers are timed */
	uint32_t probe_interval_us; /* --probe-interval */
	bool zeroes_deac;  /* --deac: Write Zeroes with the Deallocate bit */
	const char *gaps;  /* --gaps=FILE: every long gap between completions */
	uint32_t gap_min_us; /* --gap-min: what counts as long (default 1000) */
};

struct vb_probe;

/* CPU time of a thread, or summed over a set of threads, at one instant. */
struct vb_cpu_sample {
	uint64_t wall_ns;  /* CLOCK_MONOTONIC when taken */
	uint64_t usr_ns;
	uint64_t sys_ns;
	uint64_t ctx;      /* voluntary + involuntary context switches (threads only) */
	uint32_t threads;  /* how many threads were summed */
	bool ok;
};

/* CPU use between two samples, in percent of one CPU. */
struct vb_cpu_use {
	double usr_pct;
	double sys_pct;
	uint64_t ctx;
	bool ok;
};

struct vb_bench;

/* A stretch of time (CLOCK_MONOTONIC) without a completion on a queue pair. */
struct vb_gap {
	uint64_t from_ns; /* the completion before */
	uint64_t to_ns;   /* the next one */
};

/* Reads or writes data (not zeroes or trim). */
static inline bool vb_rw_moves_data(const struct vb_cfg *c)
{
	return c->rw != VB_RW_ZEROES && c->rw != VB_RW_TRIM;
}

/* "mmap", "message" or "ioeventfd". */
const char *vb_doorbell_name(const struct vb_cfg *c);
struct nvme_host;
struct vfurt_runtime;

/*
 * One job: an I/O queue pair driven by its own client thread. Fields up to
 * `hist` are set up by the main thread before the job thread starts and then
 * belong to the job thread alone, except the published counters (relaxed
 * atomics the main thread sums for the progress line) and the results,
 * which the main thread reads after joining.
 */
struct vb_job {
	struct vb_bench *b;
	uint32_t idx;
	uint16_t qid;
	uint32_t entries;
	int vector;
	int cpu;            /* pinned to this CPU, -1 = unpinned */
	/* by CID (< entries): submit time, direction, buffer index */
	uint64_t *t0;
	uint8_t *dir;
	uint32_t *buf_of;
	uint16_t *inflight; /* CIDs in flight, unordered */
	uint32_t n_inflight;
	uint64_t *dptr;     /* per buffer: PRP1, PRP2 built at setup */
	uint32_t *free_buf; /* stack of free buffer indexes */
	uint32_t n_free;
	uint64_t rng;
	uint64_t seq_next;  /* sequential: next I/O unit */
	uint64_t submitted_ios;
	uint64_t done_ios[2];   /* all completions, ramp included */
	uint64_t ios[2];        /* measured completions */
	uint64_t errors;
	uint64_t sq_full;       /* refills refused because the SQ looked full */
	uint64_t irq_wakeups;   /* --completion=irq: sleeps ended by an interrupt */
	/* time between completions (vb_gap_note): how long the device stalled */
	uint64_t last_done_ns;  /* the last completion seen, 0 = none yet */
	uint64_t max_gap_ns;    /* the longest gap, and when it ended */
	uint64_t max_gap_end_ns;
	struct vb_gap *gaps;    /* --gaps: those >= gap_min_ns, up to cap_gaps */
	uint32_t n_gaps;
	uint32_t cap_gaps;
	uint64_t lost_gaps;     /* long gaps beyond cap_gaps */
	uint64_t gap_min_ns;
	int rc;                 /* the thread's result */
	pthread_t thread;
	bool started;
	struct vb_cpu_sample cpu0, cpu1; /* the thread's CPU time at ramp end and end */
	/* done_ios as published for the progress line (relaxed atomics) */
	_Alignas(VB_LINE) uint64_t pub_done[2];
	_Alignas(VB_LINE) struct vb_hist hist[2];
};

/* Server CPU use over the measured interval (--self-serve or --server-pid). */
struct vb_server_cpu {
	pid_t pid;           /* 0: not measured */
	bool whole_process;  /* no vfu-rt-w* threads found: all of pid's threads */
	struct vb_cpu_sample s0, s1;
	struct vb_cpu_use use;
};

struct vb_bench {
	struct vb_cfg c;
	struct nvme_host *h;
	struct vfurt_runtime *rt;
	char sock_path[108];
	uint32_t lba_size;
	uint64_t nlb_per_io;
	uint64_t units;          /* I/O units in the namespace */
	struct vb_job *jobs;     /* c.jobs of them, VB_LINE aligned */
	cpu_set_t client_cpus;   /* --cpus */
	bool pinned;
	/* --doorbell=message: the client library takes one thread at a time */
	pthread_mutex_t db_lock;
	/* run control: written by the main thread before the jobs start, except
	 * end_ns (lowered on a signal) and stop (relaxed / release atomics) */
	pthread_mutex_t go_lock;
	pthread_cond_t go_cond;
	bool go;
	uint64_t start_ns;
	uint64_t ramp_end_ns;
	_Alignas(VB_LINE) uint64_t end_ns;
	int stop;
	/* results (on lines of their own: the jobs poll end_ns and stop) */
	_Alignas(VB_LINE) uint64_t measured_ns;
	double c2c_rtt_ns;       /* < 0: not measured, c2c_note says why */
	const char *c2c_note;
	int c2c_cpu[2];
	struct vb_server_cpu srv;
	struct vb_probe *probe;  /* --probe, NULL without */
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t vb_now_ns(void);
/* calloc for data written by one thread: whole cache lines. NULL on failure. */
void *vb_calloc_lines(size_t n, size_t size);

/* ---- options (vfu_bench_opts.c) ------------------------------------------- */

/*
 * Parse the command line into *c (defaults for what is not given). --help
 * prints the usage and exits 0; a bad option or value is reported on stderr
 * with the usage. 0 or -EINVAL.
 */
int vb_parse_args(int argc, char **argv, struct vb_cfg *c);
/* "0-3,6" into *set. 0, or -EINVAL for a malformed or empty list. */
int vb_parse_cpus(const char *s, cpu_set_t *set);
/* --rw's name of mode m ("randread", ...), "?" when out of range. */
const char *vb_rw_name(unsigned m);

/* ---- reporting (vfu_bench_report.c) --------------------------------------- */

/* The results on stdout: the table (per queue pair and direction, CPU use,
 * client counters) or fio-like JSON. After vb_run. */
void vb_report_table(struct vb_bench *b);
void vb_report_json(struct vb_bench *b);
/* --plot: the latency distribution of all jobs as an SVG at c.plot. 0 or -errno
 * (printed). */
int vb_report_plot(struct vb_bench *b);

/* ---- jobs (vfu_bench_run.c) ---------------------------------------------- */

/* Allocate the jobs, create their queue pairs and buffers. 0 or -errno. */
int vb_jobs_setup(struct vb_bench *b);
/* Free what vb_jobs_setup allocated (guest memory goes with the host). */
void vb_jobs_free(struct vb_bench *b);
/*
 * Start one pinned thread per job, print progress each second, stop the jobs
 * at the end (or when *stop_requested), join them, and set measured_ns and
 * the server's CPU use. 0 or the first job's -errno.
 */
int vb_run(struct vb_bench *b, volatile sig_atomic_t *stop_requested);

/* Wait until vb_run lets the jobs go (b->go). */
void vb_wait_go(struct vb_bench *b);

/* ---- --probe (vfu_bench_probe.c) ------------------------------------------ */

/*
 * Connect to the device at c.probe (any vfio-user device: a GPIO card, a
 * second controller on the same worker) and start a thread that, from the
 * jobs' start to the end, reads its PCI config space vendor ID every
 * probe_interval_us and times each answer: how long another tenant of the
 * worker waits while this load runs. 0 or -errno (printed).
 */
int vb_probe_start(struct vb_bench *b);
/* Join the thread (after vb_run); idempotent. */
void vb_probe_join(struct vb_bench *b);
/* The results: a table line, or a JSON member ("probe": {...},). */
void vb_probe_print(const struct vb_bench *b, bool json);
void vb_probe_free(struct vb_bench *b);

/* ---- gaps between completions (vfu_bench_gaps.c) ---------------------------- */

/* --gaps: room for the long gaps of each job (before the jobs start). 0 or -ENOMEM. */
int vb_gaps_setup(struct vb_bench *b);
/* --gaps: write FILE, one line per long gap: "qpN FROM TO GAP" with FROM and TO
 * in CLOCK_REALTIME nanoseconds (comparable with `date +%s%N`) and GAP in ns,
 * after a header line starting with '#'. 0 or -errno (printed). After vb_run. */
int vb_gaps_write(const struct vb_bench *b);
/* The longest gap of any job (ns) and its job index in *job (may be NULL). */
uint64_t vb_gaps_max(const struct vb_bench *b, uint32_t *job);

/* Completions were reaped at t: note the gap since the previous ones. Job
 * thread; no allocation. */
static inline void vb_gap_note(struct vb_job *j, uint64_t t)
{
	if (j->last_done_ns) {
		uint64_t g = t - j->last_done_ns;

		if (g > j->max_gap_ns) {
			j->max_gap_ns = g;
			j->max_gap_end_ns = t;
		}
		if (j->gap_min_ns && g >= j->gap_min_ns) {
			if (j->n_gaps < j->cap_gaps)
				j->gaps[j->n_gaps++] = (struct vb_gap){ j->last_done_ns, t };
			else
				j->lost_gaps++;
		}
	}
	j->last_done_ns = t;
}

/* ---- CPU time (vfu_bench_cpu.c) ------------------------------------------ */

/* The calling thread's CPU time (getrusage RUSAGE_THREAD). */
void vb_cpu_self(struct vb_cpu_sample *s);
/*
 * CPU time of process pid's threads whose name starts with comm_prefix
 * (NULL: all threads), from /proc/PID/task/ANY/stat. s->ok is false when the
 * process cannot be read; s->threads counts the matches.
 */
void vb_cpu_threads(pid_t pid, const char *comm_prefix, struct vb_cpu_sample *s);
/* Use between a and b (a taken first). */
void vb_cpu_use(const struct vb_cpu_sample *a, const struct vb_cpu_sample *b,
		struct vb_cpu_use *u);

/* ---- core-to-core floor (vfu_bench_floor.c) ------------------------------ */

/*
 * Cache-line ping-pong between two threads pinned to cpu_a and cpu_b for
 * about ms milliseconds, spinning on two 64-byte aligned atomics: *rtt_ns
 * gets the median of per-batch round trip means. 0, -EINVAL (a CPU not
 * usable), -ETIMEDOUT (a side did not answer: a CPU is busy) or -errno.
 */
int vb_c2c_rtt(int cpu_a, int cpu_b, unsigned ms, double *rtt_ns);

#endif /* VFURT_BENCH_VFU_BENCH_H */
