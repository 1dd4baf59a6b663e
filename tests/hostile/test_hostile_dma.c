/* Hostile clients and DMA windows: map floods against max_dma_maps and the process-wide quota. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/hostile.h"

#define PG 4096ull
#define IOVA 0x100000000ull
#define RW (VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE)

/* A small quota so that a test crosses it in well under a second: three
 * devices reserve 64 each, the shared rest is 1,200 - 192. */
#define QUOTA 1200u
#define MIN_PER 64u

static const struct vfurt_conn_opts quota_limits = {
	.opts_size = sizeof(struct vfurt_conn_opts),
	.max_dma_maps = 65535,
	.dma_maps_process_max = QUOTA,
	.dma_maps_min_per_client = MIN_PER,
};

static const struct vfurt_conn_opts per_client_limits = {
	.opts_size = sizeof(struct vfurt_conn_opts),
	.max_dma_maps = 100,
};

static int setup(void **state, bool rt, const struct vfurt_conn_opts *conn)
{
	struct hx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	assert_int_equal(hx_start_n(x, rt, conn, 3), 0);
	*state = x;
	return 0;
}

static int setup_quota_rt(void **state)
{
	return setup(state, true, &quota_limits);
}

static int setup_quota_srv(void **state)
{
	return setup(state, false, &quota_limits);
}

static int setup_limit_rt(void **state)
{
	return setup(state, true, &per_client_limits);
}

static int setup_limit_srv(void **state)
{
	return setup(state, false, &per_client_limits);
}

static int setup_default_rt(void **state)
{
	return setup(state, true, NULL);
}

static int teardown(void **state)
{
	struct hx *x = *state;
	int rc = hx_finish(x);

	free(x);
	return rc;
}

/* Guest RAM as QEMU gives it: a memfd sealed against shrinking (so the
 * windows take no fault guard slot). */
