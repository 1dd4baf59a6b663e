/* Hostile-client tests: a victim probe, a log capture, and the servers they attack. */
#ifndef VFURT_TESTS_HOSTILE_H
#define VFURT_TESTS_HOSTILE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <vfurt/engine.h>
#include <vfurt/log.h>

#include "common/it_util.h"
#include "common/testsrv.h"

/* The liveness bound of the victim: today's attacks stalled it for 5 s. It is
 * generous on purpose (TCG-slow CI, sanitizers): a gap is a stall, not a
 * slowdown. */
#define HOSTILE_MAX_GAP_MS 1000

/* Lines logged by the devices under attack, for "with a log line" checks. */
struct logcap {
	pthread_mutex_t lock;
	char buf[64 * 1024];
	size_t len;
};

void logcap_init(struct logcap *lc);
struct vfurt_log logcap_log(struct logcap *lc);
/* Wait up to ms for a line containing needle; true when seen. */
bool logcap_wait(struct logcap *lc, const char *needle, int ms);

/* A client reading a register of the victim device in a loop, recording the
 * longest time between two answers. */
struct probe {
	struct vfurt_client *c;
	pthread_t thread;
	atomic_bool stop;
	atomic_uint_fast64_t reads;
	atomic_uint_fast64_t max_gap_ns;
	atomic_int error;
};

int probe_start(struct probe *p, const char *path);
/* Stop; returns the longest gap in ms (or -1 after a failed read). */
long probe_stop(struct probe *p);

/* A server with two test devices (0: the victim, 1: the attacker's), or
 * three (2: a bystander whose own client the test drives), all logging into
 * lc, on one worker of the runtime (rt true) or the caller-driven server;
 * conn gives the limits under test. */
#define HX_MAX_DEVS 3

struct hx {
	struct testsrv *ts;
	struct testdev_stats *st[HX_MAX_DEVS];
	int ndevs;
	struct logcap lc;
	struct probe probe;
	int base_fds;
};

int hx_start(struct hx *x, bool rt, const struct vfurt_conn_opts *conn);
/* The same with ndevs (2 or 3) devices. */
int hx_start_n(struct hx *x, bool rt, const struct vfurt_conn_opts *conn, int ndevs);
/* Stop the probe and the server; -1 (with a message) when the victim
 * stalled beyond HOSTILE_MAX_GAP_MS or fds are not back to the start. */
int hx_finish(struct hx *x);

/* Resident set size in KiB (from /proc/self/statm). */
long hostile_rss_kib(void);

#endif /* VFURT_TESTS_HOSTILE_H */
