/* NVMe controller model internals: wire structs, register bits, controller and queue state. */
#ifndef VFURT_NVME_INTERNAL_H
#define VFURT_NVME_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include <vfurt/bdev.h>
#include <vfurt/device.h>
#include <vfurt/nvme.h>
#include <vfurt/pci.h>

/*
 * Threads. Everything below is owned by the device's home thread (register
 * accesses, ops, the controller poller that serves the admin queue), except
 * a completion queue's I/O state (struct nvme_cq with its SQs, requests and
 * bdev channels), which belongs to that CQ's queue poller while it is
 * registered. The home thread changes a CQ only after removing its poller
 * (vfurt_dev_queue_remove returns once the poller cannot run) and adds it
 * back afterwards: structural changes are rare, the hot path takes no lock.
 * Pollers report to the home thread only through atomics (async events,
 * fatal status).
 */

/* ---- wire structs ---------------------------------------------------- */

struct nvme_sqe {
	uint8_t opc;
	uint8_t flags; /* FUSE 1:0, PSDT 7:6 */
	uint16_t cid;
	uint32_t nsid;
	uint32_t cdw2;
	uint32_t cdw3;
	uint64_t mptr;
	uint64_t dptr[2]; /* PRP1/PRP2, or one SGL descriptor */
	uint32_t cdw10;
	uint32_t cdw11;
	uint32_t cdw12;
	uint32_t cdw13;
	uint32_t cdw14;
	uint32_t cdw15;
};
_Static_assert(sizeof(struct nvme_sqe) == 64, "SQE is 64 bytes");
_Static_assert(offsetof(struct nvme_sqe, dptr) == 24, "DPTR at 24");
_Static_assert(offsetof(struct nvme_sqe, cdw10) == 40, "CDW10 at 40");

struct nvme_cqe {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status; /* P bit 0, SC 8:1, SCT 11:9, M 14, DNR 15 */
};
_Static_assert(sizeof(struct nvme_cqe) == 16, "CQE is 16 bytes");

/* SGL descriptor (16 bytes): type in the top nibble of byte 15. */
struct nvme_sgl_desc {
	uint64_t addr;
	uint32_t len;
	uint8_t rsvd[3];
	uint8_t type;
};
_Static_assert(sizeof(struct nvme_sgl_desc) == 16, "SGL descriptor is 16 bytes");

#define SGL_TYPE_DATA_BLOCK 0x0u
#define SGL_TYPE_BIT_BUCKET 0x1u
#define SGL_TYPE_SEGMENT 0x2u
#define SGL_TYPE_LAST_SEGMENT 0x3u

/* Dataset Management range. */
struct nvme_dsm_range {
	uint32_t cattr;
	uint32_t nlb;
	uint64_t slba;
};
_Static_assert(sizeof(struct nvme_dsm_range) == 16, "DSM range is 16 bytes");

/* ---- registers ------------------------------------------------------- */

enum {
	REG_CAP = 0x00,
	REG_VS = 0x08,
	REG_INTMS = 0x0c,
	REG_INTMC = 0x10,
	REG_CC = 0x14,
	REG_CSTS = 0x1c,
	REG_NSSR = 0x20,
	REG_AQA = 0x24,
	REG_ASQ = 0x28,
	REG_ACQ = 0x30,
	REG_END = 0x38, /* CMBLOC and beyond read as zero */
};

#define NVME_BAR0_SIZE 0x2000u
#define NVME_DB_OFF 0x1000u
#define NVME_DB_SIZE 0x1000u
#define NVME_BAR4_SIZE 0x1000u
#define NVME_MSIX_PBA_OFF 0x800u

#define NVME_VS_1_4 0x00010400u
#define NVME_CAP_TO 20u /* 10 s in 500 ms units */

#define CC_EN (1u << 0)
#define CC_CSS(cc) (((cc) >> 4) & 0x7u)
#define CC_MPS(cc) (((cc) >> 7) & 0xfu)
#define CC_AMS(cc) (((cc) >> 11) & 0x7u)
#define CC_SHN(cc) (((cc) >> 14) & 0x3u)
#define CC_IOSQES(cc) (((cc) >> 16) & 0xfu)
#define CC_IOCQES(cc) (((cc) >> 20) & 0xfu)
#define CC_WRITABLE 0x00fffff1u

