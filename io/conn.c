/* Connection engine: framing, header validation, dispatch, replies, DMA messages. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vfurt/abi.h>
#include <vfurt/engine.h>

#include "conn_internal.h"

#define HDR_SIZE sizeof(struct vfio_user_header)
#define KNOWN_FLAGS (VFIO_USER_F_TYPE_MASK | VFIO_USER_F_NO_REPLY | VFIO_USER_F_ERROR)

static uint32_t clamp_u32(uint32_t v, uint32_t dflt, uint32_t max)
{
	if (v == 0)
		return dflt;
	return v > max ? max : v;
}

struct vfurt_conn *vfurt_conn_create(struct vfurt_dev *dev, int fd,
				     const struct vfurt_conn_opts *opts)
{
	struct vfurt_conn_opts o = { 0 };
	struct vfurt_conn *c;

	if (!dev || fd < 0) {
		errno = EINVAL;
		return NULL;
	}
	if (dev->conn) {
		errno = EBUSY;
		return NULL;
	}
	/* opts_size 0: the zeroed conn member of a runtime's or server's opts */
	if (opts && opts->opts_size &&
	    vfurt_abi_copy_in(&o, sizeof(o), opts,
			      VFURT_ABI_SIZE(struct vfurt_conn_opts, max_irq_fds))) {
		errno = EINVAL;
		return NULL;
	}

	c = calloc(1, sizeof(*c));
	if (!c)
		goto err;
	c->dev = dev;
	c->log = &dev->log;
	c->fd = fd;
	c->twin_fd = -1;
	c->max_xfer = clamp_u32(o.max_data_xfer_size, VFIO_USER_DEFAULT_MAX_DATA_XFER,
				CONN_MAX_XFER_LIMIT);
	c->max_fds = clamp_u32(o.max_msg_fds, CONN_DEFAULT_MAX_FDS, VFURT_SOCK_MAX_FDS);
	/* each window costs the server memory and (fd-backed) a mapping of
	 * the process: a client gets what a VMM needs, not the spec's 65,535 */
	c->max_dma_maps = clamp_u32(o.max_dma_maps, CONN_DEFAULT_MAX_DMA_MAPS,
				    CONN_MAX_DMA_MAPS_LIMIT);
	c->timeout_ms = o.timeout_ms > 0 ? o.timeout_ms : CONN_DEFAULT_TIMEOUT_MS;
	c->version_timeout_ms = o.version_timeout_ms > 0 ? o.version_timeout_ms
						       : o.version_timeout_ms < 0 ? 0
						       : CONN_DEFAULT_VERSION_TIMEOUT_MS;
	c->drain_timeout_ms = o.drain_timeout_ms > 0 ? o.drain_timeout_ms
						     : CONN_DEFAULT_DRAIN_TIMEOUT_MS;
	c->max_out_bytes = clamp_u32(o.max_queued_bytes, CONN_DEFAULT_MAX_OUT_BYTES,
				     CONN_MAX_OUT_BYTES_LIMIT);
	c->max_out_msgs = clamp_u32(o.max_queued_msgs, CONN_DEFAULT_MAX_OUT_MSGS,
				    CONN_MAX_OUT_MSGS_LIMIT);
	vfr_irqs_set_max_fds(dev->irqs, clamp_u32(o.max_irq_fds, CONN_DEFAULT_MAX_IRQ_FDS,
						    CONN_MAX_IRQ_FDS_LIMIT));
	c->offer_twin = !o.no_twin_socket;
	c->client_max_fds = VFIO_USER_DEFAULT_MAX_FDS;
	c->client_max_xfer = VFIO_USER_DEFAULT_MAX_DATA_XFER;
	/* the largest legitimate message is a REGION_WRITE of max_xfer bytes */
	c->rx_max = HDR_SIZE + sizeof(struct vfio_user_region_access) + c->max_xfer +
		    CONN_MSG_SLACK;
	c->rx.payload = malloc(c->rx_max - HDR_SIZE);
	if (!c->rx.payload)
		goto err_free_conn;
	c->reply.cap = 4096;
	c->reply.buf = malloc(c->reply.cap);
	if (!c->reply.buf)
		goto err_free_payload;
	for (size_t i = 0; i < VFURT_SOCK_MAX_FDS; i++)
		c->rx.fds[i] = -1;
	return c;

