/* vfu-ctl info: a vfio-user server's protocol, device, regions and irqs, its PCI config space decoded like lspci -vv. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vfurt/client.h>

#include "ctl_internal.h"

#define MAX_REGIONS_SHOWN 64u
#define MAX_IRQS_SHOWN 32u

/* PCI config space layout (type 0 header). */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID 0x2e
#define PCI_ROM 0x30
#define PCI_CAP_PTR 0x34
#define PCI_INT_LINE 0x3c
#define PCI_INT_PIN 0x3d
#define PCI_CFG_STD 256u
#define PCI_CMD_IO 0x1u
#define PCI_CMD_MEM 0x2u
#define PCI_STATUS_CAP 0x10u
#define PCI_CFG_REGION 7u

/* ---- little-endian config space accessors (bounds checked) ------------------ */

struct cfg {
	const uint8_t *b;
	size_t size;
};

static uint8_t rd8(const struct cfg *c, size_t off)
{
	return off < c->size ? c->b[off] : 0xff;
}

static uint16_t rd16(const struct cfg *c, size_t off)
{
	return (uint16_t)(rd8(c, off) | rd8(c, off + 1) << 8);
}

static uint32_t rd32(const struct cfg *c, size_t off)
{
	return (uint32_t)rd16(c, off) | (uint32_t)rd16(c, off + 2) << 16;
}

static const char *flag(uint32_t v, uint32_t bit)
{
	return (v & bit) ? "+" : "-";
}

/* "16K", "1M" like lspci; size 0 = "?". */
static void fmt_size(uint64_t size, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	int u = -1;

	while (size >= 1024 && (size % 1024) == 0 && u < 5) {
		size /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, size);
	else
		snprintf(buf, len, "%" PRIu64 "%c", size, units[u]);
}

static const char *class_name(uint8_t base)
{
	static const char *const names[] = {
		"Unclassified device", "Mass storage controller", "Network controller",
		"Display controller", "Multimedia controller", "Memory controller",
		"Bridge", "Communication controller", "Generic system peripheral",
		"Input device controller", "Docking station", "Processor",
		"Serial bus controller", "Wireless controller", "Intelligent controller",
		"Satellite communications controller", "Encryption controller",
		"Signal processing controller", "Processing accelerators",
		"Non-Essential Instrumentation",
	};

	if (base < sizeof(names) / sizeof(names[0]))
		return names[base];
	return base == 0xff ? "Unassigned class" : "Unknown class";
}

static const char *subclass_name(uint8_t base, uint8_t sub)
{
	static const struct {
		uint8_t base, sub;
		const char *name;
	} t[] = {
		{ 0x01, 0x00, "SCSI storage controller" }, { 0x01, 0x01, "IDE interface" },
		{ 0x01, 0x06, "SATA controller" }, { 0x01, 0x08, "Non-Volatile memory controller" },
		{ 0x02, 0x00, "Ethernet controller" }, { 0x03, 0x00, "VGA compatible controller" },
		{ 0x06, 0x00, "Host bridge" }, { 0x06, 0x04, "PCI bridge" },
		{ 0x08, 0x80, "System peripheral" }, { 0x0c, 0x03, "USB controller" },
		{ 0x11, 0x80, "Signal processing controller" }, { 0x12, 0x00, "Processing accelerators" },
		{ 0xff, 0x00, "Unassigned class" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].base == base && t[i].sub == sub)
			return t[i].name;
	return class_name(base);
}

/* ---- PCI header ------------------------------------------------------------------ */

