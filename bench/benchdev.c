/* Minimal device for the round-trip benchmarks: BAR0 registers stored by the access callback. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "benchdev.h"

struct benchdev {
	uint8_t regs[BENCHDEV_BAR0_SIZE];
	_Atomic uint64_t accesses; /* read from the benchmark thread */
};

/* The engine checked offset + count against the region size already. */
static ssize_t bar0_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			   uint64_t offset, bool is_write)
{
	struct benchdev *bd = arg;

	if (is_write)
		memcpy(&bd->regs[offset], buf, count);
	else
		memcpy(buf, &bd->regs[offset], count);
	atomic_fetch_add_explicit(&bd->accesses, 1, memory_order_relaxed);
	return (ssize_t)count;
}

static void benchdev_destroy(struct vfurt_dev *dev, void *arg)
{
	free(arg);
}

static const struct vfurt_dev_ops benchdev_ops = {
	.ops_size = sizeof(benchdev_ops),
	.destroy = benchdev_destroy,
};

struct vfurt_dev *benchdev_create(const char *name)
{
	struct vfurt_dev_opts o = { .opts_size = sizeof(o), .name = name, .ops = &benchdev_ops };
	struct vfurt_region_desc r = { .desc_size = sizeof(r), .size = BENCHDEV_BAR0_SIZE,
				       .flags = VFURT_REGION_RW, .access = bar0_access, .fd = -1 };
	struct benchdev *bd = calloc(1, sizeof(*bd));
	struct vfurt_dev *dev;

	if (!bd)
		return NULL;
	o.arg = bd;
	o.log.level = -1;
	dev = vfurt_dev_create(&o);
	if (!dev) {
		free(bd);
		return NULL;
	}
	/* from here on the device owns bd (ops->destroy frees it) */
	r.arg = bd;
	if (vfurt_dev_setup_region(dev, VFURT_REGION_BAR0, &r)) {
		vfurt_dev_destroy(dev);
		errno = EINVAL;
		return NULL;
	}
	return dev;
}

uint64_t benchdev_accesses(struct vfurt_dev *dev)
{
	struct benchdev *bd = vfurt_dev_arg(dev);

	return atomic_load_explicit(&bd->accesses, memory_order_relaxed);
}
