#!/usr/bin/env bash
# vmm scenario persist: data a guest writes to a file-backed namespace survives a daemon restart.
# Usage: test_vmm_persist.sh VFURT_BIN CACHE_DIR
set -u
. "$(dirname "$0")/vmm-lib.sh"
vmm_init persist "$1" "$2"

img=$T/disk.img
spec="nvme,socket=$T/nvme0.sock,backend=file:$img,size=256M,queues=2"
daemon_start d1 --cores=0 --device "$spec" || vmm_finish
guest_boot g1 persist-write "" "$T/nvme0.sock"
require g1-nvme-bind g1-nvme-ns g1-mkfs-p g1-persist-write
sum=$(guest_info g1 sum)
daemon_alive d1
daemon_stop d1

# The backing file itself: ext4's magic (0xef53 at byte 1080) and the guest's raw marker in the
# last MiB.
if [ -f "$img" ]; then
	magic=$(od -An -tx1 -j1080 -N2 "$img" | tr -d ' ')
	if [ "$magic" = 53ef ]; then
		record host-ext4-magic PASS "ext4 superblock in $(basename "$img")"
	else
		record host-ext4-magic FAIL "no ext4 magic at byte 1080 of the backing file (got '$magic')"
	fi
	if tail -c $((1 << 20)) "$img" | grep -q VFURT-PERSIST-MARK; then
		record host-raw-marker PASS "the guest's raw marker is in the backing file"
	else
		record host-raw-marker FAIL "the guest's raw marker is not in the last MiB of the backing file"
	fi
else
	record host-backing-file FAIL "$img does not exist"
fi

daemon_start d2 --cores=0 --device "$spec" || vmm_finish
guest_boot g2 persist-check "vfurt.sum=${sum:-none}" "$T/nvme0.sock"
require g2-nvme-bind g2-fsck-p g2-persist-data g2-raw-io-p2 g2-dmesg-clean
daemon_alive d2
daemon_stop d2
vmm_finish
