/* Device and region commands: GET_INFO, GET_REGION_INFO, GET_REGION_IO_FDS, REGION_*. */
#include <errno.h>
#include <string.h>

#include "conn_internal.h"

int vfr_cmd_device_info(struct vfurt_conn *c, struct vfurt_msg *m)
{
	const struct vfio_user_device_info *in = (const void *)m->payload;
	struct vfio_user_device_info *out;

	if (m->len < sizeof(*in) || in->argsz < sizeof(*in))
		return -EINVAL;
	out = vfr_reply_alloc(c, sizeof(*out));
	if (!out)
		return -ENOMEM;
	out->argsz = sizeof(*out);
	out->flags = VFIO_DEVICE_FLAGS_PCI | (c->dev->reset_supported ? VFIO_DEVICE_FLAGS_RESET : 0);
	out->num_regions = vfr_dev_num_regions(c->dev);
	out->num_irqs = VFURT_IRQ_NUM;
	return 0;
}

/* Look up a region the client may access with count bytes at offset. */
static int check_access(struct vfurt_conn *c, uint32_t index, uint64_t offset, uint32_t count,
			bool is_write, const struct vfurt_region **out)
{
	const struct vfurt_region *r;

	if (index >= VFURT_MAX_REGIONS)
		return -EINVAL;
	r = &c->dev->regions[index];
	if (r->d.size == 0 || !r->d.access)
		return -EINVAL;
	if (!(r->d.flags & (is_write ? VFURT_REGION_WRITE : VFURT_REGION_READ)))
		return -EPERM;
	if (count == 0 || count > c->max_xfer)
		return -EINVAL;
	if (offset > r->d.size || count > r->d.size - offset)
		return -EINVAL;
	*out = r;
	return 0;
}

static int do_access(struct vfurt_conn *c, const struct vfurt_region *r, void *buf,
		     uint32_t count, uint64_t offset, bool is_write)
{
	ssize_t n = r->d.access(c->dev, r->d.arg, buf, count, offset, is_write);

	if (n < 0)
		return (int)n;
	return (size_t)n == count ? 0 : -EIO;
}

int vfr_cmd_region_info(struct vfurt_conn *c, struct vfurt_msg *m)
{
	const struct vfio_region_info *in = (const void *)m->payload;
	struct vfio_region_info *out;
	const struct vfurt_region *r;
	size_t sparse_len = 0;
	size_t type_len = 0;
	size_t total;
	uint8_t *p;

	if (m->len < sizeof(*in) || in->argsz < sizeof(*in))
		return -EINVAL;
	if (in->index >= vfr_dev_num_regions(c->dev))
		return -EINVAL;
	r = &c->dev->regions[in->index];
	if (r->d.size && r->d.fd >= 0 && r->d.nr_sparse)
		sparse_len = sizeof(struct vfio_region_info_cap_sparse_mmap) +
			     r->d.nr_sparse * sizeof(struct vfio_region_sparse_mmap_area);
	if (r->d.size && r->d.cap_type)
		type_len = sizeof(struct vfio_region_info_cap_type);
	total = sizeof(*out) + sparse_len + type_len;

	out = vfr_reply_alloc(c, in->argsz >= total ? total : sizeof(*out));
	if (!out)
		return -ENOMEM;
	out->argsz = (uint32_t)total;
	out->index = in->index;
	if (r->d.size == 0)
		return 0; /* absent region: size 0, no flags */
	out->size = r->d.size;
	if (r->d.flags & VFURT_REGION_READ)
		out->flags |= VFIO_REGION_INFO_FLAG_READ;
	if (r->d.flags & VFURT_REGION_WRITE)
		out->flags |= VFIO_REGION_INFO_FLAG_WRITE;
	if (r->d.fd >= 0) {
		out->flags |= VFIO_REGION_INFO_FLAG_MMAP;
		out->offset = r->d.fd_offset;
	}
	/*
	 * The spec's FLAG_CAPS means "capabilities found in the reply": with an
	 * argsz too small for the chain the reply carries neither the chain nor
	 * the flag (cap_offset stays 0), only argsz = total, and the client asks
	 * again. QEMU rejects FLAG_CAPS with cap_offset outside [32, argsz]
	 * ("failed to get region N info: Invalid argument"), so the kernel's
	 * habit of setting the flag in the short reply must not be copied.
	 */
	if (in->argsz < total)
		return 0;
	if (sparse_len || type_len)
		out->flags |= VFIO_REGION_INFO_FLAG_CAPS;

	p = (uint8_t *)(out + 1);
	if (sparse_len) {
		struct vfio_region_info_cap_sparse_mmap *sp = (void *)p;

		out->cap_offset = sizeof(*out);
		sp->header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
		sp->header.version = 1;
		sp->header.next = type_len ? (uint32_t)(sizeof(*out) + sparse_len) : 0;
		sp->nr_areas = r->d.nr_sparse;
		for (uint32_t i = 0; i < r->d.nr_sparse; i++) {
			sp->areas[i].offset = r->areas[i].offset;
			sp->areas[i].size = r->areas[i].size;
		}
		p += sparse_len;
	}
	if (type_len) {
		struct vfio_region_info_cap_type *t = (void *)p;

		if (!out->cap_offset)
			out->cap_offset = sizeof(*out);
		t->header.id = VFIO_REGION_INFO_CAP_TYPE;
		t->header.version = 1;
		t->type = r->d.cap_type;
		t->subtype = r->d.cap_subtype;
	}
	if (r->d.fd >= 0) {
		c->reply.fds[0] = r->d.fd; /* the kernel duplicates it in transit */
		c->reply.nfds = 1;
	}
	return 0;
}

