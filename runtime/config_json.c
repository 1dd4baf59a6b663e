/* vfu-rt configuration: loading the JSON config file (vfr_config_load). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "config_internal.h"
#include "conn_limits.h"
#include "cpuset.h"

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
	if (key && l->path)
		snprintf(l->err, l->errlen, "%s: %s: %s", l->path, key, why);
	else if (key)
		snprintf(l->err, l->errlen, "%s: %s", key, why);
	else if (l->path)
		snprintf(l->err, l->errlen, "%s: %s", l->path, why);
	else
		snprintf(l->err, l->errlen, "%s", why);
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

/* {"nsid"?, "backend", "size", "lba"?, "direct"?}: one namespace (vfr_config_ns_from_json). */
static int load_ns(const struct loader *l, const char *key, const char *skip_key,
		   struct json_object *obj, struct vfurt_config_ns *ns)
{
	char k2[DEVSPEC_KEY_LEN + 64];
	bool have_backend = false;
	bool have_size = false;
	int rc;

	memset(ns, 0, sizeof(*ns));
	ns->block_size = 512;
	if (!json_object_is_type(obj, json_type_object))
		return fail(l, key, "expected an object, got %s", type_name(obj));
	json_object_object_foreach(obj, k, v) {
		char val[DEVSPEC_VAL_LEN];

		if (skip_key && !strcmp(k, skip_key))
			continue;
		snprintf(k2, sizeof(k2), "%s%s%.40s", key ? key : "", key ? "." : "", k);
		if (!strcmp(k, "nsid")) {
			int64_t n;

			if (!json_object_is_type(v, json_type_int))
				return fail(l, k2, "expected an integer, got %s", type_name(v));
			n = json_object_get_int64(v);
			if (n < 0 || n > VFURT_CONFIG_NS_MAX)
				return fail(l, k2, "%" PRId64 " is out of range (1..%d, or 0 for the "
					    "lowest free one)", n, VFURT_CONFIG_NS_MAX);
			ns->nsid = (uint32_t)n;
		} else if (!strcmp(k, "backend")) {
			const char *b;

			rc = get_string(l, k2, v, DEVSPEC_VAL_LEN - 1, &b);
			if (rc)
				return rc;
			if (strcmp(b, "null") && strcmp(b, "ram") && (strncmp(b, "file:", 5) || !b[5]))
				return fail(l, k2, "'%s': expected null, ram or file:PATH", b);
			snprintf(ns->backend, sizeof(ns->backend), "%s", b);
			have_backend = true;
		} else if (!strcmp(k, "size")) {
			rc = get_scalar(l, k2, v, val, sizeof(val));
			if (rc)
				return rc;
			if (vfr_devspec_parse_size(val, &ns->size_bytes) || ns->size_bytes == 0)
				return fail(l, k2, "'%s': expected a size like 512M or 1G", val);
			have_size = true;
		} else if (!strcmp(k, "lba")) {
			rc = get_scalar(l, k2, v, val, sizeof(val));
			if (rc)
				return rc;
			if (strcmp(val, "512") && strcmp(val, "4096"))
				return fail(l, k2, "'%s': expected 512 or 4096", val);
			ns->block_size = (uint32_t)strtoul(val, NULL, 10);
		} else if (!strcmp(k, "direct")) {
			const char *d;

			rc = get_string(l, k2, v, 8, &d);
			if (rc)
				return rc;
			if (!strcmp(d, "off"))
				ns->direct = 0;
			else if (!strcmp(d, "on"))
				ns->direct = 1;
			else if (!strcmp(d, "try"))
				ns->direct = 2;
			else
				return fail(l, k2, "'%s': expected off, on or try", d);
		} else {
			return fail(l, k2, "unknown key (known: nsid, backend, size, lba, direct)");
		}
	}
	if (!have_backend)
		return fail(l, key ? key : "backend", "missing \"backend\" (null, ram or file:PATH)");
	if (!have_size && strncmp(ns->backend, "file:", 5))
		return fail(l, key ? key : "size", "missing \"size\" (required for %s)", ns->backend);
	if (ns->size_bytes % ns->block_size)
		return fail(l, key ? key : "size", "%" PRIu64 " bytes is not a multiple of the block "
			    "size %u", ns->size_bytes, ns->block_size);
	return 0;
}

/* "ns_remove": [1, 3] or "ns_resize": [{"nsid": 1, "size": "2G"}] into d. */
static int load_ns_changes(const struct loader *l, const char *key, bool remove,
			   struct json_object *v, struct vfurt_config_device *d)
{
	size_t n;

