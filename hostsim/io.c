/* hostsim NVM I/O: read, write, flush, write zeroes, deallocate, and the data pattern they are checked with. */
#include <errno.h>
#include <string.h>

#include "hostsim/nvme_host_internal.h"

int nh_submit_data(struct nvme_host *h, uint16_t sqid, struct nh_sqe *sqe, void *buf,
		   size_t len, const struct nh_dptr_opts *dp, uint16_t *cid)
{
	void *aux;
	size_t aux_len;
	uint16_t c;
	int rc;

	if (!nh_live_sq(h, sqid))
		return -ENOENT;
	rc = nh_build_dptr(h, sqe, buf, len, dp, &aux, &aux_len);
	if (rc)
		return rc;
	rc = nh_submit(h, sqid, sqe, &c);
	if (rc) {
		nh_free(h, aux, aux_len);
		return rc;
	}
	h->sq[sqid].slots[c].aux = aux;
	h->sq[sqid].slots[c].aux_len = aux_len;
	if (cid)
		*cid = c;
	return 0;
}

int nh_io_submit(struct nvme_host *h, uint16_t sqid, const struct nh_io *io, uint16_t *cid)
{
	struct nh_sqe sqe = { .cdw0 = io->opc, .nsid = io->nsid };

	if (io->opc == NH_CMD_READ || io->opc == NH_CMD_WRITE || io->opc == NH_CMD_WRITE_ZEROES) {
		if (!io->nlb || io->nlb > 0x10000)
			return -EINVAL;
		sqe.cdw10 = (uint32_t)io->slba;
		sqe.cdw11 = (uint32_t)(io->slba >> 32);
		sqe.cdw12 = ((io->nlb - 1) & 0xffffu) | io->cdw12;
	} else {
		sqe.cdw10 = io->cdw10;
		sqe.cdw11 = io->cdw11;
		sqe.cdw12 = io->cdw12;
	}
	return nh_submit_data(h, sqid, &sqe, io->buf, io->len, io->dp, cid);
}

int nh_io(struct nvme_host *h, uint16_t sqid, const struct nh_io *io, struct nh_cqe *out)
{
	uint16_t cid;
	int rc = nh_io_submit(h, sqid, io, &cid);

	return rc ? rc : nh_wait(h, sqid, cid, out, -1);
}

int nh_read(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba, uint32_t nlb,
	    void *buf, size_t len, const struct nh_dptr_opts *dp)
{
	struct nh_io io = { .opc = NH_CMD_READ, .nsid = nsid, .slba = slba, .nlb = nlb,
			    .buf = buf, .len = len, .dp = dp };

	return nh_io(h, sqid, &io, NULL);
}

int nh_write(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba, uint32_t nlb,
	     void *buf, size_t len, const struct nh_dptr_opts *dp)
{
	struct nh_io io = { .opc = NH_CMD_WRITE, .nsid = nsid, .slba = slba, .nlb = nlb,
			    .buf = buf, .len = len, .dp = dp };

	return nh_io(h, sqid, &io, NULL);
}

int nh_write_read_check(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba,
			uint32_t bs, uint32_t seed, int *wst, int *rst)
{
	uint8_t *w = nh_alloc(h, NH_PAGE);
	uint8_t *r = nh_alloc(h, NH_PAGE);
	int ws = -ENOMEM, rs = -ENOMEM;
	int rc;

	if (bs > NH_PAGE)
		ws = rs = -EINVAL;
	if (w && r && bs <= NH_PAGE) {
		nh_fill(w, bs, seed);
		ws = nh_write(h, sqid, nsid, slba, 1, w, bs, NULL);
		rs = ws ? ws : nh_read(h, sqid, nsid, slba, 1, r, bs, NULL);
	}
	rc = ws ? ws : rs;
	if (!rc && !nh_check(r, bs, seed))
		rc = -EBADMSG;
	nh_free(h, w, NH_PAGE);
	nh_free(h, r, NH_PAGE);
	if (wst)
		*wst = ws;
	if (rst)
		*rst = rs;
	return rc;
}

int nh_flush(struct nvme_host *h, uint16_t sqid, uint32_t nsid)
{
	struct nh_io io = { .opc = NH_CMD_FLUSH, .nsid = nsid };

	return nh_io(h, sqid, &io, NULL);
}

int nh_write_zeroes(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba,
		    uint32_t nlb, bool deac)
{
	struct nh_io io = { .opc = NH_CMD_WRITE_ZEROES, .nsid = nsid, .slba = slba, .nlb = nlb,
			    .cdw12 = deac ? 1u << 25 : 0 };

	return nh_io(h, sqid, &io, NULL);
}

int nh_deallocate(struct nvme_host *h, uint16_t sqid, uint32_t nsid,
		  const struct nh_dsm_range *ranges, uint32_t n)
{
	struct nh_io io = { .opc = NH_CMD_DSM, .nsid = nsid, .cdw10 = n - 1, .cdw11 = 1u << 2 };
	void *buf;
	int rc;

	if (!n || n > 256)
		return -EINVAL;
	buf = nh_alloc(h, (size_t)n * sizeof(*ranges));
	if (!buf)
		return -ENOMEM;
	memcpy(buf, ranges, (size_t)n * sizeof(*ranges));
	io.buf = buf;
	io.len = (size_t)n * sizeof(*ranges);
	rc = nh_io(h, sqid, &io, NULL);
	if (rc != -ETIMEDOUT)
		nh_free(h, buf, io.len);
	return rc;
}

/* ---- data pattern ------------------------------------------------------------ */

static uint8_t pattern_byte(size_t i, uint32_t seed)
{
	uint32_t x = (uint32_t)i * 2654435761u + seed * 40503u + (uint32_t)(i >> 8);

	return (uint8_t)(x >> 13);
}

void nh_fill(void *buf, size_t len, uint32_t seed)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = pattern_byte(i, seed);
}

bool nh_check(const void *buf, size_t len, uint32_t seed)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern_byte(i, seed))
			return false;
	return true;
}
