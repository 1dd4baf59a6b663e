/* Live-upgrade fixture: see upgrade_fx.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>

#include "common/it_util.h"
#include "common/upgrade_fx.h"

long upfx_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int upfx_connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

void upfx_dinit(struct dproc *d, const char *tag)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "/tmp/vfurt-upg-%d-%s", (int)getpid(), tag);
	mkdir(d->dir, 0700);
	snprintf(d->ctl, sizeof(d->ctl), "%s/ctl.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/vfu-rt.log", d->dir);
}

void upfx_sockp(const struct dproc *d, char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s.sock", d->dir, name);
}

void upfx_dstart(struct dproc *d, const char *const *args)
{
	const char *argv[64];
	pid_t parent = getpid();
	int n = 0;

	argv[n++] = "vfu-rt";
	argv[n++] = "--control-socket";
	argv[n++] = d->ctl;
	argv[n++] = "--poll=adaptive";
	for (int i = 0; args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	d->pid = fork();
	assert_true(d->pid >= 0);
	if (d->pid == 0) {
		struct rlimit no_core = { 0, 0 };
		int lfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		/* the first process only: its successors are reparented to us */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(126);
		setrlimit(RLIMIT_CORE, &no_core);
		if (lfd < 0 || dup2(lfd, 2) < 0 || chdir(d->dir) != 0)
			_exit(125);
		execv(VFURT, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		int fd = upfx_connect_unix(d->ctl);

		if (fd >= 0) {
			close(fd);
			return;
		}
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
			d->pid = 0;
			fail_msg("vfu-rt exited at start; see %s", d->log);
		}
		usleep(10000);
	}
	fail_msg("vfu-rt did not open %s", d->ctl);
}

int upfx_wait_exit(pid_t pid, int ms)
{
	long end = upfx_now_ms() + ms;
	int st = 0;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0 || upfx_now_ms() > end)
			return -1;
		usleep(2000);
	}
}

int upfx_dstop(struct dproc *d)
{
	int st;

	if (d->pid <= 0)
		return 0;
	kill(d->pid, SIGTERM);
	st = upfx_wait_exit(d->pid, 15000);
	if (st < 0) {
		kill(d->pid, SIGKILL);
		upfx_wait_exit(d->pid, 5000);
	}
	d->pid = 0;
	return st;
}

int upfx_dfinish(struct dproc *d)
{
	char cmd[300];
	int rc = 0, st;

	/* the serving process stops cleanly, also after upgrades */
	st = upfx_dstop(d);
	if (st != 0) {
		fprintf(stderr, "vfu-rt (the last pid) exited %d; its log:\n", st);
		upfx_log_tail(d);
		rc = -1;
	}
	if (upfx_reap_strays()) {
		fprintf(stderr, "stray vfu-rt processes were left; killed\n");
		rc = -1;
	}
	if (d->dir[0] && !getenv("VFURT_TEST_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", d->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", d->dir);
	}
	return rc;
}

void upfx_need_binaries(void)
{
	if (access(VFURT, X_OK) != 0 || access(VFUCTL, X_OK) != 0)
		skip();
}

int upfx_reap_strays(void)
{
	char path[64], buf[4096];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	f = fopen(path, "r");
	if (f) {
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		char *p = buf;

		buf[len] = '\0';
		fclose(f);
		while (*p) {
			char *end;
			long pid = strtol(p, &end, 10);

			if (end == p)
				break;
			if (pid > 0) {
				kill((pid_t)pid, SIGKILL);
				n++;
			}
			p = end;
		}
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	return n;
}

int upfx_log_errors(const struct dproc *d, const char *const *allowed)
{
	static const char *const bad[] = { ": error: ", ": crit: ", ": alert: ", ": emerg: " };
	char line[4096];
	int n = 0;
	FILE *f = fopen(d->log, "r");

	while (f && fgets(line, sizeof(line), f)) {
		bool is_bad = false, ok = false;

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			is_bad |= strstr(line, bad[i]) != NULL;
		for (size_t i = 0; is_bad && allowed && allowed[i]; i++)
			ok |= strstr(line, allowed[i]) != NULL;
		if (is_bad && !ok) {
			fprintf(stderr, "unexpected log line: %s", line);
			n++;
		}
	}
	if (f)
		fclose(f);
	return n;
}

void upfx_log_tail(const struct dproc *d)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "tail -n 40 %s >&2", d->log);
	if (system(cmd) != 0)
		fprintf(stderr, "(no log at %s)\n", d->log);
}