	if (!json_object_is_type(v, json_type_array))
		return fail(l, key, "expected an array, got %s", type_name(v));
	n = json_object_array_length(v);
	if (n > VFURT_CONFIG_NS_MAX)
		return fail(l, key, "too many entries (at most %d)", VFURT_CONFIG_NS_MAX);
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		struct json_object *id = e;
		struct json_object *sz = NULL;
		char ek[DEVSPEC_KEY_LEN + 96];
		char val[DEVSPEC_VAL_LEN];
		uint64_t bytes = 0;
		int64_t nsid;

		snprintf(ek, sizeof(ek), "%s[%zu]", key, i);
		if (!remove) {
			if (!json_object_is_type(e, json_type_object) ||
			    !json_object_object_get_ex(e, "nsid", &id) ||
			    !json_object_object_get_ex(e, "size", &sz) ||
			    json_object_object_length(e) != 2)
				return fail(l, ek, "expected {\"nsid\": N, \"size\": SIZE}");
			if (get_scalar(l, ek, sz, val, sizeof(val)))
				return -EINVAL;
			if (vfr_devspec_parse_size(val, &bytes) || bytes == 0)
				return fail(l, ek, "size '%s': expected a size like 512M or 1G", val);
		}
		if (!json_object_is_type(id, json_type_int))
			return fail(l, ek, "expected a namespace id (an integer)");
		nsid = json_object_get_int64(id);
		if (nsid < 1 || nsid > VFURT_CONFIG_NS_MAX)
			return fail(l, ek, "nsid %" PRId64 " is out of range (1..%d)", nsid,
				    VFURT_CONFIG_NS_MAX);
		if (remove)
			d->ns_removed |= 1u << (nsid - 1);
		else
			d->ns_resized[nsid - 1] = bytes;
	}
	return 0;
}

static int load_device(const struct loader *l, const char *prefix, struct json_object *obj,
		       struct vfurt_config_device *d)
{
	struct devspec spec;
	char key[DEVSPEC_KEY_LEN + 64];
	char why[160];
	bool have_type = false;
	bool have_socket = false;
	int rc;

	memset(d, 0, sizeof(*d));
	if (!json_object_is_type(obj, json_type_object))
		return fail(l, prefix, "expected an object, got %s", type_name(obj));
	memset(&spec, 0, sizeof(spec));
	json_object_object_foreach(obj, k, v) {
		char val[DEVSPEC_VAL_LEN];
		const char *r;

		if (strlen(k) >= DEVSPEC_KEY_LEN) {
			rc = fail(l, prefix, "key '%.40s...' is too long (at most %d bytes)", k,
				  DEVSPEC_KEY_LEN - 1);
			goto err;
		}
		snprintf(key, sizeof(key), "%s%s%s", prefix ? prefix : "", prefix ? "." : "", k);
		if (!strcmp(k, "type")) {
			const char *t;

			rc = get_string(l, key, v, DEVSPEC_KEY_LEN - 1, &t);
			if (rc)
				goto err;
			snprintf(spec.type, sizeof(spec.type), "%s", t);
			have_type = true;
			continue;
		}
		if (!strcmp(k, "ns")) {
			size_t n;

			if (!json_object_is_type(v, json_type_array)) {
				rc = fail(l, key, "expected an array of namespace objects, got %s",
					  type_name(v));
				goto err;
			}
			n = json_object_array_length(v);
			if (n > VFURT_CONFIG_NS_MAX) {
				rc = fail(l, key, "too many namespaces (at most %d)",
					  VFURT_CONFIG_NS_MAX);
				goto err;
			}
			free(d->ns);
			d->nns = 0;
			d->ns = n ? calloc(n, sizeof(*d->ns)) : NULL;
			if (n && !d->ns) {
				snprintf(l->err, l->errlen, "out of memory");
				rc = -ENOMEM;
				goto err;
			}
			for (size_t i = 0; i < n; i++) {
				char nk[DEVSPEC_KEY_LEN + 96];

				snprintf(nk, sizeof(nk), "%s[%zu]", key, i);
				rc = load_ns(l, nk, NULL, json_object_array_get_idx(v, i), &d->ns[i]);
				if (rc)
					goto err;
				d->nns++;
			}
			continue;
		}
		if (!strcmp(k, "ns_remove") || !strcmp(k, "ns_resize")) {
			rc = load_ns_changes(l, key, !strcmp(k, "ns_remove"), v, d);
			if (rc)
				goto err;
			continue;
		}
		if (!strcmp(k, "socket_mode") && json_object_is_type(v, json_type_int)) {
			rc = fail(l, key, "must be a string like \"0600\": a JSON number is "
				  "decimal, so 0600 cannot be written as one");
			goto err;
		}
		if (!strcmp(k, "socket") && !json_object_is_type(v, json_type_string)) {
			rc = fail(l, key, "expected a string, got %s", type_name(v));
			goto err;
		}
		rc = get_scalar(l, key, v, val, sizeof(val));
		if (rc)
			goto err;
		r = vfr_config_check_common_key(k, val, why, sizeof(why));
		if (r) {
			rc = fail(l, key, "%s", r);
			goto err;
		}
		if (spec.nkeys == DEVSPEC_MAX_KEYS) {
			rc = fail(l, key, "too many keys in one device (at most %d)",
				  DEVSPEC_MAX_KEYS);
			goto err;
		}
		snprintf(spec.kv[spec.nkeys].key, DEVSPEC_KEY_LEN, "%s", k);
		snprintf(spec.kv[spec.nkeys].val, DEVSPEC_VAL_LEN, "%s", val);
		spec.nkeys++;
		have_socket |= !strcmp(k, "socket");
	}
	if (!have_type) {
		rc = fail(l, prefix ? prefix : "type", "missing \"type\" (known types: %s)",
			  vfr_devspec_types());
		goto err;
	}
	if (!have_socket) {
		rc = fail(l, prefix ? prefix : "socket",
			  "missing \"socket\" (the UNIX socket path to serve it on)");
		goto err;
	}
	d->spec = spec;
	return 0;

err:
	vfr_config_device_fini(d);
	return rc;
}

