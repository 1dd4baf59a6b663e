/* PCI capability builder: list linking, PM, PCI Express, vendor, DSN, ext vendor. */
#include <errno.h>
#include <string.h>

#include <vfurt/pci.h>

#include "pci_internal.h"

/* PM capability (PCI PM 1.2): PMC version 3, no D1/D2, no PME. */
#define PM_CAP_LEN 8u
#define PM_PMC 2u
#define PM_PMCSR 4u
#define PM_PMC_VERSION 0x0003u
#define PM_PMCSR_STATE_MASK 0x0003u
#define PM_PMCSR_NO_SOFT_RESET 0x0008u
#define PM_D0 0u
#define PM_D3HOT 3u

/* PCI Express capability, version 2, endpoint (PCIe base 3.0, 7.8). */
#define EXP_CAP_LEN 0x3cu
#define EXP_FLAGS 0x02u
#define EXP_DEVCAP 0x04u
#define EXP_DEVCTL 0x08u
#define EXP_DEVSTA 0x0au
#define EXP_LNKCAP 0x0cu
#define EXP_LNKCTL 0x10u
#define EXP_LNKSTA 0x12u
#define EXP_LNKCAP2 0x2cu
#define EXP_LNKCTL2 0x30u
#define EXP_FLAGS_V2_ENDPOINT 0x0002u /* version 2, device/port type 0 */
/* L0s/L1 acceptable latency "no limit", role-based error reporting, FLR. */
#define EXP_DEVCAP_VAL ((7u << 6) | (7u << 9) | (1u << 15) | (1u << 28))
#define EXP_DEVCTL_FLR 0x8000u
/* Power-on: relaxed ordering, no snoop, max read request 512 bytes. */
#define EXP_DEVCTL_DEFAULT 0x2810u
/* Error reporting enables, relaxed ordering, no snoop, MRRS, FLR. Max
 * payload stays 128 bytes (the only size DEVCAP advertises). */
#define EXP_DEVCTL_WMASK 0xf81fu
#define EXP_DEVSTA_W1C 0x000fu
#define EXP_LNK_X1_2_5GT 0x0011u /* speed 2.5 GT/s, width x1 */
/* Read completion boundary, common clock, extended synch. */
#define EXP_LNKCTL_WMASK 0x00c8u
#define EXP_LNKCAP2_2_5GT 0x0002u

#define EXT_CAP_NEXT_SHIFT 20

_Static_assert(EXP_CAP_LEN % 4 == 0, "PCIe cap length");
_Static_assert((EXP_DEVCTL_DEFAULT & ~EXP_DEVCTL_WMASK) == 0, "devctl defaults writable");

int vfr_vpci_cap_alloc(struct vfurt_pci *pci, uint8_t id, size_t len)
{
	uint32_t off = pci->cap_next;
	uint32_t alen;

	if (len < 2 || len > 0x100)
		return -EINVAL;
	alen = ((uint32_t)len + 3) & ~3u;
	if (alen > VFURT_PCI_CFG_SIZE - off)
		return -ENOSPC;
	/* Default every byte of the cap to read-only zero; callers refine. */
	for (uint32_t i = 0; i < alen; i += 4)
		vfr_vpci_define(pci, off + i, 4, 0, 0, 0);
	vfr_vpci_define(pci, off, 1, id, 0, 0);
	vfr_vpci_define(pci, off + 1, 1, 0, 0, 0);
	if (pci->cap_last)
		vfr_vpci_define(pci, pci->cap_last + 1, 1, off, 0, 0);
	else
		vfr_vpci_define(pci, VPCI_CAP_PTR, 1, off, 0, 0);
	vfr_vpci_define(pci, VPCI_STATUS, 2, vfr_vpci_get(pci, VPCI_STATUS, 2) | VPCI_STS_CAP_LIST,
		    0, VPCI_STS_W1C);
	pci->cap_last = off;
	pci->cap_next = off + alen;
	return (int)off;
}

