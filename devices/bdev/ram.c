/* RAM block backend: anonymous memory (populated, huge pages where possible), copied at submit, completed at the next poll. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vfurt/bdev.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

struct ram_bdev {
	unsigned char *mem;
	size_t size;         /* bytes of the device */
	size_t map_len;      /* bytes mapped at mem: size rounded up to pages */
	uint32_t block_size;
	size_t page_size;
	size_t release_unit; /* DEALLOCATE returns whole units: huge pages if used */
};

/*
 * The PMD size of transparent huge pages, or 0 when the system has none or
 * they are switched off ("never"). In "madvise" mode (a common default)
 * only regions marked MADV_HUGEPAGE get them, so we always mark ours.
 */
/* Read a small sysfs file into buf (NUL-terminated). Returns false on error. */
static bool read_sysfs(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

static size_t thp_size(void)
{
	char buf[128];
	unsigned long long v;

	if (!read_sysfs("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof(buf)) ||
	    strstr(buf, "[never]"))
		return 0;
	if (!read_sysfs("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", buf, sizeof(buf)))
		return 0;
	if (sscanf(buf, "%llu", &v) != 1 || v == 0 || (v & (v - 1)) != 0 || v > (1ull << 30))
		return 0;
	return (size_t)v;
}

/*
 * Map len bytes (a multiple of the page size), aligned to hp when hp is
 * non-zero so that every whole huge-page extent can be one huge page; the
 * tail that is not a whole huge page stays in small pages, nothing beyond
 * the device is mapped. Returns the address or MAP_FAILED.
 */
static void *map_aligned(size_t len, size_t hp)
{
	const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	unsigned char *p, *a;
	size_t head;

	if (hp == 0)
		return mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (len > SIZE_MAX - hp)
		return MAP_FAILED;
	p = mmap(NULL, len + hp, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return MAP_FAILED;
	a = (unsigned char *)(((uintptr_t)p + hp - 1) & ~(uintptr_t)(hp - 1));
	head = (size_t)(a - p);
	if (head)
		munmap(p, head);
	munmap(a + len, hp - head);
	return a;
}

/*
 * Fault every page in now, so that I/O never takes a first-touch fault (a
 * cold RAM namespace ran at an eighth of its warm rate). The memory is
 * marked for huge pages first: MAP_POPULATE would fault it in at mmap
 * time, before MADV_HUGEPAGE could apply, i.e. in 4 KiB pages. Kernels
 * before 5.14 lack MADV_POPULATE_WRITE: touch one byte per page instead.
 *
 * Only when the device fits in free memory: a RAM namespace larger than
 * that (MAP_NORESERVE lets it be created, and a guest may use only part of
 * it) stays lazily allocated instead of having the OOM killer end the
 * process here. That also bounds the time this takes: the kernel zeroes
 * what it populates, roughly a second per several GiB, on the creating
 * thread (creation belongs to setup, not to a worker's pass).
 */
static void populate(struct ram_bdev *rb)
{
	long avail = sysconf(_SC_AVPHYS_PAGES);

	if (avail <= 0 || rb->map_len / rb->page_size > (unsigned long)avail)
		return;
	if (madvise(rb->mem, rb->map_len, MADV_POPULATE_WRITE) == 0)
		return;
	if (errno != EINVAL)
		return; /* ENOMEM, EINTR...: the rest faults in on first use */
	for (size_t off = 0; off < rb->map_len; off += rb->page_size)
		((volatile unsigned char *)rb->mem)[off] = 0;
}

static void ram_zero(struct ram_bdev *rb, size_t off, size_t len, int release)
{
	size_t unit = rb->release_unit, first, last;

	if (release) {
		/*
		 * Give whole units back; anonymous private memory then reads as
		 * zero. Units are huge pages when we have them: releasing part of
		 * one would split it, and every later touch of the rest would
		 * fault in 4 KiB pages again.
		 */
		first = (off + unit - 1) & ~(unit - 1);
		last = (off + len) & ~(unit - 1);
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

	munmap(rb->mem, rb->map_len);
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
	size_t hp;
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
	rb->map_len = (rb->size + rb->page_size - 1) & ~(rb->page_size - 1);
	/* smaller than one huge page: nothing to gain, keep it page-sized */
	hp = thp_size();
	if (hp <= rb->page_size || rb->map_len < hp)
		hp = 0;
	rb->mem = map_aligned(rb->map_len, hp);
	if (rb->mem == MAP_FAILED) {
		errno = ENOMEM;
		goto err_free_rb;
	}
	/* EINVAL: a kernel without THP; small pages then */
	if (hp && madvise(rb->mem, rb->map_len, MADV_HUGEPAGE) != 0)
		hp = 0;
	rb->release_unit = hp ? hp : rb->page_size;
	populate(rb);
	bdev = vfurt_bdev_create(&o, &ops, rb);
	if (bdev == NULL)
		goto err_unmap;
	return bdev;

err_unmap:
	e = errno;
	munmap(rb->mem, rb->map_len);
	errno = e;
err_free_rb:
	e = errno;
	free(rb);
	errno = e;
	return NULL;
}
