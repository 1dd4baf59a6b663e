/* vfu-bench: NVMe load generator that plays the guest driver over vfio-user (fio/SPDK perf style). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vfurt/bdev.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>

#include "hostsim/nvme_host.h"
#include "vfu_bench.h"

/* The only global: set by SIGINT/SIGTERM, read by the main thread's run loop. */
static volatile sig_atomic_t stop_requested;

#define N_RW 7
#define N_PCT 17
#define FLOOR_MS 50u /* core-to-core ping-pong duration */

/* Constant tables live in functions: the file keeps no state outside main's objects. */
static const char *rw_name(unsigned m)
{
	static const char *const names[N_RW] = { "read", "write", "randread", "randwrite",
						 "randrw", "zeroes", "trim" };

	return m < N_RW ? names[m] : "?";
}

/* fio's default percentile list. */
static double pct_at(size_t i)
{
	static const double pct[N_PCT] = { 1,  5,  10, 20, 30,   40,   50,    60,   70,
					   80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99 };

	return pct[i];
}

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(FILE *f)
{
	fputs("usage: vfu-bench (--socket=PATH | --self-serve) [options]\n"
	      "\n"
	      "Target:\n"
	      "  --socket=PATH          NVMe controller served by vfu-rt at PATH\n"
	      "  --self-serve           start an in-process runtime (busy poll) with a controller\n"
	      "  --server-poll=MODE     self-serve runtime: busy (default) or adaptive\n"
	      "  --irq-batch=on|off     self-serve: off = one eventfd write per completion (the\n"
	      "                         controller raises an irq per CQE, the runtime writes\n"
	      "                         each at once); on (default) = once per CQ per pass\n"
	      "  --server-cpus=LIST     self-serve worker cores (default 1); with --socket, where\n"
	      "                         the server runs (for the core-to-core floor)\n"
	      "  --server-pid=PID       with --socket: measure the CPU time of that server's\n"
	      "                         vfu-rt-w* threads (all its threads if none is so named)\n"
	      "  --backend=SPEC         self-serve namespace: null | ram | file:PATH (default null)\n"
	      "  --size=SIZE            self-serve namespace size (default 1G)\n"
	      "  --direct               self-serve file backend: O_DIRECT (fio's --direct=1)\n"
	      "  --block-size=N         self-serve LBA size, 512 or 4096 (default 4096)\n"
	      "  --nsid=N               namespace to load (default 1)\n"
	      "Workload:\n"
	      "  --rw=MODE              read | write | randread | randwrite | randrw (default randread)\n"
	      "                         zeroes | trim: Write Zeroes | Deallocate of bs each, at\n"
	      "                         random bs-aligned offsets (no data moved; counted as writes)\n"
	      "  --deac                 zeroes: set the Deallocate bit\n"
	      "  --rwmixread=N          randrw: percentage of reads (default 50)\n"
	      "  --bs=SIZE              I/O size (default 4k)\n"
	      "  --iodepth=N            outstanding I/Os per queue pair (default 1)\n"
	      "  --jobs=N               I/O queue pairs (default 1), each driven by its own\n"
	      "                         client thread (fio numjobs). They share the controller's\n"
	      "                         one vfio-user connection: message doorbells take turns\n"
	      "  --runtime=S            measured seconds, fractions allowed (default 10)\n"
	      "  --ramp=S               seconds of load before measuring, e.g. 0.5 (default 0)\n"
	      "  --cpus=LIST            pin job i to the i-th CPU of LIST, wrapping (e.g. 0-1)\n"
	      "  --thinktime=US         after reaping completions, sleep US microseconds before\n"
	      "                         refilling (fio's thinktime; light load, e.g. to see an\n"
	      "                         adaptive worker go to sleep between I/Os)\n"
	      "  --thinktime-random     stall a uniform random time in [0, 2 x thinktime)\n"
	      "                         instead: arrivals not in step with the server's sleeps\n"
	      "  --doorbell=MODE        mmap: write the mmapped BAR page (default); message:\n"
	      "                         REGION_WRITE per doorbell; ioeventfd: shadow doorbells\n"
	      "                         (Doorbell Buffer Config) and, when EventIdx asks, a\n"
	      "                         write to the controller's ioeventfd as KVM would\n"
	      "                         (self-serve creates the controller with doorbells=ioeventfd)\n"
	      "  --completion=poll|irq  spin on the CQs (default) or sleep on MSI-X eventfds\n"
	      "Output:\n"
	      "  --json                 fio-like JSON on stdout instead of the table\n"
	      "  --plot=FILE.svg        also write the latency distribution as an SVG chart\n"
	      "  --no-floor             skip the core-to-core cache-line round trip measured\n"
	      "                         (~50 ms) between the first client and server CPUs\n"
	      "  --probe=SOCKET         time another device meanwhile: read its PCI vendor ID\n"
	      "                         every --probe-interval and report latency and the\n"
	      "                         longest wait (e.g. a GPIO card on the same worker)\n"
	      "  --probe-interval=US    default 1000\n"
	      "  --help\n"
	      "A progress line goes to stderr each second. CPU use (client job threads, server\n"
	      "workers) is in percent of one CPU over the measured interval.\n",
	      f);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_u32(const char *s, uint32_t *out, uint32_t lo, uint32_t hi)
{
	uint64_t v;

	if (parse_u64(s, &v) || v < lo || v > hi)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Seconds, fractions allowed: "10", "10s", "0.5" into milliseconds. */
static int parse_secs(const char *s, uint64_t *out_ms)
{
	char *end;
	double v;

	if (!s || ((*s < '0' || *s > '9') && *s != '.'))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (*end == 's')
		end++;
	if (errno || *end || !(v >= 0.0) || v > 1e7)
		return -EINVAL;
	*out_ms = (uint64_t)(v * 1000.0 + 0.5);
	return 0;
}

/* "0-3,6" into set. */
static int parse_cpus(const char *s, cpu_set_t *set)
{
	const char *p = s;

	CPU_ZERO(set);
	while (*p) {
		char *end;
		unsigned long a, b;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		a = strtoul(p, &end, 10);
		b = a;
		if (*end == '-') {
			p = end + 1;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			b = strtoul(p, &end, 10);
		}
		if (b < a || b >= CPU_SETSIZE)
			return -EINVAL;
		for (unsigned long i = a; i <= b; i++)
			CPU_SET(i, set);
		if (*end == ',')
			end++;
		else if (*end)
			return -EINVAL;
		p = end;
	}
	return CPU_COUNT(set) ? 0 : -EINVAL;
}

enum {
	OPT_SOCKET = 256, OPT_SELF, OPT_SCPUS, OPT_BACKEND, OPT_SIZE, OPT_BLKSZ, OPT_NSID,
	OPT_RW, OPT_MIX, OPT_BS, OPT_QD, OPT_JOBS, OPT_RUNTIME, OPT_RAMP, OPT_CPUS,
	OPT_DIRECT, OPT_THINKR, OPT_DB, OPT_IRQB, OPT_SPOLL, OPT_THINK, OPT_COMPL, OPT_JSON, OPT_PLOT, OPT_SPID, OPT_NOFLOOR, OPT_HELP,
	OPT_PROBE, OPT_PROBE_US, OPT_DEAC,
};

static int parse_args(int argc, char **argv, struct vb_cfg *c)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "self-serve", no_argument, NULL, OPT_SELF },
		{ "server-cpus", required_argument, NULL, OPT_SCPUS },
		{ "backend", required_argument, NULL, OPT_BACKEND },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "block-size", required_argument, NULL, OPT_BLKSZ },
		{ "nsid", required_argument, NULL, OPT_NSID },
		{ "rw", required_argument, NULL, OPT_RW },
		{ "rwmixread", required_argument, NULL, OPT_MIX },
		{ "bs", required_argument, NULL, OPT_BS },
		{ "iodepth", required_argument, NULL, OPT_QD },
		{ "jobs", required_argument, NULL, OPT_JOBS },
		{ "numjobs", required_argument, NULL, OPT_JOBS },
		{ "runtime", required_argument, NULL, OPT_RUNTIME },
		{ "ramp", required_argument, NULL, OPT_RAMP },
		{ "ramp_time", required_argument, NULL, OPT_RAMP },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "doorbell", required_argument, NULL, OPT_DB },
		{ "irq-batch", required_argument, NULL, OPT_IRQB },
		{ "server-poll", required_argument, NULL, OPT_SPOLL },
		{ "thinktime", required_argument, NULL, OPT_THINK },
		{ "direct", no_argument, NULL, OPT_DIRECT },
		{ "thinktime-random", no_argument, NULL, OPT_THINKR },
		{ "completion", required_argument, NULL, OPT_COMPL },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "plot", required_argument, NULL, OPT_PLOT },
		{ "server-pid", required_argument, NULL, OPT_SPID },
		{ "no-floor", no_argument, NULL, OPT_NOFLOOR },
		{ "probe", required_argument, NULL, OPT_PROBE },
		{ "probe-interval", required_argument, NULL, OPT_PROBE_US },
		{ "deac", no_argument, NULL, OPT_DEAC },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	*c = (struct vb_cfg){
		.server_cpus = "1", .backend = "null", .size = 1ull << 30, .block_size = 4096,
		.nsid = 1, .rw = VB_RW_RANDREAD, .rwmixread = 50, .bs = 4096, .iodepth = 1,
		.jobs = 1, .runtime_ms = 10000, .probe_interval_us = 1000,
	};
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int bad = 0;

		switch (o) {
		case OPT_SOCKET: c->socket = optarg; break;
		case OPT_SELF: c->self_serve = true; break;
		case OPT_SCPUS: c->server_cpus = optarg; break;
		case OPT_BACKEND: c->backend = optarg; break;
		case OPT_SIZE: bad = vfurt_parse_size(optarg, &c->size) || !c->size; break;
		case OPT_BLKSZ:
			bad = parse_u32(optarg, &c->block_size, 512, 4096) ||
			      (c->block_size != 512 && c->block_size != 4096);
			break;
		case OPT_NSID: bad = parse_u32(optarg, &c->nsid, 1, UINT32_MAX - 1); break;
		case OPT_RW:
			bad = 1;
			for (unsigned i = 0; i < N_RW; i++) {
				if (!strcmp(optarg, rw_name(i))) {
					c->rw = (enum vb_rw)i;
					bad = 0;
				}
			}
			break;
		case OPT_MIX: bad = parse_u32(optarg, &c->rwmixread, 0, 100); break;
		case OPT_BS: bad = vfurt_parse_size(optarg, &c->bs) || !c->bs; break;
		case OPT_QD: bad = parse_u32(optarg, &c->iodepth, 1, 4095); break;
		case OPT_JOBS: bad = parse_u32(optarg, &c->jobs, 1, VB_MAX_JOBS); break;
		case OPT_RUNTIME: bad = parse_secs(optarg, &c->runtime_ms) || !c->runtime_ms; break;
		case OPT_RAMP: bad = parse_secs(optarg, &c->ramp_ms); break;
		case OPT_CPUS: c->cpus = optarg; break;
		case OPT_DB:
			if (!strcmp(optarg, "mmap"))
				c->doorbell = VB_DB_MMAP;
			else if (!strcmp(optarg, "message"))
				c->doorbell = VB_DB_MESSAGE;
			else if (!strcmp(optarg, "ioeventfd"))
				c->doorbell = VB_DB_IOEVENTFD;
			else
				bad = 1;
			break;
		case OPT_IRQB:
			c->irq_unbatched = !strcmp(optarg, "off");
			bad = strcmp(optarg, "on") && !c->irq_unbatched;
			break;
		case OPT_DIRECT: c->direct = true; break;
		case OPT_THINKR: c->thinktime_random = true; break;
		case OPT_THINK: bad = parse_u32(optarg, &c->thinktime_us, 0, 10000000); break;
		case OPT_SPOLL:
			c->server_adaptive = !strcmp(optarg, "adaptive");
			bad = strcmp(optarg, "busy") && !c->server_adaptive;
			break;
		case OPT_COMPL:
			if (!strcmp(optarg, "poll"))
				c->irq = false;
			else if (!strcmp(optarg, "irq"))
				c->irq = true;
			else
				bad = 1;
			break;
		case OPT_JSON: c->json = true; break;
		case OPT_PLOT: c->plot = optarg; bad = !*optarg; break;
		case OPT_PROBE: c->probe = optarg; bad = !*optarg; break;
		case OPT_PROBE_US: bad = parse_u32(optarg, &c->probe_interval_us, 0, 10000000); break;
		case OPT_DEAC: c->zeroes_deac = true; break;
		case OPT_SPID: {
			uint32_t pid = 0;

			bad = parse_u32(optarg, &pid, 1, INT32_MAX);
			c->server_pid = (pid_t)pid;
			break;
		}
		case OPT_NOFLOOR: c->no_floor = true; break;
		case OPT_HELP:
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -EINVAL;
		}
		if (bad) {
			fprintf(stderr, "vfu-bench: bad option value: %s\n", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc || !c->socket == !c->self_serve) {
		fputs("vfu-bench: give exactly one of --socket=PATH or --self-serve\n", stderr);
		usage(stderr);
		return -EINVAL;
	}
	if (c->server_pid && c->self_serve) {
		fputs("vfu-bench: --server-pid is for --socket (self-serve measures its own "
		      "workers)\n", stderr);
		return -EINVAL;
	}
	return 0;
}

