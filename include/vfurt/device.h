/* Device API: a device is regions + irqs + ops; DMA and interrupt helpers. */
#ifndef VFURT_DEVICE_H
#define VFURT_DEVICE_H

/*
 * A struct vfurt_dev is what one vfio-user socket serves. Device models
 * (devices/) build one with vfurt_dev_create(), describe its regions and irq
 * types, and implement struct vfurt_dev_ops. The protocol engine (io/) answers
 * every message on the device's behalf and calls into the model only through
 * region access callbacks and the ops below.
 *
 * Threading: a device is driven by one thread at a time (its home worker or
 * the embedder's loop). All functions here must be called from that thread
 * unless stated otherwise. Callbacks are invoked from it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfurt/export.h>
#include <vfurt/log.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfurt_dev;
struct vfurt_state;
struct vfurt_state_cur;

/* Region indexes follow vfio-pci: BAR0-5, ROM, config space, VGA. */
enum vfurt_region_index {
	VFURT_REGION_BAR0 = 0,
	VFURT_REGION_BAR1,
	VFURT_REGION_BAR2,
	VFURT_REGION_BAR3,
	VFURT_REGION_BAR4,
	VFURT_REGION_BAR5,
	VFURT_REGION_ROM,
	VFURT_REGION_CONFIG,
	VFURT_REGION_VGA,
	VFURT_REGION_NUM_PCI,
};
#define VFURT_MAX_REGIONS 16u

/* Interrupt types follow vfio-pci. */
enum vfurt_irq_index {
	VFURT_IRQ_INTX = 0,
	VFURT_IRQ_MSI,
	VFURT_IRQ_MSIX,
	VFURT_IRQ_ERR,
	VFURT_IRQ_REQ,
	VFURT_IRQ_NUM,
};
#define VFURT_MAX_IRQ_VECTORS 2048u

/* Region flags. READ/WRITE describe what the client may do. */
#define VFURT_REGION_READ (1u << 0)
#define VFURT_REGION_WRITE (1u << 1)
#define VFURT_REGION_RW (VFURT_REGION_READ | VFURT_REGION_WRITE)
/* BAR kind for PCI config space emulation: I/O port BAR, 64-bit, prefetchable. */
#define VFURT_REGION_IO (1u << 2)
#define VFURT_REGION_MEM64 (1u << 3)
#define VFURT_REGION_PREFETCH (1u << 4)

/*
 * Region access callback. Reads fill buf, writes consume it. `offset` and
 * `count` are already checked against the region size (offset + count <=
 * size, no overflow) and count <= the negotiated max_data_xfer_size.
 * Returns count on success or a negative errno, which is sent to the client.
 */
typedef ssize_t (*vfurt_region_access_fn)(struct vfurt_dev *dev, void *arg,
					  void *buf, size_t count,
					  uint64_t offset, bool is_write);

/* A part of a region the client may mmap. Offsets are region-relative and
 * page aligned. */
struct vfurt_sparse_area {
	uint64_t offset;
	uint64_t size;
};

#define VFURT_MAX_SPARSE_AREAS 16u

/* Describes one region. desc_size as in include/vfurt/abi.h (fields beyond
 * it are treated as zero). */
struct vfurt_region_desc {
	size_t desc_size;            /* sizeof(struct vfurt_region_desc) */
	uint64_t size;               /* bytes; 0 = region absent */
	uint32_t flags;              /* VFURT_REGION_* */
	vfurt_region_access_fn access; /* may be NULL only for mmap-only regions */
	void *arg;                   /* passed to access */
	/*
	 * Backing for client mmap: an fd (memfd, file) the client may map at
	 * fd_offset. -1 = not mappable. The device keeps ownership of the fd and
	 * must keep it open for the device's lifetime; the engine sends dups.
	 */
	int fd;
	uint64_t fd_offset;
	/* With fd >= 0: the mappable parts. NULL/0 = the whole region. */
	const struct vfurt_sparse_area *sparse;
	uint32_t nr_sparse;
	/* Optional VFIO_REGION_INFO_CAP_TYPE (device-specific regions). 0 = none. */
	uint32_t cap_type;
	uint32_t cap_subtype;
};

/* Why a device is being reset. */
enum vfurt_reset_reason {
	VFURT_RESET_CLIENT = 1, /* VFIO_USER_DEVICE_RESET */
	VFURT_RESET_LOST_CONN,  /* client went away; device state is kept by
				   default, a model may choose to reset */
	VFURT_RESET_PCI_FLR,    /* function level reset via config space */
};

