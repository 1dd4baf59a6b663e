/* REGION_WRITE/READ round trips over a real socket: caller-driven server vs the io_uring runtime. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vfurt/client.h>
#include <vfurt/runtime.h>
#include <vfurt/server.h>

#include "benchdev.h"
#include "rawmsg.h"
#include "suites.h"

/* Server on CPU 1, client (the benchmark thread) on CPU 0. */
#define SERVER_CPU 1
#define CLIENT_CPU 0
#define POSTED_BATCH 64u

enum host_kind {
	HOST_SERVER_BUSY,   /* vfurt_server_run_once(srv, 0) in a loop */
	HOST_SERVER_BLOCK,  /* vfurt_server_run_once(srv, timeout) sleeping in epoll */
	HOST_RT_BUSY,       /* runtime worker on CPU 1, busy polling io_uring */
	HOST_RT_ADAPTIVE,   /* runtime worker on CPU 1, adaptive */
};

struct region_fx {
	enum host_kind kind;
	char dir[64];
	char path[128];
	struct vfurt_dev *dev;       /* owned by srv or rt once added */
	struct vfurt_server *srv;
	pthread_t thread;
	bool thread_started;
	_Atomic bool stop;
	_Atomic bool pinned;
	struct vfurt_runtime *rt;
	struct vfurt_client *c;
	int raw_fd;                  /* busy-polling raw client, or -1 */
};

static void *server_main(void *arg)
{
	struct region_fx *fx = arg;
	int timeout_ms = fx->kind == HOST_SERVER_BUSY ? 0 : 50;

	atomic_store(&fx->pinned, vfurt_bench_pin_self(SERVER_CPU) == 0);
	while (!atomic_load_explicit(&fx->stop, memory_order_relaxed))
		vfurt_server_run_once(fx->srv, timeout_ms);
	return NULL;
}

static void region_teardown(void *p)
{
	struct region_fx *fx = p;

	if (fx->raw_fd >= 0)
		close(fx->raw_fd);
	vfurt_client_close(fx->c);
	if (fx->thread_started) {
		atomic_store(&fx->stop, true);
		pthread_join(fx->thread, NULL);
	}
	vfurt_server_destroy(fx->srv);
	vfurt_runtime_destroy(fx->rt);
	if (!fx->srv && !fx->rt)
		vfurt_dev_destroy(fx->dev);
	rmdir(fx->dir);
	free(fx);
}

static int start_server(struct region_fx *fx)
{
	struct vfurt_server_opts so = { .opts_size = sizeof(so) };
	int rc;

	fx->srv = vfurt_server_create(&so);
	if (!fx->srv)
		return -errno;
	rc = vfurt_server_add_device(fx->srv, fx->dev, fx->path, 0600);
	if (rc)
		return rc;
	if (pthread_create(&fx->thread, NULL, server_main, fx))
		return -EAGAIN;
	fx->thread_started = true;
	return 0;
}

static int start_runtime(struct region_fx *fx)
{
	struct vfurt_runtime_opts ro = { .opts_size = sizeof(ro), .cores = "1" };
	char err[256];
	int rc;

	ro.poll_mode = fx->kind == HOST_RT_BUSY ? VFURT_POLL_BUSY : VFURT_POLL_ADAPTIVE;
	fx->rt = vfurt_runtime_create(&ro, err, sizeof(err));
	if (!fx->rt) {
		fprintf(stderr, "bench: runtime: %s\n", err);
		return -errno;
	}
	rc = vfurt_runtime_add_device(fx->rt, fx->dev, fx->path, 0600, 0);
	if (rc)
		return rc;
	rc = vfurt_runtime_start(fx->rt);
	if (!rc)
		atomic_store(&fx->pinned, vfurt_worker_cpu(vfurt_runtime_worker(fx->rt, 0)) ==
						  SERVER_CPU);
	return rc;
}

static void *region_setup(enum host_kind kind, const char **why)
{
	struct region_fx *fx;
	int rc;

	if (vfurt_bench_cpus_allowed() < 2) {
		*why = "needs CPUs 0 and 1";
		return NULL;
	}
	fx = calloc(1, sizeof(*fx));
	if (!fx)
		return NULL;
	fx->kind = kind;
	fx->raw_fd = -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/vfurt-bench-XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		*why = "mkdtemp failed";
		return NULL;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/dev.sock", fx->dir);
	fx->dev = benchdev_create("benchdev");
	if (!fx->dev) {
		*why = "benchdev_create failed";
		goto err;
	}
	rc = kind == HOST_SERVER_BUSY || kind == HOST_SERVER_BLOCK ? start_server(fx)
								   : start_runtime(fx);
	if (rc) {
		*why = kind <= HOST_SERVER_BLOCK ? "server start failed" : "runtime start failed";
		goto err;
	}
	fx->c = vfurt_client_connect(fx->path, NULL);
	if (!fx->c) {
		*why = "vfurt_client_connect failed";
		goto err;
	}
	return fx;

err:
	region_teardown(fx);
	return NULL;
}

