/* struct vfurt_dev internals shared by the engine files of io/. */
#ifndef VFURT_IO_DEVICE_INTERNAL_H
#define VFURT_IO_DEVICE_INTERNAL_H

#include <stdatomic.h>

#include <vfurt/device.h>
#include <vfurt/engine.h>

#include "dma.h"
#include "dma_quota.h"
#include "fault.h"
#include "irq.h"

struct vfurt_conn;

struct vfurt_region {
	struct vfurt_region_desc d; /* d.sparse points at areas */
	struct vfurt_sparse_area areas[VFURT_MAX_SPARSE_AREAS];
};

#define VFURT_MAX_IOEVENTFDS 256u

/* One GET_REGION_IO_FDS sub-region. */
struct vfurt_ioeventfd {
	uint32_t type;            /* VFIO_USER_IO_FD_TYPE_* */
	uint32_t region;
	uint32_t flags;
	uint64_t offset;
	uint64_t size;
	uint64_t datamatch;       /* or ioregionfd user_data */
	int fd;                   /* handed to the client: eventfd or socket end */
	int srv_fd;               /* ioregionfd: our end, -1 otherwise */
	bool own_fd;              /* fd was created here (ioregionfd) */
	vfurt_ioeventfd_fn fn;
	void *arg;
	struct vfurt_dev *dev;
};

#define VFURT_MAX_QUEUES 1024u

struct vfurt_queue {
	struct vfurt_dev *dev;
	vfurt_queue_fn fn;
	void *arg;
	vfurt_queue_arm_fn arm;   /* atomic: set from any thread */
	int hint;
	uint32_t index;
	void *host_data;
	uint64_t polls;           /* written by the polling worker only */
	uint64_t busy;
};

struct vfurt_dev {
	char name[64];
	struct vfurt_dev_ops ops;
	void *arg;
	struct vfurt_log log;
	bool reset_supported;
	struct vfurt_region regions[VFURT_MAX_REGIONS];
	struct vfurt_irqs *irqs;
	struct vfurt_dma_table *dma;
	struct vfurt_dma_quota_acct quota; /* its fd-backed windows (dma_quota.h) */
	struct vfurt_fault_domain fault; /* its client's lost windows (fault.h) */
	struct vfurt_pci *pci;
	void (*pci_reset)(struct vfurt_pci *pci);
	void (*pci_free)(struct vfurt_pci *pci);
	vfurt_pci_client_irq_fn pci_client_irq;       /* may be NULL */
	vfurt_pci_client_detach_fn pci_client_detach; /* may be NULL */
	/* state image hooks (vfurt_dev_set_pci_state); either may be NULL */
	int (*pci_save)(struct vfurt_pci *pci, struct vfurt_state *s);
	int (*pci_restore)(struct vfurt_pci *pci, const struct vfurt_state_cur *c);
	struct vfurt_ioeventfd ioev[VFURT_MAX_IOEVENTFDS];
	uint32_t nr_ioev;
	struct vfurt_conn *conn; /* attached client, NULL when none */
	/* bumped when the engine's watched fds change (twin socket) */
	_Atomic uint32_t watch_gen;
	const struct vfurt_dev_host_ops *host; /* &host_ops while a host is installed */
	struct vfurt_dev_host_ops host_ops;    /* its copy, zero beyond its ops_size */
	void *host_arg;
	struct vfurt_queue **queues;
	uint32_t nr_queues;
	uint32_t cap_queues;
	uint32_t next_queue_index;
};

/* Number of regions to advertise: VFURT_REGION_NUM_PCI, or more when a
 * device-specific region exists above it. */
uint32_t vfr_dev_num_regions(const struct vfurt_dev *dev);

/* Free io fd entries and queues (device destroy). */
void vfr_dev_free_host_state(struct vfurt_dev *dev);

/* Run the device reset path (pci config space, irq state, model). */
int vfr_dev_do_reset(struct vfurt_dev *dev, enum vfurt_reset_reason why);

/* A watch handler (vfurt_dev_watches): the INTx unmask eventfd is
 * readable (cmd_dma_irq.c). */
void vfr_dev_intx_unmask_ready(struct vfurt_dev *dev, void *ctx);

/*
 * The engine's DMA message path (conn_dma.c): send a request for each
 * piece of sg[0..nsg) without vaddr (buf holds the data of all pieces, in
 * order), adding one to op->pending_ per request; the reply of the last
 * calls op->done_. The caller checks beforehand that free_slots covers the
 * requests (each piece takes ceil(len / chunk)). Returns 0 or -EIO (the
 * connection is dead; requests already sent still complete).
 */
size_t vfr_conn_dma_chunk(const struct vfurt_conn *conn);
/* Free request slots, or -EIO when the connection is broken. */
int vfr_conn_dma_free_slots(const struct vfurt_conn *conn);
int vfr_conn_dma_start(struct vfurt_conn *conn, const struct vfurt_sg *sg, int nsg,
			 uint8_t *buf, bool is_write, struct vfurt_dma_op *op);

/* Twin socket readable: take the client's replies (conn_dma.c). Returns 0,
 * or a negative errno after marking the connection broken (the host closes
 * it at its next tick or feed). */
int vfr_conn_twin_readable(struct vfurt_conn *conn);
int vfr_conn_twin_fd(const struct vfurt_conn *conn);

#endif /* VFURT_IO_DEVICE_INTERNAL_H */
