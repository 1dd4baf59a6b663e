/* hostsim: a guest's NVMe driver simulated over vfio-user with the client library (for tests and vfu-bench). */
#ifndef VFURT_HOSTSIM_NVME_HOST_H
#define VFURT_HOSTSIM_NVME_HOST_H

/*
 * A struct nvme_host is one vfio-user connection to an NVMe controller plus
 * the state a guest driver keeps: "guest RAM" (a memfd mapped for DMA at
 * opts.iova), a page allocator inside it, MSI-X vectors wired to eventfds,
 * the doorbells (mmap'ed sparse area of BAR0, or REGION_WRITEs), the admin
 * and I/O queues, and per-command slots that collect completions.
 *
 * Conventions: functions that run a command return the NVMe status
 * (NH_SC(sct, sc): bits 10:8 SCT, 7:0 SC; 0 = success) or a negative errno
 * for the transport and the host itself (-ETIMEDOUT when no completion came
 * within the timeout, -EAGAIN when the SQ is full, -EINVAL for a bad
 * argument, -ENOMEM when guest RAM is exhausted). Nothing waits forever:
 * every wait is bounded by opts.timeout_ms.
 *
 * Threading: one thread at a time per host (like the client underneath),
 * with one exception for load generators: once the queues are set up,
 * different threads may drive different I/O queue pairs (each CQ serving
 * only SQs of its thread) concurrently with nh_submit, nh_queue_cmd,
 * nh_ring_sq_tail, nh_reap, nh_outstanding, nh_vector_fd and nh_wait of a
 * completed command (timeout 0), provided the SQEs carry their own data
 * pointers (nh_io_submit may allocate PRP lists, and nh_alloc/nh_free are
 * not thread-safe) and doorbells do not go by message: a doorbell that is
 * not mmapped (or an ioeventfd) is a REGION_WRITE on the shared client,
 * which the caller must serialise. Each queue's state and counters sit on
 * their own cache lines; nh_get_stats sums the counters (exact once the
 * threads are stopped).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/client.h>

#define NH_PAGE 4096u
#define NH_MAX_QID 64u /* highest queue id the host keeps state for */
#define NH_DEFAULT_TIMEOUT_MS 5000 /* every wait, unless opts.timeout_ms */

/* ---- wire layouts (NVMe base specification) ------------------------------ */

struct nh_sqe {
	uint32_t cdw0; /* 7:0 opcode, 9:8 fuse, 15:14 PSDT, 31:16 CID */
	uint32_t nsid;
	uint32_t cdw2;
	uint32_t cdw3;
	uint64_t mptr;
	uint64_t prp1; /* DPTR: PRP1 / SGL1 address */
	uint64_t prp2; /* DPTR: PRP2 / SGL1 length (31:0), type (63:56) */
	uint32_t cdw10;
	uint32_t cdw11;
	uint32_t cdw12;
	uint32_t cdw13;
	uint32_t cdw14;
	uint32_t cdw15;
};
_Static_assert(sizeof(struct nh_sqe) == 64, "SQE is 64 bytes");

struct nh_cqe {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status; /* 0 phase, 8:1 SC, 11:9 SCT, 13:12 CRD, 14 M, 15 DNR */
};
_Static_assert(sizeof(struct nh_cqe) == 16, "CQE is 16 bytes");

struct nh_sgl_desc {
	uint64_t addr;
	uint32_t len;
	uint8_t rsvd[3];
	uint8_t type; /* 7:4 descriptor type, 3:0 subtype */
};
_Static_assert(sizeof(struct nh_sgl_desc) == 16, "SGL descriptor is 16 bytes");

struct nh_dsm_range {
	uint32_t cattr;
	uint32_t nlb;
	uint64_t slba;
};
_Static_assert(sizeof(struct nh_dsm_range) == 16, "DSM range is 16 bytes");

/* controller registers (BAR0) */
#define NH_REG_CAP 0x00u
#define NH_REG_VS 0x08u
#define NH_REG_INTMS 0x0cu
#define NH_REG_INTMC 0x10u
#define NH_REG_CC 0x14u
#define NH_REG_CSTS 0x1cu
#define NH_REG_AQA 0x24u
#define NH_REG_ASQ 0x28u
#define NH_REG_ACQ 0x30u
#define NH_REG_DBS 0x1000u

