/* Unit tests for the generic bdev layer, the null and ram backends, custom backends and the size parser. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/bdev.h>

/* Completion record shared by the tests' callbacks. */
struct done {
	int calls;
	int status;
	int in_submit; /* set while the test is inside vfurt_bdev_submit */
	int bad;       /* a callback ran while in_submit was set */
};

static void on_done(void *arg, int status)
{
	struct done *d = arg;

	d->calls++;
	d->status = status;
	if (d->in_submit)
		d->bad++;
}

static int submit(struct vfurt_bdev_channel *ch, struct done *d, enum vfurt_bdev_op op,
		  uint64_t off, uint32_t n, const struct iovec *iov, int iovcnt)
{
	struct vfurt_bdev_io io = {
		.op = op, .offset_blocks = off, .num_blocks = n, .iov = iov, .iovcnt = iovcnt,
		.cb = on_done, .cb_arg = d,
	};
	int rc;

	d->in_submit = 1;
	rc = vfurt_bdev_submit(ch, &io);
	d->in_submit = 0;
	return rc;
}

/* Submit and poll until the callback ran; returns its status. */
static int run_io(struct vfurt_bdev_channel *ch, enum vfurt_bdev_op op, uint64_t off, uint32_t n,
		  const struct iovec *iov, int iovcnt)
{
	struct done d = { 0 };

	assert_int_equal(submit(ch, &d, op, off, n, iov, iovcnt), 0);
	assert_int_equal(d.calls, 0);
	while (d.calls == 0)
		vfurt_bdev_channel_poll(ch, 0);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.bad, 0);
	return d.status;
}

static void test_validation(void **state)
{
	struct vfurt_bdev *b = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .name = "n", .block_size = 512,
		.size_bytes = 100 * 512 });
	struct vfurt_bdev_channel *ch;
	static char buf[4096];
	struct iovec iov = { buf, 512 };
	struct iovec big[2] = { { buf, 512 }, { buf, SIZE_MAX - 100 } };
	struct vfurt_bdev_stats st = { .stats_size = sizeof(st) };
	struct vfurt_bdev_io io;
	struct done d = { 0 };

	(void)state;
	assert_non_null(b);
	ch = vfurt_bdev_channel_create(b, 8);
	assert_non_null(ch);
	assert_string_equal(vfurt_bdev_name(b), "n");
	assert_int_equal(vfurt_bdev_block_size(b), 512);
	assert_int_equal(vfurt_bdev_num_blocks(b), 100);
	/* range */
	assert_int_equal(submit(ch, &d, VFURT_BDEV_READ, 100, 1, &iov, 1), -EINVAL);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_READ, 99, 1, &iov, 1), 0);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_WRITE_ZEROES, 99, 2, NULL, 0), -EINVAL);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_WRITE_ZEROES, 0, 0, NULL, 0), -EINVAL);
	/* overflow of offset + count near UINT64_MAX */
	assert_int_equal(submit(ch, &d, VFURT_BDEV_DEALLOCATE, UINT64_MAX, 2, NULL, 0), -EINVAL);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_DEALLOCATE, UINT64_MAX - 1, 1, NULL, 0), -EINVAL);
	/* iov sizes */
	assert_int_equal(submit(ch, &d, VFURT_BDEV_READ, 0, 2, &iov, 1), -EINVAL);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_READ, 0, 1, NULL, 1), -EINVAL);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_READ, 0, 1, &iov, 0), -EINVAL);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_READ, 0, 1, &iov, VFURT_BDEV_IOV_MAX + 1), -EINVAL);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_WRITE, 0, 1, big, 2), -EINVAL);
	/* operation and callback */
	assert_int_equal(submit(ch, &d, (enum vfurt_bdev_op)VFURT_BDEV_OP_COUNT, 0, 1, &iov, 1),
			 -EINVAL);
	assert_int_equal(submit(ch, &d, (enum vfurt_bdev_op)-1, 0, 1, &iov, 1), -EINVAL);
	io = (struct vfurt_bdev_io){ .op = VFURT_BDEV_READ, .num_blocks = 1, .iov = &iov, .iovcnt = 1 };
	assert_int_equal(vfurt_bdev_submit(ch, &io), -EINVAL);
	/* FLUSH ignores range and buffers */
	assert_int_equal(submit(ch, &d, VFURT_BDEV_FLUSH, UINT64_MAX, 0, NULL, 0), 0);
	while (vfurt_bdev_channel_poll(ch, 0) > 0)
		;
	assert_int_equal(d.calls, 2);
	assert_int_equal(d.bad, 0);
	vfurt_bdev_get_stats(b, &st);
	assert_int_equal(st.invalid, 13);
	assert_int_equal(st.reads, 1);
	assert_int_equal(st.flushes, 1);
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
}

/*
 * Resident and huge-page kB of the mapping of exactly `kb` kB (the RAM
 * backend's: its size is odd enough to be the only one). false: not found.
 */
