/* NVMe namespace management on a live controller: add, remove, resize and list, on the home thread. */
#include <errno.h>
#include <string.h>

#include <vfurt/abi.h>

#include "nvme_internal.h"

/*
 * Namespaces are slots 1..VFURT_NVME_MAX_NS (Identify Controller NN), each
 * active or not (struct nvme_ns.bdev). Everything here runs on the
 * controller's home thread through vfurt_dev_call, where the admin queue and
 * the device ops run too, so it never races an admin command, a reset or a
 * quiesce. The I/O pollers (other workers) read c->ns[], c->ns_end and a
 * CQ's channels cq->ch[]; those change only while the pollers are removed
 * (vfr_nvme_io_pause: vfurt_dev_queue_remove returns once a poller cannot
 * run any more, and adding it back publishes what changed), the same
 * handoff that Create/Delete I/O SQ and the DMA quiesce rely on.
 *
 * A change the host has to see goes into the Changed Namespace List log
 * page (04h) and raises a Namespace Attribute Changed notice (AEN type
 * 02h, info 00h, log 04h). The notice is only raised while the host has
 * enabled it (Asynchronous Event Configuration bit 8): the spec has the
 * controller not send a disabled event, and one that was not sent is not
 * sent later when the bit is set; the log page keeps the nsids either way,
 * so a host that polls it (or rescans after a reset) still finds them.
 */

enum ns_op { NS_ADD, NS_REMOVE, NS_RESIZE, NS_LIST };

struct ns_call {
	struct nvme_ctrl *c;
	enum ns_op op;
	uint32_t nsid;
	struct vfurt_bdev *bdev;
	uint64_t num_blocks;
	unsigned char *out;   /* NS_LIST: the caller's array, stride out_size */
	size_t out_size;
	uint32_t max;
	int rc;
};

#define NS_INFO_V1 VFURT_ABI_SIZE(struct vfurt_nvme_ns_info, bdev)
#define ONCS_DSM (1u << 2)
#define ONCS_WZ (1u << 3)
#define AEC_NS_ATTR (1u << 8)

/*
 * The controller behind dev, or NULL when dev is not an NVMe controller of
 * ours. BAR0's access callback is vfr_nvme_bar0_access with the controller
 * as its argument for every controller this file's library made (nothing
 * hooks BAR0), and no other device can have that function there, so the
 * pointer comparison is a safe type check: nothing is read through an
 * argument before we know what it is.
 */
static struct nvme_ctrl *ctrl_of(struct vfurt_dev *dev)
{
	struct vfurt_region_desc r = { .desc_size = sizeof(r) };
	struct nvme_ctrl *c;

	if (!dev || vfurt_dev_get_region(dev, VFURT_REGION_BAR0, &r) ||
	    r.access != vfr_nvme_bar0_access || !r.arg)
		return NULL;
	c = r.arg;
	return c->dev == dev ? c : NULL;
}

static void ns_changed(struct nvme_ctrl *c, uint32_t nsid)
{
	c->changed_ns[(nsid - 1) / 32] |= 1u << ((nsid - 1) % 32);
	if (c->aec & AEC_NS_ATTR)
		vfr_nvme_raise_event(c, EV_NS_CHANGED);
}

/* Pause the I/O pollers (drain: and complete every command in flight, on
 * every namespace). Returns whether they were paused already (a quiesce, a
 * shutdown or a Delete I/O SQ in progress), in which case whoever paused
 * them resumes them (the controller poller's next pass). */
static bool io_hold(struct nvme_ctrl *c, bool drain)
{
	bool was = c->io_paused;

	vfr_nvme_io_pause(c, drain);
	return was;
}

static void io_release(struct nvme_ctrl *c, bool was_paused)
{
	if (!was_paused)
		(void)vfr_nvme_io_resume(c);
}

static void ns_end_update(struct nvme_ctrl *c)
{
	c->ns_end = 0;
	for (uint32_t i = VFURT_NVME_MAX_NS; i > 0; i--) {
		if (c->ns[i - 1].bdev) {
			c->ns_end = i;
			break;
		}
	}
}

/*
 * What the host read once at initialisation must stay true for the new
 * namespace: ONCS promises Write Zeroes and Dataset Management on every
 * namespace, and WZSL (Identify CNS 06h) was derived from the smallest LBA
 * size (a 512-byte namespace on a 4 KiB-only controller would have Linux
 * send Write Zeroes larger than NLB can express).
 */
