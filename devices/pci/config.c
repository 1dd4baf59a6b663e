/* PCI config space: type-0 header, BARs, command/status, access dispatch, reset. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vfurt/abi.h>
#include <vfurt/pci.h>

#include "pci_internal.h"

/* Status bits a type-0 function without caps reports. */
#define STS_DEFAULT 0x0000u

uint32_t vfr_vpci_get(const struct vfurt_pci *pci, uint32_t off, uint32_t size)
{
	uint32_t v = 0;

	for (uint32_t i = 0; i < size; i++)
		v |= (uint32_t)pci->cfg[off + i] << (8 * i);
	return v;
}

void vfr_vpci_set(struct vfurt_pci *pci, uint32_t off, uint32_t size, uint32_t val)
{
	for (uint32_t i = 0; i < size; i++)
		pci->cfg[off + i] = (uint8_t)(val >> (8 * i));
}

void vfr_vpci_define(struct vfurt_pci *pci, uint32_t off, uint32_t size, uint32_t val,
		 uint32_t wmask, uint32_t w1c)
{
	for (uint32_t i = 0; i < size; i++) {
		pci->cfg[off + i] = (uint8_t)(val >> (8 * i));
		pci->rst[off + i] = (uint8_t)(val >> (8 * i));
		pci->wmask[off + i] = (uint8_t)(wmask >> (8 * i));
		pci->w1c[off + i] = (uint8_t)(w1c >> (8 * i));
		pci->emu[off + i] = 1;
	}
}

static bool is_pow2(uint64_t v)
{
	return v && (v & (v - 1)) == 0;
}

/*
 * Derive BARs from the device's BAR regions. The writable bits of a BAR are
 * its address bits, so an all-ones sizing write reads back the size mask.
 */
static int setup_bars(struct vfurt_pci *pci)
{
	struct vfurt_region_desc d = { .desc_size = sizeof(d) };
	bool upper_half = false;

	for (uint32_t i = 0; i < VPCI_NUM_BARS; i++) {
		uint32_t off = VPCI_BAR0 + 4 * i;
		uint64_t mask;
		uint32_t low;

		if (vfurt_dev_get_region(pci->dev, VFURT_REGION_BAR0 + i, &d) < 0)
			return -EINVAL;
		if (upper_half) {
			/* Slot taken by the upper half of the previous 64-bit BAR. */
			if (d.size)
				return -EINVAL;
			upper_half = false;
			continue;
		}
		if (!d.size) {
			vfr_vpci_define(pci, off, 4, 0, 0, 0);
			continue;
		}
		if (!is_pow2(d.size))
			return -EINVAL;
		mask = ~(d.size - 1);
		if (d.flags & VFURT_REGION_IO) {
			if (d.flags & (VFURT_REGION_MEM64 | VFURT_REGION_PREFETCH) ||
			    d.size < 4 || d.size > (1ull << 31))
				return -EINVAL;
			vfr_vpci_define(pci, off, 4, VPCI_BAR_IO, (uint32_t)mask & ~0x3u, 0);
			continue;
		}
		if (d.size < 16)
			return -EINVAL;
		low = (d.flags & VFURT_REGION_PREFETCH) ? VPCI_BAR_PREFETCH : 0;
		if (d.flags & VFURT_REGION_MEM64) {
			if (i == VPCI_NUM_BARS - 1 || d.size > (1ull << 63))
				return -EINVAL;
			vfr_vpci_define(pci, off, 4, low | VPCI_BAR_MEM64, (uint32_t)mask & ~0xfu, 0);
			vfr_vpci_define(pci, off + 4, 4, 0, (uint32_t)(mask >> 32), 0);
			upper_half = true;
			continue;
		}
		if (d.size > (1ull << 31))
			return -EINVAL;
		vfr_vpci_define(pci, off, 4, low, (uint32_t)mask & ~0xfu, 0);
	}

	if (vfurt_dev_get_region(pci->dev, VFURT_REGION_ROM, &d) < 0)
		return -EINVAL;
	if (d.size) {
		/* ROM address bits are 31:11, so a smaller ROM decodes 2 KiB. */
		uint64_t dsize = d.size < 2048 ? 2048 : d.size;

		if (!is_pow2(d.size) || dsize > (1ull << 31))
			return -EINVAL;
		vfr_vpci_define(pci, VPCI_ROM_ADDRESS, 4, 0,
			    ((uint32_t)~(dsize - 1) & VPCI_ROM_ADDR_MASK) | VPCI_ROM_ENABLE, 0);
	} else {
		vfr_vpci_define(pci, VPCI_ROM_ADDRESS, 4, 0, 0, 0);
	}
	return 0;
}

