/* libFuzzer target: NVMe admin and I/O commands, PRP lists and SGLs from the input, over a fake DMA table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vfurt/bdev.h>
#include <vfurt/engine.h>
#include <vfurt/nvme.h>
#include <vfurt/pci.h>

#include "devices/nvme/nvme_internal.h"
#include "io/device_internal.h"

#include "fuzz_formats.h"
#include "fuzz_input.h"

/*
 * The harness plays the host: it owns guest memory (memfds it maps too), a
 * driver's view of the queues it created, and the doorbells; the device is
 * a real controller whose DMA table holds the fz_wins windows. Queues are
 * polled on this thread through the same vfurt_queue_poll() the workers
 * use. Every operation ends with a check of the controller's queue
 * invariants; ASan catches any access outside guest memory, and a write
 * into W2 (mapped read-only in the device) faults.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct hq {
	uint64_t sq, cq;  /* iova */
	uint32_t size;
	uint32_t tail, head;
	bool phase;
	bool live;
};

struct fz {
	struct vfurt_dev *dev;
	struct nvme_ctrl *c;
	uint8_t cfg;
	struct hq q[4];
	bool dbbuf;
	uint16_t cid;
	uint16_t last_cid, last_status;
	bool mapped[FZ_NWIN];
	uint8_t *dev_va[FZ_NWIN]; /* the device's mapping of each window */
};

/* Guest memory as the host sees it: one memfd per window with an fd,
 * created once and cleared for every input. */
static int win_fd[FZ_NWIN] = { -1, -1, -1, -1, -1 };
static uint8_t *win_mem[FZ_NWIN];
static bool verbose; /* VFURT_FUZZ_VERBOSE: the device's log and every completion */

static void init_once(void)
{
	if (win_mem[0])
		return;
	for (uint32_t w = 0; w < FZ_NWIN; w++) {
		if (!fz_wins[w].has_fd)
			continue;
		win_fd[w] = memfd_create("fz-guest", MFD_CLOEXEC);
		FZ_CHECK(win_fd[w] >= 0, "memfd: %s", strerror(errno));
		FZ_CHECK(ftruncate(win_fd[w], (off_t)fz_wins[w].size) == 0, "ftruncate");
		win_mem[w] = mmap(NULL, fz_wins[w].size, PROT_READ | PROT_WRITE, MAP_SHARED,
				  win_fd[w], 0);
		FZ_CHECK(win_mem[w] != MAP_FAILED, "mmap: %s", strerror(errno));
	}
}

/* ---- guest memory ----------------------------------------------------- */

static uint8_t *host_ptr(uint64_t iova, uint64_t len)
{
	for (uint32_t w = 0; w < FZ_NWIN; w++) {
		const struct fz_win *x = &fz_wins[w];

		if (win_mem[w] && iova >= x->iova && len <= x->size &&
		    iova - x->iova <= x->size - len)
			return win_mem[w] + (iova - x->iova);
	}
	return NULL;
}

/* Byte-wise so that a range may cross from W0 into W1. */
static void gwrite(uint64_t iova, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	for (size_t i = 0; i < len; i++) {
		uint8_t *p = host_ptr(iova + i, 1);

		if (p)
			*p = b[i];
	}
}

static bool gread(uint64_t iova, void *buf, size_t len)
{
	uint8_t *b = buf;

	for (size_t i = 0; i < len; i++) {
		const uint8_t *p = host_ptr(iova + i, 1);

		if (!p)
			return false;
		b[i] = *p;
	}
	return true;
}

static int add_window(struct fz *f, uint32_t w)
{
	const struct fz_win *x = &fz_wins[w];
	struct vfurt_dma_region r;
	int fd = -1;
	int rc;

	if (x->has_fd) {
		fd = dup(win_fd[w]);
		FZ_CHECK(fd >= 0, "dup: %s", strerror(errno));
	}
	rc = vfr_dma_table_add(f->dev->dma, x->iova, x->size, fd, 0, x->prot, &r);
	FZ_CHECK(rc == 0, "window %u: %s", w, strerror(-rc));
	f->mapped[w] = true;
	f->dev_va[w] = r.vaddr;
	return 0;
}

