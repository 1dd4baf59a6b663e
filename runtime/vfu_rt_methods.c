/* vfu-rt's control methods: devices, NVMe namespaces, statistics, log level, saving the config. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <vfurt/bdev.h>
#include <vfurt/nvme.h>

#include "devspec.h"
#include "vfu_rt_daemon.h"
#include "vfu_rt_upgrade.h"

/* ---- parameters ---------------------------------------------------------- */

/* Every key of params is one of known (NULL-terminated); else -32602 naming it. */
static bool check_keys(struct json_object *params, const char *const *known, struct rpc_call *call)
{
	json_object_object_foreach(params, k, v) {
		bool ok = false;

		(void)v;
		for (const char *const *p = known; *p; p++)
			ok |= !strcmp(*p, k);
		if (!ok) {
			char list[256] = "";
			size_t off = 0;

			for (const char *const *p = known; *p && off < sizeof(list); p++) {
				int w = snprintf(list + off, sizeof(list) - off, "%s%s",
						 off ? ", " : "", *p);

				off += w > 0 ? (size_t)w : 0;
			}
			rpc_error(call, RPC_INVALID_PARAMS, "unknown parameter '%.64s' (known: %s)", k,
				  *known ? list : "none");
			return false;
		}
	}
	return true;
}

/* A string parameter without NULs, at most max bytes; *out NULL when absent and optional. */
static bool get_str(struct json_object *params, const char *key, bool required, size_t max,
		    const char **out, struct rpc_call *call)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(params, key, &v)) {
		if (required)
			rpc_error(call, RPC_INVALID_PARAMS, "missing parameter '%s'", key);
		return !required;
	}
	if (!json_object_is_type(v, json_type_string)) {
		rpc_error(call, RPC_INVALID_PARAMS, "parameter '%s' must be a string", key);
		return false;
	}
	if ((size_t)json_object_get_string_len(v) != strlen(json_object_get_string(v))) {
		rpc_error(call, RPC_INVALID_PARAMS, "parameter '%s' contains a NUL character", key);
		return false;
	}
	if ((size_t)json_object_get_string_len(v) > max) {
		rpc_error(call, RPC_INVALID_PARAMS, "parameter '%s' is too long (at most %zu bytes)",
			  key, max);
		return false;
	}
	*out = json_object_get_string(v);
	return true;
}

/* An integer parameter in [min, max]; *out keeps its value when absent and optional. */
static bool get_u32(struct json_object *params, const char *key, bool required, uint32_t min,
		    uint32_t max, uint32_t *out, struct rpc_call *call)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(params, key, &v)) {
		if (required)
			rpc_error(call, RPC_INVALID_PARAMS, "missing parameter '%s'", key);
		return !required;
	}
	if (!json_object_is_type(v, json_type_int)) {
		rpc_error(call, RPC_INVALID_PARAMS, "parameter '%s' must be an integer", key);
		return false;
	}
	errno = 0;
	n = json_object_get_int64(v);
	if (errno || n < (int64_t)min || n > (int64_t)max) {
		rpc_error(call, RPC_INVALID_PARAMS, "parameter '%s' must be %u..%u", key, min, max);
		return false;
	}
	*out = (uint32_t)n;
	return true;
}

/* The device params' "name" names, or NULL after an error. */
static struct dev_entry *get_device(struct daemon *d, struct json_object *params,
				    struct rpc_call *call)
{
	struct dev_entry *e;
	const char *name;

	if (!get_str(params, "name", true, DEVSPEC_VAL_LEN - 1, &name, call))
		return NULL;
	e = devtab_find(&d->devs, name);
	if (!e)
		rpc_error(call, RPC_ERR_NO_DEVICE, "no device named '%s'", name);
	return e;
}

static struct dev_entry *get_nvme(struct daemon *d, struct json_object *params,
				  struct rpc_call *call)
{
	struct dev_entry *e = get_device(d, params, call);

	if (!e)
		return NULL;
	if (strcmp(e->cfg.spec.type, "nvme")) {
		rpc_error(call, RPC_INVALID_PARAMS, "device '%s' is a %s device, not an NVMe "
			  "controller", e->name, e->cfg.spec.type);
		return NULL;
	}
	if (e->removing) {
		rpc_error(call, RPC_ERR_BUSY, "device '%s' is being removed", e->name);
		return NULL;
	}
	return e;
}