err_free_payload:
	free(c->rx.payload);
err_free_conn:
	free(c);
err:
	errno = ENOMEM;
	return NULL;
}

static void unmap_notify(void *arg, const struct vfurt_dma_region *r)
{
	struct vfurt_dev *dev = arg;

	if (dev->ops.dma_unmap)
		dev->ops.dma_unmap(dev, dev->arg, r);
}

static void msg_free(struct vfurt_msg *m)
{
	if (!m)
		return;
	vfr_close_fds(m->fds, m->nfds);
	free(m->payload);
	free(m);
}

void vfr_conn_logf(struct vfurt_conn *c, int level, const char *fmt, ...)
{
	uint64_t suppressed;
	va_list ap;

	/* lines the level drops cost nothing */
	if (!c->log || !c->log->fn || level > c->log->level)
		return;
	if (!vfr_log_ratelimit_take_now(level <= VFURT_LOG_WARN ? &c->log_rl : &c->log_rl_verbose,
					&suppressed))
		return;
	if (suppressed)
		vfurt_logf(c->log, VFURT_LOG_WARN, "%s: %llu log lines of this client suppressed",
			   c->dev->name, (unsigned long long)suppressed);
	va_start(ap, fmt);
	vfr_log_vemit(c->log, level, fmt, ap);
	va_end(ap);
}

void vfurt_conn_destroy(struct vfurt_conn *c)
{
	if (!c)
		return;
	/* transfers waiting for the client end before its windows go */
	vfr_conn_dma_fail_all(c, -ECONNRESET);
	if (c->dev->conn == c) {
		struct vfurt_dev *dev = c->dev;

		vfr_dma_table_remove_all(dev->dma, unmap_notify, dev);
		vfr_fault_domain_clear(&dev->fault); /* its windows are gone */
		vfr_irqs_release_client(dev->irqs);
		dev->conn = NULL;
		if (dev->pci_client_detach)
			dev->pci_client_detach(dev->pci);
		if (dev->ops.detach)
			dev->ops.detach(dev, dev->arg);
		if (c->log_rl.suppressed + c->log_rl_verbose.suppressed)
			vfurt_logf(c->log, VFURT_LOG_WARN, "%s: %llu log lines of this client suppressed",
				   dev->name, (unsigned long long)(c->log_rl.suppressed +
								   c->log_rl_verbose.suppressed));
		vfurt_logf(c->log, VFURT_LOG_INFO, "%s: client detached", dev->name);
	}
	msg_free(c->parked);
	vfr_close_fds(c->rx.fds, c->rx.nfds);
	vfr_conn_out_free(&c->out);
	vfr_conn_out_free(&c->tout);
	if (c->twin_fd >= 0) {
		close(c->twin_fd);
		atomic_fetch_add(&c->dev->watch_gen, 1); /* the host stops watching it */
	}
	free(c->twin_rx.buf);
	close(c->fd);
	free(c->rx.payload);
	free(c->reply.buf);
	free(c);
}

int vfurt_conn_fd(const struct vfurt_conn *c)
{
	return c->fd;
}

bool vfurt_conn_paused(const struct vfurt_conn *c)
{
	return c->parked != NULL || vfr_conn_out_over(c);
}

int vfurt_conn_get_stats(const struct vfurt_conn *c, struct vfurt_conn_stats *st)
{
	struct vfurt_conn_stats s;

	if (!c)
		return -EINVAL;
	s = c->stats;
	s.stats_size = sizeof(s);
	s.negotiated = c->negotiated;
	s.twin_socket = c->twin_fd >= 0;
	s.max_msg_fds_client = c->client_max_fds;
	s.max_data_xfer_client = c->client_max_xfer;
	return vfurt_abi_copy_out(st, &s, sizeof(s),
				  VFURT_ABI_SIZE(struct vfurt_conn_stats, twin_socket));
}

void *vfr_reply_alloc(struct vfurt_conn *c, size_t len)
{
	if (len > c->reply.cap) {
		void *p = realloc(c->reply.buf, len);

		if (!p)
			return NULL;
		c->reply.buf = p;
		c->reply.cap = len;
	}
	c->reply.len = len;
	memset(c->reply.buf, 0, len);
	return c->reply.buf;
}

