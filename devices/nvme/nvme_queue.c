/* NVMe queue mechanics: SQ/CQ objects, doorbells (MMIO page or shadow buffer), CQE posting, interrupts. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nvme_internal.h"

struct nvme_sq *vfr_nvme_sq_alloc(struct nvme_ctrl *c, uint16_t qid, uint64_t iova,
			      uint32_t size, struct nvme_cq *cq, bool io)
{
	struct nvme_sq *sq = calloc(1, sizeof(*sq));

	if (!sq)
		return NULL;
	sq->ctrl = c;
	sq->cq = cq;
	sq->qid = qid;
	sq->size = size;
	sq->iova = iova;
	sq->db.ev_last = UINT32_MAX;
	if (io) {
		sq->reqs = calloc(size, sizeof(*sq->reqs));
		if (!sq->reqs) {
			free(sq);
			return NULL;
		}
		for (uint32_t i = 0; i < size; i++) {
			sq->reqs[i].sq = sq;
			sq->reqs[i].next = sq->free;
			sq->free = &sq->reqs[i];
		}
	}
	return sq;
}

void vfr_nvme_sq_free(struct nvme_sq *sq)
{
	if (!sq)
		return;
	free(sq->reqs);
	free(sq);
}

struct nvme_cq *vfr_nvme_cq_alloc(struct nvme_ctrl *c, uint16_t qid, uint64_t iova,
			      uint32_t size, uint16_t vector, bool ien)
{
	struct nvme_cq *cq = calloc(1, sizeof(*cq));

	if (!cq)
		return NULL;
	cq->ctrl = c;
	cq->qid = qid;
	cq->size = size;
	cq->iova = iova;
	cq->vector = vector;
	cq->ien = ien;
	cq->db.ev_last = UINT32_MAX;
	cq->phase = true;
	return cq;
}

void vfr_nvme_cq_free(struct nvme_cq *cq)
{
	if (!cq)
		return;
	cq->dead = true;
	/* cancels what is left; the callbacks see cq->dead and post nothing */
	for (uint32_t i = 0; i < VFURT_NVME_MAX_NS; i++) {
		vfurt_bdev_channel_destroy(cq->ch[i]);
		cq->ch[i] = NULL;
	}
	vfr_nvme_io_drop_retries(cq);
	free(cq);
}

/* Doorbell slot y of the shadow buffer (dbbuf) for this qid, or NULL. */
static uint32_t *shadow_slot(struct nvme_ctrl *c, uint64_t base, uint32_t idx, uint32_t prot)
{
	return vfurt_dma_ptr(c->dev, base + (uint64_t)idx * 4u, 4, prot);
}

/*
 * EventIdx for a doorbell whose value we just read as v (queue of `size`
 * entries). Armed: v, so the host's next update rings the MMIO doorbell.
 * Disarmed: v - 1, as far behind as possible: the host rings only when its
 * update window [old, new) contains it, which takes a race (we read its new
 * value between its shadow store and its EventIdx load) or a queue kept
 * nearly full. No value avoids every ring for a full queue; measured with
 * vfu-bench (queues of iodepth + 1 entries, with stale_ev below), 0.08%
 * (QD1) to 0.005% (QD32) of the shadow writes still ring. Half a queue
 * ahead does much worse there.
 */
static uint32_t event_idx(const struct nvme_dbstate *st, uint32_t v, uint32_t size)
{
	if (st->armed)
		return v;
	return v ? v - 1u : size - 1u;
}

/*
 * A disarmed EventIdx is rewritten only once it lags the wanted one by a
 * quarter of the queue: the host reads that cache line on every doorbell,
 * so writing it on every poll would bounce the line between the CPUs.
 */
static bool stale_ev(uint32_t last, uint32_t want, uint32_t size)
{
	if (last >= size)
		return true;
	return (want + size - last) % size >= (size + 3u) / 4u;
}

/* Read doorbell idx: the shadow buffer for I/O queues once Doorbell Buffer
 * Config is set (and publish the event index when it changes), else the
 * MMIO page. */
static uint32_t read_db(struct nvme_ctrl *c, uint16_t qid, uint32_t idx, uint32_t size,
			struct nvme_dbstate *st)
{
	uint32_t v;

	if (c->dbbuf && qid) {
		uint32_t *sh = shadow_slot(c, c->dbbuf_shadow, idx, VFURT_DMA_READ);
		uint32_t ev;

		if (!sh)
			return UINT32_MAX;
		/* pairs with the host's store of the shadow value, which it
		 * orders after writing the SQEs (or consuming the CQEs) */
		v = __atomic_load_n(sh, __ATOMIC_ACQUIRE);
		ev = event_idx(st, v < size ? v : 0, size);
		if (ev != st->ev_last && (st->armed || stale_ev(st->ev_last, ev, size))) {
			uint32_t *evp = shadow_slot(c, c->dbbuf_eventidx, idx, VFURT_DMA_WRITE);

			if (evp)
				__atomic_store_n(evp, ev, __ATOMIC_RELEASE);
			st->ev_last = ev;
		}
		return v;
	}
	/* pairs with the guest's doorbell store (after its SQE writes) */
	return __atomic_load_n(&c->db[idx], __ATOMIC_ACQUIRE);
}

