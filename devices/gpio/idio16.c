/* PCI-IDIO-16 GPIO sample device: registers in I/O BAR2, toggling inputs, INTx, restart state. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vfurt/abi.h>
#include <vfurt/gpio.h>
#include <vfurt/pci.h>
#include <vfurt/state.h>

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
	/* Between freeze and thaw: registers still answer (the host may serve
	 * messages until every device froze) but no interrupt is raised; thaw
	 * raises the one the registers show. Not saved: restore freezes. */
	bool frozen;
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

/* The value input register read number n (from 0) returns. */
static uint8_t input_at(const struct idio16 *g, uint64_t n)
{
	return ((n / g->period) & 1) ? 0xff : 0x00;
}

/* Read input register `bank` (0: in0_7, 1: in8_15): advance the simulated
 * external signal and latch a change for the interrupt logic. */
static uint8_t read_input(struct idio16 *g, uint32_t bank)
{
	uint64_t n = g->reads[bank]++;
	uint8_t v = input_at(g, n);

	if (v != g->last_in[bank] && g->irq_enabled) {
		bool was_asserted = g->irq_status & IRQ_STATUS_ASSERTED;

		g->irq_status |= (uint8_t)((bank ? IRQ_STATUS_IN8_15 : IRQ_STATUS_IN0_7) |
					   IRQ_STATUS_ASSERTED);
		if (!was_asserted && !g->frozen)
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

/* ---- restart (include/vfurt/state.h) ------------------------------------- */

/*
 * Records of the model's section. Missing ones keep power-on values.
 *  GPIO_TAG_REGS    struct gpio_regs: outputs, filter_ctl, irq_status, the
 *                   interrupt enable (irq_ctl), the value each input
 *                   register returned last
 *  GPIO_TAG_READS   u64[2]: reads of each input register (the toggle counter)
 *  GPIO_TAG_PERIOD  u32 toggle_period: the counter means nothing under
 *                   another period, so restore refuses one
 * The INTx line's masks and pending bit are the engine's (irq state).
 */
enum {
	GPIO_TAG_REGS = 1,
	GPIO_TAG_READS = 2,
	GPIO_TAG_PERIOD = 3,
};

struct gpio_regs {
	uint8_t out[2];
	uint8_t filter_ctl;
	uint8_t irq_status;
	uint8_t irq_enabled; /* 0 or 1 */
	uint8_t last_in[2];
	uint8_t reserved;    /* 0 */
};
_Static_assert(sizeof(struct gpio_regs) == 8, "gpio_regs has no padding");

#define IRQ_STATUS_KNOWN (IRQ_STATUS_IN0_7 | IRQ_STATUS_IN8_15 | IRQ_STATUS_ASSERTED)

/* No command runs past its register access: nothing is ever in flight. */
static int idio16_freeze(struct vfurt_dev *dev, void *arg)
{
	struct idio16 *g = arg;

	g->frozen = true;
	return 0;
}

/*
 * An asserted, enabled interrupt may be owed: its edge came while frozen
 * (the trigger was held back), or in the previous process. Raising it
 * again is at worst one spurious INTx, which the guest's handler answers
 * IRQ_NONE after reading irq_status.
 */
static void idio16_thaw(struct vfurt_dev *dev, void *arg)
{
	struct idio16 *g = arg;

	g->frozen = false;
	if ((g->irq_status & IRQ_STATUS_ASSERTED) && g->irq_enabled)
		(void)vfurt_irq_trigger(dev, VFURT_IRQ_INTX, 0); /* no fd: pending */
}

/* The registers as saved (and, before a restore, as they are now). */
static struct gpio_regs regs_of(const struct idio16 *g)
{
	return (struct gpio_regs){
		.out = { g->out[0], g->out[1] },
		.filter_ctl = g->filter_ctl,
		.irq_status = g->irq_status,
		.irq_enabled = g->irq_enabled,
		.last_in = { g->last_in[0], g->last_in[1] },
	};
}

static int idio16_save(struct vfurt_dev *dev, void *arg, struct vfurt_state *s)
{
	struct idio16 *g = arg;
	struct gpio_regs r = regs_of(g);
	int err;

	err = vfurt_state_put(s, GPIO_TAG_REGS, &r, sizeof(r));
	if (err == 0)
		err = vfurt_state_put(s, GPIO_TAG_READS, g->reads, sizeof(g->reads));
	if (err == 0)
		err = vfurt_state_put_u32(s, GPIO_TAG_PERIOD, g->period);
	return err;
}

static int idio16_restore(struct vfurt_dev *dev, void *arg, const struct vfurt_state_cur *c)
{
	struct idio16 *g = arg;
	struct gpio_regs r = regs_of(g);
	uint64_t reads[2] = { g->reads[0], g->reads[1] };
	uint32_t period;
	int err;

	/* absent records keep the values the fresh card has (-ENOENT) */
	err = vfurt_state_get_u32(c, GPIO_TAG_PERIOD, &period);
	if (err == 0 && period != g->period)
		return -EINVAL;
	if (err < 0 && err != -ENOENT)
		return err;
	err = vfurt_state_get(c, GPIO_TAG_REGS, &r, sizeof(r));
	if (err < 0 && err != -ENOENT)
		return err;
	err = vfurt_state_get(c, GPIO_TAG_READS, reads, sizeof(reads));
	if (err < 0 && err != -ENOENT)
		return err;
	if ((r.irq_status & ~IRQ_STATUS_KNOWN) || r.irq_enabled > 1 || r.reserved)
		return -EBADMSG;
	/* each input shows what its last read returned (0 before any read) */
	for (int b = 0; b < 2; b++)
		if (r.last_in[b] != (reads[b] ? input_at(g, reads[b] - 1) : 0))
			return -EBADMSG;

	g->out[0] = r.out[0];
	g->out[1] = r.out[1];
	g->filter_ctl = r.filter_ctl;
	g->irq_status = r.irq_status;
	g->irq_enabled = r.irq_enabled;
	g->last_in[0] = r.last_in[0];
	g->last_in[1] = r.last_in[1];
	g->reads[0] = reads[0];
	g->reads[1] = reads[1];
	g->frozen = true; /* until thaw */
	return 0;
}

static const struct vfurt_dev_ops idio16_ops = {
	.ops_size = sizeof(struct vfurt_dev_ops),
	.reset = idio16_reset,
	.destroy = idio16_destroy,
	.freeze = idio16_freeze,
	.thaw = idio16_thaw,
	.save = idio16_save,
	.restore = idio16_restore,
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
