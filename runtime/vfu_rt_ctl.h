/* vfu-rt's control socket: where it listens (JSON-RPC, vfu_rt_rpc.h, serves it). */
#ifndef VFURT_RUNTIME_VFU_RT_CTL_H
#define VFURT_RUNTIME_VFU_RT_CTL_H

#include <vfurt/log.h>
#include <vfurt/runtime.h>

#include "config.h"

/* The daemon's control socket. */
struct ctl {
	int fd;                                 /* listening socket or -1 */
	char path[VFURT_CONFIG_PATH_MAX + 1];   /* socket file (removed at exit) */
	char link[VFURT_CONFIG_PATH_MAX + 1];   /* per-pid name linking to path, or "" */
};

/*
 * Listen on explicit_path, or (NULL or "") on the default path in the
 * private control directory ($XDG_RUNTIME_DIR/vfu-rt/ or /tmp/vfu-rt-UID/,
 * created 0700 and checked), replacing a stale socket of a dead daemon.
 * c->fd is non-blocking. Returns 0 (also when the default socket cannot be
 * made: a warning on log, c->fd -1), or a negative errno when the explicit
 * path cannot be listened on (said on stderr).
 */
int ctl_open(struct ctl *c, const char *explicit_path, const struct vfurt_log *log);

/* Close the socket and remove its file and per-pid link. Idempotent. */
void ctl_close(struct ctl *c);

/*
 * A live upgrade's new process: serve the control socket fd the previous
 * process listened on at path (kept: clients find it where they did), and
 * link this pid's default name to it. Returns 0.
 */
int ctl_adopt(struct ctl *c, int fd, const char *path, const struct vfurt_log *log);

/* The previous process of a live upgrade, before it ends: remove its
 * per-pid link only (the socket is the new process's now). */
void ctl_forget(struct ctl *c);

#endif /* VFURT_RUNTIME_VFU_RT_CTL_H */
