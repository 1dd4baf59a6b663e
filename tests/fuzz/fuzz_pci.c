/* libFuzzer target: PCI config space, capabilities, MSI/MSI-X table and PBA of the GPIO, NVMe and a test device. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vfurt/bdev.h>
#include <vfurt/gpio.h>
#include <vfurt/nvme.h>
#include <vfurt/pci.h>

#include "devices/pci/pci_internal.h"
#include "io/device_internal.h"

#include "fuzz_formats.h"
#include "fuzz_input.h"

/*
 * Accesses of any offset, size and value reach config space through the
 * region callback the engine calls (and BARs through theirs, which covers
 * the MSI-X table and PBA), mixed with what the rest of the system does to
 * the same state: the device raising vectors, the client assigning
 * eventfds and masking (as SET_IRQS does), resets, the client leaving.
 * After every operation:
 *   - bits that are neither writable nor dynamic hold their power-on value
 *     (read-only IDs, BAR type bits, the capability chains, ...);
 *   - MSI-X table entries have no bits set outside their writable mask;
 *   - the PBA and the MSI pending register say what the irq layer says;
 * after a trigger, a vector the guest masked must not fire (it is pending
 * instead) and one that nothing masks and has an eventfd must fire; after
 * a reset, config space and the MSI-X table are the power-on ones.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXV 64u

struct zoo {
	uint8_t bar0[4096];
	uint8_t bar1[256];
	uint8_t bar2[8192];
	uint8_t bar3[4096];
	uint8_t bar4[16384];
	uint8_t rom[2048];
	uint8_t cfg[VFURT_PCI_CFG_SIZE_EXP]; /* bytes the PCI layer leaves to the device */
};

struct fz {
	struct vfurt_dev *dev;
	struct vfurt_pci *pci;
	uint32_t msi_pending_off; /* 0: no MSI with per-vector masks */
	int efd[VFURT_IRQ_NUM][MAXV]; /* our dup of each assigned trigger eventfd */
	bool cmask[VFURT_IRQ_NUM][MAXV];
};


/* ---- the test device ------------------------------------------------- */

static ssize_t zoo_rw(uint8_t *mem, void *buf, size_t count, uint64_t off, bool wr)
{
	if (wr)
		memcpy(mem + off, buf, count);
	else
		memcpy(buf, mem + off, count);
	return (ssize_t)count;
}

#define ZOO_BAR(n, field)                                                                  \
	static ssize_t zoo_##n(struct vfurt_dev *dev, void *arg, void *buf, size_t count,  \
			       uint64_t off, bool wr)                                     \
	{                                                                                  \
		struct zoo *z = arg;                                                       \
                                                                                           \
		(void)dev;                                                                 \
		FZ_CHECK(off <= sizeof(z->field) && count <= sizeof(z->field) - off,       \
			 #n ": access [0x%llx, +%zu) outside", (unsigned long long)off,   \
			 count);                                                           \
		return zoo_rw(z->field, buf, count, off, wr);                              \
	}
ZOO_BAR(bar0, bar0)
ZOO_BAR(bar1, bar1)
ZOO_BAR(bar2, bar2)
ZOO_BAR(bar3, bar3)
ZOO_BAR(bar4, bar4)
ZOO_BAR(rom, rom)

static ssize_t zoo_cfg(struct vfurt_pci *pci, void *arg, void *buf, size_t count,
		       uint64_t off, bool wr)
{
	struct zoo *z = arg;

	(void)pci;
	FZ_CHECK(off >= VPCI_HEADER_END && off <= sizeof(z->cfg) && count <= sizeof(z->cfg) - off,
		 "cfg hook: [0x%llx, +%zu)", (unsigned long long)off, count);
	return zoo_rw(z->cfg, buf, count, off, wr);
}

static void zoo_destroy(struct vfurt_dev *dev, void *arg)
{
	(void)dev;
	free(arg);
}

static const struct vfurt_dev_ops zoo_ops = {
	.ops_size = sizeof(struct vfurt_dev_ops),
	.destroy = zoo_destroy,
};

static void zoo_region(struct vfurt_dev *dev, uint32_t index, uint64_t size, uint32_t flags,
		       vfurt_region_access_fn fn, struct zoo *z)
{
	struct vfurt_region_desc d = { .desc_size = sizeof(d), .size = size,
				       .flags = VFURT_REGION_RW | flags, .access = fn, .arg = z,
				       .fd = -1 };

	FZ_CHECK(vfurt_dev_setup_region(dev, index, &d) == 0, "region %u", index);
}

