/* Test harness implementation: server thread and the test device model. */
#include <errno.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vfurt/pci.h>
#include <vfurt/runtime.h>

#include "common/testsrv.h"

struct testdev {
	struct vfurt_dev *dev;
	struct testsrv_devstate *unused;
	struct testdev_opts opts;
	struct testdev_stats *stats;
	uint8_t regs[0x1000];
	uint8_t scratch3[0x1000];
	uint8_t bar1[TD_BAR1_SIZE];
	uint8_t bar2[256];
	uint8_t devspec[4096];
	int memfd;
	uint8_t *mem; /* the memfd, mapped here too */
	int ioevfd;
	int ioevfd2;
	atomic_int quiesce_pending;
	_Atomic uint64_t q_iova;
	_Atomic uint64_t q_len;
	struct vfurt_queue *queues[8];
	struct vfurt_dma_op dma_op; /* the DMA doorbell's transfer in flight */
	bool dma_busy;
	struct testdev *next_live; /* registry of live test devices */
};

/* Test devices alive in this process, so the server thread can tell them
 * from other device models (whose arg it must not interpret). */
static pthread_mutex_t td_live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct testdev *td_live;

static void td_live_add(struct testdev *td)
{
	pthread_mutex_lock(&td_live_lock);
	td->next_live = td_live;
	td_live = td;
	pthread_mutex_unlock(&td_live_lock);
}

static void td_live_del(struct testdev *td)
{
	pthread_mutex_lock(&td_live_lock);
	for (struct testdev **p = &td_live; *p; p = &(*p)->next_live) {
		if (*p == td) {
			*p = td->next_live;
			break;
		}
	}
	pthread_mutex_unlock(&td_live_lock);
}

/* The testdev behind dev, or NULL for another kind of device. */
static struct testdev *td_live_find(struct vfurt_dev *dev)
{
	struct testdev *td;

	pthread_mutex_lock(&td_live_lock);
	for (td = td_live; td && td->dev != dev; td = td->next_live)
		;
	pthread_mutex_unlock(&td_live_lock);
	return td;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void dma_done(struct vfurt_dev *dev, void *arg, int status)
{
	struct testdev *td = arg;
	int32_t st = status;

	(void)dev;
	td->dma_busy = false;
	memcpy(&td->regs[TD_REG_DMA_STATUS], &st, sizeof(st));
}

/* The DMA doorbell: a transfer between BAR1 and guest memory, by message
 * where the client mapped no fd; STATUS reads TD_DMA_PENDING until done. */
static void run_dma(struct testdev *td, uint32_t op)
{
	uint64_t iova = rd64(&td->regs[TD_REG_DMA_IOVA]);
	uint64_t len = rd64(&td->regs[TD_REG_DMA_LEN]);
	int32_t status;

	if (td->dma_busy)
		status = -EBUSY; /* the previous one's result stays as it comes */
	else if (len > TD_BAR1_SIZE)
		status = -EINVAL;
	else if (op == 1)
		status = vfurt_dma_read_async(td->dev, iova, td->bar1, len, &td->dma_op, dma_done, td);
	else if (op == 2)
		status = vfurt_dma_write_async(td->dev, iova, td->bar1, len, &td->dma_op, dma_done,
					       td);
	else
		status = -EINVAL;
	if (status == -EBUSY && td->dma_busy)
		return;
	if (status == 0) {
		td->dma_busy = true;
		status = TD_DMA_PENDING;
	} else if (status == 1) {
		status = 0;
	}
	memcpy(&td->regs[TD_REG_DMA_STATUS], &status, sizeof(status));
}

static ssize_t bar0_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			   uint64_t off, bool is_write)
{
	struct testdev *td = arg;
	uint8_t *p;

	if (off >= TD_MMAP_OFF + TD_MMAP_SIZE)
		p = &td->scratch3[off - TD_MMAP_OFF - TD_MMAP_SIZE];
	else if (off >= TD_MMAP_OFF)
		p = &td->mem[off - TD_MMAP_OFF];
	else
		p = &td->regs[off];
	/* accesses never straddle the areas in these tests, but stay safe */
	if (off < TD_MMAP_OFF && off + count > TD_MMAP_OFF)
		return -EINVAL;
	if (!is_write) {
		memcpy(buf, p, count);
		return (ssize_t)count;
	}
	if (off == TD_REG_DMA_STATUS)
		return (ssize_t)count; /* read-only */
	memcpy(p, buf, count);
	if (off == TD_REG_Q_IOVA && count == 8)
		atomic_store(&td->q_iova, rd64(buf));
	else if (off == TD_REG_Q_LEN && count == 8)
		atomic_store(&td->q_len, rd64(buf));
	if (off == TD_REG_DMA_DOORBELL && count >= 4) {
		uint32_t op;

		memcpy(&op, buf, sizeof(op));
		run_dma(td, op);
	} else if (off == TD_REG_IRQ_DOORBELL && count >= 4) {
		uint32_t v;
		int32_t status;

		memcpy(&v, buf, sizeof(v));
		status = vfurt_irq_trigger(dev, v >> 16, v & 0xffff);
		memcpy(&td->regs[TD_REG_IRQ_STATUS], &status, sizeof(status));
	}
	return (ssize_t)count;
}