#define CSTS_RDY (1u << 0)
#define CSTS_CFS (1u << 1)
#define CSTS_SHST_MASK (3u << 2)
#define CSTS_SHST_BUSY (1u << 2)
#define CSTS_SHST_DONE (2u << 2)

/* ---- status codes (SCT << 8 | SC) ------------------------------------ */

#define SCT_GENERIC 0x000u
#define SCT_CMD 0x100u
#define SCT_MEDIA 0x200u

enum {
	SC_SUCCESS = 0x00,
	SC_INVALID_OPCODE = 0x01,
	SC_INVALID_FIELD = 0x02,
	SC_DATA_XFER_ERROR = 0x04,
	SC_INTERNAL = 0x06,
	SC_ABORT_REQ = 0x07,
	SC_ABORT_SQ_DEL = 0x08,
	SC_INVALID_NS = 0x0b,
	SC_CMD_SEQ_ERROR = 0x0c,
	SC_SGL_SEG_INVALID = 0x0d,
	SC_SGL_NUM_INVALID = 0x0e,
	SC_SGL_DATA_LEN_INVALID = 0x0f,
	SC_SGL_TYPE_INVALID = 0x11,
	SC_PRP_OFFSET_INVALID = 0x13,
	SC_LBA_RANGE = 0x80,
	SC_NS_NOT_READY = 0x82,
	/* command specific (SCT 1) */
	SC_CQ_INVALID = SCT_CMD | 0x00,
	SC_QID_INVALID = SCT_CMD | 0x01,
	SC_QSIZE_INVALID = SCT_CMD | 0x02,
	SC_AER_LIMIT = SCT_CMD | 0x05,
	SC_IV_INVALID = SCT_CMD | 0x08,
	SC_LOG_INVALID = SCT_CMD | 0x09,
	SC_QDEL_INVALID = SCT_CMD | 0x0c,
	SC_FEAT_NOT_SAVEABLE = SCT_CMD | 0x0d,
	/* media errors (SCT 2) */
	SC_WRITE_FAULT = SCT_MEDIA | 0x80,
	SC_READ_ERROR = SCT_MEDIA | 0x81,
};

/* ---- limits ---------------------------------------------------------- */

/*
 * Size limits (docs/security.md, "What a guest's commands may cost"). MDTS
 * and WZSL are in units of CAP.MPSMIN (4 KiB), as powers of two. MDTS 128
 * KiB is SPDK's vfio-user default as well (Linux then sends reads and writes
 * of up to 128 KiB, 32 pages): a PRP command needs 33 iovecs, kept inline in
 * each request, and a request's copy on the RAM backend stays within one
 * poll's budget.
 * WZSL is per controller (nvme_ctrl.wzsl): the most one command's 16-bit
 * NLB can name on its smallest-block namespace, 2^13 pages (32 MiB) with
 * 512-byte blocks, 2^16 pages (256 MiB) with 4 KiB ones. Linux sends Write
 * Zeroes of up to WZSL (of up to MDTS without it: 2048 commands for 256
 * MiB). Write Zeroes moves no data, so MDTS does not bound its work: the
 * backends do it in bounded steps. Deallocate has no limit (DMRL, DMRSL,
 * DMSL 0) for the same reason.
 */
#define NVME_PAGE 4096u
#define NVME_MDTS 5u /* 2^5 pages = 128 KiB per read or write */
#define NVME_MAX_XFER (NVME_PAGE << NVME_MDTS)
/*
 * Work one SQ may start per pass of its CQ's poller: at most
 * NVME_SQ_PASS_CMDS commands and NVME_SQ_PASS_BYTES of cost (a read or
 * write costs its length, a Dataset Management range NVME_PAGE, anything
 * else NVME_PAGE), at least one command. The rest waits for the next pass,
 * so each queue on a worker gets a bounded turn.
 */
#define NVME_SQ_PASS_CMDS 64u
#define NVME_SQ_PASS_BYTES (1u << 20)
#define NVME_MAX_IOV 64  /* iovecs per request (PRP: 33 needed) */
#define NVME_MAX_SGL_DESC 256u
#define NVME_AERL 3u     /* 0-based: 4 outstanding AERs */
#define NVME_ELPE 3u     /* 0-based: 4 error log entries */
#define NVME_MAX_QID VFURT_NVME_MAX_IO_QUEUES
#define NVME_MAX_SQ_PER_CQ 4u
#define NVME_DRAIN_TIMEOUT_NS (30ull * 1000000000ull)

