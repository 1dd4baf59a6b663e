/* Unit tests for the io_uring file bdev: data in the file, flush, holes, zeroes, O_DIRECT, errors, threads, fds. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/bdev.h>

#include "common/skip.h"
#include "common/testsrv.h"

#define FILE_SIZE (1024 * 1024)

struct fx {
	char path[PATH_MAX];
	int fd;     /* the test's own view of the file */
	int nfds;   /* open fds before the test */
};

struct done {
	int calls;
	int status;
};

static void on_done(void *arg, int status)
{
	struct done *d = arg;

	d->calls++;
	d->status = status;
}

static int make_file(struct fx *f, const char *dir)
{
	snprintf(f->path, sizeof(f->path), "%s/bdev-test-XXXXXX", dir);
	f->fd = mkstemp(f->path);
	if (f->fd < 0)
		return -1;
	assert_int_equal(ftruncate(f->fd, FILE_SIZE), 0);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->nfds = test_count_fds();
	assert_true(f->nfds >= 0);
	assert_int_equal(make_file(f, VFURT_BUILD_DIR), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	close(f->fd);
	unlink(f->path);
	/* every fd the bdev and its io_urings opened is closed again */
	assert_int_equal(test_count_fds(), f->nfds);
	free(f);
	return 0;
}

static struct vfurt_bdev *open_bdev(const char *path, uint32_t bs, enum vfurt_bdev_direct direct,
				    enum vfurt_bdev_sync sync)
{
	struct vfurt_bdev_file_opts o = {
		.opts_size = sizeof(o), .path = path, .block_size = bs, .direct = direct, .sync = sync,
	};

	return vfurt_bdev_file_create(&o);
}

static int submit(struct vfurt_bdev_channel *ch, struct done *d, enum vfurt_bdev_op op,
		  uint64_t off, uint32_t n, const struct iovec *iov, int iovcnt)
{
	struct vfurt_bdev_io io = {
		.op = op, .offset_blocks = off, .num_blocks = n, .iov = iov, .iovcnt = iovcnt,
		.cb = on_done, .cb_arg = d,
	};

	return vfurt_bdev_submit(ch, &io);
}

static int run_io(struct vfurt_bdev_channel *ch, enum vfurt_bdev_op op, uint64_t off, uint32_t n,
		  const struct iovec *iov, int iovcnt)
{
	struct done d = { 0 };

	assert_int_equal(submit(ch, &d, op, off, n, iov, iovcnt), 0);
	assert_int_equal(d.calls, 0);
	while (d.calls == 0)
		vfurt_bdev_channel_poll(ch, 0);
	assert_int_equal(d.calls, 1);
	return d.status;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(seed + i * 13 + (i >> 9));
}

static void test_rw_sg(void **state)
{
	struct fx *f = *state;
	struct vfurt_bdev *b = open_bdev(f->path, 512, VFURT_BDEV_DIRECT_OFF, 0);
	struct vfurt_bdev_channel *ch;
	unsigned char src[8 * 512], dst[8 * 512], chk[8 * 512];
	struct iovec wv[5] = { { src, 1 }, { src + 1, 511 }, { src + 512, 0 }, { src + 512, 3000 },
			       { src + 3512, 584 } };
	struct iovec rv[2] = { { dst, 4095 }, { dst + 4095, 1 } };
	struct vfurt_bdev_stats st = { .stats_size = sizeof(st) };

	assert_non_null(b);
	assert_int_equal(vfurt_bdev_num_blocks(b), FILE_SIZE / 512);
	assert_true(vfurt_bdev_caps(b) & VFURT_BDEV_CAP_FLUSH);
	assert_int_equal(vfurt_bdev_buf_align(b), 1);
	ch = vfurt_bdev_channel_create(b, 16);
	assert_non_null(ch);
	fill(src, sizeof(src), 1);
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, 100, 8, wv, 5), 0);
	/* the data really is in the file */
	assert_int_equal(pread(f->fd, chk, sizeof(chk), 100 * 512), (ssize_t)sizeof(chk));
	assert_memory_equal(chk, src, sizeof(chk));
	/* and what the file holds comes back through scattered buffers */
	fill(chk, sizeof(chk), 77);
	assert_int_equal(pwrite(f->fd, chk, sizeof(chk), 200 * 512), (ssize_t)sizeof(chk));
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, 200, 8, rv, 2), 0);
	assert_memory_equal(dst, chk, sizeof(dst));
	/* last block of the device */
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, FILE_SIZE / 512 - 1, 1, wv, 2), 0);
	vfurt_bdev_get_stats(b, &st);
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.reads, 2);
	assert_int_equal(st.bytes_read, 8 * 512 + 512);
	assert_int_equal(st.errors, 0);
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
}

