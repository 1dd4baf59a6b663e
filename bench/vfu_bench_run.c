/* vfu-bench: the jobs, one pinned client thread per I/O queue pair, and the main thread's run loop. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hostsim/nvme_host.h"
#include "vfu_bench.h"

#define NS_PER_S 1000000000ull
#define DRAIN_NS (5 * NS_PER_S)
#define TICK_MS 50u        /* the main thread looks at signals this often */
#define IRQ_WAIT_MS 100    /* longest sleep on a CQ vector */

static uint64_t xorshift64(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* The idx-th CPU of the set, wrapping; -1 when the set is empty. */
static int nth_cpu(const cpu_set_t *set, uint32_t idx)
{
	int n = CPU_COUNT(set);

	if (!n)
		return -1;
	idx %= (uint32_t)n;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (CPU_ISSET(c, set) && idx-- == 0)
			return c;
	}
	return -1;
}

static int job_setup(struct vb_bench *b, struct vb_job *j, uint32_t idx)
{
	uint32_t qd = b->c.iodepth;
	int rc;

	j->b = b;
	j->idx = idx;
	j->qid = (uint16_t)(idx + 1);
	j->entries = qd + 1;
	j->vector = b->c.irq ? (int)j->qid : -1;
	j->cpu = b->pinned ? nth_cpu(&b->client_cpus, idx) : -1;
	if (j->entries > nh_max_entries(b->h)) {
		fprintf(stderr, "vfu-bench: --iodepth=%u needs %u queue entries, controller has %u\n",
			qd, j->entries, nh_max_entries(b->h));
		return -EINVAL;
	}
	if (b->c.irq && (uint32_t)j->vector >= nh_nvec(b->h)) {
		fprintf(stderr, "vfu-bench: no MSI-X vector %d for queue %u\n", j->vector, j->qid);
		return -EINVAL;
	}
	/* whole cache lines: jobs never share one */
	j->t0 = vb_calloc_lines(j->entries, sizeof(*j->t0));
	j->dir = vb_calloc_lines(j->entries, sizeof(*j->dir));
	j->buf_of = vb_calloc_lines(j->entries, sizeof(*j->buf_of));
	j->inflight = vb_calloc_lines(j->entries, sizeof(*j->inflight));
	j->dptr = vb_calloc_lines(2u * qd, sizeof(*j->dptr));
	j->free_buf = vb_calloc_lines(qd, sizeof(*j->free_buf));
	if (!j->t0 || !j->dir || !j->buf_of || !j->inflight || !j->dptr || !j->free_buf)
		return -ENOMEM;
	/*
	 * Buffers and their data pointers (PRP lists too, for bs > 8 KiB) are
	 * built once here, as a driver's per-request preallocation: the job
	 * threads never allocate guest memory, which is not thread-safe.
	 */
	for (uint32_t i = 0; i < qd; i++) {
		/* zeroes, trim: a page for the Deallocate range */
		size_t len = vb_rw_moves_data(&b->c) ? b->c.bs : NH_PAGE;
		void *buf = nh_alloc(b->h, len);
		struct nh_sqe sqe = { 0 };
		void *aux;
		size_t aux_len;

		if (!buf)
			return -ENOMEM;
		rc = nh_build_dptr(b->h, &sqe, buf, len, NULL, &aux, &aux_len);
		if (rc)
			return rc;
		j->dptr[2 * i] = sqe.prp1;
		j->dptr[2 * i + 1] = sqe.prp2;
		j->free_buf[j->n_free++] = i;
	}
	j->rng = (0x9e3779b97f4a7c15ull * (idx + 1) ^ (uint64_t)getpid()) | 1u; /* never 0 */
	j->seq_next = b->units / b->c.jobs * idx;
	vb_hist_reset(&j->hist[0]);
	vb_hist_reset(&j->hist[1]);
	rc = nh_create_io_pair(b->h, j->qid, j->entries, j->vector);
	if (rc) {
		fprintf(stderr, "vfu-bench: create queue pair %u: status %#x\n", j->qid,
			(unsigned)rc);
		return rc < 0 ? rc : -EIO;
	}
	return 0;
}

