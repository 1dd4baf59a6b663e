#!/usr/bin/env bash
# vmm scenario nvme-ioeventfd: trapped doorbells (shadow doorbells in the guest) on an adaptive, sleeping worker.
# Usage: test_vmm_nvme_ioeventfd.sh VFURT_BIN CACHE_DIR
set -u
. "$(dirname "$0")/vmm-lib.sh"
vmm_init nvme_ioeventfd "$1" "$2"

daemon_start d --cores=0 --poll=adaptive \
	--device nvme,socket="$T/nvme0.sock",backend=ram,size=1G,queues=4,doorbells=ioeventfd || vmm_finish
guest_boot g nvme "" "$T/nvme0.sock"
require g-nvme-bind g-nvme-ns g-raw-io-a g-mkfs-a g-fs-data-a g-fsck-a g-irq-kind g-irq-count g-dmesg-clean
daemon_alive d
daemon_stop d
vmm_finish
