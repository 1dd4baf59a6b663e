/* vfu-rt per-connection and process-wide limits: the `limits` config object and --limit KEY=VALUE. */
#ifndef VFURT_RUNTIME_CONN_LIMITS_H
#define VFURT_RUNTIME_CONN_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/engine.h>

/* One limit: its key, its field in struct vfurt_conn_opts, its range. */
struct vfurt_limit_def {
	const char *key;
	size_t offset;     /* of a uint32_t or int field */
	bool is_int;
	uint32_t min;
	uint32_t max;
	uint32_t dflt;     /* what 0 (unset) means to the engine */
	const char *what;  /* one line for --help and the docs */
};

/* The table, terminated by a NULL key. */
extern const struct vfurt_limit_def vfr_limit_defs[];

/*
 * Set limit `key` to the decimal `val` in o. Returns 0, or -EINVAL with a
 * one-line reason in err (unknown key, not a number, out of range).
 */
int vfr_limit_set(struct vfurt_conn_opts *o, const char *key, const char *val, char *err,
		    size_t errlen);

/* Parse "KEY=VALUE" (--limit) into o. Returns 0 or -EINVAL with a reason in err. */
int vfr_limit_parse_arg(struct vfurt_conn_opts *o, const char *arg, char *err, size_t errlen);

#endif /* VFURT_RUNTIME_CONN_LIMITS_H */
