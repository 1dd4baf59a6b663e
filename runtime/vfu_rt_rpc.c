/* vfu-rt's JSON-RPC 2.0 control server: bounded, non-blocking clients served from the main loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vfu_rt_rpc.h"

/* Bytes read from one client per rpc_handle, and requests answered: the others get their turn. */
#define RPC_READ_BUDGET (256u << 10)
#define RPC_REQ_BUDGET 64
#define RPC_IN_MIN 4096u

struct rpc_pending {
	struct rpc_server *srv;
	int slot;
	uint64_t gen;
	struct json_object *id;
	bool has_id;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void rpc_init(struct rpc_server *srv, int lfd, const struct rpc_method *methods, void *ctx,
	      const struct vfurt_log *log)
{
	memset(srv, 0, sizeof(*srv));
	srv->lfd = lfd;
	srv->methods = methods;
	srv->ctx = ctx;
	srv->log = log;
	srv->next_gen = 1;
	for (int i = 0; i < RPC_MAX_CLIENTS; i++)
		srv->clients[i].fd = -1;
}

static void client_close(struct rpc_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void rpc_fini(struct rpc_server *srv)
{
	for (int i = 0; i < RPC_MAX_CLIENTS; i++)
		client_close(&srv->clients[i]);
}

unsigned rpc_clients(const struct rpc_server *srv)
{
	unsigned n = 0;

	for (int i = 0; i < RPC_MAX_CLIENTS; i++)
		n += srv->clients[i].fd >= 0;
	return n;
}

int rpc_pollfds(const struct rpc_server *srv, struct pollfd *pfd)
{
	int n = 0;

	pfd[n++] = (struct pollfd){ .fd = srv->lfd, .events = POLLIN };
	for (int i = 0; i < RPC_MAX_CLIENTS; i++) {
		const struct rpc_client *c = &srv->clients[i];
		short ev = 0;

		if (c->fd < 0)
			continue;
		/* backpressure: a client that does not read its answers gets no more */
		if (!c->closing && c->out_len - c->out_off < RPC_OUT_HIGH)
			ev |= POLLIN;
		if (c->out_len > c->out_off)
			ev |= POLLOUT;
		pfd[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
	}
	return n;
}

static bool has_line(const struct rpc_client *c);

int rpc_timeout_ms(const struct rpc_server *srv)
{
	int t = -1;

	for (int i = 0; i < RPC_MAX_CLIENTS; i++) {
		if (has_line(&srv->clients[i]))
			return 0; /* requests left over from the last budget */
		if (srv->clients[i].fd >= 0 && (srv->clients[i].stall_ns || srv->clients[i].part_ns))
			t = 1000;
	}
	return t;
}

/* Rate-limited: any client can make us log, at any rate. */
__attribute__((format(printf, 2, 3)))
static void log_client(struct rpc_server *srv, const char *fmt, ...)
{
	uint64_t more;
	char line[768];
	va_list ap;

	if (!vfr_log_ratelimit_take_now(&srv->rl, &more))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (more)
		vfurt_logf(srv->log, VFURT_LOG_WARN, "control socket: %s (and %llu more such lines "
			   "suppressed)", line, (unsigned long long)more);
	else
		vfurt_logf(srv->log, VFURT_LOG_WARN, "control socket: %s", line);
}

/* Try to send queued output; returns -1 when the client is gone (closed). */
static int client_flush(struct rpc_server *srv, struct rpc_client *c, uint64_t now)
{
	size_t before = c->out_off;

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		vfurt_logf(srv->log, VFURT_LOG_DEBUG, "control socket: client gone: %s",
			   n < 0 ? strerror(errno) : "closed");
		client_close(c);
		return -1;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		c->stall_ns = 0;
		if (c->out_cap > RPC_OUT_HIGH) { /* a burst is over: give its memory back */
			free(c->out);
			c->out = NULL;
			c->out_cap = 0;
		}
		if (c->closing && !c->pending) {
			client_close(c);
			return -1;
		}
	} else if (c->out_off != before || !c->stall_ns) {
		c->stall_ns = now ? now : now_ns();
	}
	return 0;
}

/* Queue one line; a client whose queue would pass RPC_OUT_MAX is dropped. */
static void client_queue(struct rpc_server *srv, struct rpc_client *c, const char *s, size_t len)
{
	size_t need;

	if (c->fd < 0)
		return;
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	need = c->out_len + len + 1;
	if (need - c->out_off > RPC_OUT_MAX) {
		log_client(srv, "client reads none of its answers (%zu bytes queued): disconnecting",
			   c->out_len - c->out_off);
		client_close(c);
		return;
	}
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *n;

		if (c->out_off) { /* compact first */
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
			need = c->out_len + len + 1;
		}
		while (cap < need)
			cap *= 2;
		n = realloc(c->out, cap);
		if (!n) {
			vfurt_logf(srv->log, VFURT_LOG_ERR, "control socket: out of memory: "
				   "disconnecting a client");
			client_close(c);
			return;
		}
		c->out = n;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, len);
	c->out[c->out_len + len] = '\n';
	c->out_len += len + 1;
}

/* Serialize a response and queue it for the client (slot, gen) if still there. */
static void respond(struct rpc_server *srv, int slot, uint64_t gen, struct json_object *id,
		    struct json_object *result, int code, const char *message)
{
	struct rpc_client *c = &srv->clients[slot];
	struct json_object *r;
	const char *s;
	size_t len;