static void print_command_status(const struct cfg *c)
{
	uint16_t cmd = rd16(c, PCI_COMMAND);
	uint16_t st = rd16(c, PCI_STATUS);
	static const char *const devsel[] = { "fast", "medium", "slow", "??" };

	printf("\tControl: I/O%s Mem%s BusMaster%s SpecCycle%s MemWINV%s VGASnoop%s ParErr%s "
	       "Stepping%s SERR%s FastB2B%s DisINTx%s\n",
	       flag(cmd, 1u << 0), flag(cmd, 1u << 1), flag(cmd, 1u << 2), flag(cmd, 1u << 3),
	       flag(cmd, 1u << 4), flag(cmd, 1u << 5), flag(cmd, 1u << 6), flag(cmd, 1u << 7),
	       flag(cmd, 1u << 8), flag(cmd, 1u << 9), flag(cmd, 1u << 10));
	printf("\tStatus: Cap%s 66MHz%s UDF%s FastB2B%s ParErr%s DEVSEL=%s >TAbort%s <TAbort%s "
	       "<MAbort%s >SERR%s <PERR%s INTx%s\n",
	       flag(st, 1u << 4), flag(st, 1u << 5), flag(st, 1u << 6), flag(st, 1u << 7),
	       flag(st, 1u << 8), devsel[(st >> 9) & 3], flag(st, 1u << 11), flag(st, 1u << 12),
	       flag(st, 1u << 13), flag(st, 1u << 14), flag(st, 1u << 15), flag(st, 1u << 3));
}

static int cfg_write32(struct vfurt_client *cl, uint32_t off, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	return vfurt_client_region_write(cl, PCI_CFG_REGION, off, b, sizeof(b));
}

static int cfg_read32(struct vfurt_client *cl, uint32_t off, uint32_t *v)
{
	uint8_t b[4];
	int rc = vfurt_client_region_read(cl, PCI_CFG_REGION, off, b, sizeof(b));

	if (!rc)
		*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
		     (uint32_t)b[3] << 24;
	return rc;
}

static int cfg_write16(struct vfurt_client *cl, uint32_t off, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	return vfurt_client_region_write(cl, PCI_CFG_REGION, off, b, sizeof(b));
}

/* Write all-ones to a BAR dword, read back the size mask, restore. */
static int probe_dword(struct vfurt_client *cl, uint32_t off, uint32_t ones, uint32_t orig,
		       uint32_t *mask)
{
	int rc = cfg_write32(cl, off, ones);

	if (!rc)
		rc = cfg_read32(cl, off, mask);
	if (cfg_write32(cl, off, orig) && !rc)
		rc = -EIO;
	return rc;
}

/*
 * Size the BARs the way an OS does: with I/O and memory decoding off, write
 * all-ones to each BAR (both halves of a 64-bit one) and the ROM BAR, read
 * back the mask and restore the original values and command register.
 */
