/* Interrupt state: eventfds, client/guest/function masks and pending bits. */
#include "irq.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vfurt/state.h>

/*
 * Concurrency: the control plane (SET_IRQS, masks from config space, reset,
 * disconnect) runs on the device's thread; vfr_irqs_trigger may also run
 * on queue pollers of other workers. The state a trigger touches is atomic:
 * pending is set before the masks are read, and every path that may deliver
 * claims the pending bit with an exchange, so exactly one of a racing
 * trigger and unmask signals the eventfd. An eventfd replaced or released by
 * the control plane is closed only after the sync hook has waited out every
 * trigger that may have loaded it (epoch synchronisation in the runtime).
 */
struct irq_vec {
	_Atomic int trigger_fd;   /* client's eventfd, -1 = none */
	int mask_fd;      /* SET_IRQS MASK|EVENTFD notification fd, -1 = none */
	int unmask_fd;    /* SET_IRQS UNMASK|EVENTFD notification fd, -1 = none */
	_Atomic bool client_masked;
	_Atomic bool guest_masked;
	_Atomic bool pending;
};

struct irq_index {
	uint32_t count;
	struct irq_vec *v;
	_Atomic bool func_masked;
};

struct vfurt_irqs {
	struct irq_index idx[VFURT_IRQ_NUM];
	_Atomic uint64_t raised;
	_Atomic uint64_t written;
	vfurt_irq_signal_fn signal;   /* NULL: write(2) here */
	void *signal_arg;
	void (*sync)(void *arg);      /* wait out concurrent triggers */
	void *sync_arg;
	bool (*resample)(void *arg);  /* INTx: is the line still asserted? */
	void *resample_arg;
	/* eventfds the client may have installed at once (0: no limit) */
	uint32_t max_fds;
	/* bumped whenever the INTx unmask eventfd changes: the host rewatches */
	_Atomic uint32_t unmask_gen;
	/* fds retired by the control plane, closed after sync */
	int *retired;
	size_t nr_retired;
	size_t cap_retired;
};

#define SET_FLAGS_KNOWN (VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* Queue an fd that a concurrent trigger may still hold; closed by
 * flush_retired() after the sync hook. Falls back to sync + close when the
 * list cannot grow. */
static void retire_fd(struct vfurt_irqs *irqs, int fd)
{
	if (fd < 0)
		return;
	if (!irqs->sync) {
		close(fd);
		return;
	}
	if (irqs->nr_retired == irqs->cap_retired) {
		size_t ncap = irqs->cap_retired ? irqs->cap_retired * 2 : 16;
		int *n = realloc(irqs->retired, ncap * sizeof(*n));

		if (!n) {
			irqs->sync(irqs->sync_arg);
			close(fd);
			return;
		}
		irqs->retired = n;
		irqs->cap_retired = ncap;
	}
	irqs->retired[irqs->nr_retired++] = fd;
}

static void flush_retired(struct vfurt_irqs *irqs)
{
	if (!irqs->nr_retired)
		return;
	if (irqs->sync)
		irqs->sync(irqs->sync_arg);
	for (size_t i = 0; i < irqs->nr_retired; i++)
		close(irqs->retired[i]);
	irqs->nr_retired = 0;
}

static void vec_init(struct irq_vec *v)
{
	atomic_init(&v->trigger_fd, -1);
	v->mask_fd = -1;
	v->unmask_fd = -1;
	atomic_init(&v->client_masked, false);
	atomic_init(&v->guest_masked, false);
	atomic_init(&v->pending, false);
}

/* Control plane: detach and retire a vector's fds. */
static void vec_release_fds(struct vfurt_irqs *irqs, struct irq_vec *v)
{
	retire_fd(irqs, atomic_exchange(&v->trigger_fd, -1));
	retire_fd(irqs, v->mask_fd);
	retire_fd(irqs, v->unmask_fd);
	v->mask_fd = -1;
	v->unmask_fd = -1;
}

static void vec_close_fds(struct irq_vec *v)
{
	int fd = atomic_exchange(&v->trigger_fd, -1);

	close_fd(&fd);
	close_fd(&v->mask_fd);
	close_fd(&v->unmask_fd);
}

static struct irq_vec *get_vec(const struct vfurt_irqs *irqs, uint32_t index, uint32_t vector)
{
	if (index >= VFURT_IRQ_NUM || vector >= irqs->idx[index].count)
		return NULL;
	return &irqs->idx[index].v[vector];
}

