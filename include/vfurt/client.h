/* vfio-user client library: the VMM side of the protocol, for tests and tools. */
#ifndef VFURT_CLIENT_H
#define VFURT_CLIENT_H

/*
 * A struct vfurt_client is one connection to a vfio-user server. Every call
 * is synchronous with a per-call timeout (default 5000 ms) so a test never
 * hangs. While a call waits for its reply it also serves the server's
 * DMA_READ/DMA_WRITE commands against the DMA windows this client mapped,
 * on the main socket and, when negotiated, on the twin socket.
 *
 * Errors: functions return 0 (or a count) or a negative errno; constructors
 * return NULL with errno set. Common errno values for any call that talks to
 * the server:
 *   -ETIMEDOUT     no reply within the timeout (the connection stays usable
 *                  unless a message was cut in half, then see -EPIPE)
 *   -ECONNRESET    the server closed the connection
 *   -EPIPE         the connection was broken earlier (message stream lost
 *                  sync, or a send/receive failed half way); only
 *                  vfurt_client_close() is useful then
 *   -EPROTO        the server's reply is malformed
 *   -EMSGSIZE      a reply was larger than the caller's buffer, or than
 *                  max(1 MiB, our max_data_xfer_size) + 64 KiB (it is
 *                  read and dropped; the connection stays usable)
 *   -EINVAL        c NULL, or another argument the function's comment
 *                  calls required is NULL
 *   other          the errno the server put in an Error reply
 *
 * Threading: a client object may be used by one thread at a time (any
 * thread, but not concurrently). Distinct clients are independent.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfurt/export.h>
#include <vfurt/vfio_user.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfurt_client;

/* vfurt_client_opts.flags */
#define VFURT_CLIENT_NO_JSON (1u << 0)        /* VERSION without capabilities (SPDK style) */
#define VFURT_CLIENT_TWIN_SOCKET (1u << 1)    /* propose twin_socket {supported: true} */
#define VFURT_CLIENT_REQUIRE_TWIN (1u << 2)   /* fail connect if the server declines twin */
#define VFURT_CLIENT_NO_WRITE_MULTIPLE (1u << 3) /* propose write_multiple false */
#define VFURT_CLIENT_SET_VERSION (1u << 4)    /* propose version_major.version_minor */
#define VFURT_CLIENT_NO_HANDSHAKE (1u << 5)   /* send no VERSION at all (negative tests) */

#define VFURT_CLIENT_DEFAULT_TIMEOUT_MS 5000
#define VFURT_CLIENT_DEFAULT_MAX_MSG_FDS 16u

/* Connection options. opts_size as in include/vfurt/abi.h (fields beyond it
 * are treated as zero); zero means "default" for every field. */
struct vfurt_client_opts {
	size_t opts_size;            /* sizeof(struct vfurt_client_opts) */
	uint32_t flags;              /* VFURT_CLIENT_* */
	int timeout_ms;              /* per call; 0 = 5000, < 0 = wait forever */
	uint16_t version_major;      /* with VFURT_CLIENT_SET_VERSION; else 0.0 */
	uint16_t version_minor;
	uint32_t max_msg_fds;        /* we accept per message; 0 = 16, max 64 */
	uint32_t max_data_xfer_size; /* our limit for DMA_READ/WRITE; 0 = 1 MiB */
	uint64_t pgsizes;            /* 0 = 4096 */
	uint32_t max_dma_maps;       /* 0 = 65535 */
	/* Non-NULL: sent verbatim (with its NUL) as VERSION data instead of the
	 * JSON built from the fields above; for malformed-JSON tests. */
	const char *version_json;
};

/* Negotiated parameters. "Server" values are what the server accepts from
 * us; spec defaults when its reply had no JSON or omitted the key. */
struct vfurt_client_caps {
	size_t caps_size;            /* set by the caller: sizeof(struct vfurt_client_caps) */
	uint16_t major;
	uint16_t minor;
	bool server_json;            /* the server's reply carried JSON */
	uint32_t max_msg_fds;        /* fds per message the server accepts */
	uint32_t max_data_xfer_size; /* server's limit for REGION_READ/WRITE */
	uint64_t pgsizes;
	uint32_t max_dma_maps;
	bool write_multiple;         /* server accepts REGION_WRITE_MULTI */
	bool twin_socket;            /* server->client commands on their own socket */
	uint32_t client_max_msg_fds;         /* what we proposed */
	uint32_t client_max_data_xfer_size;  /* what we proposed (DMA limit) */
};

