/* DMA by message: asynchronous DMA_READ/DMA_WRITE requests to the client and their replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_internal.h"

#define HDR_SIZE sizeof(struct vfio_user_header)

/*
 * A transfer is split into requests of at most the smaller of both sides'
 * max_data_xfer_size, each in a slot of a fixed table (CONN_DMA_SLOTS) until
 * its reply comes: on the main socket through the receive path, on the twin
 * socket through conn_twin_readable(). Nothing waits: the sends go through
 * the output queue, the device's callback runs when the last reply of its
 * transfer arrived, when a reply is overdue (timeout_ms, checked by the
 * tick; the connection is then closed) or at disconnect.
 */

static size_t chunk_max(const struct vfurt_conn *c)
{
	return c->client_max_xfer < c->max_xfer ? c->client_max_xfer : c->max_xfer;
}

static struct dma_slot *slot_by_id(struct vfurt_conn *c, uint16_t msg_id)
{
	for (uint32_t i = 0; i < CONN_DMA_SLOTS; i++)
		if (c->dma[i].op && c->dma[i].msg_id == msg_id)
			return &c->dma[i];
	return NULL;
}

static uint32_t free_slots(const struct vfurt_conn *c)
{
	return CONN_DMA_SLOTS - c->dma_inflight;
}

static uint16_t next_id(struct vfurt_conn *c)
{
	uint16_t id;

	do
		id = c->next_msg_id++;
	while (slot_by_id(c, id));
	return id;
}

/* One request's answer (or failure): finish the op when it was the last. */
static void slot_done(struct vfurt_conn *c, struct dma_slot *s, int status)
{
	struct vfurt_dma_op *op = s->op;

	s->op = NULL;
	c->dma_inflight--;
	if (status && !op->status_)
		op->status_ = status;
	if (--op->pending_ == 0)
		op->done_(c->dev, op->arg_, op->status_);
}

static int send_request(struct vfurt_conn *c, struct dma_slot *s, uint64_t iova, uint8_t *buf,
			size_t count, bool is_write)
{
	struct vfio_user_header hdr = {
		.msg_id = next_id(c),
		.cmd = is_write ? VFIO_USER_DMA_WRITE : VFIO_USER_DMA_READ,
		.flags = VFIO_USER_F_TYPE_COMMAND,
	};
	struct vfio_user_dma_access body = { .addr = iova, .count = count };
	struct iovec iov[3] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = &body, .iov_len = sizeof(body) },
		{ .iov_base = buf, .iov_len = count },
	};
	bool twin = c->twin_fd >= 0;
	int rc;

	hdr.msg_size = (uint32_t)(sizeof(hdr) + sizeof(body) + (is_write ? count : 0));
	rc = vfr_conn_out_send(twin ? &c->tout : &c->out, twin ? c->twin_fd : c->fd, iov,
			   is_write ? 3 : 2, NULL, 0);
	if (rc)
		return rc;
	s->msg_id = hdr.msg_id;
	s->cmd = hdr.cmd;
	s->buf = buf;
	s->count = count;
	s->sent_ms = 0;
	c->stats.dma_msgs++;
	return 0;
}

size_t vfr_conn_dma_chunk(const struct vfurt_conn *c)
{
	return chunk_max(c);
}

int vfr_conn_dma_free_slots(const struct vfurt_conn *c)
{
	return c->dead ? -EIO : (int)free_slots(c);
}

int vfr_conn_dma_start(struct vfurt_conn *c, const struct vfurt_sg *sg, int nsg,
			 uint8_t *buf, bool is_write, struct vfurt_dma_op *op)
{
	size_t chunk = chunk_max(c);
	size_t done = 0;

	for (int i = 0; i < nsg; i++) {
		uint64_t iova = sg[i].iova;
		uint64_t left = sg[i].len;
		uint8_t *p = buf + done;

		done += sg[i].len;
		if (sg[i].vaddr)
			continue;
		while (left > 0) {
			size_t count = left < chunk ? (size_t)left : chunk;
			struct dma_slot *s = NULL;
			int rc;

			if (c->dead)
				return -EIO;
			for (uint32_t k = 0; k < CONN_DMA_SLOTS && !s; k++)
				if (!c->dma[k].op)
					s = &c->dma[k];
			if (!s)
				return -EBUSY; /* the caller counted: not reached */
			rc = send_request(c, s, iova, p, count, is_write);
			if (rc) {
				/* the stream may hold part of a message: the
				 * connection cannot go on */
				c->dead = true;
				return -EIO;
			}
			s->op = op;
			c->dma_inflight++;
			op->pending_++;
			iova += count;
			p += count;
			left -= count;
		}
	}
	return 0;
}

