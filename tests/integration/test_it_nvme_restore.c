/* Integration tests of the live upgrade of NVMe: bdev save/restore, freeze and thaw, a controller and its client handed to another runtime. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/bdev.h>
#include <vfurt/engine.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>
#include <vfurt/state.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "devices/nvme/nvme_internal.h" /* the model's ops, called directly below */
#include "hostsim/nvme_host.h"

#define MIB (1u << 20)

/* ---- helpers -------------------------------------------------------------- */

static struct vfurt_bdev *ram(const char *name, uint32_t bs, uint64_t size, uint32_t flags)
{
	struct vfurt_bdev_ram_opts o = { .opts_size = sizeof(o), .name = name, .block_size = bs,
					 .size_bytes = size, .flags = flags };
	struct vfurt_bdev *b = vfurt_bdev_ram_create(&o);

	assert_non_null(b);
	return b;
}

struct sync_io {
	bool done;
	int status;
};

static void sync_cb(void *arg, int status)
{
	struct sync_io *s = arg;

	s->done = true;
	s->status = status;
}

/* One request on a channel of its own, polled to completion. */
static int bdev_do(struct vfurt_bdev *b, enum vfurt_bdev_op op, uint64_t off, uint32_t n,
		   void *buf)
{
	struct vfurt_bdev_channel *ch = vfurt_bdev_channel_create(b, 4);
	struct iovec iov = { .iov_base = buf, .iov_len = (size_t)n * vfurt_bdev_block_size(b) };
	struct sync_io s = { 0 };
	struct vfurt_bdev_io io = { .op = op, .offset_blocks = off, .num_blocks = n,
				    .iov = buf ? &iov : NULL, .iovcnt = buf ? 1 : 0,
				    .cb = sync_cb, .cb_arg = &s };
	int rc;

	assert_non_null(ch);
	rc = vfurt_bdev_submit(ch, &io);
	while (rc == 0 && !s.done)
		vfurt_bdev_channel_poll(ch, 0);
	vfurt_bdev_channel_destroy(ch);
	return rc ? rc : s.status;
}

static uint64_t rss_shmem_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long v = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssShmem: %llu kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

struct sender {
	struct vfurt_state *s;
	int fd;
	int rc;
};

static void *send_main(void *arg)
{
	struct sender *x = arg;

	x->rc = vfurt_state_send(x->s, x->fd, 5000);
	return NULL;
}

/* The image as the next process gets it: sent over a SOCK_SEQPACKET
 * socketpair, fds and all (by a thread: a large image fills the socket).
 * Destroys s. */
static struct vfurt_state *hand_over(struct vfurt_state *s)
{
	struct vfurt_state *out = NULL;
	struct sender x = { .s = s };
	char err[128];
	pthread_t t;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	x.fd = sv[0];
	assert_int_equal(pthread_create(&t, NULL, send_main, &x), 0);
	assert_int_equal(vfurt_state_recv(sv[1], 5000, 0, &out, err, sizeof(err)), 0);
	pthread_join(t, NULL);
	assert_int_equal(x.rc, 0);
	close(sv[0]);
	close(sv[1]);
	vfurt_state_destroy(s);
	return out;
}

/* An image of bdev b alone, in section 1, handed over; *sub its section. */
static struct vfurt_state *bdev_image(struct vfurt_bdev *b, struct vfurt_state_cur *sub)
{
	struct vfurt_state *s = vfurt_state_create();
	struct vfurt_state_cur root;

