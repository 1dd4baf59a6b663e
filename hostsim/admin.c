/* hostsim admin commands: identify, features, I/O queue creation and deletion, log pages, AER. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hostsim/nvme_host_internal.h"

int nh_identify(struct nvme_host *h, uint8_t cns, uint32_t nsid, void *out)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_IDENTIFY, .nsid = nsid, .cdw10 = cns };
	void *buf = nh_alloc(h, NH_PAGE);
	int rc;

	if (!buf)
		return -ENOMEM;
	sqe.prp1 = nh_iova(h, buf);
	rc = nh_admin(h, &sqe, NULL);
	if (rc == -ETIMEDOUT)
		return rc; /* the controller may still write it: leave the page */
	if (!rc)
		memcpy(out, buf, NH_PAGE);
	nh_free(h, buf, NH_PAGE);
	return rc;
}

int nh_set_features(struct nvme_host *h, uint8_t fid, uint32_t cdw11, uint32_t *dw0)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_SET_FEATURES, .cdw10 = fid, .cdw11 = cdw11 };
	struct nh_cqe cqe;
	int rc = nh_admin(h, &sqe, &cqe);

	if (rc >= 0 && dw0)
		*dw0 = cqe.dw0;
	return rc;
}

int nh_get_features(struct nvme_host *h, uint8_t fid, uint32_t cdw11, uint32_t *dw0)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_GET_FEATURES, .cdw10 = fid, .cdw11 = cdw11 };
	struct nh_cqe cqe;
	int rc = nh_admin(h, &sqe, &cqe);

	if (rc >= 0 && dw0)
		*dw0 = cqe.dw0;
	return rc;
}

int nh_set_num_queues(struct nvme_host *h, uint16_t nsq, uint16_t ncq, uint32_t *dw0)
{
	if (!nsq || !ncq)
		return -EINVAL;
	return nh_set_features(h, NH_FEAT_NUM_QUEUES,
			       (uint32_t)(ncq - 1) << 16 | (uint32_t)(nsq - 1), dw0);
}

int nh_create_cq(struct nvme_host *h, uint16_t qid, uint32_t entries, int vector)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_CREATE_CQ };
	size_t bytes = (size_t)entries * sizeof(struct nh_cqe);
	struct cq *q;
	void *ring;
	int rc;

	if (!qid || qid > NH_MAX_QID || entries < 2 || entries > 0x10000)
		return -EINVAL;
	ring = nh_alloc(h, bytes);
	if (!ring)
		return -ENOMEM;
	sqe.prp1 = nh_iova(h, ring);
	sqe.cdw10 = (entries - 1) << 16 | qid;
	sqe.cdw11 = 1u | (vector >= 0 ? (uint32_t)vector << 16 | 2u : 0u);
	nh_shadow_reset(h, qid, true);
	rc = nh_admin(h, &sqe, NULL);
	if (rc) {
		if (rc != -ETIMEDOUT)
			nh_free(h, ring, bytes);
		return rc;
	}
	q = &h->cq[qid];
	if (q->live)
		nh_forget_cq(h, qid);
	q->live = true;
	q->entries = entries;
	q->ring = ring;
	q->ring_bytes = bytes;
	q->head = 0;
	q->phase = 1;
	q->vector = vector;
	return 0;
}

int nh_create_sq(struct nvme_host *h, uint16_t qid, uint16_t cqid, uint32_t entries)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_CREATE_SQ };
	size_t bytes = (size_t)entries * sizeof(struct nh_sqe);
	struct slot *slots;
	struct sq *q;
	void *ring;
	int rc;

	if (!qid || qid > NH_MAX_QID || entries < 2 || entries > 0x10000)
		return -EINVAL;
	ring = nh_alloc(h, bytes);
	slots = calloc(entries, sizeof(*slots));
	if (!ring || !slots) {
		nh_free(h, ring, bytes);
		free(slots);
		return -ENOMEM;
	}
	sqe.prp1 = nh_iova(h, ring);
	sqe.cdw10 = (entries - 1) << 16 | qid;
	sqe.cdw11 = (uint32_t)cqid << 16 | 1u;
	nh_shadow_reset(h, qid, false);
	rc = nh_admin(h, &sqe, NULL);
	if (rc) {
		if (rc != -ETIMEDOUT)
			nh_free(h, ring, bytes);
		free(slots);
		return rc;
	}
	q = &h->sq[qid];
	if (q->live)
		nh_forget_sq(h, qid);
	q->live = true;
	q->cqid = cqid;
	q->entries = entries;
	q->ring = ring;
	q->ring_bytes = bytes;
	q->tail = q->head = q->cid_hint = 0;
	q->slots = slots;
	return 0;
}

int nh_delete_sq(struct nvme_host *h, uint16_t qid)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_DELETE_SQ, .cdw10 = qid };
	int rc = nh_admin(h, &sqe, NULL);

	if (!rc && qid && qid <= NH_MAX_QID) {
		/* completions of its commands may still sit in the CQ */
		if (h->sq[qid].live && h->cq[h->sq[qid].cqid].live)
			nh_reap(h, h->sq[qid].cqid);
		nh_forget_sq(h, qid);
	}
	return rc;
}

int nh_delete_cq(struct nvme_host *h, uint16_t qid)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_DELETE_CQ, .cdw10 = qid };
	int rc = nh_admin(h, &sqe, NULL);

	if (!rc && qid && qid <= NH_MAX_QID)
		nh_forget_cq(h, qid);
	return rc;
}

int nh_create_io_pair(struct nvme_host *h, uint16_t qid, uint32_t entries, int vector)
{
	int rc = nh_create_cq(h, qid, entries, vector);

	if (rc)
		return rc;
	rc = nh_create_sq(h, qid, qid, entries);
	if (rc)
		nh_delete_cq(h, qid);
	return rc;
}

int nh_get_log(struct nvme_host *h, uint8_t lid, uint32_t nsid, bool rae, void *buf, size_t len)
{
	return nh_get_log_at(h, lid, nsid, rae, 0, 0, buf, len);
}

int nh_get_log_at(struct nvme_host *h, uint8_t lid, uint32_t nsid, bool rae, uint64_t off,
		  uint32_t cdw14, void *buf, size_t len)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_GET_LOG, .nsid = nsid, .cdw12 = (uint32_t)off,
			      .cdw13 = (uint32_t)(off >> 32), .cdw14 = cdw14 };
	uint32_t numd = (uint32_t)(len / 4) - 1;
	uint16_t cid;
	void *g;
	int rc;

	if (len < 4 || len % 4)
		return -EINVAL;
	g = nh_alloc(h, len);
	if (!g)
		return -ENOMEM;
	sqe.cdw10 = (numd & 0xffffu) << 16 | (rae ? 1u << 15 : 0u) | lid;
	sqe.cdw11 = numd >> 16;
	rc = nh_submit_data(h, 0, &sqe, g, len, NULL, &cid);
	if (!rc)
		rc = nh_wait(h, 0, cid, NULL, -1);
	if (rc == -ETIMEDOUT)
		return rc;
	if (!rc)
		memcpy(buf, g, len);
	nh_free(h, g, len);
	return rc;
}

int nh_aer_submit(struct nvme_host *h, uint16_t *cid)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_AER };

	return nh_submit(h, 0, &sqe, cid);
}
