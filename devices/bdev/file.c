/* File block backend: one io_uring per channel, I/O straight into the request's iovecs. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <liburing.h>

#include <vfurt/abi.h>
#include <vfurt/bdev.h>
#include <vfurt/log.h>
#include <vfurt/state.h>

#define DIRECT_ALIGN 512
#define ZERO_BUF_LEN (64 * 1024)
#define MAX_RING_ENTRIES 4096
#define REAP_BATCH 32

/* How a range is zeroed; a filesystem that refuses one mode moves the bdev to
 * the next one for good. */
enum zero_mode { ZM_ZERO_RANGE, ZM_PUNCH, ZM_WRITE };

struct file_bdev {
	int fd;
	uint32_t block_size;
	bool datasync;
	atomic_int wz_mode;      /* first mode tried for WRITE_ZEROES */
	atomic_int dealloc_mode; /* first mode tried for DEALLOCATE (ZM_PUNCH or ZM_WRITE) */
	struct vfurt_log log;
};

struct file_chan {
	struct io_uring ring;
	struct file_bdev *fb;
	uint32_t outstanding;    /* accepted, not yet completed */
	bool closing;
	void *zero_buf;          /* ZERO_BUF_LEN zeroes for the ZM_WRITE fallback */
};

struct file_req {
	uint64_t off;            /* file offset of the next transfer */
	uint64_t left;           /* bytes still to transfer or zero */
	int iov_idx;             /* READ/WRITE: next iovec */
	size_t iov_skip;         /* bytes of iov[iov_idx] already done */
	struct iovec head;       /* remainder of a partly done iovec */
	enum zero_mode zmode;
	bool cancelled;          /* SQE turned into a NOP before the kernel saw it */
};

static struct io_uring_sqe *get_sqe(struct file_chan *fc)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&fc->ring);

	if (sqe == NULL) {
		/* SQ full of batched entries: hand them over now. */
		io_uring_submit(&fc->ring);
		sqe = io_uring_get_sqe(&fc->ring);
	}
	return sqe;
}

static int falloc_flags(enum zero_mode m)
{
	return m == ZM_ZERO_RANGE ? FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
				  : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
}

/* Queue the next step of a request: one SQE per request at any time. */
static int issue(struct file_chan *fc, struct vfurt_bdev_req *req)
{
	const struct vfurt_bdev_io *io = vfurt_bdev_req_io(req);
	struct file_req *fr = vfurt_bdev_req_ctx(req);
	int fd = fc->fb->fd;
	struct io_uring_sqe *sqe = get_sqe(fc);

	if (sqe == NULL)
		return -EAGAIN;
	switch (io->op) {
	case VFURT_BDEV_READ:
	case VFURT_BDEV_WRITE: {
		const struct iovec *v = io->iov + fr->iov_idx;
		unsigned n = (unsigned)(io->iovcnt - fr->iov_idx);

		if (fr->iov_skip != 0) {
			fr->head.iov_base = (char *)v->iov_base + fr->iov_skip;
			fr->head.iov_len = v->iov_len - fr->iov_skip;
			v = &fr->head;
			n = 1;
		}
		if (io->op == VFURT_BDEV_READ)
			io_uring_prep_readv(sqe, fd, v, n, fr->off);
		else
			io_uring_prep_writev(sqe, fd, v, n, fr->off);
		break;
	}
	case VFURT_BDEV_FLUSH:
		io_uring_prep_fsync(sqe, fd, fc->fb->datasync ? IORING_FSYNC_DATASYNC : 0);
		break;
	case VFURT_BDEV_WRITE_ZEROES:
	case VFURT_BDEV_DEALLOCATE:
		if (fr->zmode == ZM_WRITE) {
			unsigned len = fr->left < ZERO_BUF_LEN ? (unsigned)fr->left : ZERO_BUF_LEN;

			io_uring_prep_write(sqe, fd, fc->zero_buf, len, fr->off);
		} else {
			/* Never inline on the worker, however large: io_uring
			 * issues fallocate only from its io-wq threads (it
			 * answers -EAGAIN to the non-blocking issue at submit). */
			io_uring_prep_fallocate(sqe, fd, falloc_flags(fr->zmode), (off_t)fr->off,
						(off_t)fr->left);
		}
		break;
	default:
		return -EINVAL;
	}
	io_uring_sqe_set_data(sqe, req);
	return 0;
}

