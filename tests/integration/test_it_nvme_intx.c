/* NVMe INTx as QEMU drives it: a level that a SET_IRQS unmask (the guest's EOI) re-fires only while asserted. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/vfio.h>

#include <vfurt/bdev.h>
#include <vfurt/client.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "hostsim/nvme_host.h"

/* mode: -1 the caller-driven epoll server, else a runtime poll mode.
 * f->fd is the eventfd of the INTx trigger. */
static int setup_mode(void **state, int mode)
{
	struct nvme_fx *f = nvme_fx_new(state);
	struct vfurt_bdev *b = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "ns1", .block_size = 512,
		.size_bytes = 1u << 20 });
	struct vfurt_nvme_opts o = {
		.opts_size = sizeof(o),
		.name = "nvme-intx",
		.ns = &b,
		.nr_ns = 1,
		.own_bdevs = true,
	};
	struct vfurt_dev *dev;
	struct vfurt_client *c;
	uint16_t ctrl;
	int cap;

	assert_non_null(b);
	o.log = it_dev_log("nvme-intx");
	dev = vfurt_nvme_create(&o);
	nvme_fx_serve(f, &dev, 1, mode < 0 ? NULL : "0", mode);
	f->h = nvme_fx_host(f, 0, NULL);
	c = nh_client(f->h);
	/* a guest booted with pci=nomsi: MSI-X off, INTx wired to an eventfd */
	cap = it_cfg_find_cap(c, 0x11);
	assert_true(cap > 0);
	assert_int_equal(vfurt_client_region_read(c, VFURT_REGION_CONFIG, (uint64_t)cap + 2,
						  &ctrl, 2), 0);
	ctrl &= (uint16_t)~0x8000u;
	assert_int_equal(vfurt_client_region_write(c, VFURT_REGION_CONFIG, (uint64_t)cap + 2,
						   &ctrl, 2), 0);
	f->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(f->fd >= 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &f->fd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	return 0;
}

static int setup(void **state)
{
	return setup_mode(state, -1);
}

/* the runtime's io_uring host watches the unmask eventfd on its own */
static int setup_rt_adaptive(void **state)
{
	return setup_mode(state, VFURT_POLL_ADAPTIVE);
}

static int setup_rt_busy(void **state)
{
	return setup_mode(state, VFURT_POLL_BUSY);
}

/* Wait up to 5 s for the INTx eventfd; true when it fired (and drain it). */
static bool intx_fired_within(int efd, int timeout_ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	return read(efd, &v, sizeof(v)) == sizeof(v);
}

static void unmask_intx(struct nvme_fx *f)
{
	assert_int_equal(vfurt_client_set_irqs(nh_client(f->h), VFIO_PCI_INTX_IRQ_INDEX, 0, 1,
					       VFIO_IRQ_SET_ACTION_UNMASK, NULL), 0);
}

static void submit_get_features(struct nvme_fx *f)
{
	struct nh_sqe sqe = { .cdw0 = 0x0a, .cdw10 = 0x07 }; /* Number of Queues */
	uint16_t cid;

	assert_int_equal(nh_submit(f->h, 0, &sqe, &cid), 0);
}

/*
 * QEMU's EOI is a SET_IRQS unmask after any BAR access while INTx is
 * pending. Unconsumed completions keep the line asserted, so the unmask
 * fires again; once the host's CQ head covers them the line has fallen and
 * the unmask must not fire: the guest would find nothing, not touch the BAR
 * and never EOI (Linux: "irq N: nobody cared"). The server handles the
 * unmask before it replies, so the eventfd's state right after the reply is
 * the answer.
 */
static void test_intx_unmask_resamples_level(void **state)
{
	struct nvme_fx *f = *state;

	submit_get_features(f);
	assert_true(intx_fired_within(f->fd, 5000));
	/* not consumed: still asserted, the EOI fires it again */
	unmask_intx(f);
	assert_true(intx_fired_within(f->fd, 0));
	/* consumed (CQ head doorbell written): the EOI does not fire */
	assert_int_equal(nh_reap(f->h, 0), 1);
	unmask_intx(f);
	assert_false(intx_fired_within(f->fd, 0));
	/* a completion while masked (automasked after the fire) leaves the
	 * interrupt pending; the host consumes both before its EOI, so the
	 * line fell and the pending interrupt must be dropped, not fired */
	submit_get_features(f);
	assert_true(intx_fired_within(f->fd, 5000));
	submit_get_features(f);
	for (int i = 0; i < 500 && nh_reap(f->h, 0) == 0; i++)
		usleep(1000);
	for (int i = 0; i < 500 && nh_reap(f->h, 0) == 0; i++)
		usleep(1000);
	unmask_intx(f);
	assert_false(intx_fired_within(f->fd, 0));
	/* the next completion raises the line again */
	submit_get_features(f);
	assert_true(intx_fired_within(f->fd, 5000));
	assert_int_equal(nh_reap(f->h, 0), 1);
	unmask_intx(f);
	assert_false(intx_fired_within(f->fd, 0));
}

/* INTMS masks the level: the EOI does not fire while bit 0 is set. */
static void test_intx_intms_masks_level(void **state)
{
	struct nvme_fx *f = *state;

	submit_get_features(f);
	assert_true(intx_fired_within(f->fd, 5000));
	assert_int_equal(nh_reg_write32(f->h, 0x0c, 1u), 0); /* INTMS */
	unmask_intx(f);
	assert_false(intx_fired_within(f->fd, 0));
	assert_int_equal(nh_reg_write32(f->h, 0x10, 1u), 0); /* INTMC */
	assert_int_equal(nh_reap(f->h, 0), 1);
}

