/* Unit-test helpers that drive a device model directly through its region callbacks. */
#ifndef VFURT_TESTS_DEV_UTIL_H
#define VFURT_TESTS_DEV_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfurt/device.h>

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
