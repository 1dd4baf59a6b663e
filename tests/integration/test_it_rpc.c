/* The daemon's control plane end to end: build/vfu-rt's JSON-RPC socket, every method and error, hostile clients, SIGHUP, vfu-ctl. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>
#include <linux/vfio.h>

#include <vfurt/client.h>

#include "common/it_util.h"
#include "common/skip.h"

#define VFURT VFURT_BUILD_DIR "/vfu-rt"
#define VFUCTL VFURT_BUILD_DIR "/vfu-ctl"

/* ---- a daemon -------------------------------------------------------------- */

struct dproc {
	pid_t pid;
	char dir[128];
	char ctl[192];
	char log[192];
	char cfg[192];
};

struct fx {
	char dir[128];
	struct dproc d; /* the shared daemon */
};

static void sockp(char *buf, size_t len, const char *dir, const char *name)
{
	snprintf(buf, len, "%s/%s.sock", dir, name);
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Start build/vfu-rt with args (NULL-terminated) plus --control-socket d->ctl; wait for it. */
static void dstart(struct dproc *d, const char *const *args)
{
	const char *argv[64];
	pid_t parent = getpid();
	int n = 0;
	int fd;

	argv[n++] = "vfu-rt";
	argv[n++] = "--control-socket";
	argv[n++] = d->ctl;
	for (int i = 0; args[i] && n < 62; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	d->pid = fork();
	assert_true(d->pid >= 0);
	if (d->pid == 0) {
		int lfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(126);
		if (lfd >= 0)
			dup2(lfd, 2);
		execv(VFURT, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		fd = connect_unix(d->ctl);
		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(10000);
	}
	fail_msg("vfu-rt did not open %s", d->ctl);
}

/* SIGTERM and the exit status (0 expected). */
static int dstop(struct dproc *d)
{
	int status = 0;

	if (d->pid <= 0)
		return 0;
	kill(d->pid, SIGTERM);
	if (waitpid(d->pid, &status, 0) != d->pid)
		return -1;
	d->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void dinit(struct dproc *d, const char *dir, const char *tag)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s", dir);
	snprintf(d->ctl, sizeof(d->ctl), "%s/%s.ctl", dir, tag);
	snprintf(d->log, sizeof(d->log), "%s/%s.log", dir, tag);
	snprintf(d->cfg, sizeof(d->cfg), "%s/%s.json", dir, tag);
}

static bool log_has(const struct dproc *d, const char *what)
{
	char line[2048];
	bool found = false;
	FILE *f = fopen(d->log, "r");

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, what) != NULL;
	if (f)
		fclose(f);
	return found;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* ---- a control client --------------------------------------------------------- */

struct conn {
	int fd;
	char buf[1 << 16];
	size_t len;
	char *line;    /* the last line read (malloc'ed) */
};

static struct conn *cconnect(const char *ctl)
{
	struct conn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->fd = connect_unix(ctl);
	assert_true(c->fd >= 0);
	return c;
}

static void cclose(struct conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->line);
	free(c);
}

static void csend(struct conn *c, const char *text)
{
	size_t len = strlen(text);

	while (len) {
		ssize_t n = send(c->fd, text, len, MSG_NOSIGNAL);

		assert_true(n > 0);
		text += n;
		len -= (size_t)n;
	}
}

/* One line within timeout_ms: 0, -ETIMEDOUT, or -ECONNRESET (closed). */
static int crecv_line(struct conn *c, int timeout_ms)
{
	size_t cap = 0;
	size_t len = 0;
	char *line = NULL;

	free(c->line);
	c->line = NULL;
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		size_t take = nl ? (size_t)(nl - c->buf) + 1 : c->len;
		ssize_t n;

		if (len + take + 1 > cap) {
			cap = (len + take + 1) * 2;
			line = realloc(line, cap);
			assert_non_null(line);
		}
		memcpy(line + len, c->buf, take);
		len += take;
		memmove(c->buf, c->buf + take, c->len - take);
		c->len -= take;
		if (nl) {
			line[len - 1] = '\0';
			c->line = line;
			return 0;
		}
		if (poll(&p, 1, timeout_ms) <= 0) {
			free(line);
			return -ETIMEDOUT;
		}
		n = recv(c->fd, c->buf, sizeof(c->buf), 0);
		if (n <= 0) {
			free(line);
			return -ECONNRESET;
		}
		c->len = (size_t)n;
	}
}

/* Parse the last line: a JSON-RPC response object. */
static struct json_object *cresponse(struct conn *c, int timeout_ms)
{
	struct json_object *o;

	assert_int_equal(crecv_line(c, timeout_ms), 0);
	o = json_tokener_parse(c->line);
	if (!o)
		fail_msg("not JSON: %.200s", c->line);
	return o;
}

static void crequest(struct conn *c, const char *method, const char *params)
{
	char req[8192];

	snprintf(req, sizeof(req), "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"%s\"%s%s}\n", method,
		 params ? ",\"params\":" : "", params ? params : "");
	csend(c, req);
}

/* Call and expect a result (returned, caller puts it). */
static struct json_object *call_ok_t(struct conn *c, const char *method, const char *params,
				     int timeout_ms)
{
	struct json_object *r = NULL;
	struct json_object *resp;
	struct json_object *v;

	crequest(c, method, params);
	resp = cresponse(c, timeout_ms);
	if (!json_object_object_get_ex(resp, "result", &v))
		fail_msg("%s %s: %s", method, params ? params : "", c->line);
	assert_true(json_object_object_get_ex(resp, "id", &v));
	assert_int_equal(json_object_get_int(v), 7);
	json_object_object_get_ex(resp, "result", &r);
	json_object_get(r);
	json_object_put(resp);
	return r;
}

static struct json_object *call_ok(struct conn *c, const char *method, const char *params)
{
	return call_ok_t(c, method, params, 15000);
}

/* Check an error response: its code, and that its message contains what. */
static void check_error(struct conn *c, int code, const char *what, int timeout_ms)
{
	struct json_object *resp = cresponse(c, timeout_ms);
	struct json_object *e, *v;

	if (!json_object_object_get_ex(resp, "error", &e))
		fail_msg("expected error %d (%s), got %s", code, what, c->line);
	assert_true(json_object_object_get_ex(e, "code", &v));
	if (json_object_get_int(v) != code)
		fail_msg("expected error %d (%s), got %s", code, what, c->line);
	assert_true(json_object_object_get_ex(e, "message", &v));
	if (what && !strstr(json_object_get_string(v), what))
		fail_msg("expected '%s' in %s", what, c->line);
	json_object_put(resp);
}

static void call_err(struct conn *c, const char *method, const char *params, int code,
		     const char *what)
{
	crequest(c, method, params);
	check_error(c, code, what, 15000);
}

static const char *jget(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : NULL;
}

/* The entry named name in a device_list result, or NULL. */
static struct json_object *list_find(struct json_object *list, const char *name)
{
	for (size_t i = 0; i < json_object_array_length(list); i++) {
		struct json_object *e = json_object_array_get_idx(list, i);

		if (jget(e, "name") && !strcmp(jget(e, "name"), name))
			return e;
	}
	return NULL;
}

/* Wait until the device list has name (present) or lacks it. */
static void wait_listed(struct conn *c, const char *name, bool present)
{
	for (int i = 0; i < 1000; i++) {
		struct json_object *l = call_ok(c, "device_list", NULL);
		bool has = list_find(l, name) != NULL;

		json_object_put(l);
		if (has == present)
			return;
		usleep(10000);
	}
	fail_msg("device %s %s", name, present ? "never appeared" : "never went");
}


/* ---- setup -------------------------------------------------------------------- */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char g0[192], n0[192], cfg[1024];

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vfurt-rpc-%d", (int)getpid());
	mkdir(f->dir, 0700);
	*state = f;
	if (access(VFURT, X_OK) != 0)
		return 0;
	dinit(&f->d, f->dir, "main");
	sockp(g0, sizeof(g0), f->dir, "g0");
	sockp(n0, sizeof(n0), f->dir, "n0");
	snprintf(cfg, sizeof(cfg), "{\"poll\": \"adaptive\", \"devices\": ["
		 "{\"type\": \"gpio\", \"socket\": \"%s\"},"
		 "{\"type\": \"nvme\", \"socket\": \"%s\", \"backend\": \"ram\", \"size\": \"16M\", "
		 "\"queues\": 2}]}\n", g0, n0);
	write_file(f->d.cfg, cfg);
	{
		const char *args[] = { "--cores=0", "--config", f->d.cfg, NULL };

		dstart(&f->d, args);
	}
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[300];

	int rc = 0;

	/* the daemon exits 0, also under ASan (LeakSanitizer makes it abort otherwise) */
	if (f->d.pid > 0 && dstop(&f->d) != 0) {
		fprintf(stderr, "vfu-rt did not exit 0; its log:\n");
		snprintf(cmd, sizeof(cmd), "tail -n 60 %s >&2", f->d.log);
		if (system(cmd) != 0)
			fprintf(stderr, "(no log)\n");
		rc = -1;
	}
	if (getenv("VFURT_TEST_KEEP"))
		return rc;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", f->dir);
	free(f);
	return rc;
}

