/* Client device operations: info queries, region access, interrupts, reset, features. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client_internal.h"

/* Largest argsz we follow when the server asks for a bigger reply. */
#define ARGSZ_RETRY_MAX (1u << 20)
/* Bound on capability chain length (guards against cycles). */
#define MAX_CAPS 64u

static void msg_close(struct client_msg *m)
{
	vfr_close_fds(m->fds, m->nfds);
	m->nfds = 0;
}

static struct iovec iov_of(const void *p, size_t len)
{
	struct iovec v = { .iov_base = (void *)p, .iov_len = len };

	return v;
}

/* A query with a fixed-size request and reply: send req, copy the first
 * out_len bytes of the reply to out. Returns 0, -EPROTO (short reply) or as
 * vfr_client_call. */
static int call_fixed(struct vfurt_client *c, uint16_t cmd, const void *req, size_t req_len,
		      void *out, size_t out_len)
{
	struct iovec iov = iov_of(req, req_len);
	struct client_msg m;
	int rc;

	rc = vfr_client_call(c, cmd, 0, &iov, 1, NULL, 0, &m);
	if (rc)
		return rc;
	if (m.len < out_len)
		rc = -EPROTO;
	else
		memcpy(out, m.payload, out_len);
	msg_close(&m);
	return rc;
}

int vfurt_client_device_info(struct vfurt_client *c, struct vfio_user_device_info *out)
{
	struct vfio_user_device_info req = { .argsz = sizeof(req) };

	if (!c || !out)
		return -EINVAL;
	return call_fixed(c, VFIO_USER_DEVICE_GET_INFO, &req, sizeof(req), out, sizeof(*out));
}

/* ---- region info ----------------------------------------------------------- */

void vfurt_client_region_info_release(struct vfurt_client_region_info *info)
{
	if (!info)
		return;
	if (info->fd >= 0)
		close(info->fd);
	free(info->sparse);
	free(info->raw);
	memset(info, 0, sizeof(*info));
	info->fd = -1;
}

static int parse_sparse(struct vfurt_client_region_info *info, const uint8_t *raw,
			size_t len, size_t off)
{
	struct vfio_region_info_cap_sparse_mmap sp;
	size_t avail;

	if (info->has_sparse || len - off < sizeof(sp))
		return -EPROTO;
	memcpy(&sp, raw + off, sizeof(sp));
	avail = (len - off - sizeof(sp)) / sizeof(struct vfio_region_sparse_mmap_area);
	if (sp.nr_areas > avail)
		return -EPROTO;
	if (sp.nr_areas) {
		info->sparse = calloc(sp.nr_areas, sizeof(*info->sparse));
		if (!info->sparse)
			return -ENOMEM;
		memcpy(info->sparse, raw + off + sizeof(sp), sp.nr_areas * sizeof(*info->sparse));
	}
	info->nr_sparse = sp.nr_areas;
	info->has_sparse = true;
	return 0;
}

/* Walk the capability chain; offsets are relative to the region info start
 * and must move forward (the kernel and libvfio-user append in order). */
static int parse_caps(struct vfurt_client_region_info *info)
{
	const uint8_t *raw = info->raw;
	size_t len = info->raw_len;
	size_t off = info->cap_offset;
	int rc;

	if (!(info->flags & VFIO_REGION_INFO_FLAG_CAPS))
		return 0;
	/* FLAG_CAPS promises a chain in this reply: like QEMU, refuse a
	 * cap_offset outside it (0 included) */
	if (off < sizeof(struct vfio_region_info) || off > len)
		return -EPROTO;
	while (off) {
		struct vfio_info_cap_header h;

		if (off < sizeof(struct vfio_region_info) || off > len ||
		    len - off < sizeof(h) || info->nr_caps >= MAX_CAPS)
			return -EPROTO;
		memcpy(&h, raw + off, sizeof(h));
		switch (h.id) {
		case VFIO_REGION_INFO_CAP_SPARSE_MMAP:
			rc = parse_sparse(info, raw, len, off);
			if (rc)
				return rc;
			break;
		case VFIO_REGION_INFO_CAP_TYPE: {
			struct vfio_region_info_cap_type t;

			if (len - off < sizeof(t))
				return -EPROTO;
			memcpy(&t, raw + off, sizeof(t));
			info->has_type = true;
			info->type = t.type;
			info->subtype = t.subtype;
			break;
		}
		case VFIO_REGION_INFO_CAP_MSIX_MAPPABLE:
			info->msix_mappable = true;
			break;
		default:
			break;
		}
		info->nr_caps++;
		if (h.next && h.next <= off)
			return -EPROTO;
		off = h.next;
	}
	return 0;
}

