/* The device object: region and irq descriptions, DMA and interrupt entry points. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vfurt/abi.h>
#include <vfurt/device.h>

#include "device_internal.h"

#define PAGE_SIZE_4K 4096u

/* Where the first version of each sized struct ends (include/vfurt/abi.h). */
#define DEV_OPTS_V1 VFURT_ABI_SIZE(struct vfurt_dev_opts, reset_supported)
#define DEV_OPS_V1 VFURT_ABI_SIZE(struct vfurt_dev_ops, destroy)
#define REGION_DESC_V1 VFURT_ABI_SIZE(struct vfurt_region_desc, cap_subtype)

struct vfurt_dev *vfurt_dev_create(const struct vfurt_dev_opts *opts)
{
	struct vfurt_dev_opts o;
	struct vfurt_dev_ops ops = { 0 };
	struct vfurt_dev *dev;

	if (vfurt_abi_copy_in(&o, sizeof(o), opts, DEV_OPTS_V1) ||
	    (o.ops && vfurt_abi_copy_in(&ops, sizeof(ops), o.ops, DEV_OPS_V1))) {
		errno = EINVAL;
		return NULL;
	}

	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		errno = ENOMEM;
		return NULL;
	}
	snprintf(dev->name, sizeof(dev->name), "%s", o.name ? o.name : "device");
	dev->ops = ops;
	dev->arg = o.arg;
	dev->log = o.log;
	dev->reset_supported = o.reset_supported;
	dev->irqs = vfr_irqs_create();
	if (!dev->irqs)
		goto err_free_dev;
	dev->dma = vfr_dma_table_create(VFIO_USER_DEFAULT_MAX_DMA_MAPS, PAGE_SIZE_4K);
	if (!dev->dma)
		goto err_free_irqs;
	vfr_dma_table_set_fault(dev->dma, &dev->fault);
	/* counts nothing until a host makes it join a quota */
	vfr_dma_table_set_quota(dev->dma, &dev->quota);
	return dev;

err_free_irqs:
	vfr_irqs_destroy(dev->irqs);
err_free_dev:
	free(dev);
	errno = ENOMEM;
	return NULL;
}

void vfurt_dev_destroy(struct vfurt_dev *dev)
{
	if (!dev)
		return;
	if (dev->ops.destroy)
		dev->ops.destroy(dev, dev->arg);
	if (dev->pci && dev->pci_free)
		dev->pci_free(dev->pci);
	vfr_dev_free_host_state(dev);
	vfr_dma_table_destroy(dev->dma); /* gives its windows back first */
	vfr_dma_quota_leave(&dev->quota);
	vfr_irqs_destroy(dev->irqs);
	free(dev);
}

const char *vfurt_dev_name(const struct vfurt_dev *dev)
{
	return dev->name;
}

void *vfurt_dev_arg(const struct vfurt_dev *dev)
{
	return dev->arg;
}

const struct vfurt_log *vfurt_dev_log(const struct vfurt_dev *dev)
{
	return &dev->log;
}

void vfurt_dev_set_log(struct vfurt_dev *dev, const struct vfurt_log *log)
{
	dev->log = *log;
}

static bool page_aligned(uint64_t v)
{
	return (v & (PAGE_SIZE_4K - 1)) == 0;
}

