/* vfu-bench: NVMe load generator that plays the guest driver over vfio-user (fio/SPDK perf style). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
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

#include "common/nvme_host.h"
#include "vfu_bench.h"

/* The only global: set by SIGINT/SIGTERM, read by the I/O loop. */
static volatile sig_atomic_t stop_requested;

enum rw_mode { RW_READ, RW_WRITE, RW_RANDREAD, RW_RANDWRITE, RW_RANDRW };
enum { DIR_READ = 0, DIR_WRITE = 1 };

#define N_RW 5
#define N_PCT 17

/* Constant tables live in functions: the file keeps no state outside main's objects. */
static const char *rw_name(unsigned m)
{
	static const char *const names[N_RW] = { "read", "write", "randread", "randwrite",
						 "randrw" };

	return m < N_RW ? names[m] : "?";
}

/* fio's default percentile list. */
static double pct_at(size_t i)
{
	static const double pct[N_PCT] = { 1,  5,  10, 20, 30,   40,   50,    60,   70,
					   80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99 };

	return pct[i];
}

struct cfg {
	const char *socket;
	bool self_serve;
	const char *server_cpus;
	const char *backend;
	uint64_t size;
	uint32_t block_size;
	uint32_t nsid;
	enum rw_mode rw;
	uint32_t rwmixread;
	uint64_t bs;
	uint32_t iodepth;
	uint32_t jobs;
	uint64_t runtime_ms;
	uint64_t ramp_ms;
	const char *cpus;
	bool doorbell_msg;
	bool irq;
	bool json;
	const char *plot; /* --plot=FILE.svg */
};

struct job {
	uint16_t qid;
	uint32_t entries;
	int vector;
	/* by CID (< entries): submit time, direction, buffer index */
	uint64_t *t0;
	uint8_t *dir;
	uint32_t *buf_of;
	uint16_t *inflight; /* CIDs in flight, unordered */
	uint32_t n_inflight;
	void **bufs;        /* iodepth buffers in guest RAM */
	uint32_t *free_buf; /* stack of free buffer indexes */
	uint32_t n_free;
	uint64_t rng;
	uint64_t seq_next;  /* sequential: next I/O unit */
	uint64_t submitted_ios;
	uint64_t done_ios[2];   /* all completions, ramp included (progress) */
	uint64_t ios[2];        /* measured completions */
	uint64_t errors;
	uint64_t sq_full;       /* refills refused because the SQ looked full */
	struct vb_hist hist[2];
};

