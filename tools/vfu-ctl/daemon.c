/* vfu-ctl's daemon commands: one JSON-RPC method each on a vfu-rt control socket, printed for people or as JSON. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctl_internal.h"
#include "runtime/config.h"

/* device_remove's default timeout (the daemon's), and the margin we wait beyond it. */
#define REMOVE_DEFAULT_MS 10000
#define REMOVE_MARGIN_MS 5000

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v)
		return "-";
	return json_object_get_string(v);
}

static void print_pretty(struct json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						       JSON_C_TO_STRING_SPACED |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void print_list(struct json_object *r)
{
	size_t n = json_object_is_type(r, json_type_array) ? json_object_array_length(r) : 0;

	printf("%-16s %-5s %-6s %-9s %s\n", "NAME", "TYPE", "WORKER", "CLIENT", "SOCKET");
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(r, i);
		struct json_object *rm = NULL, *c = NULL;
		const char *client;

		json_object_object_get_ex(e, "removing", &rm);
		json_object_object_get_ex(e, "connected", &c);
		client = rm && json_object_get_boolean(rm) ? "removing" :
			 c && json_object_get_boolean(c) ? "attached" : "-";
		printf("%-16s %-5s %-6s %-9s %s\n", jstr(e, "name"), jstr(e, "type"),
		       jstr(e, "home_worker"), client, jstr(e, "socket"));
	}
	if (n == 0)
		printf("(no devices)\n");
}

static void print_get(struct json_object *r)
{
	struct json_object *v;

	printf("%s: %s device on %s, home worker %s, from the %s\n", jstr(r, "name"),
	       jstr(r, "type"), jstr(r, "socket"), jstr(r, "home_worker"), jstr(r, "origin"));
	json_object_object_get_ex(r, "connected", &v);
	printf("  client: %s%s\n", v && json_object_get_boolean(v) ? "attached" : "none",
	       json_object_object_get_ex(r, "removing", &v) && json_object_get_boolean(v) ?
	       " (being removed)" : "");
	if (json_object_object_get_ex(r, "msgs", &v))
		printf("  messages: %s, errors: %s\n", jstr(r, "msgs"), jstr(r, "errors"));
	if (json_object_object_get_ex(r, "config", &v)) {
		printf("  config:");
		json_object_object_foreach(v, k, kv) {
			if (strcmp(k, "ns"))
				printf(" %s=%s", k, json_object_get_string(kv));
		}
		printf("\n");
	}
	if (json_object_object_get_ex(r, "queues", &v) && json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *q = json_object_array_get_idx(v, i);

			printf("  queue %zu: worker %s\n", i, jstr(q, "worker"));
		}
	}
	if (json_object_object_get_ex(r, "namespaces", &v) &&
	    json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *ns = json_object_array_get_idx(v, i);

			printf("  namespace %s: %s blocks of %s bytes (%s bytes), %s\n", jstr(ns, "nsid"),
			       jstr(ns, "num_blocks"), jstr(ns, "block_size"), jstr(ns, "size"),
			       jstr(ns, "backend"));
		}
	}
}

/* KEY=VALUE words into an object: nsid and lba as integers, the rest as strings. */
static int kv_params(struct json_object *o, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		char key[64];
		int n;

		if (!eq || eq == argv[i] || (size_t)(eq - argv[i]) >= sizeof(key)) {
			fprintf(stderr, "vfu-ctl: '%s': expected KEY=VALUE\n", argv[i]);
			return -EINVAL;
		}
		snprintf(key, sizeof(key), "%.*s", (int)(eq - argv[i]), argv[i]);
		if ((!strcmp(key, "nsid") || !strcmp(key, "lba")) &&
		    !ctl_parse_int(eq + 1, 0, 1 << 30, &n))
			json_object_object_add(o, key, json_object_new_int(n));
		else
			json_object_object_add(o, key, json_object_new_string(eq + 1));
	}
	return 0;
}

struct cmd {
	const char *name;
	const char *method;
	int min_args;
	int max_args;
	const char *usage;
};

static const struct cmd cmds[] = {
	{ "stats", "runtime_stats", 0, 1, "stats [CONTROL-SOCKET|PID]" },
	{ "add", "device_add", 1, 1, "add SPEC (TYPE,socket=PATH[,key=value...] or a JSON object)" },
	{ "remove", "device_remove", 1, 3, "remove NAME [--timeout MS]" },
	{ "list", "device_list", 0, 0, "list" },
	{ "get", "device_get", 1, 1, "get NAME" },
	{ "ns-add", "nvme_ns_add", 2, 7, "ns-add NAME backend=B size=S [nsid=N] [lba=512|4096] [direct=off|on|try]" },
	{ "ns-remove", "nvme_ns_remove", 2, 2, "ns-remove NAME NSID" },
	{ "ns-resize", "nvme_ns_resize", 3, 3, "ns-resize NAME NSID SIZE" },
	{ "log-level", "log_set_level", 1, 1, "log-level error|warn|info|debug" },
	{ "config-save", "config_save", 0, 1, "config-save [PATH]" },
	{ "upgrade", "upgrade", 0, 4, "upgrade [--exec PATH] [--timeout-ms MS]" },
	{ "call", NULL, 1, 2, "call METHOD [JSON-PARAMS]" },
};

