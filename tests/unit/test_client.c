/* Unit tests for the client library against a scripted fake server thread. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include <vfurt/client.h>

#include "io/sock.h"
#include "common/testsrv.h"

#define FAKE_CAP ((size_t)4 << 20)
#define FAKE_TIMEOUT_MS 3000
#define IOVA 0x10000ull
#define PAGE 4096u

/* ---- fake server ------------------------------------------------------------ */

struct fake;
typedef void (*fake_fn)(struct fake *f);

struct fake {
	int sock;                 /* server end */
	int listen_fd;            /* >= 0: accept the connection first */
	int twin;                 /* server end of a twin socket, or -1 */
	pthread_t th;
	bool joined;
	fake_fn fn;
	int fail_line;            /* first failed check, 0 = ok */
	uint8_t *buf;             /* last received message */
	struct vfio_user_header *hdr;
	uint8_t *pl;              /* its payload */
	size_t len;               /* payload length */
	int fds[VFURT_SOCK_MAX_FDS];
	size_t nfds;
	const char *reply_json;   /* VERSION reply data, NULL = none */
	uint16_t reply_major;
	uint16_t reply_minor;
	char *client_json;        /* what the client proposed */
	size_t client_version_len;
	uint64_t u[8];            /* per-test values */
};

#define FK_CHECK(f, cond)                                   \
	do {                                                \
		if (!(cond)) {                              \
			if (!(f)->fail_line)                \
				(f)->fail_line = __LINE__;  \
			return;                             \
		}                                           \
	} while (0)

/* Receive one message on sock into f->buf; fds land in f->fds. */
static int fk_recv_on(struct fake *f, int sock)
{
	ssize_t n;

	vfurt_close_fds(f->fds, f->nfds);
	f->nfds = 0;
	n = vfurt_sock_recv_msg(sock, f->buf, FAKE_CAP, f->fds, &f->nfds, VFURT_SOCK_MAX_FDS,
				FAKE_TIMEOUT_MS);
	if (n < 0)
		return (int)n;
	f->len = (size_t)n - sizeof(*f->hdr);
	return 0;
}

static int fk_recv(struct fake *f)
{
	return fk_recv_on(f, f->sock);
}

static int fk_send(int sock, uint16_t id, uint16_t cmd, uint32_t flags, uint32_t err,
		   const void *p, size_t len, const int *fds, size_t nfds)
{
	struct vfio_user_header h = {
		.msg_id = id, .cmd = cmd, .msg_size = (uint32_t)(sizeof(h) + len),
		.flags = flags, .error_no = err,
	};

	return vfurt_sock_send_msg(sock, &h, p, len, fds, nfds, FAKE_TIMEOUT_MS);
}

/* Reply to the last received message. */
static int fk_reply(struct fake *f, const void *p, size_t len, const int *fds, size_t nfds)
{
	return fk_send(f->sock, f->hdr->msg_id, f->hdr->cmd, VFIO_USER_F_TYPE_REPLY, 0, p, len,
		       fds, nfds);
}

static int fk_error(struct fake *f, uint32_t err)
{
	return fk_send(f->sock, f->hdr->msg_id, f->hdr->cmd,
		       VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR, err, NULL, 0, NULL, 0);
}

/* Expect the next message to be command `cmd`. */
static bool fk_expect(struct fake *f, uint16_t cmd)
{
	return fk_recv(f) == 0 && f->hdr->cmd == cmd &&
	       (f->hdr->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND;
}

/* Answer VERSION with f->reply_json and optional fds. */
static bool fk_version_fds(struct fake *f, const int *fds, size_t nfds)
{
	uint8_t out[1024];
	struct vfio_user_version v = { .major = f->reply_major, .minor = f->reply_minor };
	size_t n = sizeof(v);

	if (!fk_expect(f, VFIO_USER_VERSION) || f->len < sizeof(v))
		return false;
	f->client_version_len = f->len;
	if (f->len > sizeof(v))
		f->client_json = strndup((char *)f->pl + sizeof(v), f->len - sizeof(v));
	memcpy(out, &v, sizeof(v));
	if (f->reply_json) {
		size_t j = strlen(f->reply_json) + 1;

		memcpy(out + n, f->reply_json, j);
		n += j;
	}
	return fk_reply(f, out, n, fds, nfds) == 0;
}

static bool fk_version(struct fake *f)
{
	return fk_version_fds(f, NULL, 0);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	if (f->listen_fd >= 0) {
		f->sock = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (f->sock < 0) {
			f->fail_line = __LINE__;
			return NULL;
		}
	}
	f->fn(f);
	if (f->fail_line) {
		/* Say where right away and hang up so the client does not wait. */
		fprintf(stderr, "fake server: check failed at line %d\n", f->fail_line);
		shutdown(f->sock, SHUT_RDWR);
		if (f->twin >= 0)
			shutdown(f->twin, SHUT_RDWR);
	}
	return NULL;
}

static void fake_init(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	f->sock = -1;
	f->listen_fd = -1;
	f->twin = -1;
	f->buf = malloc(FAKE_CAP);
	assert_non_null(f->buf);
	f->hdr = (struct vfio_user_header *)f->buf;
	f->pl = f->buf + sizeof(*f->hdr);
	f->reply_json = "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576,"
			"\"write_multiple\":true}}";
}

/* Start the fake on a socketpair and connect a client to it. */
static struct vfurt_client *fake_start(struct fake *f, fake_fn fn, struct vfurt_client_opts *o)
{
	struct vfurt_client_opts def = { .opts_size = sizeof(def), .timeout_ms = 2000 };
	int sv[2];

	f->fn = fn;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->sock = sv[1];
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
	return vfurt_client_connect_fd(sv[0], o ? o : &def);
}

static void fake_join(struct fake *f)
{
	if (!f->joined)
		pthread_join(f->th, NULL);
	f->joined = true;
}

/* Join the fake, release its resources and check it saw what it expected. */
static void fake_finish(struct fake *f)
{
	fake_join(f);
	vfurt_close_fds(f->fds, f->nfds);
	f->nfds = 0;
	if (f->sock >= 0)
		close(f->sock);
	if (f->twin >= 0)
		close(f->twin);
	if (f->listen_fd >= 0)
		close(f->listen_fd);
	free(f->client_json);
	free(f->buf);
	if (f->fail_line)
		fail_msg("fake server check failed at line %d", f->fail_line);
}

/* ---- fd leak accounting ------------------------------------------------------ */

static int fds_before;

static int setup_fds(void **state)
{
	fds_before = test_count_fds();
	return 0;
}

static int teardown_fds(void **state)
{
	int now = test_count_fds();

	if (now != fds_before) {
		fprintf(stderr, "fd leak: %d before, %d after\n", fds_before, now);
		return -1;
	}
	return 0;
}

/* ---- VERSION ------------------------------------------------------------------ */

static int64_t json_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

static void fk_version_only(struct fake *f)
{
	FK_CHECK(f, fk_version(f));
}

static void test_version_caps(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/vfurt-client-XXXXXX";
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct json_object *root, *jc, *v;
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":65536,"
		       "\"pgsizes\":12288,\"max_dma_maps\":100,\"write_multiple\":true,"
		       "\"unknown_key\":[1,2]}}";
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", dir);
	f.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f.listen_fd >= 0);
	assert_int_equal(bind(f.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f.listen_fd, 1), 0);
	f.fn = fk_version_only;
	assert_int_equal(pthread_create(&f.th, NULL, fake_main, &f), 0);

	c = vfurt_client_connect(sa.sun_path, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_get_caps(c, &caps), 0);
	assert_int_equal(caps.major, 0);
	assert_int_equal(caps.minor, 0);
	assert_true(caps.server_json);
	assert_int_equal(caps.max_msg_fds, 8);
	assert_int_equal(caps.max_data_xfer_size, 65536);
	assert_int_equal(caps.pgsizes, 12288);
	assert_int_equal(caps.max_dma_maps, 100);
	assert_true(caps.write_multiple);
	assert_false(caps.twin_socket);
	assert_int_equal(caps.client_max_msg_fds, 16);
	assert_int_equal(vfurt_client_twin_fd(c), -1);
	assert_true(vfurt_client_fd(c) >= 0);
	assert_non_null(strstr(vfurt_client_server_json(c), "max_dma_maps"));
	vfurt_client_close(c);
	fake_join(&f);

	/* What we proposed: QEMU's defaults. */
	assert_non_null(f.client_json);
	root = json_tokener_parse(f.client_json);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "capabilities", &jc));
	assert_int_equal(json_int(jc, "max_msg_fds"), 16);
	assert_int_equal(json_int(jc, "max_data_xfer_size"), 1 << 20);
	assert_int_equal(json_int(jc, "pgsizes"), 4096);
	assert_int_equal(json_int(jc, "max_dma_maps"), 65535);
	assert_true(json_object_object_get_ex(jc, "write_multiple", &v));
	assert_true(json_object_get_boolean(v));
	assert_false(json_object_object_get_ex(jc, "twin_socket", &v));
	json_object_put(root);

	unlink(sa.sun_path);
	rmdir(dir);
	fake_finish(&f);
}

