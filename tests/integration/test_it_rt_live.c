/* Devices added and removed while the runtime serves others: REQ, forced detach, cycles, leaks. */
#include <errno.h>
#include <libgen.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/vfio.h>

#include <vfurt/client.h>
#include <vfurt/gpio.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "hostsim/nvme_host.h"

#define QD 32u
#define BS 512u
#define CYCLES 100u

/* ---- a verified I/O load at QD32 on one NVMe host ------------------------- */

struct ioload {
	pthread_t t;
	struct nvme_host *h;
	atomic_bool stop;
	atomic_ulong done;  /* verified write+read pairs */
	atomic_int err;     /* first failure: a status or -errno */
	bool expect_loss;   /* the device goes away: stop at the first failure */
};

/* QD slots, each writing a pattern to its own blocks, reading it back and
 * comparing, over and over. */
static void *ioload_main(void *arg)
{
	struct ioload *l = arg;
	struct nvme_host *h = l->h;
	void *wbuf[QD], *rbuf[QD];
	uint16_t cid[QD];
	uint32_t seed[QD];
	bool reading[QD];
	int rc = 0;

	for (uint32_t i = 0; i < QD; i++) {
		wbuf[i] = nh_alloc(h, BS);
		rbuf[i] = nh_alloc(h, BS);
		if (!wbuf[i] || !rbuf[i]) {
			atomic_store(&l->err, -ENOMEM);
			return NULL;
		}
		seed[i] = i + 1;
		reading[i] = false;
		nh_fill(wbuf[i], BS, seed[i]);
		rc = nh_io_submit(h, 1, &(struct nh_io){ .opc = 0x01, .nsid = 1, .slba = i,
			.nlb = 1, .buf = wbuf[i], .len = BS }, &cid[i]);
		if (rc)
			goto out;
	}
	while (!atomic_load(&l->stop)) {
		for (uint32_t i = 0; i < QD && !rc; i++) {
			rc = nh_wait(h, 1, cid[i], NULL, -1);
			if (rc)
				break;
			if (reading[i]) {
				if (!nh_check(rbuf[i], BS, seed[i])) {
					rc = -EBADMSG;
					break;
				}
				atomic_fetch_add(&l->done, 1);
				seed[i] += QD;
				nh_fill(wbuf[i], BS, seed[i]);
			}
			reading[i] = !reading[i];
			rc = nh_io_submit(h, 1, &(struct nh_io){ .opc = reading[i] ? 0x02 : 0x01,
				.nsid = 1, .slba = i, .nlb = 1, .buf = reading[i] ? rbuf[i] : wbuf[i],
				.len = BS }, &cid[i]);
		}
		if (rc)
			break;
	}
	/* let the last commands finish before the host goes */
	for (uint32_t i = 0; i < QD && !rc; i++)
		rc = nh_wait(h, 1, cid[i], NULL, -1);
out:
	if (rc)
		atomic_store(&l->err, rc);
	return NULL;
}

static void ioload_start(struct ioload *l, struct nvme_host *h)
{
	memset(l, 0, sizeof(*l));
	l->h = h;
	assert_int_equal(pthread_create(&l->t, NULL, ioload_main, l), 0);
}

static void ioload_stop(struct ioload *l)
{
	atomic_store(&l->stop, true);
	pthread_join(l->t, NULL);
}

/* Wait until l has done `more` pairs beyond `from` (or failed). */
static void ioload_wait(struct ioload *l, unsigned long from, unsigned long more)
{
	for (int i = 0; i < 20000 && atomic_load(&l->done) < from + more && !atomic_load(&l->err); i++)
		usleep(1000);
}

/* ---- fixture ---------------------------------------------------------------- */

struct done_rec {
	atomic_int calls;
	atomic_int how;
	atomic_bool on_worker;
};