static int print_bars(struct vfurt_client *cl, const struct cfg *c,
		      const struct vfurt_client_region_info *regions, uint32_t nregions)
{
	uint16_t cmd = rd16(c, PCI_COMMAND);
	int rc = 0;

	if (cmd & (PCI_CMD_IO | PCI_CMD_MEM)) {
		rc = cfg_write16(cl, PCI_COMMAND, (uint16_t)(cmd & ~(PCI_CMD_IO | PCI_CMD_MEM)));
		if (rc)
			return rc;
	}
	for (uint32_t i = 0; i < 6 && !rc; i++) {
		uint32_t off = PCI_BAR0 + 4 * i;
		uint32_t lo = rd32(c, off), hi = 0, mlo = 0, mhi = 0xffffffffu;
		bool io = lo & 1u, is64 = !io && ((lo >> 1) & 3u) == 2u;
		uint64_t base, size, mask;
		char sz[32];

		rc = probe_dword(cl, off, 0xffffffffu, lo, &mlo);
		if (!rc && is64 && i < 5) {
			hi = rd32(c, off + 4);
			rc = probe_dword(cl, off + 4, 0xffffffffu, hi, &mhi);
		}
		if (rc)
			break;
		if (io) {
			mask = (mlo & 0xfffffffcu) | 0xffffffff00000000ull;
			base = lo & 0xfffffffcu;
		} else {
			mask = (uint64_t)(is64 ? mhi : 0xffffffffu) << 32 | (mlo & 0xfffffff0u);
			base = (uint64_t)(is64 ? hi : 0) << 32 | (lo & 0xfffffff0u);
		}
		/* Nothing writable in the address bits: BAR not implemented. */
		size = ((mlo & (io ? 0xfffffffcu : 0xfffffff0u)) == 0 && (!is64 || mhi == 0)) ?
			0 : ~mask + 1;
		if (size) {
			fmt_size(size, sz, sizeof(sz));
			if (io)
				printf("\tRegion %u: I/O ports at %04" PRIx64 " [size=%s]", i, base, sz);
			else
				printf("\tRegion %u: Memory at %08" PRIx64 " (%s, %sprefetchable) [size=%s]",
				       i, base, is64 ? "64-bit" : "32-bit",
				       (lo & 8u) ? "" : "non-", sz);
			if (i < nregions && regions[i].size != size)
				printf(" (region size %#" PRIx64 ")", regions[i].size);
			printf("\n");
		} else if (i < nregions && regions[i].size) {
			printf("\tRegion %u: unsized in config space (region size %#" PRIx64 ")\n",
			       i, regions[i].size);
		}
		if (is64)
			i++;
	}
	if (!rc) {
		uint32_t rom = rd32(c, PCI_ROM), mrom = 0;

		rc = probe_dword(cl, PCI_ROM, 0xfffff800u, rom, &mrom);
		if (!rc && (mrom & 0xfffff800u)) {
			char sz[32];

			fmt_size((uint64_t)(uint32_t)(~(mrom & 0xfffff800u) + 1u), sz, sizeof(sz));
			printf("\tExpansion ROM at %08x [%s] [size=%s]\n", rom & 0xfffff800u,
			       (rom & 1u) ? "enabled" : "disabled", sz);
		}
	}
	if (cmd & (PCI_CMD_IO | PCI_CMD_MEM)) {
		int rc2 = cfg_write16(cl, PCI_COMMAND, cmd);

		if (!rc)
			rc = rc2;
	}
	return rc;
}

/* ---- capabilities -------------------------------------------------------------------- */

static void print_pm(const struct cfg *c, uint32_t p)
{
	uint16_t pmc = rd16(c, p + 2), csr = rd16(c, p + 4);

	printf("Power Management version %u\n", pmc & 7u);
	printf("\t\tFlags: PMEClk%s DSI%s D1%s D2%s AuxCurrent=%umA PME(D0%s,D1%s,D2%s,D3hot%s,"
	       "D3cold%s)\n",
	       flag(pmc, 1u << 3), flag(pmc, 1u << 5), flag(pmc, 1u << 9), flag(pmc, 1u << 10),
	       ((unsigned)(pmc >> 6) & 7u) * 55u, flag(pmc, 1u << 11), flag(pmc, 1u << 12),
	       flag(pmc, 1u << 13), flag(pmc, 1u << 14), flag(pmc, 1u << 15));
	printf("\t\tStatus: D%u NoSoftRst%s PME-Enable%s DSel=%u DScale=%u PME%s\n", csr & 3u,
	       flag(csr, 1u << 3), flag(csr, 1u << 8), (csr >> 9) & 15u, (csr >> 13) & 3u,
	       flag(csr, 1u << 15));
}

static void print_msi(const struct cfg *c, uint32_t p)
{
	uint16_t ctl = rd16(c, p + 2);
	bool is64 = ctl & (1u << 7);
	uint32_t data_off = is64 ? 12 : 8;

	printf("MSI: Enable%s Count=%u/%u Maskable%s 64bit%s\n", flag(ctl, 1u),
	       1u << ((ctl >> 4) & 7u), 1u << ((ctl >> 1) & 7u), flag(ctl, 1u << 8),
	       flag(ctl, 1u << 7));
	if (is64)
		printf("\t\tAddress: %08x%08x  Data: %04x\n", rd32(c, p + 8), rd32(c, p + 4),
		       rd16(c, p + data_off));
	else
		printf("\t\tAddress: %08x  Data: %04x\n", rd32(c, p + 4), rd16(c, p + data_off));
	if (ctl & (1u << 8))
		printf("\t\tMasking: %08x  Pending: %08x\n", rd32(c, p + data_off + 4),
		       rd32(c, p + data_off + 8));
}

