/* vfu-rt configuration: the JSON config file, --device specs, and where each device goes. */
#ifndef VFURT_RUNTIME_CONFIG_H
#define VFURT_RUNTIME_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfurt/runtime.h>

#include "devspec.h"

/* Longest UNIX socket path (sizeof(sun_path) - 1). */
#define VFURT_CONFIG_PATH_MAX 107
/* Largest stats_interval in seconds (one day). */
#define VFURT_CONFIG_STATS_MAX 86400u
/* Largest poll_sleep_us (one second). */
#define VFURT_CONFIG_POLL_SLEEP_MAX 1000000u
/* Largest config file accepted. */
#define VFURT_CONFIG_FILE_MAX (1u << 20)
/* Most namespaces of one controller (VFURT_NVME_MAX_NS). */
#define VFURT_CONFIG_NS_MAX 32

/* One NVMe namespace added to a controller: {"nsid", "backend", "size", "lba", "direct"}. */
struct vfurt_config_ns {
	uint32_t nsid;                 /* 1..VFURT_NVME_MAX_NS, 0 = the lowest free one */
	char backend[DEVSPEC_VAL_LEN]; /* "null", "ram" or "file:PATH" */
	uint64_t size_bytes;           /* 0 only for a file backend (the file's size) */
	uint32_t block_size;           /* 512 or 4096 */
	int direct;                    /* enum vfurt_bdev_direct */
};

/*
 * One device to serve. spec holds the type and every key as a string, like
 * `--device type,key=value,...`, including socket, socket_mode and core
 * (validated when the device was added to the config). where names the
 * origin for messages: "FILE: devices[1]" or "--device SPEC".
 */
struct vfurt_config_device {
	struct devspec spec;
	char where[512];
	bool from_file;
	/* NVMe namespaces attached after the controller is built (the "ns"
	 * array of a config entry, what config_save writes for namespaces
	 * added live); owned, freed by vfr_config_free */
	struct vfurt_config_ns *ns;
	uint32_t nns;
	/* what happened live to the namespaces the spec itself creates
	 * (namespaces=, size=): "ns_remove": [nsid...] and "ns_resize":
	 * [{"nsid", "size"}], applied before the "ns" array */
	uint32_t ns_removed;                      /* bit nsid - 1 */
	uint64_t ns_resized[VFURT_CONFIG_NS_MAX]; /* bytes, 0 = as created */
};

/*
 * Settings from a config file and/or the command line. The has_ flags tell
 * which optional settings were given; strings are owned (freed by
 * vfr_config_free).
 */
struct vfurt_config {
	char *cores;                     /* CPU list, syntax already checked; NULL = absent */
	bool has_poll;
	enum vfurt_poll_mode poll_mode;
	bool has_log_level;
	int log_level;                   /* enum vfurt_log_level */
	bool has_stats_interval;
	uint32_t stats_interval_s;       /* 0 = no periodic summary */
	bool has_poll_sleep;
	uint32_t poll_sleep_us;          /* adaptive_poll_sleep_us, 1.. */
	char *control_socket;            /* NULL = absent */
	struct vfurt_conn_opts conn;     /* "limits": zero fields = defaults */
	struct vfurt_config_device *devices;
	size_t ndevices;
};

/* Start an empty config (no settings, no devices). */
void vfr_config_init(struct vfurt_config *cfg);

/* Free what a config owns and reset it to empty. NULL is ignored. */
void vfr_config_free(struct vfurt_config *cfg);

/*
 * Load a JSON config file into cfg (an initialised config): settings given in
 * the file replace cfg's, devices are appended. Top-level keys are cores,
 * poll, log_level, stats_interval, control_socket, limits (an object of
 * conn_limits.h keys), devices (all optional).
 * Returns 0, or a negative errno with a one-line message in err naming the
 * file, the key (e.g. "devices[1].socket_mode") and the reason: -ENOENT /
 * -EACCES / ... (cannot read), -EINVAL (not JSON, wrong type, bad value),
 * -EFBIG (over VFURT_CONFIG_FILE_MAX), -ENOMEM. On error cfg keeps what it had
 * before plus possibly some of the file's settings; the caller frees it.
 */
int vfr_config_load(struct vfurt_config *cfg, const char *path, char *err, size_t errlen);

/*
 * Append a `--device TYPE,key=value,...` spec. Checks socket (required,
 * length), socket_mode (octal) and core (a CPU number) the way the file
 * loader does; device-type keys are checked later by vfr_devspec_create.
 * Returns 0, -EINVAL with a message in err, or -ENOMEM.
 */
int vfr_config_add_device_arg(struct vfurt_config *cfg, const char *arg, char *err,
				size_t errlen);

struct json_object;

