/* Runtime statistics: what each worker is doing, its counters, the stats JSON. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <vfurt/abi.h>

#include "rt_internal.h"

const char *vfurt_runtime_worker_where(const struct vfurt_runtime *rt, uint32_t i)
{
	const char *what;

	if (!rt || i >= rt->nr_workers)
		return NULL;
	if (!atomic_load(&rt->workers[i].thread_started))
		return "not running";
	what = atomic_load_explicit(&rt->workers[i].where, memory_order_relaxed);
	return what ? what : "starting";
}

int vfurt_runtime_get_worker_stats(const struct vfurt_runtime *rt, uint32_t i,
				   struct vfurt_worker_stats *out)
{
	struct vfurt_worker_stats s = { .stats_size = sizeof(s) };
	struct vfurt_worker_stats *st = &s;
	const struct vfurt_worker *w;

	if (!rt || i >= rt->nr_workers)
		return -EINVAL;
	w = &rt->workers[i];
	st->passes = atomic_load_explicit(&w->st.passes, memory_order_relaxed);
	st->busy_passes = atomic_load_explicit(&w->st.busy_passes, memory_order_relaxed);
	st->msgs = atomic_load_explicit(&w->st.msgs, memory_order_relaxed);
	st->ring_msgs = atomic_load_explicit(&w->st.ring_msgs, memory_order_relaxed);
	st->irqs_raised = atomic_load_explicit(&w->st.irqs_raised, memory_order_relaxed);
	st->irqs_written = atomic_load_explicit(&w->st.irqs_written, memory_order_relaxed);
	st->sleeps = atomic_load_explicit(&w->st.sleeps, memory_order_relaxed);
	st->irq_submit_fallbacks = atomic_load_explicit(&w->st.irq_submit_fallbacks,
							memory_order_relaxed);
	st->busy_ns = atomic_load_explicit(&w->st.busy_ns, memory_order_relaxed);
	{
		uint64_t start = atomic_load_explicit(&w->st.start_ns, memory_order_relaxed);

		st->total_ns = start ? vfr_rt_now(rt) - start : 0;
	}
	return vfurt_abi_copy_out(out, &s, sizeof(s),
				  VFURT_ABI_SIZE(struct vfurt_worker_stats, irq_submit_fallbacks));
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

struct dev_stats_call {
	struct rt_endpoint *ep;
	struct json_object *obj;
	bool skip;               /* removed meanwhile */
};

/* On the device's home worker: describe the device and its queues. */
static void dev_stats_on(void *arg)
{
	struct dev_stats_call *c = arg;
	struct rt_endpoint *ep = c->ep;
	struct json_object *d = c->obj;
	struct json_object *qs;

	if (ep->gone || ep->zombie || !ep->dev) {
		c->skip = true;
		return;
	}
	qs = json_object_new_array();
	json_object_object_add(d, "name", json_object_new_string(vfurt_dev_name(ep->dev)));
	json_object_object_add(d, "socket", json_object_new_string(ep->path));
	add_u64(d, "home_worker", ep->home->id);
	json_object_object_add(d, "connected", json_object_new_boolean(
		atomic_load_explicit(&ep->connected, memory_order_relaxed)));
	json_object_object_add(d, "removing", json_object_new_boolean(ep->removing));
	add_u64(d, "msgs", atomic_load_explicit(&ep->msgs, memory_order_relaxed));
	add_u64(d, "errors", atomic_load_explicit(&ep->errors, memory_order_relaxed));
	json_object_object_add(d, "queues", qs);
	for (uint32_t k = 0; k < vfurt_dev_queue_count(ep->dev); k++) {
		struct vfurt_queue *q = vfurt_dev_queue(ep->dev, k);
		struct json_object *jq = json_object_new_object();
		struct vfurt_queue_stats qst = { .stats_size = sizeof(qst) };

		vfurt_queue_get_stats(q, &qst);
		json_object_array_add(qs, jq);
		add_u64(jq, "index", vfurt_queue_index(q));
		add_u64(jq, "worker", vfr_rt_queue_worker(ep, q)->id);
		add_u64(jq, "polls", qst.polls);
		add_u64(jq, "busy", qst.busy);
	}
}

/* The JSON object of one endpoint (a reference held by the caller), or
 * NULL (removed meanwhile, or no memory: errno says which). */
static struct json_object *dev_stats(struct vfurt_runtime *rt, struct rt_endpoint *ep)
{
	struct dev_stats_call c = { .ep = ep, .obj = json_object_new_object() };