/* A DMA window the client mapped. vaddr is NULL when the client did not pass
 * an fd: such memory is reached only through vfurt_dma_read/write. */
struct vfurt_dma_region {
	uint64_t iova;
	uint64_t size;
	void *vaddr;
	uint32_t prot; /* VFURT_DMA_READ | VFURT_DMA_WRITE */
};

#define VFURT_DMA_READ (1u << 0)  /* device may read guest memory */
#define VFURT_DMA_WRITE (1u << 1) /* device may write guest memory */

/*
 * Device model callbacks. All optional. ops_size as in include/vfurt/abi.h:
 * fields beyond it are treated as NULL, so models built against an older
 * header keep working.
 */
struct vfurt_dev_ops {
	size_t ops_size; /* sizeof(struct vfurt_dev_ops) */
	/* Reset device state. Return 0 or a negative errno (sent to client). */
	int (*reset)(struct vfurt_dev *dev, void *arg, enum vfurt_reset_reason why);
	/*
	 * Stop touching guest memory and device state so that DMA map/unmap or
	 * reset can proceed. Return 0 when quiesced now, or -EBUSY to finish
	 * later with vfurt_dev_quiesced(); the engine then parks the message
	 * that needed quiescing and processes nothing else on this device.
	 */
	int (*quiesce)(struct vfurt_dev *dev, void *arg);
	/* A DMA window appeared. Informational. */
	void (*dma_map)(struct vfurt_dev *dev, void *arg, const struct vfurt_dma_region *r);
	/* A DMA window is going away: drop every pointer into it before return. */
	void (*dma_unmap)(struct vfurt_dev *dev, void *arg, const struct vfurt_dma_region *r);
	/* A client connected (after VERSION) or disconnected. */
	void (*attach)(struct vfurt_dev *dev, void *arg);
	void (*detach)(struct vfurt_dev *dev, void *arg);
	/* The client changed masking of vectors [start, start+count) of index. */
	void (*irq_state)(struct vfurt_dev *dev, void *arg, uint32_t index,
			  uint32_t start, uint32_t count, bool masked);
	/* The device is being destroyed: free the model's state. */
	void (*destroy)(struct vfurt_dev *dev, void *arg);
	/* ---- restart (include/vfurt/state.h, docs/restart.md): a device
	 * without save and restore cannot be carried across a live upgrade */
	/*
	 * Reach a safe point: start no new work (fetch no commands, start no
	 * DMA), and return 0 once nothing is in flight but what save records
	 * (e.g. outstanding NVMe AERs), -EBUSY while work is still in flight
	 * (the host asks again about every millisecond, with the client's
	 * messages still served), or another negative errno to refuse. Once
	 * it returned 0 the device stays frozen, touching neither guest
	 * memory nor irqs, until thaw.
	 */
	int (*freeze)(struct vfurt_dev *dev, void *arg);
	/*
	 * Leave the frozen state (after a failed upgrade, or in the new
	 * process once it serves): resume, and raise every interrupt the
	 * guest may still be owed (a spurious one is harmless, a lost one
	 * hangs the guest). Also called for a device whose freeze never
	 * returned 0 (an upgrade that timed out).
	 */
	void (*thaw)(struct vfurt_dev *dev, void *arg);
	/* Frozen: write the model's state into s (the engine opened the
	 * model's section). Return 0 or a negative errno (the upgrade fails). */
	int (*save)(struct vfurt_dev *dev, void *arg, struct vfurt_state *s);
	/*
	 * In the new process, on a device just created from the same
	 * configuration, before any client attaches and after the engine
	 * restored its own part (region fds, irq state, PCI config space):
	 * read back what save wrote (c is the model's section), adopting the
	 * previous process's fds (vfurt_state_adopt_fd). The device is frozen
	 * until thaw. Return 0 or a negative errno (the image is refused and
	 * the old process keeps serving).
	 */
	int (*restore)(struct vfurt_dev *dev, void *arg, const struct vfurt_state_cur *c);
};

/* Creation options. opts_size as in include/vfurt/abi.h (fields beyond it are
 * treated as zero). */
