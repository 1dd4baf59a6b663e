/* Unit tests for MSI-X emulation in devices/pci: capability, table, PBA, masks, BAR hook. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/dev_util.h"

#include <vfurt/device.h>
#include <vfurt/pci.h>

#include "io/device_internal.h"

#define BAR0_SIZE 0x4000u
#define TABLE_OFF 0x2000u
#define PBA_OFF 0x3000u
#define NVEC 8u

/* The device's own BAR0 model: plain memory, and a log of what reached it. */
struct bar_model {
	uint8_t mem[BAR0_SIZE];
	int calls;
	uint64_t last_off;
	size_t last_count;
};

static ssize_t bar_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			  uint64_t offset, bool is_write)
{
	struct bar_model *m = arg;

	m->calls++;
	m->last_off = offset;
	m->last_count = count;
	if (is_write)
		memcpy(m->mem + offset, buf, count);
	else
		memcpy(buf, m->mem + offset, count);
	return (ssize_t)count;
}

struct fx {
	struct vfurt_dev *dev;
	struct vfurt_pci *pci;
	struct bar_model bar0;
	struct bar_model bar4;
	uint32_t cap;
};

/* BAR0 16 KiB (table at 0x2000, PBA at 0x3000), BAR4 4 KiB spare; PM + MSI-X. */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	int off;

	assert_non_null(f);
	f->dev = du_dev_new("msix");
	assert_int_equal(du_region_add(f->dev, VFURT_REGION_BAR0, BAR0_SIZE, 0, bar_access,
				       &f->bar0), 0);
	assert_int_equal(du_region_add(f->dev, VFURT_REGION_BAR4, 0x1000, 0, bar_access,
				       &f->bar4), 0);
	f->pci = du_pci_new(f->dev, VFURT_PCI_CFG_SIZE_EXP);
	assert_true(vfurt_pci_add_pm(f->pci) > 0);
	off = vfurt_pci_add_msix(f->pci, NVEC, 0, TABLE_OFF, 0, PBA_OFF);
	assert_true(off > 0);
	f->cap = (uint32_t)off;
	*state = f;
	return 0;
}

#define CFG VFURT_REGION_CONFIG
#define BAR0 VFURT_REGION_BAR0

static uint64_t entry_off(uint32_t v, uint32_t field)
{
	return TABLE_OFF + 16ull * v + field;
}

static void msix_ctrl(struct fx *f, uint16_t v)
{
	du_wr(f->dev, CFG, f->cap + 2, 2, v);
}

/* ---- tests -------------------------------------------------------------- */

static void test_msix_cap(void **state)
{
	struct fx *f = *state;
	uint32_t off = (uint32_t)du_rd(f->dev, CFG, 0x34, 1);

	/* reachable from the list: PM first, then MSI-X */
	assert_int_equal(du_rd(f->dev, CFG, off, 1), 0x01);
	off = (uint32_t)du_rd(f->dev, CFG, off + 1, 1);
	assert_int_equal(off, f->cap);
	assert_int_equal(du_rd(f->dev, CFG, off, 1), 0x11);
	assert_int_equal(du_rd(f->dev, CFG, off + 1, 1), 0);
	assert_int_equal(du_rd(f->dev, CFG, off + 2, 2), NVEC - 1);
	assert_int_equal(du_rd(f->dev, CFG, off + 4, 4), TABLE_OFF | 0);
	assert_int_equal(du_rd(f->dev, CFG, off + 8, 4), PBA_OFF | 0);
	/* table size and BIR/offset are read-only, enable/fmask writable */
	du_wr(f->dev, CFG, off + 2, 2, 0xffff);
	assert_int_equal(du_rd(f->dev, CFG, off + 2, 2), 0xc000 | (NVEC - 1));
	assert_true(vfurt_pci_msix_enabled(f->pci));
	du_wr(f->dev, CFG, off + 4, 4, 0);
	assert_int_equal(du_rd(f->dev, CFG, off + 4, 4), TABLE_OFF);
	assert_int_equal(vfurt_dev_irq_count(f->dev, VFURT_IRQ_MSIX), NVEC);
}

