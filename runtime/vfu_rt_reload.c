/* vfu-rt's configuration at run time: config_save writes it, SIGHUP reads the --config file again. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <json-c/json.h>

#include "conn_limits.h"
#include "vfu_rt_daemon.h"

/* ---- config_save ---------------------------------------------------------- */

static struct json_object *settings_json(const struct daemon *d)
{
	struct json_object *o = json_object_new_object();
	struct json_object *lim = json_object_new_object();

	if (d->cfg.cores)
		json_object_object_add(o, "cores", json_object_new_string(d->cfg.cores));
	json_object_object_add(o, "poll", json_object_new_string(
		d->cfg.poll_mode == VFURT_POLL_BUSY ? "busy" : "adaptive"));
	json_object_object_add(o, "log_level",
			       json_object_new_string(dlog_level_name(dlog_level(&d->dlog))));
	if (d->cfg.has_poll_sleep)
		json_object_object_add(o, "poll_sleep_us", json_object_new_int64(d->cfg.poll_sleep_us));
	if (d->cfg.has_stats_interval)
		json_object_object_add(o, "stats_interval",
				       json_object_new_int64(d->cfg.stats_interval_s));
	if (d->cfg.control_socket)
		json_object_object_add(o, "control_socket",
				       json_object_new_string(d->cfg.control_socket));
	for (const struct vfurt_limit_def *l = vfr_limit_defs; l->key; l++) {
		const char *f = (const char *)&d->cfg.conn + l->offset;
		long long v;

		if (l->is_int) {
			int x;

			memcpy(&x, f, sizeof(x));
			v = x;
		} else {
			uint32_t x;

			memcpy(&x, f, sizeof(x));
			v = x;
		}
		if (!v)
			continue;
		json_object_object_add(lim, l->key, json_object_new_int64(v));
	}
	if (json_object_object_length(lim))
		json_object_object_add(o, "limits", lim);
	else
		json_object_put(lim);
	return o;
}

/* Write all of s to fd. */
static int write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

int daemon_config_save(struct daemon *d, const char *path, char *err, size_t errlen)
{
	struct json_object *root = settings_json(d);
	struct json_object *devs = json_object_new_array();
	char tmp[PATH_MAX];
	const char *text;
	int n = 0;
	int fd;
	int rc;

	if (!root || !devs) {
		json_object_put(root);
		json_object_put(devs);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < d->devs.n; i++) {
		const struct dev_entry *e = d->devs.e[i];
		struct json_object *j = NULL;

		if (!e->removing) {
			j = devtab_entry_json(e);
		} else if (e->readd) { /* being replaced: save what replaces it */
			struct dev_entry tmpe = { .cfg = *e->readd };

			j = devtab_entry_json(&tmpe);
		}
		if (j) {
			json_object_array_add(devs, j);
			n++;
		}
	}
	json_object_object_add(root, "devices", devs);
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
						    JSON_C_TO_STRING_SPACED);
	if (strlen(text) + 1 > VFURT_CONFIG_FILE_MAX) {
		/* the daemon could not start from it */
		snprintf(err, errlen, "the configuration is %zu bytes, more than a config file may "
			 "have (%u)", strlen(text) + 1, VFURT_CONFIG_FILE_MAX);
		json_object_put(root);
		return -EFBIG;
	}
	rc = snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path);
	if (rc < 0 || (size_t)rc >= sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		json_object_put(root);
		return -ENAMETOOLONG;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create a file next to %s: %s", path, strerror(-rc));
		json_object_put(root);
		return rc;
	}
	rc = fchmod(fd, 0600) ? -errno : 0;
	if (!rc)
		rc = write_all(fd, text, strlen(text));
	if (!rc)
		rc = write_all(fd, "\n", 1);
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	json_object_put(root);
	if (rc) {
		unlink(tmp);
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
		return rc;
	}
	return n;
}

/* ---- SIGHUP --------------------------------------------------------------- */

int daemon_set_stats_interval(struct daemon *d, uint32_t seconds)
{
	struct itimerspec its = {
		.it_interval = { .tv_sec = seconds },
		.it_value = { .tv_sec = seconds },
	};

	if (d->stats_fd < 0) {
		if (!seconds)
			return 0;
		d->stats_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (d->stats_fd < 0)
			return -errno;
	}
	if (timerfd_settime(d->stats_fd, 0, &its, NULL) < 0)
		return -errno;
	for (uint32_t i = 0; d->prev && i < vfurt_runtime_worker_count(d->rt); i++) {
		d->prev[i].stats_size = sizeof(d->prev[i]);
		vfurt_runtime_get_worker_stats(d->rt, i, &d->prev[i]);
	}
	return 0;
}

