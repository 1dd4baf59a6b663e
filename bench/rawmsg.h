/* Hand-built vfio-user messages and a busy-polling raw socket client for the benchmarks. */
#ifndef VFURT_BENCH_RAWMSG_H
#define VFURT_BENCH_RAWMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* VERSION 0.0 without JSON capabilities (spec defaults). Returns the
 * message length, or 0 when cap is too small. */
size_t rawmsg_version(void *buf, size_t cap, uint16_t msg_id);

/* REGION_WRITE of count bytes at offset of region (No_reply when posted). */
size_t rawmsg_region_write(void *buf, size_t cap, uint16_t msg_id, uint32_t region,
			   uint64_t offset, const void *data, uint32_t count, bool posted);

/* REGION_READ of count bytes. */
size_t rawmsg_region_read(void *buf, size_t cap, uint16_t msg_id, uint32_t region,
			  uint64_t offset, uint32_t count);

/* Connect a stream socket to the vfio-user server at path and complete
 * VERSION. Returns the fd or a negative errno. */
int rawcli_connect(const char *path);

/*
 * Send len bytes, then receive one whole reply (header + payload, up to cap
 * bytes kept) spinning on recv(MSG_DONTWAIT) instead of sleeping in poll.
 * Returns the reply's error_no as a negative errno (0 on success), -EPROTO
 * for a non-reply, or the errno of send/recv.
 */
int rawcli_call_busy(int fd, const void *msg, size_t len, void *reply, size_t cap);

/* Read and drop whatever is queued on fd without blocking. Returns bytes. */
size_t raw_drain(int fd);

#endif /* VFURT_BENCH_RAWMSG_H */
