/* A device's and its connection's engine state in a state image: save in one process, restore in the next. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vfurt/state.h>

#include "conn_internal.h"

#define HDR_SIZE sizeof(struct vfio_user_header)

/* Device records (the section the host opened for the device). */
enum {
	DEV_T_NR_IOEV = 1,
	DEV_S_REGIONS = 2,  /* tag region index + 1: the region's fd */
	DEV_S_IOEV = 3,     /* tags 2j+1, 2j+2: entry j's fd and server end */
	DEV_S_IRQS = 4,
	DEV_S_PCI = 5,
	DEV_S_MODEL = 6,
};

/* Connection records. */
enum {
	C_T_SOCK = 1,
	C_T_TWIN = 2,
	C_T_NEG = 3,
	C_T_STATS = 4,
	C_T_RX_HDR = 5,     /* the header bytes received of a partial message */
	C_T_RX_PAYLOAD = 6, /* and its payload bytes */
	C_T_RX_FD = 7,      /* one record per fd that came with them */
	C_S_OUT = 8,        /* queued output, main socket: sections OUT_S_MSG */
	C_S_TOUT = 9,       /* and twin socket */
	C_S_DMA = 10,       /* sections DMA_S_WIN */
	C_S_IRQFDS = 11,
};

enum { OUT_S_MSG = 1, OUT_T_DATA = 1, OUT_T_FD = 2 };
enum { DMA_S_WIN = 1, DMA_T_DESC = 1, DMA_T_FD = 2 };

struct conn_neg {
	uint8_t negotiated;
	uint8_t write_multiple;
	uint16_t next_msg_id;
	uint32_t client_max_fds;
	uint32_t client_max_xfer;
	uint32_t max_xfer;      /* ours, for a check: the new process must take as much */
};

struct conn_stats_rec {
	uint64_t msgs;
	uint64_t errors;
	uint64_t dma_msgs;
};

struct dma_win_rec {
	uint64_t iova;
	uint64_t size;
	uint64_t fd_offset;
	uint32_t prot;
	uint32_t has_fd;
};

/* ---- the device ----------------------------------------------------------- */

int vfurt_dev_freeze(struct vfurt_dev *dev)
{
	if (!dev)
		return -EINVAL;
	if (!dev->ops.save || !dev->ops.restore)
		return -ENOTSUP;
	/* a message waits for an asynchronous quiesce: let it finish */
	if (dev->conn && (dev->conn->parked || dev->conn->in_dispatch))
		return -EBUSY;
	return dev->ops.freeze ? dev->ops.freeze(dev, dev->arg) : 0;
}

void vfurt_dev_thaw(struct vfurt_dev *dev)
{
	if (dev && dev->ops.thaw)
		dev->ops.thaw(dev, dev->arg);
}

static int save_io_fds(const struct vfurt_dev *dev, struct vfurt_state *s)
{
	int rc = vfurt_state_put_u32(s, DEV_T_NR_IOEV, dev->nr_ioev);

	if (!rc)
		rc = vfurt_state_open(s, DEV_S_IOEV);
	for (uint32_t j = 0; !rc && j < dev->nr_ioev; j++) {
		const struct vfurt_ioeventfd *e = &dev->ioev[j];

		if (e->fd >= 0)
			rc = vfurt_state_put_fd(s, 2 * j + 1, e->fd);
		if (!rc && e->srv_fd >= 0)
			rc = vfurt_state_put_fd(s, 2 * j + 2, e->srv_fd);
	}
	return rc ? rc : vfurt_state_close(s);
}