int vfurt_dev_setup_region(struct vfurt_dev *dev, uint32_t index,
			   const struct vfurt_region_desc *desc)
{
	struct vfurt_region_desc d;
	struct vfurt_region *r;

	if (!dev || index >= VFURT_MAX_REGIONS ||
	    vfurt_abi_copy_in(&d, sizeof(d), desc, REGION_DESC_V1))
		return -EINVAL;
	if (dev->conn)
		return -EBUSY;
	if (d.flags & ~(VFURT_REGION_RW | VFURT_REGION_IO | VFURT_REGION_MEM64 |
			VFURT_REGION_PREFETCH))
		return -EINVAL;
	if (d.size == 0) {
		memset(&dev->regions[index], 0, sizeof(dev->regions[index]));
		dev->regions[index].d.fd = -1;
		return 0;
	}
	if (!(d.flags & VFURT_REGION_RW))
		return -EINVAL;
	if (d.fd < 0 && !d.access)
		return -EINVAL;
	if (d.fd < 0 && d.nr_sparse)
		return -EINVAL;
	if (d.nr_sparse > VFURT_MAX_SPARSE_AREAS || (d.nr_sparse && !d.sparse))
		return -EINVAL;
	if (d.fd >= 0 && !page_aligned(d.fd_offset))
		return -EINVAL;
	if (d.fd >= 0 && d.nr_sparse == 0 && !page_aligned(d.size))
		return -EINVAL;
	for (uint32_t i = 0; i < d.nr_sparse; i++) {
		const struct vfurt_sparse_area *a = &d.sparse[i];

		if (!a->size || !page_aligned(a->offset) || !page_aligned(a->size) ||
		    a->offset > d.size || a->size > d.size - a->offset)
			return -EINVAL;
	}

	r = &dev->regions[index];
	memset(r, 0, sizeof(*r));
	r->d = d;
	if (d.nr_sparse)
		memcpy(r->areas, d.sparse, sizeof(r->areas[0]) * d.nr_sparse);
	r->d.sparse = d.nr_sparse ? r->areas : NULL;
	r->d.desc_size = sizeof(r->d);
	return 0;
}

int vfurt_dev_get_region(const struct vfurt_dev *dev, uint32_t index,
			 struct vfurt_region_desc *desc)
{
	struct vfurt_region_desc d;

	if (!dev || index >= VFURT_MAX_REGIONS)
		return -EINVAL;
	d = dev->regions[index].d;
	d.desc_size = sizeof(d);
	if (d.size == 0)
		d.fd = -1;
	return vfurt_abi_copy_out(desc, &d, sizeof(d), REGION_DESC_V1);
}

int vfurt_dev_hook_region(struct vfurt_dev *dev, uint32_t index,
			  vfurt_region_access_fn fn, void *arg,
			  vfurt_region_access_fn *old_fn, void **old_arg)
{
	struct vfurt_region *r;

	if (!dev || index >= VFURT_MAX_REGIONS || !fn)
		return -EINVAL;
	r = &dev->regions[index];
	if (r->d.size == 0)
		return -EINVAL;
	if (old_fn)
		*old_fn = r->d.access;
	if (old_arg)
		*old_arg = r->d.arg;
	r->d.access = fn;
	r->d.arg = arg;
	return 0;
}

uint32_t vfr_dev_num_regions(const struct vfurt_dev *dev)
{
	uint32_t n = VFURT_REGION_NUM_PCI;

	for (uint32_t i = VFURT_REGION_NUM_PCI; i < VFURT_MAX_REGIONS; i++)
		if (dev->regions[i].d.size)
			n = i + 1;
	return n;
}

int vfurt_dev_setup_irq(struct vfurt_dev *dev, uint32_t index, uint32_t count)
{
	if (!dev || index >= VFURT_IRQ_NUM || count > VFURT_MAX_IRQ_VECTORS)
		return -EINVAL;
	if (dev->conn)
		return -EBUSY;
	return vfr_irqs_setup(dev->irqs, index, count);
}

uint32_t vfurt_dev_irq_count(const struct vfurt_dev *dev, uint32_t index)
{
	return vfr_irqs_count(dev->irqs, index);
}

int vfurt_dev_attach_pci(struct vfurt_dev *dev, struct vfurt_pci *pci,
			 void (*reset_fn)(struct vfurt_pci *pci),
			 void (*free_fn)(struct vfurt_pci *pci))
{
	if (!dev || !pci)
		return -EINVAL;
	if (dev->pci)
		return -EEXIST;
	dev->pci = pci;
	dev->pci_reset = reset_fn;
	dev->pci_free = free_fn;
	return 0;
}

int vfurt_dev_set_pci_hooks(struct vfurt_dev *dev, vfurt_pci_client_irq_fn irq_fn,
			    vfurt_pci_client_detach_fn detach_fn)
{
	if (!dev || !dev->pci)
		return -EINVAL;
	dev->pci_client_irq = irq_fn;
	dev->pci_client_detach = detach_fn;
	return 0;
}

