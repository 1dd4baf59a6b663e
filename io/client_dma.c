/* Client DMA: the table of windows we mapped, DMA_MAP/UNMAP, serving DMA_READ/DMA_WRITE. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client_internal.h"

#define DMA_PROT_MASK (VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE)

static void window_unmap(struct client_window *w)
{
	if (w->map_base)
		munmap(w->map_base, w->map_len);
	w->map_base = NULL;
}

void vfr_client_windows_free(struct vfurt_client *c)
{
	for (size_t i = 0; i < c->nwin; i++)
		window_unmap(&c->win[i]);
	free(c->win);
	c->win = NULL;
	c->nwin = 0;
	c->win_cap = 0;
}

static void window_remove(struct vfurt_client *c, size_t i)
{
	window_unmap(&c->win[i]);
	memmove(&c->win[i], &c->win[i + 1], (c->nwin - i - 1) * sizeof(c->win[0]));
	c->nwin--;
}

static int window_add(struct vfurt_client *c, const struct client_window *w)
{
	if (c->nwin == c->win_cap) {
		size_t cap = c->win_cap ? c->win_cap * 2 : 8;
		struct client_window *p = realloc(c->win, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		c->win = p;
		c->win_cap = cap;
	}
	c->win[c->nwin++] = *w;
	return 0;
}

/* The window holding all of [addr, addr+count), or NULL. */
static struct client_window *window_find(struct vfurt_client *c, uint64_t addr, uint64_t count)
{
	for (size_t i = 0; i < c->nwin; i++) {
		struct client_window *w = &c->win[i];
		uint64_t off = addr - w->iova;

		if (addr >= w->iova && off < w->size && count <= w->size - off)
			return w;
	}
	return NULL;
}

/* Add the window, tell the server, forget the window again if it says no. */
static int map_window(struct vfurt_client *c, const struct client_window *w, int fd,
		      uint64_t fd_offset, uint32_t flags)
{
	struct vfio_user_dma_map req = {
		.argsz = sizeof(req),
		.flags = w->prot,
		.offset = fd >= 0 ? fd_offset : 0,
		.addr = w->iova,
		.size = w->size,
	};
	struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
	size_t idx = c->nwin;
	int rc;

	rc = window_add(c, w);
	if (rc)
		return rc;
	/* Serving DMA during the wait below never changes the table, so idx
	 * still names our window afterwards. */
	rc = vfr_client_call(c, VFIO_USER_DMA_MAP,
			 (flags & VFURT_CLIENT_DMA_POSTED) ? VFIO_USER_F_NO_REPLY : 0,
			 &iov, 1, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, NULL);
	if (rc) {
		c->win[idx].map_base = NULL; /* the caller unmaps on failure */
		window_remove(c, idx);
	}
	return rc;
}

int vfurt_client_dma_map(struct vfurt_client *c, uint64_t iova, uint64_t size, int fd,
			 uint64_t fd_offset, uint32_t prot, uint32_t flags)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t base_off = fd_offset & ~(page - 1);
	uint64_t delta = fd_offset - base_off;
	struct client_window w = { .iova = iova, .size = size, .prot = prot };
	void *p;
	int rc;

	if (!c || size == 0 || fd < 0 || (prot & ~DMA_PROT_MASK) ||
	    (flags & ~(VFURT_CLIENT_DMA_SEND_FD | VFURT_CLIENT_DMA_POSTED)) ||
	    iova + size - 1 < iova || size > SIZE_MAX - delta || base_off > INT64_MAX)
		return -EINVAL;
	w.map_len = (size_t)(size + delta);
	p = mmap(NULL, w.map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base_off);
	if (p == MAP_FAILED && errno == EACCES) {
		/* A read-only fd still serves DMA_READ. */
		p = mmap(NULL, w.map_len, PROT_READ, MAP_SHARED, fd, (off_t)base_off);
		w.local_ro = true;
	}
	if (p == MAP_FAILED)
		return -errno;
	w.map_base = p;
	w.vaddr = (uint8_t *)p + delta;
	rc = map_window(c, &w, (flags & VFURT_CLIENT_DMA_SEND_FD) ? fd : -1, fd_offset, flags);
	if (rc)
		munmap(p, w.map_len);
	return rc;
}

