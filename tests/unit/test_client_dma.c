/* Unit tests of the client library: serving DMA_READ/DMA_WRITE, interleaved, on a twin socket. */
#include <errno.h>
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
#include <sys/socket.h>

#include <cmocka.h>

#include <vfurt/client.h>

#include "common/fake_srv.h"
#include "common/testsrv.h"

#define IOVA 0x10000ull
#define PAGE 4096u

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + 3);
}

/* Send a DMA command on sock and read the client's answer into f. */
static bool fk_dma(struct fake *f, int sock, uint16_t cmd, uint16_t id, uint64_t addr,
		   uint64_t count, const void *data)
{
	struct vfio_user_dma_access acc = { .addr = addr, .count = count };
	uint8_t out[16 + 256];
	size_t n = sizeof(acc);

	memcpy(out, &acc, sizeof(acc));
	if (data) {
		memcpy(out + n, data, count);
		n += count;
	}
	if (fk_send(sock, id, cmd, VFIO_USER_F_TYPE_COMMAND, 0, out, n, NULL, 0))
		return false;
	return fk_recv_on(f, sock) == 0 && f->hdr->msg_id == id && f->hdr->cmd == cmd &&
	       (f->hdr->flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY;
}

/* Interleave DMA commands with the reply to a REGION_READ, on `sock`. */
static void fk_dma_round(struct fake *f, int sock)
{
	struct vfio_user_dma_access acc;
	struct vfio_user_region_access ra;
	uint8_t data[32];
	uint8_t out[20];

	uint16_t id;

	FK_CHECK(f, fk_expect(f, VFIO_USER_REGION_READ));
	memcpy(&ra, f->pl, sizeof(ra));
	FK_CHECK(f, ra.count == 4);
	id = f->hdr->msg_id;

	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DMA_READ, 0x100, IOVA + 100, 64, NULL));
	FK_CHECK(f, !(f->hdr->flags & VFIO_USER_F_ERROR) && f->len == 16 + 64);
	memcpy(&acc, f->pl, sizeof(acc));
	FK_CHECK(f, acc.addr == IOVA + 100 && acc.count == 64);
	for (int i = 0; i < 64; i++)
		FK_CHECK(f, f->pl[16 + i] == pattern(100 + (uint64_t)i));

	memset(data, 0xa5, sizeof(data));
	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DMA_WRITE, 0x101, IOVA + PAGE, 32, data));
	/* Spec reply: address + 8-byte count, nothing else. */
	FK_CHECK(f, !(f->hdr->flags & VFIO_USER_F_ERROR) && f->len == 16);
	memcpy(&acc, f->pl, sizeof(acc));
	FK_CHECK(f, acc.addr == IOVA + PAGE && acc.count == 32);

	/* Outside every window. */
	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DMA_READ, 0x102, 0x900000, 8, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EFAULT);
	FK_CHECK(f, f->len == 0);
	/* Straddling the end of the window. */
	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DMA_READ, 0x103, IOVA + 2 * PAGE - 4, 8, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EFAULT);
	/* Bigger than our max_data_xfer_size. */
	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DMA_READ, 0x104, IOVA, 2u << 20, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EINVAL);
	/* Too big to buffer: drained and refused, the stream stays in sync. */
	{
		size_t big = (size_t)3 << 19;
		uint8_t *huge = calloc(1, 16 + big);
		struct vfio_user_dma_access hacc = { .addr = IOVA, .count = big };
		int rc;

		FK_CHECK(f, huge);
		memcpy(huge, &hacc, sizeof(hacc));
		rc = fk_send(sock, 0x106, VFIO_USER_DMA_WRITE, 0, 0, huge, 16 + big, NULL, 0);
		free(huge);
		FK_CHECK(f, rc == 0 && fk_recv_on(f, sock) == 0 && f->hdr->msg_id == 0x106);
		FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EINVAL);
	}
	/* Not a command a client serves. */
	FK_CHECK(f, fk_dma(f, sock, VFIO_USER_DEVICE_RESET, 0x105, 0, 0, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == ENOSYS);

	memcpy(out, &ra, sizeof(ra));
	memcpy(out + 16, "abcd", 4);
	FK_CHECK(f, fk_send(f->sock, id, VFIO_USER_REGION_READ, VFIO_USER_F_TYPE_REPLY, 0, out,
			    sizeof(out), NULL, 0) == 0);
}

