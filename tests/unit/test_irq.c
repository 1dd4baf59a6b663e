/* Unit tests for io/irq.c: SET_IRQS validation, eventfds, masks, pending bits. */
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

#include "common/testsrv.h"

#include "io/irq.h"

#define D_NONE VFIO_IRQ_SET_DATA_NONE
#define D_BOOL VFIO_IRQ_SET_DATA_BOOL
#define D_EFD VFIO_IRQ_SET_DATA_EVENTFD
#define A_MASK VFIO_IRQ_SET_ACTION_MASK
#define A_UNMASK VFIO_IRQ_SET_ACTION_UNMASK
#define A_TRIG VFIO_IRQ_SET_ACTION_TRIGGER


static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int new_efd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	assert_true(fd >= 0);
	return fd;
}

/* Counter of an eventfd (0 when nothing was written), resetting it. */
static uint64_t efd_read(int fd)
{
	uint64_t v = 0;
	ssize_t r = read(fd, &v, sizeof(v));

	if (r < 0) {
		assert_int_equal(errno, EAGAIN);
		return 0;
	}
	assert_int_equal(r, sizeof(v));
	return v;
}

struct state_log {
	int calls;
	uint32_t index, start, count;
	bool masked;
};

static void state_cb(void *arg, uint32_t index, uint32_t start, uint32_t count, bool masked)
{
	struct state_log *l = arg;

	l->calls++;
	l->index = index;
	l->start = start;
	l->count = count;
	l->masked = masked;
}

static int irq_set(struct vfurt_irqs *irqs, uint32_t flags, uint32_t index, uint32_t start,
		   uint32_t count, const uint8_t *data, size_t data_len, const int *fds,
		   size_t nfds, struct state_log *log)
{
	struct vfio_irq_set set = {
		.argsz = (uint32_t)(sizeof(set) + data_len),
		.flags = flags,
		.index = index,
		.start = start,
		.count = count,
	};

	return vfr_irqs_set(irqs, &set, data, data_len, fds, nfds, log ? state_cb : NULL, log);
}

/*
 * An irqs object with 1 INTx, 4 MSI-X vectors and 1 ERR vector. `rd` gets a
 * dup of each MSI-X trigger eventfd (the object owns the originals).
 */
static struct vfurt_irqs *make_irqs(int rd[4])
{
	struct vfurt_irqs *irqs = vfr_irqs_create();
	int fds[4];

	assert_non_null(irqs);
	assert_int_equal(vfr_irqs_setup(irqs, VFURT_IRQ_INTX, 1), 0);
	assert_int_equal(vfr_irqs_setup(irqs, VFURT_IRQ_MSIX, 4), 0);
	assert_int_equal(vfr_irqs_setup(irqs, VFURT_IRQ_ERR, 1), 0);
	if (rd) {
		for (int i = 0; i < 4; i++) {
			fds[i] = new_efd();
			rd[i] = dup(fds[i]);
			assert_true(rd[i] >= 0);
		}
		assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 4, NULL, 0,
					 fds, 4, NULL), 0);
	}
	return irqs;
}

static void close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* ---- setup and info ---------------------------------------------------- */