static void test_table_initial(void **state)
{
	struct fx *f = *state;

	for (uint32_t v = 0; v < NVEC; v++) {
		assert_int_equal(du_rd(f->dev, BAR0, entry_off(v, 0), 8), 0);
		assert_int_equal(du_rd(f->dev, BAR0, entry_off(v, 8), 4), 0);
		assert_int_equal(du_rd(f->dev, BAR0, entry_off(v, 12), 4), 1); /* masked */
	}
	assert_int_equal(du_rd(f->dev, BAR0, PBA_OFF, 8), 0);
	assert_int_equal(f->bar0.calls, 0);
}

static void test_table_rw(void **state)
{
	struct fx *f = *state;

	du_wr(f->dev, BAR0, entry_off(2, 0), 4, 0xfee00003);      /* low address bits RO */
	du_wr(f->dev, BAR0, entry_off(2, 4), 4, 0x00000001);
	du_wr(f->dev, BAR0, entry_off(2, 8), 4, 0x00004041);
	du_wr(f->dev, BAR0, entry_off(2, 12), 4, 0xfffffffe);     /* reserved bits RO */
	assert_int_equal(du_rd(f->dev, BAR0, entry_off(2, 0), 8), 0x00000001fee00000ull);
	assert_int_equal(du_rd(f->dev, BAR0, entry_off(2, 8), 4), 0x4041);
	assert_int_equal(du_rd(f->dev, BAR0, entry_off(2, 12), 4), 0);

	/* 8-byte write of data + vector control */
	du_wr(f->dev, BAR0, entry_off(3, 8), 8, 0x0000000100005151ull);
	assert_int_equal(du_rd(f->dev, BAR0, entry_off(3, 8), 8), 0x0000000100005151ull);

	/* byte and straddling writes: the last 2 bytes of entry 4 and first 2 of 5 */
	du_wr(f->dev, BAR0, entry_off(4, 14), 4, 0xbbaaffff);
	assert_int_equal(du_rd(f->dev, BAR0, entry_off(4, 12), 4), 1);
	assert_int_equal(du_rd(f->dev, BAR0, entry_off(5, 0), 4), 0xbba8);
	du_wr(f->dev, BAR0, entry_off(5, 2), 1, 0xe0);
	assert_int_equal(du_rd(f->dev, BAR0, entry_off(5, 0), 4), 0xe0bba8);
	/* odd-sized unaligned read across two entries */
	assert_int_equal(du_rd(f->dev, BAR0, entry_off(4, 13), 7), 0xe0bba8000000ull);

	/* none of this reached the device's own callback */
	assert_int_equal(f->bar0.calls, 0);
}

static void test_masked_vector_pba(void **state)
{
	struct fx *f = *state;
	struct vfurt_dev *dev = f->dev;
	int efd = du_attach_efd(dev, VFURT_IRQ_MSIX, 3);

	msix_ctrl(f, 0x8000); /* enable */
	assert_true(vfurt_pci_msix_enabled(f->pci));

	/* vector 3 is still masked in its table entry */
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 3), 0);
	assert_int_equal(du_efd_count(efd), 0);
	assert_int_equal(du_rd(dev, BAR0, PBA_OFF, 8), 1u << 3);
	assert_int_equal(du_rd(dev, BAR0, PBA_OFF, 1), 1u << 3);
	assert_int_equal(du_rd(dev, BAR0, PBA_OFF + 4, 4), 0);

	/* unmask: fires, pending clears */
	du_wr(dev, BAR0, entry_off(3, 12), 4, 0);
	assert_int_equal(du_efd_count(efd), 1);
	assert_int_equal(du_rd(dev, BAR0, PBA_OFF, 8), 0);
	assert_false(vfurt_irq_pending(dev, VFURT_IRQ_MSIX, 3));

	/* unmasked: fires directly */
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 3), 0);
	assert_int_equal(du_efd_count(efd), 1);

	/* masking again via a byte write of vector control */
	du_wr(dev, BAR0, entry_off(3, 12), 1, 1);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 3), 0);
	assert_int_equal(du_efd_count(efd), 0);
	assert_int_equal(du_rd(dev, BAR0, PBA_OFF, 8), 1u << 3);
	close(efd);
}

