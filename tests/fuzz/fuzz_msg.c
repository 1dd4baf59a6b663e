/* libFuzzer target: the vfio-user message decoder, fed byte streams and (framed mode) real fds over a socket. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vfurt/bdev.h>
#include <vfurt/engine.h>
#include <vfurt/gpio.h>
#include <vfurt/nvme.h>
#include <vfurt/vfio_user.h>

#include "fuzz_formats.h"
#include "fuzz_input.h"

/*
 * One connection per input, serving the GPIO card or an NVMe controller
 * (FZ_MSG_*, fuzz_formats.h). In framed mode the input also decides how
 * many fds, and of which kinds, travel with each sendmsg(2): fds attached
 * to a header are the server's to use or close, fds attached to payload
 * bytes are dropped by the kernel, more than fit are truncated. Whatever
 * happens, once the connection and the device are gone exactly the fds
 * that were open before the input are open: every fd that arrived was
 * closed (or mapped and closed), every fd the server handed out in a
 * reply was received and closed here.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REC_FDS (56u + 0xffu - FZ_MSG_MANY_FDS)

/* A valid VERSION so that most inputs reach the other commands. */
static const char version_json[] = "{\"capabilities\":{\"max_msg_fds\":16,\"write_multiple\":true}}";

/* Read whatever the server sent; close the fds that came with it. */
static void drain(int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 253)];
		struct cmsghdr align;
	} ctl;
	char buf[65536];

	for (;;) {
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				      .msg_controllen = sizeof(ctl.buf) };
		ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n <= 0)
			return;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
			size_t k;

			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int rfd;

				memcpy(&rfd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				close(rfd);
			}
		}
	}
}

/* Raw mode: straight into the receive state machine, no socket reads. */
static int feed(struct vfurt_conn *conn, int peer, const uint8_t *p, size_t n)
{
	while (n > 0) {
		struct iovec iov;
		bool want_fds;
		size_t k;
		int rc;

		vfurt_conn_rx_iov(conn, &iov, &want_fds);
		k = n < iov.iov_len ? n : iov.iov_len;
		memcpy(iov.iov_base, p, k);
		rc = vfurt_conn_rx_feed(conn, k, NULL, 0);
		drain(peer);
		if (rc)
			return rc;
		p += k;
		n -= k;
	}
	return 0;
}

static int make_fd(uint8_t kind)
{
	int p[2];
	int fd;

	switch (kind % FZ_FD_NR) {
	case FZ_FD_MEMFD:
	case FZ_FD_MEMFD0:
		fd = memfd_create("fz-msg", MFD_CLOEXEC);
		if (fd >= 0 && kind % FZ_FD_NR == FZ_FD_MEMFD && ftruncate(fd, FZ_FD_MEMFD_SIZE)) {
			close(fd);
			fd = -1;
		}
		return fd;
	case FZ_FD_EVENTFD:
		return eventfd(0, EFD_CLOEXEC);
	case FZ_FD_PIPE:
		if (pipe2(p, O_CLOEXEC))
			return -1;
		close(p[1]);
		return p[0];
	case FZ_FD_DEVNULL:
		return open("/dev/null", O_RDWR | O_CLOEXEC);
	default:
		return socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	}
}

/* Send one record with its fds; our copies are closed right after (the
 * kernel holds its own until the server receives or drops them). A record
 * the socket cannot take at once is finished after the server read. */
static int send_record(struct vfurt_conn *conn, int sock, const uint8_t *p, size_t len,
		       const int *fds, size_t nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_REC_FDS)];
		struct cmsghdr align;
	} ctl;
	bool first = true;
	int rc;

	/* bounded: a server that stops reading (it never should) ends the input */
	for (int tries = 0; len > 0 && tries < 4096; tries++) {
		struct iovec iov = { (void *)(uintptr_t)p, len };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (first && nfds) {
			struct cmsghdr *cm;

			memset(&ctl, 0, sizeof(ctl));
			msg.msg_control = ctl.buf;
			msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			cm = CMSG_FIRSTHDR(&msg);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
		}
		n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return -errno;
		if (n > 0) {
			first = false;
			p += n;
			len -= (size_t)n;
		}
		rc = vfurt_conn_on_readable(conn);
		drain(sock);
		if (rc)
			return rc;
	}
	return 0;
}

