/* RAM block backend: a memfd (populated, huge pages where possible, handed over at a live upgrade), worked on in bounded steps per poll. */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vfurt/abi.h>
#include <vfurt/bdev.h>
#include <vfurt/state.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

/*
 * The memory is a memfd mapped shared, not anonymous memory, so that it
 * outlives the process: a live upgrade passes the fd to the next one
 * (ram_save), which maps the same pages (ram_restore) and the data never
 * moves. Deallocated ranges are holes punched into the file.
 */
struct ram_bdev {
	int fd;              /* the memfd: map_len bytes */
	unsigned char *mem;
	size_t size;         /* bytes of the device */
	size_t map_len;      /* bytes mapped at mem: size rounded up to pages */
	uint32_t block_size;
	size_t page_size;
	size_t hp;           /* huge page size mem is aligned to, 0 = small pages */
	size_t release_unit; /* DEALLOCATE returns whole units: huge pages if used */
	size_t seg;          /* a step's span: max(release_unit, RAM_SEG_MIN), a power of two */
	size_t nr_units;
	/* bit per release unit: not resident (released, or never populated), so it
	 * reads as zero and its first write faults; shared by every channel */
	_Atomic uint64_t *cold;
};

/* A channel: the requests accepted and not finished, in turn order. */
struct ram_chan {
	struct ram_bdev *rb;
	struct vfurt_bdev_req *head;
	struct vfurt_bdev_req *tail;
};

/* Per request (vfurt_bdev_req_ctx): where the next step starts. */
struct ram_req {
	struct vfurt_bdev_req *next; /* queue link */
	size_t off;                  /* device offset of the next byte */
	size_t left;                 /* bytes still to do */
	int iov_idx;                 /* READ/WRITE: current iovec */
	size_t iov_off;              /* bytes of it done */
};

