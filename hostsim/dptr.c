/* hostsim data pointers: PRP entries and lists, SGL data blocks and segments in guest memory. */
#include <errno.h>
#include <string.h>

#include "hostsim/nvme_host_internal.h"

static int build_prp(struct nvme_host *h, struct nh_sqe *sqe, uint64_t a, size_t len,
		     const struct nh_dptr_opts *dp, void **aux, size_t *aux_len)
{
	uint32_t s = dp && dp->prp_list_slots ? dp->prp_list_slots : NH_PAGE / 8;
	size_t first = NH_PAGE - (a & (NH_PAGE - 1));
	size_t rem, n, pages;
	uint64_t next;
	uint8_t *lists;
	uint64_t *list;
	uint32_t slot = 0;

	if (s < 2 || s > NH_PAGE / 8)
		return -EINVAL;
	if (first > len)
		first = len;
	sqe->prp1 = a;
	sqe->prp2 = 0;
	rem = len - first;
	next = a + first;
	if (!rem)
		return 0;
	if (rem <= NH_PAGE) {
		sqe->prp2 = next;
		return 0;
	}
	n = (rem + NH_PAGE - 1) / NH_PAGE;
	pages = n <= s ? 1 : 1 + (n - s + s - 2) / (s - 1);
	lists = nh_alloc(h, pages * NH_PAGE);
	if (!lists)
		return -ENOMEM;
	/* a short list sits at the end of its page: its last slot is the
	 * page's last qword, where the controller expects the chain pointer */
	list = (uint64_t *)(void *)(lists + NH_PAGE - s * 8u);
	sqe->prp2 = nh_iova(h, list);
	for (size_t i = 0, pg = 0; i < n; i++) {
		if (slot == s - 1 && i < n - 1) {
			uint64_t *nl = (uint64_t *)(void *)(lists + (++pg + 1) * NH_PAGE - s * 8u);

			list[slot] = nh_iova(h, nl);
			list = nl;
			slot = 0;
		}
		list[slot++] = next + (uint64_t)i * NH_PAGE;
	}
	*aux = lists;
	*aux_len = pages * NH_PAGE;
	return 0;
}

static void sgl_set(struct nh_sgl_desc *d, uint64_t addr, uint32_t len, uint8_t type)
{
	memset(d, 0, sizeof(*d));
	d->addr = addr;
	d->len = len;
	d->type = (uint8_t)(type << 4);
}

static int build_sgl(struct nvme_host *h, struct nh_sqe *sqe, uint64_t a, size_t len,
		     const struct nh_dptr_opts *dp, void **aux, size_t *aux_len)
{
	size_t block = dp->sgl_block ? dp->sgl_block : len;
	size_t per = dp->sgl_per_seg ? dp->sgl_per_seg : NH_PAGE / 16 - 1;
	size_t nb, nseg;
	struct nh_sgl_desc sgl1;
	uint8_t *segs;

	if (!block || per > NH_PAGE / 16 - 1)
		return -EINVAL;
	nb = (len + block - 1) / block;
	sqe->cdw0 |= NH_PSDT_SGL;
	if (nb <= 1 && !dp->sgl_force_segment) {
		sgl_set(&sgl1, a, (uint32_t)len, NH_SGL_DATA_BLOCK);
		memcpy(&sqe->prp1, &sgl1, sizeof(sgl1));
		return 0;
	}
	if (!nb)
		nb = 1;
	nseg = (nb + per - 1) / per;
	segs = nh_alloc(h, nseg * NH_PAGE);
	if (!segs)
		return -ENOMEM;
	for (size_t sg = 0, b = 0; sg < nseg; sg++) {
		struct nh_sgl_desc *d = (struct nh_sgl_desc *)(void *)(segs + sg * NH_PAGE);
		size_t cnt = nb - sg * per < per ? nb - sg * per : per;

		for (size_t i = 0; i < cnt; i++, b++) {
			size_t off = b * block;
			size_t bl = len - off < block ? len - off : block;

			sgl_set(&d[i], a + off, (uint32_t)bl, NH_SGL_DATA_BLOCK);
		}
		if (sg + 1 < nseg) {
			size_t ncnt = nb - (sg + 1) * per < per ? nb - (sg + 1) * per : per;
			bool last = sg + 2 == nseg;

			sgl_set(&d[cnt], nh_iova(h, segs + (sg + 1) * NH_PAGE),
				(uint32_t)((ncnt + (last ? 0 : 1)) * 16),
				last ? NH_SGL_LAST_SEGMENT : NH_SGL_SEGMENT);
		}
	}
	{
		size_t cnt0 = nb < per ? nb : per;

		sgl_set(&sgl1, nh_iova(h, segs), (uint32_t)((cnt0 + (nseg > 1 ? 1 : 0)) * 16),
			nseg > 1 ? NH_SGL_SEGMENT : NH_SGL_LAST_SEGMENT);
	}
	memcpy(&sqe->prp1, &sgl1, sizeof(sgl1));
	*aux = segs;
	*aux_len = nseg * NH_PAGE;
	return 0;
}

int nh_build_dptr(struct nvme_host *h, struct nh_sqe *sqe, void *buf, size_t len,
		  const struct nh_dptr_opts *dp, void **aux, size_t *aux_len)
{
	uint64_t a;

	*aux = NULL;
	*aux_len = 0;
	if (!buf || !len) {
		sqe->prp1 = sqe->prp2 = 0;
		return 0;
	}
	a = nh_iova(h, buf);
	if (dp && dp->sgl)
		return build_sgl(h, sqe, a, len, dp, aux, aux_len);
	return build_prp(h, sqe, a, len, dp, aux, aux_len);
}
