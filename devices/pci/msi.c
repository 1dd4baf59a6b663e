/* MSI and MSI-X capabilities: control/mask bits, MSI-X table and PBA in a BAR. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vfurt/pci.h>

#include "pci_internal.h"

/* MSI capability, 64-bit layout (PCI Local Bus 3.0, 6.8.1). */
#define MSI_CTRL 0x02u
#define MSI_ADDR_LO 0x04u
#define MSI_ADDR_HI 0x08u
#define MSI_DATA 0x0cu
#define MSI_MASK 0x10u
#define MSI_PENDING 0x14u
#define MSI_LEN_NOMASK 0x0eu
#define MSI_LEN_MASK 0x18u
#define MSI_CTRL_ENABLE 0x0001u
#define MSI_CTRL_MMC_SHIFT 1
#define MSI_CTRL_MME_SHIFT 4
#define MSI_CTRL_MME_MASK (7u << MSI_CTRL_MME_SHIFT)
#define MSI_CTRL_64BIT 0x0080u
#define MSI_CTRL_PVM 0x0100u
#define MSI_MAX_VECTORS 32u

/* MSI-X capability (PCI Local Bus 3.0, 6.8.2). */
#define MSIX_CAP_LEN 12u
#define MSIX_CTRL 0x02u
#define MSIX_TABLE 0x04u
#define MSIX_PBA 0x08u
#define MSIX_CTRL_FMASK 0x4000u
#define MSIX_CTRL_ENABLE 0x8000u
#define MSIX_MAX_VECTORS 2048u

_Static_assert(MSIX_MAX_VECTORS <= VFURT_MAX_IRQ_VECTORS, "MSI-X vectors");

/* ---- MSI -------------------------------------------------------------- */

static uint32_t log2_u32(uint32_t v)
{
	uint32_t r = 0;

	while (v > 1) {
		v >>= 1;
		r++;
	}
	return r;
}

/*
 * Push MSI state to the irq layer. A vector is guest-masked when its mask
 * bit is set or it lies beyond the enabled multiple-message count, so the
 * device cannot signal vectors the guest did not allocate. Masks change
 * while the function is masked (disable first, enable last) so no vector
 * fires in between.
 */
static void msi_sync(struct vfurt_pci *pci, bool force)
{
	uint32_t ctrl = vfr_vpci_get(pci, pci->msi_off + MSI_CTRL, 2);
	bool enabled = ctrl & MSI_CTRL_ENABLE;
	uint32_t nr = 1u << ((ctrl & MSI_CTRL_MME_MASK) >> MSI_CTRL_MME_SHIFT);
	uint32_t bits = pci->msi_pvm ? vfr_vpci_get(pci, pci->msi_off + MSI_MASK, 4) : 0;
	/* On enable, push every mask in case the irq layer's per-vector state
	 * was reset behind our back. */
	bool all = force || (enabled && !pci->msi_enabled);

	if (!enabled && (force || pci->msi_enabled))
		vfurt_irq_set_func_mask(pci->dev, VFURT_IRQ_MSI, true);
	for (uint32_t v = 0; v < pci->msi_nvec; v++) {
		bool masked = (bits & (1u << v)) || v >= nr;

		if (!all && masked == !!(pci->msi_masked & (1u << v)))
			continue;
		if (masked)
			pci->msi_masked |= 1u << v;
		else
			pci->msi_masked &= ~(1u << v);
		vfurt_irq_set_guest_mask(pci->dev, VFURT_IRQ_MSI, v, masked);
	}
	if (enabled && (force || !pci->msi_enabled))
		vfurt_irq_set_func_mask(pci->dev, VFURT_IRQ_MSI, false);
	pci->msi_enabled = enabled;
}

