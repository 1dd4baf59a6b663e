/* Integration tests of the multi-core runtime: real sockets, io_uring workers, queues, io fds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/runtime.h>

#include "common/it_util.h"

#define IOVA 0x100000ull
#define MEMSZ 0x10000ull

struct fx {
	struct testsrv *ts;
	struct vfurt_dev *dev[2];
	struct testdev_stats *st[2];
	struct vfurt_client *c;
	int memfd;
	int fds_before;
	int mode;
};

static const char *cores(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? "0-1" : "0";
}

static int setup_mode(void **state, int mode)
{
	struct testdev_opts o = { .queues = 2 };
	struct fx *f = calloc(1, sizeof(*f));

	f->fds_before = test_count_fds();
	f->mode = mode;
	f->dev[0] = testdev_create("rt0", &o, &f->st[0]);
	f->dev[1] = testdev_create("rt1", &o, &f->st[1]);
	f->ts = testsrv_start_rt(f->dev, 2, NULL, cores(), mode);
	f->c = it_connect(testsrv_path(f->ts, 0), 0);
	assert_non_null(f->c);
	f->memfd = it_memfd(MEMSZ);
	*state = f;
	return 0;
}

static int setup_busy(void **state)
{
	return setup_mode(state, VFURT_POLL_BUSY);
}

static int setup_adaptive(void **state)
{
	return setup_mode(state, VFURT_POLL_ADAPTIVE);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	vfurt_client_close(f->c);
	testsrv_stop(f->ts);
	close(f->memfd);
	testdev_stats_free(f->st[0]);
	testdev_stats_free(f->st[1]);
	/* the runtime left no fd behind (sockets, eventfds, io_uring) */
	assert_int_equal(test_count_fds(), f->fds_before);
	free(f);
	return 0;
}

static void test_basic_io(void **state)
{
	struct fx *f = *state;
	struct vfio_user_device_info info;
	uint8_t buf[4096];
	uint64_t v;

	assert_int_equal(vfurt_client_device_info(f->c, &info), 0);
	assert_int_equal(info.num_regions, TD_REGION_DEVSPEC + 1);
	assert_int_equal(it_wr64(f->c, VFURT_REGION_BAR0, 0x10, 0x1122334455667788ull), 0);
	assert_int_equal(it_rd64(f->c, VFURT_REGION_BAR0, 0x10, &v), 0);
	assert_int_equal(v, 0x1122334455667788ull);
	it_fill(buf, sizeof(buf), 7);
	assert_int_equal(vfurt_client_region_write(f->c, VFURT_REGION_BAR1, 0x100, buf,
						   sizeof(buf)), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(vfurt_client_region_read(f->c, VFURT_REGION_BAR1, 0x100, buf,
						  sizeof(buf)), 0);
	assert_true(it_check(buf, sizeof(buf), 7));
}

/* Pipelined posted writes then one read: every write applied, in order. */
static void test_pipelined_posted(void **state)
{
	struct fx *f = *state;
	uint32_t v;

	for (uint32_t i = 0; i < 500; i++)
		assert_int_equal(vfurt_client_region_write_posted(f->c, VFURT_REGION_BAR0, 0x20,
								  &i, 4), 0);
	assert_int_equal(it_rd32(f->c, VFURT_REGION_BAR0, 0x20, &v), 0);
	assert_int_equal(v, 499);
}

/* Queues run on the workers the runtime chose and translate guest memory. */
static void test_queues_translate(void **state)
{
	struct fx *f = *state;
	unsigned want = sysconf(_SC_NPROCESSORS_ONLN) >= 2 ? 3u : 1u;

	assert_int_equal(vfurt_client_dma_map(f->c, IOVA, MEMSZ, f->memfd, 0,
					      VFIO_USER_DMA_MAP_FLAG_READ |
					      VFIO_USER_DMA_MAP_FLAG_WRITE,
					      VFURT_CLIENT_DMA_SEND_FD), 0);
	assert_int_equal(it_wr64(f->c, VFURT_REGION_BAR0, TD_REG_Q_LEN, 512), 0);
	assert_int_equal(it_wr64(f->c, VFURT_REGION_BAR0, TD_REG_Q_IOVA, IOVA + 0x1000), 0);
	for (int i = 0; i < 5000 && atomic_load(&f->st[0]->queue_polls) < 1000; i++)
		usleep(1000);
	assert_true(atomic_load(&f->st[0]->queue_polls) >= 1000);
	/* queue 0 on worker 0, queue 1 on worker 1 (i mod n) */
	for (int i = 0; i < 5000 && (atomic_load(&f->st[0]->queue_workers) & want) != want; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&f->st[0]->queue_workers) & want, want);

	/* unmap while the queues poll: they see no window, nothing crashes */
	assert_int_equal(vfurt_client_dma_unmap(f->c, IOVA, MEMSZ, 0), 0);
	{
		unsigned long m = atomic_load(&f->st[0]->queue_misses);

		for (int i = 0; i < 5000 && atomic_load(&f->st[0]->queue_misses) <= m + 10; i++)
			usleep(1000);
		assert_true(atomic_load(&f->st[0]->queue_misses) > m + 10);
	}
	assert_true(it_alive(f->c));
}