static void on_done(void *arg, enum vfurt_remove_how how)
{
	struct done_rec *d = arg;

	atomic_store(&d->on_worker, vfurt_worker_self() != NULL);
	atomic_store(&d->how, (int)how);
	atomic_fetch_add(&d->calls, 1);
}

/* Wait for the done callback (up to 20 s). */
static int wait_done(struct done_rec *d)
{
	for (int i = 0; i < 20000 && !atomic_load(&d->calls); i++)
		usleep(1000);
	return atomic_load(&d->calls);
}

struct fx {
	struct testsrv *ts;
	struct vfurt_runtime *rt;
	char dir[128];
	int fds_before;
};

static struct vfurt_dev *small_nvme(const char *name)
{
	return nvme_fx_small_ctrl(name, BS, 1u << 20, 256);
}

static struct vfurt_dev *gpio(const char *name)
{
	struct vfurt_gpio_opts o = { .opts_size = sizeof(o), .name = name };
	struct vfurt_dev *d = vfurt_gpio_create(&o);

	assert_non_null(d);
	return d;
}

/* Two devices to begin with: NVMe "w0" and GPIO "w1", round robin on the
 * workers of it_cores() (adaptive). */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vfurt_dev *devs[2];
	char path[128];

	assert_non_null(f);
	f->fds_before = test_count_fds();
	devs[0] = small_nvme("w0");
	devs[1] = gpio("w1");
	f->ts = testsrv_start_rt(devs, 2, NULL, it_cores(), VFURT_POLL_ADAPTIVE);
	assert_non_null(f->ts);
	f->rt = testsrv_runtime(f->ts);
	snprintf(path, sizeof(path), "%s", testsrv_path(f->ts, 0));
	snprintf(f->dir, sizeof(f->dir), "%s", dirname(path));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int rc;

	testsrv_stop(f->ts);
	rc = it_check_fds(f->fds_before);
	free(f);
	return rc;
}

static void sock_path(struct fx *f, char *buf, size_t len, const char *name)
{
	int n = snprintf(buf, len, "%s/%s.sock", f->dir, name);

	assert_true(n > 0 && (size_t)n < len);
}

/* A GPIO card named name served on DIR/name.sock (path, len) with home
 * worker `worker` (-1: round robin). Asserts. */
static struct vfurt_dev *serve_gpio(struct fx *f, const char *name, char *path, size_t len,
				    int worker)
{
	struct vfurt_dev *dev = gpio(name);

	sock_path(f, path, len, name);
	assert_int_equal(vfurt_runtime_add_device(f->rt, dev, path, 0600, worker), 0);
	return dev;
}

static struct nvme_host *io_host(const char *path)
{
	/* a command's completion: 3 s was too short for a 2-CPU machine that
	 * also runs a sanitizer build (the cycles fault in a namespace each);
	 * a stalled witness is still caught by its progress checks */
	struct nvme_host_opts ho = { .timeout_ms = 15000, .mem_size = 4u << 20 };
	struct nvme_host *h = nh_open(path, &ho);

	assert_non_null(h);
	assert_int_equal(nh_enable(h), 0);
	assert_int_equal(nh_set_num_queues(h, 4, 4, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, 64, -1), 0);
	return h;
}

