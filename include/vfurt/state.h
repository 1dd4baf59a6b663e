/* State images: what a device, its connection and the runtime carry across a restart. */
#ifndef VFURT_STATE_H
#define VFURT_STATE_H

/*
 * A state image is a tree of tagged records plus a table of file
 * descriptors, built by one process and read by the next one (live upgrade,
 * docs/restart.md). A record is (tag, bytes); a section is a record whose
 * value is a list of records (vfurt_state_open/close); an fd record holds an
 * index into the image's fd table, and the fds travel beside the bytes
 * (SCM_RIGHTS, vfurt_state_send/recv).
 *
 * Every layer writes its own section and reads it back: the engine (regions,
 * irqs, io fds, the connection and its DMA windows), the PCI layer (config
 * space, MSI/MSI-X), each device model (ops->save/restore in device.h), the
 * runtime and the daemon. Readers look records up by tag and must treat a
 * missing record as the value a fresh device has, so that a newer writer
 * can add records and an older reader of the same format version skips
 * them. A change that an older reader would misread bumps
 * VFURT_STATE_VERSION, which the reader refuses.
 *
 * Encoding, little-endian: a record is u32 tag, u32 length, the value, and
 * zero padding to 8 bytes. The image is a header (magic, version, length,
 * fd count, FNV-1a 64 of the bytes) and the root section's records.
 *
 * Threading: an image is used by one thread at a time.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Format version written by this library and the only one it reads. */
#define VFURT_STATE_VERSION 1u

/* Tag bit of a section: its value is nested records. */
#define VFURT_STATE_SECTION 0x80000000u

/* Limits checked by vfurt_state_recv and by every put. */
#define VFURT_STATE_MAX_BYTES (256u << 20)
#define VFURT_STATE_MAX_FDS 262144u
#define VFURT_STATE_MAX_DEPTH 16u

struct vfurt_state;

/* A position inside an image: the records of one section. Plain values,
 * copied freely; valid while the image lives. */
struct vfurt_state_cur {
	struct vfurt_state *s;
	size_t pos; /* next record */
	size_t end; /* end of the section */
};

/*
 * An empty image (format VFURT_STATE_VERSION). Returns NULL with errno
 * ENOMEM.
 */
VFURT_EXPORT struct vfurt_state *vfurt_state_create(void);

/* Free s and close every fd it still holds (not taken). NULL is ignored. */
VFURT_EXPORT void vfurt_state_destroy(struct vfurt_state *s);

/* Bytes and fds in s. */
VFURT_EXPORT size_t vfurt_state_size(const struct vfurt_state *s);
VFURT_EXPORT size_t vfurt_state_nr_fds(const struct vfurt_state *s);

/* ---- writing ------------------------------------------------------------ */

/*
 * Append record (tag, val[0..len)). tag must not have VFURT_STATE_SECTION.
 * Returns 0, -EINVAL (s NULL, section bit, val NULL with len), -E2BIG (the
 * image would pass VFURT_STATE_MAX_BYTES), -ENOMEM.
 */
VFURT_EXPORT int vfurt_state_put(struct vfurt_state *s, uint32_t tag, const void *val, size_t len);

/* vfurt_state_put of a u64 / u32 / bool (one byte) / NUL-terminated string
 * (stored without the NUL). */
VFURT_EXPORT int vfurt_state_put_u64(struct vfurt_state *s, uint32_t tag, uint64_t v);
VFURT_EXPORT int vfurt_state_put_u32(struct vfurt_state *s, uint32_t tag, uint32_t v);
VFURT_EXPORT int vfurt_state_put_bool(struct vfurt_state *s, uint32_t tag, bool v);
VFURT_EXPORT int vfurt_state_put_str(struct vfurt_state *s, uint32_t tag, const char *str);

/*
 * Append an fd record: s takes a dup of fd (F_DUPFD_CLOEXEC), so the caller
 * keeps its own. Returns 0, -EINVAL (fd < 0), -E2BIG (VFURT_STATE_MAX_FDS),
 * -ENOMEM, or the dup's errno (-EMFILE...).
 */
VFURT_EXPORT int vfurt_state_put_fd(struct vfurt_state *s, uint32_t tag, int fd);

/*
 * Open a section tagged tag | VFURT_STATE_SECTION: records put until the
 * matching vfurt_state_close() are its value. Sections nest up to
 * VFURT_STATE_MAX_DEPTH. Returns 0, -EINVAL, -E2BIG, -ENOMEM; close returns
 * 0 or -EINVAL (no section open).
 */
VFURT_EXPORT int vfurt_state_open(struct vfurt_state *s, uint32_t tag);
VFURT_EXPORT int vfurt_state_close(struct vfurt_state *s);

/* ---- reading ------------------------------------------------------------ */

/* The root section's records. Returns 0 or -EINVAL (s NULL, a section left
 * open). */
VFURT_EXPORT int vfurt_state_root(struct vfurt_state *s, struct vfurt_state_cur *c);

