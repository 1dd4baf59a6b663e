/* Integration: PCI config space and irq state a client set up, carried by a state image to a fresh device. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/pci.h>
#include <vfurt/state.h>

#include "common/it_util.h"
#include "common/testsrv.h"

#include "devices/pci/pci_internal.h"
#include "io/device_internal.h"

#define CFG VFURT_REGION_CONFIG
#define BAR4 VFURT_REGION_BAR4
#define NVEC TD_MSIX_VECTORS
#define TABLE_LEN (NVEC * 16u)
#define PBA_OFF 0x1000u
/* the section the test opens for the PCI layer, as the engine does */
#define TAG_PCI 7u

struct rx {
	struct testsrv *ts;
	struct vfurt_dev *dev;
	struct testdev_stats *stats;
	struct vfurt_client *c;
	int efd[NVEC];
	int msi, msix, pm, pcie;
};

static int setup(void **state)
{
	struct rx *x = calloc(1, sizeof(*x));

	*state = x;
	if (!x)
		return -1;
	x->dev = testdev_create("restart-a", NULL, &x->stats);
	x->ts = x->dev ? testsrv_start(&x->dev, 1, NULL) : NULL;
	if (!x->ts)
		return -1;
	x->c = it_connect(testsrv_path(x->ts, 0), 0);
	for (uint32_t v = 0; v < NVEC; v++)
		x->efd[v] = it_eventfd();
	return x->c ? 0 : -1;
}

static int teardown(void **state)
{
	struct rx *x = *state;

	if (!x)
		return 0;
	vfurt_client_close(x->c);
	testsrv_stop(x->ts);
	testdev_stats_free(x->stats);
	for (uint32_t v = 0; v < NVEC; v++)
		close(x->efd[v]);
	free(x);
	return 0;
}

static void cfg_wr(struct rx *x, uint64_t off, size_t size, uint32_t v)
{
	assert_int_equal(vfurt_client_region_write(x->c, CFG, off, &v, size), 0);
}

static uint32_t pba(struct rx *x)
{
	uint32_t v = 0;

	assert_int_equal(it_rd32(x->c, BAR4, PBA_OFF, &v), 0);
	return v;
}

/* ---- the old process's side: runs on the server thread ------------------- */

struct saver {
	struct vfurt_dev *dev;
	struct vfurt_state *s;
	int err;
	uint8_t cfg[VFURT_PCI_CFG_SIZE_EXP];
	uint8_t table[TABLE_LEN];
	struct vfurt_pci shadow; /* a copy: only the scalar shadows are read */
};

static void save_fn(void *arg)
{
	struct saver *x = arg;
	struct vfurt_dev *dev = x->dev;
	struct vfurt_region_desc d = { .desc_size = sizeof(d) };
	int err;

	x->s = vfurt_state_create();
	if (!x->s) {
		x->err = -ENOMEM;
		return;
	}
	memcpy(x->cfg, vfurt_pci_cfg(dev->pci), sizeof(x->cfg));
	x->shadow = *dev->pci;
	err = vfurt_dev_get_region(dev, BAR4, &d);
	if (!err && d.access(dev, d.arg, x->table, TABLE_LEN, 0, false) != TABLE_LEN)
		err = -EIO;
	if (!err)
		err = vfurt_state_open(x->s, TAG_PCI);
	if (!err)
		err = dev->pci_save(dev->pci, x->s);
	if (!err)
		err = vfurt_state_close(x->s);
	if (!err)
		err = vfr_irqs_save(dev->irqs, x->s);
	if (!err)
		err = vfr_irqs_save_fds(dev->irqs, x->s);
	x->err = err;
}

/* Across a SOCK_SEQPACKET pair, fds and all, as between the two daemons. */
static struct vfurt_state *transfer(struct vfurt_state *s)
{
	struct vfurt_state *r = NULL;
	char err[128];
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(vfurt_state_send(s, sv[0], 5000), 0);
	assert_int_equal(vfurt_state_recv(sv[1], 5000, 0, &r, err, sizeof(err)), 0);
	assert_non_null(r);
	assert_int_equal(vfurt_state_nr_fds(r), vfurt_state_nr_fds(s));
	close(sv[0]);
	close(sv[1]);
	return r;
}

