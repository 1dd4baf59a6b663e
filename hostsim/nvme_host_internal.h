/* hostsim internals: the host's state (queues, slots, guest RAM, doorbells) shared by its files. */
#ifndef VFURT_HOSTSIM_NVME_HOST_INTERNAL_H
#define VFURT_HOSTSIM_NVME_HOST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hostsim/nvme_host.h"

#define MAX_VEC 65u
#define STRAY_MAX 64u

enum { SLOT_FREE = 0, SLOT_BUSY, SLOT_DONE };

struct slot {
	uint8_t state;
	struct nh_cqe cqe;
	void *aux; /* PRP lists / SGL segments of the command */
	size_t aux_len;
};

struct sq {
	_Alignas(64) bool live; /* own cache lines: threads may drive different queues */
	uint16_t cqid;
	uint32_t entries;
	struct nh_sqe *ring;
	size_t ring_bytes;
	uint32_t tail;
	uint32_t head; /* from the last CQE's SQHD */
	struct slot *slots;
	uint32_t cid_hint;
};

struct cq {
	_Alignas(64) bool live;
	uint32_t entries;
	struct nh_cqe *ring;
	size_t ring_bytes;
	uint32_t head;
	uint16_t phase;
	int vector;
};

/* Per queue id counters, summed by nh_get_stats. */
struct qstats {
	_Alignas(64) struct nh_stats st;
};

struct nvme_host {
	struct vfurt_client *c;
	struct nvme_host_opts o;
	int memfd;
	uint8_t *mem;
	uint8_t *pagemap; /* 1 = page in use */
	size_t npages;
	size_t alloc_floor; /* opts.no_reuse: first page never handed out yet */
	uint8_t *db_map;  /* mmap of the sparse area holding the doorbells */
	size_t db_map_len;
	uint8_t *db;      /* BAR0 + 0x1000 inside db_map, or NULL */
	size_t db_len;
	uint32_t stride;  /* doorbell stride in bytes */
	uint32_t mqes1;   /* CAP.MQES + 1 */
	int efd[MAX_VEC];
	uint32_t nvec;
	struct sq sq[NH_MAX_QID + 1];
	struct cq cq[NH_MAX_QID + 1];
	struct vfurt_client_io_fds iofds; /* doorbell_ioeventfd */
	int ioev_fd[2u * (NH_MAX_QID + 1)]; /* per doorbell index, -1 = none */
	uint32_t *shadow; /* Doorbell Buffer Config pages */
	uint32_t *eventidx;
	bool dbbuf;
	struct nh_cqe stray[STRAY_MAX];
	uint32_t stray_first;
	uint32_t stray_n;
	struct nh_stats st;   /* strays; the rest is counted in qst */
	struct qstats qst[NH_MAX_QID + 2];
};

/* Counters of queue id qid (beyond NH_MAX_QID: the last entry, for
 * nh_ring_raw), one cache line each so that threads driving different queue
 * pairs never write a shared line. */
static inline struct nh_stats *nh_qstats(struct nvme_host *h, uint32_t qid)
{
	return &h->qst[qid <= NH_MAX_QID ? qid : NH_MAX_QID + 1].st;
}

/* SQ sqid when it exists (created, or the admin SQ while enabled), else NULL. */
static inline struct sq *nh_live_sq(struct nvme_host *h, uint16_t sqid)
{
	if (sqid > NH_MAX_QID || !h->sq[sqid].live)
		return NULL;
	return &h->sq[sqid];
}

/* ---- across the files -------------------------------------------------- */

/* Ring qid's SQ tail (cq: CQ head) doorbell with value, or only update the
 * shadow doorbell when the controller's EventIdx says it needs no MMIO
 * (doorbell.c). 0 or a negative errno. */
int nh_doorbell(struct nvme_host *h, uint16_t qid, bool cq, uint32_t value);
/* Map the sparse mmap area of BAR0 that holds the doorbells, if any. */
int nh_map_doorbells(struct nvme_host *h);
/* Play KVM_IOEVENTFD for the controller's doorbell ioeventfds. */
int nh_wire_ioeventfds(struct nvme_host *h);
/* Zero the shadow doorbell of qid's SQ (cq: CQ) before it is created. */
void nh_shadow_reset(struct nvme_host *h, uint16_t qid, bool cq);
/* Forget SQ / CQ qid: free its ring and slots, its state zeroed (queue.c). */
void nh_forget_sq(struct nvme_host *h, uint16_t qid);
void nh_forget_cq(struct nvme_host *h, uint16_t qid);
/* Build the data pointer of *sqe for [buf, buf + len) and submit it on sqid; the
 * lists / segments are freed when the completion is taken (io.c). */
int nh_submit_data(struct nvme_host *h, uint16_t sqid, struct nh_sqe *sqe, void *buf,
		   size_t len, const struct nh_dptr_opts *dp, uint16_t *cid);

#endif /* VFURT_HOSTSIM_NVME_HOST_INTERNAL_H */
