/* NVMe data pointers: PRP entries and lists, SGL descriptors and segments, translated into iovecs. */
#include <errno.h>
#include <string.h>

#include "nvme_internal.h"

/* Chained PRP lists and SGL segments visited per command, at most: a guest
 * may build a loop, the walk must end. */
#define MAX_LIST_HOPS 64u

struct iov_builder {
	struct nvme_ctrl *c;
	uint32_t prot;
	struct iovec *iov;
	int max;
	int n;
};

/* Append guest range [addr, addr+len), merging with the previous piece when
 * contiguous in our address space. */
static uint16_t add_range(struct iov_builder *b, uint64_t addr, uint64_t len)
{
	struct vfurt_sg sg[4];
	int n = vfurt_dma_to_sg(b->c->dev, addr, len, b->prot, sg, 4);

	if (n < 0)
		return SC_DATA_XFER_ERROR;
	for (int i = 0; i < n; i++) {
		struct iovec *prev = b->n ? &b->iov[b->n - 1] : NULL;

		if (!sg[i].vaddr)
			return SC_DATA_XFER_ERROR; /* no fd: not reachable on the data path */
		if (prev && (uint8_t *)prev->iov_base + prev->iov_len == sg[i].vaddr) {
			prev->iov_len += sg[i].len;
			continue;
		}
		if (b->n == b->max)
			return SC_DATA_XFER_ERROR;
		b->iov[b->n].iov_base = sg[i].vaddr;
		b->iov[b->n].iov_len = sg[i].len;
		b->n++;
	}
	return SC_SUCCESS;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t load64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint16_t map_prp(struct iov_builder *b, const struct nvme_sqe *cmd, uint64_t len)
{
	uint64_t prp1 = cmd->dptr[0];
	uint64_t prp2 = cmd->dptr[1];
	uint64_t n = min64(len, NVME_PAGE - (prp1 & (NVME_PAGE - 1)));
	uint64_t list;
	uint16_t st;

	st = add_range(b, prp1, n);
	if (st)
		return st;
	len -= n;
	if (!len)
		return SC_SUCCESS;
	if (len <= NVME_PAGE) {
		if (prp2 & (NVME_PAGE - 1))
			return SC_PRP_OFFSET_INVALID;
		return add_range(b, prp2, len);
	}
	/* PRP2 points to a list; its last entry chains when more remains */
	list = prp2;
	for (uint32_t hop = 0; len; hop++) {
		uint32_t entries = (NVME_PAGE - (uint32_t)(list & (NVME_PAGE - 1))) / 8u;
		const uint8_t *pl;
		uint32_t i;

		if ((list & 7u) || hop == MAX_LIST_HOPS)
			return SC_PRP_OFFSET_INVALID;
		pl = vfurt_dma_ptr(b->c->dev, list, (uint64_t)entries * 8u, VFURT_DMA_READ);
		if (!pl)
			return SC_DATA_XFER_ERROR;
		for (i = 0; i < entries && len; i++) {
			uint64_t e = load64(pl + (size_t)i * 8u);

			if (i == entries - 1 && len > NVME_PAGE) {
				list = e; /* next list page */
				break;
			}
			if (e & (NVME_PAGE - 1))
				return SC_PRP_OFFSET_INVALID;
			n = min64(len, NVME_PAGE);
			st = add_range(b, e, n);
			if (st)
				return st;
			len -= n;
		}
	}
	return SC_SUCCESS;
}

/* One SGL data descriptor, truncated to what the command still needs. */
static uint16_t sgl_data(struct iov_builder *b, const struct nvme_sgl_desc *d, uint64_t *left)
{
	uint64_t n;

	if ((d->type & 0xfu) != 0)
		return SC_SGL_TYPE_INVALID; /* only the Address subtype on PCIe */
	if ((d->type >> 4) != SGL_TYPE_DATA_BLOCK)
		return SC_SGL_TYPE_INVALID; /* bit buckets are not supported */
	n = min64(d->len, *left);
	if (!n)
		return SC_SUCCESS;
	*left -= n;
	return add_range(b, d->addr, n);
}

static uint16_t map_sgl(struct iov_builder *b, const struct nvme_sqe *cmd, uint64_t len)
{
	struct nvme_sgl_desc d;
	uint32_t total = 0;
	uint16_t st;

	memcpy(&d, cmd->dptr, sizeof(d));
	for (uint32_t hop = 0;; hop++) {
		uint32_t type = d.type >> 4;
		const struct nvme_sgl_desc *seg;
		uint32_t nd;

		if (type == SGL_TYPE_DATA_BLOCK) {
			st = sgl_data(b, &d, &len);
			if (st)
				return st;
			break;
		}
		if (type != SGL_TYPE_SEGMENT && type != SGL_TYPE_LAST_SEGMENT)
			return SC_SGL_TYPE_INVALID;
		if ((d.type & 0xfu) != 0 || hop == MAX_LIST_HOPS)
			return SC_SGL_TYPE_INVALID;
		if (d.len == 0 || d.len % sizeof(d))
			return SC_SGL_SEG_INVALID;
		nd = d.len / (uint32_t)sizeof(d);
		total += nd;
		if (total > NVME_MAX_SGL_DESC)
			return SC_SGL_NUM_INVALID;
		seg = vfurt_dma_ptr(b->c->dev, d.addr, d.len, VFURT_DMA_READ);
		if (!seg)
			return SC_DATA_XFER_ERROR;
		for (uint32_t i = 0; i < nd; i++) {
			struct nvme_sgl_desc e;

			memcpy(&e, &seg[i], sizeof(e));
			if (type == SGL_TYPE_SEGMENT && i == nd - 1) {
				uint32_t et = e.type >> 4;

				/* a Segment ends with the next segment's descriptor */
				if (et != SGL_TYPE_SEGMENT && et != SGL_TYPE_LAST_SEGMENT)
					return SC_SGL_SEG_INVALID;
				d = e;
				break;
			}
			st = sgl_data(b, &e, &len);
			if (st)
				return st;
		}
		if (type == SGL_TYPE_LAST_SEGMENT)
			break;
	}
	return len ? SC_SGL_DATA_LEN_INVALID : SC_SUCCESS;
}

uint16_t vfr_nvme_map_data(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint64_t len,
		       uint32_t prot, struct iovec *iov, int max, int *niov)
{
	struct iov_builder b = { .c = c, .prot = prot, .iov = iov, .max = max };
	uint32_t psdt = (uint32_t)cmd->flags >> 6;
	uint16_t st;

	*niov = 0;
	if (!len)
		return SC_SUCCESS;
	if (psdt == 0)
		st = map_prp(&b, cmd, len);
	else if (psdt == 1 || psdt == 2)
		st = map_sgl(&b, cmd, len);
	else
		st = SC_INVALID_FIELD;
	*niov = b.n;
	return st;
}

static uint16_t copy_guest(struct nvme_ctrl *c, const struct nvme_sqe *cmd, void *buf,
			   size_t len, bool to_guest)
{
	struct iovec iov[NVME_MAX_IOV];
	uint64_t lost = vfurt_dma_lost_count(c->dev);
	uint8_t *p = buf;
	uint16_t st;
	int n;

	st = vfr_nvme_map_data(c, cmd, len, to_guest ? VFURT_DMA_WRITE : VFURT_DMA_READ, iov,
			   NVME_MAX_IOV, &n);
	if (st)
		return st;
	for (int i = 0; i < n; i++) {
		if (to_guest)
			memcpy(iov[i].iov_base, p, iov[i].iov_len);
		else
			memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
	/* the memory went away under the copy (a truncated file): data lost */
	if (vfurt_dma_lost_count(c->dev) != lost)
		return SC_DATA_XFER_ERROR;
	return SC_SUCCESS;
}

uint16_t vfr_nvme_copy_to_guest(struct nvme_ctrl *c, const struct nvme_sqe *cmd,
			    const void *buf, size_t len)
{
	return copy_guest(c, cmd, (void *)(uintptr_t)buf, len, true);
}

uint16_t vfr_nvme_copy_from_guest(struct nvme_ctrl *c, const struct nvme_sqe *cmd, void *buf,
			      size_t len)
{
	return copy_guest(c, cmd, buf, len, false);
}
