/* State of one emulated PCI config space, shared by the devices/pci/ files. */
#ifndef VFURT_PCI_INTERNAL_H
#define VFURT_PCI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/device.h>
#include <vfurt/pci.h>

/* Type-0 header offsets and bits (PCI Local Bus 3.0, ch. 6). */
#define VPCI_VENDOR_ID 0x00
#define VPCI_DEVICE_ID 0x02
#define VPCI_COMMAND 0x04
#define VPCI_STATUS 0x06
#define VPCI_REVISION_ID 0x08
#define VPCI_CLASS_PROG 0x09
#define VPCI_CACHE_LINE_SIZE 0x0c
#define VPCI_HEADER_TYPE 0x0e
#define VPCI_BAR0 0x10
#define VPCI_SUBSYS_VENDOR_ID 0x2c
#define VPCI_SUBSYS_ID 0x2e
#define VPCI_ROM_ADDRESS 0x30
#define VPCI_CAP_PTR 0x34
#define VPCI_INTERRUPT_LINE 0x3c
#define VPCI_INTERRUPT_PIN 0x3d
#define VPCI_HEADER_END 0x40

#define VPCI_CMD_IO (1u << 0)
#define VPCI_CMD_MEM (1u << 1)
#define VPCI_CMD_MASTER (1u << 2)
#define VPCI_CMD_PARITY (1u << 6)
#define VPCI_CMD_SERR (1u << 8)
#define VPCI_CMD_INTX_DISABLE (1u << 10)
#define VPCI_CMD_WMASK (VPCI_CMD_IO | VPCI_CMD_MEM | VPCI_CMD_MASTER | \
			VPCI_CMD_PARITY | VPCI_CMD_SERR | VPCI_CMD_INTX_DISABLE)

#define VPCI_STS_CAP_LIST (1u << 4)
/* Master data parity error, signaled/received target abort, received master
 * abort, signaled system error, detected parity error. */
#define VPCI_STS_W1C 0xf900u

#define VPCI_BAR_IO 0x1u
#define VPCI_BAR_MEM64 0x4u
#define VPCI_BAR_PREFETCH 0x8u
#define VPCI_ROM_ENABLE 0x1u
#define VPCI_ROM_ADDR_MASK 0xfffff800u

/* Capability ids. */
#define VPCI_CAP_ID_PM 0x01
#define VPCI_CAP_ID_MSI 0x05
#define VPCI_CAP_ID_VNDR 0x09
#define VPCI_CAP_ID_EXP 0x10
#define VPCI_CAP_ID_MSIX 0x11
#define VPCI_EXT_CAP_ID_DSN 0x0003
#define VPCI_EXT_CAP_ID_VNDR 0x000b
#define VPCI_EXT_CAP_START 0x100

#define VPCI_NUM_BARS 6u

/* The type-0 header, only to check the offsets above against the spec layout. */
struct vpci_type0_header {
	uint16_t vendor_id;
	uint16_t device_id;
	uint16_t command;
	uint16_t status;
	uint8_t revision;
	uint8_t class_code[3];
	uint8_t cache_line_size;
	uint8_t latency_timer;
	uint8_t header_type;
	uint8_t bist;
	uint32_t bar[6];
	uint32_t cardbus_cis;
	uint16_t subsys_vendor_id;
	uint16_t subsys_id;
	uint32_t rom;
	uint8_t cap_ptr;
	uint8_t reserved[7];
	uint8_t interrupt_line;
	uint8_t interrupt_pin;
	uint8_t min_gnt;
	uint8_t max_lat;
};
_Static_assert(sizeof(struct vpci_type0_header) == VPCI_HEADER_END, "type-0 header size");
_Static_assert(offsetof(struct vpci_type0_header, command) == VPCI_COMMAND, "command");
_Static_assert(offsetof(struct vpci_type0_header, status) == VPCI_STATUS, "status");
_Static_assert(offsetof(struct vpci_type0_header, class_code) == VPCI_CLASS_PROG, "class");
_Static_assert(offsetof(struct vpci_type0_header, header_type) == VPCI_HEADER_TYPE, "hdr");
_Static_assert(offsetof(struct vpci_type0_header, bar) == VPCI_BAR0, "bar0");
_Static_assert(offsetof(struct vpci_type0_header, subsys_vendor_id) == VPCI_SUBSYS_VENDOR_ID,
	       "subsystem vendor");
