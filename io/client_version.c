/* Client VERSION negotiation: build our capabilities JSON, check and parse the server's. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "client_internal.h"

static int add_val(struct json_object *obj, const char *key, struct json_object *val)
{
	if (!val)
		return -ENOMEM;
	if (json_object_object_add(obj, key, val)) {
		json_object_put(val);
		return -ENOMEM;
	}
	return 0;
}

/* Our proposal, as QEMU sends it; returns a malloc'ed NUL-terminated string. */
static int build_json(const struct vfurt_client *c, const struct vfurt_client_opts *o,
		      char **out)
{
	struct json_object *root = json_object_new_object();
	struct json_object *caps = json_object_new_object();
	struct json_object *twin = NULL;
	const char *s;
	int rc = -ENOMEM;

	if (!root || !caps)
		goto err_put;
	rc = add_val(caps, "max_msg_fds", json_object_new_int64(c->caps.client_max_msg_fds));
	if (!rc)
		rc = add_val(caps, "max_data_xfer_size",
			     json_object_new_int64(c->caps.client_max_data_xfer_size));
	if (!rc)
		rc = add_val(caps, "pgsizes",
			     json_object_new_uint64(o->pgsizes ? o->pgsizes : VFIO_USER_DEFAULT_PGSIZES));
	if (!rc)
		rc = add_val(caps, "max_dma_maps",
			     json_object_new_int64(o->max_dma_maps ? o->max_dma_maps :
						   VFIO_USER_DEFAULT_MAX_DMA_MAPS));
	if (!rc)
		rc = add_val(caps, "write_multiple",
			     json_object_new_boolean(!(o->flags & VFURT_CLIENT_NO_WRITE_MULTIPLE)));
	if (!rc && (o->flags & VFURT_CLIENT_TWIN_SOCKET)) {
		twin = json_object_new_object();
		rc = twin ? add_val(twin, "supported", json_object_new_boolean(1)) : -ENOMEM;
		if (!rc) {
			rc = add_val(caps, "twin_socket", twin);
			twin = NULL; /* owned by caps now, or already put */
		}
	}
	if (rc)
		goto err_put;
	rc = add_val(root, "capabilities", caps);
	caps = NULL;
	if (rc)
		goto err_put;
	s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
	*out = s ? strdup(s) : NULL;
	rc = *out ? 0 : -ENOMEM;
err_put:
	json_object_put(twin);
	json_object_put(caps);
	json_object_put(root);
	return rc;
}

/* Read an unsigned integer capability; absent leaves *v alone. */
static int get_uint(struct json_object *caps, const char *key, uint64_t max, uint64_t *v)
{
	struct json_object *val;

	if (!json_object_object_get_ex(caps, key, &val))
		return 0;
	if (!json_object_is_type(val, json_type_int) || json_object_get_int64(val) < 0)
		return -EPROTO;
	*v = json_object_get_uint64(val);
	return *v > max ? -EPROTO : 0;
}

static int get_bool(struct json_object *obj, const char *key, bool *v)
{
	struct json_object *val;

	if (!json_object_object_get_ex(obj, key, &val))
		return 0;
	if (!json_object_is_type(val, json_type_boolean))
		return -EPROTO;
	*v = json_object_get_boolean(val);
	return 0;
}

/* Pick the twin socket fd out of the reply's fds if the server enabled it. */
static int take_twin(struct vfurt_client *c, const struct vfurt_client_opts *o,
		     struct json_object *caps, struct client_msg *m)
{
	struct json_object *twin;
	uint64_t idx = UINT64_MAX;
	bool supported = false;
	int rc;

