/* vfu-rt: serve emulated PCI devices to VMMs over vfio-user sockets from pinned polling workers. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vfurt/runtime.h>
#include <vfurt/server.h>
#include <vfurt/vfio_user.h>

#include "config.h"
#include "conn_limits.h"
#include "cpuset.h"
#include "devspec.h"
#include "vfu_rt_ctl.h"
#include "vfu_rt_daemon.h"
#include "vfu_rt_notify.h"
#include "vfu_rt_upgrade.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* How long a shutdown may take before the daemon gives up on its workers. */
#define STOP_TIMEOUT_S 10
#define MAX_DEVICE_ARGS 1024
#define MAX_LIMIT_ARGS 64

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vfu-rt [options] --device TYPE,socket=PATH[,key=value...] [--device ...]\n"
		"       vfu-rt [options] --config FILE [--device ...]\n"
		"\n"
		"Serve emulated PCI devices to VMMs (QEMU 10.1+ vfio-user-pci, Cloud Hypervisor,\n"
		"SPDK) over vfio-user, one UNIX socket per device, from one polling worker thread\n"
		"pinned to each CPU of --cores.\n"
		"\n"
		"Options:\n"
		"  -d, --device SPEC         add a device; SPEC is TYPE,socket=PATH[,socket_mode=0600]\n"
		"                            [,name=NAME][,core=CPU][,type-specific keys]. Types: %s\n"
		"                            core=CPU picks the home worker by its CPU (one of\n"
		"                            --cores; default: round robin)\n"
		"                            gpio keys: toggle_period=N (input toggles every N reads, 3)\n"
		"                            nvme keys: backend=ram|null|file:PATH (ram),\n"
		"                            size=SIZE per namespace (1G), namespaces=N (1),\n"
		"                            queues=N I/O queue pairs (4), queue_entries=N (1024),\n"
		"                            lba=512|4096 (512), serial=S, model=M,\n"
		"                            direct=off|on|try (file backend O_DIRECT, off),\n"
		"                            doorbells=mmap|ioeventfd (mmap; ioeventfd traps the\n"
		"                            page and offers ioeventfds: guests must use shadow\n"
		"                            doorbells)\n"
		"  -c, --cores LIST          CPUs to run workers on, e.g. 0-3,6 (default 0)\n"
		"  -p, --poll MODE           busy: spin forever, lowest latency, one full core per\n"
		"                            worker; adaptive (default): spin while work arrives,\n"
		"                            then sleep until socket or eventfd activity, so an idle\n"
		"                            daemon costs no CPU\n"
		"      --poll-sleep-us US    adaptive: longest sleep while a queue cannot be woken\n"
		"                            (NVMe doorbells=mmap without shadow doorbells), so\n"
		"                            the worst added latency after idle (1000)\n"
		"  -f, --config FILE         JSON config: {\"cores\", \"poll\", \"log_level\",\n"
		"                            \"poll_sleep_us\", \"stats_interval\", \"control_socket\",\n"
		"                            \"devices\": [{\"type\",\n"
		"                            \"socket\", ...same keys as --device...}]}; command-line\n"
		"                            options override its settings, --device adds devices\n"
		"  -s, --stats-interval S    log one summary line per worker every S seconds (0 = off,\n"
		"                            the default)\n"
		"  -C, --control-socket PATH the control socket (JSON-RPC 2.0, one request per line:\n"
		"                            add and remove devices and NVMe namespaces, statistics,\n"
		"                            log level, config_save; docs/managing.md); default\n"
		"                            $XDG_RUNTIME_DIR/vfu-rt/PID.ctl, or /tmp/vfu-rt-UID/PID.ctl\n"
		"                            (private 0700 directories; a stale socket of a crashed\n"
		"                            daemon is replaced, a live one is an error)\n"
		"                            (with PATH given, that name becomes a link to PATH);\n"
		"                            use it with: vfu-ctl --socket PATH-or-PID list|add|...\n"
		"  -l, --log-level LVL       error, warn, info (default) or debug (a running daemon:\n"
		"                            vfu-ctl log-level LVL)\n"
		"  -L, --limit KEY=VALUE     a per-client limit (also the config's \"limits\" object):\n"
		"                            version_timeout_ms (2000), drain_timeout_ms (5000),\n"
		"                            dma_reply_timeout_ms (5000), max_queued_bytes (4 MiB),\n"
		"                            max_queued_msgs (1024), max_data_xfer_size (1 MiB),\n"
		"                            max_msg_fds (16), max_irq_fds (1024),\n"
		"                            max_dma_maps (1024); process-wide:\n"
		"                            dma_maps_process_max (half of vm.max_map_count),\n"
		"                            dma_maps_min_per_client (64); see docs/security.md\n"
		"  -h, --help                show this help\n"
		"  -V, --version             show the version\n"
		"\n"
		"Example:\n"
		"  vfu-rt --cores=0-1 --device gpio,socket=/run/vfu/gpio0.sock,socket_mode=0600,core=1\n"
		"\n"
		"Signals: SIGTERM or SIGINT stop; SIGHUP reads --config again and applies the\n"
		"difference: devices of the file that are not served are added, devices that\n"
		"came from the file and left it are removed, changed ones replaced (--device and\n"
		"control-socket devices are left alone); log_level and stats_interval apply,\n"
		"cores, poll and limits are ignored until a restart. A file that does not load\n"
		"changes nothing.\n"
		"\n"
		"Exit status: 0 after SIGTERM/SIGINT, 1 on a runtime error, 2 on a usage or\n"
		"configuration error.\n",
		vfr_devspec_types());
}

