/* NVMe live upgrade: freeze and thaw the controller, save and restore its state (registers, queues, features, logs, namespaces). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vfurt/state.h>

#include "nvme_internal.h"

/*
 * Freezing (docs/restart.md). The I/O pollers are removed, as for a DMA
 * quiesce (vfr_nvme_io_pause without the drain loop), and stay removed
 * while frozen: vfr_nvme_io_resume and Create I/O CQ refuse to add them.
 * The controller poller keeps running on the home thread but fetches
 * nothing: it only works off what is in flight (the I/O passes of the
 * paused CQs, a Delete I/O SQ waiting for its commands, a shutdown's
 * drain), whose completions are posted and signalled as usual. freeze
 * answers -EBUSY until none of that is left. Outstanding AERs are not in
 * flight: they are saved, events raised meanwhile stay pending until thaw.
 *
 * The image (the model's section) is a set of fixed-size records, one per
 * group of fields, each read with an exact size check; queues are records
 * in a section of their own, namespaces one section each (tag T_NS +
 * nsid) holding the bdev's section. Records are host structs: the image
 * is little-endian by definition, and so is every host we build for.
 */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "image records are little-endian");

enum {
	T_CFG = 1,        /* struct st_cfg: what the configuration fixed, checked */
	T_IDENT = 2,      /* struct st_ident: what Identify showed the guest */
	T_REGS = 3,       /* struct st_regs */
	T_FEAT = 4,       /* struct st_feat */
	T_IVC_CD = 5,     /* u8 per vector: Interrupt Vector Configuration CD */
	T_AER = 6,        /* struct st_aer */
	T_ERRLOG = 7,     /* struct st_errlog */
	T_SMART = 8,      /* struct st_smart */
	T_CHANGED_NS = 9, /* u32 words: the Changed Namespace List bitmap */
	T_DBBUF = 10,     /* struct st_dbbuf */
	T_DB_FD = 11,     /* the doorbell page's memfd */
	T_IOEV_FD = 12,   /* the doorbells' ioeventfd (doorbells=ioeventfd) */
	T_QUEUES = 16,    /* section: TQ_CQ and TQ_SQ records */
	T_NS = 64,        /* T_NS + nsid: section per active namespace */
};
enum { TQ_CQ = 1, TQ_SQ = 2 };
enum { TN_INFO = 1, TN_BDEV = 2 /* section: vfurt_bdev_save */ };

struct st_cfg {
	uint32_t max_ioq;
	uint32_t mqes;
	uint32_t trap_db;
	uint32_t pad;
};

struct st_ident {
	char serial[24];
	char model[48];
	uint32_t min_lba_shift;
	uint16_t oncs;
	uint8_t wzsl;
	uint8_t vwc;
};

struct st_regs {
	uint32_t cc;
	uint32_t csts;
	uint32_t aqa;
	uint32_t intms;
	uint64_t asq;
	uint64_t acq;
	uint8_t fatal;
	uint8_t pad[7];
};

struct st_feat {
	uint32_t nq_set, nsqa, ncqa, arb, power, temp_over, temp_under;
	uint32_t vwc_enabled, int_coal, aec, kato, err_rec, wan_dn, pad;
};

struct st_aer {
	uint32_t nr_aer;
	uint16_t aer_cid[NVME_AERL + 1];
	uint32_t events;
	uint32_t ev_masked;
	uint32_t ev_log_pending;
};

struct st_err {
	uint64_t count;
	uint16_t sqid, cid, status, loc;
	uint64_t lba;
	uint32_t nsid;
	uint32_t pad;
};

struct st_errlog {
	uint64_t err_count;
	struct st_err e[NVME_ELPE + 1];
};

struct st_smart {
	uint64_t units_read, units_written, read_cmds, write_cmds;
};

struct st_dbbuf {
	uint64_t shadow;
	uint64_t eventidx;
	uint32_t dbbuf;
	uint32_t pad;
};

struct st_cq {
	uint64_t iova;
	uint64_t coal_since_ns;
	uint32_t size, head, tail, intx_tail, ev_last, coal_count;
	uint16_t qid, vector;
	uint8_t phase, ien, bad_db, armed, irq_pending, pad[7];
};

struct st_sq {
	uint64_t iova;
	uint32_t size, head, ev_last;
	uint16_t qid, cqid;
	uint8_t bad_db, armed, pad[6];
};

struct st_ns {
	uint64_t nsze;
	uint32_t nsid, lba_shift, caps;
	uint8_t write_through, pad[3];
	uint8_t nguid[16], eui64[8], uuid[16];
};

_Static_assert(sizeof(struct st_cfg) == 16, "no implicit padding in records");
_Static_assert(sizeof(struct st_ident) == 80, "no implicit padding in records");
_Static_assert(sizeof(struct st_regs) == 40, "no implicit padding in records");
_Static_assert(sizeof(struct st_feat) == 56, "no implicit padding in records");
_Static_assert(sizeof(struct st_aer) == 24, "no implicit padding in records");
_Static_assert(sizeof(struct st_err) == 32, "no implicit padding in records");
_Static_assert(sizeof(struct st_errlog) == 8 + 32 * (NVME_ELPE + 1), "no implicit padding");
_Static_assert(sizeof(struct st_smart) == 32, "no implicit padding in records");
_Static_assert(sizeof(struct st_dbbuf) == 24, "no implicit padding in records");
_Static_assert(sizeof(struct st_cq) == 56, "no implicit padding in records");
_Static_assert(sizeof(struct st_sq) == 32, "no implicit padding in records");
_Static_assert(sizeof(struct st_ns) == 64, "no implicit padding in records");
_Static_assert(sizeof(((struct nvme_ctrl *)0)->serial) <= sizeof(((struct st_ident *)0)->serial),
	       "serial fits");
