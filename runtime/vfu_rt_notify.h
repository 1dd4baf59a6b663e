/* systemd's readiness protocol for vfu-rt (docs/restart.md, examples/vfu-rt.service). */
#ifndef VFURT_RUNTIME_VFU_RT_NOTIFY_H
#define VFURT_RUNTIME_VFU_RT_NOTIFY_H

/*
 * Send state (e.g. "STOPPING=1") to $NOTIFY_SOCKET (a path, or "@name" in
 * the abstract namespace), as sd_notify(3) does. Returns 0 (also when the
 * variable is not set: not under a Type=notify unit), or a negative errno.
 * Never blocks.
 */
int daemon_notify(const char *state);

/* "READY=1" with "MAINPID=" this process: once serving, at start or after
 * taking over in a live upgrade. */
int daemon_notify_ready(void);

#endif /* VFURT_RUNTIME_VFU_RT_NOTIFY_H */
