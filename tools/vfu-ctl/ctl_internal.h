/* vfu-ctl internals: the options every command takes and the commands main dispatches to. */
#ifndef VFURT_TOOLS_VFU_CTL_INTERNAL_H
#define VFURT_TOOLS_VFU_CTL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/* Exit status: 0 success, 1 runtime failure, EXIT_USAGE a usage error,
 * EXIT_DAEMON_ERROR the daemon answered a request with an error. */
#define EXIT_USAGE 2
#define EXIT_DAEMON_ERROR 3

/* ctl_rpc_call results besides 0 and -1 (a failure, said in err). */
#define CTL_DAEMON_ERROR 1 /* *out is the JSON-RPC error object */
#define CTL_NOT_CONTROL 2  /* the socket does not speak our protocol */

struct json_object;

/* Global options (before the command). */
struct ctl_opts {
	int timeout_ms;      /* per request (--timeout) */
	bool timeout_given;
	bool twin;           /* --twin-socket */
	bool no_json;        /* --no-json */
	bool json;           /* --json: print results as JSON */
	const char *socket;  /* --socket PATH|PID, or NULL */
};

/* Parse a decimal int in [min, max] into *out; no atoi: junk and overflow are
 * rejected. 0 or -EINVAL. */
int ctl_parse_int(const char *s, long min, long max, int *out);

/* `info SOCKET` (lspci.c): connect to the vfio-user server at path and print
 * the protocol, the device, its PCI config space decoded like lspci -vv, its
 * regions and interrupts. Returns the exit status. */
int ctl_cmd_info(const char *path, const struct ctl_opts *co);

/*
 * Connect to a vfu-rt control socket (rpc.c): arg is a path, a pid (its
 * default socket in the private directories), or NULL (the only daemon of
 * ours running). The path used goes to path. Returns the fd, or a negative
 * errno with a message in err.
 */
int ctl_daemon_connect(const char *arg, char *path, size_t pathlen, char *err, size_t errlen);

/*
 * One JSON-RPC request on fd (params consumed, may be NULL) and its answer
 * within timeout_ms. Returns 0 with *out the result, CTL_DAEMON_ERROR with
 * *out the error object and a message in err, CTL_NOT_CONTROL (the peer
 * closed, answered something that is not our JSON, or stayed silent), or -1;
 * with a message in err (path names the socket). The caller puts *out.
 */
int ctl_rpc_call(int fd, const char *path, const char *method, struct json_object *params,
		 int timeout_ms, struct json_object **out, char *err, size_t errlen);

/*
 * The daemon commands (daemon.c): `stats`, `add`, `remove`, `list`, `get`,
 * `ns-add`, `ns-remove`, `ns-resize`, `log-level`, `config-save`, `call`.
 * argv[0] is the command. Returns the exit status, or -1 when cmd is not one.
 */
int ctl_cmd_daemon(int argc, char **argv, const struct ctl_opts *co);

#endif /* VFURT_TOOLS_VFU_CTL_INTERNAL_H */
