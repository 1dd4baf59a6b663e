/* vfio-user client core: connection lifecycle, request/reply transport, raw messages. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vfurt/abi.h>

#include "client_internal.h"

/* Bytes of payload we accept in one message beyond the negotiated data size:
 * room for region info capability chains, io fd arrays and feature data. */
#define RX_SLACK (64u * 1024u)
#define RX_MIN_LIMIT (1u << 20)

int64_t vfr_client_deadline(int timeout_ms)
{
	struct timespec ts;

	if (timeout_ms < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + timeout_ms;
}

int vfr_client_left_ms(int64_t deadline)
{
	struct timespec ts;
	int64_t now, left;

	if (deadline < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	left = deadline - now;
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

size_t vfr_client_xfer_max(const struct vfurt_client *c)
{
	uint32_t a = c->caps.max_data_xfer_size;
	uint32_t b = c->caps.client_max_data_xfer_size;
	uint32_t m = a < b ? a : b;

	return m ? m : 1;
}

/*
 * Largest payload we are willing to buffer; bigger messages are drained.
 * Our own limit, not the server's: data replies are chunked to
 * min(server, ours), so a server cannot make us allocate more.
 */
static size_t rx_limit(const struct vfurt_client *c)
{
	size_t m = RX_MIN_LIMIT;

	if (c->caps.client_max_data_xfer_size > m)
		m = c->caps.client_max_data_xfer_size;
	return m + RX_SLACK;
}

/* Remember that the byte stream is unusable; later calls fail fast. */
static int mark_broken(struct vfurt_client *c, int rc)
{
	if (!c->broken)
		c->broken = (rc == -ECONNRESET || rc == -EPIPE) ? -ECONNRESET : -EPIPE;
	return rc;
}

int vfr_client_send(struct vfurt_client *c, int sock, const struct iovec *iov, int iovcnt,
		const int *fds, size_t nfds)
{
	int rc;

	if (c->broken)
		return c->broken;
	rc = vfr_sock_send(sock, iov, iovcnt, fds, nfds, c->timeout_ms);
	if (rc)
		/* A send that timed out may have written part of a message. */
		mark_broken(c, rc);
	return rc;
}

static int grow_rbuf(struct vfurt_client *c, size_t need)
{
	size_t cap = c->rbuf_cap ? c->rbuf_cap : 4096;
	uint8_t *p;

	if (need <= c->rbuf_cap)
		return 0;
	while (cap < need)
		cap *= 2;
	p = realloc(c->rbuf, cap);
	if (!p)
		return -ENOMEM;
	c->rbuf = p;
	c->rbuf_cap = cap;
	return 0;
}

/*
 * Read one whole message from sock, which poll(2) reported readable. The
 * header read collects fds. A payload above rx_limit is read and thrown away
 * (m->oversize) so the stream stays in sync. Any failure after the first
 * byte leaves the stream unusable, so the client is marked broken.
 */
static int recv_one(struct vfurt_client *c, int sock, struct client_msg *m)
{
	int64_t deadline = vfr_client_deadline(c->timeout_ms);
	size_t len;
	int rc;

	memset(&m->hdr, 0, sizeof(m->hdr));
	m->nfds = 0;
	m->len = 0;
	m->oversize = false;
	m->payload = c->rbuf;
	rc = vfr_sock_recv_exact(sock, &m->hdr, sizeof(m->hdr), m->fds, &m->nfds,
				   VFURT_SOCK_MAX_FDS, vfr_client_left_ms(deadline));
	if (rc)
		goto err;
	if (m->hdr.msg_size < sizeof(m->hdr)) {
		rc = -EPROTO;
		goto err;
	}
	len = m->hdr.msg_size - sizeof(m->hdr);
	if (len > rx_limit(c)) {
		rc = grow_rbuf(c, RX_SLACK);
		if (rc)
			goto err;
		m->oversize = true;
		m->len = len;
		while (len > 0) {
			size_t n = len < c->rbuf_cap ? len : c->rbuf_cap;

			rc = vfr_sock_recv_exact(sock, c->rbuf, n, NULL, NULL, 0,
						   vfr_client_left_ms(deadline));
			if (rc)
				goto err;
			len -= n;
		}
		return 0;
	}
	rc = grow_rbuf(c, len);
	if (rc)
		goto err;
	m->payload = c->rbuf;
	m->len = len;
	if (len) {
		rc = vfr_sock_recv_exact(sock, c->rbuf, len, NULL, NULL, 0,
					   vfr_client_left_ms(deadline));
		if (rc)
			goto err;
	}
	return 0;
err:
	vfr_close_fds(m->fds, m->nfds);
	m->nfds = 0;
	return mark_broken(c, rc);
}

static bool is_command(const struct client_msg *m)
{
	return (m->hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND;
}

/* Handle a message that is not the reply being waited for. */
static int dispatch_other(struct vfurt_client *c, int sock, struct client_msg *m)
{
	int rc = 0;

	if (is_command(m)) {
		if (sock == c->twin)
			c->stats.twin_commands++;
		rc = vfr_client_serve_command(c, sock, m);
	} else {
		c->stats.stale_replies++;
	}
	vfr_close_fds(m->fds, m->nfds);
	m->nfds = 0;
	return rc;
}

/*
 * Wait until a reply arrives on the main socket (msg_id `id`, or any reply
 * when id < 0), serving server commands on both sockets meanwhile.
 */
static int wait_reply(struct vfurt_client *c, int id, int64_t deadline, struct client_msg *m)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->sock, .events = POLLIN },
			{ .fd = c->twin, .events = POLLIN },
		};
		nfds_t n = c->twin >= 0 ? 2 : 1;
		int rc;

		rc = poll(p, n, vfr_client_left_ms(deadline));
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (rc == 0)
			return -ETIMEDOUT;
		if (n == 2 && p[1].revents) {
			rc = recv_one(c, c->twin, m);
			if (rc)
				return rc;
			rc = dispatch_other(c, c->twin, m);
			if (rc)
				return rc;
		}
		if (!p[0].revents)
			continue;
		rc = recv_one(c, c->sock, m);
		if (rc)
			return rc;
		if (is_command(m) ||
		    (m->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY ||
		    (id >= 0 && m->hdr.msg_id != (uint16_t)id)) {
			rc = dispatch_other(c, c->sock, m);
			if (rc)
				return rc;
			continue;
		}
		return 0;
	}
}

int vfr_client_call(struct vfurt_client *c, uint16_t cmd, uint32_t flags,
		const struct iovec *iov, int iovcnt, const int *fds, size_t nfds,
		struct client_msg *reply)
{
	struct vfio_user_header hdr = { .cmd = cmd, .flags = flags };
	struct iovec v[8];
	struct client_msg local;
	int64_t deadline;
	size_t total = sizeof(hdr);
	int rc;

	if (c->broken)
		return c->broken;
	if (iovcnt < 0 || iovcnt > 7 || nfds > VFURT_SOCK_MAX_FDS)
		return -EINVAL;
	deadline = vfr_client_deadline(c->timeout_ms);
	v[0].iov_base = &hdr;
	v[0].iov_len = sizeof(hdr);
	for (int i = 0; i < iovcnt; i++) {
		v[i + 1] = iov[i];
		total += iov[i].iov_len;
		if (total > UINT32_MAX)
			return -EINVAL;
	}
	hdr.msg_id = c->next_id++;
	hdr.msg_size = (uint32_t)total;
	rc = vfr_client_send(c, c->sock, v, iovcnt + 1, fds, nfds);
	if (rc)
		return rc;
	if (flags & VFIO_USER_F_NO_REPLY)
		return 0;
	if (!reply)
		reply = &local;
	memset(&reply->hdr, 0, sizeof(reply->hdr));
	reply->nfds = 0;
	reply->oversize = false;
	rc = wait_reply(c, hdr.msg_id, deadline, reply);
	if (rc)
		return rc;
	if (reply->oversize) {
		rc = -EMSGSIZE;
	} else if (reply->hdr.flags & VFIO_USER_F_ERROR) {
		rc = reply->hdr.error_no && reply->hdr.error_no < 4096 ?
			-(int)reply->hdr.error_no : -EIO;
	} else if (reply->hdr.cmd != cmd) {
		rc = -EPROTO;
	} else if (reply == &local) {
		rc = 0;
	} else {
		return 0;
	}
	vfr_close_fds(reply->fds, reply->nfds);
	reply->nfds = 0;
	return rc;
}

/* ---- lifecycle ----------------------------------------------------------- */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int effective_timeout(int timeout_ms)
{
	return timeout_ms == 0 ? VFURT_CLIENT_DEFAULT_TIMEOUT_MS :
		(timeout_ms < 0 ? -1 : timeout_ms);
}

#define CLIENT_KNOWN_FLAGS (VFURT_CLIENT_NO_JSON | VFURT_CLIENT_TWIN_SOCKET | \
			    VFURT_CLIENT_REQUIRE_TWIN | VFURT_CLIENT_NO_WRITE_MULTIPLE | \
			    VFURT_CLIENT_SET_VERSION | VFURT_CLIENT_NO_HANDSHAKE)