/* DMA map/unmap churn on the home worker while other workers translate. */
static void test_dma_churn(void **state)
{
	struct fx *f = *state;

	assert_int_equal(it_wr64(f->c, VFURT_REGION_BAR0, TD_REG_Q_LEN, 64), 0);
	assert_int_equal(it_wr64(f->c, VFURT_REGION_BAR0, TD_REG_Q_IOVA, IOVA), 0);
	for (int i = 0; i < 300; i++) {
		assert_int_equal(vfurt_client_dma_map(f->c, IOVA, MEMSZ, f->memfd, 0,
						      VFIO_USER_DMA_MAP_FLAG_READ,
						      VFURT_CLIENT_DMA_SEND_FD), 0);
		assert_int_equal(vfurt_client_dma_unmap(f->c, IOVA, MEMSZ, 0), 0);
	}
	assert_int_equal(atomic_load(&f->st[0]->dma_map), 300);
	assert_int_equal(atomic_load(&f->st[0]->dma_unmap), 300);
	assert_true(it_alive(f->c));
}

static void test_irq_batched(void **state)
{
	struct fx *f = *state;
	struct vfurt_worker_stats ws = { .stats_size = sizeof(ws) };
	uint64_t written = 0;
	int efd = it_eventfd();

	assert_int_equal(it_msix_enable(f->c, TD_MSIX_VECTORS), 0);
	assert_int_equal(vfurt_client_set_irqs_eventfd(f->c, VFURT_IRQ_MSIX, 0, 1, &efd,
						       VFIO_IRQ_SET_ACTION_TRIGGER), 0);
	assert_int_equal(it_irq_fire(f->c, VFURT_IRQ_MSIX, 0), 0);
	assert_true(it_readable(efd, IT_TIMEOUT_MS));
	assert_true(it_eventfd_take(efd) >= 1);
	/* the counter is bumped right after the eventfd write: allow a moment */
	for (int tries = 0; tries < 2000 && written == 0; tries++) {
		written = 0;
		for (uint32_t i = 0; i < vfurt_runtime_worker_count(testsrv_runtime(f->ts)); i++) {
			assert_int_equal(vfurt_runtime_get_worker_stats(testsrv_runtime(f->ts), i, &ws),
					 0);
			written += ws.irqs_written;
		}
		if (!written)
			usleep(1000);
	}
	assert_true(written >= 1);
	close(efd);
}

static void test_ioeventfd_handler(void **state)
{
	struct fx *f = *state;
	struct vfurt_client_io_fds io;
	uint64_t one = 1;

	assert_int_equal(vfurt_client_region_io_fds(f->c, VFURT_REGION_BAR2, &io), 0);
	assert_int_equal(io.count, 1);
	assert_int_equal(io.subs[0].type, VFIO_USER_IO_FD_TYPE_IOEVENTFD);
	assert_int_equal(io.subs[0].offset, TD_BAR2_IOEVENTFD);
	/* the client plays KVM: a guest write signals the fd, no message */
	assert_int_equal(write(io.fds[io.subs[0].fd_index], &one, sizeof(one)), sizeof(one));
	assert_int_equal(it_wait_ctr(&f->st[0]->ioevents, 1), 1);
	vfurt_client_io_fds_release(&io);
}

