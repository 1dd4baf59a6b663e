# Shared harness of the vmm suite (sourced): finds QEMU, runs vfu-rt and guests, collects checks.
#
# A test script does:
#   . vmm-lib.sh; vmm_init NAME VFURT_BIN CACHE_DIR
#   daemon_start d0 --device nvme,socket=$T/nvme0.sock,...
#   guest_boot g1 nvme "$T/nvme0.sock"        # boots, waits, records the guest's checks
#   vmm_finish                                # summary, logs of failures, exit status
# Environment: VFURT_QEMU (QEMU 10.1+ binary), VFURT_QEMU_DATA (its -L directory),
# VFURT_VMM_TIMEOUT (seconds per boot, 180), VFURT_VMM_KEEP=1 (keep the temp directory).

VMM_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VMM_SRCDIR=$(cd "$VMM_HERE/../.." && pwd)
VMM_TIMEOUT=${VFURT_VMM_TIMEOUT:-180}
VMM_PASS=0
VMM_FAIL=0
VMM_FAILED_NAMES=()
VMM_PIDS=()
VMM_DOGS=()
VMM_LOGS=() # files shown when something failed

vmm_skip() { echo "SKIP: $*"; exit 77; }

# Print the QEMU to use, or nothing: $VFURT_QEMU, else ../shared/qemu next to the source tree.
vmm_find_qemu() {
	local q
	if [ -n "${VFURT_QEMU:-}" ]; then
		q=$VFURT_QEMU
	else
		q=$VMM_SRCDIR/../shared/qemu/qemu-system-x86_64
	fi
	[ -x "$q" ] && readlink -f "$q"
}

