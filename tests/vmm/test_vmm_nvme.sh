#!/usr/bin/env bash
# vmm scenario nvme: mmap doorbells, busy worker, MSI-X; raw O_DIRECT I/O and an ext4 round trip in the guest.
# Usage: test_vmm_nvme.sh VFURT_BIN CACHE_DIR
set -u
. "$(dirname "$0")/vmm-lib.sh"
vmm_init nvme "$1" "$2"

daemon_start d --cores=0 --poll=busy \
	--device nvme,socket="$T/nvme0.sock",backend=ram,size=1G,queues=4,doorbells=mmap || vmm_finish
guest_boot g nvme "" "$T/nvme0.sock"
require g-nvme-bind g-nvme-ns g-raw-io-a g-mkfs-a g-fs-data-a g-fsck-a g-irq-kind g-irq-count g-dmesg-clean
daemon_alive d
daemon_stop d
vmm_finish