static struct fx *need_daemon(void **state)
{
	struct fx *f = *state;

	if (access(VFURT, X_OK) != 0)
		test_skip("no daemon at %s (not built)", VFURT);
	return f;
}

/* ---- tests -------------------------------------------------------------------- */

/* 0600, persistent connections, several requests on one, in order. */
static void test_socket_and_basics(void **state)
{
	struct fx *f = need_daemon(state);
	struct conn *c;
	struct json_object *r;
	struct stat st;

	assert_int_equal(stat(f->d.ctl, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	c = cconnect(f->d.ctl);
	/* two requests in one write: two answers, in order */
	csend(c, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"device_list\"}\n"
		 "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"runtime_stats\"}\n");
	r = cresponse(c, 5000);
	assert_string_equal(jget(r, "id"), "a");
	json_object_put(r);
	r = cresponse(c, 5000);
	assert_non_null(strstr(c->line, "\"workers\""));
	json_object_put(r);
	/* "id": null is answered, with a null id */
	csend(c, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"device_list\"}\n");
	r = cresponse(c, 5000);
	assert_non_null(strstr(c->line, "\"id\":null"));
	assert_non_null(strstr(c->line, "\"result\":["));
	json_object_put(r);
	/* a notification (no id) gets no answer; the next request does */
	csend(c, "{\"jsonrpc\":\"2.0\",\"method\":\"device_list\"}\n");
	r = call_ok(c, "device_list", NULL);
	assert_true(json_object_is_type(r, json_type_array));
	assert_non_null(list_find(r, "g0"));
	assert_non_null(list_find(r, "n0"));
	assert_string_equal(jget(list_find(r, "n0"), "type"), "nvme");
	assert_string_equal(jget(list_find(r, "g0"), "origin"), "config file");
	json_object_put(r);
	r = call_ok(c, "device_get", "{\"name\":\"n0\"}");
	assert_string_equal(jget(r, "name"), "n0");
	assert_non_null(jget(r, "config"));
	assert_non_null(strstr(c->line, "\"connected\":false"));
	json_object_put(r);
	r = call_ok(c, "runtime_stats", "{}");
	assert_non_null(strstr(c->line, "\"devices\""));
	json_object_put(r);
	r = call_ok(c, "log_set_level", "{\"level\":\"debug\"}");
	assert_string_equal(jget(r, "level"), "debug");
	assert_string_equal(jget(r, "previous"), "info");
	json_object_put(r);
	r = call_ok(c, "log_set_level", "{\"level\":\"info\"}");
	assert_string_equal(jget(r, "previous"), "debug");
	json_object_put(r);
	cclose(c);
}

static int log_count(const struct dproc *d, const char *what)
{
	char line[2048];
	int n = 0;
	FILE *f = fopen(d->log, "r");

	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	if (f)
		fclose(f);
	return n;
}

/* log_set_level reaches the devices' lines, logged on the workers: a failing
 * command of a client is a debug line. */
static void test_log_level(void **state)
{
	struct fx *f = need_daemon(state);
	struct conn *c = cconnect(f->d.ctl);
	struct json_object *r;
	struct vfurt_client *vc;
	char g0[192];
	uint32_t v;
	int n;

	sockp(g0, sizeof(g0), f->dir, "g0");
	r = call_ok(c, "log_set_level", "{\"level\":\"debug\"}");
	json_object_put(r);
	vc = it_connect(g0, 0);
	assert_non_null(vc);
	assert_int_not_equal(it_rd32(vc, 99, 0, &v), 0); /* no region 99 */
	for (int i = 0; i < 500 && log_count(&f->d, "REGION_READ (msg_id") == 0; i++)
		usleep(10000);
	n = log_count(&f->d, "REGION_READ (msg_id");
	assert_true(n >= 1);
	r = call_ok(c, "log_set_level", "{\"level\":\"error\"}");
	json_object_put(r);
	assert_int_not_equal(it_rd32(vc, 99, 0, &v), 0);
	r = call_ok(c, "device_list", NULL); /* a round trip past the worker's pass */
	json_object_put(r);
	usleep(100000);
	assert_int_equal(log_count(&f->d, "REGION_READ (msg_id"), n);
	vfurt_client_close(vc);
	r = call_ok(c, "log_set_level", "{\"level\":\"info\"}");
	json_object_put(r);
	cclose(c);
}

/* Every protocol error and the bad params of each method: the right code, a message
 * naming the parameter, the connection still usable, the daemon alive. */
static void test_errors(void **state)
{
	static const struct {
		const char *method;
		const char *params;
		int code;
		const char *what;
	} cases[] = {
		{ "nope", NULL, -32601, "method not found: 'nope'" },
		{ "device_list", "[]", -32602, "\"params\" must be an object" },
		{ "device_list", "{\"x\":1}", -32602, "unknown parameter 'x'" },
		{ "runtime_stats", "{\"x\":1}", -32602, "unknown parameter 'x'" },
		{ "device_add", "{}", -32602, "missing \"type\"" },
		{ "device_add", "{\"type\":\"gpio\"}", -32602, "missing \"socket\"" },
		{ "device_add", "{\"type\":\"gpio\",\"socket\":5}", -32602, "socket: expected a string" },
		{ "device_add", "{\"type\":\"gpio\",\"socket\":\"/tmp/x.sock\",\"socket_mode\":600}",
		  -32602, "socket_mode: must be a string" },
		{ "device_add", "{\"type\":\"gpio\",\"socket\":\"/tmp/x.sock\",\"color\":\"red\"}",
		  -32602, "unknown key 'color'" },
		{ "device_add", "{\"type\":\"warp\",\"socket\":\"/tmp/x.sock\"}", -32602,
		  "unknown device type 'warp'" },
		{ "device_add", "{\"spec\":\"gpio\"}", -32602, "spec: missing socket" },
		{ "device_add", "{\"spec\":5}", -32602, "parameter 'spec' must be a string" },
		{ "device_add", "{\"spec\":\"gpio,socket=/tmp/x.sock\",\"name\":\"a\"}", -32602,
		  "unknown parameter 'name'" },
		{ "device_add", "{\"type\":\"gpio\",\"socket\":\"/tmp/x.sock\",\"name\":\"g0\"}",
		  -32002, "name 'g0' is already used" },
		{ "device_add", "{\"type\":\"gpio\",\"socket\":\"/tmp/x.sock\",\"name\":\"a b\"}",
		  -32602, "name='a b'" },
		{ "device_add", "{\"type\":\"gpio\",\"socket\":\"/tmp/x.sock\",\"core\":\"7\"}",
		  -32602, "core: CPU 7 is not in the cores list" },
		{ "device_remove", "{}", -32602, "missing parameter 'name'" },
		{ "device_remove", "{\"name\":5}", -32602, "parameter 'name' must be a string" },
		{ "device_remove", "{\"name\":\"zz\"}", -32001, "no device named 'zz'" },
		{ "device_remove", "{\"name\":\"g0\",\"timeout_ms\":-1}", -32602,
		  "parameter 'timeout_ms' must be 0..600000" },
		{ "device_remove", "{\"name\":\"g0\",\"timeout_ms\":600001}", -32602,
		  "parameter 'timeout_ms' must be 0..600000" },
		{ "device_remove", "{\"name\":\"g0\",\"timeout_ms\":\"5\"}", -32602,
		  "parameter 'timeout_ms' must be an integer" },
		{ "device_get", "{}", -32602, "missing parameter 'name'" },
		{ "device_get", "{\"name\":\"zz\"}", -32001, "no device named 'zz'" },
		{ "nvme_ns_add", "{\"name\":\"g0\",\"backend\":\"ram\",\"size\":\"1M\"}", -32602,
		  "not an NVMe controller" },
		{ "nvme_ns_add", "{\"name\":\"n0\",\"size\":\"1M\"}", -32602, "missing \"backend\"" },
		{ "nvme_ns_add", "{\"name\":\"n0\",\"backend\":\"ram\"}", -32602, "missing \"size\"" },
		{ "nvme_ns_add", "{\"name\":\"n0\",\"backend\":\"tape\",\"size\":\"1M\"}", -32602,
		  "backend: 'tape'" },
		{ "nvme_ns_add", "{\"name\":\"n0\",\"backend\":\"ram\",\"size\":\"1Q\"}", -32602,
		  "size: '1Q'" },
		{ "nvme_ns_add", "{\"name\":\"n0\",\"backend\":\"ram\",\"size\":\"1000\"}", -32602,
		  "not a multiple of the block size" },
		{ "nvme_ns_add", "{\"name\":\"n0\",\"backend\":\"ram\",\"size\":\"1M\",\"lba\":1024}",
		  -32602, "lba: '1024'" },
		{ "nvme_ns_add", "{\"name\":\"n0\",\"backend\":\"ram\",\"size\":\"1M\",\"nsid\":33}",
		  -32602, "nsid: 33 is out of range" },
		{ "nvme_ns_add", "{\"name\":\"n0\",\"backend\":\"ram\",\"size\":\"1M\",\"x\":1}",
		  -32602, "x: unknown key" },
		{ "nvme_ns_add", "{\"backend\":\"ram\",\"size\":\"1M\"}", -32602,
		  "missing parameter 'name'" },
		{ "nvme_ns_remove", "{\"name\":\"n0\"}", -32602, "missing parameter 'nsid'" },
		{ "nvme_ns_remove", "{\"name\":\"n0\",\"nsid\":0}", -32602,
		  "parameter 'nsid' must be 1..32" },
		{ "nvme_ns_remove", "{\"name\":\"zz\",\"nsid\":1}", -32001, "no device named 'zz'" },
		{ "nvme_ns_resize", "{\"name\":\"n0\",\"nsid\":1}", -32602, "missing parameter 'size'" },
		{ "nvme_ns_resize", "{\"name\":\"n0\",\"nsid\":1,\"size\":\"big\"}", -32602,
		  "parameter 'size' must be a size" },
		{ "nvme_ns_resize", "{\"name\":\"n0\",\"nsid\":1,\"size\":[1]}", -32602,
		  "parameter 'size' must be a size" },
		{ "log_set_level", "{}", -32602, "missing parameter 'level'" },
		{ "log_set_level", "{\"level\":\"loud\"}", -32602, "parameter 'level': 'loud'" },
		{ "config_save", "{\"path\":7}", -32602, "parameter 'path' must be a string" },
		{ "config_save", "{\"path\":\"/nonexistent/dir/x.json\"}", -32004, "cannot create" },
	};
	struct fx *f = need_daemon(state);
	struct conn *c = cconnect(f->d.ctl);
	struct json_object *r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		call_err(c, cases[i].method, cases[i].params, cases[i].code, cases[i].what);
	/* protocol errors */
	csend(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\n");
	check_error(c, -32700, "parse error", 5000);
	csend(c, "not json at all\n");
	check_error(c, -32700, "parse error", 5000);
	csend(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"device_list\"} trailing\n");
	check_error(c, -32700, "parse error", 5000);
	csend(c, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"device_list\"}]\n");
	check_error(c, -32600, "batches are not supported", 5000);
	csend(c, "{\"id\":1,\"method\":\"device_list\"}\n");
	check_error(c, -32600, "\"jsonrpc\" must be \"2.0\"", 5000);
	csend(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}\n");
	check_error(c, -32600, "\"method\" must be a string", 5000);
	csend(c, "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"device_list\"}\n");
	check_error(c, -32600, "\"id\" must be", 5000);
	csend(c, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"device_list\",\"x\":1}\n");
	check_error(c, -32600, "unknown member 'x'", 5000);
	csend(c, "17\n");
	check_error(c, -32600, "expected a JSON object", 5000);
	/* nesting deeper than the tokener's limit is a parse error, not a stack overflow */
	{
		char deep[4096] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"device_list\",\"params\":";
		size_t off = strlen(deep);

		for (int i = 0; i < 1000; i++)
			deep[off++] = '[';
		deep[off++] = '\n';
		deep[off] = '\0';
		csend(c, deep);
		check_error(c, -32700, "parse error", 5000);
	}
	/* still the same connection, still served */
	r = call_ok(c, "device_list", NULL);
	json_object_put(r);
	cclose(c);
	assert_true(log_has(&f->d, "method not found"));
}

/* A 10 MiB line: refused after 1 MiB with -32600, the connection closed, without the
 * daemon allocating the rest or blocking; then others are served. */
static void test_huge_request(void **state)
{
	struct fx *f = need_daemon(state);
	struct conn *c = cconnect(f->d.ctl);
	struct conn *other;
	struct json_object *r;
	size_t total = 10u << 20;
	size_t sent = 0;
	char *junk = malloc(1 << 16);
	long hwm0 = 0, hwm1 = 0;
	char line[256];
	char path[64];
	FILE *st;
	int rc;

	assert_non_null(junk);
	memset(junk, 'x', 1 << 16);
	memcpy(junk, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"", 34);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)f->d.pid);
	st = fopen(path, "r");
	while (st && fgets(line, sizeof(line), st))
		sscanf(line, "VmHWM: %ld kB", &hwm0);
	if (st)
		fclose(st);
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	for (int spins = 0; sent < total && spins < 20000; spins++) {
		ssize_t n = send(c->fd, junk, 1 << 16, MSG_NOSIGNAL);
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };

		if (n > 0) {
			sent += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN)
			break; /* closed by the daemon: expected */
		if (poll(&p, 1, 100) < 0)
			break;
	}
	free(junk);
	fcntl(c->fd, F_SETFL, 0);
	assert_true(sent < total); /* the daemon stopped reading */
	rc = crecv_line(c, 5000);
	if (rc == 0) {
		assert_non_null(strstr(c->line, "-32600"));
		assert_non_null(strstr(c->line, "request too large"));
		rc = crecv_line(c, 5000);
	}
	assert_int_equal(rc, -ECONNRESET);
	cclose(c);
	st = fopen(path, "r");
	while (st && fgets(line, sizeof(line), st))
		sscanf(line, "VmHWM: %ld kB", &hwm1);
	if (st)
		fclose(st);
	/* one 1 MiB buffer, never 10 (sanitizers' shadow memory and quarantine blur RSS) */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	assert_true(hwm1 - hwm0 < 6 * 1024);
#else
	(void)hwm0;
	(void)hwm1;
#endif
	other = cconnect(f->d.ctl);
	r = call_ok(other, "device_list", NULL);
	json_object_put(r);
	cclose(other);
}

