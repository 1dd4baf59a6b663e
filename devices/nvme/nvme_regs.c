/* NVMe BAR0: controller registers (trapped), doorbell page (shared memory), enable/reset/shutdown. */
#include <errno.h>
#include <string.h>

#include "nvme_internal.h"

static uint64_t reg_cap(const struct nvme_ctrl *c)
{
	return (uint64_t)c->mqes |          /* MQES, 0-based */
	       1ull << 16 |                 /* CQR: queues must be contiguous */
	       (uint64_t)NVME_CAP_TO << 24 |
	       0ull << 32 |                 /* DSTRD: 4-byte doorbell stride */
	       1ull << 37;                  /* CSS: NVM command set */
	/* MPSMIN = MPSMAX = 0: 4 KiB pages only */
}

static void put32(uint8_t *r, uint32_t off, uint32_t v)
{
	memcpy(r + off, &v, sizeof(v));
}

static void put64(uint8_t *r, uint32_t off, uint64_t v)
{
	memcpy(r + off, &v, sizeof(v));
}

static uint32_t get32(const uint8_t *r, uint32_t off)
{
	uint32_t v;

	memcpy(&v, r + off, sizeof(v));
	return v;
}

static uint64_t get64(const uint8_t *r, uint32_t off)
{
	uint64_t v;

	memcpy(&v, r + off, sizeof(v));
	return v;
}

static uint32_t reg_csts(const struct nvme_ctrl *c)
{
	return c->csts | (atomic_load(&c->fatal) ? CSTS_CFS : 0u);
}

static void read_image(const struct nvme_ctrl *c, uint8_t *r)
{
	memset(r, 0, REG_END);
	put64(r, REG_CAP, reg_cap(c));
	put32(r, REG_VS, NVME_VS_1_4);
	put32(r, REG_INTMS, c->intms);
	put32(r, REG_INTMC, c->intms);
	put32(r, REG_CC, c->cc);
	put32(r, REG_CSTS, reg_csts(c));
	put32(r, REG_AQA, c->aqa);
	put64(r, REG_ASQ, c->asq);
	put64(r, REG_ACQ, c->acq);
}

/* CC.EN 0 -> 1: check CC and the admin queue registers, create the admin
 * queue pair. A bad value sets CSTS.CFS, as hardware would. */
static void ctrl_enable(struct nvme_ctrl *c)
{
	uint32_t asqs = (c->aqa & 0xfffu) + 1u;
	uint32_t acqs = ((c->aqa >> 16) & 0xfffu) + 1u;
	const char *why = NULL;

	if (CC_CSS(c->cc) != 0)
		why = "CC.CSS is not NVM";
	else if (CC_MPS(c->cc) != 0)
		why = "CC.MPS is not 4 KiB";
	else if (CC_AMS(c->cc) != 0)
		why = "CC.AMS is not round robin";
	else if (CC_IOSQES(c->cc) != 6 || CC_IOCQES(c->cc) != 4)
		why = "CC.IOSQES/IOCQES are not 64/16 bytes";
	else if (asqs < 2 || acqs < 2)
		why = "admin queue smaller than 2 entries";
	else if (!c->asq || !c->acq)
		why = "admin queue address is 0";
	if (why) {
		vfurt_logf(&c->log, VFURT_LOG_WARN, "%s: enable failed: %s (CC 0x%x AQA 0x%x)",
			   c->name, why, c->cc, c->aqa);
		c->csts |= CSTS_CFS;
		return;
	}
	c->cq[0] = vfr_nvme_cq_alloc(c, 0, c->acq, acqs, 0, true);
	c->sq[0] = c->cq[0] ? vfr_nvme_sq_alloc(c, 0, c->asq, asqs, c->cq[0], false) : NULL;
	if (!c->sq[0]) {
		vfr_nvme_cq_free(c->cq[0]);
		c->cq[0] = NULL;
		c->csts |= CSTS_CFS;
		return;
	}
	c->cq[0]->sqs[0] = c->sq[0];
	c->cq[0]->nr_sqs = 1;
	c->csts |= CSTS_RDY;
	vfurt_logf(&c->log, VFURT_LOG_INFO, "%s: enabled, admin SQ %u CQ %u entries", c->name,
		   asqs, acqs);
}