/* Signal an eventfd. A saturated counter (EAGAIN) already means "interrupt
 * outstanding", so it counts as delivered. */
static bool eventfd_signal(struct vfurt_irqs *irqs, int fd)
{
	const uint64_t one = 1;
	ssize_t r;

	if (irqs->signal) {
		if (irqs->signal(irqs->signal_arg, fd))
			return false;
		atomic_fetch_add_explicit(&irqs->written, 1, memory_order_relaxed);
		return true;
	}
	do {
		r = write(fd, &one, sizeof(one));
	} while (r < 0 && errno == EINTR);
	if (r == (ssize_t)sizeof(one) || (r < 0 && errno == EAGAIN)) {
		atomic_fetch_add_explicit(&irqs->written, 1, memory_order_relaxed);
		return true;
	}
	return false;
}

static bool vec_masked(const struct irq_index *ix, const struct irq_vec *v)
{
	return atomic_load(&v->client_masked) || atomic_load(&v->guest_masked) ||
	       atomic_load(&ix->func_masked);
}

/* Fire v if it is pending, unmasked and has an eventfd. Claims the pending
 * bit first so that concurrent deliverers signal once. Returns -ENOENT when
 * there is no eventfd (left pending). */
static int vec_deliver(struct vfurt_irqs *irqs, uint32_t index, struct irq_vec *v)
{
	int fd;

	if (vec_masked(&irqs->idx[index], v) || !atomic_load(&v->pending))
		return 0;
	fd = atomic_load_explicit(&v->trigger_fd, memory_order_acquire);
	if (fd < 0)
		return -ENOENT;
	if (!atomic_exchange(&v->pending, false))
		return 0; /* somebody else delivered it */
	if (!eventfd_signal(irqs, fd)) {
		atomic_store(&v->pending, true); /* the next trigger or unmask retries */
		return 0;
	}
	if (index == VFURT_IRQ_INTX)
		atomic_store(&v->client_masked, true); /* level: automasked until unmask */
	return 0;
}

/*
 * Control thread, after an unmask: INTx is a level, so it is fired again
 * exactly when the device still asserts the line. Without the
 * resample the guest would get an interrupt for work it already consumed
 * on every EOI (Linux: "irq N: nobody cared").
 */
static void vec_redeliver(struct vfurt_irqs *irqs, uint32_t index, struct irq_vec *v)
{
	/* the unmask also re-fires a line that is still asserted with nothing
	 * new: the client deasserted it at its EOI, and the guest may not have
	 * taken the interrupt yet (QEMU EOIs on any BAR access) */
	if (index == VFURT_IRQ_INTX && irqs->resample && !vec_masked(&irqs->idx[index], v))
		atomic_store(&v->pending, irqs->resample(irqs->resample_arg));
	(void)vec_deliver(irqs, index, v);
}

static void index_deliver_all(struct vfurt_irqs *irqs, uint32_t index)
{
	struct irq_index *ix = &irqs->idx[index];

	for (uint32_t i = 0; i < ix->count; i++)
		vec_redeliver(irqs, index, &ix->v[i]);
}

struct vfurt_irqs *vfr_irqs_create(void)
{
	return calloc(1, sizeof(struct vfurt_irqs));
}

static void index_free(struct irq_index *ix)
{
	for (uint32_t i = 0; i < ix->count; i++)
		vec_close_fds(&ix->v[i]);
	free(ix->v);
	ix->v = NULL;
	ix->count = 0;
	atomic_store(&ix->func_masked, false);
}

void vfr_irqs_destroy(struct vfurt_irqs *irqs)
{
	if (!irqs)
		return;
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++)
		index_free(&irqs->idx[i]);
	for (size_t i = 0; i < irqs->nr_retired; i++)
		close(irqs->retired[i]);
	free(irqs->retired);
	free(irqs);
}