uint32_t vfr_nvme_sq_tail(struct nvme_sq *sq)
{
	uint32_t t = read_db(sq->ctrl, sq->qid, 2u * sq->qid, sq->size, &sq->db);

	if (t >= sq->size) {
		/* never trust the guest: report once, then ignore the queue */
		if (!sq->bad_db) {
			sq->bad_db = true;
			vfurt_logf(&sq->ctrl->log, VFURT_LOG_WARN,
				   "%s: SQ %u tail doorbell %u >= size %u", sq->ctrl->name,
				   sq->qid, t, sq->size);
			vfr_nvme_raise_event(sq->ctrl, EV_INVALID_DB_VALUE);
		}
		return UINT32_MAX;
	}
	return t;
}

const struct nvme_sqe *vfr_nvme_sq_base(struct nvme_sq *sq)
{
	return vfurt_dma_ptr(sq->ctrl->dev, sq->iova, (uint64_t)sq->size * sizeof(struct nvme_sqe),
			     VFURT_DMA_READ);
}

bool vfr_nvme_sq_fetch(struct nvme_sq *sq, const struct nvme_sqe *base, struct nvme_sqe *out)
{
	uint64_t lost = vfurt_dma_lost_count(sq->ctrl->dev);
	const struct nvme_sqe *e;

	if (base) {
		e = &base[sq->head];
	} else {
		/* the SQ straddles DMA windows: one entry at a time */
		e = vfurt_dma_ptr(sq->ctrl->dev, sq->iova + (uint64_t)sq->head * sizeof(*e),
				  sizeof(*e), VFURT_DMA_READ);
		if (!e)
			return false;
	}
	memcpy(out, e, sizeof(*out));
	if (vfurt_dma_lost_count(sq->ctrl->dev) != lost) {
		/* the ring's memory went away (io/fault.c): we read zeros */
		vfr_nvme_set_fatal(sq->ctrl, "submission queue lost its backing memory");
		return false;
	}
	sq->head = sq->head + 1 == sq->size ? 0 : sq->head + 1;
	return true;
}

/* Re-read the CQ head doorbell (the host consumed entries). A bad value is
 * reported once and the last valid head kept. */
void vfr_nvme_cq_refresh_head(struct nvme_cq *cq)
{
	struct nvme_ctrl *c = cq->ctrl;
	uint32_t h;

	if (c->dbbuf && cq->qid && c->pci && !vfurt_pci_msix_enabled(c->pci)) {
		/* INTx: see vfr_nvme_irq_raise. EventIdx follows every head the
		 * host reports, so its next update rings the MMIO doorbell. */
		cq->db.armed = true;
		h = read_db(c, cq->qid, 2u * cq->qid + 1u, cq->size, &cq->db);
	} else {
		h = read_db(c, cq->qid, 2u * cq->qid + 1u, cq->size, &cq->db);
	}

	if (h >= cq->size) {
		if (!cq->bad_db) {
			cq->bad_db = true;
			vfurt_logf(&c->log, VFURT_LOG_WARN, "%s: CQ %u head doorbell %u >= size %u",
				   c->name, cq->qid, h, cq->size);
			vfr_nvme_raise_event(c, EV_INVALID_DB_VALUE);
		}
		return;
	}
	cq->head = h;
}

bool vfr_nvme_cq_begin(struct nvme_cq *cq)
{
	struct nvme_ctrl *c = cq->ctrl;

	cq->base = vfurt_dma_ptr(c->dev, cq->iova, (uint64_t)cq->size * sizeof(struct nvme_cqe),
				 VFURT_DMA_WRITE);
	return true;
}

static uint32_t cq_room_at(const struct nvme_cq *cq)
{
	uint32_t used = (cq->tail + cq->size - cq->head) % cq->size;
	uint32_t free_slots = cq->size - 1u - used;

	return free_slots > cq->outstanding ? free_slots - cq->outstanding : 0;
}

/* The head doorbell is read only when the cached head says the CQ is full:
 * the host writes that line after every reap, so reading it each pass would
 * cost a cache-line transfer per pass for nothing. */
uint32_t vfr_nvme_cq_room(struct nvme_cq *cq)
{
	uint32_t room = cq_room_at(cq);

	if (room)
		return room;
	vfr_nvme_cq_refresh_head(cq);
	return cq_room_at(cq);
}

