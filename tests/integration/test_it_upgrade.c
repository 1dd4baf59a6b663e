/* Live upgrade of build/vfu-rt (issue 14): 20 upgrades under verified NVMe I/O, GPIO and MSI-X state, rejected upgrades, the file backend. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <linux/vfio.h>

#include <vfurt/client.h>

#include "common/it_util.h"
#include "common/upgrade_fx.h"
#include "hostsim/nvme_host.h"

#define QD 32u
#define IO_BS 4096u          /* bytes per I/O: 8 blocks of 512 */
#define IO_NLB (IO_BS / 512u)
#define IO_ROUNDS 64u        /* each slot cycles over this many 4 KiB places */
#define HOST_TIMEOUT_MS 20000 /* a command's completion: covers any upgrade pause */
#define UPGRADES 20
#define FD_SLACK 2           /* fds the final process may hold beyond the first upgraded one */

/* ---- verified QD32 I/O on one NVMe controller of the daemon ---------------------------- */

struct load {
	pthread_t t;
	bool running;
	struct nvme_host *h;
	int cfd;             /* the client's socket: never closed, never replaced */
	dev_t cdev;
	ino_t cino;
	atomic_bool stop;
	atomic_ulong done;   /* verified write + read pairs */
	atomic_int err;      /* first failure: NVMe status, -errno, -EBADMSG for a mismatch */
	atomic_ulong max_gap_us; /* longest wait for a completion */
	char why[200];       /* the first failure, written before err */
};

/* A host on path with I/O pair 1 (64 entries, MSI-X vector 1, waits sleep on it). */
static struct nvme_host *io_host(const char *path)
{
	struct nvme_host_opts ho = { .timeout_ms = HOST_TIMEOUT_MS, .mem_size = 4u << 20,
				     .irq_wait = true, .nvec = 4 };
	struct nvme_host *h = nh_open(path, &ho);

	if (!h)
		fail_msg("nh_open %s: %s", path, strerror(errno));
	assert_int_equal(nh_enable(h), 0);
	assert_int_equal(nh_set_num_queues(h, 2, 2, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, 64, 1), 0);
	return h;
}

static void load_fail(struct load *l, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->why, sizeof(l->why), fmt, ap);
	va_end(ap);
	atomic_store(&l->err, rc);
}

/* Slot i writes a pattern of seed to its LBA of the round, reads it back and
 * compares; the next round moves to another LBA with another seed. */
static void *load_main(void *arg)
{
	struct load *l = arg;
	struct nvme_host *h = l->h;
	void *wbuf[QD], *rbuf[QD];
	uint64_t slba[QD];
	uint16_t cid[QD];
	uint32_t seed[QD], round[QD];
	bool reading[QD];
	long last = upfx_now_ms();
	int rc = 0;

	for (uint32_t i = 0; i < QD; i++) {
		wbuf[i] = nh_alloc(h, IO_BS);
		rbuf[i] = nh_alloc(h, IO_BS);
		if (!wbuf[i] || !rbuf[i]) {
			load_fail(l, -ENOMEM, "guest memory");
			return NULL;
		}
		round[i] = 0;
		seed[i] = (uint32_t)(i * 7919u + 1u);
		slba[i] = (uint64_t)i * IO_ROUNDS * IO_NLB;
		reading[i] = false;
		nh_fill(wbuf[i], IO_BS, seed[i]);
		rc = nh_write(h, 1, 1, slba[i], IO_NLB, wbuf[i], IO_BS, NULL);
		if (rc) {
			load_fail(l, rc, "first write of slot %u: %#x", i, (unsigned)rc);
			return NULL;
		}
		rc = nh_io_submit(h, 1, &(struct nh_io){ .opc = NH_CMD_READ, .nsid = 1,
			.slba = slba[i], .nlb = IO_NLB, .buf = rbuf[i], .len = IO_BS }, &cid[i]);
		reading[i] = true;
		if (rc) {
			load_fail(l, rc, "submit slot %u: %d", i, rc);
			return NULL;
		}
	}
	while (!atomic_load(&l->stop) && !rc) {
		for (uint32_t i = 0; i < QD && !rc; i++) {
			long t;

			rc = nh_wait(h, 1, cid[i], NULL, -1);
			t = upfx_now_ms();
			if ((unsigned long)(t - last) * 1000ul > atomic_load(&l->max_gap_us))
				atomic_store(&l->max_gap_us, (unsigned long)(t - last) * 1000ul);
			last = t;
			if (rc) {
				load_fail(l, rc, "slot %u %s at LBA %llu: status %#x (%d)", i,
					  reading[i] ? "read" : "write", (unsigned long long)slba[i],
					  (unsigned)rc, rc);
				break;
			}
			if (reading[i]) {
				if (!nh_check(rbuf[i], IO_BS, seed[i])) {
					rc = -EBADMSG;
					load_fail(l, rc, "slot %u: data at LBA %llu differ from seed %u",
						  i, (unsigned long long)slba[i], seed[i]);
					break;
				}
				atomic_fetch_add(&l->done, 1);
				round[i] = (round[i] + 1) % IO_ROUNDS;
				slba[i] = ((uint64_t)i * IO_ROUNDS + round[i]) * IO_NLB;
				seed[i] += 104729u;
				nh_fill(wbuf[i], IO_BS, seed[i]);
			}
			reading[i] = !reading[i];
			rc = nh_io_submit(h, 1, &(struct nh_io){
				.opc = reading[i] ? NH_CMD_READ : NH_CMD_WRITE, .nsid = 1,
				.slba = slba[i], .nlb = IO_NLB,
				.buf = reading[i] ? rbuf[i] : wbuf[i], .len = IO_BS }, &cid[i]);
			if (rc)
				load_fail(l, rc, "submit slot %u: %d", i, rc);
		}
	}
	/* the last commands finish before the host goes */
	for (uint32_t i = 0; i < QD && !rc; i++) {
		rc = nh_wait(h, 1, cid[i], NULL, -1);
		if (rc)
			load_fail(l, rc, "last command of slot %u: %#x", i, (unsigned)rc);
	}
	return NULL;
}

