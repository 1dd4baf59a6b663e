/* Unit tests for devices/pci: header, BARs, capabilities, PM, MSI, hooks, FLR, reset. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/dev_util.h"

#include <vfurt/device.h>
#include <vfurt/pci.h>

#include "devices/pci/pci_internal.h"
#include "io/device_internal.h"

/* ---- helpers ------------------------------------------------------------ */

struct fx {
	struct vfurt_dev *dev;
	struct vfurt_pci *pci;
	int pm, msi, pcie, vndr, dsn, evndr;
};

static const uint8_t vndr_data[5] = { 0xde, 0xad, 0xbe, 0xef, 0x42 };
static const uint8_t evndr_data[6] = { 1, 2, 3, 4, 5, 6 };

/*
 * BAR0 32-bit 4 KiB, BAR2/3 64-bit prefetchable 1 MiB, BAR4 I/O 256 B, BAR1
 * and BAR5 unused, ROM 64 KiB; 4 KiB config with PM, MSI (4, masking),
 * PCIe, vendor, DSN and ext vendor caps.
 */
static int setup_full(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE_EXP);

	assert_non_null(f);
	f->dev = du_dev_new("t");
	assert_int_equal(du_region_add(f->dev, VFURT_REGION_BAR0, 4096, 0, NULL, NULL), 0);
	assert_int_equal(du_region_add(f->dev, VFURT_REGION_BAR2, 1u << 20,
				       VFURT_REGION_MEM64 | VFURT_REGION_PREFETCH, NULL, NULL), 0);
	assert_int_equal(du_region_add(f->dev, VFURT_REGION_BAR4, 256, VFURT_REGION_IO, NULL,
				       NULL), 0);
	assert_int_equal(du_region_add(f->dev, VFURT_REGION_ROM, 65536, 0, NULL, NULL), 0);
	f->pci = vfurt_pci_create(f->dev, &o);
	assert_non_null(f->pci);
	f->pm = vfurt_pci_add_pm(f->pci);
	f->msi = vfurt_pci_add_msi(f->pci, 4, true);
	f->pcie = vfurt_pci_add_pcie(f->pci);
	f->vndr = vfurt_pci_add_vendor(f->pci, vndr_data, sizeof(vndr_data));
	f->dsn = vfurt_pci_add_dsn(f->pci, 0x0123456789abcdefull);
	f->evndr = vfurt_pci_add_ext_vendor(f->pci, 0x1de, 2, evndr_data, sizeof(evndr_data));
	assert_true(f->pm >= 0x40 && f->msi > 0 && f->pcie > 0 && f->vndr > 0);
	assert_int_equal(f->dsn, 0x100);
	assert_true(f->evndr > 0x100);
	*state = f;
	return 0;
}

static ssize_t cfg_io(struct vfurt_dev *dev, void *buf, size_t count, uint64_t off,
		      bool is_write)
{
	return du_region_io(dev, VFURT_REGION_CONFIG, buf, count, off, is_write);
}

static uint32_t rd(struct vfurt_dev *dev, uint64_t off, size_t size)
{
	return (uint32_t)du_rd(dev, VFURT_REGION_CONFIG, off, size);
}

static void wr(struct vfurt_dev *dev, uint64_t off, size_t size, uint32_t v)
{
	du_wr(dev, VFURT_REGION_CONFIG, off, size, v);
}

/* Find standard capability `id`; 0 if absent. */
static uint32_t find_cap(struct vfurt_dev *dev, uint8_t id)
{
	uint32_t off = rd(dev, 0x34, 1);

	for (int n = 0; off && n < 48; n++) {
		if (rd(dev, off, 1) == id)
			return off;
		off = rd(dev, off + 1, 1);
	}
	return 0;
}

/* ---- header ------------------------------------------------------------- */

static void test_ids_readonly(void **state)
{
	struct fx *f = *state;

	assert_int_equal(rd(f->dev, 0x00, 2), 0x1af4);
	assert_int_equal(rd(f->dev, 0x02, 2), 0x10f0);
	assert_int_equal(rd(f->dev, 0x00, 4), 0x10f01af4);
	assert_int_equal(rd(f->dev, 0x08, 4), 0x01080207);
	assert_int_equal(rd(f->dev, 0x2c, 4), 0x56781234);
	assert_int_equal(rd(f->dev, 0x0e, 1), 0x00); /* header type 0, single function */
	assert_int_equal(rd(f->dev, 0x3d, 1), 1);    /* INTA */

	wr(f->dev, 0x00, 4, 0xffffffff);
	wr(f->dev, 0x08, 4, 0xffffffff);
	wr(f->dev, 0x2c, 4, 0);
	wr(f->dev, 0x0e, 1, 0x80);
	wr(f->dev, 0x3d, 1, 3);
	wr(f->dev, 0x34, 1, 0);
	assert_int_equal(rd(f->dev, 0x00, 4), 0x10f01af4);
	assert_int_equal(rd(f->dev, 0x08, 4), 0x01080207);
	assert_int_equal(rd(f->dev, 0x2c, 4), 0x56781234);
	assert_int_equal(rd(f->dev, 0x0e, 1), 0);
	assert_int_equal(rd(f->dev, 0x3d, 1), 1);
	assert_int_equal(rd(f->dev, 0x34, 1), 0x40);

	/* Interrupt line and cache line size are plain RW. */
	wr(f->dev, 0x3c, 1, 0x0b);
	assert_int_equal(rd(f->dev, 0x3c, 1), 0x0b);
	wr(f->dev, 0x0c, 1, 0x10);
	assert_int_equal(rd(f->dev, 0x0c, 1), 0x10);
}

