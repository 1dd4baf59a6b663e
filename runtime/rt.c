/* The runtime object: create, add devices, start, stop, destroy; the process fd budget. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vfurt/abi.h>
#include <vfurt/server.h>

#include "io/fault.h" /* an io/ internal runtime/ may use (CMakeLists.txt) */
#include "cpuset.h"
#include "rt_internal.h"

#define DEFAULT_SPIN_US 100u
#define DEFAULT_POLL_SLEEP_US 1000u
#define DEFAULT_SLEEP_MAX_US 100000u

static void set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

struct vfurt_runtime *vfurt_runtime_create(const struct vfurt_runtime_opts *opts, char *err,
					   size_t errlen)
{
	struct vfurt_runtime_opts o = { 0 };
	int cpus[VFURT_MAX_CPUS];
	struct vfurt_runtime *rt;
	char why[256] = "";
	size_t n = 0;
	int rc;

	if (vfurt_abi_copy_in(&o, sizeof(o), opts,
			      VFURT_ABI_SIZE(struct vfurt_runtime_opts, clock_arg))) {
		set_err(err, errlen, "missing options or bad opts_size");
		errno = EINVAL;
		return NULL;
	}
	if (o.poll_mode != VFURT_POLL_BUSY && o.poll_mode != VFURT_POLL_ADAPTIVE) {
		set_err(err, errlen, "unknown poll mode");
		errno = EINVAL;
		return NULL;
	}
	rc = vfr_cpulist_parse(o.cores ? o.cores : "0", cpus, VFURT_MAX_CPUS, &n, why,
				 sizeof(why));
	if (!rc && !o.no_threads)
		rc = vfr_cpulist_validate(cpus, n, why, sizeof(why));
	if (rc) {
		set_err(err, errlen, why);
		errno = -rc;
		return NULL;
	}

	rt = calloc(1, sizeof(*rt));
	if (!rt)
		goto err_nomem;
	/* the process's SIGBUS guard lives while a runtime does (io/fault.c) */
	rc = vfr_fault_guard_acquire();
	if (rc) {
		free(rt);
		set_err(err, errlen, "cannot install the SIGBUS handler");
		errno = -rc;
		return NULL;
	}
	rt->dma_quota = o.dma_quota;
	if (!rt->dma_quota) {
		rt->dma_quota = vfurt_dma_quota_create(o.conn.dma_maps_process_max,
						       o.conn.dma_maps_min_per_client);
		if (!rt->dma_quota)
			goto err_release_guard;
		rt->own_quota = true;
	}
	rt->log = o.log;
	rt->conn_opts = o.conn;
	if (!rt->conn_opts.opts_size)
		rt->conn_opts.opts_size = sizeof(rt->conn_opts);
	rt->mode = o.poll_mode;
	rt->spin_ns = (o.adaptive_spin_us ? o.adaptive_spin_us : DEFAULT_SPIN_US) * 1000ull;
	rt->sleep_max_ns = (o.adaptive_sleep_max_us ? o.adaptive_sleep_max_us
						    : DEFAULT_SLEEP_MAX_US) * 1000ull;
	rt->poll_sleep_ns = (o.adaptive_poll_sleep_us ? o.adaptive_poll_sleep_us
						      : DEFAULT_POLL_SLEEP_US) * 1000ull;
	rt->irq_unbatched = o.irq_unbatched;
	rt->no_threads = o.no_threads;
	rt->clock = o.clock;
	rt->clock_arg = o.clock_arg;
	ck_epoch_init(&rt->epoch);
	pthread_mutex_init(&rt->lock, NULL);
	rt->workers = calloc(n, sizeof(*rt->workers));
	if (!rt->workers)
		goto err_free_quota;
	for (uint32_t i = 0; i < n; i++) {
		if (vfr_rt_worker_init(rt, &rt->workers[i], i, cpus[i])) {
			while (i-- > 0)
				vfr_rt_worker_fini(&rt->workers[i]);
			goto err_free_workers;
		}
	}
	rt->nr_workers = (uint32_t)n;
	return rt;

err_free_workers:
	free(rt->workers);
err_free_quota:
	pthread_mutex_destroy(&rt->lock);
	if (rt->own_quota)
		vfurt_dma_quota_destroy(rt->dma_quota);
err_release_guard:
	vfr_fault_guard_release();
	free(rt);
err_nomem:
	set_err(err, errlen, "out of memory");
	errno = ENOMEM;
	return NULL;
}

