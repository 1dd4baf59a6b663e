/* DMA_MAP/UNMAP, GET_IRQ_INFO, SET_IRQS and DEVICE_RESET. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "conn_internal.h"

static void map_notify(struct vfurt_dev *dev, const struct vfurt_dma_region *r)
{
	if (dev->ops.dma_map)
		dev->ops.dma_map(dev, dev->arg, r);
}

static void unmap_notify(void *arg, const struct vfurt_dma_region *r)
{
	struct vfurt_dev *dev = arg;

	if (dev->ops.dma_unmap)
		dev->ops.dma_unmap(dev, dev->arg, r);
}

/* A memfd that may shrink: the server survives a truncation (fault.c), the
 * client loses its connection. Say so once per client. Other files report
 * EINVAL for F_GET_SEALS and cannot be sealed: nothing to advise. */
static void check_seals(struct vfurt_conn *c, int fd, uint64_t iova)
{
	int seals;

	if (c->warned_unsealed)
		return;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & F_SEAL_SHRINK))
		return;
	c->warned_unsealed = true;
	vfurt_logf(c->log, VFURT_LOG_WARN,
		   "%s: DMA_MAP iova 0x%llx: memfd not sealed with F_SEAL_SHRINK; truncating it "
		   "disconnects this client", c->dev->name, (unsigned long long)iova);
}

/* Say why a DMA_MAP failed, naming the limit when one was reached (one line
 * per refusal, rate-limited per client by vfr_conn_logf: a flood of refused
 * maps costs the log a few lines a second). */
static void map_refused(struct vfurt_conn *c, const struct vfio_user_dma_map *in, int fd, int rc)
{
	const struct vfurt_dma_quota_acct *qa = &c->dev->quota;
	uint32_t n = vfr_dma_table_count(c->dev->dma);
	struct vfurt_dma_quota_stats qs = { .stats_size = sizeof(qs) };
	char why[160] = "";

	if (rc == -ENOSPC && n >= c->max_dma_maps) {
		snprintf(why, sizeof(why), ": the client holds max_dma_maps (%u) windows",
			 c->max_dma_maps);
	} else if (rc == -ENOMEM && fd >= 0 && qa->q && qa->used >= qa->reserved) {
		vfurt_dma_quota_get_stats(qa->q, &qs);
		if (qs.committed >= qs.limit)
			snprintf(why, sizeof(why),
				 ": the process-wide quota of fd-backed DMA windows "
				 "(dma_maps_process_max %u) is used up; this client holds %u",
				 qs.limit, qa->used);
	}
	vfr_conn_logf(c, VFURT_LOG_WARN, "%s: DMA_MAP iova 0x%llx size 0x%llx%s failed: %s%s",
		  c->dev->name, (unsigned long long)in->addr, (unsigned long long)in->size,
		  fd >= 0 ? " (fd)" : "", strerror(-rc), why);
}

int vfr_cmd_dma_map(struct vfurt_conn *c, struct vfurt_msg *m)
{
	const struct vfio_user_dma_map *in = (const void *)m->payload;
	struct vfurt_dma_region r;
	uint32_t prot = 0;
	int fd;
	int rc;

	if (m->len < sizeof(*in) || in->argsz < sizeof(*in))
		return -EINVAL;
	if (in->flags & ~(VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE) ||
	    !in->flags)
		return -EINVAL;
	if (in->flags & VFIO_USER_DMA_MAP_FLAG_READ)
		prot |= VFURT_DMA_READ;
	if (in->flags & VFIO_USER_DMA_MAP_FLAG_WRITE)
		prot |= VFURT_DMA_WRITE;
	fd = m->nfds ? m->fds[0] : -1;
	if (fd >= 0)
		check_seals(c, fd, in->addr);
	rc = vfr_dma_table_add(c->dev->dma, in->addr, in->size, fd, fd >= 0 ? in->offset : 0,
				 prot, &r);
	if (rc) {
		map_refused(c, in, fd, rc);
		return rc; /* dispatch closes the fd */
	}
	if (fd >= 0)
		m->fds[0] = -1; /* the table owns it now */
	map_notify(c->dev, &r);
	return 0;
}