/* Command-line settings; each overrides the config file's when given. */
struct cmdline {
	const char *config;
	const char *cores;
	bool has_poll;
	enum vfurt_poll_mode poll_mode;
	bool has_log_level;
	int log_level;
	bool has_stats;
	uint32_t stats_interval_s;
	bool has_poll_sleep;
	uint32_t poll_sleep_us;
	const char *control_socket;
	const char *devices[MAX_DEVICE_ARGS];
	size_t ndevices;
	const char *limits[MAX_LIMIT_ARGS]; /* --limit KEY=VALUE, checked */
	size_t nlimits;
	int upgrade_fd;                     /* --upgrade-fd (internal), or -1 */
};

/* Returns 0, -1 after --help/--version (exit 0), or EXIT_USAGE after a message. */
static int parse_args(int argc, char **argv, struct cmdline *cl)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "cores", required_argument, NULL, 'c' },
		{ "poll", required_argument, NULL, 'p' },
		{ "config", required_argument, NULL, 'f' },
		{ "stats-interval", required_argument, NULL, 's' },
		{ "poll-sleep-us", required_argument, NULL, 'S' },
		{ "control-socket", required_argument, NULL, 'C' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "limit", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "upgrade-fd", required_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	int cpus[VFURT_MAX_CPUS];
	char err[256];
	size_t n;
	int opt;

	while ((opt = getopt_long(argc, argv, "d:c:p:f:s:S:C:l:L:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			if (cl->ndevices == MAX_DEVICE_ARGS) {
				fprintf(stderr, "vfu-rt: at most %d --device options\n", MAX_DEVICE_ARGS);
				return EXIT_USAGE;
			}
			cl->devices[cl->ndevices++] = optarg;
			break;
		case 'c':
			if (vfr_cpulist_parse(optarg, cpus, VFURT_MAX_CPUS, &n, err, sizeof(err))) {
				fprintf(stderr, "vfu-rt: --cores: %s\n", err);
				return EXIT_USAGE;
			}
			cl->cores = optarg;
			break;
		case 'L': {
			struct vfurt_conn_opts scratch = { 0 };

			if (cl->nlimits == MAX_LIMIT_ARGS) {
				fprintf(stderr, "vfu-rt: at most %d --limit options\n", MAX_LIMIT_ARGS);
				return EXIT_USAGE;
			}
			if (vfr_limit_parse_arg(&scratch, optarg, err, sizeof(err))) {
				fprintf(stderr, "vfu-rt: --limit %s\n", err);
				return EXIT_USAGE;
			}
			cl->limits[cl->nlimits++] = optarg;
			break;
		}
		case 'p':
			if (vfr_config_parse_poll(optarg, &cl->poll_mode)) {
				fprintf(stderr, "vfu-rt: --poll '%s': expected busy or adaptive\n", optarg);
				return EXIT_USAGE;
			}
			cl->has_poll = true;
			break;
		case 'f':
			if (cl->config) {
				fprintf(stderr, "vfu-rt: --config given twice\n");
				return EXIT_USAGE;
			}
			cl->config = optarg;
			break;
		case 's':
			if (vfr_config_parse_stats_interval(optarg, &cl->stats_interval_s)) {
				fprintf(stderr, "vfu-rt: --stats-interval '%s': expected seconds, "
					"0..%u (0 = off)\n", optarg, VFURT_CONFIG_STATS_MAX);
				return EXIT_USAGE;
			}
			cl->has_stats = true;
			break;
		case 'S':
			if (vfr_config_parse_poll_sleep(optarg, &cl->poll_sleep_us)) {
				fprintf(stderr, "vfu-rt: --poll-sleep-us '%s': expected microseconds, "
					"1..%u\n", optarg, VFURT_CONFIG_POLL_SLEEP_MAX);
				return EXIT_USAGE;
			}
			cl->has_poll_sleep = true;
			break;
		case 'C':
			if (!*optarg || strlen(optarg) > VFURT_CONFIG_PATH_MAX) {
				fprintf(stderr, "vfu-rt: --control-socket: expected a path of 1..%d "
					"bytes\n", VFURT_CONFIG_PATH_MAX);
				return EXIT_USAGE;
			}
			cl->control_socket = optarg;
			break;
		case 'l':
			if (vfr_config_parse_log_level(optarg, &cl->log_level)) {
				fprintf(stderr, "vfu-rt: --log-level '%s': expected error, warn, info "
					"or debug\n", optarg);
				return EXIT_USAGE;
			}
			cl->has_log_level = true;
			break;
		case 'U': /* internal: a live upgrade's new process (docs/restart.md) */
			cl->upgrade_fd = -1;
			if (strcmp(optarg, "3") == 0)
				cl->upgrade_fd = 3; /* what the old process gives */
			if (cl->upgrade_fd < 3) {
				fprintf(stderr, "vfu-rt: --upgrade-fd is for vfu-rt itself\n");
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return -1;
		case 'V':
			printf("vfu-rt %s (vfio-user protocol %d.%d)\n", VFURT_VERSION,
			       VFIO_USER_MAJOR, VFIO_USER_MINOR);
			return -1;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vfu-rt: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return 0;
}

/* File first, then the command line on top: settings override, devices append. */
static int build_config(const struct cmdline *cl, struct vfurt_config *cfg)
{
	char err[1024];
	int rc;

	if (cl->config) {
		rc = vfr_config_load(cfg, cl->config, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "vfu-rt: %s\n", err);
			return EXIT_USAGE;
		}
	}
	for (size_t i = 0; i < cl->ndevices; i++) {
		rc = vfr_config_add_device_arg(cfg, cl->devices[i], err, sizeof(err));
		if (rc) {
			fprintf(stderr, "vfu-rt: %s\n", err);
			return rc == -ENOMEM ? EXIT_RUNTIME : EXIT_USAGE;
		}
	}
	if (cl->cores) {
		free(cfg->cores);
		cfg->cores = strdup(cl->cores);
		if (!cfg->cores)
			goto err_nomem;
	}
	for (size_t i = 0; i < cl->nlimits; i++)
		(void)vfr_limit_parse_arg(&cfg->conn, cl->limits[i], err, sizeof(err));
	if (cl->has_poll) {
		cfg->has_poll = true;
		cfg->poll_mode = cl->poll_mode;
	}
	if (cl->has_log_level) {
		cfg->has_log_level = true;
		cfg->log_level = cl->log_level;
	}
	if (cl->has_stats) {
		cfg->has_stats_interval = true;
		cfg->stats_interval_s = cl->stats_interval_s;
	}
	if (cl->has_poll_sleep) {
		cfg->has_poll_sleep = true;
		cfg->poll_sleep_us = cl->poll_sleep_us;
	}
	if (cl->control_socket) {
		free(cfg->control_socket);
		cfg->control_socket = strdup(cl->control_socket);
		if (!cfg->control_socket)
			goto err_nomem;
	}
	rc = vfr_config_check_sockets(cfg, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "vfu-rt: %s\n", err);
		return rc == -ENOMEM ? EXIT_RUNTIME : EXIT_USAGE;
	}
	if (cfg->ndevices == 0) {
		fprintf(stderr, "vfu-rt: no devices: add at least one --device, or a \"devices\" "
			"entry in the --config file\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	return 0;

err_nomem:
	fprintf(stderr, "vfu-rt: out of memory\n");
	return EXIT_RUNTIME;
}

/* Build each device and give it to the runtime. Returns 0 or an exit status. */
static int add_devices(struct daemon *d)
{
	char err[1024];

	for (size_t i = 0; i < d->cfg.ndevices; i++) {
		struct vfurt_config_device *cd = &d->cfg.devices[i];
		int rc = devtab_add(&d->devs, cd, cd->from_file ? DEV_FILE : DEV_CMDLINE, NULL, err,
				    sizeof(err));

		if (rc) {
			fprintf(stderr, "vfu-rt: %s\n", err);
			return rc == -EINVAL || rc == -EEXIST ? EXIT_USAGE : EXIT_RUNTIME;
		}
	}
	return 0;
}

/* ---- periodic summary ------------------------------------------------------ */

/* One line per worker with the change since the last summary (prev[] is updated). */
static void log_summary(const struct vfurt_runtime *rt, struct vfurt_worker_stats *prev,
			const struct vfurt_log *log)
{
	for (uint32_t i = 0; i < vfurt_runtime_worker_count(rt); i++) {
		struct vfurt_worker_stats st = { .stats_size = sizeof(st) };
		struct vfurt_worker_stats *p = &prev[i];
		uint64_t dt;
		double busy;

		if (vfurt_runtime_get_worker_stats(rt, i, &st))
			continue;
		dt = st.total_ns - p->total_ns;
		busy = dt ? 100.0 * (double)(st.busy_ns - p->busy_ns) / (double)dt : 0.0;
		vfurt_logf(log, VFURT_LOG_INFO,
			   "worker %u (CPU %d): %" PRIu64 " passes, busy %.1f%%, %" PRIu64 " msgs, "
			   "irqs %" PRIu64 " raised / %" PRIu64 " written, %" PRIu64 " sleeps "
			   "(last interval)",
			   i, vfurt_worker_cpu(vfurt_runtime_worker(rt, i)), st.passes - p->passes,
			   busy, st.msgs - p->msgs, st.irqs_raised - p->irqs_raised,
			   st.irqs_written - p->irqs_written, st.sleeps - p->sleeps);
		*p = st;
	}
}

/* ---- main ---------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Serve until SIGTERM/SIGINT: signals, the stats timer, completed removals
 * and the control clients, none of which may block the loop. Returns the
 * exit status.
 */
static int run(struct daemon *d, int sfd)
{
	enum { P_SIG, P_TIMER, P_REMOVED, P_RPC, P_MAX = P_RPC + RPC_NFDS };
	int rc = EXIT_RUNTIME;

	d->prev = calloc(vfurt_runtime_worker_count(d->rt), sizeof(*d->prev));
	if (!d->prev) {
		fprintf(stderr, "vfu-rt: out of memory\n");
		return EXIT_RUNTIME;
	}
	if (d->cfg.stats_interval_s) {
		int err = daemon_set_stats_interval(d, d->cfg.stats_interval_s);

		if (err) {
			fprintf(stderr, "vfu-rt: timerfd: %s\n", strerror(-err));
			return EXIT_RUNTIME;
		}
	}
	for (;;) {
		struct pollfd pfd[P_MAX];
		int nrpc = 0;
		int timeout = -1;

		pfd[P_SIG] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		pfd[P_TIMER] = (struct pollfd){ .fd = d->stats_fd, .events = POLLIN };
		pfd[P_REMOVED] = (struct pollfd){ .fd = devtab_fd(&d->devs), .events = POLLIN };
		if (d->ctl.fd >= 0) {
			nrpc = rpc_pollfds(&d->rpc, &pfd[P_RPC]);
			timeout = rpc_timeout_ms(&d->rpc);
		}
		if (poll(pfd, (nfds_t)(P_RPC + nrpc), timeout) < 0) {
			if (errno == EINTR)
				continue;
			perror("vfu-rt: poll");
			break;
		}
		if (pfd[P_SIG].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					daemon_reload(d);
				} else {
					vfurt_logf(&d->log, VFURT_LOG_INFO, "%s: shutting down",
						   strsignal((int)si.ssi_signo));
					rc = 0;
					break;
				}
			}
		}
		if (pfd[P_REMOVED].revents)
			devtab_reap(&d->devs);
		if (nrpc)
			rpc_handle(&d->rpc, &pfd[P_RPC], nrpc, mono_ns());
		if (d->upgraded)
			return 0;
		if (d->stats_fd >= 0 && pfd[P_TIMER].revents) {
			uint64_t ticks;

			if (read(d->stats_fd, &ticks, sizeof(ticks)) == sizeof(ticks) &&
			    d->cfg.stats_interval_s)
				log_summary(d->rt, d->prev, &d->log);
		}
	}
	return rc;
}

struct stop_watch {
	struct vfurt_runtime *rt;
	const struct vfurt_log *log;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

/*
 * A worker that never finishes its pass (a bug: a wait on another worker, a
 * device callback that does not return) must not keep a SIGTERM'd daemon
 * alive: after STOP_TIMEOUT_S say which worker is stuck where, and exit.
 */
static void *stop_watchdog(void *arg)
{
	struct stop_watch *sw = arg;
	struct timespec until;
	bool done;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += STOP_TIMEOUT_S;
	pthread_mutex_lock(&sw->lock);
	while (!sw->done)
		if (pthread_cond_timedwait(&sw->cond, &sw->lock, &until))
			break;
	done = sw->done;
	pthread_mutex_unlock(&sw->lock);
	if (done)
		return NULL;
	for (uint32_t i = 0; i < vfurt_runtime_worker_count(sw->rt); i++) {
		const char *where = vfurt_runtime_worker_where(sw->rt, i);

		if (strcmp(where, "not running"))
			vfurt_logf(sw->log, VFURT_LOG_ERR, "shutdown: worker %u did not stop "
				   "within %d s: stuck %s", i, STOP_TIMEOUT_S, where);
	}
	vfurt_logf(sw->log, VFURT_LOG_ERR, "shutdown timed out: exiting without cleanup");
	_exit(EXIT_RUNTIME);
}

/* Stop the runtime, bounded in time by stop_watchdog. */
static void stop_bounded(struct vfurt_runtime *rt, const struct vfurt_log *log)
{
	struct stop_watch sw = { .rt = rt, .log = log, .lock = PTHREAD_MUTEX_INITIALIZER,
				 .cond = PTHREAD_COND_INITIALIZER };
	pthread_t t;
	bool watched = pthread_create(&t, NULL, stop_watchdog, &sw) == 0;

	vfurt_runtime_stop(rt);
	if (!watched)
		return;
	pthread_mutex_lock(&sw.lock);
	sw.done = true;
	pthread_cond_signal(&sw.cond);
	pthread_mutex_unlock(&sw.lock);
	pthread_join(t, NULL);
}

/*
 * The main thread builds devices (a RAM namespace is faulted in as it is
 * created) and serves the control socket: keep it off the workers' CPUs
 * when the process may use others, so that a device_add never preempts a
 * polling worker. Threads created afterwards inherit it.
 */
static void keep_off_workers(struct daemon *d)
{
	uint32_t n = vfurt_runtime_worker_count(d->rt);
	int cpus[VFURT_MAX_CPUS];
	char where[256] = "";
	int rc;

	for (uint32_t i = 0; i < n && i < VFURT_MAX_CPUS; i++)
		cpus[i] = vfurt_worker_cpu(vfurt_runtime_worker(d->rt, i));
	rc = vfr_cpu_bind_away(cpus, n < VFURT_MAX_CPUS ? n : VFURT_MAX_CPUS, where,
			       sizeof(where));
	if (!rc)
		vfurt_logf(&d->log, VFURT_LOG_DEBUG, "control thread on CPUs %s", where);
	else if (rc == -ENOENT)
		vfurt_logf(&d->log, VFURT_LOG_DEBUG, "control thread shares the workers' CPUs "
			   "(no other CPU is allowed)");
	else
		vfurt_logf(&d->log, VFURT_LOG_WARN, "cannot keep the control thread off the "
			   "workers' CPUs: %s", strerror(-rc));
}

/* This binary's path, for an upgrade without --exec: read now, since a
 * package upgrade replaces the file (/proc/self/exe then says "deleted"). */
static void self_exe(char *out, size_t len, const char *argv0)
{
	ssize_t n = readlink("/proc/self/exe", out, len - 1);

	if (n > 0) {
		out[n] = '\0';
		return;
	}
	snprintf(out, len, "%s", argv0);
}

int main(int argc, char **argv)
{
	struct cmdline cl = { 0 };
	struct upgrade_in up = { .fd = -1 };
	bool upgrading = false;
	uint64_t go_ns = 0;
	struct vfurt_runtime_opts ro = { .opts_size = sizeof(ro) };
	struct daemon *d;
	char err[512];
	sigset_t mask;
	int sfd;
	int rc;

	cl.upgrade_fd = -1;
	rc = parse_args(argc, argv, &cl);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (cl.upgrade_fd >= 0) {
		/* the configuration comes from the process being replaced */
		rc = upgrade_recv_config(&up, cl.upgrade_fd, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "vfu-rt: error: upgrade: %s\n", err);
			upgrade_fail(&up, err);
			upgrade_in_fini(&up);
			return EXIT_RUNTIME;
		}
		upgrading = true;
		cl.config = up.config_file;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		fprintf(stderr, "vfu-rt: out of memory\n");
		return EXIT_RUNTIME;
	}
	d->stats_fd = -1;
	d->ctl.fd = -1;
	d->config_path = cl.config;
	d->cl_log_level = cl.has_log_level;
	d->cl_stats = cl.has_stats;
	d->cl_cores = cl.cores != NULL;
	d->cl_poll = cl.has_poll;
	d->cl_poll_sleep = cl.has_poll_sleep;
	d->cl_control_socket = cl.control_socket != NULL;
	d->cl_limits = cl.nlimits > 0;
	if (upgrading) {
		d->config_path = up.has_user_config ? up.user_config : NULL;
		d->cl_log_level = up.cl_log_level;
		d->cl_stats = up.cl_stats;
		d->cl_cores = up.cl_cores;
		d->cl_poll = up.cl_poll;
		d->cl_poll_sleep = up.cl_poll_sleep;
		d->cl_control_socket = up.cl_control_socket;
		d->cl_limits = up.cl_limits;
	}
	self_exe(d->self_exe, sizeof(d->self_exe), argv[0]);
	d->has_start_cpus = sched_getaffinity(0, sizeof(d->start_cpus), &d->start_cpus) == 0;
	vfr_config_init(&d->cfg);
	rc = build_config(&cl, &d->cfg);
	if (rc)
		goto out_cfg;
	d->log = dlog_init(&d->dlog, d->cfg.log_level);

	/* Block before any thread exists, so only the signalfd sees these. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		perror("vfu-rt: signalfd");
		rc = EXIT_RUNTIME;
		goto out_cfg;
	}

	ro.cores = d->cfg.cores ? d->cfg.cores : "0";
	ro.poll_mode = d->cfg.poll_mode;
	if (d->cfg.has_poll_sleep)
		ro.adaptive_poll_sleep_us = d->cfg.poll_sleep_us;
	ro.log = d->log;
	ro.conn = d->cfg.conn;
	ro.conn.opts_size = sizeof(ro.conn);
	d->rt = vfurt_runtime_create(&ro, err, sizeof(err));
	if (!d->rt) {
		if (errno == EINVAL) {
			if (cl.cores)
				fprintf(stderr, "vfu-rt: --cores: %s\n", err);
			else if (d->cfg.cores)
				fprintf(stderr, "vfu-rt: %s: cores: %s\n", cl.config, err);
			else
				fprintf(stderr, "vfu-rt: --cores (default 0): %s\n", err);
			rc = EXIT_USAGE;
		} else {
			fprintf(stderr, "vfu-rt: cannot create the runtime: %s\n", err);
			rc = EXIT_RUNTIME;
		}
		goto out_sfd;
	}
	rc = devtab_init(&d->devs, d->rt, &d->log, d->cfg.control_socket);
	if (rc) {
		fprintf(stderr, "vfu-rt: cannot set up the device table: %s\n", strerror(-rc));
		rc = EXIT_RUNTIME;
		goto out_rt;
	}
	d->devs.defer_serve = upgrading;
	rc = add_devices(d);
	if (rc)
		goto out_devs;
	if (upgrading) {
		/* built: the old process freezes and sends the state */
		rc = upgrade_built(&up, err, sizeof(err));
		if (!rc)
			rc = upgrade_restore(d, &up, err, sizeof(err));
		if (rc) {
			fprintf(stderr, "vfu-rt: error: upgrade: %s\n", err);
			upgrade_fail(&up, err);
			_exit(EXIT_RUNTIME); /* holds the old process's files: touch nothing */
		}
		/* the workers start now, serving nothing yet: not in the pause */
		rc = vfurt_runtime_start(d->rt);
		if (rc) {
			snprintf(err, sizeof(err), "cannot start the workers: %s", strerror(-rc));
			fprintf(stderr, "vfu-rt: error: upgrade: %s\n", err);
			upgrade_fail(&up, err);
			_exit(EXIT_RUNTIME);
		}
		if (upgrade_commit(&up))
			_exit(EXIT_RUNTIME); /* aborted: the old process serves on */
		go_ns = mono_ns();
		vfurt_runtime_thaw(d->rt);
	}
	/* the devices live in the table now; cfg keeps the settings */
	for (size_t i = 0; i < d->cfg.ndevices; i++)
		vfr_config_device_fini(&d->cfg.devices[i]);
	free(d->cfg.devices);
	d->cfg.devices = NULL;
	d->cfg.ndevices = 0;
	rc = d->ctl.fd >= 0 ? 0 : ctl_open(&d->ctl, d->cfg.control_socket, &d->log);
	if (rc) {
		rc = EXIT_RUNTIME;
		goto out_devs;
	}
	rpc_init(&d->rpc, d->ctl.fd, vfr_daemon_methods, d, &d->log);
	rc = upgrading ? 0 : vfurt_runtime_start(d->rt);
	if (rc) {
		fprintf(stderr, "vfu-rt: cannot start the workers: %s\n", strerror(-rc));
		rc = EXIT_RUNTIME;
		goto out_ctl;
	}
	if (go_ns)
		vfurt_logf(&d->log, VFURT_LOG_DEBUG, "upgrade: devices thawed %llu us after the go",
			   (unsigned long long)((mono_ns() - go_ns) / 1000u));
	keep_off_workers(d);
	vfurt_logf(&d->log, VFURT_LOG_INFO, "serving %zu device(s) on %u worker(s) (CPUs %s, %s "
		   "polling); SIGTERM or SIGINT stops, SIGHUP reloads --config", d->devs.n,
		   vfurt_runtime_worker_count(d->rt), ro.cores,
		   ro.poll_mode == VFURT_POLL_BUSY ? "busy" : "adaptive");
	if (upgrading) {
		vfurt_logf(&d->log, VFURT_LOG_INFO, "upgrade: took over from the previous process");
		upgrade_in_fini(&up);
	}
	/* a Type=notify unit: ready, and (after an upgrade) the new main PID */
	rc = daemon_notify_ready();
	if (rc)
		vfurt_logf(&d->log, VFURT_LOG_WARN, "NOTIFY_SOCKET: %s", strerror(-rc));
	rc = run(d, sfd);
	if (d->upgraded) {
		/* handed over: answer the request, then leave without touching
		 * anything the new process serves (sockets, guest memory) */
		rpc_refuse_pending(&d->rpc);
		rpc_flush_all(&d->rpc, 1000);
		fflush(stderr);
		_exit(0);
	}
	daemon_notify("STOPPING=1");
	d->devs.stopping = true;
	stop_bounded(d->rt, &d->log);
	devtab_reap(&d->devs); /* removals the stop completed: answer them */
out_ctl:
	rpc_fini(&d->rpc);
	ctl_close(&d->ctl);
out_devs:
out_rt:
	vfurt_runtime_destroy(d->rt);
	devtab_fini(&d->devs);
out_sfd:
	close(sfd);
out_cfg:
	if (d->stats_fd >= 0)
		close(d->stats_fd);
	free(d->prev);
	vfr_config_free(&d->cfg);
	free(d);
	return rc;
}
