/* libFuzzer target: arbitrary byte streams into a connection serving a GPIO device. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vfurt/engine.h>
#include <vfurt/gpio.h>
#include <vfurt/vfio_user.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A valid VERSION so that most inputs reach the other commands. */
static const char version_json[] = "{\"capabilities\":{\"max_msg_fds\":16,\"write_multiple\":true}}";

static void drain(int fd)
{
	char buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vfurt_gpio_opts go = { .opts_size = sizeof(go), .name = "fuzz" };
	struct vfurt_conn_opts co = { .opts_size = sizeof(co), .timeout_ms = 20,
				      .max_data_xfer_size = 4096 };
	struct vfurt_conn *conn;
	struct vfurt_dev *dev;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	dev = vfurt_gpio_create(&go);
	conn = dev ? vfurt_conn_create(dev, sv[0], &co) : NULL;
	if (!conn) {
		close(sv[0]);
		goto out;
	}
	if (size > 0 && (data[0] & 1)) {
		uint8_t msg[16 + 4 + sizeof(version_json)];
		struct vfio_user_header h = { .msg_id = 1, .cmd = VFIO_USER_VERSION,
					      .msg_size = sizeof(msg) };

		memcpy(msg, &h, sizeof(h));
		memset(msg + 16, 0, 4);
		memcpy(msg + 20, version_json, sizeof(version_json));
		feed(conn, sv[1], msg, sizeof(msg));
	}
	if (size > 1)
		feed(conn, sv[1], data + 1, size - 1);
	vfurt_conn_destroy(conn);
out:
	vfurt_dev_destroy(dev);
	close(sv[1]);
	return 0;
}