struct bench {
	struct cfg c;
	struct nvme_host *h;
	struct vfurt_runtime *rt;
	char sock_path[108];
	uint32_t lba_size;
	uint64_t nlb_per_io;
	uint64_t units;         /* I/O units in the namespace */
	struct job *jobs;
	uint64_t measured_ns;
	uint64_t irq_wakeups; /* --completion=irq: sleeps ended by an interrupt */
};

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static void usage(FILE *f)
{
	fputs("usage: vfu-bench (--socket=PATH | --self-serve) [options]\n"
	      "\n"
	      "Target:\n"
	      "  --socket=PATH          NVMe controller served by vfu-rt at PATH\n"
	      "  --self-serve           start an in-process runtime (busy poll) with a controller\n"
	      "  --server-cpus=LIST     self-serve worker cores (default 1)\n"
	      "  --backend=SPEC         self-serve namespace: null | ram | file:PATH (default null)\n"
	      "  --size=SIZE            self-serve namespace size (default 1G)\n"
	      "  --block-size=N         self-serve LBA size, 512 or 4096 (default 4096)\n"
	      "  --nsid=N               namespace to load (default 1)\n"
	      "Workload:\n"
	      "  --rw=MODE              read | write | randread | randwrite | randrw (default randread)\n"
	      "  --rwmixread=N          randrw: percentage of reads (default 50)\n"
	      "  --bs=SIZE              I/O size (default 4k)\n"
	      "  --iodepth=N            outstanding I/Os per queue pair (default 1)\n"
	      "  --jobs=N               I/O queue pairs (default 1). A controller takes one\n"
	      "                         vfio-user connection, so all queue pairs share it and are\n"
	      "                         driven round-robin by ONE client thread (like SPDK perf\n"
	      "                         with several queue pairs on one core)\n"
	      "  --runtime=S            measured seconds, fractions allowed (default 10)\n"
	      "  --ramp=S               seconds of load before measuring, e.g. 0.5 (default 0)\n"
	      "  --cpus=LIST            pin the client thread to these CPUs (e.g. 0 or 0-1)\n"
	      "  --doorbell=mmap|message  ring doorbells through the mmapped BAR (default) or\n"
	      "                         with REGION_WRITE messages\n"
	      "  --completion=poll|irq  spin on the CQs (default) or sleep on MSI-X eventfds\n"
	      "Output:\n"
	      "  --json                 fio-like JSON on stdout instead of the table\n"
	      "  --plot=FILE.svg        also write the latency distribution as an SVG chart\n"
	      "  --help\n"
	      "A progress line goes to stderr each second.\n",
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
	OPT_DB, OPT_COMPL, OPT_JSON, OPT_PLOT, OPT_HELP,
};

static int parse_args(int argc, char **argv, struct cfg *c)
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
		{ "completion", required_argument, NULL, OPT_COMPL },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "plot", required_argument, NULL, OPT_PLOT },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	*c = (struct cfg){
		.server_cpus = "1", .backend = "null", .size = 1ull << 30, .block_size = 4096,
		.nsid = 1, .rw = RW_RANDREAD, .rwmixread = 50, .bs = 4096, .iodepth = 1,
		.jobs = 1, .runtime_ms = 10000,
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
					c->rw = (enum rw_mode)i;
					bad = 0;
				}
			}
			break;
		case OPT_MIX: bad = parse_u32(optarg, &c->rwmixread, 0, 100); break;
		case OPT_BS: bad = vfurt_parse_size(optarg, &c->bs) || !c->bs; break;
		case OPT_QD: bad = parse_u32(optarg, &c->iodepth, 1, 4095); break;
		case OPT_JOBS: bad = parse_u32(optarg, &c->jobs, 1, 64); break;
		case OPT_RUNTIME: bad = parse_secs(optarg, &c->runtime_ms) || !c->runtime_ms; break;
		case OPT_RAMP: bad = parse_secs(optarg, &c->ramp_ms); break;
		case OPT_CPUS: c->cpus = optarg; break;
		case OPT_DB:
			if (!strcmp(optarg, "mmap"))
				c->doorbell_msg = false;
			else if (!strcmp(optarg, "message"))
				c->doorbell_msg = true;
			else
				bad = 1;
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
	return 0;
}