int vb_jobs_setup(struct vb_bench *b)
{
	int rc;

	b->jobs = vb_calloc_lines(b->c.jobs, sizeof(*b->jobs));
	if (!b->jobs)
		return -ENOMEM;
	for (uint32_t i = 0; i < b->c.jobs; i++) {
		rc = job_setup(b, &b->jobs[i], i);
		if (rc)
			return rc;
	}
	return 0;
}

void vb_jobs_free(struct vb_bench *b)
{
	if (!b->jobs)
		return;
	for (uint32_t i = 0; i < b->c.jobs; i++) {
		struct vb_job *j = &b->jobs[i];

		free(j->t0);
		free(j->dir);
		free(j->buf_of);
		free(j->inflight);
		free(j->dptr);
		free(j->free_buf);
		free(j->gaps);
	}
	free(b->jobs);
	b->jobs = NULL;
}

/* --doorbell=message: doorbells are requests on the shared client connection,
 * which takes one thread at a time, so the jobs take turns. */
static void db_lock(struct vb_bench *b)
{
	if (b->c.doorbell == VB_DB_MESSAGE)
		pthread_mutex_lock(&b->db_lock);
}

static void db_unlock(struct vb_bench *b)
{
	if (b->c.doorbell == VB_DB_MESSAGE)
		pthread_mutex_unlock(&b->db_lock);
}

/* Submit one I/O on j. 0, -EAGAIN (nothing free), or an error. */
static int submit_one(struct vb_bench *b, struct vb_job *j)
{
	struct nh_sqe sqe = { .nsid = b->c.nsid };
	uint64_t unit, slba, t;
	uint32_t bi;
	uint16_t cid;
	int dir;
	int rc;

	if (!j->n_free)
		return -EAGAIN;
	switch (b->c.rw) {
	case VB_RW_READ:
	case VB_RW_RANDREAD: dir = VB_DIR_READ; break;
	case VB_RW_WRITE:
	case VB_RW_RANDWRITE:
	case VB_RW_ZEROES:
	case VB_RW_TRIM: dir = VB_DIR_WRITE; break;
	default:
		dir = xorshift64(&j->rng) % 100 < b->c.rwmixread ? VB_DIR_READ : VB_DIR_WRITE;
		break;
	}
	if (b->c.rw == VB_RW_READ || b->c.rw == VB_RW_WRITE) {
		unit = j->seq_next;
		j->seq_next = (j->seq_next + 1) % b->units;
	} else {
		unit = xorshift64(&j->rng) % b->units;
	}
	bi = j->free_buf[j->n_free - 1];
	slba = unit * b->nlb_per_io;
	sqe.cdw0 = dir == VB_DIR_READ ? NH_CMD_READ : NH_CMD_WRITE;
	sqe.prp1 = j->dptr[2 * bi];
	sqe.prp2 = j->dptr[2 * bi + 1];
	sqe.cdw10 = (uint32_t)slba;
	sqe.cdw11 = (uint32_t)(slba >> 32);
	sqe.cdw12 = (uint32_t)(b->nlb_per_io - 1) & 0xffffu;
	if (b->c.rw == VB_RW_ZEROES) {
		sqe.cdw0 = NH_CMD_WRITE_ZEROES;
		sqe.prp1 = sqe.prp2 = 0;
		if (b->c.zeroes_deac)
			sqe.cdw12 |= 1u << 25;
	} else if (b->c.rw == VB_RW_TRIM) {
		struct nh_dsm_range *r = nh_ptr(b->h, sqe.prp1);

		r->cattr = 0;
		r->nlb = (uint32_t)b->nlb_per_io;
		r->slba = slba;
		sqe.cdw0 = NH_CMD_DSM;
		sqe.cdw10 = 0;        /* one range */
		sqe.cdw11 = 1u << 2;  /* AD: deallocate */
		sqe.cdw12 = 0;
	}
	t = vb_now_ns();
	db_lock(b);
	rc = nh_submit(b->h, j->qid, &sqe, &cid);
	db_unlock(b);
	if (rc)
		return rc;
	j->t0[cid] = t;
	j->n_free--;
	j->dir[cid] = (uint8_t)dir;
	j->buf_of[cid] = bi;
	j->inflight[j->n_inflight++] = cid;
	j->submitted_ios++;
	return 0;
}