const char *vb_doorbell_name(const struct vb_cfg *c)
{
	static const char *const names[] = { "mmap", "message", "ioeventfd" };

	return names[c->doorbell];
}

static int self_serve_start(struct vb_bench *b)
{
	struct vfurt_runtime_opts ro = {
		.opts_size = sizeof(ro),
		.cores = b->c.server_cpus,
		.poll_mode = b->c.server_adaptive ? VFURT_POLL_ADAPTIVE : VFURT_POLL_BUSY,
		.irq_unbatched = b->c.irq_unbatched,
		.log = { .fn = vfurt_log_stderr, .arg = (void *)"vfu-bench server",
			 .level = VFURT_LOG_ERR },
	};
	struct vfurt_bdev *bdev = NULL;
	struct vfurt_nvme_opts no = {
		.opts_size = sizeof(no),
		.name = "vfu-bench-nvme",
		.log = ro.log,
		.max_io_queues = b->c.jobs,
		.max_queue_entries = 4096,
		.nr_ns = 1,
		.own_bdevs = true,
		.ioeventfd = b->c.doorbell == VB_DB_IOEVENTFD,
		.irq_per_completion = b->c.irq_unbatched,
	};
	struct vfurt_dev *dev;
	char err[256] = "";
	int rc;

	snprintf(b->sock_path, sizeof(b->sock_path), "/tmp/vfu-bench-%ld.sock", (long)getpid());
	b->rt = vfurt_runtime_create(&ro, err, sizeof(err));
	if (!b->rt) {
		fprintf(stderr, "vfu-bench: runtime: %s\n", err);
		return -EINVAL;
	}
	rc = vfurt_bdev_from_spec_direct(b->c.backend, b->c.size, b->c.block_size,
					 b->c.direct ? VFURT_BDEV_DIRECT_ON : VFURT_BDEV_DIRECT_OFF,
					 &bdev, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "vfu-bench: backend %s: %s\n", b->c.backend, err);
		return rc;
	}
	no.ns = &bdev;
	dev = vfurt_nvme_create(&no);
	if (!dev) {
		rc = -errno;
		vfurt_bdev_destroy(bdev);
		fprintf(stderr, "vfu-bench: nvme controller: %s\n", strerror(-rc));
		return rc;
	}
	unlink(b->sock_path);
	rc = vfurt_runtime_add_device(b->rt, dev, b->sock_path, 0600, -1);
	if (rc) {
		fprintf(stderr, "vfu-bench: add device: %s\n", strerror(-rc));
		return rc;
	}
	rc = vfurt_runtime_start(b->rt);
	if (rc)
		fprintf(stderr, "vfu-bench: runtime start: %s\n", strerror(-rc));
	b->c.socket = b->sock_path;
	return rc;
}

