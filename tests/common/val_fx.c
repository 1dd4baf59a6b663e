/* The validation tests' server: two test devices and a read-only one, and raw requests. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/it_util.h"
#include "common/val_fx.h"

uint8_t val_rbuf[1 << 17];

static ssize_t ro_access(struct vfurt_dev *dev, void *arg, void *buf, size_t count,
			 uint64_t off, bool is_write)
{
	(void)dev;
	(void)arg;
	(void)off;
	if (is_write)
		return -EIO; /* never reached: the engine refuses first */
	memset(buf, 0x5a, count);
	return (ssize_t)count;
}

/* A device with a read-only BAR0. */
static struct vfurt_dev *ro_dev_create(void)
{
	struct vfurt_dev_opts o = { .opts_size = sizeof(o), .name = "it-ro" };
	struct vfurt_region_desc r = {
		.desc_size = sizeof(r), .size = 4096, .flags = VFURT_REGION_READ,
		.access = ro_access, .fd = -1,
	};
	struct vfurt_dev *dev = vfurt_dev_create(&o);

	if (!dev || vfurt_dev_setup_region(dev, VFURT_REGION_BAR0, &r)) {
		vfurt_dev_destroy(dev);
		return NULL;
	}
	return dev;
}

int val_start(void **state, const struct testdev_opts *d0, const struct vfurt_conn_opts *co,
	      uint32_t cflags)
{
	struct vfurt_client_opts c = it_opts(cflags);
	struct it_fx_opts o = { .name = "it-val", .ntestdev = 2, .dev0 = d0,
				.extra = ro_dev_create(), .conn = co, .client = &c,
				.client2 = true };

	if (!o.extra) {
		*state = NULL;
		return -1;
	}
	return it_fx_start(state, &o);
}

int val_setup(void **state)
{
	return val_start(state, NULL, NULL, 0);
}

int val_setup_no_handshake(void **state)
{
	return val_start(state, NULL, NULL, VFURT_CLIENT_NO_HANDSHAKE);
}

void val_guard_ok(struct it_fx *x)
{
	uint32_t v = 0;

	assert_true(it_alive(x->c2));
	assert_int_equal(it_wr32(x->c2, VFURT_REGION_BAR0, 0x40, 0x600dc0de), 0);
	assert_int_equal(it_rd32(x->c2, VFURT_REGION_BAR0, 0x40, &v), 0);
	assert_int_equal(v, 0x600dc0de);
}

int val_req(struct vfurt_client *c, uint16_t cmd, const void *p, size_t len, const int *fds,
	    size_t nfds)
{
	return vfurt_client_request(c, cmd, 0, p, len, fds, nfds, val_rbuf, sizeof(val_rbuf), NULL,
				    NULL, NULL);
}

int val_rd(struct vfurt_client *c, uint32_t region, uint64_t off, uint32_t count)
{
	struct vfio_user_region_access a = { .offset = off, .region = region, .count = count };

	return val_req(c, VFIO_USER_REGION_READ, &a, sizeof(a), NULL, 0);
}

int val_wr(struct vfurt_client *c, uint32_t region, uint64_t off, uint32_t count,
	   size_t datalen)
{
	uint8_t *p = calloc(1, sizeof(struct vfio_user_region_access) + datalen);
	struct vfio_user_region_access a = { .offset = off, .region = region, .count = count };
	int rc;

	assert_non_null(p);
	memcpy(p, &a, sizeof(a));
	memset(p + sizeof(a), 0xee, datalen);
	rc = val_req(c, VFIO_USER_REGION_WRITE, p, sizeof(a) + datalen, NULL, 0);
	free(p);
	return rc;
}
