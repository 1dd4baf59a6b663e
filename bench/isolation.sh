#!/usr/bin/env bash
# Tenant isolation on one worker (issue 11): the victim's latency with a quiet neighbour and with each attacker, in one run.
#
# One vfu-rt worker (CPU 1, busy polling) serves three devices: a GPIO card,
# NVMe controller A (the attacker's, RAM, 2 GiB, 4 KiB blocks) and NVMe
# controller B (the victim's, RAM, 1 GiB, 4 KiB blocks). In each scenario the
# victim runs QD1 4 KiB random reads on B while a probe reads the GPIO card's
# PCI vendor ID every millisecond (another device type on the same worker),
# and the attacker loads A. One markdown row per scenario and build, so builds
# before and after a change compare in one table.
#
# usage: bench/isolation.sh [-t SECONDS] BUILD_DIR [BUILD_DIR...]
#   ISO_ONLY=REGEX in the environment runs only the scenarios whose name matches
#   BUILD_DIR holds vfu-rt; the clients are the first BUILD_DIR's
#   bench/vfu-bench for every build (the measuring tool stays the same, only
#   the server changes). Clients run on CPU 0 (they sleep on interrupts, so
#   they share it): with 2 CPUs the victim's figures include waiting for CPU 0
#   while the attacker's client is busy, and whatever else the machine runs.
#
# Attackers: quiet (none), sq-flood (A's SQs kept full), big-wz (Write Zeroes
# of 256 MiB), big-trim (Deallocate of 256 MiB) run vfu-bench against A.
# slow-reader, map-storm and squatter are hostile clients of A's socket run
# by the first BUILD_DIR's bench/vfu-attack (`vfu-attack MODE A_SOCKET
# SECONDS`); their "attacker IOPS" column is what vfu-attack reports.
# ctl-churn (issue 13) adds a device on the same worker through the control
# socket, attaches a client to it and removes it, in a loop (the first
# BUILD_DIR's vfu-ctl); its "attacker IOPS" column is cycles per second.
set -euo pipefail

secs=5
if [[ ${1:-} == -t ]]; then
	secs=$2
	shift 2