void vfr_nvme_ctrl_reset(struct nvme_ctrl *c, bool power_on)
{
	vfr_nvme_io_pause(c, false);
	/* CQs first: destroying their bdev channels runs the callbacks of
	 * cancelled I/O, which still look at their SQ (the CQ is marked dead,
	 * so they post nothing); the SQs go after that */
	for (uint32_t q = NVME_MAX_QID + 1; q-- > 0;) {
		vfr_nvme_cq_free(c->cq[q]);
		c->cq[q] = NULL;
	}
	for (uint32_t q = NVME_MAX_QID + 1; q-- > 0;) {
		vfr_nvme_sq_free(c->sq[q]);
		c->sq[q] = NULL;
	}
	c->io_paused = false;
	c->del_sq = NULL; /* freed above; its command is not answered */
	c->nr_aer = 0;
	atomic_store(&c->events, 0);
	c->ev_masked = 0;
	c->ev_log_pending = 0;
	vfr_nvme_admin_reset_features(c);
	c->dbbuf = false;
	c->dbbuf_shadow = c->dbbuf_eventidx = 0;
	/* handed off (saved for a live upgrade): the page is the next
	 * process's, which serves the same client and guest */
	if (c->db && !c->handed_off)
		memset(c->db, 0, NVME_DB_SIZE);
	c->csts = 0;
	atomic_store(&c->fatal, false);
	if (power_on) {
		c->cc = 0;
		c->aqa = 0;
		c->asq = c->acq = 0;
		c->intms = 0;
	}
}

static void cc_write(struct nvme_ctrl *c, uint32_t v)
{
	uint32_t old = c->cc;

	v &= CC_WRITABLE;
	c->cc = v;
	if (!(old & CC_EN) && (v & CC_EN)) {
		ctrl_enable(c);
	} else if ((old & CC_EN) && !(v & CC_EN)) {
		vfr_nvme_ctrl_reset(c, false);
		vfurt_logf(&c->log, VFURT_LOG_INFO, "%s: controller reset (CC.EN 0)", c->name);
	}
	if (CC_SHN(v) && !CC_SHN(old)) {
		/*
		 * Nothing volatile to write back: finish the I/O and report done.
		 * A backlog (queues full of 32 MiB Write Zeroes) takes a while:
		 * SHST says "processing" and the controller poller works it off
		 * in bounded passes, so the home worker keeps serving the others.
		 */
		vfr_nvme_io_pause(c, false);
		c->csts = (c->csts & ~CSTS_SHST_MASK) | CSTS_SHST_BUSY;
		c->drain_deadline_ns = nvme_now_ns() + NVME_DRAIN_TIMEOUT_NS;
		(void)vfr_nvme_shutdown_step(c);
	}
}

bool vfr_nvme_shutdown_step(struct nvme_ctrl *c)
{
	if (!atomic_load(&c->fatal) && vfr_nvme_io_drain_pass(c)) {
		if (nvme_now_ns() <= c->drain_deadline_ns)
			return true;
		vfr_nvme_set_fatal(c, "I/O did not drain for shutdown");
	}
	c->csts = (c->csts & ~CSTS_SHST_MASK) | CSTS_SHST_DONE;
	return false;
}

