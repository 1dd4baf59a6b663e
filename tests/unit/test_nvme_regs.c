/* NVMe controller model tests: BAR0 registers, enable/reset, admin and I/O queues over a real client. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/bdev.h>
#include <vfurt/client.h>
#include <vfurt/device.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>

#include "common/testsrv.h"

#define BAR0 VFURT_REGION_BAR0
#define MEM_SIZE (1u << 20)
#define IOVA 0x100000ull
/* guest memory layout (offsets into the memfd) */
#define ASQ_OFF 0x0000u
#define ACQ_OFF 0x1000u
#define IOSQ_OFF 0x2000u
#define IOCQ_OFF 0x3000u
#define DATA_OFF 0x10000u
#define DATA2_OFF 0x20000u
#define PRPL_OFF 0x4000u
#define QSZ 16u

struct nvme_sqe_t {
	uint8_t opc, flags;
	uint16_t cid;
	uint32_t nsid, cdw2, cdw3;
	uint64_t mptr, prp1, prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};
struct nvme_cqe_t {
	uint32_t dw0, dw1;
	uint16_t sqhd, sqid, cid, status;
};

struct fx {
	struct vfurt_dev *dev;
	struct testsrv *ts;
	struct vfurt_client *c;
	int mfd;
	uint8_t *mem;
	volatile uint32_t *db; /* mmapped doorbell page, or NULL */
	size_t db_len;
	uint32_t sq_tail[2];
	uint32_t cq_head[2];
	bool phase[2];
	uint16_t cid;
	uint32_t bs;
};

/* ---- register access without a server ----------------------------- */

static ssize_t bar0_io(struct vfurt_dev *dev, void *buf, size_t count, uint64_t off, bool wr)
{
	struct vfurt_region_desc d = { .desc_size = sizeof(d) };

	assert_int_equal(vfurt_dev_get_region(dev, BAR0, &d), 0);
	return d.access(dev, d.arg, buf, count, off, wr);
}

static uint32_t rd32(struct vfurt_dev *dev, uint64_t off)
{
	uint32_t v = 0;

	assert_int_equal(bar0_io(dev, &v, 4, off, false), 4);
	return v;
}

static void wr32(struct vfurt_dev *dev, uint64_t off, uint32_t v)
{
	assert_int_equal(bar0_io(dev, &v, 4, off, true), 4);
}

static struct vfurt_dev *new_nvme(uint32_t bs)
{
	struct vfurt_bdev *b = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "ram0", .block_size = bs,
		.size_bytes = 1u << 20 });
	struct vfurt_nvme_opts o = { .opts_size = sizeof(o), .name = "nvme-test", .ns = &b,
				     .nr_ns = 1, .own_bdevs = true, .max_queue_entries = 256 };
	struct vfurt_dev *dev;

	assert_non_null(b);
	o.log.level = -1;
	if (getenv("VFURT_TEST_VERBOSE")) {
		o.log.fn = vfurt_log_stderr;
		o.log.arg = (void *)"nvme";
		o.log.level = VFURT_LOG_DEBUG;
	}
	dev = vfurt_nvme_create(&o);
	assert_non_null(dev);
	return dev;
}