#define NH_CC_EN (1u << 0)
#define NH_CC_SHN_NORMAL (1u << 14)
#define NH_CC_IOSQES(n) ((uint32_t)(n) << 16)
#define NH_CC_IOCQES(n) ((uint32_t)(n) << 20)
#define NH_CSTS_RDY (1u << 0)
#define NH_CSTS_CFS (1u << 1)
#define NH_CSTS_SHST_MASK (3u << 2)
#define NH_CSTS_SHST_CMPLT (2u << 2)

/* admin opcodes */
#define NH_ADM_DELETE_SQ 0x00u
#define NH_ADM_CREATE_SQ 0x01u
#define NH_ADM_GET_LOG 0x02u
#define NH_ADM_DELETE_CQ 0x04u
#define NH_ADM_CREATE_CQ 0x05u
#define NH_ADM_IDENTIFY 0x06u
#define NH_ADM_ABORT 0x08u
#define NH_ADM_SET_FEATURES 0x09u
#define NH_ADM_GET_FEATURES 0x0au
#define NH_ADM_AER 0x0cu
#define NH_ADM_DBBUF 0x7cu

/* NVM opcodes */
#define NH_CMD_FLUSH 0x00u
#define NH_CMD_WRITE 0x01u
#define NH_CMD_READ 0x02u
#define NH_CMD_WRITE_ZEROES 0x08u
#define NH_CMD_DSM 0x09u

#define NH_FEAT_NUM_QUEUES 0x07u
#define NH_CNS_NS 0x00u
#define NH_CNS_CTRL 0x01u
#define NH_CNS_NS_ACTIVE_LIST 0x02u

/* SGL descriptor types (type byte 7:4) */
#define NH_SGL_DATA_BLOCK 0x0u
#define NH_SGL_BIT_BUCKET 0x1u
#define NH_SGL_SEGMENT 0x2u
#define NH_SGL_LAST_SEGMENT 0x3u
#define NH_PSDT_SGL (1u << 14) /* SGL, MPTR is an address */

/* status: SCT << 8 | SC */
#define NH_SC(sct, sc) ((int)(((sct) << 8) | (sc)))
#define NH_SC_SUCCESS NH_SC(0, 0x00)
#define NH_SC_INVALID_OPCODE NH_SC(0, 0x01)
#define NH_SC_INVALID_FIELD NH_SC(0, 0x02)
#define NH_SC_CID_CONFLICT NH_SC(0, 0x03)
#define NH_SC_DATA_XFER_ERROR NH_SC(0, 0x04)
#define NH_SC_ABORT_SQ_DELETED NH_SC(0, 0x08)
#define NH_SC_INVALID_NS NH_SC(0, 0x0b)
#define NH_SC_CMD_SEQ_ERROR NH_SC(0, 0x0c)
#define NH_SC_SGL_INVALID_SEG NH_SC(0, 0x0d)
#define NH_SC_SGL_INVALID_COUNT NH_SC(0, 0x0e)
#define NH_SC_SGL_INVALID_DATA NH_SC(0, 0x0f)
#define NH_SC_SGL_INVALID_TYPE NH_SC(0, 0x11)
#define NH_SC_PRP_INVALID_OFFSET NH_SC(0, 0x13)
#define NH_SC_LBA_RANGE NH_SC(0, 0x80)
#define NH_SC_CQ_INVALID NH_SC(1, 0x00)
#define NH_SC_QID_INVALID NH_SC(1, 0x01)
#define NH_SC_QUEUE_SIZE NH_SC(1, 0x02)
#define NH_SC_INVALID_VECTOR NH_SC(1, 0x08)
#define NH_SC_INVALID_LOG_PAGE NH_SC(1, 0x09)
#define NH_SC_INVALID_QUEUE_DELETION NH_SC(1, 0x0c)

/* The status of a CQE as NH_SC(sct, sc) (phase, CRD, M, DNR stripped). */
static inline int nh_cqe_status(const struct nh_cqe *cqe)
{
	return (cqe->status >> 1) & 0x7ff;
}

/* ---- the host ------------------------------------------------------------ */

