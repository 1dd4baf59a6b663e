/* vfu-bench: NVMe load generator that plays the guest driver over vfio-user (fio/SPDK perf style). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vfurt/bdev.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>

#include "hostsim/nvme_host.h"
#include "vfu_bench.h"

/* The only global: set by SIGINT/SIGTERM, read by the main thread's run loop. */
static volatile sig_atomic_t stop_requested;

#define FLOOR_MS 50u /* core-to-core ping-pong duration */

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int self_serve_start(struct vb_bench *b)
{
	struct vfurt_runtime_opts ro = {
		.opts_size = sizeof(ro),
		.cores = b->c.server_cpus,
		.poll_mode = b->c.server_adaptive ? VFURT_POLL_ADAPTIVE : VFURT_POLL_BUSY,
		.irq_unbatched = b->c.irq_unbatched,
		.log = { .fn = vfurt_log_stderr, .arg = (void *)"vfu-bench server",
			 .level = VFURT_LOG_ERR },
	};
	struct vfurt_bdev_spec_opts bo = { .opts_size = sizeof(bo) };
	struct vfurt_bdev *bdev = NULL;
	struct vfurt_nvme_opts no = {
		.opts_size = sizeof(no),
		.name = "vfu-bench-nvme",
		.log = ro.log,
		.max_io_queues = b->c.jobs,
		.max_queue_entries = 4096,
		.nr_ns = 1,
		.own_bdevs = true,
		.ioeventfd = b->c.doorbell == VB_DB_IOEVENTFD,
		.irq_per_completion = b->c.irq_unbatched,
	};
	struct vfurt_dev *dev;
	char err[256] = "";
	int rc;

	snprintf(b->sock_path, sizeof(b->sock_path), "/tmp/vfu-bench-%ld.sock", (long)getpid());
	b->rt = vfurt_runtime_create(&ro, err, sizeof(err));
	if (!b->rt) {
		fprintf(stderr, "vfu-bench: runtime: %s\n", err);
		return -EINVAL;
	}
	bo.spec = b->c.backend;
	bo.size_bytes = b->c.size;
	bo.block_size = b->c.block_size;
	bo.direct = b->c.direct ? VFURT_BDEV_DIRECT_ON : VFURT_BDEV_DIRECT_OFF;
	bdev = vfurt_bdev_spec_create(&bo, err, sizeof(err));
	if (!bdev) {
		rc = -errno;
		fprintf(stderr, "vfu-bench: backend %s: %s\n", b->c.backend, err);
		return rc;
	}
	no.ns = &bdev;
	dev = vfurt_nvme_create(&no);
	if (!dev) {
		rc = -errno;
		vfurt_bdev_destroy(bdev);
		fprintf(stderr, "vfu-bench: nvme controller: %s\n", strerror(-rc));
		return rc;
	}
	unlink(b->sock_path);
	rc = vfurt_runtime_add_device(b->rt, dev, b->sock_path, 0600, -1);
	if (rc) {
		fprintf(stderr, "vfu-bench: add device: %s\n", strerror(-rc));
		return rc;
	}
	rc = vfurt_runtime_start(b->rt);
	if (rc)
		fprintf(stderr, "vfu-bench: runtime start: %s\n", strerror(-rc));
	b->c.socket = b->sock_path;
	return rc;
}

static int read_namespace(struct vb_bench *b)
{
	uint8_t *id = nh_alloc(b->h, NH_PAGE);
	uint64_t nsze;
	uint8_t flbas, lbads;
	int rc;

	if (!id)
		return -ENOMEM;
	rc = nh_identify(b->h, NH_CNS_NS, b->c.nsid, id);
	if (rc) {
		fprintf(stderr, "vfu-bench: identify namespace %u: status %#x\n", b->c.nsid,
			(unsigned)rc);
		nh_free(b->h, id, NH_PAGE);
		return rc < 0 ? rc : -EIO;
	}
	memcpy(&nsze, id, sizeof(nsze));
	flbas = id[26] & 0xfu;
	lbads = id[128 + 4u * flbas + 2u];
	nh_free(b->h, id, NH_PAGE);
	if (!nsze || lbads < 9 || lbads > 16) {
		fprintf(stderr, "vfu-bench: namespace %u is inactive or has a bad format\n",
			b->c.nsid);
		return -ENODEV;
	}
	b->lba_size = 1u << lbads;
	/* NLB is 16 bits, a Deallocate range's 32 */
	if (b->c.bs % b->lba_size ||
	    b->c.bs / b->lba_size > (b->c.rw == VB_RW_TRIM ? UINT32_MAX : 0x10000u)) {
		fprintf(stderr, "vfu-bench: --bs must be a multiple of the LBA size %u, at most "
			"%s blocks\n", b->lba_size, b->c.rw == VB_RW_TRIM ? "2^32 - 1" : "65536");
		return -EINVAL;
	}
	b->nlb_per_io = b->c.bs / b->lba_size;
	b->units = nsze / b->nlb_per_io;
	return b->units ? 0 : -EINVAL;
}

