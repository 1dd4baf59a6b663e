/* Guest memory faults: the process's SIGBUS handler and its lock-free table of DMA window ranges. */
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * One registered range. Written by the registering thread under a seqlock
 * (seq odd while it changes), read by the signal handler on any thread,
 * which never blocks: it retries a few times and skips a slot caught
 * mid-write (no fault can be pending in a window being registered or
 * unregistered: nothing touches it then).
 */
struct fault_slot {
	_Atomic bool busy;          /* claimed by a registration (CAS) */
	_Atomic uint32_t seq;
	_Atomic uintptr_t start;    /* 0: slot holds no range */
	_Atomic uintptr_t end;
	_Atomic uint64_t iova;
	_Atomic int prot;
	_Atomic(struct vfurt_fault_domain *) dom;
};

/*
 * The guard is the one process-global object of the library, and it has to
 * be: a signal disposition belongs to the process and a handler receives no
 * argument, so the handler can only find the window table through static
 * storage. Everything else hangs off the runtime or server objects, which
 * take a reference (vfr_fault_guard_acquire) while they exist. The slots
 * are static so that the handler never sees a table being freed.
 */
static struct {
	pthread_mutex_t lock;       /* refs and old; never taken by the handler */
	unsigned refs;
	struct sigaction old[2];    /* what was installed before us: old[cur] */
	unsigned cur;
	_Atomic(struct sigaction *) chain; /* &old while installed, else NULL */
	_Atomic uint32_t hi;        /* slots [0, hi) may be in use */
	struct fault_slot slot[VFURT_FAULT_SLOTS];
} guard = { .lock = PTHREAD_MUTEX_INITIALIZER };

#define READ_TRIES 64

struct hit {
	uintptr_t start, end;
	uint64_t iova;
	int prot;
	struct vfurt_fault_domain *dom;
};

/* Async-signal-safe: atomics only. */
static bool slot_read(struct fault_slot *s, struct hit *h)
{
	for (int i = 0; i < READ_TRIES; i++) {
		uint32_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire);

		if (s1 & 1u)
			continue;
		h->start = atomic_load_explicit(&s->start, memory_order_relaxed);
		h->end = atomic_load_explicit(&s->end, memory_order_relaxed);
		h->iova = atomic_load_explicit(&s->iova, memory_order_relaxed);
		h->prot = atomic_load_explicit(&s->prot, memory_order_relaxed);
		h->dom = atomic_load_explicit(&s->dom, memory_order_relaxed);
		/* pairs with the release fence in slot_write */
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&s->seq, memory_order_relaxed) == s1)
			return h->start != 0;
	}
	return false;
}

static void slot_write(struct fault_slot *s, const struct hit *h)
{
	uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);

	atomic_store_explicit(&s->seq, seq + 1u, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&s->start, h->start, memory_order_relaxed);
	atomic_store_explicit(&s->end, h->end, memory_order_relaxed);
	atomic_store_explicit(&s->iova, h->iova, memory_order_relaxed);
	atomic_store_explicit(&s->prot, h->prot, memory_order_relaxed);
	atomic_store_explicit(&s->dom, h->dom, memory_order_relaxed);
	atomic_store_explicit(&s->seq, seq + 2u, memory_order_release);
}

static bool lookup(uintptr_t addr, struct hit *h)
{
	uint32_t hi = atomic_load_explicit(&guard.hi, memory_order_acquire);

	for (uint32_t i = 0; i < hi && i < VFURT_FAULT_SLOTS; i++)
		if (slot_read(&guard.slot[i], h) && addr >= h->start && addr < h->end)
			return true;
	return false;
}

static void domain_mark(struct vfurt_fault_domain *dom, uint64_t iova)
{
	uint64_t none = 0;

	(void)atomic_compare_exchange_strong(&dom->lost_iova, &none, iova + 1u);
	atomic_fetch_add_explicit(&dom->faults, 1, memory_order_release);
}

/* Not ours: hand the fault to whoever was there before, or let it kill. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	const struct sigaction *old = atomic_load_explicit(&guard.chain, memory_order_acquire);
	struct sigaction dfl;

	/* sa_handler and sa_sigaction share storage: SIG_DFL/SIG_IGN first */
	if (old && old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		if (old->sa_flags & SA_SIGINFO)
			old->sa_sigaction(sig, si, uc);
		else
			old->sa_handler(sig);
		return;
	}
	/* SIG_DFL (SIG_IGN cannot stop a fault): return, the access runs
	 * again and the default action ends the process with SIGBUS */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	(void)sigaction(sig, &dfl, NULL);
}