struct vfurt_dev_opts {
	size_t opts_size;       /* sizeof(struct vfurt_dev_opts) */
	const char *name;       /* for logs; copied */
	const struct vfurt_dev_ops *ops; /* copied */
	void *arg;              /* passed to ops */
	struct vfurt_log log;
	bool reset_supported;   /* advertise VFIO_DEVICE_FLAGS_RESET */
};

/*
 * Create an empty PCI device. Regions and irqs are added before the device is
 * served. Returns NULL with errno set (EINVAL, ENOMEM).
 */
VFURT_EXPORT struct vfurt_dev *vfurt_dev_create(const struct vfurt_dev_opts *opts);

/*
 * Destroy a device that is not being served (vfurt_server_destroy destroys
 * the devices it owns). Calls ops->destroy. NULL is ignored.
 */
VFURT_EXPORT void vfurt_dev_destroy(struct vfurt_dev *dev);

/* Device name and model argument. */
VFURT_EXPORT const char *vfurt_dev_name(const struct vfurt_dev *dev);
VFURT_EXPORT void *vfurt_dev_arg(const struct vfurt_dev *dev);

/* The device's log sink (for models that log). */
VFURT_EXPORT const struct vfurt_log *vfurt_dev_log(const struct vfurt_dev *dev);

/* Replace the device's log sink (copied), e.g. to tag lines with the worker
 * that serves it. Thread: the device's thread, or before it is served. */
VFURT_EXPORT void vfurt_dev_set_log(struct vfurt_dev *dev, const struct vfurt_log *log);

/*
 * Describe region `index` (< VFURT_MAX_REGIONS). Replaces an earlier
 * description; size 0 removes the region. desc is copied (and its sparse
 * array). Returns 0, -EINVAL (dev or desc NULL, bad index, desc_size, unknown
 * flags, neither READ nor WRITE, no access callback and no fd, sparse areas
 * without an fd, more than VFURT_MAX_SPARSE_AREAS, sparse NULL with
 * nr_sparse, sparse areas empty, not page aligned or outside the region,
 * fd_offset not page aligned, fd without sparse info when the region is not
 * page sized), -EBUSY if a client is connected.
 */
VFURT_EXPORT int vfurt_dev_setup_region(struct vfurt_dev *dev, uint32_t index,
					const struct vfurt_region_desc *desc);

/* Read back a region description (size 0 and fd -1 when absent); the caller
 * sets desc->desc_size first (include/vfurt/abi.h). Returns 0 or -EINVAL
 * (dev or desc NULL, index >= VFURT_MAX_REGIONS, desc_size out of range). */
VFURT_EXPORT int vfurt_dev_get_region(const struct vfurt_dev *dev, uint32_t index,
				      struct vfurt_region_desc *desc);

/*
 * Replace the access callback of an existing region and return the old one
 * through old_fn/old_arg (each may be NULL), so a layer (PCI MSI-X table
 * emulation) can wrap it. Returns 0 or -EINVAL (dev or fn NULL, no such
 * region).
 */
VFURT_EXPORT int vfurt_dev_hook_region(struct vfurt_dev *dev, uint32_t index,
				       vfurt_region_access_fn fn, void *arg,
				       vfurt_region_access_fn *old_fn, void **old_arg);

/* Declare `count` vectors (<= VFURT_MAX_IRQ_VECTORS) of irq type `index`
 * (count 0 removes them). Returns 0, -EINVAL (dev NULL, index >=
 * VFURT_IRQ_NUM, count too large), -EBUSY (client connected), -ENOMEM. */
VFURT_EXPORT int vfurt_dev_setup_irq(struct vfurt_dev *dev, uint32_t index, uint32_t count);

/* Number of vectors of irq type index (0 if not set up). */
VFURT_EXPORT uint32_t vfurt_dev_irq_count(const struct vfurt_dev *dev, uint32_t index);

/* Called on the device's thread when an ioeventfd fired `count` times
 * (several guest writes may coalesce into one call). */
typedef void (*vfurt_ioeventfd_fn)(struct vfurt_dev *dev, void *arg, uint64_t count);

/*
 * Register an ioeventfd for GET_REGION_IO_FDS: a guest write of `size` bytes
 * (0 = any size) at `offset` of region `index` (matching `datamatch` when
 * VFIO_USER_IOEVENTFD_FLAG_DATAMATCH is in flags) signals `fd`, which the
 * client hands to KVM. Whoever serves the device (server loop or runtime home
 * worker) watches fd and calls fn(dev, arg, count); fn may be NULL when the
 * model polls fd itself. The device keeps ownership of fd.
 * Returns 0, -EINVAL (dev NULL, fd < 0, size not 0/1/2/4/8, flags other than
 * DATAMATCH and PIO, no such region, range outside it), -ENOSPC (the
 * device's io fd table is full), -EBUSY (client connected).
 */