int vfr_irqs_setup(struct vfurt_irqs *irqs, uint32_t index, uint32_t count)
{
	struct irq_vec *v = NULL;

	assert(irqs);
	if (index >= VFURT_IRQ_NUM || count > VFURT_MAX_IRQ_VECTORS)
		return -EINVAL;
	if (count > 0) {
		v = malloc((size_t)count * sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (uint32_t i = 0; i < count; i++)
			vec_init(&v[i]);
	}
	index_free(&irqs->idx[index]);
	irqs->idx[index].v = v;
	irqs->idx[index].count = count;
	atomic_fetch_add(&irqs->unmask_gen, 1);
	return 0;
}

uint32_t vfr_irqs_count(const struct vfurt_irqs *irqs, uint32_t index)
{
	assert(irqs);
	return index < VFURT_IRQ_NUM ? irqs->idx[index].count : 0;
}

uint32_t vfr_irqs_info_flags(const struct vfurt_irqs *irqs, uint32_t index)
{
	assert(irqs);
	switch (index) {
	case VFURT_IRQ_INTX:
		return VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
	case VFURT_IRQ_MSI:
	case VFURT_IRQ_MSIX:
		return VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_NORESIZE;
	case VFURT_IRQ_ERR:
	case VFURT_IRQ_REQ:
		/* as the kernel's vfio-pci: trigger only, one fixed vector */
		return VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
	default:
		return 0;
	}
}

static bool one_bit(uint32_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/*
 * As the kernel's vfio-pci (eventfd_ctx_fdget): only eventfds. Anything
 * else is a way to block a worker (a pipe nobody reads fills, a regular
 * file always polls readable). Where /proc is not mounted the type cannot
 * be told and the fd is taken.
 */
static bool fd_is_eventfd(int fd)
{
	char path[40], link[32];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return access("/proc/self/fd", F_OK) != 0;
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

/* Check the descriptors of a DATA_EVENTFD request without taking them. */
static int check_fds(const int *fds, size_t nfds)
{
	for (size_t i = 0; i < nfds; i++) {
		if (fds[i] == -1)
			continue;
		if (fds[i] < 0 || fcntl(fds[i], F_GETFD) < 0)
			return -EBADF;
		if (!fd_is_eventfd(fds[i]))
			return -EINVAL;
		/* One descriptor in two slots would be closed twice later. */
		for (size_t j = 0; j < i; j++)
			if (fds[j] == fds[i])
				return -EINVAL;
	}
	return 0;
}

static int *action_slot(struct irq_vec *v, uint32_t action)
{
	if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
		return (int *)&v->trigger_fd; /* read only here, on the control thread */
	return action == VFIO_IRQ_SET_ACTION_MASK ? &v->mask_fd : &v->unmask_fd;
}

/* Eventfds the client's requests hold now, over every index and slot. */
static uint64_t held_fds(const struct vfurt_irqs *irqs)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++)
		for (uint32_t j = 0; j < irqs->idx[i].count; j++) {
			const struct irq_vec *v = &irqs->idx[i].v[j];

			n += (atomic_load(&v->trigger_fd) >= 0) + (v->mask_fd >= 0) +
			     (v->unmask_fd >= 0);
		}
	return n;
}

/* Would installing fds for set exceed the client's quota? */
static int check_quota(const struct vfurt_irqs *irqs, const struct vfio_irq_set *set,
		       uint32_t action, size_t nfds)
{
	const struct irq_index *ix = &irqs->idx[set->index];
	uint64_t held, freed = 0, taken = nfds;

	if (!irqs->max_fds || nfds == 0)
		return 0;
	held = held_fds(irqs);
	for (uint32_t i = 0; i < set->count; i++)
		freed += *action_slot((struct irq_vec *)&ix->v[set->start + i], action) >= 0;
	return held - freed + taken > irqs->max_fds ? -EMFILE : 0;
}

static int set_validate(const struct vfurt_irqs *irqs, const struct vfio_irq_set *set,
			const uint8_t *data, size_t data_len, const int *fds, size_t nfds)
{
	uint32_t data_type = set->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	uint32_t action = set->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	uint32_t vectors;

	if (set->index >= VFURT_IRQ_NUM)
		return -EINVAL;
	vectors = irqs->idx[set->index].count;
	if (vectors == 0)
		return -EINVAL;
	if ((set->flags & ~(uint32_t)SET_FLAGS_KNOWN) || !one_bit(data_type) || !one_bit(action))
		return -EINVAL;
	if (set->start >= vectors || (uint64_t)set->start + set->count > vectors)
		return -EINVAL;
	if (set->count == 0 && !(data_type == VFIO_IRQ_SET_DATA_NONE &&
				 action == VFIO_IRQ_SET_ACTION_TRIGGER))
		return -EINVAL;
	if (action != VFIO_IRQ_SET_ACTION_TRIGGER &&
	    !(vfr_irqs_info_flags(irqs, set->index) & VFIO_IRQ_INFO_MASKABLE))
		return -EINVAL;

	switch (data_type) {
	case VFIO_IRQ_SET_DATA_NONE:
		return nfds == 0 ? 0 : -EINVAL;
	case VFIO_IRQ_SET_DATA_BOOL:
		if (nfds != 0 || data_len < set->count || !data)
			return -EINVAL;
		for (uint32_t i = 0; i < set->count; i++)
			if (data[i] > 1)
				return -EINVAL;
		return 0;
	default: /* VFIO_IRQ_SET_DATA_EVENTFD */
		if (nfds != 0 && nfds != set->count)
			return -EINVAL;
		if (nfds != 0 && !fds)
			return -EINVAL;
		{
			int rc = check_fds(fds, nfds);

			return rc ? rc : check_quota(irqs, set, action, nfds);
		}
	}
}

/* Install fds (or -1 for all when nfds == 0) into the slot chosen by action. */
static void set_eventfds(struct vfurt_irqs *irqs, const struct vfio_irq_set *set,
			 uint32_t action, const int *fds, size_t nfds)
{
	struct irq_index *ix = &irqs->idx[set->index];

	for (uint32_t i = 0; i < set->count; i++) {
		struct irq_vec *v = &ix->v[set->start + i];
		int nfd = nfds ? fds[i] : -1;
		int *slot;

		if (action == VFIO_IRQ_SET_ACTION_TRIGGER) {
			int old = atomic_exchange_explicit(&v->trigger_fd, nfd,
							   memory_order_acq_rel);

			if (old != nfd)
				retire_fd(irqs, old);
			continue;
		}
		slot = action == VFIO_IRQ_SET_ACTION_MASK ? &v->mask_fd : &v->unmask_fd;
		if (*slot != nfd)
			retire_fd(irqs, *slot);
		*slot = nfd;
		if (slot == &v->unmask_fd && set->index == VFURT_IRQ_INTX)
			atomic_fetch_add(&irqs->unmask_gen, 1);
	}
	flush_retired(irqs);
}

/* Eventfds are signalled and read from workers that must never block: a
 * client's blocking eventfd at its maximum count would stall a write. */
static void set_nonblocking(const int *fds, size_t nfds)
{
	for (size_t i = 0; i < nfds; i++) {
		int fl = fds[i] >= 0 ? fcntl(fds[i], F_GETFL) : -1;

		if (fl >= 0 && !(fl & O_NONBLOCK))
			(void)fcntl(fds[i], F_SETFL, fl | O_NONBLOCK);
	}
}

/* Clear the client mask of vectors [start, start+count) (only those whose
 * byte in sel is non-zero, if sel is given) and fire those still pending
 * (INTx: still asserted, after the resample). */
static void unmask_vectors(struct vfurt_irqs *irqs, uint32_t index, uint32_t start,
			   uint32_t count, const uint8_t *sel, vfurt_irq_state_fn state_fn,
			   void *arg)
{
	struct irq_index *ix = &irqs->idx[index];

	for (uint32_t i = 0; i < count; i++)
		if (!sel || sel[i])
			atomic_store(&ix->v[start + i].client_masked, false);
	if (state_fn)
		state_fn(arg, index, start, count, false);
	for (uint32_t i = 0; i < count; i++)
		vec_redeliver(irqs, index, &ix->v[start + i]);
}

int vfr_irqs_set(struct vfurt_irqs *irqs, const struct vfio_irq_set *set,
		   const uint8_t *data, size_t data_len, const int *fds, size_t nfds,
		   vfurt_irq_state_fn state_fn, void *arg)
{
	uint32_t data_type, action;
	struct irq_index *ix;
	int ret;

	assert(irqs && set);
	/* Everything in set/data/fds is client controlled. */
	ret = set_validate(irqs, set, data, data_len, fds, nfds);
	if (ret < 0)
		return ret;

	/* From here on nothing fails: the request is applied as a whole. */
	data_type = set->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	action = set->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	ix = &irqs->idx[set->index];

	if (set->count == 0) { /* DATA_NONE|ACTION_TRIGGER: disable the index */
		for (uint32_t i = 0; i < ix->count; i++)
			retire_fd(irqs, atomic_exchange(&ix->v[i].trigger_fd, -1));
		flush_retired(irqs);
		return 0;
	}

	if (data_type == VFIO_IRQ_SET_DATA_EVENTFD) {
		set_nonblocking(fds, nfds);
		set_eventfds(irqs, set, action, fds, nfds);
		return 0;
	}

	for (uint32_t i = 0; i < set->count; i++) {
		uint32_t vector = set->start + i;
		struct irq_vec *v = &ix->v[vector];

		if (data_type == VFIO_IRQ_SET_DATA_BOOL && data[i] == 0)
			continue;
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
			(void)vfr_irqs_trigger(irqs, set->index, vector); /* -ENOENT: left pending */
		else if (action == VFIO_IRQ_SET_ACTION_MASK)
			atomic_store(&v->client_masked, true);
	}

	if (action == VFIO_IRQ_SET_ACTION_MASK && state_fn)
		state_fn(arg, set->index, set->start, set->count, true);
	if (action == VFIO_IRQ_SET_ACTION_UNMASK)
		unmask_vectors(irqs, set->index, set->start, set->count,
			       data_type == VFIO_IRQ_SET_DATA_BOOL ? data : NULL, state_fn, arg);
	return 0;
}

void vfr_irqs_set_max_fds(struct vfurt_irqs *irqs, uint32_t max)
{
	irqs->max_fds = max;
}

int vfr_irqs_intx_unmask_fd(const struct vfurt_irqs *irqs, uint32_t *gen)
{
	const struct irq_index *ix = &irqs->idx[VFURT_IRQ_INTX];

	if (gen)
		*gen = atomic_load(&irqs->unmask_gen);
	return ix->count ? ix->v[0].unmask_fd : -1;
}

void vfr_irqs_intx_unmask_event(struct vfurt_irqs *irqs, vfurt_irq_state_fn state_fn,
				  void *arg)
{
	int fd = vfr_irqs_intx_unmask_fd(irqs, NULL);
	uint64_t count;

	/* non-blocking (set_nonblocking): a spurious wake reads nothing */
	if (fd < 0 || read(fd, &count, sizeof(count)) != (ssize_t)sizeof(count))
		return;
	unmask_vectors(irqs, VFURT_IRQ_INTX, 0, 1, NULL, state_fn, arg);
}

int vfr_irqs_trigger(struct vfurt_irqs *irqs, uint32_t index, uint32_t vector)
{
	struct irq_vec *v;

	assert(irqs);
	v = get_vec(irqs, index, vector);
	if (!v)
		return -EINVAL;
	atomic_fetch_add_explicit(&irqs->raised, 1, memory_order_relaxed);
	/* pending before the masks are read: pairs with unmask clearing the
	 * mask before it looks at pending (both seq_cst) */
	atomic_store(&v->pending, true);
	return vec_deliver(irqs, index, v);
}

void vfr_irqs_set_guest_mask(struct vfurt_irqs *irqs, uint32_t index, uint32_t vector,
			       bool masked)
{
	struct irq_vec *v;

	assert(irqs);
	v = get_vec(irqs, index, vector);
	if (!v)
		return;
	atomic_store(&v->guest_masked, masked);
	if (!masked)
		(void)vec_deliver(irqs, index, v);
}

void vfr_irqs_set_func_mask(struct vfurt_irqs *irqs, uint32_t index, bool masked)
{
	assert(irqs);
	if (index >= VFURT_IRQ_NUM)
		return;
	atomic_store(&irqs->idx[index].func_masked, masked);
	if (!masked)
		index_deliver_all(irqs, index);
}

bool vfr_irqs_pending(const struct vfurt_irqs *irqs, uint32_t index, uint32_t vector)
{
	const struct irq_vec *v;

	assert(irqs);
	v = get_vec(irqs, index, vector);
	return v && atomic_load(&v->pending);
}

bool vfr_irqs_enabled(const struct vfurt_irqs *irqs, uint32_t index, uint32_t vector)
{
	const struct irq_vec *v;

	assert(irqs);
	v = get_vec(irqs, index, vector);
	return v && atomic_load(&v->trigger_fd) >= 0;
}

void vfr_irqs_release_client(struct vfurt_irqs *irqs)
{
	assert(irqs);
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++) {
		struct irq_index *ix = &irqs->idx[i];

		for (uint32_t j = 0; j < ix->count; j++) {
			vec_release_fds(irqs, &ix->v[j]);
			atomic_store(&ix->v[j].client_masked, false);
		}
	}
	atomic_fetch_add(&irqs->unmask_gen, 1);
	flush_retired(irqs);
}