/* Read a small sysfs file into buf (NUL-terminated). Returns false on error. */
static bool read_sysfs(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* Whether the bracketed (selected) word of a sysfs choice file is one of on[]. */
static bool sysfs_selected(const char *path, const char *const *on, bool *inherit)
{
	char buf[160], word[40];
	const char *b;

	*inherit = false;
	if (!read_sysfs(path, buf, sizeof(buf)) || !(b = strchr(buf, '[')) ||
	    sscanf(b, "[%39[^]]]", word) != 1)
		return false;
	*inherit = strcmp(word, "inherit") == 0;
	for (; *on; on++)
		if (strcmp(word, *on) == 0)
			return true;
	return false;
}

/*
 * The PMD size of transparent huge pages (0: none), and whether shared
 * memory (our memfd) gets them when it faults. Shared memory has its own
 * switch, shmem_enabled, "never" by default on many systems, and since
 * Linux 6.11 one per page size that may override it. In "advise" mode only
 * mappings marked MADV_HUGEPAGE get them, so we always mark ours. Without
 * them populate() asks for huge pages explicitly (MADV_COLLAPSE).
 */
static size_t shmem_thp_size(bool *on_fault)
{
	static const char *const top_on[] = { "always", "within_size", "advise", "force", NULL };
	static const char *const size_on[] = { "always", "within_size", "advise", NULL };
	char buf[128], path[128];
	unsigned long long v;
	bool inherit, on;

	*on_fault = false;
	if (!read_sysfs("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", buf, sizeof(buf)))
		return 0;
	if (sscanf(buf, "%llu", &v) != 1 || v == 0 || (v & (v - 1)) != 0 || v > (1ull << 30))
		return 0;
	snprintf(path, sizeof(path), "/sys/kernel/mm/transparent_hugepage/hugepages-%llukB/shmem_enabled",
		 v >> 10);
	on = sysfs_selected(path, size_on, &inherit);
	if (inherit || access(path, F_OK) != 0)
		on = sysfs_selected("/sys/kernel/mm/transparent_hugepage/shmem_enabled", top_on,
				    &inherit);
	*on_fault = on;
	return (size_t)v;
}

/*
 * Reserve len bytes of address space (a multiple of the page size),
 * aligned to hp when hp is non-zero, nothing mapped beyond it. Returns the
 * address or MAP_FAILED.
 */
static unsigned char *reserve_aligned(size_t len, size_t hp)
{
	const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	unsigned char *p, *a;
	size_t head;

	if (len > SIZE_MAX - hp)
		return MAP_FAILED;
	p = mmap(NULL, len + hp, PROT_NONE, flags, -1, 0);
	if (p == MAP_FAILED || hp == 0)
		return p;
	a = (unsigned char *)(((uintptr_t)p + hp - 1) & ~(uintptr_t)(hp - 1));
	head = (size_t)(a - p);
	if (head)
		munmap(p, head);
	munmap(a + len, hp - head);
	return a;
}

/*
 * Map the first len bytes of fd shared, aligned to hp when hp is non-zero
 * so that every whole huge-page extent can be one huge page (offset and
 * address agree modulo hp); the tail that is not a whole huge page stays in
 * small pages. Returns the address or MAP_FAILED.
 */
static unsigned char *map_aligned(int fd, size_t len, size_t hp)
{
	unsigned char *a = reserve_aligned(len, hp);

	if (a == MAP_FAILED)
		return MAP_FAILED;
	if (mmap(a, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
		munmap(a, len);
		return MAP_FAILED;
	}
	return a;
}

/*
 * Fault every page in now, so that I/O never takes a first-touch fault (a
 * cold RAM namespace ran at an eighth of its warm rate). The memory is
 * marked for huge pages first: MAP_POPULATE would fault it in at mmap
 * time, before MADV_HUGEPAGE could apply, i.e. in 4 KiB pages. Kernels
 * before 5.14 lack MADV_POPULATE_WRITE: touch one byte per page instead.
 *
 * Only when the device fits in free memory: a RAM namespace larger than
 * that (MAP_NORESERVE lets it be created, and a guest may use only part of
 * it) stays lazily allocated instead of having the OOM killer end the
 * process here. That also bounds the time this takes: the kernel zeroes
 * what it populates, roughly a second per several GiB, on the creating
 * thread (creation belongs to setup, not to a worker's pass).
 */
static bool populate(struct ram_bdev *rb)
{
	long avail = sysconf(_SC_AVPHYS_PAGES);

	if (avail <= 0 || rb->map_len / rb->page_size > (unsigned long)avail)
		return false;
	if (madvise(rb->mem, rb->map_len, MADV_POPULATE_WRITE) == 0)
		return true;
	if (errno != EINVAL)
		return false; /* ENOMEM, EINTR...: the rest faults in on first use */
	for (size_t off = 0; off < rb->map_len; off += rb->page_size)
		((volatile unsigned char *)rb->mem)[off] = 0;
	return true;
}

/*
 * Shared memory that does not get huge pages when it faults (shmem_enabled
 * "never") still gets them on request: MADV_COLLAPSE (Linux 6.1, whatever
 * shmem_enabled says but "deny") turns the populated small pages of every
 * whole huge-page extent into one huge page. Without it 4 KiB random reads
 * ran at a quarter to half the rate of anonymous huge pages on this VM
 * (every TLB miss is expensive under virtualisation). The huge pages are
 * the memfd's: the next process of a live upgrade maps them with huge page
 * entries too. Costs about as much again as populating (a copy of every
 * page). Returns false when the kernel cannot (nothing was collapsed);
 * units written later, after a Deallocate or at a lazy start, fault in
 * small pages.
 */
static bool collapse(struct ram_bdev *rb, size_t hp)
{
	size_t len = rb->map_len & ~(hp - 1);

	if (len == 0)
		return false;
	if (madvise(rb->mem, len, MADV_COLLAPSE) == 0)
		return true;
	if (errno == EINVAL)
		return false; /* no MADV_COLLAPSE, or "deny" */
	/* EAGAIN: a page was busy for a moment (a scan held it); ENOMEM: no
	 * huge page free now. Extent by extent, a few tries each (one that is
	 * huge already answers at once); what still fails stays small. */
	for (size_t off = 0; off < len; off += hp)
		for (int i = 0; i < 3 && madvise(rb->mem + off, hp, MADV_COLLAPSE) != 0 &&
				errno == EAGAIN;
		     i++)
			;
	return true;
}

/*
 * Work is bounded per poll so that one channel cannot hold its thread (a
 * worker serving other devices too): a poll does at most RAM_POLL_BUDGET
 * bytes of memory work, plus the step that crosses the budget. A step stays
 * within one segment (max(release unit, RAM_SEG_MIN), aligned), so the
 * overshoot is at most one segment of copying or zeroing plus the faults of
 * the units it touches: 2 MiB + 2 huge-page faults with THP, about 0.5 ms
 * here; the budget alone is ~0.1 ms (memcpy ~9 GB/s, memset ~14 GB/s on
 * this VM). Requests that are not finished go to the back of the queue, so
 * a large one advances a step at a time while small ones behind it finish.
 */
#define RAM_POLL_BUDGET (1u << 20)
/* Largest device (creation and resize): half the address space. */
#define RAM_MAX_BYTES (SIZE_MAX / 2)
#define RAM_SEG_MIN (256u << 10)
/* Bookkeeping of one step (completion, callback, CQE) in bytes of work. */
#define RAM_STEP_COST 1024u
/* Releasing a resident huge page (MADV_DONTNEED, anonymous) took 9 us against 147 us
 * for zeroing it: release and skipped (already zero) bytes count 1/16. */
#define RAM_RELEASE_WEIGHT 16u

static bool unit_cold(const struct ram_bdev *rb, size_t u)
{
	return atomic_load_explicit(&rb->cold[u / 64], memory_order_relaxed) &
	       (1ull << (u % 64));
}

static void set_cold(struct ram_bdev *rb, size_t first, size_t last)
{
	for (size_t u = first; u < last; u++)
		atomic_fetch_or_explicit(&rb->cold[u / 64], 1ull << (u % 64), memory_order_relaxed);
}

/*
 * Before writing [off, off + len): mark its units resident. Returns the bytes
 * of work the first touch of cold ones costs (the kernel allocates and zeroes
 * a whole unit on the fault: a huge page took 217 us here).
 */
static uint64_t warm(struct ram_bdev *rb, size_t off, size_t len)
{
	size_t unit = rb->release_unit;
	uint64_t cost = 0;

	for (size_t u = off / unit; u <= (off + len - 1) / unit; u++) {
		uint64_t bit = 1ull << (u % 64);

		/* a load first: the line stays shared while nothing changes */
		if (!(atomic_load_explicit(&rb->cold[u / 64], memory_order_relaxed) & bit))
			continue;
		if (atomic_fetch_and_explicit(&rb->cold[u / 64], ~bit, memory_order_relaxed) & bit)
			cost += unit;
	}
	return cost;
}

static uint64_t zero_touch(struct ram_bdev *rb, size_t off, size_t len)
{
	uint64_t cost;

	if (!len)
		return 0;
	cost = warm(rb, off, len) + len;
	memset(rb->mem + off, 0, len);
	return cost;
}

/*
 * Zero [off, off + len), which lies in one segment; returns the cost.
 * release: give whole units back (a hole punched into the memfd reads as
 * zero). Units are huge pages when we have them: releasing part of one
 * would split it, and every later touch of the rest would fault in 4 KiB
 * pages again. Without release, whole units that are cold (released, or
 * never populated) are zero already and are skipped.
 */
static uint64_t ram_zero(struct ram_bdev *rb, size_t off, size_t len, bool release)
{
	size_t unit = rb->release_unit;
	size_t first = (off + unit - 1) & ~(unit - 1);
	size_t last = (off + len) & ~(unit - 1);
	uint64_t cost = 0;

	if (last <= first)
		return zero_touch(rb, off, len);
	if (release) {
		if (fallocate(rb->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)first,
			      (off_t)(last - first)) != 0)
			return zero_touch(rb, off, len);
		set_cold(rb, first / unit, last / unit);
		cost = (last - first) / RAM_RELEASE_WEIGHT;
	} else {
		for (size_t u = first; u < last; u += unit)
			cost += unit_cold(rb, u / unit) ? unit / RAM_RELEASE_WEIGHT
							: zero_touch(rb, u, unit);
	}
	return cost + zero_touch(rb, off, first - off) + zero_touch(rb, last, off + len - last);
}

/* Copy len bytes between the device at rr->off and the iovecs from rr's
 * cursor on. Returns the cost. */
static uint64_t ram_copy(struct ram_bdev *rb, struct ram_req *rr, const struct vfurt_bdev_io *io,
			 size_t len)
{
	size_t off = rr->off;
	uint64_t cost = len;

	if (io->op == VFURT_BDEV_WRITE)
		cost += warm(rb, off, len);
	while (len) {
		const struct iovec *v = &io->iov[rr->iov_idx];
		size_t n = v->iov_len - rr->iov_off;
		unsigned char *p = (unsigned char *)v->iov_base + rr->iov_off;

		if (n > len)
			n = len;
		if (io->op == VFURT_BDEV_READ)
			memcpy(p, rb->mem + off, n);
		else
			memcpy(rb->mem + off, p, n);
		off += n;
		len -= n;
		rr->iov_off += n;
		/* also steps over empty iovecs (the lengths add up to the request's) */
		while (rr->iov_idx < io->iovcnt && rr->iov_off == io->iov[rr->iov_idx].iov_len) {
			rr->iov_idx++;
			rr->iov_off = 0;
		}
	}
	return cost;
}

/* Advance a request by one step (the rest of its current segment). Returns
 * the cost in bytes of work. */
static uint64_t ram_step(struct ram_bdev *rb, struct vfurt_bdev_req *req)
{
	const struct vfurt_bdev_io *io = vfurt_bdev_req_io(req);
	struct ram_req *rr = vfurt_bdev_req_ctx(req);
	size_t seg_end = (rr->off | (rb->seg - 1)) + 1;
	size_t len = seg_end - rr->off < rr->left ? seg_end - rr->off : rr->left;
	uint64_t cost;

	switch (io->op) {
	case VFURT_BDEV_READ:
	case VFURT_BDEV_WRITE:
		cost = ram_copy(rb, rr, io, len);
		break;
	case VFURT_BDEV_WRITE_ZEROES:
	case VFURT_BDEV_DEALLOCATE:
		cost = ram_zero(rb, rr->off, len, io->op == VFURT_BDEV_DEALLOCATE);
		break;
	default:
		cost = 0;
		len = rr->left; /* FLUSH never gets here (no volatile cache) */
		break;
	}
	rr->off += len;
	rr->left -= len;
	return cost + RAM_STEP_COST;
}

static void queue_push(struct ram_chan *rc, struct vfurt_bdev_req *req)
{
	struct ram_req *rr = vfurt_bdev_req_ctx(req);

	rr->next = NULL;
	if (rc->tail)
		((struct ram_req *)vfurt_bdev_req_ctx(rc->tail))->next = req;
	else
		rc->head = req;
	rc->tail = req;
}

static struct vfurt_bdev_req *queue_pop(struct ram_chan *rc)
{
	struct vfurt_bdev_req *req = rc->head;

	if (req) {
		rc->head = ((struct ram_req *)vfurt_bdev_req_ctx(req))->next;
		if (!rc->head)
			rc->tail = NULL;
	}
	return req;
}

/* Queued: the work happens in ram_poll, in bounded steps. */
static int ram_submit(void *chan_ctx, struct vfurt_bdev_req *req, const struct vfurt_bdev_io *io)
{
	struct ram_chan *rc = chan_ctx;
	struct ram_req *rr = vfurt_bdev_req_ctx(req);

	rr->off = (size_t)io->offset_blocks * rc->rb->block_size;
	rr->left = (size_t)io->num_blocks * rc->rb->block_size;
	rr->iov_idx = 0;
	rr->iov_off = 0;
	if (io->op == VFURT_BDEV_READ || io->op == VFURT_BDEV_WRITE)
		while (rr->iov_idx < io->iovcnt && io->iov[rr->iov_idx].iov_len == 0)
			rr->iov_idx++;
	queue_push(rc, req);
	return 0;
}

static int ram_poll(void *chan_ctx, int max)
{
	struct ram_chan *rc = chan_ctx;
	uint64_t spent = 0;
	int done = 0;

	while (rc->head && spent < RAM_POLL_BUDGET && (max <= 0 || done < max)) {
		struct vfurt_bdev_req *req = queue_pop(rc);

		spent += ram_step(rc->rb, req);
		if (((struct ram_req *)vfurt_bdev_req_ctx(req))->left) {
			queue_push(rc, req); /* the others take their turn */
			continue;
		}
		vfurt_bdev_req_complete(req, 0);
		done++;
	}
	return done;
}

static int ram_channel_create(void *ctx, uint32_t queue_depth, void **chan_ctx)
{
	struct ram_chan *rc = calloc(1, sizeof(*rc));

	(void)queue_depth;
	if (!rc)
		return -ENOMEM;
	rc->rb = ctx;
	*chan_ctx = rc;
	return 0;
}

/* What was not done is cancelled: nothing touches the buffers afterwards. */
static void ram_channel_destroy(void *ctx, void *chan_ctx)
{
	struct ram_chan *rc = chan_ctx;
	struct vfurt_bdev_req *req;

	(void)ctx;
	while ((req = queue_pop(rc)))
		vfurt_bdev_req_complete(req, -ECANCELED);
	free(rc);
}

static void ram_destroy(void *ctx)
{
	struct ram_bdev *rb = ctx;

	munmap(rb->mem, rb->map_len);
	close(rb->fd);
	free(rb->cold);
	free(rb);
}

/*
 * Map the memfd, just extended to new_len (the caller's new map_len,
 * larger than the old one), at a fresh address aligned as at creation.
 * The mapping itself moves (mremap), page tables and all, so nothing
 * faults again; only when the old range is no longer one mapping is the
 * file mapped anew (the data is in the file: nothing is copied). Returns
 * the new address or MAP_FAILED; the old mapping is gone on success only.
 */
static unsigned char *ram_grow(struct ram_bdev *rb, size_t new_len)
{
	unsigned char *p = reserve_aligned(new_len, rb->hp);

	if (p == MAP_FAILED)
		return MAP_FAILED;
	if (mremap(rb->mem, rb->map_len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED, p) != p) {
		if (mmap(p, new_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, rb->fd, 0) ==
		    MAP_FAILED) {
			munmap(p, new_len);
			return MAP_FAILED;
		}
		munmap(rb->mem, rb->map_len);
	}
	if (rb->hp)
		(void)madvise(p, new_len, MADV_HUGEPAGE); /* worked at creation */
	return p;
}

/*
 * Resize with no request outstanding (the generic layer's contract), so
 * nothing reads mem or cold meanwhile. Invariant kept for a later grow:
 * the bytes of the mapping past the device's end are zero, so blocks that
 * come back read as zeroes (the file is cut to the mapping at a shrink, and
 * what a grow adds is a hole: not populated, a grow takes no time in
 * proportion to its size).
 */
static int ram_resize(void *ctx, uint64_t num_blocks)
{
	struct ram_bdev *rb = ctx;
	size_t new_size, new_len, new_units;
	_Atomic uint64_t *cold;
	unsigned char *mem = rb->mem;
	int rc;

	if (num_blocks > RAM_MAX_BYTES / rb->block_size)
		return -EINVAL; /* as vfurt_bdev_ram_create bounds it */
	new_size = (size_t)num_blocks * rb->block_size;
	new_len = (new_size + rb->page_size - 1) & ~(rb->page_size - 1);
	new_units = (new_size + rb->release_unit - 1) / rb->release_unit;
	cold = calloc((new_units + 63) / 64, sizeof(*cold));
	if (cold == NULL)
		return -ENOMEM;
	for (size_t u = 0; u < new_units; u++)
		if (u >= rb->nr_units || unit_cold(rb, u))
			atomic_fetch_or_explicit(&cold[u / 64], 1ull << (u % 64),
						 memory_order_relaxed);
	if (new_len > rb->map_len) {
		if (ftruncate(rb->fd, (off_t)new_len) != 0) {
			rc = errno == EFBIG ? -EINVAL : -errno;
			goto err_free_cold;
		}
		mem = ram_grow(rb, new_len);
		if (mem == MAP_FAILED) {
			(void)ftruncate(rb->fd, (off_t)rb->map_len);
			rc = -ENOMEM;
			goto err_free_cold;
		}
	} else if (new_size < rb->size) {
		/* the tail of the last page stays mapped: zero it (see above) */
		memset(mem + new_size, 0, new_len - new_size);
		if (new_len < rb->map_len) {
			/* the pages past the new end go back to the kernel */
			if (ftruncate(rb->fd, (off_t)new_len) != 0) {
				rc = -errno;
				goto err_free_cold;
			}
			munmap(mem + new_len, rb->map_len - new_len);
		}
	}
	free(rb->cold);
	rb->cold = cold;
	rb->mem = mem;
	rb->size = new_size;
	rb->map_len = new_len;
	rb->nr_units = new_units;
	return 0;

err_free_cold:
	free(cold);
	return rc;
}

/* ---- live upgrade ------------------------------------------------------- */

/* Records of the backend's section (vfurt_bdev_save). */
enum {
	RAM_TAG_FD = 1,     /* the memfd */
	RAM_TAG_LAYOUT = 2, /* struct ram_layout */
	RAM_TAG_COLD = 3,   /* the cold bitmap: (nr_units + 63) / 64 u64 words */
};

struct ram_layout {
	uint64_t size;
	uint64_t map_len;
	uint64_t release_unit;
	uint64_t nr_units;
};
_Static_assert(sizeof(struct ram_layout) == 32, "no padding in an image record");

/* A bitmap beyond this is not saved (the next process then treats every
 * unit as resident, which is always correct): 16 MiB of bits cover 512 GiB
 * in 4 KiB units. */
#define RAM_MAX_SAVED_COLD (16u << 20)

static int ram_save(void *ctx, struct vfurt_state *s)
{
	struct ram_bdev *rb = ctx;
	struct ram_layout l = { .size = rb->size, .map_len = rb->map_len,
				.release_unit = rb->release_unit, .nr_units = rb->nr_units };
	size_t words = (rb->nr_units + 63) / 64;
	uint64_t *bits;
	int rc;

	rc = vfurt_state_put_fd(s, RAM_TAG_FD, rb->fd);
	if (rc == 0)
		rc = vfurt_state_put(s, RAM_TAG_LAYOUT, &l, sizeof(l));
	if (rc || words * sizeof(*bits) > RAM_MAX_SAVED_COLD)
		return rc;
	bits = malloc(words * sizeof(*bits));
	if (bits == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < words; i++)
		bits[i] = atomic_load_explicit(&rb->cold[i], memory_order_relaxed);
	rc = vfurt_state_put(s, RAM_TAG_COLD, bits, words * sizeof(*bits));
	free(bits);
	return rc;
}

/*
 * Map the previous process's memfd in place of ours, which is freed (a
 * bdev created with VFURT_BDEV_LAZY never populated it). Nothing changes
 * until every check passed and the new mapping exists. The cold bitmap is
 * taken only when it describes the same units; otherwise every unit counts
 * as resident: a unit wrongly thought cold would be skipped by Write
 * Zeroes, one wrongly thought resident only costs a fault.
 */
static int ram_restore(void *ctx, const struct vfurt_state_cur *c)
{
	struct ram_bdev *rb = ctx;
	size_t words = (rb->nr_units + 63) / 64;
	_Atomic uint64_t *cold;
	struct ram_layout l;
	const void *val;
	unsigned char *mem;
	struct stat st;
	size_t len;
	int fd, rc;

	rc = vfurt_state_get(c, RAM_TAG_LAYOUT, &l, sizeof(l));
	if (rc)
		return rc == -ENOENT ? -EBADMSG : rc;
	if (l.size != rb->size || l.map_len != rb->map_len)
		return -EINVAL;
	cold = calloc(words, sizeof(*cold));
	if (cold == NULL)
		return -ENOMEM;
	if (l.release_unit == rb->release_unit && l.nr_units == rb->nr_units &&
	    vfurt_state_find(c, RAM_TAG_COLD, &val, &len) == 0 && len == words * sizeof(uint64_t)) {
		for (size_t i = 0; i < words; i++) {
			uint64_t w;

			memcpy(&w, (const unsigned char *)val + i * sizeof(w), sizeof(w));
			atomic_store_explicit(&cold[i], w, memory_order_relaxed);
		}
	}
	fd = vfurt_state_take_fd(c, RAM_TAG_FD);
	if (fd < 0) {
		rc = fd == -ENOENT ? -EBADMSG : fd;
		goto err_free_cold;
	}
	/* the previous process's memfd, of the size it mapped */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != rb->map_len) {
		rc = -EBADMSG;
		goto err_close;
	}
	mem = map_aligned(fd, rb->map_len, rb->hp);
	if (mem == MAP_FAILED) {
		rc = -errno;
		goto err_close;
	}
	if (rb->hp)
		(void)madvise(mem, rb->map_len, MADV_HUGEPAGE);
	munmap(rb->mem, rb->map_len);
	close(rb->fd);
	free(rb->cold);
	rb->mem = mem;
	rb->fd = fd;
	rb->cold = cold;
	return 0;

err_close:
	close(fd);
err_free_cold:
	free(cold);
	return rc;
}