static int file_submit(void *chan_ctx, struct vfurt_bdev_req *req, const struct vfurt_bdev_io *io)
{
	struct file_chan *fc = chan_ctx;
	struct file_req *fr = vfurt_bdev_req_ctx(req);
	int rc;

	memset(fr, 0, sizeof(*fr));
	fr->off = io->offset_blocks * fc->fb->block_size;
	fr->left = (uint64_t)io->num_blocks * fc->fb->block_size;
	if (io->op == VFURT_BDEV_WRITE_ZEROES)
		fr->zmode = atomic_load_explicit(&fc->fb->wz_mode, memory_order_relaxed);
	else if (io->op == VFURT_BDEV_DEALLOCATE)
		fr->zmode = atomic_load_explicit(&fc->fb->dealloc_mode, memory_order_relaxed);
	rc = issue(fc, req);
	if (rc < 0)
		return rc;
	fc->outstanding++;
	return 0;
}

static void finish(struct file_chan *fc, struct vfurt_bdev_req *req, int status)
{
	assert(fc->outstanding > 0);
	fc->outstanding--;
	vfurt_bdev_req_complete(req, status);
}

/* Step over res transferred bytes in the iovecs. */
static void advance(const struct vfurt_bdev_io *io, struct file_req *fr, uint64_t res)
{
	fr->off += res;
	fr->left -= res;
	while (res > 0 && fr->iov_idx < io->iovcnt) {
		size_t avail = io->iov[fr->iov_idx].iov_len - fr->iov_skip;

		if (res >= avail) {
			res -= avail;
			fr->iov_idx++;
			fr->iov_skip = 0;
		} else {
			fr->iov_skip += (size_t)res;
			res = 0;
		}
	}
	/* Zero-length iovecs left at the end would otherwise make a 0-byte readv. */
	while (fr->iov_idx < io->iovcnt && io->iov[fr->iov_idx].iov_len == 0)
		fr->iov_idx++;
}

static void step_zero_mode(struct file_chan *fc, const struct vfurt_bdev_io *io, struct file_req *fr)
{
	atomic_int *mode = io->op == VFURT_BDEV_WRITE_ZEROES ? &fc->fb->wz_mode : &fc->fb->dealloc_mode;
	int cur = (int)fr->zmode;

	fr->zmode = fr->zmode == ZM_ZERO_RANGE ? ZM_PUNCH : ZM_WRITE;
	/* Remember for the next requests; another channel may have moved it already. */
	if (atomic_compare_exchange_strong(mode, &cur, (int)fr->zmode))
		vfurt_logf(&fc->fb->log, VFURT_LOG_INFO, "bdev file: %s falls back to %s",
			   io->op == VFURT_BDEV_WRITE_ZEROES ? "write zeroes" : "deallocate",
			   fr->zmode == ZM_PUNCH ? "punching holes" : "writing zeroes");
}

/* Handle one CQE: finish the request or queue its next step. */
static void handle_cqe(struct file_chan *fc, struct vfurt_bdev_req *req, int res)
{
	const struct vfurt_bdev_io *io = vfurt_bdev_req_io(req);
	struct file_req *fr = vfurt_bdev_req_ctx(req);
	int rc;

	if (fr->cancelled) {
		finish(fc, req, -ECANCELED);
		return;
	}
	if (res < 0) {
		if ((io->op == VFURT_BDEV_WRITE_ZEROES || io->op == VFURT_BDEV_DEALLOCATE) &&
		    fr->zmode != ZM_WRITE && (res == -EOPNOTSUPP || res == -ENOTTY)) {
			step_zero_mode(fc, io, fr);
			goto again;
		}
		finish(fc, req, res);
		return;
	}
	switch (io->op) {
	case VFURT_BDEV_READ:
	case VFURT_BDEV_WRITE:
		/* 0 bytes: end of file (truncated behind our back) or a full device. */
		if (res == 0 || (uint64_t)res > fr->left) {
			finish(fc, req, -EIO);
			return;
		}
		advance(io, fr, (uint64_t)res);
		break;
	case VFURT_BDEV_WRITE_ZEROES:
	case VFURT_BDEV_DEALLOCATE:
		if (fr->zmode != ZM_WRITE) {
			fr->left = 0;
			break;
		}
		if (res == 0 || (uint64_t)res > fr->left) {
			finish(fc, req, -EIO);
			return;
		}
		fr->off += (uint64_t)res;
		fr->left -= (uint64_t)res;
		break;
	default:
		fr->left = 0;
		break;
	}
	if (fr->left == 0) {
		finish(fc, req, 0);
		return;
	}
again:
	if (fc->closing) {
		finish(fc, req, -ECANCELED);
		return;
	}
	rc = issue(fc, req);
	if (rc < 0)
		finish(fc, req, rc);
}