static int read_namespace(struct vb_bench *b)
{
	uint8_t *id = nh_alloc(b->h, NH_PAGE);
	uint64_t nsze;
	uint8_t flbas, lbads;
	int rc;

	if (!id)
		return -ENOMEM;
	rc = nh_identify(b->h, NH_CNS_NS, b->c.nsid, id);
	if (rc) {
		fprintf(stderr, "vfu-bench: identify namespace %u: status %#x\n", b->c.nsid,
			(unsigned)rc);
		nh_free(b->h, id, NH_PAGE);
		return rc < 0 ? rc : -EIO;
	}
	memcpy(&nsze, id, sizeof(nsze));
	flbas = id[26] & 0xfu;
	lbads = id[128 + 4u * flbas + 2u];
	nh_free(b->h, id, NH_PAGE);
	if (!nsze || lbads < 9 || lbads > 16) {
		fprintf(stderr, "vfu-bench: namespace %u is inactive or has a bad format\n",
			b->c.nsid);
		return -ENODEV;
	}
	b->lba_size = 1u << lbads;
	/* NLB is 16 bits, a Deallocate range's 32 */
	if (b->c.bs % b->lba_size ||
	    b->c.bs / b->lba_size > (b->c.rw == VB_RW_TRIM ? UINT32_MAX : 0x10000u)) {
		fprintf(stderr, "vfu-bench: --bs must be a multiple of the LBA size %u, at most "
			"%s blocks\n", b->lba_size, b->c.rw == VB_RW_TRIM ? "2^32 - 1" : "65536");
		return -EINVAL;
	}
	b->nlb_per_io = b->c.bs / b->lba_size;
	b->units = nsze / b->nlb_per_io;
	return b->units ? 0 : -EINVAL;
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

static void print_table(struct vb_bench *b)
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
	       rw_name(b->c.rw), b->c.bs, b->c.iodepth, b->c.jobs,
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

static void print_json(struct vb_bench *b)
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
		rw_name(b->c.rw), b->c.bs, b->c.iodepth, b->c.jobs, (double)b->c.runtime_ms / 1e3,
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
			   "      \"job options\": {\n        \"cpus_allowed\": \"",
			j->qid, j->errors ? EIO : 0, j->errors);
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
static int write_plot(struct vb_bench *b)
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
		 rw_name(b->c.rw), b->c.bs, b->c.iodepth, b->c.jobs,
		 vb_doorbell_name(&b->c), b->c.irq ? "irq" : "poll",
		 b->c.self_serve ? b->c.backend : "remote", (double)b->measured_ns / 1e9);
	rc = vb_plot_svg(b->c.plot, &all[0], &all[1], title);
	if (rc)
		fprintf(stderr, "vfu-bench: --plot=%s: %s\n", b->c.plot, strerror(-rc));
	free(all);
	return rc;
}