static void test_command_mask(void **state)
{
	struct fx *f = *state;

	assert_int_equal(rd(f->dev, 0x04, 2), 0);
	wr(f->dev, 0x04, 2, 0xffff);
	assert_int_equal(rd(f->dev, 0x04, 2), 0x0547);
	assert_int_equal(vfurt_pci_command(f->pci), 0x0547);
	assert_true(vfurt_pci_bus_master(f->pci));
	wr(f->dev, 0x04, 2, 0x0002);
	assert_int_equal(rd(f->dev, 0x04, 2), 0x0002);
	assert_false(vfurt_pci_bus_master(f->pci));
}

static void test_status_rw1c(void **state)
{
	struct fx *f = *state;
	uint8_t *raw = (uint8_t *)(uintptr_t)vfurt_pci_cfg(f->pci);

	assert_int_equal(rd(f->dev, 0x06, 2), 0x0010); /* capabilities list */
	wr(f->dev, 0x06, 2, 0xffff);
	assert_int_equal(rd(f->dev, 0x06, 2), 0x0010);

	/* Error bits as if the function had latched them (test-only poke). */
	raw[0x07] |= 0xf9;
	assert_int_equal(rd(f->dev, 0x06, 2), 0xf910);
	wr(f->dev, 0x06, 2, 0x0000); /* writing 0 changes nothing */
	assert_int_equal(rd(f->dev, 0x06, 2), 0xf910);
	wr(f->dev, 0x06, 2, 0x8100); /* detected parity, master data parity */
	assert_int_equal(rd(f->dev, 0x06, 2), 0x7810);
	wr(f->dev, 0x07, 1, 0xff);
	assert_int_equal(rd(f->dev, 0x06, 2), 0x0010);
	/* A command write in the same dword must not clear status bits. */
	raw[0x07] |= 0x08;
	wr(f->dev, 0x04, 4, 0x00000002);
	assert_int_equal(rd(f->dev, 0x04, 4), 0x08100002);
}

/* ---- BARs --------------------------------------------------------------- */

static void test_bar_mem32(void **state)
{
	struct fx *f = *state;

	assert_int_equal(rd(f->dev, 0x10, 4), 0);
	wr(f->dev, 0x10, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, 0x10, 4), 0xfffff000);
	wr(f->dev, 0x10, 4, 0xfebc1234);
	assert_int_equal(rd(f->dev, 0x10, 4), 0xfebc1000);
}

static void test_bar_mem64(void **state)
{
	struct fx *f = *state;

	assert_int_equal(rd(f->dev, 0x18, 4), 0x0000000c); /* 64-bit, prefetchable */
	assert_int_equal(rd(f->dev, 0x1c, 4), 0);
	wr(f->dev, 0x18, 4, 0xffffffff);
	wr(f->dev, 0x1c, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, 0x18, 4), 0xfff0000c);
	assert_int_equal(rd(f->dev, 0x1c, 4), 0xffffffff);
	wr(f->dev, 0x18, 4, 0x12345678);
	wr(f->dev, 0x1c, 4, 0x00000080);
	assert_int_equal(rd(f->dev, 0x18, 4), 0x1230000c);
	assert_int_equal(rd(f->dev, 0x1c, 4), 0x00000080);
}

static void test_bar_mem64_large(void **state)
{
	struct vfurt_dev *dev = du_dev_new("t");
	struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE);

	assert_int_equal(du_region_add(dev, VFURT_REGION_BAR0, 1ull << 33, VFURT_REGION_MEM64,
				       NULL, NULL), 0);
	assert_non_null(vfurt_pci_create(dev, &o));
	assert_int_equal(rd(dev, 0x10, 4), 0x4);
	wr(dev, 0x10, 4, 0xffffffff);
	wr(dev, 0x14, 4, 0xffffffff);
	assert_int_equal(rd(dev, 0x10, 4), 0x00000004);
	assert_int_equal(rd(dev, 0x14, 4), 0xfffffffe);
	/* 8-byte access over both halves */
	{
		uint8_t b[8];

		memset(b, 0xff, sizeof(b));
		assert_int_equal(cfg_io(dev, b, 8, 0x10, true), 8);
		memset(b, 0, sizeof(b));
		assert_int_equal(cfg_io(dev, b, 8, 0x10, false), 8);
		assert_int_equal(b[0], 0x04);
		assert_int_equal(b[4], 0xfe);
		assert_int_equal(b[7], 0xff);
	}
	vfurt_dev_destroy(dev);
}

static void test_bar_io(void **state)
{
	struct fx *f = *state;

	assert_int_equal(rd(f->dev, 0x20, 4), 0x1);
	wr(f->dev, 0x20, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, 0x20, 4), 0xffffff01);
	wr(f->dev, 0x20, 4, 0xc0e3);
	assert_int_equal(rd(f->dev, 0x20, 4), 0xc001);
}

static void test_bar_unused(void **state)
{
	struct fx *f = *state;

	/* BAR1 and BAR5 have no region */
	wr(f->dev, 0x14, 4, 0xffffffff);
	wr(f->dev, 0x24, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, 0x14, 4), 0);
	assert_int_equal(rd(f->dev, 0x24, 4), 0);
	/* CardBus CIS pointer */
	wr(f->dev, 0x28, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, 0x28, 4), 0);
}

static void test_bar_rom(void **state)
{
	struct fx *f = *state;

	assert_int_equal(rd(f->dev, 0x30, 4), 0);
	wr(f->dev, 0x30, 4, 0xfffffffe);
	assert_int_equal(rd(f->dev, 0x30, 4), 0xffff0000);
	wr(f->dev, 0x30, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, 0x30, 4), 0xffff0001);
	wr(f->dev, 0x30, 4, 0xfeb00001);
	assert_int_equal(rd(f->dev, 0x30, 4), 0xfeb00001);
}