/*
 * A query whose request and reply start with argsz: send it, and when the
 * reply says the full payload needs a bigger argsz, ask once more with that
 * size. req (req_len bytes, argsz first) is updated in place. On success *m
 * holds a reply of at least min_reply bytes with the whole payload.
 * Returns 0, -EPROTO (short reply, or the server asks again or too much), or
 * as vfr_client_call.
 */
static int call_argsz(struct vfurt_client *c, uint16_t cmd, void *req, size_t req_len,
		      size_t min_reply, struct client_msg *m)
{
	for (int attempt = 0;; attempt++) {
		struct iovec iov = iov_of(req, req_len);
		uint32_t want;
		uint32_t have;
		int rc;

		memcpy(&want, req, sizeof(want));
		rc = vfr_client_call(c, cmd, 0, &iov, 1, NULL, 0, m);
		if (rc)
			return rc;
		if (m->len < min_reply) {
			msg_close(m);
			return -EPROTO;
		}
		memcpy(&have, m->payload, sizeof(have));
		/* done when the whole payload is here (a server may send it all
		 * regardless of our argsz) */
		if (have <= want || m->len >= have)
			return 0;
		msg_close(m);
		if (attempt > 0 || have > ARGSZ_RETRY_MAX)
			return -EPROTO;
		memcpy(req, &have, sizeof(have));
	}
}

int vfurt_client_region_info(struct vfurt_client *c, uint32_t index,
			     struct vfurt_client_region_info *out)
{
	uint32_t argsz = sizeof(struct vfio_region_info);
	struct vfio_region_info ri;
	struct client_msg m;
	int rc;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	if (!c)
		return -EINVAL;
	{
		struct vfio_region_info req = { .argsz = argsz, .index = index };

		rc = call_argsz(c, VFIO_USER_DEVICE_GET_REGION_INFO, &req, sizeof(req), sizeof(ri),
				&m);
		if (rc)
			return rc;
		memcpy(&ri, m.payload, sizeof(ri));
	}
	if (ri.index != index) {
		rc = -EPROTO;
		goto err_close;
	}
	out->raw = malloc(m.len);
	if (!out->raw) {
		rc = -ENOMEM;
		goto err_close;
	}
	memcpy(out->raw, m.payload, m.len);
	out->raw_len = m.len;
	out->index = ri.index;
	out->flags = ri.flags;
	out->argsz = ri.argsz;
	out->cap_offset = ri.cap_offset;
	out->size = ri.size;
	out->offset = ri.offset;
	if (m.nfds) {
		out->fd = m.fds[0];
		m.fds[0] = -1;
	}
	msg_close(&m);
	rc = parse_caps(out);
	if (rc)
		vfurt_client_region_info_release(out);
	return rc;

err_close:
	msg_close(&m);
	return rc;
}

int vfurt_client_region_info_mmap(const struct vfurt_client_region_info *info, int area,
				  int prot, void **addr, size_t *len)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t off, size, foff;
	void *p;

	if (!info || !addr || !len || !(info->flags & VFIO_REGION_INFO_FLAG_MMAP) || info->fd < 0)
		return -EINVAL;
	if (area < 0) {
		if (info->has_sparse)
			return -EINVAL;
		off = 0;
		size = info->size;
	} else {
		if ((uint32_t)area >= info->nr_sparse)
			return -EINVAL;
		off = info->sparse[area].offset;
		size = info->sparse[area].size;
	}
	foff = info->offset + off;
	if (size == 0 || size > SIZE_MAX || off > info->size || size > info->size - off ||
	    (foff & (page - 1)) || foff < info->offset || foff > INT64_MAX)
		return -EINVAL;
	p = mmap(NULL, (size_t)size, prot, MAP_SHARED, info->fd, (off_t)foff);
	if (p == MAP_FAILED)
		return -errno;
	*addr = p;
	*len = (size_t)size;
	return 0;
}

int vfurt_client_region_mmap(struct vfurt_client *c, uint32_t index, int area, int prot,
			     void **addr, size_t *len)
{
	struct vfurt_client_region_info info;
	int rc;

	rc = vfurt_client_region_info(c, index, &info);
	if (rc)
		return rc;
	rc = vfurt_client_region_info_mmap(&info, area, prot, addr, len);
	vfurt_client_region_info_release(&info);
	return rc;
}

