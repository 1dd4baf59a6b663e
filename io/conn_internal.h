/* Connection engine internals: state, message view, command handlers. */
#ifndef VFURT_IO_CONN_INTERNAL_H
#define VFURT_IO_CONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/engine.h>
#include <vfurt/vfio_user.h>

#include "device_internal.h"
#include "log_internal.h"
#include "sock.h"

#define CONN_MAX_XFER_LIMIT (16u << 20)
#define CONN_DEFAULT_MAX_FDS 16u
#define CONN_DEFAULT_TIMEOUT_MS 5000
#define CONN_MAX_BACKLOG 1024u
/* Room for the largest fixed part that precedes bulk data, and for JSON. */
#define CONN_MSG_SLACK 65536u

/* A received command: header, payload and the fds that came with it. */
struct vfurt_msg {
	struct vfio_user_header hdr;
	uint8_t *payload; /* msg_size - 16 bytes */
	size_t len;
	int fds[VFURT_SOCK_MAX_FDS];
	size_t nfds;
	struct vfurt_msg *next; /* backlog link */
};

/* What a handler answers: a payload (copied out by the sender) and fds
 * (borrowed: the sender does not close them). */
struct vfurt_reply {
	void *buf;        /* scratch owned by the connection */
	size_t cap;
	size_t len;
	int fds[VFURT_SOCK_MAX_FDS];
	size_t nfds;
	int close_fds;    /* close fds[] after sending (ones we created) */
};

struct vfurt_conn {
	struct vfurt_dev *dev;
	const struct vfurt_log *log;
	struct log_ratelimit log_rl; /* what the client makes us log (conn_logf) */
	int fd;
	int twin_fd;              /* server end of the twin socket, or -1 */
	bool negotiated;
	bool dead;
	/* our limits */
	uint32_t max_xfer;
	uint32_t max_fds;
	uint32_t max_dma_maps;
	int timeout_ms;
	bool offer_twin;
	/* negotiated client values */
	uint32_t client_max_fds;
	uint32_t client_max_xfer;
	bool write_multiple;
	/* receive state machine */
	size_t rx_max;            /* largest message accepted */
	size_t hdr_got;
	size_t payload_got;
	struct vfurt_msg rx;      /* payload buffer of rx_max - 16 bytes */
	/* server -> client commands */
	uint16_t next_msg_id;
	/* commands that arrived while waiting for a DMA reply */
	struct vfurt_msg *backlog_head;
	struct vfurt_msg *backlog_tail;
	uint32_t backlog_len;
	/* a command parked for an asynchronous quiesce */
	struct vfurt_msg *parked;
	bool in_dispatch;
	/* reply scratch */
	struct vfurt_reply reply;
	struct vfurt_conn_stats stats;
};

/*
 * Log a line caused by the client of c, through the device's log, at most
 * LOG_RL_BURST at once and LOG_RL_PER_S a second per connection (a client
 * must not flood the log, say with failing DMA_MAPs); the first line let
 * through after a pause says how many were suppressed. Thread: the one
 * driving c.
 */
void conn_logf(struct vfurt_conn *c, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Handlers: validate msg, act, fill conn->reply; return 0 or -errno.
 * Fds in msg that a handler keeps are set to -1 in msg->fds. */
int vfurt_cmd_version(struct vfurt_conn *c, struct vfurt_msg *m);
int vfurt_cmd_dma_map(struct vfurt_conn *c, struct vfurt_msg *m);
int vfurt_cmd_dma_unmap(struct vfurt_conn *c, struct vfurt_msg *m);
int vfurt_cmd_device_info(struct vfurt_conn *c, struct vfurt_msg *m);
int vfurt_cmd_region_info(struct vfurt_conn *c, struct vfurt_msg *m);
int vfurt_cmd_region_io_fds(struct vfurt_conn *c, struct vfurt_msg *m);
int vfurt_cmd_irq_info(struct vfurt_conn *c, struct vfurt_msg *m);
int vfurt_cmd_set_irqs(struct vfurt_conn *c, struct vfurt_msg *m);
int vfurt_cmd_region_read(struct vfurt_conn *c, struct vfurt_msg *m);
int vfurt_cmd_region_write(struct vfurt_conn *c, struct vfurt_msg *m);
int vfurt_cmd_region_write_multi(struct vfurt_conn *c, struct vfurt_msg *m);
int vfurt_cmd_reset(struct vfurt_conn *c, struct vfurt_msg *m);

/* Make room for a reply payload of len bytes; returns the buffer or NULL. */
void *vfurt_reply_alloc(struct vfurt_conn *c, size_t len);

/* Commands that must run with the device quiesced. */
bool vfurt_cmd_needs_quiesce(uint16_t cmd);

#endif /* VFURT_IO_CONN_INTERNAL_H */
