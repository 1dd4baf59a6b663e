/* Integration test helpers: clients, raw messages, waits, fd and irq utilities. */
#ifndef VFURT_TESTS_IT_UTIL_H
#define VFURT_TESTS_IT_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/client.h>
#include <vfurt/vfio_user.h>

#include "common/testsrv.h"

/* Per-call client timeout used by the tests: generous, only bounds hangs. */
#define IT_TIMEOUT_MS 5000
/* How long to wait for the server thread to notice something (disconnect). */
#define IT_SETTLE_MS 2000

/* The CPUs of a two-worker runtime: "0-1", or "0" on a machine with one CPU. */
const char *it_cores(void);

/* Default client options with the test timeout; flags may be 0. */
struct vfurt_client_opts it_opts(uint32_t flags);

/* Connect with it_opts(flags). NULL with errno on failure. */
struct vfurt_client *it_connect(const char *path, uint32_t flags);

/* Connect, retrying for up to IT_SETTLE_MS while the server still holds the
 * previous connection (it refuses a second client). NULL on failure. */
struct vfurt_client *it_connect_retry(const char *path, const struct vfurt_client_opts *opts);

/* it_connect_retry with it_opts(flags). */
struct vfurt_client *it_reconnect(const char *path, uint32_t flags);

/* A memfd of `size` bytes (-1 on failure). */
int it_memfd(size_t size);

/* A non-blocking eventfd (-1 on failure). */
int it_eventfd(void);

/* Is fd readable within ms milliseconds? (0 = just check) */
bool it_readable(int fd, int ms);

/* Read an eventfd's counter if it is readable now; returns the value or 0. */
uint64_t it_eventfd_take(int fd);

/* Wait until *ctr >= want, up to IT_SETTLE_MS. Returns the final value. */
unsigned it_wait_ctr(atomic_uint *ctr, unsigned want);

/* Wait until this process has `want` open fds, up to IT_SETTLE_MS.
 * Returns the final count. */
int it_wait_fds(int want);
/* it_wait_fds(base), and on a mismatch print "fd leak: N open, B at start";
 * returns 0, or -1 on a leak (for a cmocka teardown's return value). */
int it_check_fds(int base);

/* Region access shorthands: 0 or negative errno. */
int it_wr32(struct vfurt_client *c, uint32_t region, uint64_t off, uint32_t v);
int it_wr64(struct vfurt_client *c, uint32_t region, uint64_t off, uint64_t v);
int it_rd32(struct vfurt_client *c, uint32_t region, uint64_t off, uint32_t *v);
int it_rd64(struct vfurt_client *c, uint32_t region, uint64_t off, uint64_t *v);

/* Ask the test device to raise (index, vector) through its irq doorbell and
 * return the device's status (0, negative errno), or a client error. */
int it_irq_fire(struct vfurt_client *c, uint32_t index, uint32_t vector);

/* Run the test device's DMA engine: op 1 = guest -> BAR1 buffer, 2 = BAR1
 * buffer -> guest. Returns the device status (negative errno) or a client
 * error. */
int it_dev_dma(struct vfurt_client *c, uint32_t op, uint64_t iova, uint64_t len);

/* Config space offset of PCI capability `id`, or a negative errno (hostsim's
 * nh_pci_find_cap). */
int it_cfg_find_cap(struct vfurt_client *c, uint8_t id);

/* Enable MSI-X in config space and clear every vector's mask bit in the
 * table (BAR4). Returns 0 or a negative errno. */
int it_msix_enable(struct vfurt_client *c, uint32_t nvec);

/* Send a hand-built message: header fields as given (msg_size is used
 * verbatim, may lie), then payload. Returns 0 or a negative errno. */
int it_send_hdr(struct vfurt_client *c, uint16_t msg_id, uint16_t cmd, uint32_t flags,
		uint32_t msg_size, const void *payload, size_t len, const int *fds,
		size_t nfds);

/* Send command `cmd` with a correct header and a fresh msg_id, without
 * waiting. Returns the msg_id used, or -1. */
int it_send_cmd(struct vfurt_client *c, uint16_t cmd, uint32_t flags, const void *payload,
		size_t len, const int *fds, size_t nfds);

/* Receive the next reply; checks it answers (msg_id, cmd). Returns the
 * error_no of an Error reply as a negative errno, 0 for success, or
 * -1000 - n for a mismatch / client error n. payload may be NULL. */
int it_recv_reply(struct vfurt_client *c, uint16_t msg_id, uint16_t cmd, void *payload,
		  size_t cap, size_t *len);

/* True when the server closed the connection: after any queued messages
 * the next receive sees EOF/reset (or answering a queued server command
 * fails with EPIPE). */
bool it_server_closed(struct vfurt_client *c);

/* VERSION by hand on a VFURT_CLIENT_NO_HANDSHAKE client. json may be NULL
 * (no data) or a string sent with its NUL. Returns 0 or the negative errno
 * of the reply; *minor_out (may be NULL) gets the reply's minor. */
int it_raw_version(struct vfurt_client *c, uint16_t major, uint16_t minor, const char *json,
		   uint16_t *minor_out);

/* DEVICE_GET_INFO still answers correctly (connection alive). */
bool it_alive(struct vfurt_client *c);

/* A device's log for tests: silent, or everything on stderr tagged `name`
 * when VFURT_TEST_VERBOSE is set. */
struct vfurt_log it_dev_log(const char *name);

/* Fill / check a buffer with a pattern derived from seed: hostsim's nh_fill /
 * nh_check, the pattern nh_write_read_check writes. */
void it_fill(void *buf, size_t len, uint32_t seed);
bool it_check(const void *buf, size_t len, uint32_t seed);

/* Run a shell command (fmt, printf-style) with popen; what it writes on
 * stdout, at most len - 1 bytes, in out (NUL-terminated). Returns its exit
 * status, -1 if it did not exit. popen failing fails the test. */
int it_run_cmd(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* VFURT_TESTS_IT_UTIL_H */