static int reap(struct file_chan *fc, int max)
{
	struct io_uring_cqe *cqes[REAP_BATCH];
	unsigned want = max <= 0 || max > REAP_BATCH ? REAP_BATCH : (unsigned)max;
	unsigned n, i;
	int done = 0;

	n = io_uring_peek_batch_cqe(&fc->ring, cqes, want);
	for (i = 0; i < n; i++) {
		struct vfurt_bdev_req *req = io_uring_cqe_get_data(cqes[i]);

		/* user_data 0: the cancel request itself */
		if (req == NULL)
			continue;
		uint32_t before = fc->outstanding;

		handle_cqe(fc, req, cqes[i]->res);
		done += (int)(before - fc->outstanding);
	}
	io_uring_cq_advance(&fc->ring, n);
	return done;
}

static int file_poll(void *chan_ctx, int max)
{
	struct file_chan *fc = chan_ctx;

	/* Batched submission: everything queued since the last pass in one call. */
	if (io_uring_sq_ready(&fc->ring) > 0)
		io_uring_submit(&fc->ring);
	return reap(fc, max);
}

/* Turn SQEs the kernel has not consumed yet into NOPs: never started, so
 * they can be reported cancelled without waiting for anything. */
static void cancel_unsubmitted(struct file_chan *fc)
{
	struct io_uring_sq *sq = &fc->ring.sq;
	unsigned i;

	/* liburing >= 2.2 maps SQ array slots 1:1 to SQEs, so index i is sqes[i & mask]. */
	for (i = *sq->khead; i != sq->sqe_tail; i++) {
		struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
		struct vfurt_bdev_req *req = (struct vfurt_bdev_req *)(uintptr_t)sqe->user_data;

		if (req == NULL)
			continue;
		((struct file_req *)vfurt_bdev_req_ctx(req))->cancelled = true;
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, req);
	}
}

static void file_channel_destroy(void *ctx, void *chan_ctx)
{
	struct file_chan *fc = chan_ctx;
	struct io_uring_cqe *cqe;
	int rc;

	fc->closing = true;
	if (fc->outstanding > 0) {
		struct io_uring_sqe *sqe;

		cancel_unsubmitted(fc);
		sqe = get_sqe(fc);
		if (sqe != NULL) {
			io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
			io_uring_sqe_set_data(sqe, NULL);
		}
	}
	/* The kernel may still write into guest buffers: wait for every request. */
	while (fc->outstanding > 0) {
		rc = io_uring_submit_and_wait(&fc->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			vfurt_logf(&fc->fb->log, VFURT_LOG_ERR, "bdev file: waiting for I/O: %s",
				   strerror(-rc));
		while (io_uring_peek_cqe(&fc->ring, &cqe) == 0) {
			struct vfurt_bdev_req *req = io_uring_cqe_get_data(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(&fc->ring, cqe);
			if (req != NULL)
				handle_cqe(fc, req, res);
		}
	}
	io_uring_queue_exit(&fc->ring);
	free(fc->zero_buf);
	free(fc);
}

static int file_channel_create(void *ctx, uint32_t queue_depth, void **chan_ctx)
{
	struct file_bdev *fb = ctx;
	struct io_uring_params p = { 0 };
	unsigned entries = queue_depth + 1 < MAX_RING_ENTRIES ? queue_depth + 1 : MAX_RING_ENTRIES;
	struct file_chan *fc;
	int rc;

	fc = calloc(1, sizeof(*fc));
	if (fc == NULL)
		return -ENOMEM;
	fc->fb = fb;
	fc->zero_buf = aligned_alloc(4096, ZERO_BUF_LEN);
	if (fc->zero_buf == NULL) {
		rc = -ENOMEM;
		goto err_free_fc;
	}
	memset(fc->zero_buf, 0, ZERO_BUF_LEN);
	/* Task work runs when we enter the kernel, and peek sees the TASKRUN flag
	 * when it must: no interrupts of the polling thread, no idle syscalls. */
	p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
	rc = io_uring_queue_init_params(entries, &fc->ring, &p);
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof(p));
		rc = io_uring_queue_init_params(entries, &fc->ring, &p);
	}
	if (rc < 0) {
		vfurt_logf(&fb->log, VFURT_LOG_ERR, "bdev file: io_uring setup: %s", strerror(-rc));
		goto err_free_buf;
	}
	*chan_ctx = fc;
	return 0;

err_free_buf:
	free(fc->zero_buf);
err_free_fc:
	free(fc);
	return rc;
}