static void setup_header(struct vfurt_pci *pci, const struct vfurt_pci_opts *o)
{
	/* Everything in the header is emulated; undefined bytes read 0. */
	for (uint32_t off = 0; off < VPCI_HEADER_END; off += 4)
		vfr_vpci_define(pci, off, 4, 0, 0, 0);
	vfr_vpci_define(pci, VPCI_VENDOR_ID, 2, o->vendor_id, 0, 0);
	vfr_vpci_define(pci, VPCI_DEVICE_ID, 2, o->device_id, 0, 0);
	vfr_vpci_define(pci, VPCI_COMMAND, 2, 0, VPCI_CMD_WMASK, 0);
	vfr_vpci_define(pci, VPCI_STATUS, 2, STS_DEFAULT, 0, VPCI_STS_W1C);
	vfr_vpci_define(pci, VPCI_REVISION_ID, 1, o->revision, 0, 0);
	vfr_vpci_define(pci, VPCI_CLASS_PROG, 1, o->class_code & 0xff, 0, 0);
	vfr_vpci_define(pci, VPCI_CLASS_PROG + 1, 2, (o->class_code >> 8) & 0xffff, 0, 0);
	/* Cache line size is RW on real functions and Linux writes it. */
	vfr_vpci_define(pci, VPCI_CACHE_LINE_SIZE, 1, 0, 0xff, 0);
	vfr_vpci_define(pci, VPCI_HEADER_TYPE, 1, 0x00, 0, 0);
	vfr_vpci_define(pci, VPCI_SUBSYS_VENDOR_ID, 2, o->subsys_vendor_id, 0, 0);
	vfr_vpci_define(pci, VPCI_SUBSYS_ID, 2, o->subsys_id, 0, 0);
	vfr_vpci_define(pci, VPCI_INTERRUPT_LINE, 1, 0, 0xff, 0);
	vfr_vpci_define(pci, VPCI_INTERRUPT_PIN, 1, o->intx_pin, 0, 0);
}

/* INTx disable in the command register masks INTx at the irq layer. */
static void sync_intx(struct vfurt_pci *pci, bool force)
{
	bool masked = vfr_vpci_get(pci, VPCI_COMMAND, 2) & VPCI_CMD_INTX_DISABLE;

	if (!pci->intx || (!force && masked == pci->intx_masked))
		return;
	pci->intx_masked = masked;
	vfurt_irq_set_func_mask(pci->dev, VFURT_IRQ_INTX, masked);
}

static void emu_read(struct vfurt_pci *pci, uint8_t *buf, uint32_t off, uint32_t len)
{
	vfr_vpci_msi_before_read(pci, off, len);
	memcpy(buf, pci->cfg + off, len);
}

static void emu_write(struct vfurt_pci *pci, const uint8_t *buf, uint32_t off, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++) {
		uint32_t o = off + i;
		uint8_t v = buf[i];

		pci->cfg[o] = (uint8_t)((pci->cfg[o] & ~pci->wmask[o]) | (v & pci->wmask[o]));
		pci->cfg[o] &= (uint8_t)~(v & pci->w1c[o]);
	}
}

