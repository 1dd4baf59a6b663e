/* Blocking-with-timeout message I/O on vfio-user sockets, shared by server and client. */
#ifndef VFURT_IO_SOCK_H
#define VFURT_IO_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <vfurt/vfio_user.h>

/* Upper bound on fds accepted with one message (cmsg buffer size). */
#define VFURT_SOCK_MAX_FDS 64u

/*
 * Send one whole message: iov[0..iovcnt) concatenated, with fds (may be
 * NULL/0) as SCM_RIGHTS on the first byte. Works on blocking and non-blocking
 * sockets: on EAGAIN it waits for POLLOUT up to timeout_ms (-1 = forever).
 * Never raises SIGPIPE. Returns 0, -ETIMEDOUT, -EPIPE/-ECONNRESET (peer gone)
 * or another negative errno. The fds stay owned by the caller.
 */
int vfr_sock_send(int sock, const struct iovec *iov, int iovcnt,
		    const int *fds, size_t nfds, int timeout_ms);

/*
 * One non-blocking sendmsg of iov[0..iovcnt) with fds (SCM_RIGHTS) on its
 * first byte. Returns the bytes sent (0 when the socket buffer is full:
 * then nothing, fds included, was sent; fds travel with the first byte, so
 * once any byte went they went too), or a negative errno (-EPIPE when the
 * peer is gone). Never blocks, never raises SIGPIPE.
 */
ssize_t vfr_sock_send_some(int sock, const struct iovec *iov, int iovcnt,
			     const int *fds, size_t nfds);

/* Convenience: header + one payload buffer. hdr->msg_size must already be
 * 16 + len. */
int vfr_sock_send_msg(int sock, const struct vfio_user_header *hdr,
			const void *payload, size_t len, const int *fds, size_t nfds,
			int timeout_ms);

/*
 * Receive exactly len bytes, collecting SCM_RIGHTS fds into fds[*nfds..max_fds)
 * when fds != NULL (extra fds beyond max_fds, and all fds when fds == NULL,
 * are closed; *nfds counts what was kept; then the bytes are still
 * received but the call returns -EMSGSIZE, as it does on MSG_CTRUNC, and the
 * caller decides about the kept fds). Waits up to timeout_ms for data
 * (-1 = forever). Returns 0, -ECONNRESET (orderly EOF or reset, also when
 * EOF comes mid-message), -ETIMEDOUT, -EMSGSIZE, or another negative errno.
 */
int vfr_sock_recv_exact(int sock, void *buf, size_t len, int *fds, size_t *nfds,
			  size_t max_fds, int timeout_ms);

/*
 * Receive one whole message: the 16-byte header (with fds) then msg_size-16
 * payload bytes into buf (capacity cap, header included). Returns the
 * message size, -EPROTO (msg_size < 16), -EMSGSIZE (msg_size > cap: the
 * stream cannot be resynchronised, caller should drop the connection), or
 * as vfr_sock_recv_exact. On error all received fds are closed and
 * *nfds is 0.
 */
ssize_t vfr_sock_recv_msg(int sock, void *buf, size_t cap, int *fds, size_t *nfds,
			    size_t max_fds, int timeout_ms);

/* Close fds[0..n) that are >= 0 and set them to -1. */
void vfr_close_fds(int *fds, size_t n);

#endif /* VFURT_IO_SOCK_H */