static void unmap_cb(void *arg, const struct vfurt_dma_region *r)
{
	struct vfurt_dev *dev = arg;

	if (dev->ops.dma_unmap)
		dev->ops.dma_unmap(dev, dev->arg, r);
}

/* ---- registers and doorbells ------------------------------------------ */

static ssize_t region_io(struct fz *f, uint32_t index, void *buf, size_t count, uint64_t off,
			 bool wr)
{
	struct vfurt_region_desc d = { .desc_size = sizeof(d) };

	if (vfurt_dev_get_region(f->dev, index, &d) || !d.access)
		return -EINVAL;
	return d.access(f->dev, d.arg, buf, count, off, wr);
}

static void reg_wr32(struct fz *f, uint32_t off, uint32_t v)
{
	(void)region_io(f, VFURT_REGION_BAR0, &v, 4, off, true);
}

static void cfg_wr(struct fz *f, uint32_t off, uint32_t size, uint32_t v)
{
	(void)region_io(f, VFURT_REGION_CONFIG, &v, size, off, true);
}

static uint32_t cfg_rd(struct fz *f, uint32_t off, uint32_t size)
{
	uint32_t v = 0;

	(void)region_io(f, VFURT_REGION_CONFIG, &v, size, off, false);
	return v;
}

/* Offset of standard capability id, or 0. */
static uint32_t find_cap(struct fz *f, uint8_t id)
{
	uint32_t off = cfg_rd(f, 0x34, 1);

	for (int hops = 0; off >= 0x40 && off < 0x100 && hops < 48; hops++) {
		if (cfg_rd(f, off, 1) == id)
			return off;
		off = cfg_rd(f, off + 1, 1);
	}
	return 0;
}

static void msix_enable(struct fz *f, bool on)
{
	uint32_t off = find_cap(f, 0x11);
	uint32_t ctl;

	if (!off)
		return;
	ctl = cfg_rd(f, off + 2, 2);
	cfg_wr(f, off + 2, 2, on ? ctl | 0x8000u : ctl & ~0x8000u);
}

/* The MMIO doorbell as the guest rings it: the mapped page, or a trapped
 * write when the page is not mappable. */
static void db_mmio(struct fz *f, uint32_t idx, uint32_t v)
{
	if (f->cfg & FZ_NVME_CFG_TRAP_DB)
		(void)region_io(f, VFURT_REGION_BAR0, &v, 4, NVME_DB_OFF + idx * 4u, true);
	else
		__atomic_store_n(&f->c->db[idx], v, __ATOMIC_RELEASE);
}

/* A driver's doorbell update: shadow first (I/O queues once DBBUF took),
 * the MMIO doorbell only when EventIdx asks, as Linux's nvme driver does. */
static void db_set(struct fz *f, uint32_t idx, uint32_t v, uint32_t old)
{
	uint64_t sh = fz_wins[0].iova + FZ_NVME_SHADOW + idx * 4u;
	uint64_t ev = fz_wins[0].iova + FZ_NVME_EVIDX + idx * 4u;
	uint32_t e;

	if (!f->dbbuf || idx < 2) {
		db_mmio(f, idx, v);
		return;
	}
	gwrite(sh, &v, 4);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!gread(ev, &e, 4) || (uint16_t)(v - e - 1) < (uint16_t)(v - old))
		db_mmio(f, idx, v);
}

/* ---- queues ----------------------------------------------------------- */