int vfurt_dev_save(struct vfurt_dev *dev, struct vfurt_state *s)
{
	int rc;

	if (!dev || !s)
		return -EINVAL;
	if (!dev->ops.save)
		return -ENOTSUP;
	/* region fds the client may have mapped (the NVMe doorbell page) */
	rc = vfurt_state_open(s, DEV_S_REGIONS);
	for (uint32_t i = 0; !rc && i < VFURT_MAX_REGIONS; i++)
		if (dev->regions[i].d.size && dev->regions[i].d.fd >= 0)
			rc = vfurt_state_put_fd(s, i + 1, dev->regions[i].d.fd);
	if (!rc)
		rc = vfurt_state_close(s);
	if (!rc)
		rc = save_io_fds(dev, s);
	if (!rc)
		rc = vfurt_state_open(s, DEV_S_IRQS);
	if (!rc)
		rc = vfr_irqs_save(dev->irqs, s);
	if (!rc)
		rc = vfurt_state_close(s);
	if (!rc && dev->pci && dev->pci_save) {
		rc = vfurt_state_open(s, DEV_S_PCI);
		if (!rc)
			rc = dev->pci_save(dev->pci, s);
		if (!rc)
			rc = vfurt_state_close(s);
	}
	if (!rc)
		rc = vfurt_state_open(s, DEV_S_MODEL);
	if (!rc)
		rc = dev->ops.save(dev, dev->arg, s);
	if (!rc)
		rc = vfurt_state_close(s);
	return rc;
}

static int restore_io_fds(struct vfurt_dev *dev, const struct vfurt_state_cur *c)
{
	struct vfurt_state_cur sub;
	uint32_t n;
	int rc;

	rc = vfurt_state_get_u32(c, DEV_T_NR_IOEV, &n);
	if (rc)
		return rc;
	if (n != dev->nr_ioev)
		return -EBADMSG; /* not the same device configuration */
	rc = vfurt_state_sub(c, DEV_S_IOEV, &sub);
	for (uint32_t j = 0; !rc && j < n; j++) {
		struct vfurt_ioeventfd *e = &dev->ioev[j];

		if (e->fd >= 0)
			rc = vfurt_state_adopt_fd(&sub, 2 * j + 1, e->fd);
		if (!rc && e->srv_fd >= 0)
			rc = vfurt_state_adopt_fd(&sub, 2 * j + 2, e->srv_fd);
	}
	return rc;
}

int vfurt_dev_restore(struct vfurt_dev *dev, const struct vfurt_state_cur *c)
{
	struct vfurt_state_cur sub;
	int rc;

	if (!dev || !c)
		return -EINVAL;
	if (!dev->ops.restore)
		return -ENOTSUP;
	if (dev->conn)
		return -EBUSY;
	rc = vfurt_state_sub(c, DEV_S_REGIONS, &sub);
	for (uint32_t i = 0; !rc && i < VFURT_MAX_REGIONS; i++) {
		int fd = dev->regions[i].d.size ? dev->regions[i].d.fd : -1;
		const void *v;

		if (fd >= 0)
			rc = vfurt_state_adopt_fd(&sub, i + 1, fd);
		else if (vfurt_state_find(&sub, i + 1, &v, NULL) == 0)
			rc = -EBADMSG; /* an fd the fresh device has no place for */
	}
	if (!rc)
		rc = restore_io_fds(dev, c);
	if (!rc)
		rc = vfurt_state_sub(c, DEV_S_IRQS, &sub);
	if (!rc)
		rc = vfr_irqs_restore(dev->irqs, &sub);
	if (!rc && dev->pci && dev->pci_restore) {
		rc = vfurt_state_sub(c, DEV_S_PCI, &sub);
		if (!rc)
			rc = dev->pci_restore(dev->pci, &sub);
	}
	if (!rc)
		rc = vfurt_state_sub(c, DEV_S_MODEL, &sub);
	if (!rc)
		rc = dev->ops.restore(dev, dev->arg, &sub);
	return rc;
}

/* ---- the connection --------------------------------------------------------- */

bool vfurt_conn_quiet(const struct vfurt_conn *c)
{
	return c && !c->parked && !c->in_dispatch && c->dma_inflight == 0 && c->twin_rx.got == 0;
}

static int save_outq(const struct outq *q, uint32_t tag, struct vfurt_state *s)
{
	int rc = vfurt_state_open(s, tag);

	for (const struct out_msg *m = q->head; !rc && m; m = m->next) {
		rc = vfurt_state_open(s, OUT_S_MSG);
		if (!rc)
			rc = vfurt_state_put(s, OUT_T_DATA, m->data + m->off, m->len - m->off);
		/* fds go with a message's first byte: gone once it left */
		for (size_t i = 0; !rc && m->off == 0 && i < m->nfds; i++)
			rc = vfurt_state_put_fd(s, OUT_T_FD, m->fds[i]);
		if (!rc)
			rc = vfurt_state_close(s);
	}
	return rc ? rc : vfurt_state_close(s);
}

