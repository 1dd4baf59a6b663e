/* Log internals: escaping of untrusted text and the per-client rate limit. */
#ifndef VFURT_IO_LOG_INTERNAL_H
#define VFURT_IO_LOG_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/log.h>

/* A client may cause at most LOG_RL_BURST lines at once, then LOG_RL_PER_S a second. */
#define LOG_RL_PER_S 10u
#define LOG_RL_BURST 20u

/*
 * Token bucket in nanoseconds of credit: one line costs 1 s / LOG_RL_PER_S,
 * credit accrues with time up to LOG_RL_BURST lines. Zero-initialised is a
 * full bucket. Not thread-safe: one per connection, used by the thread
 * that drives it.
 */
struct log_ratelimit {
	uint64_t credit_ns;
	uint64_t last_ns;
	uint64_t suppressed; /* lines refused since the last one let through */
	bool started;
};

/*
 * May one more line go out at now_ns (CLOCK_MONOTONIC)? When it may and
 * lines were refused before, *suppressed gets their number (else 0) and the
 * count restarts.
 */
bool vfr_log_ratelimit_take(struct log_ratelimit *rl, uint64_t now_ns, uint64_t *suppressed);

/* vfr_log_ratelimit_take at the current CLOCK_MONOTONIC time. */
bool vfr_log_ratelimit_take_now(struct log_ratelimit *rl, uint64_t *suppressed);

/* "NAME: refusing a second client while one is connected" on log, at most
 * as often as rl allows, with the number of lines left out since. */
void vfr_log_refused_client(const struct vfurt_log *log, struct log_ratelimit *rl,
			const char *name);

/*
 * Copy the NUL-terminated in to out (len > 0), always terminated:
 * control characters, DEL, bytes >= 0x80 and backslash become \n, \t, \r,
 * \\ or \xNN, so a client-chosen string cannot forge or hide log lines.
 * Truncates at a whole escape. Returns the length written.
 */
size_t vfr_log_escape(const char *in, char *out, size_t len);

/* vfurt_logf with a va_list. */
void vfr_log_vemit(const struct vfurt_log *log, int level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#endif /* VFURT_IO_LOG_INTERNAL_H */