_Static_assert(sizeof(((struct nvme_ctrl *)0)->model) <= sizeof(((struct st_ident *)0)->model),
	       "model fits");

#define EV_ALL (EV_INVALID_DB_VALUE | EV_INVALID_DB_REG | EV_NS_CHANGED)
#define CSTS_SAVED (CSTS_RDY | CSTS_CFS | CSTS_SHST_MASK)

/* ---- freeze and thaw ---------------------------------------------------- */

bool vfr_nvme_frozen_busy(const struct nvme_ctrl *c)
{
	if ((c->csts & CSTS_SHST_MASK) == CSTS_SHST_BUSY || c->del_sq)
		return true;
	for (uint32_t q = 1; q <= NVME_MAX_QID; q++) {
		const struct nvme_cq *cq = c->cq[q];

		if (!cq)
			continue;
		if (vfr_nvme_io_inflight(cq) || cq->retry_head)
			return true;
		for (uint32_t i = 0; i < VFURT_NVME_MAX_NS; i++)
			if (cq->ch[i] && vfurt_bdev_channel_inflight(cq->ch[i]))
				return true;
	}
	return false;
}

bool vfr_nvme_frozen_poll(struct nvme_ctrl *c)
{
	bool busy;

	if ((c->csts & CSTS_SHST_MASK) == CSTS_SHST_BUSY)
		return vfr_nvme_shutdown_step(c); /* drains every CQ itself */
	busy = vfr_nvme_io_drain_pass(c);
	/* frozen, the admin poll only advances the Delete (and posts its
	 * completion once the SQ's commands are done) */
	if (c->del_sq && c->sq[0] && c->cq[0])
		busy = vfr_nvme_admin_poll(c) || busy;
	return busy || c->del_sq;
}

int vfr_nvme_freeze_op(struct vfurt_dev *dev, void *arg)
{
	struct nvme_ctrl *c = arg;

	(void)dev;
	if (!atomic_load(&c->frozen))
		vfurt_logf(&c->log, VFURT_LOG_INFO, "%s: freezing", c->name);
	atomic_store(&c->frozen, true);
	if (!c->io_paused)
		vfr_nvme_io_pause(c, false); /* the pollers stop; nothing is cancelled */
	(void)vfr_nvme_frozen_poll(c);
	return vfr_nvme_frozen_busy(c) ? -EBUSY : 0;
}

/* Raise cq's vector if it holds entries the host has not consumed: the
 * interrupt for them may have been lost with the previous process (or held
 * back by coalescing). A spurious one is harmless. CQ not polled. */
static void raise_owed(struct nvme_cq *cq)
{
	vfr_nvme_cq_refresh_head(cq);
	cq->irq_pending = false;
	cq->coal_count = 0;
	if (cq->ien && !cq->dead && cq->head != cq->tail)
		vfr_nvme_irq_raise(cq);
}

void vfr_nvme_thaw_op(struct vfurt_dev *dev, void *arg)
{
	struct nvme_ctrl *c = arg;

	(void)dev;
	c->handed_off = false;
	if (!atomic_load(&c->frozen))
		return;
	atomic_store(&c->frozen, false);
	/* every I/O poller is removed while frozen: the CQs are ours here */
	for (uint32_t q = 0; q <= NVME_MAX_QID; q++)
		if (c->cq[q] && !c->cq[q]->q)
			raise_owed(c->cq[q]);
	/*
	 * The controller poller's next pass resumes I/O, as after a quiesce
	 * (vfr_nvme_io_resume, when the controller is ready and not shut
	 * down), and serves the admin queue again. Not here: a host may thaw
	 * from where it cannot place queues yet (the runtime thaws a restored
	 * device while it starts its workers).
	 */
	vfurt_dev_queue_kick(c->ctrl_q);
	vfurt_logf(&c->log, VFURT_LOG_INFO, "%s: thawed", c->name);
}

/* ---- save --------------------------------------------------------------- */