void vfr_irqs_reset(struct vfurt_irqs *irqs)
{
	assert(irqs);
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++) {
		struct irq_index *ix = &irqs->idx[i];

		atomic_store(&ix->func_masked, false);
		for (uint32_t j = 0; j < ix->count; j++) {
			atomic_store(&ix->v[j].pending, false);
			atomic_store(&ix->v[j].guest_masked, false);
		}
	}
}

void vfr_irqs_get_stats(const struct vfurt_irqs *irqs, struct vfurt_irq_stats *st)
{
	assert(irqs && st);
	st->raised = atomic_load_explicit(&irqs->raised, memory_order_relaxed);
	st->written = atomic_load_explicit(&irqs->written, memory_order_relaxed);
}

void vfr_irqs_set_signal(struct vfurt_irqs *irqs, vfurt_irq_signal_fn fn, void *arg)
{
	irqs->signal = fn;
	irqs->signal_arg = arg;
}

void vfr_irqs_set_resample(struct vfurt_irqs *irqs, bool (*fn)(void *arg), void *arg)
{
	assert(irqs);
	irqs->resample = fn;
	irqs->resample_arg = arg;
}

void vfr_irqs_set_sync(struct vfurt_irqs *irqs, void (*fn)(void *arg), void *arg)
{
	irqs->sync = fn;
	irqs->sync_arg = arg;
}

