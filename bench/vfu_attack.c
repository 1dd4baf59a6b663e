/*
 * vfu-attack: hostile vfio-user clients, and a victim probe, for the isolation benchmark
 * (bench/isolation.sh). It attacks one device socket for a while, the way
 * tests/hostile/ does, so that the victim's latency can be measured beside it:
 *
 *   slow-reader  requests 4 KiB region reads and never reads the replies;
 *                reconnects when the server cuts it off
 *   squatter     connects and never sends VERSION; reconnects when closed
 *   map-storm    DMA-maps 4 KiB memfd windows up to the server's quota,
 *                unmaps them all, again
 *   probe        the victim: reads a register (config space) every
 *                millisecond and prints the p50/p99/max latency and the
 *                longest gap between two answers
 *   map-timed    (SECONDS is a count N here, then fd or mem) DMA-maps N
 *                4 KiB windows in ascending order, each waiting for its
 *                reply, and prints the time they took; fd: each window
 *                sends a memfd (the server mmaps it); mem: no fd (table
 *                work only); fd-posted, mem-posted: the same without
 *                waiting for each reply (No_reply), then one
 *                DEVICE_GET_INFO round trip, so that the time is the
 *                server's, not N round trips. Then unmaps them all.
 *
 * usage: vfu-attack MODE SOCKET SECONDS
 *        vfu-attack map-timed SOCKET N fd|mem|fd-posted|mem-posted
 * Prints one line: what it did (rounds, disconnects, maps, refusals).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vfurt/client.h>
#include <vfurt/vfio_user.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct vfurt_client *connect_retry(const char *path, double until)
{
	struct vfurt_client_opts o = { .opts_size = sizeof(o), .timeout_ms = 2000 };

	while (now_s() < until) {
		struct vfurt_client *c = vfurt_client_connect(path, &o);

		if (c)
			return c;
		usleep(20000);
	}
	return NULL;
}

/* Send one REGION_READ without waiting; 0, or -errno (cut off). */
static int send_read(struct vfurt_client *c)
{
	struct {
		struct vfio_user_header h;
		struct vfio_user_region_access a;
	} __attribute__((packed)) m = {
		.h = { .msg_id = vfurt_client_next_msg_id(c), .cmd = VFIO_USER_REGION_READ,
		       .msg_size = sizeof(m) },
		.a = { .offset = 0, .region = VFIO_PCI_BAR0_REGION_INDEX, .count = 4096 },
	};

	return vfurt_client_send_raw(c, &m, sizeof(m), NULL, 0);
}

static void slow_reader(const char *path, double until)
{
	unsigned long sent = 0, cuts = 0;

	while (now_s() < until) {
		struct vfurt_client *c = connect_retry(path, until);

		if (!c)
			break;
		/* until the server stops reading (our buffer fills) or cuts us */
		while (now_s() < until && send_read(c) == 0)
			sent++;
		/* wait for the cut, never reading a reply */
		while (now_s() < until) {
			struct pollfd p = { .fd = vfurt_client_fd(c), .events = POLLRDHUP };

			if (poll(&p, 1, 50) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR)))
				break;
		}
		cuts++;
		vfurt_client_close(c);
	}
	printf("slow-reader: %lu reads sent unread, %lu connections\n", sent, cuts);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void probe(const char *path, double until)
{
	struct vfurt_client *c = connect_retry(path, until);
	size_t cap = 1u << 20, n = 0;
	double *lat = malloc(cap * sizeof(*lat));
	double last, gap = 0;

	if (!c || !lat) {
		fprintf(stderr, "probe: cannot connect\n");
		exit(1);
	}
	last = now_s();
	while (now_s() < until && n < cap) {
		uint32_t v;
		double t0 = now_s(), t1;

		if (vfurt_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, 0, &v, 4)) {
			fprintf(stderr, "probe: read failed\n");
			exit(1);
		}
		t1 = now_s();
		lat[n++] = (t1 - t0) * 1e6;
		if (t1 - last > gap)
			gap = t1 - last;
		last = t1;
		usleep(1000);
	}
	qsort(lat, n, sizeof(*lat), cmp_double);
	printf("probe: %zu reads, latency p50 %.0f us p99 %.0f us max %.0f us, longest gap %.0f ms\n",
	       n, n ? lat[n / 2] : 0, n ? lat[n * 99 / 100] : 0, n ? lat[n - 1] : 0, gap * 1e3);
	free(lat);
	vfurt_client_close(c);
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void squatter(const char *path, double until)
{
	unsigned long rounds = 0;

	while (now_s() < until) {
		int fd = raw_connect(path);
		struct pollfd p = { .events = POLLIN };
		char b;

		if (fd < 0) {
			usleep(20000);
			continue;
		}
		p.fd = fd;
		/* hold the slot until the server closes it */
		while (now_s() < until && !(poll(&p, 1, 50) > 0 && recv(fd, &b, 1, MSG_DONTWAIT) <= 0))
			;
		close(fd);
		rounds++;
	}
	printf("squatter: %lu connections held until closed\n", rounds);
}

