#!/usr/bin/env bash
# vmm scenario upgrade: vfu-rt is live-upgraded 4 times (vfu-ctl upgrade) while the guest runs verified NVMe and GPIO I/O.
# Usage: test_vmm_upgrade.sh VFURT_BIN CACHE_DIR
# VFURT_UPGRADE_LOG=debug runs the daemon at --log-level debug (for a failure's story).
set -u
. "$(dirname "$0")/vmm-lib.sh"
vmm_init upgrade "$1" "$2"
CTL=$(dirname "$VFURT")/vfu-ctl
[ -x "$CTL" ] || { echo "vfu-ctl not found next to $VFURT"; exit 1; }
UPGRADES=4
GAP=3 # seconds between upgrades, at least
RUN=24 # seconds of the guest's I/O loop: the upgrades must fit in it

VMM_CONVENTIONAL_PCI="$T/gpio0.sock"
daemon_start d --cores=0 --log-level "${VFURT_UPGRADE_LOG:-info}" --control-socket "$T/ctl.sock" \
	--device nvme,name=nv0,socket="$T/nvme0.sock",backend=ram,size=512M,queues=2 \
	--device gpio,name=g0,socket="$T/gpio0.sock",toggle_period=3 || vmm_finish

# rounds: how many I/O rounds the guest finished so far
rounds() { tr -d '\r' <"$T/g.console" | grep -c '^VFURT-UPGRADE round [0-9]* ok'; }

# proc_gone PID SECONDS: 0 once PID has exited (no /proc entry, or a zombie nobody reaped:
# the old processes are orphans of PID 1). Sets EXIT_INFO to what is known of its exit.
proc_gone() {
	local pid=$1 _ st
	EXIT_INFO=
	for _ in $(seq $(($2 * 10))); do
		if [ ! -e "/proc/$pid/stat" ]; then
			EXIT_INFO="exited and reaped"
			return 0
		fi
		# fields after "(comm)": 3 is the state, 52 the exit status in waitpid(2) form
		st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null)
		if [ "${st%% *}" = Z ]; then
			# shellcheck disable=SC2086 # one word per field
			set -- "$pid" "$2" $st
			local ws=${52:-}
			[ -n "$ws" ] && EXIT_INFO="zombie, exit status $((ws >> 8)), signal $((ws & 127))"
			return 0
		fi
		[ -z "$st" ] && { EXIT_INFO="exited and reaped"; return 0; }
		sleep 0.1
	done
	return 1
}

# exit_ok: EXIT_INFO says exit 0 (or cannot tell: reaped by someone else)
exit_ok() { [[ "$EXIT_INFO" != *"exit status"* || "$EXIT_INFO" == *"exit status 0, signal 0"* ]]; }

PIDS=("$DPID_d")
cur=$DPID_d
guest_start g upgrade "vfurt.run=$RUN" "$T/nvme0.sock" "$T/gpio0.sock"
if guest_wait_line g "VFURT-UPGRADE ready" "$VMM_TIMEOUT"; then
	record ready PASS "the guest runs its I/O loop ($RUN s); daemon pid $cur"
	# let the loop get going before the first upgrade
	for _ in $(seq 300); do [ "$(rounds)" -ge 2 ] && break; sleep 0.1; done
	for k in $(seq "$UPGRADES"); do
		if grep -q 'VFURT-UPGRADE loop-end' "$T/g.console"; then
			record upgrade-"$k" FAIL "the guest's I/O loop ended before upgrade $k (raise RUN or see g-io-loop)"
			break
		fi
		r0=$(rounds)
		t0=$(date +%s%N)
		out=$("$CTL" --socket "$T/ctl.sock" upgrade --timeout-ms 20000 2>"$T/ctl.err")
		rc=$?
		ms=$((($(date +%s%N) - t0) / 1000000))
		out=$(tr '\n' ' ' <<<"$out")
		# vfu-ctl's stderr: a note, or the failure's reason
		[ -s "$T/ctl.err" ] && out="$out (vfu-ctl stderr: $(tr '\n' ' ' <"$T/ctl.err"))"
		old=$(sed -n 's/.*upgraded: pid \([0-9]*\) -> \([0-9]*\),.*/\1/p' <<<"$out")
		new=$(sed -n 's/.*upgraded: pid \([0-9]*\) -> \([0-9]*\),.*/\2/p' <<<"$out")
		if [ "$rc" -ne 0 ] || [ -z "$new" ]; then
			record upgrade-"$k" FAIL "vfu-ctl upgrade exit $rc after $ms ms (guest at round $r0): $out"
			break
		fi
		VMM_PIDS+=("$new")
		PIDS+=("$new")
		if [ "$old" = "$cur" ] && [ "$new" != "$cur" ] && kill -0 "$new" 2>/dev/null; then
			record upgrade-"$k" PASS "at guest round $r0, $ms ms: $out"
		else
			record upgrade-"$k" FAIL "expected pid $cur -> a new running pid, got: $out"
		fi
		# the old process leaves by itself, with status 0
		if proc_gone "$cur" 10; then
			if [ "$cur" = "$DPID_d" ]; then
				wait "$cur"
				st=$?
				EXIT_INFO="exit status $st, signal 0 (reaped by the test)"
			fi
			if exit_ok; then
				record old-exit-"$k" PASS "old pid $cur: $EXIT_INFO"
			else
				record old-exit-"$k" FAIL "old pid $cur: $EXIT_INFO"
			fi
		else
			record old-exit-"$k" FAIL "old pid $cur still running 10 s after the upgrade"
		fi
		cur=$new
		# the guest's I/O goes on with the new process: two more rounds, as the loop reports
		for _ in $(seq 600); do
			[ "$(rounds)" -ge $((r0 + 2)) ] && break
			grep -q 'VFURT-UPGRADE loop-end' "$T/g.console" && break
			sleep 0.1
		done
		r1=$(rounds)
		if [ "$r1" -ge $((r0 + 2)) ]; then
			record io-after-"$k" PASS "guest rounds $r0 -> $r1 after upgrade $k"
		else
			record io-after-"$k" FAIL "guest rounds $r0 -> $r1 within 60 s of upgrade $k; last console line: $(tr -d '\r' <"$T/g.console" | grep -v '^$' | tail -1)"
		fi
		[ "$k" -lt "$UPGRADES" ] && sleep $((GAP - (($(date +%s%N) - t0) / 1000000000))) 2>/dev/null
	done
	if grep -q 'VFURT-UPGRADE loop-end' "$T/g.console"; then
		record upgrades-in-loop FAIL "the guest's loop had ended by the last upgrade"
	else
		record upgrades-in-loop PASS "all upgrades done while the guest's I/O loop ran (round $(rounds))"
	fi