static void test_regs_cap_vs(void **state)
{
	struct vfurt_dev *dev = new_nvme(512);
	uint64_t cap = 0;
	struct vfurt_region_desc d = { .desc_size = sizeof(d) };

	(void)state;
	assert_int_equal(bar0_io(dev, &cap, 8, 0, false), 8);
	assert_int_equal(cap & 0xffff, 255);          /* MQES */
	assert_true(cap & (1ull << 16));              /* CQR */
	assert_int_equal((cap >> 32) & 0xf, 0);       /* DSTRD */
	assert_true(cap & (1ull << 37));              /* CSS NVM */
	assert_int_equal((cap >> 48) & 0xff, 0);      /* MPSMIN/MAX */
	assert_int_equal(rd32(dev, 0x08), 0x00010400);
	/* split 32-bit halves compose the 64-bit ASQ */
	wr32(dev, 0x28, 0x12345000);
	wr32(dev, 0x2c, 0x9);
	assert_int_equal(rd32(dev, 0x28), 0x12345000);
	assert_int_equal(rd32(dev, 0x2c), 0x9);
	/* INTMS sets, INTMC clears */
	wr32(dev, 0x0c, 0x5);
	assert_int_equal(rd32(dev, 0x0c), 0x5);
	wr32(dev, 0x10, 0x1);
	assert_int_equal(rd32(dev, 0x0c), 0x4);
	/* doorbells through the access path reach the shared page */
	wr32(dev, 0x1000, 3);
	assert_int_equal(rd32(dev, 0x1000), 3);
	assert_int_equal(vfurt_dev_get_region(dev, BAR0, &d), 0);
	assert_int_equal(d.nr_sparse, 1);
	assert_int_equal(d.sparse[0].offset, 0x1000);
	/* enable with a bad MPS: CFS, no RDY */
	wr32(dev, 0x24, 0x000f000f);
	wr32(dev, 0x30, 0x1000);
	wr32(dev, 0x14, 1u | 1u << 7 | 6u << 16 | 4u << 20);
	assert_int_equal(rd32(dev, 0x1c) & 3, 2);
	wr32(dev, 0x14, 0);
	assert_int_equal(rd32(dev, 0x1c) & 3, 0);
	/* bad IOSQES */
	wr32(dev, 0x14, 1u | 5u << 16 | 4u << 20);
	assert_int_equal(rd32(dev, 0x1c) & 3, 2);
	wr32(dev, 0x14, 0);
	/* good: RDY (the admin queue is not polled without a client) */
	wr32(dev, 0x14, 1u | 6u << 16 | 4u << 20);
	assert_int_equal(rd32(dev, 0x1c) & 3, 1);
	/* shutdown notification completes at once */
	wr32(dev, 0x14, 1u | 1u << 14 | 6u << 16 | 4u << 20);
	assert_int_equal((rd32(dev, 0x1c) >> 2) & 3, 2);
	wr32(dev, 0x14, 0);
	assert_int_equal(rd32(dev, 0x1c), 0);
	vfurt_dev_destroy(dev);
}

static void test_create_bad_opts(void **state)
{
	struct vfurt_bdev *b = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .name = "n", .block_size = 512,
		.size_bytes = 8 * 512 });
	struct vfurt_nvme_opts o = { .opts_size = sizeof(o), .ns = &b, .nr_ns = 0 };

	(void)state;
	assert_null(vfurt_nvme_create(&o));
	assert_int_equal(errno, EINVAL);
	o.nr_ns = 1;
	o.max_io_queues = 65;
	assert_null(vfurt_nvme_create(&o));
	o.max_io_queues = 0;
	o.max_queue_entries = 1;
	assert_null(vfurt_nvme_create(&o));
	vfurt_bdev_destroy(b);
}

/* ---- over a client -------------------------------------------------- */

static void db_write(struct fx *x, uint32_t idx, uint32_t v)
{
	if (x->db) {
		__atomic_store_n(&x->db[idx], v, __ATOMIC_RELEASE);
		return;
	}
	assert_int_equal(vfurt_client_region_write(x->c, BAR0, 0x1000 + idx * 4, &v, 4), 0);
}

static uint32_t creg32(struct fx *x, uint64_t off)
{
	uint32_t v = 0;

	assert_int_equal(vfurt_client_region_read(x->c, BAR0, off, &v, 4), 0);
	return v;
}

static void cwr32(struct fx *x, uint64_t off, uint32_t v)
{
	assert_int_equal(vfurt_client_region_write(x->c, BAR0, off, &v, 4), 0);
}

