/* Builds the fuzz seed corpus (tests/fuzz/seeds/<target>/) from code, byte for byte the same every run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <vfurt/vfio_user.h>

#include "devices/nvme/nvme_internal.h"
#include "fuzz_formats.h"

/*
 * usage: seedgen DIR          write DIR/msg, DIR/nvme, DIR/pci
 *        seedgen --check DIR  fail unless every seed in DIR is what this
 *                             program would write (other files in DIR, the
 *                             regression inputs of findings, are left alone)
 * Each seed is one meaningful scenario in a target's format
 * (fuzz_formats.h); the fuzzer mutates from there.
 */

struct seed {
	uint8_t b[32768];
	size_t n;
};

static const char *root;
static bool check_mode;
static int failures;
static int written;

static void put(struct seed *s, const void *p, size_t n)
{
	if (s->n + n > sizeof(s->b)) {
		fprintf(stderr, "seedgen: seed too large\n");
		exit(2);
	}
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void p8(struct seed *s, uint8_t v)
{
	put(s, &v, 1);
}

static void p16(struct seed *s, uint16_t v)
{
	put(s, &v, 2);
}

static void p32(struct seed *s, uint32_t v)
{
	put(s, &v, 4);
}

static void p64(struct seed *s, uint64_t v)
{
	put(s, &v, 8);
}

static void emit(const char *target, const char *name, const struct seed *s)
{
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", root, target);
	if (!check_mode && mkdir(path, 0755) && errno != EEXIST) {
		fprintf(stderr, "seedgen: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
	if (check_mode) {
		static uint8_t have[sizeof(s->b) + 1];
		size_t n;

		fp = fopen(path, "rb");
		if (!fp) {
			fprintf(stderr, "seedgen: %s: missing (regenerate the seeds)\n", path);
			failures++;
			return;
		}
		n = fread(have, 1, sizeof(have), fp);
		fclose(fp);
		if (n != s->n || memcmp(have, s->b, n)) {
			fprintf(stderr, "seedgen: %s: differs from its generator\n", path);
			failures++;
		}
		written++;
		return;
	}
	fp = fopen(path, "wb");
	if (!fp || fwrite(s->b, 1, s->n, fp) != s->n || fclose(fp)) {
		fprintf(stderr, "seedgen: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	written++;
}

/* ---- msg --------------------------------------------------------------- */

static void hdr(struct seed *s, uint16_t id, uint16_t cmd, uint32_t payload)
{
	struct vfio_user_header h = { .msg_id = id, .cmd = cmd, .msg_size = 16 + payload };

	put(s, &h, sizeof(h));
}

static void m_dma_map(struct seed *s, uint16_t id, uint32_t flags, uint64_t off, uint64_t addr,
		      uint64_t size)
{
	struct vfio_user_dma_map m = { .argsz = sizeof(m), .flags = flags, .offset = off,
				       .addr = addr, .size = size };

	hdr(s, id, VFIO_USER_DMA_MAP, sizeof(m));
	put(s, &m, sizeof(m));
}

static void m_dma_unmap(struct seed *s, uint16_t id, uint32_t flags, uint64_t addr,
			uint64_t size)
{
	struct vfio_user_dma_unmap m = { .argsz = sizeof(m), .flags = flags, .addr = addr,
					 .size = size };

	hdr(s, id, VFIO_USER_DMA_UNMAP, sizeof(m));
	put(s, &m, sizeof(m));
}

static void m_set_irqs(struct seed *s, uint16_t id, uint32_t flags, uint32_t index,
		       uint32_t start, uint32_t count)
{
	struct vfio_irq_set m = { .argsz = sizeof(m), .flags = flags, .index = index,
				  .start = start, .count = count };

	hdr(s, id, VFIO_USER_DEVICE_SET_IRQS, sizeof(m));
	put(s, &m, sizeof(m));
}

static void m_info(struct seed *s, uint16_t id, uint16_t cmd, uint32_t argsz, uint32_t index)
{
	hdr(s, id, cmd, argsz);
	p32(s, argsz);
	p32(s, 0);
	if (argsz >= 12)
		p32(s, index);
	for (uint32_t i = 12; i < argsz; i += 4)
		p32(s, 0);
}

static void m_region(struct seed *s, uint16_t id, bool wr, uint32_t region, uint64_t off,
		     uint32_t count, uint64_t val)
{
	struct vfio_user_region_access a = { .offset = off, .region = region, .count = count };

	hdr(s, id, wr ? VFIO_USER_REGION_WRITE : VFIO_USER_REGION_READ,
	    sizeof(a) + (wr ? count : 0));
	put(s, &a, sizeof(a));
	if (wr)
		put(s, &val, count);
}

/* One framed record: fds of the given kinds, then the bytes of m. */
static void rec(struct seed *s, const uint8_t *kinds, uint8_t nfds, const struct seed *m)
{
	p8(s, nfds);
	for (uint8_t i = 0; i < nfds; i++)
		p8(s, kinds[i % 8]);
	p16(s, (uint16_t)m->n);
	put(s, m->b, m->n);
}

static void rec1(struct seed *s, uint8_t kind, uint8_t nfds, const struct seed *m)
{
	uint8_t k[8];

	memset(k, kind, sizeof(k));
	rec(s, k, nfds, m);
}

static void seeds_msg(void)
{
	const uint32_t rw = VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE;
	const uint32_t efd_trigger = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	struct seed s, m;

	/* raw mode: the original corpus, one command after VERSION */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION);
	m_dma_map(&s, 8, rw, 0, 0x10000, 0x1000);
	emit("msg", "dma_map_nofd", &s);
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION);
	m_dma_unmap(&s, 9, 0, 0x10000, 0x1000);
	emit("msg", "dma_unmap", &s);
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION);
	m_info(&s, 2, VFIO_USER_DEVICE_GET_INFO, 16, 0);
	emit("msg", "get_info", &s);
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION);
	m_info(&s, 6, VFIO_USER_DEVICE_GET_IRQ_INFO, 16, 0);
	emit("msg", "irq_info", &s);
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION);
	m_info(&s, 3, VFIO_USER_DEVICE_GET_REGION_INFO, 32, VFURT_REGION_CONFIG);
	emit("msg", "region_info_cfg", &s);
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION);
	m_region(&s, 4, false, VFURT_REGION_CONFIG, 0, 4, 0);
	emit("msg", "region_read_cfg", &s);
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION);
	m_region(&s, 5, true, VFURT_REGION_BAR2, 0, 1, 1);
	emit("msg", "region_write_bar2", &s);
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION);
	hdr(&s, 11, VFIO_USER_DEVICE_RESET, 0);
	emit("msg", "reset", &s);
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION);
	m_set_irqs(&s, 7, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1);
	emit("msg", "set_irqs_trigger", &s);
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION);
	hdr(&s, 10, VFIO_USER_REGION_WRITE_MULTI, 8 + 24);
	p64(&s, 1);
	p64(&s, 0);
	p32(&s, VFURT_REGION_BAR2);
	p32(&s, 1);
	p64(&s, 1);
	emit("msg", "write_multi", &s);

	/* framed: fds travel with the messages */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION | FZ_MSG_FRAMED);
	m = (struct seed){ .n = 0 };
	m_dma_map(&m, 20, rw, 0, 0x100000, FZ_FD_MEMFD_SIZE);
	rec1(&s, FZ_FD_MEMFD, 1, &m);
	m = (struct seed){ .n = 0 };
	m_region(&m, 21, false, VFURT_REGION_CONFIG, 0, 64, 0);
	rec1(&s, 0, 0, &m);
	m = (struct seed){ .n = 0 };
	m_dma_unmap(&m, 22, 0, 0x100000, FZ_FD_MEMFD_SIZE);
	rec1(&s, 0, 0, &m);
	emit("msg", "fd_dma_map_unmap", &s);

	/* mapped with an fd offset, unmapped by SPDK's habit (its fd along), all */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION | FZ_MSG_FRAMED);
	m = (struct seed){ .n = 0 };
	m_dma_map(&m, 30, VFIO_USER_DMA_MAP_FLAG_READ, 0x1000, 0x200000, 0x2000);
	rec1(&s, FZ_FD_MEMFD, 1, &m);
	m = (struct seed){ .n = 0 };
	m_dma_map(&m, 31, rw, 0, 0x300000, 0x1000);
	rec1(&s, FZ_FD_MEMFD, 1, &m);
	m = (struct seed){ .n = 0 };
	m_dma_unmap(&m, 32, 0, 0x200000, 0x2000);
	rec1(&s, FZ_FD_MEMFD, 1, &m);
	m = (struct seed){ .n = 0 };
	m_dma_unmap(&m, 33, VFIO_USER_DMA_UNMAP_FLAG_ALL, 0, 0);
	rec1(&s, 0, 0, &m);
	emit("msg", "fd_dma_unmap_with_fd", &s);

	/* refused: an empty memfd, a pipe, two fds for one window, past the file */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION | FZ_MSG_FRAMED);
	m = (struct seed){ .n = 0 };
	m_dma_map(&m, 40, rw, 0, 0x100000, 0x1000);
	rec1(&s, FZ_FD_MEMFD0, 1, &m);
	rec1(&s, FZ_FD_PIPE, 1, &m);
	rec1(&s, FZ_FD_MEMFD, 2, &m);
	m = (struct seed){ .n = 0 };
	m_dma_map(&m, 41, rw, FZ_FD_MEMFD_SIZE, 0x100000, 0x1000);
	rec1(&s, FZ_FD_MEMFD, 1, &m);
	emit("msg", "fd_dma_map_refused", &s);

	/* INTx trigger eventfd; then a pipe, a socket, /dev/null (not eventfds) */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION | FZ_MSG_FRAMED);
	m = (struct seed){ .n = 0 };
	m_set_irqs(&m, 50, efd_trigger, VFURT_IRQ_INTX, 0, 1);
	rec1(&s, FZ_FD_EVENTFD, 1, &m);
	rec1(&s, FZ_FD_PIPE, 1, &m);
	rec1(&s, FZ_FD_SOCKET, 1, &m);
	rec1(&s, FZ_FD_DEVNULL, 1, &m);
	m = (struct seed){ .n = 0 };
	m_set_irqs(&m, 51, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
		   VFURT_IRQ_INTX, 0, 1);
	rec1(&s, FZ_FD_EVENTFD, 1, &m);
	m = (struct seed){ .n = 0 };
	m_set_irqs(&m, 52, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
		   VFURT_IRQ_INTX, 0, 0);
	rec1(&s, 0, 0, &m);
	emit("msg", "fd_set_irqs", &s);

	/* fds on a command that takes none, and on payload bytes (dropped) */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION | FZ_MSG_FRAMED);
	m = (struct seed){ .n = 0 };
	m_info(&m, 60, VFIO_USER_DEVICE_GET_INFO, 16, 0);
	rec1(&s, FZ_FD_EVENTFD, 3, &m);
	m = (struct seed){ .n = 0 };
	m_set_irqs(&m, 61, efd_trigger, VFURT_IRQ_INTX, 0, 1);
	p8(&s, 0);
	p16(&s, 16);
	put(&s, m.b, 16);
	p8(&s, 2);
	p8(&s, FZ_FD_EVENTFD);
	p8(&s, FZ_FD_MEMFD);
	p16(&s, (uint16_t)(m.n - 16));
	put(&s, m.b + 16, m.n - 16);
	emit("msg", "fd_on_payload", &s);

	/* more fds than a message may carry (the kernel truncates at 64 here) */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION | FZ_MSG_FRAMED);
	m = (struct seed){ .n = 0 };
	m_set_irqs(&m, 70, efd_trigger, VFURT_IRQ_INTX, 0, 1);
	p8(&s, 0xff); /* 71 fds */
	for (int i = 0; i < 71; i++)
		p8(&s, FZ_FD_EVENTFD);
	p16(&s, (uint16_t)m.n);
	put(&s, m.b, m.n);
	emit("msg", "fd_too_many", &s);

	/* before VERSION: refused, fds closed */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_FRAMED);
	m = (struct seed){ .n = 0 };
	m_dma_map(&m, 80, rw, 0, 0x100000, 0x1000);
	rec1(&s, FZ_FD_MEMFD, 1, &m);
	emit("msg", "fd_before_version", &s);

	/* NVMe: ioeventfds handed out, MSI-X eventfds, DMA windows */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_MSG_VERSION | FZ_MSG_FRAMED | FZ_MSG_NVME);
	m = (struct seed){ .n = 0 };
	m_info(&m, 90, VFIO_USER_DEVICE_GET_REGION_IO_FDS, 16 + 4 * 40, VFURT_REGION_BAR0);
	rec1(&s, 0, 0, &m);
	m = (struct seed){ .n = 0 };
	m_set_irqs(&m, 91, efd_trigger, VFURT_IRQ_MSIX, 0, 3);
	rec1(&s, FZ_FD_EVENTFD, 3, &m);
	m = (struct seed){ .n = 0 };
	m_dma_map(&m, 92, rw, 0, 0x100000, FZ_FD_MEMFD_SIZE);
	rec1(&s, FZ_FD_MEMFD, 1, &m);
	m = (struct seed){ .n = 0 };
	m_region(&m, 93, true, VFURT_REGION_BAR0, 0x14, 4, 0);
	rec1(&s, 0, 0, &m);
	m = (struct seed){ .n = 0 };
	hdr(&m, 94, VFIO_USER_DEVICE_RESET, 0);
	rec1(&s, 0, 0, &m);
	emit("msg", "nvme_fds", &s);
}

