/* Block devices: a generic async I/O layer over pluggable backends (null, ram, file/io_uring, custom). */
#ifndef VFURT_BDEV_H
#define VFURT_BDEV_H

/*
 * A bdev is a block device with a fixed geometry (block size, number of
 * blocks) and capabilities. I/O goes through channels: a channel belongs to
 * one thread at a time (a worker, an NVMe queue poller); that thread submits
 * with vfurt_bdev_submit() and reaps with vfurt_bdev_channel_poll(), which is
 * the only place callbacks run. Channels of one bdev may live on different
 * threads at once; the bdev's statistics are atomic.
 *
 * The generic layer validates every request (operation, range, overflow,
 * buffer sizes), enforces the channel's queue depth and counts statistics,
 * so backends see only well-formed requests. Request slots are allocated
 * when the channel is created: nothing is allocated on the data path.
 *
 * Deallocated blocks and write-zeroed blocks read back as zeroes on every
 * built-in backend that stores data (ram, file).
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <vfurt/export.h>
#include <vfurt/log.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfurt_bdev;
struct vfurt_bdev_channel;
struct vfurt_bdev_req;
struct vfurt_state;
struct vfurt_state_cur;

enum vfurt_bdev_op {
	VFURT_BDEV_READ = 0,
	VFURT_BDEV_WRITE = 1,
	VFURT_BDEV_FLUSH = 2,        /* offset_blocks, num_blocks and iov are ignored */
	VFURT_BDEV_WRITE_ZEROES = 3, /* iov is ignored */
	VFURT_BDEV_DEALLOCATE = 4,   /* iov is ignored; blocks then read as zeroes */
	VFURT_BDEV_OP_COUNT
};

/* Capability bits (vfurt_bdev_opts.caps, vfurt_bdev_caps()). */
#define VFURT_BDEV_CAP_WRITE_ZEROES (1u << 0) /* WRITE_ZEROES accepted */
#define VFURT_BDEV_CAP_DEALLOCATE (1u << 1)   /* DEALLOCATE accepted */
/* Volatile write cache: FLUSH is passed to the backend. Without it, FLUSH is
 * accepted and completed by the generic layer without calling the backend. */
#define VFURT_BDEV_CAP_FLUSH (1u << 2)

/* Most iovecs one request may carry (the kernel's IOV_MAX). */
#define VFURT_BDEV_IOV_MAX 1024

/* Completion callback: status is 0 or a negative errno (-EIO, -ENOSPC,
 * -EINVAL, -ECANCELED...). Runs on the channel's thread, from
 * vfurt_bdev_channel_poll() or vfurt_bdev_channel_destroy(). */
typedef void (*vfurt_bdev_io_cb)(void *arg, int status);

/* One request. The struct itself is copied by vfurt_bdev_submit(); the iov
 * array and the buffers it points to must stay valid and untouched until the
 * callback runs (the file backend hands them to the kernel as they are). */
struct vfurt_bdev_io {
	enum vfurt_bdev_op op;
	uint64_t offset_blocks;
	uint32_t num_blocks;       /* >= 1 for every operation except FLUSH */
	const struct iovec *iov;   /* READ/WRITE: sum of lengths == num_blocks * block size */
	int iovcnt;                /* READ/WRITE: 1..VFURT_BDEV_IOV_MAX */
	vfurt_bdev_io_cb cb;       /* required */
	void *cb_arg;
};

/* Counters since creation; completions only (rejected submits are counted in
 * `invalid`, -EAGAIN is not counted). */
struct vfurt_bdev_stats {
	size_t stats_size;        /* set by the caller: sizeof(struct vfurt_bdev_stats) */
	uint64_t reads;           /* successful completions per operation */
	uint64_t writes;
	uint64_t flushes;
	uint64_t write_zeroes;
	uint64_t deallocates;
	uint64_t bytes_read;
	uint64_t bytes_written;   /* WRITE only */
	uint64_t errors;          /* completions with status != 0 (including -ECANCELED) */
	uint64_t invalid;         /* submits refused with -EINVAL */
};

/* ---- backends ------------------------------------------------------------ */

/*
 * Backend operations. The generic layer calls them on the thread that owns
 * the channel (channel_create on the creating thread). Every request a
 * backend accepted (submit returned 0) must be finished exactly once with
 * vfurt_bdev_req_complete(), from submit, poll or channel_destroy, on the
 * channel's thread; a backend with threads of its own must hand completions
 * back to the channel's thread itself (e.g. a ring drained in poll).
 */