/*
 * The client sets up everything the PCI layer and the irq layer keep:
 * command register, a BAR left sized, MSI address/data/masks, PM D3hot,
 * PCIe device control, MSI-X enabled with its table written (vectors 1
 * and 3 masked), eventfds on every vector, vectors 1 and 3 pending, the
 * function mask set with vector 5 pending under it, and vector 6 masked by
 * SET_IRQS. A fresh device restored from the image matches byte for byte
 * and delivers into the client's eventfds.
 */
static void test_pci_irq_round_trip(void **state)
{
	struct rx *x = *state;
	struct testdev_stats *stats;
	struct vfurt_dev *b = testdev_create("restart-b", NULL, &stats);
	struct vfurt_state *img, *again;
	struct vfurt_state_cur root, sec;
	struct saver sv = { .dev = x->dev };
	uint8_t table_b[TABLE_LEN];

	assert_non_null(b);
	x->msi = it_cfg_find_cap(x->c, 0x05);
	x->msix = it_cfg_find_cap(x->c, 0x11);
	x->pm = it_cfg_find_cap(x->c, 0x01);
	x->pcie = it_cfg_find_cap(x->c, 0x10);
	assert_true(x->msi > 0 && x->msix > 0 && x->pm > 0 && x->pcie > 0);

	cfg_wr(x, 0x04, 2, 0x0406);
	cfg_wr(x, 0x10, 4, 0xffffffff);
	cfg_wr(x, 0x0c, 1, 0x10);
	cfg_wr(x, 0x3c, 1, 10);
	cfg_wr(x, (uint64_t)x->msi + 4, 4, 0xfee00000);
	cfg_wr(x, (uint64_t)x->msi + 0xc, 2, 0x4041);
	cfg_wr(x, (uint64_t)x->msi + 0x10, 4, 0x2);
	cfg_wr(x, (uint64_t)x->pm + 4, 2, 3);
	cfg_wr(x, (uint64_t)x->pcie + 8, 2, 0x2817);
	assert_int_equal(it_msix_enable(x->c, NVEC), 0);
	for (uint32_t v = 0; v < NVEC; v++) {
		assert_int_equal(it_wr32(x->c, BAR4, 16 * v, 0xfee00000 + 16 * v), 0);
		assert_int_equal(it_wr32(x->c, BAR4, 16 * v + 8, 0x30 + v), 0);
		assert_int_equal(it_wr32(x->c, BAR4, 16 * v + 12, v == 1 || v == 3), 0);
	}
	assert_int_equal(vfurt_client_set_irqs_eventfd(x->c, VFURT_IRQ_MSIX, 0, NVEC, x->efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(it_irq_fire(x->c, VFURT_IRQ_MSIX, 1), 0);
	assert_int_equal(it_irq_fire(x->c, VFURT_IRQ_MSIX, 3), 0);
	assert_int_equal(it_irq_fire(x->c, VFURT_IRQ_MSIX, 0), 0);
	assert_true(it_readable(x->efd[0], IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(x->efd[0]), 1);
	cfg_wr(x, (uint64_t)x->msix + 2, 2, 0xc000); /* function mask */
	assert_int_equal(it_irq_fire(x->c, VFURT_IRQ_MSIX, 5), 0);
	assert_int_equal(vfurt_client_set_irqs(x->c, VFURT_IRQ_MSIX, 6, 1,
					       VFIO_IRQ_SET_ACTION_MASK, NULL), 0);
	assert_int_equal(pba(x), (1u << 1) | (1u << 3) | (1u << 5));

	testsrv_call(x->ts, save_fn, &sv);
	assert_int_equal(sv.err, 0);
	img = transfer(sv.s);
	vfurt_state_destroy(sv.s);

	/* the new process: a device from the same configuration, no client */
	assert_int_equal(vfurt_state_root(img, &root), 0);
	assert_int_equal(vfurt_state_sub(&root, TAG_PCI, &sec), 0);
	assert_int_equal(b->pci_restore(b->pci, &sec), 0);
	assert_int_equal(vfr_irqs_restore(b->irqs, &root), 0);
	assert_int_equal(vfr_irqs_restore_fds(b->irqs, &root), 0);

	/* config space, table and PBA as the client left them */
	assert_memory_equal(vfurt_pci_cfg(b->pci), sv.cfg, sizeof(sv.cfg));
	for (uint32_t off = 0; off < TABLE_LEN; off += 4) {
		uint32_t v = (uint32_t)0;
		struct vfurt_region_desc d = { .desc_size = sizeof(d) };

		assert_int_equal(vfurt_dev_get_region(b, BAR4, &d), 0);
		assert_int_equal(d.access(b, d.arg, &v, 4, off, false), 4);
		memcpy(table_b + off, &v, 4);
	}
	assert_memory_equal(table_b, sv.table, TABLE_LEN);
	{
		struct vfurt_region_desc d = { .desc_size = sizeof(d) };
		uint32_t bits = 0;

		assert_int_equal(vfurt_dev_get_region(b, BAR4, &d), 0);
		assert_int_equal(d.access(b, d.arg, &bits, 4, PBA_OFF, false), 4);
		assert_int_equal(bits, (1u << 1) | (1u << 3) | (1u << 5));
	}
	assert_int_equal(b->pci->intx_masked, sv.shadow.intx_masked);
	assert_int_equal(b->pci->msix_enabled, sv.shadow.msix_enabled);
	assert_int_equal(b->pci->msix_func_masked, sv.shadow.msix_func_masked);
	assert_int_equal(b->pci->msix_client_table, sv.shadow.msix_client_table);
	assert_true(b->pci->msix_client_table);
	assert_int_equal(b->pci->msi_masked, sv.shadow.msi_masked);
	assert_int_equal(b->pci->pm_state, 3);
	/* irq state: saved again it is what the old device saved */
	again = vfurt_state_create();
	assert_non_null(again);
	assert_int_equal(vfr_irqs_save(b->irqs, again), 0);
	{
		struct vfurt_state_cur r2;
		const void *v1, *v2;
		size_t l1, l2;

		assert_int_equal(vfurt_state_root(again, &r2), 0);
		assert_int_equal(vfurt_state_find(&root, VFR_IRQS_TAG_STATE | VFURT_STATE_SECTION,
						  &v1, &l1), 0);
		assert_int_equal(vfurt_state_find(&r2, VFR_IRQS_TAG_STATE | VFURT_STATE_SECTION,
						  &v2, &l2), 0);
		assert_int_equal(l1, l2);
		assert_memory_equal(v1, v2, l1);
	}
	vfurt_state_destroy(again);
	for (uint32_t v = 0; v < NVEC; v++)
		assert_true(vfurt_irq_enabled(b, VFURT_IRQ_MSIX, v));

	/* nothing was delivered by the restore itself */
	for (uint32_t v = 0; v < NVEC; v++)
		assert_false(it_readable(x->efd[v], 0));
	/* the old process is gone: the client's files now belong to b */
	vfurt_client_close(x->c);
	x->c = NULL;
	/* eventfd assignment does not move a table the client owns */
	b->pci_client_irq(b->pci, VFURT_IRQ_MSIX, 0, false);
	assert_int_equal(b->pci->msix_table[12], 0);
	/* function mask off: vector 5, pending under it, fires */
	{
		uint16_t ctrl = 0x8000;
		struct vfurt_region_desc d = { .desc_size = sizeof(d) };

		assert_int_equal(vfurt_dev_get_region(b, CFG, &d), 0);
		assert_int_equal(d.access(b, d.arg, &ctrl, 2, (uint64_t)x->msix + 2, true), 2);
	}
	assert_true(it_readable(x->efd[5], IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(x->efd[5]), 1);
	assert_false(it_readable(x->efd[1], 0)); /* still masked in the table */
	/* the guest unmasks vector 1 in the table: it fires */
	{
		uint32_t ctl = 0;
		struct vfurt_region_desc d = { .desc_size = sizeof(d) };

		assert_int_equal(vfurt_dev_get_region(b, BAR4, &d), 0);
		assert_int_equal(d.access(b, d.arg, &ctl, 4, 16 * 1 + 12, true), 4);
	}
	assert_true(it_readable(x->efd[1], IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(x->efd[1]), 1);
	/* vector 6 is still masked by SET_IRQS: pending, not fired */
	assert_int_equal(vfurt_irq_trigger(b, VFURT_IRQ_MSIX, 6), 0);
	assert_false(it_readable(x->efd[6], 0));
	assert_true(vfurt_irq_pending(b, VFURT_IRQ_MSIX, 6));
	/* an unmasked one fires at once */
	assert_int_equal(vfurt_irq_trigger(b, VFURT_IRQ_MSIX, 7), 0);
	assert_true(it_readable(x->efd[7], IT_TIMEOUT_MS));

	vfurt_state_destroy(img);
	vfurt_dev_destroy(b);
	testdev_stats_free(stats);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pci_irq_round_trip, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