uint32_t vfurt_runtime_worker_count(const struct vfurt_runtime *rt)
{
	return rt->nr_workers;
}

struct vfurt_worker *vfurt_runtime_worker(const struct vfurt_runtime *rt, uint32_t i)
{
	return i < rt->nr_workers ? &rt->workers[i] : NULL;
}

/* Append ep to the runtime's list (under the lock). 0 or -ENOMEM. */
static int eps_append(struct vfurt_runtime *rt, struct rt_endpoint *ep)
{
	int rc = 0;

	pthread_mutex_lock(&rt->lock);
	if (rt->nr_eps == rt->cap_eps) {
		uint32_t ncap = rt->cap_eps ? rt->cap_eps * 2 : 8;
		struct rt_endpoint **n = realloc(rt->eps, ncap * sizeof(*n));

		if (!n) {
			rc = -ENOMEM;
			goto out;
		}
		rt->eps = n;
		rt->cap_eps = ncap;
	}
	rt->eps[rt->nr_eps++] = ep;
out:
	pthread_mutex_unlock(&rt->lock);
	return rc;
}

struct ep_attach {
	struct rt_endpoint *ep;
	int rc;
};

/* On the home worker (or before start): take ep into its list and arm it. */
static void ep_attach_on(void *arg)
{
	struct ep_attach *a = arg;
	struct rt_endpoint *ep = a->ep;
	struct vfurt_worker *home = ep->home;
	struct rt_endpoint **n = realloc(home->eps, (home->nr_eps + 1) * sizeof(*n));

	if (!n) {
		a->rc = -ENOMEM;
		return;
	}
	home->eps = n;
	home->eps[home->nr_eps++] = ep;
	vfr_rt_endpoint_arm(home, ep);
	a->rc = 0;
}

/* Remove ep from v[0..*n), keeping the order of the others. */
static void ep_array_remove(struct rt_endpoint **v, uint32_t *n, const struct rt_endpoint *ep)
{
	for (uint32_t i = 0; i < *n; i++) {
		if (v[i] == ep) {
			memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(v[0]));
			(*n)--;
			return;
		}
	}
}

void vfr_rt_eps_remove(struct rt_endpoint *ep)
{
	struct vfurt_runtime *rt = ep->rt;

	pthread_mutex_lock(&rt->lock);
	ep_array_remove(rt->eps, &rt->nr_eps, ep);
	ep->gone = true;
	pthread_mutex_unlock(&rt->lock);
}

void vfr_rt_home_remove(struct rt_endpoint *ep)
{
	ep_array_remove(ep->home->eps, &ep->home->nr_eps, ep);
}

struct rt_endpoint *vfr_rt_ep_of(const struct vfurt_runtime *rt, const struct vfurt_dev *dev)
{
	for (uint32_t i = 0; i < rt->nr_eps; i++)
		if (rt->eps[i]->dev == dev)
			return rt->eps[i];
	return NULL;
}

int vfurt_runtime_add_device(struct vfurt_runtime *rt, struct vfurt_dev *dev, const char *path,
			     mode_t mode, int worker)
{
	return vfr_rt_add_endpoint(rt, dev, path, mode, worker, -1);
}