/*
 * IEEE OUI of Identify Controller and of the NGUIDs and EUI-64s we make up:
 * 02-56-46. We own no IEEE assignment, so the value sits where no assigned
 * one can be: the U/L bit (0x02 of the first octet) is set, and the low
 * nibble 0x2 is the administratively assigned (AAI) quadrant of IEEE
 * 802c's local address plan, which IEEE never hands out (MA-L OUIs have
 * the bit clear, CIDs are in the ELI quadrant, nibble 0xA). 0x56 0x46 is
 * "VF". Deliberately not 50-6B-8D, the OUI SPDK's vfio-user target
 * borrows along with the 0x4e58 PCI vendor id: that one belongs to a real
 * vendor and would claim our identifiers as theirs.
 */
#define NVME_IEEE_OUI 0x025646u

/* Pending asynchronous events (bits of nvme_ctrl.events). */
#define EV_INVALID_DB_VALUE (1u << 0) /* error type, info 01h, log 01h */
#define EV_INVALID_DB_REG (1u << 1)   /* error type, info 00h, log 01h */
#define EV_NS_CHANGED (1u << 2)       /* notice type, info 00h, log 04h */

/* ---- queues ---------------------------------------------------------- */

struct nvme_ctrl;
struct nvme_cq;
struct nvme_sq;

/* One command in flight on an I/O SQ. */
struct nvme_req {
	struct nvme_sq *sq;
	struct nvme_req *next;   /* free list / retry list */
	struct nvme_sqe cmd;     /* kept for retries after -EAGAIN */
	uint16_t status;         /* SCT << 8 | SC, first error wins */
	uint32_t dw0;
	uint32_t pending;        /* bdev sub-requests not yet called back */
	uint32_t next_sub;       /* next sub-request to submit */
	uint32_t nr_sub;         /* sub-requests in total */
	bool fua;                /* Write with FUA: flush once the write is done */
	uint64_t lost;           /* vfurt_dma_lost_count() when the command started */
	int niov;
	struct iovec iov[NVME_MAX_IOV];
};

/* Shadow doorbell bookkeeping of one doorbell (Doorbell Buffer Config). */
struct nvme_dbstate {
	uint32_t ev_last;    /* EventIdx value last written; UINT32_MAX = none */
	bool armed;          /* the poller sleeps: ask for the MMIO doorbell */
};

struct nvme_sq {
	struct nvme_ctrl *ctrl;
	struct nvme_cq *cq;
	uint16_t qid;
	uint32_t size;       /* entries */
	uint64_t iova;
	uint32_t head;       /* next entry to fetch */
	uint32_t inflight;   /* fetched, not yet posted */
	bool bad_db;         /* an invalid tail was reported: stop */
	struct nvme_dbstate db;
	struct nvme_req *reqs;  /* size entries (I/O SQs only) */
	struct nvme_req *free;
};

struct nvme_cq {
	struct nvme_ctrl *ctrl;
	uint16_t qid;
	uint32_t size;
	uint64_t iova;
	uint16_t vector;
	bool ien;
	bool phase;
	bool bad_db;
	struct nvme_dbstate db;
	uint32_t tail;       /* next entry to post */
	uint32_t head;       /* last head the host reported */
	uint32_t outstanding; /* completions owed: reserves CQ space */
	struct nvme_cqe *base;  /* valid during a pass only (guest memory) */
	bool irq_pending;
	uint32_t intx_tail;  /* tail when INTx was last raised (atomic) */
	uint32_t coal_count; /* completions posted since the last interrupt */
	uint64_t coal_since_ns; /* when the oldest of them was posted */
	bool dead;           /* being torn down: completions are not posted */
	struct vfurt_queue *q;  /* I/O CQs: the poller, NULL while paused */
	struct nvme_sq *sqs[NVME_MAX_SQ_PER_CQ];
	uint32_t nr_sqs;
	struct vfurt_bdev_channel *ch[VFURT_NVME_MAX_NS];
	struct nvme_req *retry_head; /* submits refused with -EAGAIN */
	struct nvme_req *retry_tail;
};

/* ---- the controller -------------------------------------------------- */

/* Namespace nsid is ns[nsid - 1], active while bdev is set (sparse: see
 * nvme_ns.c). The I/O pollers read it; it changes only while they are
 * paused. */