static void test_ioregionfd(void **state)
{
	struct fx *f = *state;
	struct vfurt_client_io_fds io;
	struct vfio_user_ioregionfd_cmd cmd = { 0 };
	struct vfio_user_ioregionfd_resp resp;
	uint32_t v = 0;
	int fd;

	assert_int_equal(vfurt_client_region_io_fds(f->c, TD_REGION_DEVSPEC, &io), 0);
	assert_int_equal(io.count, 1);
	assert_int_equal(io.subs[0].type, VFIO_USER_IO_FD_TYPE_IOREGIONFD);
	assert_int_equal(io.subs[0].offset, TD_IOREGION_OFF);
	assert_int_equal(io.subs[0].size, TD_IOREGION_SIZE);
	assert_int_equal(io.subs[0].datamatch_or_user_data, TD_IOREGION_USER_DATA);
	fd = io.fds[io.subs[0].fd_index];

	/* a non-posted 4-byte write, then a read back, as KVM would send them */
	cmd.info = VFIO_USER_IOREGIONFD_INFO(VFIO_USER_IOREGIONFD_CMD_WRITE, 2, 1);
	cmd.user_data = TD_IOREGION_USER_DATA;
	cmd.offset = 0x10;
	cmd.data = 0xcafef00d;
	assert_int_equal(send(fd, &cmd, sizeof(cmd), 0), sizeof(cmd));
	assert_true(it_readable(fd, IT_TIMEOUT_MS));
	assert_int_equal(recv(fd, &resp, sizeof(resp), 0), sizeof(resp));
	cmd.info = VFIO_USER_IOREGIONFD_INFO(VFIO_USER_IOREGIONFD_CMD_READ, 2, 0);
	cmd.data = 0;
	assert_int_equal(send(fd, &cmd, sizeof(cmd), 0), sizeof(cmd));
	assert_true(it_readable(fd, IT_TIMEOUT_MS));
	assert_int_equal(recv(fd, &resp, sizeof(resp), 0), sizeof(resp));
	assert_int_equal(resp.data, 0xcafef00d);
	/* the same register through a message */
	assert_int_equal(it_rd32(f->c, TD_REGION_DEVSPEC, TD_IOREGION_OFF + 0x10, &v), 0);
	assert_int_equal(v, 0xcafef00d);

	/* out of the sub-region: answered with all ones, the server keeps going */
	cmd.offset = TD_IOREGION_SIZE;
	assert_int_equal(send(fd, &cmd, sizeof(cmd), 0), sizeof(cmd));
	assert_true(it_readable(fd, IT_TIMEOUT_MS));
	assert_int_equal(recv(fd, &resp, sizeof(resp), 0), sizeof(resp));
	assert_int_equal(resp.data, ~0ull);
	vfurt_client_io_fds_release(&io);
	assert_true(it_alive(f->c));
}

/* Garbage on one device does not disturb the other, served by another worker. */
static void test_garbage_isolated(void **state)
{
	struct fx *f = *state;
	struct vfurt_client *c2 = it_connect(testsrv_path(f->ts, 1), 0);
	static const uint8_t junk[16] = { 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0 };
	uint64_t v;

	assert_non_null(c2);
	assert_int_equal(vfurt_client_send_raw(c2, junk, sizeof(junk), NULL, 0), 0);
	assert_true(it_server_closed(c2));
	vfurt_client_close(c2);
	assert_int_equal(it_wr64(f->c, VFURT_REGION_BAR0, 0x18, 42), 0);
	assert_int_equal(it_rd64(f->c, VFURT_REGION_BAR0, 0x18, &v), 0);
	assert_int_equal(v, 42);
}

static void test_stats_json(void **state)
{
	struct fx *f = *state;
	char *js = vfurt_runtime_stats_json(testsrv_runtime(f->ts));

	assert_non_null(js);
	assert_non_null(strstr(js, "\"workers\""));
	assert_non_null(strstr(js, "\"name\":\"rt0\""));
	assert_non_null(strstr(js, "\"queues\""));
	free(js);
}

/* Disconnect and reconnect: state kept, queues re-created on attach. */
static void test_reconnect(void **state)
{
	struct fx *f = *state;
	uint64_t v;

	assert_int_equal(it_wr64(f->c, VFURT_REGION_BAR0, 0x30, 77), 0);
	vfurt_client_close(f->c);
	f->c = it_reconnect(testsrv_path(f->ts, 0), 0);
	assert_non_null(f->c);
	assert_int_equal(it_rd64(f->c, VFURT_REGION_BAR0, 0x30, &v), 0);
	assert_int_equal(v, 77);
	assert_int_equal(atomic_load(&f->st[0]->attach), 2);
}

#define RT_TESTS(setup)                                                       \
	cmocka_unit_test_setup_teardown(test_basic_io, setup, teardown),      \
	cmocka_unit_test_setup_teardown(test_pipelined_posted, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_queues_translate, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_dma_churn, setup, teardown),     \
	cmocka_unit_test_setup_teardown(test_irq_batched, setup, teardown),   \
	cmocka_unit_test_setup_teardown(test_ioeventfd_handler, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_ioregionfd, setup, teardown),    \
	cmocka_unit_test_setup_teardown(test_garbage_isolated, setup, teardown), \
	cmocka_unit_test_setup_teardown(test_stats_json, setup, teardown),    \
	cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown)

int main(void)
{
	const struct CMUnitTest busy[] = { RT_TESTS(setup_busy) };
	const struct CMUnitTest adaptive[] = { RT_TESTS(setup_adaptive) };
	int rc;

	rc = cmocka_run_group_tests_name("busy", busy, NULL, NULL);
	rc += cmocka_run_group_tests_name("adaptive", adaptive, NULL, NULL);
	return rc;
}