int vfr_config_device_from_json(struct json_object *obj, const char *key, const char *where,
				struct vfurt_config_device *d, char *err, size_t errlen)
{
	const struct loader l = { .path = NULL, .err = err, .errlen = errlen };
	int rc = load_device(&l, key, obj, d);

	if (!rc)
		snprintf(d->where, sizeof(d->where), "%s", where);
	return rc;
}

int vfr_config_ns_from_json(struct json_object *obj, const char *key, const char *skip_key,
			    struct vfurt_config_ns *ns, char *err, size_t errlen)
{
	const struct loader l = { .path = NULL, .err = err, .errlen = errlen };

	return load_ns(&l, key, skip_key, obj, ns);
}

static int load_file_device(const struct loader *l, struct vfurt_config *cfg, size_t idx,
			    struct json_object *obj)
{
	struct vfurt_config_device *d;
	char key[32];
	int rc;

	snprintf(key, sizeof(key), "devices[%zu]", idx);
	d = vfr_config_new_device(cfg);
	if (!d) {
		if (cfg->ndevices == CONFIG_MAX_DEVICES)
			return fail(l, key, "too many devices (at most %d)", CONFIG_MAX_DEVICES);
		snprintf(l->err, l->errlen, "%s: out of memory", l->path);
		return -ENOMEM;
	}
	rc = load_device(l, key, obj, d);
	if (rc)
		return rc;
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
			if (vfr_cpulist_parse(cfg->cores, cpus, VFURT_MAX_CPUS, &n, why,
						sizeof(why)))
				return fail(l, k, "%s", why);
		} else if (!strcmp(k, "poll")) {
			const char *s;

			rc = get_string(l, k, v, 64, &s);
			if (rc)
				return rc;
			if (vfr_config_parse_poll(s, &cfg->poll_mode))
				return fail(l, k, "'%s': expected \"busy\" or \"adaptive\"", s);
			cfg->has_poll = true;
		} else if (!strcmp(k, "log_level")) {
			const char *s;

			rc = get_string(l, k, v, 64, &s);
			if (rc)
				return rc;
			if (vfr_config_parse_log_level(s, &cfg->log_level))
				return fail(l, k, "'%s': expected \"error\", \"warn\", \"info\" "
					    "or \"debug\"", s);
			cfg->has_log_level = true;
		} else if (!strcmp(k, "stats_interval")) {
			rc = get_scalar(l, k, v, val, sizeof(val));
			if (rc)
				return rc;
			if (vfr_config_parse_stats_interval(val, &cfg->stats_interval_s))
				return fail(l, k, "'%s': expected seconds, 0..%u (0 = off)", val,
					    VFURT_CONFIG_STATS_MAX);
			cfg->has_stats_interval = true;
		} else if (!strcmp(k, "poll_sleep_us")) {
			rc = get_scalar(l, k, v, val, sizeof(val));
			if (rc)
				return rc;
			if (vfr_config_parse_poll_sleep(val, &cfg->poll_sleep_us))
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
				if (vfr_limit_set(&cfg->conn, lk, val, why, sizeof(why)))
					return fail(l, path, "%s", why);
			}
		} else if (!strcmp(k, "devices")) {
			size_t n;

			if (!json_object_is_type(v, json_type_array))
				return fail(l, k, "expected an array of device objects, got %s",
					    type_name(v));
			n = json_object_array_length(v);
			for (size_t i = 0; i < n; i++) {
				rc = load_file_device(l, cfg, i, json_object_array_get_idx(v, i));
				if (rc)
					return rc;
			}
		} else {
			return fail(l, k, "unknown key (known: cores, poll, poll_sleep_us, "
				    "log_level, stats_interval, control_socket, limits, devices)");
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

int vfr_config_load(struct vfurt_config *cfg, const char *path, char *err, size_t errlen)
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
