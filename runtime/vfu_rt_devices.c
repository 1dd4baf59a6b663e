/* vfu-rt's device table: add by spec, asynchronous removal completed on the main loop, saving. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <json-c/json.h>

#include <vfurt/bdev.h>
#include <vfurt/state.h>
#include <vfurt/nvme.h>

#include "devspec.h"
#include "vfu_rt_devices.h"
#include "vfu_rt_rpc.h"

int devtab_init(struct devtab *t, struct vfurt_runtime *rt, const struct vfurt_log *log,
		const char *ctl_socket)
{
	memset(t, 0, sizeof(*t));
	t->rt = rt;
	t->log = log;
	t->ctl_socket = ctl_socket;
	t->nworkers = vfurt_runtime_worker_count(rt);
	for (uint32_t i = 0; i < t->nworkers && i < VFURT_MAX_CPUS; i++)
		t->cpus[i] = vfurt_worker_cpu(vfurt_runtime_worker(rt, i));
	t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->efd < 0)
		return -errno;
	t->e = calloc(DEVTAB_MAX, sizeof(*t->e));
	if (!t->e) {
		close(t->efd);
		t->efd = -1;
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

static void entry_free(struct dev_entry *e)
{
	if (e->waiter)
		rpc_pending_error(e->waiter, RPC_ERR_SHUTTING_DOWN, "the daemon is shutting down");
	if (e->readd) {
		vfr_config_device_fini(e->readd);
		free(e->readd);
	}
	if (e->unserved)
		vfurt_dev_destroy(e->dev); /* built, never handed to the runtime */
	vfr_config_device_fini(&e->cfg);
	vfr_config_device_fini(&e->orig);
	free(e);
}

void devtab_fini(struct devtab *t)
{
	for (size_t i = 0; i < t->n; i++)
		entry_free(t->e[i]);
	free(t->e);
	t->e = NULL;
	t->n = 0;
	if (t->efd >= 0)
		close(t->efd);
	t->efd = -1;
	pthread_mutex_destroy(&t->lock);
}

int devtab_fd(const struct devtab *t)
{
	return t->efd;
}

struct dev_entry *devtab_find(const struct devtab *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->e[i]->name, name))
			return t->e[i];
	return NULL;
}

const char *devtab_how_name(enum vfurt_remove_how how)
{
	switch (how) {
	case VFURT_REMOVE_IDLE: return "idle";
	case VFURT_REMOVE_RELEASED: return "released";
	case VFURT_REMOVE_FORCED: return "forced";
	}
	return "forced";
}

const char *devtab_origin_name(enum dev_origin o)
{
	switch (o) {
	case DEV_CMDLINE: return "command line";
	case DEV_FILE: return "config file";
	case DEV_RPC: return "rpc";
	}
	return "rpc";
}

/* The socket's basename without ".sock" (at least one character). */
static void default_name(const char *socket, char *out, size_t len)
{
	const char *b = strrchr(socket, '/');
	size_t n;

	b = b ? b + 1 : socket;
	n = strlen(b);
	if (n > 5 && !strcmp(b + n - 5, ".sock"))
		n -= 5;
	if (n == 0) {
		b = "dev";
		n = 3;
	}
	snprintf(out, len, "%.*s", (int)n, b);
}

/* A name others can type: printable ASCII without spaces, quotes or slashes. */
static bool name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f || *s == '/' || *s == '"' || *s == '\\')
			return false;
	return true;
}

static bool ns_changed(const struct vfurt_config_device *d)
{
	if (d->nns || d->ns_removed)
		return true;
	for (uint32_t i = 0; i < VFURT_CONFIG_NS_MAX; i++)
		if (d->ns_resized[i])
			return true;
	return false;
}

/* The block size of namespace nsid of dev, or 0. */
static uint32_t ns_block_size(struct vfurt_dev *dev, uint32_t nsid)
{
	struct vfurt_nvme_ns_info info[VFURT_NVME_MAX_NS];
	int n;

	for (uint32_t i = 0; i < VFURT_NVME_MAX_NS; i++)
		info[i] = (struct vfurt_nvme_ns_info){ .info_size = sizeof(info[i]) };
	n = vfurt_nvme_ns_list(dev, info, VFURT_NVME_MAX_NS);
	for (int i = 0; i < n && i < (int)VFURT_NVME_MAX_NS; i++)
		if (info[i].nsid == nsid)
			return info[i].block_size;
	return 0;
}

