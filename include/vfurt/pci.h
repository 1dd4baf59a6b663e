/* PCI config space emulation: type-0 header, BAR sizing, capability builder. */
#ifndef VFURT_PCI_H
#define VFURT_PCI_H

/*
 * vfurt_pci_create() attaches a 256-byte (conventional) or 4 KiB (PCI
 * Express) config space to a device and serves region VFURT_REGION_CONFIG.
 * The emulation behaves like hardware: read-only bits ignore writes, status
 * bits are RW1C, BARs answer all-ones sizing writes from the sizes and kinds
 * of the device's BAR regions, and MSI/MSI-X control and mask bits drive the
 * device's interrupt state (vfurt_irq_set_guest_mask/func_mask).
 *
 * Set up BAR regions (vfurt_dev_setup_region) before vfurt_pci_create();
 * add capabilities right after it, before the device is served.
 * Threading: as struct vfurt_dev.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfurt/device.h>
#include <vfurt/export.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfurt_pci;

#define VFURT_PCI_CFG_SIZE 256u
#define VFURT_PCI_CFG_SIZE_EXP 4096u

struct vfurt_pci_opts {
	size_t opts_size;      /* sizeof(struct vfurt_pci_opts) */
	uint16_t vendor_id;
	uint16_t device_id;
	uint16_t subsys_vendor_id;
	uint16_t subsys_id;
	uint32_t class_code;   /* 24 bits: base class, subclass, prog-if */
	uint8_t revision;
	uint8_t intx_pin;      /* 0 = none, 1..4 = INTA..INTD */
	uint32_t cfg_size;     /* VFURT_PCI_CFG_SIZE or VFURT_PCI_CFG_SIZE_EXP */
};

/*
 * Device-specific config space hook: called for accesses that fall outside
 * the standard header and the capabilities vfu-rt emulates (e.g. a vendor
 * register at 0xa0). Return count, or a negative errno. NULL = such bytes
 * read as zero and ignore writes.
 */
typedef ssize_t (*vfurt_pci_cfg_fn)(struct vfurt_pci *pci, void *arg, void *buf,
				    size_t count, uint64_t offset, bool is_write);

/*
 * Create config space for dev and register region VFURT_REGION_CONFIG.
 * The pci object is owned by the device and freed with it.
 * Returns NULL with errno EINVAL (bad opts, BAR regions not power-of-two
 * sized or too small -- memory < 16 bytes, I/O < 4 --, a 32-bit BAR over
 * 2 GiB, a 64-bit BAR in BAR5 or with a region in its upper slot; dev NULL,
 * opts_size out of range), EEXIST (dev already has config space), EBUSY (a
 * client is connected) or ENOMEM.
 */
VFURT_EXPORT struct vfurt_pci *vfurt_pci_create(struct vfurt_dev *dev,
						const struct vfurt_pci_opts *opts);

/* Install the device-specific config hook. */
VFURT_EXPORT void vfurt_pci_set_cfg_hook(struct vfurt_pci *pci, vfurt_pci_cfg_fn fn, void *arg);

/* Raw config space (for device models and tests; do not write through it). */
VFURT_EXPORT const uint8_t *vfurt_pci_cfg(const struct vfurt_pci *pci);

/*
 * Capabilities. Each returns the capability's config space offset (> 0) or
 * a negative errno: -ENOSPC (config space full), -EEXIST (added twice),
 * -EINVAL (bad arguments); vfurt_pci_add_msi and vfurt_pci_add_msix, which
 * declare their vectors with vfurt_dev_setup_irq, also -ENOMEM and -EBUSY (a
 * client is connected).
 */
/* Power management (D0/D3hot, No_Soft_Reset). */
VFURT_EXPORT int vfurt_pci_add_pm(struct vfurt_pci *pci);
/* MSI with nvec (1,2,4,..,32) vectors, 64-bit address, per-vector masking. */
VFURT_EXPORT int vfurt_pci_add_msi(struct vfurt_pci *pci, uint32_t nvec, bool per_vector_mask);
/*
 * MSI-X with nvec (1..2048) vectors, table and PBA in BARs (may be the same
 * BAR, must not overlap, 8-byte aligned offsets). The BAR regions must exist;
 * accesses to the table and PBA are handled here, the rest of the BAR still
 * goes to the device's access callback. Also calls vfurt_dev_setup_irq(MSIX).
 * -EINVAL also when a BAR is an I/O BAR or the table/PBA lies in a part of
 * the BAR the client may mmap (it would bypass the emulation). Describing
 * the BAR again with vfurt_dev_setup_region afterwards drops the hook.
 *
 * Delivery rule: vector v fires (vfurt_irq_trigger) when MSI-X is enabled
 * in config space, the function mask is clear, the client's SET_IRQS mask
 * of v is clear and the table's vector control mask bit of v is clear;
 * otherwise the trigger sets v's PBA bit and the unmask that completes the
 * set fires it once. All vectors come out of reset masked in the table.
 * Clients that emulate the table themselves (QEMU) never write ours, so as
 * in the kernel's vfio-pci, which programs and unmasks the host vector when
 * it is given an eventfd, SET_IRQS ACTION_TRIGGER|DATA_EVENTFD clears v's
 * table mask bit and removing the eventfd (fd -1, no fds, or disabling the
 * index) sets it again. Once the client writes any part of the table (as
 * our client library does, like a guest on real hardware), the table's
 * mask bits are the client's alone until the next reset or disconnect.
 * Guest masking through such clients reaches the server only as SET_IRQS
 * MASK/UNMASK; both kinds of client read the PBA from here.
 */
VFURT_EXPORT int vfurt_pci_add_msix(struct vfurt_pci *pci, uint32_t nvec,
				    uint32_t table_bar, uint32_t table_offset,
				    uint32_t pba_bar, uint32_t pba_offset);
/* PCI Express capability (version 2) for an endpoint; needs the 4 KiB space.
 * Advertises FLR: a write of Initiate FLR resets config space. */
VFURT_EXPORT int vfurt_pci_add_pcie(struct vfurt_pci *pci);
/* Vendor-specific capability (id 0x09) with `len` (<= 253) bytes of data,
 * read-only. */
VFURT_EXPORT int vfurt_pci_add_vendor(struct vfurt_pci *pci, const void *data, size_t len);
/* Extended capabilities (offset >= 0x100, needs the 4 KiB space). */
VFURT_EXPORT int vfurt_pci_add_dsn(struct vfurt_pci *pci, uint64_t serial);
VFURT_EXPORT int vfurt_pci_add_ext_vendor(struct vfurt_pci *pci, uint16_t vsec_id,
					  uint8_t vsec_rev, const void *data, size_t len);

/* Current state, for device models. */
VFURT_EXPORT uint16_t vfurt_pci_command(const struct vfurt_pci *pci);
VFURT_EXPORT bool vfurt_pci_bus_master(const struct vfurt_pci *pci);
VFURT_EXPORT bool vfurt_pci_msix_enabled(const struct vfurt_pci *pci);
VFURT_EXPORT bool vfurt_pci_msi_enabled(const struct vfurt_pci *pci);

/* Return config space to its power-on state (BARs, command, capability
 * control registers), as on a reset. */
VFURT_EXPORT void vfurt_pci_reset(struct vfurt_pci *pci);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_PCI_H */