	assert_non_null(s);
	assert_int_equal(vfurt_state_open(s, 1), 0);
	assert_int_equal(vfurt_bdev_save(b, s), 0);
	assert_int_equal(vfurt_state_close(s), 0);
	s = hand_over(s);
	assert_int_equal(vfurt_state_root(s, &root), 0);
	assert_int_equal(vfurt_state_sub(&root, 1, sub), 0);
	return s;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- (a) bdev save and restore ----------------------------------------------- */

/*
 * The ram backend's memory survives: a bdev created lazily from the same
 * geometry (and not populated: the restore path must not touch memory it
 * is about to free) maps the saved one's memfd. Deallocated blocks still
 * read as zeroes, written ones can be zeroed again (the cold bitmap came
 * along, or errs on the side of resident), a later resize keeps the data,
 * and the statistics carry on.
 */
static void test_ram_save_restore_keeps_data(void **state)
{
	const size_t size = 8 * MIB, bs = 4096;
	uint8_t *buf = malloc(size);
	struct vfurt_bdev *a, *b, *c, *n;
	struct vfurt_bdev_stats sa = { .stats_size = sizeof(sa) }, sb = { .stats_size = sizeof(sb) };
	struct vfurt_state_cur sub;
	struct vfurt_state *img;
	uint64_t rss0;

	(void)state;
	assert_non_null(buf);
	a = ram("a", (uint32_t)bs, size, 0);
	it_fill(buf, size, 11);
	assert_int_equal(bdev_do(a, VFURT_BDEV_WRITE, 0, (uint32_t)(size / bs), buf), 0);
	assert_int_equal(bdev_do(a, VFURT_BDEV_DEALLOCATE, (2 * MIB) / bs, (uint32_t)(2 * MIB / bs),
				 NULL), 0);
	assert_int_equal(vfurt_bdev_get_stats(a, &sa), 0);
	img = bdev_image(a, &sub);

	/* a lazy bdev of 64 MiB populates nothing (8 MiB fit in the noise) */
	rss0 = rss_shmem_kb();
	c = ram("lazy", (uint32_t)bs, 64 * MIB, VFURT_BDEV_LAZY);
	assert_true(rss_shmem_kb() - rss0 < 4096);
	/* another geometry is refused, and the image stays usable */
	assert_int_equal(vfurt_bdev_restore(c, &sub), -EINVAL);
	vfurt_bdev_destroy(c);
	/* a backend without restore cannot take a backend section */
	n = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
		.opts_size = sizeof(struct vfurt_bdev_null_opts), .block_size = (uint32_t)bs,
		.size_bytes = size });
	assert_non_null(n);
	assert_int_equal(vfurt_bdev_restore(n, &sub), -ENOTSUP);
	vfurt_bdev_destroy(n);

	b = ram("b", (uint32_t)bs, size, VFURT_BDEV_LAZY);
	assert_int_equal(vfurt_bdev_restore(b, &sub), 0);
	vfurt_state_destroy(img);
	memset(buf, 0xee, size);
	assert_int_equal(bdev_do(b, VFURT_BDEV_READ, 0, (uint32_t)(size / bs), buf), 0);
	assert_true(it_check(buf, 2 * MIB, 11));
	assert_true(all_zero(buf + 2 * MIB, 2 * MIB));
	{
		uint8_t *want = malloc(size);

		assert_non_null(want);
		it_fill(want, size, 11);
		assert_memory_equal(buf + 4 * MIB, want + 4 * MIB, 4 * MIB);
		free(want);
	}
	assert_int_equal(vfurt_bdev_get_stats(b, &sb), 0);
	assert_int_equal(sb.writes, sa.writes);
	assert_int_equal(sb.deallocates, sa.deallocates);
	assert_int_equal(sb.reads, 1); /* ours, just now */

	/* the same memory: what b writes, a reads */
	it_fill(buf, bs, 12);
	assert_int_equal(bdev_do(b, VFURT_BDEV_WRITE, 0, 1, buf), 0);
	memset(buf, 0, bs);
	assert_int_equal(bdev_do(a, VFURT_BDEV_READ, 0, 1, buf), 0);
	assert_true(it_check(buf, bs, 12));
	vfurt_bdev_destroy(a);

	/* Write Zeroes over written blocks zeroes them */
	assert_int_equal(bdev_do(b, VFURT_BDEV_WRITE_ZEROES, 0, (uint32_t)(MIB / bs), NULL), 0);
	assert_int_equal(bdev_do(b, VFURT_BDEV_READ, 0, (uint32_t)(MIB / bs), buf), 0);
	assert_true(all_zero(buf, MIB));

	/* grown on the adopted memfd: the data stays, the new blocks read zero */
	assert_int_equal(vfurt_bdev_resize(b, 2 * size / bs), 0);
	assert_int_equal(bdev_do(b, VFURT_BDEV_READ, (6 * MIB) / bs, (uint32_t)(4 * MIB / bs), buf),
			 0);
	{
		uint8_t *want = malloc(size);

		assert_non_null(want);
		it_fill(want, size, 11);
		assert_memory_equal(buf, want + 6 * MIB, 2 * MIB);
		free(want);
	}
	assert_true(all_zero(buf + 2 * MIB, 2 * MIB));
	vfurt_bdev_destroy(b);
	free(buf);
}

/* A taken fd cannot be restored twice, and a failed restore leaves the
 * fresh bdev working. */
static void test_ram_restore_failure_leaves_bdev(void **state)
{
	struct vfurt_bdev *a = ram("a", 512, MIB, 0), *b = ram("b", 512, MIB, 0),
			  *c = ram("c", 512, MIB, 0);
	struct vfurt_state_cur sub;
	struct vfurt_state *img;
	uint8_t blk[512];

	(void)state;
	memset(blk, 0x5a, sizeof(blk));
	assert_int_equal(bdev_do(a, VFURT_BDEV_WRITE, 3, 1, blk), 0);
	img = bdev_image(a, &sub);
	assert_int_equal(vfurt_bdev_restore(b, &sub), 0);
	assert_int_not_equal(vfurt_bdev_restore(c, &sub), 0); /* the memfd is b's now */
	memset(blk, 0, sizeof(blk));
	assert_int_equal(bdev_do(c, VFURT_BDEV_READ, 3, 1, blk), 0);
	assert_true(all_zero(blk, sizeof(blk)));
	memset(blk, 0x33, sizeof(blk));
	assert_int_equal(bdev_do(c, VFURT_BDEV_WRITE, 3, 1, blk), 0);
	assert_int_equal(bdev_do(b, VFURT_BDEV_READ, 3, 1, blk), 0);
	assert_int_equal(blk[0], 0x5a);
	vfurt_state_destroy(img);
	vfurt_bdev_destroy(a);
	vfurt_bdev_destroy(b);
	vfurt_bdev_destroy(c);
}