struct nvme_host_opts {
	size_t mem_size;         /* guest RAM; 0 = 64 MiB */
	uint64_t iova;           /* where it is mapped; 0 = 4 GiB */
	uint32_t admin_entries;  /* admin SQ/CQ size; 0 = 32 */
	uint32_t nvec;           /* MSI-X vectors wired to eventfds; 0 = all (max 65) */
	int timeout_ms;          /* every wait; 0 = NH_DEFAULT_TIMEOUT_MS */
	bool doorbell_msg;       /* ring doorbells with REGION_WRITE, not the mmap */
	bool dma_by_msg;         /* do not pass the memfd: server DMA by messages */
	bool irq_wait;           /* completion waits sleep on the CQ's eventfd */
	/* Play KVM with the controller's ioeventfds (GET_REGION_IO_FDS on
	 * BAR0): a doorbell write that an ioeventfd covers signals it and the
	 * value is dropped, as KVM_IOEVENTFD without datamatch does; others go
	 * by REGION_WRITE (or the mmap when the page is mappable). */
	bool doorbell_ioeventfd;
	/* Never hand out a page again once freed (nh_alloc goes on past every
	 * page it gave before). For TSan runs where different server threads
	 * touch the same guest page in turn (an I/O queue's worker, then the
	 * admin queue's): the host orders them through its own mapping of the
	 * memory, which TSan cannot connect to the server's. */
	bool no_reuse;
};

/* How an I/O command's data pointer is built. NULL = PRP, full list pages. */
struct nh_dptr_opts {
	bool sgl;                /* SGL (PSDT 01) instead of PRP */
	/* PRP: entries per PRP list page, 2..512 (0 = 512). A list with fewer
	 * slots is placed at the end of its page, so chaining (the last slot
	 * points to the next list) starts after slots - 1 entries. */
	uint32_t prp_list_slots;
	/* SGL: bytes per data block descriptor (0 = the whole buffer in one;
	 * multiple of 4); data blocks per segment (0 = 255). One data block
	 * goes into SGL1 itself unless force_segment. */
	uint32_t sgl_block;
	uint32_t sgl_per_seg;
	bool sgl_force_segment;
};

/* Counters, for tests. */
struct nh_stats {
	uint64_t mmio_doorbells;   /* doorbell writes (mmap or REGION_WRITE) */
	uint64_t shadow_skipped;   /* doorbell writes saved by shadow doorbells */
	uint64_t ioeventfd_doorbells; /* of mmio_doorbells: signalled ioeventfds */
	uint64_t completions;      /* CQEs reaped */
	uint64_t strays;           /* CQEs matching no outstanding command */
	uint64_t irq_wakeups;      /* waits that were woken by an interrupt */
};

struct nvme_host;

/*
 * Connect to the controller at `path` (opts may be NULL), map guest RAM for
 * DMA, enable bus mastering and MSI-X with eventfds, map the doorbells.
 * Does not enable the controller (nh_enable). Returns NULL with errno.
 */
struct nvme_host *nh_open(const char *path, const struct nvme_host_opts *opts);

/* Enable memory space + bus mastering and MSI-X (eventfds, vectors
 * unmasked) again, e.g. after DEVICE_RESET reset the config space. */
int nh_pci_reinit(struct nvme_host *h);

/* Close the connection and free everything. NULL is ignored. */
void nh_close(struct nvme_host *h);

struct vfurt_client *nh_client(struct nvme_host *h);
void nh_get_stats(const struct nvme_host *h, struct nh_stats *out);
/* CAP.DSTRD, CAP.MQES + 1, MSI-X vectors wired, whether doorbells are mmap'ed. */
uint32_t nh_db_stride(const struct nvme_host *h);
uint32_t nh_max_entries(const struct nvme_host *h);
uint32_t nh_nvec(const struct nvme_host *h);
bool nh_doorbells_mapped(const struct nvme_host *h);
/* Eventfd of MSI-X vector v (-1 when not wired). Owned by the host. */
int nh_vector_fd(const struct nvme_host *h, uint32_t v);

/* ---- guest memory -------------------------------------------------------- */

/* Zeroed, page-aligned, contiguous guest memory of `bytes` (rounded up to
 * pages), or NULL. */
void *nh_alloc(struct nvme_host *h, size_t bytes);
void nh_free(struct nvme_host *h, void *p, size_t bytes);
uint64_t nh_iova(const struct nvme_host *h, const void *p);
void *nh_ptr(const struct nvme_host *h, uint64_t iova);
/* IOVA range of guest RAM: [nh_mem_iova, + nh_mem_size). */
uint64_t nh_mem_iova(const struct nvme_host *h);
size_t nh_mem_size(const struct nvme_host *h);

/* ---- registers and controller state -------------------------------------- */

int nh_reg_read32(struct nvme_host *h, uint32_t off, uint32_t *v);
int nh_reg_read64(struct nvme_host *h, uint32_t off, uint64_t *v);
int nh_reg_write32(struct nvme_host *h, uint32_t off, uint32_t v);
int nh_reg_write64(struct nvme_host *h, uint32_t off, uint64_t v);