	if (c->fd < 0 || c->gen != gen) {
		json_object_put(result);
		return; /* the client left meanwhile */
	}
	r = json_object_new_object();
	if (!r) {
		json_object_put(result);
		return;
	}
	json_object_object_add(r, "jsonrpc", json_object_new_string("2.0"));
	if (code) {
		struct json_object *e = json_object_new_object();

		json_object_object_add(e, "code", json_object_new_int(code));
		json_object_object_add(e, "message", json_object_new_string(message));
		json_object_object_add(r, "error", e);
		json_object_put(result);
		srv->errors++;
	} else {
		json_object_object_add(r, "result", result ? result : json_object_new_null());
	}
	json_object_object_add(r, "id", id ? json_object_get(id) : NULL);
	s = json_object_to_json_string_length(r, JSON_C_TO_STRING_PLAIN, &len);
	if (s)
		client_queue(srv, c, s, len);
	json_object_put(r);
	srv->requests++;
	if (c->fd >= 0)
		(void)client_flush(srv, c, 0);
}

void rpc_result(struct rpc_call *call, struct json_object *result)
{
	json_object_put(call->result);
	call->result = result;
	call->code = 0;
}

void rpc_error(struct rpc_call *call, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(call->message, sizeof(call->message), fmt, ap);
	va_end(ap);
	call->code = code;
	json_object_put(call->result);
	call->result = NULL;
}

int rpc_code_for_errno(int err)
{
	switch (err) {
	case -ENOENT: return RPC_ERR_NO_DEVICE;
	case -EEXIST: case -EADDRINUSE: return RPC_ERR_EXISTS;
	case -EALREADY: case -EBUSY: case -EAGAIN: return RPC_ERR_BUSY;
	case -ENOTSUP: return RPC_ERR_NOT_SUPPORTED;
	case -EINVAL: return RPC_INVALID_PARAMS;
	case -ESHUTDOWN: return RPC_ERR_SHUTTING_DOWN;
	}
	return RPC_ERR_FAILED;
}

struct rpc_pending *rpc_defer(struct rpc_call *call)
{
	struct rpc_pending *p = calloc(1, sizeof(*p));

	if (!p) {
		rpc_error(call, RPC_INTERNAL_ERROR, "out of memory");
		return NULL;
	}
	p->srv = call->srv;
	p->slot = call->slot;
	p->gen = call->gen;
	p->id = call->id ? json_object_get(call->id) : NULL;
	p->has_id = call->has_id;
	call->deferred = true;
	call->srv->clients[call->slot].pending++;
	return p;
}

static void pending_free(struct rpc_pending *p)
{
	struct rpc_client *c = &p->srv->clients[p->slot];

	if (c->fd >= 0 && c->gen == p->gen && c->pending) {
		c->pending--;
		/* a client that half-closed waits only for what it was owed */
		if (c->closing && !c->pending && c->out_len == c->out_off)
			client_close(c);
	}
	json_object_put(p->id);
	free(p);
}

void rpc_pending_result(struct rpc_pending *p, struct json_object *result)
{
	if (!p) {
		json_object_put(result);
		return;
	}
	if (p->has_id)
		respond(p->srv, p->slot, p->gen, p->id, result, 0, NULL);
	else
		json_object_put(result);
	pending_free(p);
}

void rpc_pending_error(struct rpc_pending *p, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!p)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_client(p->srv, "error %d: %s", code, msg);
	if (p->has_id)
		respond(p->srv, p->slot, p->gen, p->id, NULL, code, msg);
	pending_free(p);
}

