/* vfu-bench options: the command line parsed into struct vb_cfg, and the usage text. */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/devspec.h"
#include "vfu_bench.h"

#define N_RW 7

/* Constant tables live in functions: the file keeps no state outside main's objects. */
const char *vb_rw_name(unsigned m)
{
	static const char *const names[N_RW] = { "read", "write", "randread", "randwrite",
						 "randrw", "zeroes", "trim" };

	return m < N_RW ? names[m] : "?";
}

const char *vb_doorbell_name(const struct vb_cfg *c)
{
	static const char *const names[] = { "mmap", "message", "ioeventfd" };

	return names[c->doorbell];
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
	      "  --gaps=FILE            write every gap between two completions of a queue pair\n"
	      "                         of at least --gap-min to FILE: \"qpN FROM TO GAP\",\n"
	      "                         FROM/TO in CLOCK_REALTIME ns (as date +%s%N), GAP in ns\n"
	      "                         (e.g. a server's live-upgrade pauses: bench/upgrade.sh);\n"
	      "                         the longest gap is reported with or without it\n"
	      "  --gap-min=US           default 1000\n"
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
int vb_parse_cpus(const char *s, cpu_set_t *set)
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
	OPT_PROBE, OPT_PROBE_US, OPT_DEAC, OPT_GAPS, OPT_GAP_MIN,
};

int vb_parse_args(int argc, char **argv, struct vb_cfg *c)
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
		{ "gaps", required_argument, NULL, OPT_GAPS },
		{ "gap-min", required_argument, NULL, OPT_GAP_MIN },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	*c = (struct vb_cfg){
		.server_cpus = "1", .backend = "null", .size = 1ull << 30, .block_size = 4096,
		.nsid = 1, .rw = VB_RW_RANDREAD, .rwmixread = 50, .bs = 4096, .iodepth = 1,
		.jobs = 1, .runtime_ms = 10000, .probe_interval_us = 1000, .gap_min_us = 1000,
	};
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		int bad = 0;

		switch (o) {
		case OPT_SOCKET: c->socket = optarg; break;
		case OPT_SELF: c->self_serve = true; break;
		case OPT_SCPUS: c->server_cpus = optarg; break;
		case OPT_BACKEND: c->backend = optarg; break;
		case OPT_SIZE: bad = vfr_devspec_parse_size(optarg, &c->size) || !c->size; break;
		case OPT_BLKSZ:
			bad = parse_u32(optarg, &c->block_size, 512, 4096) ||
			      (c->block_size != 512 && c->block_size != 4096);
			break;
		case OPT_NSID: bad = parse_u32(optarg, &c->nsid, 1, UINT32_MAX - 1); break;
		case OPT_RW:
			bad = 1;
			for (unsigned i = 0; i < N_RW; i++) {
				if (!strcmp(optarg, vb_rw_name(i))) {
					c->rw = (enum vb_rw)i;
					bad = 0;
				}
			}
			break;
		case OPT_MIX: bad = parse_u32(optarg, &c->rwmixread, 0, 100); break;
		case OPT_BS: bad = vfr_devspec_parse_size(optarg, &c->bs) || !c->bs; break;
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
		case OPT_GAPS: c->gaps = optarg; bad = !*optarg; break;
		case OPT_GAP_MIN: bad = parse_u32(optarg, &c->gap_min_us, 1, 100000000); break;
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
