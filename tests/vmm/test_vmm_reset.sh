#!/usr/bin/env bash
# vmm scenario reset: a guest-initiated function reset (sysfs reset) of the NVMe controller, then I/O again.
# Usage: test_vmm_reset.sh VFURT_BIN CACHE_DIR
set -u
. "$(dirname "$0")/vmm-lib.sh"
vmm_init reset "$1" "$2"

daemon_start d --cores=0 \
	--device nvme,socket="$T/nvme0.sock",backend=ram,size=1G,queues=2 || vmm_finish
guest_boot g reset "" "$T/nvme0.sock"
require g-nvme-bind g-raw-io-before g-reset-write g-reset-live g-raw-io-after g-fs-data-after g-dmesg-clean
# The reset reached the device model: one reset when QEMU attached, one more from the guest.
n=$(grep -c 'device reset' "$T/d.log")
if [ "$n" -ge 2 ]; then
	record d-reset-seen PASS "vfu-rt logged $n device resets: $(grep 'device reset' "$T/d.log" | tail -1)"
else
	record d-reset-seen FAIL "vfu-rt logged $n device reset(s); the guest's reset never reached it"
fi
daemon_alive d
daemon_stop d
vmm_finish
