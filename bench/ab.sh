#!/usr/bin/env bash
# A/B of the NVMe data path between two builds: QD1 and QD128 IOPS of the same client against each daemon, interleaved.
#
# usage: bench/ab.sh [-r ROUNDS] [-t SECONDS] BASE_BUILD_DIR NEW_BUILD_DIR
#
# Each round starts BASE's vfu-rt, then NEW's (`--cores=1 --poll=busy`, one
# NVMe controller on a null backend), and runs NEW's vfu-bench against it on
# CPU 0: 4 KiB random reads at QD1, then QD128, SECONDS each (ramp 0.5 s).
# The client is the same binary for both, so only the server differs. Prints
# a markdown table, one row per round and depth, with the ratio new/base.
# On this kind of 2-vCPU VM the first round is often bimodal: read the later
# ones. Build both trees the same way (make build gives RelWithDebInfo).
set -eu
rounds=3 secs=3
while getopts "r:t:" o; do
	case $o in
	r) rounds=$OPTARG ;;
	t) secs=$OPTARG ;;
	*) sed -n '4p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[[ $# -eq 2 ]] || { sed -n '4p' "$0" >&2; exit 2; }
base=$1 new=$2
vb=$new/bench/vfu-bench
for b in "$base/vfu-rt" "$new/vfu-rt" "$vb"; do
	[[ -x $b ]] || { echo "$0: $b: not built" >&2; exit 2; }
done

# IOPS of one run: $1 the daemon, $2 the depth
run() {
	local d pid iops
	d=$(mktemp -d)
	"$1" --cores=1 --poll=busy --log-level=error --control-socket="$d/ctl" \
		--device "nvme,socket=$d/n.sock,backend=null,size=1G" >"$d/log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do [[ -S $d/n.sock ]] && break; sleep 0.05; done
	iops=$(taskset -c 0 "$vb" --socket="$d/n.sock" --rw=randread --bs=4k --iodepth="$2" \
		--runtime="$secs" --ramp=0.5 2>/dev/null | awk '$1 == "qp1" { print $3 }')
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	rm -rf "$d"
	echo "${iops:-0}"
}

echo "| round | QD | base IOPS | new IOPS | new/base |"
echo "|---|---|---|---|---|"
for r in $(seq "$rounds"); do
	for qd in 1 128; do
		b=$(run "$base/vfu-rt" "$qd")
		n=$(run "$new/vfu-rt" "$qd")
		awk -v r="$r" -v q="$qd" -v b="$b" -v n="$n" \
			'BEGIN { printf "| %d | %d | %.1fk | %.1fk | %.2f |\n", r, q, b / 1e3, n / 1e3, b ? n / b : 0 }'
	done
done