/* Counters of server->client traffic, for tests. */
struct vfurt_client_stats {
	size_t stats_size;           /* set by the caller: sizeof(struct vfurt_client_stats) */
	uint64_t dma_reads;          /* DMA_READ served successfully */
	uint64_t dma_writes;         /* DMA_WRITE served successfully */
	uint64_t dma_bytes;          /* bytes moved by those */
	uint64_t dma_errors;         /* server commands answered with an Error */
	uint64_t twin_commands;      /* commands that arrived on the twin socket */
	uint64_t stale_replies;      /* replies matching no outstanding request */
};

/*
 * Connect to the server listening on the AF_UNIX socket `path` and negotiate
 * VERSION (unless VFURT_CLIENT_NO_HANDSHAKE). opts may be NULL (defaults);
 * it is copied, version_json is used only during this call.
 * Returns a client, or NULL with errno: EINVAL (path NULL or empty, opts_size
 * out of range, unknown flags, max_msg_fds > 64), ENAMETOOLONG (path longer
 * than 107 bytes), ENOMEM, socket(2) and connect(2) errors (EMFILE, ENOENT,
 * ECONNREFUSED...), ETIMEDOUT,
 * ECONNRESET, EPROTO (reply version major differs, minor is bigger than
 * ours, JSON malformed, twin socket inconsistent), EPROTONOSUPPORT
 * (VFURT_CLIENT_REQUIRE_TWIN and the server declined), or the errno of an
 * Error reply to VERSION.
 * Thread: any. Ownership: the caller owns the client (vfurt_client_close).
 */
VFURT_EXPORT struct vfurt_client *vfurt_client_connect(const char *path,
							const struct vfurt_client_opts *opts);

/*
 * As vfurt_client_connect on an already connected stream socket `sock`
 * (e.g. one end of a socketpair). The client takes ownership of sock, also
 * on failure (it is closed then; not when sock < 0). Returns NULL with errno
 * as above (EINVAL also for sock < 0), or fcntl's.
 */
VFURT_EXPORT struct vfurt_client *vfurt_client_connect_fd(int sock,
							   const struct vfurt_client_opts *opts);

/* Close the sockets, unmap this client's local DMA window mappings, free c.
 * NULL is ignored. Thread: the thread using c. */
VFURT_EXPORT void vfurt_client_close(struct vfurt_client *c);

/* Fill *out with the negotiated parameters; the caller sets out->caps_size
 * first (include/vfurt/abi.h). Returns 0 or -EINVAL (c or out NULL,
 * caps_size out of range). */
VFURT_EXPORT int vfurt_client_get_caps(const struct vfurt_client *c, struct vfurt_client_caps *out);

/* The server's VERSION JSON as received (NUL-terminated), or NULL if it sent
 * none. Owned by c, valid until vfurt_client_close. */
VFURT_EXPORT const char *vfurt_client_server_json(const struct vfurt_client *c);

/* Main socket fd and twin socket fd (-1 when not negotiated). Owned by c:
 * use for poll(2) only, do not read, write or close them. */
VFURT_EXPORT int vfurt_client_fd(const struct vfurt_client *c);
VFURT_EXPORT int vfurt_client_twin_fd(const struct vfurt_client *c);

/* Change the per-call timeout (ms; 0 = default, < 0 = forever). */
VFURT_EXPORT void vfurt_client_set_timeout(struct vfurt_client *c, int timeout_ms);

/* Fill *out with the counters; the caller sets out->stats_size first
 * (include/vfurt/abi.h). Returns 0 or -EINVAL (c or out NULL, stats_size out
 * of range). */
VFURT_EXPORT int vfurt_client_get_stats(const struct vfurt_client *c,
					struct vfurt_client_stats *out);

/* DMA_READ + DMA_WRITE served successfully so far. */
VFURT_EXPORT uint64_t vfurt_client_dma_served(const struct vfurt_client *c);

/* ---- device, regions, interrupts -------------------------------------- */

/* DEVICE_GET_INFO. Fills *out (flags VFIO_DEVICE_FLAGS_*, num_regions,
 * num_irqs). Returns 0 or a negative errno (see top). */
VFURT_EXPORT int vfurt_client_device_info(struct vfurt_client *c,
					  struct vfio_user_device_info *out);

/* One region as described by DEVICE_GET_REGION_INFO, with the capability
 * chain parsed. Release with vfurt_client_region_info_release(). */