static void check_ctrl(const struct nvme_ctrl *c)
{
	FZ_CHECK(c->nr_aer <= NVME_AERL + 1, "nr_aer %u", c->nr_aer);
	FZ_CHECK(!c->cq[0] == !c->sq[0], "admin queue pair half there");
	for (uint32_t qid = 0; qid <= NVME_MAX_QID; qid++) {
		const struct nvme_cq *cq = c->cq[qid];
		const struct nvme_sq *sq = c->sq[qid];

		if (cq) {
			FZ_CHECK(cq->qid == qid && cq->size >= 2, "CQ %u: qid %u size %u", qid,
				 cq->qid, cq->size);
			FZ_CHECK(cq->head < cq->size && cq->tail < cq->size,
				 "CQ %u: head %u tail %u size %u", qid, cq->head, cq->tail, cq->size);
			FZ_CHECK(cq->outstanding < cq->size, "CQ %u: %u outstanding of %u", qid,
				 cq->outstanding, cq->size);
			FZ_CHECK(cq->nr_sqs <= NVME_MAX_SQ_PER_CQ, "CQ %u: %u SQs", qid, cq->nr_sqs);
			FZ_CHECK(!cq->dead, "CQ %u dead but listed", qid);
			for (uint32_t i = 0; i < cq->nr_sqs; i++)
				FZ_CHECK(cq->sqs[i] && cq->sqs[i]->cq == cq &&
						 c->sq[cq->sqs[i]->qid] == cq->sqs[i],
					 "CQ %u: SQ %u not linked back", qid, i);
		}
		if (sq) {
			bool linked = false;

			FZ_CHECK(sq->qid == qid && sq->head < sq->size && sq->inflight <= sq->size,
				 "SQ %u: qid %u head %u inflight %u size %u", qid, sq->qid, sq->head,
				 sq->inflight, sq->size);
			FZ_CHECK(sq->cq && c->cq[sq->cq->qid] == sq->cq, "SQ %u: CQ gone", qid);
			for (uint32_t i = 0; i < sq->cq->nr_sqs; i++)
				linked |= sq->cq->sqs[i] == sq;
			FZ_CHECK(linked, "SQ %u missing from CQ %u", qid, sq->cq->qid);
		}
	}
}

static void poll_all(struct fz *f, uint32_t rounds)
{
	for (uint32_t r = 0; r < rounds; r++) {
		/* a pass may add or remove queues: fetch by index every time */
		for (uint32_t i = 0; i < vfurt_dev_queue_count(f->dev); i++) {
			struct vfurt_queue *q = vfurt_dev_queue(f->dev, i);

			if (q)
				(void)vfurt_queue_poll(q);
		}
	}
}

static void reap(struct fz *f, uint32_t qid)
{
	struct hq *q = &f->q[qid];
	uint32_t old = q->head;

	for (uint32_t n = 0; q->live && n < q->size; n++) {
		struct nvme_cqe e;

		if (!gread(q->cq + (uint64_t)q->head * sizeof(e), &e, sizeof(e)) ||
		    (bool)(e.status & 1u) != q->phase)
			break;
		f->last_cid = e.cid;
		f->last_status = (uint16_t)(e.status >> 1);
		if (verbose)
			fprintf(stderr, "fz: CQ %u cid %u status 0x%03x dw0 0x%x sqhd %u\n", qid,
				e.cid, f->last_status & 0x7ffu, e.dw0, e.sqhd);
		if (++q->head == q->size) {
			q->head = 0;
			q->phase = !q->phase;
		}
	}
	if (q->head != old)
		db_set(f, 2u * qid + 1u, q->head, old);
}

static void reap_all(struct fz *f)
{
	for (uint32_t qid = 0; qid < 4; qid++)
		reap(f, qid);
}

static void submit(struct fz *f, uint32_t qid, const struct nvme_sqe *cmd, bool ring)
{
	struct hq *q = &f->q[qid];
	uint32_t old = q->tail;

	if (!q->live)
		return;
	gwrite(q->sq + (uint64_t)q->tail * sizeof(*cmd), cmd, sizeof(*cmd));
	q->tail = (q->tail + 1) % q->size;
	if (ring)
		db_set(f, 2u * qid, q->tail, old);
}

