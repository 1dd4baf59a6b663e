/* Unit-test helpers that drive a device model directly through its region callbacks. */
#ifndef VFURT_TESTS_DEV_UTIL_H
#define VFURT_TESTS_DEV_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfurt/device.h>
#include <vfurt/pci.h>

/* ---- building a device for a unit test ---------------------------------------- */

/* A device with no regions yet named name. Asserts. */
struct vfurt_dev *du_dev_new(const char *name);
/* Region index of size bytes with flags | VFURT_REGION_RW, no fd, served by
 * access(arg); access NULL: a sink (reads zeroes, drops writes). Returns
 * vfurt_dev_setup_region's 0 or negative errno. */
int du_region_add(struct vfurt_dev *dev, uint32_t index, uint64_t size, uint32_t flags,
		  vfurt_region_access_fn access, void *arg);
/* The PCI identity of the unit tests' function (vendor 1af4, device 10f0,
 * subsystem 1234:5678, class 010802 NVMe, revision 7, INTx pin A) with a
 * config space of cfg_size bytes. */
struct vfurt_pci_opts du_pci_opts(uint32_t cfg_size);
/* vfurt_pci_create(dev, du_pci_opts(cfg_size)). Asserts. */
struct vfurt_pci *du_pci_new(struct vfurt_dev *dev, uint32_t cfg_size);
/* A cmocka teardown for fixtures whose first member is the device: destroy
 * it (and whatever it owns), free the fixture. */
int du_dev_teardown(void **state);

/* ---- driving it ------------------------------------------------------------- */

/* Call region index's access callback (asserts that it exists). */
ssize_t du_region_io(struct vfurt_dev *dev, uint32_t index, void *buf, size_t count,
		     uint64_t off, bool is_write);
/* Little-endian read / write of size (1..8) bytes; asserts full success. */
uint64_t du_rd(struct vfurt_dev *dev, uint32_t index, uint64_t off, size_t size);
void du_wr(struct vfurt_dev *dev, uint32_t index, uint64_t off, size_t size, uint64_t v);
/* Install a fresh eventfd as the trigger of (index, vector) as a client's
 * SET_IRQS would; returns a dup for the test to read (the device owns the
 * original). */
int du_attach_efd(struct vfurt_dev *dev, uint32_t index, uint32_t vector);
/* Read and reset an eventfd counter; 0 when nothing was signalled. */
uint64_t du_efd_count(int fd);

#endif /* VFURT_TESTS_DEV_UTIL_H */