static void test_version_overrides(void **state)
{
	struct vfurt_client_opts o = {
		.opts_size = sizeof(o), .timeout_ms = 2000, .max_msg_fds = 4,
		.max_data_xfer_size = 8192, .pgsizes = 4096 | 2097152, .max_dma_maps = 10,
		.flags = VFURT_CLIENT_NO_WRITE_MULTIPLE | VFURT_CLIENT_TWIN_SOCKET,
	};
	struct json_object *root, *jc, *v, *t;
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	f.reply_json = NULL;
	c = fake_start(&f, fk_version_only, &o);
	assert_non_null(c);
	/* No JSON back: the spec's defaults. */
	assert_int_equal(vfurt_client_get_caps(c, &caps), 0);
	assert_false(caps.server_json);
	assert_int_equal(caps.max_msg_fds, 1);
	assert_int_equal(caps.max_data_xfer_size, 1 << 20);
	assert_int_equal(caps.pgsizes, 4096);
	assert_int_equal(caps.max_dma_maps, 65535);
	assert_false(caps.write_multiple);
	assert_false(caps.twin_socket);
	assert_int_equal(caps.client_max_data_xfer_size, 8192);
	assert_null(vfurt_client_server_json(c));
	vfurt_client_close(c);
	fake_join(&f);

	root = json_tokener_parse(f.client_json);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "capabilities", &jc));
	assert_int_equal(json_int(jc, "max_msg_fds"), 4);
	assert_int_equal(json_int(jc, "max_data_xfer_size"), 8192);
	assert_int_equal(json_int(jc, "pgsizes"), 4096 | 2097152);
	assert_int_equal(json_int(jc, "max_dma_maps"), 10);
	assert_true(json_object_object_get_ex(jc, "write_multiple", &v));
	assert_false(json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(jc, "twin_socket", &t));
	assert_true(json_object_object_get_ex(t, "supported", &v));
	assert_true(json_object_get_boolean(v));
	json_object_put(root);
	fake_finish(&f);
}

static void test_version_no_json(void **state)
{
	struct vfurt_client_opts o = {
		.opts_size = sizeof(o), .timeout_ms = 2000, .flags = VFURT_CLIENT_NO_JSON,
	};
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_version_only, &o);
	assert_non_null(c);
	assert_int_equal(vfurt_client_get_caps(c, &caps), 0);
	assert_int_equal(caps.max_msg_fds, 8);
	assert_true(caps.write_multiple);
	vfurt_client_close(c);
	fake_join(&f);
	assert_int_equal(f.client_version_len, 4);
	assert_null(f.client_json);
	fake_finish(&f);
}

/* Connect with a given VERSION reply and expect failure with errno `err`. */
static void expect_connect_fails(struct fake *f, uint32_t flags, int err)
{
	struct vfurt_client_opts o = { .opts_size = sizeof(o), .timeout_ms = 2000, .flags = flags };
	struct vfurt_client *c;

	c = fake_start(f, fk_version_only, &o);
	assert_null(c);
	assert_int_equal(errno, err);
	fake_finish(f);
}

static void test_version_rejects(void **state)
{
	struct fake f;

	fake_init(&f);
	f.reply_major = 1; /* different major */
	expect_connect_fails(&f, 0, EPROTO);

	fake_init(&f);
	f.reply_minor = 1; /* bigger minor than we proposed (0) */
	expect_connect_fails(&f, 0, EPROTO);

	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_msg_fds\":"; /* truncated */
	expect_connect_fails(&f, 0, EPROTO);

	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_msg_fds\":\"many\"}}"; /* wrong type */
	expect_connect_fails(&f, 0, EPROTO);

	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_data_xfer_size\":0}}";
	expect_connect_fails(&f, 0, EPROTO);

	fake_init(&f);
	f.reply_json = "[1,2,3]";
	expect_connect_fails(&f, 0, EPROTO);

	/* Twin socket enabled although we did not propose it. */
	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":0}}}";
	expect_connect_fails(&f, 0, EPROTO);

	/* Twin enabled but the fd is missing: inconsistent, must abort. */
	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":0}}}";
	expect_connect_fails(&f, VFURT_CLIENT_TWIN_SOCKET, EPROTO);

	/* Required twin declined. */
	fake_init(&f);
	expect_connect_fails(&f, VFURT_CLIENT_TWIN_SOCKET | VFURT_CLIENT_REQUIRE_TWIN,
			     EPROTONOSUPPORT);
}

