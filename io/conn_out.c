/* Connection output: non-blocking sends, a bounded queue for what the socket cannot take yet. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <unistd.h>

#include "conn_internal.h"

/*
 * A message is sent at once when nothing waits before it and the socket
 * buffer has room; what does not fit is copied into the queue (with dups of
 * its fds if not even the first byte went) and flushed when the host sees
 * the socket writable. Nothing here ever waits for the peer: a client that
 * does not read only grows its own queue, which stops the reading of its
 * requests once over the bound (vfurt_conn_paused) and is disconnected
 * when it makes no progress for drain_timeout_ms (vfurt_conn_tick).
 */

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
	size_t n = 0;

	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* Queue the bytes of iov past `sent`; fds are dup'd if sent == 0. */
static int queue_rest(struct outq *q, const struct iovec *iov, int iovcnt, size_t sent,
		      const int *fds, size_t nfds)
{
	size_t total = iov_total(iov, iovcnt);
	struct out_msg *m = malloc(sizeof(*m) + (total - sent));
	size_t skip = sent, at = 0;

	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->len = total - sent;
	m->off = 0;
	m->nfds = 0;
	if (sent == 0) {
		for (size_t i = 0; i < nfds; i++) {
			int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);

			if (d < 0) {
				int rc = -errno;

				vfr_close_fds(m->fds, m->nfds);
				free(m);
				return rc;
			}
			m->fds[m->nfds++] = d;
		}
	}
	for (int i = 0; i < iovcnt; i++) {
		size_t l = iov[i].iov_len;
		const uint8_t *b = iov[i].iov_base;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		memcpy(m->data + at, b + skip, l - skip);
		at += l - skip;
		skip = 0;
	}
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	q->bytes += m->len;
	q->msgs++;
	q->nfds += (uint32_t)m->nfds;
	return 0;
}

int vfr_conn_out_queue(struct outq *q, const void *buf, size_t len, const int *fds, size_t nfds)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	if (!len || nfds > VFURT_SOCK_MAX_FDS)
		return -EINVAL;
	return queue_rest(q, &iov, 1, 0, fds, nfds);
}

int vfr_conn_out_send(struct outq *q, int sock, const struct iovec *iov, int iovcnt,
		  const int *fds, size_t nfds)
{
	size_t total = iov_total(iov, iovcnt);
	struct iovec local[4];
	size_t sent = 0;

	if (iovcnt < 1 || iovcnt > 4 || nfds > VFURT_SOCK_MAX_FDS)
		return -EINVAL;
	if (!q->head) {
		ssize_t n;

		memcpy(local, iov, sizeof(*iov) * (size_t)iovcnt);
		n = vfr_sock_send_some(sock, local, iovcnt, fds, nfds);
		if (n < 0)
			return (int)n;
		sent = (size_t)n;
		/* a partial send: try the rest once more (a stream socket may
		 * split at its buffer boundary even with room behind it) */
		while (sent < total && n > 0) {
			struct iovec rest[4];
			int k = 0;
			size_t skip = sent;

			for (int i = 0; i < iovcnt; i++) {
				if (skip >= iov[i].iov_len) {
					skip -= iov[i].iov_len;
					continue;
				}
				rest[k].iov_base = (uint8_t *)iov[i].iov_base + skip;
				rest[k].iov_len = iov[i].iov_len - skip;
				skip = 0;
				k++;
			}
			n = vfr_sock_send_some(sock, rest, k, NULL, 0);
			if (n < 0)
				return (int)n;
			sent += (size_t)n;
		}
		if (sent == total)
			return 0;
	}
	return queue_rest(q, iov, iovcnt, sent, fds, nfds);
}

int vfr_conn_out_flush(struct outq *q, int sock)
{
	while (q->head) {
		struct out_msg *m = q->head;
		struct iovec iov = { .iov_base = m->data + m->off, .iov_len = m->len - m->off };
		ssize_t n = vfr_sock_send_some(sock, &iov, 1, m->off ? NULL : m->fds,
						 m->off ? 0 : m->nfds);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return 0; /* still full */
		q->progress = true;
		vfr_close_fds(m->fds, m->nfds); /* sent with the first byte */
		q->nfds -= (uint32_t)m->nfds;
		m->nfds = 0;
		m->off += (size_t)n;
		q->bytes -= (size_t)n;
		if (m->off < m->len)
			continue;
		q->head = m->next;
		if (!q->head)
			q->tail = NULL;
		q->msgs--;
		free(m);
	}
	return 0;
}