struct vfurt_bdev *vfurt_bdev_ram_create(const struct vfurt_bdev_ram_opts *opts)
{
	static const struct vfurt_bdev_ops ops = {
		.ops_size = sizeof(ops),
		.req_ctx_size = sizeof(struct ram_req),
		.channel_create = ram_channel_create,
		.channel_destroy = ram_channel_destroy,
		.submit = ram_submit,
		.poll = ram_poll,
		.destroy = ram_destroy,
		.resize = ram_resize,
		.save = ram_save,
		.restore = ram_restore,
	};
	struct vfurt_bdev_opts o = {
		.opts_size = sizeof(o),
		.caps = VFURT_BDEV_CAP_WRITE_ZEROES | VFURT_BDEV_CAP_DEALLOCATE,
	};
	struct vfurt_bdev_ram_opts ro;
	struct vfurt_bdev *bdev;
	struct ram_bdev *rb;
	uint32_t block_size;
	uint64_t size_bytes;
	char fd_name[80];
	bool hp_on_fault, populated;
	size_t hp;
	int e;

	if (vfurt_abi_copy_in(&ro, sizeof(ro), opts,
			      VFURT_ABI_SIZE(struct vfurt_bdev_ram_opts, size_bytes)) ||
	    (ro.flags & ~VFURT_BDEV_LAZY)) {
		errno = EINVAL;
		return NULL;
	}
	block_size = ro.block_size != 0 ? ro.block_size : 512;
	size_bytes = ro.size_bytes;
	if ((block_size != 512 && block_size != 4096) || size_bytes == 0 ||
	    size_bytes % block_size != 0 || size_bytes > RAM_MAX_BYTES) {
		errno = EINVAL;
		return NULL;
	}
	o.name = ro.name != NULL ? ro.name : "ram";
	o.block_size = block_size;
	o.num_blocks = size_bytes / block_size;
	rb = calloc(1, sizeof(*rb));
	if (rb == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	rb->size = (size_t)size_bytes;
	rb->block_size = block_size;
	rb->page_size = (size_t)sysconf(_SC_PAGESIZE);
	rb->map_len = (rb->size + rb->page_size - 1) & ~(rb->page_size - 1);
	/* the name shows in /proc/PID/fd and /proc/PID/maps */
	snprintf(fd_name, sizeof(fd_name), "vfurt-ram:%s", o.name);
	rb->fd = memfd_create(fd_name, MFD_CLOEXEC);
	if (rb->fd < 0)
		goto err_free_rb;
	/* a hole: nothing is allocated until populate() or a write */
	if (ftruncate(rb->fd, (off_t)rb->map_len) != 0) {
		if (errno == EFBIG)
			errno = EINVAL;
		goto err_close;
	}
	/* smaller than one huge page: nothing to gain, keep it page-sized */
	hp = shmem_thp_size(&hp_on_fault);
	if (hp <= rb->page_size || rb->map_len < hp)
		hp = 0;
	rb->mem = map_aligned(rb->fd, rb->map_len, hp);
	if (rb->mem == MAP_FAILED) {
		errno = ENOMEM;
		goto err_close;
	}
	/* EINVAL: a kernel without THP; small pages then */
	if (hp && madvise(rb->mem, rb->map_len, MADV_HUGEPAGE) != 0)
		hp = 0;
	/* lazily allocated when asked for, or too large to populate: every
	 * unit faults once */
	populated = !(ro.flags & VFURT_BDEV_LAZY) && populate(rb);
	/* a kernel that cannot give us huge pages: units of small pages
	 * (a lazy bdev keeps huge units: it is likely to be restored from a
	 * memfd of huge pages) */
	if (hp && !hp_on_fault && populated && !collapse(rb, hp))
		hp = 0;
	rb->hp = hp;
	rb->release_unit = hp ? hp : rb->page_size;
	rb->seg = rb->release_unit > RAM_SEG_MIN ? rb->release_unit : RAM_SEG_MIN;
	rb->nr_units = (rb->size + rb->release_unit - 1) / rb->release_unit;
	rb->cold = calloc((rb->nr_units + 63) / 64, sizeof(*rb->cold));
	if (rb->cold == NULL) {
		errno = ENOMEM;
		goto err_unmap;
	}
	if (!populated)
		set_cold(rb, 0, rb->nr_units);
	bdev = vfurt_bdev_create(&o, &ops, rb);
	if (bdev == NULL)
		goto err_free_cold;
	return bdev;

err_free_cold:
	free(rb->cold);
err_unmap:
	e = errno;
	munmap(rb->mem, rb->map_len);
	errno = e;
err_close:
	e = errno;
	close(rb->fd);
	errno = e;
err_free_rb:
	e = errno;
	free(rb);
	errno = e;
	return NULL;
}
