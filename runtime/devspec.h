/* Device specifications ("type,key=value,...") and the table of device types. */
#ifndef VFURT_RUNTIME_DEVSPEC_H
#define VFURT_RUNTIME_DEVSPEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfurt/device.h>
#include <vfurt/log.h>

#define DEVSPEC_MAX_KEYS 16
#define DEVSPEC_KEY_LEN 32
#define DEVSPEC_VAL_LEN 256

struct devspec {
	char type[DEVSPEC_KEY_LEN];
	size_t nkeys;
	struct {
		char key[DEVSPEC_KEY_LEN];
		char val[DEVSPEC_VAL_LEN];
		int used;
	} kv[DEVSPEC_MAX_KEYS];
	/* not a key: vfurt_bdev_spec_opts.flags of the namespaces created
	 * (VFURT_BDEV_LAZY while a live upgrade builds the devices) */
	uint32_t bdev_flags;
};

/*
 * Parse "type,key=value,...". Returns 0 or -EINVAL with a message in err
 * (errlen bytes) naming the offending part.
 */
int vfr_devspec_parse(const char *s, struct devspec *spec, char *err, size_t errlen);

/* Value of key or NULL; marks the key used. */
const char *vfr_devspec_get(struct devspec *spec, const char *key);

/* Value of key or NULL, without marking it used (reading a stored spec). */
const char *vfr_devspec_peek(const struct devspec *spec, const char *key);

/*
 * Build the device a spec describes: looks the type up in the device type
 * table, applies the keys (socket and socket_mode are read by the caller
 * first and marked used), and rejects unknown keys. Returns the device or
 * NULL with a message in err.
 */
struct vfurt_dev *vfr_devspec_create(struct devspec *spec, const struct vfurt_log *log,
				 char *err, size_t errlen);

/* Parse an octal mode like "0600". Returns 0, -EINVAL (not octal) or -ERANGE
 * (beyond 0777: only permission bits are a socket's). */
int vfr_devspec_parse_mode(const char *s, mode_t *mode);

/*
 * Parse a size: decimal digits with an optional suffix k, M, G, T (either
 * case, powers of 1024), e.g. "512", "4k", "64M", "1G", "2T". Rejects empty
 * strings, signs, spaces, other suffixes and overflow. Returns 0 or -EINVAL
 * (-ERANGE on overflow). Also vfu-bench's parser of --size and --bs.
 */
int vfr_devspec_parse_size(const char *s, uint64_t *bytes);

/* Comma-separated list of known device types, for --help. */
const char *vfr_devspec_types(void);

#endif /* VFURT_RUNTIME_DEVSPEC_H */