static struct vfurt_dev *make_zoo(struct fz *f)
{
	static const uint8_t vsec[12] = { 'v', 'f', 'u', '-', 'r', 't', 0, 1, 2, 3, 4, 5 };
	struct vfurt_pci_opts po = { .opts_size = sizeof(po), .vendor_id = 0x1af4,
				     .device_id = 0x10ff, .subsys_vendor_id = 0x1af4,
				     .subsys_id = 0x1234, .revision = 2, .class_code = 0xff0000,
				     .intx_pin = 2, .cfg_size = VFURT_PCI_CFG_SIZE_EXP };
	struct vfurt_dev_opts o = { .opts_size = sizeof(o), .name = "zoo", .ops = &zoo_ops,
				    .reset_supported = true };
	struct zoo *z = calloc(1, sizeof(*z));
	struct vfurt_dev *dev;
	int msi;

	FZ_CHECK(z, "calloc");
	o.arg = z;
	o.log.level = -1;
	dev = vfurt_dev_create(&o);
	FZ_CHECK(dev, "vfurt_dev_create");
	zoo_region(dev, VFURT_REGION_BAR0, sizeof(z->bar0), 0, zoo_bar0, z);
	zoo_region(dev, VFURT_REGION_BAR1, sizeof(z->bar1), VFURT_REGION_IO, zoo_bar1, z);
	zoo_region(dev, VFURT_REGION_BAR2, sizeof(z->bar2), 0, zoo_bar2, z);
	zoo_region(dev, VFURT_REGION_BAR3, sizeof(z->bar3), VFURT_REGION_PREFETCH, zoo_bar3, z);
	zoo_region(dev, VFURT_REGION_BAR4, sizeof(z->bar4),
		   VFURT_REGION_MEM64 | VFURT_REGION_PREFETCH, zoo_bar4, z);
	zoo_region(dev, VFURT_REGION_ROM, sizeof(z->rom), 0, zoo_rom, z);
	f->pci = vfurt_pci_create(dev, &po);
	FZ_CHECK(f->pci, "vfurt_pci_create: %s", strerror(errno));
	vfurt_pci_set_cfg_hook(f->pci, zoo_cfg, z);
	FZ_CHECK(vfurt_pci_add_pm(f->pci) > 0, "pm");
	msi = vfurt_pci_add_msi(f->pci, 8, true);
	FZ_CHECK(msi > 0, "msi");
	f->msi_pending_off = (uint32_t)msi + 0x14u;
	FZ_CHECK(vfurt_pci_add_msix(f->pci, 33, 2, 0x1000, 3, 0x800) > 0, "msix");
	FZ_CHECK(vfurt_pci_add_vendor(f->pci, vsec, 5) > 0, "vendor");
	FZ_CHECK(vfurt_pci_add_pcie(f->pci) > 0, "pcie");
	FZ_CHECK(vfurt_pci_add_dsn(f->pci, 0x0123456789abcdefull) > 0, "dsn");
	FZ_CHECK(vfurt_pci_add_ext_vendor(f->pci, 0x5646, 1, vsec, sizeof(vsec)) > 0, "vsec");
	return dev;
}

static struct vfurt_dev *make_dev(struct fz *f, uint32_t kind)
{
	struct vfurt_dev *dev;

	if (kind == FZ_PCI_DEV_GPIO) {
		struct vfurt_gpio_opts go = { .opts_size = sizeof(go), .name = "fz" };

		go.log.level = -1;
		dev = vfurt_gpio_create(&go);
	} else if (kind == FZ_PCI_DEV_NVME) {
		struct vfurt_bdev *b = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
			.opts_size = sizeof(struct vfurt_bdev_null_opts), .name = "fz",
			.block_size = 512, .size_bytes = 1024 * 512 });
		struct vfurt_nvme_opts o = { .opts_size = sizeof(o), .name = "fz", .serial = "FUZZ",
					     .ns = &b, .nr_ns = 1, .own_bdevs = true };

		FZ_CHECK(b, "bdev");
		o.log.level = -1;
		dev = vfurt_nvme_create(&o);
	} else {
		return make_zoo(f);
	}
	FZ_CHECK(dev, "device %u: %s", kind, strerror(errno));
	f->pci = vfurt_dev_pci(dev);
	FZ_CHECK(f->pci, "no PCI");
	return dev;
}

/* ---- checks ---------------------------------------------------------- */