static void load_start(struct load *l, const char *path)
{
	struct stat st;

	memset(l, 0, sizeof(*l));
	l->h = io_host(path);
	l->cfd = vfurt_client_fd(nh_client(l->h));
	assert_int_equal(fstat(l->cfd, &st), 0);
	l->cdev = st.st_dev;
	l->cino = st.st_ino;
	assert_int_equal(pthread_create(&l->t, NULL, load_main, l), 0);
	l->running = true;
}

/* The client's socket is the one it connected with and has seen no EOF,
 * hang-up or error (poll does not consume anything the load thread reads). */
static void load_check_socket(const struct load *l, const char *when)
{
	struct pollfd p = { .fd = l->cfd, .events = POLLRDHUP };
	struct stat st;

	assert_int_equal(vfurt_client_fd(nh_client(l->h)), l->cfd);
	assert_int_equal(fstat(l->cfd, &st), 0);
	assert_true(st.st_dev == l->cdev && st.st_ino == l->cino);
	assert_true(poll(&p, 1, 0) >= 0);
	if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
		fail_msg("%s: the client's socket saw EOF/hang-up (revents %#x)", when,
			 (unsigned)p.revents);
}

static void load_check(struct load *l, const char *when)
{
	if (atomic_load(&l->err))
		fail_msg("%s: I/O failed: %s", when, l->why);
	load_check_socket(l, when);
}

/* Wait until each of n loads did `more` pairs beyond now (or failed). */
static void loads_progress(struct load *ls, size_t n, unsigned long more, const char *when)
{
	unsigned long from[8];
	long end = upfx_now_ms() + 20000;

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++)
		from[i] = atomic_load(&ls[i].done);
	for (size_t i = 0; i < n; i++) {
		while (atomic_load(&ls[i].done) < from[i] + more && !atomic_load(&ls[i].err) &&
		       upfx_now_ms() < end)
			usleep(1000);
		load_check(&ls[i], when);
		if (atomic_load(&ls[i].done) < from[i] + more)
			fail_msg("%s: load %zu made no progress (%lu pairs in 20 s)", when, i,
				 atomic_load(&ls[i].done) - from[i]);
	}
}

/* Stop the thread (the host stays open). */
static void load_stop(struct load *l)
{
	if (!l->running)
		return;
	atomic_store(&l->stop, true);
	pthread_join(l->t, NULL);
	l->running = false;
}

static void load_close(struct load *l)
{
	load_stop(l);
	nh_close(l->h);
	l->h = NULL;
}

/* ---- GPIO (PCI-IDIO-16, BAR2) and MSI-X helpers ----------------------------------- */

#define BAR2 VFURT_REGION_BAR2
#define OUT0_7 0u
#define IN0_7 1u
#define IRQ_CTL 2u
#define FILTER_CTL 3u
#define OUT8_15 4u
#define IN8_15 5u
#define IRQ_STATUS 6u

static uint8_t rd8(struct vfurt_client *c, uint64_t off)
{
	uint8_t v = 0xee;

	assert_int_equal(vfurt_client_region_read(c, BAR2, off, &v, 1), 0);
	return v;
}

static void wr8(struct vfurt_client *c, uint64_t off, uint8_t v)
{
	assert_int_equal(vfurt_client_region_write(c, BAR2, off, &v, 1), 0);
}

struct msix {
	uint32_t tab_bar, pba_bar;
	uint64_t tab_off, pba_off;
};

static void msix_find(struct vfurt_client *c, struct msix *m)
{
	int cap = it_cfg_find_cap(c, 0x11);
	uint32_t tab, pba;

	assert_true(cap > 0);
	assert_int_equal(it_rd32(c, VFURT_REGION_CONFIG, (uint64_t)cap + 4, &tab), 0);
	assert_int_equal(it_rd32(c, VFURT_REGION_CONFIG, (uint64_t)cap + 8, &pba), 0);
	m->tab_bar = VFURT_REGION_BAR0 + (tab & 7u);
	m->tab_off = tab & ~7u;
	m->pba_bar = VFURT_REGION_BAR0 + (pba & 7u);
	m->pba_off = pba & ~7u;
}

static void msix_guest_mask(struct vfurt_client *c, const struct msix *m, uint32_t v, bool on)
{
	assert_int_equal(it_wr32(c, m->tab_bar, m->tab_off + v * 16u + 12u, on ? 1u : 0u), 0);
}

static bool msix_guest_masked(struct vfurt_client *c, const struct msix *m, uint32_t v)
{
	uint32_t ctrl = 0;

	assert_int_equal(it_rd32(c, m->tab_bar, m->tab_off + v * 16u + 12u, &ctrl), 0);
	return ctrl & 1u;
}

static bool msix_pending(struct vfurt_client *c, const struct msix *m, uint32_t v)
{
	uint64_t pba = 0;

	assert_int_equal(it_rd64(c, m->pba_bar, m->pba_off, &pba), 0);
	return (pba >> v) & 1u;
}

/* ---- fixture -------------------------------------------------------------------- */

struct fx {
	struct dproc d;
	struct load l[4];
	size_t nl;
	struct vfurt_client *gpio;
	int efd;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->efd = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	int rc;

	for (size_t i = 0; i < f->nl; i++)
		if (f->l[i].h)
			load_close(&f->l[i]);
	vfurt_client_close(f->gpio);
	if (f->efd >= 0)
		close(f->efd);
	rc = upfx_dfinish(&f->d);
	free(f);
	return rc;
}

/* ---- a. 20 upgrades under verified QD32 I/O on 4 devices, 2 workers -------------------- */