static void test_rom_absent_and_small(void **state)
{
	struct vfurt_dev *dev = du_dev_new("t");
	struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE);

	assert_non_null(vfurt_pci_create(dev, &o));
	wr(dev, 0x30, 4, 0xffffffff);
	assert_int_equal(rd(dev, 0x30, 4), 0);
	vfurt_dev_destroy(dev);

	/* A 512-byte ROM decodes the 2 KiB minimum. */
	dev = du_dev_new("t");
	assert_int_equal(du_region_add(dev, VFURT_REGION_ROM, 512, 0, NULL, NULL), 0);
	assert_non_null(vfurt_pci_create(dev, &o));
	wr(dev, 0x30, 4, 0xffffffff);
	assert_int_equal(rd(dev, 0x30, 4), 0xfffff801);
	vfurt_dev_destroy(dev);
}

static void expect_create_fails(uint32_t index, uint64_t size, uint32_t flags, int err)
{
	struct vfurt_dev *dev = du_dev_new("t");
	struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE);

	assert_int_equal(du_region_add(dev, index, size, flags, NULL, NULL), 0);
	errno = 0;
	assert_null(vfurt_pci_create(dev, &o));
	assert_int_equal(errno, err);
	/* The config region was not left behind. */
	{
		struct vfurt_region_desc d = { .desc_size = sizeof(d) };

		assert_int_equal(vfurt_dev_get_region(dev, VFURT_REGION_CONFIG, &d), 0);
		assert_int_equal(d.size, 0);
	}
	vfurt_dev_destroy(dev);
}

static void test_bar_bad_regions(void **state)
{
	expect_create_fails(VFURT_REGION_BAR0, 3000, 0, EINVAL);
	expect_create_fails(VFURT_REGION_BAR1, 8, 0, EINVAL);
	expect_create_fails(VFURT_REGION_BAR2, 2, VFURT_REGION_IO, EINVAL);
	expect_create_fails(VFURT_REGION_BAR2, 256, VFURT_REGION_IO | VFURT_REGION_MEM64, EINVAL);
	expect_create_fails(VFURT_REGION_BAR5, 4096, VFURT_REGION_MEM64, EINVAL);
	expect_create_fails(VFURT_REGION_BAR0, 1ull << 32, 0, EINVAL);
	expect_create_fails(VFURT_REGION_ROM, 3000, 0, EINVAL);

	/* A region in the slot used by the upper half of a 64-bit BAR. */
	{
		struct vfurt_dev *dev = du_dev_new("t");
		struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE);

		assert_int_equal(du_region_add(dev, VFURT_REGION_BAR0, 4096, VFURT_REGION_MEM64,
					       NULL, NULL), 0);
		assert_int_equal(du_region_add(dev, VFURT_REGION_BAR1, 4096, 0, NULL, NULL), 0);
		assert_null(vfurt_pci_create(dev, &o));
		assert_int_equal(errno, EINVAL);
		vfurt_dev_destroy(dev);
	}
}

