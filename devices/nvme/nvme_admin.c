/* NVMe admin command set: identify, queue management, features, log pages, async events, dbbuf. */
#include <errno.h>
#include <string.h>

#include "nvme_internal.h"

enum {
	ADM_DELETE_SQ = 0x00,
	ADM_CREATE_SQ = 0x01,
	ADM_GET_LOG = 0x02,
	ADM_DELETE_CQ = 0x04,
	ADM_CREATE_CQ = 0x05,
	ADM_IDENTIFY = 0x06,
	ADM_ABORT = 0x08,
	ADM_SET_FEATURES = 0x09,
	ADM_GET_FEATURES = 0x0a,
	ADM_AER = 0x0c,
	ADM_KEEP_ALIVE = 0x18,
	ADM_DBBUF = 0x7c,
};

enum {
	FEAT_ARB = 0x01,
	FEAT_POWER = 0x02,
	FEAT_TEMP = 0x04,
	FEAT_ERR_RECOVERY = 0x05,
	FEAT_VWC = 0x06,
	FEAT_NQ = 0x07,
	FEAT_IRQ_COALESCE = 0x08,
	FEAT_IRQ_CONFIG = 0x09,
	FEAT_WRITE_ATOMICITY = 0x0a,
	FEAT_AEC = 0x0b,
	FEAT_KATO = 0x0f,
};

enum {
	LOG_ERROR = 0x01,
	LOG_SMART = 0x02,
	LOG_FW_SLOT = 0x03,
	LOG_CHANGED_NS = 0x04,
	LOG_CMD_EFFECTS = 0x05,
};

/* Commands Supported and Effects entry bits. */
#define EFF_CSUPP (1u << 0) /* command supported */
#define EFF_LBCC (1u << 1)  /* may change logical block content */

/* Feature defaults (power-on and Get Features SEL = default or saved). */
#define TEMP_OVER_DEFAULT 0x157u /* 343 K = WCTEMP */
#define NSID_ALL 0xffffffffu

/* Asynchronous Event Configuration bits we can deliver: the SMART critical
 * warnings (7:0, none ever fires) and namespace attribute notices (OAES). */
#define AEC_SUPPORTED (0xffu | 1u << 8)

#define HELD 0xffffu /* internal: the command completes later (AER) */
#define ID_SIZE 4096u

static void put16(uint8_t *b, size_t off, uint16_t v)
{
	memcpy(b + off, &v, sizeof(v));
}

static void put32(uint8_t *b, size_t off, uint32_t v)
{
	memcpy(b + off, &v, sizeof(v));
}

static void put64(uint8_t *b, size_t off, uint64_t v)
{
	memcpy(b + off, &v, sizeof(v));
}

/* Space-padded, not terminated (Identify string fields). */
static void put_str(uint8_t *b, size_t off, size_t len, const char *s)
{
	size_t n = strnlen(s, len);

	memset(b + off, ' ', len);
	memcpy(b + off, s, n);
}

/* ---- identify -------------------------------------------------------- */

static void id_ctrl(const struct nvme_ctrl *c, uint8_t *b)
{
	char nqn[256];
	size_t n;

	put16(b, 0, 0x4e58);              /* VID */
	put16(b, 2, 0x4e58);              /* SSVID */
	put_str(b, 4, 20, c->serial);
	put_str(b, 24, 40, c->model);
	put_str(b, 64, 8, "0.1");
	b[72] = 6;                        /* RAB */
	b[73] = (uint8_t)NVME_IEEE_OUI;   /* IEEE OUI, least significant byte first */
	b[74] = (uint8_t)(NVME_IEEE_OUI >> 8);
	b[75] = (uint8_t)(NVME_IEEE_OUI >> 16);
	b[77] = NVME_MDTS;
	put16(b, 78, 1);                  /* CNTLID */
	put32(b, 80, NVME_VS_1_4);
	put32(b, 92, 1u << 8);            /* OAES: namespace attribute notices */
	b[111] = 1;                       /* CNTRLTYPE: I/O controller */
	put16(b, 256, 1u << 8);           /* OACS: Doorbell Buffer Config */
	b[258] = 3;                       /* ACL */
	b[259] = NVME_AERL;
	b[260] = 0x3;                     /* FRMW: one slot, read-only */
	b[261] = 0x6;                     /* LPA: effects log, extended data (offsets) */
	b[262] = NVME_ELPE;
	put16(b, 266, 0x157);             /* WCTEMP 343 K */
	put16(b, 268, 0x175);             /* CCTEMP 373 K */
	b[512] = 0x66;                    /* SQES */
	b[513] = 0x44;                    /* CQES */
	/* NN: every nsid a namespace may be added at (vfurt_nvme_ns_add), not
	 * only the active ones: a host checks new nsids against it */
	put32(b, 516, VFURT_NVME_MAX_NS);
	put16(b, 520, c->oncs);
	b[525] = c->vwc ? 0x7 : 0;        /* VWC present, flush of all namespaces */
	put32(b, 536, 1);                 /* SGLS: supported, byte aligned */
	n = strlen("nqn.2024-01.io.vfu-rt:nvme:");
	memcpy(nqn, "nqn.2024-01.io.vfu-rt:nvme:", n);
	memcpy(nqn + n, c->serial, strlen(c->serial) + 1);
	memcpy(b + 768, nqn, strlen(nqn));
	put16(b, 2048, 2500);             /* PSD0: 25 W */
}