struct vfurt_client *vfurt_client_connect_fd(int sock, const struct vfurt_client_opts *opts)
{
	struct vfurt_client_opts o = { 0 };
	struct vfurt_client *c;
	int rc;

	if (sock < 0) {
		errno = EINVAL;
		return NULL;
	}
	if (opts && vfurt_abi_copy_in(&o, sizeof(o), opts,
				      VFURT_ABI_SIZE(struct vfurt_client_opts, version_json))) {
		rc = -EINVAL;
		goto err_close;
	}
	o.opts_size = sizeof(o);
	if ((o.flags & ~CLIENT_KNOWN_FLAGS) || o.max_msg_fds > VFURT_SOCK_MAX_FDS) {
		rc = -EINVAL;
		goto err_close;
	}
	rc = set_nonblock(sock);
	if (rc)
		goto err_close;
	c = calloc(1, sizeof(*c));
	if (!c) {
		rc = -ENOMEM;
		goto err_close;
	}
	c->sock = sock;
	c->twin = -1;
	c->timeout_ms = effective_timeout(o.timeout_ms);
	c->caps.major = (o.flags & VFURT_CLIENT_SET_VERSION) ? o.version_major : VFIO_USER_MAJOR;
	c->caps.minor = (o.flags & VFURT_CLIENT_SET_VERSION) ? o.version_minor : VFIO_USER_MINOR;
	c->caps.max_msg_fds = VFIO_USER_DEFAULT_MAX_FDS;
	c->caps.max_data_xfer_size = VFIO_USER_DEFAULT_MAX_DATA_XFER;
	c->caps.pgsizes = VFIO_USER_DEFAULT_PGSIZES;
	c->caps.max_dma_maps = VFIO_USER_DEFAULT_MAX_DMA_MAPS;
	c->caps.client_max_msg_fds = o.max_msg_fds ? o.max_msg_fds : VFURT_CLIENT_DEFAULT_MAX_MSG_FDS;
	c->caps.client_max_data_xfer_size = o.max_data_xfer_size ? o.max_data_xfer_size :
		VFIO_USER_DEFAULT_MAX_DATA_XFER;
	if (!(o.flags & VFURT_CLIENT_NO_HANDSHAKE)) {
		rc = vfr_client_handshake(c, &o);
		if (rc)
			goto err_free;
	}
	return c;

err_free:
	vfurt_client_close(c);
	errno = -rc;
	return NULL;
err_close:
	close(sock);
	errno = -rc;
	return NULL;
}