static ssize_t buf_access(uint8_t *mem, void *buf, size_t count, uint64_t off, bool is_write)
{
	if (is_write)
		memcpy(mem + off, buf, count);
	else
		memcpy(buf, mem + off, count);
	return (ssize_t)count;
}

static ssize_t bar1_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			   uint64_t off, bool is_write)
{
	return buf_access(((struct testdev *)arg)->bar1, buf, count, off, is_write);
}

static ssize_t bar2_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			   uint64_t off, bool is_write)
{
	return buf_access(((struct testdev *)arg)->bar2, buf, count, off, is_write);
}

static ssize_t devspec_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			      uint64_t off, bool is_write)
{
	return buf_access(((struct testdev *)arg)->devspec, buf, count, off, is_write);
}

static ssize_t bar4_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			   uint64_t off, bool is_write)
{
	if (!is_write)
		memset(buf, 0, count);
	return (ssize_t)count;
}

static int td_reset(struct vfurt_dev *dev, void *arg, enum vfurt_reset_reason why)
{
	struct testdev *td = arg;

	memset(td->regs, 0, sizeof(td->regs));
	atomic_fetch_add(&td->stats->reset, 1);
	return 0;
}

static int td_quiesce(struct vfurt_dev *dev, void *arg)
{
	struct testdev *td = arg;

	atomic_fetch_add(&td->stats->quiesce, 1);
	if (td->opts.async_quiesce) {
		atomic_store(&td->quiesce_pending, 1);
		return -EBUSY;
	}
	return 0;
}

static void td_dma_map(struct vfurt_dev *dev, void *arg, const struct vfurt_dma_region *r)
{
	atomic_fetch_add(&((struct testdev *)arg)->stats->dma_map, 1);
}

static void td_dma_unmap(struct vfurt_dev *dev, void *arg, const struct vfurt_dma_region *r)
{
	atomic_fetch_add(&((struct testdev *)arg)->stats->dma_unmap, 1);
}

/* A DMA queue: translate the guest range and touch it, as an I/O queue
 * reading descriptors would. Runs on whichever worker the host chose. */
static int td_queue_poll(struct vfurt_dev *dev, void *arg)
{
	struct testdev *td = vfurt_dev_arg(dev);
	uint64_t iova = atomic_load(&td->q_iova);
	uint64_t len = atomic_load(&td->q_len);
	struct vfurt_worker *w = vfurt_worker_self();
	volatile uint8_t *p;

	(void)arg;
	if (w)
		atomic_fetch_or(&td->stats->queue_workers, 1u << (vfurt_worker_id(w) & 31));
	if (!len)
		return 0;
	p = vfurt_dma_ptr(dev, iova, len, VFURT_DMA_READ);
	if (!p) {
		atomic_fetch_add(&td->stats->queue_misses, 1);
		return 0;
	}
	(void)p[0];
	(void)p[len - 1];
	atomic_fetch_add(&td->stats->queue_polls, 1);
	return 1;
}