static void test_create_bad_opts(void **state)
{
	struct vfurt_dev *dev = du_dev_new("t");
	struct vfurt_pci_opts o = du_pci_opts(512);

	assert_null(vfurt_pci_create(dev, &o));
	assert_int_equal(errno, EINVAL);
	o = du_pci_opts(VFURT_PCI_CFG_SIZE);
	o.intx_pin = 5;
	assert_null(vfurt_pci_create(dev, &o));
	assert_int_equal(errno, EINVAL);
	assert_null(vfurt_pci_create(dev, NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(vfurt_pci_create(NULL, &o));
	assert_int_equal(errno, EINVAL);

	o = du_pci_opts(VFURT_PCI_CFG_SIZE);
	assert_non_null(vfurt_pci_create(dev, &o));
	assert_null(vfurt_pci_create(dev, &o));
	assert_int_equal(errno, EEXIST);
	vfurt_dev_destroy(dev);
}

/* opts_size below the first version, or 0, is refused (include/vfurt/abi.h). */
static void test_create_short_opts(void **state)
{
	struct vfurt_dev *dev = du_dev_new("t");
	struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE);

	o.opts_size = offsetof(struct vfurt_pci_opts, cfg_size);
	errno = 0;
	assert_null(vfurt_pci_create(dev, &o));
	assert_int_equal(errno, EINVAL);
	o.opts_size = 0;
	errno = 0;
	assert_null(vfurt_pci_create(dev, &o));
	assert_int_equal(errno, EINVAL);
	vfurt_dev_destroy(dev);
}

/* ---- capabilities ------------------------------------------------------- */

static void test_cap_walk(void **state)
{
	struct fx *f = *state;
	const uint8_t want[] = { 0x01, 0x05, 0x10, 0x09 };
	uint32_t off = rd(f->dev, 0x34, 1);
	size_t n = 0;

	assert_int_equal(off, 0x40);
	while (off) {
		assert_true(n < sizeof(want));
		assert_true(off >= 0x40 && off < 0x100);
		assert_int_equal(off & 3, 0);
		assert_int_equal(rd(f->dev, off, 1), want[n]);
		n++;
		off = rd(f->dev, off + 1, 1);
	}
	assert_int_equal(n, sizeof(want));
	assert_int_equal(find_cap(f->dev, 0x01), (uint32_t)f->pm);
	assert_int_equal(find_cap(f->dev, 0x05), (uint32_t)f->msi);
	assert_int_equal(find_cap(f->dev, 0x10), (uint32_t)f->pcie);
	assert_int_equal(find_cap(f->dev, 0x09), (uint32_t)f->vndr);

	/* Cap headers are read-only. */
	wr(f->dev, (uint32_t)f->pm, 2, 0xffff);
	assert_int_equal(rd(f->dev, (uint32_t)f->pm, 1), 0x01);
	assert_int_equal(rd(f->dev, (uint32_t)f->pm + 1, 1), (uint32_t)f->msi);

	/* Vendor cap: length byte covers the header, data read-only. */
	assert_int_equal(rd(f->dev, (uint32_t)f->vndr + 2, 1), 3 + sizeof(vndr_data));
	for (size_t i = 0; i < sizeof(vndr_data); i++)
		assert_int_equal(rd(f->dev, (uint32_t)f->vndr + 3 + i, 1), vndr_data[i]);
	wr(f->dev, (uint32_t)f->vndr + 4, 4, 0);
	assert_int_equal(rd(f->dev, (uint32_t)f->vndr + 4, 1), vndr_data[1]);
}

static void test_ext_cap_walk(void **state)
{
	struct fx *f = *state;
	uint32_t off = 0x100, hdr;

	hdr = rd(f->dev, off, 4);
	assert_int_equal(hdr & 0xffff, 0x0003);        /* DSN */
	assert_int_equal((hdr >> 16) & 0xf, 1);
	assert_int_equal(rd(f->dev, off + 4, 4), 0x89abcdef);
	assert_int_equal(rd(f->dev, off + 8, 4), 0x01234567);
	off = hdr >> 20;
	assert_int_equal(off, (uint32_t)f->evndr);
	assert_int_equal(off & 3, 0);
	hdr = rd(f->dev, off, 4);
	assert_int_equal(hdr & 0xffff, 0x000b);
	assert_int_equal(hdr >> 20, 0);                  /* end of chain */
	/* VSEC header: id 0x1de, rev 2, length 8 + data */
	assert_int_equal(rd(f->dev, off + 4, 4), 0x1de | (2u << 16) | ((8u + 6) << 20));
	for (size_t i = 0; i < sizeof(evndr_data); i++)
		assert_int_equal(rd(f->dev, off + 8 + i, 1), evndr_data[i]);
	wr(f->dev, 0x100, 4, 0);
	assert_int_equal(rd(f->dev, 0x100, 2), 0x0003);
}

static void test_ext_caps_empty(void **state)
{
	struct vfurt_dev *dev = du_dev_new("t");
	struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE_EXP);
	struct vfurt_pci *pci = vfurt_pci_create(dev, &o);

	assert_non_null(pci);
	assert_int_equal(rd(dev, 0x100, 4), 0);
	wr(dev, 0x100, 4, 0xffffffff);
	assert_int_equal(rd(dev, 0x100, 4), 0);
	assert_int_equal(rd(dev, 0x34, 1), 0);            /* no caps */
	assert_int_equal(rd(dev, 0x06, 2) & 0x10, 0);     /* no cap list bit */
	assert_int_equal(rd(dev, 0xffc, 4), 0);
	vfurt_dev_destroy(dev);
}

static void test_cap_errors(void **state)
{
	struct fx *f = *state;
	struct vfurt_dev *dev = du_dev_new("t");
	struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE);
	uint8_t big[253] = { 0 };
	struct vfurt_pci *pci;
	int r, n = 0;

	assert_int_equal(vfurt_pci_add_pm(f->pci), -EEXIST);
	assert_int_equal(vfurt_pci_add_msi(f->pci, 4, true), -EEXIST);
	assert_int_equal(vfurt_pci_add_pcie(f->pci), -EEXIST);
	assert_int_equal(vfurt_pci_add_dsn(f->pci, 1), -EEXIST);
	assert_int_equal(vfurt_pci_add_ext_vendor(f->pci, 1, 16, NULL, 0), -EINVAL);
	assert_int_equal(vfurt_pci_add_vendor(f->pci, NULL, 4), -EINVAL);
	assert_int_equal(vfurt_pci_add_vendor(f->pci, big, 254), -EINVAL);

	pci = vfurt_pci_create(dev, &o);
	assert_non_null(pci);
	assert_int_equal(vfurt_pci_add_pcie(pci), -EINVAL);  /* needs 4 KiB */
	assert_int_equal(vfurt_pci_add_dsn(pci, 1), -EINVAL);
	assert_int_equal(vfurt_pci_add_ext_vendor(pci, 1, 1, NULL, 0), -EINVAL);
	assert_int_equal(vfurt_pci_add_msi(pci, 3, false), -EINVAL);
	assert_int_equal(vfurt_pci_add_msi(pci, 64, false), -EINVAL);
	assert_int_equal(vfurt_pci_add_msi(pci, 0, false), -EINVAL);
	assert_int_equal(vfurt_pci_add_vendor(pci, big, sizeof(big)), -ENOSPC);
	assert_int_equal(vfurt_pci_add_msi(pci, 32, false), 0x40);
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_MSI), 32);
	/* Fill the rest with vendor caps until the space runs out. */
	while ((r = vfurt_pci_add_vendor(pci, big, 13)) > 0)
		n++;
	assert_int_equal(r, -ENOSPC);
	assert_int_equal(n, (0x100 - 0x50) / 16);
	vfurt_dev_destroy(dev);
}

/* ---- PM ----------------------------------------------------------------- */

