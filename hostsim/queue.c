/* hostsim queues: controller enable/disable/shutdown, submission, completion reaping and waits. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostsim/nvme_host_internal.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_us(long us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = us * 1000 };

	nanosleep(&ts, NULL);
}

/* ---- queue state ------------------------------------------------------------- */

static void drop_slots(struct nvme_host *h, struct sq *q)
{
	if (!q->slots)
		return;
	for (uint32_t i = 0; i < q->entries; i++) {
		nh_free(h, q->slots[i].aux, q->slots[i].aux_len);
		memset(&q->slots[i], 0, sizeof(q->slots[i]));
	}
}

void nh_forget_sq(struct nvme_host *h, uint16_t qid)
{
	struct sq *q = &h->sq[qid];

	drop_slots(h, q);
	free(q->slots);
	nh_free(h, q->ring, q->ring_bytes);
	memset(q, 0, sizeof(*q));
}

void nh_forget_cq(struct nvme_host *h, uint16_t qid)
{
	struct cq *q = &h->cq[qid];

	nh_free(h, q->ring, q->ring_bytes);
	memset(q, 0, sizeof(*q));
}

static void forget_queues(struct nvme_host *h)
{
	for (uint16_t q = 1; q <= NH_MAX_QID; q++) {
		nh_forget_sq(h, q);
		nh_forget_cq(h, q);
	}
	drop_slots(h, &h->sq[0]);
	h->sq[0].live = false;
	h->cq[0].live = false;
	if (h->dbbuf) {
		nh_free(h, h->shadow, NH_PAGE);
		nh_free(h, h->eventidx, NH_PAGE);
		h->shadow = h->eventidx = NULL;
		h->dbbuf = false;
	}
	h->stray_n = 0;
}

/* ---- controller state -------------------------------------------------------- */

static int wait_csts(struct nvme_host *h, uint32_t mask, uint32_t want)
{
	int64_t end = now_ms() + h->o.timeout_ms;
	uint32_t csts;
	int rc;

	for (;;) {
		rc = nh_reg_read32(h, NH_REG_CSTS, &csts);
		if (rc)
			return rc;
		if ((csts & mask) == want)
			return 0;
		if ((csts & NH_CSTS_CFS) && !(want & NH_CSTS_CFS))
			return -EIO;
		if (now_ms() > end)
			return -ETIMEDOUT;
		nap_us(500);
	}
}

int nh_disable(struct nvme_host *h)
{
	uint32_t cc;
	int rc = nh_reg_read32(h, NH_REG_CC, &cc);

	if (!rc)
		rc = nh_reg_write32(h, NH_REG_CC, cc & ~NH_CC_EN);
	if (!rc)
		rc = wait_csts(h, NH_CSTS_RDY, 0);
	/* the controller has dropped its queues: so does the host */
	forget_queues(h);
	return rc;
}

int nh_enable(struct nvme_host *h)
{
	struct sq *sq = &h->sq[0];
	struct cq *cq = &h->cq[0];
	uint32_t n = h->o.admin_entries;
	int rc = nh_disable(h);

	if (rc)
		return rc;
	memset(sq->ring, 0, sq->ring_bytes);
	memset(cq->ring, 0, cq->ring_bytes);
	sq->live = cq->live = true;
	sq->tail = sq->head = sq->cid_hint = 0;
	sq->cqid = 0;
	cq->head = 0;
	cq->phase = 1;
	cq->vector = 0;
	rc = nh_reg_write32(h, NH_REG_AQA, (n - 1) << 16 | (n - 1));
	if (!rc)
		rc = nh_reg_write64(h, NH_REG_ASQ, nh_iova(h, sq->ring));
	if (!rc)
		rc = nh_reg_write64(h, NH_REG_ACQ, nh_iova(h, cq->ring));
	if (!rc)
		rc = nh_reg_write32(h, NH_REG_CC, NH_CC_IOCQES(4) | NH_CC_IOSQES(6) | NH_CC_EN);
	if (!rc)
		rc = wait_csts(h, NH_CSTS_RDY, NH_CSTS_RDY);
	return rc;
}

