/* vfu-rt's state: one struct the main loop, the control methods and SIGHUP share. */
#ifndef VFURT_RUNTIME_VFU_RT_DAEMON_H
#define VFURT_RUNTIME_VFU_RT_DAEMON_H

#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include <vfurt/log.h>
#include <vfurt/runtime.h>

#include "config.h"
#include "vfu_rt_ctl.h"
#include "vfu_rt_devices.h"
#include "vfu_rt_log.h"
#include "vfu_rt_rpc.h"

struct daemon {
	struct vfurt_runtime *rt;
	/* the running settings (command line over file; devices live in devs) */
	struct vfurt_config cfg;
	const char *config_path;     /* --config FILE, or NULL */
	/* settings the command line gave: a reload does not change them */
	bool cl_log_level;
	bool cl_stats;
	bool cl_cores;
	bool cl_poll;
	bool cl_poll_sleep;
	bool cl_control_socket;
	bool cl_limits;
	struct dlog dlog;
	struct vfurt_log log;        /* dlog's sink, handed to everything */
	struct devtab devs;
	struct ctl ctl;
	struct rpc_server rpc;
	int stats_fd;                /* timerfd of --stats-interval, or -1 */
	struct vfurt_worker_stats *prev; /* the last summary's counters */
	char self_exe[PATH_MAX];     /* this binary, read at start (upgrade's default) */
	cpu_set_t start_cpus;        /* the affinity we started with (the main thread's
					changes: keep_off_workers), for the new process */
	bool has_start_cpus;
	bool upgraded;               /* handed over: answer, then _exit */
};

/* The control methods (vfu_rt_methods.c), NULL-terminated. */
extern const struct rpc_method vfr_daemon_methods[];

/*
 * Write the running configuration (settings, every device that is not being
 * removed, their live namespaces) as a --config file at path: a temporary
 * file next to it, fsync, rename. Returns the number of devices written or
 * a negative errno with a message in err. Thread: main.
 */
int daemon_config_save(struct daemon *d, const char *path, char *err, size_t errlen);

/*
 * SIGHUP: read --config again and apply the difference (docs/managing.md):
 * file devices added, removed or replaced; log_level and stats_interval
 * applied; other settings reported as ignored. A file that does not load
 * changes nothing. Every action is logged. Thread: main.
 */
void daemon_reload(struct daemon *d);

/* (Re)arm the --stats-interval timer: 0 = off. Returns 0 or a negative errno. */
int daemon_set_stats_interval(struct daemon *d, uint32_t seconds);

#endif /* VFURT_RUNTIME_VFU_RT_DAEMON_H */
