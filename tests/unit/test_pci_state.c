/* Unit tests for devices/pci/pci_state.c: config space through a state image, bad images, sanitizing. */
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
#include <vfurt/pci.h>
#include <vfurt/state.h>

#include "devices/pci/pci_internal.h"
#include "io/device_internal.h"

#define CFG VFURT_REGION_CONFIG
#define BAR0 VFURT_REGION_BAR0
#define BAR0_SIZE 0x4000u
#define TABLE_OFF 0x2000u
#define PBA_OFF 0x3000u
#define NVEC 8u
#define TABLE_LEN (NVEC * 16u)

/* the records pci_state.c writes */
enum { TAG_LAYOUT = 1, TAG_CFG = 2, TAG_TABLE = 3, TAG_OWNER = 4 };

struct fn {
	struct vfurt_dev *dev;
	struct vfurt_pci *pci;
	int pm, msi, msix, pcie;
};

/* BAR0 16 KiB (MSI-X table 0x2000, PBA 0x3000); PM, MSI (4, masking),
 * MSI-X (8), PCIe in 4 KiB; vendor_id overrides the unit tests' id. */
static struct fn make_fn(uint16_t vendor_id, uint32_t cfg_size, bool msix)
{
	struct vfurt_pci_opts o = du_pci_opts(cfg_size);
	struct fn f = { 0 };

	f.dev = du_dev_new("pcistate");
	assert_int_equal(du_region_add(f.dev, BAR0, BAR0_SIZE, 0, NULL, NULL), 0);
	if (vendor_id)
		o.vendor_id = vendor_id;
	f.pci = vfurt_pci_create(f.dev, &o);
	assert_non_null(f.pci);
	f.pm = vfurt_pci_add_pm(f.pci);
	f.msi = vfurt_pci_add_msi(f.pci, 4, true);
	assert_true(f.pm > 0 && f.msi > 0);
	if (msix) {
		f.msix = vfurt_pci_add_msix(f.pci, NVEC, 0, TABLE_OFF, 0, PBA_OFF);
		assert_true(f.msix > 0);
	}
	if (cfg_size == VFURT_PCI_CFG_SIZE_EXP) {
		f.pcie = vfurt_pci_add_pcie(f.pci);
		assert_true(f.pcie > 0);
	}
	return f;
}

static struct fn make_std(void)
{
	return make_fn(0, VFURT_PCI_CFG_SIZE_EXP, true);
}

static uint32_t rd(const struct fn *f, uint64_t off, size_t size)
{
	return (uint32_t)du_rd(f->dev, CFG, off, size);
}

static void wr(const struct fn *f, uint64_t off, size_t size, uint32_t v)
{
	du_wr(f->dev, CFG, off, size, v);
}

/* What a guest does to a function: every kind of register changes. */
static void dirty(const struct fn *f)
{
	wr(f, 0x04, 2, 0x0406);      /* memory, bus master, INTx disable */
	wr(f, 0x10, 4, 0xffffffff);  /* BAR0 left sized */
	wr(f, 0x0c, 1, 0x10);        /* cache line */
	wr(f, 0x3c, 1, 11);          /* interrupt line */
	wr(f, f->pm + 4, 2, 3);      /* D3hot */
	wr(f, f->msi + 4, 4, 0xfee01000);
	wr(f, f->msi + 8, 4, 0x1);
	wr(f, f->msi + 0xc, 2, 0x4021);
	wr(f, f->msi + 0x10, 4, 0x5); /* mask 0 and 2 */
	wr(f, f->msi + 2, 2, 0x0021); /* enable, 4 vectors (MME 2) */
	if (f->pcie)
		wr(f, f->pcie + 8, 2, 0x2817);
	if (f->msix) {
		for (uint32_t v = 0; v < NVEC; v++) {
			du_wr(f->dev, BAR0, TABLE_OFF + 16 * v, 4, 0xfee00000 + 4 * v);
			du_wr(f->dev, BAR0, TABLE_OFF + 16 * v + 8, 4, 0x40 + v);
			du_wr(f->dev, BAR0, TABLE_OFF + 16 * v + 12, 4, v == 1 || v == 3);
		}
		wr(f, f->msix + 2, 2, 0xc000); /* enable + function mask */
	}
}

