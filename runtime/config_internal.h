/* Config internals shared by config.c (specs, placement) and config_json.c (the file). */
#ifndef VFURT_RUNTIME_CONFIG_INTERNAL_H
#define VFURT_RUNTIME_CONFIG_INTERNAL_H

#include <stddef.h>

#include "config.h"

/* Most devices one config holds (file and --device together). */
#define CONFIG_MAX_DEVICES 1024

/*
 * Check the value of a key the daemon itself reads (socket, socket_mode,
 * core); other keys belong to the device type and pass. Returns NULL when
 * fine, else the reason (written to why, len bytes).
 */
const char *vfr_config_check_common_key(const char *key, const char *val, char *why, size_t len);

/* Room for one more zeroed device at cfg->devices[cfg->ndevices] (the caller
 * fills it and bumps ndevices); NULL at CONFIG_MAX_DEVICES or out of memory. */
struct vfurt_config_device *vfr_config_new_device(struct vfurt_config *cfg);

#endif /* VFURT_RUNTIME_CONFIG_INTERNAL_H */
