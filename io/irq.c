/* Interrupt state: eventfds, client/guest/function masks and pending bits. */
#include "irq.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

struct irq_vec {
	int trigger_fd;   /* client's eventfd, -1 = none */
	int mask_fd;      /* SET_IRQS MASK|EVENTFD notification fd, -1 = none */
	int unmask_fd;    /* SET_IRQS UNMASK|EVENTFD notification fd, -1 = none */
	bool client_masked;
	bool guest_masked;
	bool pending;
};

struct irq_index {
	uint32_t count;
	struct irq_vec *v;
	bool func_masked;
};

struct vfurt_irqs {
	struct irq_index idx[VFURT_IRQ_NUM];
	struct vfurt_irq_stats stats;
	vfurt_irq_signal_fn signal;   /* NULL: write(2) here */
	void *signal_arg;
};

#define SET_FLAGS_KNOWN (VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void vec_init(struct irq_vec *v)
{
	v->trigger_fd = -1;
	v->mask_fd = -1;
	v->unmask_fd = -1;
	v->client_masked = false;
	v->guest_masked = false;
	v->pending = false;
}

static void vec_close_fds(struct irq_vec *v)
{
	close_fd(&v->trigger_fd);
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
		irqs->stats.written++;
		return true;
	}
	do {
		r = write(fd, &one, sizeof(one));
	} while (r < 0 && errno == EINTR);
	if (r == (ssize_t)sizeof(one) || (r < 0 && errno == EAGAIN)) {
		irqs->stats.written++;
		return true;
	}
	return false;
}

static bool vec_masked(const struct irq_index *ix, const struct irq_vec *v)
{
	return v->client_masked || v->guest_masked || ix->func_masked;
}

/* Fire v if it is pending, unmasked and has an eventfd. */
static void vec_deliver(struct vfurt_irqs *irqs, uint32_t index, struct irq_vec *v)
{
	if (!v->pending || v->trigger_fd < 0 || vec_masked(&irqs->idx[index], v))
		return;
	if (!eventfd_signal(irqs, v->trigger_fd))
		return; /* stays pending; the next trigger or unmask retries */
	v->pending = false;
	if (index == VFURT_IRQ_INTX)
		v->client_masked = true; /* level interrupt: automasked until unmask */
}

static void index_deliver_all(struct vfurt_irqs *irqs, uint32_t index)
{
	struct irq_index *ix = &irqs->idx[index];

	for (uint32_t i = 0; i < ix->count; i++)
		vec_deliver(irqs, index, &ix->v[i]);
}

struct vfurt_irqs *vfurt_irqs_create(void)
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
	ix->func_masked = false;
}

void vfurt_irqs_destroy(struct vfurt_irqs *irqs)
{
	if (!irqs)
		return;
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++)
		index_free(&irqs->idx[i]);
	free(irqs);
}

int vfurt_irqs_setup(struct vfurt_irqs *irqs, uint32_t index, uint32_t count)
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
	return 0;
}

uint32_t vfurt_irqs_count(const struct vfurt_irqs *irqs, uint32_t index)
{
	assert(irqs);
	return index < VFURT_IRQ_NUM ? irqs->idx[index].count : 0;
}

uint32_t vfurt_irqs_info_flags(const struct vfurt_irqs *irqs, uint32_t index)
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
		return VFIO_IRQ_INFO_EVENTFD;
	default:
		return 0;
	}
}

static bool one_bit(uint32_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/* Check the descriptors of a DATA_EVENTFD request without taking them. */
static int check_fds(const int *fds, size_t nfds)
{
	for (size_t i = 0; i < nfds; i++) {
		if (fds[i] == -1)
			continue;
		if (fds[i] < 0 || fcntl(fds[i], F_GETFD) < 0)
			return -EBADF;
		/* One descriptor in two slots would be closed twice later. */
		for (size_t j = 0; j < i; j++)
			if (fds[j] == fds[i])
				return -EINVAL;
	}
	return 0;
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
	    !(vfurt_irqs_info_flags(irqs, set->index) & VFIO_IRQ_INFO_MASKABLE))
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
		return check_fds(fds, nfds);
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

		if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
			slot = &v->trigger_fd;
		else if (action == VFIO_IRQ_SET_ACTION_MASK)
			slot = &v->mask_fd;
		else
			slot = &v->unmask_fd;
		if (*slot != nfd)
			close_fd(slot);
		*slot = nfd;
	}
}

