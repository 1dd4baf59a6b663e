/* vfu-rt's live upgrade: start the new binary, hand it every fd and the state, and leave (docs/restart.md). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include <vfurt/state.h>

#include "vfu_rt_daemon.h"
#include "vfu_rt_upgrade.h"

/*
 * The handoff, over a SOCK_SEQPACKET pair (the new process's end is its fd
 * 3):
 *   old -> new  image 1: the running configuration (a config_save file),
 *               --config's path, which settings the command line gave
 *   new -> old  "B" built every device (not served), or "F reason"
 *   old         freezes every device (vfurt_runtime_freeze)
 *   old -> new  image 2: the control socket and every device's endpoint
 *   new -> old  "R" restored, or "F reason"
 *   old -> new  "G" and _exit(0); or "A" (abort) and serve on
 * The new process serves once it has "G", or EOF after "R" (the old one is
 * gone: nobody else serves).
 */

enum {
	U1_T_CONFIG_FILE = 1, /* the temporary config_save file */
	U1_T_USER_CONFIG = 2, /* --config, when given */
	U1_T_CL_FLAGS = 3,
	U2_T_CTL_FD = 1,
	U2_T_CTL_PATH = 2,
	U2_S_DEVICES = 3,
};

enum {
	CL_LOG_LEVEL = 1u << 0,
	CL_STATS = 1u << 1,
	CL_CORES = 1u << 2,
	CL_POLL = 1u << 3,
	CL_POLL_SLEEP = 1u << 4,
	CL_CONTROL_SOCKET = 1u << 5,
	CL_LIMITS = 1u << 6,
};