/* A client that disconnects in the middle of a request, and one that writes requests
 * and never reads: neither stops the others. */
static void test_hostile_clients(void **state)
{
	struct fx *f = need_daemon(state);
	struct conn *half = cconnect(f->d.ctl);
	struct conn *deaf = cconnect(f->d.ctl);
	struct conn *idle = cconnect(f->d.ctl);
	struct conn *c;
	struct json_object *r;
	char *many;
	size_t n = 0;

	csend(half, "{\"jsonrpc\":\"2.0\",\"id\":1,\"meth");
	cclose(half);
	/* the deaf one: thousands of requests whose answers it never reads */
	many = malloc(3000 * 64);
	assert_non_null(many);
	for (int i = 0; i < 3000; i++)
		n += (size_t)snprintf(many + n, 64, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"device_list\"}\n", i);
	fcntl(deaf->fd, F_SETFL, O_NONBLOCK);
	(void)!send(deaf->fd, many, n, MSG_NOSIGNAL);
	free(many);
	/* a second client works while one is idle-connected and another deaf */
	c = cconnect(f->d.ctl);
	for (int i = 0; i < 20; i++) {
		r = call_ok(c, "device_list", NULL);
		json_object_put(r);
	}
	/* a request in pieces, and a client that reads its answers late: both served */
	csend(c, "{\"jsonrpc\":\"2.0\",\"id\":7,");
	usleep(100000);
	csend(c, "\"method\":\"device_list\"}\n");
	r = cresponse(c, 5000);
	assert_non_null(strstr(c->line, "\"result\":["));
	json_object_put(r);
	for (int i = 0; i < 400; i++)
		crequest(c, "runtime_stats", NULL);
	usleep(300000);
	for (int i = 0; i < 400; i++) {
		r = cresponse(c, 5000);
		assert_non_null(strstr(c->line, "\"workers\""));
		json_object_put(r);
	}
	cclose(c);
	cclose(deaf);
	cclose(idle);
	c = cconnect(f->d.ctl);
	r = call_ok(c, "runtime_stats", NULL);
	json_object_put(r);
	cclose(c);
}

