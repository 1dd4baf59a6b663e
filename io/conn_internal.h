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
#define CONN_DEFAULT_VERSION_TIMEOUT_MS 2000
#define CONN_DEFAULT_DRAIN_TIMEOUT_MS 5000
#define CONN_DEFAULT_MAX_OUT_BYTES (4u << 20)
#define CONN_MAX_OUT_BYTES_LIMIT (64u << 20)
#define CONN_DEFAULT_MAX_OUT_MSGS 1024u
#define CONN_MAX_OUT_MSGS_LIMIT 65536u
#define CONN_DEFAULT_MAX_DMA_MAPS 1024u
#define CONN_MAX_DMA_MAPS_LIMIT 65535u /* VFIO_USER_DEFAULT_MAX_DMA_MAPS */
#define CONN_DEFAULT_MAX_IRQ_FDS 1024u
#define CONN_MAX_IRQ_FDS_LIMIT 8192u
/* fds (dups) in queued output beyond which the client's commands wait */
#define CONN_MAX_OUT_FDS 256u
/* server -> client DMA requests in flight per connection */
#define CONN_DMA_SLOTS 64u
/* Room for the largest fixed part that precedes bulk data, and for JSON. */
#define CONN_MSG_SLACK 65536u

/* A received command: header, payload and the fds that came with it. */
struct vfurt_msg {
	struct vfio_user_header hdr;
	uint8_t *payload; /* msg_size - 16 bytes */
	size_t len;
	int fds[VFURT_SOCK_MAX_FDS];
	size_t nfds;
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

/* Bytes the socket did not take yet (conn_out.c). */
struct out_msg {
	struct out_msg *next;
	size_t len;
	size_t off;                  /* sent so far */
	int fds[VFURT_SOCK_MAX_FDS]; /* dups, sent with the first byte */
	size_t nfds;
	uint8_t data[];
};

struct outq {
	struct out_msg *head;
	struct out_msg *tail;
	size_t bytes;
	uint32_t msgs;
	uint32_t nfds;         /* fd dups held by the queued messages */
	bool progress;         /* bytes left since the last tick */
	int last_unread;       /* SIOCOUTQ at the last tick */
	uint64_t stall_since;  /* tick time of the last progress */
};

/* A DMA_READ/DMA_WRITE request waiting for its reply (conn_dma.c). */
struct dma_slot {
	struct vfurt_dma_op *op; /* NULL: free */
	uint16_t msg_id;
	uint16_t cmd;
	uint8_t *buf;
	size_t count;
	uint64_t sent_ms;        /* first tick that saw it; 0 before */
};

struct vfurt_conn {
	struct vfurt_dev *dev;
	const struct vfurt_log *log;
	/* what the client makes us log (vfr_conn_logf): warnings and errors,
	 * and info and debug lines in a bucket of their own, so that a flood of
	 * failing commands (debug lines, e.g. under a sink that filters the
	 * level itself) never uses up the budget of its warnings */
	struct log_ratelimit log_rl;
	struct log_ratelimit log_rl_verbose;
	int fd;
	int twin_fd;              /* server end of the twin socket, or -1 */
	bool negotiated;
	bool dead;
	/* our limits */
	uint32_t max_xfer;
	uint32_t max_fds;
	uint32_t max_dma_maps;
	int timeout_ms;           /* DMA reply wait */
	int version_timeout_ms;
	int drain_timeout_ms;
	size_t max_out_bytes;
	uint32_t max_out_msgs;
	bool offer_twin;
	bool warned_unsealed;     /* DMA_MAP of a memfd without F_SEAL_SHRINK logged */
	uint64_t born_ms;         /* first tick */
	/* negotiated client values */
	uint32_t client_max_fds;
	uint32_t client_max_xfer;
	bool write_multiple;
	/* receive state machine */
	size_t rx_max;            /* largest message accepted */
	size_t hdr_got;
	size_t payload_got;
	struct vfurt_msg rx;      /* payload buffer of rx_max - 16 bytes */
	/* output queues of the main and the twin socket */
	struct outq out;
	struct outq tout;
	/* server -> client commands */
	uint16_t next_msg_id;
	struct dma_slot dma[CONN_DMA_SLOTS];
	uint32_t dma_inflight;
	struct {
		uint8_t *buf;
		size_t cap;
		size_t got;
	} twin_rx;
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
void vfr_conn_logf(struct vfurt_conn *c, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Handlers: validate msg, act, fill conn->reply; return 0 or -errno.
 * Fds in msg that a handler keeps are set to -1 in msg->fds. */
int vfr_cmd_version(struct vfurt_conn *c, struct vfurt_msg *m);
int vfr_cmd_dma_map(struct vfurt_conn *c, struct vfurt_msg *m);
int vfr_cmd_dma_unmap(struct vfurt_conn *c, struct vfurt_msg *m);
int vfr_cmd_device_info(struct vfurt_conn *c, struct vfurt_msg *m);
int vfr_cmd_region_info(struct vfurt_conn *c, struct vfurt_msg *m);
int vfr_cmd_region_io_fds(struct vfurt_conn *c, struct vfurt_msg *m);
int vfr_cmd_irq_info(struct vfurt_conn *c, struct vfurt_msg *m);
int vfr_cmd_set_irqs(struct vfurt_conn *c, struct vfurt_msg *m);
int vfr_cmd_region_read(struct vfurt_conn *c, struct vfurt_msg *m);
int vfr_cmd_region_write(struct vfurt_conn *c, struct vfurt_msg *m);
int vfr_cmd_region_write_multi(struct vfurt_conn *c, struct vfurt_msg *m);
int vfr_cmd_reset(struct vfurt_conn *c, struct vfurt_msg *m);

/* Make room for a reply payload of len bytes; returns the buffer or NULL. */
void *vfr_reply_alloc(struct vfurt_conn *c, size_t len);

/* Output (conn_out.c). Send iov with fds on its first byte now, or queue
 * what the socket did not take (fds dup'd); 0 or -errno (close). */
int vfr_conn_out_send(struct outq *q, int sock, const struct iovec *iov, int iovcnt,
		  const int *fds, size_t nfds);
int vfr_conn_out_flush(struct outq *q, int sock);
/* Queue buf with fds (dup'd) behind what q holds, sending nothing (a
 * restored connection's output, sent once it is served); 0 or -errno. */
int vfr_conn_out_queue(struct outq *q, const void *buf, size_t len, const int *fds, size_t nfds);
void vfr_conn_out_free(struct outq *q);
/* Output over its bound: stop reading the client's commands. */
bool vfr_conn_out_over(const struct vfurt_conn *c);

/* DMA by message (conn_dma.c). */
int vfr_conn_dma_reply(struct vfurt_conn *c, const struct vfio_user_header *h,
		   const uint8_t *payload, size_t len);
int vfr_conn_dma_tick(struct vfurt_conn *c, uint64_t now_ms);
void vfr_conn_dma_fail_all(struct vfurt_conn *c, int status);
int vfr_conn_twin_setup(struct vfurt_conn *c);

/* Commands that must run with the device quiesced. */
bool vfr_cmd_needs_quiesce(uint16_t cmd);

#endif /* VFURT_IO_CONN_INTERNAL_H */
