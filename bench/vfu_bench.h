/* vfu-bench internals: the log-linear latency histogram shared by the load generator's parts. */
#ifndef VFURT_BENCH_VFU_BENCH_H
#define VFURT_BENCH_VFU_BENCH_H

#include <stdint.h>

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

#endif /* VFURT_BENCH_VFU_BENCH_H */