struct vfurt_client_region_info {
	uint32_t index;
	uint32_t flags;              /* VFIO_REGION_INFO_FLAG_* */
	uint32_t argsz;              /* full size the server reported */
	uint32_t cap_offset;
	uint64_t size;
	uint64_t offset;             /* mmap offset of the region in fd */
	int fd;                      /* region fd (MMAP), or -1; owned by the struct */
	bool has_sparse;             /* VFIO_REGION_INFO_CAP_SPARSE_MMAP present */
	uint32_t nr_sparse;
	struct vfio_region_sparse_mmap_area *sparse; /* nr_sparse entries */
	bool has_type;               /* VFIO_REGION_INFO_CAP_TYPE present */
	uint32_t type;
	uint32_t subtype;
	bool msix_mappable;          /* VFIO_REGION_INFO_CAP_MSIX_MAPPABLE present */
	uint32_t nr_caps;            /* capabilities in the chain, known or not */
	void *raw;                   /* the whole reply payload */
	size_t raw_len;
};

/*
 * DEVICE_GET_REGION_INFO for region `index`. Starts with argsz = 32 and, when
 * the server answers with a bigger argsz, retries once with that size.
 * On success *out owns fd, sparse and raw. Returns 0, -EPROTO (reply shorter
 * than 32 bytes, index mismatch, malformed capability chain, FLAG_CAPS with
 * cap_offset outside the reply -- QEMU refuses that too --, argsz still
 * too small after the retry) or as at the top. *out is zeroed with fd = -1
 * on failure.
 */
VFURT_EXPORT int vfurt_client_region_info(struct vfurt_client *c, uint32_t index,
					  struct vfurt_client_region_info *out);

/* Close info->fd and free its arrays; leaves it zeroed with fd = -1. NULL
 * is ignored. */
VFURT_EXPORT void vfurt_client_region_info_release(struct vfurt_client_region_info *info);

/*
 * mmap() sparse area `area` of a region (area < 0: the whole region, only
 * when it has no sparse capability) with the region fd, MAP_SHARED, prot
 * PROT_*. On success *addr and *len describe the mapping (munmap it yourself).
 * Returns 0, -EINVAL (no MMAP flag or fd, area out of range, offset not page
 * aligned, empty area), or mmap's errno.
 */
VFURT_EXPORT int vfurt_client_region_info_mmap(const struct vfurt_client_region_info *info,
					       int area, int prot, void **addr, size_t *len);

/* Same, fetching the region info first (the fd is closed afterwards; the
 * mapping stays valid). Returns as region_info and region_info_mmap. */
VFURT_EXPORT int vfurt_client_region_mmap(struct vfurt_client *c, uint32_t index, int area,
					  int prot, void **addr, size_t *len);

/* DEVICE_GET_IRQ_INFO for irq type `index`: fills *out (flags
 * VFIO_IRQ_INFO_*, count). Returns 0, -EPROTO or as at the top. */
VFURT_EXPORT int vfurt_client_irq_info(struct vfurt_client *c, uint32_t index,
				       struct vfio_irq_info *out);

/* Result of DEVICE_GET_REGION_IO_FDS. Release with
 * vfurt_client_io_fds_release(). */
struct vfurt_client_io_fds {
	uint32_t index;
	uint32_t flags;
	uint32_t count;                          /* sub-regions */
	struct vfio_user_sub_region_io_fd *subs; /* count entries */
	int *fds;                                /* nfds received fds, owned */
	size_t nfds;
};

/*
 * DEVICE_GET_REGION_IO_FDS for region `index`; retries once with the argsz
 * the server asks for. Returns 0, -EPROTO (malformed reply, fd_index out of
 * range of the fds received) or as at the top.
 */
VFURT_EXPORT int vfurt_client_region_io_fds(struct vfurt_client *c, uint32_t index,
					    struct vfurt_client_io_fds *out);

/* Close the fds and free the arrays. NULL is ignored. */
VFURT_EXPORT void vfurt_client_io_fds_release(struct vfurt_client_io_fds *io);

/*
 * REGION_READ / REGION_WRITE of `count` bytes at `offset` of `region`. Splits
 * into messages of at most min(server, our) max_data_xfer_size bytes.
 * Returns 0, -EIO (the reply's offset/region/count does not match the
 * request) or as at the top. buf is owned by the caller.
 */
VFURT_EXPORT int vfurt_client_region_read(struct vfurt_client *c, uint32_t region,
					  uint64_t offset, void *buf, size_t count);
VFURT_EXPORT int vfurt_client_region_write(struct vfurt_client *c, uint32_t region,
					   uint64_t offset, const void *buf, size_t count);

/* REGION_WRITE with No_reply (posted, as QEMU does for MMIO): returns once
 * sent; a server failure is not reported. Returns 0 or as at the top. */
VFURT_EXPORT int vfurt_client_region_write_posted(struct vfurt_client *c, uint32_t region,
						  uint64_t offset, const void *buf,
						  size_t count);