static int fx_setup_common(void **state, bool map_db, uint32_t bs, bool rt)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	x->dev = new_nvme(bs);
	x->bs = bs;
	/* the runtime puts the admin queue on the home worker and I/O queue 1
	 * on the other one */
	x->ts = rt ? testsrv_start_rt(&x->dev, 1, NULL, "0-1", VFURT_POLL_ADAPTIVE)
		   : testsrv_start(&x->dev, 1, NULL);
	assert_non_null(x->ts);
	x->c = vfurt_client_connect(testsrv_path(x->ts, 0), NULL);
	assert_non_null(x->c);
	x->mfd = memfd_create("guest", MFD_CLOEXEC);
	assert_true(x->mfd >= 0);
	assert_int_equal(ftruncate(x->mfd, MEM_SIZE), 0);
	x->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, x->mfd, 0);
	assert_true(x->mem != MAP_FAILED);
	assert_int_equal(vfurt_client_dma_map(x->c, IOVA, MEM_SIZE, x->mfd, 0,
					      VFIO_USER_DMA_MAP_FLAG_READ |
						      VFIO_USER_DMA_MAP_FLAG_WRITE,
					      VFURT_CLIENT_DMA_SEND_FD),
			 0);
	if (map_db) {
		void *p;

		assert_int_equal(vfurt_client_region_mmap(x->c, BAR0, 0, PROT_READ | PROT_WRITE,
							  &p, &x->db_len),
				 0);
		x->db = p;
	}
	x->phase[0] = x->phase[1] = true;
	/* enable: AQA, ASQ with split halves, ACQ, CC */
	cwr32(x, 0x24, (QSZ - 1) << 16 | (QSZ - 1));
	cwr32(x, 0x28, (uint32_t)(IOVA + ASQ_OFF));
	cwr32(x, 0x2c, (uint32_t)((IOVA + ASQ_OFF) >> 32));
	{
		uint64_t acq = IOVA + ACQ_OFF;

		assert_int_equal(vfurt_client_region_write(x->c, BAR0, 0x30, &acq, 8), 0);
	}
	cwr32(x, 0x14, 6u << 16 | 4u << 20);
	cwr32(x, 0x14, 1u | 6u << 16 | 4u << 20);
	assert_int_equal(creg32(x, 0x1c) & 3, 1);
	*state = x;
	return 0;
}

static int fx_setup(void **state)
{
	return fx_setup_common(state, false, 512, false);
}

static int fx_setup_rt(void **state)
{
	return fx_setup_common(state, true, 512, true);
}

static int fx_setup_mapped(void **state)
{
	return fx_setup_common(state, true, 4096, false);
}

static int fx_teardown(void **state)
{
	struct fx *x = *state;

	if (x->db)
		munmap((void *)x->db, x->db_len);
	vfurt_client_close(x->c);
	testsrv_stop(x->ts);
	munmap(x->mem, MEM_SIZE);
	close(x->mfd);
	free(x);
	return 0;
}

/* Submit on queue q (0 admin, 1 I/O) and wait for the completion. */
static struct nvme_cqe_t submit(struct fx *x, uint32_t q, struct nvme_sqe_t *cmd)
{
	uint32_t sq_off = q ? IOSQ_OFF : ASQ_OFF;
	uint32_t cq_off = q ? IOCQ_OFF : ACQ_OFF;
	volatile struct nvme_cqe_t *cq = (volatile void *)(x->mem + cq_off);
	struct nvme_cqe_t e;
	struct timespec t0, t1;

	cmd->cid = ++x->cid;
	memcpy(x->mem + sq_off + x->sq_tail[q] * 64u, cmd, 64);
	x->sq_tail[q] = (x->sq_tail[q] + 1) % QSZ;
	db_write(x, 2 * q, x->sq_tail[q]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		uint16_t st = __atomic_load_n(&cq[x->cq_head[q]].status, __ATOMIC_ACQUIRE);

		if ((st & 1) == x->phase[q])
			break;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_true(t1.tv_sec - t0.tv_sec < 5);
		usleep(100);
	}
	memcpy(&e, (const void *)&cq[x->cq_head[q]], sizeof(e));
	if (++x->cq_head[q] == QSZ) {
		x->cq_head[q] = 0;
		x->phase[q] = !x->phase[q];
	}
	db_write(x, 2 * q + 1, x->cq_head[q]);
	assert_int_equal(e.cid, cmd->cid);
	assert_int_equal(e.sqid, q);
	return e;
}