/*
 * Enable sequence: CC.EN = 0 and wait CSTS.RDY = 0, program AQA/ASQ/ACQ,
 * CC = IOSQES 6, IOCQES 4, MPS 4 KiB, NVM command set, EN = 1, wait RDY
 * (bounded by CAP.TO and opts.timeout_ms). Forgets every I/O queue and
 * outstanding command. Returns 0, -EIO (CSTS.CFS), -ETIMEDOUT or a client
 * errno.
 */
int nh_enable(struct nvme_host *h);
/* CC.EN = 0 and wait RDY = 0 (controller reset); forgets all queues. */
int nh_disable(struct nvme_host *h);
/* CC.SHN = normal, wait CSTS.SHST = complete. */
int nh_shutdown(struct nvme_host *h);

/* ---- commands ------------------------------------------------------------ */

/*
 * Put *sqe (its CID replaced by a free one, returned in *cid) at the tail of
 * SQ sqid and ring the doorbell. Returns 0, -EAGAIN (SQ full or no free
 * CID), -ENOENT (no such SQ) or a client errno.
 */
int nh_submit(struct nvme_host *h, uint16_t sqid, const struct nh_sqe *sqe, uint16_t *cid);
/* The same with the SQE exactly as given (any CID; it is tracked when it
 * names a free slot, cid < the SQ's size). */
int nh_submit_raw(struct nvme_host *h, uint16_t sqid, const struct nh_sqe *sqe);
/* Copy *sqe to the SQ at the tail and advance the host's tail without
 * ringing (batching); nh_ring_sq_tail(h, sqid) rings. cid as nh_submit. */
int nh_queue_cmd(struct nvme_host *h, uint16_t sqid, const struct nh_sqe *sqe, uint16_t *cid);
int nh_ring_sq_tail(struct nvme_host *h, uint16_t sqid);

/* Write a raw value to the SQ tail / CQ head doorbell of qid (negative
 * tests); the host's own view is unchanged. */
int nh_ring_raw(struct nvme_host *h, uint16_t qid, bool cq, uint32_t value);

/*
 * Wait up to timeout_ms (< 0: opts.timeout_ms) for the completion of
 * (sqid, cid); *out (may be NULL) gets the CQE. Completions of other
 * commands found meanwhile are kept for their own waits. Returns the status,
 * -ETIMEDOUT, -ENOENT (no such SQ, or cid not outstanding).
 */
int nh_wait(struct nvme_host *h, uint16_t sqid, uint16_t cid, struct nh_cqe *out,
	    int timeout_ms);
/* Reap new CQEs of CQ cqid now; returns how many, or a negative errno. */
int nh_reap(struct nvme_host *h, uint16_t cqid);
/* Is (sqid, cid) still outstanding (not completed yet)? */
bool nh_outstanding(const struct nvme_host *h, uint16_t sqid, uint16_t cid);
/* Take one completion that matched no outstanding command. */
bool nh_take_stray(struct nvme_host *h, struct nh_cqe *out);
/* Wait for MSI-X vector v's eventfd; returns its count (> 0), 0 on timeout,
 * or a negative errno. */
int nh_wait_irq(struct nvme_host *h, uint32_t v, int timeout_ms);

/* Submit on the admin queue and wait. Returns the status or -errno. */
int nh_admin(struct nvme_host *h, const struct nh_sqe *sqe, struct nh_cqe *out);
/* Submit on sqid and wait. */
int nh_exec(struct nvme_host *h, uint16_t sqid, const struct nh_sqe *sqe, struct nh_cqe *out);

/* ---- admin helpers ------------------------------------------------------- */

/* Identify with `cns` for nsid (cntid 0) into out (4096 bytes). */
int nh_identify(struct nvme_host *h, uint8_t cns, uint32_t nsid, void *out);
/* Set Features Number of Queues (1-based counts); *dw0 (may be NULL) gets
 * the allocated counts as returned (0-based, NCQA 31:16, NSQA 15:0). */
int nh_set_num_queues(struct nvme_host *h, uint16_t nsq, uint16_t ncq, uint32_t *dw0);
int nh_get_features(struct nvme_host *h, uint8_t fid, uint32_t cdw11, uint32_t *dw0);
int nh_set_features(struct nvme_host *h, uint8_t fid, uint32_t cdw11, uint32_t *dw0);
/* Create I/O CQ qid with `entries` (memory from guest RAM, PC = 1);
 * vector < 0: interrupts off, else IEN with that MSI-X vector. */