/* ---- replies ----------------------------------------------------------- */

static int send_reply(struct vfurt_conn *c, const struct vfio_user_header *req, int err)
{
	struct vfio_user_header hdr = {
		.msg_id = req->msg_id,
		.cmd = req->cmd,
		.flags = VFIO_USER_F_TYPE_REPLY,
	};
	size_t len = err ? 0 : c->reply.len;
	size_t nfds = err ? 0 : c->reply.nfds;
	int rc;

	if (err) {
		hdr.flags |= VFIO_USER_F_ERROR;
		hdr.error_no = (uint32_t)-err;
	}
	hdr.msg_size = (uint32_t)(HDR_SIZE + len);
	{
		struct iovec iov[2] = {
			{ .iov_base = &hdr, .iov_len = HDR_SIZE },
			{ .iov_base = c->reply.buf, .iov_len = len },
		};

		rc = vfr_conn_out_send(&c->out, c->fd, iov, len ? 2 : 1, c->reply.fds, nfds);
	}
	if (rc && rc != -EPIPE && rc != -ECONNRESET)
		vfr_conn_logf(c, VFURT_LOG_WARN, "%s: cannot send %s reply: %s",
			   c->dev->name, vfio_user_cmd_name(req->cmd), strerror(-rc));
	return rc ? -EPIPE : 0;
}

static void reply_reset(struct vfurt_conn *c)
{
	if (c->reply.close_fds)
		vfr_close_fds(c->reply.fds, c->reply.nfds);
	c->reply.len = 0;
	c->reply.nfds = 0;
	c->reply.close_fds = 0;
}

/* ---- dispatch ---------------------------------------------------------- */

bool vfr_cmd_needs_quiesce(uint16_t cmd)
{
	return cmd == VFIO_USER_DMA_MAP || cmd == VFIO_USER_DMA_UNMAP ||
	       cmd == VFIO_USER_DEVICE_RESET;
}

/* How many fds a command may carry. */
static size_t fds_allowed(const struct vfurt_conn *c, uint16_t cmd)
{
	switch (cmd) {
	case VFIO_USER_DMA_MAP:
		return 1;
	case VFIO_USER_DMA_UNMAP:
		/* SPDK sends the region's fd along; libvfio-user accepts it and
		 * so do we (dispatch closes it, the unmap ignores it) */
		return 1;
	case VFIO_USER_DEVICE_SET_IRQS:
		return c->max_fds;
	default:
		return 0;
	}
}

static int run_handler(struct vfurt_conn *c, struct vfurt_msg *m)
{
	if (!c->negotiated && m->hdr.cmd != VFIO_USER_VERSION) {
		vfr_conn_logf(c, VFURT_LOG_WARN, "%s: %s before VERSION", c->dev->name,
			   vfio_user_cmd_name(m->hdr.cmd));
		return -EINVAL;
	}
	switch (m->hdr.cmd) {
	case VFIO_USER_VERSION:
		return vfr_cmd_version(c, m);
	case VFIO_USER_DMA_MAP:
		return vfr_cmd_dma_map(c, m);
	case VFIO_USER_DMA_UNMAP:
		return vfr_cmd_dma_unmap(c, m);
	case VFIO_USER_DEVICE_GET_INFO:
		return vfr_cmd_device_info(c, m);
	case VFIO_USER_DEVICE_GET_REGION_INFO:
		return vfr_cmd_region_info(c, m);
	case VFIO_USER_DEVICE_GET_REGION_IO_FDS:
		return vfr_cmd_region_io_fds(c, m);
	case VFIO_USER_DEVICE_GET_IRQ_INFO:
		return vfr_cmd_irq_info(c, m);
	case VFIO_USER_DEVICE_SET_IRQS:
		return vfr_cmd_set_irqs(c, m);
	case VFIO_USER_REGION_READ:
		return vfr_cmd_region_read(c, m);
	case VFIO_USER_REGION_WRITE:
		return vfr_cmd_region_write(c, m);
	case VFIO_USER_REGION_WRITE_MULTI:
		return vfr_cmd_region_write_multi(c, m);
	case VFIO_USER_DEVICE_RESET:
		return vfr_cmd_reset(c, m);
	case VFIO_USER_DMA_READ:
	case VFIO_USER_DMA_WRITE:
		/* server -> client commands; a client must not send them */
		return -EINVAL;
	case VFIO_USER_DIRTY_PAGES:
	case VFIO_USER_DEVICE_FEATURE:
	case VFIO_USER_MIG_DATA_READ:
	case VFIO_USER_MIG_DATA_WRITE:
		return -ENOTSUP;
	default:
		return -EINVAL;
	}
}

