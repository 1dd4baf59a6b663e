/* A scripted fake vfio-user server on a thread, for the client library's unit tests. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fake_srv.h"
#include "common/testsrv.h"

/* Receive one message on sock into f->buf; fds land in f->fds. */
int fk_recv_on(struct fake *f, int sock)
{
	ssize_t n;

	vfr_close_fds(f->fds, f->nfds);
	f->nfds = 0;
	n = vfr_sock_recv_msg(sock, f->buf, FAKE_CAP, f->fds, &f->nfds, VFURT_SOCK_MAX_FDS,
				FAKE_TIMEOUT_MS);
	if (n < 0)
		return (int)n;
	f->len = (size_t)n - sizeof(*f->hdr);
	return 0;
}

int fk_recv(struct fake *f)
{
	return fk_recv_on(f, f->sock);
}

int fk_send(int sock, uint16_t id, uint16_t cmd, uint32_t flags, uint32_t err,
		   const void *p, size_t len, const int *fds, size_t nfds)
{
	struct vfio_user_header h = {
		.msg_id = id, .cmd = cmd, .msg_size = (uint32_t)(sizeof(h) + len),
		.flags = flags, .error_no = err,
	};

	return vfr_sock_send_msg(sock, &h, p, len, fds, nfds, FAKE_TIMEOUT_MS);
}

/* Reply to the last received message. */
int fk_reply(struct fake *f, const void *p, size_t len, const int *fds, size_t nfds)
{
	return fk_send(f->sock, f->hdr->msg_id, f->hdr->cmd, VFIO_USER_F_TYPE_REPLY, 0, p, len,
		       fds, nfds);
}

int fk_error(struct fake *f, uint32_t err)
{
	return fk_send(f->sock, f->hdr->msg_id, f->hdr->cmd,
		       VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR, err, NULL, 0, NULL, 0);
}

/* Expect the next message to be command `cmd`. */
bool fk_expect(struct fake *f, uint16_t cmd)
{
	return fk_recv(f) == 0 && f->hdr->cmd == cmd &&
	       (f->hdr->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND;
}

/* Answer VERSION with f->reply_json and optional fds. */
bool fk_version_fds(struct fake *f, const int *fds, size_t nfds)
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

bool fk_version(struct fake *f)
{
	return fk_version_fds(f, NULL, 0);
}

void *fake_main(void *arg)
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

void fake_init(struct fake *f)
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
struct vfurt_client *fake_start(struct fake *f, fake_fn fn, struct vfurt_client_opts *o)
{
	struct vfurt_client_opts def = { .opts_size = sizeof(def), .timeout_ms = 2000 };
	int sv[2];

	f->fn = fn;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->sock = sv[1];
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
	return vfurt_client_connect_fd(sv[0], o ? o : &def);
}

void fake_join(struct fake *f)
{
	if (!f->joined)
		pthread_join(f->th, NULL);
	f->joined = true;
}

/* Join the fake, release its resources and check it saw what it expected. */
void fake_finish(struct fake *f)
{
	fake_join(f);
	vfr_close_fds(f->fds, f->nfds);
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

int fake_fds_setup(void **state)
{
	fds_before = test_count_fds();
	return 0;
}

int fake_fds_teardown(void **state)
{
	int now = test_count_fds();

	if (now != fds_before) {
		fprintf(stderr, "fd leak: %d before, %d after\n", fds_before, now);
		return -1;
	}
	return 0;
}