static int self_serve_start(struct bench *b)
{
	struct vfurt_runtime_opts ro = {
		.opts_size = sizeof(ro),
		.cores = b->c.server_cpus,
		.poll_mode = VFURT_POLL_BUSY,
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
	rc = vfurt_bdev_from_spec(b->c.backend, b->c.size, b->c.block_size, &bdev, err,
				  sizeof(err));
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

static int read_namespace(struct bench *b)
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
	if (b->c.bs % b->lba_size || b->c.bs / b->lba_size > 0x10000) {
		fprintf(stderr, "vfu-bench: --bs must be a multiple of the LBA size %u\n",
			b->lba_size);
		return -EINVAL;
	}
	b->nlb_per_io = b->c.bs / b->lba_size;
	b->units = nsze / b->nlb_per_io;
	return b->units ? 0 : -EINVAL;
}

static int job_setup(struct bench *b, struct job *j, uint32_t idx)
{
	uint32_t qd = b->c.iodepth;
	int rc;

	j->qid = (uint16_t)(idx + 1);
	j->entries = qd + 1;
	j->vector = b->c.irq ? (int)j->qid : -1;
	if (j->entries > nh_max_entries(b->h)) {
		fprintf(stderr, "vfu-bench: --iodepth=%u needs %u queue entries, controller has %u\n",
			qd, j->entries, nh_max_entries(b->h));
		return -EINVAL;
	}
	if (b->c.irq && (uint32_t)j->vector >= nh_nvec(b->h)) {
		fprintf(stderr, "vfu-bench: no MSI-X vector %d for queue %u\n", j->vector, j->qid);
		return -EINVAL;
	}
	j->t0 = calloc(j->entries, sizeof(*j->t0));
	j->dir = calloc(j->entries, sizeof(*j->dir));
	j->buf_of = calloc(j->entries, sizeof(*j->buf_of));
	j->inflight = calloc(j->entries, sizeof(*j->inflight));
	j->bufs = calloc(qd, sizeof(*j->bufs));
	j->free_buf = calloc(qd, sizeof(*j->free_buf));
	if (!j->t0 || !j->dir || !j->buf_of || !j->inflight || !j->bufs || !j->free_buf)
		return -ENOMEM;
	for (uint32_t i = 0; i < qd; i++) {
		j->bufs[i] = nh_alloc(b->h, b->c.bs);
		if (!j->bufs[i])
			return -ENOMEM;
		j->free_buf[j->n_free++] = i;
	}
	j->rng = (0x9e3779b97f4a7c15ull * (idx + 1) ^ (uint64_t)getpid()) | 1u; /* xorshift: never 0 */
	j->seq_next = b->units / b->c.jobs * idx;
	vb_hist_reset(&j->hist[0]);
	vb_hist_reset(&j->hist[1]);
	rc = nh_create_io_pair(b->h, j->qid, j->entries, j->vector);
	if (rc) {
		fprintf(stderr, "vfu-bench: create queue pair %u: status %#x\n", j->qid,
			(unsigned)rc);
		return rc < 0 ? rc : -EIO;
	}
	return 0;
}

static void job_free(struct job *j)
{
	free(j->t0);
	free(j->dir);
	free(j->buf_of);
	free(j->inflight);
	free(j->bufs);
	free(j->free_buf);
}

/* Submit one I/O on j. 0, -EAGAIN (nothing free), or an error. */
static int submit_one(struct bench *b, struct job *j)
{
	uint64_t unit;
	uint32_t bi;
	uint16_t cid;
	int dir;
	int rc;

	if (!j->n_free)
		return -EAGAIN;
	switch (b->c.rw) {
	case RW_READ:
	case RW_RANDREAD: dir = DIR_READ; break;
	case RW_WRITE:
	case RW_RANDWRITE: dir = DIR_WRITE; break;
	default: dir = xorshift64(&j->rng) % 100 < b->c.rwmixread ? DIR_READ : DIR_WRITE; break;
	}
	if (b->c.rw == RW_READ || b->c.rw == RW_WRITE) {
		unit = j->seq_next;
		j->seq_next = (j->seq_next + 1) % b->units;
	} else {
		unit = xorshift64(&j->rng) % b->units;
	}
	bi = j->free_buf[j->n_free - 1];
	{
		struct nh_io io = {
			.opc = dir == DIR_READ ? NH_CMD_READ : NH_CMD_WRITE,
			.nsid = b->c.nsid,
			.slba = unit * b->nlb_per_io,
			.nlb = (uint32_t)b->nlb_per_io,
			.buf = j->bufs[bi],
			.len = b->c.bs,
		};
		uint64_t t = now_ns();

		rc = nh_io_submit(b->h, j->qid, &io, &cid);
		if (rc)
			return rc;
		j->t0[cid] = t;
	}
	j->n_free--;
	j->dir[cid] = (uint8_t)dir;
	j->buf_of[cid] = bi;
	j->inflight[j->n_inflight++] = cid;
	j->submitted_ios++;
	return 0;
}

/* Reap j's CQ, account completions, refill when `refill`. Only I/Os submitted at or
 * after `from` and completed by `to` are measured (ramp and drain excluded).
 * Returns completions or -errno. */
static int reap_job(struct bench *b, struct job *j, uint64_t from, uint64_t to, bool refill)
{
	int n = nh_reap(b->h, j->qid);
	int done = 0;
	uint64_t t;

	if (n <= 0)
		return n;
	t = now_ns();
	for (uint32_t i = 0; i < j->n_inflight; i++) {
		uint16_t cid = j->inflight[i];
		struct nh_cqe cqe;
		int st, dir;

		if (nh_outstanding(b->h, j->qid, cid))
			continue;
		st = nh_wait(b->h, j->qid, cid, &cqe, 0);
		dir = j->dir[cid];
		if (st)
			j->errors++;
		j->done_ios[dir]++;
		if (j->t0[cid] >= from && t <= to && !st) {
			j->ios[dir]++;
			vb_hist_add(&j->hist[dir], t - j->t0[cid]);
		}
		j->free_buf[j->n_free++] = j->buf_of[cid];
		j->inflight[i] = j->inflight[--j->n_inflight];
		i--;
		done++;
	}
	while (refill && j->n_free) {
		int rc = submit_one(b, j);

		if (rc == -EAGAIN) {
			j->sq_full++;
			break;
		}
		if (rc)
			return rc;
	}
	return done;
}

/* Sleep on the CQ vectors until one fires (bounded), then clear them. */
static int wait_irqs(struct bench *b, int timeout_ms)
{
	struct pollfd pfd[64];
	uint32_t n = b->c.jobs;
	int rc;

	for (uint32_t i = 0; i < n; i++) {
		pfd[i].fd = nh_vector_fd(b->h, (uint32_t)b->jobs[i].vector);
		pfd[i].events = POLLIN;
		pfd[i].revents = 0;
	}
	rc = poll(pfd, n, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	if (rc > 0)
		b->irq_wakeups++;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t v;

		if ((pfd[i].revents & POLLIN) && read(pfd[i].fd, &v, sizeof(v)) < 0 &&
		    errno != EAGAIN)
			return -errno;
	}
	return 0;
}

static void progress(struct bench *b, uint64_t t, uint64_t start, uint64_t ramp_end,
		     uint64_t last_t, uint64_t last_ios[2])
{
	uint64_t cur[2] = { 0, 0 };
	double dt = (double)(t - last_t) / 1e9;

	for (uint32_t i = 0; i < b->c.jobs; i++) {
		cur[0] += b->jobs[i].done_ios[0];
		cur[1] += b->jobs[i].done_ios[1];
	}
	fprintf(stderr, "[%4.0fs%s] read %9.1fk IOPS %8.1f MiB/s | write %9.1fk IOPS %8.1f MiB/s\n",
		(double)(t - start) / 1e9, t < ramp_end ? " ramp" : "",
		(double)(cur[0] - last_ios[0]) / dt / 1e3,
		(double)(cur[0] - last_ios[0]) * (double)b->c.bs / dt / 1048576.0,
		(double)(cur[1] - last_ios[1]) / dt / 1e3,
		(double)(cur[1] - last_ios[1]) * (double)b->c.bs / dt / 1048576.0);
	last_ios[0] = cur[0];
	last_ios[1] = cur[1];
}

static int run(struct bench *b)
{
	uint64_t start = now_ns();
	uint64_t ramp_end = start + b->c.ramp_ms * 1000000ull;
	uint64_t end = ramp_end + b->c.runtime_ms * 1000000ull;
	uint64_t next_prog = start + 1000000000ull, last_prog = start;
	uint64_t last_ios[2] = { 0, 0 };
	uint64_t t = start, drain_deadline = 0;
	bool submitting = true;

	for (uint32_t i = 0; i < b->c.jobs; i++) {
		for (uint32_t k = 0; k < b->c.iodepth; k++) {
			int rc = submit_one(b, &b->jobs[i]);

			if (rc) {
				fprintf(stderr, "vfu-bench: submit: %s\n", strerror(-rc));
				return rc;
			}
		}
	}
	for (;;) {
		int any = 0;
		uint32_t inflight = 0;

		for (uint32_t i = 0; i < b->c.jobs; i++) {
			int n = reap_job(b, &b->jobs[i], ramp_end, end, submitting);

			if (n < 0) {
				fprintf(stderr, "vfu-bench: I/O: %s\n", strerror(-n));
				return n;
			}
			any += n;
			inflight += b->jobs[i].n_inflight;
		}
		t = now_ns();
		if (submitting && (t >= end || stop_requested)) {
			submitting = false;
			end = t;
			b->measured_ns = t > ramp_end ? t - ramp_end : 0;
			drain_deadline = t + 5000000000ull;
		}
		if (!submitting && !inflight)
			break;
		if (!submitting && t > drain_deadline) {
			fprintf(stderr, "vfu-bench: %u I/Os never completed\n", inflight);
			return -ETIMEDOUT;
		}
		if (t >= next_prog) {
			progress(b, t, start, ramp_end, last_prog, last_ios);
			last_prog = t;
			next_prog += 1000000000ull;
		}
		if (!any && b->c.irq) {
			int rc = wait_irqs(b, 100);

			if (rc)
				return rc;
		}
	}
	return 0;
}

static void pct_row(FILE *f, const struct vb_hist *h)
{
	static const double cols[] = { 50, 90, 99, 99.9, 99.99 };

	fprintf(f, " %9.2f", vb_hist_mean(h) / 1e3);
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		fprintf(f, " %9.2f", (double)vb_hist_percentile(h, cols[i]) / 1e3);
	fprintf(f, " %9.2f", (double)h->max_ns / 1e3);
}

static void print_table(struct bench *b)
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
	       b->c.doorbell_msg ? "message" : "mmap", b->c.irq ? "irq" : "poll", secs,
	       (double)b->c.ramp_ms / 1e3, b->lba_size);
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
	{
		struct nh_stats st;
		uint64_t sub = 0, full = 0;

		nh_get_stats(b->h, &st);
		for (uint32_t i = 0; i < b->c.jobs; i++) {
			sub += b->jobs[i].submitted_ios;
			full += b->jobs[i].sq_full;
		}
		printf("client: %" PRIu64 " refills deferred on a full SQ\n", full);
		/* whole run (ramp, admin commands included): a batching indicator */
		printf("client: %.2f doorbell writes and %.3f irq wake-ups per I/O\n",
		       sub ? (double)st.mmio_doorbells / (double)sub : 0.0,
		       sub ? (double)b->irq_wakeups / (double)sub : 0.0);
	}
	free(all);
}