static void print_msix(const struct cfg *c, uint32_t p)
{
	uint16_t ctl = rd16(c, p + 2);
	uint32_t table = rd32(c, p + 4), pba = rd32(c, p + 8);

	printf("MSI-X: Enable%s Count=%u Masked%s\n", flag(ctl, 1u << 15), (ctl & 0x7ffu) + 1,
	       flag(ctl, 1u << 14));
	printf("\t\tVector table: BAR=%u offset=%08x\n", table & 7u, table & ~7u);
	printf("\t\tPBA: BAR=%u offset=%08x\n", pba & 7u, pba & ~7u);
}

static void print_pcie(const struct cfg *c, uint32_t p)
{
	static const char *const types[16] = {
		[0] = "Endpoint", [1] = "Legacy Endpoint", [4] = "Root Port",
		[5] = "Upstream Port", [6] = "Downstream Port", [7] = "PCI-Express to PCI/PCI-X Bridge",
		[8] = "PCI/PCI-X to PCI-Express Bridge", [9] = "Root Complex Integrated Endpoint",
		[10] = "Root Complex Event Collector",
	};
	uint16_t caps = rd16(c, p + 2), dctl = rd16(c, p + 8), lsta = rd16(c, p + 0x12);
	uint32_t dcap = rd32(c, p + 4), lcap = rd32(c, p + 0xc);
	const char *t = types[(caps >> 4) & 15u];

	printf("Express (v%u) %s, MSI %02x\n", caps & 15u, t ? t : "Unknown type",
	       (caps >> 9) & 31u);
	printf("\t\tDevCap: MaxPayload %u bytes, PhantFunc %u, ExtTag%s FLReset%s\n",
	       128u << (dcap & 7u), (dcap >> 3) & 3u, flag(dcap, 1u << 5), flag(dcap, 1u << 28));
	printf("\t\tDevCtl: CorrErr%s NonFatalErr%s FatalErr%s UnsupReq%s RlxdOrd%s ExtTag%s\n",
	       flag(dctl, 1u << 0), flag(dctl, 1u << 1), flag(dctl, 1u << 2), flag(dctl, 1u << 3),
	       flag(dctl, 1u << 4), flag(dctl, 1u << 8));
	printf("\t\t\tMaxPayload %u bytes, MaxReadReq %u bytes\n", 128u << ((dctl >> 5) & 7u),
	       128u << ((dctl >> 12) & 7u));
	printf("\t\tLnkCap: Port #%u, Speed %u, Width x%u\n", lcap >> 24, lcap & 15u,
	       (lcap >> 4) & 63u);
	printf("\t\tLnkSta: Speed %u, Width x%u\n", lsta & 15u, (lsta >> 4) & 63u);
}

static void print_caps(const struct cfg *c)
{
	uint32_t p = rd8(c, PCI_CAP_PTR) & 0xfcu;
	unsigned n = 0;

	if (!(rd16(c, PCI_STATUS) & PCI_STATUS_CAP) || !p) {
		printf("\tCapabilities: <none>\n");
		return;
	}
	/* At most 48 capabilities fit; more means a loop. */
	while (p && n++ < 48) {
		uint8_t id = rd8(c, p);

		if (p < 0x40 || p + 2 > PCI_CFG_STD) {
			printf("\tCapabilities: [%02x] <pointer out of range>\n", p);
			return;
		}
		printf("\tCapabilities: [%02x] ", p);
		switch (id) {
		case 0x01: print_pm(c, p); break;
		case 0x05: print_msi(c, p); break;
		case 0x09: printf("Vendor Specific Information: Len=%02x <?>\n", rd8(c, p + 2)); break;
		case 0x10: print_pcie(c, p); break;
		case 0x11: print_msix(c, p); break;
		default: printf("Capability ID %#04x <?>\n", id); break;
		}
		p = rd8(c, p + 1) & 0xfcu;
	}
	if (p)
		printf("\tCapabilities: <chain too long, loop?>\n");
}

