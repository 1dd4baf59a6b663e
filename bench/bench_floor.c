/* The machine's own limits: one syscall, and a UNIX socket ping-pong across CPUs 0 and 1 without vfio-user. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "suites.h"

/* Sizes of a 4-byte REGION_WRITE request and its reply. */
#define REQ_LEN 36u
#define REPLY_LEN 32u

static void bm_getppid(struct vfurt_bench_state *st)
{
	while (vfurt_bench_keep_running(st)) {
		pid_t p = getppid();

		vfurt_bench_sink(&p);
	}
}

struct echo_fx {
	int sv[2];
	bool busy;
	pthread_t thread;
	_Atomic bool pinned;
};

/* Read REQ_LEN bytes, answer REPLY_LEN, until the socket closes. */
static void *echo_main(void *arg)
{
	struct echo_fx *fx = arg;
	uint8_t buf[64] = { 0 };
	int flags = fx->busy ? MSG_DONTWAIT : 0;

	atomic_store(&fx->pinned, vfurt_bench_pin_self(1) == 0);
	for (;;) {
		size_t got = 0;

		while (got < REQ_LEN) {
			ssize_t n = recv(fx->sv[1], buf + got, REQ_LEN - got, flags);

			if (n > 0)
				got += (size_t)n;
			else if (n == 0 || (errno != EAGAIN && errno != EINTR))
				return NULL;
			else
				vfurt_bench_relax();
		}
		if (send(fx->sv[1], buf, REPLY_LEN, MSG_NOSIGNAL) != (ssize_t)REPLY_LEN)
			return NULL;
	}
}

static void echo_teardown(void *p)
{
	struct echo_fx *fx = p;

	shutdown(fx->sv[0], SHUT_RDWR);
	pthread_join(fx->thread, NULL);
	close(fx->sv[0]);
	close(fx->sv[1]);
	free(fx);
}

static void *echo_setup(bool busy, const char **why)
{
	struct echo_fx *fx;

	if (vfurt_bench_cpus_allowed() < 2) {
		*why = "needs CPUs 0 and 1";
		return NULL;
	}
	fx = calloc(1, sizeof(*fx));
	if (!fx)
		return NULL;
	fx->busy = busy;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fx->sv))
		goto err_free;
	if (pthread_create(&fx->thread, NULL, echo_main, fx))
		goto err_close;
	return fx;

err_close:
	close(fx->sv[0]);
	close(fx->sv[1]);
err_free:
	free(fx);
	*why = "socketpair or thread failed";
	return NULL;
}

static void *setup_busy(int64_t arg, const char **why)
{
	return echo_setup(true, why);
}

static void *setup_block(int64_t arg, const char **why)
{
	return echo_setup(false, why);
}

/* Request out, reply in: both sides spinning (busy) or sleeping (block). */
static void bm_pingpong(struct vfurt_bench_state *st)
{
	struct echo_fx *fx = vfurt_bench_fixture(st);
	int flags = fx->busy ? MSG_DONTWAIT : 0;
	uint8_t buf[64] = { 0 };
	uint64_t errors = 0;

	vfurt_bench_pin_self(0);
	while (vfurt_bench_keep_running(st)) {
		size_t got = 0;

		if (send(fx->sv[0], buf, REQ_LEN, MSG_NOSIGNAL) != (ssize_t)REQ_LEN) {
			errors++;
			continue;
		}
		while (got < REPLY_LEN) {
			ssize_t n = recv(fx->sv[0], buf + got, REPLY_LEN - got, flags);

			if (n > 0) {
				got += (size_t)n;
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				errors++;
				break;
			} else {
				vfurt_bench_relax();
			}
		}
	}
	vfurt_bench_set_items(st, (int64_t)vfurt_bench_iterations(st));
	if (errors)
		vfurt_bench_counter(st, "errors", (double)errors);
	vfurt_bench_label(st, atomic_load(&fx->pinned) ? "cpu0 <-> cpu1" : "peer not pinned");
}

const struct vfurt_bench_case bench_floor_cases[] = {
	{ .name = "floor/syscall_getppid", .fn = bm_getppid },
	{ .name = "floor/unix_pingpong_busy", .fn = bm_pingpong, .setup = setup_busy,
	  .teardown = echo_teardown },
	{ .name = "floor/unix_pingpong_block", .fn = bm_pingpong, .setup = setup_block,
	  .teardown = echo_teardown },
	{ .name = NULL },
};
