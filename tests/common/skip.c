/* cmocka skips that say why, and a group runner that exits 77 when every case skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/skip.h"

/* cases of the running group that called test_skip */
static size_t skipped;

void test_skip_at(const char *file, int line, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	print_message("skipped: %s\n", reason);
	skipped++;
	_skip(file, line);
	abort(); /* _skip does not return */
}

int test_run_group_n(const char *name, const struct CMUnitTest *tests, size_t n,
		     CMFixtureFunction setup, CMFixtureFunction teardown)
{
	int failed;

	skipped = 0;
	failed = _cmocka_run_group_tests(name, tests, n, setup, teardown);
	if (failed == 0 && n > 0 && skipped == n)
		return 77;
	return failed;
}
