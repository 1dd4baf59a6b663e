/* Test harness: an in-process vfurt_server on a thread, and a test device model. */
#ifndef VFURT_TESTS_TESTSRV_H
#define VFURT_TESTS_TESTSRV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/device.h>
#include <vfurt/runtime.h>
#include <vfurt/server.h>

/*
 * Test device ("testdev") layout:
 *  BAR0  16 KiB mem: 0x0000-0x0fff trapped registers, 0x1000-0x2fff a sparse
 *        mmap area backed by a memfd (reads/writes through messages reach the
 *        same memory), 0x3000-0x3fff trapped scratch.
 *        registers: 0x000-0x0ff scratch (RW)
 *                   0x100 DMA doorbell (write 1 = guest->buffer, 2 =
 *                         buffer->guest) using 0x108 iova (u64), 0x110 len
 *                         (u64); 0x118 status (s32, negative errno) read-only
 *                   0x200 irq doorbell: write (index << 16 | vector), status at 0x204
 *                   0x300 ioeventfd-backed doorbell (4 bytes)
 *  BAR1  64 KiB mem, trapped: the DMA buffer.
 *  BAR2  256 B I/O, trapped scratch.
 *  BAR4  8 KiB mem: MSI-X table (8 vectors) at 0, PBA at 0x1000.
 *  config: 4 KiB, PM, MSI (4 vectors, per-vector mask), MSI-X, PCIe, DSN.
 *  region 9: device-specific, 4 KiB RW trapped, VFIO_REGION_INFO_CAP_TYPE (0x1234/1).
 */
#define TD_BAR0_SIZE 0x4000u
#define TD_MMAP_OFF 0x1000u
#define TD_MMAP_SIZE 0x2000u
#define TD_REG_DMA_DOORBELL 0x100u
#define TD_REG_DMA_IOVA 0x108u
#define TD_REG_DMA_LEN 0x110u
#define TD_REG_DMA_STATUS 0x118u
#define TD_DMA_PENDING 1 /* STATUS while a transfer by message is in flight */
#define TD_REG_IRQ_DOORBELL 0x200u
#define TD_REG_IRQ_STATUS 0x204u
#define TD_REG_IOEVENTFD 0x300u
#define TD_BAR1_SIZE 0x10000u
#define TD_MSIX_VECTORS 8u
#define TD_REGION_DEVSPEC 9u

struct testdev_stats {
	atomic_uint attach;
	atomic_uint detach;
	atomic_uint dma_map;
	atomic_uint dma_unmap;
	atomic_uint reset;
	atomic_uint quiesce;
	atomic_uint irq_state;
	atomic_uint destroy;
	atomic_uint ioevents;      /* BAR2 ioeventfd handler calls */
	atomic_ulong queue_polls;  /* DMA queue passes that translated */
	atomic_ulong queue_misses; /* translations that found no window */
	atomic_uint queue_workers; /* bit i: the queue ran on worker i */
};

struct testdev_opts {
	bool async_quiesce; /* quiesce answers -EBUSY, completed by the server thread */
	bool no_reset;      /* do not advertise reset */
	/* expose `queues` pollable queues while a client is attached; each
	 * translates and reads the guest range set in TD_REG_Q_IOVA/LEN */
	unsigned queues;
	struct vfurt_log log; /* the device's (and its connections') log; fn NULL: default */
};

/* DMA queue registers (BAR0), used when opts.queues > 0 */
#define TD_REG_Q_IOVA 0x180u
#define TD_REG_Q_LEN 0x188u
/* BAR2 ioeventfd with a handler (counts stats->ioevents) */
#define TD_BAR2_IOEVENTFD 0x10u
/* region 9 ioregionfd sub-region served by the engine */
#define TD_IOREGION_OFF 0x100u
#define TD_IOREGION_SIZE 0x100u
#define TD_IOREGION_USER_DATA 0xabcull

/* Create a test device; *stats stays valid until the server is stopped. */
struct vfurt_dev *testdev_create(const char *name, const struct testdev_opts *opts,
				 struct testdev_stats **stats);

/* Free the stats of a device after the server that owned it was stopped
 * (they outlive the device so tests can check destroy). NULL is ignored. */
void testdev_stats_free(struct testdev_stats *stats);

/* The eventfd the device registered for its ioeventfd doorbell. */
int testdev_ioeventfd(struct vfurt_dev *dev);

struct testsrv;

/*
 * Start a server thread serving devs[0..n) on sockets in a fresh temporary
 * directory (paths from testsrv_path). Takes ownership of the devices.
 * conn_opts may be NULL. Returns NULL on failure.
 */
struct testsrv *testsrv_start(struct vfurt_dev **devs, size_t n,
			      const struct vfurt_conn_opts *conn_opts);
const char *testsrv_path(const struct testsrv *ts, size_t i);
/* The same, served by a multi-core runtime on `cores` in `mode`
 * (enum vfurt_poll_mode) instead of the caller-driven server. */
struct testsrv *testsrv_start_rt(struct vfurt_dev **devs, size_t n,
				 const struct vfurt_conn_opts *conn_opts, const char *cores,
				 int mode);
/* The same with every runtime option given (ro->log is filled in when
 * VFURT_TEST_VERBOSE is set). */
struct testsrv *testsrv_start_rt_opts(struct vfurt_dev **devs, size_t n,
				      const struct vfurt_runtime_opts *ro);
/* The runtime of a testsrv_start_rt server (NULL for the plain server). */
struct vfurt_runtime *testsrv_runtime(const struct testsrv *ts);

/*
 * Run fn(arg) on the thread that serves the devices and wait for it: the
 * caller-driven server's thread, between two of its passes (that thread is
 * every device's home, so vfurt_dev_call inside fn runs at once); with a
 * runtime, vfurt_dev_call on device 0. Not from the serving thread itself.
 */
void testsrv_call(struct testsrv *ts, void (*fn)(void *arg), void *arg);

/* Stop the thread, destroy the server (and devices), remove the directory. */
void testsrv_stop(struct testsrv *ts);

/* Number of open fds of this process (/proc/self/fd). */
int test_count_fds(void);

#endif /* VFURT_TESTS_TESTSRV_H */