int vfurt_pci_add_msi(struct vfurt_pci *pci, uint32_t nvec, bool per_vector_mask)
{
	uint32_t ctrl;
	int off, err;

	if (!pci || nvec == 0 || nvec > MSI_MAX_VECTORS || (nvec & (nvec - 1)))
		return -EINVAL;
	if (pci->msi_off)
		return -EEXIST;
	err = vfurt_dev_setup_irq(pci->dev, VFURT_IRQ_MSI, nvec);
	if (err < 0)
		return err;
	off = vfr_vpci_cap_alloc(pci, VPCI_CAP_ID_MSI, per_vector_mask ? MSI_LEN_MASK : MSI_LEN_NOMASK);
	if (off < 0) {
		(void)vfurt_dev_setup_irq(pci->dev, VFURT_IRQ_MSI, 0);
		return off;
	}

	ctrl = (log2_u32(nvec) << MSI_CTRL_MMC_SHIFT) | MSI_CTRL_64BIT;
	if (per_vector_mask)
		ctrl |= MSI_CTRL_PVM;
	vfr_vpci_define(pci, off + MSI_CTRL, 2, ctrl, MSI_CTRL_ENABLE | MSI_CTRL_MME_MASK, 0);
	vfr_vpci_define(pci, off + MSI_ADDR_LO, 4, 0, 0xfffffffcu, 0);
	vfr_vpci_define(pci, off + MSI_ADDR_HI, 4, 0, 0xffffffffu, 0);
	vfr_vpci_define(pci, off + MSI_DATA, 2, 0, 0xffff, 0);
	if (per_vector_mask) {
		uint32_t m = nvec == 32 ? 0xffffffffu : (1u << nvec) - 1;

		vfr_vpci_define(pci, off + MSI_MASK, 4, 0, m, 0);
		vfr_vpci_define(pci, off + MSI_PENDING, 4, 0, 0, 0);
	}
	pci->msi_off = (uint32_t)off;
	pci->msi_nvec = nvec;
	pci->msi_pvm = per_vector_mask;
	msi_sync(pci, true);
	return off;
}

bool vfurt_pci_msi_enabled(const struct vfurt_pci *pci)
{
	return pci && pci->msi_off &&
	       (vfr_vpci_get(pci, pci->msi_off + MSI_CTRL, 2) & MSI_CTRL_ENABLE);
}

void vfr_vpci_msi_before_read(struct vfurt_pci *pci, uint32_t off, uint32_t len)
{
	uint32_t bits = 0;

	if (!pci->msi_off || !pci->msi_pvm ||
	    !vpci_overlap(off, len, pci->msi_off + MSI_PENDING, 4))
		return;
	for (uint32_t v = 0; v < pci->msi_nvec; v++)
		if (vfurt_irq_pending(pci->dev, VFURT_IRQ_MSI, v))
			bits |= 1u << v;
	vfr_vpci_set(pci, pci->msi_off + MSI_PENDING, 4, bits);
}

/* ---- MSI-X ------------------------------------------------------------ */

static uint32_t msix_pba_size(uint32_t nvec)
{
	return ((nvec + 63) / 64) * 8;
}

static bool msix_vec_masked(const struct vfurt_pci *pci, uint32_t v)
{
	return pci->msix_table[v * VPCI_MSIX_ENTRY_SIZE + VPCI_MSIX_ENTRY_CTRL] &
	       VPCI_MSIX_CTRL_MASKBIT;
}

static void msix_sync(struct vfurt_pci *pci, bool force)
{
	uint32_t ctrl = vfr_vpci_get(pci, pci->msix_off + MSIX_CTRL, 2);
	bool enabled = ctrl & MSIX_CTRL_ENABLE;
	bool fmasked = !enabled || (ctrl & MSIX_CTRL_FMASK);

	/* On enable, re-assert every vector's mask from the table in case the
	 * irq layer's per-vector state was reset behind our back. */
	if (force || (enabled && !pci->msix_enabled)) {
		vfurt_irq_set_func_mask(pci->dev, VFURT_IRQ_MSIX, true);
		for (uint32_t v = 0; v < pci->msix_nvec; v++)
			vfurt_irq_set_guest_mask(pci->dev, VFURT_IRQ_MSIX, v,
						 msix_vec_masked(pci, v));
		pci->msix_func_masked = true;
	}
	if (fmasked != pci->msix_func_masked)
		vfurt_irq_set_func_mask(pci->dev, VFURT_IRQ_MSIX, fmasked);
	pci->msix_func_masked = fmasked;
	pci->msix_enabled = enabled;
}

