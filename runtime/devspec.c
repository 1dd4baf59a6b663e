/* Device specifications and the explicit table of device types vfu-rt can serve. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vfurt/bdev.h>
#include <vfurt/gpio.h>
#include <vfurt/nvme.h>

#include "devspec.h"

int vfr_devspec_parse(const char *s, struct devspec *spec, char *err, size_t errlen)
{
	const char *p = s;
	size_t len;

	memset(spec, 0, sizeof(*spec));
	len = strcspn(p, ",");
	if (len == 0 || len >= sizeof(spec->type)) {
		snprintf(err, errlen, "'%s': expected TYPE[,key=value...]", s);
		return -EINVAL;
	}
	memcpy(spec->type, p, len);
	p += len;
	while (*p == ',') {
		const char *eq;
		size_t klen;
		size_t vlen;

		p++;
		len = strcspn(p, ",");
		eq = memchr(p, '=', len);
		if (!eq) {
			snprintf(err, errlen, "'%.*s': expected key=value", (int)len, p);
			return -EINVAL;
		}
		klen = (size_t)(eq - p);
		vlen = len - klen - 1;
		if (klen == 0 || klen >= DEVSPEC_KEY_LEN || vlen >= DEVSPEC_VAL_LEN) {
			snprintf(err, errlen, "'%.*s': key or value too long or empty", (int)len, p);
			return -EINVAL;
		}
		if (spec->nkeys == DEVSPEC_MAX_KEYS) {
			snprintf(err, errlen, "too many keys (at most %d)", DEVSPEC_MAX_KEYS);
			return -EINVAL;
		}
		for (size_t i = 0; i < spec->nkeys; i++) {
			if (strlen(spec->kv[i].key) == klen && !memcmp(spec->kv[i].key, p, klen)) {
				snprintf(err, errlen, "key '%.*s' given twice", (int)klen, p);
				return -EINVAL;
			}
		}
		memcpy(spec->kv[spec->nkeys].key, p, klen);
		memcpy(spec->kv[spec->nkeys].val, eq + 1, vlen);
		spec->nkeys++;
		p += len;
	}
	return 0;
}

/* The index of key in spec, or -1. */
static int find_key(const struct devspec *spec, const char *key)
{
	for (size_t i = 0; i < spec->nkeys; i++)
		if (!strcmp(spec->kv[i].key, key))
			return (int)i;
	return -1;
}

const char *vfr_devspec_get(struct devspec *spec, const char *key)
{
	int i = find_key(spec, key);

	if (i < 0)
		return NULL;
	spec->kv[i].used = 1;
	return spec->kv[i].val;
}

const char *vfr_devspec_peek(const struct devspec *spec, const char *key)
{
	int i = find_key(spec, key);

	return i < 0 ? NULL : spec->kv[i].val;
}

int vfr_devspec_parse_mode(const char *s, mode_t *mode)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno || end == s || *end)
		return -EINVAL;
	/* setuid, setgid and sticky mean nothing on a socket: a typo, say 4755 */
	if (v > 0777)
		return -ERANGE;
	*mode = (mode_t)v;
	return 0;
}