static uint16_t sc(struct nvme_cqe_t e)
{
	return (e.status >> 1) & 0x7ff; /* SCT << 8 | SC */
}

static struct nvme_sqe_t cmd0(uint8_t opc)
{
	struct nvme_sqe_t c;

	memset(&c, 0, sizeof(c));
	c.opc = opc;
	return c;
}

static void create_io_queues(struct fx *x)
{
	struct nvme_sqe_t c = cmd0(0x09);
	struct nvme_cqe_t e;

	c.cdw10 = 0x07;
	c.cdw11 = 0x00030003;
	e = submit(x, 0, &c);
	assert_int_equal(sc(e), 0);
	assert_int_equal(e.dw0, 0x00030003);
	/* SQ before its CQ: Completion Queue Invalid */
	c = cmd0(0x01);
	c.prp1 = IOVA + IOSQ_OFF;
	c.cdw10 = (QSZ - 1) << 16 | 1;
	c.cdw11 = 1u << 16 | 1;
	assert_int_equal(sc(submit(x, 0, &c)), 0x100);
	/* CQ: not contiguous, bad size, bad vector, then good */
	c = cmd0(0x05);
	c.prp1 = IOVA + IOCQ_OFF;
	c.cdw10 = (QSZ - 1) << 16 | 1;
	c.cdw11 = 0;
	assert_int_equal(sc(submit(x, 0, &c)), 0x002);
	c.cdw10 = 0u << 16 | 1;
	c.cdw11 = 1;
	assert_int_equal(sc(submit(x, 0, &c)), 0x102);
	c.cdw10 = (QSZ - 1) << 16 | 1;
	c.cdw11 = 99u << 16 | 1;
	assert_int_equal(sc(submit(x, 0, &c)), 0x108);
	c.cdw11 = 1u << 16 | 1; /* vector 1, interrupts off (IEN 0) */
	assert_int_equal(sc(submit(x, 0, &c)), 0);
	assert_int_equal(sc(submit(x, 0, &c)), 0x101); /* exists */
	c = cmd0(0x01);
	c.prp1 = IOVA + IOSQ_OFF;
	c.cdw10 = (QSZ - 1) << 16 | 1;
	c.cdw11 = 1u << 16 | 1;
	assert_int_equal(sc(submit(x, 0, &c)), 0);
	/* CQ with an SQ attached cannot go */
	c = cmd0(0x04);
	c.cdw10 = 1;
	assert_int_equal(sc(submit(x, 0, &c)), 0x10c);
}