bool vfurt_pci_msix_enabled(const struct vfurt_pci *pci)
{
	return pci && pci->msix_off &&
	       (vfr_vpci_get(pci, pci->msix_off + MSIX_CTRL, 2) & MSIX_CTRL_ENABLE);
}

/* Writable bits of each byte of a table entry: address (dword aligned),
 * data, and the mask bit of vector control. */
static const uint8_t msix_entry_wmask[VPCI_MSIX_ENTRY_SIZE] = {
	0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, VPCI_MSIX_CTRL_MASKBIT, 0, 0, 0,
};

/* Table access at table-relative [off, off+len), already range-checked. */
static void msix_table_rw(struct vfurt_pci *pci, uint8_t *buf, uint64_t off, uint64_t len,
			  bool is_write)
{
	uint32_t first, last;

	if (!is_write) {
		memcpy(buf, pci->msix_table + off, len);
		return;
	}
	pci->msix_client_table = true; /* from now on the client owns the masks */
	first = (uint32_t)(off / VPCI_MSIX_ENTRY_SIZE);
	last = (uint32_t)((off + len - 1) / VPCI_MSIX_ENTRY_SIZE);
	for (uint32_t v = first; v <= last; v++) {
		bool was = msix_vec_masked(pci, v);

		for (uint64_t o = v * VPCI_MSIX_ENTRY_SIZE; o < (v + 1) * VPCI_MSIX_ENTRY_SIZE; o++) {
			uint8_t m = msix_entry_wmask[o % VPCI_MSIX_ENTRY_SIZE];

			if (o < off || o >= off + len)
				continue;
			pci->msix_table[o] = (uint8_t)((pci->msix_table[o] & ~m) | (buf[o - off] & m));
		}
		if (msix_vec_masked(pci, v) != was)
			vfurt_irq_set_guest_mask(pci->dev, VFURT_IRQ_MSIX, v, !was);
	}
}

/* PBA read at PBA-relative [off, off+len): pending bits from the irq layer.
 * Writes are ignored, as the PBA is read-only. */
static void msix_pba_rw(struct vfurt_pci *pci, uint8_t *buf, uint64_t off, uint64_t len,
			bool is_write)
{
	if (is_write)
		return;
	for (uint64_t i = 0; i < len; i++) {
		uint8_t b = 0;

		for (uint32_t bit = 0; bit < 8; bit++) {
			uint64_t v = (off + i) * 8 + bit;

			if (v < pci->msix_nvec &&
			    vfurt_irq_pending(pci->dev, VFURT_IRQ_MSIX, (uint32_t)v))
				b |= (uint8_t)(1u << bit);
		}
		buf[i] = b;
	}
}

/*
 * Access callback wrapped around a BAR holding the MSI-X table and/or PBA.
 * Any size at any offset works: the range is split into table, PBA and
 * other bytes; the latter go to the BAR's original callback.
 */