/* 16 clients at once are served; the 17th is told why and closed; a slot freed is reused. */
static void test_client_limit(void **state)
{
	struct fx *f = need_daemon(state);
	struct conn *cs[16];
	struct conn *extra;
	struct json_object *r;

	for (int i = 0; i < 16; i++) {
		cs[i] = cconnect(f->d.ctl);
		r = call_ok(cs[i], "device_list", NULL); /* accepted for sure */
		json_object_put(r);
	}
	extra = cconnect(f->d.ctl);
	check_error(extra, -32000, "too many control clients", 5000);
	assert_int_equal(crecv_line(extra, 5000), -ECONNRESET);
	cclose(extra);
	for (int i = 0; i < 16; i++) {
		r = call_ok(cs[i], "device_list", NULL);
		json_object_put(r);
	}
	cclose(cs[3]);
	usleep(50000);
	extra = cconnect(f->d.ctl);
	r = call_ok(extra, "device_list", NULL);
	json_object_put(r);
	cclose(extra);
	for (int i = 0; i < 16; i++)
		if (i != 3)
			cclose(cs[i]);
}

/* device_add (a spec and a JSON object), a real client attaches; duplicates refused;
 * device_remove with no client, with one that honours REQ, with one that ignores it. */
static void test_add_attach_remove(void **state)
{
	struct fx *f = need_daemon(state);
	struct conn *c = cconnect(f->d.ctl);
	struct conn *c2 = cconnect(f->d.ctl);
	struct vfurt_client *vc;
	struct json_object *r;
	char p1[192], p2[192], params[512];
	struct stat st;
	uint32_t v;
	int efd;

	sockp(p1, sizeof(p1), f->dir, "live1");
	sockp(p2, sizeof(p2), f->dir, "live2");
	snprintf(params, sizeof(params), "{\"spec\":\"gpio,socket=%s,socket_mode=0640\"}", p1);
	r = call_ok(c, "device_add", params);
	assert_string_equal(jget(r, "name"), "live1");
	assert_string_equal(jget(r, "socket"), p1);
	assert_non_null(jget(r, "home_worker"));
	json_object_put(r);
	assert_int_equal(stat(p1, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	snprintf(params, sizeof(params), "{\"type\":\"gpio\",\"socket\":\"%s\",\"name\":\"gl2\","
		 "\"toggle_period\":5}", p2);
	r = call_ok(c, "device_add", params);
	assert_string_equal(jget(r, "name"), "gl2");
	json_object_put(r);
	/* same socket (another spelling), same name */
	snprintf(params, sizeof(params), "{\"spec\":\"gpio,socket=%s/./live1.sock,name=other\"}",
		 f->dir);
	call_err(c, "device_add", params, -32002, "is already used by device live1");
	snprintf(params, sizeof(params), "{\"spec\":\"gpio,socket=%s/zz.sock,name=gl2\"}", f->dir);
	call_err(c, "device_add", params, -32002, "name 'gl2' is already used");
	call_err(c, "device_add", "{\"spec\":\"gpio,socket=/nonexistent/dir/a.sock\"}", -32004,
		 "cannot listen on /nonexistent/dir/a.sock");

	/* a real vfio-user client on the new socket */
	vc = it_connect(p1, 0);
	assert_non_null(vc);
	assert_int_equal(it_rd32(vc, VFIO_PCI_BAR2_REGION_INDEX, 0, &v), 0);
	r = call_ok(c, "device_get", "{\"name\":\"live1\"}");
	assert_non_null(strstr(c->line, "\"connected\":true"));
	json_object_put(r);

	/* it honours REQ: asked, it detaches, "released" */
	efd = it_eventfd();
	assert_true(efd >= 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(vc, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	crequest(c, "device_remove", "{\"name\":\"live1\",\"timeout_ms\":20000}");
	assert_true(it_readable(efd, 10000));
	/* meanwhile the daemon serves others: a second client, and a second removal is refused */
	r = call_ok(c2, "device_list", NULL);
	assert_non_null(list_find(r, "live1"));
	assert_non_null(strstr(c2->line, "\"removing\":true"));
	json_object_put(r);
	call_err(c2, "device_remove", "{\"name\":\"live1\"}", -32003, "already being removed");
	vfurt_client_close(vc);
	close(efd);
	r = cresponse(c, 15000);
	assert_non_null(strstr(c->line, "\"removed\":\"live1\""));
	assert_non_null(strstr(c->line, "\"how\":\"released\""));
	json_object_put(r);
	assert_int_not_equal(stat(p1, &st), 0);
	wait_listed(c2, "live1", false);

	/* it ignores REQ: forced after the timeout */
	vc = it_connect(p2, 0);
	assert_non_null(vc);
	efd = it_eventfd();
	assert_int_equal(vfurt_client_set_irqs_eventfd(vc, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	r = call_ok(c, "device_remove", "{\"name\":\"gl2\",\"timeout_ms\":300}");
	assert_string_equal(jget(r, "how"), "forced");
	json_object_put(r);
	assert_true(it_server_closed(vc));
	vfurt_client_close(vc);
	close(efd);

	/* no client: idle; the socket is free again at once; asked by a client that
	 * half-closes its side right after the request (it still gets the answer) */
	snprintf(params, sizeof(params), "{\"spec\":\"gpio,socket=%s\"}", p1);
	r = call_ok(c, "device_add", params);
	json_object_put(r);
	{
		struct conn *h = cconnect(f->d.ctl);

		crequest(h, "device_remove", "{\"name\":\"live1\"}");
		assert_int_equal(shutdown(h->fd, SHUT_WR), 0);
		r = cresponse(h, 15000);
		assert_non_null(strstr(h->line, "\"removed\":\"live1\""));
		assert_non_null(strstr(h->line, "\"how\":\"idle\""));
		json_object_put(r);
		assert_int_equal(crecv_line(h, 5000), -ECONNRESET); /* then closed */
		cclose(h);
	}
	/* a client that asks for a removal and leaves: the removal still happens */
	r = call_ok(c, "device_add", params);
	json_object_put(r);
	crequest(c2, "device_remove", "{\"name\":\"live1\"}");
	cclose(c2);
	wait_listed(c, "live1", false);
	cclose(c);
}

/* NVMe namespaces added, resized, removed live; device_get shows them. */
static void test_namespaces(void **state)
{
	struct fx *f = need_daemon(state);
	struct conn *c = cconnect(f->d.ctl);
	struct json_object *r;
	int nsid;

	r = call_ok(c, "device_get", "{\"name\":\"n0\"}");
	assert_non_null(strstr(c->line, "\"namespaces\":[{\"nsid\":1"));
	json_object_put(r);
	r = call_ok(c, "nvme_ns_add", "{\"name\":\"n0\",\"backend\":\"ram\",\"size\":\"8M\","
		    "\"lba\":4096}");
	{
		struct json_object *v;

		assert_true(json_object_object_get_ex(r, "nsid", &v));
		nsid = json_object_get_int(v);
	}
	assert_int_equal(nsid, 2);
	json_object_put(r);
	call_err(c, "nvme_ns_add", "{\"name\":\"n0\",\"backend\":\"ram\",\"size\":\"8M\",\"nsid\":2}",
		 -32002, "nsid in use");
	r = call_ok(c, "device_get", "{\"name\":\"n0\"}");
	assert_non_null(strstr(c->line, "\"nsid\":2,\"block_size\":4096"));
	json_object_put(r);
	call_err(c, "nvme_ns_resize", "{\"name\":\"n0\",\"nsid\":2,\"size\":\"6k\"}", -32602,
		 "not a multiple of the block size 4096");
	r = call_ok(c, "nvme_ns_resize", "{\"name\":\"n0\",\"nsid\":2,\"size\":\"16M\"}");
	assert_string_equal(jget(r, "num_blocks"), "4096");
	json_object_put(r);
	r = call_ok(c, "device_get", "{\"name\":\"n0\"}");
	assert_non_null(strstr(c->line, "\"num_blocks\":4096"));
	json_object_put(r);
	r = call_ok(c, "nvme_ns_remove", "{\"name\":\"n0\",\"nsid\":2}");
	json_object_put(r);
	call_err(c, "nvme_ns_remove", "{\"name\":\"n0\",\"nsid\":2}", -32602, "no such namespace");
	cclose(c);
}

/* config_save of a daemon with devices added live, then a second daemon from the file. */
static void test_config_save_restart(void **state)
{
	struct fx *f = need_daemon(state);
	struct dproc b, b2;
	struct conn *c;
	struct json_object *r;
	char p[192], params[512], saved[192];

	dinit(&b, f->dir, "save");
	sockp(p, sizeof(p), f->dir, "s0");
	{
		char dev[256];
		const char *args[] = { "--cores=0", "--device", dev, NULL };

		snprintf(dev, sizeof(dev), "gpio,socket=%s,name=first", p);
		dstart(&b, args);
	}
	c = cconnect(b.ctl);
	call_err(c, "config_save", NULL, -32602, "missing parameter 'path'");
	sockp(p, sizeof(p), f->dir, "s1");
	snprintf(params, sizeof(params), "{\"type\":\"nvme\",\"socket\":\"%s\",\"backend\":\"ram\","
		 "\"size\":\"4M\",\"queues\":1,\"namespaces\":2}", p);
	r = call_ok(c, "device_add", params);
	json_object_put(r);
	/* the spec's namespace 2 removed and 1 resized: saved as such */
	r = call_ok(c, "nvme_ns_remove", "{\"name\":\"s1\",\"nsid\":2}");
	json_object_put(r);
	r = call_ok(c, "nvme_ns_resize", "{\"name\":\"s1\",\"nsid\":1,\"size\":\"8M\"}");
	json_object_put(r);
	/* a namespace added live (it takes nsid 2) is saved with its controller; one
	 * added and removed is not */
	r = call_ok(c, "nvme_ns_add", "{\"name\":\"s1\",\"backend\":\"ram\",\"size\":\"2M\","
		    "\"lba\":4096}");
	json_object_put(r);
	r = call_ok(c, "nvme_ns_add", "{\"name\":\"s1\",\"backend\":\"null\",\"size\":\"1M\"}");
	json_object_put(r);
	r = call_ok(c, "nvme_ns_remove", "{\"name\":\"s1\",\"nsid\":3}");
	json_object_put(r);
	r = call_ok(c, "nvme_ns_resize", "{\"name\":\"s1\",\"nsid\":2,\"size\":\"3M\"}");
	json_object_put(r);
	sockp(p, sizeof(p), f->dir, "s2");
	snprintf(params, sizeof(params), "{\"spec\":\"gpio,socket=%s,toggle_period=9\"}", p);
	r = call_ok(c, "device_add", params);
	json_object_put(r);
	r = call_ok(c, "device_remove", "{\"name\":\"first\"}");
	json_object_put(r);
	r = call_ok(c, "log_set_level", "{\"level\":\"warn\"}");
	json_object_put(r);
	snprintf(saved, sizeof(saved), "%s/saved.json", f->dir);
	snprintf(params, sizeof(params), "{\"path\":\"%s\"}", saved);
	r = call_ok(c, "config_save", params);
	assert_string_equal(jget(r, "devices"), "2");
	json_object_put(r);
	cclose(c);
	assert_int_equal(dstop(&b), 0);

	dinit(&b2, f->dir, "save2");
	{
		const char *args[] = { "--config", saved, NULL };

		dstart(&b2, args);
	}
	c = cconnect(b2.ctl);
	r = call_ok(c, "device_list", NULL);
	assert_int_equal(json_object_array_length(r), 2);
	assert_non_null(list_find(r, "s1"));
	assert_non_null(list_find(r, "s2"));
	assert_null(list_find(r, "first"));
	json_object_put(r);
	r = call_ok(c, "device_get", "{\"name\":\"s2\"}");
	assert_non_null(strstr(c->line, "\"toggle_period\":\"9\""));
	json_object_put(r);
	r = call_ok(c, "device_get", "{\"name\":\"s1\"}");
	assert_non_null(strstr(c->line, "{\"nsid\":1,\"block_size\":512,\"num_blocks\":16384"));
	assert_non_null(strstr(c->line, "{\"nsid\":2,\"block_size\":4096,\"num_blocks\":768"));
	assert_null(strstr(c->line, "{\"nsid\":3,"));
	json_object_put(r);
	/* the level was saved too */
	r = call_ok(c, "log_set_level", "{\"level\":\"info\"}");
	assert_string_equal(jget(r, "previous"), "warn");
	json_object_put(r);
	cclose(c);
	assert_int_equal(dstop(&b2), 0);
}

/* SIGHUP: file devices added, removed, replaced; --device and RPC devices left alone;
 * a broken file changes nothing. */
static void test_sighup(void **state)
{
	struct fx *f = need_daemon(state);
	struct dproc h;
	struct conn *c;
	struct json_object *r;
	char a[192], b[192], k[192], n[192], x[192], rp[192], v[192], text[2048], params[256];

	dinit(&h, f->dir, "hup");
	sockp(a, sizeof(a), f->dir, "ha");
	sockp(b, sizeof(b), f->dir, "hb");
	sockp(k, sizeof(k), f->dir, "hk");
	sockp(n, sizeof(n), f->dir, "hn");
	sockp(x, sizeof(x), f->dir, "hx");
	sockp(rp, sizeof(rp), f->dir, "hr");
	sockp(v, sizeof(v), f->dir, "hv");
	snprintf(text, sizeof(text), "{\"devices\": [{\"type\": \"gpio\", \"socket\": \"%s\"},"
		 "{\"type\": \"gpio\", \"socket\": \"%s\", \"toggle_period\": 3},"
		 "{\"type\": \"nvme\", \"socket\": \"%s\", \"backend\": \"null\", \"size\": \"4M\"},"
		 "{\"type\": \"gpio\", \"socket\": \"%s\"}]}\n", a, b, v, k);
	write_file(h.cfg, text);
	{
		char dev[256];
		const char *args[] = { "--config", h.cfg, "--device", dev, NULL };

		snprintf(dev, sizeof(dev), "gpio,socket=%s", x);
		dstart(&h, args);
	}
	c = cconnect(h.ctl);
	snprintf(params, sizeof(params), "{\"spec\":\"gpio,socket=%s\"}", rp);
	r = call_ok(c, "device_add", params);
	json_object_put(r);
	/* a namespace added live to a file device does not make it a changed one */
	r = call_ok(c, "nvme_ns_add", "{\"name\":\"hv\",\"backend\":\"null\",\"size\":\"1M\"}");
	json_object_put(r);
	/* a file that does not load changes nothing */
	write_file(h.cfg, "{\"devices\": [\n");
	kill(h.pid, SIGHUP);
	for (int i = 0; i < 500 && !log_has(&h, "nothing changed"); i++)
		usleep(10000);
	assert_true(log_has(&h, "nothing changed"));
	r = call_ok(c, "device_list", NULL);
	assert_int_equal(json_object_array_length(r), 6);
	json_object_put(r);
	/* ha leaves, hb changes, hk and hv stay, hn arrives; cores ignored, log_level applied */
	snprintf(text, sizeof(text), "{\"cores\": \"0\", \"poll\": \"busy\", \"log_level\": \"debug\","
		 "\"devices\": [{\"type\": \"gpio\", \"socket\": \"%s\", \"toggle_period\": 7},"
		 "{\"type\": \"gpio\", \"socket\": \"%s\"},"
		 "{\"type\": \"nvme\", \"socket\": \"%s\", \"backend\": \"null\", \"size\": \"4M\"},"
		 "{\"type\": \"gpio\", \"socket\": \"%s\"}]}\n", b, k, v, n);
	write_file(h.cfg, text);
	kill(h.pid, SIGHUP);
	wait_listed(c, "hn", true);
	wait_listed(c, "ha", false);
	for (int i = 0; i < 500; i++) {
		r = call_ok(c, "device_get", "{\"name\":\"hb\"}");
		json_object_put(r);
		if (strstr(c->line, "\"toggle_period\":\"7\""))
			break;
		usleep(10000);
	}
	assert_non_null(strstr(c->line, "\"toggle_period\":\"7\""));
	r = call_ok(c, "device_list", NULL);
	assert_int_equal(json_object_array_length(r), 6);
	assert_non_null(list_find(r, "hk"));
	assert_non_null(list_find(r, "hx")); /* --device: left alone */
	assert_non_null(list_find(r, "hr")); /* rpc: left alone */
	json_object_put(r);
	r = call_ok(c, "log_set_level", "{\"level\":\"info\"}");
	assert_string_equal(jget(r, "previous"), "debug");
	json_object_put(r);
	assert_true(log_has(&h, "poll ignored"));
	assert_true(log_has(&h, "hb: changed in the config file: replacing"));
	assert_true(log_has(&h, "ha: no longer in the config file: removing"));
	assert_false(log_has(&h, "hv: changed"));
	r = call_ok(c, "device_get", "{\"name\":\"hv\"}");
	assert_non_null(strstr(c->line, "{\"nsid\":2,"));
	json_object_put(r);
	/* config_save over the --config file, SIGHUP: nothing to do */
	r = call_ok(c, "config_save", NULL);
	json_object_put(r);
	kill(h.pid, SIGHUP);
	for (int i = 0; i < 500 && log_count(&h, "SIGHUP: done") < 2; i++) /* the first was the broken file: it says nothing changed */
		usleep(10000);
	assert_int_equal(log_count(&h, "SIGHUP: done"), 2);
	assert_int_equal(log_count(&h, "changed in the config file: replacing"), 1);
	assert_int_equal(log_count(&h, "no longer in the config file"), 1);
	r = call_ok(c, "device_list", NULL);
	assert_int_equal(json_object_array_length(r), 6);
	assert_string_equal(jget(list_find(r, "hx"), "origin"), "config file"); /* taken over */
	json_object_put(r);
	cclose(c);
	assert_int_equal(dstop(&h), 0);
}

/* vfu-ctl's subcommands, for people and with --json, and its exit codes. */
static void test_vfu_ctl(void **state)
{
	struct fx *f = need_daemon(state);
	char out[16384], p[192], saved[192];
	int rc;

	if (access(VFUCTL, X_OK) != 0)
		test_skip("no %s (not built)", VFUCTL);
	sockp(p, sizeof(p), f->dir, "ctl1");
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s add gpio,socket=%s,name=ctl1 2>&1", VFUCTL,
		     f->d.ctl, p);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "added ctl1 on"));
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s list 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "NAME"));
	assert_non_null(strstr(out, "ctl1"));
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s --json list 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 0);
	{
		struct json_object *j = json_tokener_parse(out);

		assert_non_null(j);
		assert_true(json_object_is_type(j, json_type_array));
		assert_non_null(list_find(j, "ctl1"));
		json_object_put(j);
	}
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s get ctl1 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "ctl1: gpio device on"));
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s --json get ctl1 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "\"home_worker\""));
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s get nosuch 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 3);
	assert_non_null(strstr(out, "no device named 'nosuch'"));
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s log-level debug 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "log level debug"));
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s log-level info 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 0);
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s log-level loud 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 3);
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s call device_get '{\"name\":\"ctl1\"}' 2>&1",
		     VFUCTL, f->d.ctl);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "\"name\": \"ctl1\""));
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s call nosuch 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 3);
	assert_non_null(strstr(out, "method not found"));
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s call 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 2);
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s remove ctl1 --timeout 100 2>&1", VFUCTL,
		     f->d.ctl);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "removed ctl1 (idle)"));
	snprintf(saved, sizeof(saved), "%s/ctl-saved.json", f->dir);
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s config-save %s 2>&1", VFUCTL, f->d.ctl, saved);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "saved 2 devices to"));
	assert_int_equal(access(saved, R_OK), 0);
	/* config-save without a path: the daemon's --config file */
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s config-save 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, f->d.cfg));
	/* stats: by path, by pid, pretty JSON */
	rc = it_run_cmd(out, sizeof(out), "%s stats %s 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "\n  \"workers\": ["));
	rc = it_run_cmd(out, sizeof(out), "%s stats %d 2>&1", VFUCTL, (int)f->d.pid);
	assert_int_equal(rc, 0);
	/* stats on a device socket: said, not hung */
	sockp(p, sizeof(p), f->dir, "g0");
	rc = it_run_cmd(out, sizeof(out), "timeout 20 %s stats %s 2>&1", VFUCTL, p);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "is not a vfu-rt control socket (a vfio-user device socket?)"));
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s/none.ctl list 2>&1", VFUCTL, f->dir);
	assert_int_equal(rc, 1);
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s remove 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 2);
	/* last: needs NVMe namespace management */
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s ns-add n0 backend=ram size=4M 2>&1", VFUCTL,
		     f->d.ctl);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "namespace 2 added"));
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s ns-resize n0 2 8M 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 0);
	rc = it_run_cmd(out, sizeof(out), "%s --socket %s ns-remove n0 2 2>&1", VFUCTL, f->d.ctl);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "namespace 2 removed"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socket_and_basics),
		cmocka_unit_test(test_log_level),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_huge_request),
		cmocka_unit_test(test_hostile_clients),
		cmocka_unit_test(test_client_limit),
		cmocka_unit_test(test_add_attach_remove),
		cmocka_unit_test(test_namespaces),
		cmocka_unit_test(test_config_save_restart),
		cmocka_unit_test(test_sighup),
		cmocka_unit_test(test_vfu_ctl),
	};

	signal(SIGPIPE, SIG_IGN);
	return test_run_group("it_rpc", tests, setup, teardown);
}