/* The runtime's JSON of a device, parsed; NULL when it has none (logged at debug). */
static struct json_object *runtime_json(struct daemon *d, struct dev_entry *e)
{
	char *s = e->removing ? NULL : vfurt_runtime_device_json(d->rt, e->dev);
	struct json_object *o;

	if (!s)
		return NULL;
	o = json_tokener_parse(s);
	free(s);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

/* ---- device_add, device_remove, device_list, device_get ------------------ */

static void m_device_add(void *ctx, struct json_object *params, struct rpc_call *call)
{
	struct daemon *d = ctx;
	struct vfurt_config_device cd;
	struct dev_entry *e;
	struct json_object *r;
	struct json_object *v;
	char err[512];
	int rc;

	memset(&cd, 0, sizeof(cd));
	if (json_object_object_get_ex(params, "spec", &v)) {
		static const char *const known[] = { "spec", NULL };
		const char *spec;

		if (!check_keys(params, known, call) ||
		    !get_str(params, "spec", true, 4096, &spec, call))
			return;
		if (vfr_devspec_parse(spec, &cd.spec, err, sizeof(err)) ||
		    vfr_config_check_spec(&cd.spec, err, sizeof(err))) {
			rpc_error(call, RPC_INVALID_PARAMS, "spec: %s", err);
			return;
		}
	} else {
		rc = vfr_config_device_from_json(params, NULL, "", &cd, err, sizeof(err));
		if (rc) {
			rpc_error(call, rc == -ENOMEM ? RPC_INTERNAL_ERROR : RPC_INVALID_PARAMS,
				  "%s", err);
			return;
		}
	}
	cd.where[0] = '\0';
	rc = devtab_add(&d->devs, &cd, DEV_RPC, &e, err, sizeof(err));
	vfr_config_device_fini(&cd);
	if (rc) {
		const char *msg = !strncmp(err, ": ", 2) ? err + 2 : err;

		rpc_error(call, rc == -EEXIST ? RPC_ERR_EXISTS :
			  rc == -EINVAL ? RPC_INVALID_PARAMS : RPC_ERR_FAILED, "%s", msg);
		return;
	}
	vfurt_logf(&d->log, VFURT_LOG_INFO, "%s: added on %s (worker %d) by a control client",
		   e->name, e->socket, e->worker);
	r = json_object_new_object();
	json_object_object_add(r, "name", json_object_new_string(e->name));
	json_object_object_add(r, "socket", json_object_new_string(e->socket));
	json_object_object_add(r, "home_worker", json_object_new_int(e->worker));
	rpc_result(call, r);
}

static void m_device_remove(void *ctx, struct json_object *params, struct rpc_call *call)
{
	static const char *const known[] = { "name", "timeout_ms", NULL };
	struct daemon *d = ctx;
	uint32_t timeout = DEVTAB_REMOVE_TIMEOUT_MS;
	struct rpc_pending *p;
	struct dev_entry *e;
	int rc;

	if (!check_keys(params, known, call) ||
	    !get_u32(params, "timeout_ms", false, 0, DEVTAB_REMOVE_TIMEOUT_MAX_MS, &timeout, call))
		return;
	e = get_device(d, params, call);
	if (!e)
		return;
	if (e->removing) {
		rpc_error(call, RPC_ERR_BUSY, "device '%s' is already being removed", e->name);
		return;
	}
	p = rpc_defer(call);
	if (!p)
		return;
	rc = devtab_remove(&d->devs, e, timeout, p);
	if (rc)
		rpc_pending_error(p, rpc_code_for_errno(rc), "cannot remove '%s': %s", e->name,
				  strerror(-rc));
}

static void m_device_list(void *ctx, struct json_object *params, struct rpc_call *call)
{
	static const char *const known[] = { NULL };
	struct daemon *d = ctx;
	struct json_object *arr;

	if (!check_keys(params, known, call))
		return;
	arr = json_object_new_array();
	for (size_t i = 0; i < d->devs.n; i++) {
		struct dev_entry *e = d->devs.e[i];
		struct json_object *o = json_object_new_object();
		struct json_object *rj = runtime_json(d, e);
		struct json_object *c = NULL;

		json_object_object_add(o, "name", json_object_new_string(e->name));
		json_object_object_add(o, "type", json_object_new_string(e->cfg.spec.type));
		json_object_object_add(o, "socket", json_object_new_string(e->socket));
		json_object_object_add(o, "home_worker", json_object_new_int(e->worker));
		if (rj && json_object_object_get_ex(rj, "connected", &c))
			json_object_object_add(o, "connected", json_object_get(c));
		else
			json_object_object_add(o, "connected", json_object_new_boolean(0));
		json_object_object_add(o, "removing", json_object_new_boolean(e->removing));
		json_object_object_add(o, "origin", json_object_new_string(devtab_origin_name(e->origin)));
		json_object_put(rj);
		json_object_array_add(arr, o);
	}
	rpc_result(call, arr);
}

/* The namespaces of an NVMe controller as an array, or NULL with an error in err. */
static struct json_object *ns_array(struct dev_entry *e, char *err, size_t errlen)
{
	struct vfurt_nvme_ns_info info[VFURT_NVME_MAX_NS];
	struct json_object *arr;
	int n;

