/* Unit tests of CPU list parsing and validation against hwloc and the affinity mask. */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/skip.h"
#include "runtime/cpuset.h"

static void expect_list(const char *s, const int *want, size_t nwant)
{
	int cpus[VFURT_MAX_CPUS];
	char err[256] = "";
	size_t n = 12345;

	if (vfr_cpulist_parse(s, cpus, VFURT_MAX_CPUS, &n, err, sizeof(err)) != 0)
		fail_msg("'%s' rejected: %s", s, err);
	assert_int_equal(n, nwant);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(cpus[i], want[i]);
}

static void expect_bad(const char *s, const char *substr)
{
	int cpus[VFURT_MAX_CPUS];
	char err[256] = "";
	size_t n = 12345;

	if (vfr_cpulist_parse(s, cpus, VFURT_MAX_CPUS, &n, err, sizeof(err)) != -EINVAL)
		fail_msg("'%s' accepted", s);
	assert_int_equal(n, 0);
	if (!strstr(err, substr))
		fail_msg("'%s': message '%s' lacks '%s'", s, err, substr);
}

static void parse_good(void **state)
{
	static const int one[] = { 0 };
	static const int list[] = { 0, 1, 2, 3, 6, 8, 9 };
	static const int order[] = { 6, 0, 1, 5 };
	static const int single_range[] = { 4 };
	static const int top[] = { 1022, 1023 };

	expect_list("0", one, 1);
	expect_list("0-3,6,8-9", list, 7);
	expect_list("6,0-1,5", order, 4);
	expect_list("4-4", single_range, 1);
	expect_list("1022-1023", top, 2);
	expect_list("00", one, 1);
}

static void parse_bad(void **state)
{
	expect_bad("", "empty CPU list");
	expect_bad("3-1", "'3-1': range start is above its end");
	expect_bad("1,1", "CPU 1 is listed twice");
	expect_bad("0-3,2", "CPU 2 is listed twice");
	expect_bad("0-3,2-5", "CPU 2 is listed twice");
	expect_bad("0,,1", "empty item");
	expect_bad(",0", "empty item");
	expect_bad("0,", "trailing comma");
	expect_bad(" 0", "unexpected ' '");
	expect_bad("0 ", "unexpected ' '");
	expect_bad("0, 1", "unexpected ' '");
	expect_bad("0 -1", "unexpected ' '");
	expect_bad("a", "unexpected 'a'");
	expect_bad("0x1", "unexpected 'x'");
	expect_bad("+1", "unexpected '+'");
	expect_bad("-1", "unexpected '-'");
	expect_bad("1-", "missing CPU number");
	expect_bad("1-,2", "missing CPU number");
	expect_bad("1--2", "unexpected '-'");
	expect_bad("1-2-3", "unexpected '-'");
	expect_bad("1024", "CPU 1024 is out of range (at most 1023)");
	expect_bad("0-1024", "CPU 1024 is out of range");
	expect_bad("99999999999999999999999", "CPU 99999999999999999999999 is out of range");
	expect_bad("4294967296", "out of range");
}

