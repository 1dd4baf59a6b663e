/* NVMe integration fixture: controllers on real sockets, test hosts attached, leaks checked. */
#ifndef VFURT_TESTS_NVME_FX_H
#define VFURT_TESTS_NVME_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/bdev.h>
#include <vfurt/device.h>

#include "hostsim/nvme_host.h"
#include "common/testsrv.h"

/* ---- the fixture ------------------------------------------------------------ */

struct nvme_fx {
	struct testsrv *ts;
	struct nvme_host *h;  /* on controller 0 */
	struct nvme_host *h2; /* a second host (controller 1), NULL when there is none */
	int fd;               /* an fd the test opened, closed by the teardown; -1: none */
	int fds_before;       /* open fds before the server started */
	char file[64];        /* a file the test created, unlinked by the teardown; "": none */
};

/* A fixture with nothing started yet, fds counted; *state gets it. Call it
 * before creating the devices (a controller may hold fds). Asserts. */
struct nvme_fx *nvme_fx_new(void **state);

/* Serve devs[0..n) (owned from the call on) as f->ts: by the caller-driven
 * server when cores is NULL, else by a runtime on cores in poll mode `mode`
 * (enum vfurt_poll_mode). Asserts. */
void nvme_fx_serve(struct nvme_fx *f, struct vfurt_dev **devs, size_t n, const char *cores,
		   int mode);

/* Connect a host to controller i (ho NULL: defaults) and enable it. Asserts. */
struct nvme_host *nvme_fx_host(struct nvme_fx *f, size_t i, const struct nvme_host_opts *ho);

/* A cmocka teardown: close the hosts and the fd, stop the server, unlink the
 * file; -1 (with the list of fds) when the process is not back to
 * fds_before. Frees the fixture; a NULL fixture is fine. */
int nvme_fx_teardown(void **state);

/* NVME_TEST / NVME_SKIP=pattern in the environment: run only / skip the
 * matching cases (cmocka filters, for debugging). Call before running. */
void nvme_fx_filters(void);

/* ---- the standard test controller (test_it_nvme_*) ------------------------------ */

#define NFX_NS1_BS 512u
#define NFX_NS1_SIZE (8u << 20)
#define NFX_NS2_BS 4096u
#define NFX_NS2_SIZE (16u << 20)
#define NFX_MAX_IOQ 8u /* I/O queue pairs */
#define NFX_QENT 64u   /* entries of the queues nvme_fx_host_io() creates */
#define NFX_SERIAL "VFURT-TEST-0001"
#define NFX_MODEL "vfu-rt test NVMe"

/* A controller with serial NFX_SERIAL and model NFX_MODEL, NFX_MAX_IOQ queue
 * pairs of up to 1024 entries, namespaces b1 and (when not NULL) b2, which
 * it owns. Asserts. */
struct vfurt_dev *nvme_fx_ctrl(const char *name, struct vfurt_bdev *b1, struct vfurt_bdev *b2);
/* "nvme0" on RAM: ns 1 NFX_NS1_SIZE of NFX_NS1_BS blocks, ns 2 NFX_NS2_SIZE of NFX_NS2_BS. */
struct vfurt_dev *nvme_fx_ram_ctrl(void);

/* A controller named name with 4 I/O queue pairs of up to qent entries and
 * one RAM namespace of size bytes in blocks of bs, which it owns. Asserts. */
struct vfurt_dev *nvme_fx_small_ctrl(const char *name, uint32_t bs, uint64_t size, uint32_t qent);

/* nvme_fx_host on controller i, then (ioq) NFX_MAX_IOQ queues granted and
 * I/O pair 1 of NFX_QENT entries on vector 1. Asserts. */
struct nvme_host *nvme_fx_host_io(struct nvme_fx *f, size_t i, const struct nvme_host_opts *ho,
				  bool ioq);

/* cmocka setups: nvme_fx_ram_ctrl served, a host with I/O pair 1. */
int nvme_fx_setup(void **state);             /* caller-driven server */
int nvme_fx_setup_rt(void **state);          /* adaptive runtime on it_cores() */
int nvme_fx_setup_db_msg(void **state);      /* host writes doorbells by message */
int nvme_fx_setup_irq(void **state);         /* host waits on MSI-X eventfds */

/* A write and read-back of one block at LBA 7 of ns 1 on queue qid; fails
 * the test with the statuses otherwise. */
void nvme_fx_good_io_at(struct nvme_host *h, uint16_t qid, uint32_t seed, int line);
#define good_io(h, qid, seed) nvme_fx_good_io_at(h, qid, seed, __LINE__)

/* Write len bytes at slba of nsid (block size bs) from a buffer buf_off
 * bytes into a fresh allocation, with data pointer options dp, read them
 * back with rdp, compare. */
void nvme_fx_rw_verify(struct nvme_host *h, uint16_t qid, uint32_t nsid, uint32_t bs,
		       uint64_t slba, size_t len, size_t buf_off, const struct nh_dptr_opts *dp,
		       const struct nh_dptr_opts *rdp, uint32_t seed);

#endif /* VFURT_TESTS_NVME_FX_H */