int nh_create_cq(struct nvme_host *h, uint16_t qid, uint32_t entries, int vector);
/* Create I/O SQ qid bound to CQ cqid. */
int nh_create_sq(struct nvme_host *h, uint16_t qid, uint16_t cqid, uint32_t entries);
int nh_delete_sq(struct nvme_host *h, uint16_t qid);
int nh_delete_cq(struct nvme_host *h, uint16_t qid);
/* CQ qid (vector as nh_create_cq) + SQ qid on it. */
int nh_create_io_pair(struct nvme_host *h, uint16_t qid, uint32_t entries, int vector);
/* Get Log Page lid (rae: retain async event) into buf (len, multiple of 4). */
int nh_get_log(struct nvme_host *h, uint8_t lid, uint32_t nsid, bool rae, void *buf,
	       size_t len);
/* The same from byte offset off (LPOU:LPOL, any value: negative tests),
 * with CDW14 as given (CSI 31:24, OT 23, UUID index 6:0). */
int nh_get_log_at(struct nvme_host *h, uint8_t lid, uint32_t nsid, bool rae, uint64_t off,
		  uint32_t cdw14, void *buf, size_t len);
/* Doorbell Buffer Config: allocate the shadow doorbell and EventIdx pages
 * and turn shadow doorbells on for I/O queues. */
int nh_dbbuf_enable(struct nvme_host *h);
/* The controller's EventIdx for qid's SQ tail (cq: CQ head), or 0. */
uint32_t nh_dbbuf_eventidx(const struct nvme_host *h, uint16_t qid, bool cq);
/* Async Event Request: submit only; wait with nh_wait(h, 0, *cid, ...). */
int nh_aer_submit(struct nvme_host *h, uint16_t *cid);

/* ---- I/O ----------------------------------------------------------------- */

struct nh_io {
	uint8_t opc;
	uint32_t nsid;
	uint64_t slba;
	uint32_t nlb;      /* blocks, 1-based (Write Zeroes / R / W) */
	void *buf;         /* guest memory (nh_alloc), may be NULL */
	size_t len;        /* bytes at buf */
	uint32_t cdw12;    /* extra bits ORed into CDW12 (FUA, DEAC...) */
	uint32_t cdw10;    /* DSM: used as is instead of the LBA fields */
	uint32_t cdw11;
	const struct nh_dptr_opts *dp; /* NULL = PRP */
};

/* Build the command (data pointer with PRP lists / SGL segments in guest
 * memory freed at completion) and submit it on sqid. */
int nh_io_submit(struct nvme_host *h, uint16_t sqid, const struct nh_io *io, uint16_t *cid);
/* Submit and wait. */
int nh_io(struct nvme_host *h, uint16_t sqid, const struct nh_io *io, struct nh_cqe *out);

int nh_read(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba, uint32_t nlb,
	    void *buf, size_t len, const struct nh_dptr_opts *dp);
int nh_write(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba, uint32_t nlb,
	     void *buf, size_t len, const struct nh_dptr_opts *dp);
/* Write one block of nh_fill(seed) data at slba of nsid (block size bs), read
 * it back and compare: 0, the failing command's status or -errno (in *wst or
 * *rst, each may be NULL), or -EBADMSG when the data differ. */
int nh_write_read_check(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba,
			uint32_t bs, uint32_t seed, int *wst, int *rst);
int nh_flush(struct nvme_host *h, uint16_t sqid, uint32_t nsid);
int nh_write_zeroes(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba,
		    uint32_t nlb, bool deac);
/* DSM with the Deallocate attribute over n ranges (1..256). */
int nh_deallocate(struct nvme_host *h, uint16_t sqid, uint32_t nsid,
		  const struct nh_dsm_range *ranges, uint32_t n);

/* Build a data pointer for [buf, buf+len) into sqe (PSDT, PRP1/2 or SGL1);
 * extra pages (lists, segments) are returned in *aux / *aux_len (free them
 * with nh_free after the command completed; NULL when none). */
int nh_build_dptr(struct nvme_host *h, struct nh_sqe *sqe, void *buf, size_t len,
		  const struct nh_dptr_opts *dp, void **aux, size_t *aux_len);

/* ---- PCI and data helpers ------------------------------------------------ */

/* Config space offset of PCI capability `id` on c's device (a bounded walk of
 * the capability list), -ENOENT when absent, or a client errno. */
int nh_pci_find_cap(struct vfurt_client *c, uint8_t id);

/* Fill buf with the data pattern of seed / check that it holds it. */
void nh_fill(void *buf, size_t len, uint32_t seed);
bool nh_check(const void *buf, size_t len, uint32_t seed);

#endif /* VFURT_HOSTSIM_NVME_HOST_H */