int vfurt_irqs_set(struct vfurt_irqs *irqs, const struct vfio_irq_set *set,
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
			close_fd(&ix->v[i].trigger_fd);
		return 0;
	}

	if (data_type == VFIO_IRQ_SET_DATA_EVENTFD) {
		set_eventfds(irqs, set, action, fds, nfds);
		return 0;
	}

	for (uint32_t i = 0; i < set->count; i++) {
		uint32_t vector = set->start + i;
		struct irq_vec *v = &ix->v[vector];

		if (data_type == VFIO_IRQ_SET_DATA_BOOL && data[i] == 0)
			continue;
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
			(void)vfurt_irqs_trigger(irqs, set->index, vector); /* -ENOENT: left pending */
		else
			v->client_masked = (action == VFIO_IRQ_SET_ACTION_MASK);
	}

	if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
		return 0;
	if (state_fn)
		state_fn(arg, set->index, set->start, set->count,
			 action == VFIO_IRQ_SET_ACTION_MASK);
	if (action == VFIO_IRQ_SET_ACTION_UNMASK)
		for (uint32_t i = 0; i < set->count; i++)
			vec_deliver(irqs, set->index, &ix->v[set->start + i]);
	return 0;
}

int vfurt_irqs_trigger(struct vfurt_irqs *irqs, uint32_t index, uint32_t vector)
{
	struct irq_vec *v;

	assert(irqs);
	v = get_vec(irqs, index, vector);
	if (!v)
		return -EINVAL;
	irqs->stats.raised++;
	v->pending = true;
	if (vec_masked(&irqs->idx[index], v))
		return 0;
	if (v->trigger_fd < 0)
		return -ENOENT;
	vec_deliver(irqs, index, v);
	return 0;
}

void vfurt_irqs_set_guest_mask(struct vfurt_irqs *irqs, uint32_t index, uint32_t vector,
			       bool masked)
{
	struct irq_vec *v;

	assert(irqs);
	v = get_vec(irqs, index, vector);
	if (!v)
		return;
	v->guest_masked = masked;
	if (!masked)
		vec_deliver(irqs, index, v);
}

void vfurt_irqs_set_func_mask(struct vfurt_irqs *irqs, uint32_t index, bool masked)
{
	assert(irqs);
	if (index >= VFURT_IRQ_NUM)
		return;
	irqs->idx[index].func_masked = masked;
	if (!masked)
		index_deliver_all(irqs, index);
}

bool vfurt_irqs_pending(const struct vfurt_irqs *irqs, uint32_t index, uint32_t vector)
{
	const struct irq_vec *v;

	assert(irqs);
	v = get_vec(irqs, index, vector);
	return v && v->pending;
}

bool vfurt_irqs_enabled(const struct vfurt_irqs *irqs, uint32_t index, uint32_t vector)
{
	const struct irq_vec *v;

	assert(irqs);
	v = get_vec(irqs, index, vector);
	return v && v->trigger_fd >= 0;
}

void vfurt_irqs_release_client(struct vfurt_irqs *irqs)
{
	assert(irqs);
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++) {
		struct irq_index *ix = &irqs->idx[i];

		for (uint32_t j = 0; j < ix->count; j++) {
			vec_close_fds(&ix->v[j]);
			ix->v[j].client_masked = false;
		}
	}
}

void vfurt_irqs_reset(struct vfurt_irqs *irqs)
{
	assert(irqs);
	for (uint32_t i = 0; i < VFURT_IRQ_NUM; i++) {
		struct irq_index *ix = &irqs->idx[i];

		ix->func_masked = false;
		for (uint32_t j = 0; j < ix->count; j++) {
			ix->v[j].pending = false;
			ix->v[j].guest_masked = false;
		}
	}
}

void vfurt_irqs_get_stats(const struct vfurt_irqs *irqs, struct vfurt_irq_stats *st)
{
	assert(irqs && st);
	*st = irqs->stats;
}

void vfurt_irqs_set_signal(struct vfurt_irqs *irqs, vfurt_irq_signal_fn fn, void *arg)
{
	irqs->signal = fn;
	irqs->signal_arg = arg;
}