/* One admin command, run to completion: its status, or 0xffff if none came. */
static uint16_t admin(struct fz *f, struct nvme_sqe *cmd)
{
	cmd->cid = ++f->cid;
	f->last_status = 0xffff;
	submit(f, 0, cmd, true);
	poll_all(f, 2);
	reap(f, 0);
	return f->last_cid == cmd->cid ? f->last_status : 0xffff;
}

static void bring_up(struct fz *f, uint8_t cfg)
{
	const uint64_t w0 = fz_wins[0].iova;
	uint32_t nq = cfg >> FZ_NVME_CFG_NQ_SHIFT;
	struct nvme_sqe cmd;

	memset(f->q, 0, sizeof(f->q));
	f->dbbuf = false;
	memset(win_mem[0], 0, FZ_NVME_FREE);
	reg_wr32(f, REG_CC, 0);
	msix_enable(f, cfg & FZ_NVME_CFG_MSIX);
	reg_wr32(f, REG_AQA, (FZ_NVME_QSZ - 1) << 16 | (FZ_NVME_QSZ - 1));
	reg_wr32(f, REG_ASQ, (uint32_t)(w0 + FZ_NVME_ASQ));
	reg_wr32(f, REG_ASQ + 4, (uint32_t)((w0 + FZ_NVME_ASQ) >> 32));
	reg_wr32(f, REG_ACQ, (uint32_t)(w0 + FZ_NVME_ACQ));
	reg_wr32(f, REG_ACQ + 4, (uint32_t)((w0 + FZ_NVME_ACQ) >> 32));
	reg_wr32(f, REG_CC, CC_EN | 6u << 16 | 4u << 20);
	f->q[0] = (struct hq){ .sq = w0 + FZ_NVME_ASQ, .cq = w0 + FZ_NVME_ACQ,
			       .size = FZ_NVME_QSZ, .phase = true,
			       .live = (f->c->csts & CSTS_RDY) != 0 };
	for (uint32_t q = 1; q <= nq; q++) {
		struct hq h = { .sq = w0 + FZ_NVME_IOSQ(q), .cq = w0 + FZ_NVME_IOCQ(q),
				.size = FZ_NVME_QSZ, .phase = true };

		memset(&cmd, 0, sizeof(cmd));
		cmd.opc = 0x05; /* Create I/O CQ: contiguous, interrupts on vector q */
		cmd.dptr[0] = h.cq;
		cmd.cdw10 = (FZ_NVME_QSZ - 1) << 16 | q;
		cmd.cdw11 = q << 16 | 3u;
		if (admin(f, &cmd) != 0)
			break;
		memset(&cmd, 0, sizeof(cmd));
		cmd.opc = 0x01; /* Create I/O SQ on CQ q */
		cmd.dptr[0] = h.sq;
		cmd.cdw10 = (FZ_NVME_QSZ - 1) << 16 | q;
		cmd.cdw11 = q << 16 | 1u;
		if (admin(f, &cmd) != 0)
			break;
		h.live = true;
		f->q[q] = h;
	}
	if (cfg & FZ_NVME_CFG_DBBUF) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.opc = 0x7c;
		cmd.dptr[0] = w0 + FZ_NVME_SHADOW;
		cmd.dptr[1] = w0 + FZ_NVME_EVIDX;
		f->dbbuf = admin(f, &cmd) == 0;
	}
}

/* ---- operations ------------------------------------------------------- */

static void read_cmd(struct fz *f, struct fz_in *in, struct nvme_sqe *cmd, uint8_t fix)
{
	fz_bytes(in, cmd, sizeof(*cmd));
	if (fix & FZ_FIX_DPTR0)
		cmd->dptr[0] = fz_reloc(cmd->dptr[0]);
	if (fix & FZ_FIX_DPTR1)
		cmd->dptr[1] = fz_reloc(cmd->dptr[1]);
	if (fix & FZ_FIX_NSID)
		cmd->nsid %= 4u;
	if (fix & FZ_FIX_LBA) {
		cmd->cdw10 %= 1024u;
		cmd->cdw11 = 0;
		cmd->cdw12 = (cmd->cdw12 & 0xffff0000u) | (cmd->cdw12 & 0xffu);
	}
	if (fix & FZ_FIX_CID)
		cmd->cid = ++f->cid;
}

