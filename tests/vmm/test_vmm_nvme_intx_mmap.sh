#!/usr/bin/env bash
# vmm scenario nvme-intx-mmap: the guest runs with pci=nomsi, so the controller interrupts through INTx only;
# mapped doorbells (the default).
# Usage: test_vmm_nvme_intx.sh VFURT_BIN CACHE_DIR
set -u
. "$(dirname "$0")/vmm-lib.sh"
# Known failure (docs/testing-vmm.md): QEMU disables the BAR mmaps when it raises INTx, but
# a guest doorbell write can still reach the mapping first; that EOI is then missed until
# a later BAR access, and the guest sees unclaimed interrupts meanwhile.
VMM_KNOWN="g-intx-rate g-dmesg-clean"
vmm_init nvme_intx_mmap "$1" "$2"

daemon_start d --cores=0 \
	--device nvme,socket="$T/nvme0.sock",backend=ram,size=1G,queues=2 || vmm_finish
guest_boot g nvme-intx "pci=nomsi" "$T/nvme0.sock"
require g-nvme-bind g-nvme-ns g-raw-io-a g-mkfs-a g-fs-data-a g-fsck-a g-irq-kind g-irq-count \
	g-intx-rate g-dmesg-clean
daemon_alive d
daemon_stop d
vmm_finish