static void fk_version_error(struct fake *f)
{
	FK_CHECK(f, fk_expect(f, VFIO_USER_VERSION));
	FK_CHECK(f, fk_error(f, ENOTSUP) == 0);
}

static void test_version_error_reply(void **state)
{
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_version_error, NULL);
	assert_null(c);
	assert_int_equal(errno, ENOTSUP);
	fake_finish(&f);
}

/* ---- error replies, timeouts, disconnects, raw --------------------------------- */

static void fk_errors(struct fake *f)
{
	struct vfio_user_device_info di = { .argsz = 16, .flags = VFIO_DEVICE_FLAGS_PCI,
					    .num_regions = 9, .num_irqs = 5 };

	FK_CHECK(f, fk_version(f));
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	FK_CHECK(f, fk_error(f, ENOENT) == 0);
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_RESET));
	FK_CHECK(f, fk_error(f, 0) == 0);
	/* A reply that names another command. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	FK_CHECK(f, fk_send(f->sock, f->hdr->msg_id, VFIO_USER_DEVICE_RESET,
			    VFIO_USER_F_TYPE_REPLY, 0, NULL, 0, NULL, 0) == 0);
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	FK_CHECK(f, f->len == 16);
	FK_CHECK(f, fk_reply(f, &di, sizeof(di), NULL, 0) == 0);
}

static void test_error_replies(void **state)
{
	struct vfio_user_device_info di;
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_errors, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_device_info(c, &di), -ENOENT);
	assert_int_equal(vfurt_client_reset(c), -EIO);
	assert_int_equal(vfurt_client_device_info(c, &di), -EPROTO);
	assert_int_equal(vfurt_client_device_info(c, &di), 0);
	assert_int_equal(di.flags, VFIO_DEVICE_FLAGS_PCI);
	assert_int_equal(di.num_regions, 9);
	assert_int_equal(di.num_irqs, 5);
	vfurt_client_close(c);
	fake_finish(&f);
}

static void fk_slow(struct fake *f)
{
	struct vfio_user_device_info di = { .argsz = 16, .num_regions = 1 };
	uint16_t first;

	FK_CHECK(f, fk_version(f));
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	first = f->hdr->msg_id;
	/* Do not answer; the client times out and asks again. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	FK_CHECK(f, f->hdr->msg_id != first);
	di.num_regions = 1;
	FK_CHECK(f, fk_send(f->sock, first, VFIO_USER_DEVICE_GET_INFO, VFIO_USER_F_TYPE_REPLY, 0,
			    &di, sizeof(di), NULL, 0) == 0);
	di.num_regions = 2;
	FK_CHECK(f, fk_reply(f, &di, sizeof(di), NULL, 0) == 0);
	/* Then disconnect in the middle of a request. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_RESET));
	close(f->sock);
	f->sock = -1;
}

static void test_timeout_and_disconnect(void **state)
{
	struct vfio_user_device_info di;
	struct vfurt_client_stats st = { .stats_size = sizeof(st) };
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_slow, NULL);
	assert_non_null(c);
	vfurt_client_set_timeout(c, 200);
	assert_int_equal(vfurt_client_device_info(c, &di), -ETIMEDOUT);
	vfurt_client_set_timeout(c, 2000);
	/* The late reply to the first request is dropped, not mistaken. */
	assert_int_equal(vfurt_client_device_info(c, &di), 0);
	assert_int_equal(di.num_regions, 2);
	assert_int_equal(vfurt_client_get_stats(c, &st), 0);
	assert_int_equal(st.stale_replies, 1);
	assert_int_equal(vfurt_client_reset(c), -ECONNRESET);
	assert_int_equal(vfurt_client_reset(c), -ECONNRESET);
	assert_int_equal(vfurt_client_poll_server(c, 0), -ECONNRESET);
	vfurt_client_close(c);
	fake_finish(&f);
}

static void fk_raw(struct fake *f)
{
	uint8_t out[24] = { 1, 2, 3 };
	int efd = eventfd(0, EFD_CLOEXEC);

	FK_CHECK(f, fk_version(f));
	FK_CHECK(f, fk_recv(f) == 0);
	FK_CHECK(f, f->hdr->cmd == 99 && f->len == 3 && f->nfds == 1);
	FK_CHECK(f, fk_error(f, ENOSYS) == 0);
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_FEATURE));
	FK_CHECK(f, f->len == 8 && f->hdr->msg_id == 0x77 + 1);
	FK_CHECK(f, fk_reply(f, out, sizeof(out), &efd, 1) == 0);
	close(efd);
	/* A reply too big for the caller's buffer. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_INFO));
	FK_CHECK(f, fk_reply(f, out, sizeof(out), NULL, 0) == 0);
}

static void test_raw(void **state)
{
	struct vfio_user_header h;
	uint8_t raw[16 + 3];
	uint8_t reply[64];
	uint32_t feat[2] = { 8, 0 };
	size_t len, nfds;
	int fds[2] = { -1, -1 };
	int efd = eventfd(0, EFD_CLOEXEC);
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_raw, NULL);
	assert_non_null(c);
	h = (struct vfio_user_header){ .msg_id = vfurt_client_next_msg_id(c), .cmd = 99,
				       .msg_size = sizeof(raw) };
	memcpy(raw, &h, sizeof(h));
	memcpy(raw + sizeof(h), "abc", 3);
	assert_int_equal(vfurt_client_send_raw(c, raw, sizeof(raw), &efd, 1), 0);
	nfds = 2;
	assert_int_equal(vfurt_client_recv_raw(c, &h, reply, sizeof(reply), &len, fds, &nfds), 0);
	assert_true(h.flags & VFIO_USER_F_ERROR);
	assert_int_equal(h.error_no, ENOSYS);
	assert_int_equal(h.cmd, 99);
	assert_int_equal(len, 0);
	assert_int_equal(nfds, 0);

	/* request(): fresh msg_id, payload copied out, fds handed over. */
	while (vfurt_client_next_msg_id(c) != 0x77)
		;
	nfds = 2;
	assert_int_equal(vfurt_client_request(c, VFIO_USER_DEVICE_FEATURE, 0, feat, sizeof(feat),
					      NULL, 0, reply, sizeof(reply), &len, fds, &nfds), 0);
	assert_int_equal(len, 24);
	assert_int_equal(reply[2], 3);
	assert_int_equal(nfds, 1);
	assert_true(fcntl(fds[0], F_GETFD) >= 0);
	close(fds[0]);
	assert_int_equal(vfurt_client_request(c, VFIO_USER_DEVICE_GET_INFO, 0, NULL, 0, NULL, 0,
					      reply, 8, &len, NULL, NULL), -EMSGSIZE);
	assert_int_equal(len, 24);
	vfurt_client_close(c);
	close(efd);
	fake_finish(&f);
}

/* ---- region info, io fds ------------------------------------------------------ */