static void test_upgrade_20_under_io(void **state)
{
	struct fx *f = *state;
	char dev[4][640], path[3][192], gsock[192], cores[32], when[64];
	const char *args[] = { cores, "--device", dev[0], "--device", dev[1], "--device", dev[2],
			       "--device", dev[3], NULL };
	int fds_first = -1, fds_last = -1;
	double pause_max = 0, pause_sum = 0;
	long took_max = 0;
	struct upg u;

	upfx_need_binaries();
	upfx_dinit(&f->d, "a");
	/* round robin: n0 and n2 on the first worker, n1 and the GPIO card on the second */
	snprintf(cores, sizeof(cores), "--cores=%s", it_cores());
	for (int i = 0; i < 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "n%d", i);
		upfx_sockp(&f->d, path[i], sizeof(path[i]), name);
		snprintf(dev[i], sizeof(dev[i]), "nvme,socket=%s,backend=ram,size=64M,queues=2",
			 path[i]);
	}
	upfx_sockp(&f->d, gsock, sizeof(gsock), "g0");
	snprintf(dev[3], sizeof(dev[3]), "gpio,socket=%s", gsock);
	upfx_dstart(&f->d, args);

	for (int i = 0; i < 3; i++)
		load_start(&f->l[i], path[i]);
	f->nl = 3;
	f->gpio = it_connect(gsock, 0);
	assert_non_null(f->gpio);
	wr8(f->gpio, OUT0_7, 0x3c);
	loads_progress(f->l, f->nl, 200, "before the upgrades");

	for (int i = 0; i < UPGRADES; i++) {
		/* vfu-ctl for people, vfu-ctl --json and the RPC in turn */
		enum via via = (enum via)(i % 3);

		snprintf(when, sizeof(when), "upgrade %d", i + 1);
		upfx_upgrade_ok(&f->d, via, 4, &u);
		if (getenv("VFURT_TEST_VERBOSE"))
			fprintf(stderr, "# upgrade %d: pid %ld -> %ld, pause %.2f ms, command %ld ms, "
				"%lu fds, %lu bytes\n", i + 1, u.old_pid, u.new_pid, u.pause_ms,
				u.took_ms, u.fds, u.bytes);
		pause_sum += u.pause_ms;
		if (u.pause_ms > pause_max)
			pause_max = u.pause_ms;
		if (u.took_ms > took_max)
			took_max = u.took_ms;
		for (size_t k = 0; k < f->nl; k++)
			load_check(&f->l[k], when);
		/* the GPIO card's client is served by the new process too */
		assert_int_equal(rd8(f->gpio, OUT0_7), 0x3c);
		loads_progress(f->l, f->nl, 100, when);
		fds_last = upfx_fd_count(f->d.pid);
		assert_true(fds_last > 0);
		if (i == 0)
			fds_first = fds_last;
	}
	for (size_t k = 0; k < f->nl; k++) {
		load_stop(&f->l[k]);
		load_check(&f->l[k], "after the upgrades");
	}
	fprintf(stderr, "# %d upgrades: pause (daemon) mean %.2f ms, max %.2f ms; upgrade command "
		"max %ld ms; client gaps max %lu/%lu/%lu us; fds %d after the 1st, %d after the "
		"last; %lu/%lu/%lu verified pairs\n", UPGRADES, pause_sum / UPGRADES, pause_max,
		took_max, atomic_load(&f->l[0].max_gap_us), atomic_load(&f->l[1].max_gap_us),
		atomic_load(&f->l[2].max_gap_us), fds_first, fds_last,
		atomic_load(&f->l[0].done), atomic_load(&f->l[1].done), atomic_load(&f->l[2].done));
	if (fds_last > fds_first + FD_SLACK)
		fail_msg("fd growth: %d fds after the first upgrade, %d after the last", fds_first,
			 fds_last);
	assert_int_equal(upfx_log_errors(&f->d, NULL), 0);
}

/* ---- b. GPIO registers, INTx and MSI-X masks and pending bits survive ------------------- */

