/* Unit-test helpers that drive a device model directly through its region callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/dev_util.h"
#include "io/device_internal.h"

struct vfurt_dev *du_dev_new(const char *name)
{
	struct vfurt_dev_opts o = { .opts_size = sizeof(o), .name = name };
	struct vfurt_dev *dev = vfurt_dev_create(&o);

	assert_non_null(dev);
	return dev;
}

static ssize_t sink_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			   uint64_t offset, bool is_write)
{
	(void)dev;
	(void)arg;
	(void)offset;
	if (!is_write)
		memset(buf, 0, count);
	return (ssize_t)count;
}

int du_region_add(struct vfurt_dev *dev, uint32_t index, uint64_t size, uint32_t flags,
		  vfurt_region_access_fn access, void *arg)
{
	struct vfurt_region_desc d = {
		.desc_size = sizeof(d),
		.size = size,
		.flags = flags | VFURT_REGION_RW,
		.access = access ? access : sink_access,
		.arg = arg,
		.fd = -1,
	};

	return vfurt_dev_setup_region(dev, index, &d);
}

struct vfurt_pci_opts du_pci_opts(uint32_t cfg_size)
{
	struct vfurt_pci_opts o = {
		.opts_size = sizeof(o),
		.vendor_id = 0x1af4,
		.device_id = 0x10f0,
		.subsys_vendor_id = 0x1234,
		.subsys_id = 0x5678,
		.class_code = 0x010802,
		.revision = 0x07,
		.intx_pin = 1,
		.cfg_size = cfg_size,
	};

	return o;
}

struct vfurt_pci *du_pci_new(struct vfurt_dev *dev, uint32_t cfg_size)
{
	struct vfurt_pci_opts o = du_pci_opts(cfg_size);
	struct vfurt_pci *pci = vfurt_pci_create(dev, &o);

	assert_non_null(pci);
	return pci;
}

int du_dev_teardown(void **state)
{
	struct vfurt_dev **dev = *state;

	if (dev) {
		vfurt_dev_destroy(*dev);
		free(dev);
	}
	return 0;
}

ssize_t du_region_io(struct vfurt_dev *dev, uint32_t index, void *buf, size_t count,
		     uint64_t off, bool is_write)
{
	struct vfurt_region_desc d = { .desc_size = sizeof(d) };

	assert_int_equal(vfurt_dev_get_region(dev, index, &d), 0);
	assert_non_null(d.access);
	return d.access(dev, d.arg, buf, count, off, is_write);
}

uint64_t du_rd(struct vfurt_dev *dev, uint32_t index, uint64_t off, size_t size)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;

	assert_true(size >= 1 && size <= 8);
	assert_int_equal(du_region_io(dev, index, b, size, off, false), (ssize_t)size);
	for (size_t i = 0; i < size; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

void du_wr(struct vfurt_dev *dev, uint32_t index, uint64_t off, size_t size, uint64_t v)
{
	uint8_t b[8];

	assert_true(size >= 1 && size <= 8);
	for (size_t i = 0; i < size; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	assert_int_equal(du_region_io(dev, index, b, size, off, true), (ssize_t)size);
}

int du_attach_efd(struct vfurt_dev *dev, uint32_t index, uint32_t vector)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct vfio_irq_set set = {
		.argsz = sizeof(set),
		.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = index,
		.start = vector,
		.count = 1,
	};
	int mine;

	assert_true(fd >= 0);
	mine = dup(fd);
	assert_true(mine >= 0);
	assert_int_equal(vfr_irqs_set(dev->irqs, &set, NULL, 0, &fd, 1, NULL, NULL), 0);
	return mine;
}

uint64_t du_efd_count(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}