static void test_function_mask(void **state)
{
	struct fx *f = *state;
	struct vfurt_dev *dev = f->dev;
	int efd = du_attach_efd(dev, VFURT_IRQ_MSIX, 0);

	du_wr(dev, BAR0, entry_off(0, 12), 4, 0);
	msix_ctrl(f, 0xc000); /* enable + function mask */
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(du_efd_count(efd), 0);
	assert_int_equal(du_rd(dev, BAR0, PBA_OFF, 8), 1);
	msix_ctrl(f, 0x8000);
	assert_int_equal(du_efd_count(efd), 1);
	assert_int_equal(du_rd(dev, BAR0, PBA_OFF, 8), 0);

	/* the high byte of control alone toggles function mask */
	du_wr(dev, CFG, f->cap + 3, 1, 0xc0);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(du_efd_count(efd), 0);
	du_wr(dev, CFG, f->cap + 3, 1, 0x80);
	assert_int_equal(du_efd_count(efd), 1);
	close(efd);
}

static void test_disabled(void **state)
{
	struct fx *f = *state;
	struct vfurt_dev *dev = f->dev;
	int efd = du_attach_efd(dev, VFURT_IRQ_MSIX, 1);

	/* unmasked vector but MSI-X disabled */
	du_wr(dev, BAR0, entry_off(1, 12), 4, 0);
	assert_false(vfurt_pci_msix_enabled(f->pci));
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 1), 0);
	assert_int_equal(du_efd_count(efd), 0);
	assert_int_equal(du_rd(dev, BAR0, PBA_OFF, 8), 2);
	msix_ctrl(f, 0x8000);
	assert_int_equal(du_efd_count(efd), 1);
	msix_ctrl(f, 0x0000);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 1), 0);
	assert_int_equal(du_efd_count(efd), 0);
	close(efd);
}

static void test_pba_write_ignored(void **state)
{
	struct fx *f = *state;

	assert_int_equal(vfurt_irq_trigger(f->dev, VFURT_IRQ_MSIX, 5), 0);
	du_wr(f->dev, BAR0, PBA_OFF, 8, 0);
	du_wr(f->dev, BAR0, PBA_OFF + 1, 1, 0xff);
	assert_int_equal(du_rd(f->dev, BAR0, PBA_OFF, 8), 1u << 5);
	assert_int_equal(f->bar0.calls, 0);
}

static void test_passthrough(void **state)
{
	struct fx *f = *state;
	uint8_t b[32];

	/* the rest of the BAR reaches the device */
	du_wr(f->dev, BAR0, 0x10, 4, 0xcafef00d);
	assert_int_equal(f->bar0.calls, 1);
	assert_int_equal(f->bar0.last_off, 0x10);
	assert_int_equal(du_rd(f->dev, BAR0, 0x10, 4), 0xcafef00d);
	/* right after the table (8 vectors end at 0x2080) and after the PBA */
	du_wr(f->dev, BAR0, TABLE_OFF + NVEC * 16, 4, 0x11111111);
	assert_int_equal(f->bar0.last_off, TABLE_OFF + NVEC * 16);
	du_wr(f->dev, BAR0, PBA_OFF + 8, 8, 0x2222222222222222ull);
	assert_int_equal(f->bar0.last_off, PBA_OFF + 8);
	assert_int_equal(f->bar0.mem[PBA_OFF + 8], 0x22);

	/* an access straddling the start of the table is split */
	f->bar0.calls = 0;
	memset(b, 0x5a, sizeof(b));
	assert_int_equal(du_region_io(f->dev, BAR0, b, sizeof(b), TABLE_OFF - 16, true),
			 (ssize_t)sizeof(b));
	assert_int_equal(f->bar0.calls, 1);
	assert_int_equal(f->bar0.last_off, TABLE_OFF - 16);
	assert_int_equal(f->bar0.last_count, 16);
	assert_int_equal(du_rd(f->dev, BAR0, entry_off(0, 0), 8), 0x5a5a5a5a5a5a5a58ull);
	assert_int_equal(du_rd(f->dev, BAR0, entry_off(0, 12), 4), 0); /* 0x5a: mask bit 0 */
	/* read of the whole BAR */
	{
		uint8_t *all = malloc(BAR0_SIZE);

		assert_non_null(all);
		f->bar0.calls = 0;
		assert_int_equal(du_region_io(f->dev, BAR0, all, BAR0_SIZE, 0, false), BAR0_SIZE);
		assert_int_equal(f->bar0.calls, 3); /* before table, between, after PBA */
		assert_int_equal(all[0x10], 0x0d);
		assert_int_equal(all[entry_off(0, 8)], 0x5a);
		free(all);
	}
}

