/* vfu-rt per-connection and process-wide limits: the `limits` config object and --limit KEY=VALUE. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_limits.h"

#define LIM(k, field, isint, lo, hi, def, text)                                              \
	{ .key = k, .offset = offsetof(struct vfurt_conn_opts, field), .is_int = isint,      \
	  .min = lo, .max = hi, .dflt = def, .what = text }

/* Kept in step with the engine's defaults and clamps (io/conn_internal.h)
 * and with the limits table of docs/security.md. */
const struct vfurt_limit_def vfr_limit_defs[] = {
	LIM("version_timeout_ms", version_timeout_ms, true, 100, 600000, 2000,
	    "a client must send VERSION this soon after connecting, or it is closed"),
	LIM("drain_timeout_ms", drain_timeout_ms, true, 100, 600000, 5000,
	    "a client that reads none of its queued replies this long is closed"),
	LIM("dma_reply_timeout_ms", timeout_ms, true, 100, 600000, 5000,
	    "a client must answer the server's DMA_READ/DMA_WRITE this soon, or it is closed"),
	LIM("max_queued_bytes", max_queued_bytes, false, 65536, 64u << 20, 4u << 20,
	    "replies queued for a client beyond this stop the reading of its commands"),
	LIM("max_queued_msgs", max_queued_msgs, false, 16, 65536, 1024,
	    "the same bound in messages"),
	LIM("max_data_xfer_size", max_data_xfer_size, false, 4096, 16u << 20, 1u << 20,
	    "largest region access or DMA message (advertised in VERSION)"),
	LIM("max_msg_fds", max_msg_fds, false, 1, 64, 16,
	    "most fds accepted with one message (advertised in VERSION)"),
	LIM("max_irq_fds", max_irq_fds, false, 1, 8192, 1024,
	    "eventfds a client may hold installed at once (SET_IRQS beyond: EMFILE)"),
	LIM("max_dma_maps", max_dma_maps, false, 1, 65535, 1024,
	    "DMA windows a client may hold (advertised in VERSION; DMA_MAP beyond: ENOSPC)"),
	/* process-wide: the runtime's quota of fd-backed windows (engine.h);
	 * default 0 = half of /proc/sys/vm/max_map_count */
	LIM("dma_maps_process_max", dma_maps_process_max, false, 1, 1u << 30, 0,
	    "fd-backed DMA windows of all clients together (DMA_MAP beyond: ENOMEM)"),
	LIM("dma_maps_min_per_client", dma_maps_min_per_client, false, 1, 65535, 64,
	    "fd-backed DMA windows kept free for each device's client"),
	{ 0 },
};

int vfr_limit_set(struct vfurt_conn_opts *o, const char *key, const char *val, char *err,
		    size_t errlen)
{
	const struct vfurt_limit_def *d;
	unsigned long long v;
	char *end;

	for (d = vfr_limit_defs; d->key && strcmp(d->key, key); d++)
		;
	if (!d->key) {
		snprintf(err, errlen, "unknown limit '%.64s' (see --help)", key);
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(val, &end, 10);
	if (!*val || *end || errno || val[0] == '-' || v < d->min || v > d->max) {
		snprintf(err, errlen, "%s '%.64s': expected %u..%u", d->key, val, d->min, d->max);
		return -EINVAL;
	}
	if (d->is_int) {
		int iv = (int)v;

		memcpy((char *)o + d->offset, &iv, sizeof(iv));
	} else {
		uint32_t uv = (uint32_t)v;

		memcpy((char *)o + d->offset, &uv, sizeof(uv));
	}
	return 0;
}

int vfr_limit_parse_arg(struct vfurt_conn_opts *o, const char *arg, char *err, size_t errlen)
{
	const char *eq = strchr(arg, '=');
	char key[64];

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(key)) {
		snprintf(err, errlen, "'%.64s': expected KEY=VALUE", arg);
		return -EINVAL;
	}
	memcpy(key, arg, (size_t)(eq - arg));
	key[eq - arg] = '\0';
	return vfr_limit_set(o, key, eq + 1, err, errlen);
}