/* ---- nvme -------------------------------------------------------------- */

static struct nvme_sqe sqe(uint8_t opc, uint32_t nsid, uint64_t d0, uint64_t d1)
{
	struct nvme_sqe c;

	memset(&c, 0, sizeof(c));
	c.opc = opc;
	c.nsid = nsid;
	c.dptr[0] = d0;
	c.dptr[1] = d1;
	return c;
}

static void n_admin(struct seed *s, uint8_t fix, const struct nvme_sqe *c)
{
	p8(s, FZ_NVME_OP_ADMIN);
	p8(s, fix);
	put(s, c, sizeof(*c));
}

static void n_io(struct seed *s, uint8_t qid, uint8_t fix, const struct nvme_sqe *c)
{
	p8(s, FZ_NVME_OP_IO);
	p8(s, (uint8_t)(qid - 1));
	p8(s, fix);
	put(s, c, sizeof(*c));
}

/* Read or write nlb + 1 blocks at slba of namespace 1 through PRPs. */
static void n_rw(struct seed *s, uint8_t qid, bool wr, uint64_t slba, uint16_t nlb, uint64_t d0,
		 uint64_t d1)
{
	struct nvme_sqe c = sqe(wr ? 0x01 : 0x02, 1, d0, d1);

	c.cdw10 = (uint32_t)slba;
	c.cdw11 = (uint32_t)(slba >> 32);
	c.cdw12 = nlb;
	n_io(s, qid, FZ_FIX_DPTR0 | FZ_FIX_DPTR1 | FZ_FIX_CID, &c);
}