static ssize_t msix_bar_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			       uint64_t offset, bool is_write)
{
	struct pci_bar_hook *h = arg;
	struct vfurt_pci *pci = h->pci;
	uint64_t tbl_start = UINT64_MAX, tbl_end = UINT64_MAX;
	uint64_t pba_start = UINT64_MAX, pba_end = UINT64_MAX;
	uint8_t *b = buf;
	uint64_t pos, end;

	if (!buf && count)
		return -EINVAL;
	if (offset > h->size || count > h->size - offset)
		return -EINVAL;
	if (h->bar == pci->msix_table_bar) {
		tbl_start = pci->msix_table_off;
		tbl_end = tbl_start + (uint64_t)pci->msix_nvec * VPCI_MSIX_ENTRY_SIZE;
	}
	if (h->bar == pci->msix_pba_bar) {
		pba_start = pci->msix_pba_off;
		pba_end = pba_start + msix_pba_size(pci->msix_nvec);
	}
	pos = offset;
	end = offset + count;
	while (pos < end) {
		uint64_t run;

		if (pos >= tbl_start && pos < tbl_end) {
			run = (end < tbl_end ? end : tbl_end) - pos;
			msix_table_rw(pci, b + (pos - offset), pos - tbl_start, run, is_write);
		} else if (pos >= pba_start && pos < pba_end) {
			run = (end < pba_end ? end : pba_end) - pos;
			msix_pba_rw(pci, b + (pos - offset), pos - pba_start, run, is_write);
		} else {
			uint64_t stop = end;
			ssize_t r;

			if (tbl_start > pos && tbl_start < stop)
				stop = tbl_start;
			if (pba_start > pos && pba_start < stop)
				stop = pba_start;
			run = stop - pos;
			if (!h->old_fn)
				return -EINVAL;
			r = h->old_fn(dev, h->old_arg, b + (pos - offset), run, pos, is_write);
			if (r < 0)
				return r;
			if ((uint64_t)r != run)
				return -EIO;
		}
		pos += run;
	}
	return (ssize_t)count;
}

/* Table and PBA must stay trapped: reject them inside mmappable areas. */
static bool range_mappable(const struct vfurt_region_desc *d, uint64_t off, uint64_t len)
{
	if (d->fd < 0)
		return false;
	if (d->nr_sparse == 0)
		return true;
	for (uint32_t i = 0; i < d->nr_sparse; i++)
		if (vpci_overlap(off, len, d->sparse[i].offset, d->sparse[i].size))
			return true;
	return false;
}

static int msix_check_bar(struct vfurt_pci *pci, uint32_t bar, uint32_t off, uint64_t len,
			  struct vfurt_region_desc *d)
{
	if (bar >= VPCI_NUM_BARS || (off & 7))
		return -EINVAL;
	if (vfurt_dev_get_region(pci->dev, VFURT_REGION_BAR0 + bar, d) < 0)
		return -EINVAL;
	if (!d->size || (d->flags & VFURT_REGION_IO) || off > d->size || len > d->size - off)
		return -EINVAL;
	if (range_mappable(d, off, len))
		return -EINVAL;
	return 0;
}

static int msix_hook_bar(struct vfurt_pci *pci, uint32_t bar, uint64_t size)
{
	struct pci_bar_hook *h = &pci->bar_hooks[bar];
	int err;

	if (h->hooked)
		return 0;
	h->pci = pci;
	h->bar = bar;
	h->size = size;
	err = vfurt_dev_hook_region(pci->dev, VFURT_REGION_BAR0 + bar, msix_bar_access, h,
				    &h->old_fn, &h->old_arg);
	if (err < 0)
		return err;
	h->hooked = true;
	return 0;
}

static void msix_table_init(struct vfurt_pci *pci)
{
	memset(pci->msix_table, 0, (size_t)pci->msix_nvec * VPCI_MSIX_ENTRY_SIZE);
	/* Vectors come out of reset masked. */
	for (uint32_t v = 0; v < pci->msix_nvec; v++)
		pci->msix_table[v * VPCI_MSIX_ENTRY_SIZE + VPCI_MSIX_ENTRY_CTRL] =
			VPCI_MSIX_CTRL_MASKBIT;
	pci->msix_client_table = false;
}

/* Set a vector's table mask bit as the device itself would, and push it. */
static void msix_set_vec_mask(struct vfurt_pci *pci, uint32_t v, bool masked)
{
	uint8_t *ctrl = &pci->msix_table[v * VPCI_MSIX_ENTRY_SIZE + VPCI_MSIX_ENTRY_CTRL];

	if (msix_vec_masked(pci, v) == masked)
		return;
	if (masked)
		*ctrl |= VPCI_MSIX_CTRL_MASKBIT;
	else
		*ctrl &= (uint8_t)~VPCI_MSIX_CTRL_MASKBIT;
	vfurt_irq_set_guest_mask(pci->dev, VFURT_IRQ_MSIX, v, masked);
}

