/* Null block backend: every request succeeds at the next poll, no buffer is touched. */
#include <errno.h>
#include <stddef.h>

#include <vfurt/bdev.h>

static int null_submit(void *chan_ctx, struct vfurt_bdev_req *req, const struct vfurt_bdev_io *io)
{
	(void)chan_ctx;
	(void)io;
	/* The generic layer defers the callback to the next poll. */
	vfurt_bdev_req_complete(req, 0);
	return 0;
}

struct vfurt_bdev *vfurt_bdev_null_create(const char *name, uint32_t block_size,
					  uint64_t num_blocks)
{
	static const struct vfurt_bdev_ops ops = {
		.ops_size = sizeof(ops),
		.submit = null_submit,
	};
	struct vfurt_bdev_opts o = {
		.opts_size = sizeof(o),
		.name = name != NULL ? name : "null",
		.block_size = block_size,
		.num_blocks = num_blocks,
		.caps = VFURT_BDEV_CAP_WRITE_ZEROES | VFURT_BDEV_CAP_DEALLOCATE,
	};

	return vfurt_bdev_create(&o, &ops, NULL);
}
