/* hostsim doorbells and registers: BAR0 accesses, doorbells mmapped, by message or as ioeventfds, shadow doorbells. */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vfurt/device.h>

#include "hostsim/nvme_host_internal.h"

/* ---- registers --------------------------------------------------------------- */

int nh_reg_read32(struct nvme_host *h, uint32_t off, uint32_t *v)
{
	return vfurt_client_region_read(h->c, VFURT_REGION_BAR0, off, v, sizeof(*v));
}

int nh_reg_read64(struct nvme_host *h, uint32_t off, uint64_t *v)
{
	return vfurt_client_region_read(h->c, VFURT_REGION_BAR0, off, v, sizeof(*v));
}

int nh_reg_write32(struct nvme_host *h, uint32_t off, uint32_t v)
{
	return vfurt_client_region_write(h->c, VFURT_REGION_BAR0, off, &v, sizeof(v));
}

int nh_reg_write64(struct nvme_host *h, uint32_t off, uint64_t v)
{
	return vfurt_client_region_write(h->c, VFURT_REGION_BAR0, off, &v, sizeof(v));
}

/* ---- doorbells --------------------------------------------------------------- */

/* doorbell index: 2 * qid for an SQ tail, 2 * qid + 1 for a CQ head */
static int db_write(struct nvme_host *h, uint32_t idx, uint32_t v)
{
	size_t off = (size_t)idx * h->stride;

	nh_qstats(h, idx / 2)->mmio_doorbells++;
	if (idx < 2u * (NH_MAX_QID + 1) && h->ioev_fd[idx] >= 0) {
		const uint64_t one = 1;

		/* KVM: the write's value is dropped, the eventfd counts up */
		nh_qstats(h, idx / 2)->ioeventfd_doorbells++;
		return write(h->ioev_fd[idx], &one, sizeof(one)) < 0 ? -errno : 0;
	}
	if (h->db && off + 4 <= h->db_len) {
		/* the SQE / consumed CQE writes before are what this publishes;
		 * the controller's acquire-load of the doorbell pairs with it. A
		 * release store is a plain mov on x86, like the guest's writel(). */
		__atomic_store_n((uint32_t *)(void *)(h->db + off), v, __ATOMIC_RELEASE);
		return 0;
	}
	return nh_reg_write32(h, (uint32_t)(NH_REG_DBS + off), v);
}

static bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

int nh_doorbell(struct nvme_host *h, uint16_t qid, bool cq, uint32_t value)
{
	uint32_t idx = 2u * qid + (cq ? 1u : 0u);

	if (h->dbbuf && qid && (idx + 1) * h->stride <= NH_PAGE) {
		uint32_t *sh = &h->shadow[idx * (h->stride / 4)];
		uint32_t *ei = &h->eventidx[idx * (h->stride / 4)];
		uint32_t old = __atomic_load_n(sh, __ATOMIC_RELAXED);

		__atomic_store_n(sh, value, __ATOMIC_RELAXED);
		/* shadow store before the EventIdx load (the controller
		 * stores EventIdx then re-reads the shadow value) */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (!need_event((uint16_t)__atomic_load_n(ei, __ATOMIC_ACQUIRE), (uint16_t)value,
				(uint16_t)old)) {
			nh_qstats(h, qid)->shadow_skipped++;
			return 0;
		}
	}
	return db_write(h, idx, value);
}

int nh_ring_raw(struct nvme_host *h, uint16_t qid, bool cq, uint32_t value)
{
	return db_write(h, 2u * qid + (cq ? 1u : 0u), value);
}

