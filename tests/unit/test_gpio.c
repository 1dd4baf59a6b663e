/* Unit tests for the PCI-IDIO-16 GPIO device: config space, BAR2 registers, inputs, irq, reset. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/dev_util.h"

#include <vfurt/device.h>
#include <vfurt/gpio.h>
#include <vfurt/pci.h>

#include "io/device_internal.h"

#define BAR2 VFURT_REGION_BAR2
#define CFG VFURT_REGION_CONFIG

enum { OUT0_7, IN0_7, IRQ_CTL, FILTER_CTL, OUT8_15, IN8_15, IRQ_STATUS };

static struct vfurt_dev *new_gpio(uint32_t period)
{
	struct vfurt_gpio_opts o = { .opts_size = sizeof(o), .toggle_period = period };
	struct vfurt_dev *dev = vfurt_gpio_create(&o);

	assert_non_null(dev);
	return dev;
}

static int setup(void **state)
{
	*state = new_gpio(0);
	return 0;
}

static int teardown(void **state)
{
	vfurt_dev_destroy(*state);
	return 0;
}

static uint32_t rd(struct vfurt_dev *dev, uint32_t index, uint64_t off, size_t size)
{
	return (uint32_t)du_rd(dev, index, off, size);
}

static int attach_intx_efd(struct vfurt_dev *dev)
{
	return du_attach_efd(dev, VFURT_IRQ_INTX, 0);
}

/* Client-side INTx unmask, as after the guest's EOI. */
static void unmask_intx(struct vfurt_dev *dev)
{
	struct vfio_irq_set set = {
		.argsz = sizeof(set),
		.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
		.index = VFURT_IRQ_INTX,
		.start = 0,
		.count = 1,
	};

	assert_int_equal(vfr_irqs_set(dev->irqs, &set, NULL, 0, NULL, 0, NULL, NULL), 0);
}

