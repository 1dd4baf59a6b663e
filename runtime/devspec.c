/* Device specifications and the explicit table of device types vfu-rt can serve. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vfurt/gpio.h>

#include "devspec.h"

int devspec_parse(const char *s, struct devspec *spec, char *err, size_t errlen)
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

const char *devspec_get(struct devspec *spec, const char *key)
{
	for (size_t i = 0; i < spec->nkeys; i++) {
		if (!strcmp(spec->kv[i].key, key)) {
			spec->kv[i].used = 1;
			return spec->kv[i].val;
		}
	}
	return NULL;
}

int devspec_parse_mode(const char *s, mode_t *mode)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno || end == s || *end || v > 07777)
		return -EINVAL;
	*mode = (mode_t)v;
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

	o.name = devspec_get(spec, "name");
	if (!o.name)
		o.name = "gpio";
	v = devspec_get(spec, "toggle_period");
	if (v && parse_u32(v, 1, 1000000, &o.toggle_period)) {
		snprintf(err, errlen, "toggle_period='%s': expected 1..1000000", v);
		return NULL;
	}
	dev = vfurt_gpio_create(&o);
	if (!dev)
		snprintf(err, errlen, "cannot create gpio device: %s", strerror(errno));
	return dev;
}

struct devtype {
	const char *name;
	struct vfurt_dev *(*create)(struct devspec *spec, const struct vfurt_log *log,
				    char *err, size_t errlen);
};

static const struct devtype devtypes[] = {
	{ "gpio", create_gpio },
};

const char *devspec_types(void)
{
	return "gpio";
}

struct vfurt_dev *devspec_create(struct devspec *spec, const struct vfurt_log *log,
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
	snprintf(err, errlen, "unknown device type '%s' (known: %s)", spec->type, devspec_types());
	return NULL;
}
