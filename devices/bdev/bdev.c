/* Generic block device layer: validation, queue depth, request slots, completions and statistics. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vfurt/abi.h>
#include <vfurt/bdev.h>
#include <vfurt/state.h>

#define NAME_MAX_LEN 64
#define DEFAULT_QUEUE_DEPTH 128
#define MAX_QUEUE_DEPTH 65536
#define REQ_CTX_ALIGN 16

/* Where the first version of each sized struct ends (include/vfurt/abi.h). */
#define BDEV_OPTS_V1 VFURT_ABI_SIZE(struct vfurt_bdev_opts, buf_align)
#define BDEV_OPS_V1 VFURT_ABI_SIZE(struct vfurt_bdev_ops, destroy)
#define BDEV_STATS_V1 VFURT_ABI_SIZE(struct vfurt_bdev_stats, invalid)
#define BDEV_SPEC_OPTS_V1 VFURT_ABI_SIZE(struct vfurt_bdev_spec_opts, direct)

struct vfurt_bdev {
	char name[NAME_MAX_LEN];
	uint32_t block_size;
	/* changed by vfurt_bdev_resize while channels may live on other threads
	 * (idle, but vfurt_bdev_num_blocks may be called from any thread) */
	_Atomic uint64_t num_blocks;
	uint32_t caps;
	uint32_t buf_align;
	struct vfurt_bdev_ops ops;
	void *ctx;
	atomic_uint channels;
	struct {
		atomic_uint_fast64_t reads, writes, flushes, write_zeroes, deallocates;
		atomic_uint_fast64_t bytes_read, bytes_written, errors, invalid;
	} st;
};

struct vfurt_bdev_req {
	struct vfurt_bdev_io io;
	struct vfurt_bdev_channel *ch;
	struct vfurt_bdev_req *next; /* free list or done list */
	int status;
	/* backend scratch follows at a REQ_CTX_ALIGN boundary */
};

struct vfurt_bdev_channel {
	struct vfurt_bdev *bdev;
	void *chan_ctx;
	uint32_t queue_depth;
	uint32_t inflight;       /* submitted, callback not yet run */
	bool closing;
	size_t slot_size;
	unsigned char *slots;    /* queue_depth slots of slot_size bytes */
	struct vfurt_bdev_req *free_list;
	struct vfurt_bdev_req *done_head;
	struct vfurt_bdev_req *done_tail;
};

static size_t req_hdr_size(void)
{
	return (sizeof(struct vfurt_bdev_req) + REQ_CTX_ALIGN - 1) & ~(size_t)(REQ_CTX_ALIGN - 1);
}