void vfr_nvme_cq_post(struct nvme_cq *cq, struct nvme_sq *sq, uint16_t cid, uint16_t status,
		  uint32_t dw0)
{
	struct nvme_ctrl *c = cq->ctrl;
	struct nvme_cqe *e;
	uint64_t lost;
	uint16_t st;

	if (cq->outstanding)
		cq->outstanding--;
	if (cq->dead)
		return;
	if (cq->base)
		e = &cq->base[cq->tail];
	else
		e = vfurt_dma_ptr(c->dev, cq->iova + (uint64_t)cq->tail * sizeof(*e), sizeof(*e),
				  VFURT_DMA_WRITE);
	if (!e) {
		vfr_nvme_set_fatal(c, "completion queue not mapped");
		return;
	}
	lost = vfurt_dma_lost_count(c->dev);
	e->dw0 = dw0;
	e->dw1 = 0;
	e->sqhd = (uint16_t)sq->head;
	e->sqid = sq->qid;
	e->cid = cid;
	st = (uint16_t)((status & 0xffu) << 1 | ((status >> 8) & 0x7u) << 9);
	if (status)
		st |= 1u << 15; /* DNR: retrying will not help */
	st |= cq->phase ? 1u : 0u;
	/* the phase bit makes the entry visible: publish it last */
	__atomic_store_n(&e->status, st, __ATOMIC_RELEASE);
	if (vfurt_dma_lost_count(c->dev) != lost) {
		/* the entry went nowhere: the ring's memory is gone (io/fault.c) */
		vfr_nvme_set_fatal(c, "completion queue lost its backing memory");
		return;
	}
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase = !cq->phase;
	}
	if (c->irq_per_cqe && cq->ien) {
		vfr_nvme_irq_raise(cq);
		return;
	}
	if (!cq->coal_count++ && c->int_coal)
		cq->coal_since_ns = nvme_now_ns();
	cq->irq_pending = true;
}

/*
 * Arm one doorbell before the poller sleeps: EventIdx = the value we see,
 * then (full fence, pairing with the host's fence between its shadow store
 * and its EventIdx load) read the shadow again. true: it moved meanwhile.
 */
static bool arm_db(struct nvme_ctrl *c, uint16_t qid, uint32_t idx, uint32_t size,
		   struct nvme_dbstate *st, uint32_t seen)
{
	st->armed = true;
	st->ev_last = UINT32_MAX; /* force the store */
	(void)read_db(c, qid, idx, size, st);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return read_db(c, qid, idx, size, st) != seen;
}

int vfr_nvme_cq_arm(struct vfurt_dev *dev, void *arg, bool arm)
{
	struct nvme_cq *cq = arg;
	struct nvme_ctrl *c = cq->ctrl;

	(void)dev;
	if (!arm) {
		/* polling again: the next reads publish disarmed EventIdx values */
		for (uint32_t i = 0; i < cq->nr_sqs; i++)
			cq->sqs[i]->db.armed = false;
		cq->db.armed = false;
		return VFURT_ARM_DONE;
	}
	if (atomic_load_explicit(&c->fatal, memory_order_relaxed))
		return VFURT_ARM_DONE; /* nothing will run until a reset */
	if (vfr_nvme_io_inflight(cq) || cq->retry_head || cq->irq_pending)
		return VFURT_ARM_PENDING; /* backend I/O completes without a kick */
	if (!c->trap_db)
		return VFURT_ARM_POLL; /* doorbells land in a mapped page: silent */
	/*
	 * From here every doorbell write kicks us: trapped ones store the value
	 * and kick, shadow ones ring the MMIO doorbell (trapped or ioeventfd)
	 * once EventIdx asks. Look once more after arming: the runtime set its
	 * sleeping flag before calling us, so a kick that came before this
	 * look saw it, and a write after it is seen here.
	 */
	for (uint32_t i = 0; i < cq->nr_sqs; i++) {
		struct nvme_sq *sq = cq->sqs[i];

		if (sq->bad_db)
			continue;
		if (c->dbbuf ? arm_db(c, sq->qid, 2u * sq->qid, sq->size, &sq->db, sq->head)
			     : vfr_nvme_sq_tail(sq) != sq->head)
			return VFURT_ARM_PENDING;
	}
	/* a CQ head update only matters when a full CQ holds commands back */
	for (uint32_t i = 0; i < cq->nr_sqs; i++) {
		struct nvme_sq *sq = cq->sqs[i];
		uint32_t seen = cq->head;
		bool moved;

		if (sq->bad_db || vfr_nvme_sq_tail(sq) == sq->head || cq_room_at(cq))
			continue;
		if (c->dbbuf) {
			moved = arm_db(c, cq->qid, 2u * cq->qid + 1u, cq->size, &cq->db, seen);
		} else {
			vfr_nvme_cq_refresh_head(cq);
			moved = cq->head != seen;
		}
		if (moved)
			return VFURT_ARM_PENDING;
		break;
	}
	return VFURT_ARM_DONE;
}