/*
 * REGION_WRITE_MULTI with n entries (count <= 8 each), split in messages of
 * VFIO_USER_MULTI_MAX entries. posted: No_reply. Returns 0, -EOPNOTSUPP
 * (server did not negotiate write_multiple), -EINVAL (wrs NULL, n 0, an
 * entry's count is 0 or > 8), -EIO (reply wr_cnt differs) or as at the top.
 */
VFURT_EXPORT int vfurt_client_region_write_multi(struct vfurt_client *c,
						 const struct vfio_user_write_multi_entry *wrs,
						 size_t n, bool posted);

/*
 * DEVICE_SET_IRQS with DATA_EVENTFD: attach fds[0..count) to vectors
 * [start, start+count) of irq type `index` for `action`
 * (VFIO_IRQ_SET_ACTION_TRIGGER, _MASK or _UNMASK). Sent in several messages of at
 * most the server's max_msg_fds fds each, like QEMU. fds == NULL: send the
 * range without fds (de-assigns). The fds stay owned by the caller (the
 * server gets duplicates). Returns 0, -EINVAL (a fd < 0, bad action),
 * -EOPNOTSUPP (server accepts no fds) or as at the top.
 */
VFURT_EXPORT int vfurt_client_set_irqs_eventfd(struct vfurt_client *c, uint32_t index,
					       uint32_t start, uint32_t count,
					       const int *fds, uint32_t action);

/*
 * DEVICE_SET_IRQS with DATA_NONE (bools == NULL) or DATA_BOOL (bools has
 * count bytes). `action` is one VFIO_IRQ_SET_ACTION_*. start = count = 0
 * with DATA_NONE and ACTION_TRIGGER disables the whole index. Returns 0,
 * -EINVAL or as at the top.
 */
VFURT_EXPORT int vfurt_client_set_irqs(struct vfurt_client *c, uint32_t index, uint32_t start,
				       uint32_t count, uint32_t action, const uint8_t *bools);

/* DEVICE_RESET. Returns 0 or as at the top. */
VFURT_EXPORT int vfurt_client_reset(struct vfurt_client *c);

/*
 * DEVICE_FEATURE with the raw vfio_device_feature `flags` (feature index |
 * VFIO_DEVICE_FEATURE_GET/SET/PROBE) and `data` (len bytes) as request data.
 * argsz is 8 + max(len, out_cap). The reply's data part (after argsz/flags)
 * goes to out (out_cap bytes, may be NULL/0); *out_len (may be NULL) gets
 * its length. Returns 0, -EMSGSIZE (reply data > out_cap), -EPROTO or as at
 * the top.
 */
VFURT_EXPORT int vfurt_client_device_feature(struct vfurt_client *c, uint32_t flags,
					     const void *data, size_t len, void *out,
					     size_t out_cap, size_t *out_len);

/* MIG_DATA_READ of up to `size` bytes into buf; *got gets the byte count
 * (less than size: no more data). Returns 0, -EPROTO or as at the top. */
VFURT_EXPORT int vfurt_client_mig_data_read(struct vfurt_client *c, void *buf, uint32_t size,
					    uint32_t *got);

/* MIG_DATA_WRITE of `size` bytes. Returns 0 or as at the top. */
VFURT_EXPORT int vfurt_client_mig_data_write(struct vfurt_client *c, const void *buf,
					     uint32_t size);

/* ---- DMA ----------------------------------------------------------------- */

/* vfurt_client_dma_map flags */
#define VFURT_CLIENT_DMA_SEND_FD (1u << 0) /* pass fd so the server mmaps it */
#define VFURT_CLIENT_DMA_POSTED (1u << 1)  /* No_reply: do not wait */

/*
 * Make [iova, iova+size) of client memory, backed by fd at fd_offset (a
 * memfd or shared file), available to the server. The client maps the range
 * itself (MAP_SHARED) to serve DMA_READ/DMA_WRITE; with
 * VFURT_CLIENT_DMA_SEND_FD the fd also goes to the server for direct access.
 * prot: VFIO_USER_DMA_MAP_FLAG_READ | _WRITE. The fd stays owned by the
 * caller. Returns 0, -EINVAL (size 0, fd < 0, unknown prot or flags, range
 * wrapping around), mmap's errno, -ENOMEM, or as at the top (the window is
 * forgotten again when the server rejects it).
 */
VFURT_EXPORT int vfurt_client_dma_map(struct vfurt_client *c, uint64_t iova, uint64_t size,
				      int fd, uint64_t fd_offset, uint32_t prot, uint32_t flags);

