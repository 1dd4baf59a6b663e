/* NVMe controller object: creation (BARs, PCI, MSI-X), device ops, controller poller, I/O pause and resume. */
#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vfurt/abi.h>

#include "nvme_internal.h"

/* PCI identity: the vfio-user NVMe ids libvfio-user's and SPDK's servers
 * use; Linux's nvme driver applies no quirks to them. */
#define NVME_PCI_VENDOR 0x4e58u
#define NVME_PCI_DEVICE 0x0001u
#define NVME_PCI_CLASS 0x010802u /* mass storage, NVM, NVMe I/O controller */

void vfr_nvme_set_fatal(struct nvme_ctrl *c, const char *why)
{
	if (!atomic_exchange(&c->fatal, true))
		vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: controller fatal status: %s", c->name, why);
}

void vfr_nvme_raise_event(struct nvme_ctrl *c, uint32_t ev)
{
	atomic_fetch_or(&c->events, ev);
	/* I/O pollers raise events; the admin queue delivers them. ctrl_q is
	 * removed only after every I/O poller has stopped. */
	vfurt_dev_queue_kick(c->ctrl_q);
}

int vfr_nvme_cq_poll(struct vfurt_dev *dev, void *arg)
{
	(void)dev;
	return vfr_nvme_io_pass(arg, true) ? 1 : 0;
}

int vfr_nvme_cq_start(struct nvme_ctrl *c, struct nvme_cq *cq)
{
	/* the hint keeps queue q on the same worker across pauses */
	cq->q = vfurt_dev_queue_add(c->dev, vfr_nvme_cq_poll, cq, (int)cq->qid);
	if (!cq->q)
		return -ENOMEM;
	vfurt_dev_queue_set_arm(cq->q, vfr_nvme_cq_arm);
	return 0;
}

void vfr_nvme_kick_qid(struct nvme_ctrl *c, uint32_t qid, bool cq)
{
	struct nvme_cq *q;

	if (qid == 0 || qid > NVME_MAX_QID)
		return;
	if (cq)
		q = c->cq[qid];
	else
		q = c->sq[qid] ? c->sq[qid]->cq : NULL;
	if (q && q->q)
		vfurt_dev_queue_kick(q->q);
}

/*
 * The guest wrote an I/O doorbell and KVM signalled our ioeventfd (one fd for
 * all of them: which one is unknown, and so is the value). With shadow
 * doorbells the value is in guest memory: wake every I/O poller, they read
 * it. Without, the write is lost: say so and stop, as hardware would.
 */
static void db_ioeventfd(struct vfurt_dev *dev, void *arg, uint64_t count)
{
	struct nvme_ctrl *c = arg;

	(void)dev;
	(void)count;
	if (!(c->csts & CSTS_RDY))
		return;
	if (!c->dbbuf) {
		vfr_nvme_set_fatal(c, "I/O doorbell written through the ioeventfd without "
				  "Doorbell Buffer Config (shadow doorbells): its value is lost");
		return;
	}
	for (uint32_t q = 1; q <= NVME_MAX_QID; q++)
		if (c->cq[q] && c->cq[q]->q)
			vfurt_dev_queue_kick(c->cq[q]->q);
}

void vfr_nvme_io_pause(struct nvme_ctrl *c, bool drain)
{
	uint64_t deadline;
	bool any = false;

	for (uint32_t q = 1; q <= NVME_MAX_QID; q++) {
		if (!c->cq[q])
			continue;
		any = true;
		/* returns once the poller cannot run: the CQ is ours now */
		vfurt_dev_queue_remove(c->dev, &c->cq[q]->q);
	}
	if (!any)
		return;
	c->io_paused = true;
	if (!drain)
		return; /* the caller frees the queues, which cancels their I/O */
	deadline = nvme_now_ns() + NVME_DRAIN_TIMEOUT_NS;
	for (;;) {
		if (!vfr_nvme_io_drain_pass(c))
			return;
		if (nvme_now_ns() > deadline) {
			vfr_nvme_set_fatal(c, "I/O did not drain");
			return;
		}
		sched_yield();
	}
}