static bool mapping_rss(unsigned long kb, unsigned long *rss, unsigned long *huge)
{
	FILE *fp = fopen("/proc/self/smaps", "r");
	char line[256];
	bool in = false, found = false;

	if (fp == NULL)
		return false;
	while (fgets(line, sizeof(line), fp) != NULL) {
		unsigned long v;

		if (sscanf(line, "Size: %lu kB", &v) == 1) {
			in = v == kb && !found;
			continue;
		}
		if (!in)
			continue;
		if (sscanf(line, "Rss: %lu kB", &v) == 1) {
			*rss = v;
			found = true;
		} else if (sscanf(line, "AnonHugePages: %lu kB", &v) == 1) {
			*huge = v;
		}
	}
	fclose(fp);
	return found;
}

/* Fill one block of block size bs with a pattern of lba, or check it. */
static void pattern(unsigned char *b, uint32_t bs, uint64_t lba)
{
	for (uint32_t i = 0; i < bs; i++)
		b[i] = (unsigned char)(lba * 31 + i + 1);
}

/*
 * A RAM device whose size is no multiple of 2 MiB (nor of the page size):
 * populated at creation, every block readable and writable up to the last,
 * DEALLOCATE across huge-page boundaries zeroes exactly its range.
 */
static void test_ram_odd_size(void **state)
{
	const uint32_t bs = 512;
	const uint64_t size = (6u << 20) + 12 * 1024 + 512; /* 6 MiB + 12.5 KiB */
	const uint64_t nb = size / bs;
	const uint64_t two_mib = (2u << 20) / bs;
	const uint64_t lbas[] = { 0, 1, two_mib - 1, two_mib, 2 * two_mib - 1, 2 * two_mib,
				  3 * two_mib - 1, 3 * two_mib, nb - 2, nb - 1 };
	struct vfurt_bdev *b = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "odd", .block_size = bs,
		.size_bytes = size });
	struct vfurt_bdev_channel *ch;
	unsigned char *buf, one[512], want[512];
	unsigned long rss = 0, huge = 0;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned long kb = (unsigned long)((size + page - 1) / page * page / 1024);
	long avail = sysconf(_SC_AVPHYS_PAGES);

	(void)state;
	assert_non_null(b);
	assert_int_equal(vfurt_bdev_num_blocks(b), nb);
	/* populated up front: nothing faults in during I/O (unless memory is
	 * so short that the backend leaves it lazy) */
	if (avail > 0 && (unsigned long)avail > kb * 1024 / page) {
		assert_true(mapping_rss(kb, &rss, &huge));
		assert_int_equal(rss, kb);
		print_message("ram %lu kB: resident %lu kB, of which huge pages %lu kB\n", kb, rss,
			      huge);
	}
	ch = vfurt_bdev_channel_create(b, 4);
	assert_non_null(ch);

	/* the whole device reads as zero */
	buf = calloc(1, (size_t)size);
	assert_non_null(buf);
	memset(buf, 0xee, (size_t)size);
	{
		struct iovec v = { buf, (size_t)size };

		assert_int_equal(run_io(ch, VFURT_BDEV_READ, 0, (uint32_t)nb, &v, 1), 0);
		for (size_t i = 0; i < size; i++)
			assert_int_equal(buf[i], 0);
	}
	/* blocks around every 2 MiB boundary and at the very end */
	for (size_t i = 0; i < sizeof(lbas) / sizeof(lbas[0]); i++) {
		struct iovec v = { one, bs };

		pattern(one, bs, lbas[i]);
		assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, lbas[i], 1, &v, 1), 0);
	}
	for (size_t i = 0; i < sizeof(lbas) / sizeof(lbas[0]); i++) {
		struct iovec v = { one, bs };

		memset(one, 0, bs);
		assert_int_equal(run_io(ch, VFURT_BDEV_READ, lbas[i], 1, &v, 1), 0);
		pattern(want, bs, lbas[i]);
		assert_memory_equal(one, want, bs);
	}
	/* beyond the last block: refused */
	{
		struct iovec v = { one, bs }, v2 = { buf, 2 * bs };
		struct done d = { 0 };

		assert_int_equal(submit(ch, &d, VFURT_BDEV_READ, nb, 1, &v, 1), -EINVAL);
		assert_int_equal(submit(ch, &d, VFURT_BDEV_WRITE, nb - 1, 2, &v2, 1), -EINVAL);
	}
	/* deallocate from just before the first boundary to just after the
	 * second (a whole huge page plus two partial ones), and the tail that
	 * is no whole huge page */
	assert_int_equal(run_io(ch, VFURT_BDEV_DEALLOCATE, two_mib - 1, (uint32_t)two_mib + 2,
				NULL, 0), 0);
	assert_int_equal(run_io(ch, VFURT_BDEV_DEALLOCATE, nb - 1, 1, NULL, 0), 0);
	for (size_t i = 0; i < sizeof(lbas) / sizeof(lbas[0]); i++) {
		struct iovec v = { one, bs };
		bool gone = (lbas[i] >= two_mib - 1 && lbas[i] <= 2 * two_mib) ||
			    lbas[i] == nb - 1;

		memset(one, 0xee, bs);
		assert_int_equal(run_io(ch, VFURT_BDEV_READ, lbas[i], 1, &v, 1), 0);
		if (gone)
			memset(want, 0, bs);
		else
			pattern(want, bs, lbas[i]);
		assert_memory_equal(one, want, bs);
	}
	/* released memory comes back on the next write */
	pattern(one, bs, 7);
	{
		struct iovec v = { one, bs };

		assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, two_mib + 5, 1, &v, 1), 0);
		memset(one, 0, bs);
		assert_int_equal(run_io(ch, VFURT_BDEV_READ, two_mib + 5, 1, &v, 1), 0);
		pattern(want, bs, 7);
		assert_memory_equal(one, want, bs);
	}
	free(buf);
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);

	/* 4 KiB blocks, sizes below, at and just above one huge page */
	static const uint64_t sizes[] = { 4096, 2u << 20, (2u << 20) + 4096, (4u << 20) - 4096 };

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint64_t sz = sizes[k];
		struct vfurt_bdev *b4 = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
			.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "odd4k",
			.block_size = 4096, .size_bytes = sz });
		struct vfurt_bdev_channel *c4;
		unsigned char blk[4096], chk[4096];
		struct iovec v = { blk, sizeof(blk) };
		uint64_t last = sz / 4096 - 1;

		assert_non_null(b4);
		c4 = vfurt_bdev_channel_create(b4, 1);
		assert_non_null(c4);
		for (size_t i = 0; i < sizeof(blk); i++)
			blk[i] = (unsigned char)(i ^ 0x5a);
		memcpy(chk, blk, sizeof(chk));
		assert_int_equal(run_io(c4, VFURT_BDEV_WRITE, last, 1, &v, 1), 0);
		memset(blk, 0, sizeof(blk));
		assert_int_equal(run_io(c4, VFURT_BDEV_READ, last, 1, &v, 1), 0);
		assert_memory_equal(blk, chk, sizeof(blk));
		vfurt_bdev_channel_destroy(c4);
		vfurt_bdev_destroy(b4);
	}
}