static void td_ioevent(struct vfurt_dev *dev, void *arg, uint64_t count)
{
	struct testdev *td = arg;

	atomic_fetch_add(&td->stats->ioevents, 1);
}

static void td_attach(struct vfurt_dev *dev, void *arg)
{
	struct testdev *td = arg;

	for (unsigned i = 0; i < td->opts.queues && i < 8; i++)
		td->queues[i] = vfurt_dev_queue_add(dev, td_queue_poll, NULL, -1);
	atomic_fetch_add(&td->stats->attach, 1);
}

static void td_detach(struct vfurt_dev *dev, void *arg)
{
	struct testdev *td = arg;

	for (unsigned i = 0; i < 8; i++)
		vfurt_dev_queue_remove(dev, &td->queues[i]);
	atomic_fetch_add(&td->stats->detach, 1);
}

static void td_irq_state(struct vfurt_dev *dev, void *arg, uint32_t index, uint32_t start,
			 uint32_t count, bool masked)
{
	atomic_fetch_add(&((struct testdev *)arg)->stats->irq_state, 1);
}

static void td_destroy(struct vfurt_dev *dev, void *arg)
{
	struct testdev *td = arg;

	atomic_fetch_add(&td->stats->destroy, 1);
	td_live_del(td);
	munmap(td->mem, TD_MMAP_SIZE);
	close(td->memfd);
	close(td->ioevfd);
	close(td->ioevfd2);
	free(td);
}

static const struct vfurt_dev_ops td_ops = {
	.ops_size = sizeof(td_ops),
	.reset = td_reset,
	.quiesce = td_quiesce,
	.dma_map = td_dma_map,
	.dma_unmap = td_dma_unmap,
	.attach = td_attach,
	.detach = td_detach,
	.irq_state = td_irq_state,
	.destroy = td_destroy,
};

/* stats outlive the device so tests can check destroy */
static struct testdev_stats *alloc_stats(void)
{
	return calloc(1, sizeof(struct testdev_stats));
}

struct vfurt_dev *testdev_create(const char *name, const struct testdev_opts *opts,
				 struct testdev_stats **stats)
{
	struct vfurt_dev_opts o = { .opts_size = sizeof(o), .name = name, .ops = &td_ops };
	struct vfurt_sparse_area area = { .offset = TD_MMAP_OFF, .size = TD_MMAP_SIZE };
	struct vfurt_pci_opts po = {
		.opts_size = sizeof(po), .vendor_id = 0x1af4, .device_id = 0x10ff,
		.subsys_vendor_id = 0x1af4, .subsys_id = 0x0001, .class_code = 0xff0000,
		.revision = 1, .intx_pin = 1, .cfg_size = VFURT_PCI_CFG_SIZE_EXP,
	};
	struct vfurt_region_desc r;
	struct vfurt_pci *pci;
	struct testdev *td;

	td = calloc(1, sizeof(*td));
	if (!td)
		return NULL;
	if (opts)
		td->opts = *opts;
	td->stats = alloc_stats();
	td->memfd = memfd_create("testdev-bar0", MFD_CLOEXEC);
	if (td->memfd < 0 || ftruncate(td->memfd, TD_MMAP_SIZE))
		abort();
	td->mem = mmap(NULL, TD_MMAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, td->memfd, 0);
	if (td->mem == MAP_FAILED)
		abort();
	td->ioevfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	td->ioevfd2 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	o.arg = td;
	o.reset_supported = !td->opts.no_reset;
	o.log.level = -1;
	if (td->opts.log.fn) {
		o.log = td->opts.log;
	} else if (getenv("VFURT_TEST_VERBOSE")) {
		o.log.fn = vfurt_log_stderr;
		o.log.arg = (void *)"testdev";
		o.log.level = VFURT_LOG_DEBUG;
	}
	td->dev = vfurt_dev_create(&o);
	if (!td->dev)
		abort();