else
	record ready FAIL "the guest never reported VFURT-UPGRADE ready"
fi
guest_wait g
require g-nvme-bind g-gpio-bind g-mkfs-u g-io-loop g-raw-verify g-fsck-u g-fs-verify \
	g-gpio-input-16 g-gpio-input-24 g-gpio-output g-dmesg-upgrade g-dmesg-clean \
	$(for k in $(seq "$UPGRADES"); do printf 'upgrade-%s ' "$k"; done) io-after-"$UPGRADES"

# QEMU saw nothing of the upgrades: no vfio-user error, no socket closed (the GPIO card's
# error-recovery warning is expected, vmm_check_err_irq)
bad=$(grep -v 'Could not enable error recovery' "$T/g.qemu" | grep -v '^$' | head -5 | tr '\n' ' ')
if [ -z "$bad" ]; then
	record qemu-stderr PASS "QEMU's stderr has no vfio-user error"
else
	record qemu-stderr FAIL "QEMU: $bad"
fi

# The daemons: the last one serves, every earlier one is gone; the log has no error.
if [ "$cur" != "$DPID_d" ] && kill -0 "$cur" 2>/dev/null; then
	record daemon-alive PASS "pid $cur serves (first was $DPID_d; pids ${PIDS[*]})"
else
	record daemon-alive FAIL "pid $cur (first $DPID_d) is not serving"
fi
left=
for p in "${PIDS[@]}"; do
	[ "$p" = "$cur" ] && continue
	proc_gone "$p" 1 || left="$left $p"
done
if [ -z "$left" ]; then
	record old-gone PASS "the $((${#PIDS[@]} - 1)) earlier pids are gone"
else
	record old-gone FAIL "earlier pids still running:$left"
fi
errs=$(grep -E ': (error|warn|warning|crit|alert|emerg):' "$T/d.log" | head -5 | tr '\n' ' ')
if [ -z "$errs" ]; then
	record daemon-log PASS "no warning or error in the daemons' log ($(grep -c 'upgrade: took over' "$T/d.log") take-overs)"
else
	record daemon-log FAIL "$errs"
fi
# SIGTERM stops the last one (not the test's child: its exit status from /proc if unreaped)
kill -TERM "$cur" 2>/dev/null
if proc_gone "$cur" 10; then
	if exit_ok; then
		record daemon-stop PASS "pid $cur stopped on SIGTERM: $EXIT_INFO"
	else
		record daemon-stop FAIL "pid $cur on SIGTERM: $EXIT_INFO"
	fi
else
	kill -9 "$cur" 2>/dev/null
	record daemon-stop FAIL "pid $cur ignored SIGTERM for 10 s: $(tail -3 "$T/d.log" | tr '\n' ' ')"
fi
vmm_finish
