#!/usr/bin/env bash
# vmm scenario nvme-two: two NVMe controllers on two workers (--cores=0-1) in one guest.
# Usage: test_vmm_nvme_two.sh VFURT_BIN CACHE_DIR
set -u
. "$(dirname "$0")/vmm-lib.sh"
vmm_init nvme_two "$1" "$2"

daemon_start d --cores=0-1 \
	--device nvme,socket="$T/nvme0.sock",backend=ram,size=512M,queues=2,core=0 \
	--device nvme,socket="$T/nvme1.sock",backend=ram,size=512M,queues=2,core=1 || vmm_finish
guest_boot g nvme-two "" "$T/nvme0.sock" "$T/nvme1.sock"
require g-nvme-bind g-nvme-ns g-raw-io-c0 g-raw-io-c1 g-fs-data-c0 g-fs-data-c1 g-fsck-c0 g-fsck-c1 \
	g-unique-ids g-dmesg-clean
daemon_alive d
daemon_stop d
vmm_finish