	r = (struct vfurt_region_desc){ .desc_size = sizeof(r), .size = TD_BAR0_SIZE,
		.flags = VFURT_REGION_RW, .access = bar0_access, .arg = td, .fd = td->memfd,
		/* the sparse area's file offset is fd_offset + area offset: the memfd
		 * holds only the area, so start the region "before" it */
		.fd_offset = 0, .sparse = &area, .nr_sparse = 1 };
	/* map area offset 0x1000 onto memfd offset 0: give the region a file
	 * offset of -0x1000 is impossible, so back the memfd with 0x3000 bytes
	 * instead (see below) */
	if (ftruncate(td->memfd, TD_MMAP_OFF + TD_MMAP_SIZE))
		abort();
	munmap(td->mem, TD_MMAP_SIZE);
	td->mem = mmap(NULL, TD_MMAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, td->memfd,
		       TD_MMAP_OFF);
	if (td->mem == MAP_FAILED || vfurt_dev_setup_region(td->dev, VFURT_REGION_BAR0, &r))
		abort();
	r = (struct vfurt_region_desc){ .desc_size = sizeof(r), .size = TD_BAR1_SIZE,
		.flags = VFURT_REGION_RW, .access = bar1_access, .arg = td, .fd = -1 };
	if (vfurt_dev_setup_region(td->dev, VFURT_REGION_BAR1, &r))
		abort();
	r = (struct vfurt_region_desc){ .desc_size = sizeof(r), .size = 256,
		.flags = VFURT_REGION_RW | VFURT_REGION_IO, .access = bar2_access, .arg = td,
		.fd = -1 };
	if (vfurt_dev_setup_region(td->dev, VFURT_REGION_BAR2, &r))
		abort();
	r = (struct vfurt_region_desc){ .desc_size = sizeof(r), .size = 0x2000,
		.flags = VFURT_REGION_RW, .access = bar4_access, .arg = td, .fd = -1 };
	if (vfurt_dev_setup_region(td->dev, VFURT_REGION_BAR4, &r))
		abort();
	r = (struct vfurt_region_desc){ .desc_size = sizeof(r), .size = 4096,
		.flags = VFURT_REGION_RW, .access = devspec_access, .arg = td, .fd = -1,
		.cap_type = 0x1234, .cap_subtype = 1 };
	if (vfurt_dev_setup_region(td->dev, TD_REGION_DEVSPEC, &r))
		abort();
	pci = vfurt_pci_create(td->dev, &po);
	if (!pci || vfurt_pci_add_pm(pci) < 0 || vfurt_pci_add_msi(pci, 4, true) < 0 ||
	    vfurt_pci_add_msix(pci, TD_MSIX_VECTORS, VFURT_REGION_BAR4, 0, VFURT_REGION_BAR4,
			       0x1000) < 0 ||
	    vfurt_pci_add_pcie(pci) < 0 || vfurt_pci_add_dsn(pci, 0x0123456789abcdefull) < 0)
		abort();
	/* ERR and REQ (one vector each) come from vfurt_pci_create/add_pcie */
	if (vfurt_dev_irq_count(td->dev, VFURT_IRQ_ERR) != 1 ||
	    vfurt_dev_irq_count(td->dev, VFURT_IRQ_REQ) != 1)
		abort();
	if (vfurt_dev_add_ioeventfd(td->dev, VFURT_REGION_BAR0, TD_REG_IOEVENTFD, 4, 0, 0,
				    td->ioevfd, NULL, NULL))
		abort();
	if (vfurt_dev_add_ioeventfd(td->dev, VFURT_REGION_BAR2, TD_BAR2_IOEVENTFD, 4, 0, 0,
				    td->ioevfd2, td_ioevent, td))
		abort();
	if (vfurt_dev_add_ioregionfd(td->dev, TD_REGION_DEVSPEC, TD_IOREGION_OFF,
				     TD_IOREGION_SIZE, 0, TD_IOREGION_USER_DATA))
		abort();
	if (stats)
		*stats = td->stats;
	td_live_add(td);
	return td->dev;
}

