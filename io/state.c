/* State images: tagged records and an fd table, built, read and passed over a socket. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <vfurt/state.h>

#define REC_HDR 8u
#define STATE_MAGIC 0x474d495452554656ull /* "VFURTIMG" */
#define XFER_CHUNK 65536u
#define XFER_FDS 250u

struct vfurt_state {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int *fds;      /* -1: taken */
	size_t nfds;
	size_t cap_fds;
	size_t open[VFURT_STATE_MAX_DEPTH]; /* offsets of open sections' headers */
	uint32_t depth;
};

/* What goes first on the wire. */
struct state_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t nfds;
	uint64_t bytes;
	uint64_t sum;
};

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static size_t pad8(size_t n)
{
	return (n + 7u) & ~(size_t)7u;
}

struct vfurt_state *vfurt_state_create(void)
{
	struct vfurt_state *s = calloc(1, sizeof(*s));

	if (!s)
		errno = ENOMEM;
	return s;
}

void vfurt_state_destroy(struct vfurt_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nfds; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	free(s->fds);
	free(s->buf);
	free(s);
}

size_t vfurt_state_size(const struct vfurt_state *s)
{
	return s ? s->len : 0;
}

size_t vfurt_state_nr_fds(const struct vfurt_state *s)
{
	return s ? s->nfds : 0;
}

static int reserve(struct vfurt_state *s, size_t more)
{
	size_t cap;
	uint8_t *nb;

	if (more > VFURT_STATE_MAX_BYTES || s->len > VFURT_STATE_MAX_BYTES - more)
		return -E2BIG;
	if (s->len + more <= s->cap)
		return 0;
	cap = s->cap ? s->cap : 4096;
	while (cap < s->len + more)
		cap *= 2;
	nb = realloc(s->buf, cap);
	if (!nb)
		return -ENOMEM;
	s->buf = nb;
	s->cap = cap;
	return 0;
}

static void put_hdr(uint8_t *p, uint32_t tag, uint32_t len)
{
	memcpy(p, &tag, 4);
	memcpy(p + 4, &len, 4);
}

static int put_raw(struct vfurt_state *s, uint32_t tag, const void *val, size_t len)
{
	size_t total = REC_HDR + pad8(len);
	int rc;

	if (len > VFURT_STATE_MAX_BYTES)
		return -E2BIG;
	rc = reserve(s, total);
	if (rc)
		return rc;
	put_hdr(s->buf + s->len, tag, (uint32_t)len);
	if (len)
		memcpy(s->buf + s->len + REC_HDR, val, len);
	memset(s->buf + s->len + REC_HDR + len, 0, pad8(len) - len);
	s->len += total;
	return 0;
}

int vfurt_state_put(struct vfurt_state *s, uint32_t tag, const void *val, size_t len)
{
	if (!s || (tag & VFURT_STATE_SECTION) || (!val && len))
		return -EINVAL;
	return put_raw(s, tag, val, len);
}

int vfurt_state_put_u64(struct vfurt_state *s, uint32_t tag, uint64_t v)
{
	return vfurt_state_put(s, tag, &v, sizeof(v));
}

int vfurt_state_put_u32(struct vfurt_state *s, uint32_t tag, uint32_t v)
{
	return vfurt_state_put(s, tag, &v, sizeof(v));
}

int vfurt_state_put_bool(struct vfurt_state *s, uint32_t tag, bool v)
{
	uint8_t b = v ? 1 : 0;

	return vfurt_state_put(s, tag, &b, 1);
}

int vfurt_state_put_str(struct vfurt_state *s, uint32_t tag, const char *str)
{
	if (!str)
		return -EINVAL;
	return vfurt_state_put(s, tag, str, strlen(str));
}

int vfurt_state_put_fd(struct vfurt_state *s, uint32_t tag, int fd)
{
	uint32_t idx;
	int dup, rc;

	if (!s || fd < 0 || (tag & VFURT_STATE_SECTION))
		return -EINVAL;
	if (s->nfds >= VFURT_STATE_MAX_FDS)
		return -E2BIG;
	if (s->nfds == s->cap_fds) {
		size_t cap = s->cap_fds ? s->cap_fds * 2 : 16;
		int *nf = realloc(s->fds, cap * sizeof(*nf));

		if (!nf)
			return -ENOMEM;
		s->fds = nf;
		s->cap_fds = cap;
	}
	idx = (uint32_t)s->nfds;
	rc = put_raw(s, tag, &idx, sizeof(idx));
	if (rc)
		return rc;
	dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dup < 0) {
		rc = -errno;
		s->len -= REC_HDR + pad8(sizeof(idx)); /* take the record back */
		return rc;
	}
	s->fds[s->nfds++] = dup;
	return 0;
}