static int setup_host(struct vb_bench *b)
{
	/* zeroes and trim move no data: one page per slot (the range list) */
	uint64_t data = vb_rw_moves_data(&b->c) ? b->c.bs : NH_PAGE;
	uint64_t buf_bytes = (data + NH_PAGE - 1) / NH_PAGE * NH_PAGE;
	/* PRP list pages, built once per buffer when bs > 8 KiB */
	uint64_t lists = data > 2u * NH_PAGE ? buf_bytes / (511u * NH_PAGE) + 1u : 0u;
	/* buffers, their lists, rings, slack */
	uint64_t per_job = (uint64_t)b->c.iodepth * (buf_bytes + lists * NH_PAGE) +
			   (uint64_t)(b->c.iodepth + 1) * 80u + 4u * NH_PAGE;
	struct nvme_host_opts ho = {
		.mem_size = (size_t)(per_job * b->c.jobs + (16u << 20)),
		.timeout_ms = 5000,
		.doorbell_msg = b->c.doorbell == VB_DB_MESSAGE,
		.doorbell_ioeventfd = b->c.doorbell == VB_DB_IOEVENTFD,
		.irq_wait = b->c.irq,
	};
	uint32_t dw0 = 0;
	int rc;

	b->h = nh_open(b->c.socket, &ho);
	if (!b->h) {
		fprintf(stderr, "vfu-bench: connect %s: %s\n", b->c.socket, strerror(errno));
		return -ENOTCONN;
	}
	if (b->c.doorbell == VB_DB_MMAP && !nh_doorbells_mapped(b->h)) {
		fputs("vfu-bench: the controller's doorbells could not be mmapped; use "
		      "--doorbell=message\n", stderr);
		return -ENOTSUP;
	}
	rc = nh_enable(b->h);
	if (rc) {
		fprintf(stderr, "vfu-bench: enable controller: %s\n", strerror(-rc));
		return rc;
	}
	rc = nh_set_num_queues(b->h, (uint16_t)b->c.jobs, (uint16_t)b->c.jobs, &dw0);
	if (rc || (dw0 & 0xffffu) + 1u < b->c.jobs || (dw0 >> 16) + 1u < b->c.jobs) {
		fprintf(stderr, "vfu-bench: controller gives %u queue pairs, --jobs=%u\n",
			rc ? 0u : ((dw0 & 0xffffu) < (dw0 >> 16) ? dw0 & 0xffffu : dw0 >> 16) + 1u,
			b->c.jobs);
		return -EINVAL;
	}
	if (b->c.doorbell == VB_DB_IOEVENTFD) {
		rc = nh_dbbuf_enable(b->h);
		if (rc) {
			fprintf(stderr, "vfu-bench: Doorbell Buffer Config: %s\n",
				rc < 0 ? strerror(-rc) : "refused");
			return rc < 0 ? rc : -ENOTSUP;
		}
	}
	rc = read_namespace(b);
	if (!rc)
		rc = vb_jobs_setup(b);
	return rc ? rc : vb_gaps_setup(b);
}

/* The lowest CPU of the calling thread's affinity other than `not`, or -1. */
static int first_allowed_cpu(int not)
{
	cpu_set_t set;

	if (pthread_getaffinity_np(pthread_self(), sizeof(set), &set))
		return -1;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (CPU_ISSET(c, &set) && c != not)
			return c;
	}
	return -1;
}

static int first_cpu(const cpu_set_t *set)
{
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (CPU_ISSET(c, set))
			return c;
	}
	return -1;
}

