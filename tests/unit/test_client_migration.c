/* Unit tests of the client library: DEVICE_FEATURE and migration data reads and writes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/client.h>

#include "common/fake_srv.h"
#include "common/testsrv.h"

static void fk_feature(struct fake *f)
{
	uint8_t out[8 + 8];
	struct vfio_user_device_feature df;
	uint32_t n;

	FK_CHECK(f, fk_version(f));
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_FEATURE) && f->len == 8);
	memcpy(&df, f->pl, sizeof(df));
	FK_CHECK(f, df.argsz == 16 && df.flags == (VFIO_DEVICE_FEATURE_GET | 1));
	df.argsz = 16;
	memcpy(out, &df, sizeof(df));
	memcpy(out + 8, "\x01\0\0\0\0\0\0\0", 8);
	FK_CHECK(f, fk_reply(f, out, sizeof(out), NULL, 0) == 0);
	/* MIG_DATA_READ of 16, we have 3. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_MIG_DATA_READ) && f->len == 8);
	memcpy(&n, f->pl + 4, 4);
	FK_CHECK(f, n == 16);
	{
		struct vfio_user_mig_data md = { .argsz = 11, .size = 3 };

		memcpy(out, &md, sizeof(md));
		memcpy(out + 8, "mig", 3);
		FK_CHECK(f, fk_reply(f, out, 11, NULL, 0) == 0);
	}
	FK_CHECK(f, fk_expect(f, VFIO_USER_MIG_DATA_WRITE) && f->len == 8 + 5);
	FK_CHECK(f, memcmp(f->pl + 8, "hello", 5) == 0);
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
}

static void test_feature_and_migration(void **state)
{
	struct vfurt_client *c;
	struct fake f;
	uint64_t mig_flags = 0;
	uint8_t buf[16];
	uint32_t got = 0;
	size_t len = 0;

	fake_init(&f);
	c = fake_start(&f, fk_feature, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_device_feature(c, VFIO_DEVICE_FEATURE_GET | 1, NULL, 0,
						     &mig_flags, sizeof(mig_flags), &len), 0);
	assert_int_equal(len, 8);
	assert_int_equal(mig_flags, 1);
	assert_int_equal(vfurt_client_mig_data_read(c, buf, sizeof(buf), &got), 0);
	assert_int_equal(got, 3);
	assert_memory_equal(buf, "mig", 3);
	assert_int_equal(vfurt_client_mig_data_write(c, "hello", 5), 0);
	vfurt_client_close(c);
	fake_finish(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fake_fds_setup, fake_fds_teardown)
		T(test_feature_and_migration),
#undef T
	};

	return cmocka_run_group_tests_name("unit: client migration", tests, NULL, NULL);
}