struct vfurt_bdev_ops {
	size_t ops_size;      /* sizeof(struct vfurt_bdev_ops) */
	size_t req_ctx_size;  /* per-request scratch bytes, see vfurt_bdev_req_ctx() */
	/* Per-channel state (optional: NULL means none). queue_depth is the most
	 * requests the backend will see at once on this channel. 0 or -errno. */
	int (*channel_create)(void *ctx, uint32_t queue_depth, void **chan_ctx);
	/* Must finish every accepted request still outstanding (cancelled ones with
	 * -ECANCELED) and stop touching their buffers before returning (optional). */
	void (*channel_destroy)(void *ctx, void *chan_ctx);
	/* Start one validated request; io points into req and stays valid until
	 * completion. 0 = accepted; -errno = refused (no completion, the errno is
	 * returned to the submitter; -EAGAIN asks it to retry later). */
	int (*submit)(void *chan_ctx, struct vfurt_bdev_req *req, const struct vfurt_bdev_io *io);
	/* Make progress and complete finished requests; at most `max` is a hint.
	 * Returns the number of requests completed (optional: NULL for backends that
	 * complete from submit). */
	int (*poll)(void *chan_ctx, int max);
	/* Release ctx when the bdev is destroyed (optional). */
	void (*destroy)(void *ctx);
	/* ---- fields below were added later: ops_size tells whether a backend has them */
	/* Change the backend's size to num_blocks blocks (vfurt_bdev_resize).
	 * Called with no request outstanding on any channel. 0 or -errno
	 * (optional: NULL = -ENOTSUP). */
	int (*resize)(void *ctx, uint64_t num_blocks);
	/* Live upgrade (vfurt_bdev_save/restore, include/vfurt/state.h), both
	 * called with no request outstanding on any channel. save puts the
	 * backend's records into s (a section of its own: any tags), e.g. the
	 * fd of memory the next process must keep using; restore reads them
	 * back into a backend just created from the same configuration, and
	 * must leave it unchanged when it fails. 0 or -errno (optional: a
	 * backend without save keeps nothing across an upgrade but its
	 * geometry; NULL restore refuses an image holding a backend section,
	 * -ENOTSUP). */
	int (*save)(void *ctx, struct vfurt_state *s);
	int (*restore)(void *ctx, const struct vfurt_state_cur *c);
};

struct vfurt_bdev_opts {
	size_t opts_size;     /* sizeof(struct vfurt_bdev_opts) */
	const char *name;     /* copied (truncated to 63 bytes); NULL = "bdev" */
	uint32_t block_size;  /* 512 or 4096 */
	uint64_t num_blocks;  /* >= 1 */
	uint32_t caps;        /* VFURT_BDEV_CAP_* */
	uint32_t buf_align;   /* iov base and length alignment the backend needs
	                       * (power of two; 0 or 1 = none); checked on submit */
};

/*
 * Create a bdev over a backend. ops is copied; ctx is the backend's state,
 * owned by the bdev on success (ops->destroy(ctx) runs at vfurt_bdev_destroy)
 * and still owned by the caller on failure. Thread: any.
 * Returns NULL with errno EINVAL (bad opts or ops, submit missing) or ENOMEM.
 */
VFURT_EXPORT struct vfurt_bdev *vfurt_bdev_create(const struct vfurt_bdev_opts *opts,
						  const struct vfurt_bdev_ops *ops, void *ctx);

/*
 * Destroy a bdev whose channels are all destroyed (asserted). NULL is a no-op.
 * Thread: any, once no other thread uses the bdev.
 */
VFURT_EXPORT void vfurt_bdev_destroy(struct vfurt_bdev *bdev);

/*
 * Grow or shrink bdev to num_blocks blocks: the backend's resize op, then the
 * geometry the generic layer validates against (requests past the new end
 * are refused as any out-of-range request is). The caller makes
 * sure no request is outstanding on any channel (an NVMe controller pauses
 * its queues). Returns 0, -EINVAL (bdev NULL, num_blocks 0 or its byte size
 * overflowing), -ENOTSUP (the backend cannot resize) or the backend's error
 * (the size is unchanged then). Thread: any, with the channels idle.
 * The built-in backends: ram keeps the data below the new end, and blocks
 * past the old end read as zeroes (not populated: allocated when written;
 * -EINVAL beyond what creation accepts, -ENOMEM); file truncates or
 * extends the file to exactly the new size (what a shrink cut off reads as
 * zeroes when a grow brings it back; -ENOTSUP for a block device, -EFBIG,
 * or ftruncate's errno); null changes the geometry only.
 */