static void json_dir(FILE *f, const struct bench *b, const struct job *j, int d)
{
	const struct vb_hist *h = &j->hist[d];
	double secs = (double)b->measured_ns / 1e9;
	uint64_t bytes = j->ios[d] * b->c.bs;

	fprintf(f, "      \"%s\": {\n", d == DIR_READ ? "read" : "write");
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

static void print_json(struct bench *b)
{
	FILE *f = stdout;

	fprintf(f, "{\n  \"fio version\": \"vfu-bench-0.1\",\n  \"timestamp\": %lld,\n",
		(long long)time(NULL));
	fprintf(f, "  \"global options\": {\n    \"rw\": \"%s\",\n    \"bs\": \"%" PRIu64
		   "\",\n    \"iodepth\": \"%u\",\n    \"numjobs\": \"%u\",\n    \"runtime\": \"%g"
		   "\",\n    \"ramp_time\": \"%g\",\n    \"rwmixread\": \"%u\",\n"
		   "    \"doorbell\": \"%s\",\n    \"completion\": \"%s\"\n  },\n",
		rw_name(b->c.rw), b->c.bs, b->c.iodepth, b->c.jobs, (double)b->c.runtime_ms / 1e3,
		(double)b->c.ramp_ms / 1e3,
		b->c.rwmixread, b->c.doorbell_msg ? "message" : "mmap", b->c.irq ? "irq" : "poll");
	fputs("  \"jobs\": [\n", f);
	for (uint32_t i = 0; i < b->c.jobs; i++) {
		const struct job *j = &b->jobs[i];

		fprintf(f, "    {\n      \"jobname\": \"qp%u\",\n      \"groupid\": 0,\n"
			   "      \"error\": %d,\n      \"nvme_errors\": %" PRIu64 ",\n"
			   "      \"job_runtime\": %" PRIu64 ",\n",
			j->qid, j->errors ? EIO : 0, j->errors, b->measured_ns / 1000000u);
		json_dir(f, b, j, DIR_READ);
		fputs(",\n", f);
		json_dir(f, b, j, DIR_WRITE);
		fprintf(f, "\n    }%s\n", i + 1 < b->c.jobs ? "," : "");
	}
	fputs("  ]\n}\n", f);
}

/* --plot: all queue pairs' histograms merged per direction, the workload as the title. */
static int write_plot(struct bench *b)
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
		 b->c.doorbell_msg ? "message" : "mmap", b->c.irq ? "irq" : "poll",
		 b->c.self_serve ? b->c.backend : "remote", (double)b->measured_ns / 1e9);
	rc = vb_plot_svg(b->c.plot, &all[0], &all[1], title);
	if (rc)
		fprintf(stderr, "vfu-bench: --plot=%s: %s\n", b->c.plot, strerror(-rc));
	free(all);
	return rc;
}