int vfr_conn_dma_reply(struct vfurt_conn *c, const struct vfio_user_header *h,
		       const uint8_t *payload, size_t len)
{
	struct dma_slot *s = slot_by_id(c, h->msg_id);
	const struct vfio_user_dma_access *a = (const void *)payload;
	int status = 0;

	if (!s || s->cmd != h->cmd) {
		/* nothing waits for it: drop it, the stream is still framed */
		vfr_conn_logf(c, VFURT_LOG_WARN,
			   "%s: reply msg_id %u (cmd %u) answers no request of ours: dropped",
			   c->dev->name, h->msg_id, h->cmd);
		c->stats.errors++;
		return 0;
	}
	if (h->flags & VFIO_USER_F_ERROR)
		status = h->error_no ? -(int)h->error_no : -EIO;
	else if (s->cmd == VFIO_USER_DMA_READ &&
		 (len != sizeof(*a) + s->count || a->count != s->count))
		status = -EIO;
	if (!status && s->cmd == VFIO_USER_DMA_READ)
		memcpy(s->buf, a->data, s->count);
	slot_done(c, s, status);
	return 0;
}

int vfr_conn_dma_tick(struct vfurt_conn *c, uint64_t now_ms)
{
	for (uint32_t i = 0; i < CONN_DMA_SLOTS; i++) {
		struct dma_slot *s = &c->dma[i];

		if (!s->op)
			continue;
		if (!s->sent_ms) {
			s->sent_ms = now_ms ? now_ms : 1;
			continue;
		}
		if (now_ms - s->sent_ms >= (uint64_t)c->timeout_ms) {
			vfurt_logf(c->log, VFURT_LOG_WARN,
				   "%s: client did not answer %s msg_id %u within %d ms: disconnecting",
				   c->dev->name, vfio_user_cmd_name(s->cmd), s->msg_id,
				   c->timeout_ms);
			vfr_conn_dma_fail_all(c, -ETIMEDOUT);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

void vfr_conn_dma_fail_all(struct vfurt_conn *c, int status)
{
	for (uint32_t i = 0; i < CONN_DMA_SLOTS; i++)
		if (c->dma[i].op)
			slot_done(c, &c->dma[i], status);
}

/* ---- the twin socket's receive side ------------------------------------ */

int vfr_conn_twin_setup(struct vfurt_conn *c)
{
	c->twin_rx.cap = HDR_SIZE + sizeof(struct vfio_user_dma_access) + c->max_xfer;
	c->twin_rx.buf = malloc(c->twin_rx.cap);
	c->twin_rx.got = 0;
	return c->twin_rx.buf ? 0 : -ENOMEM;
}

int vfr_conn_twin_fd(const struct vfurt_conn *c)
{
	return c->twin_fd;
}

static int twin_read(struct vfurt_conn *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VFURT_SOCK_MAX_FDS)];
		struct cmsghdr align;
	} ctl;

	if (c->twin_fd < 0 || !c->twin_rx.buf)
		return 0;
	/* bounded: at most the replies of every slot per call */
	for (uint32_t budget = CONN_DMA_SLOTS; budget > 0; budget--) {
		struct vfio_user_header *h = (void *)c->twin_rx.buf;
		size_t want = c->twin_rx.got < HDR_SIZE ? HDR_SIZE : h->msg_size;
		struct iovec iov = { .iov_base = c->twin_rx.buf + c->twin_rx.got,
				     .iov_len = want - c->twin_rx.got };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(c->twin_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		int rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return n == 0 ? -ECONNRESET : -errno;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
				vfr_close_fds((int *)(void *)CMSG_DATA(cm),
						(cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		c->twin_rx.got += (size_t)n;
		if (c->twin_rx.got == HDR_SIZE &&
		    (h->msg_size < HDR_SIZE || h->msg_size > c->twin_rx.cap ||
		     (h->flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY)) {
			vfurt_logf(c->log, VFURT_LOG_WARN,
				   "%s: twin socket: not a reply of at most %zu bytes (msg_id %u, size %u): closing",
				   c->dev->name, c->twin_rx.cap, h->msg_id, h->msg_size);
			return -EPROTO;
		}
		if (c->twin_rx.got < HDR_SIZE || c->twin_rx.got < h->msg_size)
			continue;
		c->twin_rx.got = 0;
		rc = vfr_conn_dma_reply(c, h, (const uint8_t *)(h + 1), h->msg_size - HDR_SIZE);
		if (rc)
			return rc;
	}
	return 0;
}

int vfr_conn_twin_readable(struct vfurt_conn *c)
{
	int rc = c->dead ? 0 : twin_read(c);

	if (rc) {
		if (rc != -ECONNRESET)
			vfurt_logf(c->log, VFURT_LOG_WARN, "%s: twin socket: %s: closing",
				   c->dev->name, strerror(-rc));
		c->dead = true;
	}
	return rc;
}
