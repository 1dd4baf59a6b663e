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

/* ---- state images (include/vfurt/state.h, live upgrade) ----------------- */

struct vfurt_state;
struct vfurt_state_cur;

/* Tags of the sections the save functions below add to the section the
 * caller has open (vfurt_state_open adds VFURT_STATE_SECTION). */
#define VFR_IRQS_TAG_STATE 0x49525153u /* "IRQS" */
#define VFR_IRQS_TAG_FDS 0x49524644u   /* "IRFD" */

/*
 * Save the device side of the irq state: per index its function mask and
 * per vector the client mask, guest mask and pending bit, as one section
 * tagged VFR_IRQS_TAG_STATE in the section the caller has open (records:
 * tag 1 + index, u32 vector count, u8 function mask, 3 zero bytes, a byte
 * per vector). The eventfds are not part of it (vfr_irqs_save_fds).
 * Returns 0 or vfurt_state_put/open's errno (-ENOMEM, -E2BIG, -EINVAL).
 * Thread: the device's, with no trigger running (the device is frozen).
 */
int vfr_irqs_save(const struct vfurt_irqs *irqs, struct vfurt_state *s);

/*
 * Read back what vfr_irqs_save wrote: c is the section that holds the
 * VFR_IRQS_TAG_STATE section (absent: nothing changes, as for a fresh
 * device; an index without a record keeps its state too). Sets the masks
 * and pending bits without delivering anything (thaw re-raises) and
 * without calling a state callback. Returns 0, or -EBADMSG (a vector count
 * other than this device's, a record of the wrong size, unknown bits, a
 * malformed section) with nothing changed. Thread: the device's, before
 * it is served.
 */
int vfr_irqs_restore(struct vfurt_irqs *irqs, const struct vfurt_state_cur *c);

/*
 * Save the client's eventfds (trigger, mask and unmask fd of every vector
 * that has one) as fd records of a section tagged VFR_IRQS_TAG_FDS in the
 * section the caller has open: record tag (index + 1) << 16 | slot << 12 |
 * vector, slot 0 trigger, 1 mask, 2 unmask. The image holds dups; irqs
 * keeps its fds. Returns 0 or vfurt_state_put_fd/open's errno. Thread: the
 * device's, frozen.
 */
int vfr_irqs_save_fds(const struct vfurt_irqs *irqs, struct vfurt_state *s);

/*
 * Take the eventfds vfr_irqs_save_fds saved (c: the section holding the
 * VFR_IRQS_TAG_FDS section; absent: nothing changes) and install them as
 * SET_IRQS DATA_EVENTFD would: non-blocking, replacing (and closing) what
 * a slot held, the INTx unmask fd announced through the unmask generation,
 * within the max_fds quota; no state callback and no delivery. Returns 0,
 * -EBADMSG (an index, slot or vector this device lacks, a slot twice, a
 * malformed record), -EINVAL (an fd that is not an eventfd), -EMFILE (over
 * max_fds), -ENOMEM, or vfurt_state_take_fd_rec's errno (-EBADF: taken
 * before);
 * on failure nothing is installed and every fd taken is closed. Thread:
 * the device's, before it is served.
 */
int vfr_irqs_restore_fds(struct vfurt_irqs *irqs, const struct vfurt_state_cur *c);

#endif /* VFURT_IO_IRQ_H */
