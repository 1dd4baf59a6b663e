/* NVMe I/O path: NVM command set (read, write, flush, write zeroes, DSM) onto bdev channels, per CQ poller. */
#include <errno.h>
#include <string.h>

#include "nvme_internal.h"

enum {
	OPC_FLUSH = 0x00,
	OPC_WRITE = 0x01,
	OPC_READ = 0x02,
	OPC_WRITE_ZEROES = 0x08,
	OPC_DSM = 0x09,
};

#define NSID_ALL 0xffffffffu
#define DSM_MAX_RANGES 256u

static uint16_t errno_status(int rc, uint8_t opc)
{
	switch (rc) {
	case -EIO:
		return opc == OPC_READ ? SC_READ_ERROR : SC_WRITE_FAULT;
	case -ECANCELED:
		return SC_ABORT_REQ;
	case -EFAULT:
		return SC_DATA_XFER_ERROR; /* the kernel found no memory behind the PRPs */
	case -EINVAL:
		return SC_INVALID_FIELD;
	default:
		return SC_INTERNAL;
	}
}

static void req_done(struct nvme_req *r)
{
	struct nvme_sq *sq = r->sq;

	/* a DMA window lost its backing while this command ran (io/fault.c):
	 * its data (or its PRP list) may have been in it */
	if (!r->status && vfurt_dma_lost_count(sq->ctrl->dev) != r->lost)
		r->status = SC_DATA_XFER_ERROR;

	vfr_nvme_cq_post(sq->cq, sq, r->cmd.cid, r->status, r->dw0);
	sq->inflight--;
	r->next = sq->free;
	sq->free = r;
}

static struct vfurt_bdev_channel *get_channel(struct nvme_cq *cq, uint32_t nsidx);

/* Force Unit Access with a volatile write cache: the data must be durable
 * before the command completes, so io_cb follows the write with a flush
 * once it has completed (a flush covers completed writes only). */
static void io_cb(void *arg, int status)
{
	struct nvme_req *r = arg;

	if (status && !r->status)
		r->status = errno_status(status, r->cmd.opc);
	/* io_uring into a truncated window fails with EFAULT, not SIGBUS: the
	 * same loss, and the engine disconnects the client for it */
	if (status == -EFAULT)
		vfurt_dma_report_lost(r->sq->ctrl->dev, r->cmd.dptr[0]);
	r->pending--;
	if (r->pending || r->next_sub != r->nr_sub)
		return;
	if (r->fua && !r->status && !r->sq->cq->dead) {
		struct vfurt_bdev_io io = { .op = VFURT_BDEV_FLUSH, .cb = io_cb, .cb_arg = r };
		struct vfurt_bdev_channel *ch = get_channel(r->sq->cq, r->cmd.nsid - 1);

		r->fua = false;
		/* the write's slot was recycled before this callback: room */
		if (ch && vfurt_bdev_submit(ch, &io) == 0) {
			r->pending++;
			return;
		}
		r->status = SC_WRITE_FAULT;
	}
	req_done(r);
}

static struct vfurt_bdev_channel *get_channel(struct nvme_cq *cq, uint32_t nsidx)
{
	struct nvme_ctrl *c = cq->ctrl;

	/* created by the thread that polls the CQ, on first use */
	if (!cq->ch[nsidx]) {
		cq->ch[nsidx] = vfurt_bdev_channel_create(c->ns[nsidx].bdev, cq->size + DSM_MAX_RANGES);
		if (!cq->ch[nsidx])
			vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: CQ %u: no channel for ns %u: %s",
				   c->name, cq->qid, nsidx + 1, strerror(errno));
	}
	return cq->ch[nsidx];
}

static void retry_push(struct nvme_cq *cq, struct nvme_req *r)
{
	r->next = NULL;
	if (cq->retry_tail)
		cq->retry_tail->next = r;
	else
		cq->retry_head = r;
	cq->retry_tail = r;
}

static uint64_t cmd_slba(const struct nvme_sqe *cmd)
{
	return (uint64_t)cmd->cdw11 << 32 | cmd->cdw10;
}

static bool range_ok(const struct nvme_ns *ns, uint64_t slba, uint64_t nlb)
{
	return slba < ns->nsze && nlb <= ns->nsze - slba;
}

/* Submit the request's remaining sub-requests. Returns false when the bdev
 * asked to retry (the request is on the retry list). */
