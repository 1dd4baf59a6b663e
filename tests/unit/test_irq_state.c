/* Unit tests for io/irq.c in state images: masks and pending bits, client eventfds, bad images. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/state.h>

#include "common/testsrv.h"

#include "io/irq.h"

#define NVEC 4u
#define SLOT_TRIGGER 0u
#define SLOT_MASK 1u
#define SLOT_UNMASK 2u
/* the fd record tag vfr_irqs_save_fds writes (io/irq.h) */
#define FD_TAG(index, slot, vector) ((((index) + 1u) << 16) | ((slot) << 12) | (vector))

static int new_efd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

static uint64_t efd_read(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

/* 1 INTx, NVEC MSI-X, 1 ERR vector, as a PCIe function has. */
static struct vfurt_irqs *make_irqs(uint32_t nvec)
{
	struct vfurt_irqs *irqs = vfr_irqs_create();

	assert_non_null(irqs);
	assert_int_equal(vfr_irqs_setup(irqs, VFURT_IRQ_INTX, 1), 0);
	assert_int_equal(vfr_irqs_setup(irqs, VFURT_IRQ_MSIX, nvec), 0);
	assert_int_equal(vfr_irqs_setup(irqs, VFURT_IRQ_ERR, 1), 0);
	return irqs;
}

static int irq_set(struct vfurt_irqs *irqs, uint32_t flags, uint32_t index, uint32_t start,
		   uint32_t count, const int *fds, size_t nfds)
{
	struct vfio_irq_set set = {
		.argsz = sizeof(set), .flags = flags, .index = index, .start = start,
		.count = count,
	};

	return vfr_irqs_set(irqs, &set, NULL, 0, fds, nfds, NULL, NULL);
}

/* Give vectors [0, n) of index fresh trigger eventfds; rd[] gets dups. */
static void attach_fds(struct vfurt_irqs *irqs, uint32_t index, uint32_t n, int *rd)
{
	int fds[NVEC];

	assert_true(n <= NVEC);
	for (uint32_t i = 0; i < n; i++) {
		fds[i] = new_efd();
		rd[i] = dup(fds[i]);
		assert_true(rd[i] >= 0);
	}
	assert_int_equal(irq_set(irqs, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				 index, 0, n, fds, n), 0);
}

/*
 * A state a live device may be in: MSI-X vector 1 client-masked and
 * pending, vector 2 guest-masked and pending, vector 3 guest-masked;
 * INTx fired (automasked); ERR pending without an fd.
 */
static void dirty(struct vfurt_irqs *irqs)
{
	assert_int_equal(irq_set(irqs, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				 VFURT_IRQ_MSIX, 1, 1, NULL, 0), 0);
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 2, true);
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 3, true);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 1), 0);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 2), 0);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_ERR, 0), -ENOENT);
}

/* The bytes of the section tagged tag (plain records compare as bytes). */
static void sec_bytes(struct vfurt_state *s, uint32_t tag, const void **val, size_t *len)
{
	struct vfurt_state_cur root;

	assert_int_equal(vfurt_state_root(s, &root), 0);
	assert_int_equal(vfurt_state_find(&root, tag | VFURT_STATE_SECTION, val, len), 0);
}

static struct vfurt_state *save_state(const struct vfurt_irqs *irqs)
{
	struct vfurt_state *s = vfurt_state_create();

	assert_non_null(s);
	assert_int_equal(vfr_irqs_save(irqs, s), 0);
	return s;
}

/* An image whose VFR_IRQS_TAG_STATE section holds one record (tag, val). */
static struct vfurt_state *state_with(uint32_t tag, const void *val, size_t len)
{
	struct vfurt_state *s = vfurt_state_create();

	assert_non_null(s);
	assert_int_equal(vfurt_state_open(s, VFR_IRQS_TAG_STATE), 0);
	assert_int_equal(vfurt_state_put(s, tag, val, len), 0);
	assert_int_equal(vfurt_state_close(s), 0);
	return s;
}