/* Submit until iodepth I/Os are in flight (or the SQ looks full). Returns 1
 * (so a caller can treat it as progress) or -errno. */
static int refill_job(struct vb_bench *b, struct vb_job *j)
{
	while (j->n_free) {
		int rc = submit_one(b, j);

		if (rc == -EAGAIN) {
			j->sq_full++;
			break;
		}
		if (rc)
			return rc;
	}
	return 1;
}

/* Reap j's CQ, account completions, refill when `refill`. Only I/Os submitted at or
 * after `from` and completed by `to` are measured (ramp and drain excluded).
 * Returns completions or -errno. */
static int reap_job(struct vb_bench *b, struct vb_job *j, uint64_t from, uint64_t to, bool refill)
{
	int done = 0;
	uint64_t t;
	int n;

	db_lock(b);
	n = nh_reap(b->h, j->qid);
	db_unlock(b);
	if (n <= 0)
		return n;
	t = vb_now_ns();
	vb_gap_note(j, t);
	for (uint32_t i = 0; i < j->n_inflight; i++) {
		uint16_t cid = j->inflight[i];
		struct nh_cqe cqe;
		int st, dir;

		if (nh_outstanding(b->h, j->qid, cid))
			continue;
		st = nh_wait(b->h, j->qid, cid, &cqe, 0);
		dir = j->dir[cid];
		if (st)
			j->errors++;
		j->done_ios[dir]++;
		if (j->t0[cid] >= from && t <= to && !st) {
			j->ios[dir]++;
			vb_hist_add(&j->hist[dir], t - j->t0[cid]);
		}
		j->free_buf[j->n_free++] = j->buf_of[cid];
		j->inflight[i] = j->inflight[--j->n_inflight];
		i--;
		done++;
	}
	__atomic_store_n(&j->pub_done[0], j->done_ios[0], __ATOMIC_RELAXED);
	__atomic_store_n(&j->pub_done[1], j->done_ios[1], __ATOMIC_RELAXED);
	if (refill) {
		int rc = refill_job(b, j);

		if (rc < 0)
			return rc;
	}
	return done;
}