int nh_shutdown(struct nvme_host *h)
{
	uint32_t cc;
	int rc = nh_reg_read32(h, NH_REG_CC, &cc);

	if (!rc)
		rc = nh_reg_write32(h, NH_REG_CC, (cc & ~(3u << 14)) | NH_CC_SHN_NORMAL);
	if (!rc)
		rc = wait_csts(h, NH_CSTS_SHST_MASK, NH_CSTS_SHST_CMPLT);
	return rc;
}

/* ---- submission and completion ----------------------------------------------- */

static void dispatch(struct nvme_host *h, const struct nh_cqe *cqe)
{
	struct sq *q = cqe->sqid <= NH_MAX_QID && h->sq[cqe->sqid].live ? &h->sq[cqe->sqid] : NULL;

	if (q && cqe->sqhd < q->entries)
		q->head = cqe->sqhd;
	if (q && cqe->cid < q->entries && q->slots[cqe->cid].state == SLOT_BUSY) {
		q->slots[cqe->cid].cqe = *cqe;
		q->slots[cqe->cid].state = SLOT_DONE;
		return;
	}
	h->st.strays++;
	if (h->stray_n < STRAY_MAX) {
		h->stray[(h->stray_first + h->stray_n) % STRAY_MAX] = *cqe;
		h->stray_n++;
	}
}

bool nh_take_stray(struct nvme_host *h, struct nh_cqe *out)
{
	if (!h->stray_n)
		return false;
	*out = h->stray[h->stray_first];
	h->stray_first = (h->stray_first + 1) % STRAY_MAX;
	h->stray_n--;
	return true;
}

int nh_reap(struct nvme_host *h, uint16_t cqid)
{
	struct cq *q;
	int n = 0;

	if (cqid > NH_MAX_QID || !h->cq[cqid].live)
		return -ENOENT;
	q = &h->cq[cqid];
	for (;;) {
		struct nh_cqe *e = &q->ring[q->head];
		/* pairs with the controller's store of the status (phase) word
		 * after the rest of the CQE */
		uint16_t status = __atomic_load_n(&e->status, __ATOMIC_ACQUIRE);
		struct nh_cqe cqe;

		if ((status & 1u) != q->phase)
			break;
		memcpy(&cqe, e, sizeof(cqe));
		cqe.status = status;
		if (++q->head == q->entries) {
			q->head = 0;
			q->phase ^= 1u;
		}
		dispatch(h, &cqe);
		n++;
	}
	if (n) {
		int rc;

		nh_qstats(h, cqid)->completions += (uint64_t)n;
		rc = nh_doorbell(h, cqid, true, q->head);

		if (rc)
			return rc;
	}
	return n;
}

static int put_sqe(struct nvme_host *h, uint16_t sqid, const struct nh_sqe *sqe, bool assign,
		   uint16_t *cid_out)
{
	struct sq *q = nh_live_sq(h, sqid);
	struct nh_sqe e = *sqe;
	uint32_t cid = UINT32_MAX;

	if (!q)
		return -ENOENT;
	if ((q->tail + 1) % q->entries == q->head) {
		int rc = nh_reap(h, q->cqid);

		if (rc < 0)
			return rc;
		if ((q->tail + 1) % q->entries == q->head)
			return -EAGAIN;
	}
	if (assign) {
		for (uint32_t i = 0; i < q->entries; i++) {
			uint32_t s = (q->cid_hint + i) % q->entries;

			if (q->slots[s].state == SLOT_FREE) {
				cid = s;
				break;
			}
		}
		if (cid == UINT32_MAX)
			return -EAGAIN;
		q->cid_hint = (cid + 1) % q->entries;
		e.cdw0 = (e.cdw0 & 0xffffu) | cid << 16;
	} else {
		cid = e.cdw0 >> 16;
	}
	if (cid < q->entries && q->slots[cid].state == SLOT_FREE)
		q->slots[cid].state = SLOT_BUSY;
	memcpy(&q->ring[q->tail], &e, sizeof(e));
	q->tail = (q->tail + 1) % q->entries;
	if (cid_out)
		*cid_out = (uint16_t)cid;
	return 0;
}

