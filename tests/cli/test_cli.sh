#!/usr/bin/env bash
# Command-line tests of vfu-rt and vfu-ctl: usage and config errors, serving, stats, signals, idle CPU.
set -u
VFURT=$(readlink -f "$1")
VFUCTL=$(readlink -f "$2")
SRCDIR=$(cd "$(dirname "$0")/../.." && pwd)
EXAMPLE=$SRCDIR/examples/vfu-rt.json
dir=$(mktemp -d /tmp/vfurt-cli-XXXXXX)
pass=0
fail=0
pids=()
# Default control sockets ($XDG_RUNTIME_DIR/vfu-rt/PID.ctl) land in the test directory.
export XDG_RUNTIME_DIR=$dir

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

# Every vfu-rt runs under timeout 10, so a hang fails the test instead of blocking it.
rt() { timeout 10 "$VFURT" "$@"; }

# start_rt LOG ARGS...: start vfu-rt in the background; sets RT_PID (vfu-rt) and RT_TPID (timeout).
start_rt() {
	local log=$1
	shift
	timeout 10 "$VFURT" "$@" 2>>"$log" &
	RT_TPID=$!
	RT_PID=""
	pids+=("$RT_TPID")
	for _ in $(seq 1 200); do
		RT_PID=$(cat "/proc/$RT_TPID/task/$RT_TPID/children" 2>/dev/null | awk '{print $1}')
		[ -z "$RT_PID" ] && RT_PID=$(pgrep -P "$RT_TPID" 2>/dev/null | head -1)
		if [ -n "$RT_PID" ]; then
			pids+=("$RT_PID")
			return 0
		fi
		kill -0 "$RT_TPID" 2>/dev/null || return 1
		sleep 0.01
	done
	return 1
}

# stop_rt SIGNAL: signal vfu-rt and return its exit status (124 if it hung until timeout).
stop_rt() {
	kill "-$1" "$RT_PID" 2>/dev/null
	wait "$RT_TPID"
}