static void regs_write(struct nvme_ctrl *c, const uint8_t *buf, size_t count, uint32_t off)
{
	uint8_t img[REG_END];
	uint32_t end = off + (uint32_t)count;

	/* writable registers as they are, INTMS/INTMC as zero so that the
	 * image holds exactly the bits this access writes */
	memset(img, 0, sizeof(img));
	put32(img, REG_CC, c->cc);
	put32(img, REG_AQA, c->aqa);
	put64(img, REG_ASQ, c->asq);
	put64(img, REG_ACQ, c->acq);
	if (off >= REG_END)
		return;
	memcpy(img + off, buf, (end > REG_END ? REG_END : end) - off);

#define TOUCHES(r, w) (off < (uint32_t)(r) + (w) && end > (uint32_t)(r))
	if (TOUCHES(REG_INTMS, 4))
		__atomic_fetch_or(&c->intms, get32(img, REG_INTMS), __ATOMIC_RELAXED);
	if (TOUCHES(REG_INTMC, 4))
		__atomic_fetch_and(&c->intms, ~get32(img, REG_INTMC), __ATOMIC_RELAXED);
	if (TOUCHES(REG_AQA, 4))
		c->aqa = get32(img, REG_AQA) & 0x0fff0fffu;
	/* 64-bit queue bases: a 32-bit half updates only its half, so
	 * lo_hi_writeq's two accesses compose */
	if (TOUCHES(REG_ASQ, 8))
		c->asq = get64(img, REG_ASQ) & ~0xfffull;
	if (TOUCHES(REG_ACQ, 8))
		c->acq = get64(img, REG_ACQ) & ~0xfffull;
	if (TOUCHES(REG_CC, 4))
		cc_write(c, get32(img, REG_CC));
#undef TOUCHES
}

static ssize_t db_access(struct nvme_ctrl *c, void *buf, size_t count, uint64_t off,
			 bool is_write)
{
	uint8_t *p = (uint8_t *)c->db + off;

	if (count == 4 && !(off & 3)) {
		uint32_t v;

		if (is_write) {
			uint32_t qid = (uint32_t)(off / 8);
			bool cq = (off / 4) & 1;

			memcpy(&v, buf, 4);
			/* a doorbell of a queue that does not exist (only a trapped
			 * write can be seen; the mapped page cannot tell) */
			if ((c->csts & CSTS_RDY) &&
			    (qid > NVME_MAX_QID || (cq ? !c->cq[qid] : !c->sq[qid])))
				vfr_nvme_raise_event(c, EV_INVALID_DB_REG);
			/* pairs with the pollers' acquire load of the doorbell */
			__atomic_store_n((uint32_t *)(void *)p, v, __ATOMIC_RELEASE);
			/* a trapped write is seen here: wake a sleeping poller */
			vfr_nvme_kick_qid(c, qid, cq);
		} else {
			v = __atomic_load_n((uint32_t *)(void *)p, __ATOMIC_ACQUIRE);
			memcpy(buf, &v, 4);
		}
		return (ssize_t)count;
	}
	/* odd sizes: byte by byte, still ordered against the pollers */
	for (size_t i = 0; i < count; i++) {
		if (is_write)
			__atomic_store_n(&p[i], ((const uint8_t *)buf)[i], __ATOMIC_RELEASE);
		else
			((uint8_t *)buf)[i] = __atomic_load_n(&p[i], __ATOMIC_ACQUIRE);
	}
	return (ssize_t)count;
}

ssize_t vfr_nvme_bar0_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			 uint64_t offset, bool is_write)
{
	struct nvme_ctrl *c = arg;
	uint8_t img[REG_END];

	(void)dev;
	if (!buf || offset > NVME_BAR0_SIZE || count > NVME_BAR0_SIZE - offset)
		return -EINVAL;
	if (offset >= NVME_DB_OFF)
		return db_access(c, buf, count, offset - NVME_DB_OFF, is_write);
	if (offset + count > NVME_DB_OFF)
		return -EINVAL; /* registers and doorbells in one access */
	if (is_write) {
		regs_write(c, buf, count, (uint32_t)offset);
		return (ssize_t)count;
	}
	memset(buf, 0, count);
	if (offset < REG_END) {
		size_t n = REG_END - offset < count ? REG_END - offset : count;

		read_image(c, img);
		memcpy(buf, img + offset, n);
	}
	return (ssize_t)count;
}