struct nvme_ns {
	struct vfurt_bdev *bdev; /* NULL: nsid not active */
	bool owned;              /* destroyed with the controller or at removal */
	/* a volatile cache the controller does not advertise (VWC clear, since
	 * it was added live): every write is followed by a flush, as FUA */
	bool write_through;
	uint32_t lba_shift;
	uint64_t nsze;
	uint32_t caps;
	uint8_t nguid[16];       /* big-endian: 8 bytes vendor part, OUI, 5 bytes ext */
	uint8_t eui64[8];        /* big-endian: OUI, 5 bytes extension */
	uint8_t uuid[16];        /* RFC 4122 layout, version 4 and variant bits set */
};

struct nvme_err_entry {
	uint64_t count;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status;
	uint16_t loc;
	uint64_t lba;
	uint32_t nsid;
};

struct nvme_ctrl {
	struct vfurt_dev *dev;
	struct vfurt_pci *pci;
	struct vfurt_log log;
	char name[64];
	char serial[21];
	char model[41];
	uint32_t max_ioq;
	uint32_t mqes;        /* 0-based */
	uint32_t ns_end;      /* highest active nsid (0: none): loops stop there */
	uint32_t min_lba_shift; /* smallest LBA size at creation: WZSL was derived from it */
	struct nvme_ns ns[VFURT_NVME_MAX_NS];
	uint16_t oncs;
	uint8_t wzsl; /* Write Zeroes size limit, 2^wzsl pages (see NVME_MDTS) */
	bool vwc;

	/* BAR0 */
	int db_fd;
	uint32_t *db;         /* the doorbell page, shared with the client */
	bool trap_db;         /* opts.ioeventfd: the page is trapped, not mapped */
	int ioev_fd;          /* the doorbells' ioeventfd, or -1 */
	bool irq_per_cqe;
	uint32_t cc;
	uint32_t csts;
	uint32_t aqa;
	uint64_t asq;
	uint64_t acq;
	uint32_t intms;
	atomic_bool fatal;    /* set by pollers: CSTS.CFS */

	/* queues: index = qid; 0 is the admin queue */
	struct nvme_sq *sq[NVME_MAX_QID + 1];
	struct nvme_cq *cq[NVME_MAX_QID + 1];
	struct vfurt_queue *ctrl_q; /* controller poller (admin queue) */
	bool io_paused;
	/* Waits a guest starts (a shutdown, a Delete I/O SQ, while a backlog of
	 * its commands is in flight) are worked off by the controller poller in
	 * bounded passes, never in one loop on the home worker. */
	struct nvme_sq *del_sq;   /* Delete I/O SQ waiting for its commands */
	uint16_t del_cid;
	uint64_t drain_deadline_ns; /* for del_sq or CSTS.SHST busy: then CFS */

	/* features */
	bool nq_set;
	uint32_t nsqa;        /* granted I/O SQs (1-based) */
	uint32_t ncqa;
	uint32_t arb;
	uint32_t power;
	uint32_t temp_over;
	uint32_t temp_under;
	uint32_t vwc_enabled;
	uint32_t int_coal;
	uint32_t aec;
	uint32_t kato;
	uint8_t ivc_cd[NVME_MAX_QID + 1]; /* coalescing disable per vector */
	uint32_t err_rec;     /* Error Recovery: TLER (DULBE is never set) */
	uint32_t wan_dn;      /* Write Atomicity Normal: DN */

	/* asynchronous events */
	uint16_t aer_cid[NVME_AERL + 1];
	uint32_t nr_aer;
	atomic_uint events;   /* EV_*: raised by any thread */
	uint32_t ev_masked;   /* delivered, waiting for their log page */
	uint32_t ev_log_pending; /* which log pages have news (EV_* bits) */

	/* logs */
	struct nvme_err_entry errlog[NVME_ELPE + 1];
	uint64_t err_count;
	_Atomic uint64_t units_read;   /* in 512-byte units */
	_Atomic uint64_t units_written;
	_Atomic uint64_t read_cmds;
	_Atomic uint64_t write_cmds;
	uint32_t changed_ns[8]; /* bitmap of nsids changed since last read */

	/* Doorbell Buffer Config */
	bool dbbuf;
	uint64_t dbbuf_shadow;
	uint64_t dbbuf_eventidx;

