/* vfu-ctl's side of a vfu-rt control socket: find it by path or pid, one JSON-RPC call per request. */
#include <errno.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctl_internal.h"
#include "runtime/config.h"

/* Largest answer accepted (a daemon with many devices has a long device_list). */
#define RPC_ANSWER_MAX (64u << 20)
/* Silence after which vfu-ctl says it may be talking to the wrong socket. */
#define CTL_SILENT_WARN_MS 2000

/* Methods answered when their work is done (a removal's grace period, a
 * live upgrade's phases), not at once. */
static bool slow_method(const char *method)
{
	return !strcmp(method, "device_remove") || !strcmp(method, "upgrade");
}

/* Whether process pid is alive and runs as uid. */
static bool same_owner(pid_t pid, uid_t uid)
{
	char p[64];
	struct stat st;

	snprintf(p, sizeof(p), "/proc/%ld", (long)pid);
	return stat(p, &st) == 0 && st.st_uid == uid;
}

/* Connect to a control socket; expect_pid > 0 checks who listens there. */
static int ctl_connect(const char *path, pid_t expect_pid, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int rc = -errno;

		snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	/* A per-pid name in /tmp could be anybody's: make sure that pid answers.
	 * After a live upgrade the socket was listened on by the process's
	 * predecessor (SO_PEERCRED names the listener): the user that owns
	 * the process then owns the listener too. */
	if (expect_pid > 0 &&
	    (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	     (cred.pid != expect_pid && !same_owner(expect_pid, cred.uid)))) {
		snprintf(err, errlen, "%s is not served by process %ld", path, (long)expect_pid);
		close(fd);
		return -EPERM;
	}
	return fd;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* pid's default control socket at path, only in a directory private to us (as vfu-rt makes it). */
static int ctl_connect_default(pid_t pid, bool use_tmp, const char *path, char *err,
			       size_t errlen)
{
	char dir[VFURT_CONFIG_PATH_MAX + 1];
	int rc = vfr_config_default_ctl_dir(use_tmp, dir, sizeof(dir));

	if (!rc)
		rc = vfr_config_ctl_dir_check(dir, false, err, errlen);
	return rc ? rc : ctl_connect(path, pid, err, errlen);
}

static int connect_pid(int pid, char *path, size_t pathlen, char *err, size_t errlen)
{
	char path2[VFURT_CONFIG_PATH_MAX + 1];
	char err2[512] = "";
	int fd = -1;

	err[0] = '\0';
	if (kill(pid, 0) < 0 && errno == ESRCH) {
		snprintf(err, errlen, "no process %d", pid);
		return -ESRCH;
	}
	if (vfr_config_default_ctl_path(pid, false, path, pathlen) == 0)
		fd = ctl_connect_default(pid, false, path, err, errlen);
	if (fd < 0 && vfr_config_default_ctl_path(pid, true, path2, sizeof(path2)) == 0 &&
	    strcmp(path, path2)) {
		fd = ctl_connect_default(pid, true, path2, err2, sizeof(err2));
		if (fd >= 0) {
			snprintf(path, pathlen, "%s", path2);
		} else if (err[0]) {
			size_t l = strlen(err);

			snprintf(err + l, errlen - l, "; %s", err2);
		} else {
			snprintf(err, errlen, "%s", err2);
		}
	}
	if (fd < 0) {
		char tmp[600];

		snprintf(tmp, sizeof(tmp), "%s", err);
		snprintf(err, errlen, "process %d: %s (is it vfu-rt? if it was started with "
			 "--control-socket PATH, pass PATH)", pid, tmp);
	}
	return fd;
}

/* Without --socket: the one daemon of ours whose default control socket answers. */
static int connect_only(char *path, size_t pathlen, char *err, size_t errlen)
{
	char prev[VFURT_CONFIG_PATH_MAX + 1] = "";
	int found = 0;
	int fd = -1;

	for (int tmp = 0; tmp < 2; tmp++) {
		char dir[VFURT_CONFIG_PATH_MAX + 1], pat[VFURT_CONFIG_PATH_MAX + 16], why[256];
		glob_t g;

		if (vfr_config_default_ctl_dir(tmp, dir, sizeof(dir)) || !strcmp(dir, prev) ||
		    vfr_config_ctl_dir_check(dir, false, why, sizeof(why)))
			continue;
		snprintf(prev, sizeof(prev), "%s", dir);
		snprintf(pat, sizeof(pat), "%s/*.ctl", dir);
		if (glob(pat, 0, NULL, &g))
			continue;
		for (size_t i = 0; i < g.gl_pathc && found < 2; i++) {
			int pid;
			char *base = strrchr(g.gl_pathv[i], '/') + 1;
			char num[32];
			int f;

			snprintf(num, sizeof(num), "%.*s", (int)strcspn(base, "."), base);
			if (ctl_parse_int(num, 1, 0x3fffffff, &pid))
				continue;
			f = ctl_connect(g.gl_pathv[i], pid, why, sizeof(why));
			if (f < 0)
				continue;
			if (found++ == 0) {
				fd = f;
				snprintf(path, pathlen, "%s", g.gl_pathv[i]);
			} else {
				close(f);
			}
		}
		globfree(&g);
	}
	if (found == 1)
		return fd;
	if (fd >= 0)
		close(fd);
	snprintf(err, errlen, found ? "several vfu-rt daemons are running: say which with "
		 "--socket PATH|PID" : "no running vfu-rt found: give --socket PATH|PID");
	return found ? -EEXIST : -ENOENT;
}

int ctl_daemon_connect(const char *arg, char *path, size_t pathlen, char *err, size_t errlen)
{
	path[0] = '\0';
	if (!arg)
		return connect_only(path, pathlen, err, errlen);
	if (all_digits(arg)) {
		int pid;

		if (ctl_parse_int(arg, 1, 0x3fffffff, &pid)) {
			snprintf(err, errlen, "'%s' is not a process id", arg);
			return -EINVAL;
		}
		return connect_pid(pid, path, pathlen, err, errlen);
	}
	snprintf(path, pathlen, "%s", arg);
	return ctl_connect(arg, 0, err, errlen);
}

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Send all of buf within timeout_ms. */
static int send_all(int fd, const char *buf, size_t len, int timeout_ms, const struct timespec *t0)
{
	while (len) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (elapsed_ms(t0) >= timeout_ms)
			return -ETIMEDOUT;
		(void)poll(&p, 1, (int)(timeout_ms - elapsed_ms(t0)));
	}
	return 0;
}