static ssize_t region_io(struct fz *f, uint32_t index, void *buf, size_t count, uint64_t off,
			 bool wr)
{
	struct vfurt_region_desc d = { .desc_size = sizeof(d) };

	if (vfurt_dev_get_region(f->dev, index, &d) || !d.access || !d.size)
		return -EINVAL;
	/* what the engine checks before it calls the region (cmd_region.c) */
	if (!count || off > d.size || count > d.size - off)
		return -EINVAL;
	return d.access(f->dev, d.arg, buf, count, off, wr);
}

static bool dynamic_byte(const struct fz *f, uint32_t o)
{
	return f->msi_pending_off && o >= f->msi_pending_off && o < f->msi_pending_off + 4;
}

static const uint8_t msix_wmask[16] = {
	0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0,
};

static void check_state(struct fz *f)
{
	const struct vfurt_pci *p = f->pci;

	for (uint32_t o = 0; o < p->cfg_size; o++) {
		if (!p->emu[o] || dynamic_byte(f, o))
			continue;
		FZ_CHECK(((p->cfg[o] ^ p->rst[o]) & ~p->wmask[o]) == 0,
			 "config byte 0x%x: 0x%02x, power-on 0x%02x, writable 0x%02x", o, p->cfg[o],
			 p->rst[o], p->wmask[o]);
	}
	for (uint32_t i = 0; p->msix_off && i < p->msix_nvec * 16u; i++)
		FZ_CHECK((p->msix_table[i] & ~msix_wmask[i % 16]) == 0,
			 "MSI-X table byte 0x%x: 0x%02x", i, p->msix_table[i]);
	if (p->msix_off) {
		uint8_t pba[16];
		uint32_t len = (p->msix_nvec + 63) / 64 * 8;

		FZ_CHECK(len <= sizeof(pba), "PBA of %u bytes", len);
		FZ_CHECK(region_io(f, VFURT_REGION_BAR0 + p->msix_pba_bar, pba, len,
				   p->msix_pba_off, false) == (ssize_t)len, "PBA read");
		for (uint32_t v = 0; v < len * 8; v++) {
			bool bit = pba[v / 8] & (1u << (v % 8));
			bool want = v < p->msix_nvec && vfurt_irq_pending(f->dev, VFURT_IRQ_MSIX, v);

			FZ_CHECK(bit == want, "PBA bit %u is %d, irq layer %d", v, bit, want);
		}
	}
	if (f->msi_pending_off) {
		uint32_t bits = 0, want = 0;

		FZ_CHECK(region_io(f, VFURT_REGION_CONFIG, &bits, 4, f->msi_pending_off, false) == 4,
			 "MSI pending read");
		for (uint32_t v = 0; v < p->msi_nvec; v++)
			if (vfurt_irq_pending(f->dev, VFURT_IRQ_MSI, v))
				want |= 1u << v;
		FZ_CHECK(bits == want, "MSI pending 0x%x, irq layer 0x%x", bits, want);
	}
}

static void check_power_on(struct fz *f)
{
	const struct vfurt_pci *p = f->pci;

	for (uint32_t o = 0; o < p->cfg_size; o++)
		FZ_CHECK(p->cfg[o] == p->rst[o], "after reset: config byte 0x%x 0x%02x, power-on "
			 "0x%02x", o, p->cfg[o], p->rst[o]);
	for (uint32_t i = 0; p->msix_off && i < p->msix_nvec * 16u; i++)
		FZ_CHECK(p->msix_table[i] == (i % 16 == 12 ? 1 : 0),
			 "after reset: MSI-X table byte 0x%x: 0x%02x", i, p->msix_table[i]);
	for (uint32_t v = 0; v < vfurt_dev_irq_count(f->dev, VFURT_IRQ_MSIX); v++)
		FZ_CHECK(!vfurt_irq_pending(f->dev, VFURT_IRQ_MSIX, v), "MSI-X %u pending", v);
	for (uint32_t v = 0; v < vfurt_dev_irq_count(f->dev, VFURT_IRQ_MSI); v++)
		FZ_CHECK(!vfurt_irq_pending(f->dev, VFURT_IRQ_MSI, v), "MSI %u pending", v);
}

/* Whether the guest masks (index, v): disabled, function-masked, vector-masked. */
static bool guest_masked(const struct fz *f, uint32_t index, uint32_t v)
{
	const struct vfurt_pci *p = f->pci;
	uint32_t ctl;

	switch (index) {
	case VFURT_IRQ_INTX:
		return vfr_vpci_get(p, VPCI_COMMAND, 2) & VPCI_CMD_INTX_DISABLE;
	case VFURT_IRQ_MSI:
		if (!p->msi_off)
			return false;
		ctl = vfr_vpci_get(p, p->msi_off + 2, 2);
		return !(ctl & 1u) || v >= 1u << ((ctl >> 4) & 7u) ||
		       (p->msi_pvm && (vfr_vpci_get(p, p->msi_off + 0x10, 4) & (1u << v)));
	case VFURT_IRQ_MSIX:
		if (!p->msix_off)
			return false;
		ctl = vfr_vpci_get(p, p->msix_off + 2, 2);
		return !(ctl & 0x8000u) || (ctl & 0x4000u) || (p->msix_table[v * 16 + 12] & 1u);
	default:
		return false;
	}
}

