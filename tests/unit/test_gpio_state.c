/* Unit tests for the PCI-IDIO-16's restart ops: freeze, thaw, save, restore and bad images. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/dev_util.h"
#include "common/state_fx.h"

#include <vfurt/device.h>
#include <vfurt/gpio.h>
#include <vfurt/state.h>

#include "io/device_internal.h"

#define BAR2 VFURT_REGION_BAR2

enum { OUT0_7, IN0_7, IRQ_CTL, FILTER_CTL, OUT8_15, IN8_15, IRQ_STATUS };
/* the model's records (devices/gpio/idio16.c) */
enum { TAG_REGS = 1, TAG_READS = 2, TAG_PERIOD = 3 };

static struct vfurt_dev *new_gpio(uint32_t period)
{
	struct vfurt_gpio_opts o = { .opts_size = sizeof(o), .toggle_period = period };
	struct vfurt_dev *dev = vfurt_gpio_create(&o);

	assert_non_null(dev);
	assert_non_null(dev->ops.freeze);
	assert_non_null(dev->ops.thaw);
	assert_non_null(dev->ops.save);
	assert_non_null(dev->ops.restore);
	return dev;
}

static uint8_t rd(struct vfurt_dev *dev, uint64_t reg)
{
	return (uint8_t)du_rd(dev, BAR2, reg, 1);
}

static struct vfurt_state *save(struct vfurt_dev *dev)
{
	struct vfurt_state *s = vfurt_state_create();

	assert_non_null(s);
	assert_int_equal(dev->ops.freeze(dev, dev->arg), 0);
	assert_int_equal(dev->ops.save(dev, dev->arg, s), 0);
	return s;
}

static int restore(struct vfurt_dev *dev, struct vfurt_state *s)
{
	struct vfurt_state_cur root;

	assert_int_equal(vfurt_state_root(s, &root), 0);
	return dev->ops.restore(dev, dev->arg, &root);
}