static uint64_t efd_count(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

/* ---- tests -------------------------------------------------------------- */

static void test_ids(void **state)
{
	struct vfurt_dev *dev = *state;
	struct vfurt_region_desc d = { .desc_size = sizeof(d) };
	uint32_t cap;

	assert_int_equal(vfurt_dev_get_region(dev, CFG, &d), 0);
	assert_int_equal(d.size, 256);
	assert_int_equal(rd(dev, CFG, 0x00, 2), 0x494f);
	assert_int_equal(rd(dev, CFG, 0x02, 2), 0x0dc8);
	assert_int_equal(rd(dev, CFG, 0x08, 4), 0xff000000); /* class ff0000, rev 0 */
	assert_int_equal(rd(dev, CFG, 0x0e, 1), 0);
	assert_int_equal(rd(dev, CFG, 0x3d, 1), 1);          /* INTA */
	du_wr(dev, CFG, 0x00, 4, 0);
	assert_int_equal(rd(dev, CFG, 0x00, 4), 0x0dc8494f);
	/* PM capability */
	assert_true(rd(dev, CFG, 0x06, 2) & 0x10);
	cap = rd(dev, CFG, 0x34, 1);
	assert_int_equal(rd(dev, CFG, cap, 1), 0x01);
	assert_int_equal(rd(dev, CFG, cap + 1, 1), 0);
	assert_int_equal(vfurt_dev_irq_count(dev, VFURT_IRQ_INTX), 1);
	assert_non_null(vfurt_dev_pci(dev));
}

static void test_bar2_kind(void **state)
{
	struct vfurt_dev *dev = *state;
	struct vfurt_region_desc d = { .desc_size = sizeof(d) };

	assert_int_equal(vfurt_dev_get_region(dev, BAR2, &d), 0);
	assert_int_equal(d.size, 256);
	assert_true(d.flags & VFURT_REGION_IO);
	assert_int_equal(d.flags & VFURT_REGION_RW, VFURT_REGION_RW);
	assert_int_equal(rd(dev, CFG, 0x18, 4), 0x1);
	du_wr(dev, CFG, 0x18, 4, 0xffffffff);
	assert_int_equal(rd(dev, CFG, 0x18, 4), 0xffffff01);
	for (uint32_t bar = 0; bar < 6; bar++) {
		if (bar == 2)
			continue;
		du_wr(dev, CFG, 0x10 + 4 * bar, 4, 0xffffffff);
		assert_int_equal(rd(dev, CFG, 0x10 + 4 * bar, 4), 0);
	}
}

static void test_toggle_sequence(void **state)
{
	struct vfurt_dev *dev = *state;
	const uint8_t want[] = { 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0xff };

	for (size_t i = 0; i < sizeof(want); i++)
		assert_int_equal(rd(dev, BAR2, IN0_7, 1), want[i]);
	/* in8_15 counts its own reads */
	for (size_t i = 0; i < sizeof(want); i++)
		assert_int_equal(rd(dev, BAR2, IN8_15, 1), want[i]);
	/* outputs and other registers do not advance the inputs */
	(void)rd(dev, BAR2, OUT0_7, 1);
	(void)rd(dev, BAR2, IRQ_STATUS, 1);
	assert_int_equal(rd(dev, BAR2, IN0_7, 1), 0xff);
	assert_int_equal(rd(dev, BAR2, IN0_7, 1), 0xff);
	assert_int_equal(rd(dev, BAR2, IN0_7, 1), 0x00);
}

static void test_toggle_period(void **state)
{
	struct vfurt_dev *dev = new_gpio(1);

	assert_int_equal(rd(dev, BAR2, IN0_7, 1), 0x00);
	assert_int_equal(rd(dev, BAR2, IN0_7, 1), 0xff);
	assert_int_equal(rd(dev, BAR2, IN0_7, 1), 0x00);
	/* a wide read covering both inputs advances each once */
	assert_int_equal(rd(dev, BAR2, 0, 4) & 0xff00, 0xff00);
	assert_int_equal(rd(dev, BAR2, 4, 2), 0x0000);
	assert_int_equal(rd(dev, BAR2, 4, 2), 0xff00);
	vfurt_dev_destroy(dev);
}

static void test_outputs(void **state)
{
	struct vfurt_dev *dev = *state;

	du_wr(dev, BAR2, OUT0_7, 1, 0xa5);
	du_wr(dev, BAR2, OUT8_15, 1, 0x5a);
	assert_int_equal(rd(dev, BAR2, OUT0_7, 1), 0xa5);
	assert_int_equal(rd(dev, BAR2, OUT8_15, 1), 0x5a);
	/* a straddling write: filter_ctl + out8_15 */
	du_wr(dev, BAR2, FILTER_CTL, 2, 0x3c01);
	assert_int_equal(rd(dev, BAR2, FILTER_CTL, 1), 0x01);
	assert_int_equal(rd(dev, BAR2, OUT8_15, 1), 0x3c);
	/* inputs ignore writes of their value */
	du_wr(dev, BAR2, IN8_15, 1, 0xff);
	assert_int_equal(rd(dev, BAR2, IN8_15, 1), 0x00);
	/* the rest of the BAR reads 0 and ignores writes */
	du_wr(dev, BAR2, 7, 1, 0xff);
	du_wr(dev, BAR2, 0xfc, 4, 0xffffffff);
	assert_int_equal(rd(dev, BAR2, 7, 1), 0);
	assert_int_equal(rd(dev, BAR2, 0xfc, 4), 0);
	assert_int_equal(rd(dev, BAR2, 0x80, 4), 0);
}

static void test_out_of_range(void **state)
{
	struct vfurt_dev *dev = *state;
	uint8_t b[4] = { 0 };

	assert_int_equal(du_region_io(dev, BAR2, b, 1, 256, false), -EINVAL);
	assert_int_equal(du_region_io(dev, BAR2, b, 4, 254, true), -EINVAL);
	assert_int_equal(du_region_io(dev, BAR2, b, 1, UINT64_MAX, false), -EINVAL);
	assert_int_equal(du_region_io(dev, BAR2, NULL, 1, 0, false), -EINVAL);
}

static void test_irq(void **state)
{
	struct vfurt_dev *dev = *state;
	int efd = attach_intx_efd(dev);

	/* Interrupts start disabled: a change sets nothing. */
	for (int i = 0; i < 4; i++)
		(void)rd(dev, BAR2, IN0_7, 1);
	assert_int_equal(rd(dev, BAR2, IRQ_STATUS, 1), 0);
	assert_int_equal(efd_count(efd), 0);

	/* Reading irq_ctl enables (Linux unmask path). */
	assert_int_equal(rd(dev, BAR2, IRQ_CTL, 1), 1);
	(void)rd(dev, BAR2, IN0_7, 1);                    /* read 5: 0xff, no change */
	(void)rd(dev, BAR2, IN0_7, 1);                    /* read 6: 0xff */
	assert_int_equal(efd_count(efd), 0);
	assert_int_equal(rd(dev, BAR2, IN0_7, 1), 0x00);  /* read 7: change */
	assert_int_equal(rd(dev, BAR2, IRQ_STATUS, 1), 0x05);
	assert_int_equal(efd_count(efd), 1);

	/* More changes while asserted latch the bank but do not re-raise. */
	for (int i = 0; i < 3; i++)
		(void)rd(dev, BAR2, IN8_15, 1);
	assert_int_equal(rd(dev, BAR2, IN8_15, 1), 0xff);
	assert_int_equal(rd(dev, BAR2, IRQ_STATUS, 1), 0x07);
	assert_int_equal(efd_count(efd), 0);

	/* Linux acknowledges by writing in0_7. */
	du_wr(dev, BAR2, IN0_7, 1, 0);
	assert_int_equal(rd(dev, BAR2, IRQ_STATUS, 1), 0);
	unmask_intx(dev);
	for (int i = 0; i < 3; i++)
		(void)rd(dev, BAR2, IN0_7, 1);
	assert_int_equal(rd(dev, BAR2, IRQ_STATUS, 1), 0x05);
	assert_int_equal(efd_count(efd), 1);

	/* Writing irq_status clears too. */
	du_wr(dev, BAR2, IRQ_STATUS, 1, 0xff);
	assert_int_equal(rd(dev, BAR2, IRQ_STATUS, 1), 0);

	/* Writing irq_ctl disables. */
	du_wr(dev, BAR2, IRQ_CTL, 1, 0);
	unmask_intx(dev);
	for (int i = 0; i < 6; i++)
		(void)rd(dev, BAR2, IN0_7, 1);
	assert_int_equal(rd(dev, BAR2, IRQ_STATUS, 1), 0);
	assert_int_equal(efd_count(efd), 0);
	close(efd);
}

static void test_irq_without_eventfd(void **state)
{
	struct vfurt_dev *dev = *state;

	(void)rd(dev, BAR2, IRQ_CTL, 1);
	for (int i = 0; i < 4; i++)
		(void)rd(dev, BAR2, IN0_7, 1);
	assert_int_equal(rd(dev, BAR2, IRQ_STATUS, 1), 0x05);
	assert_true(vfurt_irq_pending(dev, VFURT_IRQ_INTX, 0));
}

static void test_reset(void **state)
{
	struct vfurt_dev *dev = *state;

	du_wr(dev, BAR2, OUT0_7, 1, 0x11);
	du_wr(dev, BAR2, OUT8_15, 1, 0x22);
	du_wr(dev, BAR2, FILTER_CTL, 1, 0x33);
	du_wr(dev, CFG, 0x04, 2, 0x0001);
	(void)rd(dev, BAR2, IRQ_CTL, 1);
	for (int i = 0; i < 4; i++)
		(void)rd(dev, BAR2, IN0_7, 1);
	assert_int_equal(rd(dev, BAR2, IRQ_STATUS, 1), 0x05);

	/* A lost client keeps the card's state. */
	assert_int_equal(vfr_dev_do_reset(dev, VFURT_RESET_LOST_CONN), 0);
	assert_int_equal(rd(dev, BAR2, OUT0_7, 1), 0x11);

	assert_int_equal(vfr_dev_do_reset(dev, VFURT_RESET_CLIENT), 0);
	assert_int_equal(rd(dev, BAR2, OUT0_7, 1), 0);
	assert_int_equal(rd(dev, BAR2, OUT8_15, 1), 0);
	assert_int_equal(rd(dev, BAR2, FILTER_CTL, 1), 0);
	assert_int_equal(rd(dev, BAR2, IRQ_STATUS, 1), 0);
	assert_int_equal(rd(dev, CFG, 0x04, 2), 0);
	/* the input sequence restarts and interrupts are off */
	for (int i = 0; i < 3; i++)
		assert_int_equal(rd(dev, BAR2, IN0_7, 1), 0x00);
	assert_int_equal(rd(dev, BAR2, IN0_7, 1), 0xff);
	assert_int_equal(rd(dev, BAR2, IRQ_STATUS, 1), 0);
}

static void test_create_errors(void **state)
{
	struct vfurt_gpio_opts o = { 0 };

	errno = 0;
	assert_null(vfurt_gpio_create(NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(vfurt_gpio_create(&o));
	assert_int_equal(errno, EINVAL);
	/* shorter than the first version (include/vfurt/abi.h) */
	o.opts_size = offsetof(struct vfurt_gpio_opts, toggle_period);
	errno = 0;
	assert_null(vfurt_gpio_create(&o));
	assert_int_equal(errno, EINVAL);
	/* a newer caller's larger struct: zero tail accepted, defaults apply */
	{
		struct {
			struct vfurt_gpio_opts o;
			uint32_t newer;
		} big = { .o = { .opts_size = sizeof(big) } };
		struct vfurt_dev *dev = vfurt_gpio_create(&big.o);

		assert_non_null(dev);
		assert_string_equal(vfurt_dev_name(dev), "gpio");
		assert_int_equal(rd(dev, BAR2, IN0_7, 1), 0);
		assert_int_equal(rd(dev, BAR2, IN0_7, 1), 0);  /* period 3 */
		vfurt_dev_destroy(dev);
		big.newer = 1;
		errno = 0;
		assert_null(vfurt_gpio_create(&big.o));
		assert_int_equal(errno, EINVAL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar2_kind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_toggle_sequence, setup, teardown),
		cmocka_unit_test(test_toggle_period),
		cmocka_unit_test_setup_teardown(test_outputs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irq_without_eventfd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
		cmocka_unit_test(test_create_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
