/* Integration tests of NVMe persistence: a file namespace across controllers and daemon runs. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <cmocka.h>

#include <vfurt/bdev.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "hostsim/nvme_host.h"
#include "common/skip.h"

static struct vfurt_bdev *last_file_bdev;

static struct vfurt_dev *make_file_ctrl(const char *path)
{
	struct vfurt_bdev_file_opts fo = { .opts_size = sizeof(fo), .path = path,
					   .block_size = 4096, .size_bytes = 4u << 20,
					   .create = 1 };
	struct vfurt_bdev *b = vfurt_bdev_file_create(&fo);

	assert_non_null(b);
	last_file_bdev = b;
	return nvme_fx_ctrl("nvmef", b, NULL);
}

static void test_file_durability(void **state)
{
	struct nvme_fx *f = *state;
	struct vfurt_dev *dev;
	uint8_t *buf;
	size_t len = 16 * 4096;

	/* the fixture's server is not used here: replace it */
	nh_close(f->h);
	testsrv_stop(f->ts);
	snprintf(f->file, sizeof(f->file), "/tmp/vfurt-nvme-%d.img", (int)getpid());
	unlink(f->file);

	dev = make_file_ctrl(f->file);
	f->ts = testsrv_start(&dev, 1, NULL);
	assert_non_null(f->ts);
	f->h = nvme_fx_host_io(f, 0, NULL, true);
	buf = nh_alloc(f->h, len);
	it_fill(buf, len, 4242);
	assert_int_equal(nh_write(f->h, 1, 1, 100, 16, buf, len, NULL), 0);
	assert_int_equal(nh_flush(f->h, 1, 1), 0);
	{
		/* a Write with FUA on a volatile write cache is followed by a
		 * flush before it completes */
		struct nh_io io = { .opc = NH_CMD_WRITE, .nsid = 1, .slba = 200, .nlb = 1,
				    .buf = buf, .len = 4096, .cdw12 = 1u << 30 };
		struct vfurt_bdev_stats st0 = { .stats_size = sizeof(st0) };
		struct vfurt_bdev_stats st1 = { .stats_size = sizeof(st1) };

		assert_int_equal(vfurt_bdev_get_stats(last_file_bdev, &st0), 0);
		assert_int_equal(nh_io(f->h, 1, &io, NULL), 0);
		assert_int_equal(vfurt_bdev_get_stats(last_file_bdev, &st1), 0);
		assert_int_equal(st1.writes, st0.writes + 1);
		assert_int_equal(st1.flushes, st0.flushes + 1);
	}
	nh_close(f->h);
	testsrv_stop(f->ts);

	/* a new controller on the same file sees the data */
	dev = make_file_ctrl(f->file);
	f->ts = testsrv_start(&dev, 1, NULL);
	assert_non_null(f->ts);
	f->h = nvme_fx_host_io(f, 0, NULL, true);
	buf = nh_alloc(f->h, len);
	assert_int_equal(nh_read(f->h, 1, 1, 100, 16, buf, len, NULL), 0);
	assert_true(it_check(buf, len, 4242));
	nh_free(f->h, buf, len);
}

/* A host with I/O pair 1 on the daemon's controller. */
static struct nvme_host *daemon_host(const char *sock)
{
	struct nvme_host *h = nh_open(sock, NULL);

	/* the socket file appears at bind(), a moment before listen(): a
	 * connect in between is refused (a slow, sanitized daemon widens it) */
	for (int i = 0; !h && i < 250; i++) {
		usleep(20000);
		h = nh_open(sock, NULL);
	}
	assert_non_null(h);
	assert_int_equal(nh_enable(h), 0);
	assert_int_equal(nh_set_num_queues(h, NFX_MAX_IOQ, NFX_MAX_IOQ, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, NFX_QENT, 1), 0);
	return h;
}

/* Start the vfu-rt daemon serving one file-backed NVMe controller on sock. */
static pid_t daemon_start(const char *sock, const char *file)
{
	char dev[512];
	pid_t parent = getpid();
	pid_t pid;

	snprintf(dev, sizeof(dev), "nvme,socket=%s,backend=file:%s,size=4M,lba=4096,queues=2",
		 sock, file);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		/* a failed assertion in the test must not leave a daemon behind
		 * (holding the test's output pipe open) */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(126);

		if (!getenv("VFURT_TEST_VERBOSE") && null >= 0)
			dup2(null, 2);
		execl(VFURT_BUILD_DIR "/vfu-rt", "vfu-rt", "--cores=0", "--poll=adaptive",
		      "--device", dev, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(sock, F_OK) != 0; i++)
		usleep(10000);
	assert_int_equal(access(sock, F_OK), 0);
	return pid;
}

static void daemon_stop(pid_t pid, const char *sock)
{
	int status = 0;

	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_not_equal(access(sock, F_OK), 0); /* socket removed */
}

/* The durability check end to end: write through the daemon, stop it
 * with SIGTERM, start it again on the same file, read the data back. */
static void test_daemon_durability(void **state)
{
	struct nvme_fx *f = *state;
	char sock[128];
	uint8_t *buf;
	size_t len = 8 * 4096;
	pid_t pid;

	if (access(VFURT_BUILD_DIR "/vfu-rt", X_OK) != 0)
		test_skip("no daemon at " VFURT_BUILD_DIR "/vfu-rt (not built)");
	snprintf(sock, sizeof(sock), "/tmp/vfurt-nvme-d%d.sock", (int)getpid());
	snprintf(f->file, sizeof(f->file), "/tmp/vfurt-nvme-d%d.img", (int)getpid());
	unlink(f->file);

	pid = daemon_start(sock, f->file);
	{
		struct nvme_host *h = daemon_host(sock);

		buf = nh_alloc(h, len);
		it_fill(buf, len, 777);
		assert_int_equal(nh_write(h, 1, 1, 64, 8, buf, len, NULL), 0);
		assert_int_equal(nh_flush(h, 1, 1), 0);
		assert_int_equal(nh_shutdown(h), 0);
		nh_close(h);
	}
	daemon_stop(pid, sock);

	pid = daemon_start(sock, f->file);
	{
		struct nvme_host *h = daemon_host(sock);

		buf = nh_alloc(h, len);
		assert_int_equal(nh_read(h, 1, 1, 64, 8, buf, len, NULL), 0);
		assert_true(it_check(buf, len, 777));
		nh_close(h);
	}
	daemon_stop(pid, sock);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, nvme_fx_setup, nvme_fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_file_durability),
		T(test_daemon_durability),
#undef T
	};

	nvme_fx_filters();
	return test_run_group("integration: NVMe persistence", tests, NULL, NULL);
}