static void id_ns(const struct nvme_ns *ns, uint8_t *b)
{
	put64(b, 0, ns->nsze);
	put64(b, 8, ns->nsze);
	put64(b, 16, ns->nsze);
	b[25] = 0;                        /* NLBAF: one format */
	b[26] = 0;                        /* FLBAS */
	/* DLFEAT: deallocated blocks read zero; Write Zeroes honours DEAC */
	b[33] = (ns->caps & VFURT_BDEV_CAP_DEALLOCATE) ? 0x09 : 0;
	memcpy(b + 104, ns->nguid, 16);
	memcpy(b + 120, ns->eui64, 8);
	b[130] = (uint8_t)ns->lba_shift;  /* LBAF0.LBADS */
}

static uint16_t identify(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint8_t b[ID_SIZE];
	uint32_t cns = cmd->cdw10 & 0xffu;
	uint32_t csi = cmd->cdw11 >> 24;
	uint32_t nsid = cmd->nsid;
	const struct nvme_ns *ns = nvme_ns_active(c, nsid);
	bool valid = nsid != 0 && nsid <= VFURT_NVME_MAX_NS; /* 1..NN, active or not */
	size_t off = 0;

	memset(b, 0, sizeof(b));
	switch (cns) {
	case 0x00:
		if (nsid == 0xffffffffu)
			break; /* capabilities common to all: nothing to report */
		if (!valid)
			return SC_INVALID_NS;
		/* an inactive nsid reads as zeroes (NSZE 0): how a host that
		 * revalidates a removed namespace learns it is gone */
		if (ns)
			id_ns(ns, b);
		break;
	case 0x01:
		id_ctrl(c, b);
		break;
	case 0x02:
	case 0x07:
		if (cns == 0x07 && csi != 0)
			return SC_INVALID_FIELD;
		if (nsid >= 0xfffffffeu)
			return SC_INVALID_NS;
		for (uint32_t i = nsid + 1, k = 0; i <= c->ns_end; i++)
			if (nvme_ns_active(c, i))
				put32(b, 4u * k++, i);
		break;
	case 0x03:
		/* the same values as Identify Namespace (Linux compares them) */
		if (!ns)
			return SC_INVALID_NS;
		b[off] = 0x02; /* NGUID */
		b[off + 1] = 16;
		memcpy(b + off + 4, ns->nguid, 16);
		off += 20;
		b[off] = 0x01; /* EUI-64 */
		b[off + 1] = 8;
		memcpy(b + off + 4, ns->eui64, 8);
		off += 12;
		b[off] = 0x03; /* UUID */
		b[off + 1] = 16;
		memcpy(b + off + 4, ns->uuid, 16);
		off += 20;
		b[off] = 0x04; /* CSI: NVM */
		b[off + 1] = 1;
		break;
	case 0x05:
		/* NVM command set specific namespace data: nothing beyond zeroes */
		if (csi != 0)
			return SC_INVALID_FIELD;
		if (!valid)
			return SC_INVALID_NS;
		break;
	case 0x06:
		/* NVM command set specific controller data: WZSL (byte 1); VSL,
		 * WUSL (no Verify, Write Uncorrectable) and the Dataset
		 * Management limits DMRL, DMRSL, DMSL stay 0: none */
		if (csi != 0)
			return SC_INVALID_FIELD;
		if (c->oncs & (1u << 3))
			b[1] = c->wzsl;
		break;
	case 0x08:
		if (!valid)
			return SC_INVALID_NS;
		if (ns)
			b[13] = 1; /* NSTAT: ready; inactive: zeroes */
		break;
	default:
		return SC_INVALID_FIELD;
	}
	return vfr_nvme_copy_to_guest(c, cmd, b, sizeof(b));
}

/* ---- queues ----------------------------------------------------------- */

static void cq_unpoll(struct nvme_ctrl *c, struct nvme_cq *cq)
{
	vfurt_dev_queue_remove(c->dev, &cq->q);
}

static void cq_repoll(struct nvme_ctrl *c, struct nvme_cq *cq)
{
	if (c->io_paused || cq->q)
		return; /* the controller poller resumes it */
	if (atomic_load(&c->frozen)) {
		c->io_paused = true; /* thaw resumes it */
		return;
	}
	if (vfr_nvme_cq_start(c, cq))
		vfr_nvme_set_fatal(c, "cannot poll an I/O queue");
}

