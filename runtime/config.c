/* vfu-rt configuration: JSON config file loading, --device specs, device placement. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "conn_limits.h"
#include "cpuset.h"

#define MAX_DEVICES 1024

void vfurt_config_init(struct vfurt_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->poll_mode = VFURT_POLL_ADAPTIVE;
	cfg->log_level = VFURT_LOG_INFO;
}

void vfurt_config_free(struct vfurt_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->cores);
	free(cfg->control_socket);
	free(cfg->devices);
	vfurt_config_init(cfg);
}

/* ---- value parsers shared with the command line ------------------------- */

int vfurt_config_parse_poll(const char *s, enum vfurt_poll_mode *mode)
{
	if (!strcmp(s, "busy"))
		*mode = VFURT_POLL_BUSY;
	else if (!strcmp(s, "adaptive"))
		*mode = VFURT_POLL_ADAPTIVE;
	else
		return -EINVAL;
	return 0;
}

int vfurt_config_parse_log_level(const char *s, int *level)
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

int vfurt_config_parse_stats_interval(const char *s, uint32_t *seconds)
{
	unsigned long v;

	if (parse_dec(s, VFURT_CONFIG_STATS_MAX, &v))
		return -EINVAL;
	*seconds = (uint32_t)v;
	return 0;
}

int vfurt_config_parse_poll_sleep(const char *s, uint32_t *us)
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
static const char *check_common_key(const char *key, const char *val, char *why, size_t len)
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

		int rc = devspec_parse_mode(val, &mode);

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

static struct vfurt_config_device *new_device(struct vfurt_config *cfg)
{
	struct vfurt_config_device *d;

	if (cfg->ndevices == MAX_DEVICES)
		return NULL;
	d = realloc(cfg->devices, (cfg->ndevices + 1) * sizeof(*d));
	if (!d)
		return NULL;
	cfg->devices = d;
	d = &cfg->devices[cfg->ndevices];
	memset(d, 0, sizeof(*d));
	return d;
}

int vfurt_config_add_device_arg(struct vfurt_config *cfg, const char *arg, char *err,
				size_t errlen)
{
	struct vfurt_config_device *d;
	struct devspec spec;
	char why[160];

	if (devspec_parse(arg, &spec, err, errlen)) {
		char tmp[256];

		snprintf(tmp, sizeof(tmp), "%s", err);
		snprintf(err, errlen, "--device %s: %s", arg, tmp);
		return -EINVAL;
	}
	for (size_t i = 0; i < spec.nkeys; i++) {
		const char *r = check_common_key(spec.kv[i].key, spec.kv[i].val, why, sizeof(why));

		if (r) {
			snprintf(err, errlen, "--device %s: %s='%s': %s", arg, spec.kv[i].key,
				 spec.kv[i].val, r);
			return -EINVAL;
		}
	}
	if (!devspec_get(&spec, "socket")) {
		snprintf(err, errlen, "--device %s: missing socket=PATH", arg);
		return -EINVAL;
	}
	/* devspec_get marked socket used; placement reads it again. */
	for (size_t i = 0; i < spec.nkeys; i++)
		spec.kv[i].used = 0;
	d = new_device(cfg);
	if (!d) {
		snprintf(err, errlen, "--device %s: too many devices (at most %d)", arg, MAX_DEVICES);
		return cfg->ndevices == MAX_DEVICES ? -EINVAL : -ENOMEM;
	}
	d->spec = spec;
	snprintf(d->where, sizeof(d->where), "--device %s", arg);
	d->from_file = false;
	cfg->ndevices++;
	return 0;
}

/* ---- the JSON file ------------------------------------------------------- */

/* What the loader needs to report errors as "FILE: KEY: reason". */
struct loader {
	const char *path;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4)))
static int fail(const struct loader *l, const char *key, const char *fmt, ...)
{
	char why[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (key)
		snprintf(l->err, l->errlen, "%s: %s: %s", l->path, key, why);
	else
		snprintf(l->err, l->errlen, "%s: %s", l->path, why);
	return -EINVAL;
}

static const char *type_name(const struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null: return "null";
	case json_type_boolean: return "a boolean";
	case json_type_double: return "a fractional number";
	case json_type_int: return "a number";
	case json_type_object: return "an object";
	case json_type_array: return "an array";
	case json_type_string: return "a string";
	}
	return "an unknown type";
}

