/* vfu-rt's log sink: one level for the daemon and every device, changeable at run time. */
#ifndef VFURT_RUNTIME_VFU_RT_LOG_H
#define VFURT_RUNTIME_VFU_RT_LOG_H

#include <stdatomic.h>

#include <vfurt/log.h>

/*
 * struct vfurt_log is copied by value into the runtime, each worker, each
 * device and each backend, and its level is a plain int read by the thread
 * logging: it cannot be changed afterwards. So every copy the daemon hands
 * out carries VFURT_LOG_DEBUG (nothing is dropped before the sink) and the
 * sink filters on one atomic level that log_set_level and SIGHUP change.
 */
struct dlog {
	_Atomic int level; /* enum vfurt_log_level */
};

/* Set up d with level; returns the struct vfurt_log to give everything
 * (fn = dlog_sink, arg = d, level = VFURT_LOG_DEBUG). d must outlive every
 * object logging through it. */
struct vfurt_log dlog_init(struct dlog *d, int level);

/* A device's log: its lines carry its home worker's tag from any thread. */
struct dlog_tag {
	struct dlog *d;
	int worker;
};

/* The struct vfurt_log of a device whose home is worker (tag is filled in and
 * must outlive the device). */
struct vfurt_log dlog_tagged(struct dlog_tag *tag, struct dlog *d, int worker);

/* dlog_tagged's sink: arg is a struct dlog_tag. Thread: any. */
void dlog_sink_tagged(void *arg, int level, const char *msg);

/* Change the level. Thread: any. */
void dlog_set_level(struct dlog *d, int level);

/* The current level. Thread: any. */
int dlog_level(const struct dlog *d);

/* The name of a level ("error", "warn", "info", "debug"). */
const char *dlog_level_name(int level);

/*
 * The sink: drops lines above the level, writes "vfu-rt[wN]: LEVEL: msg"
 * on a worker thread (the worker's index), "vfu-rt: LEVEL: msg" elsewhere,
 * one fprintf per line. Thread: any.
 */
void dlog_sink(void *arg, int level, const char *msg);

#endif /* VFURT_RUNTIME_VFU_RT_LOG_H */