static void op_cmd(struct fz *f, struct fz_in *in, bool io)
{
	uint32_t qid = io ? 1u + fz_u8(in) % 3u : 0u;
	uint8_t fix = fz_u8(in);
	struct nvme_sqe cmd;

	read_cmd(f, in, &cmd, fix);
	submit(f, qid, &cmd, !(fix & FZ_FIX_NORING));
	if (!(fix & FZ_FIX_NOPOLL)) {
		poll_all(f, 2);
		reap_all(f);
	}
}

static void op_mem(struct fz_in *in)
{
	uint32_t w = fz_u8(in) % FZ_NWIN;
	uint32_t off = fz_u16(in);
	uint32_t len = fz_u8(in) + 1u;
	uint8_t buf[256];

	fz_bytes(in, buf, len);
	if (!win_mem[w])
		return;
	off %= (uint32_t)fz_wins[w].size;
	if (len > fz_wins[w].size - off)
		len = (uint32_t)fz_wins[w].size - off;
	memcpy(win_mem[w] + off, buf, len);
}

/* A PRP entry: (window, page) in two bytes, or 8 raw bytes. */
static uint64_t prp_entry(struct fz_in *in)
{
	uint8_t w = fz_u8(in);
	uint32_t page;

	if (w & 0x80u)
		return fz_u64(in);
	page = fz_u8(in);
	w %= FZ_NWIN;
	return fz_wins[w].iova + (uint64_t)page * 4096u % (fz_wins[w].size + 4096u);
}

static void op_prp_list(struct fz_in *in)
{
	uint32_t w = fz_u8(in) % FZ_NWIN;
	uint32_t off = fz_u16(in) & ~7u;
	uint8_t mode = fz_u8(in);
	uint64_t iova;

	if (!win_mem[w])
		return;
	iova = fz_wins[w].iova + off % fz_wins[w].size;
	if (mode & 1u) {
		uint32_t n = fz_u16(in) % 1024u;
		uint64_t e = prp_entry(in);

		for (uint32_t i = 0; i < n; i++, e += 4096u)
			gwrite(iova + 8ull * i, &e, 8);
		return;
	}
	for (uint32_t i = 0, n = fz_u8(in); i < n && fz_more(in); i++) {
		uint64_t e = prp_entry(in);

		gwrite(iova + 8ull * i, &e, 8);
	}
}

static void op_sgl(struct fz_in *in)
{
	uint32_t w = fz_u8(in) % FZ_NWIN;
	uint32_t off = fz_u16(in) & ~15u;
	uint32_t n = 1u + fz_u8(in) % 16u;
	uint64_t iova;

	if (!win_mem[w])
		return;
	iova = fz_wins[w].iova + off % fz_wins[w].size;
	for (uint32_t i = 0; i < n; i++) {
		struct nvme_sgl_desc d = { 0 };

		d.addr = fz_reloc(fz_u64(in));
		d.len = fz_u32(in);
		d.type = fz_u8(in);
		gwrite(iova + sizeof(d) * i, &d, sizeof(d));
	}
}

static void op_doorbell(struct fz *f, struct fz_in *in)
{
	uint32_t idx = fz_u16(in) % 1024u;
	uint32_t v = fz_u32(in);
	uint8_t how = fz_u8(in) % 4u;

	switch (how) {
	case 0:
		(void)region_io(f, VFURT_REGION_BAR0, &v, 4, NVME_DB_OFF + idx * 4u, true);
		break;
	case 1:
		__atomic_store_n(&f->c->db[idx], v, __ATOMIC_RELEASE);
		break;
	case 2:
		gwrite(fz_wins[0].iova + FZ_NVME_SHADOW + idx * 4u, &v, 4);
		break;
	default:
		/* odd sizes and offsets in the doorbell page (and past its end) */
		(void)region_io(f, VFURT_REGION_BAR0, &v, 1u + (v >> 30),
				NVME_DB_OFF + idx * 4u + (v & 3u), true);
		break;
	}
	poll_all(f, 1);
	reap_all(f);
}