	if (!json_object_object_get_ex(caps, "twin_socket", &twin))
		return 0;
	if (!json_object_is_type(twin, json_type_object))
		return -EPROTO;
	rc = get_bool(twin, "supported", &supported);
	if (rc || !supported)
		return rc;
	/* The server may only enable what we proposed. */
	if (!(o->flags & VFURT_CLIENT_TWIN_SOCKET))
		return -EPROTO;
	rc = get_uint(twin, "fd_index", UINT32_MAX, &idx);
	if (rc || idx >= m->nfds)
		return -EPROTO;
	c->twin = m->fds[idx];
	m->fds[idx] = -1;
	if (fcntl(c->twin, F_SETFL, fcntl(c->twin, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	c->caps.twin_socket = true;
	return 0;
}

static int parse_json(struct vfurt_client *c, const struct vfurt_client_opts *o,
		      const char *text, size_t n, struct client_msg *m)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root = NULL;
	struct json_object *caps;
	uint64_t v;
	bool b;
	int rc = -EPROTO;

	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, text, (int)n);
	if (!root || json_tokener_get_error(tok) != json_tokener_success)
		goto out;
	for (size_t i = json_tokener_get_parse_end(tok); i < n; i++)
		if (!isspace((unsigned char)text[i]))
			goto out;
	if (!json_object_is_type(root, json_type_object))
		goto out;
	if (!json_object_object_get_ex(root, "capabilities", &caps)) {
		rc = 0;
		goto out;
	}
	if (!json_object_is_type(caps, json_type_object))
		goto out;

	v = c->caps.max_msg_fds;
	rc = get_uint(caps, "max_msg_fds", UINT32_MAX, &v);
	if (rc)
		goto out;
	c->caps.max_msg_fds = (uint32_t)v;
	v = c->caps.max_data_xfer_size;
	rc = get_uint(caps, "max_data_xfer_size", UINT32_MAX, &v);
	if (rc || v == 0)
		goto out_proto;
	c->caps.max_data_xfer_size = (uint32_t)v;
	v = c->caps.pgsizes;
	rc = get_uint(caps, "pgsizes", UINT64_MAX, &v);
	if (rc || v == 0)
		goto out_proto;
	c->caps.pgsizes = v;
	v = c->caps.max_dma_maps;
	rc = get_uint(caps, "max_dma_maps", UINT32_MAX, &v);
	if (rc)
		goto out;
	c->caps.max_dma_maps = (uint32_t)v;
	b = false;
	rc = get_bool(caps, "write_multiple", &b);
	if (rc)
		goto out;
	c->caps.write_multiple = b;
	rc = take_twin(c, o, caps, m);
	goto out;
out_proto:
	rc = -EPROTO;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

static int parse_reply(struct vfurt_client *c, const struct vfurt_client_opts *o,
		       struct client_msg *m)
{
	struct vfio_user_version v;
	const char *text;
	size_t n;

	if (m->len < sizeof(v))
		return -EPROTO;
	memcpy(&v, m->payload, sizeof(v));
	/* Same major; a minor at most what we proposed (the spec's rules). */
	if (v.major != c->caps.major || v.minor > c->caps.minor)
		return -EPROTO;
	c->caps.minor = v.minor;
	text = (const char *)m->payload + sizeof(v);
	n = strnlen(text, m->len - sizeof(v));
	if (n == 0)
		return 0;
	c->server_json = strndup(text, n);
	if (!c->server_json)
		return -ENOMEM;
	c->caps.server_json = true;
	return parse_json(c, o, c->server_json, n, m);
}

int vfr_client_handshake(struct vfurt_client *c, const struct vfurt_client_opts *o)
{
	struct vfio_user_version v = { .major = c->caps.major, .minor = c->caps.minor };
	struct iovec iov[2] = { { .iov_base = &v, .iov_len = sizeof(v) } };
	struct client_msg m;
	char *json = NULL;
	int iovcnt = 1;
	int rc;

	if (o->version_json) {
		iov[1].iov_base = (void *)o->version_json;
		iov[1].iov_len = strlen(o->version_json) + 1;
		iovcnt = 2;
	} else if (!(o->flags & VFURT_CLIENT_NO_JSON)) {
		rc = build_json(c, o, &json);
		if (rc)
			return rc;
		iov[1].iov_base = json;
		iov[1].iov_len = strlen(json) + 1;
		iovcnt = 2;
	}
	rc = vfr_client_call(c, VFIO_USER_VERSION, 0, iov, iovcnt, NULL, 0, &m);
	free(json);
	if (rc)
		return rc;
	rc = parse_reply(c, o, &m);
	vfr_close_fds(m.fds, m.nfds);
	if (!rc && (o->flags & VFURT_CLIENT_REQUIRE_TWIN) && c->twin < 0)
		rc = -EPROTONOSUPPORT;
	return rc;
}