/* An error for (slot, gen), logged (rate-limited). id NULL: JSON null. */
static void fail_request(struct rpc_server *srv, int slot, struct json_object *id, int code,
			 const char *method, const char *msg)
{
	log_client(srv, "%s%s%serror %d: %s", method ? "method " : "", method ? method : "",
		   method ? ": " : "", code, msg);
	respond(srv, slot, srv->clients[slot].gen, id, NULL, code, msg);
}

static bool valid_id(struct json_object *id)
{
	return !id || json_object_is_type(id, json_type_string) ||
	       json_object_is_type(id, json_type_int) || json_object_is_type(id, json_type_null);
}

/* One request line (NUL-terminated, without its newline). */
static void handle_line(struct rpc_server *srv, int slot, char *line, size_t len)
{
	struct json_tokener *tok;
	struct json_object *req;
	struct json_object *v;
	struct json_object *id = NULL;
	struct json_object *params = NULL;
	struct json_object *empty = NULL;
	const struct rpc_method *m;
	const char *method;
	struct rpc_call call;
	bool has_id;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	if (strspn(line, " \t") == len)
		return; /* blank lines are keep-alives */
	tok = json_tokener_new_ex(RPC_JSON_DEPTH);
	if (!tok) {
		fail_request(srv, slot, NULL, RPC_INTERNAL_ERROR, NULL, "out of memory");
		return;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	/* the NUL after the line ends it: a top-level number is complete then */
	req = json_tokener_parse_ex(tok, line, (int)len + 1);
	if (!req || json_tokener_get_parse_end(tok) < len) {
		enum json_tokener_error e = json_tokener_get_error(tok);
		char msg[160];

		snprintf(msg, sizeof(msg), "parse error: %s at byte %zu",
			 e == json_tokener_success ? "data after the JSON value" :
			 e == json_tokener_continue ? "incomplete JSON" : json_tokener_error_desc(e),
			 json_tokener_get_parse_end(tok));
		json_tokener_free(tok);
		json_object_put(req);
		fail_request(srv, slot, NULL, RPC_PARSE_ERROR, NULL, msg);
		return;
	}
	json_tokener_free(tok);
	if (json_object_is_type(req, json_type_array)) {
		fail_request(srv, slot, NULL, RPC_INVALID_REQUEST, NULL,
			     "invalid request: batches are not supported (one request per line)");
		goto out;
	}
	if (!json_object_is_type(req, json_type_object)) {
		fail_request(srv, slot, NULL, RPC_INVALID_REQUEST, NULL,
			     "invalid request: expected a JSON object");
		goto out;
	}
	has_id = json_object_object_get_ex(req, "id", &id);
	if (!valid_id(id)) {
		fail_request(srv, slot, NULL, RPC_INVALID_REQUEST, NULL,
			     "invalid request: \"id\" must be a string, an integer or null");
		goto out;
	}
	if (!has_id)
		id = NULL; /* "id": null stays NULL too, and is answered with a null id */
	if (!json_object_object_get_ex(req, "jsonrpc", &v) ||
	    !json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "2.0")) {
		fail_request(srv, slot, id, RPC_INVALID_REQUEST, NULL,
			     "invalid request: \"jsonrpc\" must be \"2.0\"");
		goto out;
	}
	if (!json_object_object_get_ex(req, "method", &v) || !json_object_is_type(v, json_type_string)) {
		fail_request(srv, slot, id, RPC_INVALID_REQUEST, NULL,
			     "invalid request: \"method\" must be a string");
		goto out;
	}
	method = json_object_get_string(v);
	if (strlen(method) != (size_t)json_object_get_string_len(v)) {
		fail_request(srv, slot, id, RPC_INVALID_REQUEST, NULL,
			     "invalid request: \"method\" contains a NUL character");
		goto out;
	}
	json_object_object_foreach(req, k, kv) {
		(void)kv;
		if (strcmp(k, "jsonrpc") && strcmp(k, "method") && strcmp(k, "params") &&
		    strcmp(k, "id")) {
			char msg[128];

			snprintf(msg, sizeof(msg), "invalid request: unknown member '%.40s'", k);
			fail_request(srv, slot, id, RPC_INVALID_REQUEST, NULL, msg);
			goto out;
		}
	}
	for (m = srv->methods; m->name; m++)
		if (!strcmp(m->name, method))
			break;
	if (!m->name) {
		char msg[160];

		snprintf(msg, sizeof(msg), "method not found: '%.64s'", method);
		fail_request(srv, slot, id, RPC_METHOD_NOT_FOUND, NULL, msg);
		goto out;
	}
	if (json_object_object_get_ex(req, "params", &params) && params &&
	    !json_object_is_type(params, json_type_object)) {
		fail_request(srv, slot, id, RPC_INVALID_PARAMS, m->name,
			     "invalid params: \"params\" must be an object");
		goto out;
	}
	if (!params) {
		empty = json_object_new_object();
		if (!empty) {
			fail_request(srv, slot, id, RPC_INTERNAL_ERROR, m->name, "out of memory");
			goto out;
		}
		params = empty;
	}
	memset(&call, 0, sizeof(call));
	call.srv = srv;
	call.slot = slot;
	call.gen = srv->clients[slot].gen;
	call.id = has_id ? id : NULL;
	call.has_id = has_id;
	/* a request with "id": null still gets an answer; only a missing id is a notification */
	m->fn(srv->ctx, params, &call);
	if (call.deferred) {
		json_object_put(call.result);
	} else if (call.code) {
		if (has_id)
			fail_request(srv, slot, id, call.code, m->name, call.message);
		else
			log_client(srv, "method %s: error %d: %s", m->name, call.code, call.message);
	} else if (has_id) {
		respond(srv, slot, call.gen, id, call.result, 0, NULL);
	} else {
		json_object_put(call.result);
	}
out:
	json_object_put(empty);
	json_object_put(req);
}