static int run_framed(struct vfurt_conn *conn, int sock, struct fz_in *in)
{
	static uint8_t buf[65536];
	int fds[MAX_REC_FDS];
	int rc = 0;

	while (fz_more(in) && !rc) {
		uint8_t sel = fz_u8(in);
		size_t nfds = sel >= FZ_MSG_MANY_FDS ? 56u + (sel - FZ_MSG_MANY_FDS) : sel % 8u;
		size_t len, have = 0;

		for (size_t i = 0; i < nfds; i++) {
			fds[have] = make_fd(fz_u8(in));
			if (fds[have] >= 0)
				have++;
		}
		len = fz_u16(in);
		if (have && !len)
			len = 1; /* a stream carries fds with bytes only */
		fz_bytes(in, buf, len);
		rc = send_record(conn, sock, buf, len, fds, have);
		for (size_t i = 0; i < have; i++)
			close(fds[i]);
	}
	return rc;
}

static struct vfurt_dev *make_dev(bool nvme)
{
	if (nvme) {
		struct vfurt_bdev *b = vfurt_bdev_null_create(&(struct vfurt_bdev_null_opts){
			.opts_size = sizeof(struct vfurt_bdev_null_opts), .name = "fz",
			.block_size = 512, .size_bytes = 1024 * 512 });
		struct vfurt_nvme_opts o = { .opts_size = sizeof(o), .name = "fz", .serial = "FUZZ",
					     .ns = &b, .nr_ns = 1, .own_bdevs = true,
					     .ioeventfd = true, .max_io_queues = 2 };

		FZ_CHECK(b, "bdev");
		o.log.level = -1;
		return vfurt_nvme_create(&o);
	} else {
		struct vfurt_gpio_opts go = { .opts_size = sizeof(go), .name = "fuzz" };

		go.log.level = -1;
		return vfurt_gpio_create(&go);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfurt_conn_opts co = { .opts_size = sizeof(co), .timeout_ms = 20,
				      .max_data_xfer_size = 4096 };
	struct fz_in in = { data, size };
	uint8_t mode = fz_u8(&in);
	struct vfurt_conn *conn;
	struct vfurt_dev *dev;
	int before = fz_count_fds();
	int sv[2];
	int after;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	dev = make_dev(mode & FZ_MSG_NVME);
	FZ_CHECK(dev, "device: %s", strerror(errno));
	conn = vfurt_conn_create(dev, sv[0], &co);
	if (!conn) {
		close(sv[0]);
		goto out;
	}
	if (mode & FZ_MSG_VERSION) {
		uint8_t msg[16 + 4 + sizeof(version_json)];
		struct vfio_user_header h = { .msg_id = 1, .cmd = VFIO_USER_VERSION,
					      .msg_size = sizeof(msg) };

		memcpy(msg, &h, sizeof(h));
		memset(msg + 16, 0, 4);
		memcpy(msg + 20, version_json, sizeof(version_json));
		if (mode & FZ_MSG_FRAMED)
			(void)send_record(conn, sv[1], msg, sizeof(msg), NULL, 0);
		else
			(void)feed(conn, sv[1], msg, sizeof(msg));
	}
	if (mode & FZ_MSG_FRAMED)
		(void)run_framed(conn, sv[1], &in);
	else if (in.n)
		(void)feed(conn, sv[1], in.p, in.n);
	vfurt_conn_destroy(conn);
out:
	vfurt_dev_destroy(dev);
	drain(sv[1]);
	close(sv[1]);
	after = fz_count_fds();
	FZ_CHECK(after == before, "fd leak: %d fds open after the input, %d before", after, before);
	return 0;
}