/*
 * A client that emulates the table (QEMU) never writes ours, so left alone
 * every vector would stay masked from reset. The kernel's vfio-pci gives
 * the model: SET_IRQS with an eventfd requests the host vector, which
 * programs and unmasks it; fd -1 frees it, masking it again. Masking by the
 * guest reaches us only as SET_IRQS MASK/UNMASK (or as the client moving
 * the eventfd), which is a separate mask in the irq layer. Unmasking here
 * fires what became pending while the vector was masked.
 */
void vfr_vpci_msix_client_irq(struct vfurt_pci *pci, uint32_t vector, bool assigned)
{
	if (!pci->msix_off || pci->msix_client_table || vector >= pci->msix_nvec)
		return;
	msix_set_vec_mask(pci, vector, !assigned);
}

void vfr_vpci_msix_client_detach(struct vfurt_pci *pci)
{
	if (!pci->msix_off)
		return;
	/* the eventfds are gone: vectors the table did not own go back to
	 * masked; the next client starts without owning the table */
	if (!pci->msix_client_table)
		for (uint32_t v = 0; v < pci->msix_nvec; v++)
			msix_set_vec_mask(pci, v, true);
	pci->msix_client_table = false;
}

int vfurt_pci_add_msix(struct vfurt_pci *pci, uint32_t nvec, uint32_t table_bar,
		       uint32_t table_offset, uint32_t pba_bar, uint32_t pba_offset)
{
	struct vfurt_region_desc td = { .desc_size = sizeof(td) };
	struct vfurt_region_desc pd = { .desc_size = sizeof(pd) };
	uint64_t tlen, plen;
	int off, err;

	if (!pci || nvec == 0 || nvec > MSIX_MAX_VECTORS)
		return -EINVAL;
	if (pci->msix_off)
		return -EEXIST;
	tlen = (uint64_t)nvec * VPCI_MSIX_ENTRY_SIZE;
	plen = msix_pba_size(nvec);
	if (msix_check_bar(pci, table_bar, table_offset, tlen, &td) < 0 ||
	    msix_check_bar(pci, pba_bar, pba_offset, plen, &pd) < 0)
		return -EINVAL;
	if (table_bar == pba_bar && vpci_overlap(table_offset, tlen, pba_offset, plen))
		return -EINVAL;

	pci->msix_table = malloc(tlen);
	if (!pci->msix_table)
		return -ENOMEM;
	err = vfurt_dev_setup_irq(pci->dev, VFURT_IRQ_MSIX, nvec);
	if (err < 0)
		goto err_free_table;
	off = vfr_vpci_cap_alloc(pci, VPCI_CAP_ID_MSIX, MSIX_CAP_LEN);
	if (off < 0) {
		err = off;
		goto err_drop_irq;
	}
	err = msix_hook_bar(pci, table_bar, td.size);
	if (err == 0)
		err = msix_hook_bar(pci, pba_bar, pd.size);
	if (err < 0)
		goto err_drop_irq; /* cannot happen: both regions were just checked */

	vfr_vpci_define(pci, off + MSIX_CTRL, 2, nvec - 1, MSIX_CTRL_ENABLE | MSIX_CTRL_FMASK, 0);
	vfr_vpci_define(pci, off + MSIX_TABLE, 4, table_offset | table_bar, 0, 0);
	vfr_vpci_define(pci, off + MSIX_PBA, 4, pba_offset | pba_bar, 0, 0);
	pci->msix_off = (uint32_t)off;
	pci->msix_nvec = nvec;
	pci->msix_table_bar = table_bar;
	pci->msix_table_off = table_offset;
	pci->msix_pba_bar = pba_bar;
	pci->msix_pba_off = pba_offset;
	msix_table_init(pci);
	msix_sync(pci, true);
	return off;

err_drop_irq:
	(void)vfurt_dev_setup_irq(pci->dev, VFURT_IRQ_MSIX, 0);
err_free_table:
	free(pci->msix_table);
	pci->msix_table = NULL;
	return err;
}

