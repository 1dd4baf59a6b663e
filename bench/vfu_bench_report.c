/* vfu-bench reporting: the results as a table or as fio-like JSON, and the --plot chart. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostsim/nvme_host.h"
#include "vfu_bench.h"

#define N_PCT 17

/* fio's default percentile list. */
static double pct_at(size_t i)
{
	static const double pct[N_PCT] = { 1,  5,  10, 20, 30,   40,   50,    60,   70,
					   80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99 };

	return pct[i];
}

static void pct_row(FILE *f, const struct vb_hist *h)
{
	static const double cols[] = { 50, 90, 99, 99.9, 99.99 };

	fprintf(f, " %9.2f", vb_hist_mean(h) / 1e3);
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		fprintf(f, " %9.2f", (double)vb_hist_percentile(h, cols[i]) / 1e3);
	fprintf(f, " %9.2f", (double)h->max_ns / 1e3);
}

/* "core-to-core ..." / "server: ..." lines, shared by the table's header and footer. */
static void print_c2c(const struct vb_bench *b)
{
	if (b->c2c_rtt_ns >= 0)
		printf("core-to-core cache-line round trip: %.0f ns (CPU %d <-> CPU %d)\n",
		       b->c2c_rtt_ns, b->c2c_cpu[0], b->c2c_cpu[1]);
	else
		printf("core-to-core cache-line round trip: not measured (%s)\n", b->c2c_note);
}

static void print_cpu(const struct vb_bench *b)
{
	const struct vb_server_cpu *s = &b->srv;

	printf("%-5s %4s %7s %7s %9s   (client job threads, %% of one CPU)\n", "job", "CPU",
	       "usr%", "sys%", "ctxsw");
	for (uint32_t i = 0; i < b->c.jobs; i++) {
		const struct vb_job *j = &b->jobs[i];
		struct vb_cpu_use u;
		char cpu[12];

		vb_cpu_use(&j->cpu0, &j->cpu1, &u);
		if (j->cpu >= 0)
			snprintf(cpu, sizeof(cpu), "%d", j->cpu);
		else
			snprintf(cpu, sizeof(cpu), "any");
		if (u.ok)
			printf("qp%-3u %4s %7.1f %7.1f %9" PRIu64 "\n", j->qid, cpu, u.usr_pct,
			       u.sys_pct, u.ctx);
		else
			printf("qp%-3u %4s %7s %7s %9s\n", j->qid, cpu, "-", "-", "-");
	}
	if (s->use.ok)
		printf("server: %.1f%% of a CPU (usr %.1f%%, sys %.1f%%), %u %s\n",
		       s->use.usr_pct + s->use.sys_pct, s->use.usr_pct, s->use.sys_pct,
		       s->s1.threads, s->whole_process ? "thread(s) of the whole process"
						       : "worker thread(s) vfu-rt-w*");
	else if (!s->pid)
		puts("server: CPU not measured (give --server-pid=PID with --socket)");
	else
		printf("server: CPU not measured (/proc/%ld/task unreadable or the run ended "
		       "before the ramp did)\n", (long)s->pid);
}

void vb_report_table(struct vb_bench *b)
{
	static const char *const dname[2] = { "read", "write" };
	double secs = (double)b->measured_ns / 1e9;
	struct vb_hist *all = malloc(2 * sizeof(*all));
	uint64_t tot[2] = { 0, 0 }, err = 0;

	if (!all)
		return;
	vb_hist_reset(&all[0]);
	vb_hist_reset(&all[1]);
	printf("vfu-bench: %s bs=%" PRIu64 " iodepth=%u jobs=%u doorbell=%s completion=%s "
	       "runtime=%.2fs (ramp %gs) lba=%u\n",
	       vb_rw_name(b->c.rw), b->c.bs, b->c.iodepth, b->c.jobs,
	       vb_doorbell_name(&b->c), b->c.irq ? "irq" : "poll", secs,
	       (double)b->c.ramp_ms / 1e3, b->lba_size);
	print_c2c(b);
	printf("%-5s %-5s %11s %9s %9s %9s %9s %9s %9s %9s %9s   (latency in us)\n", "job",
	       "dir", "IOPS", "MiB/s", "mean", "p50", "p90", "p99", "p99.9", "p99.99", "max");
	for (uint32_t i = 0; i <= b->c.jobs; i++) {
		bool total = i == b->c.jobs;

		if (total && b->c.jobs == 1)
			break;
		for (int d = 0; d < 2; d++) {
			const struct vb_hist *h;
			uint64_t ios;
			char name[16];

			if (total) {
				h = &all[d];
				ios = tot[d];
				snprintf(name, sizeof(name), "all");
			} else {
				h = &b->jobs[i].hist[d];
				ios = b->jobs[i].ios[d];
				tot[d] += ios;
				vb_hist_merge(&all[d], h);
				snprintf(name, sizeof(name), "qp%u", b->jobs[i].qid);
			}
			if (!ios)
				continue;
			printf("%-5s %-5s %11.0f %9.1f", name, dname[d], (double)ios / secs,
			       (double)ios * (double)b->c.bs / secs / 1048576.0);
			pct_row(stdout, h);
			putchar('\n');
		}
		if (!total)
			err += b->jobs[i].errors;
	}
	if (err)
		printf("errors: %" PRIu64 " commands completed with an NVMe error\n", err);
	print_cpu(b);
	{
		struct nh_stats st;
		uint64_t sub = 0, full = 0, wakeups = 0;

		nh_get_stats(b->h, &st);
		for (uint32_t i = 0; i < b->c.jobs; i++) {
			sub += b->jobs[i].submitted_ios;
			full += b->jobs[i].sq_full;
			wakeups += b->jobs[i].irq_wakeups;
		}
		printf("client: %" PRIu64 " refills deferred on a full SQ\n", full);
		{
			uint32_t gj = 0;
			uint64_t gap = vb_gaps_max(b, &gj);

			printf("client: longest gap between completions: %.1f us (qp%u)\n",
			       (double)gap / 1e3, b->jobs[gj].qid);
		}
		vb_probe_print(b, false);
		/* whole run (ramp, admin commands included): a batching indicator */
		printf("client: %.2f doorbell writes and %.3f irq wake-ups per I/O\n",
		       sub ? (double)st.mmio_doorbells / (double)sub : 0.0,
		       sub ? (double)wakeups / (double)sub : 0.0);
		if (b->c.doorbell == VB_DB_IOEVENTFD)
			printf("client: shadow doorbells: %" PRIu64 " writes needed no MMIO, %"
			       PRIu64 " ioeventfd signals\n", st.shadow_skipped,
			       st.ioeventfd_doorbells);
	}
	free(all);
}