	/* live upgrade (nvme_state.c) */
	atomic_bool frozen;   /* ops->freeze until ops->thaw: fetch nothing */
	bool handed_off;      /* saved: the shared doorbell page is the next process's */
};

/* CLOCK_MONOTONIC in ns (interrupt coalescing, drain deadlines). */
static inline uint64_t nvme_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Active namespace nsid, or NULL (nsid 0, out of range or not active). */
static inline const struct nvme_ns *nvme_ns_active(const struct nvme_ctrl *c, uint32_t nsid)
{
	if (nsid == 0 || nsid > VFURT_NVME_MAX_NS || !c->ns[nsid - 1].bdev)
		return NULL;
	return &c->ns[nsid - 1];
}

/* ---- nvme_regs.c ----------------------------------------------------- */

ssize_t vfr_nvme_bar0_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			 uint64_t offset, bool is_write);
/* Controller reset (CC.EN 1->0, DEVICE_RESET, FLR): queues freed, I/O
 * cancelled, registers and features back to power-on. */
void vfr_nvme_ctrl_reset(struct nvme_ctrl *c, bool power_on);

/* ---- nvme_ctrl.c ----------------------------------------------------- */

/* Fill ns[nsid - 1] for bdev (block size checked by the caller): geometry,
 * capabilities, identifiers. Does not move ns_end. */
void vfr_nvme_ns_setup(struct nvme_ctrl *c, uint32_t nsid, struct vfurt_bdev *bdev, bool owned);

/* Start polling an I/O CQ (with its arm callback). 0 or -ENOMEM. */
int vfr_nvme_cq_start(struct nvme_ctrl *c, struct nvme_cq *cq);

/* Remove every I/O poller and finish their in-flight I/O from this thread
 * (drain: wait and post completions; else cancel and post nothing). */
void vfr_nvme_io_pause(struct nvme_ctrl *c, bool drain);
/* Add the pollers back (no-op unless paused). Returns 0 or -errno. */
int vfr_nvme_io_resume(struct nvme_ctrl *c);
/* One bounded pass (vfr_nvme_io_pass without fetching) over every paused I/O
 * CQ with commands in flight. Returns true while some remain. Home thread,
 * pollers removed. */
bool vfr_nvme_io_drain_pass(struct nvme_ctrl *c);
/* CSTS.SHST is "processing": advance the shutdown's drain by one pass and
 * report it complete once nothing is in flight (nvme_regs.c). Returns true
 * while it is still processing. Home thread. */
bool vfr_nvme_shutdown_step(struct nvme_ctrl *c);
void vfr_nvme_set_fatal(struct nvme_ctrl *c, const char *why);
void vfr_nvme_raise_event(struct nvme_ctrl *c, uint32_t ev);
int vfr_nvme_cq_poll(struct vfurt_dev *dev, void *arg);
/* The I/O queue's arm callback (vfurt_queue_arm_fn), nvme_queue.c. */
int vfr_nvme_cq_arm(struct vfurt_dev *dev, void *arg, bool arm);
/* Wake the poller of I/O queue qid (SQ or CQ doorbell written). Home thread. */
void vfr_nvme_kick_qid(struct nvme_ctrl *c, uint32_t qid, bool cq);

/* ---- nvme_queue.c ---------------------------------------------------- */

struct nvme_sq *vfr_nvme_sq_alloc(struct nvme_ctrl *c, uint16_t qid, uint64_t iova,
			      uint32_t size, struct nvme_cq *cq, bool io);
void vfr_nvme_sq_free(struct nvme_sq *sq);
struct nvme_cq *vfr_nvme_cq_alloc(struct nvme_ctrl *c, uint16_t qid, uint64_t iova,
			      uint32_t size, uint16_t vector, bool ien);
/* Drain (or cancel) and destroy the CQ's channels, free it. Poller removed. */
void vfr_nvme_cq_free(struct nvme_cq *cq);
/* Translate the CQ for this pass. false: the CQ is not reachable (the
 * caller stops). */
bool vfr_nvme_cq_begin(struct nvme_cq *cq);
/* Raise the CQ's interrupt if something was posted; forget the pointer. */
bool vfr_nvme_cq_end(struct nvme_cq *cq);
/* Re-read the head doorbell now: a pass that found nothing to do checks
 * it, so a bad value is reported even while the CQ has room. */
void vfr_nvme_cq_refresh_head(struct nvme_cq *cq);
/* Free CQ entries not reserved for outstanding commands; re-reads the head
 * doorbell only when the cached head leaves no room. */