void testdev_stats_free(struct testdev_stats *stats)
{
	free(stats);
}

int testdev_ioeventfd(struct vfurt_dev *dev)
{
	return ((struct testdev *)vfurt_dev_arg(dev))->ioevfd;
}

/* ---- server thread ------------------------------------------------------ */

#define TS_MAX_DEVS 16

struct testsrv {
	struct vfurt_server *srv;
	struct vfurt_runtime *rt;
	pthread_t thread;
	int stop_fd;
	char dir[64];
	char paths[TS_MAX_DEVS][128];
	struct vfurt_dev *devs[TS_MAX_DEVS];
	struct testdev *tds[TS_MAX_DEVS]; /* NULL: not a test device */
	size_t n;
	/* testsrv_call: one call at a time, run by server_main */
	pthread_mutex_t call_lock;
	pthread_cond_t call_done;
	void (*call_fn)(void *arg);
	void *call_arg;
	int call_fd;
};

/* Run the pending testsrv_call, if any, on the server thread. */
static void run_call(struct testsrv *ts)
{
	uint64_t v;

	if (read(ts->call_fd, &v, sizeof(v)) != sizeof(v))
		return;
	pthread_mutex_lock(&ts->call_lock);
	if (ts->call_fn) {
		ts->call_fn(ts->call_arg);
		ts->call_fn = NULL;
		pthread_cond_broadcast(&ts->call_done);
	}
	pthread_mutex_unlock(&ts->call_lock);
}

void testsrv_call(struct testsrv *ts, void (*fn)(void *arg), void *arg)
{
	static pthread_mutex_t one_caller = PTHREAD_MUTEX_INITIALIZER;
	uint64_t one = 1;

	if (ts->rt) {
		if (vfurt_dev_call(ts->devs[0], fn, arg))
			abort();
		return;
	}
	pthread_mutex_lock(&one_caller);
	pthread_mutex_lock(&ts->call_lock);
	ts->call_fn = fn;
	ts->call_arg = arg;
	if (write(ts->call_fd, &one, sizeof(one)) != sizeof(one))
		abort();
	while (ts->call_fn)
		pthread_cond_wait(&ts->call_done, &ts->call_lock);
	pthread_mutex_unlock(&ts->call_lock);
	pthread_mutex_unlock(&one_caller);
}

/* Complete asynchronous quiesces one loop pass after they were asked for. */
static void finish_quiesces(struct testsrv *ts)
{
	for (size_t i = 0; i < ts->n; i++) {
		struct testdev *td = ts->tds[i];

		if (td && atomic_exchange(&td->quiesce_pending, 0))
			vfurt_dev_quiesced(ts->devs[i], 0);
	}
}

static void *server_main(void *arg)
{
	struct testsrv *ts = arg;

	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = vfurt_server_fd(ts->srv), .events = POLLIN },
			{ .fd = ts->stop_fd, .events = POLLIN },
			{ .fd = ts->call_fd, .events = POLLIN },
		};

		if (poll(pfd, 3, 10) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		vfurt_server_run_once(ts->srv, 0);
		finish_quiesces(ts);
		if (pfd[2].revents)
			run_call(ts);
	}
	return NULL;
}