/* Validate the header and run the command; the reply is sent unless No_reply. */
static int dispatch(struct vfurt_conn *c, struct vfurt_msg *m, bool resumed, int quiesce_err)
{
	const struct vfio_user_header *h = &m->hdr;
	bool no_reply = h->flags & VFIO_USER_F_NO_REPLY;
	int err;
	int rc;

	reply_reset(c);
	if (!resumed)
		c->stats.msgs++;
	if ((h->flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND) {
		/* the answer to one of our DMA requests, or a protocol error */
		vfr_close_fds(m->fds, m->nfds);
		m->nfds = 0;
		return vfr_conn_dma_reply(c, h, m->payload, m->len);
	}
	if (h->flags & ~KNOWN_FLAGS || h->flags & VFIO_USER_F_ERROR) {
		err = -EINVAL;
	} else if (m->nfds > fds_allowed(c, h->cmd)) {
		vfr_conn_logf(c, VFURT_LOG_WARN, "%s: %s with %zu fds rejected",
			   c->dev->name, vfio_user_cmd_name(h->cmd), m->nfds);
		err = -EINVAL;
	} else if (quiesce_err) {
		err = quiesce_err;
	} else {
		if (!resumed && c->negotiated && vfr_cmd_needs_quiesce(h->cmd) &&
		    c->dev->ops.quiesce) {
			rc = c->dev->ops.quiesce(c->dev, c->dev->arg);
			if (rc == -EBUSY)
				return 1; /* park */
			if (rc) {
				err = rc;
				goto answer;
			}
		}
		err = run_handler(c, m);
	}
answer:
	vfr_close_fds(m->fds, m->nfds);
	m->nfds = 0;
	if (err) {
		c->stats.errors++;
		vfr_conn_logf(c, VFURT_LOG_DEBUG, "%s: %s (msg_id %u) failed: %s",
			   c->dev->name, vfio_user_cmd_name(h->cmd), h->msg_id, strerror(-err));
	}
	if (no_reply) {
		reply_reset(c);
		return 0;
	}
	rc = send_reply(c, h, err);
	reply_reset(c);
	if (rc)
		return rc;
	/* a VERSION the server cannot accept ends the connection after the reply */
	if (h->cmd == VFIO_USER_VERSION && err == -ENOTSUP)
		return -EPROTO;
	return 0;
}

/* Move a message into heap storage (parked for a quiesce). */
static struct vfurt_msg *msg_clone(struct vfurt_msg *src)
{
	struct vfurt_msg *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->hdr = src->hdr;
	m->len = src->len;
	m->payload = malloc(src->len ? src->len : 1);
	if (!m->payload) {
		free(m);
		return NULL;
	}
	memcpy(m->payload, src->payload, src->len);
	memcpy(m->fds, src->fds, sizeof(m->fds[0]) * src->nfds);
	m->nfds = src->nfds;
	src->nfds = 0; /* fds moved */
	return m;
}

/* Dispatch a message from the receive path; park it if the device is busy
 * quiescing. */
static int handle_msg(struct vfurt_conn *c, struct vfurt_msg *m)
{
	int rc;

	c->in_dispatch = true;
	rc = dispatch(c, m, false, 0);
	c->in_dispatch = false;
	if (rc == 1) {
		c->parked = msg_clone(m);
		if (!c->parked) {
			vfr_close_fds(m->fds, m->nfds);
			return -ENOMEM;
		}
		return 0;
	}
	return rc;
}

void vfurt_dev_quiesced(struct vfurt_dev *dev, int err)
{
	struct vfurt_conn *c = dev->conn;
	struct vfurt_msg *m;
	int rc;

	if (!c || !c->parked)
		return;
	m = c->parked;
	c->parked = NULL;
	c->in_dispatch = true;
	rc = dispatch(c, m, true, err);
	c->in_dispatch = false;
	msg_free(m);
	if (rc)
		c->dead = true; /* the driver closes it on the next feed */
}

/* ---- receive state machine -------------------------------------------- */

void vfurt_conn_rx_iov(struct vfurt_conn *c, struct iovec *iov, bool *want_fds)
{
	if (c->hdr_got < HDR_SIZE) {
		iov->iov_base = (uint8_t *)&c->rx.hdr + c->hdr_got;
		iov->iov_len = HDR_SIZE - c->hdr_got;
		*want_fds = true;
	} else {
		iov->iov_base = c->rx.payload + c->payload_got;
		iov->iov_len = c->rx.len - c->payload_got;
		*want_fds = false;
	}
}

int vfurt_conn_rx_feed(struct vfurt_conn *c, size_t n, int *fds, size_t nfds)
{
	int rc;

	/* fds are attached to a message's first bytes: keep what fits */
	for (size_t i = 0; i < nfds; i++) {
		if (c->rx.nfds < VFURT_SOCK_MAX_FDS)
			c->rx.fds[c->rx.nfds++] = fds[i];
		else
			close(fds[i]);
	}
	if (c->dead)
		return -EPIPE;
	if (n == 0)
		return -ECONNRESET;
	if (c->hdr_got < HDR_SIZE) {
		c->hdr_got += n;
		if (c->hdr_got < HDR_SIZE)
			return 0;
		if (c->rx.hdr.msg_size < HDR_SIZE || c->rx.hdr.msg_size > c->rx_max) {
			vfr_conn_logf(c, VFURT_LOG_WARN,
				   "%s: message size %u out of range [16, %zu] (msg_id %u cmd %u): closing",
				   c->dev->name, c->rx.hdr.msg_size, c->rx_max, c->rx.hdr.msg_id, c->rx.hdr.cmd);
			return c->rx.hdr.msg_size < HDR_SIZE ? -EPROTO : -EMSGSIZE;
		}
		c->rx.len = c->rx.hdr.msg_size - HDR_SIZE;
		c->payload_got = 0;
	} else {
		c->payload_got += n;
	}
	if (c->payload_got < c->rx.len)
		return 0;

	/* a complete message */
	c->hdr_got = 0;
	c->payload_got = 0;
	rc = handle_msg(c, &c->rx);
	vfr_close_fds(c->rx.fds, c->rx.nfds);
	c->rx.nfds = 0;
	if (!rc && c->dead)
		rc = -EPIPE;
	return rc;
}

int vfurt_conn_on_readable(struct vfurt_conn *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VFURT_SOCK_MAX_FDS)];
		struct cmsghdr align;
	} ctl;

	/* a bounded number of reads per call so one busy client cannot starve
	 * the other connections of the same loop */
	for (int budget = 256; budget > 0 && !vfurt_conn_paused(c); budget--) {
		int fds[VFURT_SOCK_MAX_FDS];
		size_t nfds = 0;
		struct msghdr msg = { 0 };
		struct iovec iov;
		bool want_fds;
		ssize_t n;
		int rc;

		vfurt_conn_rx_iov(c, &iov, &want_fds);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		if (want_fds) {
			msg.msg_control = ctl.buf;
			msg.msg_controllen = sizeof(ctl.buf);
		}
		n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return c->dead ? -EPIPE : 0;
			return -errno;
		}
		if (want_fds) {
			for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm;
			     cm = CMSG_NXTHDR(&msg, cm)) {
				size_t k;

				if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
					continue;
				k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				for (size_t i = 0; i < k && nfds < VFURT_SOCK_MAX_FDS; i++)
					memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int),
					       sizeof(int));
			}
			if (msg.msg_flags & MSG_CTRUNC)
				vfr_conn_logf(c, VFURT_LOG_WARN,
					   "%s: too many fds in one message, extra fds dropped",
					   c->dev->name);
		}
		rc = vfurt_conn_rx_feed(c, (size_t)n, fds, nfds);
		if (rc)
			return rc;
	}
	return 0;
}