static void n_mem(struct seed *s, uint8_t w, uint16_t off, const void *p, uint8_t len)
{
	p8(s, FZ_NVME_OP_MEM);
	p8(s, w);
	p16(s, off);
	p8(s, (uint8_t)(len - 1));
	put(s, p, len);
}

static void n_poll(struct seed *s, uint8_t rounds)
{
	p8(s, FZ_NVME_OP_POLL);
	p8(s, rounds);
}

static void n_map(struct seed *s, uint8_t psdt, uint8_t fix, uint64_t d0, uint64_t d1,
		  uint32_t len, uint8_t prot, uint8_t max)
{
	p8(s, FZ_NVME_OP_MAP);
	p8(s, psdt);
	p8(s, fix);
	p64(s, d0);
	p64(s, d1);
	p32(s, len);
	p8(s, (uint8_t)(prot - 1));
	p8(s, (uint8_t)(max - 1));
}

static void n_sgl(struct seed *s, uint8_t w, uint16_t off, const struct nvme_sgl_desc *d,
		  uint8_t n)
{
	p8(s, FZ_NVME_OP_SGL);
	p8(s, w);
	p16(s, off);
	p8(s, (uint8_t)(n - 1));
	for (uint8_t i = 0; i < n; i++) {
		p64(s, d[i].addr);
		p32(s, d[i].len);
		p8(s, d[i].type);
	}
}

