/* VERSION: version check and JSON capability negotiation (json-c). */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "conn_internal.h"

/* Read an integer capability in [min, max]; absent keeps *out. */
static int cap_u64(struct json_object *caps, const char *key, uint64_t min, uint64_t max,
		   uint64_t *out)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(caps, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	n = json_object_get_int64(v);
	/* json-c saturates out-of-range values at INT64_MAX */
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max)
		return -EINVAL;
	*out = (uint64_t)n;
	return 0;
}

struct client_caps {
	uint64_t max_fds;
	uint64_t max_xfer;
	uint64_t pgsizes;
	bool write_multiple;
	bool twin;
};

static int parse_caps(struct vfurt_conn *c, const char *json, size_t len,
		      struct client_caps *cc)
{
	struct json_tokener *tok;
	struct json_object *root;
	struct json_object *caps;
	struct json_object *v;
	int rc = -EINVAL;

	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, json, (int)len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(root, json_type_object)) {
		vfr_conn_logf(c, VFURT_LOG_WARN, "%s: VERSION: capabilities are not a JSON object",
			   c->dev->name);
		goto out;
	}
	if (!json_object_object_get_ex(root, "capabilities", &caps)) {
		rc = 0;
		goto out;
	}
	if (!json_object_is_type(caps, json_type_object))
		goto out;
	if (cap_u64(caps, "max_msg_fds", 1, VFURT_SOCK_MAX_FDS * 1024ull, &cc->max_fds) ||
	    cap_u64(caps, "max_data_xfer_size", 1, UINT32_MAX, &cc->max_xfer) ||
	    cap_u64(caps, "pgsizes", 1, UINT64_MAX >> 1, &cc->pgsizes)) {
		vfr_conn_logf(c, VFURT_LOG_WARN, "%s: VERSION: bad capability value",
			   c->dev->name);
		goto out;
	}
	if (json_object_object_get_ex(caps, "max_dma_maps", &v) &&
	    !json_object_is_type(v, json_type_int))
		goto out;
	if (json_object_object_get_ex(caps, "write_multiple", &v)) {
		if (!json_object_is_type(v, json_type_boolean))
			goto out;
		cc->write_multiple = json_object_get_boolean(v);
	}
	if (json_object_object_get_ex(caps, "twin_socket", &v)) {
		struct json_object *s;

		if (!json_object_is_type(v, json_type_object))
			goto out;
		if (json_object_object_get_ex(v, "supported", &s)) {
			if (!json_object_is_type(s, json_type_boolean))
				goto out;
			cc->twin = json_object_get_boolean(s);
		}
	}
	rc = 0;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

static int build_reply(struct vfurt_conn *c, uint16_t minor, bool twin)
{
	struct json_object *root = json_object_new_object();
	struct json_object *caps = json_object_new_object();
	struct vfio_user_version *v;
	const char *s;
	size_t slen;
	int rc = -ENOMEM;

	if (!root || !caps)
		goto out;
	json_object_object_add(root, "capabilities", caps);
	json_object_object_add(caps, "max_msg_fds", json_object_new_int64(c->max_fds));
	json_object_object_add(caps, "max_data_xfer_size", json_object_new_int64(c->max_xfer));
	json_object_object_add(caps, "max_dma_maps", json_object_new_int64(c->max_dma_maps));
	json_object_object_add(caps, "pgsizes", json_object_new_int64(4096));
	json_object_object_add(caps, "write_multiple", json_object_new_boolean(1));
	if (twin) {
		struct json_object *t = json_object_new_object();

		if (!t)
			goto out;
		json_object_object_add(caps, "twin_socket", t);
		json_object_object_add(t, "supported", json_object_new_boolean(1));
		json_object_object_add(t, "fd_index", json_object_new_int(0));
	}
	caps = NULL;
	s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
	slen = strlen(s) + 1;
	v = vfr_reply_alloc(c, sizeof(*v) + slen);
	if (!v)
		goto out;
	v->major = VFIO_USER_MAJOR;
	v->minor = minor;
	memcpy(v->data, s, slen);
	rc = 0;
out:
	json_object_put(caps);
	json_object_put(root);
	return rc;
}