/* Messages quote the list and point at the offending spot. */
static void parse_messages(void **state)
{
	int cpus[8];
	char err[256] = "";
	size_t n;

	assert_int_equal(vfr_cpulist_parse("0,1024", cpus, 8, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "CPU 1024 is out of range (at most 1023)");
	assert_int_equal(vfr_cpulist_parse("0, 1", cpus, 8, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "'0, 1' at offset 2: unexpected ' ': expected a CPU number");
	assert_int_equal(vfr_cpulist_parse("0,,1", cpus, 8, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "'0,,1': empty item at offset 2");
	assert_int_equal(vfr_cpulist_parse("2-1", cpus, 8, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "'2-1': range start is above its end");
}

static void parse_too_many(void **state)
{
	int cpus[4];
	char err[128] = "";
	size_t n;

	assert_int_equal(vfr_cpulist_parse("0-4", cpus, 4, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too many CPUs (at most 4)"));
	assert_int_equal(vfr_cpulist_parse("0-3", cpus, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 4);
}

/* The current affinity mask as the validator prints it ("0-1,3"), and its first two CPUs. */
static void affinity_list(char *buf, size_t len, int *first, int *second)
{
	cpu_set_t set;
	size_t off = 0;

	*first = *second = -1;
	buf[0] = '\0';
	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		if (*first < 0)
			*first = c;
		else if (*second < 0)
			*second = c;
	}
	for (int c = 0; c < CPU_SETSIZE; c++) {
		int end = c;

		if (!CPU_ISSET(c, &set))
			continue;
		while (end + 1 < CPU_SETSIZE && CPU_ISSET(end + 1, &set))
			end++;
		if (end > c)
			off += (size_t)snprintf(buf + off, len - off, "%s%d-%d", off ? "," : "", c, end);
		else
			off += (size_t)snprintf(buf + off, len - off, "%s%d", off ? "," : "", c);
		c = end;
	}
}

static bool in_affinity(int cpu)
{
	cpu_set_t set;

	assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
	return cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &set);
}

static void validate_ok(void **state)
{
	char avail[256];
	char err[256] = "";
	int first;
	int second;
	int cpus[2];

	affinity_list(avail, sizeof(avail), &first, &second);
	cpus[0] = first;
	assert_int_equal(vfr_cpulist_validate(cpus, 1, err, sizeof(err)), 0);
	if (second >= 0) {
		cpus[1] = second;
		assert_int_equal(vfr_cpulist_validate(cpus, 2, err, sizeof(err)), 0);
	}
	assert_int_equal(vfr_cpulist_validate(cpus, 0, err, sizeof(err)), 0);
}

static void validate_nonexistent(void **state)
{
	long nconf = sysconf(_SC_NPROCESSORS_CONF);
	char avail[256];
	char want[320];
	char err[256] = "";
	int first;
	int second;
	int cpus[2];

	affinity_list(avail, sizeof(avail), &first, &second);
	cpus[0] = first;
	cpus[1] = 999;
	assert_int_equal(vfr_cpulist_validate(cpus, 2, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "CPU 999 does not exist on this machine (available: %s)",
		 avail);
	assert_string_equal(err, want);

	/* CPUs are numbered 0..nconf-1: nconf is the first one that does not exist. */
	assert_true(nconf >= 1);
	cpus[0] = (int)nconf;
	err[0] = '\0';
	assert_int_equal(vfr_cpulist_validate(cpus, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "does not exist on this machine"));
	cpus[0] = (int)nconf - 1;
	if (sysconf(_SC_NPROCESSORS_ONLN) == nconf && in_affinity((int)nconf - 1)) {
		/* all CPUs online and the last one allowed: it validates */
		assert_int_equal(vfr_cpulist_validate(cpus, 1, err, sizeof(err)), 0);
	}
}

/*
 * A CPU the machine has but the affinity mask excludes. The check runs in a
 * forked child that narrows its own mask, so the test process keeps its own.
 */
static void validate_not_allowed(void **state)
{
	char avail[256];
	int first;
	int second;
	pid_t pid;
	int status;

	affinity_list(avail, sizeof(avail), &first, &second);
	if (second < 0)
		test_skip("only one CPU allowed: cannot exclude one by affinity");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		cpu_set_t set;
		char err[256] = "";
		char want[128];
		int cpus[1] = { second };

		CPU_ZERO(&set);
		CPU_SET(first, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			_exit(3);
		if (vfr_cpulist_validate(cpus, 1, err, sizeof(err)) != -EINVAL)
			_exit(4);
		snprintf(want, sizeof(want), "CPU %d is not allowed by this process's CPU affinity "
			 "(available: %d)", second, first);
		if (strcmp(err, want)) {
			fprintf(stderr, "got '%s', want '%s'\n", err, want);
			_exit(5);
		}
		cpus[0] = first;
		_exit(vfr_cpulist_validate(cpus, 1, err, sizeof(err)) == 0 ? 0 : 6);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_good),
		cmocka_unit_test(parse_bad),
		cmocka_unit_test(parse_messages),
		cmocka_unit_test(parse_too_many),
		cmocka_unit_test(validate_ok),
		cmocka_unit_test(validate_nonexistent),
		cmocka_unit_test(validate_not_allowed),
	};

	return test_run_group("unit: cpuset", tests, NULL, NULL);
}