static ssize_t hook_access(struct vfurt_pci *pci, uint8_t *buf, uint32_t off, uint32_t len,
			   bool is_write)
{
	ssize_t r;

	if (!pci->hook) {
		if (!is_write)
			memset(buf, 0, len);
		return len;
	}
	r = pci->hook(pci, pci->hook_arg, buf, len, off, is_write);
	if (r < 0)
		return r;
	return (size_t)r == len ? r : -EIO;
}

/*
 * Region access callback for VFURT_REGION_CONFIG. Any size at any offset
 * inside config space works; the range is split into runs of emulated bytes
 * and bytes owned by the device's cfg hook. Write side effects run once the
 * whole write is applied, so straddling writes see consistent registers.
 */
static ssize_t cfg_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			  uint64_t offset, bool is_write)
{
	struct vfurt_pci *pci = arg;
	uint8_t *b = buf;
	uint32_t pos, end;

	if (!pci || (!buf && count))
		return -EINVAL;
	if (offset > pci->cfg_size || count > pci->cfg_size - offset)
		return -EINVAL;
	if (count == 0)
		return 0;
	pos = (uint32_t)offset;
	end = pos + (uint32_t)count;
	while (pos < end) {
		uint32_t run = pos;
		uint8_t emu = pci->emu[pos];

		while (run < end && pci->emu[run] == emu)
			run++;
		if (emu) {
			if (is_write)
				emu_write(pci, b + (pos - offset), pos, run - pos);
			else
				emu_read(pci, b + (pos - offset), pos, run - pos);
		} else {
			ssize_t r = hook_access(pci, b + (pos - offset), pos, run - pos, is_write);

			if (r < 0)
				return r;
		}
		pos = run;
	}
	if (is_write) {
		uint32_t off = (uint32_t)offset, len = (uint32_t)count;

		if (vpci_overlap(off, len, VPCI_COMMAND, 2))
			sync_intx(pci, false);
		vfr_vpci_msi_after_write(pci, off, len);
		/* Last: may run a Function Level Reset. */
		vfr_vpci_caps_after_write(pci, off, len);
	}
	return (ssize_t)count;
}

static void pci_free(struct vfurt_pci *pci)
{
	if (!pci)
		return;
	vfr_vpci_msi_free(pci);
	free(pci->cfg);
	free(pci);
}

static void pci_reset_cb(struct vfurt_pci *pci)
{
	vfurt_pci_reset(pci);
}

static void pci_client_irq_cb(struct vfurt_pci *pci, uint32_t index, uint32_t vector,
			      bool assigned)
{
	if (index == VFURT_IRQ_MSIX)
		vfr_vpci_msix_client_irq(pci, vector, assigned);
}

static void pci_client_detach_cb(struct vfurt_pci *pci)
{
	vfr_vpci_msix_client_detach(pci);
}

struct vfurt_pci *vfurt_pci_create(struct vfurt_dev *dev, const struct vfurt_pci_opts *opts)
{
	struct vfurt_pci_opts o = { 0 };
	struct vfurt_region_desc rd = { 0 };
	struct vfurt_pci *pci;
	bool own_req = false;
	int err;

	if (!dev || vfurt_abi_copy_in(&o, sizeof(o), opts,
				      VFURT_ABI_SIZE(struct vfurt_pci_opts, cfg_size))) {
		errno = EINVAL;
		return NULL;
	}
	if ((o.cfg_size != VFURT_PCI_CFG_SIZE && o.cfg_size != VFURT_PCI_CFG_SIZE_EXP) ||
	    o.intx_pin > 4 || o.class_code > 0xffffff) {
		errno = EINVAL;
		return NULL;
	}
	if (vfurt_dev_pci(dev)) {
		errno = EEXIST;
		return NULL;
	}

	pci = calloc(1, sizeof(*pci));
	if (!pci) {
		errno = ENOMEM;
		return NULL;
	}
	pci->dev = dev;
	pci->cfg_size = o.cfg_size;
	/* One block: cfg, rst, wmask, w1c, emu. */
	pci->cfg = calloc(5, o.cfg_size);
	if (!pci->cfg) {
		err = -ENOMEM;
		goto err_free_pci;
	}
	pci->rst = pci->cfg + o.cfg_size;
	pci->wmask = pci->rst + o.cfg_size;
	pci->w1c = pci->wmask + o.cfg_size;
	pci->emu = pci->w1c + o.cfg_size;
	pci->cap_next = VPCI_HEADER_END;
	pci->ext_next = VPCI_EXT_CAP_START;
	pci->intx = o.intx_pin != 0;