static void test_create_errors(void **state)
{
	struct vfurt_bdev_opts o = { .opts_size = sizeof(o), .block_size = 1024, .num_blocks = 1 };
	struct vfurt_bdev_ops ops = { .ops_size = sizeof(ops) };
	struct vfurt_bdev *b;

	(void)state;
	assert_null(vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .name = "x", .block_size = 1024,
		.size_bytes = 8 * 1024 }));
	assert_int_equal(errno, EINVAL);
	assert_null(vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .name = "x", .block_size = 512,
		.size_bytes = 0 }));
	assert_null(vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "x", .block_size = 512,
		.size_bytes = 1000 }));
	assert_null(vfurt_bdev_create(&o, &ops, NULL));
	o.block_size = 4096;
	assert_null(vfurt_bdev_create(&o, &ops, NULL)); /* no submit */
	assert_null(vfurt_bdev_create(NULL, &ops, NULL));
	b = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .block_size = 4096,
		.size_bytes = 4096 });
	assert_non_null(b);
	assert_null(vfurt_bdev_channel_create(b, 65537));
	assert_int_equal(errno, EINVAL);
	vfurt_bdev_destroy(b);
}

static void test_queue_depth(void **state)
{
	struct vfurt_bdev *b = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .name = "n", .block_size = 4096,
		.size_bytes = 16 * 4096 });
	struct vfurt_bdev_channel *ch = vfurt_bdev_channel_create(b, 4);
	struct done d = { 0 };
	int i;

	(void)state;
	for (i = 0; i < 4; i++)
		assert_int_equal(submit(ch, &d, VFURT_BDEV_DEALLOCATE, (uint64_t)i, 1, NULL, 0), 0);
	assert_int_equal(vfurt_bdev_channel_inflight(ch), 4);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_DEALLOCATE, 0, 1, NULL, 0), -EAGAIN);
	assert_int_equal(d.calls, 0);
	/* max bounds the callbacks run per poll */
	assert_int_equal(vfurt_bdev_channel_poll(ch, 1), 1);
	assert_int_equal(vfurt_bdev_channel_inflight(ch), 3);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_DEALLOCATE, 0, 1, NULL, 0), 0);
	assert_int_equal(vfurt_bdev_channel_poll(ch, 0), 4);
	assert_int_equal(vfurt_bdev_channel_poll(ch, 0), 0);
	assert_int_equal(d.calls, 5);
	assert_int_equal(d.bad, 0);
	assert_int_equal(vfurt_bdev_channel_inflight(ch), 0);
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
}

/* A callback that resubmits from inside poll. */
struct chain {
	struct vfurt_bdev_channel *ch;
	int left;
	int calls;
};

static void on_chain(void *arg, int status)
{
	struct chain *c = arg;
	struct vfurt_bdev_io io = { .op = VFURT_BDEV_FLUSH, .cb = on_chain, .cb_arg = c };

	assert_int_equal(status, 0);
	c->calls++;
	if (c->left-- > 0)
		assert_int_equal(vfurt_bdev_submit(c->ch, &io), 0);
}

