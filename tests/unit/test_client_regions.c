/* Unit tests of the client library: region info (caps, sparse mmap), io fds, region access. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include <cmocka.h>

#include <vfurt/client.h>

#include "common/fake_srv.h"
#include "common/testsrv.h"

#define PAGE 4096u

#define RI_FULL (32u + 16u + 2u * 16u + 16u)

static void fk_region_info(struct fake *f)
{
	uint8_t out[RI_FULL];
	struct vfio_region_info ri = {
		.argsz = RI_FULL, .index = 2, .cap_offset = 32, .size = 4 * PAGE, .offset = 0,
		.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
			 VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS,
	};
	struct vfio_region_info_cap_sparse_mmap sp = {
		.header = { .id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1, .next = 80 },
		.nr_areas = 2,
	};
	struct vfio_region_sparse_mmap_area areas[2] = {
		{ .offset = PAGE, .size = PAGE }, { .offset = 3 * PAGE, .size = PAGE },
	};
	struct vfio_region_info_cap_type ty = {
		.header = { .id = VFIO_REGION_INFO_CAP_TYPE, .version = 1, .next = 0 },
		.type = 5, .subtype = 7,
	};
	struct vfio_region_info req;
	int memfd = memfd_create("region", MFD_CLOEXEC);
	uint8_t mark = 0x5a;

	FK_CHECK(f, memfd >= 0 && ftruncate(memfd, 4 * PAGE) == 0);
	FK_CHECK(f, pwrite(memfd, &mark, 1, 3 * PAGE + 5) == 1);
	FK_CHECK(f, fk_version(f));

	/* First ask: argsz 32, we answer with just the fixed part. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_INFO) && f->len == 32);
	memcpy(&req, f->pl, sizeof(req));
	FK_CHECK(f, req.argsz == 32 && req.index == 2);
	FK_CHECK(f, fk_reply(f, &ri, sizeof(ri), NULL, 0) == 0);

	/* Retry with the full size. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_INFO));
	memcpy(&req, f->pl, sizeof(req));
	FK_CHECK(f, req.argsz == RI_FULL && req.index == 2);
	memcpy(out, &ri, 32);
	memcpy(out + 32, &sp, sizeof(sp));
	memcpy(out + 48, areas, sizeof(areas));
	memcpy(out + 80, &ty, sizeof(ty));
	FK_CHECK(f, fk_reply(f, out, sizeof(out), &memfd, 1) == 0);
	close(memfd);

	/* A chain that loops back must be refused. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_INFO));
	ri.argsz = 48;
	ri.index = 2;
	sp.header.next = 32;
	sp.nr_areas = 0;
	memcpy(out, &ri, 32);
	memcpy(out + 32, &sp, sizeof(sp));
	FK_CHECK(f, fk_reply(f, out, 48, NULL, 0) == 0);

	/* A sparse cap claiming more areas than sent. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_INFO));
	memcpy(&req, f->pl, sizeof(req));
	FK_CHECK(f, req.argsz == 32);
	sp.header.next = 0;
	sp.nr_areas = 9;
	memcpy(out + 32, &sp, sizeof(sp));
	FK_CHECK(f, fk_reply(f, out, 48, NULL, 0) == 0);

	/* FLAG_CAPS with cap_offset 0 in a complete reply (QEMU refuses it) */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_INFO));
	ri.argsz = 32;
	ri.cap_offset = 0;
	FK_CHECK(f, fk_reply(f, &ri, sizeof(ri), NULL, 0) == 0);
}