/* Same type, keys (other than name, already matched) and namespaces. */
static bool same_device(const struct vfurt_config_device *a, const struct vfurt_config_device *b)
{
	size_t na = 0;
	size_t nb = 0;

	if (strcmp(a->spec.type, b->spec.type) || a->nns != b->nns ||
	    a->ns_removed != b->ns_removed ||
	    memcmp(a->ns_resized, b->ns_resized, sizeof(a->ns_resized)))
		return false;
	for (size_t i = 0; i < a->spec.nkeys; i++) {
		const char *v;

		if (!strcmp(a->spec.kv[i].key, "name"))
			continue;
		na++;
		v = vfr_devspec_peek(&b->spec, a->spec.kv[i].key);
		if (!v || strcmp(v, a->spec.kv[i].val))
			return false;
	}
	for (size_t i = 0; i < b->spec.nkeys; i++)
		nb += strcmp(b->spec.kv[i].key, "name") != 0;
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < a->nns; i++) {
		const struct vfurt_config_ns *x = &a->ns[i], *y = &b->ns[i];

		if (x->nsid != y->nsid || strcmp(x->backend, y->backend) ||
		    x->size_bytes != y->size_bytes || x->block_size != y->block_size ||
		    x->direct != y->direct)
			return false;
	}
	return true;
}

/*
 * Does the file's entry describe e? Either as it was added (namespaces added
 * live since do not make it a changed device) or as it is now (the file was
 * written by config_save): then that is what later reloads compare with.
 */
static bool same_as_running(struct dev_entry *e, const struct vfurt_config_device *nd)
{
	struct vfurt_config_device copy;

	if (same_device(&e->orig, nd))
		return true;
	if (!same_device(&e->cfg, nd))
		return false;
	if (!vfr_config_device_copy(&copy, &e->cfg)) {
		vfr_config_device_fini(&e->orig);
		e->orig = copy;
	}
	return true;
}

static struct vfurt_config_device *dup_device(const struct vfurt_config_device *d)
{
	struct vfurt_config_device *c = calloc(1, sizeof(*c));

	if (c && vfr_config_device_copy(c, d)) {
		free(c);
		c = NULL;
	}
	return c;
}

/* Add a new device now, or once the device holding its socket is removed. */
static void reload_add(struct daemon *d, const struct vfurt_config_device *nd)
{
	const char *sock = vfr_devspec_peek(&nd->spec, "socket");
	struct dev_entry *holder = sock ? devtab_find_socket(&d->devs, sock) : NULL;
	struct dev_entry *e;
	char err[512];

	if (holder && holder->removing && !holder->readd) {
		holder->readd = dup_device(nd);
		holder->readd_origin = DEV_FILE;
		if (holder->readd)
			vfurt_logf(&d->log, VFURT_LOG_INFO, "SIGHUP: %s: added once %s is removed "
				   "(it holds %s)", nd->where, holder->name, sock);
		return;
	}
	if (devtab_add(&d->devs, nd, DEV_FILE, &e, err, sizeof(err)))
		vfurt_logf(&d->log, VFURT_LOG_ERR, "SIGHUP: cannot add: %s", err);
	else
		vfurt_logf(&d->log, VFURT_LOG_INFO, "SIGHUP: %s: added %s on %s (worker %d)",
			   nd->where, e->name, e->socket, e->worker);
}

static void reload_remove(struct daemon *d, struct dev_entry *e, struct vfurt_config_device *readd,
			  const char *why)
{
	int rc;

	e->readd = readd;
	e->readd_origin = DEV_FILE;
	rc = devtab_remove(&d->devs, e, DEVTAB_REMOVE_TIMEOUT_MS, NULL);
	if (rc) {
		vfurt_logf(&d->log, VFURT_LOG_ERR, "SIGHUP: %s (%s): cannot remove: %s", e->name,
			   why, strerror(-rc));
		e->readd = NULL;
		if (readd) {
			vfr_config_device_fini(readd);
			free(readd);
		}
		return;
	}
	vfurt_logf(&d->log, VFURT_LOG_INFO, "SIGHUP: %s: %s", e->name, why);
}