VFURT_EXPORT int vfurt_dev_add_ioeventfd(struct vfurt_dev *dev, uint32_t index,
					 uint64_t offset, uint64_t size,
					 uint32_t flags, uint64_t datamatch, int fd,
					 vfurt_ioeventfd_fn fn, void *arg);

/*
 * Register an ioregionfd sub-region [offset, offset+size) of region `index`:
 * the engine creates a socket pair, gives one end to the client (KVM writes
 * struct vfio_user_ioregionfd_cmd to it and reads responses) and serves the
 * other end by calling the region's access callback. flags:
 * VFIO_USER_IOREGIONFD_FLAG_POSTED_WRITES, VFIO_USER_IOREGIONFD_FLAG_PIO.
 * Returns 0, -EINVAL (as vfurt_dev_add_ioeventfd; size 0 without posted
 * writes; a region without an access callback), -ENOSPC, -EBUSY, or
 * socketpair's errno.
 */
VFURT_EXPORT int vfurt_dev_add_ioregionfd(struct vfurt_dev *dev, uint32_t index,
					  uint64_t offset, uint64_t size, uint32_t flags,
					  uint64_t user_data);

/* ---- pollable queues ----------------------------------------------------- */

struct vfurt_queue;

/* Poll one queue; return 1 when it did work, 0 when it found none (a host
 * keeps polling without a pause while its queues do work). */
typedef int (*vfurt_queue_fn)(struct vfurt_dev *dev, void *arg);

/* Placement hints of vfurt_dev_queue_add(), besides keys >= 0. */
#define VFURT_QUEUE_ANY (-1)  /* wherever the host likes */
#define VFURT_QUEUE_HOME (-2) /* the device's home thread: where its messages are handled */

/*
 * Expose a pollable queue (e.g. an NVMe I/O queue pair). Whoever serves the
 * device decides where it is polled, guided by hint: VFURT_QUEUE_HOME (for a
 * queue that belongs with the control plane, like the NVMe admin queue),
 * VFURT_QUEUE_ANY, or a key >= 0 (queues with equal keys are polled
 * together; a host that polls on several threads spreads different keys).
 * The hosts' rules are in server.h (vfurt_server_run_once) and runtime.h
 * ("queue placement"). Unless hint is VFURT_QUEUE_HOME, fn may run on
 * another thread, concurrently with the device's control plane: it may
 * translate DMA addresses and raise irqs, and must synchronise anything else
 * with the model itself.
 * Thread: the device's thread. Returns NULL with errno EINVAL (dev or fn
 * NULL), ENOSPC (the device has its most queues), ENOMEM, or the error of
 * the host placing it (the runtime's: ENOMEM).
 */
VFURT_EXPORT struct vfurt_queue *vfurt_dev_queue_add(struct vfurt_dev *dev, vfurt_queue_fn fn,
						     void *arg, int hint);

/*
 * Stop polling *q and free it; when it returns fn is not running and will
 * not run again. Sets *q = NULL. Thread: the device's thread (never from the
 * queue's own fn).
 */
VFURT_EXPORT void vfurt_dev_queue_remove(struct vfurt_dev *dev, struct vfurt_queue **q);

/* What an arm callback reports (see vfurt_dev_queue_set_arm). */
enum vfurt_arm {
	VFURT_ARM_DONE = 0,    /* notifications on: new work will call a kick */
	VFURT_ARM_PENDING = 1, /* work arrived meanwhile: poll again, do not sleep */
	VFURT_ARM_POLL = 2,    /* cannot notify now: keep polling (short sleeps only) */
};

/*
 * Called on the queue's thread with arm=true when that thread has found no
 * work for a while and is about to sleep: enable whatever makes new work
 * call vfurt_dev_queue_kick() (e.g. NVMe event indexes), then look for work
 * once more, which closes the race with a producer that checked the
 * notification state just before it was enabled. Return a vfurt_arm value.
 * Called with arm=false when the thread is awake again (the return value is
 * ignored): notifications may be switched off while the queue is polled.
 */