static void test_setup_and_info(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = vfr_irqs_create();
	const uint32_t msi = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
			     VFIO_IRQ_INFO_NORESIZE;

	assert_int_equal(vfr_irqs_setup(irqs, VFURT_IRQ_NUM, 1), -EINVAL);
	assert_int_equal(vfr_irqs_setup(irqs, VFURT_IRQ_MSIX, VFURT_MAX_IRQ_VECTORS + 1),
			 -EINVAL);
	assert_int_equal(vfr_irqs_setup(irqs, VFURT_IRQ_MSIX, VFURT_MAX_IRQ_VECTORS), 0);
	assert_int_equal(vfr_irqs_count(irqs, VFURT_IRQ_MSIX), VFURT_MAX_IRQ_VECTORS);
	assert_int_equal(vfr_irqs_setup(irqs, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(vfr_irqs_count(irqs, VFURT_IRQ_MSIX), 0);
	assert_int_equal(vfr_irqs_count(irqs, VFURT_IRQ_NUM), 0);

	/* flags do not depend on the vector count */
	assert_int_equal(vfr_irqs_info_flags(irqs, VFURT_IRQ_INTX),
			 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
			 VFIO_IRQ_INFO_AUTOMASKED);
	assert_int_equal(vfr_irqs_info_flags(irqs, VFURT_IRQ_MSI), msi);
	assert_int_equal(vfr_irqs_info_flags(irqs, VFURT_IRQ_MSIX), msi);
	/* ERR and REQ as the kernel's vfio-pci reports them */
	assert_int_equal(vfr_irqs_info_flags(irqs, VFURT_IRQ_ERR),
			 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
	assert_int_equal(vfr_irqs_info_flags(irqs, VFURT_IRQ_REQ),
			 VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
	assert_int_equal(vfr_irqs_info_flags(irqs, VFURT_IRQ_NUM), 0);
	vfr_irqs_destroy(irqs);
	vfr_irqs_destroy(NULL);
}

static void test_setup_again_closes_fds(void **state)
{
	(void)state;
	int base = test_count_fds();
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);

	close_all(rd, 4);
	assert_int_equal(test_count_fds(), base + 4);
	assert_int_equal(vfr_irqs_setup(irqs, VFURT_IRQ_MSIX, 8), 0);
	assert_int_equal(test_count_fds(), base);
	assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, 0));
	vfr_irqs_destroy(irqs);
}

/* ---- validation: one rule per test ------------------------------------- */

static void test_set_bad_index(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);

	assert_int_equal(irq_set(irqs, D_NONE | A_TRIG, VFURT_IRQ_NUM, 0, 1, NULL, 0, NULL, 0,
				 NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_NONE | A_TRIG, UINT32_MAX, 0, 1, NULL, 0, NULL, 0,
				 NULL), -EINVAL);
	vfr_irqs_destroy(irqs);
}

static void test_set_index_without_vectors(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);

	/* MSI has no vectors, not even the disable form is accepted */
	assert_int_equal(irq_set(irqs, D_NONE | A_TRIG, VFURT_IRQ_MSI, 0, 1, NULL, 0, NULL, 0,
				 NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_NONE | A_TRIG, VFURT_IRQ_MSI, 0, 0, NULL, 0, NULL, 0,
				 NULL), -EINVAL);
	vfr_irqs_destroy(irqs);
}

static void test_set_bad_flags(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	const uint32_t bad[] = {
		0,
		D_NONE,                     /* no action */
		A_TRIG,                     /* no data type */
		D_NONE | D_BOOL | A_TRIG,   /* two data types */
		D_NONE | A_MASK | A_UNMASK, /* two actions */
		D_NONE | A_TRIG | (1u << 6),
		D_NONE | A_TRIG | (1u << 31),
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(irq_set(irqs, bad[i], VFURT_IRQ_MSIX, 0, 1, NULL, 0, NULL, 0,
					 NULL), -EINVAL);
	vfr_irqs_destroy(irqs);
}

static void test_set_range(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);

	assert_int_equal(irq_set(irqs, D_NONE | A_MASK, VFURT_IRQ_MSIX, 3, 2, NULL, 0, NULL, 0,
				 NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_NONE | A_MASK, VFURT_IRQ_MSIX, 0, 5, NULL, 0, NULL, 0,
				 NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_NONE | A_MASK, VFURT_IRQ_MSIX, 4, 1, NULL, 0, NULL, 0,
				 NULL), -EINVAL);
	/* start + count wraps in 32 bits */
	assert_int_equal(irq_set(irqs, D_NONE | A_MASK, VFURT_IRQ_MSIX, UINT32_MAX, 2, NULL, 0,
				 NULL, 0, NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_NONE | A_MASK, VFURT_IRQ_MSIX, 1, UINT32_MAX, NULL, 0,
				 NULL, 0, NULL), -EINVAL);
	/* the last vector alone is fine */
	assert_int_equal(irq_set(irqs, D_NONE | A_MASK, VFURT_IRQ_MSIX, 3, 1, NULL, 0, NULL, 0,
				 NULL), 0);
	vfr_irqs_destroy(irqs);
}