bool vfr_nvme_io_drain_pass(struct nvme_ctrl *c)
{
	bool busy = false;

	for (uint32_t q = 1; q <= NVME_MAX_QID; q++) {
		if (c->cq[q] && vfr_nvme_io_inflight(c->cq[q])) {
			vfr_nvme_io_pass(c->cq[q], false);
			busy = true;
		}
	}
	return busy;
}

int vfr_nvme_io_resume(struct nvme_ctrl *c)
{
	/* frozen (a live upgrade): the pollers come back at thaw */
	if (!c->io_paused || atomic_load(&c->frozen))
		return 0;
	for (uint32_t q = 1; q <= NVME_MAX_QID; q++) {
		struct nvme_cq *cq = c->cq[q];

		/* a CQ whose SQ is being deleted comes back when that is done */
		if (!cq || cq->q || (c->del_sq && c->del_sq->cq == cq))
			continue;
		if (vfr_nvme_cq_start(c, cq)) {
			vfr_nvme_set_fatal(c, "cannot poll an I/O queue");
			return -ENOMEM;
		}
	}
	c->io_paused = false;
	return 0;
}

/* The controller poller, on the device's home thread: resumes I/O after a
 * quiesce (the command that needed it has finished by now) and serves the
 * admin queue. */
static int ctrl_poll(struct vfurt_dev *dev, void *arg)
{
	struct nvme_ctrl *c = arg;

	(void)dev;
	if ((c->csts & CSTS_SHST_MASK) == CSTS_SHST_BUSY)
		return vfr_nvme_shutdown_step(c) ? 1 : 0;
	if (atomic_load_explicit(&c->frozen, memory_order_relaxed))
		return vfr_nvme_frozen_poll(c) ? 1 : 0; /* in-flight work only */
	if (!(c->csts & CSTS_RDY) || (c->csts & CSTS_CFS) || atomic_load(&c->fatal))
		return 0;
	if (c->io_paused && !(c->csts & CSTS_SHST_MASK))
		(void)vfr_nvme_io_resume(c);
	return vfr_nvme_admin_poll(c) ? 1 : 0;
}

/* The admin queue's doorbell is never shadowed: with the page trapped its
 * writes arrive as messages, which wake the home worker anyway; events from
 * I/O pollers kick it. With the page mapped nothing can wake it. */
static int ctrl_arm(struct vfurt_dev *dev, void *arg, bool arm)
{
	struct nvme_ctrl *c = arg;

	(void)dev;
	if (!arm)
		return VFURT_ARM_DONE;
	/* frozen: nothing is fetched or delivered until thaw, which kicks us */
	if (atomic_load_explicit(&c->frozen, memory_order_relaxed))
		return vfr_nvme_frozen_busy(c) ? VFURT_ARM_PENDING : VFURT_ARM_DONE;
	if ((c->csts & CSTS_SHST_MASK) == CSTS_SHST_BUSY || c->del_sq)
		return VFURT_ARM_PENDING; /* draining: backend I/O needs our passes */
	if (c->nr_aer && (atomic_load(&c->events) & ~c->ev_masked))
		return VFURT_ARM_PENDING; /* an event is deliverable now */
	if ((c->csts & CSTS_RDY) && c->sq[0]) {
		uint32_t tail = vfr_nvme_sq_tail(c->sq[0]);

		if (tail != UINT32_MAX && tail != c->sq[0]->head)
			return VFURT_ARM_PENDING; /* the last pass stopped at its budget */
	}
	return c->trap_db || !(c->csts & CSTS_RDY) ? VFURT_ARM_DONE : VFURT_ARM_POLL;
}

