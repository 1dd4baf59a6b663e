/* vfu-bench: log-linear latency histogram (<= 0.4 % relative error per bucket). */
#include <math.h>
#include <string.h>

#include "vfu_bench.h"

void vb_hist_reset(struct vb_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min_ns = UINT64_MAX;
}

static uint32_t bucket_of(uint64_t v)
{
	uint32_t msb;

	if (v < VB_HIST_SUB)
		return (uint32_t)v;
	msb = 63u - (uint32_t)__builtin_clzll(v);
	return (msb - VB_HIST_SUB_BITS + 1u) * VB_HIST_SUB +
	       (uint32_t)((v >> (msb - VB_HIST_SUB_BITS)) & (VB_HIST_SUB - 1u));
}

/* Midpoint of bucket b (its own value below 128). */
static uint64_t bucket_mid(uint32_t b)
{
	uint32_t group = b / VB_HIST_SUB;
	uint64_t sub = b % VB_HIST_SUB;
	uint32_t shift;

	if (group == 0)
		return b;
	shift = group - 1u;
	return ((VB_HIST_SUB + sub) << shift) + ((1ull << shift) >> 1);
}

void vb_hist_add(struct vb_hist *h, uint64_t ns)
{
	h->bucket[bucket_of(ns)]++;
	h->n++;
	h->sum_ns += ns;
	h->sum_sq += (double)ns * (double)ns;
	if (ns < h->min_ns)
		h->min_ns = ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

void vb_hist_merge(struct vb_hist *dst, const struct vb_hist *src)
{
	for (uint32_t i = 0; i < VB_HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->n += src->n;
	dst->sum_ns += src->sum_ns;
	dst->sum_sq += src->sum_sq;
	if (src->min_ns < dst->min_ns)
		dst->min_ns = src->min_ns;
	if (src->max_ns > dst->max_ns)
		dst->max_ns = src->max_ns;
}

uint64_t vb_hist_percentile(const struct vb_hist *h, double p)
{
	uint64_t rank, seen = 0;

	if (!h->n)
		return 0;
	rank = (uint64_t)ceil(p / 100.0 * (double)h->n);
	if (rank < 1)
		rank = 1;
	if (rank > h->n)
		rank = h->n;
	for (uint32_t i = 0; i < VB_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t v = bucket_mid(i);

			if (v < h->min_ns)
				v = h->min_ns;
			if (v > h->max_ns)
				v = h->max_ns;
			return v;
		}
	}
	return h->max_ns;
}

double vb_hist_mean(const struct vb_hist *h)
{
	return h->n ? (double)h->sum_ns / (double)h->n : 0.0;
}

double vb_hist_stddev(const struct vb_hist *h)
{
	double m, var;

	if (h->n < 2)
		return 0.0;
	m = vb_hist_mean(h);
	var = h->sum_sq / (double)h->n - m * m;
	return var > 0 ? sqrt(var) : 0.0;
}
