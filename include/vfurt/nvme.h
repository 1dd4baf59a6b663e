/* NVMe controller device model: a PCI NVMe SSD served over vfio-user, backed by block devices. */
#ifndef VFURT_NVME_H
#define VFURT_NVME_H

/*
 * vfurt_nvme_create() builds a PCI NVMe controller (class 01 08 02) whose
 * namespaces are struct vfurt_bdev block devices (include/vfurt/bdev.h).
 * BAR0 holds the controller registers (trapped: REGION_READ/WRITE) and, from
 * 0x1000, the doorbells, exported as a sparse mmap area backed by shared
 * memory so a guest's doorbell writes never leave the guest; the queues'
 * pollers read them. MSI-X with one vector per completion queue (table and
 * PBA in BAR4), INTx fallback, PCI Express capability.
 *
 * The admin queue is served on the device's home thread; every I/O queue
 * pair is a pollable queue (vfurt_dev_queue_add) that the host (runtime or
 * caller-driven server) places on a worker.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/device.h>
#include <vfurt/export.h>
#include <vfurt/log.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfurt_bdev;

#define VFURT_NVME_MAX_NS 32u
#define VFURT_NVME_MAX_IO_QUEUES 64u

struct vfurt_nvme_opts {
	size_t opts_size;            /* sizeof(struct vfurt_nvme_opts) */
	const char *name;            /* device name for logs */
	struct vfurt_log log;
	/* Identify SN (<= 20 printable ASCII chars). Default: "VFRT" and 16 hex
	 * digits of a hash of identity (or name), so that controllers differ
	 * without configuration and keep their serial across restarts. The
	 * serial seeds the subsystem NQN and the namespace identifiers (NGUID,
	 * EUI-64, UUID): give each controller its own. */
	const char *serial;
	const char *model;           /* Identify MN (<= 40 chars); default "vfu-rt NVMe" */
	uint32_t max_io_queues;      /* I/O queue pairs offered (1..64, default 4) */
	uint32_t max_queue_entries;  /* CAP.MQES + 1 (2..4096, default 1024) */
	struct vfurt_bdev **ns;      /* namespace i+1 is ns[i] */
	uint32_t nr_ns;              /* 1..VFURT_NVME_MAX_NS (more: vfurt_nvme_ns_add) */
	/* destroy the bdevs with the device (a failed create leaves them to the caller) */
	bool own_bdevs;
	/*
	 * Trap the doorbell page (no sparse mmap) and offer the I/O queues'
	 * doorbells as ioeventfds (one eventfd, GET_REGION_IO_FDS on BAR0).
	 * An ioeventfd carries no value, so the guest must use shadow
	 * doorbells (Doorbell Buffer Config; Linux does when OACS says so):
	 * an I/O doorbell signalled before that sets CSTS.CFS. Doorbell writes
	 * that arrive as REGION_WRITE work either way. In exchange a sleeping
	 * worker is woken by the guest's doorbell (event indexes are armed
	 * before sleeping), so adaptive polling costs no latency floor.
	 */
	bool ioeventfd;
	/* Raise the CQ's interrupt for every completion instead of at most
	 * once per CQ per pass (for measuring what aggregation buys). */
	bool irq_per_completion;
	/*
	 * A string unique among the controllers a host may see and stable
	 * across restarts of the same configuration, e.g. the socket path
	 * (copied; NULL = name). Only seeds the default serial, so two
	 * controllers with the same name and no serial still get distinct
	 * serials and namespace identifiers (Linux clears identifiers it sees
	 * twice, and /dev/disk/by-id then collides).
	 */
	const char *identity;
};

/* Create the controller. Returns NULL with errno EINVAL (bad opts, a bdev
 * block size other than 512 or 4096), ENOMEM, or a setup errno. */
VFURT_EXPORT struct vfurt_dev *vfurt_nvme_create(const struct vfurt_nvme_opts *opts);

/* ---- namespace management on a live controller ----------------------- */