struct vfurt_client *vfurt_client_connect(const char *path, const struct vfurt_client_opts *opts)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	int sock;
	int err;

	if (!path) {
		errno = EINVAL;
		return NULL;
	}
	len = strlen(path);
	if (len == 0 || len >= sizeof(sa.sun_path)) {
		errno = len ? ENAMETOOLONG : EINVAL;
		return NULL;
	}
	memcpy(sa.sun_path, path, len + 1);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return NULL;
	while (connect(sock, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == EINTR)
			continue;
		err = errno;
		close(sock);
		errno = err;
		return NULL;
	}
	return vfurt_client_connect_fd(sock, opts);
}

void vfurt_client_close(struct vfurt_client *c)
{
	if (!c)
		return;
	if (c->twin >= 0)
		close(c->twin);
	if (c->sock >= 0)
		close(c->sock);
	vfr_client_windows_free(c);
	free(c->rbuf);
	free(c->server_json);
	free(c);
}

/* ---- accessors ----------------------------------------------------------- */

int vfurt_client_get_caps(const struct vfurt_client *c, struct vfurt_client_caps *out)
{
	if (!c)
		return -EINVAL;
	return vfurt_abi_copy_out(out, &c->caps, sizeof(c->caps),
				  VFURT_ABI_SIZE(struct vfurt_client_caps, client_max_data_xfer_size));
}

