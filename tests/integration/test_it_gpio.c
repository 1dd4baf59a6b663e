/* Integration: the PCI-IDIO-16 GPIO device served over a real socket. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/gpio.h>
#include <vfurt/pci.h>
#include <vfurt/state.h>

#include "common/it_util.h"
#include "common/testsrv.h"

#include <vfurt/engine.h>

#define BAR2 VFURT_REGION_BAR2
#define OUT0_7 0u
#define IN0_7 1u
#define IRQ_CTL 2u
#define FILTER_CTL 3u
#define OUT8_15 4u
#define IN8_15 5u
#define IRQ_STATUS 6u

struct gx {
	struct testsrv *ts;
	struct vfurt_dev *dev;
	struct vfurt_client *c;
	int base_fds;
};

static int setup(void **state)
{
	struct vfurt_gpio_opts o = { .opts_size = sizeof(o), .name = "it-gpio" };
	struct gx *x = calloc(1, sizeof(*x));
	struct vfurt_dev *dev;

	*state = x;
	if (!x)
		return -1;
	dev = vfurt_gpio_create(&o);
	if (!dev)
		return -1;
	x->dev = dev;
	x->ts = testsrv_start(&dev, 1, NULL);
	if (!x->ts)
		return -1;
	x->base_fds = test_count_fds();
	x->c = it_connect(testsrv_path(x->ts, 0), 0);
	return x->c ? 0 : -1;
}

static int teardown(void **state)
{
	struct gx *x = *state;
	int rc = 0;

	if (!x)
		return 0;
	vfurt_client_close(x->c);
	if (it_check_fds(x->base_fds))
		rc = -1;
	testsrv_stop(x->ts);
	free(x);
	return rc;
}

static uint8_t rd8(struct vfurt_client *c, uint64_t off)
{
	uint8_t v = 0xee;

	assert_int_equal(vfurt_client_region_read(c, BAR2, off, &v, 1), 0);
	return v;
}

static void wr8(struct vfurt_client *c, uint64_t off, uint8_t v)
{
	assert_int_equal(vfurt_client_region_write(c, BAR2, off, &v, 1), 0);
}

static void test_gpio_identity(void **state)
{
	struct gx *x = *state;
	struct vfio_user_device_info info;
	struct vfurt_client_region_info ri;
	struct vfio_irq_info ii;
	uint8_t cfg[64];
	uint32_t class_rev, bar2;

	assert_int_equal(vfurt_client_device_info(x->c, &info), 0);
	assert_int_equal(info.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
	assert_int_equal(vfurt_client_region_info(x->c, BAR2, &ri), 0);
	assert_int_equal(ri.size, 256);
	assert_int_equal(ri.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
	assert_int_equal(ri.fd, -1);
	vfurt_client_region_info_release(&ri);
	assert_int_equal(vfurt_client_region_info(x->c, VFURT_REGION_CONFIG, &ri), 0);
	assert_int_equal(ri.size, VFURT_PCI_CFG_SIZE);
	vfurt_client_region_info_release(&ri);
	for (uint32_t bar = VFURT_REGION_BAR0; bar <= VFURT_REGION_BAR5; bar++) {
		if (bar == BAR2)
			continue;
		assert_int_equal(vfurt_client_region_info(x->c, bar, &ri), 0);
		assert_int_equal(ri.size, 0);
		vfurt_client_region_info_release(&ri);
	}
	assert_int_equal(vfurt_client_irq_info(x->c, VFURT_IRQ_INTX, &ii), 0);
	assert_int_equal(ii.count, 1);

	assert_int_equal(vfurt_client_region_read(x->c, VFURT_REGION_CONFIG, 0, cfg, sizeof(cfg)),
			 0);
	assert_int_equal(cfg[0] | cfg[1] << 8, 0x494f);
	assert_int_equal(cfg[2] | cfg[3] << 8, 0x0dc8);
	memcpy(&class_rev, cfg + 8, 4);
	assert_int_equal(class_rev, 0xff000000u);
	memcpy(&bar2, cfg + 0x18, 4);
	assert_int_equal(bar2 & 1, 1); /* I/O BAR */
	assert_int_equal(cfg[0x3d], 1); /* INTA */
	assert_true(it_cfg_find_cap(x->c, 0x01) > 0); /* power management */
}