static void op_reg(struct fz *f, struct fz_in *in)
{
	uint32_t off = fz_u16(in) % NVME_BAR0_SIZE;
	uint32_t size = 1u + fz_u8(in) % 16u;
	bool wr = fz_u8(in) & 1u;
	uint8_t buf[16];

	fz_bytes(in, buf, 8);
	memcpy(buf + 8, buf, 8);
	(void)region_io(f, VFURT_REGION_BAR0, buf, size, off, wr);
}

/*
 * Every byte of v lies in a mapped window that allows prot. A single iovec
 * may span two windows: the mapping joins pieces that are contiguous in the
 * server's address space, and the kernel may place two windows' mappings
 * side by side (W1 right below W0, a PRP list running from W1's end into
 * W0's start).
 */
static bool iov_ok(const struct fz *f, const struct iovec *v, uint32_t prot)
{
	const uint8_t *b = v->iov_base;
	size_t left = v->iov_len;

	if (!left)
		return false;
	while (left) {
		size_t take = 0;

		for (uint32_t w = 0; w < FZ_NWIN && !take; w++) {
			const uint8_t *va = f->dev_va[w];

			if (!f->mapped[w] || !va || b < va || (size_t)(b - va) >= fz_wins[w].size)
				continue;
			if ((fz_wins[w].prot & prot) != prot)
				return false;
			take = fz_wins[w].size - (size_t)(b - va);
		}
		if (!take)
			return false;
		if (take > left)
			take = left;
		b += take;
		left -= take;
	}
	return true;
}

static void op_map(struct fz *f, struct fz_in *in)
{
	struct iovec iov[NVME_MAX_IOV];
	struct nvme_sqe cmd = { 0 };
	uint8_t psdt = fz_u8(in);
	uint8_t fix = fz_u8(in);
	uint64_t len, sum = 0;
	uint32_t prot;
	int max, niov = -1;
	uint16_t st;

	cmd.flags = psdt;
	cmd.dptr[0] = fz_u64(in);
	cmd.dptr[1] = fz_u64(in);
	if (fix & FZ_FIX_DPTR0)
		cmd.dptr[0] = fz_reloc(cmd.dptr[0]);
	if (fix & FZ_FIX_DPTR1)
		cmd.dptr[1] = fz_reloc(cmd.dptr[1]);
	len = fz_u32(in) % (2u * NVME_MAX_XFER + 1u);
	prot = 1u + fz_u8(in) % 3u;
	max = 1 + fz_u8(in) % NVME_MAX_IOV;
	st = vfr_nvme_map_data(f->c, &cmd, len, prot, iov, max, &niov);
	FZ_CHECK(niov >= 0 && niov <= max, "niov %d of %d", niov, max);
	for (int i = 0; i < niov; i++) {
		FZ_CHECK(iov_ok(f, &iov[i], prot), "iov %d (%p, %zu) outside guest memory or prot %u",
			 i, iov[i].iov_base, iov[i].iov_len, prot);
		sum += iov[i].iov_len;
	}
	FZ_CHECK(st ? sum <= len : sum == len, "status 0x%x: %llu bytes mapped of %llu", st,
		 (unsigned long long)sum, (unsigned long long)len);
	if (!st && len <= 8192u && (fix & 0x80u)) {
		static uint8_t buf[8192];

		if (prot & VFURT_DMA_READ)
			(void)vfr_nvme_copy_from_guest(f->c, &cmd, buf, (size_t)len);
		if (prot & VFURT_DMA_WRITE)
			(void)vfr_nvme_copy_to_guest(f->c, &cmd, buf, (size_t)len);
	}
}