static uint32_t max_qid(const struct nvme_ctrl *c, bool sq)
{
	if (!c->nq_set)
		return c->max_ioq;
	return sq ? c->nsqa : c->ncqa;
}

static uint16_t create_cq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint32_t qid = cmd->cdw10 & 0xffffu;
	uint32_t size = (cmd->cdw10 >> 16) + 1u;
	uint32_t iv = cmd->cdw11 >> 16;
	bool ien = cmd->cdw11 & 2u;
	struct nvme_cq *cq;

	if (qid == 0 || qid > max_qid(c, false) || c->cq[qid])
		return SC_QID_INVALID;
	if (size < 2 || size > c->mqes + 1u)
		return SC_QSIZE_INVALID;
	if (!(cmd->cdw11 & 1u))
		return SC_INVALID_FIELD; /* physically contiguous only (CAP.CQR) */
	if (iv > c->max_ioq)
		return SC_IV_INVALID;
	if (!cmd->dptr[0] || (cmd->dptr[0] & (NVME_PAGE - 1)))
		return SC_INVALID_FIELD;
	cq = vfr_nvme_cq_alloc(c, (uint16_t)qid, cmd->dptr[0], size, (uint16_t)iv, ien);
	if (!cq)
		return SC_INTERNAL;
	/* a new queue starts at head 0, whatever a deleted one left there */
	__atomic_store_n(&c->db[2 * qid + 1], 0, __ATOMIC_RELEASE);
	c->cq[qid] = cq;
	cq_repoll(c, cq);
	return SC_SUCCESS;
}

static uint16_t create_sq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint32_t qid = cmd->cdw10 & 0xffffu;
	uint32_t size = (cmd->cdw10 >> 16) + 1u;
	uint32_t cqid = cmd->cdw11 >> 16;
	struct nvme_cq *cq;
	struct nvme_sq *sq;

	if (qid == 0 || qid > max_qid(c, true) || c->sq[qid])
		return SC_QID_INVALID;
	if (size < 2 || size > c->mqes + 1u)
		return SC_QSIZE_INVALID;
	if (!(cmd->cdw11 & 1u))
		return SC_INVALID_FIELD;
	if (cqid == 0 || cqid > NVME_MAX_QID || !c->cq[cqid])
		return SC_CQ_INVALID;
	if (!cmd->dptr[0] || (cmd->dptr[0] & (NVME_PAGE - 1)))
		return SC_INVALID_FIELD;
	cq = c->cq[cqid];
	if (cq->nr_sqs == NVME_MAX_SQ_PER_CQ)
		return SC_CQ_INVALID;
	sq = vfr_nvme_sq_alloc(c, (uint16_t)qid, cmd->dptr[0], size, cq, true);
	if (!sq)
		return SC_INTERNAL;
	cq_unpoll(c, cq);
	/* a new queue starts at tail 0, whatever a deleted one left there */
	__atomic_store_n(&c->db[2 * qid], 0, __ATOMIC_RELEASE);
	cq->sqs[cq->nr_sqs++] = sq;
	c->sq[qid] = sq;
	cq_repoll(c, cq);
	return SC_SUCCESS;
}

/* Unlink and free an SQ whose commands are done; its CQ is polled again. */
static void sq_remove(struct nvme_ctrl *c, struct nvme_sq *sq)
{
	struct nvme_cq *cq = sq->cq;
	uint16_t qid = sq->qid;

	for (uint32_t i = 0; i < cq->nr_sqs; i++) {
		if (cq->sqs[i] == sq) {
			cq->sqs[i] = cq->sqs[--cq->nr_sqs];
			cq->sqs[cq->nr_sqs] = NULL;
			break;
		}
	}
	c->sq[qid] = NULL;
	if (!sq->inflight)
		vfr_nvme_sq_free(sq);
	else
		vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: SQ %u leaked with I/O stuck", c->name, qid);
	cq_repoll(c, cq);
}

static uint16_t delete_sq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint32_t qid = cmd->cdw10 & 0xffffu;
	struct nvme_sq *sq;

	if (qid == 0 || qid > NVME_MAX_QID || !c->sq[qid])
		return SC_QID_INVALID;
	sq = c->sq[qid];
	cq_unpoll(c, sq->cq);
	/*
	 * The commands of the SQ complete before its deletion does. A backlog
	 * takes a while (a full queue of 32 MiB Write Zeroes): the controller
	 * poller works it off one bounded pass at a time (delete_sq_step) and
	 * answers this command then; the admin queue waits meanwhile.
	 */
	if (sq->inflight && !atomic_load(&c->fatal)) {
		c->del_sq = sq;
		c->del_cid = cmd->cid;
		c->drain_deadline_ns = nvme_now_ns() + NVME_DRAIN_TIMEOUT_NS;
		return HELD;
	}
	sq_remove(c, sq);
	return SC_SUCCESS;
}