static void reload_settings(struct daemon *d, const struct vfurt_config *nc)
{
	const char *cores = nc->cores ? nc->cores : "0";
	const char *now = d->cfg.cores ? d->cfg.cores : "0";

	if (!d->cl_cores && strcmp(cores, now))
		vfurt_logf(&d->log, VFURT_LOG_WARN, "SIGHUP: cores \"%s\" ignored: the workers "
			   "cannot change while running (still %s; restart to apply)", cores, now);
	if (!d->cl_poll && nc->poll_mode != d->cfg.poll_mode)
		vfurt_logf(&d->log, VFURT_LOG_WARN, "SIGHUP: poll ignored: cannot change while "
			   "running (restart to apply)");
	if (!d->cl_poll_sleep && nc->has_poll_sleep &&
	    (!d->cfg.has_poll_sleep || nc->poll_sleep_us != d->cfg.poll_sleep_us))
		vfurt_logf(&d->log, VFURT_LOG_WARN, "SIGHUP: poll_sleep_us ignored: cannot change "
			   "while running (restart to apply)");
	if (!d->cl_limits && memcmp(&nc->conn, &d->cfg.conn, sizeof(nc->conn)))
		vfurt_logf(&d->log, VFURT_LOG_WARN, "SIGHUP: limits ignored: cannot change while "
			   "running (restart to apply)");
	if (!d->cl_control_socket && nc->control_socket &&
	    (!d->cfg.control_socket || strcmp(nc->control_socket, d->cfg.control_socket)))
		vfurt_logf(&d->log, VFURT_LOG_WARN, "SIGHUP: control_socket ignored: cannot change "
			   "while running (restart to apply)");
	if (!d->cl_log_level && nc->has_log_level && nc->log_level != dlog_level(&d->dlog)) {
		vfurt_logf(&d->log, VFURT_LOG_INFO, "SIGHUP: log_level %s (was %s)",
			   dlog_level_name(nc->log_level), dlog_level_name(dlog_level(&d->dlog)));
		dlog_set_level(&d->dlog, nc->log_level);
		d->cfg.log_level = nc->log_level;
		d->cfg.has_log_level = true;
	}
	if (!d->cl_stats && nc->has_stats_interval &&
	    nc->stats_interval_s != d->cfg.stats_interval_s) {
		int rc = daemon_set_stats_interval(d, nc->stats_interval_s);

		if (rc) {
			vfurt_logf(&d->log, VFURT_LOG_ERR, "SIGHUP: stats_interval: %s", strerror(-rc));
		} else {
			vfurt_logf(&d->log, VFURT_LOG_INFO, "SIGHUP: stats_interval %u s",
				   nc->stats_interval_s);
			d->cfg.stats_interval_s = nc->stats_interval_s;
			d->cfg.has_stats_interval = true;
		}
	}
}

void daemon_reload(struct daemon *d)
{
	struct vfurt_config nc;
	char err[1024];
	char (*names)[DEVSPEC_VAL_LEN] = NULL;
	size_t added = 0;

	if (!d->config_path) {
		vfurt_logf(&d->log, VFURT_LOG_WARN, "SIGHUP: no --config file to read again: "
			   "nothing changed");
		return;
	}
	vfr_config_init(&nc);
	if (vfr_config_load(&nc, d->config_path, err, sizeof(err)) ||
	    vfr_config_check_sockets(&nc, err, sizeof(err))) {
		vfurt_logf(&d->log, VFURT_LOG_ERR, "SIGHUP: %s: nothing changed", err);
		goto out;
	}
	if (nc.ndevices) {
		names = calloc(nc.ndevices, sizeof(*names));
		if (!names) {
			vfurt_logf(&d->log, VFURT_LOG_ERR, "SIGHUP: out of memory: nothing changed");
			goto out;
		}
	}
	for (size_t i = 0; i < nc.ndevices; i++) {
		devtab_spec_name(&nc.devices[i].spec, names[i], sizeof(names[i]));
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(names[i], names[j])) {
				vfurt_logf(&d->log, VFURT_LOG_ERR, "SIGHUP: %s: name '%s' is also "
					   "%s's: nothing changed", nc.devices[i].where, names[i],
					   nc.devices[j].where);
				goto out;
			}
		}
	}
	vfurt_logf(&d->log, VFURT_LOG_INFO, "SIGHUP: reading %s again", d->config_path);
	reload_settings(d, &nc);
	/* file devices that left the file: removed first, so that their sockets free up */
	for (size_t i = 0; i < d->devs.n; i++) {
		struct dev_entry *e = d->devs.e[i];
		bool kept = false;

		if (e->origin != DEV_FILE || e->removing)
			continue;
		for (size_t k = 0; k < nc.ndevices && !kept; k++)
			kept = !strcmp(names[k], e->name);
		if (!kept)
			reload_remove(d, e, NULL, "no longer in the config file: removing");
	}
	for (size_t k = 0; k < nc.ndevices; k++) {
		const struct vfurt_config_device *nd = &nc.devices[k];
		struct dev_entry *e = devtab_find(&d->devs, names[k]);

		if (!e) {
			reload_add(d, nd);
			added++;
		} else if (e->removing) {
			if (e->readd) {
				vfr_config_device_fini(e->readd);
				free(e->readd);
			}
			e->readd = dup_device(nd);
			e->readd_origin = DEV_FILE;
			vfurt_logf(&d->log, VFURT_LOG_INFO, "SIGHUP: %s: added again once its removal "
				   "completes", e->name);
		} else if (!same_as_running(e, nd)) {
			if (e->origin != DEV_FILE) {
				vfurt_logf(&d->log, VFURT_LOG_WARN, "SIGHUP: %s: skipped: the name is a "
					   "device added from the %s, not the config file", nd->where,
					   devtab_origin_name(e->origin));
				continue;
			}
			reload_remove(d, e, dup_device(nd), "changed in the config file: replacing");
		} else if (e->origin != DEV_FILE) {
			vfurt_logf(&d->log, VFURT_LOG_INFO, "SIGHUP: %s: the config file now describes "
				   "it (it came from the %s)", e->name, devtab_origin_name(e->origin));
			e->origin = DEV_FILE;
		}
	}
	vfurt_logf(&d->log, VFURT_LOG_INFO, "SIGHUP: done (%zu devices served)", d->devs.n);
out:
	(void)added;
	free(names);
	vfr_config_free(&nc);
}
