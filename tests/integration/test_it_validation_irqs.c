/* Integration: validation of SET_IRQS: index, range, action, data type, fds. */
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

#include "common/fixture.h"
#include "common/it_util.h"
#include "common/testsrv.h"
#include "common/val_fx.h"

static int set_irqs(struct vfurt_client *c, uint32_t flags, uint32_t index, uint32_t start,
		    uint32_t count, const uint8_t *data, size_t dlen, const int *fds, size_t nfds)
{
	uint8_t p[sizeof(struct vfio_irq_set) + 64];
	struct vfio_irq_set s = { .argsz = (uint32_t)(sizeof(s) + dlen), .flags = flags,
				  .index = index, .start = start, .count = count };

	assert_true(dlen <= 64);
	memcpy(p, &s, sizeof(s));
	if (dlen)
		memcpy(p + sizeof(s), data, dlen);
	return val_req(c, VFIO_USER_DEVICE_SET_IRQS, p, sizeof(s) + dlen, fds, nfds);
}

#define EVT (VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER)

static void test_set_irqs_invalid(void **state)
{
	struct it_fx *x = *state;
	const uint8_t b[4] = { 1, 1, 1, 1 }, two = 2;
	int n0 = test_count_fds();
	int efd[17];
	int n1;

	for (int i = 0; i < 17; i++)
		assert_true((efd[i] = it_eventfd()) >= 0);
	n1 = test_count_fds();
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_NUM, 0, 1, NULL, 0, efd, 1), -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT, 0xffffffffu, 0, 1, NULL, 0, efd, 1), -EINVAL);
	/* exactly one action and one data type */
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK |
				  VFIO_IRQ_SET_ACTION_UNMASK, VFURT_IRQ_MSIX, 0, 1, NULL, 0,
				  NULL, 0), -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL |
				  VFIO_IRQ_SET_ACTION_MASK, VFURT_IRQ_MSIX, 0, 1, b, 1, NULL, 0),
			 -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_ACTION_MASK, VFURT_IRQ_MSIX, 0, 1, NULL, 0,
				  NULL, 0), -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE, VFURT_IRQ_MSIX, 0, 1, NULL, 0,
				  NULL, 0), -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT | (1u << 10), VFURT_IRQ_MSIX, 0, 1, NULL, 0, efd, 1),
			 -EINVAL);
	/* vectors beyond the index */
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, 7, 2, NULL, 0, efd, 2), -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, TD_MSIX_VECTORS, 1, NULL, 0, efd, 1),
			 -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, 1, 0xffffffffu, NULL, 0, NULL, 0),
			 -EINVAL);
	/* count 0 is only "disable the index" */
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				  VFURT_IRQ_MSIX, 0, 0, NULL, 0, NULL, 0), -EINVAL);
	/* BOOL data shorter than count, or not 0/1 */
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK,
				  VFURT_IRQ_MSIX, 0, 4, b, 2, NULL, 0), -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK,
				  VFURT_IRQ_MSIX, 0, 1, &two, 1, NULL, 0), -EINVAL);
	/* eventfd count differs from count; fds with DATA_NONE / DATA_BOOL */
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, 0, 2, NULL, 0, efd, 1), -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, 0, 1, NULL, 0, efd, 2), -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
				  VFURT_IRQ_MSIX, 0, 1, NULL, 0, efd, 1), -EINVAL);
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
				  VFURT_IRQ_MSIX, 0, 1, b, 1, efd, 1), -EINVAL);
	/* masking an index that is not maskable */
	assert_int_equal(set_irqs(x->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				  VFURT_IRQ_ERR, 0, 1, NULL, 0, NULL, 0), -EINVAL);
	/* more fds than the server's max_msg_fds (16) */
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_MSIX, 0, 8, NULL, 0, efd, 17), -EINVAL);
	/* every fd the server received was closed again */
	assert_int_equal(test_count_fds(), n1);
	assert_int_equal(atomic_load(&x->st[0]->irq_state), 0);

	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_ERR, 0, 2, NULL, 0, efd, 2), -EINVAL);
	assert_int_equal(set_irqs(x->c, EVT, VFURT_IRQ_ERR, 0, 1, NULL, 0, efd, 2), -EINVAL);
	assert_int_equal(test_count_fds(), n1);
	/* nothing got attached: a trigger has no eventfd to fire */
	assert_int_equal(it_irq_fire(x->c, VFURT_IRQ_ERR, 0), -ENOENT);
	for (int i = 0; i < 17; i++)
		close(efd[i]);
	assert_int_equal(test_count_fds(), n0);
	assert_true(it_alive(x->c));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, val_setup, it_fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_set_irqs_invalid),
#undef T
	};

	return cmocka_run_group_tests_name("validation: SET_IRQS", tests, NULL, NULL);
}