typedef int (*vfurt_queue_arm_fn)(struct vfurt_dev *dev, void *arg, bool arm);

/*
 * Give q an arm callback (NULL removes it). A queue without one is treated
 * as VFURT_ARM_POLL: a host that sleeps when idle wakes up often enough to
 * poll it (the runtime's adaptive mode caps its sleeps). Thread: any; the
 * queue is kicked afterwards, so a host that went to sleep on the answer
 * given without the callback asks again.
 */
VFURT_EXPORT void vfurt_dev_queue_set_arm(struct vfurt_queue *q, vfurt_queue_arm_fn fn);

/*
 * Work arrived for q (e.g. an ioeventfd of its doorbell fired): wake the
 * thread that polls it if it sleeps. Cheap when that thread is awake.
 * Thread: any.
 */
VFURT_EXPORT void vfurt_dev_queue_kick(struct vfurt_queue *q);

/*
 * Run the device's reset path as a reset from `why` would: irq pending bits
 * and guest masks, then PCI config space (if attached), then ops->reset.
 * Used for a guest-initiated function level reset. Returns ops->reset's
 * result (0 without one).
 */
VFURT_EXPORT int vfurt_dev_reset(struct vfurt_dev *dev, enum vfurt_reset_reason why);

/*
 * Run fn(arg) on dev's home thread (where its messages, ops and admin work
 * run) and wait for it: the way another thread changes a served device, e.g.
 * vfurt_nvme_ns_add from a control thread. On the home thread itself, or
 * when nothing hosts dev, or under the caller-driven server, fn runs at once
 * on the calling thread. fn must not block for long: other devices share
 * the thread. Returns 0, -EINVAL (dev or fn NULL), or the host's error (fn
 * did not run). Thread: any.
 */
VFURT_EXPORT int vfurt_dev_call(struct vfurt_dev *dev, void (*fn)(void *arg), void *arg);

/* Finish a quiesce that ops->quiesce answered with -EBUSY. err 0 = quiesced;
 * a negative errno fails the parked command with that error. */
VFURT_EXPORT void vfurt_dev_quiesced(struct vfurt_dev *dev, int err);

struct vfurt_pci;

/*
 * Attach a PCI config space object (vfurt_pci_create does this). On device
 * reset the engine calls reset_fn(pci) before ops->reset; on destroy it calls
 * free_fn(pci) after ops->destroy. Returns 0, -EINVAL (dev or pci NULL),
 * -EEXIST (already attached).
 */
VFURT_EXPORT int vfurt_dev_attach_pci(struct vfurt_dev *dev, struct vfurt_pci *pci,
				      void (*reset_fn)(struct vfurt_pci *pci),
				      void (*free_fn)(struct vfurt_pci *pci));

/*
 * Give the attached PCI object its part of a state image (include/vfurt/
 * state.h, live upgrade): the engine calls save(pci, s) while the device is
 * frozen, inside a section it opened for the PCI layer, and restore(pci, c)
 * with c that section, on a device just created from the same
 * configuration, before ops->restore and before any client attaches.
 * restore leaves the irq layer alone (the engine restores masks and
 * pending bits itself), so the two may come in either order. Each returns
 * 0 or a negative errno (restore: -EBADMSG, the image does not fit this
 * device, and nothing was changed). NULL functions: the PCI object is
 * not carried (the engine skips it). vfurt_pci_create installs these;
 * device models do not need them. Returns 0 or -EINVAL (dev NULL or no PCI
 * object attached). Thread: the device's thread, before it is served.
 */
VFURT_EXPORT int vfurt_dev_set_pci_state(struct vfurt_dev *dev,
					 int (*save)(struct vfurt_pci *pci, struct vfurt_state *s),
					 int (*restore)(struct vfurt_pci *pci,
							const struct vfurt_state_cur *c));

/*
 * What the client does with interrupts, reported to the attached PCI layer
 * (vfurt_pci_create installs these; device models do not need them).
 * irq_fn runs after a SET_IRQS ACTION_TRIGGER request changed the eventfd
 * of vector `vector` of irq type `index`, once per vector of the request's
 * range (every vector of the index for DATA_NONE with count 0): assigned is
 * whether the vector has an eventfd now. detach_fn runs when the client
 * disconnected, after its eventfds were closed. Both run on the device's
 * thread, before the SET_IRQS reply / the model's ops->detach; either may
 * be NULL. Returns 0 or -EINVAL (dev NULL or no PCI object attached).
 */