static void test_resubmit_from_callback(void **state)
{
	struct vfurt_bdev *b = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .name = "n", .block_size = 512,
		.size_bytes = 8 * 512 });
	struct chain c = { .ch = vfurt_bdev_channel_create(b, 1), .left = 5 };
	struct vfurt_bdev_io io = { .op = VFURT_BDEV_FLUSH, .cb = on_chain, .cb_arg = &c };

	(void)state;
	assert_int_equal(vfurt_bdev_submit(c.ch, &io), 0);
	/* queue depth 1: each callback frees the slot it reuses */
	while (vfurt_bdev_channel_poll(c.ch, 2) > 0)
		;
	assert_int_equal(c.calls, 6);
	vfurt_bdev_channel_destroy(c.ch);
	vfurt_bdev_destroy(b);
}

static void test_null_leaves_buffers(void **state)
{
	struct vfurt_bdev *b = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .name = "n", .block_size = 512,
		.size_bytes = 8 * 512 });
	struct vfurt_bdev_channel *ch = vfurt_bdev_channel_create(b, 0);
	char buf[1024];
	struct iovec iov = { buf, sizeof(buf) };

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, 0, 2, &iov, 1), 0);
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, 0, 2, &iov, 1), 0);
	assert_int_equal((unsigned char)buf[0], 0xa5);
	assert_int_equal((unsigned char)buf[1023], 0xa5);
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
}

static void test_ram_rw(void **state)
{
	const uint32_t bs = 512;
	struct vfurt_bdev *b = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "r", .block_size = bs,
		.size_bytes = 64 * 1024 });
	struct vfurt_bdev_channel *ch = vfurt_bdev_channel_create(b, 4);
	unsigned char src[4 * 512], dst[4 * 512];
	/* 4 blocks scattered over uneven pieces, one of them empty */
	struct iovec wv[4] = { { src, 100 }, { src + 100, 0 }, { src + 100, 1000 }, { src + 1100, 948 } };
	struct iovec rv[3] = { { dst, 1 }, { dst + 1, 2046 }, { dst + 2047, 1 } };
	struct vfurt_bdev_stats st = { .stats_size = sizeof(st) };
	size_t i;

	(void)state;
	assert_non_null(ch);
	assert_int_equal(vfurt_bdev_caps(b) & VFURT_BDEV_CAP_FLUSH, 0);
	for (i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i * 7 + 3);
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, 10, 4, wv, 4), 0);
	memset(dst, 0, sizeof(dst));
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, 10, 4, rv, 3), 0);
	assert_memory_equal(src, dst, sizeof(src));
	/* write zeroes on the middle two blocks */
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE_ZEROES, 11, 2, NULL, 0), 0);
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, 10, 4, rv, 3), 0);
	assert_memory_equal(dst, src, bs);
	for (i = bs; i < 3 * bs; i++)
		assert_int_equal(dst[i], 0);
	assert_memory_equal(dst + 3 * bs, src + 3 * bs, bs);
	/* deallocate a range spanning whole pages and partial ones */
	memset(src, 0xee, sizeof(src));
	for (i = 0; i < 32; i++) {
		struct iovec v = { src, bs };

		assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, i, 1, &v, 1), 0);
	}
	assert_int_equal(run_io(ch, VFURT_BDEV_DEALLOCATE, 3, 20, NULL, 0), 0);
	for (i = 0; i < 32; i++) {
		struct iovec v = { dst, bs };
		size_t j;

		assert_int_equal(run_io(ch, VFURT_BDEV_READ, i, 1, &v, 1), 0);
		for (j = 0; j < bs; j++)
			assert_int_equal(dst[j], (i >= 3 && i < 23) ? 0 : 0xee);
	}
	assert_int_equal(run_io(ch, VFURT_BDEV_FLUSH, 0, 0, NULL, 0), 0);
	vfurt_bdev_get_stats(b, &st);
	assert_int_equal(st.writes, 33);
	assert_int_equal(st.bytes_written, 4 * bs + 32 * bs);
	assert_int_equal(st.reads, 34);
	assert_int_equal(st.bytes_read, 4 * bs + 4 * bs + 32 * bs);
	assert_int_equal(st.write_zeroes, 1);
	assert_int_equal(st.deallocates, 1);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.errors, 0);
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
}

/* ---- a custom backend registered through the ops table ---- */

struct custom {
	int channels;
	int destroyed;
	int polls;
	uint64_t fail_lba;       /* requests at this LBA complete with -EIO */
	int refuse;              /* submit refuses with -EAGAIN while set */
};

struct custom_chan {
	struct custom *c;
	struct vfurt_bdev_req *pending[8];
	int n;
};

struct custom_req {
	uint64_t magic;
};

static int c_chan_create(void *ctx, uint32_t qd, void **chan_ctx)
{
	struct custom_chan *cc = calloc(1, sizeof(*cc));

	assert_true(qd <= 8);
	if (cc == NULL)
		return -ENOMEM;
	cc->c = ctx;
	cc->c->channels++;
	*chan_ctx = cc;
	return 0;
}

static void c_chan_destroy(void *ctx, void *chan_ctx)
{
	struct custom_chan *cc = chan_ctx;
	int i;

	for (i = 0; i < cc->n; i++)
		vfurt_bdev_req_complete(cc->pending[i], -ECANCELED);
	cc->c->channels--;
	free(cc);
}