static int setup_host(struct vb_bench *b)
{
	/* zeroes and trim move no data: one page per slot (the range list) */
	uint64_t data = vb_rw_moves_data(&b->c) ? b->c.bs : NH_PAGE;
	uint64_t buf_bytes = (data + NH_PAGE - 1) / NH_PAGE * NH_PAGE;
	/* PRP list pages, built once per buffer when bs > 8 KiB */
	uint64_t lists = data > 2u * NH_PAGE ? buf_bytes / (511u * NH_PAGE) + 1u : 0u;
	/* buffers, their lists, rings, slack */
	uint64_t per_job = (uint64_t)b->c.iodepth * (buf_bytes + lists * NH_PAGE) +
			   (uint64_t)(b->c.iodepth + 1) * 80u + 4u * NH_PAGE;
	struct nvme_host_opts ho = {
		.mem_size = (size_t)(per_job * b->c.jobs + (16u << 20)),
		.timeout_ms = 5000,
		.doorbell_msg = b->c.doorbell == VB_DB_MESSAGE,
		.doorbell_ioeventfd = b->c.doorbell == VB_DB_IOEVENTFD,
		.irq_wait = b->c.irq,
	};
	uint32_t dw0 = 0;
	int rc;

	b->h = nh_open(b->c.socket, &ho);
	if (!b->h) {
		fprintf(stderr, "vfu-bench: connect %s: %s\n", b->c.socket, strerror(errno));
		return -ENOTCONN;
	}
	if (b->c.doorbell == VB_DB_MMAP && !nh_doorbells_mapped(b->h)) {
		fputs("vfu-bench: the controller's doorbells could not be mmapped; use "
		      "--doorbell=message\n", stderr);
		return -ENOTSUP;
	}
	rc = nh_enable(b->h);
	if (rc) {
		fprintf(stderr, "vfu-bench: enable controller: %s\n", strerror(-rc));
		return rc;
	}
	rc = nh_set_num_queues(b->h, (uint16_t)b->c.jobs, (uint16_t)b->c.jobs, &dw0);
	if (rc || (dw0 & 0xffffu) + 1u < b->c.jobs || (dw0 >> 16) + 1u < b->c.jobs) {
		fprintf(stderr, "vfu-bench: controller gives %u queue pairs, --jobs=%u\n",
			rc ? 0u : ((dw0 & 0xffffu) < (dw0 >> 16) ? dw0 & 0xffffu : dw0 >> 16) + 1u,
			b->c.jobs);
		return -EINVAL;
	}
	if (b->c.doorbell == VB_DB_IOEVENTFD) {
		rc = nh_dbbuf_enable(b->h);
		if (rc) {
			fprintf(stderr, "vfu-bench: Doorbell Buffer Config: %s\n",
				rc < 0 ? strerror(-rc) : "refused");
			return rc < 0 ? rc : -ENOTSUP;
		}
	}
	rc = read_namespace(b);
	return rc ? rc : vb_jobs_setup(b);
}

