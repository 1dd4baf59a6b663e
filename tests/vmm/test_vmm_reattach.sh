#!/usr/bin/env bash
# vmm scenario reattach: QEMU is SIGKILLed during guest writes; a new QEMU attaches to the same daemon and does I/O.
# Usage: test_vmm_reattach.sh VFURT_BIN CACHE_DIR
set -u
. "$(dirname "$0")/vmm-lib.sh"
vmm_init reattach "$1" "$2"

daemon_start d --cores=0 \
	--device nvme,socket="$T/nvme0.sock",backend=ram,size=1G,queues=2 || vmm_finish
guest_start g1 write-forever "" "$T/nvme0.sock"
if guest_wait_line g1 VFURT-WRITING "$VMM_TIMEOUT"; then
	sleep 1 # well inside the write loop
	guest_kill g1
	record g1-killed PASS "QEMU SIGKILLed while the guest was writing"
else
	guest_kill g1
	guest_collect g1 137
	record g1-killed FAIL "the guest never started writing; nothing to interrupt"
fi
# The daemon must notice the dead client and accept the next one.
detached=0
for _ in $(seq 50); do
	grep -q 'client detached' "$T/d.log" && { detached=1; break; }
	sleep 0.1
done
if [ "$detached" = 1 ]; then
	record d-detach PASS "vfu-rt noticed the dead client: $(grep -m1 'client detached' "$T/d.log")"
else
	record d-detach FAIL "vfu-rt logged no 'client detached' within 5 s of the SIGKILL"
fi
daemon_alive d
guest_boot g2 nvme "" "$T/nvme0.sock"
require g2-nvme-bind g2-nvme-ns g2-raw-io-a g2-fs-data-a g2-fsck-a g2-irq-count g2-dmesg-clean
daemon_alive d
daemon_stop d
vmm_finish