static void test_pm(void **state)
{
	struct fx *f = *state;
	uint32_t pmcsr = (uint32_t)f->pm + 4;

	assert_int_equal(rd(f->dev, (uint32_t)f->pm + 2, 2) & 0x7, 3); /* PM 1.2 */
	assert_int_equal(rd(f->dev, pmcsr, 2), 0x0008);                 /* D0, No_Soft_Reset */
	wr(f->dev, pmcsr, 2, 0x0003);
	assert_int_equal(rd(f->dev, pmcsr, 2), 0x000b);                 /* D3hot */
	wr(f->dev, pmcsr, 2, 0x0001);                                   /* D1: unsupported */
	assert_int_equal(rd(f->dev, pmcsr, 2), 0x000b);
	wr(f->dev, pmcsr, 1, 0x02);                                     /* D2: unsupported */
	assert_int_equal(rd(f->dev, pmcsr, 2), 0x000b);
	wr(f->dev, pmcsr, 2, 0x0000);
	assert_int_equal(rd(f->dev, pmcsr, 2), 0x0008);
	wr(f->dev, pmcsr, 2, 0xfff7);                                   /* only state bits */
	assert_int_equal(rd(f->dev, pmcsr, 2), 0x000b);
	/* Leaving D3hot with No_Soft_Reset keeps the function's config. */
	wr(f->dev, 0x04, 2, 0x0006);
	wr(f->dev, pmcsr, 2, 0x0000);
	assert_int_equal(rd(f->dev, 0x04, 2), 0x0006);
}

/* ---- MSI ---------------------------------------------------------------- */

static void test_msi_regs(void **state)
{
	struct fx *f = *state;
	uint32_t m = (uint32_t)f->msi;

	/* 4 vectors (MMC 2), 64-bit, per-vector masking */
	assert_int_equal(rd(f->dev, m + 2, 2), 0x0184);
	wr(f->dev, m + 2, 2, 0xffff);
	assert_int_equal(rd(f->dev, m + 2, 2), 0x01a5);  /* MME clamped to MMC */
	assert_true(vfurt_pci_msi_enabled(f->pci));
	wr(f->dev, m + 2, 2, 0x0010);
	assert_int_equal(rd(f->dev, m + 2, 2), 0x0194);
	assert_false(vfurt_pci_msi_enabled(f->pci));

	wr(f->dev, m + 4, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, m + 4, 4), 0xfffffffc);
	wr(f->dev, m + 8, 4, 0x12345678);
	assert_int_equal(rd(f->dev, m + 8, 4), 0x12345678);
	wr(f->dev, m + 0xc, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, m + 0xc, 4), 0x0000ffff);  /* extended data RO */
	wr(f->dev, m + 0x10, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, m + 0x10, 4), 0xf);        /* 4 mask bits */
	wr(f->dev, m + 0x14, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, m + 0x14, 4), 0);          /* pending RO */
}

static void test_msi_delivery(void **state)
{
	struct fx *f = *state;
	struct vfurt_dev *dev = f->dev;
	uint32_t m = (uint32_t)f->msi;
	int efd[4];

	for (uint32_t v = 0; v < 4; v++)
		efd[v] = du_attach_efd(dev, VFURT_IRQ_MSI, v);

	/* Disabled: a trigger only makes the vector pending. */
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSI, 0), 0);
	assert_true(vfurt_irq_pending(dev, VFURT_IRQ_MSI, 0));
	assert_int_equal(du_efd_count(efd[0]), 0);
	assert_int_equal(rd(dev, m + 0x14, 4), 0x1);

	/* Enable with 4 vectors: the pending one fires. */
	wr(dev, m + 2, 2, 0x0021);
	assert_int_equal(du_efd_count(efd[0]), 1);
	assert_false(vfurt_irq_pending(dev, VFURT_IRQ_MSI, 0));
	assert_int_equal(rd(dev, m + 0x14, 4), 0);

	/* Per-vector mask. */
	wr(dev, m + 0x10, 4, 0x2);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSI, 1), 0);
	assert_int_equal(du_efd_count(efd[1]), 0);
	assert_int_equal(rd(dev, m + 0x14, 4), 0x2);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSI, 2), 0);
	assert_int_equal(du_efd_count(efd[2]), 1);
	wr(dev, m + 0x10, 1, 0x0);
	assert_int_equal(du_efd_count(efd[1]), 1);
	assert_int_equal(rd(dev, m + 0x14, 4), 0);

	/* Only 2 vectors enabled: vector 3 cannot fire. */
	wr(dev, m + 2, 2, 0x0011);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSI, 3), 0);
	assert_int_equal(du_efd_count(efd[3]), 0);
	assert_true(vfurt_irq_pending(dev, VFURT_IRQ_MSI, 3));
	wr(dev, m + 2, 2, 0x0021);
	assert_int_equal(du_efd_count(efd[3]), 1);

	/* Disable again. */
	wr(dev, m + 2, 2, 0x0020);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSI, 0), 0);
	assert_int_equal(du_efd_count(efd[0]), 0);
	assert_true(vfurt_irq_pending(dev, VFURT_IRQ_MSI, 0));

	for (uint32_t v = 0; v < 4; v++)
		close(efd[v]);
}

static void test_msi_no_mask(void **state)
{
	struct vfurt_dev *dev = du_dev_new("t");
	struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE);
	struct vfurt_pci *pci = vfurt_pci_create(dev, &o);
	int off, efd;

	assert_non_null(pci);
	off = vfurt_pci_add_msi(pci, 1, false);
	assert_int_equal(off, 0x40);
	assert_int_equal(rd(dev, 0x42, 2), 0x0080);
	/* No mask/pending registers: bytes after the cap are not emulated. */
	wr(dev, 0x50, 4, 0xffffffff);
	assert_int_equal(rd(dev, 0x50, 4), 0);
	efd = du_attach_efd(dev, VFURT_IRQ_MSI, 0);
	wr(dev, 0x42, 2, 0xffff);
	assert_int_equal(rd(dev, 0x42, 2), 0x0081);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSI, 0), 0);
	assert_int_equal(du_efd_count(efd), 1);
	close(efd);
	vfurt_dev_destroy(dev);
}