static int sealed_memfd(size_t size)
{
	int fd = memfd_create("hostile-dma", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	return fd;
}

/* Mappings of this process (what vm.max_map_count bounds). */
static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, ch;

	assert_non_null(f);
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* Map 4 KiB fd-backed windows from page `first` on until one is refused or
 * `max` are mapped; returns how many were, the refusal in *err. */
static unsigned map_flood(struct vfurt_client *c, int memfd, unsigned first, unsigned max,
			  int *err)
{
	unsigned n = 0;

	*err = 0;
	while (n < max) {
		int rc = vfurt_client_dma_map(c, IOVA + (uint64_t)(first + n) * PG, PG, memfd, 0, RW,
					      VFURT_CLIENT_DMA_SEND_FD);

		if (rc) {
			*err = rc;
			break;
		}
		n++;
	}
	return n;
}

static size_t log_count(struct hx *x, const char *needle)
{
	size_t n = 0;

	pthread_mutex_lock(&x->lc.lock);
	for (const char *p = x->lc.buf; (p = strstr(p, needle)); p++)
		n++;
	pthread_mutex_unlock(&x->lc.lock);
	return n;
}

/*
 * One client maps fd-backed windows until the process-wide quota refuses
 * it (ENOMEM, one log line naming the quota); meanwhile the victim answers
 * its probe, and a bystander device's client still maps its reserved
 * windows. When the attacker leaves, its windows, fds and mappings are all
 * returned and the bystander can map beyond its reservation.
 */
static void test_map_flood_process_quota(void **state)
{
	struct hx *x = *state;
	const unsigned attacker_max = QUOTA - 3 * MIN_PER + MIN_PER;
	int memfd = sealed_memfd(PG);
	struct vfurt_client *a, *b;
	long rss0, rss1;
	int fds0, maps0, err;
	unsigned n;

	fds0 = test_count_fds();
	maps0 = count_maps();
	rss0 = hostile_rss_kib();
	a = it_connect(testsrv_path(x->ts, 1), 0);
	assert_non_null(a);
	n = map_flood(a, memfd, 0, 65535, &err);
	fprintf(stderr, "attacker: %u fd-backed windows, then %s\n", n, strerror(-err));
	assert_int_equal(err, -ENOMEM);
	assert_int_equal(n, attacker_max); /* its reservation + all the shared room */
	assert_true(logcap_wait(&x->lc, "process-wide quota of fd-backed DMA windows "
				"(dma_maps_process_max 1200) is used up", 1000));
	/* it keeps trying: refused again, the connection stays up */
	assert_int_equal(map_flood(a, memfd, n, 100, &err), 0);
	assert_int_equal(err, -ENOMEM);
	assert_true(it_alive(a));

	/* the bystander gets exactly its reservation while the attacker holds
	 * the rest; its non-fd windows take no mapping and are not counted */
	b = it_connect(testsrv_path(x->ts, 2), 0);
	assert_non_null(b);
	n = map_flood(b, memfd, 0, 1000, &err);
	assert_int_equal(n, MIN_PER);
	assert_int_equal(err, -ENOMEM);
	{
		static uint8_t guest[PG] __attribute__((aligned(4096)));

		assert_int_equal(vfurt_client_dma_map_mem(b, IOVA + 4096 * PG, PG, guest, RW, 0), 0);
	}

	/* the attacker leaves: everything it held comes back */
	vfurt_client_close(a);
	assert_int_equal(it_wait_ctr(&x->st[1]->detach, 1), 1);
	n = map_flood(b, memfd, MIN_PER, 500, &err);
	assert_int_equal(n, 500);
	vfurt_client_close(b);
	assert_int_equal(it_wait_ctr(&x->st[2]->detach, 1), 1);
	assert_int_equal(it_wait_fds(fds0), fds0);
	rss1 = hostile_rss_kib();
	fprintf(stderr, "after both left: mappings %d -> %d, RSS %+ld KiB\n", maps0, count_maps(),
		rss1 - rss0);
	/* the attacker held 1,072 mappings and the bystander 564: what is left
	 * is the allocator's own (ASan's maps a few dozen regions) */
	assert_true(count_maps() <= maps0 + 64);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	(void)rss1; /* freed memory is held back (quarantine); the leak check covers it */
#else
	assert_true(rss1 - rss0 < 16 * 1024);
#endif
	close(memfd);
}

/*
 * max_dma_maps is per client and advertised in VERSION: the 101st window
 * is refused with ENOSPC and a log line naming the limit, and a flood of
 * refused maps costs the log a few lines, not one each.
 */
static void test_map_flood_per_client_limit(void **state)
{
	struct hx *x = *state;
	int memfd = sealed_memfd(PG);
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct vfurt_client *a;
	int err, refused = 0;
	size_t lines;

	a = it_connect(testsrv_path(x->ts, 1), 0);
	assert_non_null(a);
	assert_int_equal(vfurt_client_get_caps(a, &caps), 0);
	assert_int_equal(caps.max_dma_maps, 100);
	assert_int_equal(map_flood(a, memfd, 0, 1000, &err), 100);
	assert_int_equal(err, -ENOSPC);
	assert_true(logcap_wait(&x->lc, "the client holds max_dma_maps (100) windows", 1000));
	for (int i = 0; i < 1000; i++) {
		static uint8_t guest[PG] __attribute__((aligned(4096)));

		if (vfurt_client_dma_map_mem(a, IOVA + (200 + (uint64_t)i) * PG, PG, guest, RW, 0) ==
		    -ENOSPC)
			refused++;
	}
	assert_int_equal(refused, 1000);
	lines = log_count(x, "DMA_MAP iova");
	fprintf(stderr, "1001 refused maps, %zu log lines\n", lines);
	assert_true(lines <= 40); /* LOG_RL_BURST 20, then 10 a second */
	/* unmapping one makes room for one */
	assert_int_equal(vfurt_client_dma_unmap(a, IOVA + 5 * PG, PG, 0), 0);
	assert_int_equal(vfurt_client_dma_map(a, IOVA + 5 * PG, PG, memfd, 0, RW,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_true(it_alive(a));
	vfurt_client_close(a);
	assert_int_equal(it_wait_ctr(&x->st[1]->detach, 1), 1);
	/* the next client starts from zero */
	a = it_reconnect(testsrv_path(x->ts, 1), 0);
	assert_non_null(a);
	assert_int_equal(map_flood(a, memfd, 0, 100, &err), 100);
	vfurt_client_close(a);
	close(memfd);
}

/* Without configuration: 1,024 windows per client (not the spec's 65,535). */
static void test_default_max_dma_maps(void **state)
{
	struct hx *x = *state;
	int memfd = sealed_memfd(PG);
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct vfurt_client *a = it_connect(testsrv_path(x->ts, 1), 0);
	int err;

	assert_non_null(a);
	assert_int_equal(vfurt_client_get_caps(a, &caps), 0);
	assert_int_equal(caps.max_dma_maps, 1024);
	assert_int_equal(map_flood(a, memfd, 0, 2000, &err), 1024);
	assert_int_equal(err, -ENOSPC);
	/* unmap all in one message: the table empties without allocating */
	assert_int_equal(vfurt_client_dma_unmap(a, 0, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL), 0);
	assert_int_equal(map_flood(a, memfd, 0, 10, &err), 10);
	vfurt_client_close(a);
	close(memfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_map_flood_process_quota, setup_quota_rt,
						teardown),
		cmocka_unit_test_setup_teardown(test_map_flood_process_quota, setup_quota_srv,
						teardown),
		cmocka_unit_test_setup_teardown(test_map_flood_per_client_limit, setup_limit_rt,
						teardown),
		cmocka_unit_test_setup_teardown(test_map_flood_per_client_limit, setup_limit_srv,
						teardown),
		cmocka_unit_test_setup_teardown(test_default_max_dma_maps, setup_default_rt,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