/* ---- state images ------------------------------------------------------ */

/* Vector state byte of a VFR_IRQS_TAG_STATE record. */
#define ST_CLIENT_MASKED 0x1u
#define ST_GUEST_MASKED 0x2u
#define ST_PENDING 0x4u
#define ST_KNOWN (ST_CLIENT_MASKED | ST_GUEST_MASKED | ST_PENDING)
/* u32 vector count, u8 function mask, 3 zero bytes, then a byte per vector */
#define ST_HDR 8u

/* fd record tags of a VFR_IRQS_TAG_FDS section */
#define FD_SLOTS 3u /* trigger, mask, unmask: VFIO_IRQ_SET_ACTION_* bit order */
#define FD_TAG(index, slot, vector) ((((index) + 1u) << 16) | ((slot) << 12) | (vector))
_Static_assert(VFURT_MAX_IRQ_VECTORS <= (1u << 12), "vector fits an fd tag");
_Static_assert(VFIO_IRQ_SET_ACTION_MASK == 1u << 3 && VFIO_IRQ_SET_ACTION_UNMASK == 1u << 4 &&
	       VFIO_IRQ_SET_ACTION_TRIGGER == 1u << 5, "action bits");

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int vfr_irqs_save(const struct vfurt_irqs *irqs, struct vfurt_state *s)
{
	uint8_t buf[ST_HDR + VFURT_MAX_IRQ_VECTORS];
	int err;

	if (!irqs || !s)
		return -EINVAL;
	err = vfurt_state_open(s, VFR_IRQS_TAG_STATE);
	if (err < 0)
		return err;
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++) {
		const struct irq_index *ix = &irqs->idx[i];

		if (!ix->count)
			continue;
		memset(buf, 0, ST_HDR);
		put_le32(buf, ix->count);
		buf[4] = atomic_load(&ix->func_masked);
		for (uint32_t j = 0; j < ix->count; j++) {
			const struct irq_vec *v = &ix->v[j];

			buf[ST_HDR + j] = (uint8_t)((atomic_load(&v->client_masked) ? ST_CLIENT_MASKED : 0) |
						    (atomic_load(&v->guest_masked) ? ST_GUEST_MASKED : 0) |
						    (atomic_load(&v->pending) ? ST_PENDING : 0));
		}
		err = vfurt_state_put(s, 1 + i, buf, ST_HDR + ix->count);
		if (err < 0)
			goto err_close;
	}
	return vfurt_state_close(s);