static struct vfurt_state *save(const struct fn *f)
{
	struct vfurt_state *s = vfurt_state_create();

	assert_non_null(s);
	assert_non_null(f->dev->pci_save);
	assert_int_equal(f->dev->pci_save(f->pci, s), 0);
	return s;
}

static int restore(const struct fn *f, struct vfurt_state *s)
{
	struct vfurt_state_cur root;

	assert_int_equal(vfurt_state_root(s, &root), 0);
	assert_non_null(f->dev->pci_restore);
	return f->dev->pci_restore(f->pci, &root);
}

/* The record tag of s (asserts it exists) into a malloc'd copy. */
static uint8_t *rec_copy(struct vfurt_state *s, uint32_t tag, size_t *len)
{
	struct vfurt_state_cur root;
	const void *v;
	uint8_t *p;

	assert_int_equal(vfurt_state_root(s, &root), 0);
	assert_int_equal(vfurt_state_find(&root, tag, &v, len), 0);
	p = malloc(*len ? *len : 1);
	assert_non_null(p);
	memcpy(p, v, *len);
	return p;
}

/* Everything of the PCI object a restore may touch. */
struct snap {
	uint8_t cfg[VFURT_PCI_CFG_SIZE_EXP];
	uint8_t table[TABLE_LEN];
	bool intx_masked, msi_enabled, msix_enabled, msix_func_masked, msix_client_table;
	uint32_t msi_masked;
	uint8_t pm_state;
};

static void snap_of(const struct fn *f, struct snap *s)
{
	memset(s, 0, sizeof(*s));
	memcpy(s->cfg, f->pci->cfg, f->pci->cfg_size);
	if (f->pci->msix_table)
		memcpy(s->table, f->pci->msix_table, TABLE_LEN);
	s->intx_masked = f->pci->intx_masked;
	s->msi_enabled = f->pci->msi_enabled;
	s->msi_masked = f->pci->msi_masked;
	s->msix_enabled = f->pci->msix_enabled;
	s->msix_func_masked = f->pci->msix_func_masked;
	s->msix_client_table = f->pci->msix_client_table;
	s->pm_state = f->pci->pm_state;
}

static void assert_snap_equal(const struct snap *a, const struct snap *b)
{
	assert_memory_equal(a->cfg, b->cfg, sizeof(a->cfg));
	assert_memory_equal(a->table, b->table, sizeof(a->table));
	assert_int_equal(a->intx_masked, b->intx_masked);
	assert_int_equal(a->msi_enabled, b->msi_enabled);
	assert_int_equal(a->msi_masked, b->msi_masked);
	assert_int_equal(a->msix_enabled, b->msix_enabled);
	assert_int_equal(a->msix_func_masked, b->msix_func_masked);
	assert_int_equal(a->msix_client_table, b->msix_client_table);
	assert_int_equal(a->pm_state, b->pm_state);
}

/* The irq layer's state as vfr_irqs_save writes it. */
static struct vfurt_state *irq_image(const struct fn *f)
{
	struct vfurt_state *s = vfurt_state_create();

	assert_non_null(s);
	assert_int_equal(vfr_irqs_save(f->dev->irqs, s), 0);
	return s;
}

static void assert_images_equal(struct vfurt_state *a, struct vfurt_state *b)
{
	struct vfurt_state_cur ra, rb;

	assert_int_equal(vfurt_state_root(a, &ra), 0);
	assert_int_equal(vfurt_state_root(b, &rb), 0);
	assert_int_equal(ra.end - ra.pos, rb.end - rb.pos);
	assert_int_equal(vfurt_state_size(a), vfurt_state_size(b));
	{
		const void *va, *vb;
		size_t la, lb;

		assert_int_equal(vfurt_state_find(&ra, VFR_IRQS_TAG_STATE | VFURT_STATE_SECTION,
						  &va, &la), 0);
		assert_int_equal(vfurt_state_find(&rb, VFR_IRQS_TAG_STATE | VFURT_STATE_SECTION,
						  &vb, &lb), 0);
		assert_int_equal(la, lb);
		assert_memory_equal(va, vb, la);
	}
}