static struct nvme_sgl_desc sgl(uint64_t addr, uint32_t len, uint8_t type)
{
	struct nvme_sgl_desc d;

	memset(&d, 0, sizeof(d));
	d.addr = addr;
	d.len = len;
	d.type = type;
	return d;
}

/* An SQE whose DPTR is one SGL descriptor (PSDT 01b). */
static void n_sgl_rw(struct seed *s, bool wr, uint16_t nlb, struct nvme_sgl_desc d)
{
	struct nvme_sqe c = sqe(wr ? 0x01 : 0x02, 1, d.addr, 0);

	c.flags = 0x40;
	memcpy(&c.dptr[1], (const uint8_t *)&d + 8, 8);
	c.cdw12 = nlb;
	n_io(s, 1, FZ_FIX_DPTR0 | FZ_FIX_CID, &c);
}

#define W0(o) FZ_ADDR(0, (o))
#define W1(o) FZ_ADDR(1, (o))
#define W2(o) FZ_ADDR(2, (o))
#define W3(o) FZ_ADDR(3, (o))
#define W4(o) FZ_ADDR(4, (o))
#define NQ(n) ((uint8_t)((n) << FZ_NVME_CFG_NQ_SHIFT))

static void seeds_nvme(void)
{
	struct nvme_sqe c;
	struct nvme_sgl_desc d[4];
	struct seed s;

	/* Identify controller and namespaces, one page across W0 and W1 */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX | NQ(1));
	c = sqe(0x06, 0, W1(0), 0);
	c.cdw10 = 1;
	n_admin(&s, FZ_FIX_DPTR0 | FZ_FIX_CID, &c);
	c = sqe(0x06, 1, W0(0xf800), W1(0x1000));
	n_admin(&s, FZ_FIX_DPTR0 | FZ_FIX_DPTR1 | FZ_FIX_CID, &c);
	c = sqe(0x06, 0, W1(0x2000), 0);
	c.cdw10 = 2;
	n_admin(&s, FZ_FIX_DPTR0 | FZ_FIX_CID, &c);
	c = sqe(0x06, 2, W1(0x3000), 0);
	c.cdw10 = 3;
	n_admin(&s, FZ_FIX_DPTR0 | FZ_FIX_CID, &c);
	emit("nvme", "identify", &s);

	/* write and read back one block, then 8 pages through a PRP list */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX | NQ(1));
	n_mem(&s, 1, 0, "vfu-rt fuzz seed", 16);
	n_rw(&s, 1, true, 0, 0, W1(0), 0);
	n_rw(&s, 1, false, 0, 0, W1(0x1000), 0);
	p8(&s, FZ_NVME_OP_PRP_LIST);
	p8(&s, 0);
	p16(&s, FZ_NVME_FREE);
	p8(&s, 1);
	p16(&s, 7);
	p8(&s, 1);
	p8(&s, 1);
	n_rw(&s, 1, true, 8, 63, W1(0), W0(FZ_NVME_FREE));
	n_rw(&s, 1, false, 8, 63, W1(0), W0(FZ_NVME_FREE));
	emit("nvme", "io_prp", &s);

	/* 128 KiB (MDTS) through a chained PRP list: 2 entries at a page's end
	 * (data, chain), then 30 more; 4 KiB LBAs, two queue pairs */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX | FZ_NVME_CFG_LBA4K | NQ(2));
	p8(&s, FZ_NVME_OP_PRP_LIST);
	p8(&s, 0);
	p16(&s, FZ_NVME_FREE + 0x1000 - 16);
	p8(&s, 0);
	p8(&s, 2);
	p8(&s, 1);
	p8(&s, 1);
	p8(&s, 0);
	p8(&s, (FZ_NVME_FREE + 0x1000) / 0x1000);
	p8(&s, FZ_NVME_OP_PRP_LIST);
	p8(&s, 0);
	p16(&s, FZ_NVME_FREE + 0x1000);
	p8(&s, 0);
	p8(&s, 30);
	for (int i = 0; i < 30; i++) {
		p8(&s, 1);
		p8(&s, (uint8_t)((2 + i) % 16));
	}
	n_rw(&s, 2, true, 4, 31, W1(0), W0(FZ_NVME_FREE + 0x1000 - 16));
	n_rw(&s, 1, false, 4, 31, W1(0), W0(FZ_NVME_FREE + 0x1000 - 16));
	n_rw(&s, 1, false, 60, 31, W1(0), W0(FZ_NVME_FREE + 0x1000 - 16)); /* past the end */
	emit("nvme", "io_prp_chain", &s);

	/* SGL: a data block in the SQE, a last segment, a segment chain */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX | NQ(1));
	n_sgl_rw(&s, true, 0, sgl(W1(0x100), 512, 0x00));
	d[0] = sgl(W1(0), 256, 0x00);
	d[1] = sgl(W1(0x800), 256, 0x00);
	n_sgl(&s, 0, FZ_NVME_FREE, d, 2);
	n_sgl_rw(&s, false, 0, sgl(W0(FZ_NVME_FREE), 32, 0x30));
	d[0] = sgl(W1(0x2000), 1024, 0x00);
	d[1] = sgl(W0(FZ_NVME_FREE + 0x200), 16, 0x30);
	n_sgl(&s, 0, FZ_NVME_FREE + 0x100, d, 2);
	d[0] = sgl(W1(0x3000), 1024, 0x00);
	n_sgl(&s, 0, FZ_NVME_FREE + 0x200, d, 1);
	n_sgl_rw(&s, true, 3, sgl(W0(FZ_NVME_FREE + 0x100), 32, 0x20));
	n_sgl_rw(&s, true, 0, sgl(W2(0), 512, 0x10)); /* bit bucket: refused */
	emit("nvme", "io_sgl", &s);

	/* Dataset Management, Write Zeroes, Flush (one namespace, all) */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX | NQ(1));
	{
		struct nvme_dsm_range r[2] = { { 0, 8, 0 }, { 0, 16, 100 } };

		n_mem(&s, 1, 0, r, sizeof(r));
	}
	c = sqe(0x09, 1, W1(0), 0);
	c.cdw10 = 1;
	c.cdw11 = 1u << 2;
	n_io(&s, 1, FZ_FIX_DPTR0 | FZ_FIX_CID, &c);
	c = sqe(0x08, 1, 0, 0);
	c.cdw10 = 10;
	c.cdw12 = 99;
	n_io(&s, 1, FZ_FIX_CID, &c);
	c = sqe(0x00, 1, 0, 0);
	n_io(&s, 1, FZ_FIX_CID, &c);
	c = sqe(0x00, 0xffffffffu, 0, 0);
	n_io(&s, 1, FZ_FIX_CID, &c);
	c = sqe(0x7f, 1, 0, 0);
	n_io(&s, 1, FZ_FIX_CID, &c);
	emit("nvme", "io_dsm_wz_flush", &s);

	/* queue management: delete and create again, errors on the way */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX | NQ(2));
	c = sqe(0x04, 0, 0, 0);
	c.cdw10 = 1;
	n_admin(&s, FZ_FIX_CID, &c); /* CQ with an SQ: refused */
	c = sqe(0x00, 0, 0, 0);
	c.cdw10 = 1;
	n_admin(&s, FZ_FIX_CID, &c);
	c = sqe(0x04, 0, 0, 0);
	c.cdw10 = 1;
	n_admin(&s, FZ_FIX_CID, &c);
	c = sqe(0x05, 0, W0(FZ_NVME_IOCQ(1)), 0);
	c.cdw10 = (FZ_NVME_QSZ - 1) << 16 | 1;
	c.cdw11 = 1u << 16 | 3u;
	n_admin(&s, FZ_FIX_DPTR0 | FZ_FIX_CID, &c);
	c = sqe(0x01, 0, W0(FZ_NVME_IOSQ(1)), 0);
	c.cdw10 = (FZ_NVME_QSZ - 1) << 16 | 1;
	c.cdw11 = 2u << 16 | 1u; /* on CQ 2: two SQs share it */
	n_admin(&s, FZ_FIX_DPTR0 | FZ_FIX_CID, &c);
	n_rw(&s, 1, true, 0, 7, W1(0), 0);
	n_rw(&s, 2, false, 0, 7, W1(0), 0);
	emit("nvme", "queues", &s);

	/* features and log pages */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX);
	c = sqe(0x09, 0, 0, 0);
	c.cdw10 = 0x07;
	c.cdw11 = 0x00010001;
	n_admin(&s, FZ_FIX_CID, &c);
	c = sqe(0x09, 0, 0, 0);
	c.cdw10 = 0x08;
	c.cdw11 = 0x0a03;
	n_admin(&s, FZ_FIX_CID, &c);
	c = sqe(0x0a, 0, 0, 0);
	c.cdw10 = 0x09;
	c.cdw11 = 2;
	n_admin(&s, FZ_FIX_CID, &c);
	c = sqe(0x02, 0xffffffffu, W1(0), 0);
	c.cdw10 = 0x02 | 127u << 16;
	n_admin(&s, FZ_FIX_DPTR0 | FZ_FIX_CID, &c);
	c = sqe(0x02, 0, W1(0x10), W1(0x1000));
	c.cdw10 = 0x05 | 1023u << 16;
	n_admin(&s, FZ_FIX_DPTR0 | FZ_FIX_DPTR1 | FZ_FIX_CID, &c);
	c = sqe(0x02, 0, W1(0), 0);
	c.cdw10 = 0x01 | 15u << 16;
	c.cdw12 = 64;
	n_admin(&s, FZ_FIX_DPTR0 | FZ_FIX_CID, &c);
	emit("nvme", "features_logs", &s);

	/* async events: 4 AERs, a write to a doorbell with no queue, an invalid tail */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX | FZ_NVME_CFG_TRAP_DB | NQ(1));
	c = sqe(0x09, 0, 0, 0);
	c.cdw10 = 0x0b;
	c.cdw11 = 0x1ff;
	n_admin(&s, FZ_FIX_CID, &c);
	c = sqe(0x0c, 0, 0, 0);
	for (int i = 0; i < 5; i++)
		n_admin(&s, FZ_FIX_CID, &c);
	p8(&s, FZ_NVME_OP_DOORBELL);
	p16(&s, 2 * 9);
	p32(&s, 1);
	p8(&s, 0);
	p8(&s, FZ_NVME_OP_DOORBELL);
	p16(&s, 2 * 1);
	p32(&s, 1000);
	p8(&s, 0);
	n_poll(&s, 3);
	c = sqe(0x02, 0, W1(0), 0);
	c.cdw10 = 0x01 | 63u << 16;
	n_admin(&s, FZ_FIX_DPTR0 | FZ_FIX_CID, &c);
	p8(&s, FZ_NVME_OP_IOEVENTFD);
	emit("nvme", "aer_events", &s);

	/* shadow doorbells, trapped, with event indexes, sleeping and waking */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX | FZ_NVME_CFG_DBBUF | FZ_NVME_CFG_TRAP_DB | NQ(2));
	n_rw(&s, 1, true, 0, 15, W1(0), W1(0x1000));
	p8(&s, FZ_NVME_OP_ARM);
	n_rw(&s, 2, false, 0, 15, W1(0x4000), W1(0x5000));
	p8(&s, FZ_NVME_OP_IOEVENTFD);
	p8(&s, FZ_NVME_OP_ARM);
	n_poll(&s, 2);
	emit("nvme", "dbbuf", &s);

	/* INTx (no MSI-X): DBBUF refused; INTMS, resample */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_DBBUF | FZ_NVME_CFG_IRQ_EACH | NQ(1));
	n_rw(&s, 1, true, 0, 0, W1(0), 0);
	p8(&s, FZ_NVME_OP_REG);
	p16(&s, 0x0c);
	p8(&s, 3);
	p8(&s, 1);
	p64(&s, 1);
	n_rw(&s, 1, false, 0, 0, W1(0), 0);
	p8(&s, FZ_NVME_OP_ARM);
	emit("nvme", "intx", &s);

	/* resets with commands queued: CC.EN 0, shutdown, FLR, DEVICE_RESET, D3hot */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX | NQ(3));
	for (uint8_t kind = 0; kind < 5; kind++) {
		n_rw(&s, 1, true, 0, 7, W1(0), 0);
		c = sqe(0x02, 1, W1(0x1000), 0);
		c.cdw12 = 7;
		n_io(&s, 2, FZ_FIX_DPTR0 | FZ_FIX_CID | FZ_FIX_NOPOLL, &c);
		p8(&s, FZ_NVME_OP_RESET);
		p8(&s, kind);
		p8(&s, FZ_NVME_OP_BRINGUP);
		p8(&s, FZ_NVME_CFG_MSIX | NQ(3));
	}
	emit("nvme", "resets", &s);

	/* DMA windows go away under the queues (quiesced, then a disconnect) */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX | FZ_NVME_CFG_DBBUF | NQ(1));
	c = sqe(0x02, 1, W1(0), 0);
	c.cdw12 = 7;
	n_io(&s, 1, FZ_FIX_DPTR0 | FZ_FIX_CID | FZ_FIX_NOPOLL, &c);
	p8(&s, FZ_NVME_OP_WINDOW);
	p8(&s, 1);
	p8(&s, 1);
	n_rw(&s, 1, false, 0, 7, W1(0), 0);
	p8(&s, FZ_NVME_OP_WINDOW);
	p8(&s, 1);
	p8(&s, 0);
	n_rw(&s, 1, false, 0, 7, W1(0), 0);
	p8(&s, FZ_NVME_OP_WINDOW);
	p8(&s, 0);
	p8(&s, 2);
	n_poll(&s, 2);
	emit("nvme", "windows", &s);

	/* the walker on its own: PRPs and SGLs over every window, checked */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_MSIX);
	n_map(&s, 0x00, 3, W0(0xff00), W1(0), 4096, 3, 64);
	n_map(&s, 0x00, 3, W2(0x10), W2(0x1000), 8192, 1, 64);
	n_map(&s, 0x00, 3, W2(0x10), W2(0x1000), 8192, 2, 64);
	n_map(&s, 0x00, 3, W3(0), W3(0x1000), 8192, 2, 2);
	n_map(&s, 0x00, 3, W4(0), 0, 512, 1, 8);
	d[0] = sgl(W0(0xfff0), 32, 0x00);
	d[1] = sgl(W1(0x10), 480, 0x00);
	n_sgl(&s, 0, FZ_NVME_FREE, d, 2);
	n_map(&s, 0x40, 1, W0(FZ_NVME_FREE), (uint64_t)0x30 << 56 | 32, 512, 3, 64);
	n_map(&s, 0xc0, 0x81, W0(FZ_NVME_FREE), (uint64_t)0x30 << 56 | 32, 512, 3, 64);
	n_map(&s, 0x40, 0x81, W1(0), (uint64_t)0x00 << 56 | 4096, 4096, 3, 1);
	emit("nvme", "walker", &s);

	/* registers by hand: a bad enable, split 64-bit writes, odd sizes */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_NVME_CFG_RAW);
	p8(&s, FZ_NVME_OP_REG);
	p16(&s, 0x24);
	p8(&s, 3);
	p8(&s, 1);
	p64(&s, 0x000f000f);
	p8(&s, FZ_NVME_OP_REG);
	p16(&s, 0x14);
	p8(&s, 3);
	p8(&s, 1);
	p64(&s, 1u | 1u << 7);
	p8(&s, FZ_NVME_OP_REG);
	p16(&s, 0x00);
	p8(&s, 15);
	p8(&s, 0);
	p64(&s, 0);
	p8(&s, FZ_NVME_OP_REG);
	p16(&s, 0xffe);
	p8(&s, 3);
	p8(&s, 1);
	p64(&s, ~0ull);
	p8(&s, FZ_NVME_OP_BRINGUP);
	p8(&s, FZ_NVME_CFG_MSIX | NQ(1));
	p8(&s, FZ_NVME_OP_DOORBELL);
	p16(&s, 2);
	p32(&s, 0xc0000001u);
	p8(&s, 3);
	emit("nvme", "registers", &s);
}