/* One pass of a pending Delete I/O SQ; posts its completion once the SQ's
 * commands are done. Returns true while it is still pending. */
static bool delete_sq_step(struct nvme_ctrl *c)
{
	struct nvme_sq *sq = c->del_sq;

	if (sq->inflight && !atomic_load(&c->fatal)) {
		vfr_nvme_io_pass(sq->cq, false);
		if (sq->inflight && nvme_now_ns() <= c->drain_deadline_ns)
			return true;
		if (sq->inflight)
			vfr_nvme_set_fatal(c, "I/O of a deleted SQ did not drain");
	}
	c->del_sq = NULL;
	sq_remove(c, sq);
	vfr_nvme_cq_post(c->cq[0], c->sq[0], c->del_cid, SC_SUCCESS, 0);
	return false;
}

static uint16_t delete_cq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint32_t qid = cmd->cdw10 & 0xffffu;
	struct nvme_cq *cq;

	if (qid == 0 || qid > NVME_MAX_QID || !c->cq[qid])
		return SC_QID_INVALID;
	cq = c->cq[qid];
	if (cq->nr_sqs)
		return SC_QDEL_INVALID;
	cq_unpoll(c, cq);
	c->cq[qid] = NULL;
	vfr_nvme_cq_free(cq);
	return SC_SUCCESS;
}

static uint16_t dbbuf_config(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint64_t shadow = cmd->dptr[0];
	uint64_t evidx = cmd->dptr[1];
	uint32_t *sh, *ev;

	if (!shadow || !evidx || (shadow | evidx) & (NVME_PAGE - 1))
		return SC_INVALID_FIELD;
	/*
	 * With INTx a VMM's EOI is the guest's next BAR access (QEMU's
	 * vfio_intx_eoi), and a guest with shadow doorbells consumes
	 * completions without one whenever EventIdx lets it: the line then
	 * stays up with nothing to claim. Refused, the guest (Linux: "unable to
	 * set dbbuf") rings every doorbell through BAR0.
	 */
	if (c->pci && !vfurt_pci_msix_enabled(c->pci)) {
		vfurt_logf(&c->log, VFURT_LOG_INFO, "%s: Doorbell Buffer Config refused: "
			   "MSI-X is off (INTx needs MMIO doorbells)", c->name);
		return SC_CMD_SEQ_ERROR;
	}
	sh = vfurt_dma_ptr(c->dev, shadow, NVME_PAGE, VFURT_DMA_READ | VFURT_DMA_WRITE);
	ev = vfurt_dma_ptr(c->dev, evidx, NVME_PAGE, VFURT_DMA_READ | VFURT_DMA_WRITE);
	if (!sh || !ev)
		return SC_INVALID_FIELD;
	/* the pollers stop reading doorbells; I/O in flight goes on after */
	vfr_nvme_io_pause(c, false);
	/* queues that exist already continue from their MMIO doorbells */
	for (uint32_t q = 1; q <= NVME_MAX_QID; q++) {
		if (c->sq[q])
			sh[2 * q] = ev[2 * q] = __atomic_load_n(&c->db[2 * q], __ATOMIC_ACQUIRE);
		if (c->cq[q])
			sh[2 * q + 1] = ev[2 * q + 1] =
				__atomic_load_n(&c->db[2 * q + 1], __ATOMIC_ACQUIRE);
	}
	c->dbbuf_shadow = shadow;
	c->dbbuf_eventidx = evidx;
	c->dbbuf = true;
	(void)vfr_nvme_io_resume(c);
	return SC_SUCCESS;
}

/* ---- features --------------------------------------------------------- */

/*
 * The features of an I/O controller that NVMe 2.0 makes mandatory (01h
 * Arbitration, 02h Power Management, 04h Temperature Threshold, 05h Error
 * Recovery, 07h Number of Queues, 08h Interrupt Coalescing, 09h Interrupt
 * Vector Configuration, 0Ah Write Atomicity Normal, 0Bh Asynchronous Event
 * Configuration) plus 06h Volatile Write Cache (when a namespace has one)
 * and 0Fh Keep Alive Timer. None is saveable; all are controller-wide
 * (Error Recovery applies to every namespace alike, since DULBE, its only
 * per-namespace part, is never enabled).
 */

void vfr_nvme_admin_reset_features(struct nvme_ctrl *c)
{
	c->nq_set = false;
	c->nsqa = c->ncqa = 0;
	c->arb = 0;
	c->power = 0;
	c->temp_over = TEMP_OVER_DEFAULT;
	c->temp_under = 0;
	c->err_rec = 0;
	__atomic_store_n(&c->vwc_enabled, c->vwc ? 1u : 0u, __ATOMIC_RELAXED);
	__atomic_store_n(&c->int_coal, 0u, __ATOMIC_RELAXED);
	memset(c->ivc_cd, 0, sizeof(c->ivc_cd));
	c->wan_dn = 0;
	c->aec = 0;
	c->kato = 0;
}