/* ---- tests -------------------------------------------------------------- */

static void test_set_pci_state(void **state)
{
	(void)state;
	struct vfurt_dev *bare = du_dev_new("bare");
	struct fn f = make_std();

	assert_int_equal(vfurt_dev_set_pci_state(NULL, vfr_vpci_state_save, vfr_vpci_state_restore),
			 -EINVAL);
	assert_int_equal(vfurt_dev_set_pci_state(bare, vfr_vpci_state_save, vfr_vpci_state_restore),
			 -EINVAL);
	assert_null(bare->pci_save);
	/* vfurt_pci_create installed the PCI layer's */
	assert_ptr_equal(f.dev->pci_save, vfr_vpci_state_save);
	assert_ptr_equal(f.dev->pci_restore, vfr_vpci_state_restore);
	assert_int_equal(vfurt_dev_set_pci_state(f.dev, NULL, NULL), 0);
	assert_null(f.dev->pci_save);
	assert_null(f.dev->pci_restore);
	vfurt_dev_destroy(bare);
	vfurt_dev_destroy(f.dev);
}

static void round_trip(uint32_t cfg_size, bool msix)
{
	struct fn a = make_fn(0, cfg_size, msix), b = make_fn(0, cfg_size, msix);
	struct vfurt_state *s, *ia, *ib;
	struct snap sa, sb;

	dirty(&a);
	snap_of(&a, &sa);
	s = save(&a);
	ib = irq_image(&b);
	assert_int_equal(restore(&b, s), 0);
	snap_of(&b, &sb);
	assert_snap_equal(&sa, &sb);
	/* every register reads back the same through the region, too */
	for (uint32_t off = 0; off < cfg_size; off += 4)
		assert_int_equal(rd(&b, off, 4), rd(&a, off, 4));
	if (msix)
		for (uint32_t off = 0; off < TABLE_LEN; off += 4)
			assert_int_equal(du_rd(b.dev, BAR0, TABLE_OFF + off, 4),
					 du_rd(a.dev, BAR0, TABLE_OFF + off, 4));
	assert_true(vfurt_pci_bus_master(b.pci));
	assert_int_equal(vfurt_pci_msix_enabled(b.pci), msix);
	assert_true(vfurt_pci_msi_enabled(b.pci));
	/* the irq layer was left alone: the engine restores it */
	ia = irq_image(&b);
	assert_images_equal(ia, ib);
	vfurt_state_destroy(s);

	/* the other way for every shadow: MSI-X on without the function
	 * mask, MSI and INTx disable off, D0 */
	if (msix)
		wr(&a, a.msix + 2, 2, 0x8000);
	wr(&a, a.msi + 2, 2, 0);
	wr(&a, 0x04, 2, 0x0002);
	wr(&a, a.pm + 4, 2, 0);
	snap_of(&a, &sa);
	s = save(&a);
	assert_int_equal(restore(&b, s), 0);
	snap_of(&b, &sb);
	assert_snap_equal(&sa, &sb);

	vfurt_state_destroy(ia);
	vfurt_state_destroy(ib);
	vfurt_state_destroy(s);
	vfurt_dev_destroy(a.dev);
	vfurt_dev_destroy(b.dev);
}

static void test_round_trip_exp(void **state)
{
	(void)state;
	round_trip(VFURT_PCI_CFG_SIZE_EXP, true);
}

static void test_round_trip_conventional(void **state)
{
	(void)state;
	round_trip(VFURT_PCI_CFG_SIZE, false);
}

/* After a restore the shadows drive later writes as if the guest had made
 * the writes here: a write that changes nothing pushes nothing. */