int upfx_fd_count(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((e = readdir(dir)))
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

pid_t upfx_ppid_of(pid_t pid)
{
	char path[64], buf[512];
	int ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f)) {
		char *p = strrchr(buf, ')');

		if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
			ppid = -1;
	}
	fclose(f);
	return ppid;
}

void upfx_write_wrapper(const struct dproc *d, const char *name, const char *env, char *path,
			  size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", d->dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s%s%sexec %s \"$@\"\n", env ? "export " : "", env ? env : "",
		env ? "\n" : "", VFURT);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, 0755), 0);
}

long upfx_jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? (long)json_object_get_int64(v) : -1;
}

bool upfx_parse_result(struct json_object *r, struct upg *u)
{
	long pause_us = upfx_jint(r, "pause_us");

	u->old_pid = upfx_jint(r, "old_pid");
	u->new_pid = upfx_jint(r, "new_pid");
	u->devices = (unsigned long)upfx_jint(r, "devices");
	u->fds = (unsigned long)upfx_jint(r, "fds");
	u->bytes = (unsigned long)upfx_jint(r, "bytes");
	u->pause_ms = (double)pause_us / 1000.0;
	return u->old_pid > 0 && u->new_pid > 0 && pause_us >= 0 && upfx_jint(r, "devices") >= 0 &&
	       upfx_jint(r, "fds") >= 0 && upfx_jint(r, "bytes") >= 0;
}

void upfx_rpc_upgrade(const struct dproc *d, const char *exec, int timeout_ms, struct upg *u)
{
	char req[1024], params[600];
	struct json_object *resp, *v;
	size_t len = 0;
	int fd = upfx_connect_unix(d->ctl);

	assert_true(fd >= 0);
	params[0] = '\0';
	if (exec)
		snprintf(params, sizeof(params), "\"exec\":\"%s\"", exec);
	if (timeout_ms > 0)
		snprintf(params + strlen(params), sizeof(params) - strlen(params),
			 "%s\"timeout_ms\":%d", exec ? "," : "", timeout_ms);
	snprintf(req, sizeof(req),
		 "{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"upgrade\",\"params\":{%s}}\n", params);
	assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	while (len + 1 < sizeof(u->out) && !memchr(u->out, '\n', len)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 30000) <= 0)
			fail_msg("upgrade RPC: no answer in 30 s");
		n = recv(fd, u->out + len, sizeof(u->out) - 1 - len, 0);
		if (n <= 0)
			fail_msg("upgrade RPC: connection closed before the answer (%zu bytes: %.*s)",
				 len, (int)len, u->out);
		len += (size_t)n;
		u->out[len] = '\0';
	}
	close(fd);
	resp = json_tokener_parse(u->out);
	if (!resp)
		fail_msg("upgrade RPC: not JSON: %s", u->out);
	if (json_object_object_get_ex(resp, "result", &v)) {
		u->rc = 0;
		if (!upfx_parse_result(v, u))
			fail_msg("upgrade RPC: result lacks members: %s", u->out);
	} else if (json_object_object_get_ex(resp, "error", &v)) {
		u->rc = 1;
		u->rpc_code = (int)upfx_jint(v, "code");
	} else {
		fail_msg("upgrade RPC: neither result nor error: %s", u->out);
	}
	json_object_put(resp);
}