struct vfurt_bdev *vfurt_bdev_create(const struct vfurt_bdev_opts *opts,
				     const struct vfurt_bdev_ops *ops, void *ctx)
{
	struct vfurt_bdev_opts o;
	struct vfurt_bdev_ops ops_copy;
	struct vfurt_bdev *bdev;

	if (vfurt_abi_copy_in(&o, sizeof(o), opts, BDEV_OPTS_V1) ||
	    vfurt_abi_copy_in(&ops_copy, sizeof(ops_copy), ops, BDEV_OPS_V1)) {
		errno = EINVAL;
		return NULL;
	}
	if ((o.block_size != 512 && o.block_size != 4096) || o.num_blocks == 0 ||
	    o.num_blocks > UINT64_MAX / o.block_size ||
	    (o.caps & ~(uint32_t)(VFURT_BDEV_CAP_WRITE_ZEROES | VFURT_BDEV_CAP_DEALLOCATE |
				  VFURT_BDEV_CAP_FLUSH)) != 0 ||
	    (o.buf_align & (o.buf_align - 1)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	bdev = calloc(1, sizeof(*bdev));
	if (bdev == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	bdev->ops = ops_copy;
	if (bdev->ops.submit == NULL || bdev->ops.req_ctx_size > (1u << 20)) {
		free(bdev);
		errno = EINVAL;
		return NULL;
	}
	snprintf(bdev->name, sizeof(bdev->name), "%s", o.name != NULL ? o.name : "bdev");
	bdev->block_size = o.block_size;
	atomic_init(&bdev->num_blocks, o.num_blocks);
	bdev->caps = o.caps;
	bdev->buf_align = o.buf_align > 1 ? o.buf_align : 1;
	bdev->ctx = ctx;
	atomic_init(&bdev->channels, 0);
	return bdev;
}

void vfurt_bdev_destroy(struct vfurt_bdev *bdev)
{
	if (bdev == NULL)
		return;
	assert(atomic_load(&bdev->channels) == 0);
	if (bdev->ops.destroy != NULL)
		bdev->ops.destroy(bdev->ctx);
	free(bdev);
}

const char *vfurt_bdev_name(const struct vfurt_bdev *bdev)
{
	return bdev->name;
}

uint32_t vfurt_bdev_block_size(const struct vfurt_bdev *bdev)
{
	return bdev->block_size;
}

uint64_t vfurt_bdev_num_blocks(const struct vfurt_bdev *bdev)
{
	return atomic_load_explicit(&bdev->num_blocks, memory_order_relaxed);
}

uint32_t vfurt_bdev_caps(const struct vfurt_bdev *bdev)
{
	return bdev->caps;
}

uint32_t vfurt_bdev_buf_align(const struct vfurt_bdev *bdev)
{
	return bdev->buf_align;
}

int vfurt_bdev_get_stats(const struct vfurt_bdev *bdev, struct vfurt_bdev_stats *st)
{
	/* The counters are only ever added to; a const view is fine. */
	struct vfurt_bdev *b = (struct vfurt_bdev *)bdev;
	struct vfurt_bdev_stats s;

	if (bdev == NULL)
		return -EINVAL;
	s = (struct vfurt_bdev_stats){
		.stats_size = sizeof(s),
		.reads = atomic_load_explicit(&b->st.reads, memory_order_relaxed),
		.writes = atomic_load_explicit(&b->st.writes, memory_order_relaxed),
		.flushes = atomic_load_explicit(&b->st.flushes, memory_order_relaxed),
		.write_zeroes = atomic_load_explicit(&b->st.write_zeroes, memory_order_relaxed),
		.deallocates = atomic_load_explicit(&b->st.deallocates, memory_order_relaxed),
		.bytes_read = atomic_load_explicit(&b->st.bytes_read, memory_order_relaxed),
		.bytes_written = atomic_load_explicit(&b->st.bytes_written, memory_order_relaxed),
		.errors = atomic_load_explicit(&b->st.errors, memory_order_relaxed),
		.invalid = atomic_load_explicit(&b->st.invalid, memory_order_relaxed),
	};
	return vfurt_abi_copy_out(st, &s, sizeof(s), BDEV_STATS_V1);
}

struct vfurt_bdev_channel *vfurt_bdev_channel_create(struct vfurt_bdev *bdev, uint32_t queue_depth)
{
	struct vfurt_bdev_channel *ch;
	uint32_t i;
	int rc;

	if (bdev == NULL || queue_depth > MAX_QUEUE_DEPTH) {
		errno = EINVAL;
		return NULL;
	}
	if (queue_depth == 0)
		queue_depth = DEFAULT_QUEUE_DEPTH;
	ch = calloc(1, sizeof(*ch));
	if (ch == NULL)
		goto err_nomem;
	ch->bdev = bdev;
	ch->queue_depth = queue_depth;
	ch->slot_size = req_hdr_size() + ((bdev->ops.req_ctx_size + REQ_CTX_ALIGN - 1) &
					  ~(size_t)(REQ_CTX_ALIGN - 1));
	ch->slots = aligned_alloc(REQ_CTX_ALIGN, ch->slot_size * queue_depth);
	if (ch->slots == NULL)
		goto err_free_ch;
	/* Slots are pushed in reverse so the first submit uses slot 0. */
	for (i = queue_depth; i-- > 0;) {
		struct vfurt_bdev_req *req = (struct vfurt_bdev_req *)(void *)(ch->slots + i * ch->slot_size);

		memset(req, 0, sizeof(*req));
		req->ch = ch;
		req->next = ch->free_list;
		ch->free_list = req;
	}
	if (bdev->ops.channel_create != NULL) {
		rc = bdev->ops.channel_create(bdev->ctx, queue_depth, &ch->chan_ctx);
		if (rc < 0) {
			errno = -rc;
			goto err_free_slots;
		}
	}
	atomic_fetch_add(&bdev->channels, 1);
	return ch;

err_free_slots:
	free(ch->slots);
err_free_ch:
	rc = errno;
	free(ch);
	errno = rc;
	return NULL;
err_nomem:
	errno = ENOMEM;
	return NULL;
}

static void count_completion(struct vfurt_bdev *bdev, const struct vfurt_bdev_io *io, int status)
{
	uint64_t bytes = (uint64_t)io->num_blocks * bdev->block_size;

	if (status != 0) {
		atomic_fetch_add_explicit(&bdev->st.errors, 1, memory_order_relaxed);
		return;
	}
	switch (io->op) {
	case VFURT_BDEV_READ:
		atomic_fetch_add_explicit(&bdev->st.reads, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&bdev->st.bytes_read, bytes, memory_order_relaxed);
		break;
	case VFURT_BDEV_WRITE:
		atomic_fetch_add_explicit(&bdev->st.writes, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&bdev->st.bytes_written, bytes, memory_order_relaxed);
		break;
	case VFURT_BDEV_FLUSH:
		atomic_fetch_add_explicit(&bdev->st.flushes, 1, memory_order_relaxed);
		break;
	case VFURT_BDEV_WRITE_ZEROES:
		atomic_fetch_add_explicit(&bdev->st.write_zeroes, 1, memory_order_relaxed);
		break;
	case VFURT_BDEV_DEALLOCATE:
		atomic_fetch_add_explicit(&bdev->st.deallocates, 1, memory_order_relaxed);
		break;
	default:
		break;
	}
}

/* Run up to max callbacks from the done list. The slot is recycled before its
 * callback runs so the callback may submit again. */
static int run_done(struct vfurt_bdev_channel *ch, int max)
{
	int n = 0;

	while (ch->done_head != NULL && (max <= 0 || n < max)) {
		struct vfurt_bdev_req *req = ch->done_head;
		vfurt_bdev_io_cb cb = req->io.cb;
		void *arg = req->io.cb_arg;
		int status = req->status;

		ch->done_head = req->next;
		if (ch->done_head == NULL)
			ch->done_tail = NULL;
		count_completion(ch->bdev, &req->io, status);
		req->next = ch->free_list;
		ch->free_list = req;
		assert(ch->inflight > 0);
		ch->inflight--;
		cb(arg, status);
		n++;
	}
	return n;
}

void vfurt_bdev_channel_destroy(struct vfurt_bdev_channel *ch)
{
	struct vfurt_bdev *bdev;

	if (ch == NULL)
		return;
	bdev = ch->bdev;
	ch->closing = true;
	if (bdev->ops.channel_destroy != NULL)
		bdev->ops.channel_destroy(bdev->ctx, ch->chan_ctx);
	run_done(ch, 0);
	/* A backend that lost a request would leave a callback that never runs. */
	assert(ch->inflight == 0);
	atomic_fetch_sub(&bdev->channels, 1);
	free(ch->slots);
	free(ch);
}

/* Everything a client can get wrong is answered with -EINVAL, never asserted. */
static int validate(const struct vfurt_bdev *bdev, const struct vfurt_bdev_io *io)
{
	uint64_t want, sum = 0;
	uint64_t nb = atomic_load_explicit(&bdev->num_blocks, memory_order_relaxed);
	int i;

	if (io->cb == NULL)
		return -EINVAL;
	switch (io->op) {
	case VFURT_BDEV_FLUSH:
		return 0;
	case VFURT_BDEV_READ:
	case VFURT_BDEV_WRITE:
		break;
	case VFURT_BDEV_WRITE_ZEROES:
		if (!(bdev->caps & VFURT_BDEV_CAP_WRITE_ZEROES))
			return -EINVAL;
		break;
	case VFURT_BDEV_DEALLOCATE:
		if (!(bdev->caps & VFURT_BDEV_CAP_DEALLOCATE))
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	if (io->num_blocks == 0 || io->offset_blocks >= nb ||
	    io->num_blocks > nb - io->offset_blocks)
		return -EINVAL;
	if (io->op != VFURT_BDEV_READ && io->op != VFURT_BDEV_WRITE)
		return 0;
	if (io->iov == NULL || io->iovcnt <= 0 || io->iovcnt > VFURT_BDEV_IOV_MAX)
		return -EINVAL;
	want = (uint64_t)io->num_blocks * bdev->block_size;
	for (i = 0; i < io->iovcnt; i++) {
		uint64_t len = io->iov[i].iov_len;

		/* Checked per element so huge lengths cannot wrap the sum. */
		if (len > want - sum)
			return -EINVAL;
		if (bdev->buf_align > 1 &&
		    (((uintptr_t)io->iov[i].iov_base | len) & (bdev->buf_align - 1)) != 0)
			return -EINVAL;
		if (len != 0 && io->iov[i].iov_base == NULL)
			return -EINVAL;
		sum += len;
	}
	return sum == want ? 0 : -EINVAL;
}

int vfurt_bdev_submit(struct vfurt_bdev_channel *ch, const struct vfurt_bdev_io *io)
{
	struct vfurt_bdev *bdev = ch->bdev;
	struct vfurt_bdev_req *req;
	int rc;

	if (ch->closing)
		return -ECANCELED;
	rc = validate(bdev, io);
	if (rc < 0) {
		atomic_fetch_add_explicit(&bdev->st.invalid, 1, memory_order_relaxed);
		return rc;
	}
	req = ch->free_list;
	if (req == NULL)
		return -EAGAIN;
	ch->free_list = req->next;
	req->next = NULL;
	req->io = *io;
	req->status = 0;
	ch->inflight++;
	if (io->op == VFURT_BDEV_FLUSH && !(bdev->caps & VFURT_BDEV_CAP_FLUSH)) {
		/* No volatile cache: nothing to flush. */
		vfurt_bdev_req_complete(req, 0);
		return 0;
	}
	rc = bdev->ops.submit(ch->chan_ctx, req, &req->io);
	if (rc < 0) {
		ch->inflight--;
		req->next = ch->free_list;
		ch->free_list = req;
		return rc;
	}
	return 0;
}

int vfurt_bdev_channel_poll(struct vfurt_bdev_channel *ch, int max)
{
	if (ch->bdev->ops.poll != NULL && ch->inflight > 0)
		ch->bdev->ops.poll(ch->chan_ctx, max);
	return run_done(ch, max);
}

uint32_t vfurt_bdev_channel_inflight(const struct vfurt_bdev_channel *ch)
{
	return ch->inflight;
}

void vfurt_bdev_req_complete(struct vfurt_bdev_req *req, int status)
{
	struct vfurt_bdev_channel *ch = req->ch;

	assert(status <= 0);
	req->status = status;
	req->next = NULL;
	if (ch->done_tail != NULL)
		ch->done_tail->next = req;
	else
		ch->done_head = req;
	ch->done_tail = req;
}

void *vfurt_bdev_req_ctx(struct vfurt_bdev_req *req)
{
	return (unsigned char *)req + req_hdr_size();
}

const struct vfurt_bdev_io *vfurt_bdev_req_io(const struct vfurt_bdev_req *req)
{
	return &req->io;
}

struct vfurt_bdev *vfurt_bdev_spec_create(const struct vfurt_bdev_spec_opts *opts, char *err,
					 size_t errlen)
{
	struct vfurt_bdev_spec_opts o;
	struct vfurt_bdev *bdev = NULL;
	char dummy[1];

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (vfurt_abi_copy_in(&o, sizeof(o), opts, BDEV_SPEC_OPTS_V1) || o.spec == NULL) {
		snprintf(err, errlen, "no bdev spec");
		errno = EINVAL;
		return NULL;
	}
	if ((int)o.direct < VFURT_BDEV_DIRECT_OFF || (int)o.direct > VFURT_BDEV_DIRECT_TRY) {
		snprintf(err, errlen, "direct mode %d: expected off, on or try", (int)o.direct);
		errno = EINVAL;
		return NULL;
	}
	if (o.block_size == 0)
		o.block_size = 512;
	if (o.block_size != 512 && o.block_size != 4096) {
		snprintf(err, errlen, "block size %u: must be 512 or 4096", o.block_size);
		errno = EINVAL;
		return NULL;
	}
	if (strcmp(o.spec, "null") == 0 || strcmp(o.spec, "ram") == 0) {
		if (o.size_bytes == 0 || o.size_bytes % o.block_size != 0) {
			snprintf(err, errlen, "%s bdev: size %llu must be a non-zero multiple of %u",
				 o.spec, (unsigned long long)o.size_bytes, o.block_size);
			errno = EINVAL;
			return NULL;
		}
		if (o.spec[0] == 'n') {
			struct vfurt_bdev_null_opts no = { .opts_size = sizeof(no), .name = "null",
							   .block_size = o.block_size,
							   .size_bytes = o.size_bytes };

			bdev = vfurt_bdev_null_create(&no);
		} else {
			struct vfurt_bdev_ram_opts ro = { .opts_size = sizeof(ro), .name = "ram",
							  .block_size = o.block_size,
							  .size_bytes = o.size_bytes,
							  .flags = o.flags & VFURT_BDEV_LAZY };

			bdev = vfurt_bdev_ram_create(&ro);
		}
	} else if (strncmp(o.spec, "file:", 5) == 0 && o.spec[5] != '\0') {
		struct vfurt_bdev_file_opts fo = {
			.opts_size = sizeof(fo),
			.path = o.spec + 5,
			.block_size = o.block_size,
			.size_bytes = o.size_bytes,
			.create = o.size_bytes != 0,
			.direct = o.direct,
			.sync = VFURT_BDEV_SYNC_FDATASYNC,
		};

		bdev = vfurt_bdev_file_create(&fo);
	} else {
		snprintf(err, errlen, "unknown bdev '%s': expected null, ram or file:PATH", o.spec);
		errno = EINVAL;
		return NULL;
	}
	if (bdev == NULL) {
		int e = errno != 0 ? errno : EINVAL;

		snprintf(err, errlen, "bdev '%s': %s", o.spec, strerror(e));
		errno = e;
	}
	return bdev;
}

/*
 * The backend first, then the geometry: a backend that fails leaves the
 * size as it was. The store is relaxed: the caller's channels are idle and
 * the handoff that makes them busy again (an NVMe controller adding its
 * queue pollers back) orders it before their next submit.
 */
int vfurt_bdev_resize(struct vfurt_bdev *bdev, uint64_t num_blocks)
{
	int rc;

	if (bdev == NULL || num_blocks == 0 || num_blocks > UINT64_MAX / bdev->block_size)
		return -EINVAL;
	/* a backend built before resize existed has ops_size BDEV_OPS_V1:
	 * vfurt_abi_copy_in left its resize NULL */
	if (bdev->ops.resize == NULL)
		return -ENOTSUP;
	rc = bdev->ops.resize(bdev->ctx, num_blocks);
	if (rc < 0)
		return rc;
	atomic_store_explicit(&bdev->num_blocks, num_blocks, memory_order_relaxed);
	return 0;
}

/* ---- live upgrade ---------------------------------------------------------- */

/* Records of a bdev's section (vfurt_bdev_save). */
enum {
	TAG_GEOMETRY = 1, /* struct saved_geometry */
	TAG_STATS = 2,    /* struct saved_stats */
	TAG_BACKEND = 3,  /* section: the backend's own records */
};

struct saved_geometry {
	uint32_t block_size;
	uint32_t caps;
	uint64_t num_blocks;
};
_Static_assert(sizeof(struct saved_geometry) == 16, "no padding in an image record");

struct saved_stats {
	uint64_t reads, writes, flushes, write_zeroes, deallocates;
	uint64_t bytes_read, bytes_written, errors, invalid;
};
_Static_assert(sizeof(struct saved_stats) == 72, "no padding in an image record");

int vfurt_bdev_save(struct vfurt_bdev *bdev, struct vfurt_state *s)
{
	struct saved_geometry g;
	struct saved_stats st;
	int rc;

	if (bdev == NULL || s == NULL)
		return -EINVAL;
	g = (struct saved_geometry){ .block_size = bdev->block_size, .caps = bdev->caps,
				     .num_blocks = vfurt_bdev_num_blocks(bdev) };
	st = (struct saved_stats){
		.reads = atomic_load(&bdev->st.reads),
		.writes = atomic_load(&bdev->st.writes),
		.flushes = atomic_load(&bdev->st.flushes),
		.write_zeroes = atomic_load(&bdev->st.write_zeroes),
		.deallocates = atomic_load(&bdev->st.deallocates),
		.bytes_read = atomic_load(&bdev->st.bytes_read),
		.bytes_written = atomic_load(&bdev->st.bytes_written),
		.errors = atomic_load(&bdev->st.errors),
		.invalid = atomic_load(&bdev->st.invalid),
	};
	rc = vfurt_state_put(s, TAG_GEOMETRY, &g, sizeof(g));
	if (rc == 0)
		rc = vfurt_state_put(s, TAG_STATS, &st, sizeof(st));
	if (rc || bdev->ops.save == NULL)
		return rc;
	rc = vfurt_state_open(s, TAG_BACKEND);
	if (rc)
		return rc;
	rc = bdev->ops.save(bdev->ctx, s);
	/* a failed save fails the whole image: the section need not be whole,
	 * only closed, so that the caller's own closes still match */
	if (vfurt_state_close(s) && rc == 0)
		rc = -EINVAL;
	return rc;
}

/*
 * Everything is checked before anything changes: the geometry, then the
 * backend (which leaves itself unchanged on failure), and the statistics
 * last, which cannot fail.
 */
int vfurt_bdev_restore(struct vfurt_bdev *bdev, const struct vfurt_state_cur *c)
{
	struct saved_geometry g;
	struct saved_stats st;
	struct vfurt_state_cur sub;
	bool have_stats;
	int rc;

	if (bdev == NULL || c == NULL)
		return -EINVAL;
	rc = vfurt_state_get(c, TAG_GEOMETRY, &g, sizeof(g));
	if (rc == 0 && (g.block_size != bdev->block_size ||
			g.num_blocks != vfurt_bdev_num_blocks(bdev)))
		return -EINVAL; /* not the bdev the configuration describes */
	if (rc && rc != -ENOENT)
		return rc;
	rc = vfurt_state_get(c, TAG_STATS, &st, sizeof(st));
	if (rc && rc != -ENOENT)
		return rc;
	have_stats = rc == 0;
	rc = vfurt_state_sub(c, TAG_BACKEND, &sub);
	if (rc == 0) {
		if (bdev->ops.restore == NULL)
			return -ENOTSUP;
		rc = bdev->ops.restore(bdev->ctx, &sub);
		if (rc)
			return rc;
	} else if (rc != -ENOENT) {
		return rc;
	}
	if (have_stats) {
		atomic_store(&bdev->st.reads, st.reads);
		atomic_store(&bdev->st.writes, st.writes);
		atomic_store(&bdev->st.flushes, st.flushes);
		atomic_store(&bdev->st.write_zeroes, st.write_zeroes);
		atomic_store(&bdev->st.deallocates, st.deallocates);
		atomic_store(&bdev->st.bytes_read, st.bytes_read);
		atomic_store(&bdev->st.bytes_written, st.bytes_written);
		atomic_store(&bdev->st.errors, st.errors);
		atomic_store(&bdev->st.invalid, st.invalid);
	}
	return 0;
}