/* ---- irq info, io fds ---------------------------------------------------- */

int vfurt_client_irq_info(struct vfurt_client *c, uint32_t index, struct vfio_irq_info *out)
{
	struct vfio_irq_info req = { .argsz = sizeof(req), .index = index };
	int rc;

	if (!c || !out)
		return -EINVAL;
	rc = call_fixed(c, VFIO_USER_DEVICE_GET_IRQ_INFO, &req, sizeof(req), out, sizeof(*out));
	if (!rc && out->index != index)
		rc = -EPROTO;
	return rc;
}

void vfurt_client_io_fds_release(struct vfurt_client_io_fds *io)
{
	if (!io)
		return;
	if (io->fds)
		vfr_close_fds(io->fds, io->nfds);
	free(io->fds);
	free(io->subs);
	memset(io, 0, sizeof(*io));
}

/* Copy sub-regions and fds out of a reply; entries are `stride` apart. */
static int io_fds_fill(struct vfurt_client_io_fds *out, struct client_msg *m,
		       const struct vfio_user_region_io_fds_reply *h)
{
	size_t stride;

	out->index = h->index;
	out->flags = h->flags;
	out->count = h->count;
	if (h->count) {
		stride = (m->len - sizeof(*h)) / h->count;
		if (stride < sizeof(out->subs[0]))
			return -EPROTO;
		out->subs = calloc(h->count, sizeof(out->subs[0]));
		if (!out->subs)
			return -ENOMEM;
		for (uint32_t i = 0; i < h->count; i++) {
			memcpy(&out->subs[i], m->payload + sizeof(*h) + i * stride,
			       sizeof(out->subs[0]));
			if (out->subs[i].fd_index >= m->nfds)
				return -EPROTO;
		}
	}
	if (m->nfds) {
		out->fds = calloc(m->nfds, sizeof(int));
		if (!out->fds)
			return -ENOMEM;
		memcpy(out->fds, m->fds, m->nfds * sizeof(int));
		out->nfds = m->nfds;
		m->nfds = 0;
	}
	return 0;
}

int vfurt_client_region_io_fds(struct vfurt_client *c, uint32_t index,
			       struct vfurt_client_io_fds *out)
{
	struct vfio_user_region_io_fds_reply h;
	uint32_t argsz = sizeof(h);
	struct client_msg m;
	int rc;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!c)
		return -EINVAL;
	{
		struct vfio_user_region_io_fds_request req = { .argsz = argsz, .index = index };

		rc = call_argsz(c, VFIO_USER_DEVICE_GET_REGION_IO_FDS, &req, sizeof(req),
				sizeof(h), &m);
		if (rc)
			return rc;
		memcpy(&h, m.payload, sizeof(h));
	}
	if (h.index != index || (h.count && m.len - sizeof(h) < (size_t)h.count *
				 sizeof(struct vfio_user_sub_region_io_fd))) {
		rc = -EPROTO;
		goto out;
	}
	rc = io_fds_fill(out, &m, &h);
	if (rc)
		vfurt_client_io_fds_release(out);
out:
	msg_close(&m);
	return rc;
}

/* ---- region access ----------------------------------------------------------- */

/* Check a REGION_READ/WRITE reply echoes the request. */
static int access_reply_ok(const struct client_msg *m, const struct vfio_user_region_access *req,
			   size_t data_len)
{
	struct vfio_user_region_access r;

	if (m->len != sizeof(r) + data_len)
		return -EIO;
	memcpy(&r, m->payload, sizeof(r));
	if (r.offset != req->offset || r.region != req->region || r.count != req->count)
		return -EIO;
	return 0;
}

int vfurt_client_region_read(struct vfurt_client *c, uint32_t region, uint64_t offset,
			     void *buf, size_t count)
{
	size_t done = 0;

	if (!c || (!buf && count))
		return -EINVAL;
	do {
		size_t max = vfr_client_xfer_max(c);
		size_t n = count - done < max ? count - done : max;
		struct vfio_user_region_access req = {
			.offset = offset + done, .region = region, .count = (uint32_t)n,
		};
		struct iovec iov = iov_of(&req, sizeof(req));
		struct client_msg m;
		int rc;

		rc = vfr_client_call(c, VFIO_USER_REGION_READ, 0, &iov, 1, NULL, 0, &m);
		if (rc)
			return rc;
		rc = access_reply_ok(&m, &req, n);
		if (!rc && n)
			memcpy((uint8_t *)buf + done, m.payload + sizeof(req), n);
		msg_close(&m);
		if (rc)
			return rc;
		done += n;
	} while (done < count);
	return 0;
}