VFURT_EXPORT int vfurt_bdev_resize(struct vfurt_bdev *bdev, uint64_t num_blocks);

/*
 * Live upgrade (docs/restart.md): write what the next process needs to
 * carry bdev on into s, at the current position (the caller opens a
 * section for the bdev first): the geometry, the statistics and, in a
 * section of its own, the backend's records (ops->save). The ram backend
 * hands over its memory (a memfd), so the data stays where it is; file and
 * null keep nothing but a check that the next process opened the same
 * thing. Call with no request outstanding on any channel (an NVMe
 * controller is frozen). Returns 0, -EINVAL (bdev or s NULL), or the
 * error of vfurt_state_put* or of the backend (-ENOMEM, -E2BIG, -EMFILE).
 * Thread: any, with the channels idle.
 */
VFURT_EXPORT int vfurt_bdev_save(struct vfurt_bdev *bdev, struct vfurt_state *s);

/*
 * Read back into bdev, just created from the same configuration, what
 * vfurt_bdev_save wrote in the section c: the geometry must be the same
 * (block size and number of blocks, -EINVAL otherwise), then the backend
 * takes over (the ram backend maps the previous process's memory and
 * frees its own). Records the reader does not know are skipped; missing
 * ones leave the fresh value. On failure bdev is as it was. Returns 0,
 * -EINVAL (NULL arguments, another geometry, a file that is not the one
 * saved), -EBADMSG (a malformed or inconsistent record), -ENOTSUP (the
 * image holds backend records this backend cannot read), or the backend's
 * error (-ENOMEM, an mmap errno). Thread: any, with no request
 * outstanding on any channel.
 */
VFURT_EXPORT int vfurt_bdev_restore(struct vfurt_bdev *bdev, const struct vfurt_state_cur *c);

/* Geometry and identity. Thread: any. The name stays owned by the bdev. */
VFURT_EXPORT const char *vfurt_bdev_name(const struct vfurt_bdev *bdev);
VFURT_EXPORT uint32_t vfurt_bdev_block_size(const struct vfurt_bdev *bdev);
VFURT_EXPORT uint64_t vfurt_bdev_num_blocks(const struct vfurt_bdev *bdev);
VFURT_EXPORT uint32_t vfurt_bdev_caps(const struct vfurt_bdev *bdev);
/* Buffer alignment submits must respect (1 = any). */
VFURT_EXPORT uint32_t vfurt_bdev_buf_align(const struct vfurt_bdev *bdev);

/*
 * Fill *st with the statistics; the caller sets st->stats_size first
 * (include/vfurt/abi.h: an older caller gets the fields it knows). Returns 0
 * or -EINVAL (bdev or st NULL, stats_size out of range). Thread: any (each
 * counter is read atomically, the set is not a snapshot).
 */
VFURT_EXPORT int vfurt_bdev_get_stats(const struct vfurt_bdev *bdev, struct vfurt_bdev_stats *st);

/* ---- channels and I/O ---------------------------------------------------- */

/*
 * Create an I/O channel with room for queue_depth requests in flight
 * (0 = 128, at most 65536). One thread at a time uses a channel; it may
 * move to another thread (before or after its first use) when the handoff
 * is synchronised, e.g. an NVMe queue's poller removed on one worker and
 * the channel then drained or destroyed on the device's home thread. No
 * backend binds a channel to the thread that created it.
 * Returns NULL with errno EINVAL, ENOMEM, or the backend's error (e.g. the
 * file backend's io_uring setup: ENOMEM, EPERM, ENOSYS).
 */
VFURT_EXPORT struct vfurt_bdev_channel *vfurt_bdev_channel_create(struct vfurt_bdev *bdev,
								  uint32_t queue_depth);

/*
 * Destroy a channel (NULL: no-op) on its owning thread. Requests still in
 * flight are cancelled where the backend can (the file backend asks io_uring
 * to cancel them) and otherwise waited for, so no buffer is touched after
 * this returns. Every outstanding callback runs before it returns: requests
 * that had finished get their real status, cancelled ones -ECANCELED.
 * Callbacks must not submit to or poll this channel (a submit from one gets
 * -ECANCELED).
 */
VFURT_EXPORT void vfurt_bdev_channel_destroy(struct vfurt_bdev_channel *ch);