/*
 * Same for memory without an fd (e.g. malloc'ed): no fd is sent, so the
 * server must use DMA_READ/DMA_WRITE. vaddr stays owned by the caller and
 * must stay valid until the window is unmapped or the client closed.
 * flags: VFURT_CLIENT_DMA_POSTED only. Returns as vfurt_client_dma_map
 * (-EINVAL also for vaddr NULL).
 */
VFURT_EXPORT int vfurt_client_dma_map_mem(struct vfurt_client *c, uint64_t iova,
					  uint64_t size, void *vaddr, uint32_t prot,
					  uint32_t flags);

/*
 * DMA_UNMAP of [iova, iova+size); flags are sent as is
 * (VFIO_USER_DMA_UNMAP_FLAG_ALL: unmap everything, iova and size should be
 * 0). After a successful reply the matching local window (all windows with
 * FLAG_ALL) is dropped. Returns 0 or as at the top.
 */
VFURT_EXPORT int vfurt_client_dma_unmap(struct vfurt_client *c, uint64_t iova, uint64_t size,
					uint32_t flags);

/*
 * Wait up to timeout_ms (< 0: forever, 0: just check) for server commands
 * and serve them: the first one that arrives and every one already queued
 * behind it. Replies that arrive meanwhile are stale and dropped.
 * Returns the number of commands served (0 on timeout) or a negative errno
 * as at the top (-ECONNRESET, -EPIPE...).
 */
VFURT_EXPORT int vfurt_client_poll_server(struct vfurt_client *c, int timeout_ms);

/*
 * Wait up to timeout_ms (< 0: forever) for eventfd `efd` to be signalled
 * and read its counter into *value (may be NULL). With c non-NULL, server
 * DMA commands are served while waiting. The fd stays owned by the caller.
 * Returns 0, -ETIMEDOUT, -EINVAL (efd < 0), -EBADF (efd is not open), read's
 * errno, or with c as at the top.
 */
VFURT_EXPORT int vfurt_client_wait_eventfd(struct vfurt_client *c, int efd, int timeout_ms,
					   uint64_t *value);

/* ---- raw messages (negative tests) -------------------------------------- */

/* Take the next msg_id from this client's counter (the one request() would
 * use), for hand-built messages. */
VFURT_EXPORT uint16_t vfurt_client_next_msg_id(struct vfurt_client *c);

/*
 * Send len bytes exactly as given (the caller builds the header, which may
 * lie) with fds (nfds <= 64, owned by the caller) on the main socket.
 * Returns 0, -EINVAL (buf NULL, len 0, nfds > 64, fds NULL with nfds) or as
 * at the top.
 */
VFURT_EXPORT int vfurt_client_send_raw(struct vfurt_client *c, const void *buf, size_t len,
				       const int *fds, size_t nfds);

/*
 * Receive the next reply on the main socket (any msg_id), serving server
 * commands that come first. *hdr gets the header; the payload goes to
 * payload (cap bytes, may be NULL/0), *len (may be NULL) its full length.
 * fds: *nfds in = capacity of fds, out = number stored (extra fds are
 * closed); fds/nfds may be NULL. Returns 0, -EMSGSIZE (payload > cap; the
 * message was consumed) or as at the top; an Error reply is returned as 0
 * with the flag in hdr.
 */
VFURT_EXPORT int vfurt_client_recv_raw(struct vfurt_client *c, struct vfio_user_header *hdr,
				       void *payload, size_t cap, size_t *len, int *fds,
				       size_t *nfds);

/*
 * The core every helper uses: send command `cmd` with header flags `flags`
 * (VFIO_USER_F_NO_REPLY allowed: returns once sent), payload (len bytes) and
 * fds (nfds <= 64, owned by the caller), under a fresh msg_id; then wait for
 * the reply with that msg_id, serving server commands meanwhile and
 * dropping stale replies. The reply payload is copied to reply (reply_cap
 * bytes; may be NULL/0), its length to *reply_len (may be NULL); reply fds
 * go to reply_fds (*reply_nfds in = capacity, out = count; extra fds are
 * closed; both may be NULL). The caller owns the returned fds.
 * Returns 0, -error_no of an Error reply (-EIO when it carries 0), -EPROTO
 * (reply for another command), -EMSGSIZE or as at the top.
 */
VFURT_EXPORT int vfurt_client_request(struct vfurt_client *c, uint16_t cmd, uint32_t flags,
				      const void *payload, size_t len, const int *fds,
				      size_t nfds, void *reply, size_t reply_cap,
				      size_t *reply_len, int *reply_fds, size_t *reply_nfds);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_CLIENT_H */
