/* Queue placement hints in the runtime: VFURT_QUEUE_HOME on the device's home worker, keys mod n. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <json-c/json.h>

#include <vfurt/bdev.h>
#include <vfurt/nvme.h>
#include <vfurt/runtime.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "hostsim/nvme_host.h"

#define QENT 32u

struct fx {
	struct testsrv *ts;
	struct nvme_host *h[2]; /* controller i homed on worker i */
	int fds_before;
};

static struct vfurt_dev *make_ctrl(const char *name)
{
	return nvme_fx_small_ctrl(name, 512, 1u << 20, 256);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct vfurt_dev *devs[2];

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		free(f);
		skip(); /* the home worker differs from worker 0 only with two workers */
	}
	f->fds_before = test_count_fds();
	devs[0] = make_ctrl("nvmeA");
	devs[1] = make_ctrl("nvmeB");
	assert_non_null(devs[0]);
	assert_non_null(devs[1]);
	/* round robin: A is homed on worker 0, B on worker 1 */
	f->ts = testsrv_start_rt(devs, 2, NULL, "0-1", VFURT_POLL_ADAPTIVE);
	assert_non_null(f->ts);
	for (int i = 0; i < 2; i++) {
		f->h[i] = nh_open(testsrv_path(f->ts, (size_t)i), NULL);
		assert_non_null(f->h[i]);
		assert_int_equal(nh_enable(f->h[i]), 0);
		assert_int_equal(nh_set_num_queues(f->h[i], 4, 4, NULL), 0);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	nh_close(f->h[0]);
	nh_close(f->h[1]);
	testsrv_stop(f->ts);
	it_check_fds(f->fds_before);
	free(f);
	return 0;
}

static int64_t get_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	assert_true(json_object_object_get_ex(o, key, &v));
	return json_object_get_int64(v);
}

/* The stats document's worker of device dev's queue number i, in the order
 * the device added the queues that it still has (-1: none). */
static int64_t queue_worker(struct json_object *root, size_t dev, size_t i)
{
	struct json_object *devs, *d, *qs, *q;

	assert_true(json_object_object_get_ex(root, "devices", &devs));
	d = json_object_array_get_idx(devs, dev);
	assert_non_null(d);
	assert_true(json_object_object_get_ex(d, "queues", &qs));
	q = json_object_array_get_idx(qs, i);
	return q ? get_int(q, "worker") : -1;
}

/*
 * The NVMe admin queue (the device's first queue, VFURT_QUEUE_HOME) runs on
 * the home worker, also for the controller homed away from worker 0; an
 * I/O queue pair (key: its CQ id) on worker qid mod n, whatever the home.
 */
static void test_home_and_keys(void **state)
{
	struct fx *f = *state;
	struct json_object *root, *devs;
	char *js;

	/* B: qid 2 on worker 0, qid 1 on worker 1; A: qid 1 on worker 1 */
	assert_int_equal(nh_create_io_pair(f->h[1], 2, QENT, 2), 0);
	assert_int_equal(nh_create_io_pair(f->h[1], 1, QENT, 1), 0);
	assert_int_equal(nh_create_io_pair(f->h[0], 1, QENT, 1), 0);
	js = vfurt_runtime_stats_json(testsrv_runtime(f->ts));
	assert_non_null(js);
	root = json_tokener_parse(js);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "devices", &devs));
	assert_int_equal(get_int(json_object_array_get_idx(devs, 0), "home_worker"), 0);
	assert_int_equal(get_int(json_object_array_get_idx(devs, 1), "home_worker"), 1);
	/* queue 0 of each device is its admin queue, added on attach */
	assert_int_equal(queue_worker(root, 0, 0), 0);
	assert_int_equal(queue_worker(root, 1, 0), 1);
	/* then the I/O pairs in creation order: B's qid 2 and 1, A's qid 1 */
	assert_int_equal(queue_worker(root, 1, 1), 0);
	assert_int_equal(queue_worker(root, 1, 2), 1);
	assert_int_equal(queue_worker(root, 0, 1), 1);
	json_object_put(root);
	free(js);
	/* and serve I/O there, away from the home worker (one pair only: two
	 * workers copying into the same guest buffer, ordered by CQEs in guest
	 * memory, look like a race to TSan) */
	assert_int_equal(nh_write_read_check(f->h[1], 2, 1, 0, 512, 0x5a, NULL, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_home_and_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
