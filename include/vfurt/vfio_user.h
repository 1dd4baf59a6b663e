/* vfio-user wire format: message header, command numbers and payload structs. */
#ifndef VFURT_VFIO_USER_H
#define VFURT_VFIO_USER_H

/*
 * Layouts follow QEMU's docs/interop/vfio-user.rst. All fields are in host
 * byte order (the protocol is same-host only in this revision). Structs that
 * the protocol borrows from VFIO (vfio_device_info, vfio_region_info,
 * vfio_irq_info, vfio_irq_set, the region capability chain) are taken from
 * <linux/vfio.h> unchanged.
 */

#include <stdint.h>
#include <linux/vfio.h>

#ifdef __cplusplus
#define VFURT_STATIC_ASSERT(c, m) static_assert(c, m)
extern "C" {
#else
#define VFURT_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

/* Protocol version this implementation speaks. */
#define VFIO_USER_MAJOR 0
#define VFIO_USER_MINOR 0

enum vfio_user_command {
	VFIO_USER_VERSION = 1,
	VFIO_USER_DMA_MAP = 2,
	VFIO_USER_DMA_UNMAP = 3,
	VFIO_USER_DEVICE_GET_INFO = 4,
	VFIO_USER_DEVICE_GET_REGION_INFO = 5,
	VFIO_USER_DEVICE_GET_REGION_IO_FDS = 6,
	VFIO_USER_DEVICE_GET_IRQ_INFO = 7,
	VFIO_USER_DEVICE_SET_IRQS = 8,
	VFIO_USER_REGION_READ = 9,
	VFIO_USER_REGION_WRITE = 10,
	VFIO_USER_DMA_READ = 11,
	VFIO_USER_DMA_WRITE = 12,
	VFIO_USER_DEVICE_RESET = 13,
	VFIO_USER_DIRTY_PAGES = 14, /* retired: always rejected */
	VFIO_USER_REGION_WRITE_MULTI = 15,
	VFIO_USER_DEVICE_FEATURE = 16,
	VFIO_USER_MIG_DATA_READ = 17,
	VFIO_USER_MIG_DATA_WRITE = 18,
	VFIO_USER_MAX_COMMAND,
};

/* Header flags. */
#define VFIO_USER_F_TYPE_MASK 0xfu
#define VFIO_USER_F_TYPE_COMMAND 0x0u
#define VFIO_USER_F_TYPE_REPLY 0x1u
#define VFIO_USER_F_NO_REPLY (1u << 4)
#define VFIO_USER_F_ERROR (1u << 5)

struct vfio_user_header {
	uint16_t msg_id;
	uint16_t cmd;
	uint32_t msg_size; /* header included */
	uint32_t flags;
	uint32_t error_no;
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_header) == 16, "header is 16 bytes");

/* VERSION request and reply; NUL-terminated JSON follows. */
struct vfio_user_version {
	uint16_t major;
	uint16_t minor;
	char data[];
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_version) == 4, "version is 4 bytes");

/* Capability defaults from the spec. */
#define VFIO_USER_DEFAULT_MAX_FDS 1u
#define VFIO_USER_DEFAULT_MAX_DATA_XFER (1u << 20)
#define VFIO_USER_DEFAULT_MAX_DMA_MAPS 65535u
#define VFIO_USER_DEFAULT_PGSIZES 4096ull

#define VFIO_USER_DMA_MAP_FLAG_READ (1u << 0)
#define VFIO_USER_DMA_MAP_FLAG_WRITE (1u << 1)

struct vfio_user_dma_map {
	uint32_t argsz;
	uint32_t flags;
	uint64_t offset;
	uint64_t addr;
	uint64_t size;
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_dma_map) == 32, "dma_map is 32 bytes");

#define VFIO_USER_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP (1u << 0)
#define VFIO_USER_DMA_UNMAP_FLAG_ALL (1u << 1)

struct vfio_user_dma_unmap {
	uint32_t argsz;
	uint32_t flags;
	uint64_t addr;
	uint64_t size;
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_dma_unmap) == 24, "dma_unmap is 24 bytes");

/* REGION_READ / REGION_WRITE request and reply; data follows for writes
 * (request) and reads (reply). */
struct vfio_user_region_access {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
	uint8_t data[];
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_region_access) == 16, "region access is 16 bytes");

/* DMA_READ / DMA_WRITE (server -> client), spec layout: 8-byte count. */
struct vfio_user_dma_access {
	uint64_t addr;
	uint64_t count;
	uint8_t data[];
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_dma_access) == 16, "dma access is 16 bytes");

/* REGION_WRITE_MULTI */
#define VFIO_USER_MULTI_DATA 8
#define VFIO_USER_MULTI_MAX 200 /* QEMU's bound on entries per message */
struct vfio_user_write_multi_entry {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
	uint8_t data[VFIO_USER_MULTI_DATA];
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_write_multi_entry) == 24, "multi entry is 24 bytes");

struct vfio_user_write_multi {
	uint64_t wr_cnt;
	struct vfio_user_write_multi_entry wrs[];
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_write_multi) == 8, "multi header is 8 bytes");