/*
 * These change a controller while a guest uses it, as a real controller's
 * namespace management does. Namespaces are nsids 1..VFURT_NVME_MAX_NS
 * (Identify Controller NN), each active or not; an inactive one identifies
 * as zeroes and its I/O fails with Invalid Namespace or Format. A change
 * puts the nsid in the Changed Namespace List log page (04h) and raises a
 * Namespace Attribute Changed asynchronous event if the host enabled those
 * (Asynchronous Event Configuration bit 8; a change made while they are
 * disabled is only in the log page, it is not notified later). The event
 * completes an outstanding AER, or the host's next one, so a Linux guest
 * rescans by itself (docs/nvme.md, "Namespace management").
 * Each runs on the controller's home thread (vfurt_dev_call) and returns
 * when done; the I/O queues are paused only around the change, with their
 * commands in flight completed first (resize, remove), which blocks that
 * thread for as long as they take. Thread: any.
 */

/*
 * Attach bdev as namespace nsid (1..VFURT_NVME_MAX_NS, or 0 = the lowest
 * free one). On success the controller owns bdev (destroyed with it or at
 * vfurt_nvme_ns_remove); on failure the caller still does. The host reads
 * some controller-wide values once, so the bdev must fit them: Write
 * Zeroes and Deallocate when the controller offers them (ONCS, which it
 * does when every namespace given at creation had them), and no 512-byte
 * blocks on a controller created with 4 KiB ones only (its Write Zeroes
 * size limit). A bdev with a volatile cache (VFURT_BDEV_CAP_FLUSH) on a
 * controller that advertises none (Identify VWC) is written through: each
 * write is flushed before it completes. Returns the nsid (> 0), or -EINVAL
 * (dev not an NVMe controller, bdev NULL, nsid out of range, block size
 * other than 512 or 4096, a bdev that does not fit, logged), -EEXIST (nsid
 * in use, or bdev already a namespace of dev), -ENOSPC (no free nsid).
 */
VFURT_EXPORT int vfurt_nvme_ns_add(struct vfurt_dev *dev, uint32_t nsid, struct vfurt_bdev *bdev);

/*
 * Detach namespace nsid and destroy its bdev once the commands in flight on
 * it completed (a bdev given at creation without own_bdevs is left to the
 * caller instead, free to destroy once this returned). Commands for it that
 * arrive afterwards fail with Invalid Namespace or Format. Returns 0,
 * -EINVAL (dev not an NVMe controller, nsid out of range), -ENOENT (no such
 * namespace).
 */
VFURT_EXPORT int vfurt_nvme_ns_remove(struct vfurt_dev *dev, uint32_t nsid);

/*
 * Grow or shrink namespace nsid to num_blocks blocks (its bdev's
 * vfurt_bdev_resize, with no command in flight). Identify Namespace
 * reports the new NSZE; reads and writes past a shrunk end fail with LBA
 * Out of Range. The same size again changes nothing and tells the host
 * nothing. Returns 0, -EINVAL (dev not an NVMe controller, nsid out of
 * range, num_blocks 0 or too large for the backend), -ENOENT (no such
 * namespace), -ENOTSUP (the backend cannot resize), or the backend's error
 * (-ENOSPC, -ENOMEM...; the size is unchanged then).
 */
VFURT_EXPORT int vfurt_nvme_ns_resize(struct vfurt_dev *dev, uint32_t nsid, uint64_t num_blocks);

/* One namespace as vfurt_nvme_ns_list reports it. */
struct vfurt_nvme_ns_info {
	size_t info_size;        /* set by the caller: sizeof(struct vfurt_nvme_ns_info) */
	uint32_t nsid;
	uint32_t block_size;
	uint64_t num_blocks;
	const struct vfurt_bdev *bdev; /* valid until the namespace is removed */
};

/*
 * The active namespaces of a controller, in nsid order: fills up to max
 * entries of out (an array of structs of out[0].info_size bytes, which the
 * caller sets; the other entries get the same) and returns how many
 * namespaces there are (may exceed max), or -EINVAL (dev not an NVMe
 * controller, out NULL with max > 0, out[0].info_size out of range).
 * Thread: any (via vfurt_dev_call).
 */
VFURT_EXPORT int vfurt_nvme_ns_list(struct vfurt_dev *dev, struct vfurt_nvme_ns_info *out,
				    uint32_t max);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_NVME_H */