static void test_shadows_consistent(void **state)
{
	(void)state;
	struct fn a = make_std(), b = make_std();
	struct vfurt_state *s, *i0, *i1;

	dirty(&a);
	s = save(&a);
	/* the engine's part, as it would restore it */
	i0 = irq_image(&a);
	{
		struct vfurt_state_cur root;

		assert_int_equal(vfurt_state_root(i0, &root), 0);
		assert_int_equal(vfr_irqs_restore(b.dev->irqs, &root), 0);
	}
	assert_int_equal(restore(&b, s), 0);
	/* the same values written again: the irq layer stays equal to a's */
	wr(&b, 0x04, 2, rd(&b, 0x04, 2));
	wr(&b, b.msi + 2, 2, rd(&b, b.msi + 2, 2));
	wr(&b, b.msix + 2, 2, rd(&b, b.msix + 2, 2));
	i1 = irq_image(&b);
	assert_images_equal(i0, i1);
	/* and a real change is pushed: MSI-X function mask off fires nothing
	 * (no eventfds) but unmasks the index in the irq layer */
	wr(&b, b.msix + 2, 2, 0x8000);
	assert_int_equal(vfurt_irq_trigger(b.dev, VFURT_IRQ_MSIX, 0), -ENOENT);
	assert_int_equal(vfurt_irq_trigger(b.dev, VFURT_IRQ_MSIX, 1), 0); /* table-masked */

	vfurt_state_destroy(i1);
	vfurt_state_destroy(i0);
	vfurt_state_destroy(s);
	vfurt_dev_destroy(a.dev);
	vfurt_dev_destroy(b.dev);
}

static void test_empty_is_fresh(void **state)
{
	(void)state;
	struct fn b = make_std();
	struct vfurt_state *s = vfurt_state_create();
	struct snap before, after;

	assert_non_null(s);
	snap_of(&b, &before);
	assert_int_equal(restore(&b, s), 0);
	/* other records beside ours (a newer writer's) are skipped */
	assert_int_equal(vfurt_state_put_u32(s, 99, 1), 0);
	assert_int_equal(restore(&b, s), 0);
	snap_of(&b, &after);
	assert_snap_equal(&before, &after);
	vfurt_state_destroy(s);
	vfurt_dev_destroy(b.dev);
}

/* Every image that does not fit is refused with -EBADMSG, changing nothing. */
static void test_bad_images(void **state)
{
	(void)state;
	struct fn a = make_std(), b = make_std();
	struct fn other = make_fn(0x8086, VFURT_PCI_CFG_SIZE_EXP, true);
	struct fn small = make_fn(0, VFURT_PCI_CFG_SIZE, true);
	struct fn nomsix = make_fn(0, VFURT_PCI_CFG_SIZE_EXP, false);
	struct vfurt_state *s, *bad, *img[3];
	struct snap before, after;
	uint8_t *cfg, *layout, junk[4096 + 8];
	size_t cfg_len, layout_len;
	const uint8_t two = 2;

	dirty(&a);
	dirty(&other);
	dirty(&small);
	s = save(&a);
	cfg = rec_copy(s, TAG_CFG, &cfg_len);
	layout = rec_copy(s, TAG_LAYOUT, &layout_len);
	assert_int_equal(cfg_len, 4096);
	memset(junk, 0, sizeof(junk));
	wr(&b, 0x0c, 1, 0x20); /* b is not quite fresh: every refusal keeps this */
	snap_of(&b, &before);

	struct {
		uint32_t tag;
		const void *val;
		size_t len;
	} cases[] = {
		{ TAG_CFG, cfg, 4095 },           /* truncated config space */
		{ TAG_CFG, junk, 4096 + 8 },      /* too long */
		{ TAG_CFG, cfg, 256 },            /* a conventional space's */
		{ TAG_CFG, cfg, 0 },
		{ TAG_LAYOUT, layout, layout_len - 1 },
		{ TAG_LAYOUT, junk, layout_len }, /* another function */
		{ TAG_LAYOUT, NULL, 0 },          /* config bytes without a layout */
		{ TAG_TABLE, junk, TABLE_LEN - 1 },
		{ TAG_TABLE, junk, TABLE_LEN + 16 },
		{ TAG_OWNER, &two, 1 },           /* not a bool */
		{ TAG_OWNER, junk, 2 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bad = stfx_remix(s, cases[i].tag, cases[i].val, cases[i].len);
		assert_int_equal(restore(&b, bad), -EBADMSG);
		snap_of(&b, &after);
		assert_snap_equal(&before, &after);
		vfurt_state_destroy(bad);
	}

	/* images of functions built otherwise: another vendor id, a 256-byte
	 * space, no MSI-X */
	img[0] = save(&other);
	img[1] = save(&small);
	img[2] = save(&nomsix);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(restore(&b, img[i]), -EBADMSG);
		snap_of(&b, &after);
		assert_snap_equal(&before, &after);
	}
	/* and the other way round: MSI-X records for a function without */
	assert_int_equal(restore(&nomsix, s), -EBADMSG);
	bad = stfx_remix(img[2], TAG_TABLE, junk, 0);
	assert_int_equal(restore(&nomsix, bad), -EBADMSG);
	vfurt_state_destroy(bad);

	/* a client attached: too late */
	b.dev->conn = (struct vfurt_conn *)1;
	assert_int_equal(restore(&b, s), -EBUSY);
	b.dev->conn = NULL;
	snap_of(&b, &after);
	assert_snap_equal(&before, &after);
	/* the good image still applies */
	assert_int_equal(restore(&b, s), 0);
	assert_int_equal(rd(&b, 0x0c, 1), 0x10);

	for (int i = 0; i < 3; i++)
		vfurt_state_destroy(img[i]);
	free(cfg);
	free(layout);
	vfurt_state_destroy(s);
	vfurt_dev_destroy(a.dev);
	vfurt_dev_destroy(b.dev);
	vfurt_dev_destroy(other.dev);
	vfurt_dev_destroy(small.dev);
	vfurt_dev_destroy(nomsix.dev);
}