int vfr_vpci_ext_cap_alloc(struct vfurt_pci *pci, uint16_t id, uint8_t ver, size_t len)
{
	uint32_t off = pci->ext_next;
	uint32_t alen;

	if (pci->cfg_size != VFURT_PCI_CFG_SIZE_EXP || len < 4 || len > 0x1000 || ver > 0xf)
		return -EINVAL;
	alen = ((uint32_t)len + 3) & ~3u;
	if (alen > pci->cfg_size - off)
		return -ENOSPC;
	for (uint32_t i = 0; i < alen; i += 4)
		vfr_vpci_define(pci, off + i, 4, 0, 0, 0);
	vfr_vpci_define(pci, off, 4, id | ((uint32_t)ver << 16), 0, 0);
	if (pci->ext_last) {
		uint32_t hdr = vfr_vpci_get(pci, pci->ext_last, 4);

		hdr = (hdr & 0x000fffffu) | (off << EXT_CAP_NEXT_SHIFT);
		vfr_vpci_define(pci, pci->ext_last, 4, hdr, 0, 0);
	}
	pci->ext_last = off;
	pci->ext_next = off + alen;
	return (int)off;
}

int vfurt_pci_add_pm(struct vfurt_pci *pci)
{
	int off;

	if (!pci)
		return -EINVAL;
	if (pci->pm_off)
		return -EEXIST;
	off = vfr_vpci_cap_alloc(pci, VPCI_CAP_ID_PM, PM_CAP_LEN);
	if (off < 0)
		return off;
	vfr_vpci_define(pci, off + PM_PMC, 2, PM_PMC_VERSION, 0, 0);
	vfr_vpci_define(pci, off + PM_PMCSR, 2, PM_PMCSR_NO_SOFT_RESET | PM_D0,
		    PM_PMCSR_STATE_MASK, 0);
	pci->pm_off = (uint32_t)off;
	pci->pm_state = PM_D0;
	return off;
}

int vfurt_pci_add_pcie(struct vfurt_pci *pci)
{
	bool own_err = false;
	int off;

	if (!pci || pci->cfg_size != VFURT_PCI_CFG_SIZE_EXP)
		return -EINVAL;
	if (pci->pcie_off)
		return -EEXIST;
	/* The kernel's vfio-pci offers the ERR irq (one vector) exactly for
	 * PCIe functions; QEMU warns "Could not enable error recovery" without
	 * it. A count the model chose itself is left alone. */
	if (vfurt_dev_irq_count(pci->dev, VFURT_IRQ_ERR) == 0) {
		int err = vfurt_dev_setup_irq(pci->dev, VFURT_IRQ_ERR, 1);

		if (err < 0)
			return err;
		own_err = true;
	}
	off = vfr_vpci_cap_alloc(pci, VPCI_CAP_ID_EXP, EXP_CAP_LEN);
	if (off < 0) {
		if (own_err)
			(void)vfurt_dev_setup_irq(pci->dev, VFURT_IRQ_ERR, 0);
		return off;
	}
	vfr_vpci_define(pci, off + EXP_FLAGS, 2, EXP_FLAGS_V2_ENDPOINT, 0, 0);
	vfr_vpci_define(pci, off + EXP_DEVCAP, 4, EXP_DEVCAP_VAL, 0, 0);
	vfr_vpci_define(pci, off + EXP_DEVCTL, 2, EXP_DEVCTL_DEFAULT, EXP_DEVCTL_WMASK, 0);
	vfr_vpci_define(pci, off + EXP_DEVSTA, 2, 0, 0, EXP_DEVSTA_W1C);
	vfr_vpci_define(pci, off + EXP_LNKCAP, 4, EXP_LNK_X1_2_5GT, 0, 0);
	vfr_vpci_define(pci, off + EXP_LNKCTL, 2, 0, EXP_LNKCTL_WMASK, 0);
	vfr_vpci_define(pci, off + EXP_LNKSTA, 2, EXP_LNK_X1_2_5GT, 0, 0);
	vfr_vpci_define(pci, off + EXP_LNKCAP2, 4, EXP_LNKCAP2_2_5GT, 0, 0);
	vfr_vpci_define(pci, off + EXP_LNKCTL2, 2, 0x1, 0, 0); /* target speed 2.5 GT/s */
	pci->pcie_off = (uint32_t)off;
	return off;
}

int vfurt_pci_add_vendor(struct vfurt_pci *pci, const void *data, size_t len)
{
	const uint8_t *d = data;
	int off;

	if (!pci || len > 253 || (len && !data))
		return -EINVAL;
	off = vfr_vpci_cap_alloc(pci, VPCI_CAP_ID_VNDR, 3 + len);
	if (off < 0)
		return off;
	vfr_vpci_define(pci, off + 2, 1, 3 + len, 0, 0);
	for (size_t i = 0; i < len; i++)
		vfr_vpci_define(pci, off + 3 + (uint32_t)i, 1, d[i], 0, 0);
	return off;
}