static void fk_dma_main(struct fake *f)
{
	struct vfio_user_dma_map dm;
	struct vfio_user_dma_unmap du;
	uint16_t id;
	uint8_t *p;

	FK_CHECK(f, fk_version(f));
	/* Window 1: no fd, reached only through DMA_READ/WRITE. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_MAP) && f->len == 32 && f->nfds == 0);
	memcpy(&dm, f->pl, sizeof(dm));
	FK_CHECK(f, dm.argsz == 32 && dm.addr == IOVA && dm.size == 2 * PAGE && dm.offset == 0);
	FK_CHECK(f, dm.flags == (VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE));
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
	fk_dma_round(f, f->sock);
	if (f->fail_line)
		return;
	/* Window 2: with the fd at file offset PAGE; we map it like a server. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_MAP) && f->nfds == 1);
	f->u[1] = f->hdr->msg_id;
	memcpy(&dm, f->pl, sizeof(dm));
	FK_CHECK(f, dm.addr == 0x100000 && dm.size == PAGE && dm.offset == PAGE);
	FK_CHECK(f, dm.flags == VFIO_USER_DMA_MAP_FLAG_READ);
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fds[0], (off_t)dm.offset);
	FK_CHECK(f, p != MAP_FAILED);
	f->u[0] = p[0] == 0xa5 && p[40] == pattern(PAGE + 40);
	p[100] = 0x42;
	munmap(p, PAGE);
	/* The client knows window 2 while it waits for this reply; it is
	 * read-only for the device. */
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_WRITE, 0x200, 0x100000, 4, "zzzz"));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EACCES);
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_READ, 0x201, 0x100000 + 100, 1, NULL));
	FK_CHECK(f, !(f->hdr->flags & VFIO_USER_F_ERROR) && f->pl[16] == 0x42);
	FK_CHECK(f, fk_send(f->sock, (uint16_t)f->u[1], VFIO_USER_DMA_MAP, VFIO_USER_F_TYPE_REPLY,
			    0, NULL, 0, NULL, 0) == 0);
	/* A rejected map. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_MAP));
	FK_CHECK(f, fk_error(f, EEXIST) == 0);
	/* Unmap window 1; meanwhile check the rejected window is gone. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_UNMAP) && f->len == 24);
	memcpy(&du, f->pl, sizeof(du));
	id = f->hdr->msg_id;
	FK_CHECK(f, du.argsz == 24 && du.addr == IOVA && du.size == 2 * PAGE && du.flags == 0);
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_READ, 0x202, 0x200000, 1, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EFAULT);
	FK_CHECK(f, fk_send(f->sock, id, VFIO_USER_DMA_UNMAP, VFIO_USER_F_TYPE_REPLY, 0, &du,
			    sizeof(du), NULL, 0) == 0);
	/* Unmap all; window 1 is gone already, window 2 still there. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_UNMAP));
	memcpy(&du, f->pl, sizeof(du));
	id = f->hdr->msg_id;
	FK_CHECK(f, du.flags == VFIO_USER_DMA_UNMAP_FLAG_ALL);
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_READ, 0x203, IOVA, 1, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EFAULT);
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_READ, 0x204, 0x100000, 1, NULL));
	FK_CHECK(f, !(f->hdr->flags & VFIO_USER_F_ERROR));
	FK_CHECK(f, fk_send(f->sock, id, VFIO_USER_DMA_UNMAP, VFIO_USER_F_TYPE_REPLY, 0, &du,
			    sizeof(du), NULL, 0) == 0);
	/* After unmap-all nothing is reachable. */
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_RESET));
	id = f->hdr->msg_id;
	FK_CHECK(f, fk_dma(f, f->sock, VFIO_USER_DMA_READ, 0x205, 0x100000, 1, NULL));
	FK_CHECK(f, (f->hdr->flags & VFIO_USER_F_ERROR) && f->hdr->error_no == EFAULT);
	FK_CHECK(f, fk_send(f->sock, id, VFIO_USER_DEVICE_RESET, VFIO_USER_F_TYPE_REPLY, 0, NULL,
			    0, NULL, 0) == 0);
}