/* ---- pci --------------------------------------------------------------- */

static void c_rd(struct seed *s, uint16_t off, uint8_t size)
{
	p8(s, FZ_PCI_OP_CFG_READ);
	p16(s, off);
	p8(s, size);
}

/* len bytes (1-16): v little endian, repeated (len > 4 must not read past v) */
static void c_wr(struct seed *s, uint16_t off, uint32_t len, uint32_t v)
{
	uint8_t b[16];

	for (uint32_t i = 0; i < len && i < sizeof(b); i++)
		b[i] = (uint8_t)(v >> (8 * (i % 4)));
	p8(s, FZ_PCI_OP_CFG_WRITE);
	p16(s, off);
	p8(s, (uint8_t)(len - 1));
	put(s, b, len);
}

static void c_bar(struct seed *s, uint8_t bar, uint32_t off, uint8_t len, bool wr, uint64_t v)
{
	p8(s, FZ_PCI_OP_BAR);
	p8(s, bar);
	p32(s, off);
	p8(s, (uint8_t)(len - 1));
	p8(s, wr);
	p64(s, v);
	p64(s, v);
}

static void c_irq(struct seed *s, uint8_t index, uint16_t v, uint8_t how)
{
	p8(s, FZ_PCI_OP_IRQS);
	p8(s, index);
	p16(s, v);
	p8(s, how);
}

