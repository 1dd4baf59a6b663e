/* RAM block backend: anonymous memory, copied at submit, completed at the next poll. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vfurt/bdev.h>

struct ram_bdev {
	unsigned char *mem;
	size_t size;
	uint32_t block_size;
	size_t page_size;
};

static void ram_zero(struct ram_bdev *rb, size_t off, size_t len, int release)
{
	size_t first, last;

	if (release) {
		/* Give whole pages back; anonymous private pages then read as zero. */
		first = (off + rb->page_size - 1) & ~(rb->page_size - 1);
		last = (off + len) & ~(rb->page_size - 1);
		if (last > first && madvise(rb->mem + first, last - first, MADV_DONTNEED) == 0) {
			memset(rb->mem + off, 0, first - off);
			memset(rb->mem + last, 0, off + len - last);
			return;
		}
	}
	memset(rb->mem + off, 0, len);
}

static int ram_submit(void *chan_ctx, struct vfurt_bdev_req *req, const struct vfurt_bdev_io *io)
{
	struct ram_bdev *rb = chan_ctx;
	size_t off = (size_t)io->offset_blocks * rb->block_size;
	size_t len = (size_t)io->num_blocks * rb->block_size;
	int i;

	switch (io->op) {
	case VFURT_BDEV_READ:
	case VFURT_BDEV_WRITE:
		for (i = 0; i < io->iovcnt; i++) {
			size_t n = io->iov[i].iov_len;

			if (n == 0)
				continue;
			if (io->op == VFURT_BDEV_READ)
				memcpy(io->iov[i].iov_base, rb->mem + off, n);
			else
				memcpy(rb->mem + off, io->iov[i].iov_base, n);
			off += n;
		}
		break;
	case VFURT_BDEV_WRITE_ZEROES:
		ram_zero(rb, off, len, 0);
		break;
	case VFURT_BDEV_DEALLOCATE:
		ram_zero(rb, off, len, 1);
		break;
	default:
		break;
	}
	vfurt_bdev_req_complete(req, 0);
	return 0;
}

/* Every channel shares the memory: the channel context is the bdev context. */
static int ram_channel_create(void *ctx, uint32_t queue_depth, void **chan_ctx)
{
	(void)queue_depth;
	*chan_ctx = ctx;
	return 0;
}

static void ram_destroy(void *ctx)
{
	struct ram_bdev *rb = ctx;

	munmap(rb->mem, rb->size);
	free(rb);
}

struct vfurt_bdev *vfurt_bdev_ram_create(const char *name, uint32_t block_size,
					 uint64_t size_bytes)
{
	static const struct vfurt_bdev_ops ops = {
		.ops_size = sizeof(ops),
		.channel_create = ram_channel_create,
		.submit = ram_submit,
		.destroy = ram_destroy,
	};
	struct vfurt_bdev_opts o = {
		.opts_size = sizeof(o),
		.name = name != NULL ? name : "ram",
		.block_size = block_size,
		.caps = VFURT_BDEV_CAP_WRITE_ZEROES | VFURT_BDEV_CAP_DEALLOCATE,
	};
	struct vfurt_bdev *bdev;
	struct ram_bdev *rb;
	int e;

	if ((block_size != 512 && block_size != 4096) || size_bytes == 0 ||
	    size_bytes % block_size != 0 || size_bytes > SIZE_MAX / 2) {
		errno = EINVAL;
		return NULL;
	}
	o.num_blocks = size_bytes / block_size;
	rb = calloc(1, sizeof(*rb));
	if (rb == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	rb->size = (size_t)size_bytes;
	rb->block_size = block_size;
	rb->page_size = (size_t)sysconf(_SC_PAGESIZE);
	rb->mem = mmap(NULL, rb->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (rb->mem == MAP_FAILED) {
		errno = ENOMEM;
		goto err_free_rb;
	}
	bdev = vfurt_bdev_create(&o, &ops, rb);
	if (bdev == NULL)
		goto err_unmap;
	return bdev;

err_unmap:
	e = errno;
	munmap(rb->mem, rb->size);
	errno = e;
err_free_rb:
	e = errno;
	free(rb);
	errno = e;
	return NULL;
}