/* The head the host reported for cq, without touching EventIdx state. */
static uint32_t peek_cq_head(struct nvme_ctrl *c, const struct nvme_cq *cq)
{
	uint32_t idx = 2u * cq->qid + 1u;

	if (c->dbbuf && cq->qid) {
		const uint32_t *sh = shadow_slot(c, c->dbbuf_shadow, idx, VFURT_DMA_READ);

		return sh ? __atomic_load_n(sh, __ATOMIC_ACQUIRE) : UINT32_MAX;
	}
	return __atomic_load_n(&c->db[idx], __ATOMIC_ACQUIRE);
}

void vfr_nvme_irq_raise(struct nvme_cq *cq)
{
	struct nvme_ctrl *c = cq->ctrl;

	if (c->pci && vfurt_pci_msix_enabled(c->pci)) {
		(void)vfurt_irq_trigger(c->dev, VFURT_IRQ_MSIX, cq->vector);
		return;
	}
	/* INTx: one line for every vector, masked by INTMS bit 0. The line
	 * stays asserted until the host's head passes this tail: published
	 * for vfr_nvme_intx_resample, which runs on the control thread. */
	__atomic_store_n(&cq->intx_tail, cq->tail, __ATOMIC_RELEASE);
	/*
	 * QEMU takes a BAR access as the guest's INTx EOI. With shadow
	 * doorbells a guest consumes completions without one unless EventIdx
	 * asks, and the line stays up for ever (Linux: "nobody cared"): arm
	 * the CQ head's EventIdx at the host's current head, so that its next
	 * head update rings the MMIO doorbell.
	 */
	if (c->dbbuf && cq->qid)
		vfr_nvme_cq_refresh_head(cq);
	/* the line is a level: nothing unconsumed (the host's handler for
	 * another queue on the shared line took these entries already), no
	 * interrupt; one now would find nothing and never be EOI'd */
	if (peek_cq_head(c, cq) == cq->tail)
		return;
	if (!(__atomic_load_n(&c->intms, __ATOMIC_RELAXED) & 1u))
		(void)vfurt_irq_trigger(c->dev, VFURT_IRQ_INTX, 0);
}

/*
 * INTx is a level: asserted while some CQ with interrupts enabled holds
 * entries the host has not consumed (its head doorbell is short of the
 * tail we raised the line for) and INTMS does not mask it. Runs on the
 * control thread, which owns queue creation and deletion and the DMA
 * table, so c->cq[] and the shadow buffer are stable here.
 */
bool vfr_nvme_intx_resample(void *arg)
{
	struct nvme_ctrl *c = arg;

	if (__atomic_load_n(&c->intms, __ATOMIC_RELAXED) & 1u)
		return false;
	for (uint32_t qid = 0; qid <= NVME_MAX_QID; qid++) {
		const struct nvme_cq *cq = c->cq[qid];
		uint32_t head;

		if (!cq || !cq->ien || cq->dead)
			continue;
		head = peek_cq_head(c, cq);
		if (head < cq->size && head != __atomic_load_n(&cq->intx_tail, __ATOMIC_ACQUIRE))
			return true;
	}
	return false;
}

/*
 * Interrupt Coalescing (feature 08h): with THR (bits 7:0, 0's based) or TIME
 * (bits 15:8, 100 us units) set, an I/O CQ's interrupt waits until THR + 1
 * completions are pending or the oldest has waited TIME. The admin CQ and
 * vectors with Coalescing Disable (feature 09h) are never held. On top of
 * that, at most one interrupt per CQ per pass, and the runtime writes each
 * eventfd once per pass.
 */
bool vfr_nvme_cq_end(struct nvme_cq *cq)
{
	const struct nvme_ctrl *c = cq->ctrl;
	uint32_t coal = __atomic_load_n(&c->int_coal, __ATOMIC_RELAXED);
	uint32_t thr = (coal & 0xffu) + 1u;
	uint64_t time_ns = ((coal >> 8) & 0xffu) * 100000ull;

	cq->base = NULL;
	if (!cq->irq_pending)
		return false;
	if (!cq->ien) {
		cq->irq_pending = false;
		cq->coal_count = 0;
		return false;
	}
	if (cq->qid != 0 && coal && cq->vector <= NVME_MAX_QID && !c->ivc_cd[cq->vector] &&
	    cq->coal_count < thr && nvme_now_ns() - cq->coal_since_ns < time_ns)
		return true; /* held back: keep polling until it is due */
	vfr_nvme_irq_raise(cq);
	cq->irq_pending = false;
	cq->coal_count = 0;
	return false;
}