	for (uint32_t i = 0; i < VFURT_NVME_MAX_NS; i++)
		info[i] = (struct vfurt_nvme_ns_info){ .info_size = sizeof(info[i]) };
	n = vfurt_nvme_ns_list(e->dev, info, VFURT_NVME_MAX_NS);
	if (n < 0) {
		snprintf(err, errlen, "%s", strerror(-n));
		return NULL;
	}
	arr = json_object_new_array();
	for (int i = 0; i < n && i < (int)VFURT_NVME_MAX_NS; i++) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "nsid", json_object_new_int((int)info[i].nsid));
		json_object_object_add(o, "block_size", json_object_new_int((int)info[i].block_size));
		json_object_object_add(o, "num_blocks", json_object_new_int64((int64_t)info[i].num_blocks));
		json_object_object_add(o, "size", json_object_new_int64(
			(int64_t)(info[i].num_blocks * info[i].block_size)));
		if (info[i].bdev)
			json_object_object_add(o, "backend",
					       json_object_new_string(vfurt_bdev_name(info[i].bdev)));
		json_object_array_add(arr, o);
	}
	return arr;
}

static void m_device_get(void *ctx, struct json_object *params, struct rpc_call *call)
{
	static const char *const known[] = { "name", NULL };
	struct daemon *d = ctx;
	struct json_object *r;
	struct json_object *cfg;
	struct dev_entry *e;

	if (!check_keys(params, known, call))
		return;
	e = get_device(d, params, call);
	if (!e)
		return;
	r = runtime_json(d, e);
	if (!r) {
		r = json_object_new_object();
		json_object_object_add(r, "name", json_object_new_string(e->name));
		json_object_object_add(r, "socket", json_object_new_string(e->socket));
		json_object_object_add(r, "home_worker", json_object_new_int(e->worker));
		json_object_object_add(r, "connected", json_object_new_boolean(0));
	}
	json_object_object_add(r, "type", json_object_new_string(e->cfg.spec.type));
	json_object_object_add(r, "origin", json_object_new_string(devtab_origin_name(e->origin)));
	json_object_object_add(r, "removing", json_object_new_boolean(e->removing));
	cfg = devtab_entry_json(e);
	if (cfg)
		json_object_object_add(r, "config", cfg);
	if (!strcmp(e->cfg.spec.type, "nvme") && !e->removing) {
		char err[128];
		struct json_object *ns = ns_array(e, err, sizeof(err));

		if (ns)
			json_object_object_add(r, "namespaces", ns);
		else
			json_object_object_add(r, "namespaces_error", json_object_new_string(err));
	}
	rpc_result(call, r);
}

/* ---- NVMe namespaces ----------------------------------------------------- */