/* Async-signal-safe throughout: atomics, mmap, sigaction; errno preserved. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	struct hit h;

	if (si && lookup((uintptr_t)si->si_addr, &h)) {
		void *p = mmap((void *)h.start, h.end - h.start, h.prot,
			       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p != MAP_FAILED) {
			domain_mark(h.dom, h.iova);
			errno = saved;
			return;
		}
	}
	chain(sig, si, uc);
	errno = saved;
}

/* Install on_sigbus, keeping what was there in the spare old slot: the
 * handler may be reading the one chain points at. Under guard.lock. */
static int install(void)
{
	struct sigaction sa;
	struct sigaction *old = &guard.old[guard.cur ^ 1u];

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	/* SA_ONSTACK: use an alternate stack where a thread has one; the
	 * handler itself needs little (no locals beyond struct hit) */
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, old) < 0)
		return -errno;
	guard.cur ^= 1u;
	atomic_store_explicit(&guard.chain, old, memory_order_release);
	return 0;
}

static bool installed(void)
{
	struct sigaction cur;

	return sigaction(SIGBUS, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
	       cur.sa_sigaction == on_sigbus;
}

int vfr_fault_guard_acquire(void)
{
	int rc = 0;

	pthread_mutex_lock(&guard.lock);
	/* first user, or somebody replaced our handler meanwhile (a test
	 * framework does per test): take it back, chaining to theirs */
	if (guard.refs == 0 || !installed())
		rc = install();
	if (!rc)
		guard.refs++;
	pthread_mutex_unlock(&guard.lock);
	return rc;
}

void vfr_fault_guard_release(void)
{
	pthread_mutex_lock(&guard.lock);
	if (guard.refs && --guard.refs == 0) {
		(void)sigaction(SIGBUS, &guard.old[guard.cur], NULL);
		atomic_store_explicit(&guard.chain, NULL, memory_order_release);
	}
	pthread_mutex_unlock(&guard.lock);
}

int vfr_fault_register(struct vfurt_fault_domain *dom, void *base, size_t len,
			 uint64_t iova, int prot)
{
	struct hit h = { .start = (uintptr_t)base, .end = (uintptr_t)base + len,
			 .iova = iova, .prot = prot, .dom = dom };

	if (!dom || !base || len == 0 || h.end < h.start)
		return -EINVAL;
	for (uint32_t i = 0; i < VFURT_FAULT_SLOTS; i++) {
		struct fault_slot *s = &guard.slot[i];
		bool free_slot = false;
		uint32_t hi;

		if (!atomic_compare_exchange_strong(&s->busy, &free_slot, true))
			continue;
		slot_write(s, &h);
		hi = atomic_load(&guard.hi);
		while (hi < i + 1u && !atomic_compare_exchange_weak(&guard.hi, &hi, i + 1u))
			;
		return 0;
	}
	return -ENOSPC;
}

void vfr_fault_unregister(struct vfurt_fault_domain *dom, void *base)
{
	static const struct hit none;
	uint32_t hi = atomic_load(&guard.hi);

	for (uint32_t i = 0; i < hi && i < VFURT_FAULT_SLOTS; i++) {
		struct fault_slot *s = &guard.slot[i];

		/* only the owner changes a busy slot: plain reads are stable */
		if (!atomic_load(&s->busy) || atomic_load(&s->dom) != dom ||
		    atomic_load(&s->start) != (uintptr_t)base)
			continue;
		slot_write(s, &none);
		atomic_store(&s->busy, false);
		return;
	}
}

bool vfr_fault_fd_sealed(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	return seals >= 0 && (seals & F_SEAL_SHRINK);
}

bool vfr_fault_domain_lost(const struct vfurt_fault_domain *dom, uint64_t *iova)
{
	uint64_t v = atomic_load(&((struct vfurt_fault_domain *)dom)->lost_iova);

	if (v && iova)
		*iova = v - 1u;
	return v != 0;
}

void vfr_fault_domain_mark(struct vfurt_fault_domain *dom, uint64_t iova)
{
	domain_mark(dom, iova);
}

bool vfr_fault_domain_claim(struct vfurt_fault_domain *dom)
{
	return vfr_fault_domain_lost(dom, NULL) && !atomic_exchange(&dom->claimed, true);
}

void vfr_fault_domain_clear(struct vfurt_fault_domain *dom)
{
	atomic_store(&dom->lost_iova, 0);
	atomic_store(&dom->claimed, false);
}