err_close:
	(void)vfurt_state_close(s);
	return err;
}

/* A VFR_IRQS_TAG_STATE record of index i is well formed and fits irqs. */
static bool state_rec_ok(const struct vfurt_irqs *irqs, uint32_t i, const uint8_t *p, size_t len)
{
	uint32_t count;

	if (len < ST_HDR)
		return false;
	count = get_le32(p);
	if (count != irqs->idx[i].count || len != ST_HDR + (size_t)count)
		return false;
	if (p[4] > 1 || p[5] || p[6] || p[7])
		return false;
	for (uint32_t j = 0; j < count; j++)
		if (p[ST_HDR + j] & ~ST_KNOWN)
			return false;
	return true;
}

int vfr_irqs_restore(struct vfurt_irqs *irqs, const struct vfurt_state_cur *c)
{
	const uint8_t *rec[VFURT_IRQ_NUM] = { NULL };
	struct vfurt_state_cur sec;
	int err;

	if (!irqs || !c)
		return -EINVAL;
	err = vfurt_state_sub(c, VFR_IRQS_TAG_STATE, &sec);
	if (err == -ENOENT)
		return 0;
	if (err < 0)
		return err;
	/* check every record before changing anything */
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++) {
		const void *val;
		size_t len;

		err = vfurt_state_find(&sec, 1 + i, &val, &len);
		if (err == -ENOENT)
			continue;
		if (err < 0)
			return err;
		if (!state_rec_ok(irqs, i, val, len))
			return -EBADMSG;
		rec[i] = val;
	}
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++) {
		struct irq_index *ix = &irqs->idx[i];

		if (!rec[i])
			continue;
		atomic_store(&ix->func_masked, rec[i][4] != 0);
		for (uint32_t j = 0; j < ix->count; j++) {
			uint8_t b = rec[i][ST_HDR + j];

			atomic_store(&ix->v[j].client_masked, (b & ST_CLIENT_MASKED) != 0);
			atomic_store(&ix->v[j].guest_masked, (b & ST_GUEST_MASKED) != 0);
			atomic_store(&ix->v[j].pending, (b & ST_PENDING) != 0);
		}
	}
	return 0;
}

