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
	uint32_t nr_ns;              /* 1..VFURT_NVME_MAX_NS */
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

#ifdef __cplusplus
}
#endif

#endif /* VFURT_NVME_H */