static void m_ns_add(void *ctx, struct json_object *params, struct rpc_call *call)
{
	struct daemon *d = ctx;
	struct vfurt_config_ns ns;
	struct vfurt_config_ns *grown;
	struct vfurt_bdev *b;
	struct dev_entry *e;
	char err[512];
	int rc;

	e = get_nvme(d, params, call);
	if (!e)
		return;
	if (vfr_config_ns_from_json(params, NULL, "name", &ns, err, sizeof(err))) {
		rpc_error(call, RPC_INVALID_PARAMS, "%s", err);
		return;
	}
	if (e->cfg.nns >= VFURT_CONFIG_NS_MAX) {
		rpc_error(call, RPC_ERR_FAILED, "device '%s' has %d namespaces added live already",
			  e->name, VFURT_CONFIG_NS_MAX);
		return;
	}
	{
		struct vfurt_bdev_spec_opts bo = { .opts_size = sizeof(bo), .spec = ns.backend,
						   .size_bytes = ns.size_bytes,
						   .block_size = ns.block_size,
						   .direct = (enum vfurt_bdev_direct)ns.direct };

		b = vfurt_bdev_spec_create(&bo, err, sizeof(err));
	}
	if (!b) {
		rpc_error(call, RPC_INVALID_PARAMS, "backend '%s': %s", ns.backend, err);
		return;
	}
	grown = realloc(e->cfg.ns, (e->cfg.nns + 1) * sizeof(*grown));
	if (!grown) {
		vfurt_bdev_destroy(b);
		rpc_error(call, RPC_INTERNAL_ERROR, "out of memory");
		return;
	}
	e->cfg.ns = grown;
	rc = vfurt_nvme_ns_add(e->dev, ns.nsid, b);
	if (rc < 0) {
		vfurt_bdev_destroy(b);
		rpc_error(call, rc == -EEXIST ? RPC_ERR_EXISTS : rpc_code_for_errno(rc),
			  "cannot add a namespace to '%s': %s%s", e->name, strerror(-rc),
			  rc == -EEXIST ? " (nsid in use)" : rc == -ENOSPC ? " (no free nsid)" : "");
		return;
	}
	ns.nsid = (uint32_t)rc;
	e->cfg.ns[e->cfg.nns++] = ns;
	vfurt_logf(&d->log, VFURT_LOG_INFO, "%s: namespace %d added (%s, %" PRIu64 " bytes)",
		   e->name, rc, ns.backend, ns.size_bytes);
	{
		struct json_object *r = json_object_new_object();

		json_object_object_add(r, "nsid", json_object_new_int(rc));
		rpc_result(call, r);
	}
}

/* Record a removal for config_save: a namespace added live is forgotten, one
 * of the spec's is listed in ns_remove. */
static void forget_ns(struct dev_entry *e, uint32_t nsid)
{
	for (uint32_t i = 0; i < e->cfg.nns; i++) {
		if (e->cfg.ns[i].nsid == nsid) {
			memmove(&e->cfg.ns[i], &e->cfg.ns[i + 1],
				(e->cfg.nns - i - 1) * sizeof(e->cfg.ns[0]));
			e->cfg.nns--;
			return;
		}
	}
	if (nsid >= 1 && nsid <= VFURT_CONFIG_NS_MAX) {
		e->cfg.ns_removed |= 1u << (nsid - 1);
		e->cfg.ns_resized[nsid - 1] = 0;
	}
}

static void m_ns_remove(void *ctx, struct json_object *params, struct rpc_call *call)
{
	static const char *const known[] = { "name", "nsid", NULL };
	struct daemon *d = ctx;
	struct dev_entry *e;
	uint32_t nsid = 0;
	int rc;

	if (!check_keys(params, known, call) ||
	    !get_u32(params, "nsid", true, 1, VFURT_NVME_MAX_NS, &nsid, call))
		return;
	e = get_nvme(d, params, call);
	if (!e)
		return;
	rc = vfurt_nvme_ns_remove(e->dev, nsid);
	if (rc) {
		rpc_error(call, rc == -ENOENT ? RPC_INVALID_PARAMS : rpc_code_for_errno(rc),
			  "cannot remove namespace %u of '%s': %s", nsid, e->name,
			  rc == -ENOENT ? "no such namespace" : strerror(-rc));
		return;
	}
	forget_ns(e, nsid);
	vfurt_logf(&d->log, VFURT_LOG_INFO, "%s: namespace %u removed", e->name, nsid);
	{
		struct json_object *r = json_object_new_object();

		json_object_object_add(r, "removed", json_object_new_int((int)nsid));
		rpc_result(call, r);
	}
}