int vfurt_state_open(struct vfurt_state *s, uint32_t tag)
{
	int rc;

	if (!s || (tag & VFURT_STATE_SECTION))
		return -EINVAL;
	if (s->depth >= VFURT_STATE_MAX_DEPTH)
		return -E2BIG;
	rc = put_raw(s, tag | VFURT_STATE_SECTION, NULL, 0);
	if (rc)
		return rc;
	s->open[s->depth++] = s->len - REC_HDR;
	return 0;
}

int vfurt_state_close(struct vfurt_state *s)
{
	size_t at, len;
	uint32_t tag;

	if (!s || !s->depth)
		return -EINVAL;
	at = s->open[--s->depth];
	len = s->len - at - REC_HDR; /* nested records are 8-aligned: no padding */
	if (len > UINT32_MAX)
		return -E2BIG;
	memcpy(&tag, s->buf + at, 4);
	put_hdr(s->buf + at, tag, (uint32_t)len);
	return 0;
}

int vfurt_state_root(struct vfurt_state *s, struct vfurt_state_cur *c)
{
	if (!s || !c || s->depth)
		return -EINVAL;
	c->s = s;
	c->pos = 0;
	c->end = s->len;
	return 0;
}

int vfurt_state_next(struct vfurt_state_cur *c, uint32_t *tag, const void **val, size_t *len)
{
	uint32_t t, l;
	size_t total;

	if (!c || !c->s || c->pos >= c->end)
		return 0;
	if (c->end - c->pos < REC_HDR || c->end > c->s->len)
		return -EBADMSG;
	memcpy(&t, c->s->buf + c->pos, 4);
	memcpy(&l, c->s->buf + c->pos + 4, 4);
	total = REC_HDR + pad8(l);
	if (total > c->end - c->pos)
		return -EBADMSG;
	if (tag)
		*tag = t;
	if (val)
		*val = c->s->buf + c->pos + REC_HDR;
	if (len)
		*len = l;
	c->pos += total;
	return 1;
}

int vfurt_state_next_sub(struct vfurt_state_cur *c, uint32_t *tag, struct vfurt_state_cur *sub)
{
	const void *v;
	size_t len;
	uint32_t t;
	int rc;

	if (!sub)
		return -EINVAL;
	rc = vfurt_state_next(c, &t, &v, &len);
	if (rc != 1)
		return rc;
	sub->s = c->s;
	sub->pos = (size_t)((const uint8_t *)v - c->s->buf);
	sub->end = (t & VFURT_STATE_SECTION) ? sub->pos + len : sub->pos;
	if (tag)
		*tag = t;
	return 1;
}

int vfurt_state_find(const struct vfurt_state_cur *c, uint32_t tag, const void **val, size_t *len)
{
	struct vfurt_state_cur it;
	const void *v;
	size_t l;
	uint32_t t;
	int rc;

	if (!c)
		return -EINVAL;
	it = *c;
	while ((rc = vfurt_state_next(&it, &t, &v, &l)) == 1) {
		if (t == tag) {
			if (val)
				*val = v;
			if (len)
				*len = l;
			return 0;
		}
	}
	return rc < 0 ? rc : -ENOENT;
}

int vfurt_state_get(const struct vfurt_state_cur *c, uint32_t tag, void *buf, size_t len)
{
	const void *v;
	size_t l;
	int rc = vfurt_state_find(c, tag, &v, &l);

	if (rc)
		return rc;
	if (l != len)
		return -EBADMSG;
	memcpy(buf, v, len);
	return 0;
}

int vfurt_state_get_u64(const struct vfurt_state_cur *c, uint32_t tag, uint64_t *v)
{
	return vfurt_state_get(c, tag, v, sizeof(*v));
}

int vfurt_state_get_u32(const struct vfurt_state_cur *c, uint32_t tag, uint32_t *v)
{
	return vfurt_state_get(c, tag, v, sizeof(*v));
}

