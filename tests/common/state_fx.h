/* State-image helpers of the restart tests: images rewritten record by record. */
#ifndef VFURT_TESTS_STATE_FX_H
#define VFURT_TESTS_STATE_FX_H

#include <stddef.h>
#include <stdint.h>

#include <vfurt/state.h>

/*
 * A copy of s's root records with record tag replaced by (val, len), or
 * dropped when val is NULL; appended when s lacks it (a bad image made from
 * a good one). Asserts every step; the caller destroys the copy.
 */
struct vfurt_state *stfx_remix(struct vfurt_state *s, uint32_t tag, const void *val, size_t len);

#endif /* VFURT_TESTS_STATE_FX_H */
