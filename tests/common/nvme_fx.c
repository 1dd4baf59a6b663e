/* NVMe integration fixture: controllers on real sockets, test hosts attached, leaks checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/nvme.h>
#include <vfurt/runtime.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"

struct nvme_fx *nvme_fx_new(void **state)
{
	struct nvme_fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->fd = -1;
	f->fds_before = test_count_fds();
	*state = f;
	return f;
}

void nvme_fx_serve(struct nvme_fx *f, struct vfurt_dev **devs, size_t n, const char *cores,
		   int mode)
{
	for (size_t i = 0; i < n; i++)
		assert_non_null(devs[i]);
	f->ts = cores ? testsrv_start_rt(devs, n, NULL, cores, mode) : testsrv_start(devs, n, NULL);
	assert_non_null(f->ts);
}

struct nvme_host *nvme_fx_host(struct nvme_fx *f, size_t i, const struct nvme_host_opts *ho)
{
	struct nvme_host *h = nh_open(testsrv_path(f->ts, i), ho);

	assert_non_null(h);
	assert_int_equal(nh_enable(h), 0);
	return h;
}

int nvme_fx_teardown(void **state)
{
	struct nvme_fx *f = *state;
	int rc;

	if (!f)
		return 0;
	nh_close(f->h);
	nh_close(f->h2);
	if (f->fd >= 0)
		close(f->fd);
	if (f->ts)
		testsrv_stop(f->ts);
	if (f->file[0])
		unlink(f->file);
	/* no socket, eventfd, memfd or bdev fd left behind */
	rc = it_check_fds(f->fds_before);
	free(f);
	return rc;
}

void nvme_fx_filters(void)
{
	if (getenv("NVME_TEST"))
		cmocka_set_test_filter(getenv("NVME_TEST"));
	if (getenv("NVME_SKIP"))
		cmocka_set_skip_filter(getenv("NVME_SKIP"));
}

/* ---- the standard test controller ------------------------------------------------ */

/* vfurt_nvme_create(o) with the test log of o->name; asserts. */
static struct vfurt_dev *create_ctrl(struct vfurt_nvme_opts *o)
{
	struct vfurt_dev *dev;

	o->log = it_dev_log(o->name);
	dev = vfurt_nvme_create(o);
	assert_non_null(dev);
	return dev;
}

struct vfurt_dev *nvme_fx_ctrl(const char *name, struct vfurt_bdev *b1, struct vfurt_bdev *b2)
{
	struct vfurt_bdev *ns[2] = { b1, b2 };
	struct vfurt_nvme_opts o = {
		.opts_size = sizeof(o),
		.name = name,
		.serial = NFX_SERIAL,
		.model = NFX_MODEL,
		.max_io_queues = NFX_MAX_IOQ,
		.max_queue_entries = 1024,
		.ns = ns,
		.nr_ns = b2 ? 2 : 1,
		.own_bdevs = true,
	};

	assert_non_null(b1);
	return create_ctrl(&o);
}

struct vfurt_dev *nvme_fx_ram_ctrl(void)
{
	struct vfurt_bdev *b1 = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "ns1",
		.block_size = NFX_NS1_BS, .size_bytes = NFX_NS1_SIZE });
	struct vfurt_bdev *b2 = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "ns2",
		.block_size = NFX_NS2_BS, .size_bytes = NFX_NS2_SIZE });

	assert_non_null(b1);
	assert_non_null(b2);
	return nvme_fx_ctrl("nvme0", b1, b2);
}

struct nvme_host *nvme_fx_host_io(struct nvme_fx *f, size_t i, const struct nvme_host_opts *ho,
				  bool ioq)
{
	struct nvme_host *h = nvme_fx_host(f, i, ho);

	if (ioq) {
		assert_int_equal(nh_set_num_queues(h, NFX_MAX_IOQ, NFX_MAX_IOQ, NULL), 0);
		assert_int_equal(nh_create_io_pair(h, 1, NFX_QENT, 1), 0);
	}
	return h;
}

static int setup_std(void **state, const struct nvme_host_opts *ho, bool rt)
{
	struct nvme_fx *f = nvme_fx_new(state);
	struct vfurt_dev *dev = nvme_fx_ram_ctrl();

	nvme_fx_serve(f, &dev, 1, rt ? it_cores() : NULL, VFURT_POLL_ADAPTIVE);

	f->h = nvme_fx_host_io(f, 0, ho, true);
	return 0;
}

int nvme_fx_setup(void **state)
{
	return setup_std(state, NULL, false);
}

int nvme_fx_setup_rt(void **state)
{
	return setup_std(state, NULL, true);
}

int nvme_fx_setup_db_msg(void **state)
{
	struct nvme_host_opts ho = { .doorbell_msg = true };

	return setup_std(state, &ho, false);
}

int nvme_fx_setup_irq(void **state)
{
	struct nvme_host_opts ho = { .irq_wait = true };

	return setup_std(state, &ho, false);
}

void nvme_fx_good_io_at(struct nvme_host *h, uint16_t qid, uint32_t seed, int line)
{
	int wst, rst;

	if (nh_write_read_check(h, qid, 1, 7, NFX_NS1_BS, seed, &wst, &rst))
		fail_msg("good I/O on queue %u (line %d): write %#x read %#x (or data differ)",
			 qid, line, wst, rst);
}

void nvme_fx_rw_verify(struct nvme_host *h, uint16_t qid, uint32_t nsid, uint32_t bs,
		       uint64_t slba, size_t len, size_t buf_off, const struct nh_dptr_opts *dp,
		       const struct nh_dptr_opts *rdp, uint32_t seed)
{
	size_t alloc = len + buf_off + NH_PAGE;
	uint8_t *w = nh_alloc(h, alloc);
	uint8_t *r = nh_alloc(h, alloc);
	uint32_t nlb = (uint32_t)(len / bs);

	assert_non_null(w);
	assert_non_null(r);
	it_fill(w + buf_off, len, seed);
	assert_int_equal(nh_write(h, qid, nsid, slba, nlb, w + buf_off, len, dp), 0);
	assert_int_equal(nh_read(h, qid, nsid, slba, nlb, r + buf_off, len, rdp), 0);
	if (!it_check(r + buf_off, len, seed))
		fail_msg("data mismatch: ns %u slba %llu len %zu off %zu", nsid,
			 (unsigned long long)slba, len, buf_off);
	nh_free(h, w, alloc);
	nh_free(h, r, alloc);
}

struct vfurt_dev *nvme_fx_small_ctrl(const char *name, uint32_t bs, uint64_t size, uint32_t qent)
{
	struct vfurt_bdev *b = vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
		.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "ns1", .block_size = bs,
		.size_bytes = size });
	struct vfurt_nvme_opts o = {
		.opts_size = sizeof(o),
		.name = name,
		.max_io_queues = 4,
		.max_queue_entries = qent,
		.ns = &b,
		.nr_ns = 1,
		.own_bdevs = true,
	};

	assert_non_null(b);
	return create_ctrl(&o);
}