/* The file backend reopens its path: restore checks it is the same file. */
static void test_file_restore_checks_file(void **state)
{
	char p1[64], p2[64];
	struct vfurt_bdev_file_opts fo = { .opts_size = sizeof(fo), .block_size = 4096,
					   .size_bytes = MIB, .create = 1 };
	struct vfurt_bdev *a, *b, *c;
	struct vfurt_state_cur sub;
	struct vfurt_state *img;

	(void)state;
	snprintf(p1, sizeof(p1), "/tmp/vfurt-restore-%d-1.img", (int)getpid());
	snprintf(p2, sizeof(p2), "/tmp/vfurt-restore-%d-2.img", (int)getpid());
	fo.path = p1;
	a = vfurt_bdev_file_create(&fo);
	b = vfurt_bdev_file_create(&fo);
	fo.path = p2;
	c = vfurt_bdev_file_create(&fo);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	img = bdev_image(a, &sub);
	assert_int_equal(vfurt_bdev_restore(b, &sub), 0);
	assert_int_equal(vfurt_bdev_restore(c, &sub), -EINVAL);
	vfurt_state_destroy(img);
	vfurt_bdev_destroy(a);
	vfurt_bdev_destroy(b);
	vfurt_bdev_destroy(c);
	unlink(p1);
	unlink(p2);
}

/* ---- (b) freeze and thaw ------------------------------------------------------ */

/*
 * A backend that holds every request until the test opens its gate: I/O
 * stays in flight for as long as the test wants. Touches no buffer.
 */
struct gate {
	atomic_bool open;
	atomic_uint queued;
	atomic_uint submitted;
};

struct gate_chan {
	struct gate *g;
	uint32_t n;
	struct vfurt_bdev_req *reqs[];
};

static int gate_chan_create(void *ctx, uint32_t qd, void **chan_ctx)
{
	struct gate_chan *gc = calloc(1, sizeof(*gc) + qd * sizeof(gc->reqs[0]));

	if (!gc)
		return -ENOMEM;
	gc->g = ctx;
	*chan_ctx = gc;
	return 0;
}

static void gate_finish(struct gate_chan *gc, int status)
{
	atomic_fetch_sub(&gc->g->queued, gc->n);
	for (uint32_t i = 0; i < gc->n; i++)
		vfurt_bdev_req_complete(gc->reqs[i], status);
	gc->n = 0;
}

static void gate_chan_destroy(void *ctx, void *chan_ctx)
{
	(void)ctx;
	gate_finish(chan_ctx, -ECANCELED);
	free(chan_ctx);
}

static int gate_submit(void *chan_ctx, struct vfurt_bdev_req *req, const struct vfurt_bdev_io *io)
{
	struct gate_chan *gc = chan_ctx;

	(void)io;
	gc->reqs[gc->n++] = req;
	atomic_fetch_add(&gc->g->queued, 1);
	atomic_fetch_add(&gc->g->submitted, 1);
	return 0;
}

static int gate_poll(void *chan_ctx, int max)
{
	struct gate_chan *gc = chan_ctx;
	int n = (int)gc->n;

	(void)max;
	if (!atomic_load(&gc->g->open))
		return 0;
	gate_finish(gc, 0);
	return n;
}

/* The gate of the current test: it outlives the test's function, since the
 * fixture's teardown destroys the controller (cancelling what is held). */
static struct gate the_gate;

static struct gate *gate_new(void)
{
	atomic_store(&the_gate.open, false);
	atomic_store(&the_gate.queued, 0);
	atomic_store(&the_gate.submitted, 0);
	return &the_gate;
}

static struct vfurt_bdev *gate_bdev(struct gate *g)
{
	static const struct vfurt_bdev_ops ops = {
		.ops_size = sizeof(ops),
		.channel_create = gate_chan_create,
		.channel_destroy = gate_chan_destroy,
		.submit = gate_submit,
		.poll = gate_poll,
	};
	struct vfurt_bdev_opts o = { .opts_size = sizeof(o), .name = "gate", .block_size = 512,
				     .num_blocks = 16384 };
	struct vfurt_bdev *b = vfurt_bdev_create(&o, &ops, g);

	assert_non_null(b);
	return b;
}

struct dev_call {
	struct vfurt_dev *dev;
	int rc;
};

static void freeze_fn(void *arg)
{
	struct dev_call *a = arg;

	a->rc = vfurt_dev_freeze(a->dev);
}

static void thaw_fn(void *arg)
{
	struct dev_call *a = arg;

	vfurt_dev_thaw(a->dev);
}

/* vfurt_dev_freeze / thaw on the serving thread. */
static int freeze(struct nvme_fx *f, struct vfurt_dev *dev)
{
	struct dev_call a = { .dev = dev };

	testsrv_call(f->ts, freeze_fn, &a);
	return a.rc;
}

static void thaw(struct nvme_fx *f, struct vfurt_dev *dev)
{
	struct dev_call a = { .dev = dev };

	testsrv_call(f->ts, thaw_fn, &a);
}

/* freeze until it answers something else than -EBUSY, for up to 2 s. */
static int freeze_settle(struct nvme_fx *f, struct vfurt_dev *dev)
{
	int rc = -EBUSY;

	for (int i = 0; i < 2000 && rc == -EBUSY; i++) {
		rc = freeze(f, dev);
		if (rc == -EBUSY)
			usleep(1000);
	}
	return rc;
}