const char *vfurt_client_server_json(const struct vfurt_client *c)
{
	return c ? c->server_json : NULL;
}

int vfurt_client_fd(const struct vfurt_client *c)
{
	return c ? c->sock : -1;
}

int vfurt_client_twin_fd(const struct vfurt_client *c)
{
	return c ? c->twin : -1;
}

void vfurt_client_set_timeout(struct vfurt_client *c, int timeout_ms)
{
	if (c)
		c->timeout_ms = effective_timeout(timeout_ms);
}

int vfurt_client_get_stats(const struct vfurt_client *c, struct vfurt_client_stats *out)
{
	if (!c)
		return -EINVAL;
	return vfurt_abi_copy_out(out, &c->stats, sizeof(c->stats),
				  VFURT_ABI_SIZE(struct vfurt_client_stats, stale_replies));
}

uint64_t vfurt_client_dma_served(const struct vfurt_client *c)
{
	return c ? c->stats.dma_reads + c->stats.dma_writes : 0;
}

/* ---- serving while idle ---------------------------------------------------- */

int vfurt_client_poll_server(struct vfurt_client *c, int timeout_ms)
{
	int64_t deadline;
	int served = 0;

	if (!c)
		return -EINVAL;
	if (c->broken)
		return c->broken;
	deadline = vfr_client_deadline(timeout_ms);
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = c->sock, .events = POLLIN },
			{ .fd = c->twin, .events = POLLIN },
		};
		nfds_t n = c->twin >= 0 ? 2 : 1;
		struct client_msg m;
		int rc;

		/* After the first command only drain what is already queued. */
		rc = poll(p, n, served ? 0 : vfr_client_left_ms(deadline));
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (rc == 0)
			return served;
		for (nfds_t i = 0; i < n; i++) {
			if (!p[i].revents)
				continue;
			rc = recv_one(c, p[i].fd, &m);
			if (rc)
				return rc;
			if (is_command(&m))
				served++;
			rc = dispatch_other(c, p[i].fd, &m);
			if (rc)
				return rc;
		}
	}
}