/* ---- shared ----------------------------------------------------------- */

void vfr_vpci_msi_after_write(struct vfurt_pci *pci, uint32_t off, uint32_t len)
{
	if (pci->msi_off && (vpci_overlap(off, len, pci->msi_off + MSI_CTRL, 2) ||
			     (pci->msi_pvm && vpci_overlap(off, len, pci->msi_off + MSI_MASK, 4)))) {
		uint32_t reg = pci->msi_off + MSI_CTRL;
		uint32_t ctrl = vfr_vpci_get(pci, reg, 2);
		uint32_t mmc = (ctrl >> MSI_CTRL_MMC_SHIFT) & 7;

		/* Multiple Message Enable never exceeds Multiple Message Capable. */
		if (((ctrl & MSI_CTRL_MME_MASK) >> MSI_CTRL_MME_SHIFT) > mmc)
			vfr_vpci_set(pci, reg, 2,
				 (ctrl & ~MSI_CTRL_MME_MASK) | (mmc << MSI_CTRL_MME_SHIFT));
		msi_sync(pci, false);
	}
	if (pci->msix_off && vpci_overlap(off, len, pci->msix_off + MSIX_CTRL, 2))
		msix_sync(pci, false);
}

void vfr_vpci_msi_reset(struct vfurt_pci *pci)
{
	if (pci->msi_off)
		msi_sync(pci, true);
	if (pci->msix_off) {
		msix_table_init(pci);
		msix_sync(pci, true);
	}
}

/*
 * After a state image replaced config space (pci_state.c): clamp Multiple
 * Message Enable as a write would, take the MSI-X table (msix_nvec entries;
 * NULL keeps the current one) keeping only its writable bits, and
 * recompute what msi_sync/msix_sync last applied from the registers. The
 * irq layer is not told: the engine restores its masks from the same
 * image, which the old process kept equal to these shadows.
 */
void vfr_vpci_msi_restored(struct vfurt_pci *pci, const uint8_t *table)
{
	if (pci->msi_off) {
		uint32_t reg = pci->msi_off + MSI_CTRL;
		uint32_t ctrl = vfr_vpci_get(pci, reg, 2);
		uint32_t mmc = (ctrl >> MSI_CTRL_MMC_SHIFT) & 7;
		uint32_t nr, bits;

		if (((ctrl & MSI_CTRL_MME_MASK) >> MSI_CTRL_MME_SHIFT) > mmc) {
			ctrl = (ctrl & ~MSI_CTRL_MME_MASK) | (mmc << MSI_CTRL_MME_SHIFT);
			vfr_vpci_set(pci, reg, 2, ctrl);
		}
		nr = 1u << ((ctrl & MSI_CTRL_MME_MASK) >> MSI_CTRL_MME_SHIFT);
		bits = pci->msi_pvm ? vfr_vpci_get(pci, pci->msi_off + MSI_MASK, 4) : 0;
		pci->msi_enabled = ctrl & MSI_CTRL_ENABLE;
		pci->msi_masked = 0;
		for (uint32_t v = 0; v < pci->msi_nvec; v++)
			if ((bits & (1u << v)) || v >= nr)
				pci->msi_masked |= 1u << v;
	}
	if (pci->msix_off) {
		uint32_t ctrl = vfr_vpci_get(pci, pci->msix_off + MSIX_CTRL, 2);
		size_t len = (size_t)pci->msix_nvec * VPCI_MSIX_ENTRY_SIZE;

		for (size_t o = 0; table && o < len; o++)
			pci->msix_table[o] = table[o] & msix_entry_wmask[o % VPCI_MSIX_ENTRY_SIZE];
		pci->msix_enabled = ctrl & MSIX_CTRL_ENABLE;
		pci->msix_func_masked = !pci->msix_enabled || (ctrl & MSIX_CTRL_FMASK);
	}
}

void vfr_vpci_msi_free(struct vfurt_pci *pci)
{
	free(pci->msix_table);
	pci->msix_table = NULL;
}
