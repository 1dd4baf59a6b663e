/* Removing a served device while the runtime runs: REQ irq, grace period, forced detach, teardown. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_internal.h"

/*
 * The sequence, on the device's home worker (runtime.h,
 * vfurt_runtime_remove_device):
 *  1. remove_start: refuse new clients, unlink the socket file; with a
 *     client, trigger the REQ irq and set the deadline;
 *  2. remove_step (after every event of the endpoint and at every tick):
 *     once the client is gone, or at the deadline after disconnecting it,
 *     destroy the device and make the endpoint a zombie;
 *  3. a zombie cancels the io_uring operations still armed on it (they
 *     point into it) and waits for their completions; with none left it
 *     leaves rt->eps and the done callback runs.
 * Nothing in it waits: the worker's other devices are served meanwhile.
 */

void vfr_rt_ep_put(struct rt_endpoint *ep)
{
	if (atomic_fetch_sub_explicit(&ep->refs, 1, memory_order_acq_rel) == 1)
		free(ep);
}

void vfr_rt_remove_complete(struct rt_endpoint *ep)
{
	vfr_rt_eps_remove(ep);
	if (ep->remove_done)
		ep->remove_done(ep->remove_arg, ep->how);
	vfr_rt_ep_put(ep);
}

/* Destroy ep's device and close its listening socket (the file was
 * unlinked at the start). */
static void release_device(struct rt_endpoint *ep)
{
	struct vfurt_dev *dev = ep->dev;

	if (dev) {
		/* readers of rt->eps compare ->dev under the lock */
		pthread_mutex_lock(&ep->rt->lock);
		ep->dev = NULL;
		pthread_mutex_unlock(&ep->rt->lock);
		vfurt_dev_destroy(dev);
	}
	if (ep->lfd >= 0) {
		close(ep->lfd);
		ep->lfd = -1;
	}
}

/* Every io_uring operation that may still be armed on ep. */
static uint32_t ep_ops(struct rt_endpoint *ep, struct rt_op **ops, uint32_t max)
{
	uint32_t n = 0;

	if (n < max)
		ops[n++] = &ep->accept_op;
	if (n < max)
		ops[n++] = &ep->recv_op;
	if (n < max)
		ops[n++] = &ep->send_op;
	for (uint32_t i = 0; i < RT_MAX_WATCHES && n < max; i++)
		ops[n++] = &ep->watch_ops[i];
	return n;
}

/* Ask the kernel to end ep's armed operations. Returns false when the
 * submission queue had no room (retried at the next tick). */
bool vfr_rt_ep_cancel_ops(struct vfurt_worker *w, struct rt_endpoint *ep)
{
	struct rt_op *ops[3 + RT_MAX_WATCHES];
	uint32_t n = ep_ops(ep, ops, 3 + RT_MAX_WATCHES);

	if (!w->ring_ok)
		return true;
	for (uint32_t i = 0; i < n; i++) {
		struct io_uring_sqe *sqe;

		if (!ops[i]->armed)
			continue;
		sqe = vfr_rt_get_sqe(w);
		if (!sqe)
			return false;
		io_uring_prep_cancel(sqe, ops[i], 0);
		io_uring_sqe_set_data(sqe, NULL);
		w->pending_sqes++;
	}
	return true;
}

bool vfr_rt_ep_ops_armed(struct rt_endpoint *ep)
{
	struct rt_op *ops[3 + RT_MAX_WATCHES];
	uint32_t n = ep_ops(ep, ops, 3 + RT_MAX_WATCHES);

	for (uint32_t i = 0; i < n; i++)
		if (ops[i]->armed)
			return true;
	return false;
}

void vfr_rt_zombies_step(struct vfurt_worker *w)
{
	struct rt_endpoint **pp = &w->zombies;

	while (*pp) {
		struct rt_endpoint *ep = *pp;

		if (!ep->cancels_sent)
			ep->cancels_sent = vfr_rt_ep_cancel_ops(w, ep);
		if (vfr_rt_ep_ops_armed(ep)) {
			pp = &ep->zombie_next;
			continue;
		}
		*pp = ep->zombie_next;
		vfr_rt_remove_complete(ep);
	}
}

/* Home worker: the client is gone; tear the device down. */
static void remove_finish(struct vfurt_worker *w, struct rt_endpoint *ep)
{
	vfr_rt_home_remove(ep);
	/* the fds the device's watches poll are closed here: the armed polls
	 * keep their files until cancelled, and run nothing for a zombie */
	release_device(ep);
	ep->zombie = true;
	ep->zombie_next = w->zombies;
	w->zombies = ep;
	vfurt_logf(&w->log, VFURT_LOG_INFO, "%s: removed (%s)", ep->path,
		   ep->how == VFURT_REMOVE_IDLE ? "no client" :
		   ep->how == VFURT_REMOVE_RELEASED ? "the client released it" :
		   "the client was disconnected");
	vfr_rt_zombies_step(w);
}