int vfurt_dev_set_pci_state(struct vfurt_dev *dev,
			    int (*save)(struct vfurt_pci *pci, struct vfurt_state *s),
			    int (*restore)(struct vfurt_pci *pci, const struct vfurt_state_cur *c))
{
	if (!dev || !dev->pci)
		return -EINVAL;
	dev->pci_save = save;
	dev->pci_restore = restore;
	return 0;
}

struct vfurt_pci *vfurt_dev_pci(const struct vfurt_dev *dev)
{
	return dev ? dev->pci : NULL;
}

bool vfurt_dev_attached(const struct vfurt_dev *dev)
{
	return dev->conn != NULL;
}

int vfurt_dev_reset(struct vfurt_dev *dev, enum vfurt_reset_reason why)
{
	return vfr_dev_do_reset(dev, why);
}

int vfr_dev_do_reset(struct vfurt_dev *dev, enum vfurt_reset_reason why)
{
	/* irq state first: the PCI reset then re-applies the power-on masks
	 * (MSI/MSI-X disabled) on top of it */
	vfr_irqs_reset(dev->irqs);
	if (dev->pci && dev->pci_reset)
		dev->pci_reset(dev->pci);
	if (dev->ops.reset)
		return dev->ops.reset(dev, dev->arg, why);
	return 0;
}

/* ---- interrupts ------------------------------------------------------- */

int vfurt_irq_trigger(struct vfurt_dev *dev, uint32_t index, uint32_t vector)
{
	return vfr_irqs_trigger(dev->irqs, index, vector);
}

void vfurt_irq_set_guest_mask(struct vfurt_dev *dev, uint32_t index, uint32_t vector,
			      bool masked)
{
	vfr_irqs_set_guest_mask(dev->irqs, index, vector, masked);
}

void vfurt_irq_set_func_mask(struct vfurt_dev *dev, uint32_t index, bool masked)
{
	vfr_irqs_set_func_mask(dev->irqs, index, masked);
}

void vfurt_irq_set_resample(struct vfurt_dev *dev, vfurt_irq_resample_fn fn, void *arg)
{
	vfr_irqs_set_resample(dev->irqs, fn, arg);
}

bool vfurt_irq_pending(const struct vfurt_dev *dev, uint32_t index, uint32_t vector)
{
	return vfr_irqs_pending(dev->irqs, index, vector);
}

bool vfurt_irq_enabled(const struct vfurt_dev *dev, uint32_t index, uint32_t vector)
{
	return vfr_irqs_enabled(dev->irqs, index, vector);
}

/* ---- DMA --------------------------------------------------------------- */

int vfurt_dma_to_sg(struct vfurt_dev *dev, uint64_t iova, uint64_t len, uint32_t prot,
		    struct vfurt_sg *sg, int max_sg)
{
	return vfr_dma_table_to_sg(dev->dma, iova, len, prot, sg, max_sg);
}

void *vfurt_dma_ptr(struct vfurt_dev *dev, uint64_t iova, uint64_t len, uint32_t prot)
{
	return vfr_dma_table_ptr(dev->dma, iova, len, prot);
}

#define DMA_SG_BATCH 16

/* Translate the next part of [iova, iova+len) into sg; a range made of more
 * pieces than one batch is done in halves. Returns the count or -errno. */
static int next_sg(struct vfurt_dev *dev, uint64_t iova, uint64_t len, uint32_t prot,
		   struct vfurt_sg *sg)
{
	uint64_t chunk = len;
	int n;

	while ((n = vfr_dma_table_to_sg(dev->dma, iova, chunk, prot, sg, DMA_SG_BATCH)) ==
		       -ENOSPC && chunk > 1)
		chunk /= 2;
	return n;
}

/*
 * Walk [iova, iova+len). With op NULL: check only, counting into *need the
 * message requests the range takes (chunk: their size). Otherwise copy the
 * fd-backed pieces and send the others.
 */
static int dma_walk(struct vfurt_dev *dev, uint64_t iova, uint8_t *p, size_t len, bool is_write,
		    struct vfurt_dma_op *op, size_t chunk, uint64_t *need)
{
	struct vfurt_sg sg[DMA_SG_BATCH];
	uint32_t prot = is_write ? VFURT_DMA_WRITE : VFURT_DMA_READ;
	uint64_t lost = vfurt_fault_domain_count(&dev->fault);

