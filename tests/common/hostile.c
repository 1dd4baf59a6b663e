/* Hostile-client tests: a victim probe, a log capture, and the servers they attack. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/hostile.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- log capture -------------------------------------------------------- */

static void logcap_fn(void *arg, int level, const char *msg)
{
	struct logcap *lc = arg;
	size_t n = strlen(msg);

	(void)level;
	if (getenv("VFURT_TEST_VERBOSE"))
		fprintf(stderr, "hostile: %s\n", msg);
	pthread_mutex_lock(&lc->lock);
	if (lc->len + n + 2 < sizeof(lc->buf)) {
		memcpy(lc->buf + lc->len, msg, n);
		lc->len += n;
		lc->buf[lc->len++] = '\n';
		lc->buf[lc->len] = '\0';
	}
	pthread_mutex_unlock(&lc->lock);
}

void logcap_init(struct logcap *lc)
{
	pthread_mutex_init(&lc->lock, NULL);
	lc->len = 0;
	lc->buf[0] = '\0';
}

struct vfurt_log logcap_log(struct logcap *lc)
{
	return (struct vfurt_log){ .fn = logcap_fn, .arg = lc, .level = VFURT_LOG_DEBUG };
}

bool logcap_wait(struct logcap *lc, const char *needle, int ms)
{
	for (int i = 0; i <= ms / 10; i++) {
		bool seen;

		pthread_mutex_lock(&lc->lock);
		seen = strstr(lc->buf, needle) != NULL;
		pthread_mutex_unlock(&lc->lock);
		if (seen)
			return true;
		usleep(10000);
	}
	fprintf(stderr, "log has no \"%s\"; it has:\n%s", needle, lc->buf);
	return false;
}

/* ---- probe -------------------------------------------------------------- */

static void *probe_main(void *arg)
{
	struct probe *p = arg;
	uint64_t last = mono_ns();

	while (!atomic_load(&p->stop)) {
		uint32_t v;
		uint64_t now;
		int rc = it_rd32(p->c, VFURT_REGION_BAR0, 0x10, &v);

		if (rc) {
			atomic_store(&p->error, rc);
			break;
		}
		now = mono_ns();
		if (now - last > atomic_load(&p->max_gap_ns))
			atomic_store(&p->max_gap_ns, now - last);
		last = now;
		atomic_fetch_add(&p->reads, 1);
		usleep(1000);
	}
	return NULL;
}

int probe_start(struct probe *p, const char *path)
{
	memset(p, 0, sizeof(*p));
	p->c = it_connect(path, 0);
	if (!p->c)
		return -errno;
	if (pthread_create(&p->thread, NULL, probe_main, p)) {
		vfurt_client_close(p->c);
		p->c = NULL;
		return -EAGAIN;
	}
	return 0;
}

long probe_stop(struct probe *p)
{
	long gap;

	if (!p->c)
		return -1;
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
	vfurt_client_close(p->c);
	p->c = NULL;
	if (atomic_load(&p->error)) {
		fprintf(stderr, "probe: read failed: %d\n", atomic_load(&p->error));
		return -1;
	}
	gap = (long)(atomic_load(&p->max_gap_ns) / 1000000u);
	fprintf(stderr, "probe: %lu reads, longest gap %ld ms\n",
		(unsigned long)atomic_load(&p->reads), gap);
	return gap;
}

/* ---- the server under attack -------------------------------------------- */

int hx_start_n(struct hx *x, bool rt, const struct vfurt_conn_opts *conn, int ndevs)
{
	static const char *const names[HX_MAX_DEVS] = { "victim", "attacked", "bystander" };
	struct vfurt_dev *devs[HX_MAX_DEVS];

	memset(x, 0, sizeof(*x));
	if (ndevs < 2 || ndevs > HX_MAX_DEVS)
		return -EINVAL;
	x->ndevs = ndevs;
	logcap_init(&x->lc);
	x->base_fds = test_count_fds();
	for (int i = 0; i < ndevs; i++) {
		struct testdev_opts d = { .log = logcap_log(&x->lc) };

		devs[i] = testdev_create(names[i], &d, &x->st[i]);
		if (!devs[i])
			return -ENOMEM;
	}
	/* one worker for all: the attacker's home is the victim's */
	x->ts = rt ? testsrv_start_rt(devs, (size_t)ndevs, conn, "0", VFURT_POLL_ADAPTIVE)
		   : testsrv_start(devs, (size_t)ndevs, conn);
	if (!x->ts)
		return -EIO;
	return probe_start(&x->probe, testsrv_path(x->ts, 0));
}

int hx_start(struct hx *x, bool rt, const struct vfurt_conn_opts *conn)
{
	return hx_start_n(x, rt, conn, 2);
}

int hx_finish(struct hx *x)
{
	long gap = probe_stop(&x->probe);

	testsrv_stop(x->ts);
	for (int i = 0; i < x->ndevs; i++)
		testdev_stats_free(x->st[i]);
	if (gap < 0 || gap > HOSTILE_MAX_GAP_MS) {
		fprintf(stderr, "victim stalled: longest gap %ld ms (bound %d)\n", gap,
			HOSTILE_MAX_GAP_MS);
		return -1;
	}
	return it_check_fds(x->base_fds);
}

long hostile_rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, rss = 0;

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}