/* Shadow doorbells would let the guest consume completions without the BAR
 * access that QEMU takes as its INTx EOI: refused while MSI-X is off. */
static void test_intx_refuses_dbbuf(void **state)
{
	struct nvme_fx *f = *state;

	assert_int_equal(nh_dbbuf_enable(f->h), 0x0c); /* Command Sequence Error */
	/* its completion's interrupt, unless the host (which polls the CQ here)
	 * consumed the entry before the controller's pass ended: the line is
	 * raised only while a CQ holds unconsumed entries (seen under TSan's
	 * slowness); then the EOI: consumed, no new fire */
	(void)intx_fired_within(f->fd, 500);
	unmask_intx(f);
	assert_false(intx_fired_within(f->fd, 0));
	/* the controller still serves the host */
	submit_get_features(f);
	assert_true(intx_fired_within(f->fd, 5000));
	assert_int_equal(nh_reap(f->h, 0), 1);
}

/* Install a KVM-style unmask eventfd (the irqfd resamplefd): the EOI is a
 * write to it, not a message. */
static int install_unmask_fd(struct nvme_fx *f)
{
	int ufd = eventfd(0, EFD_CLOEXEC);

	assert_true(ufd >= 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(nh_client(f->h), VFIO_PCI_INTX_IRQ_INDEX,
						       0, 1, &ufd,
						       VFIO_IRQ_SET_ACTION_UNMASK), 0);
	return ufd;
}

static void eoi_by_eventfd(int ufd)
{
	uint64_t one = 1;

	assert_int_equal(write(ufd, &one, sizeof(one)), sizeof(one));
}

/*
 * QEMU under KVM hands the server an unmask eventfd (vfio_intx_enable_kvm)
 * and its EOIs arrive there, never as SET_IRQS messages. The server must
 * watch it: re-fire while completions are unconsumed, stay quiet after.
 * The write is handled asynchronously, so the quiet check waits a while.
 */
static void test_intx_unmask_eventfd(void **state)
{
	struct nvme_fx *f = *state;
	int ufd = install_unmask_fd(f);

	submit_get_features(f);
	assert_true(intx_fired_within(f->fd, 5000));
	eoi_by_eventfd(ufd);
	assert_true(intx_fired_within(f->fd, 5000)); /* unconsumed: fires again */
	assert_int_equal(nh_reap(f->h, 0), 1);
	eoi_by_eventfd(ufd);
	assert_false(intx_fired_within(f->fd, 300)); /* consumed: quiet */
	/* the EOI was taken (the counter read), and the line works again */
	submit_get_features(f);
	assert_true(intx_fired_within(f->fd, 5000));
	assert_int_equal(nh_reap(f->h, 0), 1);
	eoi_by_eventfd(ufd);
	assert_false(intx_fired_within(f->fd, 300));
	/* replaced by a new eventfd: the old one is no longer watched */
	{
		int ufd2 = install_unmask_fd(f);

		submit_get_features(f);
		assert_true(intx_fired_within(f->fd, 5000));
		eoi_by_eventfd(ufd);
		assert_false(intx_fired_within(f->fd, 300));
		eoi_by_eventfd(ufd2);
		assert_true(intx_fired_within(f->fd, 5000));
		assert_int_equal(nh_reap(f->h, 0), 1);
		close(ufd2);
	}
	close(ufd);
}

/* Only eventfds are taken (as by the kernel): a pipe or a regular file
 * would block a worker or poll readable for ever. The refusal changes
 * nothing and the controller keeps serving. */
static void test_intx_unmask_fd_must_be_eventfd(void **state)
{
	struct nvme_fx *f = *state;
	struct vfurt_client *c = nh_client(f->h);
	int p[2];
	FILE *tmp = tmpfile();
	int tfd;

	assert_non_null(tmp);
	tfd = fileno(tmp);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &p[0],
						       VFIO_IRQ_SET_ACTION_UNMASK), -EINVAL);
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &tfd,
						       VFIO_IRQ_SET_ACTION_UNMASK), -EINVAL);
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &p[1],
						       VFIO_IRQ_SET_ACTION_TRIGGER), -EINVAL);
	close(p[0]);
	close(p[1]);
	fclose(tmp);
	/* the trigger eventfd of setup() still works, as do SET_IRQS EOIs */
	submit_get_features(f);
	assert_true(intx_fired_within(f->fd, 5000));
	assert_int_equal(nh_reap(f->h, 0), 1);
	unmask_intx(f);
	assert_false(intx_fired_within(f->fd, 0));
}

int main(void)
{
#define T(fn, s) cmocka_unit_test_setup_teardown(fn, s, nvme_fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_intx_unmask_resamples_level, setup),
		T(test_intx_intms_masks_level, setup),
		T(test_intx_refuses_dbbuf, setup),
		T(test_intx_unmask_eventfd, setup),
		T(test_intx_unmask_eventfd, setup_rt_adaptive),
		T(test_intx_unmask_eventfd, setup_rt_busy),
		T(test_intx_unmask_fd_must_be_eventfd, setup),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