static void file_destroy(void *ctx)
{
	struct file_bdev *fb = ctx;

	close(fb->fd);
	free(fb);
}

/*
 * The file becomes exactly num_blocks blocks long, larger or smaller, so
 * that what a shrink cut off reads as zeroes when a grow brings the blocks
 * back. A block device has the size it has: -ENOTSUP. No request is
 * outstanding (the generic layer's contract), so no write races the cut.
 */
static int file_resize(void *ctx, uint64_t num_blocks)
{
	struct file_bdev *fb = ctx;
	struct stat st;

	if (num_blocks > (uint64_t)INT64_MAX / fb->block_size)
		return -EFBIG;
	if (fstat(fb->fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOTSUP;
	if (ftruncate(fb->fd, (off_t)(num_blocks * fb->block_size)) < 0) {
		int e = errno;

		vfurt_logf(&fb->log, VFURT_LOG_ERR, "bdev file: resize to %llu blocks: %s",
			   (unsigned long long)num_blocks, strerror(e));
		return -e;
	}
	return 0;
}

/*
 * Live upgrade: the next process reopens the path of its configuration, so
 * the data needs no handing over. What is saved is a check that it opened
 * the same file: a configuration that now names another file (or a file
 * replaced meanwhile) would show the guest other data under the same
 * namespace, and is refused.
 */
enum { FILE_TAG_ID = 1 }; /* struct file_id */

struct file_id {
	uint64_t dev;
	uint64_t ino;
};
_Static_assert(sizeof(struct file_id) == 16, "no padding in an image record");

static int file_identity(const struct file_bdev *fb, struct file_id *id)
{
	struct stat st;

	if (fstat(fb->fd, &st) < 0)
		return -errno;
	/* a block device is the same device whatever node opened it */
	id->dev = S_ISBLK(st.st_mode) ? 0 : (uint64_t)st.st_dev;
	id->ino = S_ISBLK(st.st_mode) ? (uint64_t)st.st_rdev : (uint64_t)st.st_ino;
	return 0;
}

static int file_save(void *ctx, struct vfurt_state *s)
{
	struct file_id id;
	int rc = file_identity(ctx, &id);

	return rc ? rc : vfurt_state_put(s, FILE_TAG_ID, &id, sizeof(id));
}

static int file_restore(void *ctx, const struct vfurt_state_cur *c)
{
	struct file_bdev *fb = ctx;
	struct file_id saved, now;
	int rc = vfurt_state_get(c, FILE_TAG_ID, &saved, sizeof(saved));

	if (rc == -ENOENT)
		return 0;
	if (rc == 0)
		rc = file_identity(fb, &now);
	if (rc)
		return rc;
	if (saved.dev != now.dev || saved.ino != now.ino) {
		vfurt_logf(&fb->log, VFURT_LOG_ERR,
			   "bdev file: not the file the previous process had open");
		return -EINVAL;
	}
	return 0;
}

static int open_file(const struct vfurt_bdev_file_opts *o, const struct vfurt_log *log,
		     bool *direct)
{
	int flags = O_RDWR | O_CLOEXEC | (o->create ? O_CREAT : 0);
	int fd;

	*direct = false;
	if (o->direct != VFURT_BDEV_DIRECT_OFF) {
		fd = open(o->path, flags | O_DIRECT, 0644);
		if (fd >= 0) {
			*direct = true;
			return fd;
		}
		if (errno != EINVAL)
			goto err;
		if (o->direct == VFURT_BDEV_DIRECT_ON) {
			vfurt_logf(log, VFURT_LOG_ERR,
				   "bdev file %s: the filesystem refuses O_DIRECT", o->path);
			errno = EINVAL;
			return -1;
		}
		vfurt_logf(log, VFURT_LOG_WARN,
			   "bdev file %s: the filesystem refuses O_DIRECT, using the page cache",
			   o->path);
	}
	fd = open(o->path, flags, 0644);
	if (fd >= 0)
		return fd;
err:
	vfurt_logf(log, VFURT_LOG_ERR, "bdev file %s: open: %s", o->path, strerror(errno));
	return -1;
}

/* Decide the bdev size from the options and the file, extending it if asked. */
static int size_file(int fd, const struct vfurt_bdev_file_opts *o, uint32_t bs,
		     const struct vfurt_log *log, uint64_t *size)
{
	struct stat st;
	uint64_t have;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &have) < 0)
			return -errno;
	} else if (S_ISREG(st.st_mode)) {
		have = (uint64_t)st.st_size;
	} else {
		vfurt_logf(log, VFURT_LOG_ERR, "bdev file %s: not a file or block device", o->path);
		return -EINVAL;
	}
	if (o->size_bytes == 0) {
		*size = have / bs * bs;
		if (*size == 0) {
			vfurt_logf(log, VFURT_LOG_ERR, "bdev file %s: smaller than one block", o->path);
			return -EINVAL;
		}
		return 0;
	}
	if (o->size_bytes % bs != 0) {
		vfurt_logf(log, VFURT_LOG_ERR, "bdev file %s: size not a multiple of %u", o->path, bs);
		return -EINVAL;
	}
	if (o->size_bytes > have) {
		if (!o->create || !S_ISREG(st.st_mode) || o->size_bytes > INT64_MAX) {
			vfurt_logf(log, VFURT_LOG_ERR, "bdev file %s: %llu bytes, %llu asked", o->path,
				   (unsigned long long)have, (unsigned long long)o->size_bytes);
			return -EINVAL;
		}
		if (ftruncate(fd, (off_t)o->size_bytes) < 0) {
			int e = errno;

			vfurt_logf(log, VFURT_LOG_ERR, "bdev file %s: extend: %s", o->path, strerror(e));
			return -e;
		}
	}
	*size = o->size_bytes;
	return 0;
}

