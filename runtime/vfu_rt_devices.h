/* vfu-rt's device table: every device the daemon serves, by name, and its live changes. */
#ifndef VFURT_RUNTIME_VFU_RT_DEVICES_H
#define VFURT_RUNTIME_VFU_RT_DEVICES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfurt/log.h>
#include <vfurt/runtime.h>

#include "config.h"
#include "cpuset.h"
#include "vfu_rt_log.h"

struct rpc_pending;
struct json_object;

/* Where a device came from: SIGHUP only touches DEV_FILE devices. */
enum dev_origin {
	DEV_CMDLINE = 0, /* --device */
	DEV_FILE = 1,    /* the --config file (at start or a reload) */
	DEV_RPC = 2,     /* device_add */
};

/* Most devices served at once. */
#define DEVTAB_MAX 1024
/* device_remove's default and largest timeout. */
#define DEVTAB_REMOVE_TIMEOUT_MS 10000u
#define DEVTAB_REMOVE_TIMEOUT_MAX_MS 600000u

struct devtab;

struct dev_entry {
	struct devtab *tab;
	char name[DEVSPEC_VAL_LEN];
	const char *socket;              /* points into cfg.spec */
	struct vfurt_config_device cfg;  /* the spec as given (name added), its ns array as now */
	struct vfurt_config_device orig; /* cfg when added: what SIGHUP compares the file with */
	enum dev_origin origin;
	struct vfurt_dev *dev;           /* owned by the runtime while served */
	bool unserved;                   /* built under defer_serve: owned here */
	int worker;                      /* home worker index */
	struct dlog_tag tag;             /* the device logs tagged with its worker */
	bool removing;
	/* set by the done callback (any thread) under tab->lock */
	bool done;
	enum vfurt_remove_how how;
	struct dev_entry *done_next;
	/* what to do once removed (main thread only) */
	struct rpc_pending *waiter;      /* answer this device_remove */
	struct vfurt_config_device *readd; /* add this one (a changed config entry) */
	enum dev_origin readd_origin;
};

struct devtab {
	struct vfurt_runtime *rt;
	const struct vfurt_log *log;
	const char *ctl_socket;          /* the control socket (no device may take it) */
	int cpus[VFURT_MAX_CPUS];        /* worker i's CPU */
	uint32_t nworkers;
	uint32_t next_home;              /* round robin */
	struct dev_entry **e;
	size_t n;
	int efd;                         /* eventfd: a removal completed */
	pthread_mutex_t lock;            /* done_list */
	struct dev_entry *done_list;
	bool stopping;
	/* a live upgrade's new process: devices are built, not served, until
	 * devtab_restore gives each its previous process's state */
	bool defer_serve;
};

/*
 * Set up an empty table for rt (its workers are read now). Returns 0 or a
 * negative errno (eventfd). Thread: main.
 */
int devtab_init(struct devtab *t, struct vfurt_runtime *rt, const struct vfurt_log *log,
		const char *ctl_socket);

/* Free the table; the runtime must be destroyed first (it owned the devices). */
void devtab_fini(struct devtab *t);

/* The eventfd the main loop polls: readable when devtab_reap has work. */
int devtab_fd(const struct devtab *t);

/*
 * Build and serve the device d describes (copied): checks the name (the
 * "name" key, else the socket's basename without ".sock") and the socket
 * are unique among the table's devices and not the control socket,
 * places it (core), creates it, attaches d's ns namespaces, serves it.
 * Returns 0 with *out the entry, or a negative errno with a message in
 * err (prefixed with d->where unless it is empty): -EEXIST (name or socket taken), -EINVAL (bad spec), -ENOSPC (table
 * full), or the runtime's error (-EADDRINUSE ...). Thread: main.
 */
int devtab_add(struct devtab *t, const struct vfurt_config_device *d, enum dev_origin origin,
	       struct dev_entry **out, char *err, size_t errlen);

/* The name a spec gives its device: "name", else the socket's basename without ".sock". */
void devtab_spec_name(const struct devspec *spec, char *out, size_t len);

/* The device served on socket (names of one file count as one), or NULL. Thread: main. */
struct dev_entry *devtab_find_socket(const struct devtab *t, const char *socket);

/* The device called name (also while being removed), or NULL. Thread: main. */
struct dev_entry *devtab_find(const struct devtab *t, const char *name);

/*
 * Start removing e (vfurt_runtime_remove_device with timeout_ms). On
 * completion devtab_reap answers waiter (if not NULL) and adds readd. Returns
 * 0, -EALREADY (a removal is in progress) or the runtime's error (nothing
 * changed; waiter is not consumed). Thread: main.
 */
int devtab_remove(struct devtab *t, struct dev_entry *e, uint32_t timeout_ms,
		  struct rpc_pending *waiter);

/* Finish the removals that completed: drop their entries, answer their waiters,
 * add their replacements. Thread: main (when devtab_fd is readable). */
void devtab_reap(struct devtab *t);

/* The name of a removal's outcome: "idle", "released", "forced". */
const char *devtab_how_name(enum vfurt_remove_how how);

/* A device's entry for config_save: {"type", keys..., "ns": [...]}. NULL on ENOMEM. */
struct json_object *devtab_entry_json(const struct dev_entry *e);

/* The origin's name: "command line", "config file", "rpc". */
const char *devtab_origin_name(enum dev_origin o);

struct vfurt_state_cur;

/*
 * defer_serve: serve every device of the table with the state a previous
 * process saved for it, found in devs (a section of sections, one per
 * device: its name and vfurt_runtime_save_device's section), before the
 * runtime starts. Every entry must have one and every one must be used.
 * Returns 0 or a negative errno with the reason in err. Thread: main.
 */
int devtab_restore(struct devtab *t, const struct vfurt_state_cur *devs, char *err,
		   size_t errlen);

/* The tags of devtab_restore's sections (vfu_rt_upgrade.c writes them). */
enum { DEVTAB_S_DEV = 1, DEVTAB_T_NAME = 1, DEVTAB_T_ORIGIN = 2, DEVTAB_S_RT = 3 };

#endif /* VFURT_RUNTIME_VFU_RT_DEVICES_H */