void upfx_upgrade_try(const struct dproc *d, enum via via, const char *exec, struct upg *u)
{
	char opts[512];
	long t0 = upfx_now_ms();

	memset(u, 0, sizeof(*u));
	if (via == VIA_RPC) {
		upfx_rpc_upgrade(d, exec, 0, u);
		u->took_ms = upfx_now_ms() - t0;
		return;
	}
	snprintf(opts, sizeof(opts), "%s%s", exec ? " --exec " : "", exec ? exec : "");
	u->rc = it_run_cmd(u->out, sizeof(u->out), "%s --socket %s%s upgrade%s 2>&1", VFUCTL, d->ctl,
			via == VIA_CTL_JSON ? " --json" : "", opts);
	u->took_ms = upfx_now_ms() - t0;
	if (u->rc != 0)
		return;
	if (via == VIA_CTL_JSON) {
		/* (after vfu-ctl's "no answer ... yet" notice on stderr, if any) */
		struct json_object *r = strchr(u->out, '{') ? json_tokener_parse(strchr(u->out, '{'))
							    : NULL;

		if (!r || !upfx_parse_result(r, u))
			fail_msg("vfu-ctl upgrade --json: not the result object: %s", u->out);
		json_object_put(r);
	} else if (!strstr(u->out, "upgraded: ") ||
		   sscanf(strstr(u->out, "upgraded: "), "upgraded: pid %ld -> %ld, pause %lf ms (%lu "
			  "devices, %lu fds, %lu bytes)", &u->old_pid, &u->new_pid, &u->pause_ms,
			  &u->devices, &u->fds, &u->bytes) != 6) {
		/* (vfu-ctl's "no answer ... yet" notice on stderr may come first) */
		fail_msg("vfu-ctl upgrade: unexpected output: %s", u->out);
	}
}

void upfx_upgrade_ok(struct dproc *d, enum via via, unsigned ndev, struct upg *u)
{
	upfx_upgrade_try(d, via, NULL, u);
	upfx_upgrade_check(d, via, ndev, u);
}

void upfx_upgrade_check(struct dproc *d, enum via via, unsigned ndev, const struct upg *u)
{
	pid_t old = d->pid;
	int st;

	if (u->rc != 0) {
		upfx_log_tail(d);
		fail_msg("upgrade (via %d) failed, exit %d: %s", (int)via, u->rc, u->out);
	}
	assert_int_equal(u->old_pid, old);
	assert_true(u->new_pid > 0 && u->new_pid != old);
	assert_int_equal(u->devices, ndev);
	assert_true(u->fds > 0);
	st = upfx_wait_exit(old, 10000);
	if (st != 0) {
		upfx_log_tail(d);
		fail_msg("the old vfu-rt (pid %d) %s %d", (int)old,
			 st < 0 ? "did not exit, status" : "exited with", st);
	}
	d->pid = (pid_t)u->new_pid;
	assert_int_equal(kill(d->pid, 0), 0);
	assert_int_equal(upfx_ppid_of(d->pid), getpid()); /* subreaper: ours now */
	{
		int fd = upfx_connect_unix(d->ctl);

		assert_true(fd >= 0);
		close(fd);
	}
}

void upfx_upgrade_refused(struct dproc *d, enum via via, const char *exec, const char *why,
			    const char *reason)
{
	char still[64];
	struct upg u;

	upfx_upgrade_try(d, via, exec, &u);
	/* vfu-ctl exits 3 when the daemon answers with an error; the RPC path 1 */
	if (u.rc != (via == VIA_RPC ? 1 : 3))
		fail_msg("upgrade --exec %s (%s): expected exit %d, got %d: %s", exec, why,
			 via == VIA_RPC ? 1 : 3, u.rc, u.out);
	if (via == VIA_RPC && u.rpc_code != RPC_UPGRADE_FAILED)
		fail_msg("upgrade RPC --exec %s (%s): code %d, not %d: %s", exec, why, u.rpc_code,
			 RPC_UPGRADE_FAILED, u.out);
	snprintf(still, sizeof(still), "still serving (pid %d)", (int)d->pid);
	if (!strstr(u.out, "upgrade failed: ") || !strstr(u.out, still))
		fail_msg("upgrade --exec %s (%s): message is not 'upgrade failed: ...; %s': %s", exec,
			 why, still, u.out);
	if (reason && !strstr(u.out, reason))
		fail_msg("upgrade --exec %s (%s): the reason does not say '%s': %s", exec, why,
			 reason, u.out);
	assert_int_equal(kill(d->pid, 0), 0);
	assert_int_equal(waitpid(d->pid, NULL, WNOHANG), 0);
}

int upfx_log_count(const struct dproc *d, const char *what)
{
	char line[4096];
	int n = 0;
	FILE *f = fopen(d->log, "r");

	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	if (f)
		fclose(f);
	return n;
}