#define RI_FULL (32u + 16u + 2u * 16u + 16u)

static void fk_region_info(struct fake *f)
{
	uint8_t out[RI_FULL];
	struct vfio_region_info ri = {
		.argsz = RI_FULL, .index = 2, .cap_offset = 32, .size = 4 * PAGE, .offset = 0,
		.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
			 VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS,
	};
	struct vfio_region_info_cap_sparse_mmap sp = {
		.header = { .id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1, .next = 80 },
		.nr_areas = 2,
	};
	struct vfio_region_sparse_mmap_area areas[2] = {
		{ .offset = PAGE, .size = PAGE }, { .offset = 3 * PAGE, .size = PAGE },
	};
	struct vfio_region_info_cap_type ty = {
		.header = { .id = VFIO_REGION_INFO_CAP_TYPE, .version = 1, .next = 0 },
		.type = 5, .subtype = 7,
	};
	struct vfio_region_info req;
	int memfd = memfd_create("region", MFD_CLOEXEC);
	uint8_t mark = 0x5a;

	FK_CHECK(f, memfd >= 0 && ftruncate(memfd, 4 * PAGE) == 0);
	FK_CHECK(f, pwrite(memfd, &mark, 1, 3 * PAGE + 5) == 1);
	FK_CHECK(f, fk_version(f));

	/* First ask: argsz 32, we answer with just the fixed part. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_INFO) && f->len == 32);
	memcpy(&req, f->pl, sizeof(req));
	FK_CHECK(f, req.argsz == 32 && req.index == 2);
	FK_CHECK(f, fk_reply(f, &ri, sizeof(ri), NULL, 0) == 0);

	/* Retry with the full size. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_INFO));
	memcpy(&req, f->pl, sizeof(req));
	FK_CHECK(f, req.argsz == RI_FULL && req.index == 2);
	memcpy(out, &ri, 32);
	memcpy(out + 32, &sp, sizeof(sp));
	memcpy(out + 48, areas, sizeof(areas));
	memcpy(out + 80, &ty, sizeof(ty));
	FK_CHECK(f, fk_reply(f, out, sizeof(out), &memfd, 1) == 0);
	close(memfd);

	/* A chain that loops back must be refused. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_INFO));
	ri.argsz = 48;
	ri.index = 2;
	sp.header.next = 32;
	sp.nr_areas = 0;
	memcpy(out, &ri, 32);
	memcpy(out + 32, &sp, sizeof(sp));
	FK_CHECK(f, fk_reply(f, out, 48, NULL, 0) == 0);

	/* A sparse cap claiming more areas than sent. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_INFO));
	memcpy(&req, f->pl, sizeof(req));
	FK_CHECK(f, req.argsz == 32);
	sp.header.next = 0;
	sp.nr_areas = 9;
	memcpy(out + 32, &sp, sizeof(sp));
	FK_CHECK(f, fk_reply(f, out, 48, NULL, 0) == 0);

	/* FLAG_CAPS with cap_offset 0 in a complete reply (QEMU refuses it) */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_INFO));
	ri.argsz = 32;
	ri.cap_offset = 0;
	FK_CHECK(f, fk_reply(f, &ri, sizeof(ri), NULL, 0) == 0);
}

static void test_region_info(void **state)
{
	struct vfurt_client_region_info info;
	struct vfurt_client *c;
	struct fake f;
	size_t len;
	void *p;

	fake_init(&f);
	c = fake_start(&f, fk_region_info, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_region_info(c, 2, &info), 0);
	assert_int_equal(info.index, 2);
	assert_int_equal(info.argsz, RI_FULL);
	assert_int_equal(info.size, 4 * PAGE);
	assert_true(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_true(info.fd >= 0);
	assert_true(info.has_sparse);
	assert_int_equal(info.nr_sparse, 2);
	assert_int_equal(info.sparse[0].offset, PAGE);
	assert_int_equal(info.sparse[1].offset, 3 * PAGE);
	assert_int_equal(info.sparse[1].size, PAGE);
	assert_true(info.has_type);
	assert_int_equal(info.type, 5);
	assert_int_equal(info.subtype, 7);
	assert_false(info.msix_mappable);
	assert_int_equal(info.nr_caps, 2);
	assert_int_equal(info.raw_len, RI_FULL);

	assert_int_equal(vfurt_client_region_info_mmap(&info, 1, PROT_READ, &p, &len), 0);
	assert_int_equal(len, PAGE);
	assert_int_equal(((uint8_t *)p)[5], 0x5a);
	munmap(p, len);
	assert_int_equal(vfurt_client_region_info_mmap(&info, -1, PROT_READ, &p, &len), -EINVAL);
	assert_int_equal(vfurt_client_region_info_mmap(&info, 2, PROT_READ, &p, &len), -EINVAL);
	vfurt_client_region_info_release(&info);
	assert_int_equal(info.fd, -1);

	assert_int_equal(vfurt_client_region_info(c, 2, &info), -EPROTO);
	assert_int_equal(info.fd, -1);
	assert_int_equal(vfurt_client_region_info(c, 2, &info), -EPROTO);
	assert_int_equal(vfurt_client_region_info(c, 2, &info), -EPROTO);
	vfurt_client_close(c);
	fake_finish(&f);
}

static void fk_io_fds(struct fake *f)
{
	uint8_t out[16 + 2 * 40];
	struct vfio_user_region_io_fds_reply h = { .argsz = sizeof(out), .index = 0, .count = 2 };
	struct vfio_user_sub_region_io_fd subs[2] = {
		{ .offset = 0x1000, .size = 4, .fd_index = 0, .type = VFIO_USER_IO_FD_TYPE_IOEVENTFD,
		  .flags = VFIO_USER_IOEVENTFD_FLAG_DATAMATCH, .datamatch_or_user_data = 7 },
		{ .offset = 0x1004, .size = 4, .fd_index = 1, .type = VFIO_USER_IO_FD_TYPE_IOEVENTFD },
	};
	struct vfio_user_region_io_fds_request req;
	int efds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };

	FK_CHECK(f, fk_version(f));
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_IO_FDS));
	memcpy(&req, f->pl, sizeof(req));
	FK_CHECK(f, req.argsz == 16 && req.index == 0 && req.flags == 0);
	FK_CHECK(f, fk_reply(f, &h, sizeof(h), NULL, 0) == 0);
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_IO_FDS));
	memcpy(&req, f->pl, sizeof(req));
	FK_CHECK(f, req.argsz == sizeof(out));
	memcpy(out, &h, sizeof(h));
	memcpy(out + 16, subs, sizeof(subs));
	FK_CHECK(f, fk_reply(f, out, sizeof(out), efds, 2) == 0);
	/* fd_index beyond the fds sent. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_IO_FDS));
	FK_CHECK(f, fk_reply(f, out, sizeof(out), efds, 1) == 0);
	close(efds[0]);
	close(efds[1]);
}

static void test_region_io_fds(void **state)
{
	struct vfurt_client_io_fds io;
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_io_fds, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_region_io_fds(c, 0, &io), 0);
	assert_int_equal(io.count, 2);
	assert_int_equal(io.nfds, 2);
	assert_int_equal(io.subs[0].offset, 0x1000);
	assert_int_equal(io.subs[0].datamatch_or_user_data, 7);
	assert_int_equal(io.subs[1].fd_index, 1);
	assert_true(fcntl(io.fds[1], F_GETFD) >= 0);
	vfurt_client_io_fds_release(&io);
	assert_int_equal(vfurt_client_region_io_fds(c, 0, &io), -EPROTO);
	assert_null(io.fds);
	vfurt_client_close(c);
	fake_finish(&f);
}

/* ---- region access ------------------------------------------------------------- */