static int region_write(struct vfurt_client *c, uint32_t region, uint64_t offset,
			const void *buf, size_t count, bool posted)
{
	size_t done = 0;

	if (!c || (!buf && count))
		return -EINVAL;
	do {
		size_t max = vfr_client_xfer_max(c);
		size_t n = count - done < max ? count - done : max;
		struct vfio_user_region_access req = {
			.offset = offset + done, .region = region, .count = (uint32_t)n,
		};
		struct iovec iov[2] = {
			iov_of(&req, sizeof(req)), iov_of((const uint8_t *)buf + done, n),
		};
		struct client_msg m;
		int rc;

		rc = vfr_client_call(c, VFIO_USER_REGION_WRITE, posted ? VFIO_USER_F_NO_REPLY : 0,
				 iov, n ? 2 : 1, NULL, 0, &m);
		if (rc)
			return rc;
		if (!posted) {
			rc = access_reply_ok(&m, &req, 0);
			msg_close(&m);
			if (rc)
				return rc;
		}
		done += n;
	} while (done < count);
	return 0;
}

int vfurt_client_region_write(struct vfurt_client *c, uint32_t region, uint64_t offset,
			      const void *buf, size_t count)
{
	return region_write(c, region, offset, buf, count, false);
}

int vfurt_client_region_write_posted(struct vfurt_client *c, uint32_t region, uint64_t offset,
				     const void *buf, size_t count)
{
	return region_write(c, region, offset, buf, count, true);
}

int vfurt_client_region_write_multi(struct vfurt_client *c,
				    const struct vfio_user_write_multi_entry *wrs, size_t n,
				    bool posted)
{
	size_t done = 0;

	if (!c || !wrs || n == 0)
		return -EINVAL;
	if (!c->caps.write_multiple)
		return -EOPNOTSUPP;
	for (size_t i = 0; i < n; i++)
		if (wrs[i].count == 0 || wrs[i].count > VFIO_USER_MULTI_DATA)
			return -EINVAL;
	while (done < n) {
		size_t k = n - done < VFIO_USER_MULTI_MAX ? n - done : VFIO_USER_MULTI_MAX;
		struct vfio_user_write_multi req = { .wr_cnt = k };
		struct iovec iov[2] = {
			iov_of(&req, sizeof(req)), iov_of(&wrs[done], k * sizeof(wrs[0])),
		};
		struct client_msg m;
		int rc;

		rc = vfr_client_call(c, VFIO_USER_REGION_WRITE_MULTI,
				 posted ? VFIO_USER_F_NO_REPLY : 0, iov, 2, NULL, 0, &m);
		if (rc)
			return rc;
		if (!posted) {
			struct vfio_user_write_multi r;

			rc = m.len < sizeof(r) ? -EIO : 0;
			if (!rc) {
				memcpy(&r, m.payload, sizeof(r));
				rc = r.wr_cnt == k ? 0 : -EIO;
			}
			msg_close(&m);
			if (rc)
				return rc;
		}
		done += k;
	}
	return 0;
}

/* ---- interrupts ------------------------------------------------------------ */

static bool one_action(uint32_t action)
{
	return action == VFIO_IRQ_SET_ACTION_TRIGGER || action == VFIO_IRQ_SET_ACTION_MASK ||
	       action == VFIO_IRQ_SET_ACTION_UNMASK;
}

int vfurt_client_set_irqs_eventfd(struct vfurt_client *c, uint32_t index, uint32_t start,
				  uint32_t count, const int *fds, uint32_t action)
{
	uint32_t max, sent = 0;

	if (!c || !one_action(action))
		return -EINVAL;
	for (uint32_t i = 0; fds && i < count; i++)
		if (fds[i] < 0)
			return -EINVAL;
	max = c->caps.max_msg_fds < VFURT_SOCK_MAX_FDS ? c->caps.max_msg_fds : VFURT_SOCK_MAX_FDS;
	if (fds && count && max == 0)
		return -EOPNOTSUPP;
	/* Like QEMU: as many messages as the server's fd limit requires. */
	do {
		uint32_t n = !fds ? count : (count - sent < max ? count - sent : max);
		struct vfio_irq_set req = {
			.argsz = sizeof(req),
			.flags = VFIO_IRQ_SET_DATA_EVENTFD | action,
			.index = index,
			.start = start + sent,
			.count = n,
		};
		struct iovec iov = iov_of(&req, sizeof(req));
		int rc;

		rc = vfr_client_call(c, VFIO_USER_DEVICE_SET_IRQS, 0, &iov, 1, fds ? fds + sent : NULL,
				 fds ? n : 0, NULL);
		if (rc)
			return rc;
		sent += n;
	} while (sent < count);
	return 0;
}