static int setup_host(struct bench *b)
{
	uint64_t per_job = (uint64_t)b->c.iodepth * ((b->c.bs + NH_PAGE - 1) / NH_PAGE * NH_PAGE) +
			   (uint64_t)(b->c.iodepth + 1) * 80u + 4u * NH_PAGE;
	struct nvme_host_opts ho = {
		.mem_size = (size_t)(per_job * b->c.jobs + (16u << 20)),
		.timeout_ms = 5000,
		.doorbell_msg = b->c.doorbell_msg,
		.irq_wait = b->c.irq,
	};
	uint32_t dw0 = 0;
	int rc;

	b->h = nh_open(b->c.socket, &ho);
	if (!b->h) {
		fprintf(stderr, "vfu-bench: connect %s: %s\n", b->c.socket, strerror(errno));
		return -ENOTCONN;
	}
	if (!b->c.doorbell_msg && !nh_doorbells_mapped(b->h)) {
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
	rc = read_namespace(b);
	if (rc)
		return rc;
	b->jobs = calloc(b->c.jobs, sizeof(*b->jobs));
	if (!b->jobs)
		return -ENOMEM;
	for (uint32_t i = 0; i < b->c.jobs; i++) {
		rc = job_setup(b, &b->jobs[i], i);
		if (rc)
			return rc;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	struct sigaction sa = { .sa_handler = on_signal };
	int rc;

	if (!b)
		return 1;
	rc = parse_args(argc, argv, &b->c);
	if (rc)
		goto out_free;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (b->c.self_serve) {
		rc = self_serve_start(b);
		if (rc)
			goto out_rt;
	}
	if (b->c.cpus) {
		cpu_set_t set;

		rc = parse_cpus(b->c.cpus, &set);
		if (rc) {
			fprintf(stderr, "vfu-bench: bad --cpus=%s\n", b->c.cpus);
			goto out_rt;
		}
		rc = -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
		if (rc) {
			fprintf(stderr, "vfu-bench: pin to %s: %s\n", b->c.cpus, strerror(-rc));
			goto out_rt;
		}
	}
	rc = setup_host(b);
	if (rc)
		goto out_host;
	rc = run(b);
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
	if (b->jobs) {
		for (uint32_t i = 0; i < b->c.jobs; i++)
			job_free(&b->jobs[i]);
	}
	nh_close(b->h);
	free(b->jobs);
out_rt:
	vfurt_runtime_destroy(b->rt);
	if (b->sock_path[0])
		unlink(b->sock_path);
out_free:
	free(b);
	return rc ? 1 : 0;
}
