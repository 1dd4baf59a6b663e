/* PCI config space in state images (live upgrade): save and restore one function's emulation. */
#include <errno.h>
#include <string.h>

#include <vfurt/pci.h>
#include <vfurt/state.h>

#include "pci_internal.h"

/*
 * Records of the PCI section (the engine opens it and hands it over):
 *
 *  PCI_TAG_LAYOUT      struct pci_layout: config space size, MSI and MSI-X
 *                      vector counts, and an FNV-1a 64 of every byte's
 *                      power-on value, writable, RW1C and emulated maps.
 *                      The new process must have built the same function:
 *                      a guest that enumerated it must not see capabilities
 *                      or read-only registers change under it.
 *  PCI_TAG_CFG         the config bytes (cfg_size): command and status, the
 *                      BARs (a sizing write's answer is in the BAR bytes
 *                      themselves, there is no other sizing state), cache
 *                      line and interrupt line, the capabilities' control
 *                      registers (PMCSR, MSI control/address/data/mask,
 *                      MSI-X control with enable and function mask, PCIe
 *                      device and link control).
 *  PCI_TAG_MSIX_TABLE  the MSI-X table (16 bytes a vector): it lives in a
 *                      BAR, outside config space.
 *  PCI_TAG_MSIX_OWNER  one byte, 0 or 1: the client wrote the table, so its
 *                      mask bits are the client's and eventfd assignment
 *                      no longer moves them.
 *
 * Not saved, because the restored bytes determine them (vfr_vpci_*_restored
 * recompute them): INTx disable as applied, MSI enable and vector masks as
 * applied, MSI-X enable and function mask as applied, the PM D state. Not
 * saved because they are not PCI state: the MSI pending register and the
 * PBA show the irq layer's pending bits, which the engine carries with the
 * masks (vfr_irqs_save). Construction state (capability offsets, the BAR
 * hooks, the cfg hook) comes from the configuration, checked by the layout.
 *
 * Restore never calls the irq layer: the engine restores its masks and
 * pending bits from the same image, and the old process kept them equal to
 * the shadows recomputed here.
 */
enum {
	PCI_TAG_LAYOUT = 1,
	PCI_TAG_CFG = 2,
	PCI_TAG_MSIX_TABLE = 3,
	PCI_TAG_MSIX_OWNER = 4,
};

struct pci_layout {
	uint32_t cfg_size;
	uint32_t msi_nvec;
	uint32_t msix_nvec;
	uint32_t reserved; /* 0 */
	uint64_t fingerprint;
};
_Static_assert(sizeof(struct pci_layout) == 24, "pci_layout has no padding");

static uint64_t fnv1a64(const uint8_t *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void layout_of(const struct vfurt_pci *pci, struct pci_layout *l)
{
	memset(l, 0, sizeof(*l));
	l->cfg_size = pci->cfg_size;
	l->msi_nvec = pci->msi_nvec;
	l->msix_nvec = pci->msix_off ? pci->msix_nvec : 0;
	/* rst, wmask, w1c and emu are one block (vfurt_pci_create) */
	l->fingerprint = fnv1a64(pci->rst, 4 * (size_t)pci->cfg_size);
}

static size_t msix_table_len(const struct vfurt_pci *pci)
{
	return pci->msix_off ? (size_t)pci->msix_nvec * VPCI_MSIX_ENTRY_SIZE : 0;
}

int vfr_vpci_state_save(struct vfurt_pci *pci, struct vfurt_state *s)
{
	struct pci_layout l;
	int err;

	if (!pci || !s)
		return -EINVAL;
	layout_of(pci, &l);
	err = vfurt_state_put(s, PCI_TAG_LAYOUT, &l, sizeof(l));
	if (err == 0)
		err = vfurt_state_put(s, PCI_TAG_CFG, pci->cfg, pci->cfg_size);
	if (err == 0 && pci->msix_off)
		err = vfurt_state_put(s, PCI_TAG_MSIX_TABLE, pci->msix_table, msix_table_len(pci));
	if (err == 0 && pci->msix_off)
		err = vfurt_state_put_bool(s, PCI_TAG_MSIX_OWNER, pci->msix_client_table);
	return err;
}

/* Point *out at record tag of c (NULL when absent). Returns 0, or -EBADMSG
 * for a length other than want or a malformed section. */
static int find_exact(const struct vfurt_state_cur *c, uint32_t tag, size_t want,
		      const uint8_t **out)
{
	const void *val;
	size_t len;
	int err = vfurt_state_find(c, tag, &val, &len);

	*out = NULL;
	if (err == -ENOENT)
		return 0;
	if (err < 0)
		return err;
	if (len != want)
		return -EBADMSG;
	*out = val;
	return 0;
}

int vfr_vpci_state_restore(struct vfurt_pci *pci, const struct vfurt_state_cur *c)
{
	const uint8_t *lrec, *cfg, *table, *owner;
	struct pci_layout want, got;
	int err;

	if (!pci || !c)
		return -EINVAL;
	if (vfurt_dev_attached(pci->dev))
		return -EBUSY;
	/* look at every record before changing anything */
	err = find_exact(c, PCI_TAG_LAYOUT, sizeof(got), &lrec);
	if (err == 0)
		err = find_exact(c, PCI_TAG_CFG, pci->cfg_size, &cfg);
	if (err == 0)
		err = find_exact(c, PCI_TAG_MSIX_TABLE, msix_table_len(pci), &table);
	if (err == 0)
		err = find_exact(c, PCI_TAG_MSIX_OWNER, 1, &owner);
	if (err < 0)
		return err;
	if (!lrec) /* a fresh function, unless the writer left its layout out */
		return cfg || table || owner ? -EBADMSG : 0;
	memcpy(&got, lrec, sizeof(got));
	layout_of(pci, &want);
	if (memcmp(&got, &want, sizeof(got)) != 0)
		return -EBADMSG;
	if ((table || owner) && !pci->msix_off)
		return -EBADMSG;
	if (owner && *owner > 1)
		return -EBADMSG;

	if (cfg) {
		/* only bits a write or the device could have changed; the rest
		 * are the power-on values, which the layout check says agree */
		for (uint32_t o = 0; o < pci->cfg_size; o++) {
			uint8_t live = pci->wmask[o] | pci->w1c[o];

			pci->cfg[o] = (uint8_t)((pci->rst[o] & ~live) | (cfg[o] & live));
		}
	}
	if (owner)
		pci->msix_client_table = *owner;
	pci->intx_masked = pci->intx &&
			   (vfr_vpci_get(pci, VPCI_COMMAND, 2) & VPCI_CMD_INTX_DISABLE);
	vfr_vpci_caps_restored(pci);
	vfr_vpci_msi_restored(pci, table);
	return 0;
}