static void fk_access(struct fake *f)
{
	struct vfio_user_region_access ra;
	uint8_t out[16 + 4096];
	uint64_t off = 0x100;

	FK_CHECK(f, fk_version(f));
	/* A 10000-byte read arrives as 4096 + 4096 + 1808. */
	for (int i = 0; i < 3; i++) {
		uint32_t want = i < 2 ? 4096 : 1808;

		FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_READ) && f->len == 16);
		memcpy(&ra, f->pl, sizeof(ra));
		FK_CHECK(f, ra.region == 3 && ra.offset == off && ra.count == want);
		memcpy(out, &ra, sizeof(ra));
		for (uint32_t k = 0; k < want; k++)
			out[16 + k] = (uint8_t)(off + k);
		FK_CHECK(f, fk_reply(f, out, 16 + want, NULL, 0) == 0);
		off += want;
	}
	/* Posted write: No_reply set, and we do not answer. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_WRITE) && f->len == 18);
	FK_CHECK(f, f->hdr->flags & VFIO_USER_F_NO_REPLY);
	FK_CHECK(f, memcmp(f->pl + 16, "xy", 2) == 0);
	/* Write multi. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_WRITE_MULTI) && f->len == 8 + 3 * 24);
	{
		struct vfio_user_write_multi_entry e;
		uint64_t cnt;

		memcpy(&cnt, f->pl, 8);
		memcpy(&e, f->pl + 8 + 24, sizeof(e));
		FK_CHECK(f, cnt == 3 && e.offset == 8 && e.count == 4 && e.region == 0);
		FK_CHECK(f, fk_reply(f, &cnt, sizeof(cnt), NULL, 0) == 0);
	}
	/* A 5000-byte write as 4096 + 904, each acknowledged. */
	for (int i = 0; i < 2; i++) {
		FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_WRITE));
		memcpy(&ra, f->pl, sizeof(ra));
		FK_CHECK(f, ra.count == (i ? 904u : 4096u) && f->len == 16 + ra.count);
		FK_CHECK(f, f->pl[16] == (uint8_t)(i ? 4096 : 0));
		FK_CHECK(f, fk_reply(f, &ra, sizeof(ra), NULL, 0) == 0);
	}
	/* A reply whose count lies. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_READ));
	memcpy(&ra, f->pl, sizeof(ra));
	ra.count = 2;
	memcpy(out, &ra, sizeof(ra));
	FK_CHECK(f, fk_reply(f, out, 16 + 2, NULL, 0) == 0);
}

static void test_region_access(void **state)
{
	struct vfio_user_write_multi_entry wrs[3] = {
		{ .offset = 0, .count = 4 }, { .offset = 8, .count = 4 }, { .offset = 16, .count = 8 },
	};
	uint8_t *buf = malloc(10000);
	struct vfurt_client *c;
	struct fake f;

	assert_non_null(buf);
	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_data_xfer_size\":4096,\"write_multiple\":true}}";
	c = fake_start(&f, fk_access, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_region_read(c, 3, 0x100, buf, 10000), 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf[i], (uint8_t)(0x100 + i));
	assert_int_equal(vfurt_client_region_write_posted(c, 1, 0, "xy", 2), 0);
	assert_int_equal(vfurt_client_region_write_multi(c, wrs, 3, false), 0);
	wrs[0].count = 9;
	assert_int_equal(vfurt_client_region_write_multi(c, wrs, 3, false), -EINVAL);
	for (int i = 0; i < 5000; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(vfurt_client_region_write(c, 0, 0, buf, 5000), 0);
	assert_int_equal(vfurt_client_region_read(c, 0, 0, buf, 4), -EIO);
	vfurt_client_close(c);
	free(buf);
	fake_finish(&f);
}

/* ---- interrupts ------------------------------------------------------------------ */

static void fk_irqs(struct fake *f)
{
	static const uint32_t starts[3] = { 0, 4, 8 }, counts[3] = { 4, 4, 2 };
	struct vfio_irq_set is;

	FK_CHECK(f, fk_version(f));
	for (int m = 0; m < 3; m++) {
		FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_SET_IRQS) && f->len == 20);
		memcpy(&is, f->pl, sizeof(is));
		FK_CHECK(f, is.flags == (VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER));
		FK_CHECK(f, is.index == VFIO_PCI_MSIX_IRQ_INDEX && is.argsz == 20);
		FK_CHECK(f, is.start == starts[m] && is.count == counts[m]);
		FK_CHECK(f, f->nfds == counts[m]);
		/* Signal each vector's eventfd with its number + 1. */
		for (uint32_t i = 0; i < is.count; i++) {
			uint64_t v = is.start + i + 1;

			FK_CHECK(f, write(f->fds[i], &v, sizeof(v)) == sizeof(v));
		}
		FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
	}
	/* DATA_BOOL mask of 3 vectors. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_SET_IRQS) && f->len == 23 && f->nfds == 0);
	memcpy(&is, f->pl, sizeof(is));
	FK_CHECK(f, is.flags == (VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK));
	FK_CHECK(f, is.argsz == 23 && f->pl[20] == 1 && f->pl[21] == 0 && f->pl[22] == 1);
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
	/* DATA_NONE disable-all. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_SET_IRQS) && f->len == 20);
	memcpy(&is, f->pl, sizeof(is));
	FK_CHECK(f, is.flags == (VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER));
	FK_CHECK(f, is.count == 0);
	FK_CHECK(f, fk_error(f, EINVAL) == 0);
	/* De-assign without fds. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_SET_IRQS) && f->nfds == 0);
	memcpy(&is, f->pl, sizeof(is));
	FK_CHECK(f, is.flags == (VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER));
	FK_CHECK(f, is.count == 10);
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
	/* irq info */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_IRQ_INFO));
	{
		struct vfio_irq_info ii;

		memcpy(&ii, f->pl, sizeof(ii));
		FK_CHECK(f, ii.argsz == 16 && ii.index == VFIO_PCI_MSIX_IRQ_INDEX);
		ii.count = 10;
		ii.flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
		FK_CHECK(f, fk_reply(f, &ii, sizeof(ii), NULL, 0) == 0);
	}
}

