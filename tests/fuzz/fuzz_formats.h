/* Input formats of the fuzz targets, shared by the targets and the seed generator (seedgen.c). */
#ifndef VFURT_TESTS_FUZZ_FORMATS_H
#define VFURT_TESTS_FUZZ_FORMATS_H

#include <stdint.h>

/*
 * Every input is a configuration byte followed by operations; an operation
 * is an opcode byte (taken modulo the number of operations) and its
 * arguments, little endian. Reads past the end give zeroes (fuzz_input.h).
 */

/* ---- fuzz_msg: the vfio-user message decoder -------------------------- */

/*
 * Byte 0: FZ_MSG_*. Raw mode: the rest is one byte stream fed to the
 * connection in receive-buffer sized pieces, without fds (the original
 * format). Framed mode: records, each sent with one sendmsg(2) on the
 * client end of the socket and then read by the server as a real client's
 * would be:
 *   u8 fds   number of fds: fds % 8, or 56 + (fds - 0xf0) from 0xf0 up
 *            (more than the 64 a message can take: the kernel truncates)
 *   u8 kind  per fd, FZ_FD_* (modulo FZ_FD_NR)
 *   u16 len  bytes of the record (at least 1 when fds are attached)
 *   len bytes
 */
#define FZ_MSG_VERSION 0x01u   /* negotiate first (max_msg_fds 16, write_multiple) */
#define FZ_MSG_FRAMED 0x02u    /* records with fds */
#define FZ_MSG_NVME 0x04u      /* an NVMe controller with ioeventfds, not the GPIO card */

#define FZ_MSG_MANY_FDS 0xf0u  /* fds byte from which the count is 56 + (b - 0xf0) */

enum {
	FZ_FD_MEMFD,    /* memfd of FZ_FD_MEMFD_SIZE bytes: DMA_MAP can map it */
	FZ_FD_EVENTFD,  /* what SET_IRQS wants */
	FZ_FD_PIPE,     /* read end of a pipe */
	FZ_FD_MEMFD0,   /* empty memfd: a mapping of it must be refused */
	FZ_FD_DEVNULL,  /* a character device */
	FZ_FD_SOCKET,   /* a unix datagram socket */
	FZ_FD_NR,
};
#define FZ_FD_MEMFD_SIZE 0x4000u

/* ---- fuzz_nvme: NVMe commands, PRP lists, SGLs ------------------------ */

/*
 * Byte 0: FZ_NVME_CFG_*; unless RAW, the controller is brought up like a
 * driver does (AQA/ASQ/ACQ, CC.EN, the I/O queue pairs, optionally
 * Doorbell Buffer Config) before the operations run.
 */
#define FZ_NVME_CFG_LBA4K 0x01u    /* 4096-byte LBAs (else 512) */
#define FZ_NVME_CFG_TRAP_DB 0x02u  /* doorbells trapped, with ioeventfds */
#define FZ_NVME_CFG_IRQ_EACH 0x04u /* an interrupt per completion */
#define FZ_NVME_CFG_RAW 0x08u      /* no bring-up */
#define FZ_NVME_CFG_MSIX 0x10u     /* enable MSI-X in config space (else INTx) */
#define FZ_NVME_CFG_DBBUF 0x20u    /* Doorbell Buffer Config (needs MSI-X) */
#define FZ_NVME_CFG_NQ_SHIFT 6     /* bits 7:6: I/O queue pairs created (0-3) */

/*
 * Guest memory: the DMA windows every input starts with. W0 and W1 touch
 * in IOVA but not in the server's address space (a range across them is
 * two iovecs); W2 is mapped read-only and W3 write-only in the server, so
 * a device write to W2 faults; W4 has no fd (DMA by message only, and
 * there is no client, so every use fails).
 */
struct fz_win {
	uint64_t iova;
	uint64_t size;
	uint32_t prot;  /* VFURT_DMA_READ 1 | VFURT_DMA_WRITE 2 */
	int has_fd;
};
#define FZ_NWIN 5u
static const struct fz_win fz_wins[FZ_NWIN] = {
	{ 0x10000000ull, 0x10000u, 3u, 1 },
	{ 0x10010000ull, 0x10000u, 3u, 1 },
	{ 0x20000000ull, 0x4000u, 1u, 1 },
	{ 0x30000000ull, 0x4000u, 2u, 1 },
	{ 0x40000000ull, 0x4000u, 3u, 0 },
};

/*
 * A guest address from 8 input bytes: window (raw >> 56) % FZ_NWIN, offset
 * (raw & 0xffffffff) % (window size + 4096), so low bits (alignment)
 * survive and one page past the end is reachable. Seeds encode window w,
 * offset o as FZ_ADDR(w, o).
 */
#define FZ_ADDR(w, o) ((uint64_t)(w) << 56 | (uint64_t)(o))

static inline uint64_t fz_reloc(uint64_t raw)
{
	const struct fz_win *w = &fz_wins[(raw >> 56) % FZ_NWIN];

	return w->iova + (raw & 0xffffffffu) % (w->size + 4096u);
}

/* Layout of W0 after bring-up. */
#define FZ_NVME_QSZ 32u                     /* entries of every queue */
#define FZ_NVME_ASQ 0x0000u
#define FZ_NVME_ACQ 0x1000u
#define FZ_NVME_IOSQ(q) (0x2000u * (q))     /* q = 1..3 */
#define FZ_NVME_IOCQ(q) (0x2000u * (q) + 0x1000u)
#define FZ_NVME_SHADOW 0x8000u              /* Doorbell Buffer Config pages */
#define FZ_NVME_EVIDX 0x9000u
#define FZ_NVME_FREE 0xa000u                /* free for lists and data up to 0x10000; all of W1 */
#define FZ_NVME_NS_BYTES (256u * 1024u)     /* namespace 1 (RAM); namespace 2 is null */

