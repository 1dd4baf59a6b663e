#!/usr/bin/env bash
# vmm scenario live: under a running guest, an NVMe namespace is grown, a second one added and a GPIO card unplugged, through vfu-ctl.
# Usage: test_vmm_live.sh VFURT_BIN CACHE_DIR
set -u
. "$(dirname "$0")/vmm-lib.sh"
vmm_init live "$1" "$2"
command -v python3 >/dev/null || vmm_skip "python3 is needed to speak QMP"
CTL=$(dirname "$VFURT")/vfu-ctl
[ -x "$CTL" ] || { echo "vfu-ctl not found next to $VFURT"; exit 1; }

VMM_CONVENTIONAL_PCI="$T/gpio0.sock"
daemon_start d --cores=0 --control-socket "$T/ctl.sock" \
	--device nvme,name=nv0,socket="$T/nvme0.sock",backend=ram,size=64M,queues=2 \
	--device gpio,name=g0,socket="$T/gpio0.sock" || vmm_finish

# ctl_step NAME ARGS...: one vfu-ctl call, recorded
ctl_step() {
	local n=$1 out
	shift
	if out=$("$CTL" --socket "$T/ctl.sock" "$@" 2>&1); then
		record "$n" PASS "vfu-ctl $*: $(tr '\n' ' ' <<<"$out" | cut -c1-160)"
	else
		record "$n" FAIL "vfu-ctl $* failed: $(tr '\n' ' ' <<<"$out")"
	fi
}

VMM_HOTPLUG=1 guest_start g live "" "$T/nvme0.sock" "$T/gpio0.sock"
if guest_wait_line g "VFURT-LIVE ready" "$VMM_TIMEOUT"; then
	ctl_step ctl-ns-resize ns-resize nv0 1 128M
	guest_wait_line g "VFURT-LIVE resized" 150
	ctl_step ctl-ns-add ns-add nv0 backend=ram size=32M
	guest_wait_line g "VFURT-LIVE added" 150
	# the operator's unplug: vfu-ctl remove waits (QEMU 10.2 sets no REQ eventfd) while QMP
	# device_del has the guest release the card, and QEMU then closes the socket
	"$CTL" --socket "$T/ctl.sock" remove g0 --timeout 120000 >"$T/remove.out" 2>&1 &
	rpid=$!
	sleep 1
	reply=$(vmm_qmp g '{"execute":"device_del","arguments":{"id":"dev1"}}' 2>&1)
	if [[ "$reply" == *'"return"'* ]]; then
		record qmp-device-del PASS "QMP device_del dev1: $reply"
	else
		record qmp-device-del FAIL "QMP device_del dev1: $reply"
	fi
	if wait "$rpid" && grep -q released "$T/remove.out"; then
		record ctl-remove PASS "vfu-ctl remove: $(tr '\n' ' ' <"$T/remove.out")"
	else
		record ctl-remove FAIL "vfu-ctl remove: $(tr '\n' ' ' <"$T/remove.out")"
	fi
	if [ ! -e "$T/gpio0.sock" ]; then
		record socket-gone PASS "the card's socket file is gone"
	else
		record socket-gone FAIL "$T/gpio0.sock still exists"
	fi
else
	record g-ready FAIL "the guest never reported VFURT-LIVE ready"
fi
guest_wait g
require g-nvme-bind g-gpio-bind g-ns-resize g-raw-io-grown g-ns-add g-raw-io-ns2 g-unplug \
	g-raw-io-after-unplug g-dmesg-clean
daemon_alive d
daemon_stop d
vmm_finish