static int restore_from(struct vfurt_irqs *irqs, struct vfurt_state *s, bool fds)
{
	struct vfurt_state_cur root;

	assert_int_equal(vfurt_state_root(s, &root), 0);
	return fds ? vfr_irqs_restore_fds(irqs, &root) : vfr_irqs_restore(irqs, &root);
}

/* ---- masks and pending bits --------------------------------------------- */

static void test_state_round_trip(void **state)
{
	(void)state;
	struct vfurt_irqs *a = make_irqs(NVEC), *b = make_irqs(NVEC);
	struct vfurt_state *sa, *sb;
	const void *va, *vb;
	size_t la, lb;
	int rd[NVEC], intx;

	attach_fds(a, VFURT_IRQ_MSIX, NVEC, rd);
	attach_fds(a, VFURT_IRQ_INTX, 1, &intx);
	dirty(a);
	assert_int_equal(vfr_irqs_trigger(a, VFURT_IRQ_INTX, 0), 0);
	assert_int_equal(efd_read(intx), 1);
	vfr_irqs_set_func_mask(a, VFURT_IRQ_MSIX, true);
	assert_int_equal(vfr_irqs_trigger(a, VFURT_IRQ_MSIX, 0), 0); /* func masked: pending */

	sa = save_state(a);
	assert_int_equal(restore_from(b, sa, false), 0);
	/* saved again, b says what a said, byte for byte */
	sb = save_state(b);
	sec_bytes(sa, VFR_IRQS_TAG_STATE, &va, &la);
	sec_bytes(sb, VFR_IRQS_TAG_STATE, &vb, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(va, vb, la);
	for (uint32_t v = 0; v < NVEC; v++)
		assert_int_equal(vfr_irqs_pending(b, VFURT_IRQ_MSIX, v),
				 vfr_irqs_pending(a, VFURT_IRQ_MSIX, v));
	assert_true(vfr_irqs_pending(b, VFURT_IRQ_MSIX, 0));
	assert_true(vfr_irqs_pending(b, VFURT_IRQ_ERR, 0));
	assert_false(vfr_irqs_pending(b, VFURT_IRQ_MSIX, 3));
	/* nothing was delivered and no fd was installed */
	assert_false(vfr_irqs_enabled(b, VFURT_IRQ_MSIX, 0));
	for (uint32_t v = 0; v < NVEC; v++)
		assert_int_equal(efd_read(rd[v]), 0);

	vfurt_state_destroy(sb);
	vfurt_state_destroy(sa);
	vfr_irqs_destroy(a);
	vfr_irqs_destroy(b);
	for (uint32_t v = 0; v < NVEC; v++)
		close(rd[v]);
	close(intx);
}

static void test_state_absent_is_fresh(void **state)
{
	(void)state;
	struct vfurt_irqs *b = make_irqs(NVEC);
	struct vfurt_state *s = vfurt_state_create();
	uint8_t rec[8 + 1] = { 1, 0, 0, 0, 0, 0, 0, 0, 0 };

	assert_non_null(s);
	assert_int_equal(vfurt_state_put_u32(s, 1, 5), 0);
	assert_int_equal(restore_from(b, s, false), 0); /* no section */
	assert_int_equal(restore_from(b, s, true), 0);
	vfurt_state_destroy(s);
	/* a record of a newer writer's tag is skipped; INTx (no record) kept */
	assert_int_equal(vfr_irqs_trigger(b, VFURT_IRQ_INTX, 0), -ENOENT);
	s = state_with(0x100, rec, sizeof(rec));
	assert_int_equal(restore_from(b, s, false), 0);
	assert_true(vfr_irqs_pending(b, VFURT_IRQ_INTX, 0));
	vfurt_state_destroy(s);
	vfr_irqs_destroy(b);
}

/* Every malformed record is refused, and the device is left as it was. */
static void test_state_bad_records(void **state)
{
	(void)state;
	struct vfurt_irqs *b = make_irqs(NVEC);
	uint8_t rec[8 + NVEC], bad[8 + NVEC];
	struct vfurt_state *s, *before, *after;
	const void *v1, *v2;
	size_t l1, l2;

	/* a valid MSI-X record: everything pending */
	memset(rec, 0, sizeof(rec));
	rec[0] = NVEC;
	memset(rec + 8, 0x4, NVEC);
	vfr_irqs_set_guest_mask(b, VFURT_IRQ_MSIX, 1, true);
	before = save_state(b);

	struct {
		size_t len;
		size_t at;
		uint8_t val;
	} cases[] = {
		{ 7, 0, NVEC },            /* shorter than the header */
		{ 8 + NVEC - 1, 0, NVEC }, /* truncated vector bytes */
		{ 8 + NVEC, 0, NVEC + 1 }, /* another vector count */
		{ 8 + NVEC, 0, NVEC - 1 },
		{ 8 + NVEC, 4, 2 },        /* function mask not a bool */
		{ 8 + NVEC, 6, 1 },        /* padding */
		{ 8 + NVEC, 9, 0x8 },      /* unknown vector bit */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, rec, sizeof(bad));
		bad[cases[i].at] = cases[i].val;
		s = state_with(1 + VFURT_IRQ_MSIX, bad, cases[i].len);
		assert_int_equal(restore_from(b, s, false), -EBADMSG);
		vfurt_state_destroy(s);
	}
	/* a record for an index the device lacks (MSI: 0 vectors) */
	s = state_with(1 + VFURT_IRQ_MSI, rec, sizeof(rec));
	assert_int_equal(restore_from(b, s, false), -EBADMSG);
	vfurt_state_destroy(s);
	/* a section that runs past its end */
	s = vfurt_state_create();
	assert_int_equal(vfurt_state_open(s, VFR_IRQS_TAG_STATE), 0);
	assert_int_equal(vfurt_state_put(s, 1 + VFURT_IRQ_MSIX, rec, sizeof(rec)), 0);
	assert_int_equal(vfurt_state_close(s), 0);
	{
		struct vfurt_state_cur root, cut;

		assert_int_equal(vfurt_state_root(s, &root), 0);
		assert_int_equal(vfurt_state_sub(&root, VFR_IRQS_TAG_STATE, &cut), 0);
		/* a cursor whose section ends inside the record */
		root.end = cut.pos + 4;
		assert_true(vfr_irqs_restore(b, &root) < 0);
	}
	vfurt_state_destroy(s);

	after = save_state(b);
	sec_bytes(before, VFR_IRQS_TAG_STATE, &v1, &l1);
	sec_bytes(after, VFR_IRQS_TAG_STATE, &v2, &l2);
	assert_int_equal(l1, l2);
	assert_memory_equal(v1, v2, l1);
	/* and the valid record does apply */
	s = state_with(1 + VFURT_IRQ_MSIX, rec, sizeof(rec));
	assert_int_equal(restore_from(b, s, false), 0);
	assert_true(vfr_irqs_pending(b, VFURT_IRQ_MSIX, 3));
	vfurt_state_destroy(s);
	vfurt_state_destroy(after);
	vfurt_state_destroy(before);
	vfr_irqs_destroy(b);
}