/* Enabling MSI re-asserts every vector's mask even if the irq layer's state
 * was reset underneath (the engine resets irqs on device reset). */
static void test_msi_resync(void **state)
{
	struct fx *f = *state;
	struct vfurt_dev *dev = f->dev;
	uint32_t m = (uint32_t)f->msi;
	int efd = du_attach_efd(dev, VFURT_IRQ_MSI, 1);

	wr(dev, m + 2, 2, 0x0001);        /* enable, 1 vector: vector 1 masked */
	wr(dev, m + 2, 2, 0x0000);
	vfr_irqs_reset(dev->irqs);       /* guest masks cleared behind our back */
	wr(dev, m + 2, 2, 0x0001);
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSI, 1), 0);
	assert_int_equal(du_efd_count(efd), 0);
	assert_true(vfurt_irq_pending(dev, VFURT_IRQ_MSI, 1));
	close(efd);
}

/* ---- INTx --------------------------------------------------------------- */

static void test_intx_disable(void **state)
{
	struct fx *f = *state;
	int efd;

	assert_int_equal(vfurt_dev_irq_count(f->dev, VFURT_IRQ_INTX), 1);
	efd = du_attach_efd(f->dev, VFURT_IRQ_INTX, 0);
	wr(f->dev, 0x05, 1, 0x04); /* INTx disable */
	assert_int_equal(vfurt_irq_trigger(f->dev, VFURT_IRQ_INTX, 0), 0);
	assert_int_equal(du_efd_count(efd), 0);
	assert_true(vfurt_irq_pending(f->dev, VFURT_IRQ_INTX, 0));
	wr(f->dev, 0x05, 1, 0x00);
	assert_int_equal(du_efd_count(efd), 1);
	close(efd);
}

static void test_no_intx(void **state)
{
	struct vfurt_dev *dev = du_dev_new("t");
	struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE);

	o.intx_pin = 0;
	assert_non_null(vfurt_pci_create(dev, &o));
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_INTX), 0);
	assert_int_equal(rd(dev, 0x3d, 1), 0);
	wr(dev, 0x04, 2, 0x0400);
	assert_int_equal(rd(dev, 0x04, 2), 0x0400);
	vfurt_dev_destroy(dev);
}

/*
 * ERR and REQ irqs as the kernel's vfio-pci counts them: REQ has one
 * vector on every PCI function, ERR one only with a PCIe capability (QEMU
 * warns "Could not enable error recovery" otherwise). A count the model set
 * up itself is kept.
 */
static void test_err_req_irqs(void **state)
{
	struct vfurt_dev *dev = du_dev_new("t");
	struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE);
	struct vfurt_pci *pci;

	pci = vfurt_pci_create(dev, &o);
	assert_non_null(pci);
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_REQ), 1);
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_ERR), 0);
	assert_int_equal(vfurt_pci_add_pcie(pci), -EINVAL); /* needs 4 KiB config */
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_ERR), 0);
	vfurt_dev_destroy(dev);

	dev = du_dev_new("t");
	o = du_pci_opts(VFURT_PCI_CFG_SIZE_EXP);
	pci = vfurt_pci_create(dev, &o);
	assert_non_null(pci);
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_ERR), 0);
	assert_true(vfurt_pci_add_pcie(pci) > 0);
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_ERR), 1);
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_REQ), 1);
	assert_int_equal(vfr_irqs_info_flags(dev->irqs, VFURT_IRQ_ERR),
			 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
	assert_int_equal(vfr_irqs_info_flags(dev->irqs, VFURT_IRQ_REQ),
			 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
	vfurt_dev_destroy(dev);

	/* the model's own counts win */
	dev = du_dev_new("t");
	assert_int_equal(vfurt_dev_setup_irq(dev, VFURT_IRQ_REQ, 2), 0);
	assert_int_equal(vfurt_dev_setup_irq(dev, VFURT_IRQ_ERR, 3), 0);
	pci = vfurt_pci_create(dev, &o);
	assert_non_null(pci);
	assert_true(vfurt_pci_add_pcie(pci) > 0);
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_REQ), 2);
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_ERR), 3);
	vfurt_dev_destroy(dev);
}

/* ---- access shapes ------------------------------------------------------ */

static void test_unaligned_straddle(void **state)
{
	struct fx *f = *state;
	uint8_t all[VFURT_PCI_CFG_SIZE_EXP];

	/* device id high byte (RO) + command low byte */
	wr(f->dev, 0x03, 2, 0x0600);
	assert_int_equal(rd(f->dev, 0x02, 2), 0x10f0);
	assert_int_equal(rd(f->dev, 0x04, 2), 0x0006);
	/* command high byte + status low byte + status high byte + revision */
	wr(f->dev, 0x05, 4, 0xffffff04);
	assert_int_equal(rd(f->dev, 0x04, 4), 0x00100406);
	assert_int_equal(rd(f->dev, 0x08, 1), 0x07);
	/* header type/BIST + BAR0 low half */
	wr(f->dev, 0x0e, 4, 0xffffffff);
	assert_int_equal(rd(f->dev, 0x0c, 4), 0);
	assert_int_equal(rd(f->dev, 0x10, 4), 0x0000f000); /* 4 KiB: bits 31:12 */
	/* byte-wise BAR programming */
	wr(f->dev, 0x10, 1, 0xff);
	wr(f->dev, 0x11, 1, 0xff);
	wr(f->dev, 0x12, 1, 0xbc);
	wr(f->dev, 0x13, 1, 0xfe);
	assert_int_equal(rd(f->dev, 0x10, 4), 0xfebcf000);
	/* odd-sized reads */
	assert_int_equal(rd(f->dev, 0x01, 3), 0x10f01a);
	assert_int_equal(rd(f->dev, 0x09, 3), 0x010802);
	/* a read of the whole space matches the raw view */
	assert_int_equal(cfg_io(f->dev, all, sizeof(all), 0, false), (ssize_t)sizeof(all));
	assert_memory_equal(all, vfurt_pci_cfg(f->pci), 0x100);
	/* a 2-byte write straddling MSI control (high byte) and address */
	wr(f->dev, (uint32_t)f->msi + 3, 2, 0xffff);
	assert_int_equal(rd(f->dev, (uint32_t)f->msi + 2, 2), 0x0184);
	assert_int_equal(rd(f->dev, (uint32_t)f->msi + 4, 1), 0xfc);
}