static void op_window(struct fz *f, struct fz_in *in)
{
	uint32_t w = fz_u8(in) % FZ_NWIN;
	uint8_t how = fz_u8(in);
	struct vfurt_dev *dev = f->dev;

	if (!f->mapped[w]) {
		add_window(f, w);
		return;
	}
	/* the engine quiesces before DMA_UNMAP; a disconnect unmaps all without */
	if ((how & 1u) && dev->ops.quiesce)
		(void)dev->ops.quiesce(dev, dev->arg);
	if (how & 2u) {
		vfr_dma_table_remove_all(dev->dma, unmap_cb, dev);
		memset(f->mapped, 0, sizeof(f->mapped));
	} else {
		FZ_CHECK(vfr_dma_table_remove(dev->dma, fz_wins[w].iova, fz_wins[w].size, unmap_cb,
						dev) == 0, "unmap window %u", w);
		f->mapped[w] = false;
	}
}

static void op_reset(struct fz *f, struct fz_in *in)
{
	uint32_t off;

	switch (fz_u8(in) % 5u) {
	case 0:
		if (f->dev->ops.quiesce)
			(void)f->dev->ops.quiesce(f->dev, f->dev->arg);
		(void)vfurt_dev_reset(f->dev, VFURT_RESET_CLIENT);
		memset(f->q, 0, sizeof(f->q));
		break;
	case 1:
		off = find_cap(f, 0x10);
		if (off)
			cfg_wr(f, off + 8, 2, cfg_rd(f, off + 8, 2) | 0x8000u);
		memset(f->q, 0, sizeof(f->q));
		break;
	case 2:
		reg_wr32(f, REG_CC, f->c->cc & ~CC_EN);
		memset(f->q, 0, sizeof(f->q));
		break;
	case 3:
		reg_wr32(f, REG_CC, f->c->cc | 1u << 14);
		break;
	default:
		off = find_cap(f, 0x01);
		if (off) {
			cfg_wr(f, off + 4, 2, 3);
			cfg_wr(f, off + 4, 2, 0);
		}
		break;
	}
}

static void op_cfg(struct fz *f, struct fz_in *in)
{
	uint32_t off = fz_u16(in) % VFURT_PCI_CFG_SIZE_EXP;
	uint32_t size = 1u << (fz_u8(in) % 3u);
	bool wr = fz_u8(in) & 1u;
	uint32_t v = fz_u32(in);

	if (off > VFURT_PCI_CFG_SIZE_EXP - size)
		off = VFURT_PCI_CFG_SIZE_EXP - size;
	if (wr)
		cfg_wr(f, off, size, v);
	else
		(void)cfg_rd(f, off, size);
}