static int save_queues(const struct nvme_ctrl *c, struct vfurt_state *s)
{
	int rc = vfurt_state_open(s, T_QUEUES);

	if (rc)
		return rc;
	for (uint32_t q = 0; q <= NVME_MAX_QID && !rc; q++) {
		const struct nvme_cq *cq = c->cq[q];
		struct st_cq r;

		if (!cq)
			continue;
		r = (struct st_cq){
			.iova = cq->iova, .coal_since_ns = cq->coal_since_ns, .size = cq->size,
			.head = cq->head, .tail = cq->tail,
			.intx_tail = __atomic_load_n(&cq->intx_tail, __ATOMIC_ACQUIRE),
			.ev_last = cq->db.ev_last, .coal_count = cq->coal_count, .qid = cq->qid,
			.vector = cq->vector, .phase = cq->phase, .ien = cq->ien,
			.bad_db = cq->bad_db, .armed = cq->db.armed, .irq_pending = cq->irq_pending,
		};
		rc = vfurt_state_put(s, TQ_CQ, &r, sizeof(r));
	}
	/* SQs after every CQ, each CQ's in its polling order */
	for (uint32_t q = 0; q <= NVME_MAX_QID && !rc; q++) {
		const struct nvme_cq *cq = c->cq[q];

		for (uint32_t i = 0; cq && i < cq->nr_sqs && !rc; i++) {
			const struct nvme_sq *sq = cq->sqs[i];
			struct st_sq r = {
				.iova = sq->iova, .size = sq->size, .head = sq->head,
				.ev_last = sq->db.ev_last, .qid = sq->qid, .cqid = cq->qid,
				.bad_db = sq->bad_db, .armed = sq->db.armed,
			};

			rc = vfurt_state_put(s, TQ_SQ, &r, sizeof(r));
		}
	}
	if (vfurt_state_close(s) && !rc)
		rc = -EINVAL;
	return rc;
}

static int save_ns(const struct nvme_ctrl *c, struct vfurt_state *s, uint32_t nsid)
{
	const struct nvme_ns *ns = &c->ns[nsid - 1];
	struct st_ns r = { .nsze = ns->nsze, .nsid = nsid, .lba_shift = ns->lba_shift,
			   .caps = ns->caps, .write_through = ns->write_through };
	int rc;

	memcpy(r.nguid, ns->nguid, sizeof(r.nguid));
	memcpy(r.eui64, ns->eui64, sizeof(r.eui64));
	memcpy(r.uuid, ns->uuid, sizeof(r.uuid));
	rc = vfurt_state_open(s, T_NS + nsid);
	if (rc)
		return rc;
	rc = vfurt_state_put(s, TN_INFO, &r, sizeof(r));
	if (!rc) {
		rc = vfurt_state_open(s, TN_BDEV);
		if (!rc) {
			rc = vfurt_bdev_save(ns->bdev, s);
			if (vfurt_state_close(s) && !rc)
				rc = -EINVAL;
		}
	}
	if (vfurt_state_close(s) && !rc)
		rc = -EINVAL;
	return rc;
}

static int save_ctrl(const struct nvme_ctrl *c, struct vfurt_state *s)
{
	struct st_cfg cfg = { .max_ioq = c->max_ioq, .mqes = c->mqes, .trap_db = c->trap_db };
	struct st_ident id = { .min_lba_shift = c->min_lba_shift, .oncs = c->oncs,
			       .wzsl = c->wzsl, .vwc = c->vwc };
	struct st_regs regs = { .cc = c->cc, .csts = c->csts, .aqa = c->aqa,
				.intms = __atomic_load_n(&c->intms, __ATOMIC_RELAXED),
				.asq = c->asq, .acq = c->acq, .fatal = atomic_load(&c->fatal) };
	struct st_feat f = {
		.nq_set = c->nq_set, .nsqa = c->nsqa, .ncqa = c->ncqa, .arb = c->arb,
		.power = c->power, .temp_over = c->temp_over, .temp_under = c->temp_under,
		.vwc_enabled = c->vwc_enabled, .int_coal = c->int_coal, .aec = c->aec,
		.kato = c->kato, .err_rec = c->err_rec, .wan_dn = c->wan_dn,
	};
	struct st_aer aer = { .nr_aer = c->nr_aer, .events = atomic_load(&c->events),
			      .ev_masked = c->ev_masked, .ev_log_pending = c->ev_log_pending };
	struct st_errlog el = { .err_count = c->err_count };
	struct st_smart sm = {
		.units_read = atomic_load(&c->units_read),
		.units_written = atomic_load(&c->units_written),
		.read_cmds = atomic_load(&c->read_cmds),
		.write_cmds = atomic_load(&c->write_cmds),
	};
	struct st_dbbuf db = { .shadow = c->dbbuf_shadow, .eventidx = c->dbbuf_eventidx,
			       .dbbuf = c->dbbuf };
	int rc;

	memcpy(id.serial, c->serial, sizeof(c->serial));
	memcpy(id.model, c->model, sizeof(c->model));
	memcpy(aer.aer_cid, c->aer_cid, sizeof(aer.aer_cid));
	for (uint32_t i = 0; i <= NVME_ELPE; i++) {
		const struct nvme_err_entry *e = &c->errlog[i];

		el.e[i] = (struct st_err){ .count = e->count, .sqid = e->sqid, .cid = e->cid,
					   .status = e->status, .loc = e->loc, .lba = e->lba,
					   .nsid = e->nsid };
	}
	if ((rc = vfurt_state_put(s, T_CFG, &cfg, sizeof(cfg))) ||
	    (rc = vfurt_state_put(s, T_IDENT, &id, sizeof(id))) ||
	    (rc = vfurt_state_put(s, T_REGS, &regs, sizeof(regs))) ||
	    (rc = vfurt_state_put(s, T_FEAT, &f, sizeof(f))) ||
	    (rc = vfurt_state_put(s, T_IVC_CD, c->ivc_cd, sizeof(c->ivc_cd))) ||
	    (rc = vfurt_state_put(s, T_AER, &aer, sizeof(aer))) ||
	    (rc = vfurt_state_put(s, T_ERRLOG, &el, sizeof(el))) ||
	    (rc = vfurt_state_put(s, T_SMART, &sm, sizeof(sm))) ||
	    (rc = vfurt_state_put(s, T_CHANGED_NS, c->changed_ns, sizeof(c->changed_ns))) ||
	    (rc = vfurt_state_put(s, T_DBBUF, &db, sizeof(db))) ||
	    (rc = vfurt_state_put_fd(s, T_DB_FD, c->db_fd)))
		return rc;
	if (c->ioev_fd >= 0 && (rc = vfurt_state_put_fd(s, T_IOEV_FD, c->ioev_fd)))
		return rc;
	rc = save_queues(c, s);
	for (uint32_t nsid = 1; nsid <= VFURT_NVME_MAX_NS && !rc; nsid++)
		if (nvme_ns_active(c, nsid))
			rc = save_ns(c, s, nsid);
	return rc;
}