/*
 * Fill d from one device object of the config file's "devices" array (or
 * a device_add request): "type", "socket" and every other key as a string
 * or an integer, plus optional "ns" (vfr_config_ns_from_json objects),
 * "ns_remove" (nsids) and "ns_resize" ([{"nsid", "size"}]) arrays.
 * d->where is set to where. key names the object in messages ("devices[1]",
 * or NULL for none: "socket_mode: ..."). Returns 0, -EINVAL with a message
 * naming the key in err, or -ENOMEM. On error d owns nothing.
 */
int vfr_config_device_from_json(struct json_object *obj, const char *key, const char *where,
				struct vfurt_config_device *d, char *err, size_t errlen);

/*
 * Parse one namespace object {"nsid"?, "backend", "size", "lba"?, "direct"?}
 * (key names it in messages, NULL for none; skip_key, if not NULL, is a key
 * to ignore, e.g. the device "name" of an nvme_ns_add request). size is a
 * string with devspec_parse_size suffixes or an integer, required unless
 * the backend is a file, and a multiple of lba (512 by default). Returns 0
 * or -EINVAL with a message in err.
 */
int vfr_config_ns_from_json(struct json_object *obj, const char *key, const char *skip_key,
			    struct vfurt_config_ns *ns, char *err, size_t errlen);

/*
 * Check a parsed `TYPE,key=value` spec the way --device is: socket
 * (required, length), socket_mode and core. Returns 0 or -EINVAL with
 * "KEY='VALUE': reason" in err.
 */
int vfr_config_check_spec(const struct devspec *spec, char *err, size_t errlen);

/* Copy src's device into dst (a deep copy of the ns array). 0 or -ENOMEM. */
int vfr_config_device_copy(struct vfurt_config_device *dst, const struct vfurt_config_device *src);

/* Free what a device owns (its ns array). */
void vfr_config_device_fini(struct vfurt_config_device *d);

/*
 * The file a socket path names, for comparing paths: its directory resolved
 * (the socket need not exist), else the path as written.
 */
void vfr_config_socket_key(const char *path, char *key, size_t len);

/* Parsers shared by the file loader and the command line. Return 0 or -EINVAL. */
int vfr_config_parse_poll(const char *s, enum vfurt_poll_mode *mode);
int vfr_config_parse_log_level(const char *s, int *level);
int vfr_config_parse_stats_interval(const char *s, uint32_t *seconds);
/* "1".."1000000" microseconds: an adaptive worker's longest sleep while a
 * queue cannot be woken. 0 or -EINVAL. */
int vfr_config_parse_poll_sleep(const char *s, uint32_t *us);

/* Where a device is served, resolved against the runtime's worker CPUs. */
struct vfurt_config_place {
	const char *socket;   /* points into the device's spec */
	mode_t mode;          /* 0600 unless socket_mode was given */
	int worker;           /* index of the worker on CPU `core`, or -1 (round robin) */
};

/*
 * Resolve a device's socket, mode and home worker: worker_cpus[i] is the CPU
 * of worker i. A core not among them is -EINVAL with a message naming the
 * device, e.g. "FILE: devices[0].core: CPU 3 is not in the cores list (0-1)".
 * Marks socket, socket_mode and core used in the spec.
 */
int vfr_config_place_device(struct vfurt_config_device *d, const int *worker_cpus,
			      size_t nworkers, struct vfurt_config_place *out, char *err,
			      size_t errlen);

/*
 * Check that no two devices (and not the control socket) share a socket
 * path: names that lead to the same file count as the same ("a.sock",
 * "./a.sock", a symlinked directory). Returns 0 or -EINVAL with a message
 * in err: "WHERE: socket path X is already used by OTHER-WHERE".
 */
int vfr_config_check_sockets(const struct vfurt_config *cfg, char *err, size_t errlen);

/*
 * Private directory of the default control sockets: "$XDG_RUNTIME_DIR/vfu-rt"
 * when XDG_RUNTIME_DIR is set and absolute, else "/tmp/vfu-rt-UID" (use_tmp
 * forces the latter). Never a predictable file in /tmp itself: see
 * vfr_config_ctl_dir_check. Returns 0 or -ENAMETOOLONG.
 */
int vfr_config_default_ctl_dir(bool use_tmp, char *buf, size_t len);

/*
 * Default control socket of process pid: "DIR/PID.ctl" in the directory
 * above. Returns 0 or -ENAMETOOLONG.
 */
int vfr_config_default_ctl_path(pid_t pid, bool use_tmp, char *buf, size_t len);

/*
 * Make sure dir is a directory only we can use: with create, make it (mode
 * 0700) if missing. Refuses a symlink, a non-directory, a directory owned by
 * another user or with any group/other permission (someone else could put or
 * replace sockets there). Returns 0, or a negative errno with a message in
 * err: -ENOENT (missing, not created), -ENOTDIR, -EPERM (not private), or
 * mkdir's error.
 */
int vfr_config_ctl_dir_check(const char *dir, bool create, char *err, size_t errlen);

#endif /* VFURT_RUNTIME_CONFIG_H */