static bool submit_subs(struct nvme_cq *cq, struct nvme_req *r)
{
	struct nvme_ctrl *c = cq->ctrl;
	struct nvme_dsm_range ranges[DSM_MAX_RANGES];
	const struct nvme_sqe *cmd = &r->cmd;
	bool have_ranges = false;

	for (; r->next_sub < r->nr_sub; r->next_sub++) {
		struct vfurt_bdev_io io = { .cb = io_cb, .cb_arg = r };
		uint32_t nsidx = cmd->nsid - 1;
		struct vfurt_bdev_channel *ch;
		int rc;

		switch (cmd->opc) {
		case OPC_FLUSH:
			if (cmd->nsid == NSID_ALL)
				nsidx = r->next_sub;
			if (!c->ns[nsidx].bdev)
				continue; /* a free nsid below ns_end */
			io.op = VFURT_BDEV_FLUSH;
			break;
		case OPC_READ:
		case OPC_WRITE:
			io.op = cmd->opc == OPC_READ ? VFURT_BDEV_READ : VFURT_BDEV_WRITE;
			io.offset_blocks = cmd_slba(cmd);
			io.num_blocks = (cmd->cdw12 & 0xffffu) + 1u;
			io.iov = r->iov;
			io.iovcnt = r->niov;
			break;
		case OPC_WRITE_ZEROES:
			/* DEAC: the host lets us deallocate, which reads as zeroes
			 * too (DLFEAT) and is cheaper for the backends */
			io.op = (cmd->cdw12 & (1u << 25)) &&
					(c->ns[nsidx].caps & VFURT_BDEV_CAP_DEALLOCATE)
				? VFURT_BDEV_DEALLOCATE : VFURT_BDEV_WRITE_ZEROES;
			io.offset_blocks = cmd_slba(cmd);
			io.num_blocks = (cmd->cdw12 & 0xffffu) + 1u;
			break;
		case OPC_DSM: {
			const struct nvme_dsm_range *d;

			if (!have_ranges) {
				/* (re-)read: the host must not change it while in flight */
				r->status = vfr_nvme_copy_from_guest(c, cmd, ranges,
								 (size_t)r->nr_sub * sizeof(ranges[0]));
				if (r->status) {
					r->next_sub = r->nr_sub;
					goto out;
				}
				have_ranges = true;
			}
			d = &ranges[r->next_sub];
			if (!d->nlb)
				continue;
			if (!range_ok(&c->ns[nsidx], d->slba, d->nlb)) {
				r->status = SC_LBA_RANGE;
				r->next_sub = r->nr_sub;
				goto out;
			}
			io.op = VFURT_BDEV_DEALLOCATE;
			io.offset_blocks = d->slba;
			io.num_blocks = d->nlb;
			break;
		}
		default:
			r->status = SC_INVALID_OPCODE;
			r->next_sub = r->nr_sub;
			goto out;
		}
		ch = get_channel(cq, nsidx);
		if (!ch) {
			r->status = SC_INTERNAL;
			r->next_sub = r->nr_sub;
			goto out;
		}
		rc = vfurt_bdev_submit(ch, &io);
		if (rc == -EAGAIN) {
			retry_push(cq, r);
			return false;
		}
		if (rc < 0) {
			r->status = errno_status(rc, cmd->opc);
			r->next_sub = r->nr_sub;
			break;
		}
		r->pending++;
	}
out:
	if (!r->pending)
		req_done(r);
	return true;
}

/* Validate a fetched command and set up its sub-requests. *cost: its share
 * of the SQ's per-pass budget (NVME_SQ_PASS_BYTES), set first. */
static uint16_t prepare(struct nvme_ctrl *c, struct nvme_req *r, uint64_t *cost)
{
	const struct nvme_sqe *cmd = &r->cmd;
	const struct nvme_ns *ns;
	uint64_t slba, nlb, len;
	uint16_t st;

	*cost = NVME_PAGE;
	if (cmd->flags & 0x3u)
		return SC_INVALID_FIELD; /* fused operations are not supported */
	if (cmd->opc == OPC_FLUSH && cmd->nsid == NSID_ALL) {
		r->nr_sub = c->ns_end; /* one per active namespace (submit_subs) */
		return SC_SUCCESS;
	}
	ns = nvme_ns_active(c, cmd->nsid);
	if (!ns)
		return SC_INVALID_NS;
	switch (cmd->opc) {
	case OPC_FLUSH:
		r->nr_sub = 1;
		return SC_SUCCESS;
	case OPC_READ:
	case OPC_WRITE:
		slba = cmd_slba(cmd);
		nlb = (cmd->cdw12 & 0xffffu) + 1u;
		if (!range_ok(ns, slba, nlb))
			return SC_LBA_RANGE;
		len = nlb << ns->lba_shift;
		if (len > NVME_MAX_XFER)
			return SC_INVALID_FIELD; /* MDTS */
		*cost = len;
		st = vfr_nvme_map_data(c, cmd, len,
				   cmd->opc == OPC_READ ? VFURT_DMA_WRITE : VFURT_DMA_READ, r->iov,
				   NVME_MAX_IOV, &r->niov);
		if (st)
			return st;
		if (cmd->opc == OPC_READ) {
			atomic_fetch_add_explicit(&c->read_cmds, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&c->units_read, len >> 9, memory_order_relaxed);
		} else {
			atomic_fetch_add_explicit(&c->write_cmds, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&c->units_written, len >> 9, memory_order_relaxed);
		}
		r->nr_sub = 1;
		/* FUA (CDW12 bit 30) matters only when writes can sit in a cache;
		 * a write-through namespace flushes after every write */
		r->fua = cmd->opc == OPC_WRITE &&
			 (ns->write_through || ((cmd->cdw12 & (1u << 30)) &&
						__atomic_load_n(&c->vwc_enabled, __ATOMIC_RELAXED)));
		return SC_SUCCESS;
	case OPC_WRITE_ZEROES:
		if (!(c->oncs & (1u << 3)))
			return SC_INVALID_OPCODE;
		slba = cmd_slba(cmd);
		nlb = (cmd->cdw12 & 0xffffu) + 1u;
		if (nlb << ns->lba_shift > (uint64_t)NVME_PAGE << c->wzsl)
			return SC_INVALID_FIELD; /* WZSL */
		if (!range_ok(ns, slba, nlb))
			return SC_LBA_RANGE;
		r->nr_sub = 1;
		return SC_SUCCESS;
	case OPC_DSM:
		if (!(c->oncs & (1u << 2)))
			return SC_INVALID_OPCODE;
		/* only Deallocate does anything; the other attributes are hints */
		r->nr_sub = (cmd->cdw11 & (1u << 2)) ? (cmd->cdw10 & 0xffu) + 1u : 0u;
		if (r->nr_sub)
			*cost = (uint64_t)r->nr_sub * NVME_PAGE;
		return SC_SUCCESS;
	default:
		return SC_INVALID_OPCODE;
	}
}