wait_for_socket() {
	for _ in $(seq 1 100); do
		[ -S "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# CPU time (utime + stime, in clock ticks) a process has used.
cpu_ticks() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	awk '{print $12 + $13}' <<<"$stat"
}

ncpu=$(getconf _NPROCESSORS_ONLN)

# ---- usage errors ---------------------------------------------------------------
expect_exit 0 "Usage: vfu-rt" "--help" -- rt --help
expect_exit 0 "--cores LIST" "--help documents --cores" -- rt --help
expect_exit 0 "^vfu-rt [0-9]+\.[0-9]+" "--version" -- rt --version
expect_exit 2 "no devices" "no devices is a usage error" -- rt
expect_exit 2 "unknown device type 'nosuch'" "unknown type" -- rt --device nosuch,socket=$dir/x.sock
expect_exit 2 "missing socket" "missing socket" -- rt --device gpio
expect_exit 2 "unknown key 'color'" "unknown key" -- rt --device gpio,socket=$dir/x.sock,color=red
expect_exit 2 "expected key=value" "malformed key" -- rt --device gpio,socket=$dir/x.sock,oops
expect_exit 2 "socket_mode='9'" "bad socket mode" -- rt --device gpio,socket=$dir/x.sock,socket_mode=9
expect_exit 2 "'4755' is beyond 0777" "socket mode with setuid bits" -- rt --device gpio,socket=$dir/x.sock,socket_mode=4755
expect_exit 2 "socket path $dir/x.sock is already used by --device gpio,socket=$dir/x.sock" "two devices on one socket" -- rt --device gpio,socket=$dir/x.sock --device nvme,socket=$dir/x.sock
expect_exit 2 "toggle_period='0'" "bad gpio parameter" -- rt --device gpio,socket=$dir/x.sock,toggle_period=0
expect_exit 2 "doorbells='pio': expected mmap or ioeventfd" "bad nvme doorbells" -- rt --device nvme,socket=$dir/x.sock,backend=null,doorbells=pio
expect_exit 2 "direct='yes': expected off, on or try" "bad nvme direct" -- rt --device nvme,socket=$dir/x.sock,backend=null,direct=yes
expect_exit 2 "log-level 'loud'" "bad log level" -- rt --log-level loud --device gpio,socket=$dir/x.sock
expect_exit 2 "unrecognized option|invalid option" "unknown option" -- rt --frobnicate
expect_exit 2 "--poll 'fast': expected busy or adaptive" "bad --poll" -- rt --poll=fast --device gpio,socket=$dir/x.sock
expect_exit 2 "--stats-interval 'x'" "bad --stats-interval" -- rt --stats-interval=x --device gpio,socket=$dir/x.sock
expect_exit 2 "--limit unknown limit 'colour'" "unknown --limit" -- rt --limit colour=1 --device gpio,socket=$dir/x.sock
expect_exit 2 "--limit version_timeout_ms '5': expected 100..600000" "--limit out of range" -- rt --limit version_timeout_ms=5 --device gpio,socket=$dir/x.sock
expect_exit 2 "--limit 'drain': expected KEY=VALUE" "--limit without a value" -- rt --limit drain --device gpio,socket=$dir/x.sock
expect_exit 0 "version_timeout_ms \\(2000\\)" "--help documents the limits" -- rt --help
expect_exit 0 "SIGHUP reads --config again" "--help documents SIGHUP" -- rt --help
expect_exit 0 "JSON-RPC 2.0" "--help documents the control socket's protocol" -- rt --help
expect_exit 0 "ns-resize NAME NSID SIZE" "vfu-ctl --help lists the daemon commands" -- "$VFUCTL" --help
expect_exit 2 "--limit max_dma_maps '0': expected 1..65535" "--limit max_dma_maps=0" -- rt --limit max_dma_maps=0 --device gpio,socket=$dir/x.sock
expect_exit 2 "--limit max_dma_maps '65536': expected 1..65535" "--limit max_dma_maps too big" -- rt --limit max_dma_maps=65536 --device gpio,socket=$dir/x.sock
expect_exit 2 "--limit dma_maps_process_max 'lots': expected 1..1073741824" "--limit dma_maps_process_max not a number" -- rt --limit dma_maps_process_max=lots --device gpio,socket=$dir/x.sock
expect_exit 2 "--limit dma_maps_min_per_client '-1': expected 1..65535" "--limit dma_maps_min_per_client negative" -- rt --limit dma_maps_min_per_client=-1 --device gpio,socket=$dir/x.sock
expect_exit 0 "max_dma_maps \\(1024\\).*|dma_maps_process_max" "--help documents the DMA limits" -- rt --help
expect_exit 2 "--poll-sleep-us '0': expected microseconds, 1..1000000" "bad --poll-sleep-us" -- rt --poll-sleep-us=0 --device gpio,socket=$dir/x.sock
expect_exit 2 "--stats-interval '-1'" "negative --stats-interval" -- rt --stats-interval=-1 --device gpio,socket=$dir/x.sock
expect_exit 2 "core: CPU 1 is not in the cores list \(0\)" "device core outside --cores" -- rt --cores=0 --device gpio,socket=$dir/x.sock,core=1
expect_exit 2 "core='x': 'x' is not a CPU number" "bad device core" -- rt --device gpio,socket=$dir/x.sock,core=x
expect_exit 1 "cannot listen on $dir/nodir/x.sock" "socket in a missing directory" -- rt --device gpio,socket=$dir/nodir/x.sock
touch "$dir/file"
expect_exit 1 "not a socket" "socket path is a regular file" -- rt --device gpio,socket=$dir/file
expect_exit 1 "--control-socket: cannot listen on $dir/file" "control socket on a regular file" -- rt --control-socket "$dir/file" --device gpio,socket=$dir/x.sock

# ---- --cores ------------------------------------------------------------------
expect_exit 2 "^vfu-rt: --cores: CPU 999 does not exist on this machine \(available: [0-9]" "--cores with a CPU that does not exist" -- rt --cores=999 --device gpio,socket=$dir/x.sock
allowed=$(taskset -pc $$ 2>/dev/null | awk '{print $NF}')
if [ "$ncpu" = 2 ] && { [ "$allowed" = 0-1 ] || [ "$allowed" = 0,1 ]; }; then
	expect_exit 2 "^vfu-rt: --cores: CPU 7 does not exist on this machine \(available: 0-1\)$" "--cores=7 message on a 2-CPU machine" -- rt --cores=7 --device gpio,socket=$dir/x.sock
fi
expect_exit 2 "--cores: '1-0': range start is above its end" "--cores reversed range" -- rt --cores=1-0 --device gpio,socket=$dir/x.sock
expect_exit 2 "--cores: .*empty item" "--cores empty item" -- rt --cores=0,,1 --device gpio,socket=$dir/x.sock
expect_exit 2 "--cores: .*trailing comma" "--cores trailing comma" -- rt --cores=0, --device gpio,socket=$dir/x.sock
expect_exit 2 "--cores: CPU 0 is listed twice" "--cores duplicate" -- rt --cores=0,0-1 --device gpio,socket=$dir/x.sock
expect_exit 2 "--cores: .*unexpected 'a'" "--cores not a number" -- rt --cores=a --device gpio,socket=$dir/x.sock
expect_exit 2 "--cores: .*unexpected ' '" "--cores with a space" -- rt "--cores=0, 1" --device gpio,socket=$dir/x.sock
expect_exit 2 "--cores: empty CPU list" "--cores empty" -- rt --cores= --device gpio,socket=$dir/x.sock
expect_exit 2 "--cores: .*out of range" "--cores huge number" -- rt --cores=99999999999999999999 --device gpio,socket=$dir/x.sock
if [ "$ncpu" -ge 2 ] && command -v taskset >/dev/null; then
	expect_exit 2 "--cores: CPU 1 is not allowed by this process's CPU affinity \(available: 0\)" "--cores outside the affinity mask (taskset -c 0)" -- taskset -c 0 timeout 10 "$VFURT" --cores=1 --device gpio,socket=$dir/x.sock
	expect_exit 2 "--cores \(default 0\): CPU 0 is not allowed" "default core outside the affinity mask (taskset -c 1)" -- taskset -c 1 timeout 10 "$VFURT" --device gpio,socket=$dir/x.sock
else
	echo "ok - # SKIP affinity checks need 2 CPUs and taskset"
fi
[ ! -e "$dir/x.sock" ] && ok "failed starts leave no socket file" || bad "failed start left $dir/x.sock"
ls "$dir"/vfu-rt/*.ctl >/dev/null 2>&1 && bad "failed start left a control socket" || ok "failed starts leave no control socket"

# ---- config files -------------------------------------------------------------------
cfgerr() { # cfgerr NAME JSON PATTERN DESCRIPTION
	printf '%s\n' "$2" >"$dir/$1"
	expect_exit 2 "$3" "$4" -- rt --config "$dir/$1"
}
cfgerr unknown.json '{"cors": "0", "devices": [{"type": "gpio", "socket": "x.sock"}]}' \
	"^vfu-rt: $dir/unknown.json: cors: unknown key" "config: unknown top-level key names file and key"
cfgerr type.json '{"poll": 1, "devices": [{"type": "gpio", "socket": "x.sock"}]}' \
	"$dir/type.json: poll: expected a string, got a number" "config: wrong type"
cfgerr pollval.json '{"poll": "fast", "devices": [{"type": "gpio", "socket": "x.sock"}]}' \
	"$dir/pollval.json: poll: 'fast': expected \"busy\" or \"adaptive\"" "config: bad poll value"
cfgerr mode.json '{"devices": [{"type": "gpio", "socket": "a.sock"}, {"type": "gpio", "socket": "x.sock", "socket_mode": 600}]}' \
	"$dir/mode.json: devices\[1\].socket_mode: must be a string like \"0600\"" "config: numeric socket_mode explained"
cfgerr devkey.json '{"devices": [{"type": "gpio", "socket": "x.sock", "color": "red"}]}' \
	"$dir/devkey.json: devices\[0\]: unknown key 'color' for device type gpio" "config: unknown device key"
cfgerr core.json '{"cores": "0", "devices": [{"type": "gpio", "socket": "x.sock", "core": 1}]}' \
	"$dir/core.json: devices\[0\].core: CPU 1 is not in the cores list \(0\)" "config: device core outside cores"
cfgerr cores.json '{"cores": "9999", "devices": [{"type": "gpio", "socket": "x.sock"}]}' \
	"$dir/cores.json: cores: CPU 9999 is out of range" "config: bad cores"
cfgerr nodev.json '{"cores": "0"}' "no devices" "config without devices and no --device"
cfgerr limits.json '{"limits": {"max_queued_bytes": 10}, "devices": [{"type": "gpio", "socket": "x.sock"}]}' \
	"$dir/limits.json: limits.max_queued_bytes: max_queued_bytes '10': expected 65536..67108864" "config: limit out of range"
cfgerr dmalimit.json '{"limits": {"max_dma_maps": 100000}, "devices": [{"type": "gpio", "socket": "x.sock"}]}' \
	"$dir/dmalimit.json: limits.max_dma_maps: max_dma_maps '100000': expected 1..65535" "config: max_dma_maps out of range"
cfgerr dmaquota.json '{"limits": {"dma_maps_process_max": "many"}, "devices": [{"type": "gpio", "socket": "x.sock"}]}' \
	"$dir/dmaquota.json: limits.dma_maps_process_max: dma_maps_process_max 'many': expected 1..1073741824" "config: dma_maps_process_max not a number"
cfgerr limitsobj.json '{"limits": 5, "devices": [{"type": "gpio", "socket": "x.sock"}]}' \
	"$dir/limitsobj.json: limits: expected an object of limits, got a number" "config: limits not an object"
cfgerr syntax.json '{
  "cores": "0"
  "devices": []
}' "$dir/syntax.json: not valid JSON: .* at line 3" "config: JSON syntax error with its line"
cfgerr notjson.json 'cores = 0' "$dir/notjson.json: not valid JSON" "config: not JSON"
expect_exit 2 "$dir/none.json: cannot open: No such file" "config: missing file" -- rt --config "$dir/none.json"
printf '{"cores": "99"}\n' >"$dir/override.json"
expect_exit 2 "--cores: CPU 999 does not exist" "--cores overrides the config file's cores" -- rt --config "$dir/override.json" --cores=999 --device gpio,socket=$dir/x.sock

mkdir -p "$dir/ex/run"
if [ -f "$EXAMPLE" ]; then
	cd "$dir/ex" || exit 1
	start_rt "$dir/ex.log" --config "$EXAMPLE"
	cd - >/dev/null || exit 1
	if wait_for_socket "$dir/ex/run/gpio0.sock"; then
		ok "--config examples/vfu-rt.json serves ./run/gpio0.sock"
		expect_exit 0 "494f" "vfu-ctl info on the example's device" -- "$VFUCTL" info "$dir/ex/run/gpio0.sock"
	else
		bad "example config: socket did not appear: $(cat "$dir/ex.log")"
	fi
	stop_rt TERM
	rc=$?
	[ "$rc" -eq 0 ] && ok "example config: SIGTERM exits 0" || bad "example config: exit code $rc"
	[ ! -e "$dir/ex/run/gpio0.sock" ] && ok "example config: socket removed on exit" || bad "example config: socket left behind"
else
	bad "missing $EXAMPLE"
fi

# ---- serving: two devices, one from a config file, one from --device -----------------
printf '{"cores": "0", "poll": "busy", "devices": [{"type": "gpio", "socket": "%s", "socket_mode": "0600"}]}\n' \
	"$dir/g0.sock" >"$dir/two.json"
start_rt "$dir/log" --config "$dir/two.json" --cores=0-$((ncpu > 1 ? 1 : 0)) --poll=adaptive \
	--device gpio,socket=$dir/g1.sock,name=gpio1,toggle_period=2,core=0
pid=$RT_PID
if wait_for_socket "$dir/g0.sock" && wait_for_socket "$dir/g1.sock"; then
	ok "two devices listening (config file + --device)"
else
	bad "sockets did not appear: $(cat "$dir/log")"
fi
mode=$(stat -c %a "$dir/g0.sock" 2>/dev/null)
[ "$mode" = "600" ] && ok "socket_mode applied" || bad "socket mode is $mode"

expect_exit 1 "another server is listening" "second server on a live socket" -- rt --device gpio,socket=$dir/g0.sock
info=$("$VFUCTL" info "$dir/g0.sock" 2>&1)
if grep -qi "494f" <<<"$info" && grep -qi "0dc8" <<<"$info"; then ok "vfu-ctl info shows the IDIO-16 IDs"; else bad "vfu-ctl info: $(head -c 400 <<<"$info")"; fi
grep -qiE "BAR2|Region 2" <<<"$info" && ok "vfu-ctl info lists BAR2" || bad "vfu-ctl info lacks BAR2"
expect_exit 0 "494f" "vfu-ctl info on the second device" -- "$VFUCTL" info "$dir/g1.sock"
expect_exit 2 "" "vfu-ctl without arguments" -- "$VFUCTL"
expect_exit 1 "" "vfu-ctl on a missing socket" -- "$VFUCTL" info "$dir/none.sock"

ctl="$dir/vfu-rt/$pid.ctl"
[ -S "$ctl" ] && ok "default control socket \$XDG_RUNTIME_DIR/vfu-rt/PID.ctl" || bad "no control socket at $ctl"
[ "$(stat -c %a "$dir/vfu-rt")" = 700 ] && ok "control socket directory is 0700" || bad "control socket directory mode $(stat -c %a "$dir/vfu-rt")"
stats=$("$VFUCTL" stats "$ctl" 2>&1)
if grep -q '"workers"' <<<"$stats" && grep -q '"devices"' <<<"$stats"; then ok "vfu-ctl stats SOCKET prints JSON with workers"; else bad "vfu-ctl stats SOCKET: $(head -c 300 <<<"$stats")"; fi
[ "$(grep -c '"cpu"' <<<"$stats")" -eq $((ncpu > 1 ? 2 : 1)) ] && ok "--cores overrides the file: one worker per CPU" || bad "worker count: $(head -c 300 <<<"$stats")"
grep -q '"poll" *: *"adaptive"' <<<"$stats" && ok "--poll overrides the file" || bad "poll mode: $(grep poll <<<"$stats")"
grep -q '^  "workers": \[$' <<<"$stats" && ok "vfu-ctl stats pretty-prints" || bad "not pretty-printed: $(head -3 <<<"$stats")"
stats=$("$VFUCTL" stats "$pid" 2>&1)
grep -q '"workers"' <<<"$stats" && ok "vfu-ctl stats PID prints JSON with workers" || bad "vfu-ctl stats PID: $(head -c 300 <<<"$stats")"
grep -q '"msgs"' <<<"$stats" && ok "vfu-ctl stats shows message counts" || bad "no msgs in stats"
expect_exit 1 "no process" "vfu-ctl stats on a dead pid" -- "$VFUCTL" stats 999999999
expect_exit 1 "process $$: cannot connect" "vfu-ctl stats on a pid that is not vfu-rt" -- "$VFUCTL" stats $$
expect_exit 1 "cannot connect to $dir/none.ctl" "vfu-ctl stats on a missing socket" -- "$VFUCTL" stats "$dir/none.ctl"
expect_exit 2 "usage: vfu-ctl stats" "vfu-ctl stats without an argument" -- "$VFUCTL" stats

stop_rt TERM
rc=$?
[ "$rc" -eq 0 ] && ok "SIGTERM exits 0" || bad "SIGTERM exit code $rc"
[ ! -e "$dir/g0.sock" ] && [ ! -e "$dir/g1.sock" ] && ok "sockets removed on exit" || bad "sockets left behind"
[ ! -e "$ctl" ] && ok "control socket removed on exit" || bad "control socket $ctl left behind"
grep -q "shutting down" "$dir/log" && ok "shutdown logged" || bad "no shutdown line in log"
grep -q "vfu-rt\[w[0-9]*\]" "$dir/log" && ok "worker log lines carry the worker id" || bad "no worker id in log: $(head -3 "$dir/log")"

# ---- explicit --control-socket, found by pid through a link; stats interval ----------
start_rt "$dir/log2" --control-socket "$dir/my.ctl" --stats-interval=1 --device gpio,socket=$dir/g3.sock
pid=$RT_PID
wait_for_socket "$dir/g3.sock"
[ -S "$dir/my.ctl" ] && ok "--control-socket PATH listens there" || bad "no $dir/my.ctl: $(cat "$dir/log2")"
[ -L "$dir/vfu-rt/$pid.ctl" ] && ok "per-pid name links to --control-socket" || bad "no per-pid link"
expect_exit 0 '"workers"' "vfu-ctl stats PID with --control-socket" -- "$VFUCTL" stats "$pid"
expect_exit 0 '"workers"' "vfu-ctl stats PATH with --control-socket" -- "$VFUCTL" stats "$dir/my.ctl"
sleep 1.3
grep -qE "worker 0 \(CPU 0\): [0-9]+ passes, busy [0-9.]+%, [0-9]+ msgs, irqs [0-9]+ raised / [0-9]+ written" "$dir/log2" \
	&& ok "--stats-interval logs a summary per worker" || bad "no periodic summary: $(cat "$dir/log2")"
stop_rt INT
rc=$?
[ "$rc" -eq 0 ] && ok "SIGINT exits 0" || bad "SIGINT exit code $rc"
[ ! -e "$dir/my.ctl" ] && [ ! -e "$dir/vfu-rt/$pid.ctl" ] && ok "control socket and its link removed on exit" || bad "control socket or link left behind"

# a live control socket is an error; a stale one (daemon killed) is replaced
start_rt "$dir/log2" --control-socket "$dir/my.ctl" --device gpio,socket=$dir/g3.sock
wait_for_socket "$dir/g3.sock"
expect_exit 1 "another vfu-rt is running on $dir/my.ctl" "live control socket: clear error" -- rt --control-socket "$dir/my.ctl" --device gpio,socket=$dir/g6.sock
stop_rt KILL 2>/dev/null
[ -S "$dir/my.ctl" ] && ok "killed daemon leaves a stale control socket" || bad "no stale control socket"
rm -f "$dir/g3.sock"
start_rt "$dir/log2b" --control-socket "$dir/my.ctl" --device gpio,socket=$dir/g3.sock
wait_for_socket "$dir/g3.sock"
expect_exit 0 '"workers"' "stale control socket replaced" -- "$VFUCTL" stats "$dir/my.ctl"
stop_rt TERM

# a control socket directory that is not private is refused (no socket there)
mkdir -p "$dir/shared/vfu-rt" && chmod 0755 "$dir/shared/vfu-rt"
XDG_RUNTIME_DIR=$dir/shared start_rt "$dir/log5" --device gpio,socket=$dir/g7.sock
wait_for_socket "$dir/g7.sock"
sleep 0.2
grep -q "$dir/shared/vfu-rt is not private" "$dir/log5" && ok "non-private control socket directory refused" || bad "no refusal: $(cat "$dir/log5")"
ls "$dir/shared/vfu-rt" | grep -q . && bad "control socket in a non-private directory" || ok "nothing created in the non-private directory"
tmpctl="/tmp/vfu-rt-$(id -u)/$RT_PID.ctl"
[ -S "$tmpctl" ] && ok "falls back to /tmp/vfu-rt-UID" || bad "no $tmpctl: $(cat "$dir/log5")"
stop_rt TERM

# without XDG_RUNTIME_DIR the control socket goes to a private directory in /tmp
unset XDG_RUNTIME_DIR
start_rt "$dir/log3" --device gpio,socket=$dir/g4.sock
wait_for_socket "$dir/g4.sock"
tmpctl="/tmp/vfu-rt-$(id -u)/$RT_PID.ctl"
if [ -S "$tmpctl" ]; then ok "no XDG_RUNTIME_DIR: control socket in /tmp/vfu-rt-UID"; else bad "no $tmpctl: $(cat "$dir/log3")"; fi
[ "$(stat -c %a "/tmp/vfu-rt-$(id -u)")" = 700 ] && ok "/tmp/vfu-rt-UID is 0700" || bad "/tmp/vfu-rt-UID mode $(stat -c %a "/tmp/vfu-rt-$(id -u)")"
expect_exit 0 '"workers"' "vfu-ctl stats PID finds /tmp/vfu-rt-UID/PID.ctl" -- "$VFUCTL" stats "$RT_PID"
stop_rt TERM
rc=$?
[ "$rc" -eq 0 ] && ok "SIGTERM exits 0 (control socket in /tmp)" || bad "exit code $rc"
[ ! -e "$tmpctl" ] && ok "/tmp control socket removed on exit" || { bad "$tmpctl left behind"; rm -f "$tmpctl"; }
export XDG_RUNTIME_DIR=$dir

# ---- stale sockets -------------------------------------------------------------------
start_rt "$dir/log" --device gpio,socket=$dir/g2.sock
wait_for_socket "$dir/g2.sock"
stop_rt KILL 2>/dev/null
[ -S "$dir/g2.sock" ] && ok "killed server leaves a stale socket" || bad "no stale socket"
start_rt "$dir/log" --device gpio,socket=$dir/g2.sock
sleep 0.2
if kill -0 "$RT_PID" 2>/dev/null && "$VFUCTL" info "$dir/g2.sock" >/dev/null 2>&1; then
	ok "stale socket replaced"
else
	bad "stale socket not replaced: $(tail -3 "$dir/log")"
fi
stop_rt INT
rc=$?
[ "$rc" -eq 0 ] && ok "SIGINT with a replaced socket exits 0" || bad "SIGINT exit code $rc"

# ---- a local user connecting in a loop cannot flood the log ----------------------------
if command -v python3 >/dev/null; then
	start_rt "$dir/log6" --device gpio,socket=$dir/g8.sock
	wait_for_socket "$dir/g8.sock"
	python3 - "$dir/g8.sock" <<'PY'
import socket, sys, time
hold = socket.socket(socket.AF_UNIX); hold.connect(sys.argv[1])
time.sleep(0.2)
for burst in (100, 1):
    for _ in range(burst):
        s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(1); s.close()
    time.sleep(0.3)
PY
	n=$(grep -c "refusing a second client" "$dir/log6")
	[ "$n" -ge 18 ] && [ "$n" -le 24 ] && ok "refused clients: $n log lines for 101, rate-limited" || bad "$n refusal lines for 101 clients"
	grep -qE "refusing a second client while one is connected \(and [0-9]+ more since the last such line\)" "$dir/log6" \
		&& ok "the line after a pause counts the suppressed ones" || bad "no suppressed count: $(tail -3 "$dir/log6")"
	stop_rt TERM
else
	echo "ok - # SKIP log flood by connections needs python3"
fi

# ---- poll modes ----------------------------------------------------------------------
# adaptive: an idle daemon sleeps. Measure its CPU time over ~2 s (generous bound: 20%).
start_rt "$dir/log4" --poll=adaptive --device gpio,socket=$dir/g5.sock
wait_for_socket "$dir/g5.sock"
sleep 0.3
t0=$(date +%s%N)
c0=$(cpu_ticks "$RT_PID")
sleep 2
c1=$(cpu_ticks "$RT_PID")
t1=$(date +%s%N)
hz=$(getconf CLK_TCK)
if [ -n "$c0" ] && [ -n "$c1" ]; then
	pct=$(awk -v c=$((c1 - c0)) -v hz="$hz" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", 100 * c / hz / (ns / 1e9) }')
	echo "# adaptive idle CPU: $pct% of one CPU over $(((t1 - t0) / 1000000)) ms"
	awk -v p="$pct" 'BEGIN { exit !(p < 20) }' && ok "adaptive mode idles below 20% CPU ($pct%)" || bad "adaptive mode idle CPU $pct% (>= 20%)"
else
	bad "cannot read /proc/$RT_PID/stat"
fi
stop_rt TERM
rc=$?
[ "$rc" -eq 0 ] && ok "adaptive: SIGTERM exits 0" || bad "adaptive: SIGTERM exit code $rc"

# DMA limits reach the clients (VERSION) and the runtime's quota (stats), from the command
# line and from the config file.
printf '{"limits": {"dma_maps_min_per_client": 16, "max_dma_maps": 9}, "devices": []}\n' >"$dir/dma.json"
start_rt "$dir/log6" --config "$dir/dma.json" --limit max_dma_maps=7 --limit dma_maps_process_max=500 \
	--control-socket "$dir/dma.ctl" --device gpio,socket=$dir/g7.sock
if wait_for_socket "$dir/g7.sock" && wait_for_socket "$dir/dma.ctl"; then
	info=$("$VFUCTL" info "$dir/g7.sock" 2>&1)
	grep -qE "max_dma_maps 7\b" <<<"$info" && ok "--limit max_dma_maps overrides the config, advertised in VERSION" \
		|| bad "max_dma_maps not 7: $(grep max_dma_maps <<<"$info")"
	stats=$("$VFUCTL" stats "$dir/dma.ctl" 2>&1 | tr -d ' \n')
	grep -q '"dma_quota":{"limit":500,"min_per_client":16' <<<"$stats" && ok "DMA quota from --limit and the config in stats" \
		|| bad "dma_quota in stats: $(grep -o '"dma_quota":{[^}]*}' <<<"$stats")"
else
	bad "DMA limits: vfu-rt did not serve: $(cat "$dir/log6")"
fi
stop_rt TERM

# busy: spins one CPU; just check it serves and stops.
start_rt "$dir/log5" --poll=busy --cores=0 --device gpio,socket=$dir/g6.sock
if wait_for_socket "$dir/g6.sock" && "$VFUCTL" info "$dir/g6.sock" >/dev/null 2>&1; then
	ok "busy mode serves"
else
	bad "busy mode: $(cat "$dir/log5")"
fi
grep -q "busy polling" "$dir/log5" && ok "busy mode logged" || bad "busy mode not in the startup line"
stop_rt TERM
rc=$?
[ "$rc" -eq 0 ] && ok "busy: SIGTERM exits 0" || bad "busy: SIGTERM exit code $rc"
[ ! -e "$dir/g6.sock" ] && ok "busy: socket removed" || bad "busy: socket left behind"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
