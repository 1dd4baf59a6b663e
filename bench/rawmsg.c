/* Hand-built vfio-user messages and a busy-polling raw socket client for the benchmarks. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vfurt/vfio_user.h>

#include "rawmsg.h"
#include "shim.h"

size_t rawmsg_version(void *buf, size_t cap, uint16_t msg_id)
{
	struct vfio_user_header h = { .msg_id = msg_id, .cmd = VFIO_USER_VERSION,
				      .flags = VFIO_USER_F_TYPE_COMMAND };
	struct vfio_user_version v = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR };
	size_t len = sizeof(h) + sizeof(v);

	if (cap < len)
		return 0;
	h.msg_size = (uint32_t)len;
	memcpy(buf, &h, sizeof(h));
	memcpy((uint8_t *)buf + sizeof(h), &v, sizeof(v));
	return len;
}

static size_t region_msg(void *buf, size_t cap, uint16_t msg_id, uint16_t cmd, uint32_t flags,
			 uint32_t region, uint64_t offset, const void *data, uint32_t count,
			 uint32_t data_len)
{
	struct vfio_user_header h = { .msg_id = msg_id, .cmd = cmd, .flags = flags };
	struct vfio_user_region_access a = { .offset = offset, .region = region, .count = count };
	size_t len = sizeof(h) + sizeof(a) + data_len;

	if (cap < len)
		return 0;
	h.msg_size = (uint32_t)len;
	memcpy(buf, &h, sizeof(h));
	memcpy((uint8_t *)buf + sizeof(h), &a, sizeof(a));
	if (data_len)
		memcpy((uint8_t *)buf + sizeof(h) + sizeof(a), data, data_len);
	return len;
}

size_t rawmsg_region_write(void *buf, size_t cap, uint16_t msg_id, uint32_t region,
			   uint64_t offset, const void *data, uint32_t count, bool posted)
{
	uint32_t flags = VFIO_USER_F_TYPE_COMMAND | (posted ? VFIO_USER_F_NO_REPLY : 0);

	return region_msg(buf, cap, msg_id, VFIO_USER_REGION_WRITE, flags, region, offset, data,
			  count, count);
}

size_t rawmsg_region_read(void *buf, size_t cap, uint16_t msg_id, uint32_t region,
			  uint64_t offset, uint32_t count)
{
	return region_msg(buf, cap, msg_id, VFIO_USER_REGION_READ, VFIO_USER_F_TYPE_COMMAND,
			  region, offset, NULL, count, 0);
}

static int send_all(int fd, const void *msg, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, (const uint8_t *)msg + off, len - off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	return 0;
}

#define RAW_TIMEOUT_NS (5ull * 1000 * 1000 * 1000)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Receive exactly len bytes into buf (NULL: discard), spinning; gives up
 * after RAW_TIMEOUT_NS without progress so a dead server cannot hang a run. */
static int recv_exact_busy(int fd, void *buf, size_t len)
{
	uint8_t scratch[256];
	uint64_t deadline = 0;
	unsigned spins = 0;
	size_t off = 0;

	while (off < len) {
		size_t want = len - off;
		void *dst;
		ssize_t n;

		if (buf) {
			dst = (uint8_t *)buf + off;
		} else {
			dst = scratch;
			if (want > sizeof(scratch))
				want = sizeof(scratch);
		}
		n = recv(fd, dst, want, MSG_DONTWAIT);
		if (n > 0) {
			off += (size_t)n;
			deadline = 0;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		if ((++spins & 1023) == 0) {
			uint64_t t = now_ns();

			if (!deadline)
				deadline = t + RAW_TIMEOUT_NS;
			else if (t > deadline)
				return -ETIMEDOUT;
		}
		vfurt_bench_relax();
	}
	return 0;
}

int rawcli_call_busy(int fd, const void *msg, size_t len, void *reply, size_t cap)
{
	struct vfio_user_header h;
	size_t payload;
	size_t keep;
	int rc;

	rc = send_all(fd, msg, len);
	if (rc)
		return rc;
	rc = recv_exact_busy(fd, &h, sizeof(h));
	if (rc)
		return rc;
	if ((h.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY ||
	    h.msg_size < sizeof(h))
		return -EPROTO;
	payload = h.msg_size - sizeof(h);
	keep = payload < cap ? payload : cap;
	rc = recv_exact_busy(fd, reply, keep);
	if (!rc && payload > keep)
		rc = recv_exact_busy(fd, NULL, payload - keep);
	if (rc)
		return rc;
	if (h.flags & VFIO_USER_F_ERROR)
		return h.error_no ? -(int)h.error_no : -EIO;
	return 0;
}

int rawcli_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint8_t msg[64];
	uint8_t reply[4096];
	size_t len;
	int fd;
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto err_close;
	}
	len = rawmsg_version(msg, sizeof(msg), 1);
	rc = rawcli_call_busy(fd, msg, len, reply, sizeof(reply));
	if (rc)
		goto err_close;
	return fd;

err_close:
	close(fd);
	return rc;
}

size_t raw_drain(int fd)
{
	uint8_t buf[16384];
	size_t total = 0;
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		total += (size_t)n;
	return total;
}