static void test_region_info(void **state)
{
	struct vfurt_client_region_info info;
	struct vfurt_client *c;
	struct fake f;
	size_t len;
	void *p;

	fake_init(&f);
	c = fake_start(&f, fk_region_info, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_region_info(c, 2, &info), 0);
	assert_int_equal(info.index, 2);
	assert_int_equal(info.argsz, RI_FULL);
	assert_int_equal(info.size, 4 * PAGE);
	assert_true(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_true(info.fd >= 0);
	assert_true(info.has_sparse);
	assert_int_equal(info.nr_sparse, 2);
	assert_int_equal(info.sparse[0].offset, PAGE);
	assert_int_equal(info.sparse[1].offset, 3 * PAGE);
	assert_int_equal(info.sparse[1].size, PAGE);
	assert_true(info.has_type);
	assert_int_equal(info.type, 5);
	assert_int_equal(info.subtype, 7);
	assert_false(info.msix_mappable);
	assert_int_equal(info.nr_caps, 2);
	assert_int_equal(info.raw_len, RI_FULL);

	assert_int_equal(vfurt_client_region_info_mmap(&info, 1, PROT_READ, &p, &len), 0);
	assert_int_equal(len, PAGE);
	assert_int_equal(((uint8_t *)p)[5], 0x5a);
	munmap(p, len);
	assert_int_equal(vfurt_client_region_info_mmap(&info, -1, PROT_READ, &p, &len), -EINVAL);
	assert_int_equal(vfurt_client_region_info_mmap(&info, 2, PROT_READ, &p, &len), -EINVAL);
	vfurt_client_region_info_release(&info);
	assert_int_equal(info.fd, -1);

	assert_int_equal(vfurt_client_region_info(c, 2, &info), -EPROTO);
	assert_int_equal(info.fd, -1);
	assert_int_equal(vfurt_client_region_info(c, 2, &info), -EPROTO);
	assert_int_equal(vfurt_client_region_info(c, 2, &info), -EPROTO);
	vfurt_client_close(c);
	fake_finish(&f);
}

static void fk_io_fds(struct fake *f)
{
	uint8_t out[16 + 2 * 40];
	struct vfio_user_region_io_fds_reply h = { .argsz = sizeof(out), .index = 0, .count = 2 };
	struct vfio_user_sub_region_io_fd subs[2] = {
		{ .offset = 0x1000, .size = 4, .fd_index = 0, .type = VFIO_USER_IO_FD_TYPE_IOEVENTFD,
		  .flags = VFIO_USER_IOEVENTFD_FLAG_DATAMATCH, .datamatch_or_user_data = 7 },
		{ .offset = 0x1004, .size = 4, .fd_index = 1, .type = VFIO_USER_IO_FD_TYPE_IOEVENTFD },
	};
	struct vfio_user_region_io_fds_request req;
	int efds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };

	FK_CHECK(f, fk_version(f));
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_IO_FDS));
	memcpy(&req, f->pl, sizeof(req));
	FK_CHECK(f, req.argsz == 16 && req.index == 0 && req.flags == 0);
	FK_CHECK(f, fk_reply(f, &h, sizeof(h), NULL, 0) == 0);
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_IO_FDS));
	memcpy(&req, f->pl, sizeof(req));
	FK_CHECK(f, req.argsz == sizeof(out));
	memcpy(out, &h, sizeof(h));
	memcpy(out + 16, subs, sizeof(subs));
	FK_CHECK(f, fk_reply(f, out, sizeof(out), efds, 2) == 0);
	/* fd_index beyond the fds sent. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_GET_REGION_IO_FDS));
	FK_CHECK(f, fk_reply(f, out, sizeof(out), efds, 1) == 0);
	close(efds[0]);
	close(efds[1]);
}

static void test_region_io_fds(void **state)
{
	struct vfurt_client_io_fds io;
	struct vfurt_client *c;
	struct fake f;

	fake_init(&f);
	c = fake_start(&f, fk_io_fds, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_region_io_fds(c, 0, &io), 0);
	assert_int_equal(io.count, 2);
	assert_int_equal(io.nfds, 2);
	assert_int_equal(io.subs[0].offset, 0x1000);
	assert_int_equal(io.subs[0].datamatch_or_user_data, 7);
	assert_int_equal(io.subs[1].fd_index, 1);
	assert_true(fcntl(io.fds[1], F_GETFD) >= 0);
	vfurt_client_io_fds_release(&io);
	assert_int_equal(vfurt_client_region_io_fds(c, 0, &io), -EPROTO);
	assert_null(io.fds);
	vfurt_client_close(c);
	fake_finish(&f);
}

static void fk_access(struct fake *f)
{
	struct vfio_user_region_access ra;
	uint8_t out[16 + 4096];
	uint64_t off = 0x100;

	FK_CHECK(f, fk_version(f));
	/* A 10000-byte read arrives as 4096 + 4096 + 1808. */
	for (int i = 0; i < 3; i++) {
		uint32_t want = i < 2 ? 4096 : 1808;

		FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_READ) && f->len == 16);
		memcpy(&ra, f->pl, sizeof(ra));
		FK_CHECK(f, ra.region == 3 && ra.offset == off && ra.count == want);
		memcpy(out, &ra, sizeof(ra));
		for (uint32_t k = 0; k < want; k++)
			out[16 + k] = (uint8_t)(off + k);
		FK_CHECK(f, fk_reply(f, out, 16 + want, NULL, 0) == 0);
		off += want;
	}
	/* Posted write: No_reply set, and we do not answer. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_WRITE) && f->len == 18);
	FK_CHECK(f, f->hdr->flags & VFIO_USER_F_NO_REPLY);
	FK_CHECK(f, memcmp(f->pl + 16, "xy", 2) == 0);
	/* Write multi. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_WRITE_MULTI) && f->len == 8 + 3 * 24);
	{
		struct vfio_user_write_multi_entry e;
		uint64_t cnt;

		memcpy(&cnt, f->pl, 8);
		memcpy(&e, f->pl + 8 + 24, sizeof(e));
		FK_CHECK(f, cnt == 3 && e.offset == 8 && e.count == 4 && e.region == 0);
		FK_CHECK(f, fk_reply(f, &cnt, sizeof(cnt), NULL, 0) == 0);
	}
	/* A 5000-byte write as 4096 + 904, each acknowledged. */
	for (int i = 0; i < 2; i++) {
		FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_WRITE));
		memcpy(&ra, f->pl, sizeof(ra));
		FK_CHECK(f, ra.count == (i ? 904u : 4096u) && f->len == 16 + ra.count);
		FK_CHECK(f, f->pl[16] == (uint8_t)(i ? 4096 : 0));
		FK_CHECK(f, fk_reply(f, &ra, sizeof(ra), NULL, 0) == 0);
	}
	/* A reply whose count lies. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_READ));
	memcpy(&ra, f->pl, sizeof(ra));
	ra.count = 2;
	memcpy(out, &ra, sizeof(ra));
	FK_CHECK(f, fk_reply(f, out, 16 + 2, NULL, 0) == 0);
}

static void test_region_access(void **state)
{
	struct vfio_user_write_multi_entry wrs[3] = {
		{ .offset = 0, .count = 4 }, { .offset = 8, .count = 4 }, { .offset = 16, .count = 8 },
	};
	uint8_t *buf = malloc(10000);
	struct vfurt_client *c;
	struct fake f;

	assert_non_null(buf);
	fake_init(&f);
	f.reply_json = "{\"capabilities\":{\"max_data_xfer_size\":4096,\"write_multiple\":true}}";
	c = fake_start(&f, fk_access, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_region_read(c, 3, 0x100, buf, 10000), 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf[i], (uint8_t)(0x100 + i));
	assert_int_equal(vfurt_client_region_write_posted(c, 1, 0, "xy", 2), 0);
	assert_int_equal(vfurt_client_region_write_multi(c, wrs, 3, false), 0);
	wrs[0].count = 9;
	assert_int_equal(vfurt_client_region_write_multi(c, wrs, 3, false), -EINVAL);
	for (int i = 0; i < 5000; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(vfurt_client_region_write(c, 0, 0, buf, 5000), 0);
	assert_int_equal(vfurt_client_region_read(c, 0, 0, buf, 4), -EIO);
	vfurt_client_close(c);
	free(buf);
	fake_finish(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fake_fds_setup, fake_fds_teardown)
		T(test_region_info),
		T(test_region_io_fds),
		T(test_region_access),
#undef T
	};

	return cmocka_run_group_tests_name("unit: client regions", tests, NULL, NULL);
}