static void test_gpio_outputs(void **state)
{
	struct gx *x = *state;
	uint8_t all[8];

	wr8(x->c, OUT0_7, 0xa5);
	wr8(x->c, OUT8_15, 0x5a);
	wr8(x->c, FILTER_CTL, 0x33);
	assert_int_equal(rd8(x->c, OUT0_7), 0xa5);
	assert_int_equal(rd8(x->c, OUT8_15), 0x5a);
	assert_int_equal(rd8(x->c, FILTER_CTL), 0x33);
	/* inputs are read-only */
	wr8(x->c, IN8_15, 0xff);
	assert_int_equal(rd8(x->c, IN8_15), 0x00);
	/* unused registers read 0 and ignore writes */
	wr8(x->c, 0x80, 0x77);
	assert_int_equal(rd8(x->c, 0x80), 0);
	/* a multi-byte access works register by register */
	assert_int_equal(vfurt_client_region_read(x->c, BAR2, 0, all, sizeof(all)), 0);
	assert_int_equal(all[OUT0_7], 0xa5);
	assert_int_equal(all[OUT8_15], 0x5a);
	assert_int_equal(all[FILTER_CTL], 0x33);
	assert_int_equal(all[7], 0);
}

static void test_gpio_inputs_toggle(void **state)
{
	static const uint8_t want[9] = { 0, 0, 0, 0xff, 0xff, 0xff, 0, 0, 0 };
	struct gx *x = *state;

	for (size_t i = 0; i < 9; i++)
		assert_int_equal(rd8(x->c, IN0_7), want[i]);
	/* the other input register follows its own count */
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(rd8(x->c, IN8_15), want[i]);
}

static void test_gpio_intx(void **state)
{
	struct gx *x = *state;
	int efd = it_eventfd();

	assert_true(efd >= 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(x->c, VFURT_IRQ_INTX, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	/* changes with the interrupt disabled raise nothing */
	for (int i = 0; i < 3; i++)
		(void)rd8(x->c, IN0_7);
	assert_int_equal(rd8(x->c, IN0_7), 0xff);
	assert_false(it_readable(efd, 0));
	assert_int_equal(rd8(x->c, IRQ_STATUS), 0);

	assert_int_equal(rd8(x->c, IRQ_CTL), 1); /* enables the interrupt */
	(void)rd8(x->c, IN0_7);
	(void)rd8(x->c, IN0_7);
	assert_false(it_readable(efd, 0));
	assert_int_equal(rd8(x->c, IN0_7), 0x00); /* 7th read: 0xff -> 0x00 */
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(efd), 1);
	assert_int_equal(rd8(x->c, IRQ_STATUS), 0x05);

	/* acknowledge by writing in0_7; the next change is automasked INTx */
	wr8(x->c, IN0_7, 0);
	assert_int_equal(rd8(x->c, IRQ_STATUS), 0);
	for (int i = 0; i < 3; i++)
		(void)rd8(x->c, IN8_15);
	assert_int_equal(rd8(x->c, IN8_15), 0xff);
	assert_int_equal(rd8(x->c, IRQ_STATUS), 0x06);
	assert_false(it_readable(efd, 0));
	assert_int_equal(vfurt_client_set_irqs(x->c, VFURT_IRQ_INTX, 0, 1,
					       VFIO_IRQ_SET_ACTION_UNMASK, NULL), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));

	/* disabling by a write to irq_ctl */
	wr8(x->c, IRQ_STATUS, 0);
	wr8(x->c, IRQ_CTL, 0);
	for (int i = 0; i < 6; i++)
		(void)rd8(x->c, IN0_7);
	assert_int_equal(rd8(x->c, IRQ_STATUS), 0);
	close(efd);
}