struct vfurt_bdev *vfurt_bdev_file_create(const struct vfurt_bdev_file_opts *opts)
{
	static const struct vfurt_bdev_ops ops = {
		.ops_size = sizeof(ops),
		.req_ctx_size = sizeof(struct file_req),
		.channel_create = file_channel_create,
		.channel_destroy = file_channel_destroy,
		.submit = file_submit,
		.poll = file_poll,
		.destroy = file_destroy,
		.resize = file_resize,
		.save = file_save,
		.restore = file_restore,
	};
	struct vfurt_bdev_file_opts o;
	struct vfurt_bdev_opts bo = { .opts_size = sizeof(bo) };
	struct vfurt_bdev *bdev;
	struct file_bdev *fb;
	uint64_t size = 0;
	bool direct = false;
	int rc;

	if (vfurt_abi_copy_in(&o, sizeof(o), opts, VFURT_ABI_SIZE(struct vfurt_bdev_file_opts, log))) {
		errno = EINVAL;
		return NULL;
	}
	if (o.block_size == 0)
		o.block_size = 512;
	if (o.path == NULL || (o.block_size != 512 && o.block_size != 4096) ||
	    (o.sync != VFURT_BDEV_SYNC_FDATASYNC && o.sync != VFURT_BDEV_SYNC_FSYNC) ||
	    o.direct > VFURT_BDEV_DIRECT_TRY) {
		errno = EINVAL;
		return NULL;
	}
	fb = calloc(1, sizeof(*fb));
	if (fb == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	fb->log = o.log;
	fb->block_size = o.block_size;
	fb->datasync = o.sync == VFURT_BDEV_SYNC_FDATASYNC;
	atomic_init(&fb->wz_mode, ZM_ZERO_RANGE);
	atomic_init(&fb->dealloc_mode, ZM_PUNCH);
	fb->fd = open_file(&o, &fb->log, &direct);
	if (fb->fd < 0) {
		rc = -errno;
		goto err_free_fb;
	}
	rc = size_file(fb->fd, &o, o.block_size, &fb->log, &size);
	if (rc < 0)
		goto err_close;
	bo.name = o.name != NULL ? o.name : o.path;
	bo.block_size = o.block_size;
	bo.num_blocks = size / o.block_size;
	bo.caps = VFURT_BDEV_CAP_WRITE_ZEROES | VFURT_BDEV_CAP_DEALLOCATE | VFURT_BDEV_CAP_FLUSH;
	bo.buf_align = direct ? DIRECT_ALIGN : 1;
	bdev = vfurt_bdev_create(&bo, &ops, fb);
	if (bdev == NULL) {
		rc = -errno;
		goto err_close;
	}
	return bdev;

err_close:
	close(fb->fd);
err_free_fb:
	free(fb);
	errno = -rc;
	return NULL;
}