static int nvme_reset_op(struct vfurt_dev *dev, void *arg, enum vfurt_reset_reason why)
{
	struct nvme_ctrl *c = arg;

	(void)dev;
	vfurt_logf(&c->log, VFURT_LOG_INFO, "%s: device reset (%d)", c->name, (int)why);
	vfr_nvme_ctrl_reset(c, true);
	return 0;
}

/* DMA map/unmap and reset: finish the I/O in flight (its completions are
 * posted while the memory is still there) and keep the queues parked until
 * the controller poller's next pass, which runs after the command. */
static int nvme_quiesce_op(struct vfurt_dev *dev, void *arg)
{
	struct nvme_ctrl *c = arg;

	(void)dev;
	/* paused already (frozen, or a shutdown working off its backlog) is
	 * not drained: I/O may still be in flight on the paused queues */
	vfr_nvme_io_pause(c, true);
	return 0;
}

static void nvme_dma_unmap_op(struct vfurt_dev *dev, void *arg, const struct vfurt_dma_region *r)
{
	struct nvme_ctrl *c = arg;

	(void)dev;
	(void)r;
	/* a client disconnect unmaps without quiescing first */
	vfr_nvme_io_pause(c, true);
}

static void nvme_attach_op(struct vfurt_dev *dev, void *arg)
{
	struct nvme_ctrl *c = arg;

	/* the admin queue must run where the control plane runs: it creates
	 * and deletes queues */
	c->ctrl_q = vfurt_dev_queue_add(dev, ctrl_poll, c, VFURT_QUEUE_HOME);
	if (!c->ctrl_q)
		vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: cannot poll the admin queue", c->name);
	else
		vfurt_dev_queue_set_arm(c->ctrl_q, ctrl_arm);
}

static void nvme_detach_op(struct vfurt_dev *dev, void *arg)
{
	struct nvme_ctrl *c = arg;

	vfr_nvme_ctrl_reset(c, true);
	vfurt_dev_queue_remove(dev, &c->ctrl_q);
}

static void nvme_destroy_op(struct vfurt_dev *dev, void *arg)
{
	struct nvme_ctrl *c = arg;

	vfr_nvme_ctrl_reset(c, true);
	vfurt_dev_queue_remove(dev, &c->ctrl_q);
	for (uint32_t i = 0; i < VFURT_NVME_MAX_NS; i++)
		if (c->ns[i].owned)
			vfurt_bdev_destroy(c->ns[i].bdev);
	if (c->db)
		munmap(c->db, NVME_DB_SIZE);
	if (c->db_fd >= 0)
		close(c->db_fd);
	if (c->ioev_fd >= 0)
		close(c->ioev_fd);
	free(c);
}

static const struct vfurt_dev_ops nvme_ops = {
	.ops_size = sizeof(struct vfurt_dev_ops),
	.reset = nvme_reset_op,
	.quiesce = nvme_quiesce_op,
	.dma_unmap = nvme_dma_unmap_op,
	.attach = nvme_attach_op,
	.detach = nvme_detach_op,
	.destroy = nvme_destroy_op,
	.freeze = vfr_nvme_freeze_op,
	.thaw = vfr_nvme_thaw_op,
	.save = vfr_nvme_save_op,
	.restore = vfr_nvme_restore_op,
};

/* BAR4 outside the MSI-X table and PBA: reads as zero. */
static ssize_t bar4_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			   uint64_t offset, bool is_write)
{
	(void)dev;
	(void)arg;
	(void)offset;
	if (!is_write)
		memset(buf, 0, count);
	return (ssize_t)count;
}

/*
 * Identifiers. Everything a host uses to tell controllers and namespaces
 * apart is derived, never random, so that a restart with the same
 * configuration shows the guest the same devices (Linux drops a namespace
 * whose identifiers changed; /dev/disk/by-id must stay put):
 *   serial  = given, or "VFRT" + hex(H("sn", identity or name))
 *   NGUID   = H("nguid", serial, nsid) around the OUI
 *   EUI-64  = OUI + 40 bits of H("eui64", serial, nsid)
 *   UUID    = H("uuid", serial, nsid) with the version 4 and RFC 4122
 *             variant bits set (a name-based value looks random enough
 *             for v4, and every RFC 4122 parser accepts v4)
 * H is FNV-1a finished with murmur3's fmix64, so that every input bit
 * reaches every output bit (bare FNV mixes the last bytes poorly); it is
 * not cryptographic, the values only have to differ. Two controllers given
 * the same serial get the same namespace identifiers: they claim to be one
 * subsystem, which is a configuration error either way.
 */
