/* vfu-rt's control socket protocol: JSON-RPC 2.0, one request or response per line. */
#ifndef VFURT_RUNTIME_VFU_RT_RPC_H
#define VFURT_RUNTIME_VFU_RT_RPC_H

#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/log.h>

#include "io/log_internal.h" /* the rate limit of the error log lines */

struct json_object;

/* Most control clients connected at once; one more is answered with an error and closed. */
#define RPC_MAX_CLIENTS 16
/* Longest request line (without its newline). */
#define RPC_MAX_REQUEST (1u << 20)
/* Nesting depth json-c's tokener accepts in a request. */
#define RPC_JSON_DEPTH 16
/* Output queued for one client at which its requests are no longer read. */
#define RPC_OUT_HIGH (1u << 20)
/* Output queued for one client at which it is disconnected. */
#define RPC_OUT_MAX (16u << 20)
/* A client with output queued that reads none of it for this long is disconnected. */
#define RPC_DRAIN_TIMEOUT_MS 10000
/* A request begun and not finished within this long is dropped with its client. */
#define RPC_REQUEST_TIMEOUT_MS 30000
/* The pollfds rpc_pollfds fills at most: the listening socket and the clients. */
#define RPC_NFDS (1 + RPC_MAX_CLIENTS)

/* JSON-RPC 2.0 error codes, and vfu-rt's own (-32000..-32099, docs/managing.md). */
#define RPC_PARSE_ERROR -32700
#define RPC_INVALID_REQUEST -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS -32602
#define RPC_INTERNAL_ERROR -32603
#define RPC_ERR_TOO_MANY_CLIENTS -32000
#define RPC_ERR_NO_DEVICE -32001
#define RPC_ERR_EXISTS -32002
#define RPC_ERR_BUSY -32003
#define RPC_ERR_FAILED -32004
#define RPC_ERR_NOT_SUPPORTED -32005
#define RPC_ERR_SHUTTING_DOWN -32006
#define RPC_ERR_UPGRADE -32007

struct rpc_server;

/* A request being answered: filled by the method (rpc_result or rpc_error). */
struct rpc_call {
	struct rpc_server *srv;
	int slot;                    /* the client's slot */
	uint64_t gen;                /* the client's generation (slots are reused) */
	struct json_object *id;      /* the request's id (NULL also for "id": null) */
	bool has_id;                 /* false: a notification, nothing is answered */
	struct json_object *result;  /* set by the method: the result (owned) */
	int code;                    /* set by the method: an error code, 0 = result */
	char message[512];
	bool deferred;               /* the method answers later (rpc_defer) */
};

/* A reply promised by rpc_defer, answered by rpc_pending_result / rpc_pending_error. */
struct rpc_pending;

/*
 * A method: params is the request's params object (an empty object when
 * absent; never NULL). Fill call with rpc_result or rpc_error, or call
 * rpc_defer. Runs on the main thread; must not block.
 */
typedef void (*rpc_method_fn)(void *ctx, struct json_object *params, struct rpc_call *call);

struct rpc_method {
	const char *name;
	rpc_method_fn fn;
};

struct rpc_client {
	int fd;             /* -1: free slot */
	uint64_t gen;
	char *in;           /* bytes of the request being received */
	size_t in_len;
	size_t in_cap;
	char *out;          /* queued output */
	size_t out_len;
	size_t out_off;
	size_t out_cap;
	bool closing;       /* read nothing more; close once the output and the pending replies are out */
	unsigned pending;   /* deferred replies still owed (rpc_defer) */
	uint64_t stall_ns;  /* when queued output last made no progress (0: none queued) */
	uint64_t part_ns;   /* when the unfinished request in `in` began (0: none) */
};

struct rpc_server {
	int lfd;                                 /* listening socket (not owned) */
	struct rpc_client clients[RPC_MAX_CLIENTS];
	uint64_t next_gen;
	const struct rpc_method *methods;        /* terminated by a NULL name */
	void *ctx;                               /* the methods' first argument */
	const struct vfurt_log *log;
	struct log_ratelimit rl;                 /* of the error log lines, all clients together */
	uint64_t requests;                       /* answered so far */
	uint64_t errors;
};

/* Set up srv on the listening socket lfd (non-blocking; the caller owns it). */
void rpc_init(struct rpc_server *srv, int lfd, const struct rpc_method *methods, void *ctx,
	      const struct vfurt_log *log);

/* Close every client and free their buffers. Pending replies are dropped. */
void rpc_fini(struct rpc_server *srv);

/* Fill pfd (RPC_NFDS entries) for poll(); returns how many were filled. */
int rpc_pollfds(const struct rpc_server *srv, struct pollfd *pfd);

/*
 * Serve the events poll() returned in pfd[0..n) (as rpc_pollfds filled
 * them): accept, read, answer, write, close. Never blocks: every socket is
 * non-blocking, each client's reads per call are bounded. now_ns is the
 * CLOCK_MONOTONIC time (drain timeouts).
 */
void rpc_handle(struct rpc_server *srv, const struct pollfd *pfd, int n, uint64_t now_ns);

/* The poll() timeout the server needs: -1, or ms until a drain timeout check. */
int rpc_timeout_ms(const struct rpc_server *srv);

/* Connected clients. */
unsigned rpc_clients(const struct rpc_server *srv);

/* Set call's result (takes the reference). */
void rpc_result(struct rpc_call *call, struct json_object *result);

/* Set call's error. */
void rpc_error(struct rpc_call *call, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* An error code for a negative errno returned by the runtime or a device. */
int rpc_code_for_errno(int err);

/*
 * Promise a reply later: returns a handle (or NULL with call answered by
 * an out-of-memory error). The reply goes to the client that asked if it
 * is still connected, else nowhere.
 */
struct rpc_pending *rpc_defer(struct rpc_call *call);

/* Answer and free a pending reply (takes result's reference). NULL p is ignored. */
void rpc_pending_result(struct rpc_pending *p, struct json_object *result);
void rpc_pending_error(struct rpc_pending *p, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Send what is queued for every client, waiting at most timeout_ms in all
 * (a live upgrade's last answer, before the process ends). */
void rpc_flush_all(struct rpc_server *srv, int timeout_ms);

#endif /* VFURT_RUNTIME_VFU_RT_RPC_H */