int vfr_devspec_parse_size(const char *s, uint64_t *bytes)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const char *p = s;

	if (s == NULL || bytes == NULL || *s < '0' || *s > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	switch (*p) {
	case '\0':
		break;
	case 'k': case 'K': shift = 10; p++; break;
	case 'm': case 'M': shift = 20; p++; break;
	case 'g': case 'G': shift = 30; p++; break;
	case 't': case 'T': shift = 40; p++; break;
	default:
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	if (shift != 0 && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*bytes = v << shift;
	return 0;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static struct vfurt_dev *create_gpio(struct devspec *spec, const struct vfurt_log *log,
				     char *err, size_t errlen)
{
	struct vfurt_gpio_opts o = { .opts_size = sizeof(o), .log = *log, .toggle_period = 3 };
	const char *v;
	struct vfurt_dev *dev;

	o.name = vfr_devspec_get(spec, "name");
	if (!o.name)
		o.name = "gpio";
	v = vfr_devspec_get(spec, "toggle_period");
	if (v && parse_u32(v, 1, 1000000, &o.toggle_period)) {
		snprintf(err, errlen, "toggle_period='%s': expected 1..1000000", v);
		return NULL;
	}
	dev = vfurt_gpio_create(&o);
	if (!dev)
		snprintf(err, errlen, "cannot create gpio device: %s", strerror(errno));
	return dev;
}

/* nvme: backend=null|ram|file:PATH, size (per namespace, default 1G),
 * namespaces, queues, queue_entries, lba (512|4096), serial, model, direct
 * (file backend O_DIRECT: off, on, try),
 * doorbells (mmap: a mapped page, polled; ioeventfd: trapped, offered as
 * ioeventfds, needs shadow doorbells in the guest). With
 * namespaces > 1 and a file backend, namespace k > 1 uses PATH.nsK. */
static struct vfurt_dev *create_nvme(struct devspec *spec, const struct vfurt_log *log,
				     char *err, size_t errlen)
{
	struct vfurt_nvme_opts o = { .opts_size = sizeof(o), .log = *log, .own_bdevs = true };
	struct vfurt_bdev *ns[VFURT_NVME_MAX_NS] = { 0 };
	const char *backend = vfr_devspec_get(spec, "backend");
	const char *v;
	uint64_t size = 1ull << 30;
	uint32_t nr_ns = 1;
	uint32_t lba = 512;
	enum vfurt_bdev_direct direct = VFURT_BDEV_DIRECT_OFF;
	struct vfurt_dev *dev = NULL;
	char why[200];

	o.name = vfr_devspec_get(spec, "name");
	if (!o.name)
		o.name = "nvme";
	o.serial = vfr_devspec_get(spec, "serial");
	/* the socket names the controller: distinct serials, NQNs and
	 * namespace IDs for every controller of the daemon */
	o.identity = vfr_devspec_get(spec, "socket");
	o.model = vfr_devspec_get(spec, "model");
	if (!backend)
		backend = "ram";
	v = vfr_devspec_get(spec, "size");
	if (v && (vfr_devspec_parse_size(v, &size) || size == 0)) {
		snprintf(err, errlen, "size='%s': expected a size like 512M or 1G", v);
		return NULL;
	}
	v = vfr_devspec_get(spec, "namespaces");
	if (v && parse_u32(v, 1, VFURT_NVME_MAX_NS, &nr_ns)) {
		snprintf(err, errlen, "namespaces='%s': expected 1..%u", v, VFURT_NVME_MAX_NS);
		return NULL;
	}
	v = vfr_devspec_get(spec, "queues");
	if (v && parse_u32(v, 1, VFURT_NVME_MAX_IO_QUEUES, &o.max_io_queues)) {
		snprintf(err, errlen, "queues='%s': expected 1..%u", v, VFURT_NVME_MAX_IO_QUEUES);
		return NULL;
	}
	v = vfr_devspec_get(spec, "queue_entries");
	if (v && parse_u32(v, 2, 4096, &o.max_queue_entries)) {
		snprintf(err, errlen, "queue_entries='%s': expected 2..4096", v);
		return NULL;
	}
	v = vfr_devspec_get(spec, "lba");
	if (v && (parse_u32(v, 512, 4096, &lba) || (lba != 512 && lba != 4096))) {
		snprintf(err, errlen, "lba='%s': expected 512 or 4096", v);
		return NULL;
	}
	v = vfr_devspec_get(spec, "direct");
	if (v) {
		if (!strcmp(v, "on"))
			direct = VFURT_BDEV_DIRECT_ON;
		else if (!strcmp(v, "try"))
			direct = VFURT_BDEV_DIRECT_TRY;
		else if (strcmp(v, "off")) {
			snprintf(err, errlen, "direct='%s': expected off, on or try", v);
			return NULL;
		}
	}
	v = vfr_devspec_get(spec, "doorbells");
	if (v && strcmp(v, "mmap") && strcmp(v, "ioeventfd")) {
		snprintf(err, errlen, "doorbells='%s': expected mmap or ioeventfd", v);
		return NULL;
	}
	o.ioeventfd = v && !strcmp(v, "ioeventfd");
	for (uint32_t i = 0; i < nr_ns; i++) {
		char nsspec[DEVSPEC_VAL_LEN + 16];

		if (i > 0 && !strncmp(backend, "file:", 5))
			snprintf(nsspec, sizeof(nsspec), "%s.ns%u", backend, i + 1);
		else
			snprintf(nsspec, sizeof(nsspec), "%s", backend);
		struct vfurt_bdev_spec_opts bo = { .opts_size = sizeof(bo), .spec = nsspec,
						   .size_bytes = size, .block_size = lba,
						   .direct = direct, .flags = spec->bdev_flags };

		ns[i] = vfurt_bdev_spec_create(&bo, why, sizeof(why));
		if (!ns[i]) {
			snprintf(err, errlen, "backend='%s': %s", nsspec, why);
			goto err_bdevs;
		}
	}
	o.ns = ns;
	o.nr_ns = nr_ns;
	dev = vfurt_nvme_create(&o);
	if (!dev) {
		snprintf(err, errlen, "cannot create nvme controller: %s", strerror(errno));
		goto err_bdevs;
	}
	return dev;

err_bdevs:
	for (uint32_t i = 0; i < nr_ns; i++)
		vfurt_bdev_destroy(ns[i]);
	return NULL;
}

struct devtype {
	const char *name;
	struct vfurt_dev *(*create)(struct devspec *spec, const struct vfurt_log *log,
				    char *err, size_t errlen);
};

static const struct devtype devtypes[] = {
	{ "gpio", create_gpio },
	{ "nvme", create_nvme },
};

const char *vfr_devspec_types(void)
{
	return "gpio, nvme";
}

struct vfurt_dev *vfr_devspec_create(struct devspec *spec, const struct vfurt_log *log,
				 char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(devtypes) / sizeof(devtypes[0]); i++) {
		struct vfurt_dev *dev;

		if (strcmp(devtypes[i].name, spec->type))
			continue;
		dev = devtypes[i].create(spec, log, err, errlen);
		if (!dev)
			return NULL;
		for (size_t k = 0; k < spec->nkeys; k++) {
			if (!spec->kv[k].used) {
				snprintf(err, errlen, "unknown key '%s' for device type %s",
					 spec->kv[k].key, spec->type);
				vfurt_dev_destroy(dev);
				return NULL;
			}
		}
		return dev;
	}
	snprintf(err, errlen, "unknown device type '%s' (known: %s)", spec->type, vfr_devspec_types());
	return NULL;
}
