/* Integration fixture: test devices served on real sockets, a client attached, leaks checked. */
#ifndef VFURT_TESTS_FIXTURE_H
#define VFURT_TESTS_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include <vfurt/client.h>
#include <vfurt/device.h>
#include <vfurt/server.h>

#include "common/testsrv.h"

#define IT_FX_MAX_DEVS 4
#define IT_FX_MAX_OWN 16

/* What to serve and how to connect; every field may be left 0. */
struct it_fx_opts {
	const char *name;                        /* device names name0, name1, ...; "it" */
	unsigned ntestdev;                       /* test devices dev[0..ntestdev); 0 means 1 */
	const struct testdev_opts *dev0;         /* dev[0]'s options, NULL: defaults */
	struct vfurt_dev *extra;                 /* served last, as dev[ntestdev]; owned by
						  * the fixture from the call on */
	const struct vfurt_conn_opts *conn;      /* the server's, NULL: defaults */
	const struct vfurt_client_opts *client;  /* c's, NULL: it_opts(0) */
	bool client2;                            /* also connect c2 to dev[1] */
};

struct it_fx {
	struct testsrv *ts;      /* a test that stops it sets it NULL (and base_fds) */
	struct vfurt_dev *dev[IT_FX_MAX_DEVS];
	struct testdev_stats *st[IT_FX_MAX_DEVS]; /* the test devices' */
	unsigned ntestdev;
	struct vfurt_client *c;  /* on dev[0]; a test that closes it sets it NULL */
	struct vfurt_client *c2; /* on dev[1] (opts.client2): must keep working whatever c does */
	int base_fds;            /* open fds with the server up and no client */
	int own[IT_FX_MAX_OWN];  /* fds the test opened (it_fx_own): closed by the teardown */
	size_t nown;
};

/*
 * A cmocka setup's body: start the server, count the fds, connect. *state
 * gets the fixture (also on failure, for it_fx_teardown). Returns 0, or -1
 * after printing what failed.
 */
int it_fx_start(void **state, const struct it_fx_opts *o);

/*
 * A cmocka teardown: close the test's fds and the clients; then fail (-1,
 * with a message) if the process does not get back to base_fds (a leak of
 * the server's), stop the server and fail if any test device has more DMA
 * maps than unmaps. Frees the fixture.
 */
int it_fx_teardown(void **state);

/* Remember fd as the test's, so a test failing before it closes it does not
 * show up as a leak. Returns fd. */
int it_fx_own(struct it_fx *x, int fd);
/* Close an fd given to it_fx_own. */
void it_fx_close(struct it_fx *x, int fd);

#endif /* VFURT_TESTS_FIXTURE_H */