int vfr_cmd_version(struct vfurt_conn *c, struct vfurt_msg *m)
{
	struct client_caps cc = {
		.max_fds = VFIO_USER_DEFAULT_MAX_FDS,
		.max_xfer = VFIO_USER_DEFAULT_MAX_DATA_XFER,
		.pgsizes = VFIO_USER_DEFAULT_PGSIZES,
	};
	const struct vfio_user_version *v = (const void *)m->payload;
	int sv[2] = { -1, -1 };
	uint16_t minor;
	bool twin;
	int rc;

	if (c->negotiated) {
		vfr_conn_logf(c, VFURT_LOG_WARN, "%s: second VERSION rejected", c->dev->name);
		return -EINVAL;
	}
	if (m->len < sizeof(*v))
		return -EINVAL;
	if (v->major != VFIO_USER_MAJOR) {
		vfr_conn_logf(c, VFURT_LOG_WARN, "%s: client protocol %u.%u unsupported (we speak %u.x)",
			   c->dev->name, v->major, v->minor, VFIO_USER_MAJOR);
		return -ENOTSUP; /* dispatch closes the connection after replying */
	}
	if (m->len > sizeof(*v)) {
		size_t jlen = m->len - sizeof(*v);

		/* the JSON must be NUL terminated inside the payload */
		if (memchr(v->data, '\0', jlen) == NULL)
			return -EINVAL;
		jlen = strlen(v->data);
		if (jlen > 0) {
			rc = parse_caps(c, v->data, jlen, &cc);
			if (rc)
				return rc;
		}
	}
	if (!(cc.pgsizes & 4096)) {
		vfr_conn_logf(c, VFURT_LOG_WARN, "%s: client pgsizes 0x%llx lack 4 KiB",
			   c->dev->name, (unsigned long long)cc.pgsizes);
		return -EINVAL;
	}
	if (c->dev->conn && c->dev->conn != c)
		return -EBUSY;
	if (vfr_dma_table_count(c->dev->dma) == 0)
		vfr_dma_table_set_limits(c->dev->dma, c->max_dma_maps, 4096);

	/* answer min(client, ours): QEMU rejects a minor above its own */
	minor = v->minor;
	if (minor > (uint16_t)VFIO_USER_MINOR)
		minor = (uint16_t)VFIO_USER_MINOR;
	twin = cc.twin && c->offer_twin;
	if (twin && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		vfr_conn_logf(c, VFURT_LOG_WARN, "%s: twin socket: %s", c->dev->name,
			   strerror(errno));
		twin = false;
	}
	rc = build_reply(c, minor, twin);
	if (rc) {
		if (twin) {
			close(sv[0]);
			close(sv[1]);
		}
		return rc;
	}
	if (twin && (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 || vfr_conn_twin_setup(c) < 0)) {
		vfurt_logf(c->log, VFURT_LOG_WARN, "%s: twin socket: cannot set up", c->dev->name);
		close(sv[0]);
		close(sv[1]);
		return -ENOMEM;
	}
	if (twin) {
		c->twin_fd = sv[0];
		atomic_fetch_add(&c->dev->watch_gen, 1); /* the host watches it */
		c->reply.fds[0] = sv[1];
		c->reply.nfds = 1;
		c->reply.close_fds = 1; /* our copy of the client end goes after sending */
	}
	c->client_max_fds = (uint32_t)(cc.max_fds > VFURT_SOCK_MAX_FDS ? VFURT_SOCK_MAX_FDS
								     : cc.max_fds);
	c->client_max_xfer = (uint32_t)(cc.max_xfer > CONN_MAX_XFER_LIMIT ? CONN_MAX_XFER_LIMIT
									   : cc.max_xfer);
	c->write_multiple = cc.write_multiple;
	c->negotiated = true;
	c->dev->conn = c;
	vfr_conn_logf(c, VFURT_LOG_INFO,
		   "%s: client attached (protocol %u.%u, max_msg_fds %u, max_data_xfer %u%s%s)",
		   c->dev->name, VFIO_USER_MAJOR, minor,
		   c->client_max_fds, c->client_max_xfer, c->write_multiple ? ", write_multiple" : "",
		   twin ? ", twin socket" : "");
	if (c->dev->ops.attach)
		c->dev->ops.attach(c->dev, c->dev->arg);
	return 0;
}