static void test_out_of_range(void **state)
{
	struct fx *f = *state;
	uint8_t b[8] = { 0 };

	assert_int_equal(cfg_io(f->dev, b, 1, 4096, false), -EINVAL);
	assert_int_equal(cfg_io(f->dev, b, 2, 4095, false), -EINVAL);
	assert_int_equal(cfg_io(f->dev, b, 4, 4094, true), -EINVAL);
	assert_int_equal(cfg_io(f->dev, b, 1, UINT64_MAX, false), -EINVAL);
	assert_int_equal(cfg_io(f->dev, b, SIZE_MAX, 4, false), -EINVAL);
	assert_int_equal(cfg_io(f->dev, b, 0, 4096, false), 0);
	assert_int_equal(cfg_io(f->dev, b, 1, 4095, false), 1);
	assert_int_equal(cfg_io(f->dev, NULL, 4, 0, false), -EINVAL);

	/* conventional space ends at 0x100 */
	{
		struct vfurt_dev *dev = du_dev_new("t");
		struct vfurt_pci_opts o = du_pci_opts(VFURT_PCI_CFG_SIZE);

		assert_non_null(vfurt_pci_create(dev, &o));
		assert_int_equal(cfg_io(dev, b, 4, 0x100, false), -EINVAL);
		assert_int_equal(cfg_io(dev, b, 4, 0xfc, false), 4);
		vfurt_dev_destroy(dev);
	}
}

/* ---- device config hook ------------------------------------------------- */

struct hook_log {
	int calls;
	uint64_t off;
	size_t count;
	bool is_write;
	uint8_t regs[VFURT_PCI_CFG_SIZE_EXP];
};

static ssize_t cfg_hook(struct vfurt_pci *pci, void *arg, void *buf, size_t count,
			uint64_t offset, bool is_write)
{
	struct hook_log *l = arg;

	l->calls++;
	l->off = offset;
	l->count = count;
	l->is_write = is_write;
	if (offset == 0xf00)
		return -EIO;
	if (is_write)
		memcpy(l->regs + offset, buf, count);
	else
		memcpy(buf, l->regs + offset, count);
	return (ssize_t)count;
}

static void test_cfg_hook(void **state)
{
	struct fx *f = *state;
	struct hook_log l = { 0 };
	uint32_t end = (uint32_t)f->vndr + 3 + sizeof(vndr_data); /* last standard cap end */
	uint8_t b[8];

	/* Without a hook, non-emulated bytes read 0 and ignore writes. */
	wr(f->dev, 0xf0, 4, 0x11223344);
	assert_int_equal(rd(f->dev, 0xf0, 4), 0);

	vfurt_pci_set_cfg_hook(f->pci, cfg_hook, &l);
	wr(f->dev, 0xf0, 4, 0x11223344);
	assert_int_equal(l.calls, 1);
	assert_int_equal(l.off, 0xf0);
	assert_int_equal(l.count, 4);
	assert_true(l.is_write);
	assert_int_equal(rd(f->dev, 0xf0, 4), 0x11223344);
	assert_int_equal(l.calls, 2);

	/* Header and caps never reach the hook. */
	l.calls = 0;
	(void)rd(f->dev, 0x00, 4);
	(void)rd(f->dev, (uint32_t)f->msi, 4);
	assert_int_equal(l.calls, 0);

	/* A read straddling the end of the vendor cap is split. */
	end = (end + 3) & ~3u;
	l.regs[end] = 0xaa;
	assert_int_equal(cfg_io(f->dev, b, 8, end - 4, false), 8);
	assert_int_equal(l.calls, 1);
	assert_int_equal(l.off, end);
	assert_int_equal(l.count, 4);
	assert_int_equal(b[4], 0xaa);

	/* Hook errors are returned. */
	assert_int_equal(cfg_io(f->dev, b, 4, 0xf00, false), -EIO);
}

/* ---- PCI Express and FLR ------------------------------------------------ */

static void test_pcie_regs(void **state)
{
	struct fx *f = *state;
	uint32_t e = (uint32_t)f->pcie;
	uint8_t *raw = (uint8_t *)(uintptr_t)vfurt_pci_cfg(f->pci);

	assert_int_equal(rd(f->dev, e + 2, 2), 0x0002);          /* v2 endpoint */
	assert_true(rd(f->dev, e + 4, 4) & (1u << 28));            /* FLR capable */
	assert_int_equal(rd(f->dev, e + 8, 2), 0x2810);
	wr(f->dev, e + 8, 2, 0x7fff);
	assert_int_equal(rd(f->dev, e + 8, 2), 0x781f);
	wr(f->dev, e + 4, 4, 0);
	assert_true(rd(f->dev, e + 4, 4) & (1u << 28));
	/* Device status error bits are RW1C. */
	raw[e + 0xa] = 0x0f;
	wr(f->dev, e + 0xa, 2, 0x0005);
	assert_int_equal(rd(f->dev, e + 0xa, 2), 0x000a);
	assert_int_equal(rd(f->dev, e + 0x12, 2), 0x0011);       /* x1, 2.5 GT/s */
}