static int usage_err(const struct cmd *c)
{
	fprintf(stderr, "vfu-ctl: usage: vfu-ctl [--socket PATH|PID] [--json] %s\n", c->usage);
	return EXIT_USAGE;
}

/* Build the params of c from its arguments; *timeout may grow (remove). */
static int build_params(const struct cmd *c, int argc, char **argv, struct json_object *p,
			int *timeout)
{
	int n;

	if (!strcmp(c->name, "add")) {
		if (argv[0][0] == '{') {
			struct json_object *j = json_tokener_parse(argv[0]);

			if (!j || !json_object_is_type(j, json_type_object)) {
				json_object_put(j);
				fprintf(stderr, "vfu-ctl: add: '%s' is not a JSON object\n", argv[0]);
				return EXIT_USAGE;
			}
			json_object_object_foreach(j, k, v) {
				json_object_object_add(p, k, json_object_get(v));
			}
			json_object_put(j);
		} else {
			json_object_object_add(p, "spec", json_object_new_string(argv[0]));
		}
	} else if (!strcmp(c->name, "remove")) {
		int ms = REMOVE_DEFAULT_MS;

		json_object_object_add(p, "name", json_object_new_string(argv[0]));
		if (argc == 2 || (argc == 3 && strcmp(argv[1], "--timeout")))
			return usage_err(c);
		if (argc == 3) {
			if (ctl_parse_int(argv[2], 0, 600000, &ms)) {
				fprintf(stderr, "vfu-ctl: remove: --timeout needs milliseconds "
					"(0..600000)\n");
				return EXIT_USAGE;
			}
			json_object_object_add(p, "timeout_ms", json_object_new_int(ms));
		}
		if (ms + REMOVE_MARGIN_MS > *timeout)
			*timeout = ms + REMOVE_MARGIN_MS;
	} else if (!strcmp(c->name, "get")) {
		json_object_object_add(p, "name", json_object_new_string(argv[0]));
	} else if (!strcmp(c->name, "ns-add")) {
		json_object_object_add(p, "name", json_object_new_string(argv[0]));
		if (kv_params(p, argc - 1, argv + 1))
			return EXIT_USAGE;
	} else if (!strcmp(c->name, "ns-remove") || !strcmp(c->name, "ns-resize")) {
		json_object_object_add(p, "name", json_object_new_string(argv[0]));
		if (ctl_parse_int(argv[1], 1, 1 << 30, &n)) {
			fprintf(stderr, "vfu-ctl: %s: '%s' is not a namespace id\n", c->name, argv[1]);
			return EXIT_USAGE;
		}
		json_object_object_add(p, "nsid", json_object_new_int(n));
		if (argc == 3)
			json_object_object_add(p, "size", json_object_new_string(argv[2]));
	} else if (!strcmp(c->name, "log-level")) {
		json_object_object_add(p, "level", json_object_new_string(argv[0]));
	} else if (!strcmp(c->name, "upgrade")) {
		for (int i = 0; i < argc; i += 2) {
			if (i + 1 >= argc)
				return usage_err(c);
			if (!strcmp(argv[i], "--exec")) {
				json_object_object_add(p, "exec", json_object_new_string(argv[i + 1]));
			} else if (!strcmp(argv[i], "--timeout-ms")) {
				if (ctl_parse_int(argv[i + 1], 1, 600000, &n)) {
					fprintf(stderr, "vfu-ctl: upgrade: --timeout-ms needs "
						"milliseconds (1..600000)\n");
					return EXIT_USAGE;
				}
				json_object_object_add(p, "timeout_ms", json_object_new_int(n));
			} else {
				return usage_err(c);
			}
		}
		/* each of the daemon's phases may take its timeout */
		n = 10000;
		if (json_object_object_get_ex(p, "timeout_ms", NULL))
			n = json_object_get_int(json_object_object_get(p, "timeout_ms"));
		if (3 * n + 5000 > *timeout)
			*timeout = 3 * n + 5000;
	} else if (!strcmp(c->name, "config-save") && argc == 1) {
		char cwd[4096], abs[8192];

		/* the daemon's working directory is not ours */
		if (argv[0][0] != '/' && getcwd(cwd, sizeof(cwd))) {
			snprintf(abs, sizeof(abs), "%s/%s", cwd, argv[0]);
			json_object_object_add(p, "path", json_object_new_string(abs));
		} else {
			json_object_object_add(p, "path", json_object_new_string(argv[0]));
		}
	}
	return 0;
}

