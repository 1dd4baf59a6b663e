/* vfu-bench --plot: the latency histograms as a self-contained SVG cumulative distribution chart. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vfu_bench.h"

/* Chart geometry (SVG user units). */
#define PW 860.0
#define PH 520.0
#define ML 80.0
#define MR 30.0
#define MT 60.0
#define MB 70.0

/* Same mapping as the histogram's own midpoint (exact below 128, log-linear above). */
static double bucket_mid_ns(uint32_t b)
{
	uint32_t group = b / VB_HIST_SUB;
	uint64_t sub = b % VB_HIST_SUB;
	uint32_t shift;

	if (group == 0)
		return (double)b;
	shift = group - 1u;
	return ldexp((double)(VB_HIST_SUB + sub), (int)shift) + ldexp(0.5, (int)shift);
}

struct axis {
	double lo_dec; /* log10 of the left edge */
	double hi_dec; /* log10 of the right edge */
};

static double x_of(const struct axis *a, double ns)
{
	double l = log10(ns < 1.0 ? 1.0 : ns);

	return ML + (l - a->lo_dec) / (a->hi_dec - a->lo_dec) * (PW - ML - MR);
}

static double y_of(double pct)
{
	return MT + (100.0 - pct) / 100.0 * (PH - MT - MB);
}

/* "1 us", "100 ns", "10 ms" for a power of ten of nanoseconds. */
static void decade_label(char *buf, size_t n, int dec)
{
	static const char *const unit[] = { "ns", "us", "ms", "s" };
	int u = dec / 3;

	if (u > 3)
		u = 3;
	snprintf(buf, n, "%.0f %s", pow(10.0, dec - 3 * u), unit[u]);
}

/* Human latency: "472 ns", "3.81 us", "19.3 ms". */
static void lat_label(char *buf, size_t n, double ns)
{
	if (ns < 1e3)
		snprintf(buf, n, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, n, "%.3g us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, n, "%.3g ms", ns / 1e6);
	else
		snprintf(buf, n, "%.3g s", ns / 1e9);
}

/* Write s with the XML special characters escaped. */
static void put_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f); break;
		}
	}
}

static void plot_axes(FILE *f, const struct axis *a)
{
	char lab[32];

	/* y: 0..100 % every 10, plus the 99 and 99.9 reference lines */
	for (int p = 0; p <= 100; p += 10) {
		double y = y_of(p);

		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
			ML, y, PW - MR, y);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n", ML - 6,
			y + 4, p);
	}
	/* x: decades with labels, minor ticks at 2..9 */
	for (int d = (int)a->lo_dec; d <= (int)a->hi_dec; d++) {
		double x = x_of(a, pow(10.0, d));

		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ccc\"/>\n",
			x, MT, x, PH - MB);
		decade_label(lab, sizeof(lab), d);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x,
			PH - MB + 18, lab);
		for (int m = 2; m <= 9 && d < (int)a->hi_dec; m++) {
			double xm = x_of(a, m * pow(10.0, d));

			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
				   "stroke=\"#999\"/>\n", xm, PH - MB, xm, PH - MB + 5);
		}
	}
	fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
		   "stroke=\"#333\"/>\n", ML, MT, PW - ML - MR, PH - MT - MB);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">latency (log scale)</text>\n",
		(ML + PW - MR) / 2, PH - MB + 42);
	fprintf(f, "<text x=\"20\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 20 %.1f)\">"
		   "cumulative %% of I/Os</text>\n", (MT + PH - MB) / 2, (MT + PH - MB) / 2);
}