static void test_set_count_zero(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	struct state_log log = { 0 };

	assert_int_equal(irq_set(irqs, D_NONE | A_MASK, VFURT_IRQ_MSIX, 0, 0, NULL, 0, NULL, 0,
				 &log), -EINVAL);
	assert_int_equal(irq_set(irqs, D_NONE | A_UNMASK, VFURT_IRQ_MSIX, 0, 0, NULL, 0, NULL, 0,
				 &log), -EINVAL);
	assert_int_equal(irq_set(irqs, D_BOOL | A_TRIG, VFURT_IRQ_MSIX, 0, 0, NULL, 0, NULL, 0,
				 &log), -EINVAL);
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 0, NULL, 0, NULL, 0,
				 &log), -EINVAL);
	/* the disable form needs start inside the index */
	assert_int_equal(irq_set(irqs, D_NONE | A_TRIG, VFURT_IRQ_MSIX, 4, 0, NULL, 0, NULL, 0,
				 &log), -EINVAL);
	assert_int_equal(log.calls, 0);
	vfr_irqs_destroy(irqs);
}

static void test_set_bool_short(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	const uint8_t b[4] = { 1, 1, 1, 1 };

	assert_int_equal(irq_set(irqs, D_BOOL | A_MASK, VFURT_IRQ_MSIX, 0, 4, b, 3, NULL, 0,
				 NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_BOOL | A_MASK, VFURT_IRQ_MSIX, 0, 4, NULL, 0, NULL, 0,
				 NULL), -EINVAL);
	/* longer than needed is fine */
	assert_int_equal(irq_set(irqs, D_BOOL | A_MASK, VFURT_IRQ_MSIX, 0, 2, b, 4, NULL, 0,
				 NULL), 0);
	vfr_irqs_destroy(irqs);
}

static void test_set_bool_values(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	const uint8_t b[4] = { 1, 0, 2, 1 };
	struct state_log log = { 0 };

	assert_int_equal(irq_set(irqs, D_BOOL | A_MASK, VFURT_IRQ_MSIX, 0, 4, b, 4, NULL, 0,
				 &log), -EINVAL);
	assert_int_equal(log.calls, 0);
	/* nothing was applied: vector 0 is not masked */
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 0), -ENOENT);
	vfr_irqs_destroy(irqs);
}

static void test_set_eventfd_count(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	int fds[3] = { new_efd(), new_efd(), new_efd() };

	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 2, NULL, 0, fds, 3,
				 NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 4, NULL, 0, fds, 3,
				 NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 1, NULL, 0, fds, 2,
				 NULL), -EINVAL);
	for (int i = 0; i < 3; i++)
		assert_true(fd_open(fds[i]));
	assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, 0));
	close_all(fds, 3);
	vfr_irqs_destroy(irqs);
}

static void test_set_eventfd_bad_fd(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	int good = new_efd();
	int closed = new_efd();
	int fds[2];

	close(closed);
	fds[0] = good;
	fds[1] = closed;
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 2, NULL, 0, fds, 2,
				 NULL), -EBADF);
	fds[1] = -2;
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 2, NULL, 0, fds, 2,
				 NULL), -EBADF);
	assert_true(fd_open(good));
	assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, 0));
	close(good);
	vfr_irqs_destroy(irqs);
}

static void test_set_eventfd_duplicate(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	int fd = new_efd();
	int fds[2] = { fd, fd };

	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 2, NULL, 0, fds, 2,
				 NULL), -EINVAL);
	assert_true(fd_open(fd));
	close(fd);
	vfr_irqs_destroy(irqs);
}

static void test_set_fds_with_other_data(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	int fd = new_efd();
	const uint8_t b[1] = { 1 };

	assert_int_equal(irq_set(irqs, D_NONE | A_TRIG, VFURT_IRQ_MSIX, 0, 1, NULL, 0, &fd, 1,
				 NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_BOOL | A_TRIG, VFURT_IRQ_MSIX, 0, 1, b, 1, &fd, 1,
				 NULL), -EINVAL);
	assert_true(fd_open(fd));
	close(fd);
	vfr_irqs_destroy(irqs);
}