/* The lowest CPU of the calling thread's affinity other than `not`, or -1. */
static int first_allowed_cpu(int not)
{
	cpu_set_t set;

	if (pthread_getaffinity_np(pthread_self(), sizeof(set), &set))
		return -1;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (CPU_ISSET(c, &set) && c != not)
			return c;
	}
	return -1;
}

static int first_cpu(const cpu_set_t *set)
{
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (CPU_ISSET(c, set))
			return c;
	}
	return -1;
}

/*
 * The core-to-core floor: a cache-line round trip between the first client
 * CPU (--cpus; unpinned: the lowest allowed CPU that is not the server's)
 * and the first server CPU (--server-cpus), before the server's workers
 * start spinning (self-serve) or the client connects.
 */
static void measure_floor(struct vb_bench *b)
{
	cpu_set_t srv;
	int rc;

	b->c2c_rtt_ns = -1;
	if (b->c.no_floor) {
		b->c2c_note = "--no-floor";
		return;
	}
	if (parse_cpus(b->c.server_cpus, &srv)) {
		b->c2c_note = "--server-cpus is not a CPU list";
		return;
	}
	b->c2c_cpu[1] = first_cpu(&srv);
	b->c2c_cpu[0] = b->pinned ? first_cpu(&b->client_cpus) : first_allowed_cpu(b->c2c_cpu[1]);
	if (b->c2c_cpu[0] < 0) {
		b->c2c_note = "no client CPU";
		return;
	}
	if (b->c2c_cpu[0] == b->c2c_cpu[1]) {
		b->c2c_note = "client and server share their first CPU";
		return;
	}
	rc = vb_c2c_rtt(b->c2c_cpu[0], b->c2c_cpu[1], FLOOR_MS, &b->c2c_rtt_ns);
	if (rc) {
		b->c2c_rtt_ns = -1;
		b->c2c_note = rc == -ETIMEDOUT ? "a CPU did not answer (busy?)"
			    : rc == -EINVAL ? "a CPU is not available" : "ping-pong failed";
		fprintf(stderr, "vfu-bench: core-to-core floor CPU %d <-> %d: %s\n", b->c2c_cpu[0],
			b->c2c_cpu[1], strerror(-rc));
	}
}

