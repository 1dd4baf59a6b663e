/* Log formatting and the stderr sink. */
#include <stdarg.h>
#include <stdio.h>

#include <vfurt/log.h>

void vfurt_logf(const struct vfurt_log *log, int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!log || !log->fn || level > log->level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log->fn(log->arg, level, line);
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
