/* vfu-rt configuration: init/free, value parsers, --device specs, placement, control dir. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_internal.h"
#include "cpuset.h"

void vfr_config_init(struct vfurt_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->poll_mode = VFURT_POLL_ADAPTIVE;
	cfg->log_level = VFURT_LOG_INFO;
}

void vfr_config_free(struct vfurt_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->cores);
	free(cfg->control_socket);
	for (size_t i = 0; i < cfg->ndevices; i++)
		vfr_config_device_fini(&cfg->devices[i]);
	free(cfg->devices);
	vfr_config_init(cfg);
}

/* ---- value parsers shared with the command line ------------------------- */

int vfr_config_parse_poll(const char *s, enum vfurt_poll_mode *mode)
{
	if (!strcmp(s, "busy"))
		*mode = VFURT_POLL_BUSY;
	else if (!strcmp(s, "adaptive"))
		*mode = VFURT_POLL_ADAPTIVE;
	else
		return -EINVAL;
	return 0;
}

int vfr_config_parse_log_level(const char *s, int *level)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
		{ "error", VFURT_LOG_ERR }, { "warn", VFURT_LOG_WARN },
		{ "info", VFURT_LOG_INFO }, { "debug", VFURT_LOG_DEBUG },
	};

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (!strcmp(s, levels[i].name)) {
			*level = levels[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

/* Decimal digits only (no sign, spaces or hex), value in [0, max]. */
static int parse_dec(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int vfr_config_parse_stats_interval(const char *s, uint32_t *seconds)
{
	unsigned long v;

	if (parse_dec(s, VFURT_CONFIG_STATS_MAX, &v))
		return -EINVAL;
	*seconds = (uint32_t)v;
	return 0;
}

int vfr_config_parse_poll_sleep(const char *s, uint32_t *us)
{
	unsigned long v;

	if (parse_dec(s, VFURT_CONFIG_POLL_SLEEP_MAX, &v) || v == 0)
		return -EINVAL;
	*us = (uint32_t)v;
	return 0;
}

/* ---- device keys every type shares -------------------------------------- */

/*
 * Check the value of a key the daemon itself reads (socket, socket_mode,
 * core). Other keys belong to the device type and pass. Returns NULL when
 * fine, else the reason (written to why).
 */
const char *vfr_config_check_common_key(const char *key, const char *val, char *why, size_t len)
{
	if (!strcmp(key, "socket")) {
		size_t n = strlen(val);

		if (n == 0)
			return "must not be empty";
		if (n > VFURT_CONFIG_PATH_MAX) {
			snprintf(why, len, "path too long (%zu bytes, at most %d)", n,
				 VFURT_CONFIG_PATH_MAX);
			return why;
		}
	} else if (!strcmp(key, "socket_mode")) {
		mode_t mode;

		int rc = vfr_devspec_parse_mode(val, &mode);

		if (rc == -ERANGE) {
			snprintf(why, len, "'%.64s' is beyond 0777 (only permission bits apply to a "
				 "socket)", val);
			return why;
		}
		if (rc) {
			snprintf(why, len, "'%.64s' is not an octal mode like \"0600\"", val);
			return why;
		}
	} else if (!strcmp(key, "core")) {
		unsigned long cpu;

		if (parse_dec(val, VFURT_MAX_CPUS - 1, &cpu)) {
			snprintf(why, len, "'%.64s' is not a CPU number (0..%d)", val,
				 VFURT_MAX_CPUS - 1);
			return why;
		}
	}
	return NULL;
}

struct vfurt_config_device *vfr_config_new_device(struct vfurt_config *cfg)
{
	struct vfurt_config_device *d;

	if (cfg->ndevices == CONFIG_MAX_DEVICES)
		return NULL;
	d = realloc(cfg->devices, (cfg->ndevices + 1) * sizeof(*d));
	if (!d)
		return NULL;
	cfg->devices = d;
	d = &cfg->devices[cfg->ndevices];
	memset(d, 0, sizeof(*d));
	return d;
}

void vfr_config_device_fini(struct vfurt_config_device *d)
{
	free(d->ns);
	d->ns = NULL;
	d->nns = 0;
}

int vfr_config_device_copy(struct vfurt_config_device *dst, const struct vfurt_config_device *src)
{
	*dst = *src;
	dst->ns = NULL;
	if (src->nns) {
		dst->ns = calloc(src->nns, sizeof(*dst->ns));
		if (!dst->ns) {
			dst->nns = 0;
			return -ENOMEM;
		}
		memcpy(dst->ns, src->ns, src->nns * sizeof(*dst->ns));
	}
	return 0;
}

int vfr_config_check_spec(const struct devspec *spec, char *err, size_t errlen)
{
	bool socket = false;
	char why[160];

	for (size_t i = 0; i < spec->nkeys; i++) {
		const char *r = vfr_config_check_common_key(spec->kv[i].key, spec->kv[i].val, why,
							    sizeof(why));

		if (r) {
			snprintf(err, errlen, "%s='%s': %s", spec->kv[i].key, spec->kv[i].val, r);
			return -EINVAL;
		}
		socket |= !strcmp(spec->kv[i].key, "socket");
	}
	if (!socket) {
		snprintf(err, errlen, "missing socket=PATH");
		return -EINVAL;
	}
	return 0;
}

int vfr_config_add_device_arg(struct vfurt_config *cfg, const char *arg, char *err,
				size_t errlen)
{
	struct vfurt_config_device *d;
	struct devspec spec;
	char tmp[256];

	if (vfr_devspec_parse(arg, &spec, err, errlen) ||
	    vfr_config_check_spec(&spec, err, errlen)) {
		snprintf(tmp, sizeof(tmp), "%s", err);
		snprintf(err, errlen, "--device %s: %s", arg, tmp);
		return -EINVAL;
	}
	d = vfr_config_new_device(cfg);
	if (!d) {
		snprintf(err, errlen, "--device %s: too many devices (at most %d)", arg, CONFIG_MAX_DEVICES);
		return cfg->ndevices == CONFIG_MAX_DEVICES ? -EINVAL : -ENOMEM;
	}
	d->spec = spec;
	snprintf(d->where, sizeof(d->where), "--device %s", arg);
	d->from_file = false;
	cfg->ndevices++;
	return 0;
}

/* ---- placement ------------------------------------------------------------ */

/* "0-3,6" from a list of CPUs (consecutive ascending runs collapse). */
static void format_cpus(const int *cpus, size_t n, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++) {
		size_t j = i;
		int w;

		while (j + 1 < n && cpus[j + 1] == cpus[j] + 1)
			j++;
		if (j > i)
			w = snprintf(buf + off, len - off, "%s%d-%d", off ? "," : "", cpus[i], cpus[j]);
		else
			w = snprintf(buf + off, len - off, "%s%d", off ? "," : "", cpus[i]);
		if (w < 0)
			break;
		off += (size_t)w;
		i = j;
	}
}

int vfr_config_place_device(struct vfurt_config_device *d, const int *worker_cpus,
			      size_t nworkers, struct vfurt_config_place *out, char *err,
			      size_t errlen)
{
	const char *sep = d->from_file ? "." : ": ";
	const char *mode = vfr_devspec_get(&d->spec, "socket_mode");
	const char *core = vfr_devspec_get(&d->spec, "core");

	out->socket = vfr_devspec_get(&d->spec, "socket");
	out->mode = 0600;
	out->worker = -1;
	if (!out->socket) {
		snprintf(err, errlen, "%s: missing socket", d->where);
		return -EINVAL;
	}
	if (mode) {
		int rc = vfr_devspec_parse_mode(mode, &out->mode);

		if (rc) {
			snprintf(err, errlen, "%s%ssocket_mode: '%s' is %s", d->where, sep, mode,
				 rc == -ERANGE ? "beyond 0777 (only permission bits apply to a socket)"
					       : "not an octal mode");
			return -EINVAL;
		}
	}
	if (core) {
		unsigned long cpu;
		char list[256];

		if (parse_dec(core, VFURT_MAX_CPUS - 1, &cpu)) {
			snprintf(err, errlen, "%s%score: '%s' is not a CPU number", d->where, sep, core);
			return -EINVAL;
		}
		for (size_t i = 0; i < nworkers; i++) {
			if (worker_cpus[i] == (int)cpu) {
				out->worker = (int)i;
				return 0;
			}
		}
		format_cpus(worker_cpus, nworkers, list, sizeof(list));
		snprintf(err, errlen, "%s%score: CPU %lu is not in the cores list (%s)", d->where, sep,
			 cpu, list);
		return -EINVAL;
	}
	return 0;
}

/* The file a socket path names: its directory resolved (the socket itself may
 * not exist yet), else the path as written. */
void vfr_config_socket_key(const char *path, char *key, size_t len)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;

	if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if (slash)
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		snprintf(dir, sizeof(dir), ".");
	if (*base && realpath(dir, real)) {
		int n = snprintf(key, len, "%s/%s", strcmp(real, "/") ? real : "", base);

		if (n >= 0 && (size_t)n < len)
			return;
	}
	snprintf(key, len, "%s", path);
}

int vfr_config_check_sockets(const struct vfurt_config *cfg, char *err, size_t errlen)
{
	char (*keys)[PATH_MAX];
	char ctl[PATH_MAX];
	int rc = 0;

	if (!cfg->ndevices)
		return 0;
	keys = calloc(cfg->ndevices, sizeof(*keys));
	if (!keys) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (cfg->control_socket)
		vfr_config_socket_key(cfg->control_socket, ctl, sizeof(ctl));
	for (size_t i = 0; i < cfg->ndevices && !rc; i++) {
		const struct vfurt_config_device *d = &cfg->devices[i];
		const char *sock = NULL;

		for (size_t k = 0; k < d->spec.nkeys; k++)
			if (!strcmp(d->spec.kv[k].key, "socket"))
				sock = d->spec.kv[k].val;

		if (!sock)
			continue;
		vfr_config_socket_key(sock, keys[i], sizeof(keys[i]));
		for (size_t j = 0; j < i; j++) {
			if (strcmp(keys[i], keys[j]))
				continue;
			snprintf(err, errlen, "%s: socket path %s is already used by %s", d->where,
				 sock, cfg->devices[j].where);
			rc = -EINVAL;
			break;
		}
		if (!rc && cfg->control_socket && !strcmp(keys[i], ctl)) {
			snprintf(err, errlen, "%s: socket path %s is already the control socket",
				 d->where, sock);
			rc = -EINVAL;
		}
	}
	free(keys);
	return rc;
}

int vfr_config_default_ctl_dir(bool use_tmp, char *buf, size_t len)
{
	const char *dir = use_tmp ? NULL : getenv("XDG_RUNTIME_DIR");
	int n;

	if (dir && dir[0] == '/')
		n = snprintf(buf, len, "%s/vfu-rt", dir);
	else
		n = snprintf(buf, len, "/tmp/vfu-rt-%lu", (unsigned long)geteuid());
	/* room for "/PID.ctl" */
	if (n < 0 || (size_t)n >= len || (size_t)n + 16 > VFURT_CONFIG_PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int vfr_config_default_ctl_path(pid_t pid, bool use_tmp, char *buf, size_t len)
{
	char dir[VFURT_CONFIG_PATH_MAX + 1];
	int rc = vfr_config_default_ctl_dir(use_tmp, dir, sizeof(dir));
	int n;

	if (rc)
		return rc;
	n = snprintf(buf, len, "%s/%ld.ctl", dir, (long)pid);
	if (n < 0 || (size_t)n >= len || (size_t)n > VFURT_CONFIG_PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int vfr_config_ctl_dir_check(const char *dir, bool create, char *err, size_t errlen)
{
	struct stat st;

	if (create && mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int rc = -errno;

		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-rc));
		return rc;
	}
	if (lstat(dir, &st) < 0) {
		int rc = -errno;

		snprintf(err, errlen, "%s: %s", dir, strerror(-rc));
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory%s", dir,
			 S_ISLNK(st.st_mode) ? " (a symlink)" : "");
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		snprintf(err, errlen, "%s is not private (owner uid %lu, mode %04o; want uid %lu, "
			 "mode 0700)", dir, (unsigned long)st.st_uid,
			 (unsigned)(st.st_mode & 07777), (unsigned long)geteuid());
		return -EPERM;
	}
	return 0;
}