struct dma_save_ctx {
	struct vfurt_state *s;
	int rc;
};

static void save_window(void *arg, const struct vfurt_dma_entry *e)
{
	struct dma_save_ctx *x = arg;
	struct dma_win_rec w = {
		.iova = e->r.iova,
		.size = e->r.size,
		.fd_offset = e->fd_offset,
		.prot = e->r.prot,
		.has_fd = e->fd >= 0,
	};

	if (x->rc)
		return;
	x->rc = vfurt_state_open(x->s, DMA_S_WIN);
	if (!x->rc)
		x->rc = vfurt_state_put(x->s, DMA_T_DESC, &w, sizeof(w));
	if (!x->rc && e->fd >= 0)
		x->rc = vfurt_state_put_fd(x->s, DMA_T_FD, e->fd);
	if (!x->rc)
		x->rc = vfurt_state_close(x->s);
}

int vfurt_conn_save(struct vfurt_conn *c, struct vfurt_state *s)
{
	struct conn_neg neg;
	struct conn_stats_rec st;
	int rc;

	if (!c || !s)
		return -EINVAL;
	if (!vfurt_conn_quiet(c))
		return -EBUSY;
	if (c->dead)
		return -EPIPE;
	memset(&neg, 0, sizeof(neg));
	neg.negotiated = c->negotiated;
	neg.write_multiple = c->write_multiple;
	neg.next_msg_id = c->next_msg_id;
	neg.client_max_fds = c->client_max_fds;
	neg.client_max_xfer = c->client_max_xfer;
	neg.max_xfer = c->max_xfer;
	st.msgs = c->stats.msgs;
	st.errors = c->stats.errors;
	st.dma_msgs = c->stats.dma_msgs;
	rc = vfurt_state_put_fd(s, C_T_SOCK, c->fd);
	if (!rc && c->twin_fd >= 0)
		rc = vfurt_state_put_fd(s, C_T_TWIN, c->twin_fd);
	if (!rc)
		rc = vfurt_state_put(s, C_T_NEG, &neg, sizeof(neg));
	if (!rc)
		rc = vfurt_state_put(s, C_T_STATS, &st, sizeof(st));
	/* a message half received: its bytes and fds */
	if (!rc && c->hdr_got)
		rc = vfurt_state_put(s, C_T_RX_HDR, &c->rx.hdr, c->hdr_got);
	if (!rc && c->hdr_got == HDR_SIZE && c->payload_got)
		rc = vfurt_state_put(s, C_T_RX_PAYLOAD, c->rx.payload, c->payload_got);
	for (size_t i = 0; !rc && i < c->rx.nfds; i++)
		rc = vfurt_state_put_fd(s, C_T_RX_FD, c->rx.fds[i]);
	if (!rc)
		rc = save_outq(&c->out, C_S_OUT, s);
	if (!rc)
		rc = save_outq(&c->tout, C_S_TOUT, s);
	if (!rc && c->negotiated) {
		struct dma_save_ctx x = { .s = s };

		rc = vfurt_state_open(s, C_S_DMA);
		if (!rc) {
			vfr_dma_table_foreach(c->dev->dma, save_window, &x);
			rc = x.rc;
		}
		if (!rc)
			rc = vfurt_state_close(s);
		if (!rc)
			rc = vfurt_state_open(s, C_S_IRQFDS);
		if (!rc)
			rc = vfr_irqs_save_fds(c->dev->irqs, s);
		if (!rc)
			rc = vfurt_state_close(s);
	}
	return rc;
}

