/* Live-upgrade fixture: a vfu-rt daemon child process, its successors after
 * `upgrade`, its log, and the upgrade command (vfu-ctl or the RPC). */
#ifndef VFURT_TESTS_UPGRADE_FX_H
#define VFURT_TESTS_UPGRADE_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct json_object;

#define VFURT VFURT_BUILD_DIR "/vfu-rt"
#define VFUCTL VFURT_BUILD_DIR "/vfu-ctl"
#define RPC_UPGRADE_FAILED -32007 /* the upgrade RPC's error code for a refusal */

/* ---- a daemon and its successors ------------------------------------------- */

struct dproc {
	pid_t pid;      /* the process serving now */
	char dir[128];
	char ctl[192];
	char log[192];
};

/* CLOCK_MONOTONIC in milliseconds. */
long upfx_now_ms(void);

/* A connected AF_UNIX stream socket to path (close-on-exec), or -1. */
int upfx_connect_unix(const char *path);

/* d for a daemon not started yet: its directory /tmp/vfurt-upg-PID-tag
 * (created), control socket and log paths in it. */
void upfx_dinit(struct dproc *d, const char *tag);

/* The path of socket `name` in d's directory (DIR/name.sock) into buf. */
void upfx_sockp(const struct dproc *d, char *buf, size_t len, const char *name);

/* Start build/vfu-rt --control-socket d->ctl --poll=adaptive, then args
 * (NULL-terminated), its stderr in d->log, and wait for its control socket.
 * No core files (the crash hooks abort the new binaries, which inherit the
 * limit); cwd is d->dir. Asserts. */
void upfx_dstart(struct dproc *d, const char *const *args);

/* Wait up to ms for child pid to exit; its status as a shell reports it
 * (128 + signal), or -1 when it did not exit. */
int upfx_wait_exit(pid_t pid, int ms);

/* SIGTERM the serving process: its exit status (0 expected), -1 if it hangs
 * (then it is killed). d->pid becomes 0. */
int upfx_dstop(struct dproc *d);

/* Every child we still have (served processes left by a failed test, crashed
 * new binaries the old one did not reap): killed and reaped. Returns how many. */
int upfx_reap_strays(void);

/* A test's teardown of d: stop the serving process (its status must be 0,
 * else its log tail is printed), kill and reap strays, remove d's directory
 * (unless VFURT_TEST_KEEP is set). Returns 0, or -1 when something was
 * wrong (cmocka then fails the test's teardown). */
int upfx_dfinish(struct dproc *d);

/* Skip the test (cmocka's skip()) when build/vfu-rt or vfu-ctl is missing. */
void upfx_need_binaries(void);

/* Lines of d's log with "error:" (or worse) that contain none of allowed
 * (NULL-terminated, may be NULL); each is printed. */
int upfx_log_errors(const struct dproc *d, const char *const *allowed);

/* The last 40 lines of d's log on stderr. */
void upfx_log_tail(const struct dproc *d);

/* How many fds process pid has open (/proc/PID/fd), -1 when unreadable. */
int upfx_fd_count(pid_t pid);

/* The parent of pid from /proc/PID/stat, or -1. */
pid_t upfx_ppid_of(pid_t pid);

/* An executable script at d->dir/name (its path into path) that sets `env`
 * (NULL: nothing, e.g. "VFU_RT_TEST_CRASH=build") and execs build/vfu-rt
 * with its arguments. Asserts. */
void upfx_write_wrapper(const struct dproc *d, const char *name, const char *env, char *path,
			size_t len);

/* How many lines of d's log contain what. */
int upfx_log_count(const struct dproc *d, const char *what);

/* ---- upgrading ------------------------------------------------------------------ */

enum via { VIA_CTL, VIA_CTL_JSON, VIA_RPC };

struct upg {
	int rc;              /* vfu-ctl's exit status; for VIA_RPC 0 or 1 */
	int rpc_code;        /* VIA_RPC: the error's code, 0 on success */
	char out[4096];      /* what vfu-ctl printed, or the RPC response line */
	long old_pid, new_pid;
	double pause_ms;
	unsigned long devices, fds, bytes;
	long took_ms;        /* the command, as the caller saw it */
};

/* Member key of object o as an integer, -1 when it is missing. */
long upfx_jint(struct json_object *o, const char *key);

/* The result object of an upgrade into u. false when a member is missing. */
bool upfx_parse_result(struct json_object *r, struct upg *u);

/* One upgrade request (exec NULL: the daemon's own binary; timeout_ms 0: the
 * default) on a fresh control connection; the response line in u->out, the
 * outcome in u->rc / u->rpc_code and the result members. Asserts the form. */
void upfx_rpc_upgrade(const struct dproc *d, const char *exec, int timeout_ms, struct upg *u);

/* Ask d's daemon to upgrade (exec NULL: its own binary) via vfu-ctl or the
 * RPC; u gets the outcome. Nothing is checked here but the output's form. */
void upfx_upgrade_try(const struct dproc *d, enum via via, const char *exec, struct upg *u);

/* A successful upgrade of d with ndev devices: vfu-ctl (or the RPC) says so
 * with the old and new pids, the old process exits 0 by itself, the new one
 * is reparented to us, and the control socket answers at the same path.
 * d->pid becomes the new process. Asserts. */
void upfx_upgrade_ok(struct dproc *d, enum via via, unsigned ndev, struct upg *u);

/* The checks of upfx_upgrade_ok on the outcome u of an upfx_upgrade_try of
 * d made elsewhere (e.g. in another thread); d->pid is still the old one
 * and becomes the new one. Asserts. */
void upfx_upgrade_check(struct dproc *d, enum via via, unsigned ndev, const struct upg *u);

/* A refused upgrade: vfu-ctl exits 3 (RPC: error RPC_UPGRADE_FAILED) with
 * "upgrade failed: REASON; still serving (pid OLD)", REASON containing
 * `reason` (NULL: anything), and the same process still serving. Asserts. */
void upfx_upgrade_refused(struct dproc *d, enum via via, const char *exec, const char *why,
			  const char *reason);

#endif