static void map_storm(const char *path, double until)
{
	struct vfurt_client *c = connect_retry(path, until);
	int mfd = memfd_create("vfu-attack", MFD_CLOEXEC);
	unsigned long maps = 0, refused = 0;

	if (!c || mfd < 0 || ftruncate(mfd, 4096) < 0) {
		fprintf(stderr, "map-storm: cannot connect or create memory\n");
		exit(1);
	}
	while (now_s() < until) {
		uint64_t n = 0;

		for (; now_s() < until; n++) {
			int rc = vfurt_client_dma_map(c, 0x100000000ull + n * 4096, 4096, mfd, 0,
						      VFIO_USER_DMA_MAP_FLAG_READ |
							      VFIO_USER_DMA_MAP_FLAG_WRITE,
						      VFURT_CLIENT_DMA_SEND_FD);

			if (rc) {
				refused++;
				break;
			}
			maps++;
		}
		/* unmap all; a server without FLAG_ALL: one by one */
		if (vfurt_client_dma_unmap(c, 0, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL) != 0)
			for (uint64_t i = 0; i < n; i++)
				(void)vfurt_client_dma_unmap(c, 0x100000000ull + i * 4096, 4096, 0);
	}
	printf("map-storm: %lu maps, %lu refused at the quota\n", maps, refused);
	vfurt_client_close(c);
	close(mfd);
}

static void map_timed(const char *path, unsigned long n, bool with_fd, bool posted)
{
	struct vfurt_client *c = connect_retry(path, now_s() + 5);
	/* sealed as QEMU does, so that the windows take no fault guard slot */
	int mfd = memfd_create("vfu-attack", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	static uint8_t mem[4096] __attribute__((aligned(4096)));
	unsigned long done = 0, step = n / 8 ? n / 8 : 1;
	double t0, t1, last;
	int rc = 0;

	if (!c || mfd < 0 || ftruncate(mfd, 4096) < 0 || fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
		fprintf(stderr, "map-timed: cannot connect or create memory\n");
		exit(1);
	}
	t0 = last = now_s();
	for (; done < n; done++) {
		uint64_t iova = 0x100000000ull + done * 4096;

		rc = with_fd ? vfurt_client_dma_map(c, iova, 4096, mfd, 0,
						    VFIO_USER_DMA_MAP_FLAG_READ |
							    VFIO_USER_DMA_MAP_FLAG_WRITE,
						    VFURT_CLIENT_DMA_SEND_FD |
							    (posted ? VFURT_CLIENT_DMA_POSTED : 0))
			     : vfurt_client_dma_map_mem(c, iova, 4096, mem,
							VFIO_USER_DMA_MAP_FLAG_READ |
								VFIO_USER_DMA_MAP_FLAG_WRITE,
							posted ? VFURT_CLIENT_DMA_POSTED : 0);
		if (rc)
			break;
		if ((done + 1) % step == 0) {
			double t = now_s();

			printf("map-timed: %lu maps, last %lu in %.3f s\n", done + 1, step, t - last);
			last = t;
		}
	}
	if (posted) {
		struct vfio_user_device_info info;

		/* answered after every map before it */
		if (vfurt_client_device_info(c, &info))
			fprintf(stderr, "map-timed: the server did not answer\n");
	}
	t1 = now_s();
	printf("map-timed: %lu %s maps in %.3f s (%.1f us each)%s%s\n", done,
	       with_fd ? "fd-backed" : "fd-less", t1 - t0, done ? (t1 - t0) * 1e6 / done : 0.0,
	       rc ? ", then refused: " : "", rc ? strerror(-rc) : "");
	t0 = now_s();
	if (vfurt_client_dma_unmap(c, 0, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL) != 0)
		fprintf(stderr, "map-timed: unmap all failed\n");
	printf("map-timed: unmap all in %.3f s\n", now_s() - t0);
	vfurt_client_close(c);
	close(mfd);
}

int main(int argc, char **argv)
{
	double until;

	if (argc == 5 && !strcmp(argv[1], "map-timed")) {
		map_timed(argv[2], strtoul(argv[3], NULL, 10), !strncmp(argv[4], "fd", 2),
			  strstr(argv[4], "-posted") != NULL);
		return 0;
	}
	if (argc != 4) {
		fprintf(stderr, "usage: vfu-attack slow-reader|squatter|map-storm|probe SOCKET SECONDS\n"
				"       vfu-attack map-timed SOCKET N fd|mem|fd-posted|mem-posted\n");
		return 2;
	}
	until = now_s() + atof(argv[3]);
	if (!strcmp(argv[1], "slow-reader"))
		slow_reader(argv[2], until);
	else if (!strcmp(argv[1], "squatter"))
		squatter(argv[2], until);
	else if (!strcmp(argv[1], "map-storm"))
		map_storm(argv[2], until);
	else if (!strcmp(argv[1], "probe"))
		probe(argv[2], until);
	else {
		fprintf(stderr, "vfu-attack: unknown mode '%s'\n", argv[1]);
		return 2;
	}
	return 0;
}