static int c_submit(void *chan_ctx, struct vfurt_bdev_req *req, const struct vfurt_bdev_io *io)
{
	struct custom_chan *cc = chan_ctx;
	struct custom_req *cr = vfurt_bdev_req_ctx(req);

	if (cc->c->refuse)
		return -EAGAIN;
	assert_ptr_equal(vfurt_bdev_req_io(req), io);
	assert_int_equal((uintptr_t)cr % 16, 0);
	cr->magic = io->offset_blocks ^ 0x5a5a;
	cc->pending[cc->n++] = req;
	return 0;
}

static int c_poll(void *chan_ctx, int max)
{
	struct custom_chan *cc = chan_ctx;
	int i, n = cc->n;

	cc->c->polls++;
	for (i = 0; i < n; i++) {
		struct vfurt_bdev_req *req = cc->pending[i];
		const struct vfurt_bdev_io *io = vfurt_bdev_req_io(req);
		struct custom_req *cr = vfurt_bdev_req_ctx(req);

		assert_int_equal(cr->magic, io->offset_blocks ^ 0x5a5a);
		vfurt_bdev_req_complete(req, io->offset_blocks == cc->c->fail_lba ? -EIO : 0);
	}
	cc->n = 0;
	return n;
}

static void c_destroy(void *ctx)
{
	((struct custom *)ctx)->destroyed++;
}

static void test_custom_backend(void **state)
{
	static const struct vfurt_bdev_ops ops = {
		.ops_size = sizeof(ops),
		.req_ctx_size = sizeof(struct custom_req),
		.channel_create = c_chan_create,
		.channel_destroy = c_chan_destroy,
		.submit = c_submit,
		.poll = c_poll,
		.destroy = c_destroy,
	};
	struct vfurt_bdev_opts o = {
		.opts_size = sizeof(o), .name = "custom", .block_size = 4096, .num_blocks = 1000,
		.caps = VFURT_BDEV_CAP_FLUSH, .buf_align = 4096,
	};
	struct custom c = { .fail_lba = 7 };
	struct vfurt_bdev *b = vfurt_bdev_create(&o, &ops, &c);
	struct vfurt_bdev_channel *ch;
	struct vfurt_bdev_stats st = { .stats_size = sizeof(st) };
	struct done d1 = { 0 }, d2 = { 0 }, d3 = { 0 };
	void *buf = aligned_alloc(4096, 8192);
	struct iovec iov = { buf, 4096 };
	struct iovec mis = { (char *)buf + 512, 4096 };

	(void)state;
	assert_non_null(b);
	assert_int_equal(vfurt_bdev_buf_align(b), 4096);
	ch = vfurt_bdev_channel_create(b, 8);
	assert_non_null(ch);
	assert_int_equal(c.channels, 1);
	/* capabilities not advertised are refused */
	assert_int_equal(submit(ch, &d1, VFURT_BDEV_WRITE_ZEROES, 0, 1, NULL, 0), -EINVAL);
	assert_int_equal(submit(ch, &d1, VFURT_BDEV_DEALLOCATE, 0, 1, NULL, 0), -EINVAL);
	/* alignment */
	assert_int_equal(submit(ch, &d1, VFURT_BDEV_READ, 0, 1, &mis, 1), -EINVAL);
	/* backend refusal comes back to the submitter, slot reusable */
	c.refuse = 1;
	assert_int_equal(submit(ch, &d1, VFURT_BDEV_READ, 0, 1, &iov, 1), -EAGAIN);
	assert_int_equal(vfurt_bdev_channel_inflight(ch), 0);
	c.refuse = 0;
	assert_int_equal(submit(ch, &d1, VFURT_BDEV_READ, 6, 1, &iov, 1), 0);
	assert_int_equal(submit(ch, &d2, VFURT_BDEV_WRITE, 7, 1, &iov, 1), 0);
	assert_int_equal(submit(ch, &d3, VFURT_BDEV_FLUSH, 0, 0, NULL, 0), 0);
	assert_int_equal(vfurt_bdev_channel_poll(ch, 0), 3);
	assert_int_equal(d1.status, 0);
	assert_int_equal(d2.status, -EIO);
	assert_int_equal(d3.status, 0);
	/* destroy with I/O in flight: the backend cancels, callbacks run before return */
	d1.calls = 0;
	assert_int_equal(submit(ch, &d1, VFURT_BDEV_READ, 1, 1, &iov, 1), 0);
	vfurt_bdev_channel_destroy(ch);
	assert_int_equal(d1.calls, 1);
	assert_int_equal(d1.status, -ECANCELED);
	assert_int_equal(c.channels, 0);
	vfurt_bdev_get_stats(b, &st);
	assert_int_equal(st.reads, 1);
	assert_int_equal(st.errors, 2);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.invalid, 3);
	/* a caller's size below the first version is refused, nothing written */
	memset(&st, 0xff, sizeof(st));
	st.stats_size = offsetof(struct vfurt_bdev_stats, writes);
	assert_int_equal(vfurt_bdev_get_stats(b, &st), -EINVAL);
	assert_int_equal(st.reads, UINT64_MAX);
	st.stats_size = 0;
	assert_int_equal(vfurt_bdev_get_stats(b, &st), -EINVAL);
	assert_int_equal(vfurt_bdev_get_stats(NULL, &st), -EINVAL);
	assert_int_equal(vfurt_bdev_get_stats(b, NULL), -EINVAL);
	/* a newer caller's larger struct: the part this library does not know is zeroed */
	{
		struct {
			struct vfurt_bdev_stats st;
			uint64_t newer;
		} big;

		memset(&big, 0xff, sizeof(big));
		big.st.stats_size = sizeof(big);
		assert_int_equal(vfurt_bdev_get_stats(b, &big.st), 0);
		assert_int_equal(big.st.reads, 1);
		assert_int_equal(big.st.stats_size, sizeof(big));
		assert_int_equal(big.newer, 0);
	}
	vfurt_bdev_destroy(b);
	assert_int_equal(c.destroyed, 1);
	free(buf);
}