static void print_ext_caps(const struct cfg *c)
{
	uint32_t p = PCI_CFG_STD;
	unsigned n = 0;

	if (c->size <= PCI_CFG_STD)
		return;
	while (p && n++ < 960) {
		uint32_t h = rd32(c, p);
		uint16_t id = (uint16_t)(h & 0xffffu);
		unsigned ver = (h >> 16) & 15u;

		if (h == 0 || h == 0xffffffffu)
			return;
		printf("\tCapabilities: [%03x v%u] ", p, ver);
		switch (id) {
		case 0x0003: {
			uint32_t lo = rd32(c, p + 4), hi = rd32(c, p + 8);

			printf("Device Serial Number %02x-%02x-%02x-%02x-%02x-%02x-%02x-%02x\n",
			       hi >> 24, (hi >> 16) & 0xffu, (hi >> 8) & 0xffu, hi & 0xffu,
			       lo >> 24, (lo >> 16) & 0xffu, (lo >> 8) & 0xffu, lo & 0xffu);
			break;
		}
		case 0x000b: {
			uint32_t vh = rd32(c, p + 4);

			printf("Vendor Specific Information: ID=%04x Rev=%u Len=%03x <?>\n",
			       vh & 0xffffu, (vh >> 16) & 15u, vh >> 20);
			break;
		}
		default:
			printf("Extended Capability ID %#06x <?>\n", id);
			break;
		}
		if ((h >> 20) && (h >> 20) <= p) {
			printf("\tCapabilities: <extended chain goes backwards>\n");
			return;
		}
		p = (h >> 20) & 0xffcu;
		if (p && p < PCI_CFG_STD)
			return;
	}
}

static int print_pci(struct vfurt_client *cl, const struct vfurt_client_region_info *regions,
		     uint32_t nregions)
{
	const struct vfurt_client_region_info *r = &regions[PCI_CFG_REGION];
	size_t size = r->size > 4096 ? 4096 : (size_t)r->size;
	uint8_t *buf;
	struct cfg c;
	uint32_t cls;
	uint8_t pin;
	int rc;

	if (size < 64) {
		printf("PCI config space: region %u too small (%zu bytes)\n", PCI_CFG_REGION, size);
		return 0;
	}
	buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	rc = vfurt_client_region_read(cl, PCI_CFG_REGION, 0, buf, size);
	if (rc) {
		fprintf(stderr, "vfu-ctl: reading config space: %s\n", strerror(-rc));
		goto out;
	}
	c.b = buf;
	c.size = size;
	cls = (uint32_t)rd8(&c, PCI_CLASS_PROG + 2) << 16 | (uint32_t)rd8(&c, PCI_CLASS_PROG + 1) << 8 |
	      rd8(&c, PCI_CLASS_PROG);
	printf("PCI config space (region %u, %zu bytes):\n", PCI_CFG_REGION, size);
	printf("\t%s [%04x]: Vendor %04x Device %04x (rev %02x) (prog-if %02x)\n",
	       subclass_name((uint8_t)(cls >> 16), (uint8_t)(cls >> 8)), cls >> 8,
	       rd16(&c, PCI_VENDOR_ID), rd16(&c, PCI_DEVICE_ID), rd8(&c, PCI_REVISION), cls & 0xffu);
	printf("\tSubsystem: Vendor %04x Device %04x\n", rd16(&c, PCI_SUBSYS_VENDOR),
	       rd16(&c, PCI_SUBSYS_ID));
	printf("\tHeader type: %02x\n", rd8(&c, PCI_HEADER_TYPE));
	print_command_status(&c);
	pin = rd8(&c, PCI_INT_PIN);
	if (pin)
		printf("\tInterrupt: pin %c routed to IRQ %u\n", pin <= 4 ? 'A' + pin - 1 : '?',
		       rd8(&c, PCI_INT_LINE));
	else
		printf("\tInterrupt: none\n");
	rc = print_bars(cl, &c, regions, nregions);
	if (rc) {
		fprintf(stderr, "vfu-ctl: sizing BARs: %s\n", strerror(-rc));
		goto out;
	}
	print_caps(&c);
	print_ext_caps(&c);
out:
	free(buf);
	return rc;
}