static void test_out_of_range(void **state)
{
	struct fx *f = *state;
	uint8_t b[8] = { 0 };

	assert_int_equal(du_region_io(f->dev, BAR0, b, 1, BAR0_SIZE, false), -EINVAL);
	assert_int_equal(du_region_io(f->dev, BAR0, b, 8, BAR0_SIZE - 4, true), -EINVAL);
	assert_int_equal(du_region_io(f->dev, BAR0, b, 1, UINT64_MAX, false), -EINVAL);
	assert_int_equal(du_region_io(f->dev, BAR0, NULL, 4, 0, false), -EINVAL);
	assert_int_equal(f->bar0.calls, 0);
}

static void test_separate_pba_bar(void **state)
{
	struct vfurt_dev *dev = du_dev_new("msix");
	struct bar_model *m0 = calloc(1, sizeof(*m0));
	struct bar_model *m4 = calloc(1, sizeof(*m4));
	struct vfurt_pci *pci;
	int efd;

	assert_non_null(m0);
	assert_non_null(m4);
	assert_int_equal(du_region_add(dev, VFURT_REGION_BAR0, BAR0_SIZE, 0, bar_access, m0), 0);
	assert_int_equal(du_region_add(dev, VFURT_REGION_BAR2, 0x2000, VFURT_REGION_MEM64,
				       bar_access, m4), 0);
	pci = du_pci_new(dev, VFURT_PCI_CFG_SIZE_EXP);
	/* 100 vectors: PBA of 2 qwords */
	assert_true(vfurt_pci_add_msix(pci, 100, 0, 0, 2, 0x1000) > 0);
	efd = du_attach_efd(dev, VFURT_IRQ_MSIX, 70);
	assert_int_equal(du_rd(dev, CFG, 0x40 + 8, 4), 0x1000 | 2);
	du_wr(dev, CFG, 0x42, 2, 0x8000);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 70), 0);
	assert_int_equal(du_rd(dev, VFURT_REGION_BAR2, 0x1008, 8), 1ull << 6);
	assert_int_equal(du_rd(dev, VFURT_REGION_BAR2, 0x1000, 8), 0);
	du_wr(dev, BAR0, 70 * 16 + 12, 4, 0);
	assert_int_equal(du_efd_count(efd), 1);
	assert_int_equal(du_rd(dev, VFURT_REGION_BAR2, 0x1008, 8), 0);
	/* BAR2's other bytes and BAR0 after the table reach the devices */
	du_wr(dev, VFURT_REGION_BAR2, 0x10, 1, 0x77);
	assert_int_equal(m4->mem[0x10], 0x77);
	du_wr(dev, BAR0, 100 * 16, 1, 0x66);
	assert_int_equal(m0->mem[100 * 16], 0x66);
	close(efd);
	vfurt_dev_destroy(dev);
	free(m0);
	free(m4);
}