int vfurt_client_dma_map_mem(struct vfurt_client *c, uint64_t iova, uint64_t size,
			     void *vaddr, uint32_t prot, uint32_t flags)
{
	struct client_window w = { .iova = iova, .size = size, .vaddr = vaddr, .prot = prot };

	if (!c || !vaddr || size == 0 || size > SIZE_MAX || (prot & ~DMA_PROT_MASK) ||
	    (flags & ~VFURT_CLIENT_DMA_POSTED) || iova + size - 1 < iova)
		return -EINVAL;
	return map_window(c, &w, -1, 0, flags);
}

int vfurt_client_dma_unmap(struct vfurt_client *c, uint64_t iova, uint64_t size, uint32_t flags)
{
	struct vfio_user_dma_unmap req = {
		.argsz = sizeof(req), .flags = flags, .addr = iova, .size = size,
	};
	struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
	int rc;

	if (!c)
		return -EINVAL;
	rc = vfr_client_call(c, VFIO_USER_DMA_UNMAP, 0, &iov, 1, NULL, 0, NULL);
	if (rc)
		return rc;
	/* The server has dropped every reference now; so can we. */
	if (flags & VFIO_USER_DMA_UNMAP_FLAG_ALL) {
		vfr_client_windows_free(c);
		return 0;
	}
	for (size_t i = 0; i < c->nwin; i++) {
		if (c->win[i].iova == iova && c->win[i].size == size) {
			window_remove(c, i);
			break;
		}
	}
	return 0;
}

/* Check a DMA_READ/DMA_WRITE against our windows; returns the window or
 * sets *err to the errno to answer with. */
static struct client_window *dma_check(struct vfurt_client *c, const struct client_msg *m,
				       struct vfio_user_dma_access *acc, bool write, int *err)
{
	struct client_window *w;

	*err = EINVAL;
	if (m->oversize || m->len < sizeof(*acc))
		return NULL;
	memcpy(acc, m->payload, sizeof(*acc));
	if (acc->count > c->caps.client_max_data_xfer_size)
		return NULL;
	if (m->len != sizeof(*acc) + (write ? acc->count : 0))
		return NULL;
	w = window_find(c, acc->addr, acc->count);
	if (!w) {
		*err = EFAULT;
		return NULL;
	}
	if (write ? (!(w->prot & VFIO_USER_DMA_MAP_FLAG_WRITE) || w->local_ro) :
		    !(w->prot & VFIO_USER_DMA_MAP_FLAG_READ)) {
		*err = EACCES;
		return NULL;
	}
	*err = 0;
	return w;
}

int vfr_client_serve_command(struct vfurt_client *c, int sock, const struct client_msg *m)
{
	struct vfio_user_header hdr = {
		.msg_id = m->hdr.msg_id,
		.cmd = m->hdr.cmd,
		.msg_size = sizeof(hdr),
		.flags = VFIO_USER_F_TYPE_REPLY,
	};
	struct vfio_user_dma_access acc = { 0 };
	struct iovec iov[3] = { { .iov_base = &hdr, .iov_len = sizeof(hdr) } };
	int iovcnt = 1;
	struct client_window *w;
	int err;

	switch (m->hdr.cmd) {
	case VFIO_USER_DMA_READ:
		w = dma_check(c, m, &acc, false, &err);
		if (!w)
			break;
		iov[1].iov_base = &acc;
		iov[1].iov_len = sizeof(acc);
		iov[2].iov_base = w->vaddr + (acc.addr - w->iova);
		iov[2].iov_len = (size_t)acc.count;
		iovcnt = 3;
		c->stats.dma_reads++;
		c->stats.dma_bytes += acc.count;
		break;
	case VFIO_USER_DMA_WRITE:
		w = dma_check(c, m, &acc, true, &err);
		if (!w)
			break;
		memcpy(w->vaddr + (acc.addr - w->iova), m->payload + sizeof(acc),
		       (size_t)acc.count);
		/* Spec reply: address + count, no data (the header's 8-byte count). */
		iov[1].iov_base = &acc;
		iov[1].iov_len = sizeof(acc);
		iovcnt = 2;
		c->stats.dma_writes++;
		c->stats.dma_bytes += acc.count;
		break;
	default:
		err = ENOSYS;
		break;
	}
	if (err) {
		c->stats.dma_errors++;
		hdr.flags |= VFIO_USER_F_ERROR;
		hdr.error_no = (uint32_t)err;
		iovcnt = 1;
	}
	if (m->hdr.flags & VFIO_USER_F_NO_REPLY)
		return 0;
	for (int i = 1; i < iovcnt; i++)
		hdr.msg_size += (uint32_t)iov[i].iov_len;
	return vfr_client_send(c, sock, iov, iovcnt, NULL, 0);
}