static void *setup_server_busy(int64_t arg, const char **why)
{
	return region_setup(HOST_SERVER_BUSY, why);
}

static void *setup_server_block(int64_t arg, const char **why)
{
	return region_setup(HOST_SERVER_BLOCK, why);
}

static void *setup_rt_busy(int64_t arg, const char **why)
{
	return region_setup(HOST_RT_BUSY, why);
}

static void *setup_rt_adaptive(int64_t arg, const char **why)
{
	return region_setup(HOST_RT_ADAPTIVE, why);
}

/* Worker counters of a runtime-hosted device (zero for the plain server). */
static struct vfurt_worker_stats worker_stats(const struct region_fx *fx)
{
	struct vfurt_worker_stats ws = { .stats_size = sizeof(ws) };

	if (fx->rt)
		vfurt_runtime_get_worker_stats(fx->rt, 0, &ws);
	return ws;
}

static void report(struct vfurt_bench_state *st, struct region_fx *fx, uint64_t errors,
		   const char *client, const struct vfurt_worker_stats *before)
{
	double ops = (double)(vfurt_bench_iterations(st) ? vfurt_bench_iterations(st) : 1);
	char label[96];

	vfurt_bench_set_items(st, (int64_t)vfurt_bench_iterations(st));
	if (fx->rt) {
		struct vfurt_worker_stats after = worker_stats(fx);

		/* where the server's time went: passes spun and sleeps per op */
		vfurt_bench_counter(st, "passes_per_op", (double)(after.passes - before->passes) / ops);
		vfurt_bench_counter(st, "sleeps_per_op", (double)(after.sleeps - before->sleeps) / ops);
	}
	if (errors)
		vfurt_bench_counter(st, "errors", (double)errors);
	snprintf(label, sizeof(label), "client %s cpu%d, server cpu%d%s", client, CLIENT_CPU,
		 SERVER_CPU, atomic_load(&fx->pinned) ? "" : " (server not pinned)");
	vfurt_bench_label(st, label);
}

/*
 * The device takes one client at a time, so the library client and the raw
 * busy-polling one take turns: switching closes the other and reconnects,
 * retrying while the server is still dropping the old connection.
 */
static bool lib_client(struct vfurt_bench_state *st, struct region_fx *fx)
{
	if (!fx->c) {
		if (fx->raw_fd >= 0)
			close(fx->raw_fd);
		fx->raw_fd = -1;
		for (int tries = 0; tries < 200 && !fx->c; tries++) {
			fx->c = vfurt_client_connect(fx->path, NULL);
			if (!fx->c)
				usleep(5000);
		}
		if (!fx->c) {
			vfurt_bench_skip(st, "library client could not reconnect");
			return false;
		}
	}
	vfurt_bench_pin_self(CLIENT_CPU);
	return true;
}

static bool raw_client(struct vfurt_bench_state *st, struct region_fx *fx)
{
	if (fx->raw_fd < 0) {
		vfurt_client_close(fx->c);
		fx->c = NULL;
		for (int tries = 0; tries < 200 && fx->raw_fd < 0; tries++) {
			fx->raw_fd = rawcli_connect(fx->path);
			if (fx->raw_fd < 0)
				usleep(5000);
		}
		if (fx->raw_fd < 0) {
			vfurt_bench_skip(st, "raw client could not connect");
			return false;
		}
	}
	vfurt_bench_pin_self(CLIENT_CPU);
	return true;
}

/* 4-byte REGION_WRITE, waiting for the reply (a non-posted MMIO write). */
static void bm_write4(struct vfurt_bench_state *st)
{
	struct region_fx *fx = vfurt_bench_fixture(st);
	struct vfurt_worker_stats before = { .stats_size = sizeof(before) };
	uint64_t errors = 0;
	uint32_t v = 0;

	if (!lib_client(st, fx))
		return;
	before = worker_stats(fx);
	while (vfurt_bench_keep_running(st)) {
		v++;
		if (vfurt_client_region_write(fx->c, VFURT_REGION_BAR0, 0x10, &v, sizeof(v)))
			errors++;
	}
	report(st, fx, errors, "blocking", &before);
}