static const char *add_conflict(const struct nvme_ctrl *c, struct vfurt_bdev *bdev)
{
	uint32_t caps = vfurt_bdev_caps(bdev);
	uint32_t shift = vfurt_bdev_block_size(bdev) == 512 ? 9 : 12;

	if ((c->oncs & ONCS_WZ) && !(caps & VFURT_BDEV_CAP_WRITE_ZEROES))
		return "no Write Zeroes, which ONCS promises for every namespace";
	if ((c->oncs & ONCS_DSM) && !(caps & VFURT_BDEV_CAP_DEALLOCATE))
		return "no Deallocate, which ONCS promises for every namespace";
	if ((c->oncs & ONCS_WZ) && shift < c->min_lba_shift)
		return "512-byte blocks on a controller whose WZSL is for 4 KiB ones";
	return NULL;
}

static int do_add(struct nvme_ctrl *c, uint32_t nsid, struct vfurt_bdev *bdev)
{
	const char *why;
	bool was;

	if (nsid == 0) {
		for (uint32_t i = 1; i <= VFURT_NVME_MAX_NS && !nsid; i++)
			if (!c->ns[i - 1].bdev)
				nsid = i;
		if (!nsid)
			return -ENOSPC;
	} else if (c->ns[nsid - 1].bdev) {
		return -EEXIST;
	}
	for (uint32_t i = 0; i < VFURT_NVME_MAX_NS; i++)
		if (c->ns[i].bdev == bdev)
			return -EEXIST; /* one bdev, two namespaces: two owners */
	why = add_conflict(c, bdev);
	if (why) {
		vfurt_logf(&c->log, VFURT_LOG_ERR, "%s: namespace %u not added: %s", c->name, nsid,
			   why);
		return -EINVAL;
	}
	/* nothing in flight can name a free nsid: no drain needed */
	was = io_hold(c, false);
	vfr_nvme_ns_setup(c, nsid, bdev, true);
	ns_end_update(c);
	io_release(c, was);
	ns_changed(c, nsid);
	vfurt_logf(&c->log, VFURT_LOG_INFO, "%s: namespace %u added (%s, %llu blocks of %u)",
		   c->name, nsid, vfurt_bdev_name(bdev),
		   (unsigned long long)vfurt_bdev_num_blocks(bdev), vfurt_bdev_block_size(bdev));
	return (int)nsid;
}

/*
 * The commands in flight complete first (the drain), so the channels go
 * with nothing outstanding and the bdev is destroyed with no request on it.
 * Commands fetched afterwards find the nsid inactive: Invalid Namespace or
 * Format. If the drain timed out (the controller is fatal then), destroying
 * the channels cancels what is left, whose completions are posted as
 * aborted inside a pass of their CQ.
 */
static int do_remove(struct nvme_ctrl *c, uint32_t nsid)
{
	struct nvme_ns *ns = &c->ns[nsid - 1];
	struct vfurt_bdev *bdev = ns->bdev;
	bool owned = ns->owned;
	bool was;

	if (!bdev)
		return -ENOENT;
	was = io_hold(c, true);
	for (uint32_t q = 1; q <= NVME_MAX_QID; q++) {
		struct nvme_cq *cq = c->cq[q];

		if (!cq || !cq->ch[nsid - 1])
			continue;
		vfr_nvme_cq_begin(cq);
		vfurt_bdev_channel_destroy(cq->ch[nsid - 1]);
		cq->ch[nsid - 1] = NULL;
		(void)vfr_nvme_cq_end(cq);
	}
	memset(ns, 0, sizeof(*ns));
	ns_end_update(c);
	io_release(c, was);
	ns_changed(c, nsid);
	vfurt_logf(&c->log, VFURT_LOG_INFO, "%s: namespace %u removed", c->name, nsid);
	if (owned)
		vfurt_bdev_destroy(bdev);
	return 0;
}

/* The bdev is resized with no request outstanding (its contract): the
 * drain completes every command first, the RAM backend may move its memory. */