/* ---- regions, irqs ------------------------------------------------------------------- */

static const char *region_name(bool pci, uint32_t i, char *buf, size_t len)
{
	static const char *const names[] = { "BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5",
					     "ROM", "CONFIG", "VGA" };

	if (pci && i < sizeof(names) / sizeof(names[0]))
		return names[i];
	snprintf(buf, len, "region%u", i);
	return buf;
}

static void print_region(struct vfurt_client *cl, bool pci, const struct vfurt_client_region_info *r)
{
	struct vfurt_client_io_fds io;
	char name[32];
	int rc;

	printf("\t%u %-7s size %#" PRIx64 " flags%s%s%s%s", r->index,
	       region_name(pci, r->index, name, sizeof(name)), r->size,
	       (r->flags & VFIO_REGION_INFO_FLAG_READ) ? " READ" : "",
	       (r->flags & VFIO_REGION_INFO_FLAG_WRITE) ? " WRITE" : "",
	       (r->flags & VFIO_REGION_INFO_FLAG_MMAP) ? " MMAP" : "",
	       (r->flags & VFIO_REGION_INFO_FLAG_CAPS) ? " CAPS" : "");
	if (r->flags & VFIO_REGION_INFO_FLAG_MMAP)
		printf(" mmap-offset %#" PRIx64 " fd %s", r->offset, r->fd >= 0 ? "yes" : "MISSING");
	printf("\n");
	if (r->has_sparse) {
		printf("\t\tsparse mmap areas: %u", r->nr_sparse);
		for (uint32_t i = 0; i < r->nr_sparse; i++)
			printf(" [%#" PRIx64 "+%#" PRIx64 "]", (uint64_t)r->sparse[i].offset,
			       (uint64_t)r->sparse[i].size);
		printf("\n");
	}
	if (r->has_type)
		printf("\t\ttype %#x subtype %#x\n", r->type, r->subtype);
	if (r->msix_mappable)
		printf("\t\tMSI-X table mappable\n");
	rc = vfurt_client_region_io_fds(cl, r->index, &io);
	if (rc == 0) {
		printf("\t\tio fds: %u sub-regions, %zu fds\n", io.count, io.nfds);
		vfurt_client_io_fds_release(&io);
	} else {
		printf("\t\tio fds: n/a (%s)\n", strerror(-rc));
	}
}

static void print_irqs(struct vfurt_client *cl, bool pci, uint32_t num)
{
	static const char *const names[] = { "INTX", "MSI", "MSIX", "ERR", "REQ" };

	printf("Interrupts: %u types\n", num);
	for (uint32_t i = 0; i < num && i < MAX_IRQS_SHOWN; i++) {
		struct vfio_irq_info ii;
		int rc = vfurt_client_irq_info(cl, i, &ii);

		if (rc) {
			printf("\t%u: error %s\n", i, strerror(-rc));
			continue;
		}
		printf("\t%u %-5s count %u flags%s%s%s%s\n", i,
		       pci && i < 5 ? names[i] : "", ii.count,
		       (ii.flags & VFIO_IRQ_INFO_EVENTFD) ? " EVENTFD" : "",
		       (ii.flags & VFIO_IRQ_INFO_MASKABLE) ? " MASKABLE" : "",
		       (ii.flags & VFIO_IRQ_INFO_AUTOMASKED) ? " AUTOMASKED" : "",
		       (ii.flags & VFIO_IRQ_INFO_NORESIZE) ? " NORESIZE" : "");
	}
}