int ctl_rpc_call(int fd, const char *path, const char *method, struct json_object *params,
		 int timeout_ms, struct json_object **out, char *err, size_t errlen)
{
	struct json_object *req = json_object_new_object();
	struct json_object *resp = NULL;
	struct json_object *v;
	struct timespec t0;
	const char *text;
	size_t len = 0;
	size_t cap = 4096;
	char *buf = NULL;
	bool warned = false;
	int rc;

	*out = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	json_object_object_add(req, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(req, "id", json_object_new_int(1));
	json_object_object_add(req, "method", json_object_new_string(method));
	if (params)
		json_object_object_add(req, "params", params);
	text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	{
		size_t tl = strlen(text);
		char *line = malloc(tl + 2);

		if (!line) {
			json_object_put(req);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		memcpy(line, text, tl);
		line[tl] = '\n';
		line[tl + 1] = '\0';
		rc = send_all(fd, line, tl + 1, timeout_ms, &t0); /* one write: one request */
		free(line);
	}
	json_object_put(req);
	if (rc == -ETIMEDOUT) {
		snprintf(err, errlen, "%s does not read requests: it is not a vfu-rt control socket "
			 "(a vfio-user device socket?)", path);
		return CTL_NOT_CONTROL;
	}
	if (rc && rc != -EPIPE && rc != -ECONNRESET) {
		snprintf(err, errlen, "send: %s", strerror(-rc));
		return -1;
	}
	buf = malloc(cap);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = timeout_ms - elapsed_ms(&t0);
		char *nl;
		ssize_t n;

		/* a silent peer is said within 2 s, without failing a slow daemon
		 * (methods that take their time by design are exempt) */
		if (!warned && len == 0 && !slow_method(method) &&
		    elapsed_ms(&t0) >= CTL_SILENT_WARN_MS) {
			fprintf(stderr, "vfu-ctl: no answer from %s yet: is it a vfu-rt control "
				"socket? (a vfio-user device socket does not answer; waiting up to "
				"%d ms)\n", path, timeout_ms);
			warned = true;
		}
		if (!warned && len == 0 && !slow_method(method) &&
		    left > CTL_SILENT_WARN_MS - elapsed_ms(&t0))
			left = CTL_SILENT_WARN_MS - elapsed_ms(&t0) + 1;

		if (timeout_ms - elapsed_ms(&t0) <= 0) {
			if (len == 0)
				snprintf(err, errlen, "no answer from %s within %d ms: is it a vfu-rt "
					 "control socket? (a vfio-user device socket does not answer)",
					 path, timeout_ms);
			else
				snprintf(err, errlen, "no complete answer within %d ms", timeout_ms);
			rc = len == 0 ? CTL_NOT_CONTROL : -1;
			goto out;
		}
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			rc = -1;
			goto out;
		}
		if (!p.revents)
			continue;
		if (len + 1 >= cap) {
			char *nb = cap >= RPC_ANSWER_MAX ? NULL : realloc(buf, cap * 2);

			if (!nb) {
				snprintf(err, errlen, "answer too large");
				rc = -1;
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			if (len == 0 || buf[0] != '{')
				snprintf(err, errlen, "%s is not a vfu-rt control socket (a vfio-user "
					 "device socket?)", path);
			else
				snprintf(err, errlen, "the daemon closed the connection mid-answer");
			rc = len == 0 || buf[0] != '{' ? CTL_NOT_CONTROL : -1;
			goto out;
		}
		len += (size_t)n;
		if (buf[0] != '{') { /* a vfio-user header, or anything else but our JSON */
			snprintf(err, errlen, "%s is not a vfu-rt control socket (a vfio-user "
				 "device socket?)", path);
			rc = CTL_NOT_CONTROL;
			goto out;
		}
		buf[len] = '\0';
		nl = memchr(buf, '\n', len);
		if (nl) {
			*nl = '\0';
			break;
		}
	}
	resp = json_tokener_parse(buf);
	if (!resp || !json_object_is_type(resp, json_type_object)) {
		snprintf(err, errlen, "%s is not a vfu-rt control socket: the answer is not a "
			 "JSON-RPC response: %.120s", path, buf);
		rc = CTL_NOT_CONTROL;
		goto out;
	}
	if (json_object_object_get_ex(resp, "error", &v) && v) {
		struct json_object *m = NULL, *c = NULL;

		json_object_object_get_ex(v, "message", &m);
		json_object_object_get_ex(v, "code", &c);
		snprintf(err, errlen, "%s (error %d)", m ? json_object_get_string(m) : "error",
			 c ? json_object_get_int(c) : 0);
		*out = json_object_get(v);
		rc = CTL_DAEMON_ERROR;
		goto out;
	}
	if (!json_object_object_get_ex(resp, "result", &v)) {
		snprintf(err, errlen, "the answer has neither result nor error: %.120s", buf);
		rc = -1;
		goto out;
	}
	*out = json_object_get(v);
	rc = 0;
out:
	json_object_put(resp);
	free(buf);
	return rc;
}