/* A REQ eventfd for c's device (VFIO_PCI_REQ_IRQ_INDEX, one vector). */
static int req_eventfd(struct vfurt_client *c)
{
	int efd = it_eventfd();

	assert_true(efd >= 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	return efd;
}

/* ---- tests ------------------------------------------------------------------ */

/* A device added to a running runtime is served at once; removed with no
 * client it goes at once, socket file and all. */
static void test_add_then_remove_idle(void **state)
{
	struct fx *f = *state;
	struct done_rec d = { 0 };
	struct vfurt_client *c;
	struct vfurt_dev *dev;
	char path[160];
	struct stat st;
	uint32_t v;

	dev = serve_gpio(f, "g-live", path, sizeof(path), -1);
	assert_ptr_equal(vfurt_runtime_find_device(f->rt, path), dev);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	c = it_connect(path, 0);
	assert_non_null(c);
	assert_int_equal(it_rd32(c, VFIO_PCI_BAR2_REGION_INDEX, 0, &v), 0);
	vfurt_client_close(c);
	/* the server sees the close before the removal: no client then */
	for (int i = 0; i < 2000; i++) {
		char *j = vfurt_runtime_device_json(f->rt, dev);

		assert_non_null(j);
		if (strstr(j, "\"connected\":false")) {
			free(j);
			break;
		}
		free(j);
		usleep(1000);
	}
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 5000, on_done, &d), 0);
	assert_int_equal(wait_done(&d), 1);
	assert_int_equal(atomic_load(&d.how), VFURT_REMOVE_IDLE);
	assert_true(atomic_load(&d.on_worker));
	assert_int_equal(stat(path, &st), -1);
	assert_null(vfurt_runtime_find_device(f->rt, path));
	/* the same path is free for a new device at once */
	dev = gpio("g-live2");
	assert_int_equal(vfurt_runtime_add_device(f->rt, dev, path, 0600, 0), 0);
	memset(&d, 0, sizeof(d));
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 0, on_done, &d), 0);
	assert_int_equal(wait_done(&d), 1);
}

/* A client that honours REQ: it is asked, it detaches, the removal says so. */
static void test_remove_released(void **state)
{
	struct fx *f = *state;
	struct done_rec d = { 0 };
	struct vfurt_dev *dev;
	struct vfurt_client *c;
	char path[160];
	int efd;

	dev = serve_gpio(f, "g-req", path, sizeof(path), -1);
	c = it_connect(path, 0);
	assert_non_null(c);
	efd = req_eventfd(c);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 10000, on_done, &d), 0);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 10000, on_done, &d), -EALREADY);
	/* the VMM's part: the request arrives, the guest lets go, it detaches */
	assert_true(it_readable(efd, 5000));
	assert_int_equal(it_eventfd_take(efd), 1);
	assert_int_equal(atomic_load(&d.calls), 0); /* still attached: it waits */
	vfurt_client_close(c);
	close(efd);
	assert_int_equal(wait_done(&d), 1);
	assert_int_equal(atomic_load(&d.how), VFURT_REMOVE_RELEASED);
}

/* A client that ignores REQ is disconnected after the timeout; one without
 * a REQ eventfd at once. */
static void test_remove_forced(void **state)
{
	struct fx *f = *state;
	struct done_rec d = { 0 };
	struct vfurt_dev *dev;
	struct vfurt_client *c;
	char path[160];
	int efd;

	dev = serve_gpio(f, "g-deaf", path, sizeof(path), -1);
	c = it_connect(path, 0);
	assert_non_null(c);
	efd = req_eventfd(c);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 300, on_done, &d), 0);
	assert_true(it_readable(efd, 5000));
	assert_int_equal(wait_done(&d), 1);
	assert_int_equal(atomic_load(&d.how), VFURT_REMOVE_FORCED);
	assert_true(it_server_closed(c));
	vfurt_client_close(c);
	close(efd);

	/* no REQ eventfd (QEMU 10.2): nobody to ask, the same time to go */
	memset(&d, 0, sizeof(d));
	dev = serve_gpio(f, "g-noreq", path, sizeof(path), -1);
	c = it_connect(path, 0);
	assert_non_null(c);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 300, on_done, &d), 0);
	assert_int_equal(wait_done(&d), 1);
	assert_int_equal(atomic_load(&d.how), VFURT_REMOVE_FORCED);
	assert_true(it_server_closed(c));
	vfurt_client_close(c);

	/* timeout 0: at once, REQ eventfd or not */
	memset(&d, 0, sizeof(d));
	dev = serve_gpio(f, "g-now", path, sizeof(path), -1);
	c = it_connect(path, 0);
	assert_non_null(c);
	efd = req_eventfd(c);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 0, on_done, &d), 0);
	assert_int_equal(wait_done(&d), 1);
	assert_int_equal(atomic_load(&d.how), VFURT_REMOVE_FORCED);
	assert_false(it_readable(efd, 0)); /* not asked */
	assert_true(it_server_closed(c));
	vfurt_client_close(c);
	close(efd);
}