int vfurt_client_set_irqs(struct vfurt_client *c, uint32_t index, uint32_t start,
			  uint32_t count, uint32_t action, const uint8_t *bools)
{
	struct vfio_irq_set req = {
		.argsz = (uint32_t)sizeof(req) + (bools ? count : 0),
		.flags = (bools ? VFIO_IRQ_SET_DATA_BOOL : VFIO_IRQ_SET_DATA_NONE) | action,
		.index = index,
		.start = start,
		.count = count,
	};
	struct iovec iov[2] = { iov_of(&req, sizeof(req)), iov_of(bools, count) };

	if (!c || !one_action(action) || (bools && count > UINT32_MAX - sizeof(req)))
		return -EINVAL;
	return vfr_client_call(c, VFIO_USER_DEVICE_SET_IRQS, 0, iov, bools && count ? 2 : 1,
			   NULL, 0, NULL);
}

/* ---- reset, features, migration data ----------------------------------------- */

int vfurt_client_reset(struct vfurt_client *c)
{
	if (!c)
		return -EINVAL;
	return vfr_client_call(c, VFIO_USER_DEVICE_RESET, 0, NULL, 0, NULL, 0, NULL);
}

int vfurt_client_device_feature(struct vfurt_client *c, uint32_t flags, const void *data,
				size_t len, void *out, size_t out_cap, size_t *out_len)
{
	size_t big = len > out_cap ? len : out_cap;
	struct vfio_user_device_feature req = { .flags = flags };
	struct iovec iov[2] = { iov_of(&req, sizeof(req)), iov_of(data, len) };
	struct client_msg m;
	size_t dlen;
	int rc;

	if (out_len)
		*out_len = 0;
	if (!c || (len && !data) || big > UINT32_MAX - sizeof(req))
		return -EINVAL;
	req.argsz = (uint32_t)(sizeof(req) + big);
	rc = vfr_client_call(c, VFIO_USER_DEVICE_FEATURE, 0, iov, len ? 2 : 1, NULL, 0, &m);
	if (rc)
		return rc;
	if (m.len < sizeof(req)) {
		rc = -EPROTO;
		goto out;
	}
	dlen = m.len - sizeof(req);
	if (out_len)
		*out_len = dlen;
	if (out && dlen > out_cap)
		rc = -EMSGSIZE;
	else if (out && dlen)
		memcpy(out, m.payload + sizeof(req), dlen);
out:
	msg_close(&m);
	return rc;
}

int vfurt_client_mig_data_read(struct vfurt_client *c, void *buf, uint32_t size, uint32_t *got)
{
	struct vfio_user_mig_data req = { .size = size };
	struct iovec iov = iov_of(&req, sizeof(req));
	struct vfio_user_mig_data r;
	struct client_msg m;
	int rc;

	if (!c || (!buf && size) || size > UINT32_MAX - sizeof(req))
		return -EINVAL;
	req.argsz = (uint32_t)sizeof(req) + size;
	rc = vfr_client_call(c, VFIO_USER_MIG_DATA_READ, 0, &iov, 1, NULL, 0, &m);
	if (rc)
		return rc;
	rc = -EPROTO;
	if (m.len >= sizeof(r)) {
		memcpy(&r, m.payload, sizeof(r));
		if (r.size <= size && m.len - sizeof(r) >= r.size) {
			if (r.size)
				memcpy(buf, m.payload + sizeof(r), r.size);
			if (got)
				*got = r.size;
			rc = 0;
		}
	}
	msg_close(&m);
	return rc;
}

int vfurt_client_mig_data_write(struct vfurt_client *c, const void *buf, uint32_t size)
{
	struct vfio_user_mig_data req = { .argsz = sizeof(req), .size = size };
	struct iovec iov[2] = { iov_of(&req, sizeof(req)), iov_of(buf, size) };

	if (!c || (!buf && size))
		return -EINVAL;
	return vfr_client_call(c, VFIO_USER_MIG_DATA_WRITE, 0, iov, size ? 2 : 1, NULL, 0, NULL);
}