/* Answer the complete lines received (bounded per call; the rest stays for the next one). */
static void process_lines(struct rpc_server *srv, int slot)
{
	struct rpc_client *c = &srv->clients[slot];
	int reqs = 0;
	char *nl;

	while (c->fd >= 0 && !c->closing && c->out_len - c->out_off < RPC_OUT_HIGH &&
	       reqs < RPC_REQ_BUDGET && c->in_len && (nl = memchr(c->in, '\n', c->in_len))) {
		size_t len = (size_t)(nl - c->in);

		*nl = '\0';
		handle_line(srv, slot, c->in, len);
		if (c->fd < 0)
			return;
		memmove(c->in, nl + 1, c->in_len - len - 1);
		c->in_len -= len + 1;
		reqs++;
	}
	/* keep the buffer small between requests */
	if (c->fd >= 0 && c->in_len == 0 && c->in_cap > 64 * RPC_IN_MIN) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
}

static bool has_line(const struct rpc_client *c)
{
	return c->fd >= 0 && !c->closing && c->in_len && c->out_len - c->out_off < RPC_OUT_HIGH &&
	       memchr(c->in, '\n', c->in_len);
}

/* Read what is there (bounded) and answer the complete lines. */
static void client_read(struct rpc_server *srv, int slot)
{
	struct rpc_client *c = &srv->clients[slot];
	size_t budget = RPC_READ_BUDGET;

	while (c->fd >= 0 && !c->closing && budget && !has_line(c) &&
	       c->out_len - c->out_off < RPC_OUT_HIGH) {
		ssize_t n;

		if (c->in_len == c->in_cap) {
			size_t cap = c->in_cap ? c->in_cap * 2 : RPC_IN_MIN;
			char *b;

			if (cap > RPC_MAX_REQUEST + 1)
				cap = RPC_MAX_REQUEST + 1;
			if (cap <= c->in_len) { /* full: a line longer than the limit */
				log_client(srv, "request too large (no newline within %u bytes): "
					   "disconnecting", RPC_MAX_REQUEST);
				respond(srv, slot, c->gen, NULL, NULL, RPC_INVALID_REQUEST,
					"request too large (at most 1048576 bytes per line)");
				if (c->fd >= 0) {
					c->closing = true;
					(void)client_flush(srv, c, 0);
				}
				return;
			}
			b = realloc(c->in, cap + 1);
			if (!b) {
				vfurt_logf(srv->log, VFURT_LOG_ERR, "control socket: out of memory");
				client_close(c);
				return;
			}
			c->in = b;
			c->in_cap = cap;
		}
		n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			if (c->in_len)
				log_client(srv, "client disconnected in the middle of a request "
					   "(%zu bytes)", c->in_len);
			process_lines(srv, slot);
			if (c->fd >= 0 && (c->pending || c->out_len > c->out_off)) {
				/* half-closed: it may still read what it is owed */
				c->closing = true;
				return;
			}
			client_close(c);
			return;
		}
		budget -= (size_t)n < budget ? (size_t)n : budget;
		c->in_len += (size_t)n;
	}
	process_lines(srv, slot);
	if (c->fd >= 0)
		c->part_ns = c->in_len ? (c->part_ns ? c->part_ns : now_ns()) : 0;
}