static void m_ns_resize(void *ctx, struct json_object *params, struct rpc_call *call)
{
	static const char *const known[] = { "name", "nsid", "size", NULL };
	struct vfurt_nvme_ns_info info[VFURT_NVME_MAX_NS];
	struct daemon *d = ctx;
	struct dev_entry *e;
	struct json_object *v;
	uint32_t nsid = 0;
	uint32_t bs = 0;
	uint64_t size;
	char val[64];
	int n;
	int rc;

	if (!check_keys(params, known, call) ||
	    !get_u32(params, "nsid", true, 1, VFURT_NVME_MAX_NS, &nsid, call))
		return;
	if (!json_object_object_get_ex(params, "size", &v)) {
		rpc_error(call, RPC_INVALID_PARAMS, "missing parameter 'size'");
		return;
	}
	if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0)
		snprintf(val, sizeof(val), "%" PRId64, json_object_get_int64(v));
	else if (json_object_is_type(v, json_type_string) && json_object_get_string_len(v) < 63)
		snprintf(val, sizeof(val), "%s", json_object_get_string(v));
	else
		val[0] = '\0';
	if (vfr_devspec_parse_size(val, &size) || size == 0) {
		rpc_error(call, RPC_INVALID_PARAMS, "parameter 'size' must be a size like 512M or 1G "
			  "(a string with a k, M, G or T suffix, or a positive integer)");
		return;
	}
	e = get_nvme(d, params, call);
	if (!e)
		return;
	for (uint32_t i = 0; i < VFURT_NVME_MAX_NS; i++)
		info[i] = (struct vfurt_nvme_ns_info){ .info_size = sizeof(info[i]) };
	n = vfurt_nvme_ns_list(e->dev, info, VFURT_NVME_MAX_NS);
	if (n < 0) {
		rpc_error(call, rpc_code_for_errno(n), "cannot list the namespaces of '%s': %s",
			  e->name, strerror(-n));
		return;
	}
	for (int i = 0; i < n && i < (int)VFURT_NVME_MAX_NS; i++)
		if (info[i].nsid == nsid)
			bs = info[i].block_size;
	if (!bs) {
		rpc_error(call, RPC_INVALID_PARAMS, "device '%s' has no namespace %u", e->name, nsid);
		return;
	}
	if (size % bs) {
		rpc_error(call, RPC_INVALID_PARAMS, "parameter 'size': %" PRIu64 " bytes is not a "
			  "multiple of the block size %u", size, bs);
		return;
	}
	rc = vfurt_nvme_ns_resize(e->dev, nsid, size / bs);
	if (rc) {
		rpc_error(call, rpc_code_for_errno(rc), "cannot resize namespace %u of '%s': %s",
			  nsid, e->name, strerror(-rc));
		return;
	}
	{
		bool live = false;

		for (uint32_t i = 0; i < e->cfg.nns; i++) {
			if (e->cfg.ns[i].nsid == nsid) {
				e->cfg.ns[i].size_bytes = size;
				live = true;
			}
		}
		if (!live) /* one of the spec's: config_save lists it in ns_resize */
			e->cfg.ns_resized[nsid - 1] = size;
	}
	vfurt_logf(&d->log, VFURT_LOG_INFO, "%s: namespace %u resized to %" PRIu64 " bytes",
		   e->name, nsid, size);
	{
		struct json_object *r = json_object_new_object();

		json_object_object_add(r, "nsid", json_object_new_int((int)nsid));
		json_object_object_add(r, "size", json_object_new_int64((int64_t)size));
		json_object_object_add(r, "num_blocks", json_object_new_int64((int64_t)(size / bs)));
		rpc_result(call, r);
	}
}

/* ---- runtime_stats, log_set_level, config_save -------------------------- */