static void test_set_mask_not_maskable(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	int fd = new_efd();

	assert_int_equal(irq_set(irqs, D_NONE | A_MASK, VFURT_IRQ_ERR, 0, 1, NULL, 0, NULL, 0,
				 NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_NONE | A_UNMASK, VFURT_IRQ_ERR, 0, 1, NULL, 0, NULL, 0,
				 NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_EFD | A_UNMASK, VFURT_IRQ_ERR, 0, 1, NULL, 0, &fd, 1,
				 NULL), -EINVAL);
	assert_true(fd_open(fd));
	/* ERR can be given a trigger eventfd */
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_ERR, 0, 1, NULL, 0, &fd, 1,
				 NULL), 0);
	assert_true(vfr_irqs_enabled(irqs, VFURT_IRQ_ERR, 0));
	vfr_irqs_destroy(irqs);
	assert_false(fd_open(fd));
}

/* A failed request leaves the existing eventfds in place. */
static void test_set_failure_changes_nothing(void **state)
{
	(void)state;
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);
	int fresh[4] = { new_efd(), new_efd(), new_efd(), -5 };

	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 4, NULL, 0, fresh, 4,
				 NULL), -EBADF);
	for (int i = 0; i < 3; i++)
		assert_true(fd_open(fresh[i]));
	for (uint32_t v = 0; v < 4; v++) {
		assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, v), 0);
		assert_int_equal(efd_read(rd[v]), 1);
	}
	close_all(fresh, 3);
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
}

/* ---- triggering -------------------------------------------------------- */

static void test_trigger_writes_eventfd(void **state)
{
	(void)state;
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);
	struct vfurt_irq_stats st;

	for (uint32_t v = 0; v < 4; v++)
		assert_true(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, v));
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 2), 0);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 2), 0);
	assert_int_equal(efd_read(rd[2]), 2);
	assert_int_equal(efd_read(rd[0]), 0);
	assert_int_equal(efd_read(rd[1]), 0);
	assert_int_equal(efd_read(rd[3]), 0);
	assert_false(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 2));
	vfr_irqs_get_stats(irqs, &st);
	assert_int_equal(st.raised, 2);
	assert_int_equal(st.written, 2);
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
}

static void test_trigger_errors(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	struct vfurt_irq_stats st;

	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 4), -EINVAL);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSI, 0), -EINVAL);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_NUM, 0), -EINVAL);
	assert_false(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 4));
	assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_NUM, 0));
	/* no eventfd: left pending */
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 1), -ENOENT);
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 1));
	vfr_irqs_get_stats(irqs, &st);
	assert_int_equal(st.raised, 1);
	assert_int_equal(st.written, 0);
	/* harmless on bad indexes */
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_NUM, 0, true);
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 99, true);
	vfr_irqs_set_func_mask(irqs, VFURT_IRQ_NUM, true);
	vfr_irqs_destroy(irqs);
}

static void test_trigger_saturated_counter(void **state)
{
	(void)state;
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);
	const uint64_t max = UINT64_MAX - 1;
	struct vfurt_irq_stats st;

	assert_int_equal(write(rd[0], &max, sizeof(max)), sizeof(max));
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 0), 0); /* EAGAIN */
	assert_false(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 0));
	vfr_irqs_get_stats(irqs, &st);
	assert_int_equal(st.written, 1);
	assert_int_equal(efd_read(rd[0]), max);
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
}

static void test_non_eventfd_refused(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	int p[2];
	struct vfurt_irq_stats st;

	/* Only eventfds are taken, as by the kernel: a pipe could fill and
	 * block, a regular file polls readable for ever. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 1, NULL, 0, &p[0], 1,
				 NULL), -EINVAL);
	assert_int_equal(irq_set(irqs, D_EFD | A_UNMASK, VFURT_IRQ_INTX, 0, 1, NULL, 0, &p[1], 1,
				 NULL), -EINVAL);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 0), -ENOENT);
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 0));
	vfr_irqs_get_stats(irqs, &st);
	assert_int_equal(st.raised, 1);
	assert_int_equal(st.written, 0);
	close(p[0]);
	close(p[1]);
	vfr_irqs_destroy(irqs);
}

static void test_set_trigger_loopback(void **state)
{
	(void)state;
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);

	assert_int_equal(irq_set(irqs, D_NONE | A_TRIG, VFURT_IRQ_MSIX, 1, 2, NULL, 0, NULL, 0,
				 NULL), 0);
	assert_int_equal(efd_read(rd[0]), 0);
	assert_int_equal(efd_read(rd[1]), 1);
	assert_int_equal(efd_read(rd[2]), 1);
	assert_int_equal(efd_read(rd[3]), 0);
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
}

/* ---- masks ------------------------------------------------------------- */

static void test_client_mask_pending_unmask(void **state)
{
	(void)state;
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);
	struct state_log log = { 0 };

	assert_int_equal(irq_set(irqs, D_NONE | A_MASK, VFURT_IRQ_MSIX, 1, 2, NULL, 0, NULL, 0,
				 &log), 0);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.index, VFURT_IRQ_MSIX);
	assert_int_equal(log.start, 1);
	assert_int_equal(log.count, 2);
	assert_true(log.masked);

	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 1), 0);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 1), 0);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 3), 0);
	assert_int_equal(efd_read(rd[1]), 0);
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 1));
	assert_false(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 2));
	assert_int_equal(efd_read(rd[3]), 1);

	assert_int_equal(irq_set(irqs, D_NONE | A_UNMASK, VFURT_IRQ_MSIX, 0, 4, NULL, 0, NULL, 0,
				 &log), 0);
	assert_int_equal(log.calls, 2);
	assert_int_equal(log.start, 0);
	assert_int_equal(log.count, 4);
	assert_false(log.masked);
	assert_int_equal(efd_read(rd[1]), 1); /* fired once for two triggers */
	assert_int_equal(efd_read(rd[2]), 0);
	assert_false(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 1));
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
}

