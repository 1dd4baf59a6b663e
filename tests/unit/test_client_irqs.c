/* Unit tests of the client library: SET_IRQS with eventfds, split by the fd limit. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <cmocka.h>

#include <vfurt/client.h>

#include "common/fake_srv.h"
#include "common/testsrv.h"

static void fk_irqs(struct fake *f)
{
	static const uint32_t starts[3] = { 0, 4, 8 }, counts[3] = { 4, 4, 2 };
	struct vfio_irq_set is;

	FK_CHECK(f, fk_version(f));
	for (int m = 0; m < 3; m++) {
		FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_SET_IRQS) && f->len == 20);
		memcpy(&is, f->pl, sizeof(is));
		FK_CHECK(f, is.flags == (VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER));
		FK_CHECK(f, is.index == VFIO_PCI_MSIX_IRQ_INDEX && is.argsz == 20);
		FK_CHECK(f, is.start == starts[m] && is.count == counts[m]);
		FK_CHECK(f, f->nfds == counts[m]);
		/* Signal each vector's eventfd with its number + 1. */
		for (uint32_t i = 0; i < is.count; i++) {
			uint64_t v = is.start + i + 1;

			FK_CHECK(f, write(f->fds[i], &v, sizeof(v)) == sizeof(v));
		}
		FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
	}
	/* DATA_BOOL mask of 3 vectors. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_SET_IRQS) && f->len == 23 && f->nfds == 0);
	memcpy(&is, f->pl, sizeof(is));
	FK_CHECK(f, is.flags == (VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK));
	FK_CHECK(f, is.argsz == 23 && f->pl[20] == 1 && f->pl[21] == 0 && f->pl[22] == 1);
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
	/* DATA_NONE disable-all. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_SET_IRQS) && f->len == 20);
	memcpy(&is, f->pl, sizeof(is));
	FK_CHECK(f, is.flags == (VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER));
	FK_CHECK(f, is.count == 0);
	FK_CHECK(f, fk_error(f, EINVAL) == 0);
	/* De-assign without fds. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_SET_IRQS) && f->nfds == 0);
	memcpy(&is, f->pl, sizeof(is));
	FK_CHECK(f, is.flags == (VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER));
	FK_CHECK(f, is.count == 10);
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
	/* irq info */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_IRQ_INFO));
	{
		struct vfio_irq_info ii;

		memcpy(&ii, f->pl, sizeof(ii));
		FK_CHECK(f, ii.argsz == 16 && ii.index == VFIO_PCI_MSIX_IRQ_INDEX);
		ii.count = 10;
		ii.flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
		FK_CHECK(f, fk_reply(f, &ii, sizeof(ii), NULL, 0) == 0);
	}
}

static void test_set_irqs(void **state)
{
	static const uint8_t bools[3] = { 1, 0, 1 };
	struct vfio_irq_info ii;
	struct vfurt_client *c;
	struct fake f;
	int efd[10];

	for (int i = 0; i < 10; i++) {
		efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		assert_true(efd[i] >= 0);
	}
	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_msg_fds\":4}}";
	c = fake_start(&f, fk_irqs, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFIO_PCI_MSIX_IRQ_INDEX, 0, 10, efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	/* The fake got our eventfds, not copies of something else. */
	for (int i = 0; i < 10; i++) {
		uint64_t v = 0;

		assert_int_equal(vfurt_client_wait_eventfd(c, efd[i], 1000, &v), 0);
		assert_int_equal(v, (uint64_t)i + 1);
	}
	assert_int_equal(vfurt_client_wait_eventfd(NULL, efd[0], 10, NULL), -ETIMEDOUT);
	assert_int_equal(vfurt_client_set_irqs(c, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3,
					       VFIO_IRQ_SET_ACTION_MASK, bools), 0);
	assert_int_equal(vfurt_client_set_irqs(c, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0,
					       VFIO_IRQ_SET_ACTION_TRIGGER, NULL), -EINVAL);
	assert_int_equal(vfurt_client_set_irqs(c, 0, 0, 1, VFIO_IRQ_SET_ACTION_MASK |
					       VFIO_IRQ_SET_ACTION_UNMASK, NULL), -EINVAL);
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFIO_PCI_MSIX_IRQ_INDEX, 0, 10, NULL,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(vfurt_client_irq_info(c, VFIO_PCI_MSIX_IRQ_INDEX, &ii), 0);
	assert_int_equal(ii.count, 10);
	assert_true(ii.flags & VFIO_IRQ_INFO_NORESIZE);
	vfurt_client_close(c);
	fake_finish(&f);
	for (int i = 0; i < 10; i++)
		close(efd[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fake_fds_setup, fake_fds_teardown)
		T(test_set_irqs),
#undef T
	};

	return cmocka_run_group_tests_name("unit: client interrupts", tests, NULL, NULL);
}