static void test_upgrade_keeps_irq_and_gpio_state(void **state)
{
	struct fx *f = *state;
	char gsock[192], nsock[192], gdev[256], ndev[256];
	const char *args[] = { "--cores=0", "--device", gdev, "--device", ndev, NULL };
	struct vfurt_client *g, *nc;
	struct nvme_host *h;
	struct msix m;
	struct upg u;

	upfx_need_binaries();
	upfx_dinit(&f->d, "b");
	upfx_sockp(&f->d, gsock, sizeof(gsock), "g0");
	upfx_sockp(&f->d, nsock, sizeof(nsock), "n0");
	snprintf(gdev, sizeof(gdev), "gpio,socket=%s,toggle_period=3", gsock);
	snprintf(ndev, sizeof(ndev), "nvme,socket=%s,backend=ram,size=16M,queues=2", nsock);
	upfx_dstart(&f->d, args);

	/* GPIO: outputs, the input toggle counters, INTx asserted and automasked */
	f->gpio = g = it_connect(gsock, 0);
	assert_non_null(g);
	f->efd = it_eventfd();
	assert_true(f->efd >= 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(g, VFURT_IRQ_INTX, 0, 1, &f->efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	wr8(g, OUT0_7, 0xa5);
	wr8(g, OUT8_15, 0x5a);
	wr8(g, FILTER_CTL, 0x33);
	assert_int_equal(rd8(g, IN0_7), 0x00); /* in0_7 read 1 */
	assert_int_equal(rd8(g, IN0_7), 0x00); /* 2 */
	assert_int_equal(rd8(g, IRQ_CTL), 1);  /* interrupt enabled */
	assert_int_equal(rd8(g, IN0_7), 0x00); /* 3 */
	assert_int_equal(rd8(g, IN0_7), 0xff); /* 4: a change, INTx raised */
	assert_true(it_readable(f->efd, IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(f->efd), 1);
	wr8(g, IN0_7, 0); /* acknowledge */
	assert_int_equal(rd8(g, IRQ_STATUS), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rd8(g, IN8_15), 0x00); /* in8_15 reads 1..3 */
	assert_int_equal(rd8(g, IN8_15), 0xff);         /* 4: latched, automasked */
	assert_int_equal(rd8(g, IRQ_STATUS), 0x06);
	assert_false(it_readable(f->efd, 50));

	/* NVMe: vector 1 masked by the guest (MSI-X table), vector 2 by the client
	 * (SET_IRQS MASK); a completion on each makes it pending */
	h = io_host(nsock);
	f->l[0].h = h; /* closed by the teardown */
	f->nl = 1;
	nc = nh_client(h);
	assert_int_equal(nh_create_io_pair(h, 2, 64, 2), 0);
	msix_find(nc, &m);
	msix_guest_mask(nc, &m, 1, true);
	assert_int_equal(vfurt_client_set_irqs(nc, VFURT_IRQ_MSIX, 2, 1, VFIO_IRQ_SET_ACTION_MASK,
					       NULL), 0);
	assert_int_equal(nh_write_read_check(h, 1, 1, 11, 512, 0x1111, NULL, NULL), 0);
	assert_int_equal(nh_write_read_check(h, 2, 1, 12, 512, 0x2222, NULL, NULL), 0);
	assert_false(it_readable(nh_vector_fd(h, 1), 0));
	assert_false(it_readable(nh_vector_fd(h, 2), 0));
	assert_true(msix_guest_masked(nc, &m, 1));
	assert_true(msix_pending(nc, &m, 1));
	assert_true(msix_pending(nc, &m, 2));
	assert_false(msix_pending(nc, &m, 0));

	upfx_upgrade_ok(&f->d, VIA_CTL, 2, &u);

	/* masked interrupts stay masked: nothing fires by itself */
	assert_false(it_readable(f->efd, 100));
	assert_false(it_readable(nh_vector_fd(h, 1), 0));
	assert_false(it_readable(nh_vector_fd(h, 2), 0));
	/* GPIO registers and irq state */
	assert_int_equal(rd8(g, OUT0_7), 0xa5);
	assert_int_equal(rd8(g, OUT8_15), 0x5a);
	assert_int_equal(rd8(g, FILTER_CTL), 0x33);
	assert_int_equal(rd8(g, IRQ_STATUS), 0x06);
	assert_int_equal(rd8(g, IRQ_CTL), 1);
	/* the INTx still pending fires on unmask */
	assert_int_equal(vfurt_client_set_irqs(g, VFURT_IRQ_INTX, 0, 1, VFIO_IRQ_SET_ACTION_UNMASK,
					       NULL), 0);
	assert_true(it_readable(f->efd, IT_TIMEOUT_MS));
	assert_int_equal(it_eventfd_take(f->efd), 1);
	/* the toggle counters went on where they were */
	assert_int_equal(rd8(g, IN0_7), 0xff); /* in0_7 read 5 */
	assert_int_equal(rd8(g, IN0_7), 0xff); /* 6 */
	assert_int_equal(rd8(g, IN0_7), 0x00); /* 7 */
	assert_int_equal(rd8(g, IN8_15), 0xff); /* in8_15 read 5 */

	/* MSI-X: masks and pending bits as they were; each unmask delivers */
	assert_true(msix_guest_masked(nc, &m, 1));
	assert_false(msix_guest_masked(nc, &m, 2));
	assert_true(msix_pending(nc, &m, 1));
	assert_true(msix_pending(nc, &m, 2));
	msix_guest_mask(nc, &m, 1, false);
	assert_true(it_readable(nh_vector_fd(h, 1), IT_TIMEOUT_MS));
	assert_int_equal(vfurt_client_set_irqs(nc, VFURT_IRQ_MSIX, 2, 1,
					       VFIO_IRQ_SET_ACTION_UNMASK, NULL), 0);
	assert_true(it_readable(nh_vector_fd(h, 2), IT_TIMEOUT_MS));
	assert_false(msix_pending(nc, &m, 1));
	assert_false(msix_pending(nc, &m, 2));
	(void)it_eventfd_take(nh_vector_fd(h, 1));
	(void)it_eventfd_take(nh_vector_fd(h, 2));
	/* and the queues go on, with interrupts */
	assert_int_equal(nh_write_read_check(h, 1, 1, 13, 512, 0x3333, NULL, NULL), 0);
	assert_int_equal(nh_write_read_check(h, 2, 1, 14, 512, 0x4444, NULL, NULL), 0);
	{
		uint8_t buf[512];
		void *p = nh_alloc(h, 512);

		/* data written before the upgrade */
		assert_non_null(p);
		assert_int_equal(nh_read(h, 1, 1, 11, 1, p, 512, NULL), 0);
		memcpy(buf, p, sizeof(buf));
		assert_true(nh_check(buf, sizeof(buf), 0x1111));
		nh_free(h, p, 512);
	}
	assert_int_equal(upfx_log_errors(&f->d, NULL), 0);
}

/* ---- c. refused upgrades leave the old process serving --------------------------------- */

static void test_upgrade_refused_keeps_serving(void **state)
{
	struct fx *f = *state;
	char n0[192], n1[192], gsock[192], d0[256], d1[256], dg[256], cores[32];
	char v2[256], cbuild[256], crestore[256], missing[256];
	const char *args[] = { cores, "--device", d0, "--device", d1, "--device", dg, NULL };
	/* what the refusals may log as errors (today they are warnings) */
	static const char *const expected[] = { "upgrade", NULL };
	int fds_before;
	pid_t first;
	struct upg u;

	upfx_need_binaries();
	upfx_dinit(&f->d, "c");
	snprintf(cores, sizeof(cores), "--cores=%s", it_cores());
	upfx_sockp(&f->d, n0, sizeof(n0), "n0");
	upfx_sockp(&f->d, n1, sizeof(n1), "n1");
	upfx_sockp(&f->d, gsock, sizeof(gsock), "g0");
	snprintf(d0, sizeof(d0), "nvme,socket=%s,backend=ram,size=32M,queues=2", n0);
	snprintf(d1, sizeof(d1), "nvme,socket=%s,backend=ram,size=32M,queues=2", n1);
	snprintf(dg, sizeof(dg), "gpio,socket=%s", gsock);
	upfx_dstart(&f->d, args);
	first = f->d.pid;
	upfx_write_wrapper(&f->d, "vfu-rt-v2", "VFU_RT_TEST_IMAGE_VERSION=2", v2, sizeof(v2));
	upfx_write_wrapper(&f->d, "vfu-rt-crash-build", "VFU_RT_TEST_CRASH=build", cbuild,
		      sizeof(cbuild));
	upfx_write_wrapper(&f->d, "vfu-rt-crash-restore", "VFU_RT_TEST_CRASH=restore", crestore,
		      sizeof(crestore));
	snprintf(missing, sizeof(missing), "%s/no-such-vfu-rt", f->d.dir);

	load_start(&f->l[0], n0);
	load_start(&f->l[1], n1);
	f->nl = 2;
	f->gpio = it_connect(gsock, 0);
	assert_non_null(f->gpio);
	wr8(f->gpio, OUT0_7, 0x42);
	loads_progress(f->l, f->nl, 200, "before");
	fds_before = upfx_fd_count(f->d.pid);

	upfx_upgrade_refused(&f->d, VIA_CTL, v2, "image version 2", NULL);
	loads_progress(f->l, f->nl, 200, "after the version-2 refusal");
	upfx_upgrade_refused(&f->d, VIA_CTL, cbuild, "crash while building", "signal 6");
	loads_progress(f->l, f->nl, 200, "after the build crash");
	upfx_upgrade_refused(&f->d, VIA_CTL, crestore, "crash while restoring", "signal 6");
	loads_progress(f->l, f->nl, 200, "after the restore crash");
	upfx_upgrade_refused(&f->d, VIA_CTL, missing, "no such file", "No such file");
	loads_progress(f->l, f->nl, 200, "after the missing binary");
	upfx_upgrade_refused(&f->d, VIA_RPC, crestore, "crash while restoring, by RPC", "signal 6");
	loads_progress(f->l, f->nl, 200, "after the RPC refusal");
	upfx_upgrade_refused(&f->d, VIA_CTL_JSON, v2, "image version 2, --json", NULL);
	loads_progress(f->l, f->nl, 200, "after the --json refusal");
	/* the log says each refusal, and why the version-2 binary refused */
	assert_int_equal(upfx_log_count(&f->d, "error -32007: upgrade failed: "), 6);
	assert_true(upfx_log_count(&f->d, "state image format 1") >= 2);
	assert_int_equal(f->d.pid, first);
	assert_int_equal(rd8(f->gpio, OUT0_7), 0x42);
	/* each failed attempt gave back what it opened (the crashed children reaped) */
	{
		long end = upfx_now_ms() + 3000;
		int fds;

		while ((fds = upfx_fd_count(f->d.pid)) != fds_before && upfx_now_ms() < end)
			usleep(10000);
		if (fds > fds_before)
			fail_msg("fd leak in the old process: %d fds before the refusals, %d after",
				 fds_before, fds);
	}

	/* a normal upgrade still works afterwards */
	upfx_upgrade_ok(&f->d, VIA_CTL, 3, &u);
	if (getenv("VFURT_TEST_VERBOSE"))
		fprintf(stderr, "# upgrade after the refusals: pause %.2f ms, command %ld ms\n",
			u.pause_ms, u.took_ms);
	loads_progress(f->l, f->nl, 200, "after the upgrade");
	assert_int_equal(rd8(f->gpio, OUT0_7), 0x42);
	for (size_t k = 0; k < f->nl; k++) {
		load_stop(&f->l[k]);
		load_check(&f->l[k], "at the end");
	}
	assert_int_equal(upfx_log_errors(&f->d, expected), 0);
}

/* ---- d. the file backend: data written before an upgrade is there after ------------------ */

#define FILE_BLOCKS 256u /* 4 KiB writes spread over the 16 MiB namespace */

static uint64_t file_lba(uint32_t i)
{
	return (uint64_t)i * 127u * IO_NLB % (32768u - IO_NLB);
}

static void write_blocks(struct nvme_host *h, void *buf, uint32_t seed0)
{
	for (uint32_t i = 0; i < FILE_BLOCKS; i++) {
		nh_fill(buf, IO_BS, seed0 + i);
		assert_int_equal(nh_write(h, 1, 1, file_lba(i), IO_NLB, buf, IO_BS, NULL), 0);
	}
}

static void check_blocks(struct nvme_host *h, void *buf, uint32_t seed0, const char *when)
{
	for (uint32_t i = 0; i < FILE_BLOCKS; i++) {
		memset(buf, 0, IO_BS);
		assert_int_equal(nh_read(h, 1, 1, file_lba(i), IO_NLB, buf, IO_BS, NULL), 0);
		if (!nh_check(buf, IO_BS, seed0 + i))
			fail_msg("%s: block %u (LBA %llu) lost its data", when, i,
				 (unsigned long long)file_lba(i));
	}
}

static void test_upgrade_file_backend(void **state)
{
	struct fx *f = *state;
	char nsock[192], img[192], ndev[512], out[4096];
	const char *args[] = { "--cores=0", "--device", ndev, NULL };
	struct nvme_host *h;
	struct upg u;
	void *buf;
	int fd;

	upfx_need_binaries();
	upfx_dinit(&f->d, "d");
	upfx_sockp(&f->d, nsock, sizeof(nsock), "n0");
	snprintf(img, sizeof(img), "%s/ns1.img", f->d.dir);
	snprintf(ndev, sizeof(ndev), "nvme,socket=%s,backend=file:%s,size=16M,queues=2", nsock,
		 img);
	upfx_dstart(&f->d, args);
	h = io_host(nsock);
	f->l[0].h = h;
	f->nl = 1;
	buf = nh_alloc(h, IO_BS);
	assert_non_null(buf);

	write_blocks(h, buf, 1000);
	upfx_upgrade_ok(&f->d, VIA_CTL, 1, &u);
	check_blocks(h, buf, 1000, "after the first upgrade");
	/* written by the new process, then another upgrade, by RPC */
	write_blocks(h, buf, 5000);
	assert_int_equal(nh_flush(h, 1, 1), 0);
	upfx_upgrade_ok(&f->d, VIA_RPC, 1, &u);
	check_blocks(h, buf, 5000, "after the second upgrade");
	/* the daemon found by its pid after the upgrades (the PID.ctl link) */
	if (it_run_cmd(out, sizeof(out), "%s --socket %d list 2>&1", VFUCTL, (int)f->d.pid) != 0 ||
	    !strstr(out, "n0"))
		fail_msg("vfu-ctl --socket %d list (the new pid): %s", (int)f->d.pid, out);

	/* the file itself holds the data once the daemon is gone */
	nh_close(h);
	f->l[0].h = NULL;
	assert_int_equal(upfx_dstop(&f->d), 0);
	fd = open(img, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (uint32_t i = 0; i < FILE_BLOCKS; i++) {
		uint8_t b[IO_BS];

		assert_int_equal(pread(fd, b, IO_BS, (off_t)(file_lba(i) * 512u)), IO_BS);
		if (!nh_check(b, IO_BS, 5000 + i))
			fail_msg("the file's block %u (LBA %llu) does not hold the data", i,
				 (unsigned long long)file_lba(i));
	}
	close(fd);
	assert_int_equal(upfx_log_errors(&f->d, NULL), 0);
}

/* ---- e. what the control plane changed, idle devices, ioeventfds, an outstanding AER ------ */

/* Run vfu-ctl --socket d->ctl ARGS; fails the test unless it exits 0. out gets its output. */
static void ctl_ok(const struct dproc *d, char *out, size_t len, const char *args)
{
	int rc = it_run_cmd(out, len, "%s --socket %s %s 2>&1", VFUCTL, d->ctl, args);

	if (rc != 0)
		fail_msg("vfu-ctl %s: exit %d: %s", args, rc, out);
}

/* Read one line from fd within ms into buf: true when a whole line came. */
static bool read_line(int fd, char *buf, size_t cap, int ms)
{
	size_t len = 0;
	long end = upfx_now_ms() + ms;

	while (len + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left = end - upfx_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		n = recv(fd, buf + len, 1, 0);
		if (n <= 0)
			break;
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return true;
		}
		len++;
	}
	buf[len] = '\0';
	return false;
}

static void test_upgrade_keeps_live_changes(void **state)
{
	struct fx *f = *state;
	char n0[192], n1[192], n2[192], cores[32], d0[256], d1[256], spec[512], out[8192];
	char saved[256];
	const char *args[] = { cores, "--device", d0, "--device", d1, NULL };
	/* no_reuse: an I/O queue's worker and then the admin queue's touch the
	 * same guest page in turn, ordered by this host, which TSan cannot see */
	struct nvme_host_opts ho = { .timeout_ms = HOST_TIMEOUT_MS, .mem_size = 4u << 20,
				     .irq_wait = true, .nvec = 4, .doorbell_ioeventfd = true,
				     .no_reuse = true };
	struct nvme_host *h0, *h1, *h2;
	struct nh_cqe cqe;
	uint8_t list[NH_PAGE];
	uint16_t aer;
	struct upg u;

	upfx_need_binaries();
	upfx_dinit(&f->d, "e");
	snprintf(cores, sizeof(cores), "--cores=%s", it_cores());
	upfx_sockp(&f->d, n0, sizeof(n0), "n0");
	upfx_sockp(&f->d, n1, sizeof(n1), "n1");
	upfx_sockp(&f->d, n2, sizeof(n2), "n2");
	/* n0: guest doorbells through ioeventfds and shadow doorbells; n1: nobody attaches
	 * before the upgrade */
	snprintf(d0, sizeof(d0), "nvme,socket=%s,backend=ram,size=16M,queues=2,doorbells=ioeventfd",
		 n0);
	snprintf(d1, sizeof(d1), "nvme,socket=%s,backend=ram,size=16M,queues=2", n1);
	upfx_dstart(&f->d, args);

	/* changes of the running daemon: a device and a namespace added */
	snprintf(spec, sizeof(spec), "add nvme,socket=%s,name=n2,backend=ram,size=8M,queues=2", n2);
	ctl_ok(&f->d, out, sizeof(out), spec);
	ctl_ok(&f->d, out, sizeof(out), "ns-add n0 backend=ram size=4M");

	h0 = nh_open(n0, &ho);
	assert_non_null(h0);
	f->l[0].h = h0;
	f->nl = 3;
	assert_int_equal(nh_enable(h0), 0);
	assert_int_equal(nh_set_num_queues(h0, 2, 2, NULL), 0);
	assert_int_equal(nh_dbbuf_enable(h0), 0);
	assert_int_equal(nh_create_io_pair(h0, 1, 64, 1), 0);
	assert_int_equal(nh_write_read_check(h0, 1, 1, 100, 512, 0xe001, NULL, NULL), 0);
	assert_int_equal(nh_write_read_check(h0, 1, 2, 200, 512, 0xe002, NULL, NULL), 0);
	/* an AER outstanding across the upgrade, Namespace Attribute Notices on */
	assert_int_equal(nh_set_features(h0, 0x0b, 1u << 8, NULL), 0);
	assert_int_equal(nh_aer_submit(h0, &aer), 0);
	h2 = io_host(n2);
	f->l[2].h = h2;
	assert_int_equal(nh_write_read_check(h2, 1, 1, 300, 512, 0xe003, NULL, NULL), 0);

	upfx_upgrade_ok(&f->d, VIA_CTL, 3, &u);

	/* the ioeventfd/shadow-doorbell controller and both namespaces */
	assert_int_equal(nh_write_read_check(h0, 1, 1, 101, 512, 0xe011, NULL, NULL), 0);
	assert_int_equal(nh_write_read_check(h0, 1, 2, 201, 512, 0xe012, NULL, NULL), 0);
	{
		void *p = nh_alloc(h0, 512);

		assert_non_null(p);
		assert_int_equal(nh_read(h0, 1, 2, 200, 1, p, 512, NULL), 0);
		assert_true(nh_check(p, 512, 0xe002));
		nh_free(h0, p, 512);
	}
	assert_int_equal(nh_identify(h0, NH_CNS_NS_ACTIVE_LIST, 0, list), 0);
	assert_int_equal(list[0], 1);
	assert_int_equal(list[4], 2);
	assert_int_equal(list[8], 0);
	/* the AER put out before the upgrade completes on the next namespace change */
	assert_true(nh_outstanding(h0, 0, aer));
	ctl_ok(&f->d, out, sizeof(out), "ns-add n0 backend=ram size=4M");
	assert_int_equal(nh_wait(h0, 0, aer, &cqe, 5000), 0);
	assert_int_equal(cqe.dw0 & 0x7u, 0x2u);          /* notice */
	assert_int_equal((cqe.dw0 >> 16) & 0xffu, 0x04u); /* log page 04h */
	/* the device added live before the upgrade */
	assert_int_equal(nh_write_read_check(h2, 1, 1, 301, 512, 0xe013, NULL, NULL), 0);
	/* the idle one takes its first client */
	h1 = io_host(n1);
	f->l[1].h = h1;
	assert_int_equal(nh_write_read_check(h1, 1, 1, 400, 512, 0xe014, NULL, NULL), 0);
	/* the running configuration as config_save writes it has every change */
	snprintf(saved, sizeof(saved), "%s/saved.json", f->d.dir);
	snprintf(spec, sizeof(spec), "config-save %s", saved);
	ctl_ok(&f->d, out, sizeof(out), spec);
	assert_int_equal(it_run_cmd(out, sizeof(out), "cat %s", saved), 0);
	if (!strstr(out, "\"name\": \"n2\"") || !strstr(out, "\"nsid\": 2") ||
	    !strstr(out, "\"nsid\": 3"))
		fail_msg("config_save after the upgrade lacks n2 or n0's namespaces 2 and 3: %s", out);

	assert_int_equal(upfx_log_errors(&f->d, NULL), 0);
}

/* ---- f. requests that meet an upgrade -------------------------------------------------- */

/* A daemon with an NVMe controller under verified I/O and a GPIO card. */
static void start_small(struct fx *f, const char *tag)
{
	static char n0[192], g0[192], d0[256], dg[256];
	const char *args[] = { "--cores=0", "--device", d0, "--device", dg, NULL };

	upfx_dinit(&f->d, tag);
	upfx_sockp(&f->d, n0, sizeof(n0), "n0");
	upfx_sockp(&f->d, g0, sizeof(g0), "g0");
	snprintf(d0, sizeof(d0), "nvme,socket=%s,backend=ram,size=16M,queues=2", n0);
	snprintf(dg, sizeof(dg), "gpio,socket=%s", g0);
	upfx_dstart(&f->d, args);
	load_start(&f->l[0], n0);
	f->nl = 1;
	loads_progress(f->l, f->nl, 100, "before");
}

/* Two upgrade requests at once, on two connections: each is answered, at
 * least one succeeds, a refusal names the process that really serves on, and
 * the I/O never fails. */
static void test_upgrade_two_at_once(void **state)
{
	struct fx *f = *state;
	char line[2][4096];
	int req[2], ok = 0;

	upfx_need_binaries();
	start_small(f, "f1");
	for (int i = 0; i < 2; i++) {
		req[i] = upfx_connect_unix(f->d.ctl);
		assert_true(req[i] >= 0);
	}
	for (int i = 0; i < 2; i++) {
		static const char r[] =
			"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"upgrade\",\"params\":{}}\n";

		assert_int_equal(send(req[i], r, sizeof(r) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(r) - 1);
	}
	for (int i = 0; i < 2; i++) {
		long t0 = upfx_now_ms();

		if (!read_line(req[i], line[i], sizeof(line[i]), 40000))
			fail_msg("concurrent upgrade %d: no answer after %ld ms (%s; got '%s'; the "
				 "other: '%s')", i, upfx_now_ms() - t0,
				 upfx_now_ms() - t0 < 39000 ? "the connection was closed" : "timed out",
				 line[i], i ? line[0] : "");
		close(req[i]);
		ok += strstr(line[i], "\"result\"") != NULL;
	}
	if (!ok)
		fail_msg("concurrent upgrades: neither succeeded: %s | %s", line[0], line[1]);
	/* follow the chain of successors to the serving process (either answer may
	 * be the first upgrade) */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < 2; i++) {
			struct json_object *o = json_tokener_parse(line[i]), *r;

			if (o && json_object_object_get_ex(o, "result", &r) &&
			    upfx_jint(r, "old_pid") == f->d.pid) {
				assert_int_equal(upfx_wait_exit(f->d.pid, 10000), 0);
				f->d.pid = (pid_t)upfx_jint(r, "new_pid");
			}
			json_object_put(o);
		}
	}
	assert_int_equal(kill(f->d.pid, 0), 0);
	loads_progress(f->l, f->nl, 100, "after the concurrent upgrades");
	if (getenv("VFURT_TEST_VERBOSE"))
		fprintf(stderr, "# concurrent upgrades: %s | %s\n", line[0], line[1]);
	/* a refusal says who still serves: that process must be the one serving */
	for (int i = 0; i < 2; i++) {
		const char *p = strstr(line[i], "still serving (pid ");
		long pid;

		if (p && sscanf(p, "still serving (pid %ld)", &pid) == 1 && pid != f->d.pid)
			fail_msg("concurrent upgrade %d was refused saying pid %ld still serves, but pid "
				 "%d serves (%s)", i, pid, (int)f->d.pid, line[i]);
	}
	load_stop(&f->l[0]);
	load_check(&f->l[0], "at the end");
}

/* A device_add sent while an upgrade runs: refused, or done and kept by the
 * process that serves afterwards (never answered "done" and then lost). */
static void test_upgrade_meets_device_add(void **state)
{
	struct fx *f = *state;
	char line[2][4096], out[8192];
	int req[2];

	upfx_need_binaries();
	start_small(f, "f2");
	{
		static const char upg[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"upgrade\"}\n";
		char g3[192], add[600];
		pid_t before = f->d.pid;

		upfx_sockp(&f->d, g3, sizeof(g3), "g3");
		req[0] = upfx_connect_unix(f->d.ctl); /* the upgrade's connection first */
		req[1] = upfx_connect_unix(f->d.ctl);
		assert_true(req[0] >= 0 && req[1] >= 0);
		snprintf(add, sizeof(add), "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"device_add\","
			 "\"params\":{\"type\":\"gpio\",\"socket\":\"%s\",\"name\":\"g3\"}}\n", g3);
		assert_int_equal(send(req[1], add, strlen(add), MSG_NOSIGNAL), (ssize_t)strlen(add));
		assert_int_equal(send(req[0], upg, sizeof(upg) - 1, MSG_NOSIGNAL),
				 (ssize_t)sizeof(upg) - 1);
		for (int i = 0; i < 2; i++) {
			(void)read_line(req[i], line[i], sizeof(line[i]), 40000);
			close(req[i]);
		}
		if (strstr(line[0], "\"result\"")) {
			struct json_object *o = json_tokener_parse(line[0]), *r;

			assert_true(o && json_object_object_get_ex(o, "result", &r));
			assert_int_equal(upfx_jint(r, "old_pid"), before);
			assert_int_equal(upfx_wait_exit(before, 10000), 0);
			f->d.pid = (pid_t)upfx_jint(r, "new_pid");
			json_object_put(o);
		}
		if (getenv("VFURT_TEST_VERBOSE"))
			fprintf(stderr, "# upgrade | device_add at once: %s | %s\n", line[0], line[1]);
		ctl_ok(&f->d, out, sizeof(out), "list");
		if (strstr(line[1], "\"result\"") && !strstr(out, "g3"))
			fail_msg("device_add during an upgrade was answered '%s' but the serving process "
				 "(pid %d) does not have g3: %s", line[1], (int)f->d.pid, out);
	}
	loads_progress(f->l, f->nl, 100, "after");
	load_stop(&f->l[0]);
	load_check(&f->l[0], "at the end");
}

/* One datagram from a notify socket within ms, NUL-terminated; false when
 * none came. */
static bool notify_recv(int fd, char *buf, size_t cap, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return false;
	n = recv(fd, buf, cap - 1, 0);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* Under a Type=notify unit (NOTIFY_SOCKET), the daemon says READY=1 with its
 * MAINPID, and after an upgrade its successor says the same with the new
 * pid, so that systemd follows the main process (NotifyAccess=all). */
static void test_upgrade_notifies_systemd(void **state)
{
	struct fx *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char msg[256], want[64];
	struct upg u;
	int nfd;

	upfx_need_binaries();
	upfx_dinit(&f->d, "n");
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/notify", f->d.dir);
		assert_true(strlen(path) < sizeof(sa.sun_path));
		memcpy(sa.sun_path, path, strlen(path) + 1);
	}
	nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(nfd >= 0);
	assert_int_equal(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	{
		static char g0[192], dg[256];
		const char *args[] = { "--cores=0", "--device", dg, NULL };

		upfx_sockp(&f->d, g0, sizeof(g0), "g0");
		snprintf(dg, sizeof(dg), "gpio,socket=%s", g0);
		upfx_dstart(&f->d, args);
	}
	unsetenv("NOTIFY_SOCKET"); /* the daemon keeps its own copy */
	assert_true(notify_recv(nfd, msg, sizeof(msg), 10000));
	snprintf(want, sizeof(want), "READY=1\nMAINPID=%d", (int)f->d.pid);
	assert_string_equal(msg, want);
	upfx_upgrade_ok(&f->d, VIA_CTL, 1, &u);
	assert_true(notify_recv(nfd, msg, sizeof(msg), 10000));
	snprintf(want, sizeof(want), "READY=1\nMAINPID=%ld", u.new_pid);
	assert_string_equal(msg, want);
	/* and STOPPING=1 when it stops */
	assert_int_equal(upfx_dstop(&f->d), 0);
	assert_true(notify_recv(nfd, msg, sizeof(msg), 10000));
	assert_string_equal(msg, "STOPPING=1");
	close(nfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_upgrade_20_under_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_keeps_irq_and_gpio_state, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_refused_keeps_serving, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_file_backend, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_keeps_live_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_two_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_meets_device_add, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_notifies_systemd, setup, teardown),
	};

	/* the successors of a daemon we started are reparented to us, so that
	 * their exit status can be collected */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
		perror("PR_SET_CHILD_SUBREAPER");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* UPGRADE_TEST=pattern runs only the matching cases (debugging) */
	if (getenv("UPGRADE_TEST"))
		cmocka_set_test_filter(getenv("UPGRADE_TEST"));
	return cmocka_run_group_tests_name("integration: live upgrade", tests, NULL, NULL);
}
