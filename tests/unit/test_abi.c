/* Unit tests for include/vfurt/abi.h: the size checks of options (in) and statistics (out). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <vfurt/abi.h>

/* The library's view: version 2 of a struct whose version 1 ended at b. */
struct lib_v2 {
	size_t size;
	uint32_t a;
	uint64_t b;
	uint64_t c; /* new in version 2 */
};
#define V1 VFURT_ABI_SIZE(struct lib_v2, b)

/* A newer caller's view: one field more. */
struct caller_v3 {
	struct lib_v2 v2;
	uint64_t d;
};

static void test_copy_in(void **state)
{
	struct lib_v2 dst;
	struct lib_v2 src = { .size = sizeof(src), .a = 1, .b = 2, .c = 3 };
	struct caller_v3 big = { .v2 = { .size = sizeof(big), .a = 4, .b = 5, .c = 6 } };

	(void)state;
	assert_int_equal(vfurt_abi_copy_in(&dst, sizeof(dst), &src, V1), 0);
	assert_int_equal(dst.a, 1);
	assert_int_equal(dst.c, 3);
	/* an older caller: what it does not know reads as zero */
	src.size = V1;
	assert_int_equal(vfurt_abi_copy_in(&dst, sizeof(dst), &src, V1), 0);
	assert_int_equal(dst.b, 2);
	assert_int_equal(dst.c, 0);
	assert_int_equal(dst.size, V1);
	/* too small, zero, never set, NULL */
	src.size = V1 - 1;
	assert_int_equal(vfurt_abi_copy_in(&dst, sizeof(dst), &src, V1), -EINVAL);
	src.size = 0;
	assert_int_equal(vfurt_abi_copy_in(&dst, sizeof(dst), &src, V1), -EINVAL);
	src.size = VFURT_ABI_SIZE_MAX + 1;
	assert_int_equal(vfurt_abi_copy_in(&dst, sizeof(dst), &src, V1), -EINVAL);
	assert_int_equal(vfurt_abi_copy_in(&dst, sizeof(dst), NULL, V1), -EINVAL);
	/* a newer caller: a zero tail is fine, a set field the library cannot honour is not */
	assert_int_equal(vfurt_abi_copy_in(&dst, sizeof(dst), &big, V1), 0);
	assert_int_equal(dst.c, 6);
	big.d = 7;
	assert_int_equal(vfurt_abi_copy_in(&dst, sizeof(dst), &big, V1), -EINVAL);
	assert_int_equal(dst.a, 0); /* zeroed on failure too */
}

static void test_copy_out(void **state)
{
	const struct lib_v2 src = { .size = sizeof(src), .a = 1, .b = 2, .c = 3 };
	struct lib_v2 old;
	struct caller_v3 big;

	(void)state;
	/* an older caller gets its part only, its size field untouched */
	memset(&old, 0xaa, sizeof(old));
	old.size = V1;
	assert_int_equal(vfurt_abi_copy_out(&old, &src, sizeof(src), V1), 0);
	assert_int_equal(old.size, V1);
	assert_int_equal(old.a, 1);
	assert_int_equal(old.b, 2);
	assert_int_equal(old.c, 0xaaaaaaaaaaaaaaaaull);
	/* a newer caller: the fields the library does not know are zeroed */
	memset(&big, 0xaa, sizeof(big));
	big.v2.size = sizeof(big);
	assert_int_equal(vfurt_abi_copy_out(&big, &src, sizeof(src), V1), 0);
	assert_int_equal(big.v2.c, 3);
	assert_int_equal(big.d, 0);
	/* refused without writing anything */
	memset(&old, 0, sizeof(old));
	old.size = V1 - 1;
	assert_int_equal(vfurt_abi_copy_out(&old, &src, sizeof(src), V1), -EINVAL);
	assert_int_equal(old.a, 0);
	old.size = 0;
	assert_int_equal(vfurt_abi_copy_out(&old, &src, sizeof(src), V1), -EINVAL);
	assert_int_equal(vfurt_abi_copy_out(NULL, &src, sizeof(src), V1), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_in),
		cmocka_unit_test(test_copy_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