/* Temperature Threshold's TMPSEL (19:16) and THSEL (21:20): one sensor, the
 * composite (0h; Set also takes Fh, "all implemented"), over or under. */
static bool temp_sel_ok(uint32_t v, bool set)
{
	uint32_t tmpsel = (v >> 16) & 0xfu, thsel = (v >> 20) & 0x3u;

	return (tmpsel == 0 || (set && tmpsel == 0xfu)) && thsel <= 1;
}

/* Error Recovery takes NSID 0 (SPDK asks so), FFFFFFFFh or an active one. */
static uint16_t err_rec_nsid(const struct nvme_ctrl *c, uint32_t nsid)
{
	if (nsid == 0 || nsid == NSID_ALL || nvme_ns_active(c, nsid))
		return SC_SUCCESS;
	return SC_INVALID_NS;
}

static uint16_t set_features(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0)
{
	uint32_t fid = cmd->cdw10 & 0xffu;
	uint32_t v = cmd->cdw11;
	uint16_t st;

	if (cmd->cdw10 & (1u << 31))
		return SC_FEAT_NOT_SAVEABLE;
	switch (fid) {
	case FEAT_ARB:
		/* weights and burst are kept; CAP.AMS offers round robin only */
		c->arb = v & 0xffffff07u;
		return SC_SUCCESS;
	case FEAT_POWER:
		/* one power state (NPSS 0); workload hints 0-2 (3-7 reserved) */
		if ((v & 0x1fu) || ((v >> 5) & 0x7u) > 2)
			return SC_INVALID_FIELD;
		c->power = v & 0xffu;
		return SC_SUCCESS;
	case FEAT_TEMP:
		if (!temp_sel_ok(v, true))
			return SC_INVALID_FIELD;
		if ((v >> 20) & 0x3u)
			c->temp_under = v & 0xffffu;
		else
			c->temp_over = v & 0xffffu;
		return SC_SUCCESS;
	case FEAT_ERR_RECOVERY:
		st = err_rec_nsid(c, cmd->nsid);
		if (st)
			return st;
		/* DULBE needs NSFEAT.DAE, which no namespace reports: deallocated
		 * blocks read as zeroes, we keep no record of them */
		if (v & (1u << 16))
			return SC_INVALID_FIELD;
		c->err_rec = v & 0xffffu; /* TLER: nothing retries for long anyway */
		return SC_SUCCESS;
	case FEAT_VWC:
		if (!c->vwc)
			return SC_INVALID_FIELD;
		__atomic_store_n(&c->vwc_enabled, v & 1u, __ATOMIC_RELAXED);
		return SC_SUCCESS;
	case FEAT_NQ: {
		uint32_t nsqr = v & 0xffffu, ncqr = v >> 16;

		if (nsqr == 0xffffu || ncqr == 0xffffu)
			return SC_INVALID_FIELD;
		for (uint32_t q = 1; q <= NVME_MAX_QID; q++)
			if (c->sq[q] || c->cq[q])
				return SC_CMD_SEQ_ERROR;
		c->nsqa = nsqr + 1 < c->max_ioq ? nsqr + 1 : c->max_ioq;
		c->ncqa = ncqr + 1 < c->max_ioq ? ncqr + 1 : c->max_ioq;
		c->nq_set = true;
		*dw0 = (c->ncqa - 1) << 16 | (c->nsqa - 1);
		return SC_SUCCESS;
	}
	case FEAT_IRQ_COALESCE:
		__atomic_store_n(&c->int_coal, v & 0xffffu, __ATOMIC_RELAXED);
		return SC_SUCCESS;
	case FEAT_IRQ_CONFIG:
		/* IV names one of the MSI-X vectors: 0 (admin) .. max_ioq */
		if ((v & 0xffffu) > c->max_ioq)
			return SC_INVALID_FIELD;
		c->ivc_cd[v & 0xffffu] = (uint8_t)((v >> 16) & 1u);
		return SC_SUCCESS;
	case FEAT_WRITE_ATOMICITY:
		/* DN: AWUN/NAWUN are 0 anyway, only AWUPF (one block) holds */
		c->wan_dn = v & 1u;
		return SC_SUCCESS;
	case FEAT_AEC:
		/* bits of events this controller never raises are dropped (Get
		 * Features shows what was kept) rather than refused: SPDK sets
		 * all of the SMART warnings and more */
		c->aec = v & AEC_SUPPORTED;
		return SC_SUCCESS;
	case FEAT_KATO:
		c->kato = v;
		return SC_SUCCESS;
	default:
		return SC_INVALID_FIELD;
	}
}