int main(int argc, char **argv)
{
	struct vb_bench *b = vb_calloc_lines(1, sizeof(*b));
	struct sigaction sa = { .sa_handler = on_signal };
	int rc;

	if (!b)
		return 1;
	pthread_mutex_init(&b->db_lock, NULL);
	pthread_mutex_init(&b->go_lock, NULL);
	pthread_cond_init(&b->go_cond, NULL);
	rc = parse_args(argc, argv, &b->c);
	if (rc)
		goto out_free;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (b->c.cpus) {
		rc = parse_cpus(b->c.cpus, &b->client_cpus);
		if (rc) {
			fprintf(stderr, "vfu-bench: bad --cpus=%s\n", b->c.cpus);
			goto out_free;
		}
		b->pinned = true;
	}
	measure_floor(b);
	if (b->c.self_serve) {
		rc = self_serve_start(b);
		if (rc)
			goto out_rt;
		b->srv.pid = getpid();
	} else {
		b->srv.pid = b->c.server_pid;
	}
	if (b->pinned) {
		/* the main thread (setup, progress) stays on the client's CPUs too */
		rc = -pthread_setaffinity_np(pthread_self(), sizeof(b->client_cpus),
					     &b->client_cpus);
		if (rc) {
			fprintf(stderr, "vfu-bench: pin to %s: %s\n", b->c.cpus, strerror(-rc));
			goto out_rt;
		}
	}
	rc = setup_host(b);
	if (rc)
		goto out_host;
	if (b->c.probe) {
		rc = vb_probe_start(b);
		if (rc)
			goto out_host;
	}
	rc = vb_run(b, &stop_requested);
	vb_probe_join(b);
	if (rc)
		goto out_host;
	if (b->c.json)
		print_json(b);
	else
		print_table(b);
	if (b->c.plot)
		rc = write_plot(b);
	nh_shutdown(b->h);
out_host:
	vb_probe_join(b);
	vb_probe_free(b);
	vb_jobs_free(b);
	nh_close(b->h);
out_rt:
	vfurt_runtime_destroy(b->rt);
	if (b->sock_path[0])
		unlink(b->sock_path);
out_free:
	pthread_cond_destroy(&b->go_cond);
	pthread_mutex_destroy(&b->go_lock);
	pthread_mutex_destroy(&b->db_lock);
	free(b);
	return rc ? 1 : 0;
}