static int restore_outq(struct outq *q, const struct vfurt_state_cur *c, uint32_t tag)
{
	struct vfurt_state_cur sub, m;
	const void *v;
	size_t len;
	uint32_t t;
	int rc;

	rc = vfurt_state_sub(c, tag, &sub);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	while ((rc = vfurt_state_next_sub(&sub, &t, &m)) == 1) {
		int fds[VFURT_SOCK_MAX_FDS];
		const void *data = NULL;
		size_t nfds = 0, dlen = 0;

		if (t != (OUT_S_MSG | VFURT_STATE_SECTION))
			continue;
		while ((rc = vfurt_state_next(&m, &t, &v, &len)) == 1) {
			if (t == OUT_T_DATA) {
				data = v;
				dlen = len;
			} else if (t == OUT_T_FD) {
				int fd = vfurt_state_take_fd_rec(m.s, v, len);

				if (fd < 0 || nfds == VFURT_SOCK_MAX_FDS) {
					if (fd >= 0)
						close(fd);
					rc = -EBADMSG;
					break;
				}
				fds[nfds++] = fd;
			}
		}
		if (!rc && !data)
			rc = -EBADMSG;
		if (!rc)
			rc = vfr_conn_out_queue(q, data, dlen, fds, nfds);
		vfr_close_fds(fds, nfds); /* the queue holds dups */
		if (rc)
			return rc;
	}
	return rc;
}

static int restore_windows(struct vfurt_conn *conn, const struct vfurt_state_cur *c)
{
	struct vfurt_dev *dev = conn->dev;
	struct vfurt_state_cur sub, w;
	uint32_t t;
	int rc;

	rc = vfurt_state_sub(c, C_S_DMA, &sub);
	if (rc)
		return rc;
	while ((rc = vfurt_state_next_sub(&sub, &t, &w)) == 1) {
		struct dma_win_rec rec;
		struct vfurt_dma_region r;
		int fd = -1;

		if (t != (DMA_S_WIN | VFURT_STATE_SECTION))
			continue;
		rc = vfurt_state_get(&w, DMA_T_DESC, &rec, sizeof(rec));
		if (rc)
			return rc == -ENOENT ? -EBADMSG : rc;
		if (rec.has_fd) {
			fd = vfurt_state_take_fd(&w, DMA_T_FD);
			if (fd < 0)
				return fd == -ENOENT ? -EBADMSG : fd;
		}
		rc = vfr_dma_table_add(dev->dma, rec.iova, rec.size, fd, rec.fd_offset, rec.prot, &r);
		if (rc) {
			if (fd >= 0)
				close(fd);
			return rc;
		}
		if (dev->ops.dma_map)
			dev->ops.dma_map(dev, dev->arg, &r);
	}
	return rc;
}

static int restore_rx(struct vfurt_conn *conn, const struct vfurt_state_cur *c)
{
	struct vfurt_state_cur it = *c;
	const void *v;
	size_t len;
	uint32_t t;
	int rc;

	rc = vfurt_state_find(c, C_T_RX_HDR, &v, &len);
	if (rc == 0) {
		if (len == 0 || len > HDR_SIZE)
			return -EBADMSG;
		memcpy(&conn->rx.hdr, v, len);
		conn->hdr_got = len;
		if (len == HDR_SIZE) {
			if (conn->rx.hdr.msg_size < HDR_SIZE || conn->rx.hdr.msg_size > conn->rx_max)
				return -EBADMSG;
			conn->rx.len = conn->rx.hdr.msg_size - HDR_SIZE;
		}
	} else if (rc != -ENOENT) {
		return rc;
	}
	rc = vfurt_state_find(c, C_T_RX_PAYLOAD, &v, &len);
	if (rc == 0) {
		if (conn->hdr_got != HDR_SIZE || len >= conn->rx.len)
			return -EBADMSG; /* a complete message would have been handled */
		memcpy(conn->rx.payload, v, len);
		conn->payload_got = len;
	} else if (rc != -ENOENT) {
		return rc;
	}
	while ((rc = vfurt_state_next(&it, &t, &v, &len)) == 1) {
		int fd;

		if (t != C_T_RX_FD)
			continue;
		fd = vfurt_state_take_fd_rec(it.s, v, len);
		if (fd < 0)
			return fd;
		if (conn->rx.nfds == VFURT_SOCK_MAX_FDS || !conn->hdr_got) {
			close(fd);
			return -EBADMSG;
		}
		conn->rx.fds[conn->rx.nfds++] = fd;
	}
	return rc;
}