static void test_set_irqs(void **state)
{
	static const uint8_t bools[3] = { 1, 0, 1 };
	struct vfio_irq_info ii;
	struct vfurt_client *c;
	struct fake f;
	int efd[10];

	for (int i = 0; i < 10; i++) {
		efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		assert_true(efd[i] >= 0);
	}
	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_msg_fds\":4}}";
	c = fake_start(&f, fk_irqs, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFIO_PCI_MSIX_IRQ_INDEX, 0, 10, efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	/* The fake got our eventfds, not copies of something else. */
	for (int i = 0; i < 10; i++) {
		uint64_t v = 0;

		assert_int_equal(vfurt_client_wait_eventfd(c, efd[i], 1000, &v), 0);
		assert_int_equal(v, (uint64_t)i + 1);
	}
	assert_int_equal(vfurt_client_wait_eventfd(NULL, efd[0], 10, NULL), -ETIMEDOUT);
	assert_int_equal(vfurt_client_set_irqs(c, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3,
					       VFIO_IRQ_SET_ACTION_MASK, bools), 0);
	assert_int_equal(vfurt_client_set_irqs(c, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0,
					       VFIO_IRQ_SET_ACTION_TRIGGER, NULL), -EINVAL);
	assert_int_equal(vfurt_client_set_irqs(c, 0, 0, 1, VFIO_IRQ_SET_ACTION_MASK |
					       VFIO_IRQ_SET_ACTION_UNMASK, NULL), -EINVAL);
	assert_int_equal(vfurt_client_set_irqs_eventfd(c, VFIO_PCI_MSIX_IRQ_INDEX, 0, 10, NULL,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(vfurt_client_irq_info(c, VFIO_PCI_MSIX_IRQ_INDEX, &ii), 0);
	assert_int_equal(ii.count, 10);
	assert_true(ii.flags & VFIO_IRQ_INFO_NORESIZE);
	vfurt_client_close(c);
	fake_finish(&f);
	for (int i = 0; i < 10; i++)
		close(efd[i]);
}

/* ---- DMA --------------------------------------------------------------------------- */

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + 3);
}

/* Send a DMA command on sock and read the client's answer into f. */
static bool fk_dma(struct fake *f, int sock, uint16_t cmd, uint16_t id, uint64_t addr,
		   uint64_t count, const void *data)
{
	struct vfio_user_dma_access acc = { .addr = addr, .count = count };
	uint8_t out[16 + 256];
	size_t n = sizeof(acc);

	memcpy(out, &acc, sizeof(acc));
	if (data) {
		memcpy(out + n, data, count);
		n += count;
	}
	if (fk_send(sock, id, cmd, VFIO_USER_F_TYPE_COMMAND, 0, out, n, NULL, 0))
		return false;
	return fk_recv_on(f, sock) == 0 && f->hdr->msg_id == id && f->hdr->cmd == cmd &&
	       (f->hdr->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY;
}

/* Interleave DMA commands with the reply to a REGION_READ, on `sock`. */
static void fk_dma_round(struct fake *f, int sock)
{
	struct vfio_user_dma_access acc;
	struct vfio_user_region_access ra;
	uint8_t data[32];
	uint8_t out[20];

	uint16_t id;

	FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_READ));
	memcpy(&ra, f->pl, sizeof(ra));
	FK_CHECK(f, ra.count == 4);
	id = f->hdr->msg_id;

	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DMA_READ, 0x100, IOVA + 100, 64, NULL));
	FK_CHECK(f, !(f->hdr->flags & VFIO_USER_F_ERROR) && f->len == 16 + 64);
	memcpy(&acc, f->pl, sizeof(acc));
	FK_CHECK(f, acc.addr == IOVA + 100 && acc.count == 64);
	for (int i = 0; i < 64; i++)
		FK_CHECK(f, f->pl[16 + i] == pattern(100 + (uint64_t)i));

	memset(data, 0xa5, sizeof(data));
	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DMA_WRITE, 0x101, IOVA + PAGE, 32, data));
	/* Spec reply: address + 8-byte count, nothing else. */
	FK_CHECK(f, !(f->hdr->flags & VFIO_USER_F_ERROR) && f->len == 16);
	memcpy(&acc, f->pl, sizeof(acc));
	FK_CHECK(f, acc.addr == IOVA + PAGE && acc.count == 32);

	/* Outside every window. */
	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DMA_READ, 0x102, 0x900000, 8, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EFAULT);
	FK_CHECK(f, f->len == 0);
	/* Straddling the end of the window. */
	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DMA_READ, 0x103, IOVA + 2 * PAGE - 4, 8, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EFAULT);
	/* Bigger than our max_data_xfer_size. */
	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DMA_READ, 0x104, IOVA, 2u << 20, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EINVAL);
	/* Too big to buffer: drained and refused, the stream stays in sync. */
	{
		size_t big = (size_t)3 << 19;
		uint8_t *huge = calloc(1, 16 + big);
		struct vfio_user_dma_access hacc = { .addr = IOVA, .count = big };
		int rc;

		FK_CHECK(f, huge);
		memcpy(huge, &hacc, sizeof(hacc));
		rc = fk_send(sock, 0x106, VFIO_USER_DMA_WRITE, 0, 0, huge, 16 + big, NULL, 0);
		free(huge);
		FK_CHECK(f, rc == 0 && fk_recv_on(f, sock) == 0 && f->hdr->msg_id == 0x106);
		FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EINVAL);
	}
	/* Not a command a client serves. */
	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DEVICE_RESET, 0x105, 0, 0, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == ENOSYS);

	memcpy(out, &ra, sizeof(ra));
	memcpy(out + 16, "abcd", 4);
	FK_CHECK(f, fk_send(f->sock, id, VFIO_USER_REGION_READ, VFIO_USER_F_TYPE_REPLY, 0, out,
			    sizeof(out), NULL, 0) == 0);
}