static void test_guest_mask(void **state)
{
	(void)state;
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);

	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 0, true);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(efd_read(rd[0]), 0);
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 0));
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 0, false);
	assert_int_equal(efd_read(rd[0]), 1);
	assert_false(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 0));
	/* unmasking a vector that is not pending fires nothing */
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 0, false);
	assert_int_equal(efd_read(rd[0]), 0);
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
}

static void test_func_mask(void **state)
{
	(void)state;
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);
	const int none = -1;

	/* vector 3 loses its eventfd */
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 3, 1, NULL, 0, &none, 1,
				 NULL), 0);
	vfr_irqs_set_func_mask(irqs, VFURT_IRQ_MSIX, true);
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 2, true);
	for (uint32_t v = 0; v < 4; v++)
		assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, v), 0);
	for (uint32_t v = 0; v < 4; v++) {
		assert_int_equal(efd_read(rd[v]), 0);
		assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, v));
	}
	vfr_irqs_set_func_mask(irqs, VFURT_IRQ_MSIX, false);
	assert_int_equal(efd_read(rd[0]), 1);
	assert_int_equal(efd_read(rd[1]), 1);
	assert_int_equal(efd_read(rd[2]), 0); /* still guest masked */
	assert_false(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 0));
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 2));
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 3)); /* no eventfd */
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 2, false);
	assert_int_equal(efd_read(rd[2]), 1);
	/* function mask of one index does not affect another */
	vfr_irqs_set_func_mask(irqs, VFURT_IRQ_INTX, true);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(efd_read(rd[0]), 1);
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
}

/* A vector masked twice is delivered only when the last mask goes. */
static void test_stacked_masks(void **state)
{
	(void)state;
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);

	assert_int_equal(irq_set(irqs, D_NONE | A_MASK, VFURT_IRQ_MSIX, 0, 1, NULL, 0, NULL, 0,
				 NULL), 0);
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 0, true);
	vfr_irqs_set_func_mask(irqs, VFURT_IRQ_MSIX, true);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 0), 0);
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 0, false);
	assert_int_equal(efd_read(rd[0]), 0);
	assert_int_equal(irq_set(irqs, D_NONE | A_UNMASK, VFURT_IRQ_MSIX, 0, 1, NULL, 0, NULL, 0,
				 NULL), 0);
	assert_int_equal(efd_read(rd[0]), 0);
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 0));
	vfr_irqs_set_func_mask(irqs, VFURT_IRQ_MSIX, false);
	assert_int_equal(efd_read(rd[0]), 1);
	assert_false(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 0));
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
}