int vfr_nvme_save_op(struct vfurt_dev *dev, void *arg, struct vfurt_state *s)
{
	struct nvme_ctrl *c = arg;
	int rc;

	(void)dev;
	if (!atomic_load(&c->frozen) || vfr_nvme_frozen_busy(c))
		return -EBUSY; /* the engine saves only what freeze answered 0 for */
	rc = save_ctrl(c, s);
	if (rc) {
		vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: save: %s", c->name, strerror(-rc));
		return rc;
	}
	/* the next process owns the shared state now (the doorbell page the
	 * client maps): a reset or destroy here must leave it alone */
	c->handed_off = true;
	return 0;
}

/* ---- restore: reading and checking ---------------------------------------- */

/* Everything read from an image, checked before anything is changed. */
struct rs {
	struct st_cfg cfg;
	struct st_ident id;
	struct st_regs regs;
	struct st_feat feat;
	struct st_aer aer;
	struct st_errlog el;
	struct st_smart sm;
	struct st_dbbuf db;
	uint8_t ivc_cd[NVME_MAX_QID + 1];
	uint32_t changed_ns[sizeof(((struct nvme_ctrl *)0)->changed_ns) / sizeof(uint32_t)];
	bool have_cfg, have_id, have_regs, have_feat, have_aer, have_el, have_sm, have_db;
	bool have_cq[NVME_MAX_QID + 1];
	bool have_sq[NVME_MAX_QID + 1];
	struct st_cq cq[NVME_MAX_QID + 1];
	struct st_sq sq[NVME_MAX_QID + 1];
	uint16_t sq_order[NVME_MAX_QID + 1]; /* SQ qids in image order */
	uint32_t nr_sq;
	uint32_t sqs_of[NVME_MAX_QID + 1];    /* SQs per CQ */
	struct st_ns ns[VFURT_NVME_MAX_NS];
	bool have_bdev[VFURT_NVME_MAX_NS];
	struct vfurt_state_cur bdev[VFURT_NVME_MAX_NS];
	/* built by alloc_queues, installed by commit */
	struct nvme_cq *new_cq[NVME_MAX_QID + 1];
	struct nvme_sq *new_sq[NVME_MAX_QID + 1];
};

/* A fixed-size record: 0 (read), 1 (absent: fresh default), -EBADMSG. */
static int get_rec(const struct vfurt_state_cur *cur, uint32_t tag, void *buf, size_t len)
{
	int rc = vfurt_state_get(cur, tag, buf, len);

	if (rc == -ENOENT)
		return 1;
	return rc ? -EBADMSG : 0;
}

/* A record of up to cap bytes into buf (the rest stays zero). */
static int get_var(const struct vfurt_state_cur *cur, uint32_t tag, void *buf, size_t cap,
		   size_t unit)
{
	const void *v;
	size_t len;
	int rc = vfurt_state_find(cur, tag, &v, &len);

	if (rc == -ENOENT)
		return 0;
	if (rc || len > cap || len % unit)
		return -EBADMSG;
	memcpy(buf, v, len);
	return 0;
}

