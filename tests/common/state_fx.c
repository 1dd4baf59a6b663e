/* State-image helpers of the restart tests (state_fx.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/state_fx.h"

struct vfurt_state *stfx_remix(struct vfurt_state *s, uint32_t tag, const void *val, size_t len)
{
	struct vfurt_state *n = vfurt_state_create();
	struct vfurt_state_cur root;
	const void *v;
	uint32_t t;
	size_t l;
	bool seen = false;

	assert_non_null(n);
	assert_int_equal(vfurt_state_root(s, &root), 0);
	while (vfurt_state_next(&root, &t, &v, &l) == 1) {
		if (t != tag) {
			assert_int_equal(vfurt_state_put(n, t, v, l), 0);
			continue;
		}
		seen = true;
		if (val)
			assert_int_equal(vfurt_state_put(n, t, val, len), 0);
	}
	if (!seen && val)
		assert_int_equal(vfurt_state_put(n, tag, val, len), 0);
	return n;
}