static void test_channel_destroy_pending_null(void **state)
{
	struct vfurt_bdev *b = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .name = "n", .block_size = 512,
		.size_bytes = 8 * 512 });
	struct vfurt_bdev_channel *ch = vfurt_bdev_channel_create(b, 4);
	struct done d = { 0 };

	(void)state;
	assert_int_equal(submit(ch, &d, VFURT_BDEV_WRITE_ZEROES, 0, 1, NULL, 0), 0);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_WRITE_ZEROES, 1, 1, NULL, 0), 0);
	/* finished but not yet reaped: reported with their real status */
	vfurt_bdev_channel_destroy(ch);
	assert_int_equal(d.calls, 2);
	assert_int_equal(d.status, 0);
	vfurt_bdev_destroy(b);
}

/* vfurt_bdev_spec_create() with a spec, a size and a block size. */
static struct vfurt_bdev *spec_bdev(const char *spec, uint64_t size, uint32_t bs,
				    enum vfurt_bdev_direct direct, char *err, size_t errlen)
{
	struct vfurt_bdev_spec_opts o = { .opts_size = sizeof(o), .spec = spec, .size_bytes = size,
					  .block_size = bs, .direct = direct };

	errno = 0;
	return vfurt_bdev_spec_create(&o, err, errlen);
}