int vfr_cmd_region_io_fds(struct vfurt_conn *c, struct vfurt_msg *m)
{
	const struct vfio_user_region_io_fds_request *in = (const void *)m->payload;
	struct vfio_user_region_io_fds_reply *out;
	const struct vfurt_dev *dev = c->dev;
	uint32_t count = 0;
	size_t total;

	if (m->len < sizeof(*in) || in->argsz < sizeof(*in) || in->flags || in->count)
		return -EINVAL;
	if (in->index >= vfr_dev_num_regions(dev) || dev->regions[in->index].d.size == 0)
		return -EINVAL;
	for (uint32_t i = 0; i < dev->nr_ioev; i++)
		if (dev->ioev[i].region == in->index)
			count++;
	total = sizeof(*out) + count * sizeof(out->sub_regions[0]);
	out = vfr_reply_alloc(c, in->argsz >= total ? total : sizeof(*out));
	if (!out)
		return -ENOMEM;
	out->argsz = (uint32_t)total;
	out->index = in->index;
	out->count = count;
	if (in->argsz < total || count == 0)
		return 0;

	count = 0;
	for (uint32_t i = 0; i < dev->nr_ioev; i++) {
		const struct vfurt_ioeventfd *e = &dev->ioev[i];
		struct vfio_user_sub_region_io_fd *s;
		size_t fd_index;

		if (e->region != in->index)
			continue;
		/* several sub-regions may share one fd: send it once */
		for (fd_index = 0; fd_index < c->reply.nfds; fd_index++)
			if (c->reply.fds[fd_index] == e->fd)
				break;
		if (fd_index == c->reply.nfds) {
			if (c->reply.nfds >= c->client_max_fds) {
				c->reply.nfds = 0;
				return -ENOSPC;
			}
			c->reply.fds[c->reply.nfds++] = e->fd;
		}
		s = &out->sub_regions[count++];
		s->offset = e->offset;
		s->size = e->size;
		s->fd_index = (uint32_t)fd_index;
		s->type = e->type;
		s->flags = e->flags;
		s->datamatch_or_user_data = e->datamatch;
	}
	return 0;
}

int vfr_cmd_region_read(struct vfurt_conn *c, struct vfurt_msg *m)
{
	const struct vfio_user_region_access *in = (const void *)m->payload;
	struct vfio_user_region_access *out;
	const struct vfurt_region *r;
	int rc;

	if (m->len != sizeof(*in))
		return -EINVAL;
	rc = check_access(c, in->region, in->offset, in->count, false, &r);
	if (rc)
		return rc;
	out = vfr_reply_alloc(c, sizeof(*out) + in->count);
	if (!out)
		return -ENOMEM;
	out->offset = in->offset;
	out->region = in->region;
	out->count = in->count;
	return do_access(c, r, out->data, in->count, in->offset, false);
}

int vfr_cmd_region_write(struct vfurt_conn *c, struct vfurt_msg *m)
{
	struct vfio_user_region_access *in = (void *)m->payload;
	struct vfio_user_region_access *out;
	const struct vfurt_region *r;
	int rc;

	if (m->len < sizeof(*in) || m->len - sizeof(*in) != in->count)
		return -EINVAL;
	rc = check_access(c, in->region, in->offset, in->count, true, &r);
	if (rc)
		return rc;
	rc = do_access(c, r, in->data, in->count, in->offset, true);
	if (rc)
		return rc;
	out = vfr_reply_alloc(c, sizeof(*out));
	if (!out)
		return -ENOMEM;
	out->offset = in->offset;
	out->region = in->region;
	out->count = in->count;
	return 0;
}

int vfr_cmd_region_write_multi(struct vfurt_conn *c, struct vfurt_msg *m)
{
	struct vfio_user_write_multi *in = (void *)m->payload;
	struct vfio_user_write_multi *out;
	uint64_t n;

	if (!c->write_multiple) {
		vfr_conn_logf(c, VFURT_LOG_WARN,
			   "%s: REGION_WRITE_MULTI without negotiated write_multiple",
			   c->dev->name);
		return -EINVAL;
	}
	if (m->len < sizeof(*in))
		return -EINVAL;
	n = in->wr_cnt;
	if (n == 0 || n > VFIO_USER_MULTI_MAX ||
	    m->len != sizeof(*in) + n * sizeof(in->wrs[0]))
		return -EINVAL;
	/* validate every entry first so that a bad one applies none */
	for (uint64_t i = 0; i < n; i++) {
		const struct vfio_user_write_multi_entry *e = &in->wrs[i];
		const struct vfurt_region *r;
		int rc;

		if (e->count > VFIO_USER_MULTI_DATA)
			return -EINVAL;
		rc = check_access(c, e->region, e->offset, e->count, true, &r);
		if (rc)
			return rc;
	}
	for (uint64_t i = 0; i < n; i++) {
		struct vfio_user_write_multi_entry *e = &in->wrs[i];
		const struct vfurt_region *r = &c->dev->regions[e->region];
		int rc = do_access(c, r, e->data, e->count, e->offset, true);

		if (rc)
			return rc;
	}
	out = vfr_reply_alloc(c, sizeof(*out));
	if (!out)
		return -ENOMEM;
	out->wr_cnt = n;
	return 0;
}