static uint16_t get_features(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0)
{
	uint32_t fid = cmd->cdw10 & 0xffu;
	uint32_t sel = (cmd->cdw10 >> 8) & 0x7u;
	bool def = sel == 1 || sel == 2; /* nothing is saveable: saved = default */
	uint32_t v = cmd->cdw11;
	uint16_t st;

	if (sel > 3)
		return SC_INVALID_FIELD;
	switch (fid) {
	case FEAT_ARB:
	case FEAT_POWER:
	case FEAT_TEMP:
	case FEAT_NQ:
	case FEAT_IRQ_COALESCE:
	case FEAT_IRQ_CONFIG:
	case FEAT_WRITE_ATOMICITY:
	case FEAT_AEC:
	case FEAT_KATO:
		break;
	case FEAT_ERR_RECOVERY:
		st = err_rec_nsid(c, cmd->nsid);
		if (st)
			return st;
		break;
	case FEAT_VWC:
		if (!c->vwc)
			return SC_INVALID_FIELD;
		break;
	default:
		return SC_INVALID_FIELD;
	}
	if (sel == 3) {
		*dw0 = 1u << 2; /* changeable, not saveable, not per namespace */
		return SC_SUCCESS;
	}
	switch (fid) {
	case FEAT_ARB:
		*dw0 = def ? 0 : c->arb;
		break;
	case FEAT_POWER:
		*dw0 = def ? 0 : c->power;
		break;
	case FEAT_TEMP:
		if (!temp_sel_ok(v, false))
			return SC_INVALID_FIELD;
		if ((v >> 20) & 0x3u)
			*dw0 = def ? 0 : c->temp_under;
		else
			*dw0 = def ? TEMP_OVER_DEFAULT : c->temp_over;
		break;
	case FEAT_ERR_RECOVERY:
		*dw0 = def ? 0 : c->err_rec;
		break;
	case FEAT_VWC:
		*dw0 = def ? 1 : c->vwc_enabled;
		break;
	case FEAT_NQ:
		if (c->nq_set && !def)
			*dw0 = (c->ncqa - 1) << 16 | (c->nsqa - 1);
		else
			*dw0 = (c->max_ioq - 1) << 16 | (c->max_ioq - 1);
		break;
	case FEAT_IRQ_COALESCE:
		*dw0 = def ? 0 : c->int_coal;
		break;
	case FEAT_IRQ_CONFIG:
		if ((v & 0xffffu) > c->max_ioq)
			return SC_INVALID_FIELD;
		*dw0 = (v & 0xffffu) | (def ? 0u : (uint32_t)c->ivc_cd[v & 0xffffu] << 16);
		break;
	case FEAT_WRITE_ATOMICITY:
		*dw0 = def ? 0 : c->wan_dn;
		break;
	case FEAT_AEC:
		*dw0 = def ? 0 : c->aec;
		break;
	case FEAT_KATO:
		*dw0 = def ? 0 : c->kato;
		break;
	default:
		break;
	}
	return SC_SUCCESS;
}

/* ---- log pages -------------------------------------------------------- */

static size_t log_error(struct nvme_ctrl *c, uint8_t *b)
{
	for (uint32_t i = 0; i <= NVME_ELPE; i++) {
		const struct nvme_err_entry *e = &c->errlog[i];
		uint8_t *p = b + i * 64u;

		put64(p, 0, e->count);
		put16(p, 8, e->sqid);
		put16(p, 10, e->cid);
		put16(p, 12, e->status);
		put16(p, 14, e->loc);
		put64(p, 16, e->lba);
		put32(p, 24, e->nsid);
	}
	return (NVME_ELPE + 1) * 64u;
}

static void put128(uint8_t *b, size_t off, uint64_t v)
{
	put64(b, off, v);
	put64(b, off + 8, 0);
}

static size_t log_smart(struct nvme_ctrl *c, uint8_t *b)
{
	/* data units are thousands of 512-byte units, rounded up */
	uint64_t rd = atomic_load_explicit(&c->units_read, memory_order_relaxed);
	uint64_t wr = atomic_load_explicit(&c->units_written, memory_order_relaxed);

	put16(b, 1, 0x13c); /* composite temperature: 316 K */
	b[3] = 100;         /* available spare */
	b[4] = 10;          /* spare threshold */
	put128(b, 32, (rd + 999) / 1000);
	put128(b, 48, (wr + 999) / 1000);
	put128(b, 64, atomic_load_explicit(&c->read_cmds, memory_order_relaxed));
	put128(b, 80, atomic_load_explicit(&c->write_cmds, memory_order_relaxed));
	put128(b, 112, 1);  /* power cycles */
	put128(b, 176, c->err_count);
	return 512;
}