	setup_header(pci, &o);
	err = setup_bars(pci);
	if (err < 0)
		goto err_free_cfg;
	/* Keep the extended chain valid with no ext caps: 0x100 reads 0. */
	if (o.cfg_size == VFURT_PCI_CFG_SIZE_EXP)
		vfr_vpci_define(pci, VPCI_EXT_CAP_START, 4, 0, 0, 0);

	if (pci->intx) {
		err = vfurt_dev_setup_irq(dev, VFURT_IRQ_INTX, 1);
		if (err < 0)
			goto err_free_cfg;
	}
	/* The kernel's vfio-pci offers the REQ irq (one vector: the device
	 * asks the VMM to release it) for every PCI function. A count the
	 * model chose itself is left alone. */
	if (vfurt_dev_irq_count(dev, VFURT_IRQ_REQ) == 0) {
		err = vfurt_dev_setup_irq(dev, VFURT_IRQ_REQ, 1);
		if (err < 0)
			goto err_drop_intx;
		own_req = true;
	}
	rd.desc_size = sizeof(rd);
	rd.size = o.cfg_size;
	rd.flags = VFURT_REGION_RW;
	rd.access = cfg_access;
	rd.arg = pci;
	rd.fd = -1;
	err = vfurt_dev_setup_region(dev, VFURT_REGION_CONFIG, &rd);
	if (err < 0)
		goto err_drop_req;
	err = vfurt_dev_attach_pci(dev, pci, pci_reset_cb, pci_free);
	if (err < 0)
		goto err_drop_region;
	(void)vfurt_dev_set_pci_hooks(dev, pci_client_irq_cb, pci_client_detach_cb);
	(void)vfurt_dev_set_pci_state(dev, vfr_vpci_state_save, vfr_vpci_state_restore);
	return pci;

err_drop_region:
	rd.size = 0;
	(void)vfurt_dev_setup_region(dev, VFURT_REGION_CONFIG, &rd);
err_drop_req:
	if (own_req)
		(void)vfurt_dev_setup_irq(dev, VFURT_IRQ_REQ, 0);
err_drop_intx:
	if (pci->intx)
		(void)vfurt_dev_setup_irq(dev, VFURT_IRQ_INTX, 0);
err_free_cfg:
	free(pci->cfg);
err_free_pci:
	free(pci);
	errno = -err;
	return NULL;
}

void vfurt_pci_set_cfg_hook(struct vfurt_pci *pci, vfurt_pci_cfg_fn fn, void *arg)
{
	if (!pci)
		return;
	pci->hook = fn;
	pci->hook_arg = arg;
}

void vfr_pci_set_flr_fn(struct vfurt_pci *pci, vfurt_pci_flr_fn fn, void *arg)
{
	if (!pci)
		return;
	pci->flr_fn = fn;
	pci->flr_arg = arg;
}

const uint8_t *vfurt_pci_cfg(const struct vfurt_pci *pci)
{
	return pci ? pci->cfg : NULL;
}

uint16_t vfurt_pci_command(const struct vfurt_pci *pci)
{
	return pci ? (uint16_t)vfr_vpci_get(pci, VPCI_COMMAND, 2) : 0;
}

bool vfurt_pci_bus_master(const struct vfurt_pci *pci)
{
	return vfurt_pci_command(pci) & VPCI_CMD_MASTER;
}

void vfurt_pci_reset(struct vfurt_pci *pci)
{
	if (!pci)
		return;
	memcpy(pci->cfg, pci->rst, pci->cfg_size);
	sync_intx(pci, true);
	vfr_vpci_caps_reset(pci);
	vfr_vpci_msi_reset(pci);
}
