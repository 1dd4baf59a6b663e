#!/usr/bin/env bash
# Command-line tests of vfu-rt and vfu-ctl: usage errors, serving, SIGTERM cleanup.
set -u
VFURT=$1
VFUCTL=$2
dir=$(mktemp -d /tmp/vfurt-cli-XXXXXX)
pass=0
fail=0
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$dir"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; }

# expect_exit CODE PATTERN DESCRIPTION -- command...
expect_exit() {
	local code=$1 pat=$2 what=$3
	shift 4
	local out rc
	out=$("$@" 2>&1 </dev/null)
	rc=$?
	if [ "$rc" -eq "$code" ] && grep -qE -- "$pat" <<<"$out"; then
		ok "$what"
	else
		bad "$what (exit $rc, want $code; output: $(head -c 300 <<<"$out"))"
	fi
}

wait_for_socket() {
	for _ in $(seq 1 100); do
		[ -S "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

expect_exit 0 "Usage: vfu-rt" "--help" -- "$VFURT" --help
expect_exit 0 "^vfu-rt [0-9]+\.[0-9]+" "--version" -- "$VFURT" --version
expect_exit 2 "no devices" "no devices is a usage error" -- "$VFURT"
expect_exit 2 "unknown device type 'nosuch'" "unknown type" -- "$VFURT" --device nosuch,socket=$dir/x.sock
expect_exit 2 "missing socket" "missing socket" -- "$VFURT" --device gpio
expect_exit 2 "unknown key 'color'" "unknown key" -- "$VFURT" --device gpio,socket=$dir/x.sock,color=red
expect_exit 2 "expected key=value" "malformed key" -- "$VFURT" --device gpio,socket=$dir/x.sock,oops
expect_exit 2 "socket_mode='9'" "bad socket mode" -- "$VFURT" --device gpio,socket=$dir/x.sock,socket_mode=9
expect_exit 2 "toggle_period='0'" "bad gpio parameter" -- "$VFURT" --device gpio,socket=$dir/x.sock,toggle_period=0
expect_exit 2 "log-level 'loud'" "bad log level" -- "$VFURT" --log-level loud --device gpio,socket=$dir/x.sock
expect_exit 2 "unrecognized option|invalid option" "unknown option" -- "$VFURT" --frobnicate
expect_exit 1 "cannot listen on $dir/nodir/x.sock" "socket in a missing directory" -- "$VFURT" --device gpio,socket=$dir/nodir/x.sock
touch "$dir/file"
expect_exit 1 "not a socket" "socket path is a regular file" -- "$VFURT" --device gpio,socket=$dir/file
[ ! -e "$dir/x.sock" ] && ok "failed starts leave no socket file" || bad "failed start left $dir/x.sock"

# serve two devices
"$VFURT" --device gpio,socket=$dir/g0.sock,socket_mode=0600 \
	--device gpio,socket=$dir/g1.sock,name=gpio1,toggle_period=2 2>"$dir/log" &
pid=$!
pids+=("$pid")
if wait_for_socket "$dir/g0.sock" && wait_for_socket "$dir/g1.sock"; then
	ok "two devices listening"
else
	bad "sockets did not appear: $(cat "$dir/log")"
fi
mode=$(stat -c %a "$dir/g0.sock" 2>/dev/null)
[ "$mode" = "600" ] && ok "socket_mode applied" || bad "socket mode is $mode"

expect_exit 1 "another server is listening" "second server on a live socket" -- "$VFURT" --device gpio,socket=$dir/g0.sock
info=$("$VFUCTL" info "$dir/g0.sock" 2>&1)
if grep -qi "494f" <<<"$info" && grep -qi "0dc8" <<<"$info"; then ok "vfu-ctl info shows the IDIO-16 IDs"; else bad "vfu-ctl info: $(head -c 400 <<<"$info")"; fi
grep -qiE "BAR2|Region 2" <<<"$info" && ok "vfu-ctl info lists BAR2" || bad "vfu-ctl info lacks BAR2"
expect_exit 0 "494f" "vfu-ctl info on the second device" -- "$VFUCTL" info "$dir/g1.sock"
expect_exit 2 "" "vfu-ctl without arguments" -- "$VFUCTL"
expect_exit 1 "" "vfu-ctl on a missing socket" -- "$VFUCTL" info "$dir/none.sock"

kill -TERM "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 0 ] && ok "SIGTERM exits 0" || bad "SIGTERM exit code $rc"
[ ! -e "$dir/g0.sock" ] && [ ! -e "$dir/g1.sock" ] && ok "sockets removed on exit" || bad "sockets left behind"
grep -q "shutting down" "$dir/log" && ok "shutdown logged" || bad "no shutdown line in log"

# SIGINT while a client is connected, and a stale socket file from a killed run
"$VFURT" --device gpio,socket=$dir/g2.sock 2>>"$dir/log" &
pid=$!
pids+=("$pid")
wait_for_socket "$dir/g2.sock"
kill -9 "$pid"; wait "$pid" 2>/dev/null
[ -S "$dir/g2.sock" ] && ok "killed server leaves a stale socket" || bad "no stale socket"
"$VFURT" --device gpio,socket=$dir/g2.sock 2>>"$dir/log" &
pid=$!
pids+=("$pid")
sleep 0.2
if kill -0 "$pid" 2>/dev/null && "$VFUCTL" info "$dir/g2.sock" >/dev/null 2>&1; then
	ok "stale socket replaced"
else
	bad "stale socket not replaced: $(tail -3 "$dir/log")"
fi
kill -INT "$pid"
wait "$pid"
rc=$?
[ "$rc" -eq 0 ] && ok "SIGINT exits 0" || bad "SIGINT exit code $rc"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