static void test_intx_automask(void **state)
{
	(void)state;
	struct vfurt_irqs *irqs = make_irqs(NULL);
	int fd = new_efd();
	int rd = dup(fd);
	struct state_log log = { 0 };

	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_INTX, 0, 1, NULL, 0, &fd, 1,
				 NULL), 0);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_INTX, 0), 0);
	assert_int_equal(efd_read(rd), 1);
	/* automasked now: the next assertion waits for the client's unmask */
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_INTX, 0), 0);
	assert_int_equal(efd_read(rd), 0);
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_INTX, 0));
	assert_int_equal(irq_set(irqs, D_NONE | A_UNMASK, VFURT_IRQ_INTX, 0, 1, NULL, 0, NULL, 0,
				 &log), 0);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.index, VFURT_IRQ_INTX);
	assert_int_equal(efd_read(rd), 1);
	assert_false(vfr_irqs_pending(irqs, VFURT_IRQ_INTX, 0));
	/* the fire on unmask automasked again */
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_INTX, 0), 0);
	assert_int_equal(efd_read(rd), 0);
	/* unmask with nothing new pending fires only the pending one */
	assert_int_equal(irq_set(irqs, D_NONE | A_UNMASK, VFURT_IRQ_INTX, 0, 1, NULL, 0, NULL, 0,
				 NULL), 0);
	assert_int_equal(efd_read(rd), 1);
	assert_int_equal(irq_set(irqs, D_NONE | A_UNMASK, VFURT_IRQ_INTX, 0, 1, NULL, 0, NULL, 0,
				 NULL), 0);
	assert_int_equal(efd_read(rd), 0);
	close(rd);
	vfr_irqs_destroy(irqs);
}

static void test_bool_data(void **state)
{
	(void)state;
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);
	struct state_log log = { 0 };
	const uint8_t mask[4] = { 1, 0, 1, 0 };
	const uint8_t trig[3] = { 0, 1, 1 };
	const uint8_t unmask[2] = { 0, 1 };

	assert_int_equal(irq_set(irqs, D_BOOL | A_MASK, VFURT_IRQ_MSIX, 0, 4, mask, 4, NULL, 0,
				 &log), 0);
	assert_int_equal(log.calls, 1);
	assert_true(log.masked);
	/* trigger vectors 1 and 2 through SET_IRQS; 2 is masked */
	assert_int_equal(irq_set(irqs, D_BOOL | A_TRIG, VFURT_IRQ_MSIX, 0, 3, trig, 3, NULL, 0,
				 &log), 0);
	assert_int_equal(log.calls, 1); /* trigger is not a mask change */
	assert_int_equal(efd_read(rd[0]), 0);
	assert_int_equal(efd_read(rd[1]), 1);
	assert_int_equal(efd_read(rd[2]), 0);
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 2));
	/* unmask only vector 2 (bools for vectors 1..2) */
	assert_int_equal(irq_set(irqs, D_BOOL | A_UNMASK, VFURT_IRQ_MSIX, 1, 2, unmask, 2, NULL,
				 0, &log), 0);
	assert_int_equal(log.calls, 2);
	assert_false(log.masked);
	assert_int_equal(efd_read(rd[2]), 1);
	/* vector 0 stayed masked */
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(efd_read(rd[0]), 0);
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 0));
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
}

/* ---- eventfd assignment ------------------------------------------------ */

static void test_deassign(void **state)
{
	(void)state;
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);
	int fds[2] = { -1, new_efd() };
	int rd3 = dup(fds[1]);

	/* nfds 0: de-assign vectors 0 and 1 */
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 2, NULL, 0, NULL, 0,
				 NULL), 0);
	assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, 0));
	assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, 1));
	assert_true(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, 2));
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 0), -ENOENT);
	assert_int_equal(efd_read(rd[0]), 0);

	/* -1 de-assigns vector 2, vector 3 gets a new eventfd */
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 2, 2, NULL, 0, fds, 2,
				 NULL), 0);
	assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, 2));
	assert_true(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, 3));
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 3), 0);
	assert_int_equal(efd_read(rd3), 1);
	assert_int_equal(efd_read(rd[3]), 0); /* old one replaced */
	close(rd3);
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
}

/* Replaced and de-assigned descriptors are closed, not leaked. */
static void test_replace_closes_old(void **state)
{
	(void)state;
	int base = test_count_fds();
	struct vfurt_irqs *irqs = make_irqs(NULL);
	int a = new_efd();
	int b = new_efd();

	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 1, NULL, 0, &a, 1,
				 NULL), 0);
	assert_int_equal(test_count_fds(), base + 2);
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 1, NULL, 0, &b, 1,
				 NULL), 0);
	assert_false(fd_open(a));
	assert_int_equal(test_count_fds(), base + 1);
	/* giving the same descriptor again keeps it */
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 1, NULL, 0, &b, 1,
				 NULL), 0);
	assert_true(fd_open(b));
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 1, NULL, 0, NULL, 0,
				 NULL), 0);
	assert_false(fd_open(b));
	assert_int_equal(test_count_fds(), base);
	vfr_irqs_destroy(irqs);
}

