/* Logging hooks: every vfu-rt object logs through a caller-supplied sink. */
#ifndef VFURT_LOG_H
#define VFURT_LOG_H

#include <vfurt/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* syslog-compatible levels */
enum vfurt_log_level {
	VFURT_LOG_ERR = 3,
	VFURT_LOG_WARN = 4,
	VFURT_LOG_INFO = 6,
	VFURT_LOG_DEBUG = 7,
};

/*
 * Log sink. Called with a complete, NUL-terminated line without trailing
 * newline. May be called from any thread that drives the logging object; the
 * sink must be thread-safe if it is shared between objects driven by
 * different threads.
 */
typedef void (*vfurt_log_fn)(void *arg, int level, const char *msg);

/* A log destination: messages above `level` are dropped before formatting.
 * fn == NULL discards everything. Copied by value wherever it is passed. */
struct vfurt_log {
	vfurt_log_fn fn;
	void *arg;
	int level;
};

/*
 * Format and emit one message through `log` (NULL or fn NULL: dropped).
 * Thread: any; the sink decides about thread safety.
 */
VFURT_EXPORT void vfurt_logf(const struct vfurt_log *log, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A ready sink writing "LEVEL: msg" lines to stderr; arg is an optional
 * prefix string (const char *). */
VFURT_EXPORT void vfurt_log_stderr(void *arg, int level, const char *msg);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_LOG_H */