static void accept_clients(struct rpc_server *srv)
{
	for (int k = 0; k < 2 * RPC_MAX_CLIENTS; k++) {
		int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int slot = -1;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_client(srv, "accept: %s", strerror(errno));
			return;
		}
		for (int i = 0; i < RPC_MAX_CLIENTS; i++) {
			if (srv->clients[i].fd < 0) {
				slot = i;
				break;
			}
		}
		if (slot < 0) {
			static const char busy[] = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32000,"
				"\"message\":\"too many control clients (at most 16)\"},\"id\":null}\n";

			log_client(srv, "refusing a client: %d are connected (at most %d)",
				   RPC_MAX_CLIENTS, RPC_MAX_CLIENTS);
			(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		srv->clients[slot].fd = fd;
		srv->clients[slot].gen = srv->next_gen++;
	}
}

void rpc_handle(struct rpc_server *srv, const struct pollfd *pfd, int n, uint64_t now)
{
	for (int i = 1; i < n; i++) {
		int slot = -1;

		for (int s = 0; s < RPC_MAX_CLIENTS; s++)
			if (srv->clients[s].fd >= 0 && srv->clients[s].fd == pfd[i].fd)
				slot = s;
		if (slot < 0)
			continue;
		if (pfd[i].revents & (POLLOUT | POLLERR | POLLHUP)) {
			if (client_flush(srv, &srv->clients[slot], now))
				continue;
		}
		if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (srv->clients[slot].closing) {
				/* gone both ways: nobody to answer */
				if (pfd[i].revents & (POLLHUP | POLLERR))
					client_close(&srv->clients[slot]);
				continue;
			}
			client_read(srv, slot);
			continue;
		}
		process_lines(srv, slot); /* lines left over from the last budget */
	}
	for (int s = 0; s < RPC_MAX_CLIENTS; s++) {
		struct rpc_client *c = &srv->clients[s];

		/* stamps taken while serving this batch may be later than now */
		if (c->fd >= 0 && c->stall_ns && now > c->stall_ns &&
		    now - c->stall_ns > RPC_DRAIN_TIMEOUT_MS * 1000000ull) {
			log_client(srv, "client read nothing of its answers for %d ms: disconnecting",
				   RPC_DRAIN_TIMEOUT_MS);
			client_close(c);
		} else if (c->fd >= 0 && c->part_ns && !c->closing && now > c->part_ns &&
			   now - c->part_ns > RPC_REQUEST_TIMEOUT_MS * 1000000ull) {
			log_client(srv, "a request unfinished for %d ms (%zu bytes): disconnecting",
				   RPC_REQUEST_TIMEOUT_MS, c->in_len);
			client_close(c);
		}
	}
	if (n > 0 && (pfd[0].revents & POLLIN))
		accept_clients(srv);
}

void rpc_flush_all(struct rpc_server *srv, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited++) {
		struct timespec pause = { .tv_nsec = 1000000 };
		bool left = false;

		for (int i = 0; i < RPC_MAX_CLIENTS; i++) {
			struct rpc_client *c = &srv->clients[i];

			if (c->fd < 0 || c->out_off == c->out_len)
				continue;
			if (client_flush(srv, c, 0) == 0 && c->fd >= 0 && c->out_off < c->out_len)
				left = true;
		}
		if (!left)
			return;
		nanosleep(&pause, NULL);
	}
}