enum {
	/* u8 fix, 64 bytes SQE: one admin command; fix is FZ_FIX_* */
	FZ_NVME_OP_ADMIN,
	/* u8 qid (1 + qid % 3), u8 fix, 64 bytes SQE: one I/O command */
	FZ_NVME_OP_IO,
	/* u8 win, u16 off, u8 len, len + 1 bytes: guest memory (windows with an fd) */
	FZ_NVME_OP_MEM,
	/* u8 win, u16 off, u8 mode, then mode 0: u8 n, n x (u8 w, u8 page) entries at
	 * page * 4096 of window w; mode 1: u16 n, u8 w, u8 page: n consecutive pages;
	 * w >= 0x80: u64 raw entry instead */
	FZ_NVME_OP_PRP_LIST,
	/* u8 win, u16 off, u8 n (1 + n % 16), n x (u64 addr as fz_reloc, u32 len, u8 type) */
	FZ_NVME_OP_SGL,
	/* u16 idx (% 1024), u32 value, u8 how: 0 trapped write, 1 the mapped page, 2 shadow */
	FZ_NVME_OP_DOORBELL,
	/* u16 off (% 0x2000), u8 size (1 + size % 16), u8 write, 8 bytes value: BAR0 */
	FZ_NVME_OP_REG,
	/* u8 rounds (1 + rounds % 8): poll every queue, then reap the host's CQs */
	FZ_NVME_OP_POLL,
	/* u8 psdt, u8 fix, 2 x u64 dptr, u32 len, u8 prot, u8 max: vfr_nvme_map_data, checked */
	FZ_NVME_OP_MAP,
	/* u8 win, u8 how: unmap (bit 0: quiesce first, bit 1: all windows), or map again */
	FZ_NVME_OP_WINDOW,
	/* u8 kind: 0 DEVICE_RESET, 1 FLR, 2 CC.EN = 0, 3 CC.SHN normal, 4 D3hot and back */
	FZ_NVME_OP_RESET,
	/* u16 off, u8 size (1, 2, 4), u8 write, u32 value: config space */
	FZ_NVME_OP_CFG,
	/* signal every ioeventfd the host watches and run its handler */
	FZ_NVME_OP_IOEVENTFD,
	/* the bring-up again, with u8 cfg (the queue pairs and DBBUF bits of it) */
	FZ_NVME_OP_BRINGUP,
	/* arm and disarm every queue as a sleeping worker does; INTx resample */
	FZ_NVME_OP_ARM,
	FZ_NVME_OP_NR,
};

/* fix bits of ADMIN, IO and MAP: rewrite fields so that they point somewhere */
#define FZ_FIX_DPTR0 0x01u   /* dptr[0] = fz_reloc(dptr[0]) */
#define FZ_FIX_DPTR1 0x02u   /* dptr[1] = fz_reloc(dptr[1]) */
#define FZ_FIX_NSID 0x04u    /* nsid %= 4 (namespaces 1 and 2 exist) */
#define FZ_FIX_LBA 0x08u     /* SLBA %= 1024, NLB %= 256 */
#define FZ_FIX_CID 0x10u     /* the host picks the command id */
#define FZ_FIX_NORING 0x20u  /* queue the entry but ring no doorbell */
#define FZ_FIX_NOPOLL 0x40u  /* do not poll afterwards */

/* ---- fuzz_pci: PCI config space, capabilities, MSI-X table and PBA ---- */

/* Byte 0 % FZ_PCI_DEV_NR: the device whose config space is fuzzed. */
enum {
	FZ_PCI_DEV_GPIO,  /* conventional PCI, PM, I/O BAR2 */
	FZ_PCI_DEV_NVME,  /* PCIe, PM, MSI-X table and PBA in BAR4 */
	FZ_PCI_DEV_ZOO,   /* every capability: MSI with masks, MSI-X over BAR2 and BAR3,
			   * vendor, PCIe, DSN, extended vendor; a cfg hook for the rest */
	FZ_PCI_DEV_NR,
};

enum {
	/* u16 off, u8 size: config read of 1 + size % 16 bytes, or 0x100 * (1 + size - 0xf0)
	 * bytes from 0xf0 up (all of it: 0xff) */
	FZ_PCI_OP_CFG_READ,
	/* u16 off, u8 size (as above), size bytes: config write */
	FZ_PCI_OP_CFG_WRITE,
	/* u8 bar (% 7: BAR0-5, ROM), u32 off, u8 size (1 + % 16), u8 write, 16 bytes */
	FZ_PCI_OP_BAR,
	/* u8 index (% 5 irq index), u16 vector: the device raises it */
	FZ_PCI_OP_TRIGGER,
	/* u8 index, u16 vector, u8 how: 0 assign an eventfd, 1 de-assign, 2 client
	 * mask, 3 client unmask, 4 disable the index (as SET_IRQS would) */
	FZ_PCI_OP_IRQS,
	/* u8 why: device reset (DEVICE_RESET, FLR, ...): config space is power-on again */
	FZ_PCI_OP_RESET,
	/* the client goes away (its eventfds and masks too) */
	FZ_PCI_OP_DETACH,
	FZ_PCI_OP_NR,
};

#endif /* VFURT_TESTS_FUZZ_FORMATS_H */