static void op_ioeventfd(struct fz *f)
{
	struct vfurt_dev_watch w[8];
	size_t n = vfurt_dev_watches(f->dev, w, 8);

	for (size_t i = 0; i < n; i++) {
		uint64_t one = 1;

		if (write(w[i].fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
			continue;
		w[i].ready(f->dev, w[i].ctx);
	}
	poll_all(f, 1);
	reap_all(f);
}

static void op_arm(struct fz *f)
{
	for (uint32_t i = 0; i < vfurt_dev_queue_count(f->dev); i++)
		(void)vfurt_queue_arm(vfurt_dev_queue(f->dev, i), true);
	for (uint32_t i = 0; i < vfurt_dev_queue_count(f->dev); i++)
		(void)vfurt_queue_arm(vfurt_dev_queue(f->dev, i), false);
	(void)vfr_nvme_intx_resample(f->c);
}

static struct vfurt_dev *make_ctrl(uint8_t cfg)
{
	uint32_t bs = (cfg & FZ_NVME_CFG_LBA4K) ? 4096u : 512u;
	struct vfurt_bdev *ns[2];
	struct vfurt_nvme_opts o = { .opts_size = sizeof(o), .name = "fz", .serial = "FUZZ",
				     .max_io_queues = 4, .max_queue_entries = 64, .ns = ns,
				     .nr_ns = 2, .own_bdevs = true };
	struct vfurt_dev *dev;

	o.log.level = -1;
	if (verbose) {
		o.log.fn = vfurt_log_stderr;
		o.log.level = VFURT_LOG_DEBUG;
	}
	o.ioeventfd = cfg & FZ_NVME_CFG_TRAP_DB;
	o.irq_per_completion = cfg & FZ_NVME_CFG_IRQ_EACH;
	ns[0] = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "fz-ram", .block_size = bs,
		.size_bytes = FZ_NVME_NS_BYTES });
	ns[1] = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .name = "fz-null",
		.block_size = bs, .size_bytes = 1024 * bs });
	FZ_CHECK(ns[0] && ns[1], "bdevs: %s", strerror(errno));
	dev = vfurt_nvme_create(&o);
	FZ_CHECK(dev, "vfurt_nvme_create: %s", strerror(errno));
	return dev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct fz f;
	int fd_baseline, fds;

	init_once();
	verbose = getenv("VFURT_FUZZ_VERBOSE") != NULL;
	/* counted per input: libFuzzer itself opens fds once it is running */
	fd_baseline = fz_count_fds();
	memset(&f, 0, sizeof(f));
	for (uint32_t w = 0; w < FZ_NWIN; w++)
		if (win_mem[w])
			memset(win_mem[w], 0, fz_wins[w].size);
	f.cfg = fz_u8(&in);
	f.dev = make_ctrl(f.cfg);
	f.c = vfurt_dev_arg(f.dev);
	for (uint32_t w = 0; w < FZ_NWIN; w++)
		add_window(&f, w);
	/* what the engine does once a client negotiated: the admin queue polls */
	f.dev->ops.attach(f.dev, f.dev->arg);
	if (!(f.cfg & FZ_NVME_CFG_RAW))
		bring_up(&f, f.cfg);
	check_ctrl(f.c);

	for (uint32_t ops = 0; fz_more(&in) && ops < 256; ops++) {
		switch (fz_u8(&in) % FZ_NVME_OP_NR) {
		case FZ_NVME_OP_ADMIN:
			op_cmd(&f, &in, false);
			break;
		case FZ_NVME_OP_IO:
			op_cmd(&f, &in, true);
			break;
		case FZ_NVME_OP_MEM:
			op_mem(&in);
			break;
		case FZ_NVME_OP_PRP_LIST:
			op_prp_list(&in);
			break;
		case FZ_NVME_OP_SGL:
			op_sgl(&in);
			break;
		case FZ_NVME_OP_DOORBELL:
			op_doorbell(&f, &in);
			break;
		case FZ_NVME_OP_REG:
			op_reg(&f, &in);
			break;
		case FZ_NVME_OP_POLL:
			poll_all(&f, 1u + fz_u8(&in) % 8u);
			reap_all(&f);
			break;
		case FZ_NVME_OP_MAP:
			op_map(&f, &in);
			break;
		case FZ_NVME_OP_WINDOW:
			op_window(&f, &in);
			break;
		case FZ_NVME_OP_RESET:
			op_reset(&f, &in);
			break;
		case FZ_NVME_OP_CFG:
			op_cfg(&f, &in);
			break;
		case FZ_NVME_OP_IOEVENTFD:
			op_ioeventfd(&f);
			break;
		case FZ_NVME_OP_BRINGUP:
			bring_up(&f, fz_u8(&in));
			break;
		default:
			op_arm(&f);
			break;
		}
		check_ctrl(f.c);
	}
	vfurt_dev_destroy(f.dev);
	fds = fz_count_fds();
	FZ_CHECK(fds == fd_baseline, "%d fds open after the input, %d before", fds, fd_baseline);
	return 0;
}