/*
 * Queue one request; the callback runs later from vfurt_bdev_channel_poll()
 * (never from inside this call). *io is copied; see struct vfurt_bdev_io for
 * how long the buffers must live. Thread: the channel's owner; may be called
 * from a completion callback.
 * Returns 0 (queued), -EAGAIN (queue depth reached or backend queue full:
 * poll, then retry), -EINVAL (unknown op, op without its capability, range
 * outside the bdev or overflowing, num_blocks 0, iov NULL or too many, iov
 * lengths not adding up to num_blocks * block size, buffers not aligned to
 * vfurt_bdev_buf_align, cb NULL), -ECANCELED (channel being destroyed), or
 * another negative errno from the backend.
 */
VFURT_EXPORT int vfurt_bdev_submit(struct vfurt_bdev_channel *ch, const struct vfurt_bdev_io *io);

/*
 * Reap completions and run up to `max` callbacks (max <= 0: no limit).
 * Returns how many callbacks ran (> 0 = busy). Thread: the channel's owner;
 * not from inside one of this channel's callbacks.
 */
VFURT_EXPORT int vfurt_bdev_channel_poll(struct vfurt_bdev_channel *ch, int max);

/* Requests submitted whose callback has not run yet. Thread: the owner. */
VFURT_EXPORT uint32_t vfurt_bdev_channel_inflight(const struct vfurt_bdev_channel *ch);

/* ---- for backends ---------------------------------------------------------- */

/* Finish an accepted request with status 0 or -errno; its callback runs at the
 * channel's next poll. Thread: the channel's owner. */
VFURT_EXPORT void vfurt_bdev_req_complete(struct vfurt_bdev_req *req, int status);

/* The request's ops->req_ctx_size scratch bytes (16-byte aligned, not zeroed
 * between requests), valid from submit until completion. */
VFURT_EXPORT void *vfurt_bdev_req_ctx(struct vfurt_bdev_req *req);

/* The validated copy of the request. */
VFURT_EXPORT const struct vfurt_bdev_io *vfurt_bdev_req_io(const struct vfurt_bdev_req *req);

/* ---- built-in backends ------------------------------------------------------ */

struct vfurt_bdev_null_opts {
	size_t opts_size;     /* sizeof(struct vfurt_bdev_null_opts) */
	const char *name;     /* copied (truncated to 63 bytes); NULL = "null" */
	uint32_t block_size;  /* 512 or 4096; 0 = 512 */
	uint64_t size_bytes;  /* a non-zero multiple of block_size */
};

/*
 * Null backend: accepts every operation and completes it successfully at the
 * next poll without touching any buffer (reads leave the buffers as they
 * were, like SPDK's null bdev). For measuring everything but storage.
 * opts is read during the call only. Returns NULL with errno EINVAL (opts,
 * see include/vfurt/abi.h for opts_size) or ENOMEM. Thread: any.
 */
VFURT_EXPORT struct vfurt_bdev *vfurt_bdev_null_create(
	const struct vfurt_bdev_null_opts *opts);

struct vfurt_bdev_ram_opts {
	size_t opts_size;     /* sizeof(struct vfurt_bdev_ram_opts) */
	const char *name;     /* copied (truncated to 63 bytes); NULL = "ram" */
	uint32_t block_size;  /* 512 or 4096; 0 = 512 */
	uint64_t size_bytes;  /* a non-zero multiple of block_size */
	/* ---- fields below were added later (opts_size) */
	uint32_t flags;       /* VFURT_BDEV_LAZY */
};

/*
 * Creation flag (vfurt_bdev_ram_opts.flags, vfurt_bdev_spec_opts.flags):
 * do not fault the ram backend's memory in at creation; it is allocated as
 * it is written. For a bdev that vfurt_bdev_restore is about to give the
 * previous process's memory (a live upgrade builds every device from the
 * configuration first: populating a fresh 1 GiB namespace only to free it
 * would cost a quarter of a second and the memory twice over), or where
 * creation must be instant. Ignored by the other backends.
 */
#define VFURT_BDEV_LAZY (1u << 0)