static void c_trigger(struct seed *s, uint8_t index, uint16_t v)
{
	p8(s, FZ_PCI_OP_TRIGGER);
	p8(s, index);
	p16(s, v);
}

/* Probe every BAR the way firmware sizes them. */
static void c_size_bars(struct seed *s)
{
	for (uint16_t off = 0x10; off <= 0x30; off += 4) {
		c_wr(s, off, 4, 0xffffffffu);
		c_rd(s, off, 3);
		c_wr(s, off, 4, 0);
	}
}

/* MSI-X at cap offset cap, table in bar at toff, PBA in pbar at poff. */
static void c_msix(struct seed *s, uint16_t cap, uint8_t bar, uint32_t toff, uint8_t pbar,
		   uint32_t poff)
{
	c_irq(s, VFURT_IRQ_MSIX, 0, 0);
	c_irq(s, VFURT_IRQ_MSIX, 1, 0);
	c_trigger(s, VFURT_IRQ_MSIX, 0);               /* disabled: pending */
	c_wr(s, cap + 2, 2, 0x8000);                   /* enable: vector 0 unmasked by assign */
	c_bar(s, pbar, poff, 8, false, 0);
	c_bar(s, bar, toff + 16 + 12, 4, true, 0);     /* unmask 1 by a table write */
	c_trigger(s, VFURT_IRQ_MSIX, 1);
	c_wr(s, cap + 2, 2, 0xc000);                   /* function mask */
	c_trigger(s, VFURT_IRQ_MSIX, 1);
	c_bar(s, pbar, poff, 8, false, 0);
	c_wr(s, cap + 2, 2, 0x8000);
	c_bar(s, bar, toff, 16, true, 0xfee00000ull);
	c_irq(s, VFURT_IRQ_MSIX, 1, 2);                /* client mask */
	c_trigger(s, VFURT_IRQ_MSIX, 1);
	c_irq(s, VFURT_IRQ_MSIX, 1, 3);
	c_irq(s, VFURT_IRQ_MSIX, 0, 1);
	c_bar(s, bar, toff, 8, false, 0);
}