/* One direction: the step curve of the cumulative distribution and its percentile marks. */
static void plot_dir(FILE *f, const struct axis *a, const struct vb_hist *h, const char *name,
		     const char *color, int slot)
{
	static const double marks[] = { 50, 99, 99.9 };
	static const char *const mark_name[] = { "p50", "p99", "p99.9" };
	uint64_t cum = 0;
	double px = x_of(a, (double)h->min_ns);
	double ly;
	char lab[32];

	fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%.1f,%.1f",
		color, px, y_of(0));
	for (uint32_t i = 0; i < VB_HIST_BUCKETS; i++) {
		double x, y;

		if (!h->bucket[i])
			continue;
		cum += h->bucket[i];
		x = x_of(a, bucket_mid_ns(i));
		y = y_of(100.0 * (double)cum / (double)h->n);
		fprintf(f, " %.1f,%.1f", x, y);
	}
	fputs("\"/>\n", f);
	/* legend in the lower right (a CDF leaves it empty): name and the three percentiles */
	ly = PH - MB - 40.0 + 18.0 * slot;
	fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
		   "stroke-width=\"3\"/>\n", PW - MR - 400, ly - 4, PW - MR - 380, ly - 4, color);
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%s, %" PRIu64 " I/Os:",
		PW - MR - 374, ly, name, h->n);
	for (size_t m = 0; m < sizeof(marks) / sizeof(marks[0]); m++) {
		lat_label(lab, sizeof(lab), (double)vb_hist_percentile(h, marks[m]));
		fprintf(f, " %s %s%s", mark_name[m], lab,
			m + 1 < sizeof(marks) / sizeof(marks[0]) ? "," : "");
	}
	fputs("</text>\n", f);
	for (size_t m = 0; m < sizeof(marks) / sizeof(marks[0]); m++) {
		double x = x_of(a, (double)vb_hist_percentile(h, marks[m]));
		double y = y_of(marks[m]);

		lat_label(lab, sizeof(lab), (double)vb_hist_percentile(h, marks[m]));
		fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"white\" stroke=\"%s\" "
			   "stroke-width=\"2\"><title>%s %s %s</title></circle>\n",
			x, y, color, name, mark_name[m], lab);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"%s\">%s</text>\n",
			x + 6, y + (m == 0 ? 4.0 : 12.0 + 12.0 * (double)(m - 1) + 12.0 * slot),
			color, mark_name[m]);
	}
}

int vb_plot_svg(const char *path, const struct vb_hist *read, const struct vb_hist *write,
		const char *title)
{
	const struct vb_hist *h[2] = { read, write };
	static const char *const names[2] = { "read", "write" };
	static const char *const colors[2] = { "#1f77b4", "#d62728" };
	uint64_t lo = UINT64_MAX, hi = 0;
	struct axis a;
	FILE *f;
	int slot = 0, rc;

	for (int d = 0; d < 2; d++) {
		if (!h[d] || !h[d]->n)
			continue;
		if (h[d]->min_ns < lo)
			lo = h[d]->min_ns;
		if (h[d]->max_ns > hi)
			hi = h[d]->max_ns;
	}
	if (hi == 0) { /* nothing measured: an empty chart over 100 ns..10 us */
		lo = 100;
		hi = 10000;
	}
	a.lo_dec = floor(log10(lo < 1 ? 1.0 : (double)lo));
	a.hi_dec = ceil(log10((double)hi));
	if (a.hi_dec <= a.lo_dec)
		a.hi_dec = a.lo_dec + 1;
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
		   "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"13\">\n",
		PW, PH, PW, PH);
	fputs("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n", f);
	fprintf(f, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"15\" "
		   "font-weight=\"bold\">", PW / 2);
	put_escaped(f, title);
	fputs("</text>\n", f);
	fprintf(f, "<text x=\"%.1f\" y=\"46\" text-anchor=\"middle\" font-size=\"12\">"
		   "latency distribution (cumulative), p50 / p99 / p99.9 marked</text>\n", PW / 2);
	plot_axes(f, &a);
	for (int d = 0; d < 2; d++) {
		if (!h[d] || !h[d]->n)
			continue;
		plot_dir(f, &a, h[d], names[d], colors[d], slot++);
	}
	fputs("</svg>\n", f);
	rc = ferror(f) ? -EIO : 0;
	if (fclose(f) && !rc)
		rc = -EIO;
	return rc;
}
