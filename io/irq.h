/* Interrupt state of one device: eventfds, masks, pending bits. Internal to io/. */
#ifndef VFURT_IO_IRQ_H
#define VFURT_IO_IRQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/vfio_user.h>
#include <vfurt/device.h>

/*
 * Per irq index (INTx, MSI, MSI-X, ERR, REQ) and vector: the client's trigger
 * eventfd, optional mask/unmask notification eventfds, a client mask (SET_IRQS
 * MASK/UNMASK), a guest mask (MSI-X vector control, MSI mask bits), the
 * index-wide function mask, and a pending bit. A trigger on a masked vector
 * sets pending; the unmask that makes it deliverable fires it once.
 */
struct vfurt_irqs;

struct vfurt_irq_stats {
	uint64_t raised;  /* vfr_irqs_trigger calls that were accepted */
	uint64_t written; /* eventfd writes done */
};

/* Called when the client masks/unmasks vectors through SET_IRQS. */
typedef void (*vfurt_irq_state_fn)(void *arg, uint32_t index, uint32_t start,
				   uint32_t count, bool masked);

struct vfurt_irqs *vfr_irqs_create(void);
/* Closes every eventfd. NULL is ignored. */
void vfr_irqs_destroy(struct vfurt_irqs *irqs);

/* Declare count vectors of index (closes the index's fds and clears its
 * state). count 0 removes the index. Returns 0, -EINVAL, -ENOMEM. */
int vfr_irqs_setup(struct vfurt_irqs *irqs, uint32_t index, uint32_t count);
uint32_t vfr_irqs_count(const struct vfurt_irqs *irqs, uint32_t index);

/* VFIO_IRQ_INFO_* flags for GET_IRQ_INFO. */
uint32_t vfr_irqs_info_flags(const struct vfurt_irqs *irqs, uint32_t index);

/*
 * Apply a SET_IRQS request. `set` is the fixed part (argsz, flags, index,
 * start, count) already read from the message; `data`/`data_len` the bytes
 * after it (bool array for DATA_BOOL; ignored otherwise); fds/nfds the
 * descriptors that came with the message (DATA_EVENTFD: nfds must be 0 to
 * de-assign or == count; each fd may be -1 to de-assign that vector).
 * Validates flags (exactly one DATA and one ACTION bit), index, start+count
 * <= vector count (start = count = 0 with DATA_NONE|ACTION_TRIGGER disables
 * the index), data_len for BOOL, fd count.
 * On success takes ownership of every fd; on failure owns none.
 * state_fn is called once per client MASK/UNMASK request (DATA_NONE/BOOL)
 * with the request's range. MASK/UNMASK on an index that is not MASKABLE,
 * fds with DATA_NONE/BOOL, and the same fd twice in one request are -EINVAL.
 * Returns 0 or -EINVAL (bad request), -EBADF (fd is not usable).
 */
int vfr_irqs_set(struct vfurt_irqs *irqs, const struct vfio_irq_set *set,
		   const uint8_t *data, size_t data_len, const int *fds, size_t nfds,
		   vfurt_irq_state_fn state_fn, void *arg);

/* Same contracts as vfurt_irq_* in device.h. */
int vfr_irqs_trigger(struct vfurt_irqs *irqs, uint32_t index, uint32_t vector);
void vfr_irqs_set_guest_mask(struct vfurt_irqs *irqs, uint32_t index, uint32_t vector,
			       bool masked);
void vfr_irqs_set_func_mask(struct vfurt_irqs *irqs, uint32_t index, bool masked);
bool vfr_irqs_pending(const struct vfurt_irqs *irqs, uint32_t index, uint32_t vector);
bool vfr_irqs_enabled(const struct vfurt_irqs *irqs, uint32_t index, uint32_t vector);

/* Client went away: close all its eventfds, clear client masks; guest masks,
 * function masks and pending bits (device state) are kept. */
void vfr_irqs_release_client(struct vfurt_irqs *irqs);

/* Device reset: release_client state stays, pending bits and guest masks
 * return to power-on values (guest masks clear, function masks clear). */
void vfr_irqs_reset(struct vfurt_irqs *irqs);

/* Deliver eventfd signals through fn(arg, fd) (returns 0 when written or
 * queued) instead of write(2): the runtime's per-pass irq batch. NULL
 * restores direct writes. "written" then counts signals handed to fn. */
typedef int (*vfurt_irq_signal_fn)(void *arg, int fd);
void vfr_irqs_set_signal(struct vfurt_irqs *irqs, vfurt_irq_signal_fn fn, void *arg);

/* Install a hook that waits until no concurrent trigger can still use an
 * eventfd loaded before the call; replaced and released fds are closed only
 * after it. NULL = triggers only come from the control thread. */
void vfr_irqs_set_sync(struct vfurt_irqs *irqs, void (*fn)(void *arg), void *arg);

/*
 * The INTx unmask eventfd a client installed with SET_IRQS
 * UNMASK|DATA_EVENTFD (QEMU under KVM: the irqfd's resamplefd, written at
 * the guest's EOI), or -1; *gen (if not NULL) changes whenever that fd
 * does, so that a host watching it knows to rewatch. Control thread.
 */
/* At most max eventfds installed by the client at once (0: no limit); a
 * SET_IRQS that would hold more fails with -EMFILE and changes nothing. */
void vfr_irqs_set_max_fds(struct vfurt_irqs *irqs, uint32_t max);

int vfr_irqs_intx_unmask_fd(const struct vfurt_irqs *irqs, uint32_t *gen);

/* The unmask eventfd is readable: consume it and unmask INTx as a SET_IRQS
 * UNMASK would (state_fn/arg as for vfr_irqs_set). Control thread. */
void vfr_irqs_intx_unmask_event(struct vfurt_irqs *irqs, vfurt_irq_state_fn state_fn,
				  void *arg);

/* Same contract as vfurt_irq_set_resample in device.h. */
void vfr_irqs_set_resample(struct vfurt_irqs *irqs, bool (*fn)(void *arg), void *arg);

void vfr_irqs_get_stats(const struct vfurt_irqs *irqs, struct vfurt_irq_stats *st);

#endif /* VFURT_IO_IRQ_H */