/* Bits no write could have set are not taken from an image. */
static void test_restore_sanitizes(void **state)
{
	(void)state;
	struct fn a = make_std(), b = make_std();
	struct vfurt_state *s, *bad, *bad2;
	uint8_t *cfg, table[TABLE_LEN];
	size_t len;

	dirty(&a);
	s = save(&a);
	cfg = rec_copy(s, TAG_CFG, &len);
	cfg[0] = 0xff;                        /* vendor id: read-only */
	cfg[a.msi + 2] = 0x71;                /* enable, MME 7 > MMC 2 */
	cfg[a.pcie + 9] |= 0x80;              /* Initiate FLR */
	cfg[a.pm + 4] = (cfg[a.pm + 4] & ~3) | 2; /* D2: does not exist */
	cfg[a.msi + 0x14] = 0xf;              /* MSI pending: read-only */
	memset(table, 0xff, sizeof(table));
	bad = stfx_remix(s, TAG_CFG, cfg, len);
	bad2 = stfx_remix(bad, TAG_TABLE, table, sizeof(table));

	assert_int_equal(restore(&b, bad2), 0);
	assert_int_equal(rd(&b, 0x00, 2), 0x1af4);
	assert_int_equal(rd(&b, b.msi + 2, 2) & 0x71, 0x21); /* MME = MMC */
	assert_int_equal(b.pci->msi_masked, 0x5);            /* 0, 2 masked; 4 vectors on */
	assert_int_equal(rd(&b, b.pcie + 8, 2) & 0x8000, 0);
	assert_int_equal(rd(&b, b.pm + 4, 2) & 3, 0);
	assert_int_equal(b.pci->pm_state, 0);
	assert_int_equal(b.pci->cfg[b.msi + 0x14], 0);
	for (uint32_t v = 0; v < NVEC; v++) {
		assert_int_equal(du_rd(b.dev, BAR0, TABLE_OFF + 16 * v, 4), 0xfffffffc);
		assert_int_equal(du_rd(b.dev, BAR0, TABLE_OFF + 16 * v + 12, 4), 1);
	}
	/* a D3hot image restores D3hot */
	assert_int_equal(restore(&b, s), 0);
	assert_int_equal(b.pci->pm_state, 3);

	free(cfg);
	vfurt_state_destroy(bad2);
	vfurt_state_destroy(bad);
	vfurt_state_destroy(s);
	vfurt_dev_destroy(a.dev);
	vfurt_dev_destroy(b.dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_pci_state),
		cmocka_unit_test(test_round_trip_exp),
		cmocka_unit_test(test_round_trip_conventional),
		cmocka_unit_test(test_shadows_consistent),
		cmocka_unit_test(test_empty_is_fresh),
		cmocka_unit_test(test_bad_images),
		cmocka_unit_test(test_restore_sanitizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