static void test_flr_resets_config(void **state)
{
	struct fx *f = *state;
	uint32_t e = (uint32_t)f->pcie;

	wr(f->dev, 0x04, 2, 0x0006);
	wr(f->dev, 0x10, 4, 0xfeb00000);
	wr(f->dev, e + 8, 2, 0x0000);
	wr(f->dev, e + 8, 2, 0x8000);
	assert_int_equal(rd(f->dev, 0x04, 2), 0);
	assert_int_equal(rd(f->dev, 0x10, 4), 0);
	assert_int_equal(rd(f->dev, e + 8, 2), 0x2810);  /* FLR reads 0, defaults back */
}

static int flr_calls;

static int flr_fn(struct vfurt_pci *pci, void *arg)
{
	flr_calls++;
	assert_ptr_equal(arg, &flr_calls);
	vfurt_pci_reset(pci);
	return 0;
}

static void test_flr_hook(void **state)
{
	struct fx *f = *state;
	uint32_t e = (uint32_t)f->pcie;

	flr_calls = 0;
	vfr_pci_set_flr_fn(f->pci, flr_fn, &flr_calls);
	wr(f->dev, 0x04, 2, 0x0002);
	wr(f->dev, e + 9, 1, 0x80);
	assert_int_equal(flr_calls, 1);
	assert_int_equal(rd(f->dev, 0x04, 2), 0);
	assert_int_equal(rd(f->dev, e + 8, 2) & 0x8000, 0);
	/* Writing devctl without the FLR bit does not reset. */
	wr(f->dev, 0x04, 2, 0x0002);
	wr(f->dev, e + 8, 2, 0x0001);
	assert_int_equal(flr_calls, 1);
	assert_int_equal(rd(f->dev, 0x04, 2), 2);
}

/* ---- reset -------------------------------------------------------------- */

static void test_reset(void **state)
{
	struct fx *f = *state;
	struct vfurt_dev *dev = f->dev;
	uint32_t m = (uint32_t)f->msi;
	int efd = du_attach_efd(dev, VFURT_IRQ_MSI, 0);

	wr(dev, 0x04, 2, 0x0547);
	wr(dev, 0x10, 4, 0xfeb00000);
	wr(dev, 0x18, 4, 0xfe000000);
	wr(dev, 0x1c, 4, 0x1);
	wr(dev, 0x30, 4, 0xfe000001);
	wr(dev, 0x3c, 1, 11);
	wr(dev, (uint32_t)f->pm + 4, 2, 3);
	wr(dev, m + 2, 2, 0x0021);
	wr(dev, m + 0x10, 4, 0x1);
	assert_true(vfurt_pci_msi_enabled(f->pci));

	vfurt_pci_reset(f->pci);
	assert_int_equal(rd(dev, 0x04, 2), 0);
	assert_int_equal(rd(dev, 0x10, 4), 0);
	assert_int_equal(rd(dev, 0x18, 4), 0xc);
	assert_int_equal(rd(dev, 0x1c, 4), 0);
	assert_int_equal(rd(dev, 0x30, 4), 0);
	assert_int_equal(rd(dev, 0x3c, 1), 0);
	assert_int_equal(rd(dev, (uint32_t)f->pm + 4, 2), 0x0008);
	assert_int_equal(rd(dev, m + 2, 2), 0x0184);
	assert_int_equal(rd(dev, m + 0x10, 4), 0);
	assert_false(vfurt_pci_msi_enabled(f->pci));
	/* IDs and caps survive. */
	assert_int_equal(rd(dev, 0x00, 4), 0x10f01af4);
	assert_int_equal(find_cap(dev, 0x10), (uint32_t)f->pcie);
	assert_int_equal(rd(dev, 0x100, 2), 0x0003);
	/* MSI is function-masked again. */
	assert_int_equal(vfurt_irq_trigger(dev, VFURT_IRQ_MSI, 0), 0);
	assert_int_equal(du_efd_count(efd), 0);
	wr(dev, m + 2, 2, 0x0001);
	assert_int_equal(du_efd_count(efd), 1);
	close(efd);

	vfurt_pci_reset(NULL); /* ignored */
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_full, du_dev_teardown)
	const struct CMUnitTest tests[] = {
		T(test_ids_readonly),
		T(test_command_mask),
		T(test_status_rw1c),
		T(test_bar_mem32),
		T(test_bar_mem64),
		cmocka_unit_test(test_bar_mem64_large),
		T(test_bar_io),
		T(test_bar_unused),
		T(test_bar_rom),
		cmocka_unit_test(test_rom_absent_and_small),
		cmocka_unit_test(test_bar_bad_regions),
		cmocka_unit_test(test_create_bad_opts),
		cmocka_unit_test(test_create_short_opts),
		T(test_cap_walk),
		T(test_ext_cap_walk),
		cmocka_unit_test(test_ext_caps_empty),
		T(test_cap_errors),
		T(test_pm),
		T(test_msi_regs),
		T(test_msi_delivery),
		cmocka_unit_test(test_msi_no_mask),
		T(test_msi_resync),
		T(test_intx_disable),
		cmocka_unit_test(test_no_intx),
		cmocka_unit_test(test_err_req_irqs),
		T(test_unaligned_straddle),
		T(test_out_of_range),
		T(test_cfg_hook),
		T(test_pcie_regs),
		T(test_flr_resets_config),
		T(test_flr_hook),
		T(test_reset),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