typedef void (*vfurt_pci_client_irq_fn)(struct vfurt_pci *pci, uint32_t index,
					uint32_t vector, bool assigned);
typedef void (*vfurt_pci_client_detach_fn)(struct vfurt_pci *pci);
VFURT_EXPORT int vfurt_dev_set_pci_hooks(struct vfurt_dev *dev, vfurt_pci_client_irq_fn irq_fn,
					 vfurt_pci_client_detach_fn detach_fn);

/* The attached PCI config space object, or NULL. */
VFURT_EXPORT struct vfurt_pci *vfurt_dev_pci(const struct vfurt_dev *dev);

/* True while a client is connected and has completed VERSION. */
VFURT_EXPORT bool vfurt_dev_attached(const struct vfurt_dev *dev);

/* ---- interrupts ------------------------------------------------------- */

/*
 * Raise vector `vector` of irq type `index`. If the vector is masked (by the
 * client through SET_IRQS, by the guest through the MSI-X table or MSI mask
 * bits, or by the MSI-X function mask) it becomes pending and fires on
 * unmask. INTx masks itself after firing (automasked) until the client
 * unmasks it. For MSI-X under vfurt_pci (see vfurt_pci_add_msix in pci.h
 * for the full rule) a vector fires only while MSI-X is enabled, the
 * function mask, the SET_IRQS mask and the table's vector mask are clear;
 * a client that never writes the table (QEMU emulates it) unmasks a vector
 * there by assigning it an eventfd, as the kernel's vfio-pci does.
 * Returns 0 (fired or made pending), -EINVAL (bad index/vector), -ENOENT
 * (no eventfd and nothing to do: the event is left pending).
 */
VFURT_EXPORT int vfurt_irq_trigger(struct vfurt_dev *dev, uint32_t index, uint32_t vector);

/* Guest-side (device emulation) per-vector mask, e.g. the MSI-X table vector
 * control bit. Unmasking a pending vector fires it. */
VFURT_EXPORT void vfurt_irq_set_guest_mask(struct vfurt_dev *dev, uint32_t index,
					   uint32_t vector, bool masked);

/* Guest-side function mask for a whole irq type (MSI-X function mask,
 * disabled MSI/MSI-X enable bit). Unmasking fires pending vectors. */
VFURT_EXPORT void vfurt_irq_set_func_mask(struct vfurt_dev *dev, uint32_t index, bool masked);

/*
 * Resample hook for the level-triggered INTx line: asked whether the device
 * still asserts the line when the client unmasks INTx (its EOI: QEMU
 * deasserts and unmasks after every BAR access while INTx is pending) or the
 * guest clears the command register's INTx Disable bit. Returns true to fire
 * again (the line is still up, whether or not anything new was raised),
 * false to drop a pending interrupt: the line fell meanwhile (the guest
 * consumed what it was raised for). Without a hook a pending INTx fires on
 * unmask (edge-like). Called on the device's
 * home (control) thread, never concurrently with itself. fn NULL removes it.
 */
typedef bool (*vfurt_irq_resample_fn)(void *arg);
VFURT_EXPORT void vfurt_irq_set_resample(struct vfurt_dev *dev, vfurt_irq_resample_fn fn,
					 void *arg);

/* Whether a vector is pending (for the MSI-X PBA). */
VFURT_EXPORT bool vfurt_irq_pending(const struct vfurt_dev *dev, uint32_t index, uint32_t vector);

/* Whether the client attached an eventfd to the vector. */
VFURT_EXPORT bool vfurt_irq_enabled(const struct vfurt_dev *dev, uint32_t index, uint32_t vector);

/* ---- DMA --------------------------------------------------------------- */

/* One contiguous piece of a guest buffer. vaddr is NULL for memory mapped
 * without an fd. */
struct vfurt_sg {
	uint64_t iova;
	uint64_t len;
	void *vaddr;
};

/*
 * Translate guest range [iova, iova+len) into at most max_sg pieces, checking
 * that the windows allow `prot`. Returns the number of pieces, -ENOENT
 * (part of the range is not mapped), -EACCES (window lacks prot), -ENOSPC
 * (more than max_sg pieces needed; the return is still -ENOSPC), -EINVAL
 * (len 0 or overflow).
 */
