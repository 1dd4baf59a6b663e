/* hostsim's NVMe host driver (see nvme_host.h): queues, doorbells, PRP/SGL, completions over vfio-user. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <vfurt/device.h>

#include "hostsim/nvme_host.h"

#define MAX_VEC 65u
#define STRAY_MAX 64u
#define DEFAULT_MEM (64u << 20)
#define DEFAULT_IOVA (1ull << 32)

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
static struct nh_stats *qst(struct nvme_host *h, uint32_t qid)
{
	return &h->qst[qid <= NH_MAX_QID ? qid : NH_MAX_QID + 1].st;
}

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

/* ---- guest memory ---------------------------------------------------------- */

void *nh_alloc(struct nvme_host *h, size_t bytes)
{
	size_t n = (bytes + NH_PAGE - 1) / NH_PAGE;
	size_t run = 0;

	if (!n)
		n = 1;
	for (size_t i = 0; i < h->npages; i++) {
		run = h->pagemap[i] ? 0 : run + 1;
		if (run == n) {
			size_t first = i + 1 - n;

			memset(h->pagemap + first, 1, n);
			memset(h->mem + first * NH_PAGE, 0, n * NH_PAGE);
			return h->mem + first * NH_PAGE;
		}
	}
	return NULL;
}

void nh_free(struct nvme_host *h, void *p, size_t bytes)
{
	size_t n = (bytes + NH_PAGE - 1) / NH_PAGE;
	size_t first;

	if (!p)
		return;
	if (!n)
		n = 1;
	first = (size_t)((uint8_t *)p - h->mem) / NH_PAGE;
	memset(h->pagemap + first, 0, n);
}

uint64_t nh_iova(const struct nvme_host *h, const void *p)
{
	return h->o.iova + (uint64_t)((const uint8_t *)p - h->mem);
}

void *nh_ptr(const struct nvme_host *h, uint64_t iova)
{
	if (iova < h->o.iova || iova - h->o.iova >= h->o.mem_size)
		return NULL;
	return h->mem + (iova - h->o.iova);
}

uint64_t nh_mem_iova(const struct nvme_host *h)
{
	return h->o.iova;
}

size_t nh_mem_size(const struct nvme_host *h)
{
	return h->o.mem_size;
}

/* ---- registers and doorbells ----------------------------------------------- */

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

/* doorbell index: 2 * qid for an SQ tail, 2 * qid + 1 for a CQ head */
static int db_write(struct nvme_host *h, uint32_t idx, uint32_t v)
{
	size_t off = (size_t)idx * h->stride;

	qst(h, idx / 2)->mmio_doorbells++;
	if (idx < 2u * (NH_MAX_QID + 1) && h->ioev_fd[idx] >= 0) {
		const uint64_t one = 1;

		/* KVM: the write's value is dropped, the eventfd counts up */
		qst(h, idx / 2)->ioeventfd_doorbells++;
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

static int ring(struct nvme_host *h, uint16_t qid, bool cq, uint32_t value)
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
			qst(h, qid)->shadow_skipped++;
			return 0;
		}
	}
	return db_write(h, idx, value);
}

int nh_ring_raw(struct nvme_host *h, uint16_t qid, bool cq, uint32_t value)
{
	return db_write(h, 2u * qid + (cq ? 1u : 0u), value);
}

/* ---- open / close ---------------------------------------------------------- */