/*
 * RAM backend: size_bytes of zeroed memory in a memfd (shared, so that a
 * live upgrade hands the data to the next process: vfurt_bdev_save). The
 * memory is faulted in at creation unless VFURT_BDEV_LAZY (no first-touch
 * faults during I/O) and backed by transparent huge pages where the system
 * has them for shared memory (shmem_enabled; under "never" creation asks
 * for them with MADV_COLLAPSE, Linux 6.1+); a device larger than the free
 * memory is left to be allocated lazily. Creation therefore takes time in
 * proportion to the size (the kernel zeroes the memory, and a collapse
 * copies it: a second or two per GiB): create at setup, not from a
 * worker's pass. Requests are queued at submit and done by
 * vfurt_bdev_channel_poll() in bounded steps, so that one channel
 * never holds its thread for long: a poll does at most 1 MiB of copying or
 * zeroing per channel, plus the one step that crosses that budget (a step
 * stays within one 2 MiB huge page, or 256 KiB); a request larger than that
 * completes over several polls, the others on the channel taking turns with
 * it (docs/security.md, "What a guest's commands may cost"). WRITE_ZEROES and
 * DEALLOCATE zero the range (DEALLOCATE also returns whole pages, or whole
 * huge pages, to the kernel; they fault in again when written, and
 * WRITE_ZEROES skips those, which are zero already). No volatile cache: FLUSH
 * is a no-op. Channels on different threads may touch the same blocks; as
 * with a real disk, the result of overlapping concurrent writes is undefined.
 * opts is read during the call only. Returns NULL with errno EINVAL (opts,
 * size_bytes above what the address space can map) or ENOMEM. Thread: any.
 */
VFURT_EXPORT struct vfurt_bdev *vfurt_bdev_ram_create(const struct vfurt_bdev_ram_opts *opts);

enum vfurt_bdev_direct {
	VFURT_BDEV_DIRECT_OFF = 0, /* page cache */
	VFURT_BDEV_DIRECT_ON,      /* O_DIRECT; fail (EINVAL, logged) if refused */
	VFURT_BDEV_DIRECT_TRY,     /* O_DIRECT, or the page cache with a warning */
};

enum vfurt_bdev_sync {
	VFURT_BDEV_SYNC_FDATASYNC = 0, /* FLUSH = fdatasync */
	VFURT_BDEV_SYNC_FSYNC,         /* FLUSH = fsync */
};

struct vfurt_bdev_file_opts {
	size_t opts_size;           /* sizeof(struct vfurt_bdev_file_opts) */
	const char *name;           /* copied; NULL = path */
	const char *path;           /* regular file or block device */
	uint32_t block_size;        /* 512 or 4096; 0 = 512 */
	uint64_t size_bytes;        /* 0 = the file's size (rounded down to blocks) */
	int create;                 /* create the file if missing, extend it to size_bytes */
	enum vfurt_bdev_direct direct;
	enum vfurt_bdev_sync sync;
	struct vfurt_log log;       /* reasons for failures and fallbacks */
};

/*
 * File backend: each channel has its own io_uring; READ/WRITE go straight
 * into the request's iovecs (short transfers are continued, end of file
 * becomes -EIO), FLUSH is fsync/fdatasync, DEALLOCATE punches a hole and
 * WRITE_ZEROES zeroes the range (fallocate ZERO_RANGE, else PUNCH_HOLE, else
 * writing zeroes). With O_DIRECT, buffers must be 512-byte aligned
 * (vfurt_bdev_buf_align). Submissions are batched: SQEs queued by submit are
 * handed to the kernel by the next poll. Thread: any.
 * Returns NULL with errno: EINVAL (opts, size larger than the file without
 * `create`, size below one block, O_DIRECT refused with DIRECT_ON), the
 * errno of open/fstat/ftruncate, or ENOMEM.
 */
VFURT_EXPORT struct vfurt_bdev *vfurt_bdev_file_create(const struct vfurt_bdev_file_opts *opts);

/* ---- from a configuration string ------------------------------------------- */

struct vfurt_bdev_spec_opts {
	size_t opts_size;           /* sizeof(struct vfurt_bdev_spec_opts) */
	const char *spec;           /* "null", "ram" or "file:PATH" */
	/* null and ram: required, a multiple of block_size; file: 0 = the file's
	 * size, otherwise the file is created or extended to it */
	uint64_t size_bytes;
	uint32_t block_size;        /* 512 or 4096; 0 = 512 */
	enum vfurt_bdev_direct direct; /* file: O_DIRECT mode; ignored for null and ram */
	/* ---- fields below were added later (opts_size) */
	uint32_t flags;             /* VFURT_BDEV_LAZY (ram) */
};

/*
 * Create a bdev from a spec, as the daemon's backend= key does: the null,
 * ram or file backend, named after its type (the file's after its path),
 * FLUSH = fdatasync for a file. opts is read during the call only.
 * Returns the bdev (the caller owns it), or NULL with errno EINVAL (opts,
 * unknown spec, size or block size) or the backend's errno, and a one-line
 * reason in err (err may be NULL; "Error messages" in docs/device-api.md). Thread: any.
 */
VFURT_EXPORT struct vfurt_bdev *vfurt_bdev_spec_create(const struct vfurt_bdev_spec_opts *opts,
							char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* VFURT_BDEV_H */