/* The fd of slot (FD_TAG order) of v. */
static int vec_slot_fd(const struct irq_vec *v, uint32_t slot)
{
	if (slot == 0)
		return atomic_load(&v->trigger_fd);
	return slot == 1 ? v->mask_fd : v->unmask_fd;
}

int vfr_irqs_save_fds(const struct vfurt_irqs *irqs, struct vfurt_state *s)
{
	int err;

	if (!irqs || !s)
		return -EINVAL;
	err = vfurt_state_open(s, VFR_IRQS_TAG_FDS);
	if (err < 0)
		return err;
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++)
		for (uint32_t j = 0; j < irqs->idx[i].count; j++)
			for (uint32_t slot = 0; slot < FD_SLOTS; slot++) {
				int fd = vec_slot_fd(&irqs->idx[i].v[j], slot);

				if (fd < 0)
					continue;
				err = vfurt_state_put_fd(s, FD_TAG(i, slot, j), fd);
				if (err < 0)
					goto err_close;
			}
	return vfurt_state_close(s);

err_close:
	(void)vfurt_state_close(s);
	return err;
}

/*
 * What vfr_irqs_restore_fds is about to install: for index i, vector j,
 * slot k, fd[base[i] + j * FD_SLOTS + k] is FD_NONE (left alone),
 * FD_WANTED (a record names it) or the fd taken from the image.
 */
#define FD_NONE (-1)
#define FD_WANTED (-2)

struct fd_plan {
	size_t base[VFURT_IRQ_NUM];
	size_t n;
	int *fd;
};

/* Decode an fd record tag: 1 with *pos the plan entry of one of irqs'
 * slots, 0 for a tag outside the fd tag space (a newer writer's record:
 * skipped), -EBADMSG for a slot this device lacks. */
static int fd_tag_decode(const struct vfurt_irqs *irqs, uint32_t tag, size_t *pos,
			 const struct fd_plan *p)
{
	uint32_t hi = tag >> 16, slot = (tag >> 12) & 0xfu, vector = tag & 0xfffu;

	if ((tag & VFURT_STATE_SECTION) || hi == 0 || hi > VFURT_IRQ_NUM)
		return 0;
	if (slot >= FD_SLOTS || vector >= irqs->idx[hi - 1].count)
		return -EBADMSG;
	*pos = p->base[hi - 1] + (size_t)vector * FD_SLOTS + slot;
	return 1;
}

static void plan_close(struct fd_plan *p)
{
	for (size_t k = 0; k < p->n; k++)
		if (p->fd[k] >= 0)
			close(p->fd[k]);
	free(p->fd);
}

/* Pass 1: validate the records and mark the slots they name. Returns the
 * number of fds to take or -EBADMSG. */
static int plan_mark(const struct vfurt_irqs *irqs, const struct vfurt_state_cur *sec,
		     struct fd_plan *p)
{
	struct vfurt_state_cur cur = *sec;
	const void *val;
	uint32_t tag;
	size_t len, pos;
	int n = 0, r;