int nh_map_doorbells(struct nvme_host *h)
{
	struct vfurt_client_region_info ri;
	int rc = vfurt_client_region_info(h->c, VFURT_REGION_BAR0, &ri);

	if (rc)
		return rc;
	for (uint32_t i = 0; i < ri.nr_sparse; i++) {
		struct vfio_region_sparse_mmap_area *a = &ri.sparse[i];
		void *addr;
		size_t len;

		if (a->offset > NH_REG_DBS || a->offset + a->size <= NH_REG_DBS)
			continue;
		rc = vfurt_client_region_info_mmap(&ri, (int)i, PROT_READ | PROT_WRITE, &addr,
						   &len);
		if (rc)
			break;
		h->db_map = addr;
		h->db_map_len = len;
		h->db = h->db_map + (NH_REG_DBS - a->offset);
		h->db_len = a->offset + a->size - NH_REG_DBS;
		break;
	}
	vfurt_client_region_info_release(&ri);
	return rc;
}

/* KVM_IOEVENTFD for every 4-byte doorbell sub-region the controller offers
 * (no datamatch: the value is lost, the guest must use shadow doorbells). */
int nh_wire_ioeventfds(struct nvme_host *h)
{
	int rc = vfurt_client_region_io_fds(h->c, 0 /* BAR0 */, &h->iofds);

	if (rc)
		return rc;
	for (uint32_t i = 0; i < h->iofds.count; i++) {
		const struct vfio_user_sub_region_io_fd *s = &h->iofds.subs[i];
		uint64_t idx;

		if (s->type != VFIO_USER_IO_FD_TYPE_IOEVENTFD ||
		    (s->flags & VFIO_USER_IOEVENTFD_FLAG_DATAMATCH) || s->offset < NH_REG_DBS ||
		    (s->offset - NH_REG_DBS) % h->stride || s->fd_index >= h->iofds.nfds)
			continue;
		idx = (s->offset - NH_REG_DBS) / h->stride;
		if (idx < 2u * (NH_MAX_QID + 1))
			h->ioev_fd[idx] = h->iofds.fds[s->fd_index];
	}
	return 0;
}

/* ---- shadow doorbells (Doorbell Buffer Config) ------------------------------- */

void nh_shadow_reset(struct nvme_host *h, uint16_t qid, bool cq)
{
	if (h->dbbuf)
		h->shadow[(2u * qid + (cq ? 1u : 0u)) * (h->stride / 4)] = 0;
}

int nh_dbbuf_enable(struct nvme_host *h)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_DBBUF };
	uint32_t *sh = nh_alloc(h, NH_PAGE);
	uint32_t *ei = nh_alloc(h, NH_PAGE);
	int rc;

	if (!sh || !ei) {
		nh_free(h, sh, NH_PAGE);
		nh_free(h, ei, NH_PAGE);
		return -ENOMEM;
	}
	/* shadow values start as what the doorbells hold now */
	for (uint16_t q = 1; q <= NH_MAX_QID && (2u * q + 2) * h->stride <= NH_PAGE; q++) {
		if (h->sq[q].live)
			sh[2u * q * (h->stride / 4)] = h->sq[q].tail;
		if (h->cq[q].live)
			sh[(2u * q + 1) * (h->stride / 4)] = h->cq[q].head;
	}
	sqe.prp1 = nh_iova(h, sh);
	sqe.prp2 = nh_iova(h, ei);
	rc = nh_admin(h, &sqe, NULL);
	if (rc) {
		if (rc != -ETIMEDOUT) {
			nh_free(h, sh, NH_PAGE);
			nh_free(h, ei, NH_PAGE);
		}
		return rc;
	}
	if (h->dbbuf) {
		nh_free(h, h->shadow, NH_PAGE);
		nh_free(h, h->eventidx, NH_PAGE);
	}
	h->shadow = sh;
	h->eventidx = ei;
	h->dbbuf = true;
	return 0;
}

uint32_t nh_dbbuf_eventidx(const struct nvme_host *h, uint16_t qid, bool cq)
{
	if (!h->dbbuf)
		return 0;
	return __atomic_load_n(&h->eventidx[(2u * qid + (cq ? 1u : 0u)) * (h->stride / 4)],
			       __ATOMIC_ACQUIRE);
}