static int make_memfd(size_t size, uint8_t **map)
{
	int fd = memfd_create("guest", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(*map != MAP_FAILED);
	for (size_t i = 0; i < size; i++)
		(*map)[i] = pattern(i);
	return fd;
}

static void test_dma_interleaved(void **state)
{
	const uint32_t rw = VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE;
	struct vfurt_client_stats st = { .stats_size = sizeof(st) };
	struct vfurt_client *c;
	struct fake f;
	uint8_t buf[4];
	uint8_t *mem;
	int memfd;

	memfd = make_memfd(2 * PAGE, &mem);
	fake_init(&f);
	c = fake_start(&f, fk_dma_main, NULL);
	assert_non_null(c);
	assert_int_equal(vfurt_client_dma_map(c, IOVA, 2 * PAGE, memfd, 0, rw, 0), 0);
	/* The fake serves DMA_READ/WRITE before it answers this read. */
	assert_int_equal(vfurt_client_region_read(c, 0, 0, buf, 4), 0);
	assert_memory_equal(buf, "abcd", 4);
	for (int i = 0; i < 32; i++)
		assert_int_equal(mem[PAGE + i], 0xa5);
	assert_int_equal(mem[PAGE + 32], pattern(PAGE + 32));
	assert_int_equal(vfurt_client_get_stats(c, &st), 0);
	assert_int_equal(st.dma_reads, 1);
	assert_int_equal(st.dma_writes, 1);
	assert_int_equal(st.dma_bytes, 96);
	assert_int_equal(st.dma_errors, 5);
	assert_int_equal(vfurt_client_dma_served(c), 2);

	assert_int_equal(vfurt_client_dma_map(c, 0x100000, PAGE, memfd, PAGE,
					      VFIO_USER_DMA_MAP_FLAG_READ,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_int_equal(vfurt_client_dma_map(c, 0x200000, PAGE, memfd, 0, rw, 0), -EEXIST);
	assert_int_equal(mem[PAGE + 100], 0x42);
	assert_int_equal(vfurt_client_dma_unmap(c, IOVA, 2 * PAGE, 0), 0);
	assert_int_equal(vfurt_client_dma_unmap(c, 0, 0, VFIO_USER_DMA_UNMAP_FLAG_ALL), 0);
	assert_int_equal(vfurt_client_reset(c), 0);
	assert_int_equal(vfurt_client_dma_map(c, IOVA, 0, memfd, 0, rw, 0), -EINVAL);
	assert_int_equal(vfurt_client_dma_map(c, IOVA, PAGE, -1, 0, rw, 0), -EINVAL);
	vfurt_client_close(c);
	fake_finish(&f);
	assert_int_equal(f.u[0], 1);
	munmap(mem, 2 * PAGE);
	close(memfd);
}

static void fk_twin(struct fake *f)
{
	char json[128];
	int tw[2];

	FK_CHECK(f, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tw) == 0);
	f->twin = tw[1];
	/* The twin fd sits at index 1 behind an unrelated fd. */
	snprintf(json, sizeof(json),
		 "{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":1}}}");
	f->reply_json = json;
	{
		int fds[2] = { eventfd(0, EFD_CLOEXEC), tw[0] };
		bool ok = fk_version_fds(f, fds, 2);

		close(fds[0]);
		close(fds[1]);
		FK_CHECK(f, ok);
	}
	FK_CHECK(f, fk_expect(f, VFIO_USER_DMA_MAP) && f->nfds == 0);
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
	fk_dma_round(f, f->twin);
	if (f->fail_line)
		return;
	/* Idle: two writes on the twin socket, one read on the main one. */
	{
		struct vfio_user_dma_access acc = { .addr = IOVA + 8, .count = 2 };
		uint8_t out[18];

		memcpy(out, &acc, sizeof(acc));
		memcpy(out + 16, "QR", 2);
		FK_CHECK(f, fk_send(f->twin, 1, VFIO_USER_DMA_WRITE, 0, 0, out, 18, NULL, 0) == 0);
		acc.addr = IOVA + 10;
		memcpy(out, &acc, sizeof(acc));
		FK_CHECK(f, fk_send(f->twin, 2, VFIO_USER_DMA_WRITE, 0, 0, out, 18, NULL, 0) == 0);
		acc.addr = IOVA;
		memcpy(out, &acc, sizeof(acc));
		FK_CHECK(f, fk_send(f->sock, 3, VFIO_USER_DMA_READ, 0, 0, out, 16, NULL, 0) == 0);
		FK_CHECK(f, fk_recv_on(f, f->twin) == 0 && f->hdr->msg_id == 1 && f->len == 16);
		FK_CHECK(f, fk_recv_on(f, f->twin) == 0 && f->hdr->msg_id == 2 && f->len == 16);
		FK_CHECK(f, fk_recv(f) == 0 && f->hdr->msg_id == 3 && f->len == 18);
		FK_CHECK(f, f->pl[16] == pattern(0) && f->pl[17] == pattern(1));
	}
	FK_CHECK(f, fk_expect(f, VFIO_USER_DEVICE_RESET));
	FK_CHECK(f, fk_reply(f, NULL, 0, NULL, 0) == 0);
}