static void json_dir(FILE *f, const struct vb_bench *b, const struct vb_job *j, int d)
{
	const struct vb_hist *h = &j->hist[d];
	double secs = (double)b->measured_ns / 1e9;
	uint64_t bytes = j->ios[d] * b->c.bs;

	fprintf(f, "      \"%s\": {\n", d == VB_DIR_READ ? "read" : "write");
	fprintf(f, "        \"io_bytes\": %" PRIu64 ",\n        \"io_kbytes\": %" PRIu64 ",\n",
		bytes, bytes / 1024);
	fprintf(f, "        \"bw_bytes\": %.0f,\n        \"bw\": %.0f,\n",
		secs > 0 ? (double)bytes / secs : 0.0,
		secs > 0 ? (double)bytes / secs / 1024.0 : 0.0);
	fprintf(f, "        \"iops\": %.6f,\n        \"runtime\": %" PRIu64 ",\n",
		secs > 0 ? (double)j->ios[d] / secs : 0.0, b->measured_ns / 1000000u);
	fprintf(f, "        \"total_ios\": %" PRIu64 ",\n", j->ios[d]);
	fprintf(f, "        \"lat_ns\": {\n          \"min\": %" PRIu64 ",\n          \"max\": %" PRIu64
		   ",\n          \"mean\": %.6f,\n          \"stddev\": %.6f,\n          \"N\": %" PRIu64
		   ",\n          \"percentile\": {\n",
		h->n ? h->min_ns : 0, h->max_ns, vb_hist_mean(h), vb_hist_stddev(h), h->n);
	for (size_t i = 0; i < N_PCT; i++)
		fprintf(f, "            \"%.6f\": %" PRIu64 "%s\n", pct_at(i),
			vb_hist_percentile(h, pct_at(i)), i + 1 < N_PCT ? "," : "");
	fputs("          }\n        }\n      }", f);
}

/* JSON string body: the notes are ours, but stay safe with quotes and controls. */
static void json_str(FILE *f, const char *s)
{
	putc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned)(unsigned char)*s);
		else
			putc(*s, f);
	}
	putc('"', f);
}

/* Top-level "c2c_rtt_ns" and "server" (fio's usr_cpu / sys_cpu keys). */
static void json_floor_server(FILE *f, const struct vb_bench *b)
{
	const struct vb_server_cpu *s = &b->srv;

	if (b->c2c_rtt_ns >= 0) {
		fprintf(f, "  \"c2c_rtt_ns\": %.1f,\n  \"c2c_cpus\": [%d, %d],\n", b->c2c_rtt_ns,
			b->c2c_cpu[0], b->c2c_cpu[1]);
	} else {
		fputs("  \"c2c_rtt_ns\": null,\n  \"c2c_note\": ", f);
		json_str(f, b->c2c_note);
		fputs(",\n", f);
	}
	if (s->use.ok)
		fprintf(f, "  \"server\": {\n    \"measured\": true,\n    \"pid\": %ld,\n"
			   "    \"threads\": %u,\n    \"whole_process\": %s,\n"
			   "    \"usr_cpu\": %.6f,\n    \"sys_cpu\": %.6f,\n"
			   "    \"cpu\": %.6f\n  },\n",
			(long)s->pid, s->s1.threads, s->whole_process ? "true" : "false",
			s->use.usr_pct, s->use.sys_pct, s->use.usr_pct + s->use.sys_pct);
	else
		fprintf(f, "  \"server\": {\n    \"measured\": false,\n"
			   "    \"reason\": \"%s\"\n  },\n",
			s->pid ? "/proc unreadable or stopped before the ramp ended"
			       : "--socket without --server-pid");
}