_Static_assert(offsetof(struct vpci_type0_header, rom) == VPCI_ROM_ADDRESS, "rom");
_Static_assert(offsetof(struct vpci_type0_header, cap_ptr) == VPCI_CAP_PTR, "cap ptr");
_Static_assert(offsetof(struct vpci_type0_header, interrupt_pin) == VPCI_INTERRUPT_PIN, "pin");

/* One MSI-X table entry (PCI Local Bus 3.0, 6.8.2). */
struct vpci_msix_entry {
	uint32_t addr_lo;
	uint32_t addr_hi;
	uint32_t data;
	uint32_t vector_ctrl;
};
#define VPCI_MSIX_ENTRY_SIZE 16u
#define VPCI_MSIX_ENTRY_CTRL 12u
#define VPCI_MSIX_CTRL_MASKBIT 0x1u
_Static_assert(sizeof(struct vpci_msix_entry) == VPCI_MSIX_ENTRY_SIZE, "msix entry");
_Static_assert(offsetof(struct vpci_msix_entry, vector_ctrl) == VPCI_MSIX_ENTRY_CTRL,
	       "msix vector control");

/* An MSI-X table or PBA BAR whose access callback we wrapped. */
struct pci_bar_hook {
	struct vfurt_pci *pci;
	uint32_t bar;
	uint64_t size;
	vfurt_region_access_fn old_fn;
	void *old_arg;
	bool hooked;
};

/* Called on a Function Level Reset instead of vfurt_pci_reset(). */
typedef int (*vfurt_pci_flr_fn)(struct vfurt_pci *pci, void *arg);

struct vfurt_pci {
	struct vfurt_dev *dev;
	uint32_t cfg_size;
	/*
	 * Per config byte: current value, power-on value, writable bits,
	 * write-1-to-clear bits, and whether vfu-rt emulates the byte (else it
	 * goes to the device's cfg hook).
	 */
	uint8_t *cfg;
	uint8_t *rst;
	uint8_t *wmask;
	uint8_t *w1c;
	uint8_t *emu;

	vfurt_pci_cfg_fn hook;
	void *hook_arg;
	vfurt_pci_flr_fn flr_fn;
	void *flr_arg;

	bool intx;            /* intx_pin != 0 */
	bool intx_masked;     /* INTx disable as last applied */

	/* Capability list bookkeeping. */
	uint32_t cap_next;    /* next free standard cap offset */
	uint32_t cap_last;    /* last standard cap in the list, 0 = none */
	uint32_t ext_next;    /* next free extended cap offset */
	uint32_t ext_last;    /* last extended cap, 0 = none */

	uint32_t pm_off;
	uint8_t pm_state;     /* current D state: 0 or 3 */
	uint32_t pcie_off;
	uint32_t dsn_off;

	uint32_t msi_off;
	uint32_t msi_nvec;
	bool msi_pvm;
	bool msi_enabled;     /* as last applied to the irq layer */
	uint32_t msi_masked;  /* guest masks as last applied */

	uint32_t msix_off;
	uint32_t msix_nvec;
	uint32_t msix_table_bar;
	uint32_t msix_table_off;
	uint32_t msix_pba_bar;
	uint32_t msix_pba_off;
	uint8_t *msix_table;  /* 16 bytes per vector, little endian */
	bool msix_enabled;    /* enable bit as last applied */
	bool msix_func_masked;
	/* The client wrote the table since reset/attach: its vector masks are
	 * the client's alone and eventfd assignment no longer touches them. */
	bool msix_client_table;
	struct pci_bar_hook bar_hooks[VPCI_NUM_BARS];
};

