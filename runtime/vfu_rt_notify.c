/* systemd's readiness protocol (sd_notify) without libsystemd: READY=1 and MAINPID= on $NOTIFY_SOCKET. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vfu_rt_notify.h"

int daemon_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	ssize_t n;
	size_t plen;
	int fd, rc = 0;

	if (!path || !*path)
		return 0; /* not under systemd (or Type= without notify) */
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* the abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen +
			  (path[0] == '/' ? 1 : 0));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&sa, len);
	if (n < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int daemon_notify_ready(void)
{
	char msg[64];

	/* MAINPID too: after a live upgrade the successor is not the process
	 * systemd started (NotifyAccess=all lets it say so) */
	snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%ld", (long)getpid());
	return daemon_notify(msg);
}