/* No REQ eventfd, and the VMM unplugs the device by itself meanwhile (QMP
 * device_del): released, not forced. */
static void test_remove_no_req_released(void **state)
{
	struct fx *f = *state;
	struct done_rec d = { 0 };
	struct vfurt_dev *dev;
	struct vfurt_client *c;
	char path[160];

	dev = serve_gpio(f, "g-qmp", path, sizeof(path), -1);
	c = it_connect(path, 0);
	assert_non_null(c);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 20000, on_done, &d), 0);
	usleep(100 * 1000);
	assert_int_equal(atomic_load(&d.calls), 0);
	vfurt_client_close(c);
	assert_int_equal(wait_done(&d), 1);
	assert_int_equal(atomic_load(&d.how), VFURT_REMOVE_RELEASED);
}

/* Removing an NVMe controller under QD32 I/O whose host ignores REQ: its
 * I/O stops (errors or timeouts on its own side), the other controller's
 * verified I/O at QD32 goes on without an error. */
static void test_remove_during_qd32(void **state)
{
	struct fx *f = *state;
	struct done_rec d = { 0 };
	struct ioload victim, witness;
	struct nvme_host *hv, *hw;
	struct vfurt_dev *dev = small_nvme("n-victim");
	char path[160];
	unsigned long before;
	int efd;

	sock_path(f, path, sizeof(path), "n-victim");
	/* the same home worker as w0, the witness */
	assert_int_equal(vfurt_runtime_add_device(f->rt, dev, path, 0600, 0), 0);
	hv = io_host(path);
	hw = io_host(testsrv_path(f->ts, 0));
	efd = req_eventfd(nh_client(hv));
	ioload_start(&victim, hv);
	ioload_start(&witness, hw);
	ioload_wait(&victim, 0, 200);
	ioload_wait(&witness, 0, 200);
	assert_int_equal(atomic_load(&victim.err), 0);
	before = atomic_load(&witness.done);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 200, on_done, &d), 0);
	assert_int_equal(wait_done(&d), 1);
	assert_int_equal(atomic_load(&d.how), VFURT_REMOVE_FORCED);
	assert_int_equal(it_eventfd_take(efd), 1);
	/* the witness keeps going after the removal */
	ioload_wait(&witness, before, 500);
	assert_true(atomic_load(&witness.done) >= before + 500);
	ioload_stop(&victim);
	assert_int_not_equal(atomic_load(&victim.err), 0); /* its device is gone */
	ioload_stop(&witness);
	assert_int_equal(atomic_load(&witness.err), 0);
	nh_close(hv);
	nh_close(hw);
	close(efd);
}

/* The same with a host that honours REQ: it finishes its commands in flight,
 * detaches, and the removal says "released"; the witness never notices. */
static void test_remove_released_during_qd32(void **state)
{
	struct fx *f = *state;
	struct done_rec d = { 0 };
	struct ioload victim, witness;
	struct nvme_host *hv, *hw;
	struct vfurt_dev *dev = small_nvme("n-polite");
	char path[160];
	unsigned long before;
	int efd;

	sock_path(f, path, sizeof(path), "n-polite");
	assert_int_equal(vfurt_runtime_add_device(f->rt, dev, path, 0600, 0), 0);
	hv = io_host(path);
	hw = io_host(testsrv_path(f->ts, 0));
	efd = req_eventfd(nh_client(hv));
	ioload_start(&victim, hv);
	ioload_start(&witness, hw);
	ioload_wait(&victim, 0, 200);
	before = atomic_load(&witness.done);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 20000, on_done, &d), 0);
	/* the VMM's part: the request arrives, the guest stops its I/O (the
	 * commands in flight complete), the device is released */
	assert_true(it_readable(efd, 5000));
	ioload_stop(&victim);
	assert_int_equal(atomic_load(&victim.err), 0);
	assert_int_equal(atomic_load(&d.calls), 0);
	nh_close(hv);
	assert_int_equal(wait_done(&d), 1);
	assert_int_equal(atomic_load(&d.how), VFURT_REMOVE_RELEASED);
	ioload_wait(&witness, before, 500);
	ioload_stop(&witness);
	assert_int_equal(atomic_load(&witness.err), 0);
	assert_true(atomic_load(&witness.done) >= before + 500);
	nh_close(hw);
	close(efd);
}

