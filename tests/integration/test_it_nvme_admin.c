/* Integration tests of the NVMe admin command set: mandatory features, log pages, identifiers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <vfurt/bdev.h>
#include <vfurt/nvme.h>

#include "common/it_util.h"
#include "common/nvme_fx.h"
#include "hostsim/nvme_host.h"
#include "common/testsrv.h"

#define MAX_IOQ 4u
#define QENT 32u
#define NR_NS 2u

/* status codes the shared host header does not name */
#define SC_FEAT_NOT_SAVEABLE NH_SC(1, 0x0d)

/* the OUI the controller reports (devices/nvme/nvme_internal.h) */
#define OUI0 0x02u
#define OUI1 0x56u
#define OUI2 0x46u

struct ctrl_cfg {
	const char *name;
	const char *serial;   /* NULL: the default */
	const char *identity; /* NULL: name */
};

static struct vfurt_dev *make_ctrl(const struct ctrl_cfg *cfg)
{
	struct vfurt_bdev *ns[NR_NS] = {
		vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
			.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "ns1",
			.block_size = 512, .size_bytes = 4u << 20 }),
		vfurt_bdev_ram_create(&(struct vfurt_bdev_ram_opts){
			.opts_size = sizeof(struct vfurt_bdev_ram_opts), .name = "ns2",
			.block_size = 4096, .size_bytes = 8u << 20 }),
	};
	struct vfurt_nvme_opts o = {
		.opts_size = sizeof(o),
		.name = cfg->name,
		.serial = cfg->serial,
		.identity = cfg->identity,
		.max_io_queues = MAX_IOQ,
		.ns = ns,
		.nr_ns = NR_NS,
		.own_bdevs = true,
	};
	struct vfurt_dev *dev;

	assert_non_null(ns[0]);
	assert_non_null(ns[1]);
	o.log = it_dev_log(cfg->name);
	dev = vfurt_nvme_create(&o);
	assert_non_null(dev);
	return dev;
}

static struct nvme_host *host_up(const char *path)
{
	struct nvme_host *h = nh_open(path, NULL);

	assert_non_null(h);
	assert_int_equal(nh_enable(h), 0);
	return h;
}

static int setup(void **state)
{
	static const struct ctrl_cfg cfg = { .name = "nvme-admin" };
	struct nvme_fx *f = nvme_fx_new(state);
	struct vfurt_dev *dev = make_ctrl(&cfg);

	nvme_fx_serve(f, &dev, 1, NULL, 0);
	f->h = nvme_fx_host(f, 0, NULL);
	return 0;
}

/* ---- features ---------------------------------------------------------------- */

/* Get Features with SEL (0 current, 1 default, 2 saved, 3 capabilities). */
static int getf(struct nvme_host *h, uint8_t fid, uint32_t sel, uint32_t nsid, uint32_t cdw11,
		uint32_t *dw0)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_GET_FEATURES, .nsid = nsid,
			      .cdw10 = fid | sel << 8, .cdw11 = cdw11 };
	struct nh_cqe cqe;
	int rc = nh_admin(h, &sqe, &cqe);

	if (rc >= 0 && dw0)
		*dw0 = cqe.dw0;
	return rc;
}

static int setf(struct nvme_host *h, uint8_t fid, uint32_t nsid, uint32_t cdw11, bool save)
{
	struct nh_sqe sqe = { .cdw0 = NH_ADM_SET_FEATURES, .nsid = nsid,
			      .cdw10 = fid | (save ? 1u << 31 : 0u), .cdw11 = cdw11 };

	return nh_admin(h, &sqe, NULL);
}

/* Set, then Get must show `want`. */
static void set_get(struct nvme_host *h, uint8_t fid, uint32_t v, uint32_t get_cdw11,
		    uint32_t want)
{
	uint32_t dw0 = 0xdeadbeefu;

	assert_int_equal(setf(h, fid, 0, v, false), 0);
	assert_int_equal(getf(h, fid, 0, 0, get_cdw11, &dw0), 0);
	assert_int_equal(dw0, want);
}

/* Every feature NVMe 2.0 makes mandatory for an I/O controller answers
 * Get with each SEL value, refuses SEL 4-7 and the Save bit. */