/* 4-byte REGION_READ (an MMIO read: always a round trip). */
static void bm_read4(struct vfurt_bench_state *st)
{
	struct region_fx *fx = vfurt_bench_fixture(st);
	struct vfurt_worker_stats before = { .stats_size = sizeof(before) };
	uint64_t errors = 0;
	uint32_t v;

	if (!lib_client(st, fx))
		return;
	before = worker_stats(fx);
	while (vfurt_bench_keep_running(st)) {
		if (vfurt_client_region_read(fx->c, VFURT_REGION_BAR0, 0x10, &v, sizeof(v)))
			errors++;
		vfurt_bench_sink(&v);
	}
	report(st, fx, errors, "blocking", &before);
}

/* 64 posted (No_reply) 4-byte writes, then one read that orders after
 * them: one op is one posted write, the read's cost spread over them. */
static void bm_posted(struct vfurt_bench_state *st)
{
	struct region_fx *fx = vfurt_bench_fixture(st);
	struct vfurt_worker_stats before = { .stats_size = sizeof(before) };
	uint64_t errors = 0;
	uint32_t v = 0;

	if (!lib_client(st, fx))
		return;
	before = worker_stats(fx);
	while (vfurt_bench_keep_running_batch(st, POSTED_BATCH)) {
		for (unsigned i = 0; i < POSTED_BATCH; i++) {
			v++;
			if (vfurt_client_region_write_posted(fx->c, VFURT_REGION_BAR0, 0x20, &v,
							     sizeof(v)))
				errors++;
		}
		if (vfurt_client_region_read(fx->c, VFURT_REGION_BAR0, 0x20, &v, sizeof(v)))
			errors++;
	}
	report(st, fx, errors, "blocking", &before);
}

/* The same write with a client that spins on recv(MSG_DONTWAIT) instead of
 * sleeping in poll (a polling VMM thread): the server-side latency floor. */
static void bm_write4_busy_client(struct vfurt_bench_state *st)
{
	struct region_fx *fx = vfurt_bench_fixture(st);
	struct vfurt_worker_stats before = { .stats_size = sizeof(before) };
	uint8_t msg[64];
	uint8_t reply[64];
	uint64_t errors = 0;
	uint32_t v = 0;
	uint16_t id = 100;

	if (!raw_client(st, fx))
		return;
	before = worker_stats(fx);
	while (vfurt_bench_keep_running(st)) {
		size_t len;

		v++;
		len = rawmsg_region_write(msg, sizeof(msg), id++, VFURT_REGION_BAR0, 0x10, &v,
					  sizeof(v), false);
		if (rawcli_call_busy(fx->raw_fd, msg, len, reply, sizeof(reply)))
			errors++;
	}
	report(st, fx, errors, "busy-polling", &before);
}

/* A write after 1 ms of silence (the gap is not timed): in adaptive mode
 * the worker has gone to sleep, so this is the cost of waking it; in busy
 * mode the same gap shows what the idle client side costs alone. */
static void bm_write4_after_idle(struct vfurt_bench_state *st)
{
	struct region_fx *fx = vfurt_bench_fixture(st);
	struct vfurt_worker_stats before = { .stats_size = sizeof(before) };
	uint64_t errors = 0;
	uint32_t v = 0;

	if (!lib_client(st, fx))
		return;
	before = worker_stats(fx);
	while (vfurt_bench_keep_running(st)) {
		vfurt_bench_pause(st);
		usleep(1000);
		vfurt_bench_resume(st);
		v++;
		if (vfurt_client_region_write(fx->c, VFURT_REGION_BAR0, 0x10, &v, sizeof(v)))
			errors++;
	}
	report(st, fx, errors, "blocking, 1 ms idle before each", &before);
}

#define REGION_CASES(host, setup_fn)                                                     \
	{ .name = "region/" host "/write4", .fn = bm_write4, .setup = setup_fn,                  \
	  .teardown = region_teardown },                                                       \
	{ .name = "region/" host "/read4", .fn = bm_read4, .setup = setup_fn,                    \
	  .teardown = region_teardown },                                                       \
	{ .name = "region/" host "/posted_write4", .fn = bm_posted, .setup = setup_fn,           \
	  .teardown = region_teardown },                                                       \
	{ .name = "region/" host "/write4_busy_client", .fn = bm_write4_busy_client,          \
	  .setup = setup_fn, .teardown = region_teardown },                                    \
	{ .name = "region/" host "/write4_after_idle_1ms", .fn = bm_write4_after_idle,         \
	  .setup = setup_fn, .teardown = region_teardown }

/* Adjacent cases share one server (the shim keeps the fixture). */
const struct vfurt_bench_case bench_region_cases[] = {
	REGION_CASES("server_busy", setup_server_busy),
	REGION_CASES("server_block", setup_server_block),
	REGION_CASES("rt_busy", setup_rt_busy),
	REGION_CASES("rt_adaptive", setup_rt_adaptive),
	{ .name = NULL },
};