/* Many requests submitted in one batch, reaped over several polls. */
static void test_batch(void **state)
{
	struct fx *f = *state;
	struct vfurt_bdev *b = open_bdev(f->path, 4096, VFURT_BDEV_DIRECT_OFF, 0);
	struct vfurt_bdev_channel *ch = vfurt_bdev_channel_create(b, 64);
	static unsigned char buf[64][4096];
	struct iovec iov[64];
	struct done d[64];
	int i, total = 0;

	assert_non_null(ch);
	for (i = 0; i < 64; i++) {
		fill(buf[i], 4096, (unsigned)i);
		iov[i] = (struct iovec){ buf[i], 4096 };
		d[i] = (struct done){ 0 };
		assert_int_equal(submit(ch, &d[i], VFURT_BDEV_WRITE, (uint64_t)i * 3, 1, &iov[i], 1), 0);
	}
	assert_int_equal(submit(ch, &d[0], VFURT_BDEV_FLUSH, 0, 0, NULL, 0), -EAGAIN);
	assert_int_equal(vfurt_bdev_channel_inflight(ch), 64);
	while (total < 64) {
		int n = vfurt_bdev_channel_poll(ch, 8);

		assert_true(n >= 0 && n <= 8);
		total += n;
	}
	for (i = 0; i < 64; i++) {
		unsigned char chk[4096];

		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].status, 0);
		assert_int_equal(pread(f->fd, chk, 4096, (off_t)i * 3 * 4096), 4096);
		assert_memory_equal(chk, buf[i], 4096);
	}
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
}

static void test_flush(void **state)
{
	struct fx *f = *state;
	enum vfurt_bdev_sync modes[2] = { VFURT_BDEV_SYNC_FDATASYNC, VFURT_BDEV_SYNC_FSYNC };
	unsigned char blk[512];
	struct iovec iov = { blk, sizeof(blk) };
	int m;

	for (m = 0; m < 2; m++) {
		struct vfurt_bdev *b = open_bdev(f->path, 512, VFURT_BDEV_DIRECT_OFF, modes[m]);
		struct vfurt_bdev_channel *ch = vfurt_bdev_channel_create(b, 4);
		struct vfurt_bdev_stats st = { .stats_size = sizeof(st) };

		assert_non_null(ch);
		fill(blk, sizeof(blk), (unsigned)m);
		assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, 5, 1, &iov, 1), 0);
		assert_int_equal(run_io(ch, VFURT_BDEV_FLUSH, 0, 0, NULL, 0), 0);
		vfurt_bdev_get_stats(b, &st);
		assert_int_equal(st.flushes, 1);
		vfurt_bdev_channel_destroy(ch);
		vfurt_bdev_destroy(b);
	}
}