static void test_disable_form(void **state)
{
	(void)state;
	int base = test_count_fds();
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);
	int mfd = new_efd();

	close_all(rd, 4);
	assert_int_equal(irq_set(irqs, D_EFD | A_UNMASK, VFURT_IRQ_MSIX, 0, 1, NULL, 0, &mfd, 1,
				 NULL), 0);
	assert_int_equal(test_count_fds(), base + 5);
	assert_int_equal(irq_set(irqs, D_NONE | A_TRIG, VFURT_IRQ_MSIX, 0, 0, NULL, 0, NULL, 0,
				 NULL), 0);
	for (uint32_t v = 0; v < 4; v++)
		assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, v));
	assert_int_equal(test_count_fds(), base + 1); /* the unmask notify fd stays */
	assert_true(fd_open(mfd));
	/* other indexes are untouched; disabling twice is fine */
	assert_int_equal(irq_set(irqs, D_NONE | A_TRIG, VFURT_IRQ_MSIX, 0, 0, NULL, 0, NULL, 0,
				 NULL), 0);
	vfr_irqs_destroy(irqs);
	assert_int_equal(test_count_fds(), base);
}

static void test_mask_unmask_notify_fds(void **state)
{
	(void)state;
	int base = test_count_fds();
	struct vfurt_irqs *irqs = make_irqs(NULL);
	int m[2] = { new_efd(), new_efd() };
	int u[2] = { new_efd(), new_efd() };

	assert_int_equal(irq_set(irqs, D_EFD | A_MASK, VFURT_IRQ_MSIX, 0, 2, NULL, 0, m, 2,
				 NULL), 0);
	assert_int_equal(irq_set(irqs, D_EFD | A_UNMASK, VFURT_IRQ_MSIX, 2, 2, NULL, 0, u, 2,
				 NULL), 0);
	/* notify fds are not trigger fds */
	assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, 0));
	assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, 2));
	assert_int_equal(test_count_fds(), base + 4);
	/* de-assign the mask fd of vector 1 only */
	assert_int_equal(irq_set(irqs, D_EFD | A_MASK, VFURT_IRQ_MSIX, 1, 1, NULL, 0, NULL, 0,
				 NULL), 0);
	assert_false(fd_open(m[1]));
	assert_true(fd_open(m[0]));
	assert_int_equal(test_count_fds(), base + 3);
	vfr_irqs_destroy(irqs);
	assert_int_equal(test_count_fds(), base);
}

static void test_ownership_on_success(void **state)
{
	(void)state;
	int base = test_count_fds();
	struct vfurt_irqs *irqs = make_irqs(NULL);
	int fds[4];

	for (int i = 0; i < 4; i++)
		fds[i] = new_efd();
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 4, NULL, 0, fds, 4,
				 NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_true(fd_open(fds[i]));
	assert_int_equal(test_count_fds(), base + 4);
	vfr_irqs_destroy(irqs);
	for (int i = 0; i < 4; i++)
		assert_false(fd_open(fds[i]));
	assert_int_equal(test_count_fds(), base);
}

/* ---- client loss and reset -------------------------------------------- */