static void test_spec_create(void **state)
{
	struct vfurt_bdev_spec_opts o = { 0 };
	struct vfurt_bdev *b = NULL;
	char err[128];

	(void)state;
	b = spec_bdev("null", 1 << 20, 0, VFURT_BDEV_DIRECT_OFF, err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(vfurt_bdev_block_size(b), 512);
	assert_int_equal(vfurt_bdev_num_blocks(b), 2048);
	vfurt_bdev_destroy(b);
	b = spec_bdev("ram", 1 << 20, 4096, VFURT_BDEV_DIRECT_OFF, err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(vfurt_bdev_num_blocks(b), 256);
	vfurt_bdev_destroy(b);
	assert_null(spec_bdev("ram", 0, 4096, VFURT_BDEV_DIRECT_OFF, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "size"));
	assert_null(spec_bdev("disk", 4096, 0, VFURT_BDEV_DIRECT_OFF, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "unknown"));
	assert_null(spec_bdev("null", 4096, 2048, VFURT_BDEV_DIRECT_OFF, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	assert_null(spec_bdev("file:", 4096, 0, VFURT_BDEV_DIRECT_OFF, NULL, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(spec_bdev("file:/nonexistent/dir/x", 0, 0, VFURT_BDEV_DIRECT_OFF, err,
			      sizeof(err)));
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "/nonexistent/dir/x"));
	assert_null(spec_bdev("null", 4096, 0, (enum vfurt_bdev_direct)3, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(err, "direct mode 3"));
	assert_null(spec_bdev("null", 4096, 0, (enum vfurt_bdev_direct)-1, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	b = spec_bdev("ram", 4096, 0, VFURT_BDEV_DIRECT_ON, err, sizeof(err));
	assert_non_null(b);
	vfurt_bdev_destroy(b);
	/* opts themselves */
	errno = 0;
	assert_null(vfurt_bdev_spec_create(NULL, err, sizeof(err)));
	assert_int_equal(errno, EINVAL);
	o.spec = "null";
	o.size_bytes = 4096;
	assert_null(vfurt_bdev_spec_create(&o, err, sizeof(err))); /* opts_size 0 */
	assert_int_equal(errno, EINVAL);
}

/* Every constructor checks opts_size the same way (include/vfurt/abi.h). */
static void test_opts_size(void **state)
{
	struct {
		struct vfurt_bdev_null_opts o;
		uint64_t newer_field;
	} big = { .o = { .block_size = 512, .size_bytes = 4096 } };
	struct vfurt_bdev_null_opts no = { .block_size = 512, .size_bytes = 4096 };
	struct vfurt_bdev_ram_opts ro = { .size_bytes = 4096 };
	struct vfurt_bdev *b;

	(void)state;
	errno = 0;
	assert_null(vfurt_bdev_null_create(NULL));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(vfurt_bdev_null_create(&no)); /* 0 */
	assert_int_equal(errno, EINVAL);
	no.opts_size = offsetof(struct vfurt_bdev_null_opts, size_bytes); /* before v1 */
	errno = 0;
	assert_null(vfurt_bdev_null_create(&no));
	assert_int_equal(errno, EINVAL);
	/* a newer caller: a zero tail is fine, anything else is refused */
	big.o.opts_size = sizeof(big);
	b = vfurt_bdev_null_create(&big.o);
	assert_non_null(b);
	assert_string_equal(vfurt_bdev_name(b), "null");
	vfurt_bdev_destroy(b);
	big.newer_field = 1;
	errno = 0;
	assert_null(vfurt_bdev_null_create(&big.o));
	assert_int_equal(errno, EINVAL);
	/* a size that was never set */
	big.newer_field = 0;
	big.o.opts_size = (size_t)-1;
	errno = 0;
	assert_null(vfurt_bdev_null_create(&big.o));
	assert_int_equal(errno, EINVAL);
	/* block_size 0 is 512; ram's default name */
	ro.opts_size = sizeof(ro);
	b = vfurt_bdev_ram_create(&ro);
	assert_non_null(b);
	assert_int_equal(vfurt_bdev_block_size(b), 512);
	assert_string_equal(vfurt_bdev_name(b), "ram");
	vfurt_bdev_destroy(b);
	ro.opts_size = 1;
	errno = 0;
	assert_null(vfurt_bdev_ram_create(&ro));
	assert_int_equal(errno, EINVAL);
}

/* ---- resize ------------------------------------------------------------------ */

/* Write block lba with its pattern, or check that it holds it (or zeroes). */
static void rz_write(struct vfurt_bdev_channel *ch, uint64_t lba)
{
	unsigned char b[512];
	struct iovec iov = { b, sizeof(b) };

	pattern(b, 512, lba);
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, lba, 1, &iov, 1), 0);
}

static void rz_check(struct vfurt_bdev_channel *ch, uint64_t lba, bool zero)
{
	unsigned char b[512], want[512];
	struct iovec iov = { b, sizeof(b) };

	memset(b, 0xee, sizeof(b));
	memset(want, 0, sizeof(want));
	if (!zero)
		pattern(want, 512, lba);
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, lba, 1, &iov, 1), 0);
	if (memcmp(b, want, sizeof(b)) != 0)
		fail_msg("lba %llu: %s expected", (unsigned long long)lba, zero ? "zeroes" : "data");
}

static void rz_out_of_range(struct vfurt_bdev_channel *ch, uint64_t lba)
{
	unsigned char b[512];
	struct iovec iov = { b, sizeof(b) };
	struct done d = { 0 };

	assert_int_equal(submit(ch, &d, VFURT_BDEV_READ, lba, 1, &iov, 1), -EINVAL);
}

/*
 * RAM: grow keeps the data and the new blocks read as zeroes; a shrink cuts
 * (what it cut reads as zeroes when a grow brings it back, including the
 * rest of a page the shrink kept mapped); repeated grows (the second one
 * cannot move one mapping any more and copies) keep the data too. Sizes
 * cross 2 MiB so that huge pages, where the system has them, are involved.
 */
static void test_resize_ram(void **state)
{
	const uint64_t mib = 2048; /* blocks of 512 */
	struct vfurt_bdev *b = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "r", .block_size = 512,
		.size_bytes = 3 * mib * 512 + 512 });
	struct vfurt_bdev_channel *ch;
	const uint64_t lbas[] = { 0, 1, mib - 1, mib, 2 * mib + 5, 3 * mib };

	(void)state;
	assert_non_null(b);
	ch = vfurt_bdev_channel_create(b, 4);
	assert_non_null(ch);
	for (size_t i = 0; i < sizeof(lbas) / sizeof(lbas[0]); i++)
		rz_write(ch, lbas[i]);

	/* grow: old data kept, new blocks zero, new end usable */
	assert_int_equal(vfurt_bdev_resize(b, 7 * mib), 0);
	assert_int_equal(vfurt_bdev_num_blocks(b), 7 * mib);
	for (size_t i = 0; i < sizeof(lbas) / sizeof(lbas[0]); i++)
		rz_check(ch, lbas[i], false);
	rz_check(ch, 3 * mib + 1, true);
	rz_check(ch, 7 * mib - 1, true);
	rz_write(ch, 7 * mib - 1);
	rz_write(ch, 5 * mib);
	rz_out_of_range(ch, 7 * mib);

	/* a second grow: the mapping is two by now */
	assert_int_equal(vfurt_bdev_resize(b, 9 * mib + 3), 0);
	for (size_t i = 0; i < sizeof(lbas) / sizeof(lbas[0]); i++)
		rz_check(ch, lbas[i], false);
	rz_check(ch, 7 * mib - 1, false);
	rz_check(ch, 5 * mib, false);
	rz_check(ch, 9 * mib + 2, true);

	/* shrink inside a page, then grow back over it */
	assert_int_equal(vfurt_bdev_resize(b, mib + 1), 0);
	assert_int_equal(vfurt_bdev_num_blocks(b), mib + 1);
	rz_check(ch, mib, false);
	rz_out_of_range(ch, mib + 1);
	rz_out_of_range(ch, 2 * mib + 5);
	assert_int_equal(vfurt_bdev_resize(b, 4 * mib), 0);
	rz_check(ch, 0, false);
	rz_check(ch, mib, false);
	rz_check(ch, mib + 1, true);
	rz_check(ch, 2 * mib + 5, true);
	rz_check(ch, 3 * mib, true);

	/* bounds: as creation's, and the size stays as it was */
	assert_int_equal(vfurt_bdev_resize(b, 0), -EINVAL);
	assert_int_equal(vfurt_bdev_resize(b, UINT64_MAX / 256), -EINVAL);
	assert_int_equal(vfurt_bdev_resize(b, (uint64_t)SIZE_MAX / 512), -EINVAL);
	assert_int_equal(vfurt_bdev_num_blocks(b), 4 * mib);
	rz_check(ch, mib, false);
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
}

/* Null: the geometry alone; the generic layer checks against it. */
static void test_resize_null(void **state)
{
	struct vfurt_bdev *b = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .block_size = 4096,
		.size_bytes = 10 * 4096 });
	struct vfurt_bdev_channel *ch;
	static char buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct done d = { 0 };

	(void)state;
	assert_non_null(b);
	ch = vfurt_bdev_channel_create(b, 4);
	assert_non_null(ch);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_READ, 10, 1, &iov, 1), -EINVAL);
	assert_int_equal(vfurt_bdev_resize(b, 1u << 30), 0);
	assert_int_equal(vfurt_bdev_num_blocks(b), 1u << 30);
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, (1u << 30) - 1, 1, &iov, 1), 0);
	assert_int_equal(vfurt_bdev_resize(b, 3), 0);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_WRITE, 3, 1, &iov, 1), -EINVAL);
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, 2, 1, &iov, 1), 0);
	/* num_blocks * block size must fit in 64 bits */
	assert_int_equal(vfurt_bdev_resize(b, UINT64_MAX / 4096 + 1), -EINVAL);
	assert_int_equal(vfurt_bdev_resize(b, UINT64_MAX / 4096), 0);
	assert_int_equal(vfurt_bdev_resize(NULL, 5), -EINVAL);
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
}