/*
 * Commands Supported and Effects (NVM command set): CSUPP for every opcode
 * admin_cmd and nvme_io.c accept, LBCC for those that write blocks. No
 * admin command changes block content, namespaces or capabilities (there
 * is no Format NVM or Namespace Management), so none needs the host to
 * quiesce around it (CSE 0).
 */
static size_t log_effects(const struct nvme_ctrl *c, uint8_t *b)
{
	static const uint8_t admin[] = {
		ADM_DELETE_SQ, ADM_CREATE_SQ, ADM_GET_LOG, ADM_DELETE_CQ, ADM_CREATE_CQ,
		ADM_IDENTIFY, ADM_ABORT, ADM_SET_FEATURES, ADM_GET_FEATURES, ADM_AER,
		ADM_KEEP_ALIVE, ADM_DBBUF,
	};
	uint8_t *iocs = b + 1024;

	for (size_t i = 0; i < sizeof(admin); i++)
		put32(b, 4u * admin[i], EFF_CSUPP);
	put32(iocs, 4u * 0x00, EFF_CSUPP);            /* Flush */
	put32(iocs, 4u * 0x01, EFF_CSUPP | EFF_LBCC); /* Write */
	put32(iocs, 4u * 0x02, EFF_CSUPP);            /* Read */
	if (c->oncs & (1u << 3))
		put32(iocs, 4u * 0x08, EFF_CSUPP | EFF_LBCC); /* Write Zeroes */
	if (c->oncs & (1u << 2))
		put32(iocs, 4u * 0x09, EFF_CSUPP | EFF_LBCC); /* Dataset Management */
	return ID_SIZE;
}

/*
 * Get Log Page. NUMD (NUMDU:NUMDL) dwords from byte offset LPOU:LPOL (LPA
 * bit 2): the offset must be a multiple of 4 and inside the page; a length
 * beyond the end transfers what there is. Index offsets (CDW14 OT) are not
 * supported; the effects log exists for the NVM command set (CSI 0) only.
 */
static uint16_t get_log(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint8_t b[ID_SIZE];
	uint32_t lid = cmd->cdw10 & 0xffu;
	bool rae = cmd->cdw10 & (1u << 15);
	uint64_t numd = ((uint64_t)(cmd->cdw11 & 0xffffu) << 16 | cmd->cdw10 >> 16) + 1u;
	uint64_t off = (uint64_t)cmd->cdw13 << 32 | cmd->cdw12;
	uint64_t len = numd * 4u;
	uint32_t csi = cmd->cdw14 >> 24;
	uint32_t clear = 0;
	size_t size;
	uint16_t st;

	if (cmd->cdw14 & (1u << 23))
		return SC_INVALID_FIELD; /* OT: offset is an index */
	memset(b, 0, sizeof(b));
	switch (lid) {
	case LOG_ERROR:
		size = log_error(c, b);
		clear = EV_INVALID_DB_VALUE | EV_INVALID_DB_REG;
		break;
	case LOG_SMART:
		/* controller-wide only (LPA bit 0 clear) */
		if (cmd->nsid != 0 && cmd->nsid != NSID_ALL)
			return SC_INVALID_FIELD;
		size = log_smart(c, b);
		break;
	case LOG_FW_SLOT:
		b[0] = 1; /* slot 1 active */
		put_str(b, 8, 8, "0.1");
		size = 512;
		break;
	case LOG_CHANGED_NS: {
		uint32_t k = 0;

		for (uint32_t i = 0; i < VFURT_NVME_MAX_NS; i++)
			if (c->changed_ns[i / 32] & (1u << (i % 32)))
				put32(b, 4u * k++, i + 1);
		size = ID_SIZE;
		clear = EV_NS_CHANGED;
		break;
	}
	case LOG_CMD_EFFECTS:
		if (csi != 0)
			return SC_INVALID_FIELD;
		size = log_effects(c, b);
		break;
	default:
		return SC_LOG_INVALID;
	}
	if ((off & 3u) || off >= size)
		return SC_INVALID_FIELD;
	if (len > size - off)
		len = size - off;
	st = vfr_nvme_copy_to_guest(c, cmd, b + off, (size_t)len);
	if (st || rae)
		return st;
	/* read (and not retained): the news it carried are taken */
	if (lid == LOG_CHANGED_NS)
		memset(c->changed_ns, 0, sizeof(c->changed_ns));
	c->ev_masked &= ~clear;
	return SC_SUCCESS;
}

/* ---- async events ----------------------------------------------------- */