	while (len > 0) {
		uint64_t done = 0;
		bool by_msg = false;
		int n = next_sg(dev, iova, len, prot, sg);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++) {
			if (!sg[i].vaddr) {
				by_msg = true;
				if (need)
					*need += chunk ? (sg[i].len + chunk - 1) / chunk : 1;
			} else if (op) {
				if (is_write)
					memcpy(sg[i].vaddr, p + done, sg[i].len);
				else
					memcpy(p + done, sg[i].vaddr, sg[i].len);
			}
			done += sg[i].len;
		}
		if (op && by_msg) {
			int rc = vfr_conn_dma_start(dev->conn, sg, n, p, is_write, op);

			if (rc)
				return rc;
		}
		iova += done;
		p += done;
		len -= done;
	}
	/* a window lost its backing under the copy (fault.c): the data is not real */
	return op && vfurt_fault_domain_count(&dev->fault) != lost ? -EFAULT : 0;
}

uint64_t vfurt_dma_lost_count(const struct vfurt_dev *dev)
{
	return dev ? vfurt_fault_domain_count(&dev->fault) : 0;
}

void vfurt_dma_report_lost(struct vfurt_dev *dev, uint64_t iova)
{
	if (dev)
		vfr_fault_domain_mark(&dev->fault, iova);
}

/* The synchronous calls: fd-backed memory only. */
static int dma_copy(struct vfurt_dev *dev, uint64_t iova, void *buf, size_t len,
		    bool is_write)
{
	struct vfurt_dma_op none = { 0 };
	uint64_t need = 0;
	int rc = dma_walk(dev, iova, buf, len, is_write, NULL, 0, &need);

	if (rc)
		return rc;
	if (need)
		return -EWOULDBLOCK;
	return dma_walk(dev, iova, buf, len, is_write, &none, 0, NULL);
}

static int dma_async(struct vfurt_dev *dev, uint64_t iova, void *buf, size_t len, bool is_write,
		     struct vfurt_dma_op *op, vfurt_dma_done_fn done, void *arg)
{
	struct vfurt_conn *conn;
	uint64_t need = 0;
	int rc;

	if (!dev || !op || !done || (!buf && len))
		return -EINVAL;
	if (len == 0)
		return 1;
	conn = dev->conn;
	rc = dma_walk(dev, iova, buf, len, is_write, NULL,
		      conn ? vfr_conn_dma_chunk(conn) : 0, &need);
	if (rc)
		return rc;
	if (need && !conn)
		return -ENOTCONN;
	if (need) {
		int free_slots = vfr_conn_dma_free_slots(conn);

		if (free_slots < 0)
			return free_slots;
		if (need > (uint64_t)free_slots)
			return -EBUSY;
	}
	*op = (struct vfurt_dma_op){ .done_ = done, .arg_ = arg, .pending_ = 1 };
	rc = dma_walk(dev, iova, buf, len, is_write, op, 0, NULL);
	if (rc && !op->status_)
		op->status_ = rc;
	/* drop the hold taken above: requests in flight finish the op */
	if (--op->pending_ > 0)
		return 0;
	return op->status_ ? op->status_ : 1;
}

int vfurt_dma_read_async(struct vfurt_dev *dev, uint64_t iova, void *buf, size_t len,
			 struct vfurt_dma_op *op, vfurt_dma_done_fn done, void *arg)
{
	return dma_async(dev, iova, buf, len, false, op, done, arg);
}

int vfurt_dma_write_async(struct vfurt_dev *dev, uint64_t iova, const void *buf, size_t len,
			  struct vfurt_dma_op *op, vfurt_dma_done_fn done, void *arg)
{
	return dma_async(dev, iova, (void *)buf, len, true, op, done, arg);
}

int vfurt_dma_read(struct vfurt_dev *dev, uint64_t iova, void *buf, size_t len)
{
	if (!dev || (!buf && len))
		return -EINVAL;
	if (len == 0)
		return 0;
	return dma_copy(dev, iova, buf, len, false);
}

int vfurt_dma_write(struct vfurt_dev *dev, uint64_t iova, const void *buf, size_t len)
{
	if (!dev || (!buf && len))
		return -EINVAL;
	if (len == 0)
		return 0;
	return dma_copy(dev, iova, (void *)buf, len, true);
}