static int rs_submit(void *chan_ctx, struct vfurt_bdev_req *req, const struct vfurt_bdev_io *io)
{
	(void)chan_ctx;
	(void)io;
	vfurt_bdev_req_complete(req, 0);
	return 0;
}

static int rs_resize(void *ctx, uint64_t num_blocks)
{
	uint64_t *last = ctx;

	if (num_blocks > 100)
		return -ENOSPC;
	*last = num_blocks;
	return 0;
}

/* A custom backend: its resize op decides (its error leaves the size); one
 * built with the first ops_size has no resize. */
static void test_resize_custom(void **state)
{
	struct vfurt_bdev_ops ops = {
		.ops_size = sizeof(ops), .submit = rs_submit, .resize = rs_resize,
	};
	struct vfurt_bdev_opts o = {
		.opts_size = sizeof(o), .block_size = 512, .num_blocks = 10,
	};
	uint64_t last = 0;
	struct vfurt_bdev *b;

	(void)state;
	b = vfurt_bdev_create(&o, &ops, &last);
	assert_non_null(b);
	assert_int_equal(vfurt_bdev_resize(b, 50), 0);
	assert_int_equal(last, 50);
	assert_int_equal(vfurt_bdev_resize(b, 101), -ENOSPC);
	assert_int_equal(vfurt_bdev_num_blocks(b), 50);
	vfurt_bdev_destroy(b);

	/* an old backend: ops_size ends at destroy, so resize is not read */
	ops.ops_size = offsetof(struct vfurt_bdev_ops, resize);
	b = vfurt_bdev_create(&o, &ops, &last);
	assert_non_null(b);
	assert_int_equal(vfurt_bdev_resize(b, 20), -ENOTSUP);
	assert_int_equal(vfurt_bdev_num_blocks(b), 10);
	vfurt_bdev_destroy(b);
	/* and one without the op */
	ops.ops_size = sizeof(ops);
	ops.resize = NULL;
	b = vfurt_bdev_create(&o, &ops, &last);
	assert_non_null(b);
	assert_int_equal(vfurt_bdev_resize(b, 20), -ENOTSUP);
	vfurt_bdev_destroy(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_create_errors),
		cmocka_unit_test(test_queue_depth),
		cmocka_unit_test(test_resubmit_from_callback),
		cmocka_unit_test(test_null_leaves_buffers),
		cmocka_unit_test(test_ram_rw),
		cmocka_unit_test(test_ram_odd_size),
		cmocka_unit_test(test_custom_backend),
		cmocka_unit_test(test_channel_destroy_pending_null),
		cmocka_unit_test(test_spec_create),
		cmocka_unit_test(test_opts_size),
		cmocka_unit_test(test_resize_ram),
		cmocka_unit_test(test_resize_null),
		cmocka_unit_test(test_resize_custom),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