static bool str_ok(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

/* Queue ids the controller grants: I/O queues 1..max_qid, as Create I/O
 * CQ/SQ check them. */
static uint32_t max_qid(const struct nvme_ctrl *c, const struct rs *r, bool sq)
{
	if (!r->feat.nq_set)
		return c->max_ioq;
	return sq ? r->feat.nsqa : r->feat.ncqa;
}

static bool qsize_ok(const struct nvme_ctrl *c, uint32_t size)
{
	return size >= 2 && size <= c->mqes + 1u;
}

static bool ev_ok(uint32_t ev, uint32_t size)
{
	return ev == UINT32_MAX || ev < size;
}

static int read_cq(const struct nvme_ctrl *c, struct rs *r, const struct st_cq *q)
{
	bool admin = q->qid == 0;

	if (q->qid > NVME_MAX_QID || r->have_cq[q->qid])
		return -EBADMSG;
	if (admin ? q->vector != 0 || !q->ien : q->qid > max_qid(c, r, false))
		return -EBADMSG;
	if (!qsize_ok(c, q->size) || !q->iova || (q->iova & (NVME_PAGE - 1)) ||
	    q->vector > c->max_ioq || q->head >= q->size || q->tail >= q->size ||
	    q->intx_tail >= q->size || !ev_ok(q->ev_last, q->size) || q->phase > 1 ||
	    q->ien > 1 || q->bad_db > 1 || q->armed > 1 || q->irq_pending > 1)
		return -EBADMSG;
	r->cq[q->qid] = *q;
	r->have_cq[q->qid] = true;
	return 0;
}

static int read_sq(const struct nvme_ctrl *c, struct rs *r, const struct st_sq *q)
{
	bool admin = q->qid == 0;

	if (q->qid > NVME_MAX_QID || r->have_sq[q->qid])
		return -EBADMSG;
	if (admin ? q->cqid != 0 : q->qid > max_qid(c, r, true) || q->cqid == 0)
		return -EBADMSG;
	/* CQs come first in the image: the SQ's must be there already */
	if (q->cqid > NVME_MAX_QID || !r->have_cq[q->cqid] ||
	    r->sqs_of[q->cqid] == (admin ? 1u : NVME_MAX_SQ_PER_CQ))
		return -EBADMSG;
	if (!qsize_ok(c, q->size) || !q->iova || (q->iova & (NVME_PAGE - 1)) ||
	    q->head >= q->size || !ev_ok(q->ev_last, q->size) || q->bad_db > 1 || q->armed > 1)
		return -EBADMSG;
	r->sq[q->qid] = *q;
	r->have_sq[q->qid] = true;
	r->sqs_of[q->cqid]++;
	r->sq_order[r->nr_sq++] = q->qid;
	return 0;
}

static int read_queues(const struct nvme_ctrl *c, const struct vfurt_state_cur *cur, struct rs *r)
{
	struct vfurt_state_cur it;
	const void *v;
	size_t len;
	uint32_t tag;
	int rc = vfurt_state_sub(cur, T_QUEUES, &it);

	if (rc == -ENOENT)
		return 0;
	if (rc)
		return -EBADMSG;
	while ((rc = vfurt_state_next(&it, &tag, &v, &len)) == 1) {
		if (tag == TQ_CQ) {
			struct st_cq q;

			if (len != sizeof(q))
				return -EBADMSG;
			memcpy(&q, v, sizeof(q));
			rc = read_cq(c, r, &q);
		} else if (tag == TQ_SQ) {
			struct st_sq q;

			if (len != sizeof(q))
				return -EBADMSG;
			memcpy(&q, v, sizeof(q));
			rc = read_sq(c, r, &q);
		} else {
			rc = 0; /* a newer writer's record */
		}
		if (rc)
			return rc;
	}
	return rc < 0 ? -EBADMSG : 0;
}

/* The namespaces: exactly the active ones of the fresh controller, each
 * with its geometry (what the configuration says). */
static int read_ns(const struct nvme_ctrl *c, const struct vfurt_state_cur *cur, struct rs *r)
{
	struct vfurt_state_cur it = *cur;
	bool seen[VFURT_NVME_MAX_NS] = { false };
	const void *v;
	size_t len;
	uint32_t tag;
	int rc;

	while ((rc = vfurt_state_next(&it, &tag, &v, &len)) == 1) {
		uint32_t nsid;
		const struct nvme_ns *ns;
		struct vfurt_state_cur sub;

		if (!(tag & VFURT_STATE_SECTION) || (tag & ~VFURT_STATE_SECTION) <= T_NS ||
		    (tag & ~VFURT_STATE_SECTION) > T_NS + VFURT_NVME_MAX_NS)
			continue;
		nsid = (tag & ~VFURT_STATE_SECTION) - T_NS;
		ns = nvme_ns_active(c, nsid);
		if (seen[nsid - 1])
			return -EBADMSG;
		seen[nsid - 1] = true;
		if (!ns) {
			vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: restore: namespace %u is not in "
				   "this configuration", c->name, nsid);
			return -EINVAL;
		}
		if (vfurt_state_sub(cur, T_NS + nsid, &sub) ||
		    get_rec(&sub, TN_INFO, &r->ns[nsid - 1], sizeof(r->ns[0])))
			return -EBADMSG;
		if (r->ns[nsid - 1].nsid != nsid || r->ns[nsid - 1].write_through > 1)
			return -EBADMSG;
		if (r->ns[nsid - 1].nsze != ns->nsze || r->ns[nsid - 1].lba_shift != ns->lba_shift) {
			vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: restore: namespace %u was %llu "
				   "blocks of %u bytes, is %llu of %u", c->name, nsid,
				   (unsigned long long)r->ns[nsid - 1].nsze,
				   1u << (r->ns[nsid - 1].lba_shift & 31),
				   (unsigned long long)ns->nsze, 1u << ns->lba_shift);
			return -EINVAL;
		}
		rc = vfurt_state_sub(&sub, TN_BDEV, &r->bdev[nsid - 1]);
		if (rc && rc != -ENOENT)
			return -EBADMSG;
		r->have_bdev[nsid - 1] = rc == 0;
	}
	if (rc < 0)
		return -EBADMSG;
	for (uint32_t nsid = 1; nsid <= VFURT_NVME_MAX_NS; nsid++) {
		if (nvme_ns_active(c, nsid) && !seen[nsid - 1]) {
			vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: restore: namespace %u of this "
				   "configuration is not in the image", c->name, nsid);
			return -EINVAL;
		}
	}
	return 0;
}