static int is_zero(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

static void test_deallocate_and_write_zeroes(void **state)
{
	struct fx *f = *state;
	struct vfurt_bdev *b = open_bdev(f->path, 4096, VFURT_BDEV_DIRECT_OFF, 0);
	struct vfurt_bdev_channel *ch = vfurt_bdev_channel_create(b, 4);
	static unsigned char data[FILE_SIZE];
	unsigned char chk[4096];
	struct stat st1, st2;
	off_t hole;

	assert_non_null(ch);
	fill(data, sizeof(data), 9);
	assert_int_equal(pwrite(f->fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
	assert_int_equal(fsync(f->fd), 0);
	assert_int_equal(fstat(f->fd, &st1), 0);
	/* punch blocks 16..47 (128 KiB) */
	assert_int_equal(run_io(ch, VFURT_BDEV_DEALLOCATE, 16, 32, NULL, 0), 0);
	assert_int_equal(pread(f->fd, chk, 4096, 15 * 4096), 4096);
	assert_memory_equal(chk, data + 15 * 4096, 4096);
	for (int i = 16; i < 48; i++) {
		assert_int_equal(pread(f->fd, chk, 4096, (off_t)i * 4096), 4096);
		assert_true(is_zero(chk, 4096));
	}
	assert_int_equal(pread(f->fd, chk, 4096, 48 * 4096), 4096);
	assert_memory_equal(chk, data + 48 * 4096, 4096);
	assert_int_equal(fstat(f->fd, &st2), 0);
	assert_int_equal(st2.st_size, FILE_SIZE);
	hole = lseek(f->fd, 0, SEEK_HOLE);
	if (st2.st_blocks < st1.st_blocks && hole == 16 * 4096) {
		print_message("deallocate: st_blocks %lld -> %lld, first hole at %lld\n",
			      (long long)st1.st_blocks, (long long)st2.st_blocks, (long long)hole);
	} else {
		print_message("deallocate: the filesystem does not report holes (st_blocks %lld -> "
			      "%lld, SEEK_HOLE %lld); only the zeroes were checked\n",
			      (long long)st1.st_blocks, (long long)st2.st_blocks, (long long)hole);
	}
	/* write zeroes over blocks 100..103, neighbours untouched */
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE_ZEROES, 100, 4, NULL, 0), 0);
	for (int i = 99; i < 105; i++) {
		assert_int_equal(pread(f->fd, chk, 4096, (off_t)i * 4096), 4096);
		if (i == 99 || i == 104)
			assert_memory_equal(chk, data + (size_t)i * 4096, 4096);
		else
			assert_true(is_zero(chk, 4096));
	}
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
}

static void count_fallbacks(void *arg, int level, const char *msg)
{
	if (strstr(msg, "falls back") != NULL)
		(*(int *)arg)++;
}

/* tmpfs has no FALLOC_FL_ZERO_RANGE: write zeroes must fall back. */
static void test_write_zeroes_fallback(void **state)
{
	int fallbacks = 0;
	struct vfurt_bdev_file_opts o = {
		.opts_size = sizeof(o), .block_size = 512,
		.log = { .fn = count_fallbacks, .arg = &fallbacks, .level = VFURT_LOG_DEBUG },
	};
	struct fx *f = *state;
	struct fx t = { .fd = -1 };
	struct statfs sfs;
	struct vfurt_bdev *b;
	struct vfurt_bdev_channel *ch;
	unsigned char blk[512];
	int i;

	(void)f;
	if (statfs("/dev/shm", &sfs) != 0 || sfs.f_type != 0x01021994 /* TMPFS_MAGIC */ ||
	    make_file(&t, "/dev/shm") != 0)
		test_skip("no tmpfs at /dev/shm to create a file on");
	memset(blk, 0x11, sizeof(blk));
	for (i = 0; i < 16; i++)
		assert_int_equal(pwrite(t.fd, blk, sizeof(blk), i * 512), 512);
	o.path = t.path;
	b = vfurt_bdev_file_create(&o);
	ch = vfurt_bdev_channel_create(b, 4);
	assert_non_null(ch);
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE_ZEROES, 2, 3, NULL, 0), 0);
	/* the first request found out, the second started with the working mode */
	print_message("write zeroes on tmpfs: %d fallback(s)\n", fallbacks);
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE_ZEROES, 9, 1, NULL, 0), 0);
	for (i = 0; i < 16; i++) {
		assert_int_equal(pread(t.fd, blk, 512, i * 512), 512);
		if ((i >= 2 && i < 5) || i == 9)
			assert_true(is_zero(blk, 512));
		else
			assert_int_equal(blk[0], 0x11);
	}
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
	close(t.fd);
	unlink(t.path);
}