/* An fd sent along (SPDK does) means nothing here: dispatch closes it. */
int vfr_cmd_dma_unmap(struct vfurt_conn *c, struct vfurt_msg *m)
{
	const struct vfio_user_dma_unmap *in = (const void *)m->payload;
	struct vfio_user_dma_unmap *out;

	if (m->len < sizeof(*in) || in->argsz < sizeof(*in))
		return -EINVAL;
	if (in->flags & VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)
		return -ENOTSUP; /* dirty logging is not offered */
	if (in->flags & ~VFIO_USER_DMA_UNMAP_FLAG_ALL)
		return -EINVAL;
	if (in->flags & VFIO_USER_DMA_UNMAP_FLAG_ALL) {
		if (in->addr || in->size)
			return -EINVAL;
		vfr_dma_table_remove_all(c->dev->dma, unmap_notify, c->dev);
	} else {
		int rc = vfr_dma_table_remove(c->dev->dma, in->addr, in->size, unmap_notify,
						c->dev);

		if (rc)
			return rc;
	}
	out = vfr_reply_alloc(c, sizeof(*out));
	if (!out)
		return -ENOMEM;
	*out = *in;
	out->argsz = sizeof(*out);
	return 0;
}

int vfr_cmd_irq_info(struct vfurt_conn *c, struct vfurt_msg *m)
{
	const struct vfio_irq_info *in = (const void *)m->payload;
	struct vfio_irq_info *out;

	if (m->len < sizeof(*in) || in->argsz < sizeof(*in) || in->index >= VFURT_IRQ_NUM)
		return -EINVAL;
	out = vfr_reply_alloc(c, sizeof(*out));
	if (!out)
		return -ENOMEM;
	out->argsz = sizeof(*out);
	out->index = in->index;
	out->count = vfr_irqs_count(c->dev->irqs, in->index);
	out->flags = vfr_irqs_info_flags(c->dev->irqs, in->index);
	return 0;
}

static void irq_state(void *arg, uint32_t index, uint32_t start, uint32_t count, bool masked)
{
	struct vfurt_dev *dev = arg;

	if (dev->ops.irq_state)
		dev->ops.irq_state(dev, dev->arg, index, start, count, masked);
}

void vfr_dev_intx_unmask_ready(struct vfurt_dev *dev, void *ctx)
{
	(void)ctx;
	vfr_irqs_intx_unmask_event(dev->irqs, irq_state, dev);
}

/* Tell the PCI layer which vectors a TRIGGER request gave or took an
 * eventfd (it unmasks MSI-X table entries the client never wrote). */
static void report_eventfds(struct vfurt_dev *dev, const struct vfio_irq_set *in)
{
	uint32_t data_type = in->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	uint32_t start = in->start, count = in->count;

	if (!dev->pci_client_irq || (in->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) !=
				    VFIO_IRQ_SET_ACTION_TRIGGER)
		return;
	if (data_type == VFIO_IRQ_SET_DATA_NONE && count == 0) {
		start = 0; /* the index was disabled */
		count = vfr_irqs_count(dev->irqs, in->index);
	} else if (data_type != VFIO_IRQ_SET_DATA_EVENTFD) {
		return; /* a software trigger changes no eventfd */
	}
	for (uint32_t i = 0; i < count; i++)
		dev->pci_client_irq(dev->pci, in->index, start + i,
				    vfr_irqs_enabled(dev->irqs, in->index, start + i));
}

int vfr_cmd_set_irqs(struct vfurt_conn *c, struct vfurt_msg *m)
{
	const struct vfio_irq_set *in = (const void *)m->payload;
	int rc;

	if (m->len < sizeof(*in) || in->argsz < sizeof(*in) || in->argsz > m->len)
		return -EINVAL;
	rc = vfr_irqs_set(c->dev->irqs, in, (const uint8_t *)m->payload + sizeof(*in),
			    in->argsz - sizeof(*in), m->fds, m->nfds, irq_state, c->dev);
	if (rc)
		return rc; /* dispatch closes the fds */
	for (size_t i = 0; i < m->nfds; i++)
		m->fds[i] = -1; /* owned by the irq state now */
	report_eventfds(c->dev, in);
	return 0;
}

int vfr_cmd_reset(struct vfurt_conn *c, struct vfurt_msg *m)
{
	if (m->len != 0)
		return -EINVAL;
	if (!c->dev->reset_supported)
		return -ENOTSUP;
	vfr_conn_logf(c, VFURT_LOG_INFO, "%s: device reset by client", c->dev->name);
	return vfr_dev_do_reset(c->dev, VFURT_RESET_CLIENT);
}