/* The controller-wide records. */
static int read_ctrl(const struct nvme_ctrl *c, const struct vfurt_state_cur *cur, struct rs *r)
{
	int rc;

#define GET(tag, field, flag)                                                          \
	do {                                                                           \
		rc = get_rec(cur, tag, &r->field, sizeof(r->field));                   \
		if (rc < 0)                                                            \
			return rc;                                                     \
		r->flag = rc == 0;                                                     \
	} while (0)
	GET(T_CFG, cfg, have_cfg);
	GET(T_IDENT, id, have_id);
	GET(T_REGS, regs, have_regs);
	GET(T_FEAT, feat, have_feat);
	GET(T_AER, aer, have_aer);
	GET(T_ERRLOG, el, have_el);
	GET(T_SMART, sm, have_sm);
	GET(T_DBBUF, db, have_db);
#undef GET
	if (get_var(cur, T_IVC_CD, r->ivc_cd, sizeof(r->ivc_cd), 1) ||
	    get_var(cur, T_CHANGED_NS, r->changed_ns, sizeof(r->changed_ns), 4))
		return -EBADMSG;

	if (r->have_cfg && (r->cfg.max_ioq != c->max_ioq || r->cfg.mqes != c->mqes ||
			    r->cfg.trap_db != (uint32_t)c->trap_db)) {
		vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: restore: the image is of a controller with "
			   "%u I/O queues of %u entries%s, this one has %u of %u%s", c->name,
			   r->cfg.max_ioq, r->cfg.mqes + 1, r->cfg.trap_db ? " (ioeventfd)" : "",
			   c->max_ioq, c->mqes + 1, c->trap_db ? " (ioeventfd)" : "");
		return -EINVAL;
	}
	if (r->have_id) {
		const struct st_ident *id = &r->id;

		if (!str_ok(id->serial, sizeof(c->serial)) || !str_ok(id->model, sizeof(c->model)) ||
		    (id->min_lba_shift != 9 && id->min_lba_shift != 12) ||
		    (id->oncs & ~(uint16_t)((1u << 2) | (1u << 3))) || id->vwc > 1 ||
		    id->wzsl != 16u + id->min_lba_shift - 12u)
			return -EBADMSG;
	}
	if (r->have_regs) {
		const struct st_regs *g = &r->regs;
		uint32_t shst = g->csts & CSTS_SHST_MASK;

		if ((g->cc & ~CC_WRITABLE) || (g->csts & ~CSTS_SAVED) ||
		    shst == CSTS_SHST_BUSY || shst == CSTS_SHST_MASK ||
		    ((g->csts & CSTS_RDY) && !(g->cc & CC_EN)) || (g->aqa & ~0x0fff0fffu) ||
		    (g->asq & 0xfffu) || (g->acq & 0xfffu) || g->fatal > 1)
			return -EBADMSG;
	}
	if (r->have_feat) {
		const struct st_feat *f = &r->feat;

		if (f->nq_set > 1 || (f->nq_set && (f->nsqa < 1 || f->nsqa > c->max_ioq ||
						    f->ncqa < 1 || f->ncqa > c->max_ioq)) ||
		    (f->power & ~0xe0u) || ((f->power >> 5) & 0x7u) > 2 || f->vwc_enabled > 1 ||
		    (f->int_coal & ~0xffffu) || (f->err_rec & ~0xffffu) || f->wan_dn > 1 ||
		    (f->temp_over & ~0xffffu) || (f->temp_under & ~0xffffu) ||
		    (f->arb & ~0xffffff07u) || (f->aec & ~(0xffu | 1u << 8)))
			return -EBADMSG;
	}
	for (uint32_t v = 0; v <= NVME_MAX_QID; v++)
		if (r->ivc_cd[v] > 1 || (r->ivc_cd[v] && v > c->max_ioq))
			return -EBADMSG;
	if (r->have_aer && (r->aer.nr_aer > NVME_AERL + 1 || (r->aer.events & ~EV_ALL) ||
			    (r->aer.ev_masked & ~EV_ALL) || (r->aer.ev_log_pending & ~EV_ALL)))
		return -EBADMSG;
	if (r->have_db && (r->db.dbbuf > 1 ||
			   (r->db.dbbuf && (!r->db.shadow || !r->db.eventidx ||
					    ((r->db.shadow | r->db.eventidx) & (NVME_PAGE - 1))))))
		return -EBADMSG;
	return 0;
}

/* What the records say together: an enabled controller has exactly its
 * admin queue pair as AQA/ASQ/ACQ describe it, a disabled one no queue,
 * no AER and no shadow doorbells; ONCS and WZSL hold for every namespace. */