#define REPLY_MAX 512

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Send a short message ("B", "F reason"...). */
static void say(int sock, const char *msg)
{
	ssize_t n;

	do
		n = send(sock, msg, strlen(msg), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
}

/* Wait for a short message within timeout_ms: its length, 0 on EOF,
 * -ETIMEDOUT or another negative errno. */
static int hear(int sock, char *buf, size_t cap, int timeout_ms)
{
	uint64_t deadline = mono_us() + (uint64_t)timeout_ms * 1000u;

	for (;;) {
		ssize_t n = recv(sock, buf, cap - 1, MSG_DONTWAIT);
		struct timespec pause = { .tv_nsec = 1000000 };

		if (n >= 0) {
			buf[n] = '\0';
			return (int)n;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if (mono_us() >= deadline)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
}

/* ---- the old process -------------------------------------------------------- */

static uint32_t cl_flags(const struct daemon *d)
{
	return (d->cl_log_level ? CL_LOG_LEVEL : 0) | (d->cl_stats ? CL_STATS : 0) |
	       (d->cl_cores ? CL_CORES : 0) | (d->cl_poll ? CL_POLL : 0) |
	       (d->cl_poll_sleep ? CL_POLL_SLEEP : 0) |
	       (d->cl_control_socket ? CL_CONTROL_SOCKET : 0) | (d->cl_limits ? CL_LIMITS : 0);
}

/* Why the child is gone, if it is: "exited with status N", "killed by
 * SIGX"; empty while it runs. Reaps it. */
static void child_status(pid_t pid, char *out, size_t len, bool wait_for_it)
{
	int st;

	out[0] = '\0';
	if (waitpid(pid, &st, wait_for_it ? 0 : WNOHANG) != pid)
		return;
	if (WIFEXITED(st))
		snprintf(out, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(out, len, "killed by %s", strsignal(WTERMSIG(st)));
}

static pid_t spawn(const struct daemon *d, const char *exe, int child_end)
{
	char *argv[] = { (char *)exe, (char *)"--upgrade-fd=3", NULL };
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* the child: async-signal-safe calls only until exec; the CPUs the
	 * daemon started with, not the control thread's */
	if (d->has_start_cpus)
		sched_setaffinity(0, sizeof(d->start_cpus), &d->start_cpus);
	if (child_end != 3 && dup2(child_end, 3) < 0)
		_exit(127);
	if (child_end == 3)
		fcntl(3, F_SETFD, 0);
	close_range(4, ~0u, 0); /* nothing else of ours leaks into it */
	execv(exe, argv);
	_exit(127);
}

/* The image 2 part of one device table entry. */
static int save_entry(struct daemon *d, const struct dev_entry *e, struct vfurt_state *s)
{
	int rc = vfurt_state_open(s, DEVTAB_S_DEV);

	if (!rc)
		rc = vfurt_state_put_str(s, DEVTAB_T_NAME, e->name);
	if (!rc)
		rc = vfurt_state_put_u32(s, DEVTAB_T_ORIGIN, (uint32_t)e->origin);
	if (!rc)
		rc = vfurt_state_open(s, DEVTAB_S_RT);
	if (!rc)
		rc = vfurt_runtime_save_device(d->rt, e->dev, s);
	if (!rc)
		rc = vfurt_state_close(s);
	if (!rc)
		rc = vfurt_state_close(s);
	return rc;
}

static struct vfurt_state *build_image2(struct daemon *d, char *err, size_t errlen)
{
	struct vfurt_state *s = vfurt_state_create();
	int rc = s ? 0 : -ENOMEM;

	if (!rc && d->ctl.fd >= 0) {
		rc = vfurt_state_put_fd(s, U2_T_CTL_FD, d->ctl.fd);
		if (!rc)
			rc = vfurt_state_put_str(s, U2_T_CTL_PATH, d->ctl.path);
	}
	if (!rc)
		rc = vfurt_state_open(s, U2_S_DEVICES);
	for (size_t i = 0; !rc && i < d->devs.n; i++) {
		rc = save_entry(d, d->devs.e[i], s);
		if (rc)
			snprintf(err, errlen, "cannot save %s: %s", d->devs.e[i]->name,
				 strerror(-rc));
	}
	if (!rc)
		rc = vfurt_state_close(s);
	if (rc) {
		if (!err[0])
			snprintf(err, errlen, "cannot build the state image: %s", strerror(-rc));
		vfurt_state_destroy(s);
		return NULL;
	}
	return s;
}

int daemon_upgrade(struct daemon *d, const char *exec, uint32_t timeout_ms,
		   struct json_object **result, char *err, size_t errlen)
{
	const char *exe = exec && *exec ? exec : d->self_exe;
	struct vfurt_state *s1 = NULL, *s2 = NULL;
	char cfg_tmp[PATH_MAX], reply[REPLY_MAX], why[128];
	uint64_t t_freeze = 0, t_go;
	bool frozen = false;
	int sv[2] = { -1, -1 };
	pid_t pid = -1;
	int rc, n;

	err[0] = '\0';
	*result = NULL;
	for (size_t i = 0; i < d->devs.n; i++) {
		if (d->devs.e[i]->removing) {
			snprintf(err, errlen, "device %s is being removed: try again once it is gone",
				 d->devs.e[i]->name);
			return -EBUSY;
		}
	}
	if (access(exe, X_OK)) {
		rc = -errno;
		snprintf(err, errlen, "cannot run %s: %s", exe, strerror(-rc));
		return rc;
	}
	/* the running configuration, where only we can read it */
	snprintf(cfg_tmp, sizeof(cfg_tmp), "%s.upgrade-%ld.json",
		 d->ctl.path[0] ? d->ctl.path : "/tmp/vfu-rt", (long)getpid());
	rc = daemon_config_save(d, cfg_tmp, err, errlen);
	if (rc < 0)
		return rc;
	s1 = vfurt_state_create();
	rc = s1 ? vfurt_state_put_str(s1, U1_T_CONFIG_FILE, cfg_tmp) : -ENOMEM;
	if (!rc && d->config_path)
		rc = vfurt_state_put_str(s1, U1_T_USER_CONFIG, d->config_path);
	if (!rc)
		rc = vfurt_state_put_u32(s1, U1_T_CL_FLAGS, cl_flags(d));
	if (rc) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		rc = -errno;
		snprintf(err, errlen, "socketpair: %s", strerror(-rc));
		goto out;
	}
	pid = spawn(d, exe, sv[1]);
	if (pid < 0) {
		rc = -errno;
		snprintf(err, errlen, "fork: %s", strerror(-rc));
		goto out;
	}
	close(sv[1]);
	sv[1] = -1;
	vfurt_logf(&d->log, VFURT_LOG_INFO, "upgrade: started %s (pid %ld)", exe, (long)pid);

	/* phase 1: it builds the devices while we serve */
	rc = vfurt_state_send(s1, sv[0], (int)timeout_ms);
	n = rc ? rc : hear(sv[0], reply, sizeof(reply), (int)timeout_ms);
	if (n <= 0 || reply[0] != 'B') {
		rc = n == -ETIMEDOUT ? -ETIMEDOUT : -ECHILD;
		goto failed;
	}
	/* phase 2: the pause */
	t_freeze = mono_us();
	rc = vfurt_runtime_freeze(d->rt, timeout_ms, err, errlen);
	if (rc)
		goto out_kill;
	frozen = true;
	s2 = build_image2(d, err, errlen);
	if (!s2) {
		rc = -ENOMEM;
		goto out_kill;
	}
	rc = vfurt_state_send(s2, sv[0], (int)timeout_ms);
	n = rc ? rc : hear(sv[0], reply, sizeof(reply), (int)timeout_ms);
	if (n <= 0 || reply[0] != 'R') {
		rc = n == -ETIMEDOUT ? -ETIMEDOUT : -ECHILD;
		goto failed;
	}
	say(sv[0], "G");
	t_go = mono_us();
	/* committed: from here on only the new process may touch shared state */
	d->upgraded = true;
	ctl_forget(&d->ctl);
	{
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "old_pid", json_object_new_int64(getpid()));
		json_object_object_add(o, "new_pid", json_object_new_int64(pid));
		json_object_object_add(o, "pause_us", json_object_new_int64((int64_t)(t_go - t_freeze)));
		json_object_object_add(o, "devices", json_object_new_int64((int64_t)d->devs.n));
		json_object_object_add(o, "fds", json_object_new_int64(
			(int64_t)vfurt_state_nr_fds(s2)));
		json_object_object_add(o, "bytes", json_object_new_int64(
			(int64_t)vfurt_state_size(s2)));
		*result = o;
	}
	vfurt_logf(&d->log, VFURT_LOG_INFO, "upgrade: pid %ld serves now (paused %" PRIu64
		   " us, %zu fds, %zu bytes of state); exiting", (long)pid, t_go - t_freeze,
		   vfurt_state_nr_fds(s2), vfurt_state_size(s2));
	rc = 0;
	goto out;

failed:
	/* what the new process said, or why it is gone */
	if (n > 0 && reply[0] == 'F')
		snprintf(err, errlen, "the new process refused: %s", reply + (reply[1] ? 2 : 1));
	else if (n == -ETIMEDOUT && !err[0])
		snprintf(err, errlen, "the new process did not answer within %u ms", timeout_ms);
out_kill:
	say(sv[0], "A");
	kill(pid, SIGKILL);
	child_status(pid, why, sizeof(why), true);
	if (!err[0])
		snprintf(err, errlen, "the new process %s", why[0] ? why : "went away");
	if (frozen || t_freeze)
		vfurt_runtime_thaw(d->rt);
	vfurt_logf(&d->log, VFURT_LOG_WARN, "upgrade failed: %s; still serving", err);
out:
	unlink(cfg_tmp);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	vfurt_state_destroy(s1);
	vfurt_state_destroy(s2);
	return rc;
}

/* ---- the new process ---------------------------------------------------------- */

/* A test's stand-ins (docs/restart.md): a build that reads another image
 * version, or one that crashes at a phase. */
static uint32_t test_version(void)
{
	const char *v = getenv("VFU_RT_TEST_IMAGE_VERSION");

	return v ? (uint32_t)strtoul(v, NULL, 10) : 0;
}

static void test_crash(const char *phase)
{
	const char *v = getenv("VFU_RT_TEST_CRASH");

	if (v && !strcmp(v, phase))
		abort();
}

int upgrade_recv_config(struct upgrade_in *u, int fd, char *err, size_t errlen)
{
	uint32_t flags = 0;
	int rc;

	memset(u, 0, sizeof(*u));
	u->fd = fd;
	rc = vfurt_state_recv(fd, 30000, test_version(), &u->img1, err, errlen);
	if (rc)
		return rc;
	vfurt_state_root(u->img1, &u->root1);
	if (vfurt_state_get_str(&u->root1, U1_T_CONFIG_FILE, u->config_file,
				sizeof(u->config_file))) {
		snprintf(err, errlen, "the image has no configuration");
		return -EBADMSG;
	}
	if (vfurt_state_get_str(&u->root1, U1_T_USER_CONFIG, u->user_config,
				sizeof(u->user_config)) == 0)
		u->has_user_config = true;
	vfurt_state_get_u32(&u->root1, U1_T_CL_FLAGS, &flags);
	u->cl_log_level = flags & CL_LOG_LEVEL;
	u->cl_stats = flags & CL_STATS;
	u->cl_cores = flags & CL_CORES;
	u->cl_poll = flags & CL_POLL;
	u->cl_poll_sleep = flags & CL_POLL_SLEEP;
	u->cl_control_socket = flags & CL_CONTROL_SOCKET;
	u->cl_limits = flags & CL_LIMITS;
	return 0;
}

void upgrade_fail(struct upgrade_in *u, const char *why)
{
	char msg[REPLY_MAX];

	snprintf(msg, sizeof(msg), "F %s", why);
	say(u->fd, msg);
}

int upgrade_built(struct upgrade_in *u, char *err, size_t errlen)
{
	int rc;

	test_crash("build");
	say(u->fd, "B");
	rc = vfurt_state_recv(u->fd, 60000, test_version(), &u->img2, err, errlen);
	if (rc)
		return rc;
	vfurt_state_root(u->img2, &u->root2);
	return 0;
}

int upgrade_restore(struct daemon *d, struct upgrade_in *u, char *err, size_t errlen)
{
	struct vfurt_state_cur devs;
	char path[sizeof(d->ctl.path)];
	int fd, rc;

	test_crash("restore");
	fd = vfurt_state_take_fd(&u->root2, U2_T_CTL_FD);
	if (fd >= 0 && vfurt_state_get_str(&u->root2, U2_T_CTL_PATH, path, sizeof(path)) == 0)
		ctl_adopt(&d->ctl, fd, path, &d->log);
	else if (fd >= 0)
		close(fd);
	if (vfurt_state_sub(&u->root2, U2_S_DEVICES, &devs)) {
		snprintf(err, errlen, "the image has no devices");
		return -EBADMSG;
	}
	rc = devtab_restore(&d->devs, &devs, err, errlen);
	if (rc)
		return rc;
	return 0;
}

int upgrade_commit(struct upgrade_in *u)
{
	char reply[REPLY_MAX];
	int n;

	say(u->fd, "R");
	n = hear(u->fd, reply, sizeof(reply), 60000);
	if (n > 0 && reply[0] == 'G')
		return 0;
	if (n == 0)
		return 0; /* the old process is gone: nobody else serves */
	return -ECANCELED;
}

void upgrade_in_fini(struct upgrade_in *u)
{
	if (u->config_file[0])
		unlink(u->config_file);
	vfurt_state_destroy(u->img1);
	vfurt_state_destroy(u->img2);
	u->img1 = u->img2 = NULL;
	if (u->fd >= 0)
		close(u->fd);
	u->fd = -1;
}