static long rss_kib(void)
{
	FILE *fp = fopen("/proc/self/statm", "r");
	long pages = 0, rss = 0;

	if (fp) {
		if (fscanf(fp, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(fp);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* One cycle: add an NVMe controller and a GPIO device, attach a client to
 * each and use it, remove both (one released, one idle or forced). */
static void one_cycle(struct fx *f, unsigned i)
{
	struct done_rec dn = { 0 }, dg = { 0 };
	struct vfurt_dev *n = small_nvme("cyc-n");
	struct vfurt_dev *g = gpio("cyc-g");
	char pn[160], pg[160];
	struct nvme_host *h;
	struct vfurt_client *c;
	uint32_t v;
	int efd;

	sock_path(f, pn, sizeof(pn), "cyc-n");
	sock_path(f, pg, sizeof(pg), "cyc-g");
	assert_int_equal(vfurt_runtime_add_device(f->rt, n, pn, 0600, -1), 0);
	assert_int_equal(vfurt_runtime_add_device(f->rt, g, pg, 0600, -1), 0);
	h = io_host(pn);
	assert_int_equal(nh_write_read_check(h, 1, 1, i % 64, BS, i, NULL, NULL), 0);
	c = it_connect(pg, 0);
	assert_non_null(c);
	assert_int_equal(it_rd32(c, VFIO_PCI_BAR2_REGION_INDEX, 0, &v), 0);
	efd = req_eventfd(c);
	/* the GPIO client honours REQ; the NVMe host is disconnected at once
	 * (timeout 0; even cycles) or closed first (odd) */
	assert_int_equal(vfurt_runtime_remove_device(f->rt, g, 10000, on_done, &dg), 0);
	if (!it_readable(efd, 5000))
		fail_msg("cycle %u: no REQ irq (done %d)", i, atomic_load(&dg.calls));
	vfurt_client_close(c);
	close(efd);
	if (i % 2) {
		nh_close(h);
		h = NULL;
	}
	assert_int_equal(vfurt_runtime_remove_device(f->rt, n, 0, on_done, &dn), 0);
	assert_int_equal(wait_done(&dg), 1);
	assert_int_equal(wait_done(&dn), 1);
	assert_int_equal(atomic_load(&dg.how), VFURT_REMOVE_RELEASED);
	if (h)
		nh_close(h);
}

/* 100 add/remove cycles while two other devices serve verified I/O: they
 * never fail, and fds and RSS come back to where they were. */
static void test_cycles(void **state)
{
	struct fx *f = *state;
	struct ioload witness;
	struct nvme_host *hw = io_host(testsrv_path(f->ts, 0));
	struct vfurt_client *gc = it_connect(testsrv_path(f->ts, 1), 0);
	unsigned long before;
	long rss0, rss1;
	int fds0;

	assert_non_null(gc);
	ioload_start(&witness, hw);
	/* warm up: the allocator's arenas, the workers' arrays */
	for (unsigned i = 0; i < 5; i++)
		one_cycle(f, i);
	malloc_trim(0);
	fds0 = it_wait_fds(test_count_fds());
	rss0 = rss_kib();
	for (unsigned i = 5; i < CYCLES; i++) {
		uint32_t v;

		before = atomic_load(&witness.done);
		one_cycle(f, i);
		/* the GPIO witness answers between cycles */
		assert_int_equal(it_rd32(gc, VFIO_PCI_BAR2_REGION_INDEX, 0, &v), 0);
		/* the NVMe witness progressed during the cycle */
		ioload_wait(&witness, before, 1);
		assert_int_equal(atomic_load(&witness.err), 0);
	}
	malloc_trim(0);
	assert_int_equal(it_wait_fds(fds0), fds0);
	rss1 = rss_kib();
	print_message("RSS after warm-up %ld KiB, after %u cycles %ld KiB\n", rss0, CYCLES, rss1);
	/* 95 cycles each allocating two 1 MiB namespaces and two devices: a
	 * leak of either would be >= 95 MiB. Under ASan freed memory waits in
	 * its quarantine (and LeakSanitizer checks for leaks instead). */
#ifndef __SANITIZE_ADDRESS__
	assert_true(rss1 <= rss0 + 8192);
#endif
	ioload_stop(&witness);
	assert_int_equal(atomic_load(&witness.err), 0);
	vfurt_client_close(gc);
	nh_close(hw);
}

/* ---- concurrent control threads -------------------------------------------- */

struct churner {
	pthread_t t;
	struct fx *f;
	int id;
	int cycles;
	atomic_int err;
};

/* One control thread: add a GPIO card, attach and detach a client, remove
 * it, as fast as it can. */
static void *churn_main(void *arg)
{
	struct churner *ch = arg;
	char path[160], name[32];

	snprintf(name, sizeof(name), "cc%d", ch->id);
	sock_path(ch->f, path, sizeof(path), name);
	for (int i = 0; i < ch->cycles; i++) {
		struct vfurt_dev *g = gpio(name);
		struct done_rec d = { 0 };
		struct vfurt_client *c;
		int rc = vfurt_runtime_add_device(ch->f->rt, g, path, 0600, -1);

		if (rc) {
			atomic_store(&ch->err, rc);
			vfurt_dev_destroy(g);
			break;
		}
		c = i % 2 ? it_connect(path, 0) : NULL;
		rc = vfurt_runtime_remove_device(ch->f->rt, g, i % 3 ? 0 : 50, on_done, &d);
		if (!rc && !wait_done(&d))
			rc = -ETIMEDOUT;
		if (c)
			vfurt_client_close(c);
		if (rc) {
			atomic_store(&ch->err, rc);
			break;
		}
	}
	return NULL;
}

/* Three control threads adding and removing devices at once while another
 * reads the statistics and looks devices up: no race (TSan runs this), no
 * leak, and the resident devices keep serving. */
static void test_concurrent_control(void **state)
{
	struct fx *f = *state;
	struct churner ch[3];
	struct vfurt_client *gc = it_connect(testsrv_path(f->ts, 1), 0);
	int fds0;

	assert_non_null(gc);
	fds0 = test_count_fds();
	for (int k = 0; k < 3; k++) {
		ch[k] = (struct churner){ .f = f, .id = k, .cycles = 30 };
		assert_int_equal(pthread_create(&ch[k].t, NULL, churn_main, &ch[k]), 0);
	}
	for (int i = 0; i < 60; i++) {
		char *j = vfurt_runtime_stats_json(f->rt);
		uint32_t v;

		assert_non_null(j);
		free(j);
		(void)vfurt_runtime_find_device(f->rt, testsrv_path(f->ts, 0));
		assert_int_equal(it_rd32(gc, VFIO_PCI_BAR2_REGION_INDEX, 0, &v), 0);
		usleep(2000);
	}
	for (int k = 0; k < 3; k++) {
		pthread_join(ch[k].t, NULL);
		assert_int_equal(atomic_load(&ch[k].err), 0);
	}
	assert_int_equal(it_wait_fds(fds0), fds0);
	vfurt_client_close(gc);
}

/* Bad calls: a clear errno and nothing changed. */
static void test_bad_calls(void **state)
{
	struct fx *f = *state;
	struct vfurt_dev *stranger = gpio("stranger");
	struct vfurt_dev *dup = gpio("dup");
	char path[160];

	assert_int_equal(vfurt_runtime_remove_device(NULL, stranger, 0, NULL, NULL), -EINVAL);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, NULL, 0, NULL, NULL), -EINVAL);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, stranger, 0, NULL, NULL), -ENOENT);
	assert_null(vfurt_runtime_device_json(f->rt, stranger));
	assert_int_equal(errno, ENOENT);
	assert_null(vfurt_runtime_find_device(f->rt, "/nonexistent"));
	sock_path(f, path, sizeof(path), "bad");
	assert_int_equal(vfurt_runtime_add_device(f->rt, stranger, path, 0600, 99), -EINVAL);
	assert_int_equal(vfurt_runtime_add_device(f->rt, stranger, "", 0600, -1), -EINVAL);
	/* a live socket path of another device */
	assert_int_equal(vfurt_runtime_add_device(f->rt, dup, testsrv_path(f->ts, 1), 0600, -1),
			 -EADDRINUSE);
	/* the others still serve */
	{
		struct vfurt_client *c = it_connect(testsrv_path(f->ts, 1), 0);
		uint32_t v;

		assert_non_null(c);
		assert_int_equal(it_rd32(c, VFIO_PCI_BAR2_REGION_INDEX, 0, &v), 0);
		vfurt_client_close(c);
	}
	vfurt_dev_destroy(stranger);
	vfurt_dev_destroy(dup);
}