static void fk_dma_main(struct fake *f)
{
	struct vfio_user_dma_map dm;
	struct vfio_user_dma_unmap du;
	uint16_t id;
	uint8_t *p;

	FK_CHECK(f, fk_version(f));
	/* Window 1: no fd, reached only through DMA_READ/WRITE. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_MAP) && f->len == 32 && f->nfds == 0);
	memcpy(&dm, f->pl, sizeof(dm));
	FK_CHECK(f, dm.argsz == 32 && dm.addr == IOVA && dm.size == 2 * PAGE && dm.offset == 0);
	FK_CHECK(f, dm.flags == (VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE));
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
	fk_dma_round(f, f->sock);
	if (f->fail_line)
		return;
	/* Window 2: with the fd at file offset PAGE; we map it like a server. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_MAP) && f->nfds == 1);
	f->u[1] = f->hdr->msg_id;
	memcpy(&dm, f->pl, sizeof(dm));
	FK_CHECK(f, dm.addr == 0x100000 && dm.size == PAGE && dm.offset == PAGE);
	FK_CHECK(f, dm.flags == VFIO_USER_DMA_MAP_FLAG_READ);
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fds[0], (off_t)dm.offset);
	FK_CHECK(f, p != MAP_FAILED);
	f->u[0] = p[0] == 0xa5 && p[40] == pattern(PAGE + 40);
	p[100] = 0x42;
	munmap(p, PAGE);
	/* The client knows window 2 while it waits for this reply; it is
	 * read-only for the device. */
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_WRITE, 0x200, 0x100000, 4, "zzzz"));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EACCES);
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_READ, 0x201, 0x100000 + 100, 1, NULL));
	FK_CHECK(f, !(f->hdr->flags & VFIO_USER_F_ERROR) && f->pl[16] == 0x42);
	FK_CHECK(f, fk_send(f->sock, (uint16_t)f->u[1], VFIO_USER_DMA_MAP, VFIO_USER_F_TYPE_REPLY,
			    0, NULL, 0, NULL, 0) == 0);
	/* A rejected map. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_MAP));
	FK_CHECK(f, fk_error(f, EEXIST) == 0);
	/* Unmap window 1; meanwhile check the rejected window is gone. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_UNMAP) && f->len == 24);
	memcpy(&du, f->pl, sizeof(du));
	id = f->hdr->msg_id;
	FK_CHECK(f, du.argsz == 24 && du.addr == IOVA && du.size == 2 * PAGE && du.flags == 0);
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_READ, 0x202, 0x200000, 1, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EFAULT);
	FK_CHECK(f, fk_send(f->sock, id, VFIO_USER_DMA_UNMAP, VFIO_USER_F_TYPE_REPLY, 0, &du,
			    sizeof(du), NULL, 0) == 0);
	/* Unmap all; window 1 is gone already, window 2 still there. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_UNMAP));
	memcpy(&du, f->pl, sizeof(du));
	id = f->hdr->msg_id;
	FK_CHECK(f, du.flags == VFIO_USER_DMA_UNMAP_FLAG_ALL);
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_READ, 0x203, IOVA, 1, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EFAULT);
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_READ, 0x204, 0x100000, 1, NULL));
	FK_CHECK(f, !(f->hdr->flags & VFIO_USER_F_ERROR));
	FK_CHECK(f, fk_send(f->sock, id, VFIO_USER_DMA_UNMAP, VFIO_USER_F_TYPE_REPLY, 0, &du,
			    sizeof(du), NULL, 0) == 0);
	/* After unmap-all nothing is reachable. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_RESET));
	id = f->hdr->msg_id;
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_READ, 0x205, 0x100000, 1, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EFAULT);
	FK_CHECK(f, fk_send(f->sock, id, VFIO_USER_DEVICE_RESET, VFIO_USER_F_TYPE_REPLY, 0, NULL,
			    0, NULL, 0) == 0);
}

static int make_memfd(size_t size, uint8_t **map)
{
	int fd = memfd_create("guest", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(*map != MAP_FAILED);
	for (size_t i = 0; i < size; i++)
		(*map)[i] = pattern(i);
	return fd;
}

static void test_dma_interleaved(void **state)
{
	const uint32_t rw = VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE;
	struct vfurt_client_stats st = { .stats_size = sizeof(st) };
	struct vfurt_client *c;
	struct fake f;
	uint8_t buf[4];
	uint8_t *mem;
	int memfd;

	memfd = make_memfd(2 * PAGE, &mem);
	fake_init(&f);
	c = fake_start(&f, fk_dma_main, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_dma_map(c, IOVA, 2 * PAGE, memfd, 0, rw, 0), 0);
	/* The fake serves DMA_READ/WRITE before it answers this read. */
	assert_int_equal(vfurt_client_region_read(c, 0, 0, buf, 4), 0);
	assert_memory_equal(buf, "abcd", 4);
	for (int i = 0; i < 32; i++)
		assert_int_equal(mem[PAGE + i], 0xa5);
	assert_int_equal(mem[PAGE + 32], pattern(PAGE + 32));
	assert_int_equal(vfurt_client_get_stats(c, &st), 0);
	assert_int_equal(st.dma_reads, 1);
	assert_int_equal(st.dma_writes, 1);
	assert_int_equal(st.dma_bytes, 96);
	assert_int_equal(st.dma_errors, 5);
	assert_int_equal(vfurt_client_dma_served(c), 2);

	assert_int_equal(vfurt_client_dma_map(c, 0x100000, PAGE, memfd, PAGE,
					      VFIO_USER_DMA_MAP_FLAG_READ,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_int_equal(vfurt_client_dma_map(c, 0x200000, PAGE, memfd, 0, rw, 0), -EEXIST);
	assert_int_equal(mem[PAGE + 100], 0x42);
	assert_int_equal(vfurt_client_dma_unmap(c, IOVA, 2 * PAGE, 0), 0);
	assert_int_equal(vfurt_client_dma_unmap(c, 0, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL), 0);
	assert_int_equal(vfurt_client_reset(c), 0);
	assert_int_equal(vfurt_client_dma_map(c, IOVA, 0, memfd, 0, rw, 0), -EINVAL);
	assert_int_equal(vfurt_client_dma_map(c, IOVA, PAGE, -1, 0, rw, 0), -EINVAL);
	vfurt_client_close(c);
	fake_finish(&f);
	assert_int_equal(f.u[0], 1);
	munmap(mem, 2 * PAGE);
	close(memfd);
}

static void fk_twin(struct fake *f)
{
	char json[128];
	int tw[2];

	FK_CHECK(f, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tw) == 0);
	f->twin = tw[1];
	/* The twin fd sits at index 1 behind an unrelated fd. */
	snprintf(json, sizeof(json),
		 "{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":1}}}");
	f->reply_json = json;
	{
		int fds[2] = { eventfd(0, EFD_CLOEXEC), tw[0] };
		bool ok = fk_version_fds(f, fds, 2);

		close(fds[0]);
		close(fds[1]);
		FK_CHECK(f, ok);
	}
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_MAP) && f->nfds == 0);
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
	fk_dma_round(f, f->twin);
	if (f->fail_line)
		return;
	/* Idle: two writes on the twin socket, one read on the main one. */
	{
		struct vfio_user_dma_access acc = { .addr = IOVA + 8, .count = 2 };
		uint8_t out[18];

		memcpy(out, &acc, sizeof(acc));
		memcpy(out + 16, "QR", 2);
		FK_CHECK(f, fk_send(f->twin, 1, VFIO_USER_DMA_WRITE, 0, 0, out, 18, NULL, 0) == 0);
		acc.addr = IOVA + 10;
		memcpy(out, &acc, sizeof(acc));
		FK_CHECK(f, fk_send(f->twin, 2, VFIO_USER_DMA_WRITE, 0, 0, out, 18, NULL, 0) == 0);
		acc.addr = IOVA;
		memcpy(out, &acc, sizeof(acc));
		FK_CHECK(f, fk_send(f->sock, 3, VFIO_USER_DMA_READ, 0, 0, out, 16, NULL, 0) == 0);
		FK_CHECK(f, fk_recv_on(f, f->twin) == 0 && f->hdr->msg_id == 1 && f->len == 16);
		FK_CHECK(f, fk_recv_on(f, f->twin) == 0 && f->hdr->msg_id == 2 && f->len == 16);
		FK_CHECK(f, fk_recv(f) == 0 && f->hdr->msg_id == 3 && f->len == 18);
		FK_CHECK(f, f->pl[16] == pattern(0) && f->pl[17] == pattern(1));
	}
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_RESET));
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
}