int vfurt_pci_add_dsn(struct vfurt_pci *pci, uint64_t serial)
{
	int off;

	if (!pci)
		return -EINVAL;
	if (pci->dsn_off)
		return -EEXIST;
	off = vfr_vpci_ext_cap_alloc(pci, VPCI_EXT_CAP_ID_DSN, 1, 12);
	if (off < 0)
		return off;
	vfr_vpci_define(pci, off + 4, 4, (uint32_t)serial, 0, 0);
	vfr_vpci_define(pci, off + 8, 4, (uint32_t)(serial >> 32), 0, 0);
	pci->dsn_off = (uint32_t)off;
	return off;
}

int vfurt_pci_add_ext_vendor(struct vfurt_pci *pci, uint16_t vsec_id, uint8_t vsec_rev,
			     const void *data, size_t len)
{
	const uint8_t *d = data;
	int off;

	/* VSEC length (header included) is a 12-bit field. */
	if (!pci || vsec_rev > 0xf || len > 0xfff - 8 || (len && !data))
		return -EINVAL;
	off = vfr_vpci_ext_cap_alloc(pci, VPCI_EXT_CAP_ID_VNDR, 1, 8 + len);
	if (off < 0)
		return off;
	vfr_vpci_define(pci, off + 4, 4,
		    vsec_id | ((uint32_t)vsec_rev << 16) | ((uint32_t)(8 + len) << 20), 0, 0);
	for (size_t i = 0; i < len; i++)
		vfr_vpci_define(pci, off + 8 + (uint32_t)i, 1, d[i], 0, 0);
	return off;
}

/* Only D0 and D3hot exist; writes of D1/D2 leave the state unchanged. */
static void pm_after_write(struct vfurt_pci *pci)
{
	uint32_t reg = pci->pm_off + PM_PMCSR;
	uint32_t csr = vfr_vpci_get(pci, reg, 2);
	uint8_t state = csr & PM_PMCSR_STATE_MASK;

	if (state != PM_D0 && state != PM_D3HOT) {
		csr = (csr & ~PM_PMCSR_STATE_MASK) | pci->pm_state;
		vfr_vpci_set(pci, reg, 2, csr);
		return;
	}
	/* No_Soft_Reset is set: D3hot -> D0 keeps the function's state. */
	pci->pm_state = state;
}

static void do_flr(struct vfurt_pci *pci)
{
	if (pci->flr_fn)
		(void)pci->flr_fn(pci, pci->flr_arg);
	else
		(void)vfurt_dev_reset(pci->dev, VFURT_RESET_PCI_FLR); /* config space too */
}

void vfr_vpci_caps_after_write(struct vfurt_pci *pci, uint32_t off, uint32_t len)
{
	if (pci->pm_off && vpci_overlap(off, len, pci->pm_off + PM_PMCSR, 2))
		pm_after_write(pci);
	if (pci->pcie_off && vpci_overlap(off, len, pci->pcie_off + EXP_DEVCTL, 2)) {
		uint32_t reg = pci->pcie_off + EXP_DEVCTL;
		uint32_t ctl = vfr_vpci_get(pci, reg, 2);

		if (ctl & EXP_DEVCTL_FLR) {
			/* Initiate FLR always reads 0. */
			vfr_vpci_set(pci, reg, 2, ctl & ~EXP_DEVCTL_FLR);
			do_flr(pci);
		}
	}
}

void vfr_vpci_caps_reset(struct vfurt_pci *pci)
{
	pci->pm_state = PM_D0;
}

/* After a state image replaced config space (pci_state.c): Initiate FLR
 * reads 0, and the D state is the one PMCSR shows (D0 for one that does
 * not exist, which a write could not have left there). */
void vfr_vpci_caps_restored(struct vfurt_pci *pci)
{
	if (pci->pcie_off) {
		uint32_t reg = pci->pcie_off + EXP_DEVCTL;

		vfr_vpci_set(pci, reg, 2, vfr_vpci_get(pci, reg, 2) & ~EXP_DEVCTL_FLR);
	}
	pci->pm_state = PM_D0;
	if (pci->pm_off) {
		uint32_t reg = pci->pm_off + PM_PMCSR;
		uint32_t csr = vfr_vpci_get(pci, reg, 2);
		uint8_t state = csr & PM_PMCSR_STATE_MASK;

		if (state != PM_D0 && state != PM_D3HOT)
			vfr_vpci_set(pci, reg, 2, csr & ~PM_PMCSR_STATE_MASK);
		else
			pci->pm_state = state;
	}
}