static void print_result(const struct cmd *c, struct json_object *r, const struct ctl_opts *co)
{
	if (co->json || !strcmp(c->name, "stats") || !strcmp(c->name, "call")) {
		print_pretty(r);
	} else if (!strcmp(c->name, "add")) {
		printf("added %s on %s (worker %s)\n", jstr(r, "name"), jstr(r, "socket"),
		       jstr(r, "home_worker"));
	} else if (!strcmp(c->name, "remove")) {
		printf("removed %s (%s)\n", jstr(r, "removed"), jstr(r, "how"));
	} else if (!strcmp(c->name, "list")) {
		print_list(r);
	} else if (!strcmp(c->name, "get")) {
		print_get(r);
	} else if (!strcmp(c->name, "ns-add")) {
		printf("namespace %s added\n", jstr(r, "nsid"));
	} else if (!strcmp(c->name, "ns-remove")) {
		printf("namespace %s removed\n", jstr(r, "removed"));
	} else if (!strcmp(c->name, "ns-resize")) {
		printf("namespace %s: %s bytes (%s blocks)\n", jstr(r, "nsid"), jstr(r, "size"),
		       jstr(r, "num_blocks"));
	} else if (!strcmp(c->name, "log-level")) {
		printf("log level %s (was %s)\n", jstr(r, "level"), jstr(r, "previous"));
	} else if (!strcmp(c->name, "config-save")) {
		printf("saved %s devices to %s\n", jstr(r, "devices"), jstr(r, "path"));
	} else if (!strcmp(c->name, "upgrade")) {
		struct json_object *v;
		double ms = json_object_object_get_ex(r, "pause_us", &v) ?
			    (double)json_object_get_int64(v) / 1000.0 : 0.0;

		printf("upgraded: pid %s -> %s, pause %.1f ms (%s devices, %s fds, %s bytes)\n",
		       jstr(r, "old_pid"), jstr(r, "new_pid"), ms, jstr(r, "devices"),
		       jstr(r, "fds"), jstr(r, "bytes"));
	}
}

int ctl_cmd_daemon(int argc, char **argv, const struct ctl_opts *co)
{
	const struct cmd *c = NULL;
	struct json_object *params;
	struct json_object *r = NULL;
	const char *target = co->socket;
	const char *method;
	char path[VFURT_CONFIG_PATH_MAX + 1];
	char err[1024];
	int timeout = co->timeout_ms;
	int nargs = argc - 1;
	int fd;
	int rc;

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(cmds[i].name, argv[0]))
			c = &cmds[i];
	if (!c)
		return -1;
	if (nargs < c->min_args || nargs > c->max_args)
		return usage_err(c);
	if (!strcmp(c->name, "stats") && nargs == 0 && !target) {
		fprintf(stderr, "vfu-ctl: usage: vfu-ctl stats CONTROL-SOCKET|PID (or --socket)\n");
		return EXIT_USAGE;
	}
	/* `stats CONTROL-SOCKET|PID`, as before --socket */
	if (!strcmp(c->name, "stats") && nargs == 1) {
		if (target) {
			fprintf(stderr, "vfu-ctl: stats: give the daemon once (--socket or argument)\n");
			return EXIT_USAGE;
		}
		target = argv[1];
		nargs = 0;
	}
	method = c->method ? c->method : argv[1];
	params = json_object_new_object();
	if (!c->method && nargs == 2) {
		json_object_put(params);
		params = json_tokener_parse(argv[2]);
		if (!params || !json_object_is_type(params, json_type_object)) {
			json_object_put(params);
			fprintf(stderr, "vfu-ctl: call: '%s' is not a JSON object\n", argv[2]);
			return EXIT_USAGE;
		}
	} else if (c->method) {
		rc = build_params(c, nargs, argv + 1, params, &timeout);
		if (rc) {
			json_object_put(params);
			return rc;
		}
	}
	fd = ctl_daemon_connect(target, path, sizeof(path), err, sizeof(err));
	if (fd < 0) {
		json_object_put(params);
		fprintf(stderr, "vfu-ctl: %s: %s\n", c->name, err);
		return fd == -EINVAL ? EXIT_USAGE : 1;
	}
	rc = ctl_rpc_call(fd, path, method, params, timeout, &r, err, sizeof(err));
	close(fd);
	if (rc == CTL_DAEMON_ERROR) {
		if (co->json)
			print_pretty(r);
		fprintf(stderr, "vfu-ctl: %s: %s\n", c->name, err);
		json_object_put(r);
		return EXIT_DAEMON_ERROR;
	}
	if (rc) {
		fprintf(stderr, "vfu-ctl: %s: %s\n", c->name, err);
		return 1;
	}
	print_result(c, r, co);
	json_object_put(r);
	return 0;
}