static void test_twin_socket(void **state)
{
	struct vfurt_client_opts o = {
		.opts_size = sizeof(o), .timeout_ms = 2000,
		.flags = VFURT_CLIENT_TWIN_SOCKET | VFURT_CLIENT_REQUIRE_TWIN,
	};
	struct vfurt_client_caps caps = { .caps_size = sizeof(caps) };
	struct vfurt_client_stats st = { .stats_size = sizeof(st) };
	struct vfurt_client *c;
	struct fake f;
	uint8_t *mem = malloc(2 * PAGE);
	uint8_t buf[4];
	int served = 0;

	assert_non_null(mem);
	for (size_t i = 0; i < 2 * PAGE; i++)
		mem[i] = pattern(i);
	fake_init(&f);
	c = fake_start(&f, fk_twin, &o);
	assert_non_null(c);
	assert_int_equal(vfurt_client_get_caps(c, &caps), 0);
	assert_true(caps.twin_socket);
	assert_true(vfurt_client_twin_fd(c) >= 0);
	assert_int_equal(vfurt_client_dma_map_mem(c, IOVA, 2 * PAGE, mem,
						  VFIO_USER_DMA_MAP_FLAG_READ |
						  VFIO_USER_DMA_MAP_FLAG_WRITE, 0), 0);
	assert_int_equal(vfurt_client_region_read(c, 0, 0, buf, 4), 0);
	assert_memory_equal(buf, "abcd", 4);
	assert_int_equal(mem[PAGE], 0xa5);
	/* Some of these may already have been served while region_read waited
	 * (the twin socket is independent of the main one). */
	while (vfurt_client_dma_served(c) < 5) {
		int rc = vfurt_client_poll_server(c, 2000);

		if (rc <= 0)
			fail_msg("poll_server: %d after %d", rc, served);
		served += rc;
	}
	assert_true(served >= 1 && served <= 3);
	assert_memory_equal(mem + 8, "QRQR", 4);
	assert_int_equal(vfurt_client_poll_server(c, 0), 0);
	assert_int_equal(vfurt_client_reset(c), 0);
	assert_int_equal(vfurt_client_get_stats(c, &st), 0);
	assert_int_equal(st.twin_commands, 7 + 2);
	assert_int_equal(st.dma_reads, 2);
	assert_int_equal(st.dma_writes, 3);
	vfurt_client_close(c);
	fake_finish(&f);
	free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fake_fds_setup, fake_fds_teardown)
		T(test_dma_interleaved),
		T(test_twin_socket),
#undef T
	};

	return cmocka_run_group_tests_name("unit: client DMA", tests, NULL, NULL);
}
