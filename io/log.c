/* Log formatting, escaping of what clients control, a per-client rate limit and the stderr sink. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <vfurt/log.h>

#include "log_internal.h"

#define LOG_LINE_MAX 512
#define NS_PER_LINE (1000000000ull / LOG_RL_PER_S)

size_t vfr_log_escape(const char *in, char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		char e[4];
		size_t k = 2;

		e[0] = '\\';
		if (*p == '\n')
			e[1] = 'n';
		else if (*p == '\t')
			e[1] = 't';
		else if (*p == '\r')
			e[1] = 'r';
		else if (*p == '\\')
			e[1] = '\\';
		else if (*p < 0x20 || *p >= 0x7f) {
			e[1] = 'x';
			e[2] = hex[*p >> 4];
			e[3] = hex[*p & 15];
			k = 4;
		} else {
			e[0] = (char)*p;
			k = 1;
		}
		if (o + k >= len)
			break;
		for (size_t i = 0; i < k; i++)
			out[o++] = e[i];
	}
	out[o] = '\0';
	return o;
}

void vfr_log_vemit(const struct vfurt_log *log, int level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	char safe[4 * LOG_LINE_MAX];

	if (!log || !log->fn || level > log->level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* Names, paths and client strings end up in lines: no line of ours may
	 * carry a newline or a terminal escape, whatever its arguments. */
	vfr_log_escape(line, safe, sizeof(safe));
	log->fn(log->arg, level, safe);
}

void vfurt_logf(const struct vfurt_log *log, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfr_log_vemit(log, level, fmt, ap);
	va_end(ap);
}

bool vfr_log_ratelimit_take(struct log_ratelimit *rl, uint64_t now_ns, uint64_t *suppressed)
{
	const uint64_t cap = LOG_RL_BURST * NS_PER_LINE;

	if (!rl->started) {
		rl->started = true;
		rl->credit_ns = cap;
	} else if (now_ns > rl->last_ns) {
		uint64_t d = now_ns - rl->last_ns;

		rl->credit_ns = d >= cap - rl->credit_ns ? cap : rl->credit_ns + d;
	}
	rl->last_ns = now_ns > rl->last_ns ? now_ns : rl->last_ns;
	*suppressed = 0;
	if (rl->credit_ns < NS_PER_LINE) {
		rl->suppressed++;
		return false;
	}
	rl->credit_ns -= NS_PER_LINE;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}

bool vfr_log_ratelimit_take_now(struct log_ratelimit *rl, uint64_t *suppressed)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return vfr_log_ratelimit_take(rl, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec,
				  suppressed);
}

void vfr_log_refused_client(const struct vfurt_log *log, struct log_ratelimit *rl,
			const char *name)
{
	uint64_t more;
	char extra[64] = "";

	if (!vfr_log_ratelimit_take_now(rl, &more))
		return;
	if (more)
		snprintf(extra, sizeof(extra), " (and %llu more since the last such line)",
			 (unsigned long long)more);
	vfurt_logf(log, VFURT_LOG_WARN, "%s: refusing a second client while one is connected%s",
		   name, extra);
}

void vfurt_log_stderr(void *arg, int level, const char *msg)
{
	static const char *const names[] = { "emerg", "alert", "crit", "error",
					     "warning", "notice", "info", "debug" };
	const char *prefix = arg;
	const char *name = level >= 0 && level <= 7 ? names[level] : "log";

	/* one fprintf per line so concurrent lines do not interleave */
	fprintf(stderr, "%s%s%s: %s\n", prefix ? prefix : "", prefix ? ": " : "", name, msg);
}
