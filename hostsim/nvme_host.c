/* hostsim's NVMe host (see nvme_host.h): open and close, guest RAM and its page allocator, PCI bring-up (MSI-X). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vfurt/device.h>

#include "hostsim/nvme_host_internal.h"

#define DEFAULT_MEM (64u << 20)
#define DEFAULT_IOVA (1ull << 32)

/* ---- guest memory ------------------------------------------------------------ */

void *nh_alloc(struct nvme_host *h, size_t bytes)
{
	size_t n = (bytes + NH_PAGE - 1) / NH_PAGE;
	size_t run = 0;

	if (!n)
		n = 1;
	for (size_t i = h->o.no_reuse ? h->alloc_floor : 0; i < h->npages; i++) {
		run = h->pagemap[i] ? 0 : run + 1;
		if (run == n) {
			size_t first = i + 1 - n;

			if (h->o.no_reuse)
				h->alloc_floor = i + 1;
			memset(h->pagemap + first, 1, n);
			memset(h->mem + first * NH_PAGE, 0, n * NH_PAGE);
			return h->mem + first * NH_PAGE;
		}
	}
	return NULL;
}

void nh_free(struct nvme_host *h, void *p, size_t bytes)
{
	size_t n = (bytes + NH_PAGE - 1) / NH_PAGE;
	size_t first;

	if (!p)
		return;
	if (!n)
		n = 1;
	first = (size_t)((uint8_t *)p - h->mem) / NH_PAGE;
	memset(h->pagemap + first, 0, n);
}

uint64_t nh_iova(const struct nvme_host *h, const void *p)
{
	return h->o.iova + (uint64_t)((const uint8_t *)p - h->mem);
}

void *nh_ptr(const struct nvme_host *h, uint64_t iova)
{
	if (iova < h->o.iova || iova - h->o.iova >= h->o.mem_size)
		return NULL;
	return h->mem + (iova - h->o.iova);
}

uint64_t nh_mem_iova(const struct nvme_host *h)
{
	return h->o.iova;
}

size_t nh_mem_size(const struct nvme_host *h)
{
	return h->o.mem_size;
}

/* ---- PCI --------------------------------------------------------------------- */

int nh_pci_find_cap(struct vfurt_client *c, uint8_t id)
{
	uint8_t ptr;
	int rc;

	rc = vfurt_client_region_read(c, VFURT_REGION_CONFIG, 0x34, &ptr, 1);
	for (int guard = 0; !rc && ptr && guard < 48; guard++) {
		uint8_t cap[2];

		rc = vfurt_client_region_read(c, VFURT_REGION_CONFIG, ptr & 0xfc, cap, 2);
		if (rc)
			break;
		if (cap[0] == id)
			return ptr & 0xfc;
		ptr = cap[1];
	}
	return rc ? rc : -ENOENT;
}

static int setup_msix(struct nvme_host *h)
{
	int cap = nh_pci_find_cap(h->c, 0x11);
	uint16_t ctrl;
	uint32_t table;
	uint32_t want = h->o.nvec ? h->o.nvec : MAX_VEC;
	int rc;

	if (cap == -ENOENT)
		return 0; /* no MSI-X: completions by polling only */
	if (cap < 0)
		return cap;
	rc = vfurt_client_region_read(h->c, VFURT_REGION_CONFIG, (uint64_t)cap + 2, &ctrl, 2);
	if (!rc)
		rc = vfurt_client_region_read(h->c, VFURT_REGION_CONFIG, (uint64_t)cap + 4, &table,
					      4);
	if (rc)
		return rc;
	if (!h->nvec) {
		h->nvec = (ctrl & 0x7ffu) + 1u;
		if (h->nvec > want)
			h->nvec = want;
		if (h->nvec > MAX_VEC)
			h->nvec = MAX_VEC;
	}
	for (uint32_t v = 0; v < h->nvec; v++) {
		if (h->efd[v] < 0)
			h->efd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (h->efd[v] < 0)
			return -errno;
	}
	rc = vfurt_client_set_irqs_eventfd(h->c, VFURT_IRQ_MSIX, 0, h->nvec, h->efd,
					   VFIO_IRQ_SET_ACTION_TRIGGER);
	if (rc)
		return rc;
	ctrl = (uint16_t)((ctrl | 0x8000u) & ~0x4000u); /* enable, function unmasked */
	rc = vfurt_client_region_write(h->c, VFURT_REGION_CONFIG, (uint64_t)cap + 2, &ctrl, 2);
	for (uint32_t v = 0; !rc && v < h->nvec; v++) {
		uint32_t zero = 0;

		rc = vfurt_client_region_write(h->c, VFURT_REGION_BAR0 + (table & 7u),
					       (table & ~7u) + v * 16u + 12u, &zero, 4);
	}
	return rc;
}

int nh_pci_reinit(struct nvme_host *h)
{
	uint16_t cmd;
	int rc;

	/* memory space and bus master, as a driver's pci_enable_device does */
	rc = vfurt_client_region_read(h->c, VFURT_REGION_CONFIG, 4, &cmd, 2);
	if (rc)
		return rc;
	cmd |= 0x6;
	rc = vfurt_client_region_write(h->c, VFURT_REGION_CONFIG, 4, &cmd, 2);
	return rc ? rc : setup_msix(h);
}

/* ---- open / close ------------------------------------------------------------ */