int vfr_rt_add_endpoint(struct vfurt_runtime *rt, struct vfurt_dev *dev, const char *path,
			mode_t mode, int worker, int lfd)
{
	struct ep_attach a = { 0 };
	struct rt_endpoint *ep;
	struct vfurt_worker *home;
	int rc;

	if (!rt || !dev || !path || !*path)
		return -EINVAL;
	if (rt->stopped)
		return -ESHUTDOWN;
	if (worker >= (int)rt->nr_workers)
		return -EINVAL;
	home = &rt->workers[worker >= 0 ? (uint32_t)worker :
			    atomic_fetch_add(&rt->next_home, 1) % rt->nr_workers];
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->rt = rt;
	ep->home = home;
	ep->dev = dev;
	ep->lfd = -1;
	atomic_init(&ep->refs, 1);
	rc = lfd >= 0 ? lfd : vfurt_listen_unix(path, mode);
	if (rc < 0)
		goto err_free;
	ep->lfd = rc;
	snprintf(ep->path, sizeof(ep->path), "%s", path);
	rc = vfurt_dev_set_host(dev, &vfr_rt_host_ops, ep);
	if (rc)
		goto err_close;
	{
		struct vfurt_dma_quota_stats qs = { .stats_size = sizeof(qs) };
		uint32_t got = vfurt_dev_set_dma_quota(dev, rt->dma_quota);

		vfurt_dma_quota_get_stats(rt->dma_quota, &qs);
		if (got < qs.min_per_client)
			vfurt_logf(&rt->log, VFURT_LOG_WARN,
				   "%s: only %u of dma_maps_min_per_client %u fd-backed DMA windows "
				   "reserved (dma_maps_process_max %u for %u devices)",
				   vfurt_dev_name(dev), got, qs.min_per_client, qs.limit,
				   qs.devices);
	}
	/* a device logging to the runtime's stderr sink: tag its lines with the
	 * worker that serves it */
	if (vfurt_dev_log(dev)->fn == vfurt_log_stderr && home->log.fn == vfurt_log_stderr) {
		struct vfurt_log l = *vfurt_dev_log(dev);

		l.arg = home->log.arg;
		vfurt_dev_set_log(dev, &l);
	}
	ep->accept_op = (struct rt_op){ .kind = RT_OP_ACCEPT, .ep = ep };
	ep->recv_op = (struct rt_op){ .kind = RT_OP_RECV, .ep = ep };
	ep->send_op = (struct rt_op){ .kind = RT_OP_SEND, .ep = ep };
	ep->watch_gen = vfurt_dev_watch_gen(dev);
	ep->nr_watches = (uint32_t)vfurt_dev_watches(dev, ep->watches, RT_MAX_WATCHES);
	for (uint32_t i = 0; i < RT_MAX_WATCHES; i++)
		ep->watch_ops[i] = (struct rt_op){ .kind = RT_OP_WATCH, .ep = ep, .watch = i };
	rc = eps_append(rt, ep);
	if (rc)
		goto err_host;
	/* running: the home worker takes it between two passes */
	a.ep = ep;
	rc = vfr_rt_run_on(rt, home, ep_attach_on, &a);
	if (!rc)
		rc = a.rc;
	if (rc)
		goto err_forget;
	if (rt->started)
		vfr_rt_check_fd_budget(rt);
	vfurt_logf(&home->log, VFURT_LOG_INFO, "%s: listening on %s", vfurt_dev_name(dev), path);
	return 0;

err_forget:
	vfr_rt_eps_remove(ep);
err_host:
	vfurt_dev_set_dma_quota(dev, NULL);
	vfurt_dev_set_host(dev, NULL, NULL);
err_close:
	if (lfd < 0) {
		close(ep->lfd);
		unlink(path);
	}
err_free:
	free(ep);
	return rc;
}

struct vfurt_dev *vfurt_runtime_find_device(struct vfurt_runtime *rt, const char *path)
{
	struct vfurt_dev *dev = NULL;

	if (!rt || !path)
		return NULL;
	pthread_mutex_lock(&rt->lock);
	for (uint32_t i = 0; i < rt->nr_eps && !dev; i++)
		if (!rt->eps[i]->remove_asked && !strcmp(rt->eps[i]->path, path))
			dev = rt->eps[i]->dev;
	pthread_mutex_unlock(&rt->lock);
	return dev;
}

/*
 * Process-wide fds: every client may hold up to max_irq_fds eventfds plus a
 * few of its own (sockets, twin, region fds); with the soft RLIMIT_NOFILE
 * raised to the hard one, check that all devices' clients fit at once, so
 * that one client's fds can never starve another's accept or SET_IRQS.
 */
void vfr_rt_check_fd_budget(struct vfurt_runtime *rt)
{
	/* eventfds, DMA windows' fds (kept for a live upgrade), a few more */
	uint64_t per = (rt->conn_opts.max_irq_fds ? rt->conn_opts.max_irq_fds : 1024) +
		       (rt->conn_opts.max_dma_maps ? rt->conn_opts.max_dma_maps : 1024) + 16;
	uint32_t neps;
	uint64_t need;
	struct rlimit rl;

	pthread_mutex_lock(&rt->lock);
	neps = rt->nr_eps;
	pthread_mutex_unlock(&rt->lock);
	/* twice: a live upgrade holds a dup of each in its state image */
	need = 2 * neps * per + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < need) {
		struct rlimit up = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };

		if (up.rlim_cur != RLIM_INFINITY && up.rlim_cur > need * 4)
			up.rlim_cur = need * 4;
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		vfurt_logf(&rt->log, VFURT_LOG_WARN,
			   "%u devices may hold %llu fds (max_irq_fds + max_dma_maps %llu each, "
			   "twice during a live upgrade), but RLIMIT_NOFILE is %llu: raise it or "
			   "lower max_irq_fds or max_dma_maps, or one client can exhaust the "
			   "others' fds",
			   neps, (unsigned long long)need, (unsigned long long)(per - 16),
			   (unsigned long long)rl.rlim_cur);
}