/*
 * The core-to-core floor: a cache-line round trip between the first client
 * CPU (--cpus; unpinned: the lowest allowed CPU that is not the server's)
 * and the first server CPU (--server-cpus), before the server's workers
 * start spinning (self-serve) or the client connects.
 */
static void measure_floor(struct vb_bench *b)
{
	cpu_set_t srv;
	int rc;

	b->c2c_rtt_ns = -1;
	if (b->c.no_floor) {
		b->c2c_note = "--no-floor";
		return;
	}
	if (vb_parse_cpus(b->c.server_cpus, &srv)) {
		b->c2c_note = "--server-cpus is not a CPU list";
		return;
	}
	b->c2c_cpu[1] = first_cpu(&srv);
	b->c2c_cpu[0] = b->pinned ? first_cpu(&b->client_cpus) : first_allowed_cpu(b->c2c_cpu[1]);
	if (b->c2c_cpu[0] < 0) {
		b->c2c_note = "no client CPU";
		return;
	}
	if (b->c2c_cpu[0] == b->c2c_cpu[1]) {
		b->c2c_note = "client and server share their first CPU";
		return;
	}
	rc = vb_c2c_rtt(b->c2c_cpu[0], b->c2c_cpu[1], FLOOR_MS, &b->c2c_rtt_ns);
	if (rc) {
		b->c2c_rtt_ns = -1;
		b->c2c_note = rc == -ETIMEDOUT ? "a CPU did not answer (busy?)"
			    : rc == -EINVAL ? "a CPU is not available" : "ping-pong failed";
		fprintf(stderr, "vfu-bench: core-to-core floor CPU %d <-> %d: %s\n", b->c2c_cpu[0],
			b->c2c_cpu[1], strerror(-rc));
	}
}

int main(int argc, char **argv)
{
	struct vb_bench *b = vb_calloc_lines(1, sizeof(*b));
	struct sigaction sa = { .sa_handler = on_signal };
	int rc;

	if (!b)
		return 1;
	pthread_mutex_init(&b->db_lock, NULL);
	pthread_mutex_init(&b->go_lock, NULL);
	pthread_cond_init(&b->go_cond, NULL);
	rc = vb_parse_args(argc, argv, &b->c);
	if (rc)
		goto out_free;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (b->c.cpus) {
		rc = vb_parse_cpus(b->c.cpus, &b->client_cpus);
		if (rc) {
			fprintf(stderr, "vfu-bench: bad --cpus=%s\n", b->c.cpus);
			goto out_free;
		}
		b->pinned = true;
	}
	measure_floor(b);
	if (b->c.self_serve) {
		rc = self_serve_start(b);
		if (rc)
			goto out_rt;
		b->srv.pid = getpid();
	} else {
		b->srv.pid = b->c.server_pid;
	}
	if (b->pinned) {
		/* the main thread (setup, progress) stays on the client's CPUs too */
		rc = -pthread_setaffinity_np(pthread_self(), sizeof(b->client_cpus),
					     &b->client_cpus);
		if (rc) {
			fprintf(stderr, "vfu-bench: pin to %s: %s\n", b->c.cpus, strerror(-rc));
			goto out_rt;
		}
	}
	rc = setup_host(b);
	if (rc)
		goto out_host;
	if (b->c.probe) {
		rc = vb_probe_start(b);
		if (rc)
			goto out_host;
	}
	rc = vb_run(b, &stop_requested);
	vb_probe_join(b);
	if (rc)
		goto out_host;
	if (b->c.json)
		vb_report_json(b);
	else
		vb_report_table(b);
	if (b->c.plot)
		rc = vb_report_plot(b);
	if (b->c.gaps && vb_gaps_write(b))
		rc = -EIO;
	nh_shutdown(b->h);
out_host:
	vb_probe_join(b);
	vb_probe_free(b);
	vb_jobs_free(b);
	nh_close(b->h);
out_rt:
	vfurt_runtime_destroy(b->rt);
	if (b->sock_path[0])
		unlink(b->sock_path);
out_free:
	pthread_cond_destroy(&b->go_cond);
	pthread_mutex_destroy(&b->go_lock);
	pthread_mutex_destroy(&b->db_lock);
	free(b);
	return rc ? 1 : 0;
}