static void test_admin_identify(void **state)
{
	struct fx *x = *state;
	struct nvme_sqe_t c = cmd0(0x06);
	uint8_t *d = x->mem + DATA_OFF;
	uint32_t nn;

	c.prp1 = IOVA + DATA_OFF;
	c.cdw10 = 1;
	assert_int_equal(sc(submit(x, 0, &c)), 0);
	assert_int_equal(d[0] | d[1] << 8, 0x4e58);
	assert_int_equal(d[512], 0x66);
	memcpy(&nn, d + 516, 4);
	assert_int_equal(nn, 32); /* every nsid a namespace may be added at */
	assert_memory_equal(d + 24, "vfu-rt NVMe", 11);
	/* namespace 1 */
	c.cdw10 = 0;
	c.nsid = 1;
	assert_int_equal(sc(submit(x, 0, &c)), 0);
	assert_int_equal(d[130], 9);
	/* active list */
	c.cdw10 = 2;
	c.nsid = 0;
	assert_int_equal(sc(submit(x, 0, &c)), 0);
	assert_int_equal(d[0], 1);
	assert_int_equal(d[4], 0);
	/* descriptors: NGUID first */
	c.cdw10 = 3;
	c.nsid = 1;
	assert_int_equal(sc(submit(x, 0, &c)), 0);
	assert_int_equal(d[0], 2);
	assert_int_equal(d[1], 16);
	/* inactive nsid (zeroes), bad nsid, unknown CNS, unknown opcode */
	c.cdw10 = 0;
	c.nsid = 2;
	assert_int_equal(sc(submit(x, 0, &c)), 0);
	assert_int_equal(d[130], 0);
	c.nsid = 33;
	assert_int_equal(sc(submit(x, 0, &c)), 0x0b);
	c.cdw10 = 0x55;
	assert_int_equal(sc(submit(x, 0, &c)), 0x02);
	c = cmd0(0xc3);
	assert_int_equal(sc(submit(x, 0, &c)), 0x01);
	/* features */
	c = cmd0(0x0a);
	c.cdw10 = 0x08;
	assert_int_equal(sc(submit(x, 0, &c)), 0);
	c = cmd0(0x0a);
	c.cdw10 = 0x42;
	assert_int_equal(sc(submit(x, 0, &c)), 0x02);
	/* SMART log */
	c = cmd0(0x02);
	c.prp1 = IOVA + DATA_OFF;
	c.cdw10 = 0x02 | (512 / 4 - 1) << 16;
	assert_int_equal(sc(submit(x, 0, &c)), 0);
	assert_int_equal(d[3], 100);
	c.cdw10 = 0x77 | (512 / 4 - 1) << 16;
	assert_int_equal(sc(submit(x, 0, &c)), 0x109);
}

