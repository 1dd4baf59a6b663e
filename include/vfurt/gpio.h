/* PCI-IDIO-16 GPIO card model (the MUSER/libvfio-user demo device). */
#ifndef VFURT_GPIO_H
#define VFURT_GPIO_H

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
	const char *name;
	struct vfurt_log log;
	uint32_t toggle_period; /* reads per input toggle, default 3 */
};

/* Create a GPIO device. Returns NULL with errno on failure. */
VFURT_EXPORT struct vfurt_dev *vfurt_gpio_create(const struct vfurt_gpio_opts *opts);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_GPIO_H */
