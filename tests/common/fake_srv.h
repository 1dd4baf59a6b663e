/* A scripted fake vfio-user server on a thread, for the client library's unit tests. */
#ifndef VFURT_TESTS_FAKE_SRV_H
#define VFURT_TESTS_FAKE_SRV_H

/*
 * A test starts a fake with a script (fake_fn) and gets a client connected
 * to it; the script receives the client's messages with fk_expect/fk_recv
 * and answers with fk_reply/fk_error/fk_send, checking what it got with
 * FK_CHECK. A failed check records its line, and the fake hangs up so the
 * client does not wait; fake_finish() joins the script and fails the test
 * with that line.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/client.h>
#include <vfurt/vfio_user.h>

#include "io/sock.h"

#define FAKE_CAP ((size_t)4 << 20) /* the largest message the fake receives */
#define FAKE_TIMEOUT_MS 3000       /* bound of each of its socket operations */

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

/* In a script: stop it at the first failed check, remembering the line. */
#define FK_CHECK(f, cond)                                   \
	do {                                                \
		if (!(cond)) {                              \
			if (!(f)->fail_line)                \
				(f)->fail_line = __LINE__;  \
			return;                             \
		}                                           \
	} while (0)

/* Receive one message on sock into f->buf (its fds in f->fds, the
 * previous ones closed). 0 or a negative errno. */
int fk_recv_on(struct fake *f, int sock);
/* fk_recv_on the main socket. */
int fk_recv(struct fake *f);
/* Send a message with the given header fields, payload and fds on sock. */
int fk_send(int sock, uint16_t id, uint16_t cmd, uint32_t flags, uint32_t err, const void *p,
	    size_t len, const int *fds, size_t nfds);
/* Reply to the last received message. */
int fk_reply(struct fake *f, const void *p, size_t len, const int *fds, size_t nfds);
/* Error reply with errno err to the last received message. */
int fk_error(struct fake *f, uint32_t err);
/* Receive the next message: true when it is command `cmd`. */
bool fk_expect(struct fake *f, uint16_t cmd);
/* Answer VERSION with f->reply_json (and fds), keeping what the client
 * proposed in f->client_json. */
bool fk_version_fds(struct fake *f, const int *fds, size_t nfds);
bool fk_version(struct fake *f);

/* A fake with the default VERSION reply (8 fds, 1 MiB, write_multiple). */
void fake_init(struct fake *f);
/* Run fn on a thread against one end of a socketpair and return a client on
 * the other (o NULL: a 2 s timeout), or NULL with errno. */
struct vfurt_client *fake_start(struct fake *f, fake_fn fn, struct vfurt_client_opts *o);
/* The fake's thread (arg: the fake): accept a connection on listen_fd
 * first when it is >= 0, then run the script. fake_start runs it; a test
 * whose client connects by path sets listen_fd and fn and starts it. */
void *fake_main(void *arg);
/* Wait for the script to end (once). */
void fake_join(struct fake *f);
/* Join the fake, release its resources and fail the test if a check of
 * the script failed. */
void fake_finish(struct fake *f);

/* cmocka setup / teardown around a test: the teardown fails when the
 * process has a different number of open fds than at the setup. */
int fake_fds_setup(void **state);
int fake_fds_teardown(void **state);

#endif /* VFURT_TESTS_FAKE_SRV_H */
