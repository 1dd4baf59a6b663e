/* vfu-ctl stats: a vfu-rt daemon's statistics (JSON) from its control socket, found by path or by pid. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctl_internal.h"
#include "runtime/config.h"

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
	/* A per-pid name in /tmp could be anybody's: make sure that pid answers. */
	if (expect_pid > 0 &&
	    (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid != expect_pid)) {
		snprintf(err, errlen, "%s is not served by process %ld", path, (long)expect_pid);
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* Read until EOF, waiting at most timeout_ms in total. Returns a malloc'ed string. */
static char *read_all(int fd, int timeout_ms, char *err, size_t errlen)
{
	struct timespec t0;
	size_t len = 0;
	size_t cap = 4096;
	char *buf = malloc(cap);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (buf) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct timespec t;
		ssize_t n;
		long left;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = timeout_ms - ((t.tv_sec - t0.tv_sec) * 1000 +
				     (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0) {
			snprintf(err, errlen, "no complete answer within %d ms", timeout_ms);
			goto err_free;
		}
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			goto err_free;
		}
		if (!p.revents)
			continue;
		if (len + 1 == cap) {
			char *nb = cap >= (64u << 20) ? NULL : realloc(buf, cap * 2);

			if (!nb) {
				snprintf(err, errlen, "answer too large");
				goto err_free;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "read: %s", strerror(errno));
			goto err_free;
		}
		if (n == 0) {
			buf[len] = '\0';
			return buf;
		}
		len += (size_t)n;
	}
	snprintf(err, errlen, "out of memory");
	return NULL;

err_free:
	free(buf);
	return NULL;
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

int ctl_cmd_stats(const char *arg, const struct ctl_opts *co)
{
	struct json_object *root;
	char err[512] = "";
	char path[VFURT_CONFIG_PATH_MAX + 1];
	char *text;
	int fd = -1;

	if (all_digits(arg)) {
		char path2[VFURT_CONFIG_PATH_MAX + 1];
		char err2[512] = "";
		int pid;

		if (ctl_parse_int(arg, 1, 0x3fffffff, &pid)) {
			fprintf(stderr, "vfu-ctl: stats: '%s' is not a process id\n", arg);
			return EXIT_USAGE;
		}
		if (kill(pid, 0) < 0 && errno == ESRCH) {
			fprintf(stderr, "vfu-ctl: stats: no process %d\n", pid);
			return 1;
		}
		if (vfr_config_default_ctl_path(pid, false, path, sizeof(path)) == 0)
			fd = ctl_connect_default(pid, false, path, err, sizeof(err));
		if (fd < 0 && vfr_config_default_ctl_path(pid, true, path2, sizeof(path2)) == 0 &&
		    strcmp(path, path2)) {
			fd = ctl_connect_default(pid, true, path2, err2, sizeof(err2));
			if (fd < 0 && err[0]) {
				size_t l = strlen(err);

				snprintf(err + l, sizeof(err) - l, "; %s", err2);
			} else if (fd < 0) {
				snprintf(err, sizeof(err), "%s", err2);
			}
		}
		if (fd < 0) {
			fprintf(stderr, "vfu-ctl: stats: process %d: %s (is it vfu-rt? if it was "
				"started with --control-socket PATH, pass PATH)\n", pid, err);
			return 1;
		}
	} else {
		fd = ctl_connect(arg, 0, err, sizeof(err));
		if (fd < 0) {
			fprintf(stderr, "vfu-ctl: stats: %s\n", err);
			return 1;
		}
	}
	text = read_all(fd, co->timeout_ms, err, sizeof(err));
	close(fd);
	if (!text) {
		fprintf(stderr, "vfu-ctl: stats: %s\n", err);
		return 1;
	}
	root = json_tokener_parse(text);
	if (!root || !json_object_is_type(root, json_type_object)) {
		fprintf(stderr, "vfu-ctl: stats: the answer is not a JSON object: %.200s\n", text);
		json_object_put(root);
		free(text);
		return 1;
	}
	printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							JSON_C_TO_STRING_SPACED));
	json_object_put(root);
	free(text);
	return 0;
}