int nh_ring_sq_tail(struct nvme_host *h, uint16_t sqid)
{
	struct sq *q = nh_live_sq(h, sqid);

	if (!q)
		return -ENOENT;
	return nh_doorbell(h, sqid, false, q->tail);
}

int nh_queue_cmd(struct nvme_host *h, uint16_t sqid, const struct nh_sqe *sqe, uint16_t *cid)
{
	return put_sqe(h, sqid, sqe, true, cid);
}

int nh_submit(struct nvme_host *h, uint16_t sqid, const struct nh_sqe *sqe, uint16_t *cid)
{
	int rc = put_sqe(h, sqid, sqe, true, cid);

	return rc ? rc : nh_ring_sq_tail(h, sqid);
}

int nh_submit_raw(struct nvme_host *h, uint16_t sqid, const struct nh_sqe *sqe)
{
	int rc = put_sqe(h, sqid, sqe, false, NULL);

	return rc ? rc : nh_ring_sq_tail(h, sqid);
}

bool nh_outstanding(const struct nvme_host *h, uint16_t sqid, uint16_t cid)
{
	const struct sq *q = sqid <= NH_MAX_QID && h->sq[sqid].live ? &h->sq[sqid] : NULL;

	return q && cid < q->entries && q->slots[cid].state == SLOT_BUSY;
}

static int take(struct nvme_host *h, struct slot *s, struct nh_cqe *out)
{
	if (out)
		*out = s->cqe;
	nh_free(h, s->aux, s->aux_len);
	s->aux = NULL;
	s->aux_len = 0;
	s->state = SLOT_FREE;
	return nh_cqe_status(&s->cqe);
}

int nh_wait_irq(struct nvme_host *h, uint32_t v, int timeout_ms)
{
	uint64_t val = 0;
	int rc;

	if (v >= h->nvec)
		return -EINVAL;
	rc = vfurt_client_wait_eventfd(h->c, h->efd[v], timeout_ms, &val);
	if (rc == -ETIMEDOUT)
		return 0;
	if (rc)
		return rc;
	return val > 0x7fffffff ? 0x7fffffff : (int)val;
}

int nh_wait(struct nvme_host *h, uint16_t sqid, uint16_t cid, struct nh_cqe *out, int timeout_ms)
{
	struct sq *q = nh_live_sq(h, sqid);
	int64_t end;
	struct slot *s;

	if (!q || cid >= q->entries || q->slots[cid].state == SLOT_FREE)
		return -ENOENT;
	s = &q->slots[cid];
	end = now_ms() + (timeout_ms < 0 ? h->o.timeout_ms : timeout_ms);
	for (unsigned spins = 0;; spins++) {
		struct cq *cq = &h->cq[q->cqid];
		int64_t left;
		int rc;

		if (s->state == SLOT_DONE)
			return take(h, s, out);
		rc = nh_reap(h, q->cqid);
		if (rc < 0)
			return rc;
		if (s->state == SLOT_DONE)
			return take(h, s, out);
		left = end - now_ms();
		if (left < 0)
			return -ETIMEDOUT;
		if (h->o.irq_wait && cq->vector >= 0 && (uint32_t)cq->vector < h->nvec) {
			rc = vfurt_client_wait_eventfd(h->c, h->efd[cq->vector],
						       left < 20 ? (int)left : 20, NULL);
			if (!rc)
				nh_qstats(h, sqid)->irq_wakeups++;
			else if (rc != -ETIMEDOUT)
				return rc;
		} else if (h->o.dma_by_msg) {
			rc = vfurt_client_poll_server(h->c, 1);
			if (rc < 0)
				return rc;
		} else if (spins < 64) {
			sched_yield();
		} else {
			nap_us(50);
		}
	}
}

int nh_exec(struct nvme_host *h, uint16_t sqid, const struct nh_sqe *sqe, struct nh_cqe *out)
{
	uint16_t cid;
	int rc = nh_submit(h, sqid, sqe, &cid);

	return rc ? rc : nh_wait(h, sqid, cid, out, -1);
}

int nh_admin(struct nvme_host *h, const struct nh_sqe *sqe, struct nh_cqe *out)
{
	return nh_exec(h, 0, sqe, out);
}