/* Sleep on j's CQ vector until it fires or timeout_ms pass, then clear it. */
static int wait_irq(struct vb_bench *b, struct vb_job *j, int timeout_ms)
{
	struct pollfd pfd = { .fd = nh_vector_fd(b->h, (uint32_t)j->vector), .events = POLLIN };
	uint64_t v;
	int rc;

	rc = poll(&pfd, 1, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	if (!rc)
		return 0;
	j->irq_wakeups++;
	if ((pfd.revents & POLLIN) && read(pfd.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

/* Milliseconds from now to `until` (at least 1, at most IRQ_WAIT_MS). */
static int ms_until(uint64_t now, uint64_t until)
{
	uint64_t ms = until > now ? (until - now) / 1000000u + 1u : 1u;

	return ms < IRQ_WAIT_MS ? (int)ms : IRQ_WAIT_MS;
}

void vb_wait_go(struct vb_bench *b)
{
	pthread_mutex_lock(&b->go_lock);
	while (!b->go)
		pthread_cond_wait(&b->go_cond, &b->go_lock);
	pthread_mutex_unlock(&b->go_lock);
}

static int job_loop(struct vb_bench *b, struct vb_job *j)
{
	uint64_t ramp_end = b->ramp_end_ns, drain_deadline = 0;
	bool submitting = true;

	if (vb_now_ns() >= ramp_end)
		vb_cpu_self(&j->cpu0); /* no ramp: measured from the first I/O */
	for (uint32_t k = 0; k < b->c.iodepth; k++) {
		int rc = submit_one(b, j);

		if (rc) {
			fprintf(stderr, "vfu-bench: qp%u: submit: %s\n", j->qid, strerror(-rc));
			return rc;
		}
	}
	for (;;) {
		uint64_t end = __atomic_load_n(&b->end_ns, __ATOMIC_RELAXED);
		bool think = b->c.thinktime_us && submitting;
		int n = reap_job(b, j, ramp_end, end, submitting && !think);
		uint64_t t;

		if (n > 0 && think) {
			/* fio's thinktime: stall after completions, then refill;
			 * random: uniform in [0, 2 x thinktime) */
			uint64_t us = b->c.thinktime_random
					      ? xorshift64(&j->rng) % (2ull * b->c.thinktime_us)
					      : b->c.thinktime_us;
			struct timespec ts = { .tv_sec = (time_t)(us / 1000000u),
					       .tv_nsec = (long)(us % 1000000u) * 1000 };

			nanosleep(&ts, NULL);
			n = refill_job(b, j);
		}
		if (n < 0) {
			fprintf(stderr, "vfu-bench: qp%u: I/O: %s\n", j->qid, strerror(-n));
			return n;
		}
		t = vb_now_ns();
		if (!j->cpu0.ok && t >= ramp_end && submitting)
			vb_cpu_self(&j->cpu0);
		if (submitting && (t >= end || __atomic_load_n(&b->stop, __ATOMIC_ACQUIRE))) {
			submitting = false;
			vb_cpu_self(&j->cpu1);
			drain_deadline = t + DRAIN_NS;
		}
		if (!submitting && !j->n_inflight)
			return 0;
		if (!submitting && t > drain_deadline) {
			fprintf(stderr, "vfu-bench: qp%u: %u I/Os never completed\n", j->qid,
				j->n_inflight);
			return -ETIMEDOUT;
		}
		if (!n && b->c.irq) {
			/* wake up for the next boundary: ramp end, end, drain deadline */
			uint64_t until = !submitting ? drain_deadline : j->cpu0.ok ? end : ramp_end;
			int rc = wait_irq(b, j, ms_until(t, until));

			if (rc)
				return rc;
		}
	}
}

static void *job_main(void *arg)
{
	struct vb_job *j = arg;
	struct vb_bench *b = j->b;
	char name[16];

	snprintf(name, sizeof(name), "vfu-bench-j%u", j->idx);
	pthread_setname_np(pthread_self(), name);
	vb_wait_go(b);
	if (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE))
		j->rc = job_loop(b, j);
	if (j->rc)
		__atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE); /* the others stop too */
	return NULL;
}

static void progress(struct vb_bench *b, uint64_t t, uint64_t last_t, uint64_t last_ios[2])
{
	uint64_t cur[2] = { 0, 0 };
	double dt = (double)(t - last_t) / 1e9;

	for (uint32_t i = 0; i < b->c.jobs; i++) {
		cur[0] += __atomic_load_n(&b->jobs[i].pub_done[0], __ATOMIC_RELAXED);
		cur[1] += __atomic_load_n(&b->jobs[i].pub_done[1], __ATOMIC_RELAXED);
	}
	fprintf(stderr, "[%4.0fs%s] read %9.1fk IOPS %8.1f MiB/s | write %9.1fk IOPS %8.1f MiB/s\n",
		(double)(t - b->start_ns) / 1e9, t < b->ramp_end_ns ? " ramp" : "",
		(double)(cur[0] - last_ios[0]) / dt / 1e3,
		(double)(cur[0] - last_ios[0]) * (double)b->c.bs / dt / 1048576.0,
		(double)(cur[1] - last_ios[1]) / dt / 1e3,
		(double)(cur[1] - last_ios[1]) * (double)b->c.bs / dt / 1048576.0);
	last_ios[0] = cur[0];
	last_ios[1] = cur[1];
}

/* The server's worker threads (vfu-rt-w<N>), or the whole --server-pid process
 * when it names its threads otherwise. */
static void server_sample(struct vb_bench *b, struct vb_cpu_sample *s)
{
	if (!b->srv.pid)
		return;
	vb_cpu_threads(b->srv.pid, b->srv.whole_process ? NULL : "vfu-rt-w", s);
	if (s->ok && !s->threads && !b->srv.whole_process && !b->c.self_serve) {
		b->srv.whole_process = true;
		vb_cpu_threads(b->srv.pid, NULL, s);
	}
}

static int start_jobs(struct vb_bench *b)
{
	sigset_t stops, old;
	int rc = 0;

	/* SIGINT / SIGTERM go to the main thread: the jobs block them */
	sigemptyset(&stops);
	sigaddset(&stops, SIGINT);
	sigaddset(&stops, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stops, &old);
	for (uint32_t i = 0; i < b->c.jobs && !rc; i++) {
		struct vb_job *j = &b->jobs[i];
		pthread_attr_t attr;

		rc = -pthread_attr_init(&attr);
		if (rc)
			break;
		if (j->cpu >= 0) {
			cpu_set_t set;

			CPU_ZERO(&set);
			CPU_SET(j->cpu, &set);
			rc = -pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
		}
		if (!rc)
			rc = -pthread_create(&j->thread, &attr, job_main, j);
		pthread_attr_destroy(&attr);
		if (rc)
			fprintf(stderr, "vfu-bench: start job %u on CPU %d: %s\n", i, j->cpu,
				strerror(-rc));
		else
			j->started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / NS_PER_S), .tv_nsec = (long)(t % NS_PER_S) };

	/* EINTR (a signal) is fine: the caller looks at stop_requested */
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Main thread: progress each second, server samples at the ramp's end and
 * the end, the stop. Returns when the jobs have been told to stop. */
static void supervise(struct vb_bench *b, volatile sig_atomic_t *stop_requested)
{
	uint64_t next_prog = b->start_ns + NS_PER_S, last_prog = b->start_ns;
	uint64_t last_ios[2] = { 0, 0 };
	bool srv0 = false;

	for (;;) {
		uint64_t t = vb_now_ns(), end, wake;

		if (!srv0 && t >= b->ramp_end_ns) {
			server_sample(b, &b->srv.s0);
			srv0 = true;
		}
		end = __atomic_load_n(&b->end_ns, __ATOMIC_RELAXED);
		if (t >= end || *stop_requested || __atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
			if (t < end)
				__atomic_store_n(&b->end_ns, t, __ATOMIC_RELAXED);
			__atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
			if (srv0)
				server_sample(b, &b->srv.s1);
			return;
		}
		if (t >= next_prog) {
			progress(b, t, last_prog, last_ios);
			last_prog = t;
			next_prog += NS_PER_S;
		}
		wake = t + TICK_MS * 1000000ull;
		if (next_prog < wake)
			wake = next_prog;
		if (!srv0 && b->ramp_end_ns < wake)
			wake = b->ramp_end_ns;
		if (end < wake)
			wake = end;
		sleep_until(wake);
	}
}

int vb_run(struct vb_bench *b, volatile sig_atomic_t *stop_requested)
{
	int rc = start_jobs(b);
	uint64_t end;

	if (rc)
		__atomic_store_n(&b->stop, 1, __ATOMIC_RELEASE);
	/* the clock starts when every job is ready to go */
	b->start_ns = vb_now_ns();
	b->ramp_end_ns = b->start_ns + b->c.ramp_ms * 1000000ull;
	__atomic_store_n(&b->end_ns, b->ramp_end_ns + b->c.runtime_ms * 1000000ull,
			 __ATOMIC_RELAXED);
	pthread_mutex_lock(&b->go_lock);
	b->go = true;
	pthread_cond_broadcast(&b->go_cond);
	pthread_mutex_unlock(&b->go_lock);
	if (!rc)
		supervise(b, stop_requested);
	for (uint32_t i = 0; i < b->c.jobs; i++) {
		struct vb_job *j = &b->jobs[i];

		if (!j->started)
			continue;
		pthread_join(j->thread, NULL);
		j->started = false;
		if (j->rc && !rc)
			rc = j->rc;
	}
	end = __atomic_load_n(&b->end_ns, __ATOMIC_RELAXED);
	b->measured_ns = end > b->ramp_end_ns ? end - b->ramp_end_ns : 0;
	vb_cpu_use(&b->srv.s0, &b->srv.s1, &b->srv.use);
	return rc;
}