int vfurt_runtime_start(struct vfurt_runtime *rt)
{
	int rc;

	if (!rt || rt->started || rt->stopped)
		return -EINVAL;
	rt->started = true;
	vfr_rt_check_fd_budget(rt);
	for (uint32_t i = 0; i < rt->nr_workers; i++) {
		/* no_threads: the io_uring only; the embedder runs the passes */
		rc = rt->no_threads ? vfr_rt_worker_ring_init(&rt->workers[i])
				    : vfr_rt_worker_start(&rt->workers[i]);
		if (rc) {
			vfurt_logf(&rt->log, VFURT_LOG_ERR, "cannot start worker %u: %s", i,
				   strerror(-rc));
			vfurt_runtime_stop(rt);
			return rc;
		}
	}
	return 0;
}

/* On worker w: refuse new clients and close every connection it homes, as a
 * client disconnect would (the message in progress has been answered: a
 * worker runs this between messages). */
static void shutdown_endpoints(void *arg)
{
	struct vfurt_worker *w = arg;

	for (uint32_t i = 0; i < w->nr_eps; i++) {
		struct rt_endpoint *ep = w->eps[i];

		ep->closing = true;
		if (ep->removing && ep->conn)
			ep->how = VFURT_REMOVE_FORCED;
		vfr_rt_endpoint_drop(ep, 0);
	}
}

void vfurt_runtime_stop(struct vfurt_runtime *rt)
{
	if (!rt || !rt->started || rt->stopped)
		return;
	/* phase 1, all workers running: close connections on their home
	 * workers (a detach may remove queues polled by other workers) */
	for (uint32_t i = 0; i < rt->nr_workers; i++)
		if (atomic_load(&rt->workers[i].thread_started) ||
		    (rt->no_threads && rt->workers[i].ring_ok))
			vfr_rt_run_on(rt, &rt->workers[i], shutdown_endpoints, &rt->workers[i]);
	/* phase 2: stop and join the threads */
	for (uint32_t i = 0; i < rt->nr_workers; i++)
		vfr_rt_worker_join(&rt->workers[i]);
	rt->stopped = true;
	/* no reader is left: free the table versions still deferred */
	for (uint32_t i = 0; i < rt->nr_workers; i++)
		vfr_rt_worker_reclaim(&rt->workers[i]);
	/* removals in progress end now, their devices destroyed */
	vfr_rt_remove_finish_stopped(rt);
	for (uint32_t i = 0; i < rt->nr_eps; i++) {
		struct rt_endpoint *ep = rt->eps[i];

		vfr_rt_endpoint_drop(ep, 0); /* threads are gone: safe here */
		if (ep->lfd >= 0) {
			close(ep->lfd);
			unlink(ep->path);
			ep->lfd = -1;
		}
	}
}

void vfurt_runtime_destroy(struct vfurt_runtime *rt)
{
	if (!rt)
		return;
	vfurt_runtime_stop(rt);
	/* never started: removals asked for meanwhile finished at once */
	for (uint32_t i = 0; i < rt->nr_eps; i++) {
		struct rt_endpoint *ep = rt->eps[i];

		if (ep->lfd >= 0) {
			close(ep->lfd);
			unlink(ep->path);
		}
		/* the device's destroy removes its queues: do it while the
		 * worker poller sets still exist */
		vfurt_dev_destroy(ep->dev);
		free(ep);
	}
	for (uint32_t i = 0; i < rt->nr_workers; i++)
		vfr_rt_worker_fini(&rt->workers[i]);
	free(rt->workers);
	free(rt->eps);
	pthread_mutex_destroy(&rt->lock);
	if (rt->own_quota)
		vfurt_dma_quota_destroy(rt->dma_quota); /* its devices left it */
	vfr_fault_guard_release();
	free(rt);
}
