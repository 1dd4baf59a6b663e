/* Integration test helpers (see it_util.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/it_util.h"
#include "hostsim/nvme_host.h"

const char *it_cores(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? "0-1" : "0";
}

struct vfurt_client_opts it_opts(uint32_t flags)
{
	struct vfurt_client_opts o = {
		.opts_size = sizeof(o),
		.flags = flags,
		.timeout_ms = IT_TIMEOUT_MS,
	};

	return o;
}

struct vfurt_client *it_connect(const char *path, uint32_t flags)
{
	struct vfurt_client_opts o = it_opts(flags);

	return vfurt_client_connect(path, &o);
}

static int64_t it_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void it_nap(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 2 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

struct vfurt_client *it_connect_retry(const char *path, const struct vfurt_client_opts *opts)
{
	int64_t end = it_now_ms() + IT_SETTLE_MS;
	struct vfurt_client *c;

	for (;;) {
		c = vfurt_client_connect(path, opts);
		if (c || it_now_ms() > end)
			return c;
		/* refused because the server has not dropped the old client yet */
		if (errno != ECONNRESET && errno != EPIPE)
			return NULL;
		it_nap();
	}
}

struct vfurt_client *it_reconnect(const char *path, uint32_t flags)
{
	struct vfurt_client_opts o = it_opts(flags);

	return it_connect_retry(path, &o);
}