int vfurt_client_wait_eventfd(struct vfurt_client *c, int efd, int timeout_ms, uint64_t *value)
{
	int64_t deadline = vfr_client_deadline(timeout_ms);

	if (efd < 0)
		return -EINVAL;
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = efd, .events = POLLIN },
			{ .fd = c ? c->sock : -1, .events = POLLIN },
			{ .fd = c ? c->twin : -1, .events = POLLIN },
		};
		int rc;

		if (c && c->broken)
			return c->broken;
		rc = poll(p, 3, vfr_client_left_ms(deadline));
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (rc == 0)
			return -ETIMEDOUT;
		if (p[0].revents & POLLIN) {
			uint64_t v;
			ssize_t n = read(efd, &v, sizeof(v));

			if (n == (ssize_t)sizeof(v)) {
				if (value)
					*value = v;
				return 0;
			}
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -errno;
		} else if (p[0].revents & (POLLERR | POLLNVAL)) {
			return -EBADF;
		}
		for (int i = 1; c && i < 3; i++) {
			struct client_msg m;

			if (p[i].fd < 0 || !p[i].revents)
				continue;
			rc = recv_one(c, p[i].fd, &m);
			if (!rc)
				rc = dispatch_other(c, p[i].fd, &m);
			if (rc)
				return rc;
		}
	}
}

/* ---- raw messages ---------------------------------------------------------- */

uint16_t vfurt_client_next_msg_id(struct vfurt_client *c)
{
	return c->next_id++;
}

int vfurt_client_send_raw(struct vfurt_client *c, const void *buf, size_t len,
			  const int *fds, size_t nfds)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	if (!c || (!buf && len) || len == 0 || nfds > VFURT_SOCK_MAX_FDS || (nfds && !fds))
		return -EINVAL;
	return vfr_client_send(c, c->sock, &iov, 1, fds, nfds);
}

/* Copy a received reply out to caller buffers; closes what does not fit. */
static int copy_out(struct client_msg *m, void *buf, size_t cap, size_t *len,
		    int *fds, size_t *nfds)
{
	size_t keep = 0;
	size_t fcap = (fds && nfds) ? *nfds : 0;
	int rc = 0;

	if (len)
		*len = m->len;
	if (m->oversize || m->len > cap || (m->len && !buf))
		rc = m->len ? -EMSGSIZE : 0;
	else if (m->len)
		memcpy(buf, m->payload, m->len);
	for (size_t i = 0; i < m->nfds; i++) {
		if (!rc && keep < fcap) {
			fds[keep++] = m->fds[i];
			m->fds[i] = -1;
		}
	}
	vfr_close_fds(m->fds, m->nfds);
	m->nfds = 0;
	if (nfds)
		*nfds = keep;
	return rc;
}

int vfurt_client_recv_raw(struct vfurt_client *c, struct vfio_user_header *hdr,
			  void *payload, size_t cap, size_t *len, int *fds, size_t *nfds)
{
	struct client_msg m;
	int rc;

	if (!c || !hdr)
		return -EINVAL;
	if (c->broken)
		return c->broken;
	rc = wait_reply(c, -1, vfr_client_deadline(c->timeout_ms), &m);
	if (rc) {
		if (nfds)
			*nfds = 0;
		return rc;
	}
	*hdr = m.hdr;
	return copy_out(&m, payload, cap, len, fds, nfds);
}

int vfurt_client_request(struct vfurt_client *c, uint16_t cmd, uint32_t flags,
			 const void *payload, size_t len, const int *fds, size_t nfds,
			 void *reply, size_t reply_cap, size_t *reply_len,
			 int *reply_fds, size_t *reply_nfds)
{
	struct iovec iov = { .iov_base = (void *)payload, .iov_len = len };
	struct client_msg m;
	int rc;

	if (reply_len)
		*reply_len = 0;
	if (!c || (len && !payload) || (nfds && !fds)) {
		rc = -EINVAL;
		goto out;
	}
	rc = vfr_client_call(c, cmd, flags, &iov, len ? 1 : 0, fds, nfds, &m);
	if (rc || (flags & VFIO_USER_F_NO_REPLY))
		goto out;
	return copy_out(&m, reply, reply_cap, reply_len, reply_fds, reply_nfds);
out:
	if (reply_nfds)
		*reply_nfds = 0;
	return rc;
}
