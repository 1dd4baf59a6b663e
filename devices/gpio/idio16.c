/* PCI-IDIO-16 GPIO sample device: registers in I/O BAR2, toggling inputs, INTx. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vfurt/abi.h>
#include <vfurt/gpio.h>
#include <vfurt/pci.h>

#define IDIO16_VENDOR_ID 0x494fu
#define IDIO16_DEVICE_ID 0x0dc8u
/* Base class 0xff: the card predates a fitting class; Linux matches by id. */
#define IDIO16_CLASS 0xff0000u
#define IDIO16_BAR2_SIZE 256u
#define IDIO16_DEFAULT_PERIOD 3u

/* BAR2 register offsets, as struct idio_16_gpio_reg in Linux. */
enum {
	REG_OUT0_7 = 0,
	REG_IN0_7 = 1,
	REG_IRQ_CTL = 2,
	REG_FILTER_CTL = 3,
	REG_OUT8_15 = 4,
	REG_IN8_15 = 5,
	REG_IRQ_STATUS = 6,
	REG_NUM,
};

#define IRQ_STATUS_IN0_7 0x01u
#define IRQ_STATUS_IN8_15 0x02u
#define IRQ_STATUS_ASSERTED 0x04u

struct idio16 {
	struct vfurt_dev *dev;
	uint32_t period;
	uint8_t out[2];
	uint8_t filter_ctl;
	uint8_t irq_status;
	bool irq_enabled;
	/* Per input register: reads so far and the value last returned. */
	uint64_t reads[2];
	uint8_t last_in[2];
};

static void idio16_power_on(struct idio16 *g)
{
	g->out[0] = g->out[1] = 0;
	g->filter_ctl = 0;
	g->irq_status = 0;
	g->irq_enabled = false;
	g->reads[0] = g->reads[1] = 0;
	g->last_in[0] = g->last_in[1] = 0;
}

/* Read input register `bank` (0: in0_7, 1: in8_15): advance the simulated
 * external signal and latch a change for the interrupt logic. */
static uint8_t read_input(struct idio16 *g, uint32_t bank)
{
	uint64_t n = g->reads[bank]++;
	uint8_t v = ((n / g->period) & 1) ? 0xff : 0x00;

	if (v != g->last_in[bank] && g->irq_enabled) {
		bool was_asserted = g->irq_status & IRQ_STATUS_ASSERTED;

		g->irq_status |= (uint8_t)((bank ? IRQ_STATUS_IN8_15 : IRQ_STATUS_IN0_7) |
					   IRQ_STATUS_ASSERTED);
		if (!was_asserted)
			(void)vfurt_irq_trigger(g->dev, VFURT_IRQ_INTX, 0); /* no fd: pending */
	}
	g->last_in[bank] = v;
	return v;
}

static uint8_t reg_read(struct idio16 *g, uint64_t reg)
{
	switch (reg) {
	case REG_OUT0_7:
		return g->out[0];
	case REG_IN0_7:
		return read_input(g, 0);
	case REG_IRQ_CTL:
		g->irq_enabled = true;
		return 1;
	case REG_FILTER_CTL:
		return g->filter_ctl;
	case REG_OUT8_15:
		return g->out[1];
	case REG_IN8_15:
		return read_input(g, 1);
	case REG_IRQ_STATUS:
		return g->irq_status;
	default:
		return 0;
	}
}

static void reg_write(struct idio16 *g, uint64_t reg, uint8_t v)
{
	switch (reg) {
	case REG_OUT0_7:
		g->out[0] = v;
		break;
	case REG_IN0_7:
	case REG_IRQ_STATUS:
		g->irq_status = 0;
		break;
	case REG_IRQ_CTL:
		g->irq_enabled = false;
		break;
	case REG_FILTER_CTL:
		g->filter_ctl = v;
		break;
	case REG_OUT8_15:
		g->out[1] = v;
		break;
	default:
		break; /* in8_15 and the rest are read-only */
	}
}