int vfurt_state_get_bool(const struct vfurt_state_cur *c, uint32_t tag, bool *v)
{
	uint8_t b;
	int rc = vfurt_state_get(c, tag, &b, 1);

	if (rc)
		return rc;
	if (b > 1)
		return -EBADMSG;
	*v = b;
	return 0;
}

int vfurt_state_get_str(const struct vfurt_state_cur *c, uint32_t tag, char *buf, size_t cap)
{
	const void *v;
	size_t l;
	int rc = vfurt_state_find(c, tag, &v, &l);

	if (rc)
		return rc;
	if (!buf || l >= cap)
		return -ENAMETOOLONG;
	if (memchr(v, '\0', l))
		return -EBADMSG;
	memcpy(buf, v, l);
	buf[l] = '\0';
	return 0;
}

int vfurt_state_sub(const struct vfurt_state_cur *c, uint32_t tag, struct vfurt_state_cur *sub)
{
	const void *v;
	size_t l;
	int rc = vfurt_state_find(c, tag | VFURT_STATE_SECTION, &v, &l);

	if (rc)
		return rc;
	if (!sub)
		return -EINVAL;
	sub->s = c->s;
	sub->pos = (size_t)((const uint8_t *)v - c->s->buf);
	sub->end = sub->pos + l;
	return 0;
}

int vfurt_state_take_fd_rec(struct vfurt_state *s, const void *val, size_t len)
{
	uint32_t idx;
	int fd;

	if (!s || !val || len != sizeof(idx))
		return -EBADMSG;
	memcpy(&idx, val, sizeof(idx));
	if (idx >= s->nfds)
		return -EBADMSG;
	fd = s->fds[idx];
	if (fd < 0)
		return -EBADF;
	s->fds[idx] = -1;
	return fd;
}

int vfurt_state_take_fd(const struct vfurt_state_cur *c, uint32_t tag)
{
	const void *v;
	size_t l;
	int rc = vfurt_state_find(c, tag, &v, &l);

	if (rc)
		return rc;
	return vfurt_state_take_fd_rec(c->s, v, l);
}

int vfurt_state_adopt_fd(const struct vfurt_state_cur *c, uint32_t tag, int target)
{
	int fd, rc = 0;

	if (target < 0)
		return -EINVAL;
	fd = vfurt_state_take_fd(c, tag);
	if (fd < 0)
		return fd;
	if (dup3(fd, target, O_CLOEXEC) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* ---- transport ----------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait for events on sock until the deadline: 0, -ETIMEDOUT, -ECONNRESET. */
static int wait_sock(int sock, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = sock, .events = events };
		uint64_t now = now_ms();
		int n;

		if (now >= deadline)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)(deadline - now));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		if (p.revents & events)
			return 0;
		if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
			return -ECONNRESET;
	}
}

static int send_one(int sock, const void *buf, size_t len, const int *fds, size_t nfds,
		    uint64_t deadline)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * XFER_FDS)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *h;

		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		h = CMSG_FIRSTHDR(&msg);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(h), fds, sizeof(int) * nfds);
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		int rc;

		if (n >= 0)
			return n == (ssize_t)len ? 0 : -EMSGSIZE;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		rc = wait_sock(sock, POLLOUT, deadline);
		if (rc)
			return rc;
	}
}

int vfurt_state_send(struct vfurt_state *s, int sock, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	struct state_hdr h;
	int rc;

	if (!s || s->depth)
		return -EINVAL;
	for (size_t i = 0; i < s->nfds; i++)
		if (s->fds[i] < 0)
			return -EBADF; /* taken: an image is sent as built */
	h.magic = STATE_MAGIC;
	h.version = VFURT_STATE_VERSION;
	h.nfds = (uint32_t)s->nfds;
	h.bytes = s->len;
	h.sum = fnv1a(s->buf, s->len);
	rc = send_one(sock, &h, sizeof(h), NULL, 0, deadline);
	for (size_t off = 0; !rc && off < s->len; off += XFER_CHUNK) {
		size_t n = s->len - off < XFER_CHUNK ? s->len - off : XFER_CHUNK;

		rc = send_one(sock, s->buf + off, n, NULL, 0, deadline);
	}
	/* the fds in batches, one byte each message */
	for (size_t off = 0; !rc && off < s->nfds; off += XFER_FDS) {
		size_t n = s->nfds - off < XFER_FDS ? s->nfds - off : XFER_FDS;
		uint8_t b = 'F';

		rc = send_one(sock, &b, 1, s->fds + off, n, deadline);
	}
	return rc;
}