static void m_stats(void *ctx, struct json_object *params, struct rpc_call *call)
{
	static const char *const known[] = { NULL };
	struct daemon *d = ctx;
	struct json_object *o;
	char *s;

	if (!check_keys(params, known, call))
		return;
	s = vfurt_runtime_stats_json(d->rt);
	if (!s) {
		rpc_error(call, RPC_INTERNAL_ERROR, "no statistics: %s", strerror(errno));
		return;
	}
	o = json_tokener_parse(s);
	free(s);
	if (!o) {
		rpc_error(call, RPC_INTERNAL_ERROR, "the statistics are not valid JSON");
		return;
	}
	rpc_result(call, o);
}

static void m_log_level(void *ctx, struct json_object *params, struct rpc_call *call)
{
	static const char *const known[] = { "level", NULL };
	struct daemon *d = ctx;
	struct json_object *r;
	const char *s;
	int prev = dlog_level(&d->dlog);
	int level;

	if (!check_keys(params, known, call) || !get_str(params, "level", true, 16, &s, call))
		return;
	if (vfr_config_parse_log_level(s, &level)) {
		rpc_error(call, RPC_INVALID_PARAMS, "parameter 'level': '%s': expected error, warn, "
			  "info or debug", s);
		return;
	}
	dlog_set_level(&d->dlog, level);
	d->cfg.log_level = level;
	d->cfg.has_log_level = true;
	vfurt_logf(&d->log, VFURT_LOG_WARN, "log level %s (was %s), set by a control client",
		   dlog_level_name(level), dlog_level_name(prev));
	r = json_object_new_object();
	json_object_object_add(r, "level", json_object_new_string(dlog_level_name(level)));
	json_object_object_add(r, "previous", json_object_new_string(dlog_level_name(prev)));
	rpc_result(call, r);
}

static void m_config_save(void *ctx, struct json_object *params, struct rpc_call *call)
{
	static const char *const known[] = { "path", NULL };
	struct daemon *d = ctx;
	struct json_object *r;
	const char *path;
	char err[512];
	int n;

	if (!check_keys(params, known, call) ||
	    !get_str(params, "path", false, PATH_MAX - 32, &path, call))
		return;
	if (!path)
		path = d->config_path;
	if (!path || !*path) {
		rpc_error(call, RPC_INVALID_PARAMS, "missing parameter 'path' (the daemon was started "
			  "without --config)");
		return;
	}
	n = daemon_config_save(d, path, err, sizeof(err));
	if (n < 0) {
		rpc_error(call, RPC_ERR_FAILED, "%s", err);
		return;
	}
	vfurt_logf(&d->log, VFURT_LOG_INFO, "configuration saved to %s (%d devices)", path, n);
	r = json_object_new_object();
	json_object_object_add(r, "path", json_object_new_string(path));
	json_object_object_add(r, "devices", json_object_new_int(n));
	rpc_result(call, r);
}

static void m_upgrade(void *ctx, struct json_object *params, struct rpc_call *call)
{
	static const char *const known[] = { "exec", "timeout_ms", NULL };
	struct daemon *d = ctx;
	uint32_t timeout_ms = UPGRADE_TIMEOUT_MS;
	struct json_object *r = NULL;
	const char *exec = NULL;
	char err[512];
	int rc;

	if (!check_keys(params, known, call) ||
	    !get_str(params, "exec", false, PATH_MAX - 1, &exec, call) ||
	    !get_u32(params, "timeout_ms", false, 1, UPGRADE_TIMEOUT_MAX_MS, &timeout_ms, call))
		return;
	rc = daemon_upgrade(d, exec, timeout_ms, &r, err, sizeof(err));
	if (rc) {
		rpc_error(call, RPC_ERR_UPGRADE, "upgrade failed: %s; still serving (pid %ld)", err,
			  (long)getpid());
		return;
	}
	rpc_result(call, r);
}

const struct rpc_method vfr_daemon_methods[] = {
	{ "device_add", m_device_add },
	{ "device_remove", m_device_remove },
	{ "device_list", m_device_list },
	{ "device_get", m_device_get },
	{ "nvme_ns_add", m_ns_add },
	{ "nvme_ns_remove", m_ns_remove },
	{ "nvme_ns_resize", m_ns_resize },
	{ "runtime_stats", m_stats },
	{ "log_set_level", m_log_level },
	{ "config_save", m_config_save },
	{ "upgrade", m_upgrade },
	{ NULL, NULL },
};
