/* The validation tests' server: two test devices and a read-only one, and raw requests. */
#ifndef VFURT_TESTS_VAL_FX_H
#define VFURT_TESTS_VAL_FX_H

#include <stddef.h>
#include <stdint.h>

#include <vfurt/client.h>

#include "common/fixture.h"

/*
 * dev[0], dev[1]: test devices, c on dev[0] (client flags cflags), c2 on
 * dev[1], which must keep working whatever c does; dev[2]: a device whose
 * BAR0 (4 KiB) is read-only and reads 0x5a. d0 and co may be NULL. A cmocka
 * setup's body: 0, or -1 after printing what failed.
 */
int val_start(void **state, const struct testdev_opts *d0, const struct vfurt_conn_opts *co,
	      uint32_t cflags);
/* cmocka setups: val_start with defaults; with c not past VERSION
 * (VFURT_CLIENT_NO_HANDSHAKE). The teardown is it_fx_teardown. */
int val_setup(void **state);
int val_setup_no_handshake(void **state);

/* The other device on the same server is unaffected: c2 is alive and its
 * scratch register works. */
void val_guard_ok(struct it_fx *x);

/* A request built by hand; the reply payload lands in val_rbuf. Returns
 * what vfurt_client_request does. */
extern uint8_t val_rbuf[1 << 17];
int val_req(struct vfurt_client *c, uint16_t cmd, const void *p, size_t len, const int *fds,
	    size_t nfds);

/* REGION_READ of count bytes at off, by hand (no checks on the client's
 * side). Returns what val_req does. */
int val_rd(struct vfurt_client *c, uint32_t region, uint64_t off, uint32_t count);
/* REGION_WRITE saying count bytes at off and carrying datalen bytes of
 * 0xee (the two may differ). Returns what val_req does. */
int val_wr(struct vfurt_client *c, uint32_t region, uint64_t off, uint32_t count,
	   size_t datalen);

#endif /* VFURT_TESTS_VAL_FX_H */