static void thaw(struct vfurt_dev *dev)
{
	dev->ops.thaw(dev, dev->arg);
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

static void assert_same_image(struct vfurt_state *a, struct vfurt_state *b)
{
	struct vfurt_state_cur ra, rb;
	const void *va, *vb;
	uint32_t ta, tb;
	size_t la, lb;

	assert_int_equal(vfurt_state_root(a, &ra), 0);
	assert_int_equal(vfurt_state_root(b, &rb), 0);
	for (;;) {
		int ka = vfurt_state_next(&ra, &ta, &va, &la);
		int kb = vfurt_state_next(&rb, &tb, &vb, &lb);

		assert_int_equal(ka, kb);
		if (ka != 1)
			break;
		assert_int_equal(ta, tb);
		assert_int_equal(la, lb);
		assert_memory_equal(va, vb, la);
	}
}

/*
 * A card in use: outputs and filter set, the interrupt enabled and
 * asserted by a change of in0_7 (its 4th read), in0_7 read 5 times,
 * in8_15 twice.
 */
static void dirty(struct vfurt_dev *dev)
{
	du_wr(dev, BAR2, OUT0_7, 1, 0x81);
	du_wr(dev, BAR2, OUT8_15, 1, 0x42);
	du_wr(dev, BAR2, FILTER_CTL, 1, 0x33);
	assert_int_equal(rd(dev, IRQ_CTL), 1);
	for (int i = 0; i < 5; i++)
		(void)rd(dev, IN0_7);
	(void)rd(dev, IN8_15);
	(void)rd(dev, IN8_15);
}

/* ---- tests -------------------------------------------------------------- */

static void test_round_trip(void **state)
{
	(void)state;
	struct vfurt_dev *a = new_gpio(0), *b = new_gpio(0);
	struct vfurt_state *s, *s2;
	int efd;

	dirty(a);
	s = save(a);
	assert_int_equal(restore(b, s), 0);
	/* saved again, b says what a said */
	s2 = save(b);
	assert_same_image(s, s2);
	vfurt_state_destroy(s2);

	/* restore leaves the card frozen; thaw raises the asserted INTx */
	efd = du_attach_efd(b, VFURT_IRQ_INTX, 0);
	assert_int_equal(du_efd_count(efd), 0);
	thaw(b);
	assert_int_equal(du_efd_count(efd), 1);

	/* every register as a left it, and the inputs go on where a's were */
	assert_int_equal(rd(b, OUT0_7), 0x81);
	assert_int_equal(rd(b, OUT8_15), 0x42);
	assert_int_equal(rd(b, FILTER_CTL), 0x33);
	assert_int_equal(rd(b, IRQ_STATUS), 0x05);
	assert_int_equal(rd(b, IN0_7), 0xff); /* 6th read */
	assert_int_equal(rd(b, IN0_7), 0x00); /* 7th */
	/* the interrupt is still enabled: in8_15's change (4th read) latches */
	du_wr(b, BAR2, IRQ_STATUS, 1, 0);
	assert_int_equal(rd(b, IN8_15), 0x00); /* 3rd */
	assert_int_equal(rd(b, IRQ_STATUS), 0);
	assert_int_equal(rd(b, IN8_15), 0xff); /* 4th */
	assert_int_equal(rd(b, IRQ_STATUS), 0x06);

	close(efd);
	vfurt_state_destroy(s);
	vfurt_dev_destroy(a);
	vfurt_dev_destroy(b);
}

/* Frozen, a change latches in irq_status but raises nothing; thaw does. */
static void test_freeze_thaw(void **state)
{
	(void)state;
	struct vfurt_dev *dev = new_gpio(0);
	int efd = du_attach_efd(dev, VFURT_IRQ_INTX, 0);

	assert_int_equal(rd(dev, IRQ_CTL), 1);
	assert_int_equal(dev->ops.freeze(dev, dev->arg), 0);
	assert_int_equal(dev->ops.freeze(dev, dev->arg), 0); /* asked again: still 0 */
	for (int i = 0; i < 4; i++)
		(void)rd(dev, IN0_7);
	assert_int_equal(rd(dev, IRQ_STATUS), 0x05);
	assert_int_equal(du_efd_count(efd), 0);
	assert_false(vfurt_irq_pending(dev, VFURT_IRQ_INTX, 0));
	thaw(dev);
	assert_int_equal(du_efd_count(efd), 1);

	/* nothing asserted: a freeze and thaw raise nothing */
	du_wr(dev, BAR2, IN0_7, 1, 0);
	unmask_intx(dev);
	assert_int_equal(dev->ops.freeze(dev, dev->arg), 0);
	thaw(dev);
	assert_int_equal(du_efd_count(efd), 0);
	/* asserted, but the interrupt disabled since: nothing owed */
	for (int i = 0; i < 3; i++)
		(void)rd(dev, IN0_7);
	assert_int_equal(rd(dev, IRQ_STATUS), 0x05);
	assert_int_equal(du_efd_count(efd), 1);
	unmask_intx(dev);
	du_wr(dev, BAR2, IRQ_CTL, 1, 0);
	assert_int_equal(dev->ops.freeze(dev, dev->arg), 0);
	thaw(dev);
	assert_int_equal(du_efd_count(efd), 0);
	close(efd);
	vfurt_dev_destroy(dev);
}

/* No record: the card keeps its power-on state. */
static void test_empty_is_fresh(void **state)
{
	(void)state;
	struct vfurt_dev *a = new_gpio(0), *b = new_gpio(0);
	struct vfurt_state *empty = vfurt_state_create(), *sa, *sb;

	assert_non_null(empty);
	assert_int_equal(vfurt_state_put_u32(empty, 77, 1), 0); /* a newer writer's */
	assert_int_equal(restore(b, empty), 0);
	thaw(b);
	sa = save(a);
	sb = save(b);
	assert_same_image(sa, sb);
	assert_int_equal(rd(b, IN0_7), 0);
	vfurt_state_destroy(sa);
	vfurt_state_destroy(sb);
	vfurt_state_destroy(empty);
	vfurt_dev_destroy(a);
	vfurt_dev_destroy(b);
}

static void test_bad_images(void **state)
{
	(void)state;
	struct vfurt_dev *a = new_gpio(0), *b = new_gpio(0), *p5 = new_gpio(5);
	struct vfurt_state *s, *bad, *before, *after;
	uint8_t regs[8], r2[8], junk[24] = { 0 };
	uint64_t reads[2] = { 1, 2 };
	struct vfurt_state_cur root;

	dirty(a);
	s = save(a);
	assert_int_equal(vfurt_state_root(s, &root), 0);
	assert_int_equal(vfurt_state_get(&root, TAG_REGS, regs, sizeof(regs)), 0);
	du_wr(b, BAR2, OUT0_7, 1, 0x5a);
	before = save(b);

	struct {
		uint32_t tag;
		const void *val;
		size_t len;
		int at, val8, err;
	} cases[] = {
		{ TAG_REGS, regs, 7, -1, 0, -EBADMSG },    /* truncated */
		{ TAG_REGS, junk, 9, -1, 0, -EBADMSG },    /* too long */
		{ TAG_READS, junk, 8, -1, 0, -EBADMSG },   /* one counter */
		{ TAG_READS, junk, 24, -1, 0, -EBADMSG },
		{ TAG_PERIOD, junk, 8, -1, 0, -EBADMSG },  /* a u64 */
		{ TAG_REGS, r2, 8, 3, 0x08, -EBADMSG },    /* unknown irq_status bit */
		{ TAG_REGS, r2, 8, 4, 2, -EBADMSG },       /* irq enable not a bool */
		{ TAG_REGS, r2, 8, 7, 1, -EBADMSG },       /* reserved byte */
		{ TAG_REGS, r2, 8, 5, 0x00, -EBADMSG },    /* in0_7 not what read 5 gave */
		{ TAG_READS, reads, sizeof(reads), -1, 0, -EBADMSG }, /* counters vs values */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(r2, regs, sizeof(r2));
		if (cases[i].at >= 0)
			r2[cases[i].at] = (uint8_t)cases[i].val8;
		bad = stfx_remix(s, cases[i].tag, cases[i].val, cases[i].len);
		assert_int_equal(restore(b, bad), cases[i].err);
		vfurt_state_destroy(bad);
		after = save(b);
		assert_same_image(before, after);
		vfurt_state_destroy(after);
	}
	/* an image from a card with another toggle period */
	bad = save(p5);
	assert_int_equal(restore(b, bad), -EINVAL);
	vfurt_state_destroy(bad);
	after = save(b);
	assert_same_image(before, after);
	vfurt_state_destroy(after);
	/* the whole image still applies */
	assert_int_equal(restore(b, s), 0);
	thaw(b);
	assert_int_equal(rd(b, OUT0_7), 0x81);

	vfurt_state_destroy(before);
	vfurt_state_destroy(s);
	vfurt_dev_destroy(a);
	vfurt_dev_destroy(b);
	vfurt_dev_destroy(p5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_freeze_thaw),
		cmocka_unit_test(test_empty_is_fresh),
		cmocka_unit_test(test_bad_images),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