static void print_version(struct vfurt_client *cl)
{
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	const char *json = vfurt_client_server_json(cl);

	vfurt_client_get_caps(cl, &caps);
	printf("Protocol: vfio-user %u.%u\n", caps.major, caps.minor);
	printf("Capabilities (server%s):\n", caps.server_json ? "" : ", defaults: no JSON");
	printf("\tmax_msg_fds %u\n\tmax_data_xfer_size %u\n\tpgsizes %#" PRIx64 "\n"
	       "\tmax_dma_maps %u\n\twrite_multiple %s\n\ttwin_socket %s\n",
	       caps.max_msg_fds, caps.max_data_xfer_size, caps.pgsizes, caps.max_dma_maps,
	       caps.write_multiple ? "yes" : "no", caps.twin_socket ? "yes" : "no");
	if (json)
		printf("\tJSON: %s\n", json);
}

int ctl_cmd_info(const char *path, const struct ctl_opts *co)
{
	struct vfurt_client_opts o = { .opts_size = sizeof(o), .timeout_ms = co->timeout_ms };
	struct vfurt_client_region_info *regions = NULL;
	struct vfio_user_device_info di;
	struct vfurt_client *cl;
	uint32_t nregions = 0;
	bool pci;
	int rc;

	if (co->twin)
		o.flags |= VFURT_CLIENT_TWIN_SOCKET;
	if (co->no_json)
		o.flags |= VFURT_CLIENT_NO_JSON;
	cl = vfurt_client_connect(path, &o);
	if (!cl) {
		fprintf(stderr, "vfu-ctl: cannot connect to %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("vfio-user server at %s\n", path);
	print_version(cl);
	rc = vfurt_client_device_info(cl, &di);
	if (rc) {
		fprintf(stderr, "vfu-ctl: DEVICE_GET_INFO: %s\n", strerror(-rc));
		goto out_close;
	}
	pci = di.flags & VFIO_DEVICE_FLAGS_PCI;
	printf("Device: flags %#x%s%s, %u regions, %u irq types\n", di.flags,
	       pci ? " PCI" : "", (di.flags & VFIO_DEVICE_FLAGS_RESET) ? " RESET" : "",
	       di.num_regions, di.num_irqs);

	nregions = di.num_regions < MAX_REGIONS_SHOWN ? di.num_regions : MAX_REGIONS_SHOWN;
	regions = calloc(nregions ? nregions : 1, sizeof(*regions));
	if (!regions) {
		rc = -ENOMEM;
		goto out_close;
	}
	for (uint32_t i = 0; i < nregions; i++) {
		rc = vfurt_client_region_info(cl, i, &regions[i]);
		if (rc) {
			fprintf(stderr, "vfu-ctl: DEVICE_GET_REGION_INFO %u: %s\n", i, strerror(-rc));
			/* A refused index is shown as absent; a dead link is fatal. */
			if (rc == -ECONNRESET || rc == -EPIPE || rc == -ETIMEDOUT)
				goto out_regions;
			rc = 0;
		}
	}
	if (pci && nregions > PCI_CFG_REGION) {
		rc = print_pci(cl, regions, nregions);
		if (rc)
			goto out_regions;
	}
	printf("Regions: %u\n", di.num_regions);
	for (uint32_t i = 0; i < nregions; i++)
		if (regions[i].size || regions[i].flags)
			print_region(cl, pci, &regions[i]);
	print_irqs(cl, pci, di.num_irqs);

out_regions:
	for (uint32_t i = 0; i < nregions; i++)
		vfurt_client_region_info_release(&regions[i]);
	free(regions);
out_close:
	vfurt_client_close(cl);
	return rc ? 1 : 0;
}