static void test_release_client(void **state)
{
	(void)state;
	int base = test_count_fds();
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);
	int ifd = new_efd();
	int ufd = new_efd();

	close_all(rd, 4);
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_INTX, 0, 1, NULL, 0, &ifd, 1,
				 NULL), 0);
	assert_int_equal(irq_set(irqs, D_EFD | A_UNMASK, VFURT_IRQ_INTX, 0, 1, NULL, 0, &ufd, 1,
				 NULL), 0);
	assert_int_equal(test_count_fds(), base + 6);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_INTX, 0), 0); /* automasks */
	assert_int_equal(irq_set(irqs, D_NONE | A_MASK, VFURT_IRQ_MSIX, 0, 1, NULL, 0, NULL, 0,
				 NULL), 0);
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 1, true);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 1), 0);

	vfr_irqs_release_client(irqs);
	assert_int_equal(test_count_fds(), base);
	for (uint32_t v = 0; v < 4; v++)
		assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, v));
	assert_false(vfr_irqs_enabled(irqs, VFURT_IRQ_INTX, 0));
	/* device state kept: pending and guest mask */
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 1));

	/* A new client attaches: client masks are gone, the guest mask is not. */
	int fds[4];
	for (int i = 0; i < 4; i++) {
		int fd = new_efd();

		rd[i] = dup(fd);
		fds[i] = fd;
	}
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_MSIX, 0, 4, NULL, 0, fds, 4,
				 NULL), 0);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(efd_read(rd[0]), 1);
	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 1, false);
	assert_int_equal(efd_read(rd[1]), 1);
	ifd = new_efd();
	int ird = dup(ifd);
	assert_int_equal(irq_set(irqs, D_EFD | A_TRIG, VFURT_IRQ_INTX, 0, 1, NULL, 0, &ifd, 1,
				 NULL), 0);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_INTX, 0), 0); /* automask cleared */
	assert_int_equal(efd_read(ird), 1);
	close(ird);
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
	assert_int_equal(test_count_fds(), base);
}

static void test_reset(void **state)
{
	(void)state;
	int rd[4];
	struct vfurt_irqs *irqs = make_irqs(rd);

	vfr_irqs_set_guest_mask(irqs, VFURT_IRQ_MSIX, 0, true);
	vfr_irqs_set_func_mask(irqs, VFURT_IRQ_MSIX, true);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 1), 0);
	assert_true(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 0));

	vfr_irqs_reset(irqs);
	assert_false(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 0));
	assert_false(vfr_irqs_pending(irqs, VFURT_IRQ_MSIX, 1));
	for (uint32_t v = 0; v < 4; v++)
		assert_true(vfr_irqs_enabled(irqs, VFURT_IRQ_MSIX, v));
	/* reset dropped the pending bits, nothing was fired */
	assert_int_equal(efd_read(rd[0]), 0);
	assert_int_equal(efd_read(rd[1]), 0);
	/* masks are clear: triggers go straight out */
	assert_int_equal(vfr_irqs_trigger(irqs, VFURT_IRQ_MSIX, 0), 0);
	assert_int_equal(efd_read(rd[0]), 1);
	close_all(rd, 4);
	vfr_irqs_destroy(irqs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_setup_and_info),
		cmocka_unit_test(test_setup_again_closes_fds),
		cmocka_unit_test(test_set_bad_index),
		cmocka_unit_test(test_set_index_without_vectors),
		cmocka_unit_test(test_set_bad_flags),
		cmocka_unit_test(test_set_range),
		cmocka_unit_test(test_set_count_zero),
		cmocka_unit_test(test_set_bool_short),
		cmocka_unit_test(test_set_bool_values),
		cmocka_unit_test(test_set_eventfd_count),
		cmocka_unit_test(test_set_eventfd_bad_fd),
		cmocka_unit_test(test_set_eventfd_duplicate),
		cmocka_unit_test(test_set_fds_with_other_data),
		cmocka_unit_test(test_set_mask_not_maskable),
		cmocka_unit_test(test_set_failure_changes_nothing),
		cmocka_unit_test(test_trigger_writes_eventfd),
		cmocka_unit_test(test_trigger_errors),
		cmocka_unit_test(test_trigger_saturated_counter),
		cmocka_unit_test(test_non_eventfd_refused),
		cmocka_unit_test(test_set_trigger_loopback),
		cmocka_unit_test(test_client_mask_pending_unmask),
		cmocka_unit_test(test_guest_mask),
		cmocka_unit_test(test_func_mask),
		cmocka_unit_test(test_stacked_masks),
		cmocka_unit_test(test_intx_automask),
		cmocka_unit_test(test_bool_data),
		cmocka_unit_test(test_deassign),
		cmocka_unit_test(test_replace_closes_old),
		cmocka_unit_test(test_disable_form),
		cmocka_unit_test(test_mask_unmask_notify_fds),
		cmocka_unit_test(test_ownership_on_success),
		cmocka_unit_test(test_release_client),
		cmocka_unit_test(test_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