static void wait_queued(struct gate *g, unsigned want)
{
	for (int i = 0; i < 2000 && atomic_load(&g->queued) < want; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&g->queued), want);
}

static struct vfurt_dev *serve_gate(struct nvme_fx *f, struct gate *g)
{
	struct vfurt_dev *dev = nvme_fx_ctrl("nvme0", gate_bdev(g), NULL);

	nvme_fx_serve(f, &dev, 1, NULL, 0);
	f->h = nvme_fx_host_io(f, 0, NULL, true);
	return dev;
}

static int submit_write(struct nvme_host *h, uint64_t slba, uint16_t *cid)
{
	struct nh_io io = { .opc = NH_CMD_WRITE, .nsid = 1, .slba = slba, .nlb = 1,
			    .buf = nh_alloc(h, NH_PAGE), .len = 512 };

	assert_non_null(io.buf);
	return nh_io_submit(h, 1, &io, cid);
}

/*
 * freeze answers -EBUSY while a command is in flight, 0 once it completed
 * (its completion is posted while freezing; an outstanding AER does not
 * count), and then nothing new starts on any queue, I/O or admin, until
 * thaw, after which both run.
 */
static void test_freeze_waits_for_inflight(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	struct gate *g = gate_new();
	struct vfurt_dev *dev = serve_gate(f, g);
	struct nh_sqe id = { .cdw0 = NH_ADM_IDENTIFY, .cdw10 = NH_CNS_CTRL };
	uint16_t aer, cid, cid2, idcid;
	uint8_t *idbuf;

	assert_int_equal(nh_aer_submit(f->h, &aer), 0);
	assert_int_equal(submit_write(f->h, 1, &cid), 0);
	wait_queued(g, 1);
	assert_int_equal(freeze(f, dev), -EBUSY);
	assert_int_equal(freeze(f, dev), -EBUSY);
	assert_int_equal(nh_wait(f->h, 1, cid, NULL, 50), -ETIMEDOUT);
	atomic_store(&g->open, true);
	assert_int_equal(freeze_settle(f, dev), 0);
	assert_int_equal(nh_wait(f->h, 1, cid, NULL, 1000), 0);

	/* frozen: an I/O command and an admin command wait */
	assert_int_equal(submit_write(f->h, 2, &cid2), 0);
	idbuf = nh_alloc(f->h, NH_PAGE);
	assert_non_null(idbuf);
	id.prp1 = nh_iova(f->h, idbuf);
	assert_int_equal(nh_submit(f->h, 0, &id, &idcid), 0);
	usleep(50000);
	assert_int_equal(nh_wait(f->h, 1, cid2, NULL, 50), -ETIMEDOUT);
	assert_int_equal(nh_wait(f->h, 0, idcid, NULL, 50), -ETIMEDOUT);
	assert_int_equal(atomic_load(&g->submitted), 1);
	assert_int_equal(freeze(f, dev), 0); /* again: still nothing in flight */

	thaw(f, dev);
	assert_int_equal(nh_wait(f->h, 1, cid2, NULL, 2000), 0);
	assert_int_equal(nh_wait(f->h, 0, idcid, NULL, 2000), 0);
	assert_memory_equal(idbuf + 4, NFX_SERIAL, strlen(NFX_SERIAL));
	assert_true(nh_outstanding(f->h, 0, aer));
	assert_int_equal(atomic_load(&g->submitted), 2);
	assert_int_equal(nh_write(f->h, 1, 1, 3, 1, nh_alloc(f->h, NH_PAGE), 512, NULL), 0);
}

/* An upgrade that timed out thaws a controller whose freeze never answered
 * 0: the command in flight completes, new ones run. */
static void test_thaw_after_busy_freeze(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	struct gate *g = gate_new();
	struct vfurt_dev *dev = serve_gate(f, g);
	uint16_t cid;

	assert_int_equal(submit_write(f->h, 1, &cid), 0);
	wait_queued(g, 1);
	assert_int_equal(freeze(f, dev), -EBUSY);
	thaw(f, dev);
	atomic_store(&g->open, true);
	assert_int_equal(nh_wait(f->h, 1, cid, NULL, 2000), 0);
	assert_int_equal(nh_write(f->h, 1, 1, 3, 1, nh_alloc(f->h, NH_PAGE), 512, NULL), 0);
	assert_int_equal(nh_create_io_pair(f->h, 2, NFX_QENT, 2), 0);
	assert_int_equal(nh_write(f->h, 2, 1, 4, 1, nh_alloc(f->h, NH_PAGE), 512, NULL), 0);
}

static void *open_later(void *arg)
{
	usleep(100000);
	atomic_store(&((struct gate *)arg)->open, true);
	return NULL;
}

/*
 * A DMA map while a freeze waits for I/O (the client is still served):
 * the quiesce before it finishes the I/O in flight, as it does unfrozen,
 * although the queues were paused already; the map's reply comes after
 * the command's completion.
 */