int it_memfd(size_t size)
{
	int fd = memfd_create("it-dma", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int it_eventfd(void)
{
	return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

bool it_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

uint64_t it_eventfd_take(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;
	return v;
}

unsigned it_wait_ctr(atomic_uint *ctr, unsigned want)
{
	int64_t end = it_now_ms() + IT_SETTLE_MS;
	unsigned v;

	while ((v = atomic_load(ctr)) < want && it_now_ms() <= end)
		it_nap();
	return v;
}

int it_wait_fds(int want)
{
	int64_t end = it_now_ms() + IT_SETTLE_MS;
	int n;

	while ((n = test_count_fds()) != want && it_now_ms() <= end)
		it_nap();
	return n;
}

int it_wr32(struct vfurt_client *c, uint32_t region, uint64_t off, uint32_t v)
{
	return vfurt_client_region_write(c, region, off, &v, sizeof(v));
}

int it_wr64(struct vfurt_client *c, uint32_t region, uint64_t off, uint64_t v)
{
	return vfurt_client_region_write(c, region, off, &v, sizeof(v));
}

int it_rd32(struct vfurt_client *c, uint32_t region, uint64_t off, uint32_t *v)
{
	return vfurt_client_region_read(c, region, off, v, sizeof(*v));
}

int it_rd64(struct vfurt_client *c, uint32_t region, uint64_t off, uint64_t *v)
{
	return vfurt_client_region_read(c, region, off, v, sizeof(*v));
}

int it_irq_fire(struct vfurt_client *c, uint32_t index, uint32_t vector)
{
	uint32_t status;
	int rc;

	rc = it_wr32(c, VFURT_REGION_BAR0, TD_REG_IRQ_DOORBELL, index << 16 | vector);
	if (!rc)
		rc = it_rd32(c, VFURT_REGION_BAR0, TD_REG_IRQ_STATUS, &status);
	return rc ? rc : (int)status;
}

int it_dev_dma(struct vfurt_client *c, uint32_t op, uint64_t iova, uint64_t len)
{
	uint32_t status;
	int rc;

	rc = it_wr64(c, VFURT_REGION_BAR0, TD_REG_DMA_IOVA, iova);
	if (!rc)
		rc = it_wr64(c, VFURT_REGION_BAR0, TD_REG_DMA_LEN, len);
	if (!rc)
		rc = it_wr32(c, VFURT_REGION_BAR0, TD_REG_DMA_DOORBELL, op);
	/* by message, the transfer completes when the client has answered the
	 * server's DMA requests: the client library does while it waits */
	for (int i = 0; !rc && i < 5000; i++) {
		rc = it_rd32(c, VFURT_REGION_BAR0, TD_REG_DMA_STATUS, &status);
		if (rc || (int)status != TD_DMA_PENDING)
			break;
		usleep(1000);
	}
	return rc ? rc : (int)status;
}

int it_cfg_find_cap(struct vfurt_client *c, uint8_t id)
{
	return nh_pci_find_cap(c, id);
}

int it_msix_enable(struct vfurt_client *c, uint32_t nvec)
{
	int off = it_cfg_find_cap(c, 0x11);
	uint16_t ctrl;
	int rc;

	if (off < 0)
		return off;
	rc = vfurt_client_region_read(c, VFURT_REGION_CONFIG, (uint64_t)off + 2, &ctrl, 2);
	if (rc)
		return rc;
	ctrl = (uint16_t)((ctrl | 0x8000u) & ~0x4000u); /* enable, no function mask */
	rc = vfurt_client_region_write(c, VFURT_REGION_CONFIG, (uint64_t)off + 2, &ctrl, 2);
	for (uint32_t v = 0; !rc && v < nvec; v++)
		rc = it_wr32(c, VFURT_REGION_BAR4, v * 16u + 12u, 0);
	return rc;
}

int it_send_hdr(struct vfurt_client *c, uint16_t msg_id, uint16_t cmd, uint32_t flags,
		uint32_t msg_size, const void *payload, size_t len, const int *fds, size_t nfds)
{
	struct vfio_user_header h = {
		.msg_id = msg_id, .cmd = cmd, .msg_size = msg_size, .flags = flags,
	};
	uint8_t *buf = malloc(sizeof(h) + len);
	int rc;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), payload, len);
	rc = vfurt_client_send_raw(c, buf, sizeof(h) + len, fds, nfds);
	free(buf);
	return rc;
}

int it_send_cmd(struct vfurt_client *c, uint16_t cmd, uint32_t flags, const void *payload,
		size_t len, const int *fds, size_t nfds)
{
	uint16_t id = vfurt_client_next_msg_id(c);

	if (it_send_hdr(c, id, cmd, flags, (uint32_t)(sizeof(struct vfio_user_header) + len),
			payload, len, fds, nfds))
		return -1;
	return id;
}

int it_recv_reply(struct vfurt_client *c, uint16_t msg_id, uint16_t cmd, void *payload,
		  size_t cap, size_t *len)
{
	struct vfio_user_header h;
	int rc;

	rc = vfurt_client_recv_raw(c, &h, payload, cap, len, NULL, NULL);
	if (rc)
		return -1000 + rc;
	if (h.msg_id != msg_id || h.cmd != cmd ||
	    (h.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY)
		return -1000;
	if (h.flags & VFIO_USER_F_ERROR)
		return -(int)h.error_no;
	return 0;
}

bool it_server_closed(struct vfurt_client *c)
{
	struct vfio_user_header h;
	uint8_t buf[256];

	/* anything still queued (a reply) is read first; EOF must follow */
	for (int i = 0; i < 16; i++) {
		int rc = vfurt_client_recv_raw(c, &h, buf, sizeof(buf), NULL, NULL, NULL);

		/* EOF, or a reset seen while answering a server command */
		if (rc == -ECONNRESET || rc == -EPIPE)
			return true;
		if (rc && rc != -EMSGSIZE)
			return false;
	}
	return false;
}

int it_raw_version(struct vfurt_client *c, uint16_t major, uint16_t minor, const char *json,
		   uint16_t *minor_out)
{
	size_t jlen = json ? strlen(json) + 1 : 0;
	size_t len = sizeof(struct vfio_user_version) + jlen;
	struct vfio_user_version *v = calloc(1, len);
	uint8_t reply[4096];
	size_t rlen = 0;
	int id, rc;

	if (!v)
		return -ENOMEM;
	v->major = major;
	v->minor = minor;
	if (jlen)
		memcpy(v->data, json, jlen);
	id = it_send_cmd(c, VFIO_USER_VERSION, 0, v, len, NULL, 0);
	free(v);
	if (id < 0)
		return -EIO;
	rc = it_recv_reply(c, (uint16_t)id, VFIO_USER_VERSION, reply, sizeof(reply), &rlen);
	if (!rc && minor_out) {
		struct vfio_user_version r;

		if (rlen < sizeof(r))
			return -EPROTO;
		memcpy(&r, reply, sizeof(r));
		*minor_out = r.minor;
	}
	return rc;
}

bool it_alive(struct vfurt_client *c)
{
	struct vfio_user_device_info info;

	return vfurt_client_device_info(c, &info) == 0 && info.num_irqs == VFURT_IRQ_NUM &&
	       (info.flags & VFIO_DEVICE_FLAGS_PCI);
}

struct vfurt_log it_dev_log(const char *name)
{
	struct vfurt_log l = { .level = -1 };

	if (getenv("VFURT_TEST_VERBOSE")) {
		l.fn = vfurt_log_stderr;
		l.arg = (void *)name;
		l.level = VFURT_LOG_DEBUG;
	}
	return l;
}

void it_fill(void *buf, size_t len, uint32_t seed)
{
	nh_fill(buf, len, seed);
}

bool it_check(const void *buf, size_t len, uint32_t seed)
{
	return nh_check(buf, len, seed);
}

int it_check_fds(int base)
{
	int n = it_wait_fds(base);

	if (n == base)
		return 0;
	fprintf(stderr, "fd leak: %d open, %d at start:", n, base);
	for (int fd = 0; fd < 1024; fd++) {
		char path[32], link[128];
		ssize_t l;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		l = readlink(path, link, sizeof(link) - 1);
		if (l > 0) {
			link[l] = '\0';
			fprintf(stderr, " %d=%s", fd, link);
		}
	}
	fprintf(stderr, "\n");
	return -1;
}

int it_run_cmd(char *out, size_t len, const char *fmt, ...)
{
	char cmd[4096];
	size_t got = 0;
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (got + 1 < len) {
		size_t n = fread(out + got, 1, len - got - 1, p);

		if (n == 0)
			break;
		got += n;
	}
	out[got] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
