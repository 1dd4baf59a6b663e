/* Null block backend: every request succeeds at the next poll, no buffer is touched. */
#include <errno.h>
#include <stddef.h>

#include <vfurt/abi.h>
#include <vfurt/bdev.h>

static int null_submit(void *chan_ctx, struct vfurt_bdev_req *req, const struct vfurt_bdev_io *io)
{
	(void)chan_ctx;
	(void)io;
	/* The generic layer defers the callback to the next poll. */
	vfurt_bdev_req_complete(req, 0);
	return 0;
}

/* Nothing is stored: the new geometry is all there is to a resize. */
static int null_resize(void *ctx, uint64_t num_blocks)
{
	(void)ctx;
	(void)num_blocks;
	return 0;
}

struct vfurt_bdev *vfurt_bdev_null_create(const struct vfurt_bdev_null_opts *opts)
{
	static const struct vfurt_bdev_ops ops = {
		.ops_size = sizeof(ops),
		.submit = null_submit,
		.resize = null_resize,
	};
	struct vfurt_bdev_null_opts no;
	struct vfurt_bdev_opts o = {
		.opts_size = sizeof(o),
		.caps = VFURT_BDEV_CAP_WRITE_ZEROES | VFURT_BDEV_CAP_DEALLOCATE,
	};

	if (vfurt_abi_copy_in(&no, sizeof(no), opts,
			      VFURT_ABI_SIZE(struct vfurt_bdev_null_opts, size_bytes))) {
		errno = EINVAL;
		return NULL;
	}
	o.name = no.name != NULL ? no.name : "null";
	o.block_size = no.block_size != 0 ? no.block_size : 512;
	if (no.size_bytes == 0 || no.size_bytes % o.block_size != 0) {
		errno = EINVAL;
		return NULL;
	}
	o.num_blocks = no.size_bytes / o.block_size;
	return vfurt_bdev_create(&o, &ops, NULL);
}