/* Apply d's namespace changes to a controller that is not served yet: the
 * spec's namespaces removed and resized, then the extra ones attached. */
static int add_namespaces(struct vfurt_dev *dev, const struct vfurt_config_device *d, char *err,
			  size_t errlen)
{
	for (uint32_t nsid = 1; nsid <= VFURT_CONFIG_NS_MAX; nsid++) {
		uint64_t bytes = d->ns_resized[nsid - 1];
		uint32_t bs;
		int rc;

		if (d->ns_removed & (1u << (nsid - 1))) {
			rc = vfurt_nvme_ns_remove(dev, nsid);
			if (rc) {
				snprintf(err, errlen, "ns_remove: namespace %u: %s", nsid,
					 rc == -ENOENT ? "no such namespace" : strerror(-rc));
				return -EINVAL;
			}
			continue;
		}
		if (!bytes)
			continue;
		bs = ns_block_size(dev, nsid);
		if (!bs || bytes % bs) {
			snprintf(err, errlen, "ns_resize: namespace %u: %s", nsid,
				 bs ? "size is not a multiple of its block size" : "no such namespace");
			return -EINVAL;
		}
		rc = vfurt_nvme_ns_resize(dev, nsid, bytes / bs);
		if (rc) {
			snprintf(err, errlen, "ns_resize: namespace %u: %s", nsid, strerror(-rc));
			return rc;
		}
	}
	for (uint32_t i = 0; i < d->nns; i++) {
		const struct vfurt_config_ns *ns = &d->ns[i];
		struct vfurt_bdev_spec_opts bo = { .opts_size = sizeof(bo), .spec = ns->backend,
						   .size_bytes = ns->size_bytes,
						   .block_size = ns->block_size,
						   .direct = (enum vfurt_bdev_direct)ns->direct };
		char why[200];
		struct vfurt_bdev *b = vfurt_bdev_spec_create(&bo, why, sizeof(why));
		int rc;

		if (!b) {
			snprintf(err, errlen, "ns[%u]: backend='%s': %s", i, ns->backend, why);
			return -EINVAL;
		}
		rc = vfurt_nvme_ns_add(dev, ns->nsid, b);
		if (rc < 0) {
			vfurt_bdev_destroy(b);
			snprintf(err, errlen, "ns[%u]: cannot add namespace %u: %s", i, ns->nsid,
				 strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int add_entry(struct devtab *t, const struct vfurt_config_device *d, enum dev_origin origin,
		     struct dev_entry **out, char *err, size_t errlen, bool *placed);

int devtab_add(struct devtab *t, const struct vfurt_config_device *d, enum dev_origin origin,
	       struct dev_entry **out, char *err, size_t errlen)
{
	char why[512];
	bool placed = false;
	int rc = add_entry(t, d, origin, out, why, sizeof(why), &placed);

	if (rc && (placed || !d->where[0]))
		snprintf(err, errlen, "%s", why);
	else if (rc)
		snprintf(err, errlen, "%s: %s", d->where, why);
	return rc;
}

void devtab_spec_name(const struct devspec *spec, char *out, size_t len)
{
	const char *name = vfr_devspec_peek(spec, "name");
	const char *socket = vfr_devspec_peek(spec, "socket");

	if (name)
		snprintf(out, len, "%s", name);
	else
		default_name(socket ? socket : "", out, len);
}

struct dev_entry *devtab_find_socket(const struct devtab *t, const char *socket)
{
	char key[PATH_MAX], other[PATH_MAX];

	vfr_config_socket_key(socket, key, sizeof(key));
	for (size_t i = 0; i < t->n; i++) {
		vfr_config_socket_key(t->e[i]->socket, other, sizeof(other));
		if (!strcmp(key, other))
			return t->e[i];
	}
	return NULL;
}

static int add_entry(struct devtab *t, const struct vfurt_config_device *d, enum dev_origin origin,
		     struct dev_entry **out, char *err, size_t errlen, bool *placed)
{
	char key[PATH_MAX], other[PATH_MAX], base[DEVSPEC_VAL_LEN];
	struct vfurt_config_place place;
	struct vfurt_config_device work;
	struct dev_entry *e;
	struct vfurt_dev *dev;
	const char *name;
	const char *socket = vfr_devspec_peek(&d->spec, "socket");
	int rc;

	if (!socket) {
		snprintf(err, errlen, "missing socket");
		return -EINVAL;
	}
	if (ns_changed(d) && strcmp(d->spec.type, "nvme")) {
		snprintf(err, errlen, "ns: only NVMe controllers have namespaces");
		return -EINVAL;
	}
	if (t->n == DEVTAB_MAX) {
		snprintf(err, errlen, "too many devices (at most %d)", DEVTAB_MAX);
		return -ENOSPC;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	e->tab = t;
	rc = vfr_config_device_copy(&e->cfg, d);
	if (rc) {
		snprintf(err, errlen, "out of memory");
		goto err_free;
	}
	name = vfr_devspec_peek(&e->cfg.spec, "name");
	if (name) {
		if (!name_ok(name)) {
			snprintf(err, errlen, "name='%s': use printable characters without spaces, "
				 "quotes, backslashes or slashes", name);
			rc = -EINVAL;
			goto err_fini;
		}
		if (devtab_find(t, name)) {
			snprintf(err, errlen, "name '%s' is already used by another device", name);
			rc = -EEXIST;
			goto err_fini;
		}
		snprintf(e->name, sizeof(e->name), "%s", name);
	} else {
		default_name(socket, base, sizeof(base));
		snprintf(e->name, sizeof(e->name), "%s", base);
		/* two sockets with one basename in different directories */
		for (int k = 2; devtab_find(t, e->name) && k < 1000; k++)
			snprintf(e->name, sizeof(e->name), "%.200s-%d", base, k);
		if (devtab_find(t, e->name) || e->cfg.spec.nkeys == DEVSPEC_MAX_KEYS) {
			snprintf(err, errlen, "cannot name the device: give it a name=");
			rc = -EEXIST;
			goto err_fini;
		}
		/* the device logs under the name the table knows it by */
		snprintf(e->cfg.spec.kv[e->cfg.spec.nkeys].key, DEVSPEC_KEY_LEN, "name");
		snprintf(e->cfg.spec.kv[e->cfg.spec.nkeys].val, DEVSPEC_VAL_LEN, "%s", e->name);
		e->cfg.spec.nkeys++;
	}
	vfr_config_socket_key(socket, key, sizeof(key));
	if (t->ctl_socket) {
		vfr_config_socket_key(t->ctl_socket, other, sizeof(other));
		if (!strcmp(key, other)) {
			snprintf(err, errlen, "socket path %s is the control socket", socket);
			rc = -EEXIST;
			goto err_fini;
		}
	}
	for (size_t i = 0; i < t->n; i++) {
		vfr_config_socket_key(t->e[i]->socket, other, sizeof(other));
		if (!strcmp(key, other)) {
			snprintf(err, errlen, "socket path %s is already used by device %s%s", socket,
				 t->e[i]->name, t->e[i]->removing ? " (being removed)" : "");
			rc = -EEXIST;
			goto err_fini;
		}
	}
	/* placement and the device type read (and mark) keys of a scratch copy */
	work = e->cfg;
	for (size_t i = 0; i < work.spec.nkeys; i++)
		work.spec.kv[i].used = 0;
	rc = vfr_config_place_device(&work, t->cpus, t->nworkers, &place, err, errlen);
	if (rc) {
		*placed = d->where[0] != '\0'; /* the message names where already */
		goto err_fini;
	}
	e->worker = place.worker >= 0 ? place.worker : (int)(t->next_home % t->nworkers);
	if (t->log->fn == dlog_sink) {
		struct vfurt_log l = dlog_tagged(&e->tag, t->log->arg, e->worker);

		dev = vfr_devspec_create(&work.spec, &l, err, errlen);
	} else {
		dev = vfr_devspec_create(&work.spec, t->log, err, errlen);
	}
	if (!dev) {
		rc = -EINVAL;
		goto err_fini;
	}
	rc = add_namespaces(dev, &e->cfg, err, errlen);
	if (rc)
		goto err_destroy;
	rc = t->defer_serve ? 0 : vfurt_runtime_add_device(t->rt, dev, place.socket, place.mode,
							   e->worker);
	e->unserved = t->defer_serve;
	if (rc) {
		snprintf(err, errlen, "cannot listen on %s: %s", place.socket,
			 rc == -EADDRINUSE ? "another server is listening there" :
			 rc == -EEXIST ? "a file that is not a socket exists there" : strerror(-rc));
		if (rc == -EEXIST) /* not a name or socket of ours: -EEXIST means that */
			rc = -ENOTSOCK;
		goto err_destroy;
	}
	if (vfr_config_device_copy(&e->orig, &e->cfg)) {
		/* served already: without the copy SIGHUP sees a changed device, no worse */
		memset(&e->orig, 0, sizeof(e->orig));
	}
	if (place.worker < 0)
		t->next_home++;
	e->dev = dev;
	e->origin = origin;
	e->socket = vfr_devspec_peek(&e->cfg.spec, "socket");
	t->e[t->n++] = e;
	if (out)
		*out = e;
	return 0;

err_destroy:
	vfurt_dev_destroy(dev);
err_fini:
	vfr_config_device_fini(&e->cfg);
err_free:
	free(e);
	return rc;
}

/* On a worker thread (or the stopping thread): hand the entry to the main loop. */
static void remove_done(void *arg, enum vfurt_remove_how how)
{
	struct dev_entry *e = arg;
	struct devtab *t = e->tab;
	uint64_t one = 1;

	pthread_mutex_lock(&t->lock);
	e->done = true;
	e->how = how;
	e->done_next = t->done_list;
	t->done_list = e;
	pthread_mutex_unlock(&t->lock);
	(void)!write(t->efd, &one, sizeof(one));
}

int devtab_remove(struct devtab *t, struct dev_entry *e, uint32_t timeout_ms,
		  struct rpc_pending *waiter)
{
	int rc;

	if (e->removing)
		return -EALREADY;
	rc = vfurt_runtime_remove_device(t->rt, e->dev, timeout_ms, remove_done, e);
	if (rc)
		return rc;
	e->removing = true;
	e->waiter = waiter;
	vfurt_logf(t->log, VFURT_LOG_INFO, "%s: removing (%s device on %s, timeout %u ms)",
		   e->name, devtab_origin_name(e->origin), e->socket, timeout_ms);
	return 0;
}

static void entry_drop(struct devtab *t, struct dev_entry *e)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->e[i] == e) {
			memmove(&t->e[i], &t->e[i + 1], (t->n - i - 1) * sizeof(t->e[0]));
			t->n--;
			return;
		}
	}
}

void devtab_reap(struct devtab *t)
{
	struct dev_entry *list;
	uint64_t v;

	(void)!read(t->efd, &v, sizeof(v));
	pthread_mutex_lock(&t->lock);
	list = t->done_list;
	t->done_list = NULL;
	pthread_mutex_unlock(&t->lock);
	while (list) {
		struct dev_entry *e = list;
		struct vfurt_config_device *readd = e->readd;
		enum dev_origin origin = e->readd_origin;

		list = e->done_next;
		vfurt_logf(t->log, VFURT_LOG_INFO, "%s: removed (%s)", e->name,
			   devtab_how_name(e->how));
		entry_drop(t, e);
		if (e->waiter) {
			struct json_object *r = json_object_new_object();

			if (r) {
				json_object_object_add(r, "removed", json_object_new_string(e->name));
				json_object_object_add(r, "how",
						       json_object_new_string(devtab_how_name(e->how)));
			}
			rpc_pending_result(e->waiter, r);
			e->waiter = NULL;
		}
		e->readd = NULL;
		entry_free(e);
		if (readd) {
			char err[512];
			struct dev_entry *n;
			int rc = t->stopping ? -ESHUTDOWN :
				 devtab_add(t, readd, origin, &n, err, sizeof(err));

			if (rc == -ESHUTDOWN)
				snprintf(err, sizeof(err), "shutting down");
			if (rc)
				vfurt_logf(t->log, VFURT_LOG_ERR, "%s: cannot add: %s", readd->where, err);
			else
				vfurt_logf(t->log, VFURT_LOG_INFO, "%s: added %s on %s (worker %d)",
					   readd->where, n->name, n->socket, n->worker);
			vfr_config_device_fini(readd);
			free(readd);
		}
	}
}

struct json_object *devtab_entry_json(const struct dev_entry *e)
{
	static const char *const direct[] = { "off", "on", "try" };
	struct json_object *o = json_object_new_object();
	struct json_object *ns;

	if (!o)
		return NULL;
	json_object_object_add(o, "type", json_object_new_string(e->cfg.spec.type));
	for (size_t i = 0; i < e->cfg.spec.nkeys; i++)
		json_object_object_add(o, e->cfg.spec.kv[i].key,
				       json_object_new_string(e->cfg.spec.kv[i].val));
	if (e->cfg.ns_removed) {
		struct json_object *rm = json_object_new_array();

		for (uint32_t i = 0; rm && i < VFURT_CONFIG_NS_MAX; i++)
			if (e->cfg.ns_removed & (1u << i))
				json_object_array_add(rm, json_object_new_int((int)i + 1));
		json_object_object_add(o, "ns_remove", rm);
	}
	for (uint32_t i = 0; i < VFURT_CONFIG_NS_MAX; i++) {
		struct json_object *rs = NULL;
		struct json_object *j;

		if (!e->cfg.ns_resized[i])
			continue;
		if (!json_object_object_get_ex(o, "ns_resize", &rs)) {
			rs = json_object_new_array();
			json_object_object_add(o, "ns_resize", rs);
		}
		j = json_object_new_object();
		json_object_object_add(j, "nsid", json_object_new_int((int)i + 1));
		json_object_object_add(j, "size", json_object_new_int64((int64_t)e->cfg.ns_resized[i]));
		json_object_array_add(rs, j);
	}
	if (!e->cfg.nns)
		return o;
	ns = json_object_new_array();
	if (!ns) {
		json_object_put(o);
		return NULL;
	}
	for (uint32_t i = 0; i < e->cfg.nns; i++) {
		const struct vfurt_config_ns *n = &e->cfg.ns[i];
		struct json_object *j = json_object_new_object();

		if (!j)
			continue;
		json_object_object_add(j, "nsid", json_object_new_int((int)n->nsid));
		json_object_object_add(j, "backend", json_object_new_string(n->backend));
		if (n->size_bytes)
			json_object_object_add(j, "size", json_object_new_int64((int64_t)n->size_bytes));
		json_object_object_add(j, "lba", json_object_new_int((int)n->block_size));
		if (n->direct >= 0 && n->direct <= 2 && n->direct)
			json_object_object_add(j, "direct", json_object_new_string(direct[n->direct]));
		json_object_array_add(ns, j);
	}
	json_object_object_add(o, "ns", ns);
	return o;
}

int devtab_restore(struct devtab *t, const struct vfurt_state_cur *devs, char *err,
		   size_t errlen)
{
	struct vfurt_state_cur it = *devs, sub, rtc;
	size_t used = 0;
	uint32_t tag;
	int rc;

	while ((rc = vfurt_state_next_sub(&it, &tag, &sub)) == 1) {
		char name[DEVSPEC_VAL_LEN];
		struct dev_entry *e;
		uint32_t origin;

		if (tag != (DEVTAB_S_DEV | VFURT_STATE_SECTION))
			continue;
		if (vfurt_state_get_str(&sub, DEVTAB_T_NAME, name, sizeof(name)) ||
		    vfurt_state_sub(&sub, DEVTAB_S_RT, &rtc)) {
			snprintf(err, errlen, "a device of the image has no name or state");
			return -EBADMSG;
		}
		e = devtab_find(t, name);
		if (!e || !e->unserved) {
			snprintf(err, errlen, "device %s of the image is not in the configuration%s",
				 name, e ? " twice" : "");
			return -EBADMSG;
		}
		rc = vfurt_runtime_restore_device(t->rt, e->dev, &rtc, err, errlen);
		if (rc)
			return rc;
		e->unserved = false;
		if (vfurt_state_get_u32(&sub, DEVTAB_T_ORIGIN, &origin) == 0 && origin <= DEV_RPC)
			e->origin = (enum dev_origin)origin;
		used++;
	}
	if (rc < 0) {
		snprintf(err, errlen, "the image's device list is malformed");
		return rc;
	}
	for (size_t i = 0; i < t->n; i++) {
		if (t->e[i]->unserved) {
			snprintf(err, errlen, "device %s has no state in the image", t->e[i]->name);
			return -EBADMSG;
		}
	}
	t->defer_serve = false;
	return used == t->n ? 0 : -EBADMSG;
}
