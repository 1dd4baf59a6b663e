/* PCI-IDIO-16 GPIO sample device: 16 outputs, 16 toggling inputs, INTx. */
#ifndef VFURT_GPIO_H
#define VFURT_GPIO_H

/*
 * An ACCES PCI-IDIO-16 (vendor 0x494f, device 0x0dc8) as Linux's
 * gpio-pci-idio-16 driver sees it. Config space: conventional 256 bytes,
 * class 0xff0000 ("device does not fit any defined class"), revision 0,
 * INTx pin A, PM capability. BAR2 is a 256-byte I/O BAR:
 *
 *   0  out0_7      read/write: outputs 0-7
 *   1  in0_7       read: inputs 0-7; write: clear interrupt
 *   2  irq_ctl     read: enable interrupt (reads 1 when enabled, else 0);
 *                  write: disable interrupt
 *   3  filter_ctl  read/write, stored only
 *   4  out8_15     read/write: outputs 8-15
 *   5  in8_15      read: inputs 8-15
 *   6  irq_status  bit 0: inputs 0-7 changed, bit 1: inputs 8-15 changed,
 *                  bit 2: interrupt asserted; any write clears it
 *   7..255         read 0, writes ignored
 *
 * The irq_ctl and in0_7 write semantics follow the Linux driver (it reads
 * irq_ctl to unmask and writes in0_7 to acknowledge). The inputs model an
 * external signal that each input register follows on its own: with
 * toggle_period N, reads 1..N of the register return 0x00, reads N+1..2N
 * return 0xff, and so on. When the interrupt is enabled and a read finds
 * the register's value changed, the change is latched in irq_status and, if
 * no interrupt was asserted yet, INTx vector 0 is raised. Accesses of any
 * size at any offset work byte by byte. Reset returns every register, the
 * read counters and irq state to power-on values.
 *
 * The card can be carried across a live upgrade (ops freeze, thaw, save,
 * restore): every register, the interrupt enable and both read counters
 * are saved; while frozen, register accesses still work but an interrupt
 * is held back, and thaw raises INTx if irq_status shows one asserted with
 * the interrupt enabled.
 */

#include <stddef.h>
#include <stdint.h>

#include <vfurt/device.h>
#include <vfurt/export.h>
#include <vfurt/log.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfurt_gpio_opts {
	size_t opts_size;       /* sizeof(struct vfurt_gpio_opts) */
	const char *name;       /* device name for logs; copied; NULL = "gpio" */
	struct vfurt_log log;
	uint32_t toggle_period; /* input register reads per toggle; 0 = 3 */
};

/*
 * Create a PCI-IDIO-16 device, ready to be served. The caller owns the
 * returned device (vfurt_dev_destroy, or hand it to a server). Thread: any
 * (the device is not shared yet). Returns NULL with errno EINVAL (opts NULL
 * or opts_size out of range: include/vfurt/abi.h) or ENOMEM.
 */
VFURT_EXPORT struct vfurt_dev *vfurt_gpio_create(const struct vfurt_gpio_opts *opts);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_GPIO_H */