void vfr_nvme_admin_deliver_events(struct nvme_ctrl *c)
{
	static const struct {
		uint32_t ev;
		uint32_t dw0;
		uint32_t mask; /* events hidden until the log page is read */
	} tab[] = {
		{ EV_INVALID_DB_REG, 0x00u | 0x00u << 8 | LOG_ERROR << 16,
		  EV_INVALID_DB_REG | EV_INVALID_DB_VALUE },
		{ EV_INVALID_DB_VALUE, 0x00u | 0x01u << 8 | LOG_ERROR << 16,
		  EV_INVALID_DB_REG | EV_INVALID_DB_VALUE },
		{ EV_NS_CHANGED, 0x02u | 0x00u << 8 | LOG_CHANGED_NS << 16, EV_NS_CHANGED },
	};
	struct nvme_cq *cq = c->cq[0];

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]) && c->nr_aer; i++) {
		uint32_t pending = atomic_load(&c->events) & ~c->ev_masked;

		if (!(pending & tab[i].ev))
			continue;
		if (tab[i].ev == EV_NS_CHANGED && !(c->aec & (1u << 8))) {
			atomic_fetch_and(&c->events, ~tab[i].ev); /* notices disabled */
			continue;
		}
		atomic_fetch_and(&c->events, ~tab[i].ev);
		c->ev_masked |= tab[i].mask;
		if (tab[i].mask & (EV_INVALID_DB_REG | EV_INVALID_DB_VALUE))
			c->err_count++;
		vfr_nvme_cq_post(cq, c->sq[0], c->aer_cid[--c->nr_aer], SC_SUCCESS, tab[i].dw0);
	}
}

/* ---- dispatch --------------------------------------------------------- */

static uint16_t admin_cmd(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0)
{
	if (cmd->flags & 0x3u)
		return SC_INVALID_FIELD; /* no fused admin commands */
	switch (cmd->opc) {
	case ADM_DELETE_SQ:
		return delete_sq(c, cmd);
	case ADM_CREATE_SQ:
		return create_sq(c, cmd);
	case ADM_GET_LOG:
		return get_log(c, cmd);
	case ADM_DELETE_CQ:
		return delete_cq(c, cmd);
	case ADM_CREATE_CQ:
		return create_cq(c, cmd);
	case ADM_IDENTIFY:
		return identify(c, cmd);
	case ADM_ABORT:
		*dw0 = 1; /* not aborted: commands are not cancellable here */
		return SC_SUCCESS;
	case ADM_SET_FEATURES:
		return set_features(c, cmd, dw0);
	case ADM_GET_FEATURES:
		return get_features(c, cmd, dw0);
	case ADM_AER:
		if (c->nr_aer > NVME_AERL)
			return SC_AER_LIMIT;
		c->aer_cid[c->nr_aer++] = cmd->cid;
		return HELD;
	case ADM_KEEP_ALIVE:
		return SC_SUCCESS;
	case ADM_DBBUF:
		return dbbuf_config(c, cmd);
	default:
		return SC_INVALID_OPCODE;
	}
}

bool vfr_nvme_admin_poll(struct nvme_ctrl *c)
{
	struct nvme_sq *sq = c->sq[0];
	struct nvme_cq *cq = c->cq[0];
	const struct nvme_sqe *base;
	bool busy = false, frozen;
	uint32_t tail;

	if (!sq || !cq)
		return false;
	frozen = atomic_load_explicit(&c->frozen, memory_order_relaxed);
	vfr_nvme_cq_begin(cq);
	/* frozen: a pending Delete still completes, nothing new starts */
	if (!frozen)
		vfr_nvme_admin_deliver_events(c);
	if (c->del_sq && delete_sq_step(c)) {
		busy = true;
		goto out; /* commands after the Delete wait for it */
	}
	if (frozen)
		goto out;
	tail = vfr_nvme_sq_tail(sq);
	if (tail != UINT32_MAX && tail != sq->head) {
		uint32_t budget = NVME_SQ_PASS_CMDS;

		base = vfr_nvme_sq_base(sq);
		while (sq->head != tail && vfr_nvme_cq_room(cq) && budget--) {
			struct nvme_sqe cmd;
			uint32_t dw0 = 0;
			uint16_t st;

			if (!vfr_nvme_sq_fetch(sq, base, &cmd)) {
				vfr_nvme_set_fatal(c, "admin submission queue not mapped");
				break;
			}
			busy = true;
			cq->outstanding++;
			st = admin_cmd(c, &cmd, &dw0);
			if (st == HELD && c->del_sq)
				break;
			if (st == HELD)
				continue;
			if (st)
				vfurt_logf(&c->log, VFURT_LOG_DEBUG,
					   "%s: admin opcode 0x%02x cid %u: status 0x%03x", c->name,
					   cmd.opc, cmd.cid, st);
			vfr_nvme_cq_post(cq, sq, cmd.cid, st, dw0);
			if (c->sq[0] != sq || atomic_load(&c->fatal))
				break;
		}
	}
out:
	if (!busy && c->cq[0] == cq)
		vfr_nvme_cq_refresh_head(cq);
	(void)vfr_nvme_cq_end(cq); /* the admin CQ is never coalesced */
	return busy;
}