VFURT_EXPORT int vfurt_dma_to_sg(struct vfurt_dev *dev, uint64_t iova, uint64_t len,
				 uint32_t prot, struct vfurt_sg *sg, int max_sg);

/* Direct pointer to [iova, iova+len) when it lies inside one fd-backed window
 * with `prot`, otherwise NULL. The pointer is valid until that window is
 * unmapped (ops->dma_unmap is called first). */
VFURT_EXPORT void *vfurt_dma_ptr(struct vfurt_dev *dev, uint64_t iova, uint64_t len, uint32_t prot);

/*
 * Copy guest memory into buf / buf into guest memory through the fd-backed
 * mappings. Memory the client mapped without an fd is reachable only by
 * message: these calls never wait for a client, so they fail there with
 * -EWOULDBLOCK (use the _async variants). Returns 0 (also for len 0),
 * -ENOENT/-EACCES/-EINVAL as vfurt_dma_to_sg (-EINVAL also for dev NULL, or
 * buf NULL with len), -EWOULDBLOCK, -EFAULT (a window lost its backing
 * memory during the copy: see vfurt_dma_lost_count). Thread: any.
 */
VFURT_EXPORT int vfurt_dma_read(struct vfurt_dev *dev, uint64_t iova, void *buf, size_t len);
VFURT_EXPORT int vfurt_dma_write(struct vfurt_dev *dev, uint64_t iova, const void *buf, size_t len);

/* Completion of an asynchronous transfer: status 0 or a negative errno. */
typedef void (*vfurt_dma_done_fn)(struct vfurt_dev *dev, void *arg, int status);

/* Storage for one asynchronous transfer, owned by the caller and left
 * alone until its done callback ran. The fields are the engine's. */
struct vfurt_dma_op {
	vfurt_dma_done_fn done_;
	void *arg_;
	uint32_t pending_;
	int status_;
};

/*
 * Copy guest memory [iova, iova+len) into buf (read) or buf into it
 * (write), whatever backs it. Fd-backed pieces are copied before the call
 * returns; the others go to the client as DMA_READ/DMA_WRITE messages,
 * split by both sides' max_data_xfer_size, and nothing waits for the
 * answers: done(dev, arg, status) runs on the device's home thread when the
 * last one came (status 0), or with -EIO (the client refused one, or the
 * connection broke), -ETIMEDOUT (no answer within the connection's
 * timeout_ms: the client is then disconnected) or -ECONNRESET (the client
 * went away first). buf and op must stay valid until then.
 * Returns 1: the transfer is complete (done is not called; also for len 0);
 * 0: done will be called exactly once; or a negative errno, with nothing
 * sent and done never called: -ENOENT/-EACCES/-EINVAL as vfurt_dma_to_sg
 * (-EINVAL also for dev, op or done NULL, or buf NULL with len), -ENOTCONN
 * (no client), -EBUSY (the connection has 64 requests in flight: retry after
 * a completion), -EIO (the connection is broken), -EFAULT (every piece was
 * fd-backed and one lost its backing during the copy, as vfurt_dma_read).
 * Thread: the device's home thread (where its messages are handled).
 */
VFURT_EXPORT int vfurt_dma_read_async(struct vfurt_dev *dev, uint64_t iova, void *buf, size_t len,
				      struct vfurt_dma_op *op, vfurt_dma_done_fn done, void *arg);
VFURT_EXPORT int vfurt_dma_write_async(struct vfurt_dev *dev, uint64_t iova, const void *buf,
				       size_t len, struct vfurt_dma_op *op, vfurt_dma_done_fn done,
				       void *arg);

/*
 * Guest memory that went away. A client may truncate the file behind a DMA
 * window; the server survives the access (it reads zeros, writes go
 * nowhere: docs/security.md) and counts the loss. A device samples this
 * counter before it touches guest memory for a command and compares after:
 * a change means that command's data, or the queue it read, is lost (fail
 * the I/O, or the controller for a queue). Monotonic; any thread.
 */
VFURT_EXPORT uint64_t vfurt_dma_lost_count(const struct vfurt_dev *dev);

/* Report a loss the device found itself: a kernel transfer into guest memory
 * (an io_uring read or write) failed with EFAULT at iova. The engine then
 * disconnects the client as for a fault. Any thread. */
VFURT_EXPORT void vfurt_dma_report_lost(struct vfurt_dev *dev, uint64_t iova);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_DEVICE_H */
