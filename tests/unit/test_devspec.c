/* Unit tests of the --device specification parser and the device type table. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/devspec.h"

static void parse_ok(void **state)
{
	struct devspec s;
	char err[128];

	assert_int_equal(vfr_devspec_parse("gpio,socket=/tmp/a.sock,name=g0", &s, err, sizeof(err)), 0);
	assert_string_equal(s.type, "gpio");
	assert_int_equal(s.nkeys, 2);
	assert_string_equal(vfr_devspec_get(&s, "socket"), "/tmp/a.sock");
	assert_string_equal(vfr_devspec_get(&s, "name"), "g0");
	assert_null(vfr_devspec_get(&s, "missing"));
}

static void parse_type_only(void **state)
{
	struct devspec s;
	char err[128];

	assert_int_equal(vfr_devspec_parse("gpio", &s, err, sizeof(err)), 0);
	assert_int_equal(s.nkeys, 0);
}

static void parse_errors(void **state)
{
	static const char *const bad[] = {
		"", ",socket=x", "gpio,socket", "gpio,=x", "gpio,socket=a,socket=b",
		"gpio,a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9,j=10,k=11,l=12,m=13,n=14,o=15,p=16,q=17",
		"averyveryveryverylongtypenamethatdoesnotfit,socket=x",
	};
	struct devspec s;
	char err[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(vfr_devspec_parse(bad[i], &s, err, sizeof(err)), -EINVAL);
		assert_true(strlen(err) > 0);
	}
}

static void parse_long_value(void **state)
{
	char spec[600];
	struct devspec s;
	char err[128];

	memset(spec, 'a', sizeof(spec));
	memcpy(spec, "gpio,socket=", 12);
	spec[sizeof(spec) - 1] = 0;
	assert_int_equal(vfr_devspec_parse(spec, &s, err, sizeof(err)), -EINVAL);
}

static void modes(void **state)
{
	mode_t m;

	assert_int_equal(vfr_devspec_parse_mode("0600", &m), 0);
	assert_int_equal(m, 0600);
	assert_int_equal(vfr_devspec_parse_mode("660", &m), 0);
	assert_int_equal(m, 0660);
	assert_int_equal(vfr_devspec_parse_mode("9", &m), -EINVAL);
	assert_int_equal(vfr_devspec_parse_mode("", &m), -EINVAL);
	assert_int_equal(vfr_devspec_parse_mode("0600x", &m), -EINVAL);
	assert_int_equal(vfr_devspec_parse_mode("77777", &m), -ERANGE);
	assert_int_equal(vfr_devspec_parse_mode("1000", &m), -ERANGE);
	assert_int_equal(vfr_devspec_parse_mode("4755", &m), -ERANGE);
	assert_int_equal(vfr_devspec_parse_mode("0777", &m), 0);
	assert_int_equal(m, 0777);
}

static void sizes(void **state)
{
	uint64_t v = 1;

	(void)state;
	assert_int_equal(vfr_devspec_parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(vfr_devspec_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(vfr_devspec_parse_size("4k", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(vfr_devspec_parse_size("64M", &v), 0);
	assert_int_equal(v, 64ull << 20);
	assert_int_equal(vfr_devspec_parse_size("1G", &v), 0);
	assert_int_equal(v, 1ull << 30);
	assert_int_equal(vfr_devspec_parse_size("2T", &v), 0);
	assert_int_equal(v, 2ull << 40);
	assert_int_equal(vfr_devspec_parse_size("18446744073709551615", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(vfr_devspec_parse_size("16777215T", &v), 0);
	assert_int_equal(vfr_devspec_parse_size("16777216T", &v), -ERANGE);
	assert_int_equal(vfr_devspec_parse_size("18446744073709551616", &v), -ERANGE);
	assert_int_equal(vfr_devspec_parse_size("", &v), -EINVAL);
	assert_int_equal(vfr_devspec_parse_size("k", &v), -EINVAL);
	assert_int_equal(vfr_devspec_parse_size("-1", &v), -EINVAL);
	assert_int_equal(vfr_devspec_parse_size(" 1", &v), -EINVAL);
	assert_int_equal(vfr_devspec_parse_size("1 ", &v), -EINVAL);
	assert_int_equal(vfr_devspec_parse_size("1KB", &v), -EINVAL);
	assert_int_equal(vfr_devspec_parse_size("1P", &v), -EINVAL);
	assert_int_equal(vfr_devspec_parse_size("0x10", &v), -EINVAL);
	assert_int_equal(vfr_devspec_parse_size(NULL, &v), -EINVAL);
}

static void create_known_and_unknown(void **state)
{
	struct vfurt_log log = { 0 };
	struct vfurt_dev *dev;
	struct devspec s;
	char err[256];

	assert_int_equal(vfr_devspec_parse("gpio,name=g,toggle_period=5", &s, err, sizeof(err)), 0);
	dev = vfr_devspec_create(&s, &log, err, sizeof(err));
	assert_non_null(dev);
	assert_string_equal(vfurt_dev_name(dev), "g");
	vfurt_dev_destroy(dev);

	assert_int_equal(vfr_devspec_parse("gpio,color=red", &s, err, sizeof(err)), 0);
	assert_null(vfr_devspec_create(&s, &log, err, sizeof(err)));
	assert_non_null(strstr(err, "unknown key 'color'"));

	assert_int_equal(vfr_devspec_parse("gpio,toggle_period=0", &s, err, sizeof(err)), 0);
	assert_null(vfr_devspec_create(&s, &log, err, sizeof(err)));
	assert_non_null(strstr(err, "toggle_period"));

	assert_int_equal(vfr_devspec_parse("nosuch", &s, err, sizeof(err)), 0);
	assert_null(vfr_devspec_create(&s, &log, err, sizeof(err)));
	assert_non_null(strstr(err, "unknown device type"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_ok),
		cmocka_unit_test(parse_type_only),
		cmocka_unit_test(parse_errors),
		cmocka_unit_test(parse_long_value),
		cmocka_unit_test(modes),
		cmocka_unit_test(sizes),
		cmocka_unit_test(create_known_and_unknown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
