/* Client library internals shared by io/client*.c: the object and the transport core. */
#ifndef VFURT_IO_CLIENT_INTERNAL_H
#define VFURT_IO_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <vfurt/client.h>

#include "sock.h"

/* A DMA window this client made available to the server. */
struct client_window {
	uint64_t iova;
	uint64_t size;
	uint8_t *vaddr;     /* our view of iova */
	void *map_base;     /* our own mmap to undo, NULL for caller memory */
	size_t map_len;
	uint32_t prot;      /* VFIO_USER_DMA_MAP_FLAG_*: what the server may do */
	bool local_ro;      /* our mapping is read-only (fd opened O_RDONLY) */
};

struct vfurt_client {
	int sock;
	int twin;                     /* -1 unless twin socket negotiated */
	int timeout_ms;               /* < 0 = forever */
	uint16_t next_id;
	int broken;                   /* 0, or the negative errno that broke the stream */
	struct vfurt_client_caps caps;
	char *server_json;
	uint8_t *rbuf;                /* receive buffer (payload of the last message) */
	size_t rbuf_cap;
	struct client_window *win;
	size_t nwin;
	size_t win_cap;
	struct vfurt_client_stats stats;
};

/* One received message; payload points into c->rbuf and is valid until the
 * next receive on c. fds are owned by whoever holds the struct. */
struct client_msg {
	struct vfio_user_header hdr;
	uint8_t *payload;
	size_t len;                   /* payload bytes (msg_size - 16) */
	bool oversize;                /* payload was too big and was discarded */
	int fds[VFURT_SOCK_MAX_FDS];
	size_t nfds;
};

/* Absolute CLOCK_MONOTONIC deadline in ms for a timeout (-1 = none). */
int64_t vfr_client_deadline(int timeout_ms);
/* Milliseconds left until deadline, for poll(2); -1 for none. */
int vfr_client_left_ms(int64_t deadline);

/*
 * Send a command (header built here from cmd/flags and a fresh msg_id) and,
 * unless flags has No_reply, wait for its reply into *reply (the caller
 * closes reply->fds; reply NULL = discard it). An Error reply becomes
 * -errno with its fds closed. iov/iovcnt (<= 7) is the payload.
 * Returns 0 or a negative errno.
 */
int vfr_client_call(struct vfurt_client *c, uint16_t cmd, uint32_t flags,
		const struct iovec *iov, int iovcnt, const int *fds, size_t nfds,
		struct client_msg *reply);

/* Send one whole message on sock with the client's timeout; marks the
 * client broken when the stream may have been cut. */
int vfr_client_send(struct vfurt_client *c, int sock, const struct iovec *iov, int iovcnt,
		const int *fds, size_t nfds);

/* Serve one server->client command received on `sock` (main or twin). Sends
 * the reply unless No_reply. Returns 0 or a negative errno from sending. */
int vfr_client_serve_command(struct vfurt_client *c, int sock, const struct client_msg *m);

/* Unmap all local window mappings and free the table (client_dma.c). */
void vfr_client_windows_free(struct vfurt_client *c);

/* VERSION negotiation (client_version.c). */
int vfr_client_handshake(struct vfurt_client *c, const struct vfurt_client_opts *o);

/* Smaller of the server's and our max_data_xfer_size. */
size_t vfr_client_xfer_max(const struct vfurt_client *c);

#endif /* VFURT_IO_CLIENT_INTERNAL_H */
