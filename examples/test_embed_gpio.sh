#!/usr/bin/env bash
# Run examples/embed_gpio once: it serves its socket, answers a client, and cleans up on SIGTERM.
# usage: test_embed_gpio.sh EMBED_GPIO [VFU_CTL]
set -u
EXAMPLE=$1
VFUCTL=${2:-}
dir=$(mktemp -d /tmp/vfurt-example-XXXXXX)
sock=$dir/gpio0.sock
pid=
fail=0

cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

ok() { echo "ok - $1"; }
bad() { fail=1; echo "not ok - $1"; }

# timeout passes the SIGTERM it gets on to the example and exits with the example's status.
timeout 20 "$EXAMPLE" "$sock" >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 1 200); do
	[ -S "$sock" ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.05
done
if [ -S "$sock" ]; then ok "socket $sock appears"; else bad "no socket (log: $(head -c 300 "$dir/err"))"; fi

if [ -n "$VFUCTL" ]; then
	info=$(timeout 10 "$VFUCTL" info "$sock" 2>&1)
	if grep -qi '494f' <<<"$info" && grep -qi '0dc8' <<<"$info"; then
		ok "vfu-ctl info sees the PCI-IDIO-16 (494f:0dc8)"
	else
		bad "vfu-ctl info: $(head -c 300 <<<"$info")"
	fi
else
	echo "ok - vfu-ctl not built: client check skipped"
fi

kill -TERM "$pid" 2>/dev/null
wait "$pid"
rc=$?
pid=
if [ "$rc" -eq 0 ]; then ok "exit 0 on SIGTERM"; else bad "exit $rc on SIGTERM (log: $(tail -c 300 "$dir/err"))"; fi
if [ ! -e "$sock" ]; then ok "socket removed"; else bad "socket left behind"; fi
if grep -q "serving $sock" "$dir/out"; then ok "prints what it serves"; else bad "stdout: $(head -c 200 "$dir/out")"; fi
exit "$fail"
