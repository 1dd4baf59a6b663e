/* Integration fixture: test devices served on real sockets, a client attached, leaks checked. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fixture.h"
#include "common/it_util.h"

int it_fx_start(void **state, const struct it_fx_opts *o)
{
	struct it_fx *x = calloc(1, sizeof(*x));
	struct vfurt_client_opts dflt = it_opts(0);
	const char *name = o->name ? o->name : "it";
	unsigned n = o->ntestdev ? o->ntestdev : 1;
	size_t ndev = n;

	*state = x;
	if (!x || n + (o->extra != NULL) > IT_FX_MAX_DEVS || (o->client2 && n < 2)) {
		fprintf(stderr, "it_fx_start: bad fixture options\n");
		vfurt_dev_destroy(o->extra);
		return -1;
	}
	x->ntestdev = n;
	for (unsigned i = 0; i < n; i++) {
		char dn[64];

		snprintf(dn, sizeof(dn), "%s%u", name, i);
		x->dev[i] = testdev_create(dn, i == 0 ? o->dev0 : NULL, &x->st[i]);
		if (!x->dev[i]) {
			fprintf(stderr, "it_fx_start: test device %s: %s\n", dn, strerror(errno));
			goto err_devs;
		}
	}
	if (o->extra)
		x->dev[ndev++] = o->extra;
	x->ts = testsrv_start(x->dev, ndev, o->conn); /* aborts on failure */
	x->base_fds = test_count_fds();
	x->c = vfurt_client_connect(testsrv_path(x->ts, 0), o->client ? o->client : &dflt);
	if (!x->c) {
		fprintf(stderr, "it_fx_start: connect: %s\n", strerror(errno));
		return -1;
	}
	if (o->client2) {
		x->c2 = it_connect(testsrv_path(x->ts, 1), 0);
		if (!x->c2) {
			fprintf(stderr, "it_fx_start: connect to dev 1: %s\n", strerror(errno));
			return -1;
		}
	}
	return 0;

err_devs:
	for (size_t i = 0; i < IT_FX_MAX_DEVS; i++) {
		vfurt_dev_destroy(x->dev[i]);
		x->dev[i] = NULL;
	}
	vfurt_dev_destroy(o->extra);
	return -1;
}

int it_fx_teardown(void **state)
{
	struct it_fx *x = *state;
	int rc = 0;

	if (!x)
		return 0;
	while (x->nown)
		close(x->own[--x->nown]);
	vfurt_client_close(x->c);
	vfurt_client_close(x->c2);
	/* a test that stopped the server itself sets ts NULL and base_fds to
	 * what is left without it */
	if (it_check_fds(x->base_fds))
		rc = -1;
	if (x->ts)
		testsrv_stop(x->ts);
	for (unsigned i = 0; i < x->ntestdev; i++) {
		struct testdev_stats *st = x->st[i];

		if (st && atomic_load(&st->dma_map) != atomic_load(&st->dma_unmap)) {
			fprintf(stderr, "device %u: %u DMA maps, %u unmaps\n", i,
				atomic_load(&st->dma_map), atomic_load(&st->dma_unmap));
			rc = -1;
		}
		testdev_stats_free(st);
	}
	free(x);
	return rc;
}

int it_fx_own(struct it_fx *x, int fd)
{
	if (fd >= 0 && x->nown < IT_FX_MAX_OWN)
		x->own[x->nown++] = fd;
	return fd;
}

void it_fx_close(struct it_fx *x, int fd)
{
	for (size_t i = 0; i < x->nown; i++) {
		if (x->own[i] == fd) {
			x->own[i] = x->own[--x->nown];
			break;
		}
	}
	close(fd);
}