bool vfr_rt_remove_step(struct vfurt_worker *w, struct rt_endpoint *ep, uint64_t now_ns)
{
	if (!ep->removing || ep->zombie)
		return false;
	if (ep->conn) {
		if (now_ns < ep->remove_deadline_ns)
			return false;
		if (ep->remove_deadline_ns)
			vfurt_logf(&w->log, VFURT_LOG_WARN, "%s: the client did not release the "
				   "device within %u ms: disconnecting it",
				   vfurt_dev_name(ep->dev), ep->remove_timeout_ms);
		else
			vfurt_logf(&w->log, VFURT_LOG_INFO, "%s: disconnecting the client",
				   vfurt_dev_name(ep->dev));
		ep->how = VFURT_REMOVE_FORCED;
		vfr_rt_endpoint_drop(ep, 0);
	}
	remove_finish(w, ep);
	return true;
}

void vfr_rt_remove_start(void *arg)
{
	struct rt_endpoint *ep = arg;
	struct vfurt_worker *w = ep->home;
	uint64_t now = vfr_rt_now(ep->rt);

	ep->removing = true;
	ep->closing = true;
	unlink(ep->path); /* new clients find nothing; the path is free again */
	if (!ep->conn) {
		ep->how = VFURT_REMOVE_IDLE;
	} else if (ep->remove_timeout_ms &&
		   vfurt_irq_trigger(ep->dev, VFURT_IRQ_REQ, 0) == 0) {
		vfurt_logf(&w->log, VFURT_LOG_INFO, "%s: asking the client to release the "
			   "device (REQ irq), waiting up to %u ms", vfurt_dev_name(ep->dev),
			   ep->remove_timeout_ms);
		ep->how = VFURT_REMOVE_RELEASED;
		ep->remove_deadline_ns = now + ep->remove_timeout_ms * 1000000ull;
		vfr_rt_endpoint_arm(w, ep); /* the accept is cancelled with the zombie */
		return;
	} else if (ep->remove_timeout_ms) {
		/* nobody to ask (QEMU 10.2's vfio-user-pci sets no REQ eventfd):
		 * as the kernel's vfio-pci, wait for the release, which the
		 * operator starts through the VMM (QMP device_del); unlike it,
		 * not for ever */
		vfurt_logf(&w->log, VFURT_LOG_WARN, "%s: the client set no REQ eventfd and "
			   "cannot be asked to release the device: waiting up to %u ms for it "
			   "to detach (unplug the device through the VMM)",
			   vfurt_dev_name(ep->dev), ep->remove_timeout_ms);
		ep->how = VFURT_REMOVE_RELEASED;
		ep->remove_deadline_ns = now + ep->remove_timeout_ms * 1000000ull;
		vfr_rt_endpoint_arm(w, ep);
		return;
	} else {
		ep->remove_deadline_ns = 0; /* timeout 0: force now */
	}
	(void)vfr_rt_remove_step(w, ep, now);
}

int vfurt_runtime_remove_device(struct vfurt_runtime *rt, struct vfurt_dev *dev,
				uint32_t timeout_ms, vfurt_remove_done_fn done, void *arg)
{
	struct rt_endpoint *ep;
	bool running;
	int rc = 0;

	if (!rt || !dev)
		return -EINVAL;
	pthread_mutex_lock(&rt->lock);
	ep = vfr_rt_ep_of(rt, dev);
	if (!ep)
		rc = -ENOENT;
	else if (ep->remove_asked)
		rc = -EALREADY;
	if (!rc) {
		ep->remove_asked = true;
		ep->remove_timeout_ms = timeout_ms;
		ep->remove_done = done;
		ep->remove_arg = arg;
	}
	pthread_mutex_unlock(&rt->lock);
	if (rc)
		return rc;
	running = rt->started && !rt->stopped;
	if (!running) {
		/* no client can be attached: finish on the caller's thread */
		vfr_rt_home_remove(ep);
		if (ep->lfd >= 0)
			unlink(ep->path);
		ep->removing = true;
		release_device(ep);
		ep->how = VFURT_REMOVE_IDLE;
		vfr_rt_remove_complete(ep);
		return 0;
	}
	/* the start is quick (it never waits for the client): run it there
	 * and return */
	return vfr_rt_run_on(rt, ep->home, vfr_rt_remove_start, ep);
}

void vfr_rt_remove_finish_stopped(struct vfurt_runtime *rt)
{
	/* zombies: their ops died with the workers' rings */
	for (uint32_t i = 0; i < rt->nr_workers; i++) {
		struct vfurt_worker *w = &rt->workers[i];

		while (w->zombies) {
			struct rt_endpoint *ep = w->zombies;

			w->zombies = ep->zombie_next;
			vfr_rt_remove_complete(ep);
		}
	}
	for (uint32_t i = 0; i < rt->nr_eps;) {
		struct rt_endpoint *ep = rt->eps[i];

		if (!ep->remove_asked) {
			i++;
			continue;
		}
		if (ep->conn) {
			ep->how = VFURT_REMOVE_FORCED;
			vfr_rt_endpoint_drop(ep, 0);
		}
		vfr_rt_home_remove(ep);
		release_device(ep);
		vfr_rt_remove_complete(ep); /* takes it out of rt->eps */
	}
}