void vb_report_json(struct vb_bench *b)
{
	FILE *f = stdout;

	fprintf(f, "{\n  \"fio version\": \"vfu-bench-0.2\",\n  \"timestamp\": %lld,\n",
		(long long)time(NULL));
	fprintf(f, "  \"global options\": {\n    \"rw\": \"%s\",\n    \"bs\": \"%" PRIu64
		   "\",\n    \"iodepth\": \"%u\",\n    \"numjobs\": \"%u\",\n    \"runtime\": \"%g"
		   "\",\n    \"ramp_time\": \"%g\",\n    \"rwmixread\": \"%u\",\n"
		   "    \"doorbell\": \"%s\",\n    \"completion\": \"%s\",\n"
		   "    \"irq_batch\": \"%s\",\n    \"server_poll\": \"%s\",\n"
		   "    \"thinktime\": \"%u\"\n  },\n",
		vb_rw_name(b->c.rw), b->c.bs, b->c.iodepth, b->c.jobs, (double)b->c.runtime_ms / 1e3,
		(double)b->c.ramp_ms / 1e3,
		b->c.rwmixread, vb_doorbell_name(&b->c), b->c.irq ? "irq" : "poll",
		b->c.irq_unbatched ? "off" : "on", b->c.server_adaptive ? "adaptive" : "busy",
		b->c.thinktime_us);
	json_floor_server(f, b);
	vb_probe_print(b, true);
	fputs("  \"jobs\": [\n", f);
	for (uint32_t i = 0; i < b->c.jobs; i++) {
		const struct vb_job *j = &b->jobs[i];
		struct vb_cpu_use u;

		vb_cpu_use(&j->cpu0, &j->cpu1, &u);
		fprintf(f, "    {\n      \"jobname\": \"qp%u\",\n      \"groupid\": 0,\n"
			   "      \"error\": %d,\n      \"nvme_errors\": %" PRIu64 ",\n"
			   "      \"max_gap_ns\": %" PRIu64 ",\n      \"long_gaps\": %" PRIu64 ",\n"
			   "      \"job options\": {\n        \"cpus_allowed\": \"",
			j->qid, j->errors ? EIO : 0, j->errors, j->max_gap_ns,
			(uint64_t)j->n_gaps + j->lost_gaps);
		if (j->cpu >= 0)
			fprintf(f, "%d", j->cpu);
		fprintf(f, "\"\n      },\n      \"job_runtime\": %" PRIu64 ",\n",
			b->measured_ns / 1000000u);
		json_dir(f, b, j, VB_DIR_READ);
		fputs(",\n", f);
		json_dir(f, b, j, VB_DIR_WRITE);
		fprintf(f, ",\n      \"usr_cpu\": %.6f,\n      \"sys_cpu\": %.6f,\n"
			   "      \"ctx\": %" PRIu64 ",\n"
			   "      \"irq_wakeups\": %" PRIu64 "\n    }%s\n",
			u.usr_pct, u.sys_pct, u.ctx, j->irq_wakeups, i + 1 < b->c.jobs ? "," : "");
	}
	fputs("  ]\n}\n", f);
}

/* --plot: all queue pairs' histograms merged per direction, the workload as the title. */
int vb_report_plot(struct vb_bench *b)
{
	struct vb_hist *all = malloc(2 * sizeof(*all));
	char title[256];
	int rc;

	if (!all)
		return -ENOMEM;
	vb_hist_reset(&all[0]);
	vb_hist_reset(&all[1]);
	for (uint32_t i = 0; i < b->c.jobs; i++) {
		vb_hist_merge(&all[0], &b->jobs[i].hist[0]);
		vb_hist_merge(&all[1], &b->jobs[i].hist[1]);
	}
	snprintf(title, sizeof(title),
		 "vfu-bench %s bs=%" PRIu64 " iodepth=%u jobs=%u doorbell=%s completion=%s "
		 "backend=%s, %.1f s",
		 vb_rw_name(b->c.rw), b->c.bs, b->c.iodepth, b->c.jobs,
		 vb_doorbell_name(&b->c), b->c.irq ? "irq" : "poll",
		 b->c.self_serve ? b->c.backend : "remote", (double)b->measured_ns / 1e9);
	rc = vb_plot_svg(b->c.plot, &all[0], &all[1], title);
	if (rc)
		fprintf(stderr, "vfu-bench: --plot=%s: %s\n", b->c.plot, strerror(-rc));
	free(all);
	return rc;
}
