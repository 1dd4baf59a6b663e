/* vfu-rt's live upgrade: both ends of the handoff (docs/restart.md). */
#ifndef VFURT_RUNTIME_VFU_RT_UPGRADE_H
#define VFURT_RUNTIME_VFU_RT_UPGRADE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/state.h>

struct daemon;
struct json_object;

/* Default of the upgrade method's timeout_ms: each phase waits this long. */
#define UPGRADE_TIMEOUT_MS 10000u
#define UPGRADE_TIMEOUT_MAX_MS 600000u

/*
 * The old process: start exec (NULL: the daemon's own binary) with
 * --upgrade-fd=3, let it build every device, freeze ours, hand it every fd
 * and the state, and on its "restored" tell it to serve. On success
 * d->upgraded is set (the caller answers the request and _exits: nothing
 * of ours may run on) and *result says what happened; on failure every
 * device is served again as before, the new process is gone, and err says
 * why. Blocks the main thread, each phase at most timeout_ms. Returns 0 or
 * a negative errno. Thread: main.
 */
int daemon_upgrade(struct daemon *d, const char *exec, uint32_t timeout_ms,
		   struct json_object **result, char *err, size_t errlen);

/* The new process's side, driven by main() in order: recv_config, build
 * the devices (devtab.defer_serve), built, restore, commit. */
struct upgrade_in {
	int fd;
	struct vfurt_state *img1;
	struct vfurt_state *img2;
	struct vfurt_state_cur root1;
	struct vfurt_state_cur root2;
	char config_file[PATH_MAX];  /* the old process's running configuration */
	char user_config[PATH_MAX];  /* its --config, for SIGHUP */
	bool has_user_config;
	bool cl_log_level, cl_stats, cl_cores, cl_poll, cl_poll_sleep, cl_control_socket,
		cl_limits;
};

/* Receive image 1. Returns 0 or a negative errno with err. */
int upgrade_recv_config(struct upgrade_in *u, int fd, char *err, size_t errlen);
/* Say the devices are built and receive image 2. */
int upgrade_built(struct upgrade_in *u, char *err, size_t errlen);
/* Take the control socket and restore every device (before the start). */
int upgrade_restore(struct daemon *d, struct upgrade_in *u, char *err, size_t errlen);
/* Say "restored" and wait for "serve": 0 to serve, -ECANCELED to exit. */
int upgrade_commit(struct upgrade_in *u);
/* Tell the old process why we give up (it serves on). */
void upgrade_fail(struct upgrade_in *u, const char *why);
void upgrade_in_fini(struct upgrade_in *u);

#endif /* VFURT_RUNTIME_VFU_RT_UPGRADE_H */