static ssize_t bar2_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			   uint64_t offset, bool is_write)
{
	struct idio16 *g = arg;
	uint8_t *b = buf;

	if (!buf && count)
		return -EINVAL;
	if (offset > IDIO16_BAR2_SIZE || count > IDIO16_BAR2_SIZE - offset)
		return -EINVAL;
	for (size_t i = 0; i < count; i++) {
		if (is_write)
			reg_write(g, offset + i, b[i]);
		else
			b[i] = reg_read(g, offset + i);
	}
	return (ssize_t)count;
}

static int idio16_reset(struct vfurt_dev *dev, void *arg, enum vfurt_reset_reason why)
{
	struct idio16 *g = arg;

	/* A lost client leaves the card as it was, like unplugging a cable. */
	if (why == VFURT_RESET_LOST_CONN)
		return 0;
	idio16_power_on(g);
	return 0;
}

static void idio16_destroy(struct vfurt_dev *dev, void *arg)
{
	free(arg);
}

static const struct vfurt_dev_ops idio16_ops = {
	.ops_size = sizeof(struct vfurt_dev_ops),
	.reset = idio16_reset,
	.destroy = idio16_destroy,
};

struct vfurt_dev *vfurt_gpio_create(const struct vfurt_gpio_opts *opts)
{
	struct vfurt_gpio_opts o = { 0 };
	struct vfurt_dev_opts dopts = { 0 };
	struct vfurt_region_desc bar2 = { 0 };
	struct vfurt_pci_opts popts = { 0 };
	struct vfurt_dev *dev;
	struct vfurt_pci *pci;
	struct idio16 *g;
	int err;

	if (vfurt_abi_copy_in(&o, sizeof(o), opts,
			      VFURT_ABI_SIZE(struct vfurt_gpio_opts, toggle_period))) {
		errno = EINVAL;
		return NULL;
	}

	g = calloc(1, sizeof(*g));
	if (!g) {
		errno = ENOMEM;
		return NULL;
	}
	g->period = o.toggle_period ? o.toggle_period : IDIO16_DEFAULT_PERIOD;
	idio16_power_on(g);

	dopts.opts_size = sizeof(dopts);
	dopts.name = o.name ? o.name : "gpio";
	dopts.ops = &idio16_ops;
	dopts.arg = g;
	dopts.log = o.log;
	dopts.reset_supported = true;
	dev = vfurt_dev_create(&dopts);
	if (!dev) {
		err = -errno;
		free(g);
		errno = -err;
		return NULL;
	}
	/* From here on vfurt_dev_destroy frees g through ops->destroy. */
	g->dev = dev;

	bar2.desc_size = sizeof(bar2);
	bar2.size = IDIO16_BAR2_SIZE;
	bar2.flags = VFURT_REGION_IO | VFURT_REGION_RW;
	bar2.access = bar2_access;
	bar2.arg = g;
	bar2.fd = -1;
	err = vfurt_dev_setup_region(dev, VFURT_REGION_BAR2, &bar2);
	if (err < 0)
		goto err_destroy_dev;

	popts.opts_size = sizeof(popts);
	popts.vendor_id = IDIO16_VENDOR_ID;
	popts.device_id = IDIO16_DEVICE_ID;
	popts.subsys_vendor_id = IDIO16_VENDOR_ID;
	popts.subsys_id = IDIO16_DEVICE_ID;
	popts.class_code = IDIO16_CLASS;
	popts.revision = 0;
	popts.intx_pin = 1;
	popts.cfg_size = VFURT_PCI_CFG_SIZE;
	pci = vfurt_pci_create(dev, &popts);
	if (!pci) {
		err = -errno;
		goto err_destroy_dev;
	}
	err = vfurt_pci_add_pm(pci);
	if (err < 0)
		goto err_destroy_dev;
	return dev;

err_destroy_dev:
	vfurt_dev_destroy(dev);
	errno = -err;
	return NULL;
}