	while ((r = vfurt_state_next(&cur, &tag, &val, &len)) == 1) {
		int d = fd_tag_decode(irqs, tag, &pos, p);

		if (d < 0)
			return d;
		if (d == 0)
			continue;
		if (p->fd[pos] != FD_NONE)
			return -EBADMSG; /* the same slot twice */
		p->fd[pos] = FD_WANTED;
		n++;
	}
	return r < 0 ? r : n;
}

/* Pass 2: take the marked fds out of the image. */
static int plan_take(const struct vfurt_irqs *irqs, const struct vfurt_state_cur *sec,
		     struct fd_plan *p)
{
	struct vfurt_state_cur cur = *sec;
	const void *val;
	uint32_t tag;
	size_t len, pos;
	int r;

	while ((r = vfurt_state_next(&cur, &tag, &val, &len)) == 1) {
		int fd;

		if (fd_tag_decode(irqs, tag, &pos, p) != 1)
			continue;
		fd = vfurt_state_take_fd_rec(cur.s, val, len);
		if (fd < 0)
			return fd;
		p->fd[pos] = fd;
		/* as SET_IRQS (check_fds): only eventfds */
		if (!fd_is_eventfd(fd))
			return -EINVAL;
	}
	return r;
}

/* Would the planned fds take the client past max_fds? */
static int plan_quota(const struct vfurt_irqs *irqs, const struct fd_plan *p, int n)
{
	uint64_t freed = 0;

	if (!irqs->max_fds)
		return 0;
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++)
		for (uint32_t j = 0; j < irqs->idx[i].count; j++)
			for (uint32_t k = 0; k < FD_SLOTS; k++)
				freed += p->fd[p->base[i] + (size_t)j * FD_SLOTS + k] != FD_NONE &&
					 vec_slot_fd(&irqs->idx[i].v[j], k) >= 0;
	return held_fds(irqs) - freed + (uint64_t)n > irqs->max_fds ? -EMFILE : 0;
}

/* Pass 3: install, as set_eventfds does. Nothing fails. */
static void plan_install(struct vfurt_irqs *irqs, struct fd_plan *p)
{
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++)
		for (uint32_t j = 0; j < irqs->idx[i].count; j++) {
			struct irq_vec *v = &irqs->idx[i].v[j];
			int *fd = &p->fd[p->base[i] + (size_t)j * FD_SLOTS];

			set_nonblocking(fd, FD_SLOTS);
			if (fd[0] >= 0)
				retire_fd(irqs, atomic_exchange_explicit(&v->trigger_fd, fd[0],
									 memory_order_acq_rel));
			if (fd[1] >= 0) {
				retire_fd(irqs, v->mask_fd);
				v->mask_fd = fd[1];
			}
			if (fd[2] >= 0) {
				retire_fd(irqs, v->unmask_fd);
				v->unmask_fd = fd[2];
				if (i == VFURT_IRQ_INTX)
					atomic_fetch_add(&irqs->unmask_gen, 1);
			}
			fd[0] = fd[1] = fd[2] = FD_NONE; /* irqs owns them now */
		}
	flush_retired(irqs);
}

int vfr_irqs_restore_fds(struct vfurt_irqs *irqs, const struct vfurt_state_cur *c)
{
	struct vfurt_state_cur sec;
	struct fd_plan p = { .n = 0 };
	int err, n;

	if (!irqs || !c)
		return -EINVAL;
	err = vfurt_state_sub(c, VFR_IRQS_TAG_FDS, &sec);
	if (err == -ENOENT)
		return 0;
	if (err < 0)
		return err;
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++) {
		p.base[i] = p.n;
		p.n += (size_t)irqs->idx[i].count * FD_SLOTS;
	}
	p.fd = malloc((p.n ? p.n : 1) * sizeof(*p.fd));
	if (!p.fd)
		return -ENOMEM;
	for (size_t k = 0; k < p.n; k++)
		p.fd[k] = FD_NONE;

	n = plan_mark(irqs, &sec, &p);
	if (n < 0) {
		err = n;
		goto err_plan;
	}
	err = plan_quota(irqs, &p, n);
	if (err < 0)
		goto err_plan;
	err = plan_take(irqs, &sec, &p);
	if (err < 0)
		goto err_plan;
	plan_install(irqs, &p);
	free(p.fd);
	return 0;

err_plan:
	plan_close(&p);
	return err;
}