static void test_direct(void **state)
{
	struct fx *f = *state;
	struct vfurt_bdev *b = open_bdev(f->path, 4096, VFURT_BDEV_DIRECT_ON, 0);
	struct vfurt_bdev_channel *ch;
	unsigned char *buf, chk[8192];
	struct iovec iov[2];
	struct done d = { 0 };

	if (b == NULL && errno == EINVAL)
		test_skip("O_DIRECT refused by the filesystem of %s", f->path);
	assert_non_null(b);
	assert_int_equal(vfurt_bdev_buf_align(b), 512);
	ch = vfurt_bdev_channel_create(b, 4);
	assert_non_null(ch);
	buf = aligned_alloc(4096, 16384);
	assert_non_null(buf);
	fill(buf, 8192, 5);
	iov[0] = (struct iovec){ buf, 4096 };
	iov[1] = (struct iovec){ buf + 8192, 4096 };
	memcpy(buf + 8192, buf + 4096, 4096);
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, 3, 2, iov, 2), 0);
	assert_int_equal(pread(f->fd, chk, 8192, 3 * 4096), 8192);
	assert_memory_equal(chk, buf, 8192);
	memset(buf, 0, 16384);
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, 3, 2, iov, 2), 0);
	assert_memory_equal(buf, chk, 4096);
	assert_memory_equal(buf + 8192, chk + 4096, 4096);
	/* misaligned buffers are refused up front */
	iov[0] = (struct iovec){ buf + 1, 4096 };
	assert_int_equal(submit(ch, &d, VFURT_BDEV_READ, 3, 1, iov, 1), -EINVAL);
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
	free(buf);
}

static void test_create_options(void **state)
{
	struct fx *f = *state;
	struct vfurt_bdev_file_opts o = { .opts_size = sizeof(o), .path = f->path, .block_size = 4096 };
	char path2[PATH_MAX + 8];
	struct vfurt_bdev *b;
	struct stat st;

	/* larger than the file without create */
	o.size_bytes = 2 * FILE_SIZE;
	assert_null(vfurt_bdev_file_create(&o));
	assert_int_equal(errno, EINVAL);
	/* extended when asked */
	o.create = 1;
	b = vfurt_bdev_file_create(&o);
	assert_non_null(b);
	assert_int_equal(vfurt_bdev_num_blocks(b), 2 * FILE_SIZE / 4096);
	assert_int_equal(fstat(f->fd, &st), 0);
	assert_int_equal(st.st_size, 2 * FILE_SIZE);
	vfurt_bdev_destroy(b);
	/* not a multiple of the block size */
	o.size_bytes = 4096 + 512;
	assert_null(vfurt_bdev_file_create(&o));
	/* bad block size, missing path */
	o.size_bytes = 0;
	o.block_size = 1000;
	assert_null(vfurt_bdev_file_create(&o));
	o.block_size = 0;
	o.path = NULL;
	assert_null(vfurt_bdev_file_create(&o));
	/* missing file, then created by the spec helper */
	snprintf(path2, sizeof(path2), "%s.new", f->path);
	o.path = path2;
	o.create = 0;
	assert_null(vfurt_bdev_file_create(&o));
	assert_int_equal(errno, ENOENT);
	{
		char spec[PATH_MAX + 16], err[256];
		struct vfurt_bdev_spec_opts so = { .opts_size = sizeof(so), .spec = spec,
						   .size_bytes = 65536, .block_size = 512 };

		snprintf(spec, sizeof(spec), "file:%s", path2);
		b = vfurt_bdev_spec_create(&so, err, sizeof(err));
		assert_non_null(b);
		assert_int_equal(vfurt_bdev_num_blocks(b), 128);
		vfurt_bdev_destroy(b);
		assert_int_equal(stat(path2, &st), 0);
		assert_int_equal(st.st_size, 65536);
		/* the same with O_DIRECT (TRY: opens on any
		 * file system; ON on ext4/xfs; tmpfs would refuse ON) */
		so.size_bytes = 0;
		so.direct = VFURT_BDEV_DIRECT_TRY;
		b = vfurt_bdev_spec_create(&so, err, sizeof(err));
		assert_non_null(b);
		assert_int_equal(vfurt_bdev_num_blocks(b), 128);
		vfurt_bdev_destroy(b);
		unlink(path2);
	}
	/* DIRECT_TRY always opens */
	o.path = f->path;
	o.direct = VFURT_BDEV_DIRECT_TRY;
	b = vfurt_bdev_file_create(&o);
	assert_non_null(b);
	assert_int_equal(vfurt_bdev_block_size(b), 512);
	vfurt_bdev_destroy(b);
}