uint32_t vfr_nvme_cq_room(struct nvme_cq *cq);
/* Post one completion (room was reserved when the command was fetched). */
void vfr_nvme_cq_post(struct nvme_cq *cq, struct nvme_sq *sq, uint16_t cid, uint16_t status,
		  uint32_t dw0);
/* The SQ's tail doorbell (or shadow), checked; UINT32_MAX when invalid. */
uint32_t vfr_nvme_sq_tail(struct nvme_sq *sq);
/* The SQE at the head, copied. false if it is not reachable. */
bool vfr_nvme_sq_fetch(struct nvme_sq *sq, const struct nvme_sqe *base, struct nvme_sqe *out);
const struct nvme_sqe *vfr_nvme_sq_base(struct nvme_sq *sq);
void vfr_nvme_irq_raise(struct nvme_cq *cq);
/* vfurt_irq_resample_fn for INTx (control thread). */
bool vfr_nvme_intx_resample(void *arg);
/* End a pass over cq: raise its interrupt as coalescing allows. Returns true
 * while an interrupt is held back (the caller stays busy so that the time
 * limit is honoured even in adaptive polling). */

/* ---- nvme_prp.c ------------------------------------------------------ */

/* Map the command's data buffer (PRP or SGL per PSDT) of len bytes into
 * iov (at most max entries). Returns an NVMe status (0 = mapped). */
uint16_t vfr_nvme_map_data(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint64_t len,
		       uint32_t prot, struct iovec *iov, int max, int *niov);
/* Copy between a local buffer and the command's data buffer. */
uint16_t vfr_nvme_copy_to_guest(struct nvme_ctrl *c, const struct nvme_sqe *cmd,
			    const void *buf, size_t len);
uint16_t vfr_nvme_copy_from_guest(struct nvme_ctrl *c, const struct nvme_sqe *cmd, void *buf,
			      size_t len);

/* ---- nvme_admin.c ---------------------------------------------------- */

/* Serve the admin queue (at most NVME_SQ_PASS_CMDS commands, or one pass
 * of a pending Delete I/O SQ's drain); returns true when it did work. Home
 * thread. */
bool vfr_nvme_admin_poll(struct nvme_ctrl *c);
/* Every feature (Set/Get Features) to its default, as a controller level
 * reset requires; nothing is saveable. Home thread, I/O pollers stopped. */
void vfr_nvme_admin_reset_features(struct nvme_ctrl *c);
void vfr_nvme_admin_deliver_events(struct nvme_ctrl *c);

/* ---- nvme_state.c ---------------------------------------------------- */

/* The device ops of a live upgrade (struct vfurt_dev_ops, docs/restart.md).
 * Home thread. */
int vfr_nvme_freeze_op(struct vfurt_dev *dev, void *arg);
void vfr_nvme_thaw_op(struct vfurt_dev *dev, void *arg);
int vfr_nvme_save_op(struct vfurt_dev *dev, void *arg, struct vfurt_state *s);
int vfr_nvme_restore_op(struct vfurt_dev *dev, void *arg, const struct vfurt_state_cur *cur);
/* Frozen: one bounded pass over what is still in flight (I/O of the paused
 * CQs, a pending Delete I/O SQ, a shutdown's drain), posting completions as
 * usual; true while some remains. The controller poller's pass while
 * frozen. Home thread. */
bool vfr_nvme_frozen_poll(struct nvme_ctrl *c);
/* Whether anything but outstanding AERs is in flight (freeze answers
 * -EBUSY). Home thread, I/O pollers removed. */
bool vfr_nvme_frozen_busy(const struct nvme_ctrl *c);

/* ---- nvme_io.c ------------------------------------------------------- */

/* Run one I/O pass over a CQ and its SQs. Returns true when it did work. */
bool vfr_nvme_io_pass(struct nvme_cq *cq, bool fetch);
/* Outstanding bdev requests on the CQ's channels. */
uint32_t vfr_nvme_io_inflight(const struct nvme_cq *cq);
/* Abandon retried requests (reset path). */
void vfr_nvme_io_drop_retries(struct nvme_cq *cq);

static inline uint16_t nvme_le16(const void *p)
{
	const uint8_t *b = p;

	return (uint16_t)(b[0] | b[1] << 8);
}

#endif /* VFURT_NVME_INTERNAL_H */