	if (!c.obj) {
		errno = ENOMEM;
		return NULL;
	}
	/* the queue list belongs to the device's home worker */
	vfr_rt_run_on(rt, ep->home, dev_stats_on, &c);
	if (c.skip) {
		json_object_put(c.obj);
		errno = ENOENT;
		return NULL;
	}
	return c.obj;
}

/* A snapshot of rt->eps with a reference on each (vfr_rt_ep_put them and
 * free the array); NULL with *n 0 when empty or out of memory. */
static struct rt_endpoint **eps_snapshot(struct vfurt_runtime *rt, uint32_t *n)
{
	struct rt_endpoint **v;

	pthread_mutex_lock(&rt->lock);
	*n = rt->nr_eps;
	v = *n ? malloc(*n * sizeof(*v)) : NULL;
	if (!v)
		*n = 0;
	for (uint32_t i = 0; i < *n; i++) {
		v[i] = rt->eps[i];
		vfr_rt_ep_get(v[i]);
	}
	pthread_mutex_unlock(&rt->lock);
	return v;
}

char *vfurt_runtime_device_json(struct vfurt_runtime *rt, struct vfurt_dev *dev)
{
	struct rt_endpoint *ep;
	struct json_object *o;
	char *out;

	if (!rt || !dev) {
		errno = ENOENT;
		return NULL;
	}
	pthread_mutex_lock(&rt->lock);
	ep = vfr_rt_ep_of(rt, dev);
	if (ep)
		vfr_rt_ep_get(ep);
	pthread_mutex_unlock(&rt->lock);
	if (!ep) {
		errno = ENOENT;
		return NULL;
	}
	o = dev_stats(rt, ep);
	vfr_rt_ep_put(ep);
	if (!o)
		return NULL;
	out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	if (!out)
		errno = ENOMEM;
	return out;
}

char *vfurt_runtime_stats_json(const struct vfurt_runtime *rt)
{
	struct json_object *root = json_object_new_object();
	struct json_object *workers = json_object_new_array();
	struct json_object *devices = json_object_new_array();
	struct rt_endpoint **eps;
	uint32_t neps = 0;
	char *out = NULL;

	if (!root || !workers || !devices)
		goto out;
	json_object_object_add(root, "workers", workers);
	json_object_object_add(root, "devices", devices);
	json_object_object_add(root, "poll", json_object_new_string(
		rt->mode == VFURT_POLL_BUSY ? "busy" : "adaptive"));
	{
		struct json_object *q = json_object_new_object();
		struct vfurt_dma_quota_stats qs = { .stats_size = sizeof(qs) };

		vfurt_dma_quota_get_stats(rt->dma_quota, &qs);
		json_object_object_add(root, "dma_quota", q);
		add_u64(q, "limit", qs.limit);
		add_u64(q, "min_per_client", qs.min_per_client);
		add_u64(q, "mapped", qs.mapped);
		add_u64(q, "committed", qs.committed);
		add_u64(q, "refused", qs.refused);
	}
	for (uint32_t i = 0; i < rt->nr_workers; i++) {
		struct json_object *w = json_object_new_object();
		struct vfurt_worker_stats st = { .stats_size = sizeof(st) };

		vfurt_runtime_get_worker_stats(rt, i, &st);
		json_object_array_add(workers, w);
		add_u64(w, "id", i);
		add_u64(w, "cpu", (uint64_t)rt->workers[i].cpu);
		add_u64(w, "passes", st.passes);
		add_u64(w, "busy_passes", st.busy_passes);
		json_object_object_add(w, "busy_pct", json_object_new_double(
			st.total_ns ? 100.0 * (double)st.busy_ns / (double)st.total_ns : 0.0));
		add_u64(w, "msgs", st.msgs);
		add_u64(w, "ring_msgs", st.ring_msgs);
		add_u64(w, "irqs_raised", st.irqs_raised);
		add_u64(w, "irqs_written", st.irqs_written);
		add_u64(w, "sleeps", st.sleeps);
		add_u64(w, "irq_submit_fallbacks", st.irq_submit_fallbacks);
	}
	eps = eps_snapshot((struct vfurt_runtime *)rt, &neps);
	for (uint32_t i = 0; i < neps; i++) {
		struct json_object *d = dev_stats((struct vfurt_runtime *)rt, eps[i]);

		if (d)
			json_object_array_add(devices, d);
		vfr_rt_ep_put(eps[i]);
	}
	free(eps);
	out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
out:
	json_object_put(root);
	if (!out)
		errno = ENOMEM;
	return out;
}