/* The file shrinks behind the backend's back: reads past its end fail with -EIO. */
static void test_io_error(void **state)
{
	struct fx *f = *state;
	struct vfurt_bdev *b = open_bdev(f->path, 512, VFURT_BDEV_DIRECT_OFF, 0);
	struct vfurt_bdev_channel *ch = vfurt_bdev_channel_create(b, 4);
	unsigned char buf[4 * 512];
	struct iovec iov[2] = { { buf, 1024 }, { buf + 1024, 1024 } };
	struct vfurt_bdev_stats st = { .stats_size = sizeof(st) };

	assert_non_null(ch);
	fill(buf, sizeof(buf), 3);
	assert_int_equal(pwrite(f->fd, buf, sizeof(buf), 1000 * 512), (ssize_t)sizeof(buf));
	/* cut in the middle of the second iovec: the short read is continued, then EOF */
	assert_int_equal(ftruncate(f->fd, 1000 * 512 + 1536), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, 1000, 4, iov, 2), -EIO);
	/* wholly past the end */
	iov[1].iov_len = 512;
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, 1500, 1, iov + 1, 1), -EIO);
	/* within the file still fine */
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, 1000, 2, iov, 1), 0);
	vfurt_bdev_get_stats(b, &st);
	assert_int_equal(st.errors, 2);
	assert_int_equal(st.reads, 1);
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
}

static void test_destroy_inflight(void **state)
{
	struct fx *f = *state;
	struct vfurt_bdev *b = open_bdev(f->path, 4096, VFURT_BDEV_DIRECT_OFF, 0);
	static unsigned char buf[32][4096];
	struct iovec iov[32];
	struct done d[32];
	int round, i;

	for (round = 0; round < 2; round++) {
		struct vfurt_bdev_channel *ch = vfurt_bdev_channel_create(b, 32);
		int ok = 0, cancelled = 0;

		assert_non_null(ch);
		for (i = 0; i < 32; i++) {
			iov[i] = (struct iovec){ buf[i], 4096 };
			d[i] = (struct done){ 0 };
			assert_int_equal(submit(ch, &d[i], i % 2 ? VFURT_BDEV_READ : VFURT_BDEV_WRITE,
						(uint64_t)i, 1, &iov[i], 1), 0);
		}
		/* round 0: still batched in the SQ (never started, cancelled);
		 * round 1: handed to the kernel by a poll that reaped nothing yet */
		if (round == 1)
			(void)vfurt_bdev_channel_poll(ch, 1);
		vfurt_bdev_channel_destroy(ch);
		for (i = 0; i < 32; i++) {
			assert_int_equal(d[i].calls, 1);
			assert_true(d[i].status == 0 || d[i].status == -ECANCELED);
			ok += d[i].status == 0;
			cancelled += d[i].status == -ECANCELED;
		}
		print_message("destroy round %d: %d done, %d cancelled\n", round, ok, cancelled);
		if (round == 0)
			assert_int_equal(cancelled, 32);
	}
	vfurt_bdev_destroy(b);
}

struct worker {
	struct vfurt_bdev_channel *ch;
	uint64_t base;     /* first block of this thread's region */
	unsigned seed;
	int errors;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	enum { QD = 8, ROUNDS = 50 };
	static _Thread_local unsigned char wbuf[QD][4096], rbuf[QD][4096];
	struct iovec wv[QD], rv[QD];
	struct done d[QD];
	int r, i;

	for (r = 0; r < ROUNDS; r++) {
		int pending = QD;

		for (i = 0; i < QD; i++) {
			fill(wbuf[i], 4096, w->seed + (unsigned)(r * QD + i));
			wv[i] = (struct iovec){ wbuf[i], 4096 };
			d[i] = (struct done){ 0 };
			if (submit(w->ch, &d[i], VFURT_BDEV_WRITE, w->base + (uint64_t)i, 1, &wv[i], 1))
				w->errors++;
		}
		while (pending > 0)
			pending -= vfurt_bdev_channel_poll(w->ch, 0);
		for (i = 0; i < QD; i++) {
			w->errors += d[i].status != 0;
			rv[i] = (struct iovec){ rbuf[i], 4096 };
			d[i] = (struct done){ 0 };
			if (submit(w->ch, &d[i], VFURT_BDEV_READ, w->base + (uint64_t)i, 1, &rv[i], 1))
				w->errors++;
		}
		pending = QD;
		while (pending > 0)
			pending -= vfurt_bdev_channel_poll(w->ch, 0);
		for (i = 0; i < QD; i++)
			w->errors += d[i].status != 0 || memcmp(rbuf[i], wbuf[i], 4096) != 0;
	}
	return NULL;
}

