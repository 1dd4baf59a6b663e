/* Engine message path without a socket read: REGION_WRITE/READ bytes fed through vfurt_conn_rx_feed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <vfurt/engine.h>

#include "benchdev.h"
#include "rawmsg.h"
#include "suites.h"

#define DRAIN_EVERY 64u

/*
 * The engine's receive side is fed by hand (what the io_uring worker does
 * after a recvmsg completion), on one end of a socketpair; replies go out on
 * that socket with sendmsg and the benchmark drains the other end every
 * DRAIN_EVERY messages. Posted writes send no reply, so they time decode,
 * validation and dispatch to the device alone.
 */
struct decode_fx {
	struct vfurt_dev *dev;
	struct vfurt_conn *conn;
	int peer;
	uint8_t msg[64];
	size_t len;
};

/* Hand len bytes to the engine in the pieces it asks for. */
static int feed(struct vfurt_conn *conn, const uint8_t *msg, size_t len)
{
	size_t off = 0;

	while (off < len) {
		struct iovec iov;
		bool want_fds;
		size_t n;
		int rc;

		vfurt_conn_rx_iov(conn, &iov, &want_fds);
		if (iov.iov_len == 0)
			return -EPROTO;
		n = iov.iov_len < len - off ? iov.iov_len : len - off;
		memcpy(iov.iov_base, msg + off, n);
		rc = vfurt_conn_rx_feed(conn, n, NULL, 0);
		if (rc)
			return rc;
		off += n;
	}
	return 0;
}

static void decode_teardown(void *p)
{
	struct decode_fx *fx = p;

	vfurt_conn_destroy(fx->conn);
	vfurt_dev_destroy(fx->dev);
	if (fx->peer >= 0)
		close(fx->peer);
	free(fx);
}

enum decode_kind { DECODE_POSTED, DECODE_WRITE, DECODE_READ };

static void *decode_setup(enum decode_kind kind, const char **why)
{
	struct vfurt_conn_opts co = { .opts_size = sizeof(co), .no_twin_socket = true };
	struct decode_fx *fx = calloc(1, sizeof(*fx));
	struct vfurt_conn_stats cs = { .stats_size = sizeof(cs) };
	uint8_t version[64];
	uint32_t v = 0x12345678;
	int sv[2];

	if (!fx)
		return NULL;
	fx->peer = -1;
	*why = "engine setup failed";
	fx->dev = benchdev_create("decode");
	if (!fx->dev || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		goto err;
	fx->peer = sv[1];
	fx->conn = vfurt_conn_create(fx->dev, sv[0], &co);
	if (!fx->conn) {
		close(sv[0]);
		goto err;
	}
	if (feed(fx->conn, version, rawmsg_version(version, sizeof(version), 1)))
		goto err;
	raw_drain(fx->peer);
	vfurt_conn_get_stats(fx->conn, &cs);
	if (!cs.negotiated) {
		*why = "VERSION was not accepted";
		goto err;
	}
	if (kind == DECODE_READ)
		fx->len = rawmsg_region_read(fx->msg, sizeof(fx->msg), 2, 0, 0x10, sizeof(v));
	else
		fx->len = rawmsg_region_write(fx->msg, sizeof(fx->msg), 2, 0, 0x10, &v, sizeof(v),
					      kind == DECODE_POSTED);
	return fx;

err:
	decode_teardown(fx);
	return NULL;
}

static void *setup_posted(int64_t arg, const char **why)
{
	return decode_setup(DECODE_POSTED, why);
}

static void *setup_write(int64_t arg, const char **why)
{
	return decode_setup(DECODE_WRITE, why);
}

static void *setup_read(int64_t arg, const char **why)
{
	return decode_setup(DECODE_READ, why);
}

static void bm_decode(struct vfurt_bench_state *st)
{
	struct decode_fx *fx = vfurt_bench_fixture(st);
	uint64_t errors = 0;
	uint64_t before = benchdev_accesses(fx->dev);

	while (vfurt_bench_keep_running_batch(st, DRAIN_EVERY)) {
		for (unsigned i = 0; i < DRAIN_EVERY; i++)
			if (feed(fx->conn, fx->msg, fx->len))
				errors++;
		raw_drain(fx->peer);
	}
	vfurt_bench_set_items(st, (int64_t)vfurt_bench_iterations(st));
	if (errors)
		vfurt_bench_counter(st, "errors", (double)errors);
	if (benchdev_accesses(fx->dev) - before != vfurt_bench_iterations(st))
		vfurt_bench_label(st, "device saw a different number of accesses");
}

const struct vfurt_bench_case bench_decode_cases[] = {
	{ .name = "decode/region_write4_posted", .fn = bm_decode, .setup = setup_posted,
	  .teardown = decode_teardown },
	{ .name = "decode/region_write4_reply", .fn = bm_decode, .setup = setup_write,
	  .teardown = decode_teardown },
	{ .name = "decode/region_read4_reply", .fn = bm_decode, .setup = setup_read,
	  .teardown = decode_teardown },
	{ .name = NULL },
};