/*
 * Step to the next record of c's section: *tag, *val, *len describe it
 * (val points into the image; a section's value is its nested records).
 * Returns 1 (a record), 0 (end of section), -EBADMSG (a record runs past
 * the section).
 */
VFURT_EXPORT int vfurt_state_next(struct vfurt_state_cur *c, uint32_t *tag, const void **val,
				  size_t *len);

/*
 * As vfurt_state_next, for walking a list of sections: *sub is the next
 * record's section (when *tag has VFURT_STATE_SECTION; otherwise an empty
 * cursor). Returns 1, 0 (end), -EBADMSG.
 */
VFURT_EXPORT int vfurt_state_next_sub(struct vfurt_state_cur *c, uint32_t *tag,
				      struct vfurt_state_cur *sub);

/*
 * The first record tagged tag in c's section (c is not moved): *val and
 * *len describe it. Returns 0, -ENOENT, -EBADMSG (malformed section).
 */
VFURT_EXPORT int vfurt_state_find(const struct vfurt_state_cur *c, uint32_t tag, const void **val,
				  size_t *len);

/*
 * Copy record tag into buf, which must be exactly its length (fixed-size
 * records). Returns 0, -ENOENT (absent: buf untouched), -EBADMSG (another
 * length, or a malformed section).
 */
VFURT_EXPORT int vfurt_state_get(const struct vfurt_state_cur *c, uint32_t tag, void *buf,
				 size_t len);
VFURT_EXPORT int vfurt_state_get_u64(const struct vfurt_state_cur *c, uint32_t tag, uint64_t *v);
VFURT_EXPORT int vfurt_state_get_u32(const struct vfurt_state_cur *c, uint32_t tag, uint32_t *v);
VFURT_EXPORT int vfurt_state_get_bool(const struct vfurt_state_cur *c, uint32_t tag, bool *v);
/* A string record into buf (NUL-terminated). -ENAMETOOLONG: it does not fit. */
VFURT_EXPORT int vfurt_state_get_str(const struct vfurt_state_cur *c, uint32_t tag, char *buf,
				     size_t cap);

/* The section tagged tag | VFURT_STATE_SECTION of c's: 0, -ENOENT, -EBADMSG. */
VFURT_EXPORT int vfurt_state_sub(const struct vfurt_state_cur *c, uint32_t tag,
				 struct vfurt_state_cur *sub);

/*
 * The fd of fd record tag: ownership passes to the caller, so each fd is
 * taken once. Returns the fd (CLOEXEC), -ENOENT (no such record), -EBADMSG
 * (malformed, or an index outside the fd table), -EBADF (already taken).
 * vfurt_state_take_fd_rec does the same for a record found by
 * vfurt_state_next (val, len as it returned them).
 */
VFURT_EXPORT int vfurt_state_take_fd(const struct vfurt_state_cur *c, uint32_t tag);
VFURT_EXPORT int vfurt_state_take_fd_rec(struct vfurt_state *s, const void *val, size_t len);

/*
 * Replace the fd open as `target` with the image's fd of record tag, keeping
 * the number (dup3 onto it, O_CLOEXEC): everything that holds the number
 * (a region description, an ioeventfd table, a host's poll) now refers to
 * the file the previous process had, which is what the client holds too.
 * The image's copy is closed. Returns 0, or as vfurt_state_take_fd, or
 * dup3's errno.
 */
VFURT_EXPORT int vfurt_state_adopt_fd(const struct vfurt_state_cur *c, uint32_t tag, int target);

/* ---- transport ---------------------------------------------------------- */

/*
 * Send s over sock, a connected AF_UNIX SOCK_SEQPACKET socket: a header,
 * the bytes in chunks, the fds in batches of at most 250 per message
 * (SCM_RIGHTS). Blocks, waiting at most timeout_ms in all for the socket to
 * take it. Returns 0, -EINVAL (a section left open), -ETIMEDOUT, or
 * sendmsg's errno (-EPIPE: the peer went away).
 */
VFURT_EXPORT int vfurt_state_send(struct vfurt_state *s, int sock, int timeout_ms);

/*
 * Receive an image sent by vfurt_state_send over sock within timeout_ms.
 * The image's format version must be VFURT_STATE_VERSION (or `version`
 * when not 0: a test's stand-in for a newer build), its sizes within the
 * limits above and its checksum right. Returns 0 and *out, or -ETIMEDOUT,
 * -ECONNRESET (the peer closed), -EPROTO (not an image, or a version this
 * build does not read: *out NULL, and the reason in err), -EBADMSG (corrupt:
 * checksum, sizes, fd count), -ENOMEM, recvmsg's errno. Every fd received
 * is closed on failure. err (if not NULL) gets a one-line reason.
 */
VFURT_EXPORT int vfurt_state_recv(int sock, int timeout_ms, uint32_t version,
				  struct vfurt_state **out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_STATE_H */