/* DEVICE_GET_REGION_IO_FDS */
struct vfio_user_region_io_fds_request {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_region_io_fds_request) == 16, "io fds request is 16 bytes");

#define VFIO_USER_IO_FD_TYPE_IOEVENTFD 0u
#define VFIO_USER_IO_FD_TYPE_IOREGIONFD 1u

/* ioeventfd flags, as in KVM_IOEVENTFD */
#define VFIO_USER_IOEVENTFD_FLAG_DATAMATCH (1u << 0)
#define VFIO_USER_IOEVENTFD_FLAG_PIO (1u << 1)
/* ioregionfd flags */
#define VFIO_USER_IOREGIONFD_FLAG_PIO (1u << 0)
#define VFIO_USER_IOREGIONFD_FLAG_POSTED_WRITES (1u << 1)

struct vfio_user_sub_region_io_fd {
	uint64_t offset;
	uint64_t size;
	uint32_t fd_index;
	uint32_t type;
	uint32_t flags;
	uint32_t padding;
	uint64_t datamatch_or_user_data;
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_sub_region_io_fd) == 40, "sub-region is 40 bytes");

struct vfio_user_region_io_fds_reply {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
	struct vfio_user_sub_region_io_fd sub_regions[];
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_region_io_fds_reply) == 16, "io fds reply header is 16 bytes");

/* The ioregionfd wire format (proposed KVM_SET_IOREGION): KVM writes a
 * command, the server answers reads (and writes without POSTED_WRITES). */
#define VFIO_USER_IOREGIONFD_CMD_READ 0u
#define VFIO_USER_IOREGIONFD_CMD_WRITE 1u
#define VFIO_USER_IOREGIONFD_INFO_CMD(info) ((info) & 0xfu)
#define VFIO_USER_IOREGIONFD_INFO_SIZE(info) (1u << (((info) >> 4) & 0x3u))
#define VFIO_USER_IOREGIONFD_INFO_RESP(info) (((info) >> 6) & 0x1u)
#define VFIO_USER_IOREGIONFD_INFO(cmd, size_exp, resp) \
	((uint32_t)(cmd) | ((uint32_t)(size_exp) << 4) | ((uint32_t)(resp) << 6))

struct vfio_user_ioregionfd_cmd {
	uint32_t info;
	uint32_t padding;
	uint64_t user_data;
	uint64_t offset; /* within the sub-region */
	uint64_t data;
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_ioregionfd_cmd) == 32, "ioregionfd cmd is 32 bytes");

struct vfio_user_ioregionfd_resp {
	uint64_t data;
	uint8_t pad[24];
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_ioregionfd_resp) == 32, "ioregionfd resp is 32 bytes");

/* DEVICE_FEATURE: same layout as struct vfio_device_feature. */
struct vfio_user_device_feature {
	uint32_t argsz;
	uint32_t flags;
	uint8_t data[];
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_device_feature) == 8, "feature is 8 bytes");

/* MIG_DATA_READ / MIG_DATA_WRITE */
struct vfio_user_mig_data {
	uint32_t argsz;
	uint32_t size;
	uint8_t data[];
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_mig_data) == 8, "mig data is 8 bytes");

/* DEVICE_GET_INFO: the first 16 bytes of struct vfio_device_info (newer
 * kernels append cap_offset, which vfio-user does not carry). */
struct vfio_user_device_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t num_regions;
	uint32_t num_irqs;
} __attribute__((packed));
VFURT_STATIC_ASSERT(sizeof(struct vfio_user_device_info) == 16, "device info is 16 bytes");
VFURT_STATIC_ASSERT(sizeof(struct vfio_region_info) == 32, "vfio_region_info is 32 bytes");
VFURT_STATIC_ASSERT(sizeof(struct vfio_irq_info) == 16, "vfio_irq_info is 16 bytes");
VFURT_STATIC_ASSERT(sizeof(struct vfio_irq_set) == 20, "vfio_irq_set is 20 bytes");

/* Returns the protocol name of a command, or "UNKNOWN". */
static inline const char *vfio_user_cmd_name(uint16_t cmd)
{
	static const char *const names[] = {
		"INVALID", "VERSION", "DMA_MAP", "DMA_UNMAP", "DEVICE_GET_INFO",
		"DEVICE_GET_REGION_INFO", "DEVICE_GET_REGION_IO_FDS",
		"DEVICE_GET_IRQ_INFO", "DEVICE_SET_IRQS", "REGION_READ",
		"REGION_WRITE", "DMA_READ", "DMA_WRITE", "DEVICE_RESET",
		"DIRTY_PAGES", "REGION_WRITE_MULTI", "DEVICE_FEATURE",
		"MIG_DATA_READ", "MIG_DATA_WRITE",
	};
	return cmd < sizeof(names) / sizeof(names[0]) ? names[cmd] : "UNKNOWN";
}

#ifdef __cplusplus
}
#endif

#endif /* VFURT_VFIO_USER_H */