static void test_add_errors(void **state)
{
	struct fx *f = *state;
	struct vfurt_dev *dev = du_dev_new("msix");
	struct bar_model *m = calloc(1, sizeof(*m));
	struct vfurt_pci *pci;
	int memfd;

	assert_non_null(m);
	assert_int_equal(vfurt_pci_add_msix(f->pci, NVEC, 0, 0, 0, 0x1000), -EEXIST);

	assert_int_equal(du_region_add(dev, VFURT_REGION_BAR0, BAR0_SIZE, 0, bar_access, m), 0);
	assert_int_equal(du_region_add(dev, VFURT_REGION_BAR1, 256, VFURT_REGION_IO, bar_access,
				       m), 0);
	pci = du_pci_new(dev, VFURT_PCI_CFG_SIZE_EXP);
	assert_int_equal(vfurt_pci_add_msix(pci, 0, 0, 0, 0, 0x1000), -EINVAL);
	assert_int_equal(vfurt_pci_add_msix(pci, 2049, 0, 0, 0, 0x1000), -EINVAL);
	assert_int_equal(vfurt_pci_add_msix(pci, 8, 0, 0, 0, 0x40), -EINVAL);   /* overlap */
	assert_int_equal(vfurt_pci_add_msix(pci, 8, 0, 4, 0, 0x1000), -EINVAL);  /* unaligned */
	assert_int_equal(vfurt_pci_add_msix(pci, 8, 0, 0, 0, 0x1004), -EINVAL);
	assert_int_equal(vfurt_pci_add_msix(pci, 8, 0, BAR0_SIZE - 64, 0, 0), -EINVAL);
	assert_int_equal(vfurt_pci_add_msix(pci, 8, 0, 0, 0, BAR0_SIZE), -EINVAL);
	assert_int_equal(vfurt_pci_add_msix(pci, 8, 1, 0, 0, 0x1000), -EINVAL);  /* I/O BAR */
	assert_int_equal(vfurt_pci_add_msix(pci, 8, 3, 0, 0, 0x1000), -EINVAL);  /* no BAR */
	assert_int_equal(vfurt_pci_add_msix(pci, 8, 6, 0, 0, 0x1000), -EINVAL);
	assert_int_equal(vfurt_pci_add_msix(pci, 8, 0, 0, 7, 0x1000), -EINVAL);
	/* failed attempts left no cap and no irqs behind */
	assert_int_equal(du_rd(dev, CFG, 0x34, 1), 0);
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_MSIX), 0);
	vfurt_dev_destroy(dev);

	/* A BAR the client may mmap whole would bypass the table emulation. */
	memfd = memfd_create("bar", MFD_CLOEXEC);
	assert_true(memfd >= 0);
	assert_int_equal(ftruncate(memfd, BAR0_SIZE), 0);
	dev = du_dev_new("msix");
	{
		struct vfurt_sparse_area sa = { .offset = 0, .size = 0x2000 };
		struct vfurt_region_desc d = {
			.desc_size = sizeof(d),
			.size = BAR0_SIZE,
			.flags = VFURT_REGION_RW,
			.access = bar_access,
			.arg = m,
			.fd = memfd,
		};

		assert_int_equal(vfurt_dev_setup_region(dev, VFURT_REGION_BAR0, &d), 0);
		pci = du_pci_new(dev, VFURT_PCI_CFG_SIZE_EXP);
		assert_int_equal(vfurt_pci_add_msix(pci, 8, 0, TABLE_OFF, 0, PBA_OFF), -EINVAL);
		/* with the table and PBA outside the sparse mmap area it works */
		d.sparse = &sa;
		d.nr_sparse = 1;
		assert_int_equal(vfurt_dev_setup_region(dev, VFURT_REGION_BAR0, &d), 0);
		assert_int_equal(vfurt_pci_add_msix(pci, 8, 0, 0x1000, 0, PBA_OFF), -EINVAL);
		assert_true(vfurt_pci_add_msix(pci, 8, 0, TABLE_OFF, 0, PBA_OFF) > 0);
	}
	vfurt_dev_destroy(dev);
	close(memfd);
	free(m);
}

