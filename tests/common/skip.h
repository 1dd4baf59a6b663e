/* cmocka skips that say why, and a group runner that exits 77 when every case skipped. */
#ifndef VFURT_TESTS_SKIP_H
#define VFURT_TESTS_SKIP_H

#include <stddef.h> /* after <cmocka.h>, which it needs */

/*
 * Skip the running test case, printing "skipped: <reason>" first. Only for
 * what the machine lacks (a second CPU, a filesystem feature, a built
 * program): never for a capability vfu-rt itself advertises, which a test
 * asserts instead. Call from a test function, not from a setup function (a
 * skip there is reported by cmocka as a setup error).
 */
#define test_skip(...) test_skip_at(__FILE__, __LINE__, __VA_ARGS__)
void test_skip_at(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

/*
 * cmocka_run_group_tests_name with the exit status ctest expects: the number
 * of failed cases, or 77 (SKIP_RETURN_CODE) when every case of the group
 * called test_skip, so that a binary with nothing it could run is reported
 * as skipped, not passed.
 */
#define test_run_group(name, tests, setup, teardown)                                     \
	test_run_group_n(name, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)
int test_run_group_n(const char *name, const struct CMUnitTest *tests, size_t n,
		     CMFixtureFunction setup, CMFixtureFunction teardown);

#endif /* VFURT_TESTS_SKIP_H */