static void test_two_threads(void **state)
{
	struct fx *f = *state;
	struct vfurt_bdev *b = open_bdev(f->path, 4096, VFURT_BDEV_DIRECT_OFF, 0);
	struct worker w[2] = { { .base = 0, .seed = 1 }, { .base = 100, .seed = 2 } };
	pthread_t t[2];
	struct vfurt_bdev_stats st = { .stats_size = sizeof(st) };
	int i;

	for (i = 0; i < 2; i++) {
		w[i].ch = vfurt_bdev_channel_create(b, 8);
		assert_non_null(w[i].ch);
	}
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].errors, 0);
		vfurt_bdev_channel_destroy(w[i].ch);
	}
	vfurt_bdev_get_stats(b, &st);
	assert_int_equal(st.writes, 2 * 50 * 8);
	assert_int_equal(st.reads, 2 * 50 * 8);
	assert_int_equal(st.bytes_written, 2ull * 50 * 8 * 4096);
	vfurt_bdev_destroy(b);
}

/* Resize: ftruncate to exactly the new size both ways; data below the end
 * kept, blocks a shrink cut read as zeroes once a grow brings them back. */
static void test_resize(void **state)
{
	struct fx *f = *state;
	struct vfurt_bdev *b = open_bdev(f->path, 512, VFURT_BDEV_DIRECT_OFF,
					 VFURT_BDEV_SYNC_FDATASYNC);
	const uint64_t nb = FILE_SIZE / 512;
	unsigned char w[512], r[512], z[512] = { 0 };
	struct iovec wv = { w, sizeof(w) }, rv = { r, sizeof(r) };
	struct vfurt_bdev_channel *ch;
	struct done d = { 0 };
	struct stat st;

	assert_non_null(b);
	ch = vfurt_bdev_channel_create(b, 4);
	assert_non_null(ch);
	fill(w, sizeof(w), 3);
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, nb - 1, 1, &wv, 1), 0);
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, 10, 1, &wv, 1), 0);

	assert_int_equal(vfurt_bdev_resize(b, 4 * nb), 0);
	assert_int_equal(fstat(f->fd, &st), 0);
	assert_int_equal(st.st_size, 4 * FILE_SIZE);
	assert_int_equal(vfurt_bdev_num_blocks(b), 4 * nb);
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, nb - 1, 1, &rv, 1), 0);
	assert_memory_equal(r, w, sizeof(r));
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, 4 * nb - 1, 1, &rv, 1), 0);
	assert_memory_equal(r, z, sizeof(r));
	assert_int_equal(run_io(ch, VFURT_BDEV_WRITE, 4 * nb - 1, 1, &wv, 1), 0);

	assert_int_equal(vfurt_bdev_resize(b, 100), 0);
	assert_int_equal(fstat(f->fd, &st), 0);
	assert_int_equal(st.st_size, 100 * 512);
	assert_int_equal(submit(ch, &d, VFURT_BDEV_READ, 100, 1, &rv, 1), -EINVAL);
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, 10, 1, &rv, 1), 0);
	assert_memory_equal(r, w, sizeof(r));
	assert_int_equal(vfurt_bdev_resize(b, nb), 0);
	assert_int_equal(run_io(ch, VFURT_BDEV_READ, nb - 1, 1, &rv, 1), 0);
	assert_memory_equal(r, z, sizeof(r));

	assert_int_equal(vfurt_bdev_resize(b, 0), -EINVAL);
	assert_int_equal(vfurt_bdev_resize(b, (uint64_t)INT64_MAX / 512 + 1), -EFBIG);
	assert_int_equal(vfurt_bdev_num_blocks(b), nb);
	vfurt_bdev_channel_destroy(ch);
	vfurt_bdev_destroy(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rw_sg, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deallocate_and_write_zeroes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_zeroes_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_direct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroy_inflight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resize, setup, teardown),
	};

	return test_run_group("unit: file bdev", tests, NULL, NULL);
}