struct vfurt_conn *vfurt_conn_restore(struct vfurt_dev *dev, const struct vfurt_conn_opts *opts,
				      const struct vfurt_state_cur *c)
{
	struct conn_stats_rec st;
	struct conn_neg neg;
	struct vfurt_conn *conn;
	int fd, rc;

	if (!dev || !c) {
		errno = EINVAL;
		return NULL;
	}
	if (dev->conn) {
		errno = EBUSY;
		return NULL;
	}
	rc = vfurt_state_get(c, C_T_NEG, &neg, sizeof(neg));
	if (rc || neg.negotiated > 1 || neg.write_multiple > 1) {
		errno = rc == -ENOMEM ? ENOMEM : EBADMSG;
		return NULL;
	}
	fd = vfurt_state_take_fd(c, C_T_SOCK);
	if (fd < 0) {
		errno = fd == -ENOENT ? EBADMSG : -fd;
		return NULL;
	}
	conn = vfurt_conn_create(dev, fd, opts);
	if (!conn) {
		rc = -errno;
		close(fd);
		errno = -rc;
		return NULL;
	}
	/* a client that took the old process's limits must get as much */
	if (neg.max_xfer > conn->max_xfer || neg.client_max_fds > VFURT_SOCK_MAX_FDS ||
	    neg.client_max_xfer > CONN_MAX_XFER_LIMIT) {
		rc = -EBADMSG;
		goto fail;
	}
	conn->negotiated = neg.negotiated;
	conn->write_multiple = neg.write_multiple;
	conn->next_msg_id = neg.next_msg_id;
	conn->client_max_fds = neg.client_max_fds;
	conn->client_max_xfer = neg.client_max_xfer;
	if (vfurt_state_get(c, C_T_STATS, &st, sizeof(st)) == 0) {
		conn->stats.msgs = st.msgs;
		conn->stats.errors = st.errors;
		conn->stats.dma_msgs = st.dma_msgs;
	}
	conn->stats.negotiated = conn->negotiated;
	rc = restore_rx(conn, c);
	if (!rc)
		rc = restore_outq(&conn->out, c, C_S_OUT);
	if (!rc)
		rc = restore_outq(&conn->tout, c, C_S_TOUT);
	if (rc)
		goto fail;
	fd = vfurt_state_take_fd(c, C_T_TWIN);
	if (fd >= 0) {
		conn->twin_fd = fd;
		conn->stats.twin_socket = true;
		if (vfr_conn_twin_setup(conn)) {
			rc = -ENOMEM;
			goto fail;
		}
		atomic_fetch_add(&dev->watch_gen, 1); /* the host watches it */
	} else if (fd != -ENOENT) {
		rc = fd;
		goto fail;
	}
	if (conn->negotiated) {
		struct vfurt_state_cur sub;

		if (vfr_dma_table_count(dev->dma) == 0)
			vfr_dma_table_set_limits(dev->dma, conn->max_dma_maps, 4096);
		dev->conn = conn;
		rc = restore_windows(conn, c);
		if (!rc)
			rc = vfurt_state_sub(c, C_S_IRQFDS, &sub);
		if (!rc)
			rc = vfr_irqs_restore_fds(dev->irqs, &sub);
		if (rc)
			goto fail_attached;
		if (dev->ops.attach)
			dev->ops.attach(dev, dev->arg);
		vfurt_logf(conn->log, VFURT_LOG_INFO, "%s: client carried over (%u DMA windows)",
			   dev->name, vfr_dma_table_count(dev->dma));
	}
	return conn;

fail_attached:
	/* undo without a detach: the model never saw the client */
	vfr_dma_table_remove_all(dev->dma, NULL, NULL);
	vfr_irqs_release_client(dev->irqs);
	dev->conn = NULL;
fail:
	vfurt_conn_destroy(conn);
	errno = -rc;
	return NULL;
}