static void seeds_pci(void)
{
	struct seed s;

	/* GPIO: conventional config space, PM at 0x40, BAR2 I/O */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_PCI_DEV_GPIO);
	c_rd(&s, 0, 0xf0);
	c_size_bars(&s);
	c_wr(&s, 0x04, 2, 0x0407);                     /* I/O, memory, master, INTx disable */
	c_wr(&s, 0x06, 2, 0xffff);                     /* status is RW1C */
	c_irq(&s, VFURT_IRQ_INTX, 0, 0);
	c_trigger(&s, VFURT_IRQ_INTX, 0);
	c_wr(&s, 0x04, 2, 0x0003);
	c_trigger(&s, VFURT_IRQ_INTX, 0);
	c_wr(&s, 0x44, 2, 3);                          /* D3hot */
	c_wr(&s, 0x44, 2, 1);                          /* D1: refused */
	c_wr(&s, 0x44, 2, 0);
	c_bar(&s, 2, 0, 1, true, 0xff);
	c_bar(&s, 2, 2, 1, false, 0);
	c_bar(&s, 2, 0xfc, 8, false, 0);
	p8(&s, FZ_PCI_OP_RESET);
	p8(&s, 0);
	p8(&s, FZ_PCI_OP_DETACH);
	emit("pci", "gpio", &s);

	/* NVMe: PCIe, MSI-X table at BAR4 0 and PBA at 0x800 */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_PCI_DEV_NVME);
	c_rd(&s, 0, 0xff);
	c_size_bars(&s);
	c_msix(&s, 0x48, 4, 0, 4, 0x800);
	c_wr(&s, 0x54 + 8, 2, 0x8000);                 /* FLR (PCIe cap at 0x54) */
	c_rd(&s, 0x100, 0xf0);
	c_bar(&s, 4, 0x7f8, 16, true, ~0ull);          /* table end into the gap */
	c_bar(&s, 4, 0xff8, 8, false, 0);
	p8(&s, FZ_PCI_OP_RESET);
	p8(&s, 2);
	emit("pci", "nvme", &s);

	/* the zoo: MSI with masks and MME, MSI-X over two BARs, ext caps, hook */
	s = (struct seed){ .n = 0 };
	p8(&s, FZ_PCI_DEV_ZOO);
	c_rd(&s, 0, 0xff);
	c_size_bars(&s);
	c_irq(&s, VFURT_IRQ_MSI, 0, 0);
	c_irq(&s, VFURT_IRQ_MSI, 3, 0);
	c_wr(&s, 0x48 + 2, 2, 0x0031);                 /* enable, MME 8 vectors */
	c_wr(&s, 0x48 + 0x10, 4, 0x8);                 /* mask vector 3 */
	c_trigger(&s, VFURT_IRQ_MSI, 3);
	c_rd(&s, 0x48 + 0x14, 3);
	c_wr(&s, 0x48 + 0x10, 4, 0);
	c_trigger(&s, VFURT_IRQ_MSI, 0);
	c_wr(&s, 0x48 + 2, 2, 0x0071);                 /* MME beyond MMC */
	c_msix(&s, 0x60, 2, 0x1000, 3, 0x800);
	c_rd(&s, 0xc0, 0xf0);                          /* the device's own bytes */
	c_wr(&s, 0xf0, 16, 0x11223344);
	c_rd(&s, 0x100, 0xf0);
	c_bar(&s, 6, 0, 8, false, 0);
	c_bar(&s, 1, 0xf8, 8, true, 0x55);
	p8(&s, FZ_PCI_OP_DETACH);
	p8(&s, FZ_PCI_OP_RESET);
	p8(&s, 1);
	emit("pci", "zoo", &s);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--check") == 0) {
		check_mode = true;
		root = argv[2];
	} else if (argc == 2) {
		root = argv[1];
		if (mkdir(root, 0755) && errno != EEXIST) {
			fprintf(stderr, "seedgen: %s: %s\n", root, strerror(errno));
			return 2;
		}
	} else {
		fprintf(stderr, "usage: seedgen DIR | seedgen --check DIR\n");
		return 2;
	}
	seeds_msg();
	seeds_nvme();
	seeds_pci();
	if (failures)
		return 1;
	printf("seedgen: %d seeds %s\n", written, check_mode ? "match" : "written");
	return 0;
}