static int check_whole(const struct nvme_ctrl *c, const struct rs *r)
{
	bool rdy = r->have_regs && (r->regs.csts & CSTS_RDY);
	uint32_t asqs = (r->regs.aqa & 0xfffu) + 1u, acqs = ((r->regs.aqa >> 16) & 0xfffu) + 1u;

	if (!rdy) {
		for (uint32_t q = 0; q <= NVME_MAX_QID; q++)
			if (r->have_cq[q] || r->have_sq[q])
				return -EBADMSG;
		if ((r->have_aer && r->aer.nr_aer) || (r->have_db && r->db.dbbuf))
			return -EBADMSG;
	} else {
		if (!r->have_cq[0] || !r->have_sq[0] || r->cq[0].size != acqs ||
		    r->sq[0].size != asqs || r->cq[0].iova != r->regs.acq ||
		    r->sq[0].iova != r->regs.asq)
			return -EBADMSG;
		/* the AERs hold admin CQ entries (cq_room) */
		if (r->have_aer && r->aer.nr_aer >= acqs)
			return -EBADMSG;
	}
	if (r->have_id) {
		uint16_t oncs = r->id.oncs;

		for (uint32_t nsid = 1; nsid <= VFURT_NVME_MAX_NS; nsid++) {
			const struct nvme_ns *ns = nvme_ns_active(c, nsid);

			if (!ns)
				continue;
			if (((oncs & (1u << 3)) && (!(ns->caps & VFURT_BDEV_CAP_WRITE_ZEROES) ||
						     ns->lba_shift < r->id.min_lba_shift)) ||
			    ((oncs & (1u << 2)) && !(ns->caps & VFURT_BDEV_CAP_DEALLOCATE))) {
				vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: restore: namespace %u cannot "
					   "do what ONCS promised the guest", c->name, nsid);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* ---- restore: building and installing ------------------------------------- */

static void free_new_queues(struct rs *r)
{
	for (uint32_t q = 0; q <= NVME_MAX_QID; q++) {
		vfr_nvme_cq_free(r->new_cq[q]);
		vfr_nvme_sq_free(r->new_sq[q]);
		r->new_cq[q] = NULL;
		r->new_sq[q] = NULL;
	}
}

/* The queue objects, as Create I/O CQ/SQ (and the admin queue's enable)
 * make them, at the saved positions; not installed yet. */
static int alloc_queues(struct nvme_ctrl *c, struct rs *r)
{
	for (uint32_t q = 0; q <= NVME_MAX_QID; q++) {
		const struct st_cq *s = &r->cq[q];
		struct nvme_cq *cq;

		if (!r->have_cq[q])
			continue;
		cq = vfr_nvme_cq_alloc(c, s->qid, s->iova, s->size, s->vector, s->ien);
		if (!cq)
			return -ENOMEM;
		cq->head = s->head;
		cq->tail = s->tail;
		cq->phase = s->phase;
		cq->bad_db = s->bad_db;
		cq->db.ev_last = s->ev_last;
		cq->db.armed = s->armed;
		cq->intx_tail = s->intx_tail;
		cq->coal_count = s->coal_count;
		cq->coal_since_ns = s->coal_since_ns;
		cq->irq_pending = s->irq_pending;
		/* nothing is in flight but the AERs, which hold admin entries */
		cq->outstanding = q == 0 && r->have_aer ? r->aer.nr_aer : 0;
		r->new_cq[q] = cq;
	}
	for (uint32_t i = 0; i < r->nr_sq; i++) {
		const struct st_sq *s = &r->sq[r->sq_order[i]];
		struct nvme_cq *cq = r->new_cq[s->cqid];
		struct nvme_sq *sq = vfr_nvme_sq_alloc(c, s->qid, s->iova, s->size, cq, s->qid != 0);

		if (!sq)
			return -ENOMEM;
		sq->head = s->head;
		sq->bad_db = s->bad_db;
		sq->db.ev_last = s->ev_last;
		sq->db.armed = s->armed;
		cq->sqs[cq->nr_sqs++] = sq;
		r->new_sq[s->qid] = sq;
	}
	return 0;
}

/* Take over the previous process's doorbell page and ioeventfd: the client
 * maps the one and KVM signals the other. The engine already put the
 * region's fd in place when the page is mapped; with trapped doorbells
 * only this record carries the values the guest wrote. */
static int adopt_fds(struct nvme_ctrl *c, const struct vfurt_state_cur *cur, bool rdy)
{
	void *p;
	int rc;

	rc = vfurt_state_adopt_fd(cur, T_DB_FD, c->db_fd);
	if (rc == -ENOENT && rdy && c->trap_db)
		return -EBADMSG; /* the doorbell values would be lost */
	if (rc && rc != -ENOENT)
		return rc;
	/* remap even without the record: the engine may have replaced the file */
	p = mmap(NULL, NVME_DB_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, c->db_fd, NVME_DB_OFF);
	if (p == MAP_FAILED)
		return -errno;
	munmap(c->db, NVME_DB_SIZE);
	c->db = p;
	if (c->ioev_fd >= 0) {
		rc = vfurt_state_adopt_fd(cur, T_IOEV_FD, c->ioev_fd);
		if (rc && rc != -ENOENT)
			return rc;
	}
	return 0;
}

/* Install what was read: nothing here can fail. */
static void commit(struct nvme_ctrl *c, struct rs *r)
{
	bool io = false;

	if (r->have_id) {
		memcpy(c->serial, r->id.serial, sizeof(c->serial));
		memcpy(c->model, r->id.model, sizeof(c->model));
		c->min_lba_shift = r->id.min_lba_shift;
		c->oncs = r->id.oncs;
		c->wzsl = r->id.wzsl;
		c->vwc = r->id.vwc;
	}
	if (r->have_regs) {
		c->cc = r->regs.cc;
		c->csts = r->regs.csts;
		c->aqa = r->regs.aqa;
		c->intms = r->regs.intms;
		c->asq = r->regs.asq;
		c->acq = r->regs.acq;
		atomic_store(&c->fatal, r->regs.fatal != 0);
	}
	if (r->have_feat) {
		const struct st_feat *f = &r->feat;

		c->nq_set = f->nq_set;
		c->nsqa = f->nsqa;
		c->ncqa = f->ncqa;
		c->arb = f->arb;
		c->power = f->power;
		c->temp_over = f->temp_over;
		c->temp_under = f->temp_under;
		c->vwc_enabled = f->vwc_enabled;
		c->int_coal = f->int_coal;
		c->aec = f->aec;
		c->kato = f->kato;
		c->err_rec = f->err_rec;
		c->wan_dn = f->wan_dn;
	}
	memcpy(c->ivc_cd, r->ivc_cd, sizeof(c->ivc_cd));
	if (r->have_aer) {
		c->nr_aer = r->aer.nr_aer;
		memcpy(c->aer_cid, r->aer.aer_cid, sizeof(c->aer_cid));
		atomic_store(&c->events, r->aer.events);
		c->ev_masked = r->aer.ev_masked;
		c->ev_log_pending = r->aer.ev_log_pending;
	}
	if (r->have_el) {
		c->err_count = r->el.err_count;
		for (uint32_t i = 0; i <= NVME_ELPE; i++) {
			const struct st_err *e = &r->el.e[i];

			c->errlog[i] = (struct nvme_err_entry){ .count = e->count, .sqid = e->sqid,
								.cid = e->cid, .status = e->status,
								.loc = e->loc, .lba = e->lba,
								.nsid = e->nsid };
		}
	}
	if (r->have_sm) {
		atomic_store(&c->units_read, r->sm.units_read);
		atomic_store(&c->units_written, r->sm.units_written);
		atomic_store(&c->read_cmds, r->sm.read_cmds);
		atomic_store(&c->write_cmds, r->sm.write_cmds);
	}
	memcpy(c->changed_ns, r->changed_ns, sizeof(c->changed_ns));
	if (r->have_db) {
		c->dbbuf = r->db.dbbuf;
		c->dbbuf_shadow = r->db.shadow;
		c->dbbuf_eventidx = r->db.eventidx;
	}
	for (uint32_t nsid = 1; nsid <= VFURT_NVME_MAX_NS; nsid++) {
		struct nvme_ns *ns = &c->ns[nsid - 1];

		if (!ns->bdev)
			continue;
		/* the guest's identifiers are the ones it saw, whatever the
		 * configuration derives now (they are derived, not random) */
		memcpy(ns->nguid, r->ns[nsid - 1].nguid, sizeof(ns->nguid));
		memcpy(ns->eui64, r->ns[nsid - 1].eui64, sizeof(ns->eui64));
		memcpy(ns->uuid, r->ns[nsid - 1].uuid, sizeof(ns->uuid));
		ns->write_through = r->ns[nsid - 1].write_through;
	}
	for (uint32_t q = 0; q <= NVME_MAX_QID; q++) {
		c->cq[q] = r->new_cq[q];
		c->sq[q] = r->new_sq[q];
		r->new_cq[q] = NULL;
		r->new_sq[q] = NULL;
		if (q && c->cq[q])
			io = true;
	}
	/* the pollers are added at thaw (vfr_nvme_io_resume) */
	c->io_paused = io;
}

static bool has_queues(const struct nvme_ctrl *c)
{
	for (uint32_t q = 0; q <= NVME_MAX_QID; q++)
		if (c->cq[q] || c->sq[q])
			return true;
	return false;
}

int vfr_nvme_restore_op(struct vfurt_dev *dev, void *arg, const struct vfurt_state_cur *cur)
{
	struct nvme_ctrl *c = arg;
	struct rs *r;
	int rc;

	(void)dev;
	if (has_queues(c) || c->ctrl_q)
		return -EBUSY; /* not a fresh controller: a client used it */
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	atomic_store(&c->frozen, true);
	rc = read_ctrl(c, cur, r);
	if (!rc)
		rc = read_queues(c, cur, r);
	if (!rc)
		rc = read_ns(c, cur, r);
	if (!rc)
		rc = check_whole(c, r);
	if (rc) {
		vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: restore: %s image", c->name,
			   rc == -EINVAL ? "a mismatched" : "a malformed");
		goto out;
	}
	rc = alloc_queues(c, r);
	if (rc)
		goto out;
	/* from here a failure leaves the namespaces or fds already taken
	 * over: the image is refused and this controller is not served */
	for (uint32_t nsid = 1; nsid <= VFURT_NVME_MAX_NS && !rc; nsid++) {
		if (!r->have_bdev[nsid - 1])
			continue;
		rc = vfurt_bdev_restore(c->ns[nsid - 1].bdev, &r->bdev[nsid - 1]);
		if (rc)
			vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: restore: namespace %u: %s",
				   c->name, nsid, strerror(-rc));
	}
	if (!rc)
		rc = adopt_fds(c, cur, r->have_regs && (r->regs.csts & CSTS_RDY));
	if (rc)
		goto out;
	commit(c, r);
	vfurt_logf(&c->log, VFURT_LOG_INFO, "%s: restored (CSTS 0x%x, %u SQs), frozen until thaw",
		   c->name, c->csts, r->nr_sq);
out:
	free_new_queues(r);
	free(r);
	return rc;
}