static void test_features_mandatory_present(void **state)
{
	static const uint8_t fids[] = { 0x01, 0x02, 0x04, 0x05, 0x07, 0x08, 0x09, 0x0a, 0x0b };
	struct nvme_fx *f = *state;
	uint32_t dw0;

	for (size_t i = 0; i < sizeof(fids); i++) {
		for (uint32_t sel = 0; sel <= 3; sel++) {
			dw0 = 0xdeadbeefu;
			assert_int_equal(getf(f->h, fids[i], sel, 0, 0, &dw0), 0);
			if (sel == 3)
				assert_int_equal(dw0, 1u << 2); /* changeable only */
		}
		assert_int_equal(getf(f->h, fids[i], 4, 0, 0, &dw0), NH_SC_INVALID_FIELD);
		assert_int_equal(getf(f->h, fids[i], 7, 0, 0, &dw0), NH_SC_INVALID_FIELD);
		assert_int_equal(setf(f->h, fids[i], 0, 0, true), SC_FEAT_NOT_SAVEABLE);
	}
	/* a feature that does not exist */
	assert_int_equal(getf(f->h, 0x6e, 0, 0, 0, &dw0), NH_SC_INVALID_FIELD);
	assert_int_equal(setf(f->h, 0x6e, 0, 0, false), NH_SC_INVALID_FIELD);
}