/*
 * ERR and REQ as the kernel's vfio-pci reports them for a conventional PCI
 * function: no ERR vector (no PCIe capability), one REQ vector that takes
 * an eventfd, which the device may signal later.
 */
static void test_gpio_err_req_irqs(void **state)
{
	struct gx *x = *state;
	struct vfio_irq_info ii;
	int efd = it_eventfd();

	assert_true(efd >= 0);
	assert_int_equal(vfurt_client_irq_info(x->c, VFURT_IRQ_ERR, &ii), 0);
	assert_int_equal(ii.count, 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(x->c, VFURT_IRQ_ERR, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), -EINVAL);
	assert_int_equal(vfurt_client_irq_info(x->c, VFURT_IRQ_REQ, &ii), 0);
	assert_int_equal(ii.count, 1);
	assert_int_equal(ii.flags, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
	assert_int_equal(vfurt_client_set_irqs_eventfd(x->c, VFURT_IRQ_REQ, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_true(vfurt_irq_enabled(x->dev, VFURT_IRQ_REQ, 0));
	/* REQ is not maskable */
	assert_int_equal(vfurt_client_set_irqs(x->c, VFURT_IRQ_REQ, 0, 1,
					       VFIO_IRQ_SET_ACTION_MASK, NULL), -EINVAL);
	/* the device asks for its release (triggers are safe from any thread) */
	assert_int_equal(vfurt_irq_trigger(x->dev, VFURT_IRQ_REQ, 0), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(efd), 1);
	close(efd); /* the server's copy goes with the connection (teardown checks) */
}

static void test_gpio_reset_and_reconnect(void **state)
{
	struct gx *x = *state;
	struct vfurt_client_opts o = it_opts(0);

	wr8(x->c, OUT0_7, 0x81);
	for (int i = 0; i < 4; i++)
		(void)rd8(x->c, IN0_7);
	/* a client going away keeps the card's state */
	vfurt_client_close(x->c);
	x->c = it_connect_retry(testsrv_path(x->ts, 0), &o);
	assert_non_null(x->c);
	assert_int_equal(rd8(x->c, OUT0_7), 0x81);
	assert_int_equal(rd8(x->c, IN0_7), 0xff); /* 5th read */

	/* DEVICE_RESET returns to power-on values, input counters included */
	assert_int_equal(vfurt_client_reset(x->c), 0);
	assert_int_equal(rd8(x->c, OUT0_7), 0);
	assert_int_equal(rd8(x->c, IN0_7), 0);
	assert_int_equal(rd8(x->c, IRQ_STATUS), 0);
}

/* ---- live upgrade: the card's state carried to a new device ------------- */

/* The test's image: one section holding the device, as a daemon's has. */
#define TAG_DEV 1u

struct gsave {
	struct vfurt_dev *dev;
	struct vfurt_state *s;
	int err;
};

/* On the server thread: freeze, then save the device (regions, irq state,
 * PCI config space, the model) as the engine does for an upgrade. */
static void gpio_save_fn(void *arg)
{
	struct gsave *x = arg;
	int err;

	x->s = vfurt_state_create();
	err = x->s ? vfurt_dev_freeze(x->dev) : -ENOMEM;
	if (!err)
		err = vfurt_state_open(x->s, TAG_DEV);
	if (!err)
		err = vfurt_dev_save(x->dev, x->s);
	if (!err)
		err = vfurt_state_close(x->s);
	x->err = err;
}

/* An upgrade that failed: the old card goes on. */
static void gpio_thaw_fn(void *arg)
{
	vfurt_dev_thaw(arg);
}

static void test_gpio_restart(void **state)
{
	struct vfurt_gpio_opts o = { .opts_size = sizeof(o), .name = "it-gpio-new" };
	struct gx *x = *state;
	struct gsave sv = { .dev = x->dev };
	struct vfurt_state_cur root, sec;
	struct vfurt_client *c2;
	struct vfurt_dev *b;
	struct testsrv *ts2;
	uint32_t v32;
	int efd = it_eventfd();

	assert_true(efd >= 0);
	wr8(x->c, OUT0_7, 0x81);
	wr8(x->c, OUT8_15, 0x18);
	wr8(x->c, FILTER_CTL, 0x07);
	v32 = 0xc000;
	assert_int_equal(vfurt_client_region_write(x->c, VFURT_REGION_CONFIG, 0x18, &v32, 4), 0);
	v32 = 0x0001;
	assert_int_equal(vfurt_client_region_write(x->c, VFURT_REGION_CONFIG, 0x04, &v32, 2), 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(x->c, VFURT_IRQ_INTX, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(rd8(x->c, IRQ_CTL), 1);
	for (int i = 0; i < 4; i++)
		(void)rd8(x->c, IN0_7);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(efd), 1);
	(void)rd8(x->c, IN8_15);
	(void)rd8(x->c, IN8_15);

	testsrv_call(x->ts, gpio_save_fn, &sv);
	assert_int_equal(sv.err, 0);
	/* frozen, the old card still answers (other devices may not be frozen
	 * yet); a failed upgrade thaws it and it goes on */
	assert_int_equal(rd8(x->c, OUT0_7), 0x81);
	testsrv_call(x->ts, gpio_thaw_fn, x->dev);
	assert_int_equal(rd8(x->c, OUT8_15), 0x18);

	/* the new process: the same card from the same options, restored */
	b = vfurt_gpio_create(&o);
	assert_non_null(b);
	assert_int_equal(vfurt_state_root(sv.s, &root), 0);
	assert_int_equal(vfurt_state_sub(&root, TAG_DEV, &sec), 0);
	assert_int_equal(vfurt_dev_restore(b, &sec), 0);
	vfurt_state_destroy(sv.s);
	vfurt_dev_thaw(b);
	/* INTx is asserted and automasked (delivered, not yet unmasked): the
	 * thaw's re-raise waits as pending */
	assert_true(vfurt_irq_pending(b, VFURT_IRQ_INTX, 0));
	ts2 = testsrv_start(&b, 1, NULL);
	assert_non_null(ts2);
	c2 = it_connect(testsrv_path(ts2, 0), 0);
	assert_non_null(c2);

	assert_int_equal(rd8(c2, OUT0_7), 0x81);
	assert_int_equal(rd8(c2, OUT8_15), 0x18);
	assert_int_equal(rd8(c2, FILTER_CTL), 0x07);
	assert_int_equal(rd8(c2, IRQ_STATUS), 0x05);
	assert_int_equal(rd8(c2, IN0_7), 0xff); /* 5th read */
	assert_int_equal(rd8(c2, IN0_7), 0xff);
	assert_int_equal(rd8(c2, IN0_7), 0x00); /* 7th */
	assert_int_equal(rd8(c2, IN8_15), 0x00); /* 3rd */
	assert_int_equal(rd8(c2, IN8_15), 0xff);
	assert_int_equal(vfurt_client_region_read(c2, VFURT_REGION_CONFIG, 0x18, &v32, 4), 0);
	assert_int_equal(v32, 0xc001);
	v32 = 0;
	assert_int_equal(vfurt_client_region_read(c2, VFURT_REGION_CONFIG, 0x04, &v32, 2), 0);
	assert_int_equal(v32, 0x0001);

	vfurt_client_close(c2);
	testsrv_stop(ts2);
	close(efd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gpio_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpio_outputs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpio_inputs_toggle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpio_intx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpio_err_req_irqs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpio_reset_and_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpio_restart, setup, teardown),
	};

	return cmocka_run_group_tests_name("integration: gpio", tests, NULL, NULL);
}