static uint64_t efd_count(int fd)
{
	uint64_t n = 0;

	if (fd < 0 || read(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		return 0;
	return n;
}

/* ---- operations ------------------------------------------------------ */

static uint32_t access_size(struct fz_in *in)
{
	uint8_t s = fz_u8(in);

	return s >= 0xf0u ? 0x100u + (s - 0xf0u) * 0x100u : 1u + s % 16u;
}

static void op_cfg(struct fz *f, struct fz_in *in, bool wr)
{
	static uint8_t buf[VFURT_PCI_CFG_SIZE_EXP + 0x1000];
	uint32_t off = fz_u16(in) % (f->pci->cfg_size + 8u);
	uint32_t len = access_size(in);

	if (wr)
		fz_bytes(in, buf, len);
	(void)region_io(f, VFURT_REGION_CONFIG, buf, len, off, wr);
}

static void op_bar(struct fz *f, struct fz_in *in)
{
	uint32_t bar = fz_u8(in) % 7u;
	uint32_t off = fz_u32(in);
	uint32_t len = 1u + fz_u8(in) % 16u;
	bool wr = fz_u8(in) & 1u;
	struct vfurt_region_desc d = { .desc_size = sizeof(d) };
	uint8_t buf[16];

	fz_bytes(in, buf, sizeof(buf));
	if (vfurt_dev_get_region(f->dev, VFURT_REGION_BAR0 + bar, &d) || !d.size)
		return;
	off %= (uint32_t)(d.size + 16u);
	(void)region_io(f, VFURT_REGION_BAR0 + bar, buf, len, off, wr);
}

static void op_trigger(struct fz *f, struct fz_in *in)
{
	uint32_t index = fz_u8(in) % VFURT_IRQ_NUM;
	uint32_t v = fz_u16(in);
	uint32_t count = vfurt_dev_irq_count(f->dev, index);
	bool masked, deliver;
	int fd;

	if (count == 0)
		return;
	v %= count + 1u; /* one past the end too */
	if (v >= count || v >= MAXV) {
		(void)vfurt_irq_trigger(f->dev, index, v);
		return;
	}
	fd = f->efd[index][v];
	(void)efd_count(fd);
	masked = guest_masked(f, index, v);
	deliver = !masked && !f->cmask[index][v] && fd >= 0;
	(void)vfurt_irq_trigger(f->dev, index, v);
	if (index != VFURT_IRQ_MSI && index != VFURT_IRQ_MSIX)
		return; /* INTx automasks and resamples: not this simple */
	if (masked) {
		FZ_CHECK(efd_count(fd) == 0, "irq %u vector %u fired while the guest masks it",
			 index, v);
		FZ_CHECK(vfurt_irq_pending(f->dev, index, v), "irq %u vector %u not pending", index,
			 v);
	} else if (deliver) {
		FZ_CHECK(efd_count(fd) >= 1, "irq %u vector %u did not fire", index, v);
		FZ_CHECK(!vfurt_irq_pending(f->dev, index, v), "irq %u vector %u fired and pending",
			 index, v);
	}
}

static void forget_efd(struct fz *f, uint32_t index, uint32_t v)
{
	if (f->efd[index][v] >= 0)
		close(f->efd[index][v]);
	f->efd[index][v] = -1;
}

/* What vfr_cmd_set_irqs does after a successful TRIGGER request. */
static void report(struct fz *f, uint32_t index, uint32_t start, uint32_t count)
{
	if (!f->dev->pci_client_irq)
		return;
	for (uint32_t i = 0; i < count; i++)
		f->dev->pci_client_irq(f->dev->pci, index, start + i,
				       vfurt_irq_enabled(f->dev, index, start + i));
}

static void op_irqs(struct fz *f, struct fz_in *in)
{
	uint32_t index = fz_u8(in) % VFURT_IRQ_NUM;
	uint32_t v = fz_u16(in);
	uint32_t how = fz_u8(in) % 5u;
	uint32_t count = vfurt_dev_irq_count(f->dev, index);
	struct vfio_irq_set set = { .argsz = sizeof(set), .index = index, .start = v, .count = 1 };
	int fd = -1, mine = -1;
	int rc;

	if (count == 0 || (v %= count) >= MAXV)
		return;
	switch (how) {
	case 0:
		fd = eventfd(0, EFD_CLOEXEC);
		FZ_CHECK(fd >= 0, "eventfd");
		mine = dup(fd);
		FZ_CHECK(mine >= 0, "dup");
		/* fall through */
	case 1:
		set.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
		rc = vfr_irqs_set(f->dev->irqs, &set, NULL, 0, &fd, 1, NULL, NULL);
		if (rc) {
			if (fd >= 0)
				close(fd);
			if (mine >= 0)
				close(mine);
			return;
		}
		forget_efd(f, index, v);
		f->efd[index][v] = mine;
		report(f, index, v, 1);
		break;
	case 2:
	case 3:
		set.flags = VFIO_IRQ_SET_DATA_NONE |
			    (how == 2 ? VFIO_IRQ_SET_ACTION_MASK : VFIO_IRQ_SET_ACTION_UNMASK);
		if (vfr_irqs_set(f->dev->irqs, &set, NULL, 0, NULL, 0, NULL, NULL) == 0)
			f->cmask[index][v] = how == 2;
		break;
	default:
		set.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
		set.start = set.count = 0;
		if (vfr_irqs_set(f->dev->irqs, &set, NULL, 0, NULL, 0, NULL, NULL) == 0) {
			for (uint32_t i = 0; i < MAXV; i++)
				forget_efd(f, index, i);
			report(f, index, 0, count);
		}
		break;
	}
}

static void op_detach(struct fz *f)
{
	/* vfurt_conn_destroy's order */
	vfr_irqs_release_client(f->dev->irqs);
	if (f->dev->pci_client_detach)
		f->dev->pci_client_detach(f->dev->pci);
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++) {
		for (uint32_t v = 0; v < MAXV; v++) {
			forget_efd(f, i, v);
			f->cmask[i][v] = false;
		}
	}
}

static void op_reset(struct fz *f, struct fz_in *in)
{
	const struct vfurt_pci *p = f->pci;
	uint8_t why = fz_u8(in) % 3u;

	if (why == 2 && p->pcie_off) {
		uint32_t ctl = vfr_vpci_get(p, p->pcie_off + 8, 2) | 0x8000u;

		(void)region_io(f, VFURT_REGION_CONFIG, &ctl, 2, p->pcie_off + 8, true);
	} else {
		(void)vfurt_dev_reset(f->dev, why ? VFURT_RESET_PCI_FLR : VFURT_RESET_CLIENT);
	}
	check_power_on(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct fz f;
	/* counted per input: libFuzzer itself opens fds once it is running */
	int fd_baseline = fz_count_fds();
	int fds;

	memset(&f, 0, sizeof(f));
	memset(f.efd, 0xff, sizeof(f.efd));
	f.dev = make_dev(&f, fz_u8(&in) % FZ_PCI_DEV_NR);
	check_state(&f);
	check_power_on(&f);
	for (uint32_t ops = 0; fz_more(&in) && ops < 512; ops++) {
		uint8_t op = fz_u8(&in) % FZ_PCI_OP_NR;

		/* A broken invariant stays broken until a reset: checking every 8th
		 * operation and before each reset finds the same bugs 8 times faster
		 * (the whole config space is compared). */
		if (op == FZ_PCI_OP_RESET)
			check_state(&f);
		switch (op) {
		case FZ_PCI_OP_CFG_READ:
			op_cfg(&f, &in, false);
			break;
		case FZ_PCI_OP_CFG_WRITE:
			op_cfg(&f, &in, true);
			break;
		case FZ_PCI_OP_BAR:
			op_bar(&f, &in);
			break;
		case FZ_PCI_OP_TRIGGER:
			op_trigger(&f, &in);
			break;
		case FZ_PCI_OP_IRQS:
			op_irqs(&f, &in);
			break;
		case FZ_PCI_OP_RESET:
			op_reset(&f, &in);
			break;
		default:
			op_detach(&f);
			break;
		}
		if ((ops & 7u) == 7u)
			check_state(&f);
	}
	check_state(&f);
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++)
		for (uint32_t v = 0; v < MAXV; v++)
			forget_efd(&f, i, v);
	vfurt_dev_destroy(f.dev);
	fds = fz_count_fds();
	FZ_CHECK(fds == fd_baseline, "%d fds open after the input, %d before", fds, fd_baseline);
	return 0;
}