static void test_io_rw(void **state)
{
	struct fx *x = *state;
	struct nvme_sqe_t c;
	uint64_t *prpl = (uint64_t *)(void *)(x->mem + PRPL_OFF);
	uint32_t bs = x->bs;
	uint32_t len = 5 * 4096 + 512; /* spans a PRP list */
	uint32_t nlb = len / bs + (len % bs ? 1 : 0);

	create_io_queues(x);
	len = nlb * bs;
	for (uint32_t i = 0; i < len; i++)
		x->mem[DATA_OFF + i] = (uint8_t)(i * 7 + 1);
	/* write: PRP1 with an offset, PRP2 -> list */
	c = cmd0(0x01);
	c.nsid = 1;
	c.prp1 = IOVA + DATA_OFF;
	for (uint32_t i = 0; i < 8; i++)
		prpl[i] = IOVA + DATA_OFF + (i + 1) * 4096ull;
	c.prp2 = IOVA + PRPL_OFF;
	c.cdw10 = 10;
	c.cdw12 = nlb - 1;
	assert_int_equal(sc(submit(x, 1, &c)), 0);
	/* read back elsewhere */
	memset(x->mem + DATA2_OFF, 0, len);
	for (uint32_t i = 0; i < 8; i++)
		prpl[i] = IOVA + DATA2_OFF + (i + 1) * 4096ull;
	c = cmd0(0x02);
	c.nsid = 1;
	c.prp1 = IOVA + DATA2_OFF;
	c.prp2 = IOVA + PRPL_OFF;
	c.cdw10 = 10;
	c.cdw12 = nlb - 1;
	assert_int_equal(sc(submit(x, 1, &c)), 0);
	assert_memory_equal(x->mem + DATA_OFF, x->mem + DATA2_OFF, len);
	/* SGL: one data block descriptor */
	memset(x->mem + DATA2_OFF, 0, bs);
	c = cmd0(0x02);
	c.flags = 1u << 6;
	c.nsid = 1;
	c.prp1 = IOVA + DATA2_OFF;
	c.prp2 = (uint64_t)bs; /* length; type 0 in byte 15 */
	c.cdw10 = 10;
	c.cdw12 = 0;
	assert_int_equal(sc(submit(x, 1, &c)), 0);
	assert_memory_equal(x->mem + DATA_OFF, x->mem + DATA2_OFF, bs);
	/* out of range, bad namespace, unmapped buffer, misaligned PRP2 */
	c = cmd0(0x02);
	c.nsid = 1;
	c.prp1 = IOVA + DATA2_OFF;
	c.cdw10 = (1u << 20) / bs;
	assert_int_equal(sc(submit(x, 1, &c)), 0x80);
	c.cdw10 = 0;
	c.nsid = 3;
	assert_int_equal(sc(submit(x, 1, &c)), 0x0b);
	c.nsid = 1;
	c.prp1 = 0x10;
	assert_int_equal(sc(submit(x, 1, &c)), 0x04);
	c.prp1 = IOVA + DATA2_OFF + 4096 - 8;
	c.prp2 = IOVA + DATA2_OFF + 4096 + 8;
	c.cdw12 = 1;
	if (bs == 512)
		assert_int_equal(sc(submit(x, 1, &c)), 0x13);
	/* flush, write zeroes, deallocate, unknown */
	c = cmd0(0x00);
	c.nsid = 1;
	assert_int_equal(sc(submit(x, 1, &c)), 0);
	c = cmd0(0x08);
	c.nsid = 1;
	c.cdw10 = 10;
	assert_int_equal(sc(submit(x, 1, &c)), 0);
	c = cmd0(0x7f);
	c.nsid = 1;
	assert_int_equal(sc(submit(x, 1, &c)), 0x01);
	/* reading the zeroed block gives zeroes */
	memset(x->mem + DATA2_OFF, 0xaa, bs);
	c = cmd0(0x02);
	c.nsid = 1;
	c.prp1 = IOVA + DATA2_OFF;
	c.cdw10 = 10;
	assert_int_equal(sc(submit(x, 1, &c)), 0);
	assert_int_equal(x->mem[DATA2_OFF], 0);
	assert_int_equal(x->mem[DATA2_OFF + bs - 1], 0);
	/* delete SQ then CQ */
	c = cmd0(0x00);
	c.cdw10 = 1;
	assert_int_equal(sc(submit(x, 0, &c)), 0);
	c = cmd0(0x04);
	c.cdw10 = 1;
	assert_int_equal(sc(submit(x, 0, &c)), 0);
	/* controller reset, then DEVICE_RESET */
	cwr32(x, 0x14, 6u << 16 | 4u << 20);
	assert_int_equal(creg32(x, 0x1c) & 1, 0);
	assert_int_equal(vfurt_client_reset(x->c), 0);
	assert_int_equal(creg32(x, 0x14), 0);
}

static void test_reset_with_queues(void **state)
{
	struct fx *x = *state;
	struct nvme_sqe_t c;

	create_io_queues(x);
	c = cmd0(0x02);
	c.nsid = 1;
	c.prp1 = IOVA + DATA2_OFF;
	assert_int_equal(sc(submit(x, 1, &c)), 0);
	/* a DMA unmap quiesces; I/O continues afterwards */
	assert_int_equal(vfurt_client_dma_map(x->c, IOVA + MEM_SIZE, 4096, x->mfd, 0,
					      VFIO_USER_DMA_MAP_FLAG_READ,
					      VFURT_CLIENT_DMA_SEND_FD),
			 0);
	assert_int_equal(vfurt_client_dma_unmap(x->c, IOVA + MEM_SIZE, 4096, 0), 0);
	assert_int_equal(sc(submit(x, 1, &c)), 0);
	/* DEVICE_RESET with live I/O queues */
	assert_int_equal(vfurt_client_reset(x->c), 0);
	assert_int_equal(creg32(x, 0x1c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_regs_cap_vs),
		cmocka_unit_test(test_create_bad_opts),
		cmocka_unit_test_setup_teardown(test_admin_identify, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_io_rw, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_io_rw, fx_setup_mapped, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reset_with_queues, fx_setup_mapped,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_io_rw, fx_setup_rt, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reset_with_queues, fx_setup_rt, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