static void test_feature_arbitration_power_temp(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint32_t dw0;

	/* Arbitration: HPW/MPW/LPW and AB kept, reserved bits 7:3 dropped */
	set_get(h, 0x01, 0x04030207u, 0, 0x04030207u);
	set_get(h, 0x01, 0x000000ffu, 0, 0x00000007u);
	assert_int_equal(getf(h, 0x01, 1, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 0);

	/* Power Management: power state 0 only, workload hints 0-2 */
	set_get(h, 0x02, 0, 0, 0);
	set_get(h, 0x02, 2u << 5, 0, 2u << 5);
	assert_int_equal(setf(h, 0x02, 0, 1, false), NH_SC_INVALID_FIELD);    /* PS 1 */
	assert_int_equal(setf(h, 0x02, 0, 0x1f, false), NH_SC_INVALID_FIELD); /* PS 31 */
	assert_int_equal(setf(h, 0x02, 0, 3u << 5, false), NH_SC_INVALID_FIELD); /* WH */
	assert_int_equal(getf(h, 0x02, 0, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 2u << 5); /* refused sets change nothing */

	/* Temperature Threshold: composite sensor, over and under */
	assert_int_equal(getf(h, 0x04, 0, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 0x157);
	set_get(h, 0x04, 0x160, 0, 0x160);
	set_get(h, 0x04, 1u << 20 | 0x100, 1u << 20, 0x100);
	assert_int_equal(getf(h, 0x04, 0, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 0x160); /* the over threshold is separate */
	/* TMPSEL Fh (all implemented sensors) sets the composite one */
	set_get(h, 0x04, 0xfu << 16 | 0x165, 0, 0x165);
	assert_int_equal(setf(h, 0x04, 0, 1u << 16 | 0x150, false), NH_SC_INVALID_FIELD);
	assert_int_equal(setf(h, 0x04, 0, 2u << 20 | 0x150, false), NH_SC_INVALID_FIELD);
	assert_int_equal(getf(h, 0x04, 0, 0, 1u << 16, &dw0), NH_SC_INVALID_FIELD);
	assert_int_equal(getf(h, 0x04, 0, 0, 3u << 20, &dw0), NH_SC_INVALID_FIELD);
	/* default and saved: the power-on values */
	assert_int_equal(getf(h, 0x04, 1, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 0x157);
	assert_int_equal(getf(h, 0x04, 2, 0, 1u << 20, &dw0), 0);
	assert_int_equal(dw0, 0);
}

static void test_feature_error_recovery(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint32_t dw0 = 0xdeadbeefu;

	/* SPDK's identify asks with NSID 0 */
	assert_int_equal(getf(h, 0x05, 0, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 0);
	/* TLER is kept, for every namespace alike */
	assert_int_equal(setf(h, 0x05, 0, 50, false), 0);
	for (uint32_t nsid = 0; nsid <= NR_NS; nsid++) {
		assert_int_equal(getf(h, 0x05, 0, nsid, 0, &dw0), 0);
		assert_int_equal(dw0, 50);
	}
	assert_int_equal(getf(h, 0x05, 0, 0xffffffffu, 0, &dw0), 0);
	assert_int_equal(dw0, 50);
	assert_int_equal(setf(h, 0x05, 1, 0xffff, false), 0);
	assert_int_equal(getf(h, 0x05, 0, 2, 0, &dw0), 0);
	assert_int_equal(dw0, 0xffff);
	/* DULBE: no namespace reports DAE (Identify Namespace NSFEAT bit 2) */
	for (uint32_t nsid = 1; nsid <= NR_NS; nsid++) {
		uint8_t id[NH_PAGE];

		assert_int_equal(nh_identify(h, NH_CNS_NS, nsid, id), 0);
		assert_int_equal(id[24] & (1u << 2), 0);
	}
	assert_int_equal(setf(h, 0x05, 0, 1u << 16, false), NH_SC_INVALID_FIELD);
	assert_int_equal(setf(h, 0x05, 1, 1u << 16 | 10, false), NH_SC_INVALID_FIELD);
	assert_int_equal(getf(h, 0x05, 0, 1, 0, &dw0), 0);
	assert_int_equal(dw0, 0xffff);
	/* a namespace that does not exist */
	assert_int_equal(setf(h, 0x05, NR_NS + 1, 1, false), NH_SC_INVALID_NS);
	assert_int_equal(getf(h, 0x05, 0, NR_NS + 1, 0, &dw0), NH_SC_INVALID_NS);
	assert_int_equal(getf(h, 0x05, 0, 0xfffffffeu, 0, &dw0), NH_SC_INVALID_NS);
	/* default */
	assert_int_equal(getf(h, 0x05, 1, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 0);
}

static void test_feature_queues_and_interrupts(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint32_t dw0 = 0;

	/* Number of Queues: before any I/O queue, granted up to the maximum */
	assert_int_equal(getf(h, 0x07, 0, 0, 0, &dw0), 0);
	assert_int_equal(dw0, (MAX_IOQ - 1) << 16 | (MAX_IOQ - 1));
	assert_int_equal(nh_set_num_queues(h, 2, 3, &dw0), 0);
	assert_int_equal(dw0, 2u << 16 | 1u);
	assert_int_equal(getf(h, 0x07, 0, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 2u << 16 | 1u);
	assert_int_equal(setf(h, 0x07, 0, 0xffffu, false), NH_SC_INVALID_FIELD);
	assert_int_equal(setf(h, 0x07, 0, 0xffffu << 16, false), NH_SC_INVALID_FIELD);
	assert_int_equal(nh_set_num_queues(h, 64, 64, &dw0), 0);
	assert_int_equal(dw0, (MAX_IOQ - 1) << 16 | (MAX_IOQ - 1));
	assert_int_equal(nh_create_io_pair(h, 1, QENT, 1), 0);
	assert_int_equal(nh_set_num_queues(h, 1, 1, NULL), NH_SC_CMD_SEQ_ERROR);

	/* Interrupt Coalescing: THR and TIME kept */
	set_get(h, 0x08, 0x0a05u, 0, 0x0a05u);
	set_get(h, 0x08, 0, 0, 0);

	/* Interrupt Vector Configuration: IV names one of vectors 0..MAX_IOQ */
	for (uint32_t iv = 0; iv <= MAX_IOQ; iv++) {
		set_get(h, 0x09, 1u << 16 | iv, iv, 1u << 16 | iv);
		assert_int_equal(getf(h, 0x09, 1, 0, iv, &dw0), 0);
		assert_int_equal(dw0, iv); /* default: coalescing allowed */
	}
	set_get(h, 0x09, 2, 2, 2);
	assert_int_equal(getf(h, 0x09, 0, 0, 1, &dw0), 0);
	assert_int_equal(dw0, 1u << 16 | 1u); /* each vector has its own CD */
	assert_int_equal(setf(h, 0x09, 0, MAX_IOQ + 1, false), NH_SC_INVALID_FIELD);
	assert_int_equal(setf(h, 0x09, 0, 1u << 16 | 0xffffu, false), NH_SC_INVALID_FIELD);
	assert_int_equal(getf(h, 0x09, 0, 0, MAX_IOQ + 1, &dw0), NH_SC_INVALID_FIELD);
	assert_int_equal(getf(h, 0x09, 0, 0, 0xffffu, &dw0), NH_SC_INVALID_FIELD);

	/* the queue pair works with all of it */
	assert_int_equal(nh_write_read_check(h, 1, 1, 8, 512, 5, NULL, NULL), 0);
}

static void test_feature_atomicity_async_events(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint32_t dw0 = 0xdeadbeefu;

	/* Write Atomicity Normal: DN */
	assert_int_equal(getf(h, 0x0a, 0, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 0);
	set_get(h, 0x0a, 1, 0, 1);
	assert_int_equal(getf(h, 0x0a, 1, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 0); /* default: normal atomicity required */
	set_get(h, 0x0a, 0, 0, 0);
	set_get(h, 0x0a, 0xfffffffeu, 0, 0); /* reserved bits are not kept */

	/* Asynchronous Event Configuration: SMART warnings and namespace
	 * attribute notices are kept, events we never raise are dropped */
	set_get(h, 0x0b, 1u << 8, 0, 1u << 8);
	set_get(h, 0x0b, 0x1ffu, 0, 0x1ffu);
	set_get(h, 0x0b, 0xffffffffu, 0, 0x1ffu);
	set_get(h, 0x0b, 0, 0, 0);
	assert_int_equal(getf(h, 0x0b, 1, 0, 0, &dw0), 0);
	assert_int_equal(dw0, 0);
}

/* ---- log pages --------------------------------------------------------------- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void test_effects_log(void **state)
{
	static const uint8_t admin[] = { 0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08,
					 0x09, 0x0a, 0x0c, 0x18, 0x7c };
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint8_t id[NH_PAGE], log[NH_PAGE];
	uint16_t oncs;

	assert_int_equal(nh_identify(h, NH_CNS_CTRL, 0, id), 0);
	assert_int_equal(id[261] & 0x6, 0x6); /* LPA: effects log, extended data */
	oncs = (uint16_t)(id[520] | id[521] << 8);
	assert_int_equal(nh_get_log(h, 0x05, 0, false, log, sizeof(log)), 0);

	/* admin: exactly the commands the controller takes, none with effects */
	for (uint32_t opc = 0; opc < 256; opc++) {
		uint32_t e = le32(log + 4 * opc);
		bool listed = memchr(admin, (int)opc, sizeof(admin)) != NULL;

		assert_int_equal(e, listed ? 1u : 0u);
	}
	/* I/O: Flush, Write, Read, and Write Zeroes / DSM as ONCS says;
	 * LBCC on those that write */
	for (uint32_t opc = 0; opc < 256; opc++) {
		uint32_t e = le32(log + 1024 + 4 * opc), want = 0;

		if (opc == 0x00 || opc == 0x02)
			want = 1;
		else if (opc == 0x01)
			want = 3;
		else if (opc == 0x08 && (oncs & (1u << 3)))
			want = 3;
		else if (opc == 0x09 && (oncs & (1u << 2)))
			want = 3;
		assert_int_equal(e, want);
	}
	assert_true(oncs & (1u << 2)); /* RAM namespaces deallocate */
	for (size_t i = 2048; i < sizeof(log); i++)
		assert_int_equal(log[i], 0);

	/* what is not listed is refused as an invalid opcode: admin... */
	for (uint32_t opc = 0; opc < 256; opc++) {
		struct nh_sqe sqe = { .cdw0 = opc };

		if (le32(log + 4 * opc) & 1u)
			continue;
		assert_int_equal(nh_admin(h, &sqe, NULL), NH_SC_INVALID_OPCODE);
	}
	/* ...and I/O */
	assert_int_equal(nh_set_num_queues(h, 1, 1, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, QENT, 1), 0);
	for (uint32_t opc = 0; opc < 256; opc++) {
		struct nh_sqe sqe = { .cdw0 = opc, .nsid = 1 };

		if (le32(log + 1024 + 4 * opc) & 1u)
			continue;
		assert_int_equal(nh_exec(h, 1, &sqe, NULL), NH_SC_INVALID_OPCODE);
	}
	assert_int_equal(nh_write_read_check(h, 1, 1, 0, 512, 9, NULL, NULL), 0);

	/* only the NVM command set's page exists; no index offsets */
	assert_int_equal(nh_get_log_at(h, 0x05, 0, false, 0, 1u << 24, log, sizeof(log)),
			 NH_SC_INVALID_FIELD);
	assert_int_equal(nh_get_log_at(h, 0x05, 0, false, 0, 1u << 23, log, sizeof(log)),
			 NH_SC_INVALID_FIELD);
}

/* Read a whole page, then every 4-aligned offset stepping by `step` with a
 * short length, comparing with the whole; then the bad offsets. */
static void check_offsets(struct nvme_host *h, uint8_t lid, uint32_t nsid, size_t size,
			  size_t step)
{
	uint8_t whole[NH_PAGE], part[NH_PAGE];

	assert_true(size <= sizeof(whole));
	memset(whole, 0xa5, sizeof(whole));
	assert_int_equal(nh_get_log(h, lid, nsid, true, whole, size), 0);
	for (size_t off = 0; off < size; off += step) {
		size_t len = size - off < 64 ? size - off : 64;

		memset(part, 0x5a, sizeof(part));
		assert_int_equal(nh_get_log_at(h, lid, nsid, true, off, 0, part, len), 0);
		assert_memory_equal(part, whole + off, len);
		/* asking for more than is left transfers what is left */
		if (size - off <= NH_PAGE - 64) {
			memset(part, 0x5a, sizeof(part));
			assert_int_equal(nh_get_log_at(h, lid, nsid, true, off, 0, part,
						       size - off + 64), 0);
			assert_memory_equal(part, whole + off, size - off);
		}
	}
	/* not a multiple of 4, at or past the end, LPOU set */
	assert_int_equal(nh_get_log_at(h, lid, nsid, true, 2, 0, part, 64), NH_SC_INVALID_FIELD);
	assert_int_equal(nh_get_log_at(h, lid, nsid, true, 1, 0, part, 4), NH_SC_INVALID_FIELD);
	assert_int_equal(nh_get_log_at(h, lid, nsid, true, size, 0, part, 4),
			 NH_SC_INVALID_FIELD);
	assert_int_equal(nh_get_log_at(h, lid, nsid, true, size + 4, 0, part, 4),
			 NH_SC_INVALID_FIELD);
	assert_int_equal(nh_get_log_at(h, lid, nsid, true, 1ull << 32, 0, part, 4),
			 NH_SC_INVALID_FIELD);
	assert_int_equal(nh_get_log_at(h, lid, nsid, true, 1ull << 63, 0, part, 4),
			 NH_SC_INVALID_FIELD);
	/* index offsets (OT) are not supported */
	assert_int_equal(nh_get_log_at(h, lid, nsid, true, 0, 1u << 23, part, 4),
			 NH_SC_INVALID_FIELD);
}

static void test_log_pages_offsets(void **state)
{
	struct nvme_fx *f = *state;
	struct nvme_host *h = f->h;
	uint8_t id[NH_PAGE], log[512];
	uint32_t elpe;

	assert_int_equal(nh_identify(h, NH_CNS_CTRL, 0, id), 0);
	elpe = id[262];
	assert_int_equal(nh_set_num_queues(h, 1, 1, NULL), 0);
	assert_int_equal(nh_create_io_pair(h, 1, QENT, 1), 0);
	assert_int_equal(nh_write_read_check(h, 1, 1, 0, 512, 3, NULL, NULL), 0);

	/* Error Information: ELPE + 1 entries of 64 bytes */
	check_offsets(h, 0x01, 0xffffffffu, (elpe + 1) * 64u, 4);
	/* SMART / Health Information: 512 bytes, controller-wide */
	check_offsets(h, 0x02, 0xffffffffu, 512, 4);
	check_offsets(h, 0x02, 0, 512, 60);
	assert_int_equal(nh_get_log(h, 0x02, 0xffffffffu, false, log, 512), 0);
	assert_int_equal(log[3], 100);     /* available spare */
	assert_true(log[48] | log[49]);    /* data units written: the write above */
	assert_int_equal(nh_get_log(h, 0x02, 1, false, log, 512), NH_SC_INVALID_FIELD);
	/* Firmware Slot Information: slot 1 active, its revision = Identify FR */
	check_offsets(h, 0x03, 0xffffffffu, 512, 8);
	assert_int_equal(nh_get_log(h, 0x03, 0xffffffffu, false, log, 512), 0);
	assert_int_equal(log[0] & 0x7, 1);
	assert_memory_equal(log + 8, id + 64, 8);
	/* Commands Supported and Effects: 4096 bytes */
	check_offsets(h, 0x05, 0, NH_PAGE, 252);
	/* Changed Namespace List: 4096 bytes */
	check_offsets(h, 0x04, 0xffffffffu, NH_PAGE, 1020);
	/* a page that does not exist */
	assert_int_equal(nh_get_log(h, 0x70, 0xffffffffu, false, log, 64),
			 NH_SC_INVALID_LOG_PAGE);
}

/* ---- identify: controller fields and identifiers ----------------------------- */

struct ids {
	char sn[21];
	uint8_t nguid[NR_NS][16];
	uint8_t eui64[NR_NS][8];
	uint8_t uuid[NR_NS][16];
};

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * Identify Controller and, for each namespace, Identify Namespace (CNS 00h)
 * and the Namespace Identification Descriptor list (CNS 03h): the
 * descriptors must carry the same values, well formed, exactly once.
 */
static void read_ids(struct nvme_host *h, struct ids *out)
{
	uint8_t id[NH_PAGE], d[NH_PAGE];

	memset(out, 0, sizeof(*out));
	assert_int_equal(nh_identify(h, NH_CNS_CTRL, 0, id), 0);
	memcpy(out->sn, id + 4, 20);
	for (uint32_t nsid = 1; nsid <= NR_NS; nsid++) {
		uint8_t *nguid = out->nguid[nsid - 1], *eui = out->eui64[nsid - 1];
		uint8_t *uuid = out->uuid[nsid - 1];
		bool seen[5] = { false };
		size_t off = 0;

		assert_int_equal(nh_identify(h, NH_CNS_NS, nsid, id), 0);
		memcpy(nguid, id + 104, 16);
		memcpy(eui, id + 120, 8);
		assert_false(all_zero(nguid, 16));
		assert_false(all_zero(eui, 8));
		/* both built on the controller's OUI */
		assert_int_equal(nguid[8], OUI0);
		assert_int_equal(nguid[9], OUI1);
		assert_int_equal(nguid[10], OUI2);
		assert_int_equal(eui[0], OUI0);
		assert_int_equal(eui[1], OUI1);
		assert_int_equal(eui[2], OUI2);

		memset(d, 0xa5, sizeof(d));
		assert_int_equal(nh_identify(h, 0x03, nsid, d), 0);
		while (off + 4 <= sizeof(d) && d[off] != 0) {
			uint8_t type = d[off], len = d[off + 1];

			assert_true(type >= 1 && type <= 4);
			assert_false(seen[type]);
			seen[type] = true;
			assert_true(off + 4 + len <= sizeof(d));
			switch (type) {
			case 1:
				assert_int_equal(len, 8);
				assert_memory_equal(d + off + 4, eui, 8);
				break;
			case 2:
				assert_int_equal(len, 16);
				assert_memory_equal(d + off + 4, nguid, 16);
				break;
			case 3:
				assert_int_equal(len, 16);
				memcpy(uuid, d + off + 4, 16);
				break;
			case 4:
				assert_int_equal(len, 1);
				assert_int_equal(d[off + 4], 0); /* NVM command set */
				break;
			default:
				break;
			}
			off += 4u + len;
		}
		assert_true(seen[1] && seen[2] && seen[3] && seen[4]);
		assert_true(all_zero(d + off, sizeof(d) - off));
		assert_false(all_zero(uuid, 16));
		assert_int_equal(uuid[6] >> 4, 4);       /* version 4 */
		assert_int_equal(uuid[8] & 0xc0, 0x80);  /* RFC 4122 variant */
	}
	/* the descriptor list of namespaces that do not exist */
	assert_int_equal(nh_identify(h, 0x03, 0, d), NH_SC_INVALID_NS);
	assert_int_equal(nh_identify(h, 0x03, NR_NS + 1, d), NH_SC_INVALID_NS);
	assert_int_equal(nh_identify(h, 0x03, 0xffffffffu, d), NH_SC_INVALID_NS);
}

/* Serve the controllers of cfgs, read the identifiers of each, stop. */
static void ids_of(const struct ctrl_cfg *cfgs, size_t n, struct ids *out)
{
	struct vfurt_dev *devs[4];
	struct testsrv *ts;

	assert_true(n <= 4);
	for (size_t i = 0; i < n; i++)
		devs[i] = make_ctrl(&cfgs[i]);
	ts = testsrv_start(devs, n, NULL);
	assert_non_null(ts);
	for (size_t i = 0; i < n; i++) {
		struct nvme_host *h = host_up(testsrv_path(ts, i));

		read_ids(h, &out[i]);
		nh_close(h);
	}
	testsrv_stop(ts);
}

static bool sn_printable(const char *sn)
{
	for (int i = 0; i < 20; i++)
		if (sn[i] < 0x20 || sn[i] > 0x7e)
			return false;
	return sn[0] != ' ';
}

static void test_identify_ctrl_fields(void **state)
{
	struct nvme_fx *f = *state;
	uint8_t id[NH_PAGE];
	char nqn[257] = { 0 };

	assert_int_equal(nh_identify(f->h, NH_CNS_CTRL, 0, id), 0);
	/* IEEE OUI, least significant byte first: set, and locally administered */
	assert_false(all_zero(id + 73, 3));
	assert_int_equal(id[75], OUI0);
	assert_int_equal(id[74], OUI1);
	assert_int_equal(id[73], OUI2);
	assert_true(id[75] & 0x02);
	/* the default serial: printable, space padded to 20 bytes */
	assert_true(sn_printable((const char *)id + 4));
	assert_memory_equal(id + 4, "VFRT", 4);
	/* the subsystem NQN carries it */
	memcpy(nqn, id + 768, 256);
	assert_non_null(strstr(nqn, "VFRT"));
	assert_memory_equal(nqn + strlen(nqn) - 16, id + 8, 16);
	/* LPA: Commands Supported and Effects, extended data */
	assert_int_equal(id[261] & 0x6, 0x6);
}

/* Serials and namespace identifiers: unique between controllers, derived
 * from the configuration so a restart keeps them. */
static void test_ids_unique_and_stable(void **state)
{
	/* two different names; the same name twice with identities (socket
	 * paths) to tell them apart; an explicit serial */
	static const struct ctrl_cfg cfgs[4] = {
		{ .name = "nvme-a" },
		{ .name = "nvme-b" },
		{ .name = "nvme", .identity = "/run/vfu/nvme0.sock" },
		{ .name = "nvme", .identity = "/run/vfu/nvme1.sock" },
	};
	static const struct ctrl_cfg fixed = { .name = "nvme", .serial = "SN-FIXED-1" };
	struct ids a[4], b[4], c;

	(void)state;
	ids_of(cfgs, 4, a);
	for (size_t i = 0; i < 4; i++) {
		assert_true(sn_printable(a[i].sn));
		for (size_t j = 0; j < i; j++) {
			assert_memory_not_equal(a[i].sn, a[j].sn, 20);
			for (size_t k = 0; k < NR_NS; k++) {
				for (size_t l = 0; l < NR_NS; l++) {
					assert_memory_not_equal(a[i].nguid[k], a[j].nguid[l], 16);
					assert_memory_not_equal(a[i].eui64[k], a[j].eui64[l], 8);
					assert_memory_not_equal(a[i].uuid[k], a[j].uuid[l], 16);
				}
			}
		}
		/* and between the namespaces of one controller */
		assert_memory_not_equal(a[i].nguid[0], a[i].nguid[1], 16);
		assert_memory_not_equal(a[i].eui64[0], a[i].eui64[1], 8);
		assert_memory_not_equal(a[i].uuid[0], a[i].uuid[1], 16);
	}
	/* the same configuration again (a restart): the same values */
	ids_of(cfgs, 4, b);
	assert_memory_equal(a, b, sizeof(a));

	/* an explicit serial is kept as given */
	ids_of(&fixed, 1, &c);
	assert_memory_equal(c.sn, "SN-FIXED-1          ", 20);
	for (size_t i = 0; i < 4; i++)
		assert_memory_not_equal(c.nguid[0], a[i].nguid[0], 16);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, nvme_fx_teardown)
	const struct CMUnitTest tests[] = {
		T(test_features_mandatory_present),
		T(test_feature_arbitration_power_temp),
		T(test_feature_error_recovery),
		T(test_feature_queues_and_interrupts),
		T(test_feature_atomicity_async_events),
		T(test_effects_log),
		T(test_log_pages_offsets),
		T(test_identify_ctrl_fields),
		cmocka_unit_test(test_ids_unique_and_stable),
#undef T
	};

	nvme_fx_filters();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