/* Start one fetched command; returns its cost (see prepare). */
static uint64_t start_cmd(struct nvme_cq *cq, struct nvme_sq *sq, const struct nvme_sqe *cmd)
{
	struct nvme_req *r = sq->free;
	uint64_t cost;

	sq->free = r->next;
	sq->inflight++;
	cq->outstanding++;
	r->next = NULL;
	r->cmd = *cmd;
	r->status = SC_SUCCESS;
	r->dw0 = 0;
	r->pending = 0;
	r->next_sub = 0;
	r->nr_sub = 0;
	r->fua = false;
	r->niov = 0;
	r->lost = vfurt_dma_lost_count(cq->ctrl->dev);
	r->status = prepare(cq->ctrl, r, &cost);
	if (r->status)
		r->nr_sub = 0;
	(void)submit_subs(cq, r);
	return cost;
}

uint32_t vfr_nvme_io_inflight(const struct nvme_cq *cq)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < cq->nr_sqs; i++)
		n += cq->sqs[i]->inflight;
	return n;
}

void vfr_nvme_io_drop_retries(struct nvme_cq *cq)
{
	cq->retry_head = cq->retry_tail = NULL;
}

bool vfr_nvme_io_pass(struct nvme_cq *cq, bool fetch)
{
	struct nvme_ctrl *c = cq->ctrl;
	struct nvme_req *list;
	bool busy = false;

	vfr_nvme_cq_begin(cq);
	for (uint32_t i = 0; i < c->ns_end; i++)
		if (cq->ch[i] && vfurt_bdev_channel_poll(cq->ch[i], 0) > 0)
			busy = true;

	/* submits the bdev refused earlier go first, in order */
	list = cq->retry_head;
	cq->retry_head = cq->retry_tail = NULL;
	while (list) {
		struct nvme_req *r = list;

		list = r->next;
		r->next = NULL;
		if (!submit_subs(cq, r)) {
			cq->retry_tail->next = list;
			while (cq->retry_tail->next)
				cq->retry_tail = cq->retry_tail->next;
			break;
		}
		busy = true;
	}

	if (fetch && !cq->retry_head && !atomic_load_explicit(&c->fatal, memory_order_relaxed) &&
	    !atomic_load_explicit(&c->frozen, memory_order_relaxed)) {
		for (uint32_t i = 0; i < cq->nr_sqs; i++) {
			struct nvme_sq *sq = cq->sqs[i];
			const struct nvme_sqe *base;
			uint32_t tail = vfr_nvme_sq_tail(sq);
			uint32_t cmds = NVME_SQ_PASS_CMDS;
			uint64_t bytes = 0;

			if (tail == UINT32_MAX || tail == sq->head)
				continue;
			base = vfr_nvme_sq_base(sq);
			while (sq->head != tail && sq->free && vfr_nvme_cq_room(cq) && cmds-- &&
			       bytes < NVME_SQ_PASS_BYTES) {
				struct nvme_sqe cmd;

				if (!vfr_nvme_sq_fetch(sq, base, &cmd)) {
					vfr_nvme_set_fatal(c, "submission queue not mapped");
					break;
				}
				bytes += start_cmd(cq, sq, &cmd);
				busy = true;
				if (cq->retry_head)
					break; /* the bdev is full: let it drain */
			}
		}
	}
	if (!busy && !cq->irq_pending)
		vfr_nvme_cq_refresh_head(cq); /* idle: the line is cheap now */
	if (vfr_nvme_cq_end(cq))
		busy = true; /* a coalesced interrupt is due later */
	return busy;
}