/* vfurt_dev_call runs on the device's home worker, from a foreign thread. */
static void note_self(void *arg)
{
	*(struct vfurt_worker **)arg = vfurt_worker_self();
}

static void test_dev_call(void **state)
{
	struct fx *f = *state;
	int last = (int)vfurt_runtime_worker_count(f->rt) - 1;
	struct vfurt_worker *seen = NULL;
	struct done_rec d = { 0 };
	struct vfurt_dev *dev;
	char path[160];

	dev = serve_gpio(f, "g-call", path, sizeof(path), last);
	assert_int_equal(vfurt_dev_call(dev, note_self, &seen), 0);
	assert_ptr_equal(seen, vfurt_runtime_worker(f->rt, (uint32_t)last));
	assert_int_equal(vfurt_dev_call(dev, NULL, NULL), -EINVAL);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 0, on_done, &d), 0);
	assert_int_equal(wait_done(&d), 1);
}

/* A removal still waiting for its client when the runtime stops ends then,
 * forced, on the stopping thread. */
static void test_remove_pending_at_stop(void **state)
{
	struct fx *f = *state;
	struct done_rec d = { 0 };
	struct vfurt_dev *dev;
	struct vfurt_client *c;
	char path[160];
	int efd;

	dev = serve_gpio(f, "g-stop", path, sizeof(path), -1);
	c = it_connect(path, 0);
	assert_non_null(c);
	efd = req_eventfd(c);
	assert_int_equal(vfurt_runtime_remove_device(f->rt, dev, 600000, on_done, &d), 0);
	assert_true(it_readable(efd, 5000));
	vfurt_runtime_stop(f->rt);
	assert_int_equal(atomic_load(&d.calls), 1);
	assert_int_equal(atomic_load(&d.how), VFURT_REMOVE_FORCED);
	assert_false(atomic_load(&d.on_worker));
	/* stopped: nothing more is added */
	dev = gpio("late");
	assert_int_equal(vfurt_runtime_add_device(f->rt, dev, path, 0600, -1), -ESHUTDOWN);
	vfurt_dev_destroy(dev);
	vfurt_client_close(c);
	close(efd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_then_remove_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_released, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_forced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_no_req_released, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_during_qd32, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_released_during_qd32, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cycles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_control, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_calls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dev_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_pending_at_stop, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