/* A JSON string without embedded NULs, at most max bytes. */
static int get_string(const struct loader *l, const char *key, struct json_object *v,
		      size_t max, const char **out)
{
	const char *s;
	size_t n;

	if (!json_object_is_type(v, json_type_string))
		return fail(l, key, "expected a string, got %s", type_name(v));
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (strlen(s) != n)
		return fail(l, key, "contains a NUL character");
	if (n > max)
		return fail(l, key, "too long (%zu bytes, at most %zu)", n, max);
	*out = s;
	return 0;
}

/*
 * A string, or an integer rendered as its decimal string: device keys are
 * strings on the command line, and "toggle_period": 3 should mean the same
 * as "toggle_period": "3".
 */
static int get_scalar(const struct loader *l, const char *key, struct json_object *v,
		      char *buf, size_t len)
{
	const char *s;
	int rc;

	if (json_object_is_type(v, json_type_int)) {
		snprintf(buf, len, "%" PRId64, json_object_get_int64(v));
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return fail(l, key, "expected a string or an integer, got %s", type_name(v));
	rc = get_string(l, key, v, len - 1, &s);
	if (rc)
		return rc;
	snprintf(buf, len, "%s", s);
	return 0;
}

static int set_string(const struct loader *l, const char *key, struct json_object *v,
		      char **dst)
{
	const char *s;
	char *copy;
	int rc = get_string(l, key, v, VFURT_CONFIG_FILE_MAX, &s);

	if (rc)
		return rc;
	copy = strdup(s);
	if (!copy) {
		snprintf(l->err, l->errlen, "%s: out of memory", l->path);
		return -ENOMEM;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

static int load_device(const struct loader *l, struct vfurt_config *cfg, size_t idx,
		       struct json_object *obj)
{
	struct vfurt_config_device *d;
	struct devspec spec;
	char key[DEVSPEC_KEY_LEN + 32];
	char why[160];
	bool have_type = false;
	bool have_socket = false;
	int rc;

	snprintf(key, sizeof(key), "devices[%zu]", idx);
	if (!json_object_is_type(obj, json_type_object))
		return fail(l, key, "expected an object, got %s", type_name(obj));
	memset(&spec, 0, sizeof(spec));
	json_object_object_foreach(obj, k, v) {
		char val[DEVSPEC_VAL_LEN];
		const char *r;

		snprintf(key, sizeof(key), "devices[%zu]", idx);
		if (strlen(k) >= DEVSPEC_KEY_LEN)
			return fail(l, key, "key '%.40s...' is too long (at most %d bytes)", k,
				    DEVSPEC_KEY_LEN - 1);
		snprintf(key, sizeof(key), "devices[%zu].%s", idx, k);
		if (!strcmp(k, "type")) {
			const char *t;

			rc = get_string(l, key, v, DEVSPEC_KEY_LEN - 1, &t);
			if (rc)
				return rc;
			snprintf(spec.type, sizeof(spec.type), "%s", t);
			have_type = true;
			continue;
		}
		if (!strcmp(k, "socket_mode") && json_object_is_type(v, json_type_int))
			return fail(l, key, "must be a string like \"0600\": a JSON number is "
				    "decimal, so 0600 cannot be written as one");
		if (!strcmp(k, "socket") && !json_object_is_type(v, json_type_string))
			return fail(l, key, "expected a string, got %s", type_name(v));
		rc = get_scalar(l, key, v, val, sizeof(val));
		if (rc)
			return rc;
		r = check_common_key(k, val, why, sizeof(why));
		if (r)
			return fail(l, key, "%s", r);
		if (spec.nkeys == DEVSPEC_MAX_KEYS)
			return fail(l, key, "too many keys in one device (at most %d)",
				    DEVSPEC_MAX_KEYS);
		snprintf(spec.kv[spec.nkeys].key, DEVSPEC_KEY_LEN, "%s", k);
		snprintf(spec.kv[spec.nkeys].val, DEVSPEC_VAL_LEN, "%s", val);
		spec.nkeys++;
		have_socket |= !strcmp(k, "socket");
	}
	snprintf(key, sizeof(key), "devices[%zu]", idx);
	if (!have_type)
		return fail(l, key, "missing \"type\" (known types: %s)", devspec_types());
	if (!have_socket)
		return fail(l, key, "missing \"socket\" (the UNIX socket path to serve it on)");
	d = new_device(cfg);
	if (!d) {
		if (cfg->ndevices == MAX_DEVICES)
			return fail(l, key, "too many devices (at most %d)", MAX_DEVICES);
		snprintf(l->err, l->errlen, "%s: out of memory", l->path);
		return -ENOMEM;
	}
	d->spec = spec;
	snprintf(d->where, sizeof(d->where), "%s: %s", l->path, key);
	d->from_file = true;
	cfg->ndevices++;
	return 0;
}

static int load_top(const struct loader *l, struct vfurt_config *cfg, struct json_object *root)
{
	char val[64];
	int rc;

	if (!json_object_is_type(root, json_type_object))
		return fail(l, NULL, "expected a JSON object at the top level, got %s",
			    type_name(root));
	json_object_object_foreach(root, k, v) {
		if (!strcmp(k, "cores")) {
			int cpus[VFURT_MAX_CPUS];
			char why[256];
			size_t n;

			rc = set_string(l, k, v, &cfg->cores);
			if (rc)
				return rc;
			if (vfurt_cpulist_parse(cfg->cores, cpus, VFURT_MAX_CPUS, &n, why,
						sizeof(why)))
				return fail(l, k, "%s", why);
		} else if (!strcmp(k, "poll")) {
			const char *s;

			rc = get_string(l, k, v, 64, &s);
			if (rc)
				return rc;
			if (vfurt_config_parse_poll(s, &cfg->poll_mode))
				return fail(l, k, "'%s': expected \"busy\" or \"adaptive\"", s);
			cfg->has_poll = true;
		} else if (!strcmp(k, "log_level")) {
			const char *s;

			rc = get_string(l, k, v, 64, &s);
			if (rc)
				return rc;
			if (vfurt_config_parse_log_level(s, &cfg->log_level))
				return fail(l, k, "'%s': expected \"error\", \"warn\", \"info\" "
					    "or \"debug\"", s);
			cfg->has_log_level = true;
		} else if (!strcmp(k, "stats_interval")) {
			rc = get_scalar(l, k, v, val, sizeof(val));
			if (rc)
				return rc;
			if (vfurt_config_parse_stats_interval(val, &cfg->stats_interval_s))
				return fail(l, k, "'%s': expected seconds, 0..%u (0 = off)", val,
					    VFURT_CONFIG_STATS_MAX);
			cfg->has_stats_interval = true;
		} else if (!strcmp(k, "poll_sleep_us")) {
			rc = get_scalar(l, k, v, val, sizeof(val));
			if (rc)
				return rc;
			if (vfurt_config_parse_poll_sleep(val, &cfg->poll_sleep_us))
				return fail(l, k, "'%s': expected microseconds, 1..%u", val,
					    VFURT_CONFIG_POLL_SLEEP_MAX);
			cfg->has_poll_sleep = true;
		} else if (!strcmp(k, "control_socket")) {
			rc = set_string(l, k, v, &cfg->control_socket);
			if (rc)
				return rc;
			if (!*cfg->control_socket)
				return fail(l, k, "must not be empty");
			if (strlen(cfg->control_socket) > VFURT_CONFIG_PATH_MAX)
				return fail(l, k, "path too long (at most %d bytes)",
					    VFURT_CONFIG_PATH_MAX);
		} else if (!strcmp(k, "limits")) {
			if (!json_object_is_type(v, json_type_object))
				return fail(l, k, "expected an object of limits, got %s",
					    type_name(v));
			json_object_object_foreach(v, lk, lv) {
				char why[256], path[96];

				snprintf(path, sizeof(path), "limits.%.64s", lk);
				rc = get_scalar(l, path, lv, val, sizeof(val));
				if (rc)
					return rc;
				if (vfurt_limit_set(&cfg->conn, lk, val, why, sizeof(why)))
					return fail(l, path, "%s", why);
			}
		} else if (!strcmp(k, "devices")) {
			size_t n;

			if (!json_object_is_type(v, json_type_array))
				return fail(l, k, "expected an array of device objects, got %s",
					    type_name(v));
			n = json_object_array_length(v);
			for (size_t i = 0; i < n; i++) {
				rc = load_device(l, cfg, i, json_object_array_get_idx(v, i));
				if (rc)
					return rc;
			}
		} else {
			return fail(l, k, "unknown key (known: cores, poll, poll_sleep_us, "
				    "log_level, stats_interval, control_socket, devices)");
		}
	}
	return 0;
}

/* Read the whole file, NUL-terminated. */
static int read_file(const struct loader *l, char **out, size_t *len)
{
	struct stat st;
	size_t got = 0;
	char *buf;
	int fd;
	int rc;

	fd = open(l->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(l->err, l->errlen, "%s: cannot open: %s", l->path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st)) {
		rc = -errno;
		snprintf(l->err, l->errlen, "%s: %s", l->path, strerror(-rc));
		goto err_close;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(l->err, l->errlen, "%s: not a regular file", l->path);
		rc = -EINVAL;
		goto err_close;
	}
	if (st.st_size > VFURT_CONFIG_FILE_MAX) {
		snprintf(l->err, l->errlen, "%s: too large (%jd bytes, at most %u)", l->path,
			 (intmax_t)st.st_size, VFURT_CONFIG_FILE_MAX);
		rc = -EFBIG;
		goto err_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(l->err, l->errlen, "%s: out of memory", l->path);
		rc = -ENOMEM;
		goto err_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(l->err, l->errlen, "%s: read: %s", l->path, strerror(-rc));
			goto err_free;
		}
		if (n == 0)
			break; /* shrank meanwhile: parse what is there */
		got += (size_t)n;
	}
	buf[got] = '\0';
	close(fd);
	*out = buf;
	*len = got;
	return 0;

err_free:
	free(buf);
err_close:
	close(fd);
	return rc;
}

/* Line and column (1-based) of byte offset off in buf. */
static void line_col(const char *buf, size_t off, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

int vfurt_config_load(struct vfurt_config *cfg, const char *path, char *err, size_t errlen)
{
	const struct loader l = { .path = path, .err = err, .errlen = errlen };
	struct json_tokener *tok;
	struct json_object *root;
	unsigned line;
	unsigned col;
	size_t len = 0;
	char *buf = NULL;
	int rc;

	rc = read_file(&l, &buf, &len);
	if (rc)
		return rc;
	if (strspn(buf, " \t\r\n") == len) {
		snprintf(err, errlen, "%s: empty file (expected a JSON object)", path);
		rc = -EINVAL;
		goto err_buf;
	}
	tok = json_tokener_new();
	if (!tok) {
		snprintf(err, errlen, "%s: out of memory", path);
		rc = -ENOMEM;
		goto err_buf;
	}
	/* Strict: no comments, no single quotes, nothing after the document. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, buf, (int)len);
	if (!root) {
		enum json_tokener_error jerr = json_tokener_get_error(tok);
		size_t off = json_tokener_get_parse_end(tok);

		if (off > len)
			off = len;
		line_col(buf, off, &line, &col);
		if (jerr == json_tokener_continue || jerr == json_tokener_success)
			snprintf(err, errlen, "%s: not valid JSON: unexpected end of file at line %u",
				 path, line);
		else
			snprintf(err, errlen, "%s: not valid JSON: %s at line %u, column %u", path,
				 json_tokener_error_desc(jerr), line, col);
		rc = -EINVAL;
		goto err_tok;
	}
	rc = load_top(&l, cfg, root);
	json_object_put(root);
err_tok:
	json_tokener_free(tok);
err_buf:
	free(buf);
	return rc;
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

int vfurt_config_place_device(struct vfurt_config_device *d, const int *worker_cpus,
			      size_t nworkers, struct vfurt_config_place *out, char *err,
			      size_t errlen)
{
	const char *sep = d->from_file ? "." : ": ";
	const char *mode = devspec_get(&d->spec, "socket_mode");
	const char *core = devspec_get(&d->spec, "core");

	out->socket = devspec_get(&d->spec, "socket");
	out->mode = 0600;
	out->worker = -1;
	if (!out->socket) {
		snprintf(err, errlen, "%s: missing socket", d->where);
		return -EINVAL;
	}
	if (mode) {
		int rc = devspec_parse_mode(mode, &out->mode);

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
static void socket_key(const char *path, char *key, size_t len)
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

int vfurt_config_check_sockets(const struct vfurt_config *cfg, char *err, size_t errlen)
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
		socket_key(cfg->control_socket, ctl, sizeof(ctl));
	for (size_t i = 0; i < cfg->ndevices && !rc; i++) {
		const struct vfurt_config_device *d = &cfg->devices[i];
		const char *sock = NULL;

		for (size_t k = 0; k < d->spec.nkeys; k++)
			if (!strcmp(d->spec.kv[k].key, "socket"))
				sock = d->spec.kv[k].val;

		if (!sock)
			continue;
		socket_key(sock, keys[i], sizeof(keys[i]));
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

int vfurt_config_default_ctl_dir(bool use_tmp, char *buf, size_t len)
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

int vfurt_config_default_ctl_path(pid_t pid, bool use_tmp, char *buf, size_t len)
{
	char dir[VFURT_CONFIG_PATH_MAX + 1];
	int rc = vfurt_config_default_ctl_dir(use_tmp, dir, sizeof(dir));
	int n;

	if (rc)
		return rc;
	n = snprintf(buf, len, "%s/%ld.ctl", dir, (long)pid);
	if (n < 0 || (size_t)n >= len || (size_t)n > VFURT_CONFIG_PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int vfurt_config_ctl_dir_check(const char *dir, bool create, char *err, size_t errlen)
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
