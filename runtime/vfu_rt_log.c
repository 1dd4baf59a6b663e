/* vfu-rt's log sink with a run-time level (see vfu_rt_log.h for why the level lives here). */
#include <stdio.h>

#include <vfurt/runtime.h>

#include "vfu_rt_log.h"

struct vfurt_log dlog_init(struct dlog *d, int level)
{
	atomic_init(&d->level, level);
	return (struct vfurt_log){ .fn = dlog_sink, .arg = d, .level = VFURT_LOG_DEBUG };
}

void dlog_set_level(struct dlog *d, int level)
{
	atomic_store_explicit(&d->level, level, memory_order_relaxed);
}

int dlog_level(const struct dlog *d)
{
	return atomic_load_explicit(&d->level, memory_order_relaxed);
}

const char *dlog_level_name(int level)
{
	switch (level) {
	case VFURT_LOG_ERR: return "error";
	case VFURT_LOG_WARN: return "warn";
	case VFURT_LOG_INFO: return "info";
	case VFURT_LOG_DEBUG: return "debug";
	}
	return "info";
}

static void emit(struct dlog *d, int worker, int level, const char *msg)
{
	static const char *const names[] = { "emerg", "alert", "crit", "error",
					     "warning", "notice", "info", "debug" };
	struct vfurt_worker *w;
	const char *name = level >= 0 && level <= 7 ? names[level] : "log";

	if (level > dlog_level(d))
		return;
	w = vfurt_worker_self();
	if (w)
		worker = (int)vfurt_worker_id(w);
	/* one fprintf per line so concurrent lines do not interleave */
	if (worker >= 0)
		fprintf(stderr, "vfu-rt[w%d]: %s: %s\n", worker, name, msg);
	else
		fprintf(stderr, "vfu-rt: %s: %s\n", name, msg);
}

void dlog_sink(void *arg, int level, const char *msg)
{
	emit(arg, -1, level, msg);
}

struct vfurt_log dlog_tagged(struct dlog_tag *tag, struct dlog *d, int worker)
{
	tag->d = d;
	tag->worker = worker;
	return (struct vfurt_log){ .fn = dlog_sink_tagged, .arg = tag, .level = VFURT_LOG_DEBUG };
}

void dlog_sink_tagged(void *arg, int level, const char *msg)
{
	struct dlog_tag *tag = arg;

	emit(tag->d, tag->worker, level, msg);
}
