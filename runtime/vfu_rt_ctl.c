/* vfu-rt's control socket: private directory, stale-socket cleanup, the per-pid link. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vfurt/server.h>

#include "vfu_rt_ctl.h"

/*
 * Make pid's default name point at an explicitly chosen control socket, so
 * `vfu-ctl stats PID` finds it. Anything already at our pid's name is left
 * over from a dead process with the same pid. Best effort: returns 0 or a
 * negative errno for a warning.
 */
static int ctl_link(struct ctl *c, const char *name)
{
	char target[PATH_MAX];
	struct stat st;
	int n;

	if (c->path[0] == '/') {
		n = snprintf(target, sizeof(target), "%s", c->path);
	} else {
		const char *rel = c->path;
		char cwd[PATH_MAX];

		while (rel[0] == '.' && rel[1] == '/')
			rel += 2;
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		n = snprintf(target, sizeof(target), "%s/%s", cwd, rel);
	}
	if (n < 0 || (size_t)n >= sizeof(target))
		return -ENAMETOOLONG;
	if (lstat(name, &st) == 0) {
		if (!S_ISSOCK(st.st_mode) && !S_ISLNK(st.st_mode))
			return -EEXIST;
		unlink(name);
	}
	if (symlink(target, name) < 0)
		return -errno;
	snprintf(c->link, sizeof(c->link), "%s", name);
	return 0;
}

/*
 * Our pid's default control socket, in a private directory: under
 * $XDG_RUNTIME_DIR, else /tmp/vfu-rt-UID (made 0700 if missing; one that
 * is not ours alone is refused with a warning). Returns 0 with the path in
 * def, or a negative errno after warnings.
 */
static int ctl_default(char *def, size_t len, const struct vfurt_log *log)
{
	char dir[VFURT_CONFIG_PATH_MAX + 1], prev[VFURT_CONFIG_PATH_MAX + 1] = "";
	char err[512];
	int rc = -ENOENT;

	for (int tmp = 0; tmp < 2; tmp++) {
		rc = vfr_config_default_ctl_dir(tmp, dir, sizeof(dir));
		if (rc) {
			vfurt_logf(log, VFURT_LOG_WARN, "control socket directory: %s",
				   strerror(-rc));
			continue;
		}
		if (!strcmp(dir, prev))
			break; /* no XDG_RUNTIME_DIR: the same directory twice */
		snprintf(prev, sizeof(prev), "%s", dir);
		rc = vfr_config_ctl_dir_check(dir, true, err, sizeof(err));
		if (rc) {
			vfurt_logf(log, VFURT_LOG_WARN, "control socket directory: %s", err);
			continue;
		}
		return vfr_config_default_ctl_path(getpid(), tmp, def, len);
	}
	return rc;
}

static const char *listen_error(int rc)
{
	return rc == -EADDRINUSE ? "another vfu-rt is running there" :
	       rc == -EEXIST ? "a file that is not a socket exists there" : strerror(-rc);
}

/*
 * Open the control socket. A stale one of a crashed daemon (nobody accepts)
 * is replaced; a live one is an error. Returns 0 or an exit status after a
 * message.
 */
int ctl_open(struct ctl *c, const char *explicit_path, const struct vfurt_log *log)
{
	char def[VFURT_CONFIG_PATH_MAX + 1];
	int rc;

	c->fd = -1;
	c->path[0] = c->link[0] = '\0';
	rc = ctl_default(def, sizeof(def), log);
	if (explicit_path) {
		snprintf(c->path, sizeof(c->path), "%s", explicit_path);
		c->fd = vfurt_listen_unix(c->path, 0600);
		if (c->fd < 0) {
			if (c->fd == -EADDRINUSE)
				fprintf(stderr, "vfu-rt: --control-socket: another vfu-rt is running "
					"on %s\n", c->path);
			else
				fprintf(stderr, "vfu-rt: --control-socket: cannot listen on %s: %s\n",
					c->path, listen_error(c->fd));
			rc = c->fd;
			c->fd = -1;
			c->path[0] = '\0';
			return rc;
		}
		if (!rc && strcmp(def, c->path)) {
			rc = ctl_link(c, def);
			if (rc)
				vfurt_logf(log, VFURT_LOG_WARN, "cannot link %s to the control socket: "
					   "%s (vfu-ctl stats PID will not find it)", def,
					   strerror(-rc));
		}
	} else {
		if (rc) {
			vfurt_logf(log, VFURT_LOG_WARN, "no control socket: %s", strerror(-rc));
			return 0;
		}
		snprintf(c->path, sizeof(c->path), "%s", def);
		c->fd = vfurt_listen_unix(c->path, 0600);
		if (c->fd < 0) {
			vfurt_logf(log, VFURT_LOG_WARN, "no control socket: cannot listen on %s: %s",
				   c->path, listen_error(c->fd));
			c->path[0] = '\0';
			return 0;
		}
	}
	if (explicit_path && !c->link[0])
		vfurt_logf(log, VFURT_LOG_INFO, "control socket on %s (vfu-ctl --socket %s list)",
			   c->path, c->path);
	else
		vfurt_logf(log, VFURT_LOG_INFO, "control socket on %s (vfu-ctl --socket %ld list)",
			   c->path, (long)getpid());
	return 0;
}

void ctl_close(struct ctl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->link[0])
		unlink(c->link);
	if (c->path[0])
		unlink(c->path);
	c->path[0] = c->link[0] = '\0';
}

int ctl_adopt(struct ctl *c, int fd, const char *path, const struct vfurt_log *log)
{
	char def[VFURT_CONFIG_PATH_MAX + 1];

	c->fd = fd;
	c->link[0] = '\0';
	snprintf(c->path, sizeof(c->path), "%s", path);
	/* this pid's default name finds it too (vfu-ctl stats PID) */
	if (ctl_default(def, sizeof(def), log) == 0 && strcmp(def, c->path) &&
	    ctl_link(c, def))
		vfurt_logf(log, VFURT_LOG_WARN, "cannot link %s to the control socket", def);
	return 0;
}

void ctl_forget(struct ctl *c)
{
	if (c->link[0])
		unlink(c->link);
	c->link[0] = '\0';
}