struct testsrv *testsrv_start(struct vfurt_dev **devs, size_t n,
			      const struct vfurt_conn_opts *conn_opts)
{
	struct vfurt_server_opts so = { .opts_size = sizeof(so) };
	struct testsrv *ts = calloc(1, sizeof(*ts));
	const char *verbose = getenv("VFURT_TEST_VERBOSE");

	if (!ts || n > TS_MAX_DEVS)
		abort();
	snprintf(ts->dir, sizeof(ts->dir), "/tmp/vfurt-test-XXXXXX");
	if (!mkdtemp(ts->dir))
		abort();
	if (conn_opts)
		so.conn = *conn_opts;
	if (verbose) {
		so.log.fn = vfurt_log_stderr;
		so.log.arg = (void *)"testsrv";
		so.log.level = VFURT_LOG_DEBUG;
	}
	ts->srv = vfurt_server_create(&so);
	ts->stop_fd = eventfd(0, EFD_CLOEXEC);
	ts->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!ts->srv || ts->stop_fd < 0 || ts->call_fd < 0)
		abort();
	pthread_mutex_init(&ts->call_lock, NULL);
	pthread_cond_init(&ts->call_done, NULL);
	for (size_t i = 0; i < n; i++) {
		snprintf(ts->paths[i], sizeof(ts->paths[i]), "%s/dev%zu.sock", ts->dir, i);
		if (vfurt_server_add_device(ts->srv, devs[i], ts->paths[i], 0600))
			abort();
		ts->devs[i] = devs[i];
		ts->tds[i] = td_live_find(devs[i]);
	}
	ts->n = n;
	if (pthread_create(&ts->thread, NULL, server_main, ts))
		abort();
	return ts;
}

const char *testsrv_path(const struct testsrv *ts, size_t i)
{
	return ts->paths[i];
}

struct testsrv *testsrv_start_rt(struct vfurt_dev **devs, size_t n,
				 const struct vfurt_conn_opts *conn_opts, const char *cores,
				 int mode)
{
	struct vfurt_runtime_opts ro = { .opts_size = sizeof(ro), .cores = cores,
					 .poll_mode = (enum vfurt_poll_mode)mode };

	if (conn_opts)
		ro.conn = *conn_opts;
	return testsrv_start_rt_opts(devs, n, &ro);
}

struct testsrv *testsrv_start_rt_opts(struct vfurt_dev **devs, size_t n,
				      const struct vfurt_runtime_opts *opts)
{
	struct vfurt_runtime_opts ro = *opts;
	struct testsrv *ts = calloc(1, sizeof(*ts));
	char err[256];

	if (!ts || n > TS_MAX_DEVS)
		abort();
	snprintf(ts->dir, sizeof(ts->dir), "/tmp/vfurt-test-XXXXXX");
	if (!mkdtemp(ts->dir))
		abort();
	if (getenv("VFURT_TEST_VERBOSE")) {
		ro.log.fn = vfurt_log_stderr;
		ro.log.level = VFURT_LOG_DEBUG;
	}
	ts->rt = vfurt_runtime_create(&ro, err, sizeof(err));
	if (!ts->rt) {
		fprintf(stderr, "testsrv: runtime: %s\n", err);
		abort();
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(ts->paths[i], sizeof(ts->paths[i]), "%s/dev%zu.sock", ts->dir, i);
		if (vfurt_runtime_add_device(ts->rt, devs[i], ts->paths[i], 0600, -1))
			abort();
		ts->devs[i] = devs[i];
		ts->tds[i] = td_live_find(devs[i]);
	}
	ts->n = n;
	ts->stop_fd = -1;
	if (vfurt_runtime_start(ts->rt))
		abort();
	return ts;
}

struct vfurt_runtime *testsrv_runtime(const struct testsrv *ts)
{
	return ts->rt;
}

void testsrv_stop(struct testsrv *ts)
{
	uint64_t one = 1;

	if (!ts)
		return;
	if (ts->rt) {
		vfurt_runtime_destroy(ts->rt);
		rmdir(ts->dir);
		free(ts);
		return;
	}
	if (write(ts->stop_fd, &one, sizeof(one)) != sizeof(one))
		abort();
	pthread_join(ts->thread, NULL);
	vfurt_server_destroy(ts->srv);
	close(ts->stop_fd);
	close(ts->call_fd);
	pthread_mutex_destroy(&ts->call_lock);
	pthread_cond_destroy(&ts->call_done);
	rmdir(ts->dir);
	free(ts);
}

int test_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}