fi
[[ $# -ge 1 ]] || { echo "usage: $0 [-t SECONDS] BUILD_DIR..." >&2; exit 2; }

dir=$(mktemp -d /tmp/vfu-iso.XXXXXX)
rt_pid=
cleanup() {
	if [[ -n $rt_pid ]]; then
		kill "$rt_pid" 2>/dev/null || true
		wait "$rt_pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

# name | vfu-bench options on A, "" = no attacker, "attack" = vfu-attack NAME
scenarios=(
	"quiet|"
	"sq-flood 4k x128|--rw=randread --bs=4k --iodepth=128"
	"sq-flood 128k x128 (MDTS)|--rw=randread --bs=128k --iodepth=128"
	"big-wz 256M x63|--rw=zeroes --bs=256M --iodepth=63"
	"big-wz 256M x63 DEAC|--rw=zeroes --bs=256M --iodepth=63 --deac"
	"big-trim 256M x63|--rw=trim --bs=256M --iodepth=63"
	"slow-reader|attack"
	"map-storm|attack"
	"squatter|attack"
	"ctl-spawn (control)|churn -"
	"ctl-churn gpio|churn gpio"
	"ctl-churn nvme 64M|churn nvme,backend=ram,size=64M,queues=2"
)

# churn SPEC SECONDS: on the daemon's control socket, add a device of SPEC on the victim's
# worker, attach a client to it (vfu-ctl info: VERSION, config space, regions), remove it;
# again until SECONDS are up. Prints the cycles per second (or - when the daemon has no
# control plane: builds before issue 13). SPEC "-": the same three vfu-ctl processes per
# cycle, each only listing the devices: what spawning the commands on the clients' CPU costs
# the victim by itself.
churn() {
	local spec=$1 end=$((SECONDS + $2)) n=0
	while ((SECONDS < end)); do
		if [[ $spec == - ]]; then
			# the control row: as many vfu-ctl processes, asking for the list
			for _ in 1 2 3; do
				taskset -c 0 "$vc" --socket "$dir/ctl.sock" list >/dev/null 2>&1 ||
					{ echo -; return; }
			done
			n=$((n + 1))
			continue
		fi
		"$vc" --socket "$dir/ctl.sock" add "$spec,name=churn,socket=$dir/churn.sock" 			>/dev/null 2>&1 || { echo -; return; }
		"$vc" info "$dir/churn.sock" >/dev/null 2>&1 || true
		"$vc" --socket "$dir/ctl.sock" remove churn --timeout 0 >/dev/null 2>&1 ||
			{ echo -; return; }
		n=$((n + 1))
	done
	echo "$((n / $2))/s"
}

field() { # json file, python expression on j
	python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null ||
		echo "-"
}
us() { # json file, python expression in ns -> "N.N us"
	field "$1" "'%.1f us' % (($2) / 1e3)"
}

echo "| build | attacker on A | attacker IOPS | errors | victim B QD1 4k IOPS | p50 | p99 | max | GPIO probe p50 | p99 | max |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
vb=$1/bench/vfu-bench
va=$1/bench/vfu-attack
vc=$1/vfu-ctl
[[ -x $vb && -x $va && -x $vc ]] ||
	{ echo "$1: no bench/vfu-bench, bench/vfu-attack or vfu-ctl" >&2; exit 2; }
for build in "$@"; do
	rt=$build/vfu-rt
	[[ -x $rt ]] || { echo "$build: no vfu-rt" >&2; exit 2; }
	for sc in "${scenarios[@]}"; do
		name=${sc%%|*}
		opts=${sc#*|}
		[[ -n ${ISO_ONLY:-} && ! $name =~ $ISO_ONLY ]] && continue
		attack=
		[[ $opts == attack ]] && attack=$name
		churn_spec=
		[[ $opts == churn\ * ]] && churn_spec=${opts#churn }
		rm -f "$dir"/*.sock "$dir"/*.json "$dir"/a.out
		"$rt" --cores=1 --poll=busy --log-level=error --control-socket="$dir/ctl.sock" \
			--device gpio,socket="$dir/gpio.sock" \
			--device nvme,socket="$dir/a.sock",backend=ram,size=2G,lba=4096 \
			--device nvme,socket="$dir/b.sock",backend=ram,size=1G,lba=4096 \
			>"$dir/rt.log" 2>&1 &
		rt_pid=$!
		for _ in $(seq 1 240); do
			[[ -S $dir/gpio.sock && -S $dir/a.sock && -S $dir/b.sock ]] && break
			sleep 0.25
		done
		common=(--cpus=0 --completion=irq --no-floor --json)
		# the victim first (its setup must not wait for the attack), for
		# longer than the attack so that its measured window lies inside it
		"$vb" --socket="$dir/b.sock" --rw=randread --bs=4k --iodepth=1 \
			--probe="$dir/gpio.sock" --runtime="$secs" --ramp=1 "${common[@]}" \
			>"$dir/b.json" 2>"$dir/b.err" &
		bpid=$!
		sleep 0.3
		if [[ -n $attack ]]; then
			"$va" "$attack" "$dir/a.sock" "$((secs + 2))" >"$dir/a.out" 2>"$dir/a.err" || true
		elif [[ -n $churn_spec ]]; then
			churn "$churn_spec" "$((secs + 2))" >"$dir/a.out"
			attack=$name # its column is a.out
		elif [[ -n $opts ]]; then
			# shellcheck disable=SC2086
			"$vb" --socket="$dir/a.sock" $opts --runtime="$((secs + 1))" --ramp=0.5 \
				"${common[@]}" >"$dir/a.json" 2>"$dir/a.err" || true
		fi
		wait "$bpid" || true
		if [[ -n $attack ]]; then
			a_iops="$(tr '|' '/' <"$dir/a.out" 2>/dev/null | head -n 1)"
			a_err=-
		elif [[ -f $dir/a.json ]]; then
			a_iops=$(field "$dir/a.json" \
				"'%.0f' % sum(x['read']['iops'] + x['write']['iops'] for x in j['jobs'])")
			a_err=$(field "$dir/a.json" "sum(x['nvme_errors'] for x in j['jobs'])")
		else
			a_iops=-
			a_err=-
		fi
		lat="j['jobs'][0]['read']['lat_ns']"
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
			"$(basename "$build")" "$name" "$a_iops" "$a_err" \
			"$(field "$dir/b.json" "'%.0f' % j['jobs'][0]['read']['iops']")" \
			"$(us "$dir/b.json" "$lat['percentile']['50.000000']")" \
			"$(us "$dir/b.json" "$lat['percentile']['99.000000']")" \
			"$(us "$dir/b.json" "$lat['max']")" \
			"$(us "$dir/b.json" "j['probe']['lat_ns']['p50']")" \
			"$(us "$dir/b.json" "j['probe']['lat_ns']['p99']")" \
			"$(us "$dir/b.json" "j['probe']['lat_ns']['max']")"
		kill "$rt_pid" 2>/dev/null || true
		wait "$rt_pid" 2>/dev/null || true
		rt_pid=
	done
done
