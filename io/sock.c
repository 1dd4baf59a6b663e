/* Whole-message send/receive with SCM_RIGHTS fds on vfio-user stream sockets. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sock.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Remaining budget of a deadline; -1 stays "forever". */
static int remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	return left < 0 ? 0 : (int)left;
}

static int wait_fd(int sock, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = sock, .events = events };
	int rc;

	for (;;) {
		rc = poll(&pfd, 1, remaining_ms(deadline));
		if (rc > 0)
			return 0;
		if (rc == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

void vfr_close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* Room for one SCM_RIGHTS control message of up to VFURT_SOCK_MAX_FDS fds. */
union rights_buf {
	char buf[CMSG_SPACE(sizeof(int) * VFURT_SOCK_MAX_FDS)];
	struct cmsghdr align;
};

/* Make msg carry fds[0..nfds) (1..VFURT_SOCK_MAX_FDS) in ctl. */
static void attach_fds(struct msghdr *msg, union rights_buf *ctl, const int *fds, size_t nfds)
{
	struct cmsghdr *cm;

	if (!fds || !nfds)
		return;
	memset(ctl, 0, sizeof(*ctl));
	msg->msg_control = ctl->buf;
	msg->msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
	cm = CMSG_FIRSTHDR(msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
}

int vfr_sock_send(int sock, const struct iovec *iov, int iovcnt,
		    const int *fds, size_t nfds, int timeout_ms)
{
	union rights_buf ctl;
	struct iovec local[8];
	struct msghdr msg = { 0 };
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	bool first = true;
	int rc;

	if (iovcnt < 1 || iovcnt > (int)(sizeof(local) / sizeof(local[0])) ||
	    nfds > VFURT_SOCK_MAX_FDS)
		return -EINVAL;
	memcpy(local, iov, sizeof(*iov) * (size_t)iovcnt);
	msg.msg_iov = local;
	msg.msg_iovlen = (size_t)iovcnt;

	while (msg.msg_iovlen > 0) {
		ssize_t n;

		if (first && nfds > 0) {
			attach_fds(&msg, &ctl, fds, nfds);
		} else {
			msg.msg_control = NULL;
			msg.msg_controllen = 0;
		}
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				rc = wait_fd(sock, POLLOUT, deadline);
				if (rc)
					return rc;
				continue;
			}
			return -errno;
		}
		first = false; /* fds travel with the first byte only */
		while (n > 0 && msg.msg_iovlen > 0) {
			if ((size_t)n >= msg.msg_iov->iov_len) {
				n -= (ssize_t)msg.msg_iov->iov_len;
				msg.msg_iov++;
				msg.msg_iovlen--;
			} else {
				msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + n;
				msg.msg_iov->iov_len -= (size_t)n;
				n = 0;
			}
		}
		/* skip empty trailing iovecs */
		while (msg.msg_iovlen > 0 && msg.msg_iov->iov_len == 0) {
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
	}
	return 0;
}

ssize_t vfr_sock_send_some(int sock, const struct iovec *iov, int iovcnt,
			     const int *fds, size_t nfds)
{
	union rights_buf ctl;
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	ssize_t n;

	if (iovcnt < 1 || nfds > VFURT_SOCK_MAX_FDS)
		return -EINVAL;
	if (nfds > 0)
		attach_fds(&msg, &ctl, fds, nfds);
	do {
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

int vfr_sock_send_msg(int sock, const struct vfio_user_header *hdr,
			const void *payload, size_t len, const int *fds, size_t nfds,
			int timeout_ms)
{
	struct iovec iov[2] = {
		{ .iov_base = (void *)hdr, .iov_len = sizeof(*hdr) },
		{ .iov_base = (void *)payload, .iov_len = len },
	};

	return vfr_sock_send(sock, iov, len ? 2 : 1, fds, nfds, timeout_ms);
}

/* Take the fds out of a received control buffer; keep what fits. */
static int collect_fds(struct msghdr *msg, int *fds, size_t *nfds, size_t max_fds)
{
	int err = 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		size_t n;
		int *in;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		in = (int *)(void *)CMSG_DATA(cm);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, &in[i], sizeof(fd));
			if (fds && *nfds < max_fds) {
				fds[(*nfds)++] = fd;
			} else {
				close(fd);
				err = -EMSGSIZE;
			}
		}
	}
	if (msg->msg_flags & MSG_CTRUNC)
		err = -EMSGSIZE;
	return err;
}

int vfr_sock_recv_exact(int sock, void *buf, size_t len, int *fds, size_t *nfds,
			  size_t max_fds, int timeout_ms)
{
	union rights_buf ctl;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	size_t got = 0;
	size_t dummy = 0;
	int err = 0;
	int rc;

	if (!nfds)
		nfds = &dummy;
	while (got < len) {
		struct iovec iov = { .iov_base = (char *)buf + got, .iov_len = len - got };
		struct msghdr msg = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = ctl.buf,
			.msg_controllen = sizeof(ctl.buf),
		};
		ssize_t n;

		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				rc = wait_fd(sock, POLLIN, deadline);
				if (rc)
					return rc;
				continue;
			}
			return -errno;
		}
		rc = collect_fds(&msg, fds, nfds, max_fds);
		if (rc && !err)
			err = rc;
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return err;
}

ssize_t vfr_sock_recv_msg(int sock, void *buf, size_t cap, int *fds, size_t *nfds,
			    size_t max_fds, int timeout_ms)
{
	struct vfio_user_header *hdr = buf;
	size_t dummy = 0;
	int rc;

	if (!nfds)
		nfds = &dummy;
	*nfds = 0;
	if (cap < sizeof(*hdr))
		return -EINVAL;
	rc = vfr_sock_recv_exact(sock, hdr, sizeof(*hdr), fds, nfds, max_fds, timeout_ms);
	if (rc)
		goto err;
	if (hdr->msg_size < sizeof(*hdr)) {
		rc = -EPROTO;
		goto err;
	}
	if (hdr->msg_size > cap) {
		rc = -EMSGSIZE;
		goto err;
	}
	rc = vfr_sock_recv_exact(sock, hdr + 1, hdr->msg_size - sizeof(*hdr), NULL, NULL, 0,
				   timeout_ms);
	if (rc)
		goto err;
	return hdr->msg_size;
err:
	if (fds)
		vfr_close_fds(fds, *nfds);
	*nfds = 0;
	return rc;
}