static void test_reset(void **state)
{
	struct fx *f = *state;
	struct vfurt_dev *dev = f->dev;
	int efd = du_attach_efd(dev, VFURT_IRQ_MSIX, 0);

	du_wr(dev, BAR0, entry_off(0, 0), 8, 0xfee00000);
	du_wr(dev, BAR0, entry_off(0, 8), 8, 0x21);
	msix_ctrl(f, 0x8000);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(du_efd_count(efd), 1);

	vfurt_pci_reset(f->pci);
	assert_false(vfurt_pci_msix_enabled(f->pci));
	assert_int_equal(du_rd(dev, CFG, f->cap + 2, 2), NVEC - 1);
	assert_int_equal(du_rd(dev, BAR0, entry_off(0, 0), 8), 0);
	assert_int_equal(du_rd(dev, BAR0, entry_off(0, 8), 8), 0x100000000ull); /* masked again */
	/* disabled and masked: nothing fires even once enabled */
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 0), 0);
	msix_ctrl(f, 0x8000);
	assert_int_equal(du_efd_count(efd), 0);
	du_wr(dev, BAR0, entry_off(0, 12), 4, 0);
	assert_int_equal(du_efd_count(efd), 1);
	close(efd);
}

/* Enabling MSI-X re-applies the table's masks after an irq-layer reset. */
static void test_resync_after_irq_reset(void **state)
{
	struct fx *f = *state;
	struct vfurt_dev *dev = f->dev;
	int efd = du_attach_efd(dev, VFURT_IRQ_MSIX, 2);

	vfr_irqs_reset(dev->irqs);
	msix_ctrl(f, 0x8000);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 2), 0);
	assert_int_equal(du_efd_count(efd), 0);
	assert_int_equal(du_rd(dev, BAR0, PBA_OFF, 8), 1u << 2);
	close(efd);
}

/* Large tables: every vector's mask bit is tracked. */
static void test_max_vectors(void **state)
{
	struct vfurt_dev *dev = du_dev_new("msix");
	struct bar_model *m = calloc(1, sizeof(*m));
	struct vfurt_pci *pci;
	int efd;

	assert_non_null(m);
	/* 2048 vectors: 32 KiB table + 256-byte PBA in a 64 KiB BAR */
	{
		struct vfurt_region_desc d = {
			.desc_size = sizeof(d),
			.size = 0x10000,
			.flags = VFURT_REGION_RW,
			.access = bar_access,
			.arg = m,
			.fd = -1,
		};

		assert_int_equal(vfurt_dev_setup_region(dev, VFURT_REGION_BAR0, &d), 0);
	}
	pci = du_pci_new(dev, VFURT_PCI_CFG_SIZE_EXP);
	assert_true(vfurt_pci_add_msix(pci, 2048, 0, 0, 0, 0x8000) > 0);
	assert_int_equal(du_rd(dev, CFG, 0x42, 2), 2047);
	efd = du_attach_efd(dev, VFURT_IRQ_MSIX, 2047);
	du_wr(dev, CFG, 0x42, 2, 0x8000);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSIX, 2047), 0);
	assert_int_equal(du_rd(dev, BAR0, 0x8000 + 255, 1), 0x80);
	du_wr(dev, BAR0, 2047 * 16 + 12, 4, 0);
	assert_int_equal(du_efd_count(efd), 1);
	close(efd);
	vfurt_dev_destroy(dev);
	free(m);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, du_dev_teardown)
	const struct CMUnitTest tests[] = {
		T(test_msix_cap),
		T(test_table_initial),
		T(test_table_rw),
		T(test_masked_vector_pba),
		T(test_function_mask),
		T(test_disabled),
		T(test_pba_write_ignored),
		T(test_passthrough),
		T(test_out_of_range),
		cmocka_unit_test(test_separate_pba_bar),
		T(test_add_errors),
		T(test_reset),
		T(test_resync_after_irq_reset),
		cmocka_unit_test(test_max_vectors),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