/* Guest RAM: a memfd the server maps (or reaches by DMA messages). -1 on failure. */
static int guest_ram_fd(size_t size)
{
	int fd = memfd_create("nh-guest-ram", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int nh_pci_find_cap(struct vfurt_client *c, uint8_t id)
{
	uint8_t ptr;
	int rc;

	rc = vfurt_client_region_read(c, VFURT_REGION_CONFIG, 0x34, &ptr, 1);
	for (int guard = 0; !rc && ptr && guard < 48; guard++) {
		uint8_t cap[2];

		rc = vfurt_client_region_read(c, VFURT_REGION_CONFIG, ptr & 0xfc, cap, 2);
		if (rc)
			break;
		if (cap[0] == id)
			return ptr & 0xfc;
		ptr = cap[1];
	}
	return rc ? rc : -ENOENT;
}

static int map_doorbells(struct nvme_host *h)
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

static int setup_msix(struct nvme_host *h)
{
	int cap = nh_pci_find_cap(h->c, 0x11);
	uint16_t ctrl;
	uint32_t table;
	uint32_t want = h->o.nvec ? h->o.nvec : MAX_VEC;
	int rc;

	if (cap == -ENOENT)
		return 0; /* no MSI-X: completions by polling only */
	if (cap < 0)
		return cap;
	rc = vfurt_client_region_read(h->c, VFURT_REGION_CONFIG, (uint64_t)cap + 2, &ctrl, 2);
	if (!rc)
		rc = vfurt_client_region_read(h->c, VFURT_REGION_CONFIG, (uint64_t)cap + 4, &table,
					      4);
	if (rc)
		return rc;
	if (!h->nvec) {
		h->nvec = (ctrl & 0x7ffu) + 1u;
		if (h->nvec > want)
			h->nvec = want;
		if (h->nvec > MAX_VEC)
			h->nvec = MAX_VEC;
	}
	for (uint32_t v = 0; v < h->nvec; v++) {
		if (h->efd[v] < 0)
			h->efd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (h->efd[v] < 0)
			return -errno;
	}
	rc = vfurt_client_set_irqs_eventfd(h->c, VFURT_IRQ_MSIX, 0, h->nvec, h->efd,
					   VFIO_IRQ_SET_ACTION_TRIGGER);
	if (rc)
		return rc;
	ctrl = (uint16_t)((ctrl | 0x8000u) & ~0x4000u); /* enable, function unmasked */
	rc = vfurt_client_region_write(h->c, VFURT_REGION_CONFIG, (uint64_t)cap + 2, &ctrl, 2);
	for (uint32_t v = 0; !rc && v < h->nvec; v++) {
		uint32_t zero = 0;

		rc = vfurt_client_region_write(h->c, VFURT_REGION_BAR0 + (table & 7u),
					       (table & ~7u) + v * 16u + 12u, &zero, 4);
	}
	return rc;
}

int nh_pci_reinit(struct nvme_host *h)
{
	uint16_t cmd;
	int rc;

	/* memory space and bus master, as a driver's pci_enable_device does */
	rc = vfurt_client_region_read(h->c, VFURT_REGION_CONFIG, 4, &cmd, 2);
	if (rc)
		return rc;
	cmd |= 0x6;
	rc = vfurt_client_region_write(h->c, VFURT_REGION_CONFIG, 4, &cmd, 2);
	return rc ? rc : setup_msix(h);
}

static int alloc_admin(struct nvme_host *h)
{
	uint32_t n = h->o.admin_entries;

	h->sq[0].entries = n;
	h->sq[0].ring_bytes = (size_t)n * sizeof(struct nh_sqe);
	h->sq[0].ring = nh_alloc(h, h->sq[0].ring_bytes);
	h->sq[0].slots = calloc(n, sizeof(struct slot));
	h->cq[0].entries = n;
	h->cq[0].ring_bytes = (size_t)n * sizeof(struct nh_cqe);
	h->cq[0].ring = nh_alloc(h, h->cq[0].ring_bytes);
	h->cq[0].vector = 0;
	if (!h->sq[0].ring || !h->sq[0].slots || !h->cq[0].ring)
		return -ENOMEM;
	return 0;
}

/* KVM_IOEVENTFD for every 4-byte doorbell sub-region the controller offers
 * (no datamatch: the value is lost, the guest must use shadow doorbells). */
static int wire_ioeventfds(struct nvme_host *h)
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

struct nvme_host *nh_open(const char *path, const struct nvme_host_opts *opts)
{
	/* aligned: the queues' and counters' cache lines */
	struct nvme_host *h = aligned_alloc(_Alignof(struct nvme_host), sizeof(*h));
	struct vfurt_client_opts co = { .opts_size = sizeof(co) };
	uint64_t cap;
	int rc = -ENOMEM;

	if (!h)
		return NULL;
	memset(h, 0, sizeof(*h));
	h->memfd = -1;
	for (uint32_t v = 0; v < MAX_VEC; v++)
		h->efd[v] = -1;
	for (uint32_t i = 0; i < 2u * (NH_MAX_QID + 1); i++)
		h->ioev_fd[i] = -1;
	if (opts)
		h->o = *opts;
	if (!h->o.mem_size)
		h->o.mem_size = DEFAULT_MEM;
	h->o.mem_size = (h->o.mem_size + NH_PAGE - 1) & ~(size_t)(NH_PAGE - 1);
	if (!h->o.iova)
		h->o.iova = DEFAULT_IOVA;
	if (!h->o.admin_entries)
		h->o.admin_entries = 32;
	if (h->o.timeout_ms <= 0)
		h->o.timeout_ms = NH_DEFAULT_TIMEOUT_MS;
	co.timeout_ms = h->o.timeout_ms;

	h->c = vfurt_client_connect(path, &co);
	if (!h->c) {
		rc = -errno;
		goto err;
	}
	h->memfd = guest_ram_fd(h->o.mem_size);
	if (h->memfd < 0)
		goto err;
	h->mem = mmap(NULL, h->o.mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, h->memfd, 0);
	if (h->mem == MAP_FAILED) {
		h->mem = NULL;
		goto err;
	}
	h->npages = h->o.mem_size / NH_PAGE;
	h->pagemap = calloc(h->npages, 1);
	if (!h->pagemap)
		goto err;
	rc = vfurt_client_dma_map(h->c, h->o.iova, h->o.mem_size, h->memfd, 0,
				  VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE,
				  h->o.dma_by_msg ? 0 : VFURT_CLIENT_DMA_SEND_FD);
	if (rc)
		goto err;
	rc = nh_reg_read64(h, NH_REG_CAP, &cap);
	if (rc)
		goto err;
	h->mqes1 = (uint32_t)(cap & 0xffff) + 1;
	h->stride = 4u << ((cap >> 32) & 0xf);
	if (!h->o.doorbell_msg) {
		rc = map_doorbells(h);
		if (rc)
			goto err;
	}
	if (h->o.doorbell_ioeventfd) {
		rc = wire_ioeventfds(h);
		if (rc)
			goto err;
	}
	rc = nh_pci_reinit(h);
	if (rc)
		goto err;
	if (h->o.admin_entries > h->mqes1)
		h->o.admin_entries = h->mqes1;
	rc = alloc_admin(h);
	if (rc)
		goto err;
	return h;
err:
	nh_close(h);
	errno = rc < 0 ? -rc : EIO;
	return NULL;
}

static void drop_slots(struct nvme_host *h, struct sq *q)
{
	if (!q->slots)
		return;
	for (uint32_t i = 0; i < q->entries; i++) {
		nh_free(h, q->slots[i].aux, q->slots[i].aux_len);
		memset(&q->slots[i], 0, sizeof(q->slots[i]));
	}
}

static void forget_sq(struct nvme_host *h, uint16_t qid)
{
	struct sq *q = &h->sq[qid];

	drop_slots(h, q);
	free(q->slots);
	nh_free(h, q->ring, q->ring_bytes);
	memset(q, 0, sizeof(*q));
}

static void forget_cq(struct nvme_host *h, uint16_t qid)
{
	struct cq *q = &h->cq[qid];

	nh_free(h, q->ring, q->ring_bytes);
	memset(q, 0, sizeof(*q));
}

void nh_close(struct nvme_host *h)
{
	if (!h)
		return;
	vfurt_client_close(h->c);
	vfurt_client_io_fds_release(&h->iofds);
	if (h->db_map)
		munmap(h->db_map, h->db_map_len);
	free(h->sq[0].slots);
	for (uint32_t q = 1; q <= NH_MAX_QID; q++)
		free(h->sq[q].slots);
	if (h->mem)
		munmap(h->mem, h->o.mem_size);
	if (h->memfd >= 0)
		close(h->memfd);
	for (uint32_t v = 0; v < MAX_VEC; v++)
		if (h->efd[v] >= 0)
			close(h->efd[v]);
	free(h->pagemap);
	free(h);
}

struct vfurt_client *nh_client(struct nvme_host *h)
{
	return h->c;
}

void nh_get_stats(const struct nvme_host *h, struct nh_stats *out)
{
	*out = h->st;
	for (uint32_t q = 0; q < NH_MAX_QID + 2; q++) {
		const struct nh_stats *s = &h->qst[q].st;

		out->mmio_doorbells += s->mmio_doorbells;
		out->shadow_skipped += s->shadow_skipped;
		out->ioeventfd_doorbells += s->ioeventfd_doorbells;
		out->completions += s->completions;
		out->irq_wakeups += s->irq_wakeups;
	}
}

uint32_t nh_db_stride(const struct nvme_host *h)
{
	return h->stride;
}

uint32_t nh_max_entries(const struct nvme_host *h)
{
	return h->mqes1;
}

uint32_t nh_nvec(const struct nvme_host *h)
{
	return h->nvec;
}

bool nh_doorbells_mapped(const struct nvme_host *h)
{
	return h->db != NULL;
}

int nh_vector_fd(const struct nvme_host *h, uint32_t v)
{
	return v < h->nvec ? h->efd[v] : -1;
}

/* ---- controller state ------------------------------------------------------ */

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

static void forget_queues(struct nvme_host *h)
{
	for (uint16_t q = 1; q <= NH_MAX_QID; q++) {
		forget_sq(h, q);
		forget_cq(h, q);
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

/* ---- submission and completion --------------------------------------------- */

static struct sq *get_sq(struct nvme_host *h, uint16_t sqid)
{
	if (sqid > NH_MAX_QID || !h->sq[sqid].live)
		return NULL;
	return &h->sq[sqid];
}

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

		qst(h, cqid)->completions += (uint64_t)n;
		rc = ring(h, cqid, true, q->head);

		if (rc)
			return rc;
	}
	return n;
}

static int put_sqe(struct nvme_host *h, uint16_t sqid, const struct nh_sqe *sqe, bool assign,
		   uint16_t *cid_out)
{
	struct sq *q = get_sq(h, sqid);
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
	struct sq *q = get_sq(h, sqid);

	if (!q)
		return -ENOENT;
	return ring(h, sqid, false, q->tail);
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
	struct sq *q = get_sq(h, sqid);
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
				qst(h, sqid)->irq_wakeups++;
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

/* ---- data pointers ---------------------------------------------------------- */

static int build_prp(struct nvme_host *h, struct nh_sqe *sqe, uint64_t a, size_t len,
		     const struct nh_dptr_opts *dp, void **aux, size_t *aux_len)
{
	uint32_t s = dp && dp->prp_list_slots ? dp->prp_list_slots : NH_PAGE / 8;
	size_t first = NH_PAGE - (a & (NH_PAGE - 1));
	size_t rem, n, pages;
	uint64_t next;
	uint8_t *lists;
	uint64_t *list;
	uint32_t slot = 0;

	if (s < 2 || s > NH_PAGE / 8)
		return -EINVAL;
	if (first > len)
		first = len;
	sqe->prp1 = a;
	sqe->prp2 = 0;
	rem = len - first;
	next = a + first;
	if (!rem)
		return 0;
	if (rem <= NH_PAGE) {
		sqe->prp2 = next;
		return 0;
	}
	n = (rem + NH_PAGE - 1) / NH_PAGE;
	pages = n <= s ? 1 : 1 + (n - s + s - 2) / (s - 1);
	lists = nh_alloc(h, pages * NH_PAGE);
	if (!lists)
		return -ENOMEM;
	/* a short list sits at the end of its page: its last slot is the
	 * page's last qword, where the controller expects the chain pointer */
	list = (uint64_t *)(void *)(lists + NH_PAGE - s * 8u);
	sqe->prp2 = nh_iova(h, list);
	for (size_t i = 0, pg = 0; i < n; i++) {
		if (slot == s - 1 && i < n - 1) {
			uint64_t *nl = (uint64_t *)(void *)(lists + (++pg + 1) * NH_PAGE - s * 8u);

			list[slot] = nh_iova(h, nl);
			list = nl;
			slot = 0;
		}
		list[slot++] = next + (uint64_t)i * NH_PAGE;
	}
	*aux = lists;
	*aux_len = pages * NH_PAGE;
	return 0;
}

static void sgl_set(struct nh_sgl_desc *d, uint64_t addr, uint32_t len, uint8_t type)
{
	memset(d, 0, sizeof(*d));
	d->addr = addr;
	d->len = len;
	d->type = (uint8_t)(type << 4);
}

static int build_sgl(struct nvme_host *h, struct nh_sqe *sqe, uint64_t a, size_t len,
		     const struct nh_dptr_opts *dp, void **aux, size_t *aux_len)
{
	size_t block = dp->sgl_block ? dp->sgl_block : len;
	size_t per = dp->sgl_per_seg ? dp->sgl_per_seg : NH_PAGE / 16 - 1;
	size_t nb, nseg;
	struct nh_sgl_desc sgl1;
	uint8_t *segs;

	if (!block || per > NH_PAGE / 16 - 1)
		return -EINVAL;
	nb = (len + block - 1) / block;
	sqe->cdw0 |= NH_PSDT_SGL;
	if (nb <= 1 && !dp->sgl_force_segment) {
		sgl_set(&sgl1, a, (uint32_t)len, NH_SGL_DATA_BLOCK);
		memcpy(&sqe->prp1, &sgl1, sizeof(sgl1));
		return 0;
	}
	if (!nb)
		nb = 1;
	nseg = (nb + per - 1) / per;
	segs = nh_alloc(h, nseg * NH_PAGE);
	if (!segs)
		return -ENOMEM;
	for (size_t sg = 0, b = 0; sg < nseg; sg++) {
		struct nh_sgl_desc *d = (struct nh_sgl_desc *)(void *)(segs + sg * NH_PAGE);
		size_t cnt = nb - sg * per < per ? nb - sg * per : per;

		for (size_t i = 0; i < cnt; i++, b++) {
			size_t off = b * block;
			size_t bl = len - off < block ? len - off : block;

			sgl_set(&d[i], a + off, (uint32_t)bl, NH_SGL_DATA_BLOCK);
		}
		if (sg + 1 < nseg) {
			size_t ncnt = nb - (sg + 1) * per < per ? nb - (sg + 1) * per : per;
			bool last = sg + 2 == nseg;

			sgl_set(&d[cnt], nh_iova(h, segs + (sg + 1) * NH_PAGE),
				(uint32_t)((ncnt + (last ? 0 : 1)) * 16),
				last ? NH_SGL_LAST_SEGMENT : NH_SGL_SEGMENT);
		}
	}
	{
		size_t cnt0 = nb < per ? nb : per;

		sgl_set(&sgl1, nh_iova(h, segs), (uint32_t)((cnt0 + (nseg > 1 ? 1 : 0)) * 16),
			nseg > 1 ? NH_SGL_SEGMENT : NH_SGL_LAST_SEGMENT);
	}
	memcpy(&sqe->prp1, &sgl1, sizeof(sgl1));
	*aux = segs;
	*aux_len = nseg * NH_PAGE;
	return 0;
}

int nh_build_dptr(struct nvme_host *h, struct nh_sqe *sqe, void *buf, size_t len,
		  const struct nh_dptr_opts *dp, void **aux, size_t *aux_len)
{
	uint64_t a;

	*aux = NULL;
	*aux_len = 0;
	if (!buf || !len) {
		sqe->prp1 = sqe->prp2 = 0;
		return 0;
	}
	a = nh_iova(h, buf);
	if (dp && dp->sgl)
		return build_sgl(h, sqe, a, len, dp, aux, aux_len);
	return build_prp(h, sqe, a, len, dp, aux, aux_len);
}

/* ---- I/O --------------------------------------------------------------------- */

/* Build the data pointer of *sqe and submit it; the lists/segments are
 * freed when the completion is taken. */
static int submit_data(struct nvme_host *h, uint16_t sqid, struct nh_sqe *sqe, void *buf,
		       size_t len, const struct nh_dptr_opts *dp, uint16_t *cid)
{
	void *aux;
	size_t aux_len;
	uint16_t c;
	int rc;

	if (!get_sq(h, sqid))
		return -ENOENT;
	rc = nh_build_dptr(h, sqe, buf, len, dp, &aux, &aux_len);
	if (rc)
		return rc;
	rc = nh_submit(h, sqid, sqe, &c);
	if (rc) {
		nh_free(h, aux, aux_len);
		return rc;
	}
	h->sq[sqid].slots[c].aux = aux;
	h->sq[sqid].slots[c].aux_len = aux_len;
	if (cid)
		*cid = c;
	return 0;
}

int nh_io_submit(struct nvme_host *h, uint16_t sqid, const struct nh_io *io, uint16_t *cid)
{
	struct nh_sqe sqe = { .cdw0 = io->opc, .nsid = io->nsid };

	if (io->opc == NH_CMD_READ || io->opc == NH_CMD_WRITE || io->opc == NH_CMD_WRITE_ZEROES) {
		if (!io->nlb || io->nlb > 0x10000)
			return -EINVAL;
		sqe.cdw10 = (uint32_t)io->slba;
		sqe.cdw11 = (uint32_t)(io->slba >> 32);
		sqe.cdw12 = ((io->nlb - 1) & 0xffffu) | io->cdw12;
	} else {
		sqe.cdw10 = io->cdw10;
		sqe.cdw11 = io->cdw11;
		sqe.cdw12 = io->cdw12;
	}
	return submit_data(h, sqid, &sqe, io->buf, io->len, io->dp, cid);
}

int nh_io(struct nvme_host *h, uint16_t sqid, const struct nh_io *io, struct nh_cqe *out)
{
	uint16_t cid;
	int rc = nh_io_submit(h, sqid, io, &cid);

	return rc ? rc : nh_wait(h, sqid, cid, out, -1);
}

int nh_read(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba, uint32_t nlb,
	    void *buf, size_t len, const struct nh_dptr_opts *dp)
{
	struct nh_io io = { .opc = NH_CMD_READ, .nsid = nsid, .slba = slba, .nlb = nlb,
			    .buf = buf, .len = len, .dp = dp };

	return nh_io(h, sqid, &io, NULL);
}

int nh_write(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba, uint32_t nlb,
	     void *buf, size_t len, const struct nh_dptr_opts *dp)
{
	struct nh_io io = { .opc = NH_CMD_WRITE, .nsid = nsid, .slba = slba, .nlb = nlb,
			    .buf = buf, .len = len, .dp = dp };

	return nh_io(h, sqid, &io, NULL);
}

int nh_write_read_check(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba,
			uint32_t bs, uint32_t seed, int *wst, int *rst)
{
	uint8_t *w = nh_alloc(h, NH_PAGE);
	uint8_t *r = nh_alloc(h, NH_PAGE);
	int ws = -ENOMEM, rs = -ENOMEM;
	int rc;

	if (bs > NH_PAGE)
		ws = rs = -EINVAL;
	if (w && r && bs <= NH_PAGE) {
		nh_fill(w, bs, seed);
		ws = nh_write(h, sqid, nsid, slba, 1, w, bs, NULL);
		rs = ws ? ws : nh_read(h, sqid, nsid, slba, 1, r, bs, NULL);
	}
	rc = ws ? ws : rs;
	if (!rc && !nh_check(r, bs, seed))
		rc = -EBADMSG;
	nh_free(h, w, NH_PAGE);
	nh_free(h, r, NH_PAGE);
	if (wst)
		*wst = ws;
	if (rst)
		*rst = rs;
	return rc;
}

int nh_flush(struct nvme_host *h, uint16_t sqid, uint32_t nsid)
{
	struct nh_io io = { .opc = NH_CMD_FLUSH, .nsid = nsid };

	return nh_io(h, sqid, &io, NULL);
}

int nh_write_zeroes(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint64_t slba,
		    uint32_t nlb, bool deac)
{
	struct nh_io io = { .opc = NH_CMD_WRITE_ZEROES, .nsid = nsid, .slba = slba, .nlb = nlb,
			    .cdw12 = deac ? 1u << 25 : 0 };

	return nh_io(h, sqid, &io, NULL);
}

int nh_deallocate(struct nvme_host *h, uint16_t sqid, uint32_t nsid,
		  const struct nh_dsm_range *ranges, uint32_t n)
{
	struct nh_io io = { .opc = NH_CMD_DSM, .nsid = nsid, .cdw10 = n - 1, .cdw11 = 1u << 2 };
	void *buf;
	int rc;

	if (!n || n > 256)
		return -EINVAL;
	buf = nh_alloc(h, (size_t)n * sizeof(*ranges));
	if (!buf)
		return -ENOMEM;
	memcpy(buf, ranges, (size_t)n * sizeof(*ranges));
	io.buf = buf;
	io.len = (size_t)n * sizeof(*ranges);
	rc = nh_io(h, sqid, &io, NULL);
	if (rc != -ETIMEDOUT)
		nh_free(h, buf, io.len);
	return rc;
}

static uint8_t pattern_byte(size_t i, uint32_t seed)
{
	uint32_t x = (uint32_t)i * 2654435761u + seed * 40503u + (uint32_t)(i >> 8);

	return (uint8_t)(x >> 13);
}

void nh_fill(void *buf, size_t len, uint32_t seed)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = pattern_byte(i, seed);
}

bool nh_check(const void *buf, size_t len, uint32_t seed)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern_byte(i, seed))
			return false;
	return true;
}