void vfr_conn_out_free(struct outq *q)
{
	while (q->head) {
		struct out_msg *m = q->head;

		q->head = m->next;
		vfr_close_fds(m->fds, m->nfds);
		free(m);
	}
	q->tail = NULL;
	q->bytes = 0;
	q->msgs = 0;
	q->nfds = 0;
}

bool vfr_conn_out_over(const struct vfurt_conn *c)
{
	size_t bytes = c->out.bytes + c->tout.bytes;
	uint32_t msgs = c->out.msgs + c->tout.msgs;

	/* fds count too: replies carrying fds (region io fds) hold dups */
	return bytes > c->max_out_bytes || msgs > c->max_out_msgs ||
	       c->out.nfds > CONN_MAX_OUT_FDS;
}

/* Bytes in the socket the client has not read yet (-1: unknown). */
static int sock_unread(int fd)
{
	int n;

	return ioctl(fd, SIOCOUTQ, &n) == 0 ? n : -1;
}

/*
 * Stall accounting at a tick: the queue's age without any progress. The
 * client made progress when we could send, or when it read some of what
 * the socket holds (a large message waits for room enough for its next
 * piece: a client reading slowly is still reading).
 */
static int out_check(struct vfurt_conn *c, struct outq *q, int fd, uint64_t now_ms,
		     const char *which)
{
	int unread;

	if (!q->head) {
		q->stall_since = 0;
		q->progress = false;
		return 0;
	}
	unread = sock_unread(fd);
	if (!q->stall_since) {
		/* queued since the last tick: the clock starts now */
		q->stall_since = now_ms ? now_ms : 1;
		q->last_unread = unread;
		q->progress = false;
		return 0;
	}
	if (unread >= 0 && unread < q->last_unread)
		q->progress = true;
	q->last_unread = unread;
	if (q->progress) {
		q->progress = false;
		q->stall_since = now_ms ? now_ms : 1;
		return 0;
	}
	if (now_ms - q->stall_since < (uint64_t)c->drain_timeout_ms)
		return 0;
	vfurt_logf(c->log, VFURT_LOG_WARN,
		   "%s: client read nothing for %d ms, %zu bytes queued on the %s socket: disconnecting",
		   c->dev->name, c->drain_timeout_ms, q->bytes, which);
	return -ETIMEDOUT;
}

bool vfurt_conn_want_write(const struct vfurt_conn *c)
{
	return c->out.head != NULL;
}

int vfurt_conn_on_writable(struct vfurt_conn *c)
{
	int rc = vfr_conn_out_flush(&c->out, c->fd);

	if (!rc && c->twin_fd >= 0)
		rc = vfr_conn_out_flush(&c->tout, c->twin_fd);
	/* under its bound again, vfurt_conn_paused() turns false: the host
	 * reads the client's commands again */
	return rc;
}

int vfurt_conn_tick(struct vfurt_conn *c, uint64_t now_ms)
{
	int rc;

	if (!c->born_ms)
		c->born_ms = now_ms ? now_ms : 1;
	if (!c->negotiated && c->version_timeout_ms > 0 &&
	    now_ms - c->born_ms >= (uint64_t)c->version_timeout_ms) {
		vfurt_logf(c->log, VFURT_LOG_WARN,
			   "%s: no VERSION within %d ms of connecting: disconnecting", c->dev->name,
			   c->version_timeout_ms);
		return -ETIMEDOUT;
	}
	/* the twin socket is not watched for POLLOUT: flush it here */
	rc = vfurt_conn_on_writable(c);
	if (rc)
		return rc;
	rc = out_check(c, &c->out, c->fd, now_ms, "main");
	if (!rc && c->twin_fd >= 0)
		rc = out_check(c, &c->tout, c->twin_fd, now_ms, "twin");
	if (!rc)
		rc = vfr_conn_dma_tick(c, now_ms);
	if (!rc && c->dead)
		rc = -EPIPE;
	return rc;
}