static int do_resize(struct nvme_ctrl *c, uint32_t nsid, uint64_t num_blocks)
{
	struct nvme_ns *ns = &c->ns[nsid - 1];
	bool was;
	int rc;

	if (!ns->bdev)
		return -ENOENT;
	if (num_blocks == ns->nsze)
		return 0; /* nothing changed: nothing to tell the host */
	was = io_hold(c, true);
	rc = vfurt_bdev_resize(ns->bdev, num_blocks);
	if (rc == 0)
		ns->nsze = num_blocks;
	io_release(c, was);
	if (rc)
		return rc;
	ns_changed(c, nsid);
	vfurt_logf(&c->log, VFURT_LOG_INFO, "%s: namespace %u resized to %llu blocks", c->name,
		   nsid, (unsigned long long)num_blocks);
	return 0;
}

static int do_list(struct nvme_ctrl *c, unsigned char *out, size_t stride, uint32_t max)
{
	uint32_t n = 0;

	for (uint32_t i = 1; i <= VFURT_NVME_MAX_NS; i++) {
		const struct nvme_ns *ns = nvme_ns_active(c, i);
		struct vfurt_nvme_ns_info info;

		if (!ns)
			continue;
		if (n < max) {
			info = (struct vfurt_nvme_ns_info){
				.info_size = sizeof(info),
				.nsid = i,
				.block_size = 1u << ns->lba_shift,
				.num_blocks = ns->nsze,
				.bdev = ns->bdev,
			};
			/* every entry as long as the first one says */
			memcpy(out + (size_t)n * stride, &stride, sizeof(stride));
			if (vfurt_abi_copy_out(out + (size_t)n * stride, &info, sizeof(info),
					       NS_INFO_V1))
				return -EINVAL;
		}
		n++;
	}
	return (int)n;
}

static void ns_call_fn(void *arg)
{
	struct ns_call *a = arg;

	switch (a->op) {
	case NS_ADD:
		a->rc = do_add(a->c, a->nsid, a->bdev);
		break;
	case NS_REMOVE:
		a->rc = do_remove(a->c, a->nsid);
		break;
	case NS_RESIZE:
		a->rc = do_resize(a->c, a->nsid, a->num_blocks);
		break;
	case NS_LIST:
		a->rc = do_list(a->c, a->out, a->out_size, a->max);
		break;
	}
}

static int ns_call(struct ns_call *a)
{
	int rc;

	a->rc = -EINVAL;
	rc = vfurt_dev_call(a->c->dev, ns_call_fn, a);
	return rc ? rc : a->rc;
}

int vfurt_nvme_ns_add(struct vfurt_dev *dev, uint32_t nsid, struct vfurt_bdev *bdev)
{
	struct ns_call a = { .op = NS_ADD, .nsid = nsid, .bdev = bdev };
	uint32_t bs;

	a.c = ctrl_of(dev);
	if (!a.c || !bdev || nsid > VFURT_NVME_MAX_NS)
		return -EINVAL;
	bs = vfurt_bdev_block_size(bdev);
	if (bs != 512 && bs != 4096)
		return -EINVAL;
	return ns_call(&a);
}

int vfurt_nvme_ns_remove(struct vfurt_dev *dev, uint32_t nsid)
{
	struct ns_call a = { .op = NS_REMOVE, .nsid = nsid };

	a.c = ctrl_of(dev);
	if (!a.c || nsid == 0 || nsid > VFURT_NVME_MAX_NS)
		return -EINVAL;
	return ns_call(&a);
}

int vfurt_nvme_ns_resize(struct vfurt_dev *dev, uint32_t nsid, uint64_t num_blocks)
{
	struct ns_call a = { .op = NS_RESIZE, .nsid = nsid, .num_blocks = num_blocks };

	a.c = ctrl_of(dev);
	if (!a.c || nsid == 0 || nsid > VFURT_NVME_MAX_NS || num_blocks == 0)
		return -EINVAL;
	return ns_call(&a);
}

int vfurt_nvme_ns_list(struct vfurt_dev *dev, struct vfurt_nvme_ns_info *out, uint32_t max)
{
	struct ns_call a = { .op = NS_LIST, .max = max };

	a.c = ctrl_of(dev);
	if (!a.c || (max > 0 && !out))
		return -EINVAL;
	if (max > 0) {
		/* the caller's struct may be older (smaller) than ours: its
		 * size is the array's stride */
		if (out->info_size < NS_INFO_V1 || out->info_size > VFURT_ABI_SIZE_MAX)
			return -EINVAL;
		a.out = (unsigned char *)out;
		a.out_size = out->info_size;
	}
	return ns_call(&a);
}