/* ---- admin helpers ------------------------------------------------------------ */

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

static void shadow_reset(struct nvme_host *h, uint16_t qid, bool cq)
{
	if (h->dbbuf)
		h->shadow[(2u * qid + (cq ? 1u : 0u)) * (h->stride / 4)] = 0;
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
	shadow_reset(h, qid, true);
	rc = nh_admin(h, &sqe, NULL);
	if (rc) {
		if (rc != -ETIMEDOUT)
			nh_free(h, ring, bytes);
		return rc;
	}
	q = &h->cq[qid];
	if (q->live)
		forget_cq(h, qid);
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
	shadow_reset(h, qid, false);
	rc = nh_admin(h, &sqe, NULL);
	if (rc) {
		if (rc != -ETIMEDOUT)
			nh_free(h, ring, bytes);
		free(slots);
		return rc;
	}
	q = &h->sq[qid];
	if (q->live)
		forget_sq(h, qid);
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
		forget_sq(h, qid);
	}
	return rc;
}

int nh_delete_cq(struct nvme_host *h, uint16_t qid)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_DELETE_CQ, .cdw10 = qid };
	int rc = nh_admin(h, &sqe, NULL);

	if (!rc && qid && qid <= NH_MAX_QID)
		forget_cq(h, qid);
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
	rc = submit_data(h, 0, &sqe, g, len, NULL, &cid);
	if (!rc)
		rc = nh_wait(h, 0, cid, NULL, -1);
	if (rc == -ETIMEDOUT)
		return rc;
	if (!rc)
		memcpy(buf, g, len);
	nh_free(h, g, len);
	return rc;
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

int nh_aer_submit(struct nvme_host *h, uint16_t *cid)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_AER };

	return nh_submit(h, 0, &sqe, cid);
}