/*
 * Engine hook: route a Function Level Reset (PCIe Device Control bit 15)
 * through fn (which should quiesce the device and run the full reset path,
 * including vfurt_pci_reset) instead of only resetting config space. NULL
 * restores the default. Thread: the device's thread.
 */
void vfr_pci_set_flr_fn(struct vfurt_pci *pci, vfurt_pci_flr_fn fn, void *arg);

/* ---- helpers for the devices/pci files --------------------------------- */

/* Little-endian accessors for the current config values. */
uint32_t vfr_vpci_get(const struct vfurt_pci *pci, uint32_t off, uint32_t size);
void vfr_vpci_set(struct vfurt_pci *pci, uint32_t off, uint32_t size, uint32_t val);

/*
 * Define `size` (1, 2, 4) bytes at off: power-on value, writable and RW1C
 * bits; marks them emulated.
 */
void vfr_vpci_define(struct vfurt_pci *pci, uint32_t off, uint32_t size, uint32_t val,
		uint32_t wmask, uint32_t w1c);

/* Whether [a, a+alen) and [b, b+blen) intersect. */
static inline bool vpci_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Reserve a standard (id) or extended (ext id, version) capability of len
 * bytes and link it in. Return its offset or -ENOSPC / -EINVAL. */
int vfr_vpci_cap_alloc(struct vfurt_pci *pci, uint8_t id, size_t len);
int vfr_vpci_ext_cap_alloc(struct vfurt_pci *pci, uint16_t id, uint8_t ver, size_t len);

/* Side effects of a config write that touched [off, off+len). */
void vfr_vpci_caps_after_write(struct vfurt_pci *pci, uint32_t off, uint32_t len);
void vfr_vpci_msi_after_write(struct vfurt_pci *pci, uint32_t off, uint32_t len);
/* Refresh dynamic registers (MSI pending bits) before a config read. */
void vfr_vpci_msi_before_read(struct vfurt_pci *pci, uint32_t off, uint32_t len);

/*
 * The client gave (assigned) or took the eventfd of MSI-X vector `vector`
 * through SET_IRQS, or went away. Unless it wrote the table itself, this
 * unmasks / masks the vector's table entry, as the kernel's vfio-pci does
 * when it requests / frees the host vector.
 */
void vfr_vpci_msix_client_irq(struct vfurt_pci *pci, uint32_t vector, bool assigned);
void vfr_vpci_msix_client_detach(struct vfurt_pci *pci);

/*
 * State images (pci_state.c, installed by vfurt_pci_create through
 * vfurt_dev_set_pci_state): save config space into the section the engine
 * opened; restore it on a freshly created function. Same contract as the
 * hooks of vfurt_dev_set_pci_state; restore also -EBUSY (a client is
 * attached).
 */
int vfr_vpci_state_save(struct vfurt_pci *pci, struct vfurt_state *s);
int vfr_vpci_state_restore(struct vfurt_pci *pci, const struct vfurt_state_cur *c);

/* Restore-time work of caps.c and msi.c after config bytes were replaced:
 * registers a write could not have produced are corrected and the shadows
 * recomputed, without calling the irq layer. table: the MSI-X table to
 * install (msix_nvec entries) or NULL. */
void vfr_vpci_caps_restored(struct vfurt_pci *pci);
void vfr_vpci_msi_restored(struct vfurt_pci *pci, const uint8_t *table);

/* Reset-time work of caps.c and msi.c (after config bytes were restored). */
void vfr_vpci_caps_reset(struct vfurt_pci *pci);
void vfr_vpci_msi_reset(struct vfurt_pci *pci);
void vfr_vpci_msi_free(struct vfurt_pci *pci);

#endif /* VFURT_PCI_INTERNAL_H */