/* A device set up with another vector count refuses the image. */
static void test_state_count_mismatch(void **state)
{
	(void)state;
	struct vfurt_irqs *a = make_irqs(NVEC), *b = make_irqs(NVEC - 1);
	struct vfurt_state *s;

	dirty(a);
	s = save_state(a);
	assert_int_equal(restore_from(b, s, false), -EBADMSG);
	assert_false(vfr_irqs_pending(b, VFURT_IRQ_ERR, 0)); /* nothing applied */
	vfurt_state_destroy(s);
	vfr_irqs_destroy(a);
	vfr_irqs_destroy(b);
}

/* ---- eventfds ----------------------------------------------------------- */

/*
 * a's client installed MSI-X triggers, an MSI-X mask fd and the INTx
 * unmask fd; b gets them through an image: a pending vector fires into the
 * client's eventfd once unmasked, and the unmask fd is announced.
 */
static void test_fds_round_trip(void **state)
{
	(void)state;
	struct vfurt_irqs *a = make_irqs(NVEC), *b = make_irqs(NVEC);
	int rd[NVEC], unmask = new_efd(), maskfd = new_efd(), unmask_rd, base;
	struct vfurt_state *s = vfurt_state_create();
	struct vfurt_state_cur root;
	uint32_t gen0, gen1;

	assert_non_null(s);
	attach_fds(a, VFURT_IRQ_MSIX, NVEC, rd);
	unmask_rd = dup(unmask);
	assert_int_equal(irq_set(a, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
				 VFURT_IRQ_INTX, 0, 1, &unmask, 1), 0);
	assert_int_equal(irq_set(a, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK,
				 VFURT_IRQ_MSIX, 2, 1, &maskfd, 1), 0);
	dirty(a);
	assert_int_equal(vfr_irqs_save(a, s), 0);
	assert_int_equal(vfr_irqs_save_fds(a, s), 0);
	assert_int_equal(vfurt_state_nr_fds(s), NVEC + 2);
	/* the old process goes away: the image's dups keep the files */
	vfr_irqs_destroy(a);
	base = test_count_fds();

	(void)vfr_irqs_intx_unmask_fd(b, &gen0);
	assert_int_equal(vfurt_state_root(s, &root), 0);
	assert_int_equal(vfr_irqs_restore(b, &root), 0);
	assert_int_equal(vfr_irqs_restore_fds(b, &root), 0);
	assert_int_equal(test_count_fds(), base); /* moved from the image, not copied */
	for (uint32_t v = 0; v < NVEC; v++)
		assert_true(vfr_irqs_enabled(b, VFURT_IRQ_MSIX, v));
	assert_true(vfr_irqs_intx_unmask_fd(b, &gen1) >= 0);
	assert_int_not_equal(gen0, gen1);
	assert_true(fcntl(vfr_irqs_intx_unmask_fd(b, NULL), F_GETFL) & O_NONBLOCK);

	/* nothing fired during restore */
	for (uint32_t v = 0; v < NVEC; v++)
		assert_int_equal(efd_read(rd[v]), 0);
	/* an unmasked vector fires at once */
	assert_int_equal(vfr_irqs_trigger(b, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(efd_read(rd[0]), 1);
	/* the pending, guest-masked vector 2 fires on unmask */
	vfr_irqs_set_guest_mask(b, VFURT_IRQ_MSIX, 2, false);
	assert_int_equal(efd_read(rd[2]), 1);
	/* the client-masked vector 1 stays masked until the client unmasks */
	vfr_irqs_set_guest_mask(b, VFURT_IRQ_MSIX, 3, false);
	assert_int_equal(efd_read(rd[1]), 0);
	assert_int_equal(irq_set(b, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
				 VFURT_IRQ_MSIX, 1, 1, NULL, 0), 0);
	assert_int_equal(efd_read(rd[1]), 1);
	/* the INTx unmask fd is the client's: its write reaches b */
	{
		const uint64_t one = 1;

		assert_int_equal(write(unmask_rd, &one, sizeof(one)), sizeof(one));
		assert_int_equal(efd_read(vfr_irqs_intx_unmask_fd(b, NULL)), 1);
	}
	/* taken once: a second restore from the same image finds them gone */
	assert_int_equal(vfr_irqs_restore_fds(b, &root), -EBADF);
	assert_true(vfr_irqs_enabled(b, VFURT_IRQ_MSIX, 0));

	vfurt_state_destroy(s);
	vfr_irqs_destroy(b);
	for (uint32_t v = 0; v < NVEC; v++)
		close(rd[v]);
	close(unmask_rd);
}

/* An fd already installed in a slot the image names is replaced and closed. */
static void test_fds_replace(void **state)
{
	(void)state;
	struct vfurt_irqs *a = make_irqs(NVEC), *b = make_irqs(NVEC);
	struct vfurt_state *s = vfurt_state_create();
	int rd_a, rd_b, base;

	assert_non_null(s);
	attach_fds(a, VFURT_IRQ_MSIX, 1, &rd_a);
	attach_fds(b, VFURT_IRQ_MSIX, 1, &rd_b);
	assert_int_equal(vfr_irqs_save_fds(a, s), 0);
	vfr_irqs_destroy(a);
	base = test_count_fds();
	assert_int_equal(restore_from(b, s, true), 0);
	assert_int_equal(test_count_fds(), base - 1); /* b's old fd closed, a's moved in */
	assert_int_equal(vfr_irqs_trigger(b, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(efd_read(rd_a), 1);
	assert_int_equal(efd_read(rd_b), 0);
	vfurt_state_destroy(s);
	vfr_irqs_destroy(b);
	close(rd_a);
	close(rd_b);
}

/* More fds than max_fds: -EMFILE, nothing installed, the image keeps them. */
static void test_fds_quota(void **state)
{
	(void)state;
	struct vfurt_irqs *a = make_irqs(NVEC), *b = make_irqs(NVEC);
	struct vfurt_state *s = vfurt_state_create();
	int rd[NVEC], base;

	assert_non_null(s);
	attach_fds(a, VFURT_IRQ_MSIX, NVEC, rd);
	assert_int_equal(vfr_irqs_save_fds(a, s), 0);
	vfr_irqs_destroy(a);
	vfr_irqs_set_max_fds(b, NVEC - 1);
	base = test_count_fds();
	assert_int_equal(restore_from(b, s, true), -EMFILE);
	assert_int_equal(test_count_fds(), base);
	for (uint32_t v = 0; v < NVEC; v++)
		assert_false(vfr_irqs_enabled(b, VFURT_IRQ_MSIX, v));
	/* exactly at the quota it fits */
	vfr_irqs_set_max_fds(b, NVEC);
	assert_int_equal(restore_from(b, s, true), 0);
	assert_true(vfr_irqs_enabled(b, VFURT_IRQ_MSIX, NVEC - 1));
	/* and a SET_IRQS past it is refused as before */
	{
		int extra = new_efd();

		assert_int_equal(irq_set(b, VFIO_IRQ_SET_DATA_EVENTFD |
					 VFIO_IRQ_SET_ACTION_TRIGGER, VFURT_IRQ_ERR, 0, 1, &extra, 1),
				 -EMFILE);
		close(extra);
	}
	vfurt_state_destroy(s);
	vfr_irqs_destroy(b);
	for (uint32_t v = 0; v < NVEC; v++)
		close(rd[v]);
}

/* An image with fd records tag -> fd (dups are put). */
static struct vfurt_state *fds_with(const uint32_t *tags, const int *fds, size_t n)
{
	struct vfurt_state *s = vfurt_state_create();

	assert_non_null(s);
	assert_int_equal(vfurt_state_open(s, VFR_IRQS_TAG_FDS), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(vfurt_state_put_fd(s, tags[i], fds[i]), 0);
	assert_int_equal(vfurt_state_close(s), 0);
	return s;
}

static void test_fds_bad_records(void **state)
{
	(void)state;
	struct vfurt_irqs *b = make_irqs(NVEC);
	int e0 = new_efd(), e1 = new_efd(), p[2], base;
	struct vfurt_state *s;
	const struct {
		uint32_t tags[2];
		int err;
	} cases[] = {
		{ { FD_TAG(VFURT_IRQ_MSIX, SLOT_TRIGGER, 0), FD_TAG(VFURT_IRQ_MSIX, 0, NVEC) },
		  -EBADMSG },                                               /* vector */
		{ { FD_TAG(VFURT_IRQ_MSIX, 0, 0), FD_TAG(VFURT_IRQ_MSIX, 3, 0) }, -EBADMSG }, /* slot */
		{ { FD_TAG(VFURT_IRQ_MSIX, 0, 1), FD_TAG(VFURT_IRQ_MSI, 0, 0) }, -EBADMSG }, /* no MSI */
		{ { FD_TAG(VFURT_IRQ_MSIX, 0, 1), FD_TAG(VFURT_IRQ_MSIX, 0, 1) }, -EBADMSG }, /* twice */
	};

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	base = test_count_fds();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fds[2] = { e0, e1 };

		s = fds_with(cases[i].tags, fds, 2);
		assert_int_equal(restore_from(b, s, true), cases[i].err);
		vfurt_state_destroy(s);
		assert_int_equal(test_count_fds(), base);
		for (uint32_t v = 0; v < NVEC; v++)
			assert_false(vfr_irqs_enabled(b, VFURT_IRQ_MSIX, v));
	}
	/* not an eventfd: refused after taking, and what was taken is closed */
	{
		uint32_t tags[2] = { FD_TAG(VFURT_IRQ_MSIX, 0, 0), FD_TAG(VFURT_IRQ_MSIX, 0, 1) };
		int fds[2] = { e0, p[0] };

		s = fds_with(tags, fds, 2);
		assert_int_equal(restore_from(b, s, true), -EINVAL);
		vfurt_state_destroy(s);
		assert_int_equal(test_count_fds(), base);
		assert_false(vfr_irqs_enabled(b, VFURT_IRQ_MSIX, 0));
	}
	/* a record that is no fd record (wrong length) in the fd tag space */
	s = vfurt_state_create();
	assert_int_equal(vfurt_state_open(s, VFR_IRQS_TAG_FDS), 0);
	assert_int_equal(vfurt_state_put_u64(s, FD_TAG(VFURT_IRQ_MSIX, 0, 0), 1), 0);
	assert_int_equal(vfurt_state_close(s), 0);
	assert_int_equal(restore_from(b, s, true), -EBADMSG);
	vfurt_state_destroy(s);
	/* an fd index outside the image's table */
	s = vfurt_state_create();
	assert_int_equal(vfurt_state_open(s, VFR_IRQS_TAG_FDS), 0);
	assert_int_equal(vfurt_state_put_u32(s, FD_TAG(VFURT_IRQ_MSIX, 0, 0), 7), 0);
	assert_int_equal(vfurt_state_close(s), 0);
	assert_int_equal(restore_from(b, s, true), -EBADMSG);
	vfurt_state_destroy(s);
	/* tags outside the fd tag space (a newer writer's) are skipped */
	{
		uint32_t tags[2] = { 0x7f000001u, FD_TAG(VFURT_IRQ_MSIX, 0, 2) };
		int fds[2] = { e0, e1 };

		s = fds_with(tags, fds, 2);
		assert_int_equal(restore_from(b, s, true), 0);
		assert_true(vfr_irqs_enabled(b, VFURT_IRQ_MSIX, 2));
		assert_false(vfr_irqs_enabled(b, VFURT_IRQ_MSIX, 0));
		vfurt_state_destroy(s);
	}
	assert_int_equal(test_count_fds(), base + 1);

	vfr_irqs_destroy(b);
	close(e0);
	close(e1);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_round_trip),
		cmocka_unit_test(test_state_absent_is_fresh),
		cmocka_unit_test(test_state_bad_records),
		cmocka_unit_test(test_state_count_mismatch),
		cmocka_unit_test(test_fds_round_trip),
		cmocka_unit_test(test_fds_replace),
		cmocka_unit_test(test_fds_quota),
		cmocka_unit_test(test_fds_bad_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