static void close_cmsg(struct msghdr *msg)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			close(fd);
		}
	}
}

/*
 * Receive one message of at most cap bytes into buf; fds received are
 * appended to s (when s is not NULL; otherwise any fd is a protocol error).
 * Returns the length, or -ETIMEDOUT, -ECONNRESET, -EBADMSG (truncated
 * message or control data, or more fds than announced), recvmsg's errno.
 */
static ssize_t recv_one(int sock, void *buf, size_t cap, struct vfurt_state *s, size_t max_fds,
			uint64_t deadline)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * XFER_FDS)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg;
	ssize_t n;
	int rc = 0;

	for (;;) {
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		rc = wait_sock(sock, POLLIN, deadline);
		if (rc)
			return rc;
	}
	if (n == 0 && !(msg.msg_controllen))
		return -ECONNRESET;
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		close_cmsg(&msg);
		return -EBADMSG;
	}
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h)) {
		size_t k;

		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(fd));
			if (!s || s->nfds >= max_fds) {
				close(fd);
				rc = -EBADMSG;
				continue;
			}
			s->fds[s->nfds++] = fd;
		}
	}
	return rc ? rc : n;
}

int vfurt_state_recv(int sock, int timeout_ms, uint32_t version, struct vfurt_state **out,
		     char *err, size_t errlen)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	uint32_t want = version ? version : VFURT_STATE_VERSION;
	struct vfurt_state *s = NULL;
	struct state_hdr h;
	char dummy[8];
	ssize_t n;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return -EINVAL;
	*out = NULL;
	n = recv_one(sock, &h, sizeof(h), NULL, 0, deadline);
	if (n < 0) {
		rc = (int)n;
		if (err)
			snprintf(err, errlen, "no image: %s", strerror(-rc));
		return rc;
	}
	if ((size_t)n != sizeof(h) || h.magic != STATE_MAGIC) {
		if (err)
			snprintf(err, errlen, "not a vfu-rt state image");
		return -EPROTO;
	}
	if (h.version != want) {
		if (err)
			snprintf(err, errlen, "state image format %u, this build reads %u",
				 h.version, want);
		return -EPROTO;
	}
	if (h.bytes > VFURT_STATE_MAX_BYTES || h.nfds > VFURT_STATE_MAX_FDS || (h.bytes & 7u)) {
		if (err)
			snprintf(err, errlen, "state image of %llu bytes and %u fds: out of bounds",
				 (unsigned long long)h.bytes, h.nfds);
		return -EBADMSG;
	}
	s = vfurt_state_create();
	if (!s)
		return -ENOMEM;
	s->buf = malloc(h.bytes ? h.bytes : 1);
	s->fds = malloc((h.nfds ? h.nfds : 1) * sizeof(int));
	if (!s->buf || !s->fds) {
		rc = -ENOMEM;
		goto fail;
	}
	s->cap = h.bytes;
	s->cap_fds = h.nfds;
	while (s->len < h.bytes) {
		size_t want_n = h.bytes - s->len < XFER_CHUNK ? h.bytes - s->len : XFER_CHUNK;

		n = recv_one(sock, s->buf + s->len, want_n, NULL, 0, deadline);
		if (n <= 0 || (size_t)n != want_n) {
			rc = n < 0 ? (int)n : -EBADMSG;
			goto fail_msg;
		}
		s->len += (size_t)n;
	}
	while (s->nfds < h.nfds) {
		size_t before = s->nfds;

		n = recv_one(sock, dummy, sizeof(dummy), s, h.nfds, deadline);
		if (n != 1 || s->nfds == before) {
			rc = n < 0 ? (int)n : -EBADMSG;
			goto fail_msg;
		}
	}
	if (fnv1a(s->buf, s->len) != h.sum) {
		rc = -EBADMSG;
		if (err)
			snprintf(err, errlen, "state image checksum mismatch");
		goto fail;
	}
	*out = s;
	return 0;
fail_msg:
	if (err)
		snprintf(err, errlen, "state image transfer: %s", strerror(-rc));
fail:
	vfurt_state_destroy(s);
	return rc;
}