static void test_twin_socket(void **state)
{
	struct vfurt_client_opts o = {
		.opts_size = sizeof(o), .timeout_ms = 2000,
		.flags = VFURT_CLIENT_TWIN_SOCKET | VFURT_CLIENT_REQUIRE_TWIN,
	};
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct vfurt_client_stats st = { .stats_size = sizeof(st) };
	struct vfurt_client *c;
	struct fake f;
	uint8_t *mem = malloc(2 * PAGE);
	uint8_t buf[4];
	int served = 0;

	assert_non_null(mem);
	for (size_t i = 0; i < 2 * PAGE; i++)
		mem[i] = pattern(i);
	fake_init(&f);
	c = fake_start(&f, fk_twin, &o);
	assert_non_null(c);
	assert_int_equal(vfurt_client_get_caps(c, &caps), 0);
	assert_true(caps.twin_socket);
	assert_true(vfurt_client_twin_fd(c) >= 0);
	assert_int_equal(vfurt_client_dma_map_mem(c, IOVA, 2 * PAGE, mem,
						  VFIO_USER_DMA_MAP_FLAG_READ |
						  VFIO_USER_DMA_MAP_FLAG_WRITE, 0), 0);
	assert_int_equal(vfurt_client_region_read(c, 0, 0, buf, 4), 0);
	assert_memory_equal(buf, "abcd", 4);
	assert_int_equal(mem[PAGE], 0xa5);
	/* Some of these may already have been served while region_read waited
	 * (the twin socket is independent of the main one). */
	while (vfurt_client_dma_served(c) < 5) {
		int rc = vfurt_client_poll_server(c, 2000);

		if (rc <= 0)
			fail_msg("poll_server: %d after %d", rc, served);
		served += rc;
	}
	assert_true(served >= 1 && served <= 3);
	assert_memory_equal(mem + 8, "QRQR", 4);
	assert_int_equal(vfurt_client_poll_server(c, 0), 0);
	assert_int_equal(vfurt_client_reset(c), 0);
	assert_int_equal(vfurt_client_get_stats(c, &st), 0);
	assert_int_equal(st.twin_commands, 7 + 2);
	assert_int_equal(st.dma_reads, 2);
	assert_int_equal(st.dma_writes, 3);
	vfurt_client_close(c);
	fake_finish(&f);
	free(mem);
}

/* ---- misc ---------------------------------------------------------------------------- */

static void fk_feature(struct fake *f)
{
	uint8_t out[8 + 8];
	struct vfio_user_device_feature df;
	uint32_t n;

	FK_CHECK(f, fk_version(f));
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_FEATURE) && f->len == 8);
	memcpy(&df, f->pl, sizeof(df));
	FK_CHECK(f, df.argsz == 16 && df.flags == (VFIO_DEVICE_FEATURE_GET | 1));
	df.argsz = 16;
	memcpy(out, &df, sizeof(df));
	memcpy(out + 8, "\x01\0\0\0\0\0\0\0", 8);
	FK_CHECK(f, fk_reply(f, out, sizeof(out), NULL, 0) == 0);
	/* MIG_DATA_READ of 16, we have 3. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_MIG_DATA_READ) && f->len == 8);
	memcpy(&n, f->pl + 4, 4);
	FK_CHECK(f, n == 16);
	{
		struct vfio_user_mig_data md = { .argsz = 11, .size = 3 };

		memcpy(out, &md, sizeof(md));
		memcpy(out + 8, "mig", 3);
		FK_CHECK(f, fk_reply(f, out, 11, NULL, 0) == 0);
	}
	FK_CHECK(f, fk_expect(f, VFIO_USER_MIG_DATA_WRITE) && f->len == 8 + 5);
	FK_CHECK(f, memcmp(f->pl + 8, "hello", 5) == 0);
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
}

static void test_feature_and_migration(void **state)
{
	struct vfurt_client *c;
	struct fake f;
	uint64_t mig_flags = 0;
	uint8_t buf[16];
	uint32_t got = 0;
	size_t len = 0;

	fake_init(&f);
	c = fake_start(&f, fk_feature, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_device_feature(c, VFIO_DEVICE_FEATURE_GET | 1, NULL, 0,
						     &mig_flags, sizeof(mig_flags), &len), 0);
	assert_int_equal(len, 8);
	assert_int_equal(mig_flags, 1);
	assert_int_equal(vfurt_client_mig_data_read(c, buf, sizeof(buf), &got), 0);
	assert_int_equal(got, 3);
	assert_memory_equal(buf, "mig", 3);
	assert_int_equal(vfurt_client_mig_data_write(c, "hello", 5), 0);
	vfurt_client_close(c);
	fake_finish(&f);
}

static void test_bad_args(void **state)
{
	struct vfurt_client_opts o = { .opts_size = sizeof(o), .flags = 1u << 30 };
	int sv[2];

	assert_null(vfurt_client_connect(NULL, NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(vfurt_client_connect("/nonexistent/vfurt.sock", NULL));
	assert_int_equal(errno, ENOENT);
	/* Unknown flags: the socket is still consumed. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_null(vfurt_client_connect_fd(sv[0], &o));
	assert_int_equal(errno, EINVAL);
	close(sv[1]);
	vfurt_client_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_fds, teardown_fds)
		T(test_version_caps),
		T(test_version_overrides),
		T(test_version_no_json),
		T(test_version_rejects),
		T(test_version_error_reply),
		T(test_error_replies),
		T(test_timeout_and_disconnect),
		T(test_raw),
		T(test_region_info),
		T(test_region_io_fds),
		T(test_region_access),
		T(test_set_irqs),
		T(test_dma_interleaved),
		T(test_twin_socket),
		T(test_feature_and_migration),
		T(test_bad_args),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