# QEMU must be 10.1+ and have the vfio-user client; sets QEMU and QEMU_DATA_ARGS.
vmm_check_qemu() {
	local ver maj min
	QEMU=$(vmm_find_qemu)
	[ -n "$QEMU" ] || vmm_skip "no QEMU 10.1+ with vfio-user-pci (set VFURT_QEMU; looked at ${VFURT_QEMU:-$VMM_SRCDIR/../shared/qemu/qemu-system-x86_64})"
	ver=$("$QEMU" --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
	read -r maj min <<<"$ver"
	if [ -z "$maj" ] || [ "$maj" -lt 10 ] || { [ "$maj" -eq 10 ] && [ "$min" -lt 1 ]; }; then
		vmm_skip "no QEMU 10.1+ with vfio-user-pci ($QEMU is version '${maj:-unknown}${min:+.$min}')"
	fi
	"$QEMU" -device help 2>/dev/null | grep -q '"vfio-user-pci"' ||
		vmm_skip "no QEMU 10.1+ with vfio-user-pci ($QEMU $maj.$min lacks the vfio-user-pci device)"
	QEMU_DATA_ARGS=()
	local data=${VFURT_QEMU_DATA:-$(dirname "$QEMU")/share}
	[ -d "$data" ] && QEMU_DATA_ARGS=(-L "$data")
	echo "# QEMU $maj.$min: $QEMU ${QEMU_DATA_ARGS[*]}"
}

vmm_cleanup() {
	local p
	for p in "${VMM_DOGS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${VMM_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ -n "${T:-}" ] && [ -d "$T" ]; then
		if [ "${VFURT_VMM_KEEP:-0}" = 1 ]; then echo "# kept $T"; else rm -rf "$T"; fi
	fi
}

# vmm_init NAME VFURT_BIN CACHE_DIR: checks, guest build, temp dir $T, cleanup trap.
vmm_init() {
	VMM_NAME=$1
	VFURT=$(readlink -f "$2")
	VMM_CACHE=$3
	[ -x "$VFURT" ] || { echo "vfu-rt binary '$2' not found"; exit 1; }
	vmm_check_qemu
	local rc=0
	bash "$VMM_HERE/guest-build.sh" "$VMM_CACHE" || rc=$?
	[ "$rc" -eq 77 ] && vmm_skip "the guest could not be built (see above)"
	[ "$rc" -eq 0 ] || { echo "guest-build.sh failed ($rc)"; exit 1; }
	VMM_CACHE=$(cd "$VMM_CACHE" && pwd)
	echo "# guest: $(cat "$VMM_CACHE/complete")"
	T=$(mktemp -d "/tmp/vfurt-vmm-$VMM_NAME-XXXXXX")
	export XDG_RUNTIME_DIR=$T # the daemon's default control socket goes here
	trap vmm_cleanup EXIT
	trap 'exit 130' INT TERM
	# The test's initramfs: the cached base plus an archive holding this tree's /init.
	mkdir -p "$T/initroot"
	cp "$VMM_HERE/init.sh" "$T/initroot/init"
	chmod 755 "$T/initroot/init"
	(cd "$T/initroot" && echo init | "$VMM_CACHE/busybox" cpio -o -H newc 2>/dev/null) |
		gzip -1 >"$T/init.cpio.gz"
	cat "$VMM_CACHE/base.cpio.gz" "$T/init.cpio.gz" >"$T/initrd.gz"
	VMM_START=$(date +%s)
}

# --- results -----------------------------------------------------------------------------

# record NAME PASS|FAIL DETAIL: one check, host side or parsed from a guest.
# VMM_KNOWN: names of checks that fail for a reason recorded in docs/testing-vmm.md ("Known
# failures"); they are reported as KNOWN-FAIL and do not fail the test, and a known check
# that passes says so, so that it is taken off the list.
VMM_KNOWN=${VMM_KNOWN:-}

record() {
	local n=$1 r=$2
	shift 2
	if [[ " $VMM_KNOWN " == *" $n "* ]]; then
		if [ "$r" = PASS ]; then
			echo "# known failure $n passes now: take it off VMM_KNOWN"
		else
			echo "VFURT-CHECK $n KNOWN-FAIL $*" | tee -a "$T/.checks"
			return 0
		fi
	fi
	echo "VFURT-CHECK $n $r $*" | tee -a "$T/.checks"
	if [ "$r" = PASS ]; then
		VMM_PASS=$((VMM_PASS + 1))
	else
		VMM_FAIL=$((VMM_FAIL + 1))
		VMM_FAILED_NAMES+=("$n")
	fi
}

vmm_finish() {
	local f
	echo "# $VMM_NAME: $VMM_PASS passed, $VMM_FAIL failed in $(($(date +%s) - VMM_START)) s"
	if [ "$VMM_FAIL" -gt 0 ]; then
		echo "# failed: ${VMM_FAILED_NAMES[*]}"
		for f in "${VMM_LOGS[@]}"; do
			[ -s "$f" ] || continue
			echo "----- last 60 lines of $(basename "$f") -----"
			tail -n 60 "$f" | tr -d '\r'
		done
		exit 1
	fi
	exit 0
}

# --- vfu-rt ------------------------------------------------------------------------------

# daemon_start NAME ARGS...: vfu-rt in the background, logging to $T/NAME.log, and wait for every
# socket= of its --device specs. Sets DPID_NAME.
daemon_start() {
	local name=$1 a s socks=() _
	shift
	for a in "$@"; do
		s=$(sed -n 's/.*[,]socket=\([^,]*\).*/\1/p' <<<"$a")
		[ -n "$s" ] && socks+=("$s")
	done
	"$VFURT" "$@" >>"$T/$name.log" 2>&1 &
	local pid=$!
	VMM_PIDS+=("$pid")
	printf -v "DPID_$name" %s "$pid"
	[[ " ${VMM_LOGS[*]} " == *" $T/$name.log "* ]] || VMM_LOGS+=("$T/$name.log")
	echo "# vfu-rt $* (pid $pid)"
	for _ in $(seq 100); do
		local ready=1
		for s in "${socks[@]}"; do [ -S "$s" ] || ready=0; done
		[ "$ready" = 1 ] && { record "daemon-start-$name" PASS "sockets ready: ${socks[*]}"; return 0; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	record "daemon-start-$name" FAIL "vfu-rt did not serve ${socks[*]}: $(tail -3 "$T/$name.log" | tr '\n' ' ')"
	return 1
}

# daemon_alive NAME: the daemon survived what the guest did.
daemon_alive() {
	local v="DPID_$1"
	if kill -0 "${!v}" 2>/dev/null; then
		record "daemon-alive-$1" PASS "vfu-rt still running"
	else
		wait "${!v}" 2>/dev/null
		record "daemon-alive-$1" FAIL "vfu-rt exited ($?): $(tail -3 "$T/$1.log" | tr '\n' ' ')"
	fi
}

# daemon_stop NAME: SIGTERM, then SIGKILL after 10 s; records that it exited 0.
daemon_stop() {
	local v="DPID_$1" pid _ rc
	pid=${!v}
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
		wait "$pid" 2>/dev/null
		record "daemon-stop-$1" FAIL "vfu-rt ignored SIGTERM for 10 s: $(tail -3 "$T/$1.log" | tr '\n' ' ')"
		return 1
	fi
	wait "$pid"
	rc=$?
	if [ "$rc" -eq 0 ]; then
		record "daemon-stop-$1" PASS "vfu-rt exited 0 on SIGTERM"
	else
		record "daemon-stop-$1" FAIL "vfu-rt exited $rc on SIGTERM: $(tail -3 "$T/$1.log" | tr '\n' ' ')"
	fi
}

# --- guests ------------------------------------------------------------------------------

# guest_start NAME SCENARIO "EXTRA CMDLINE" SOCKET...: QEMU in the background under a hard
# timeout; console in $T/NAME.console, QEMU's stderr in $T/NAME.qemu. Sets GPID_NAME.
guest_start() {
	local name=$1 scenario=$2 extra=$3 s devs=() k=0 place
	shift 3
	for s in "$@"; do
		# VMM_HOTPLUG=1: each device on a PCIe root port of its own (hot-pluggable), with id
		# devK, and a QMP socket at $T/NAME.qmp (vmm_qmp)
		place=
		if [ "${VMM_HOTPLUG:-0}" = 1 ]; then
			devs+=(-device "pcie-root-port,id=rp$k,chassis=$((k + 1)),slot=$((k + 1))")
			place="\"bus\":\"rp$k\",\"id\":\"dev$k\","
		fi
		devs+=(-device "{\"driver\":\"vfio-user-pci\",$place\"socket\":{\"path\":\"$s\",\"type\":\"unix\"}}")
		k=$((k + 1))
	done
	[ "${VMM_HOTPLUG:-0}" = 1 ] && devs+=(-qmp "unix:$T/$name.qmp,server=on,wait=off")
	: >"$T/$name.console"
	VMM_LOGS+=("$T/$name.console" "$T/$name.qemu")
	# QEMU itself is the background job (so $! is QEMU, which the tests kill), and a watchdog
	# kills it after VMM_TIMEOUT seconds.
	"$QEMU" "${QEMU_DATA_ARGS[@]}" -accel tcg \
		-machine q35,memory-backend=mem -m 512M -smp "${VFURT_VMM_SMP:-2}" \
		-object memory-backend-memfd,id=mem,size=512M,share=on \
		-nodefaults -no-user-config -display none -monitor none -no-reboot \
		-serial "file:$T/$name.console" \
		-kernel "$VMM_CACHE/vmlinuz" -initrd "$T/initrd.gz" \
		-append "console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off vfurt.scenario=$scenario nvme_core.admin_timeout=20 nvme_core.io_timeout=20 $extra" \
		"${devs[@]}" </dev/null >"$T/$name.qemu" 2>&1 &
	local pid=$!
	VMM_PIDS+=("$pid")
	printf -v "GPID_$name" %s "$pid"
	vmm_watchdog "$pid" "$VMM_TIMEOUT"
	printf -v "GDOG_$name" %s "$VMM_DOG"
	echo "# guest $name: scenario $scenario $extra, devices $* (pid $pid)"
}

# vmm_watchdog PID SECONDS: SIGKILL PID after SECONDS unless the watchdog (VMM_DOG) is stopped
# first with SIGTERM.
vmm_watchdog() {
	(
		sleep "$2" &
		sp=$!
		trap 'kill $sp 2>/dev/null; exit 0' TERM
		wait $sp
		kill -9 "$1" 2>/dev/null
	) </dev/null >/dev/null 2>&1 &
	VMM_DOG=$!
	VMM_DOGS+=("$VMM_DOG")
}

# guest_wait_line NAME REGEX SECONDS: 0 once the console has a matching line.
guest_wait_line() {
	local _
	for _ in $(seq $(($3 * 10))); do
		grep -qE "$2" "$T/$1.console" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# guest_wait NAME: wait for QEMU's exit and record the guest's checks and the QEMU ones.
guest_wait() {
	local name=$1 v="GPID_$1" d="GDOG_$1" rc
	wait "${!v}"
	rc=$?
	kill -TERM "${!d}" 2>/dev/null
	guest_collect "$name" "$rc"
}

# guest_collect NAME QEMU_EXIT: parse the console; host checks on QEMU's behaviour.
guest_collect() {
	local name=$1 rc=$2
	local con=$T/$name.console err=$T/$name.qemu
	if ! grep -q VFURT-BOOTED "$con"; then
		record "$name-qemu-start" FAIL "QEMU exit $rc before the guest ran /init: $(head -5 "$err" | tr '\n' ' ')"
	fi
	local cname cres cdetail
	while read -r cname cres cdetail; do
		record "$name-$cname" "$cres" "$cdetail"
	done < <(tr -d '\r' <"$con" | grep -o 'VFURT-CHECK .*' | sed 's/^VFURT-CHECK //')
	if grep -q VFURT-DONE "$con"; then
		[ "$rc" -eq 0 ] || record "$name-qemu-exit" FAIL "QEMU exited $rc after the guest powered off: $(tail -3 "$err" | tr '\n' ' ')"
	elif [ "$rc" -eq 137 ]; then
		record "$name-finished" FAIL "guest killed after ${VMM_TIMEOUT}s: hung (last console line: $(tr -d '\r' <"$con" | grep -v '^$' | tail -1))"
	elif grep -q VFURT-BOOTED "$con"; then
		record "$name-finished" FAIL "QEMU exited $rc before the guest finished: $(tail -3 "$err" | tr '\n' ' ')"
	fi
	vmm_check_err_irq "$name" "$err"
}

# QEMU warns "Could not enable error recovery" for a device whose ERR irq count is not 1. The
# kernel's vfio-pci reports 1 for PCI Express functions and 0 for conventional PCI ones, so the
# warning is a failure for a socket unless the test listed it in VMM_CONVENTIONAL_PCI.
vmm_check_err_irq() { # NAME QEMU_STDERR
	local line sock bad='' ok=''
	while read -r line; do
		sock=$(sed -n 's/.*vfio-user:\([^:]*\): Could not enable error recovery.*/\1/p' <<<"$line")
		if [[ " ${VMM_CONVENTIONAL_PCI:-} " == *" $sock "* ]]; then
			ok="$ok $(basename "$sock")"
		else
			bad="$bad $(basename "${sock:-?}")"
		fi
	done < <(grep 'Could not enable error recovery' "$2")
	if [ -n "$bad" ]; then
		record "$1-qemu-err-irq" FAIL "QEMU: 'Could not enable error recovery for the device' for PCIe device(s):$bad (ERR irq count must be 1)"
	elif [ -n "$ok" ]; then
		record "$1-qemu-err-irq" PASS "QEMU warns 'Could not enable error recovery' only for conventional PCI$ok (ERR count 0, as vfio-pci)"
	else
		record "$1-qemu-err-irq" PASS "no 'Could not enable error recovery' from QEMU"
	fi
}

# guest_kill NAME: SIGKILL the guest's QEMU (as a crashing VMM would die).
guest_kill() {
	local v="GPID_$1" d="GDOG_$1"
	kill -9 "${!v}" 2>/dev/null
	wait "${!v}" 2>/dev/null
	kill -TERM "${!d}" 2>/dev/null
}

# vmm_qmp NAME JSON: send one QMP command to guest NAME's monitor (VMM_HOTPLUG=1); prints the
# reply. Needs python3.
vmm_qmp() {
	python3 - "$T/$1.qmp" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()  # greeting
for cmd in ('{"execute":"qmp_capabilities"}', sys.argv[2]):
    f.write(cmd + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" not in r:
            break
print(json.dumps(r))
PY
}

# guest_boot NAME SCENARIO "EXTRA CMDLINE" SOCKET...: start, wait, record.
guest_boot() {
	guest_start "$@"
	guest_wait "$1"
}

# guest_info NAME KEY: a VFURT-INFO KEY=VALUE the guest printed.
guest_info() {
	tr -d '\r' <"$T/$1.console" | grep -o "VFURT-INFO $2=[^ ]*" | head -1 | cut -d= -f2-
}

# require NAME...: each named check must have been recorded (a guest that died early prints
# fewer checks); the missing ones are one failure.
require() {
	local n missing=
	for n in "$@"; do
		grep -q "^VFURT-CHECK $n " "$T/.checks" 2>/dev/null || missing="$missing $n"
	done
	[ -z "$missing" ] || record "${1%%-*}-missing" FAIL "never reported (the guest stopped before them):$missing"
}