static void test_quiesce_while_freezing_drains(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	struct gate *g = gate_new();
	struct vfurt_dev *dev = serve_gate(f, g);
	int mfd = it_memfd(MIB);
	pthread_t t;
	uint16_t cid;

	assert_true(mfd >= 0);
	assert_int_equal(submit_write(f->h, 1, &cid), 0);
	wait_queued(g, 1);
	assert_int_equal(freeze(f, dev), -EBUSY);
	assert_int_equal(pthread_create(&t, NULL, open_later, g), 0);
	assert_int_equal(vfurt_client_dma_map(nh_client(f->h), 1ull << 40, MIB, mfd, 0,
					      VFIO_USER_DMA_MAP_FLAG_READ |
						      VFIO_USER_DMA_MAP_FLAG_WRITE,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_int_equal(nh_wait(f->h, 1, cid, NULL, 0), 0);
	pthread_join(t, NULL);
	close(mfd);
	assert_int_equal(freeze_settle(f, dev), 0);
	thaw(f, dev);
	assert_int_equal(nh_write(f->h, 1, 1, 3, 1, nh_alloc(f->h, NH_PAGE), 512, NULL), 0);
}

/* ---- (c) a controller and its client handed to another runtime ---------------- */

#define QD 32u
#define IO_BYTES 4096u

struct variant {
	const char *name;
	bool ioeventfd; /* controller traps doorbells; host: shadow doorbells + ioeventfd */
	bool irq_wait;  /* host sleeps on MSI-X eventfds */
};

/* The test controller (nvme_fx_ctrl's) with v's doorbells; ns[] gets its
 * two RAM namespaces. */
static struct vfurt_dev *upgrade_ctrl(const struct variant *v, bool lazy,
				      struct vfurt_bdev **ns)
{
	uint32_t fl = lazy ? VFURT_BDEV_LAZY : 0;

	struct vfurt_nvme_opts o = {
		.opts_size = sizeof(o),
		.name = "nvme0",
		.log = it_dev_log("nvme0"),
		.serial = NFX_SERIAL,
		.model = NFX_MODEL,
		.max_io_queues = NFX_MAX_IOQ,
		.max_queue_entries = 1024,
		.ns = ns,
		.nr_ns = 2,
		.own_bdevs = true,
		.ioeventfd = v->ioeventfd,
	};
	struct vfurt_dev *dev;

	ns[0] = ram("ns1", NFX_NS1_BS, NFX_NS1_SIZE, fl);
	ns[1] = ram("ns2", NFX_NS2_BS, NFX_NS2_SIZE, fl);
	dev = vfurt_nvme_create(&o);
	assert_non_null(dev);
	return dev;
}

static uint64_t bdev_writes(struct vfurt_bdev *b)
{
	struct vfurt_bdev_stats st = { .stats_size = sizeof(st) };

	assert_int_equal(vfurt_bdev_get_stats(b, &st), 0);
	return st.writes;
}

/* QD writes of IO_BYTES at distinct places of nsid (pattern seed0 + i),
 * submitted on sqid, not waited for. */
static void submit_writes(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint32_t bs,
			  uint32_t seed0, uint8_t **bufs, uint16_t *cids)
{
	for (uint32_t i = 0; i < QD; i++) {
		struct nh_io io = { .opc = NH_CMD_WRITE, .nsid = nsid,
				    .slba = (uint64_t)i * 3 * IO_BYTES / bs, .nlb = IO_BYTES / bs,
				    .buf = bufs[i], .len = IO_BYTES };

		it_fill(bufs[i], IO_BYTES, seed0 + i);
		assert_int_equal(nh_io_submit(h, sqid, &io, &cids[i]), 0);
	}
}

static void wait_all(struct nvme_host *h, uint16_t sqid, const uint16_t *cids)
{
	for (uint32_t i = 0; i < QD; i++)
		assert_int_equal(nh_wait(h, sqid, cids[i], NULL, -1), 0);
}

/* QD reads of what submit_writes(seed0) wrote, at once, each checked. */
static void verify_qd(struct nvme_host *h, uint16_t sqid, uint32_t nsid, uint32_t bs,
		      uint32_t seed0, uint8_t **bufs)
{
	uint16_t cids[QD];

	for (uint32_t i = 0; i < QD; i++) {
		struct nh_io io = { .opc = NH_CMD_READ, .nsid = nsid,
				    .slba = (uint64_t)i * 3 * IO_BYTES / bs, .nlb = IO_BYTES / bs,
				    .buf = bufs[i], .len = IO_BYTES };

		memset(bufs[i], 0, IO_BYTES);
		assert_int_equal(nh_io_submit(h, sqid, &io, &cids[i]), 0);
	}
	wait_all(h, sqid, cids);
	for (uint32_t i = 0; i < QD; i++)
		if (!it_check(bufs[i], IO_BYTES, seed0 + i))
			fail_msg("ns %u block %u: data differ", nsid, i);
}

static void upgrade(const struct variant *v, struct nvme_fx *f)
{
	/* generous: the runtimes busy-poll two CPUs that other tests share */
	struct nvme_host_opts ho = { .doorbell_ioeventfd = v->ioeventfd, .irq_wait = v->irq_wait,
				     .timeout_ms = 30000 };
	struct vfurt_bdev *ns_a[2], *ns_b[2];
	struct vfurt_dev *a = upgrade_ctrl(v, false, ns_a), *b;
	uint64_t a_writes;
	struct vfurt_runtime_opts ro = { .opts_size = sizeof(ro), .cores = it_cores(),
					 .poll_mode = VFURT_POLL_ADAPTIVE };
	struct vfurt_runtime *rt_b;
	struct vfurt_state_cur root, sub;
	struct vfurt_state *s;
	uint8_t *bufs[QD], *bufs2[QD], *id0, *id1, *ns0, *ns1;
	uint16_t cids[QD], cids2[QD], aer;
	uint32_t csts = 0;
	char err[256];

	nvme_fx_serve(f, &a, 1, it_cores(), VFURT_POLL_ADAPTIVE);
	f->h = nvme_fx_host(f, 0, &ho);
	assert_int_equal(nh_set_num_queues(f->h, NFX_MAX_IOQ, NFX_MAX_IOQ, NULL), 0);
	if (v->ioeventfd)
		assert_int_equal(nh_dbbuf_enable(f->h), 0);
	assert_int_equal(nh_create_io_pair(f->h, 1, NFX_QENT, 1), 0);
	assert_int_equal(nh_create_io_pair(f->h, 2, NFX_QENT, 2), 0);
	assert_int_equal(nh_aer_submit(f->h, &aer), 0);
	for (uint32_t i = 0; i < QD; i++) {
		bufs[i] = nh_alloc(f->h, IO_BYTES);
		bufs2[i] = nh_alloc(f->h, IO_BYTES);
		assert_non_null(bufs[i]);
		assert_non_null(bufs2[i]);
	}
	id0 = nh_alloc(f->h, NH_PAGE);
	id1 = nh_alloc(f->h, NH_PAGE);
	ns0 = nh_alloc(f->h, NH_PAGE);
	ns1 = nh_alloc(f->h, NH_PAGE);
	assert_int_equal(nh_identify(f->h, NH_CNS_CTRL, 0, id0), 0);
	assert_int_equal(nh_identify(f->h, NH_CNS_NS, 1, ns0), 0);

	/* verified QD32 I/O on A */
	submit_writes(f->h, 1, 1, NFX_NS1_BS, 100, bufs, cids);
	wait_all(f->h, 1, cids);
	verify_qd(f->h, 1, 1, NFX_NS1_BS, 100, bufs);

	/* QD32 in flight on both queues while A freezes: their completions are
	 * posted by A on the way, reaped below from B's side */
	submit_writes(f->h, 1, 1, NFX_NS1_BS, 200, bufs, cids);
	submit_writes(f->h, 2, 2, NFX_NS2_BS, 300, bufs2, cids2);
	assert_int_equal(vfurt_runtime_freeze(testsrv_runtime(f->ts), 10000, err, sizeof(err)), 0);
	s = vfurt_state_create();
	assert_non_null(s);
	assert_int_equal(vfurt_state_open(s, 1), 0);
	assert_int_equal(vfurt_runtime_save_device(testsrv_runtime(f->ts), a, s), 0);
	assert_int_equal(vfurt_state_close(s), 0);
	s = hand_over(s);
	a_writes = bdev_writes(ns_a[0]) + bdev_writes(ns_a[1]);

	/* B: the same configuration, its RAM not populated, restored */
	b = upgrade_ctrl(v, true, ns_b);
	rt_b = vfurt_runtime_create(&ro, err, sizeof(err));
	assert_non_null(rt_b);
	assert_int_equal(vfurt_state_root(s, &root), 0);
	assert_int_equal(vfurt_state_sub(&root, 1, &sub), 0);
	if (vfurt_runtime_restore_device(rt_b, b, &sub, err, sizeof(err)))
		fail_msg("restore: %s", err);
	vfurt_state_destroy(s);
	assert_int_equal(vfurt_runtime_start(rt_b), 0);
	vfurt_runtime_thaw(rt_b); /* restored devices wait for it */
	/* A stays frozen: it serves nothing and touches nothing shared */

	wait_all(f->h, 1, cids);
	wait_all(f->h, 2, cids2);
	verify_qd(f->h, 1, 1, NFX_NS1_BS, 200, bufs);
	verify_qd(f->h, 2, 2, NFX_NS2_BS, 300, bufs2);
	/* and more, on B alone, both queues at once (each namespace, and each
	 * buffer, on one queue: TSan cannot see the host order accesses from
	 * different workers through guest memory) */
	submit_writes(f->h, 1, 1, NFX_NS1_BS, 400, bufs, cids);
	submit_writes(f->h, 2, 2, NFX_NS2_BS, 500, bufs2, cids2);
	wait_all(f->h, 1, cids);
	wait_all(f->h, 2, cids2);
	verify_qd(f->h, 1, 1, NFX_NS1_BS, 400, bufs);
	verify_qd(f->h, 2, 2, NFX_NS2_BS, 500, bufs2);

	/* the guest sees the same controller: registers by message, identify,
	 * the namespace's identifiers, its AER still outstanding */
	assert_int_equal(nh_reg_read32(f->h, NH_REG_CSTS, &csts), 0);
	assert_int_equal(csts & (NH_CSTS_RDY | NH_CSTS_CFS), NH_CSTS_RDY);
	assert_int_equal(nh_identify(f->h, NH_CNS_CTRL, 0, id1), 0);
	assert_memory_equal(id0, id1, NH_PAGE);
	assert_int_equal(nh_identify(f->h, NH_CNS_NS, 1, ns1), 0);
	assert_memory_equal(ns0, ns1, NH_PAGE);
	assert_true(nh_outstanding(f->h, 0, aer));
	/* queue management goes on */
	assert_int_equal(nh_create_io_pair(f->h, 3, NFX_QENT, 3), 0);
	assert_int_equal(nh_write_read_check(f->h, 3, 1, 1000, NFX_NS1_BS, 77, NULL, NULL), 0);
	assert_int_equal(nh_delete_sq(f->h, 2), 0);
	assert_int_equal(nh_delete_cq(f->h, 2), 0);
	assert_int_equal(nh_write_read_check(f->h, 1, 1, 1001, NFX_NS1_BS, 78, NULL, NULL), 0);
	/* all of that was B's work: A's namespaces did nothing after the save,
	 * B's counters went on from A's */
	assert_int_equal(bdev_writes(ns_a[0]) + bdev_writes(ns_a[1]), a_writes);
	assert_true(bdev_writes(ns_b[0]) + bdev_writes(ns_b[1]) >= a_writes + 2 * QD + 2);

	nh_close(f->h);
	f->h = NULL;
	vfurt_runtime_destroy(rt_b);
	/* the fixture's teardown destroys A, still frozen */
}

/* ---- (d) restore refuses what does not fit ------------------------------------ */

/* A controller like the fixture's on null namespaces (the image then holds
 * no fd but the doorbell page's). */
static struct vfurt_dev *null_ctrl(uint32_t max_ioq, uint64_t ns1_size)
{
	struct vfurt_bdev_null_opts no = { .opts_size = sizeof(no), .block_size = NFX_NS1_BS,
					   .size_bytes = ns1_size };
	struct vfurt_bdev *b[2];
	struct vfurt_nvme_opts o = {
		.opts_size = sizeof(o), .name = "nvme0", .log = it_dev_log("nvme0"),
		.serial = NFX_SERIAL, .max_io_queues = max_ioq, .max_queue_entries = 1024,
		.ns = b, .nr_ns = 2, .own_bdevs = true,
	};
	struct vfurt_dev *dev;

	b[0] = vfurt_bdev_null_create(&no);
	no.block_size = NFX_NS2_BS;
	no.size_bytes = NFX_NS2_SIZE;
	b[1] = vfurt_bdev_null_create(&no);
	assert_non_null(b[0]);
	assert_non_null(b[1]);
	dev = vfurt_nvme_create(&o);
	assert_non_null(dev);
	return dev;
}

struct save_call {
	struct vfurt_dev *dev;
	struct vfurt_state *s;
	int rc;
};

static void save_fn(void *arg)
{
	struct save_call *x = arg;

	x->rc = vfurt_state_open(x->s, 1);
	if (!x->rc)
		x->rc = vfr_nvme_save_op(x->dev, vfurt_dev_arg(x->dev), x->s);
	if (!x->rc)
		x->rc = vfurt_state_close(x->s);
}

/*
 * Copy the records of `from` into s, skipping fd records (the doorbell
 * page: the fresh controller keeps its own), and XOR `mask` into byte
 * `byte` of leaf record number *k (counting down; -1: none).
 */
static void copy_mutated(struct vfurt_state *s, struct vfurt_state_cur from, int *k, size_t byte,
			 uint8_t mask, bool top)
{
	const void *v;
	size_t len;
	uint32_t tag;
	int rc;

	for (;;) {
		struct vfurt_state_cur peek = from, sub;

		rc = vfurt_state_next(&from, &tag, &v, &len);
		if (rc != 1)
			break;
		if (tag & VFURT_STATE_SECTION) {
			assert_int_equal(vfurt_state_next_sub(&peek, &tag, &sub), 1);
			assert_int_equal(vfurt_state_open(s, tag & ~VFURT_STATE_SECTION), 0);
			copy_mutated(s, sub, k, byte, mask, false);
			assert_int_equal(vfurt_state_close(s), 0);
			continue;
		}
		if (top && (tag == 11 || tag == 12))
			continue; /* T_DB_FD, T_IOEV_FD (nvme_state.c) */
		if ((*k)-- == 0 && len) {
			uint8_t *m = malloc(len);

			assert_non_null(m);
			memcpy(m, v, len);
			m[byte % len] ^= mask;
			assert_int_equal(vfurt_state_put(s, tag, m, len), 0);
			free(m);
			continue;
		}
		assert_int_equal(vfurt_state_put(s, tag, v, len), 0);
	}
	assert_int_equal(rc, 0);
}

/* Restore into a fresh controller the saved model section with leaf record
 * k's byte `byte` flipped by mask; returns restore's answer. */
static int restore_mutated(struct vfurt_state_cur model, int k, size_t byte, uint8_t mask,
			   struct vfurt_dev *fresh)
{
	struct vfurt_state *s = vfurt_state_create();
	struct vfurt_state_cur root, sub;
	int rc;

	assert_non_null(s);
	assert_int_equal(vfurt_state_open(s, 1), 0);
	copy_mutated(s, model, &k, byte, mask, true);
	assert_int_equal(vfurt_state_close(s), 0);
	assert_int_equal(vfurt_state_root(s, &root), 0);
	assert_int_equal(vfurt_state_sub(&root, 1, &sub), 0);
	rc = vfr_nvme_restore_op(fresh, vfurt_dev_arg(fresh), &sub);
	vfurt_dev_destroy(fresh);
	vfurt_state_destroy(s);
	return rc;
}

/*
 * A controller in use (queues, AER, features) is saved; the image is then
 * restored into fresh controllers with one byte of one record changed at
 * a time: every answer is 0 or an error, never a crash, and what breaks an
 * invariant is refused. Another configuration is refused with -EINVAL.
 */
static void test_restore_checks_image(void **state)
{
	struct nvme_fx *f = nvme_fx_new(state);
	struct vfurt_dev *dev = null_ctrl(NFX_MAX_IOQ, NFX_NS1_SIZE);
	struct save_call x = { .dev = dev };
	struct vfurt_state_cur root, model;
	int nrec = 0, refused = 0, accepted = 0;
	uint16_t aer;

	nvme_fx_serve(f, &dev, 1, NULL, 0);
	f->h = nvme_fx_host_io(f, 0, NULL, true);
	assert_int_equal(nh_create_io_pair(f->h, 2, NFX_QENT, 2), 0);
	assert_int_equal(nh_create_sq(f->h, 3, 2, 16), 0);
	assert_int_equal(nh_aer_submit(f->h, &aer), 0);
	assert_int_equal(nh_set_features(f->h, 0x08, 0x0a03, NULL), 0); /* coalescing */
	assert_int_equal(nh_write(f->h, 1, 1, 9, 1, nh_alloc(f->h, NH_PAGE), 512, NULL), 0);
	assert_int_equal(freeze_settle(f, dev), 0);
	x.s = vfurt_state_create();
	assert_non_null(x.s);
	testsrv_call(f->ts, save_fn, &x);
	assert_int_equal(x.rc, 0);
	thaw(f, dev);
	assert_int_equal(vfurt_state_root(x.s, &root), 0);
	assert_int_equal(vfurt_state_sub(&root, 1, &model), 0);

	/* unchanged it fits; on other configurations it does not */
	assert_int_equal(restore_mutated(model, -1, 0, 0, null_ctrl(NFX_MAX_IOQ, NFX_NS1_SIZE)), 0);
	assert_int_equal(restore_mutated(model, -1, 0, 0, null_ctrl(NFX_MAX_IOQ, 2 * NFX_NS1_SIZE)),
			 -EINVAL);
	assert_int_equal(restore_mutated(model, -1, 0, 0, null_ctrl(4, NFX_NS1_SIZE)), -EINVAL);

	/* how many leaf records there are */
	{
		struct vfurt_state *s = vfurt_state_create();
		int k = 1 << 30;

		copy_mutated(s, model, &k, 0, 0, true);
		nrec = (1 << 30) - k;
		vfurt_state_destroy(s);
	}
	assert_true(nrec > 10);
	for (int k = 0; k < nrec; k++) {
		for (size_t byte = 0; byte < 64; byte += 3) {
			int rc = restore_mutated(model, k, byte, (uint8_t)(0x81u << (byte % 2)),
						 null_ctrl(NFX_MAX_IOQ, NFX_NS1_SIZE));

			if (rc == 0)
				accepted++;
			else if (rc == -EBADMSG || rc == -EINVAL)
				refused++;
			else
				fail_msg("record %d byte %zu: restore answered %d", k, byte, rc);
		}
	}
	print_message("%d records: %d changes refused, %d accepted\n", nrec, refused, accepted);
	/* counters and identifiers may take any value; queue geometry may not */
	assert_true(refused > 0);
	assert_true(accepted > 0);
	vfurt_state_destroy(x.s);
}

static const struct variant v_poll = { .name = "poll" };
static const struct variant v_irq = { .name = "irq", .irq_wait = true };
static const struct variant v_ioeventfd = { .name = "ioeventfd", .ioeventfd = true,
					    .irq_wait = true };

static void test_upgrade_poll(void **state)
{
	upgrade(&v_poll, nvme_fx_new(state));
}

static void test_upgrade_irq(void **state)
{
	upgrade(&v_irq, nvme_fx_new(state));
}

static void test_upgrade_ioeventfd(void **state)
{
	upgrade(&v_ioeventfd, nvme_fx_new(state));
}

static int teardown(void **state)
{
	return nvme_fx_teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ram_save_restore_keeps_data),
		cmocka_unit_test(test_ram_restore_failure_leaves_bdev),
		cmocka_unit_test(test_file_restore_checks_file),
		cmocka_unit_test_teardown(test_freeze_waits_for_inflight, teardown),
		cmocka_unit_test_teardown(test_thaw_after_busy_freeze, teardown),
		cmocka_unit_test_teardown(test_quiesce_while_freezing_drains, teardown),
		cmocka_unit_test_teardown(test_restore_checks_image, teardown),
		cmocka_unit_test_teardown(test_upgrade_poll, teardown),
		cmocka_unit_test_teardown(test_upgrade_irq, teardown),
		cmocka_unit_test_teardown(test_upgrade_ioeventfd, teardown),
	};

	nvme_fx_filters();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