static uint64_t fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static uint64_t id_hash(const char *tag, const char *s, uint32_t nsid, uint32_t k)
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint8_t tail[8];

	for (; *tag; tag++)
		h = (h ^ (uint8_t)*tag) * 0x100000001b3ull;
	h = (h ^ 0u) * 0x100000001b3ull; /* separator: tag "ab"+"c" != "a"+"bc" */
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	for (int i = 0; i < 4; i++) {
		tail[i] = (uint8_t)(nsid >> (8 * i));
		tail[4 + i] = (uint8_t)(k >> (8 * i));
	}
	for (size_t i = 0; i < sizeof(tail); i++)
		h = (h ^ tail[i]) * 0x100000001b3ull;
	return fmix64(h);
}

static void put_be(uint8_t *b, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static void default_serial(char *out, size_t cap, const char *identity)
{
	static const char hex[] = "0123456789ABCDEF";
	uint64_t h = id_hash("sn", identity, 0, 0);
	size_t n;

	assert(cap >= 21);
	memcpy(out, "VFRT", 4);
	for (n = 4; n < 20; n++)
		out[n] = hex[(h >> (4 * (19 - n))) & 0xfu];
	out[20] = '\0';
}

static void make_ns_ids(const char *serial, uint32_t nsid, struct nvme_ns *ns)
{
	put_be(ns->nguid, id_hash("nguid", serial, nsid, 0), 8);
	put_be(ns->nguid + 8, NVME_IEEE_OUI, 3);
	put_be(ns->nguid + 11, id_hash("nguid", serial, nsid, 1), 5);
	put_be(ns->eui64, NVME_IEEE_OUI, 3);
	put_be(ns->eui64 + 3, id_hash("eui64", serial, nsid, 0), 5);
	put_be(ns->uuid, id_hash("uuid", serial, nsid, 0), 8);
	put_be(ns->uuid + 8, id_hash("uuid", serial, nsid, 1), 8);
	ns->uuid[6] = (uint8_t)((ns->uuid[6] & 0x0f) | 0x40); /* version 4 */
	ns->uuid[8] = (uint8_t)((ns->uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

void vfr_nvme_ns_setup(struct nvme_ctrl *c, uint32_t nsid, struct vfurt_bdev *bdev, bool owned)
{
	struct nvme_ns *ns = &c->ns[nsid - 1];

	memset(ns, 0, sizeof(*ns));
	ns->bdev = bdev;
	ns->owned = owned;
	ns->lba_shift = vfurt_bdev_block_size(bdev) == 512 ? 9 : 12;
	ns->nsze = vfurt_bdev_num_blocks(bdev);
	ns->caps = vfurt_bdev_caps(bdev);
	ns->write_through = (ns->caps & VFURT_BDEV_CAP_FLUSH) && !c->vwc;
	make_ns_ids(c->serial, nsid, ns);
}

static int init_ns(struct nvme_ctrl *c, const struct vfurt_nvme_opts *o)
{
	bool all_dealloc = true, all_wz = true;
	uint32_t min_shift = 12;

	for (uint32_t i = 0; i < o->nr_ns; i++) {
		uint32_t bs, caps;

		if (!o->ns[i])
			return -EINVAL;
		bs = vfurt_bdev_block_size(o->ns[i]);
		if (bs != 512 && bs != 4096)
			return -EINVAL;
		if (bs == 512)
			min_shift = 9;
		caps = vfurt_bdev_caps(o->ns[i]);
		if (!(caps & VFURT_BDEV_CAP_DEALLOCATE))
			all_dealloc = false;
		if (!(caps & VFURT_BDEV_CAP_WRITE_ZEROES))
			all_wz = false;
		if (caps & VFURT_BDEV_CAP_FLUSH)
			c->vwc = true;
	}
	/* after c->vwc: a namespace given at creation is never write-through */
	for (uint32_t i = 0; i < o->nr_ns; i++)
		vfr_nvme_ns_setup(c, i + 1, o->ns[i], o->own_bdevs);
	c->ns_end = o->nr_ns;
	c->min_lba_shift = min_shift;
	c->oncs = (uint16_t)((all_dealloc ? 1u << 2 : 0u) | (all_wz ? 1u << 3 : 0u));
	/* 65536 blocks of the smallest size, in 4 KiB pages: 2^(16 + shift - 12) */
	c->wzsl = (uint8_t)(16u + min_shift - 12u);
	return 0;
}

/* Every I/O SQ tail and CQ head doorbell as a 4-byte ioeventfd sub-region
 * of BAR0, all on one eventfd (the client's fd limit stays small). */
static int setup_ioeventfds(struct nvme_ctrl *c)
{
	c->ioev_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->ioev_fd < 0)
		return -errno;
	for (uint32_t q = 1; q <= c->max_ioq; q++) {
		for (uint32_t k = 0; k < 2; k++) {
			uint64_t off = NVME_DB_OFF + (2ull * q + k) * 4u;
			bool first = q == 1 && k == 0;
			int rc = vfurt_dev_add_ioeventfd(c->dev, VFURT_REGION_BAR0, off, 4, 0, 0,
							 c->ioev_fd, first ? db_ioeventfd : NULL,
							 c);

			if (rc)
				return rc;
		}
	}
	return 0;
}

static int setup_bars(struct nvme_ctrl *c)
{
	static const struct vfurt_sparse_area db_area = { .offset = NVME_DB_OFF,
							  .size = NVME_DB_SIZE };
	struct vfurt_region_desc r = { 0 };
	void *p;
	int rc;

	c->db_fd = memfd_create("vfurt-nvme-bar0", MFD_CLOEXEC);
	if (c->db_fd < 0)
		return -errno;
	/* the region maps the fd from offset 0; only the doorbell page is
	 * exported, so the file holds the whole BAR and we map its second page */
	if (ftruncate(c->db_fd, NVME_BAR0_SIZE))
		return -errno;
	p = mmap(NULL, NVME_DB_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, c->db_fd, NVME_DB_OFF);
	if (p == MAP_FAILED)
		return -errno;
	c->db = p;

	r.desc_size = sizeof(r);
	r.size = NVME_BAR0_SIZE;
	r.flags = VFURT_REGION_RW | VFURT_REGION_MEM64;
	r.access = vfr_nvme_bar0_access;
	r.arg = c;
	/*
	 * Trapped doorbells: the memfd stays the doorbells' storage, but BAR0 is
	 * not offered for mmap at all. A client maps every region that has an fd
	 * and MMAP, and without sparse areas QEMU maps the whole BAR, so the
	 * guest's register writes (CC.EN) would never reach us.
	 */
	r.fd = c->trap_db ? -1 : c->db_fd;
	r.fd_offset = 0;
	r.sparse = c->trap_db ? NULL : &db_area;
	r.nr_sparse = c->trap_db ? 0 : 1;
	rc = vfurt_dev_setup_region(c->dev, VFURT_REGION_BAR0, &r);
	if (rc)
		return rc;
	if (c->trap_db) {
		rc = setup_ioeventfds(c);
		if (rc)
			return rc;
	}
	memset(&r, 0, sizeof(r));
	r.desc_size = sizeof(r);
	r.size = NVME_BAR4_SIZE;
	r.flags = VFURT_REGION_RW;
	r.access = bar4_access;
	r.arg = c;
	r.fd = -1;
	return vfurt_dev_setup_region(c->dev, VFURT_REGION_BAR4, &r);
}

static int setup_pci(struct nvme_ctrl *c)
{
	struct vfurt_pci_opts po = { 0 };
	int rc;

	po.opts_size = sizeof(po);
	po.vendor_id = NVME_PCI_VENDOR;
	po.device_id = NVME_PCI_DEVICE;
	po.subsys_vendor_id = NVME_PCI_VENDOR;
	po.subsys_id = 0;
	po.class_code = NVME_PCI_CLASS;
	po.intx_pin = 1;
	po.cfg_size = VFURT_PCI_CFG_SIZE_EXP;
	c->pci = vfurt_pci_create(c->dev, &po);
	if (!c->pci)
		return -errno;
	rc = vfurt_pci_add_pm(c->pci);
	if (rc < 0)
		return rc;
	rc = vfurt_pci_add_msix(c->pci, c->max_ioq + 1, VFURT_REGION_BAR4, 0, VFURT_REGION_BAR4,
				NVME_MSIX_PBA_OFF);
	if (rc < 0)
		return rc;
	rc = vfurt_pci_add_pcie(c->pci);
	if (rc < 0)
		return rc;
	vfurt_irq_set_resample(c->dev, vfr_nvme_intx_resample, c);
	return 0;
}

struct vfurt_dev *vfurt_nvme_create(const struct vfurt_nvme_opts *opts)
{
	struct vfurt_nvme_opts o = { 0 };
	struct vfurt_dev_opts dopts = { 0 };
	struct nvme_ctrl *c;
	int err;

	if (vfurt_abi_copy_in(&o, sizeof(o), opts,
			      VFURT_ABI_SIZE(struct vfurt_nvme_opts, identity))) {
		errno = EINVAL;
		return NULL;
	}
	if (!o.max_io_queues)
		o.max_io_queues = 4;
	if (!o.max_queue_entries)
		o.max_queue_entries = 1024;
	if (!o.ns || o.nr_ns == 0 || o.nr_ns > VFURT_NVME_MAX_NS ||
	    o.max_io_queues > VFURT_NVME_MAX_IO_QUEUES || o.max_queue_entries < 2 ||
	    o.max_queue_entries > 4096) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	c->db_fd = -1;
	c->ioev_fd = -1;
	c->trap_db = o.ioeventfd;
	c->irq_per_cqe = o.irq_per_completion;
	c->log = o.log;
	copy_str(c->name, sizeof(c->name), o.name ? o.name : "nvme");
	if (o.serial)
		copy_str(c->serial, sizeof(c->serial), o.serial);
	else
		default_serial(c->serial, sizeof(c->serial), o.identity ? o.identity : c->name);
	copy_str(c->model, sizeof(c->model), o.model ? o.model : "vfu-rt NVMe");
	c->max_ioq = o.max_io_queues;
	c->mqes = o.max_queue_entries - 1;
	err = init_ns(c, &o);
	if (err)
		goto err_free;

	dopts.opts_size = sizeof(dopts);
	dopts.name = c->name;
	dopts.ops = &nvme_ops;
	dopts.arg = c;
	dopts.log = o.log;
	dopts.reset_supported = true;
	c->dev = vfurt_dev_create(&dopts);
	if (!c->dev) {
		err = -errno;
		goto err_free;
	}
	/* from here on vfurt_dev_destroy frees c through ops->destroy */
	err = setup_bars(c);
	if (err)
		goto err_destroy_dev;
	vfr_nvme_ctrl_reset(c, true);
	err = setup_pci(c);
	if (err)
		goto err_destroy_dev;
	return c->dev;

err_destroy_dev:
	for (uint32_t i = 0; i < VFURT_NVME_MAX_NS; i++)
		c->ns[i].owned = false; /* on failure the caller keeps its bdevs */
	vfurt_dev_destroy(c->dev);
	errno = -err;
	return NULL;

err_free:
	free(c);
	errno = -err;
	return NULL;
}