/* Guest RAM: a memfd the server maps (or reaches by DMA messages). -1 on failure. */
static int guest_ram_fd(size_t size)
{
	int fd = memfd_create("nh-guest-ram", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int alloc_admin(struct nvme_host *h)
{
	uint32_t n = h->o.admin_entries;

	h->sq[0].entries = n;
	h->sq[0].ring_bytes = (size_t)n * sizeof(struct nh_sqe);
	h->sq[0].ring = nh_alloc(h, h->sq[0].ring_bytes);
	h->sq[0].slots = calloc(n, sizeof(struct slot));
	h->cq[0].entries = n;
	h->cq[0].ring_bytes = (size_t)n * sizeof(struct nh_cqe);
	h->cq[0].ring = nh_alloc(h, h->cq[0].ring_bytes);
	h->cq[0].vector = 0;
	if (!h->sq[0].ring || !h->sq[0].slots || !h->cq[0].ring)
		return -ENOMEM;
	return 0;
}

struct nvme_host *nh_open(const char *path, const struct nvme_host_opts *opts)
{
	/* aligned: the queues' and counters' cache lines */
	struct nvme_host *h = aligned_alloc(_Alignof(struct nvme_host), sizeof(*h));
	struct vfurt_client_opts co = { .opts_size = sizeof(co) };
	uint64_t cap;
	int rc = -ENOMEM;

	if (!h)
		return NULL;
	memset(h, 0, sizeof(*h));
	h->memfd = -1;
	for (uint32_t v = 0; v < MAX_VEC; v++)
		h->efd[v] = -1;
	for (uint32_t i = 0; i < 2u * (NH_MAX_QID + 1); i++)
		h->ioev_fd[i] = -1;
	if (opts)
		h->o = *opts;
	if (!h->o.mem_size)
		h->o.mem_size = DEFAULT_MEM;
	h->o.mem_size = (h->o.mem_size + NH_PAGE - 1) & ~(size_t)(NH_PAGE - 1);
	if (!h->o.iova)
		h->o.iova = DEFAULT_IOVA;
	if (!h->o.admin_entries)
		h->o.admin_entries = 32;
	if (h->o.timeout_ms <= 0)
		h->o.timeout_ms = NH_DEFAULT_TIMEOUT_MS;
	co.timeout_ms = h->o.timeout_ms;

	h->c = vfurt_client_connect(path, &co);
	if (!h->c) {
		rc = -errno;
		goto err;
	}
	h->memfd = guest_ram_fd(h->o.mem_size);
	if (h->memfd < 0)
		goto err;
	h->mem = mmap(NULL, h->o.mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, h->memfd, 0);
	if (h->mem == MAP_FAILED) {
		h->mem = NULL;
		goto err;
	}
	h->npages = h->o.mem_size / NH_PAGE;
	h->pagemap = calloc(h->npages, 1);
	if (!h->pagemap)
		goto err;
	rc = vfurt_client_dma_map(h->c, h->o.iova, h->o.mem_size, h->memfd, 0,
				  VFIO_USER_DMA_MAP_FLAG_READ | VFIO_USER_DMA_MAP_FLAG_WRITE,
				  h->o.dma_by_msg ? 0 : VFURT_CLIENT_DMA_SEND_FD);
	if (rc)
		goto err;
	rc = nh_reg_read64(h, NH_REG_CAP, &cap);
	if (rc)
		goto err;
	h->mqes1 = (uint32_t)(cap & 0xffff) + 1;
	h->stride = 4u << ((cap >> 32) & 0xf);
	if (!h->o.doorbell_msg) {
		rc = nh_map_doorbells(h);
		if (rc)
			goto err;
	}
	if (h->o.doorbell_ioeventfd) {
		rc = nh_wire_ioeventfds(h);
		if (rc)
			goto err;
	}
	rc = nh_pci_reinit(h);
	if (rc)
		goto err;
	if (h->o.admin_entries > h->mqes1)
		h->o.admin_entries = h->mqes1;
	rc = alloc_admin(h);
	if (rc)
		goto err;
	return h;
err:
	nh_close(h);
	errno = rc < 0 ? -rc : EIO;
	return NULL;
}

void nh_close(struct nvme_host *h)
{
	if (!h)
		return;
	vfurt_client_close(h->c);
	vfurt_client_io_fds_release(&h->iofds);
	if (h->db_map)
		munmap(h->db_map, h->db_map_len);
	free(h->sq[0].slots);
	for (uint32_t q = 1; q <= NH_MAX_QID; q++)
		free(h->sq[q].slots);
	if (h->mem)
		munmap(h->mem, h->o.mem_size);
	if (h->memfd >= 0)
		close(h->memfd);
	for (uint32_t v = 0; v < MAX_VEC; v++)
		if (h->efd[v] >= 0)
			close(h->efd[v]);
	free(h->pagemap);
	free(h);
}

/* ---- accessors --------------------------------------------------------------- */

struct vfurt_client *nh_client(struct nvme_host *h)
{
	return h->c;
}

void nh_get_stats(const struct nvme_host *h, struct nh_stats *out)
{
	*out = h->st;
	for (uint32_t q = 0; q < NH_MAX_QID + 2; q++) {
		const struct nh_stats *s = &h->qst[q].st;

		out->mmio_doorbells += s->mmio_doorbells;
		out->shadow_skipped += s->shadow_skipped;
		out->ioeventfd_doorbells += s->ioeventfd_doorbells;
		out->completions += s->completions;
		out->irq_wakeups += s->irq_wakeups;
	}
}

uint32_t nh_db_stride(const struct nvme_host *h)
{
	return h->stride;
}

uint32_t nh_max_entries(const struct nvme_host *h)
{
	return h->mqes1;
}

uint32_t nh_nvec(const struct nvme_host *h)
{
	return h->nvec;
}

bool nh_doorbells_mapped(const struct nvme_host *h)
{
	return h->db != NULL;
}

int nh_vector_fd(const struct nvme_host *h, uint32_t v)
{
	return v < h->nvec ? h->efd[v] : -1;
}
