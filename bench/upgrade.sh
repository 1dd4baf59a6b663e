#!/usr/bin/env bash
# Live-upgrade pause (issue 14): 20 `vfu-ctl upgrade`s of a daemon serving 4 devices on 2 workers under QD32 NVMe load, the longest stall of any device around each, p50 and max.
#
# One vfu-rt (workers on CPUs 0-1, or 0 on a 1-CPU machine; POLL=adaptive by
# default, POLL=busy in the environment to spin) serves NVMe controllers n0, n1,
# n2 (RAM, 256 MiB, 4 KiB blocks, round robin: n0 and n2 on the first worker, n1
# and the GPIO card on the second) and a GPIO card. One vfu-bench per
# controller runs 4 KiB random reads at QD32, sleeping on MSI-X interrupts
# (--completion=irq: three spinning clients would starve 2 CPUs), and logs
# every gap of at least 1 ms between two completions (--gaps, realtime
# stamps). The first vfu-bench also reads the GPIO card's vendor ID every ms
# (--probe). After the load has run QUIET seconds, the script upgrades the
# daemon N times, SPACING seconds apart (`vfu-ctl --json upgrade`, timed with
# `date +%s%N` around it).
#
# The pause of one upgrade is the longest gap of any controller that overlaps
# the upgrade command's run (from just before it was sent to SPACING/2 after
# it returned): the time a guest saw no completion at all. "<1" means no
# controller stalled for 1 ms. Next to it: the daemon's own pause_us (from
# the freeze of the first device to the new process's GO: it leaves out the
# new process starting its workers and thawing), the time from the first
# device's "freezing" to the last one's "thawed" in the daemon's log (run at
# info level, each line stamped when it arrives), and the command's wall time. The last lines: p50 and max over the N upgrades, the longest gap
# of the quiet seconds before the first upgrade (what the machine does by
# itself), NVMe errors and IOPS over the whole run.
#
# usage: bench/upgrade.sh [-n UPGRADES] [-s SPACING] [-q IODEPTH] [-t THINK_US] BUILD_DIR
#   -t: each vfu-bench sleeps THINK_US after reaping (fio's thinktime) so that
#   the load leaves the 2 CPUs some idle time; by default (0) the three clients
#   and two workers saturate them, and the quiet row shows what that costs.
#   BUILD_DIR holds vfu-rt, vfu-ctl and bench/vfu-bench. Prints a markdown
#   table on stdout, progress on stderr. Exit 0 unless the setup failed (an
#   upgrade that fails is a row saying so).
set -euo pipefail

n=20
spacing=0.5
qd=32
quiet=2
think=0
usage="usage: $0 [-n UPGRADES] [-s SPACING] [-q IODEPTH] [-t THINK_US] BUILD_DIR"
while getopts "n:s:q:t:" o; do
	case $o in
	n) n=$OPTARG ;;
	s) spacing=$OPTARG ;;
	q) qd=$OPTARG ;;
	t) think=$OPTARG ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[[ $# -eq 1 ]] || { echo "$usage" >&2; exit 2; }
build=$1
rt=$build/vfu-rt
vc=$build/vfu-ctl
vb=$build/bench/vfu-bench
for x in "$rt" "$vc" "$vb"; do
	[[ -x $x ]] || { echo "$0: no $x" >&2; exit 2; }
done
poll=${POLL:-adaptive}
if (($(nproc) >= 2)); then cores=0-1; else cores=0; fi

dir=$(mktemp -d /tmp/vfu-upg.XXXXXX)
rt_pid=
bench_pids=()
cleanup() {
	local p
	for p in "${bench_pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	# the serving process is the last upgrade's, not our child: wait by polling
	if [[ -n $rt_pid ]] && kill "$rt_pid" 2>/dev/null; then
		for _ in $(seq 1 100); do
			kill -0 "$rt_pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	wait 2>/dev/null || true
	[[ -n ${KEEP:-} ]] && { echo "upgrade: kept $dir" >&2; return; }
	rm -rf "$dir"
}
trap cleanup EXIT

devs=()
for i in 0 1 2; do
	devs+=(--device "nvme,socket=$dir/n$i.sock,backend=ram,size=256M,lba=4096,queues=2")
done
devs+=(--device "gpio,socket=$dir/g0.sock")
# info level, each line stamped with CLOCK_REALTIME ns as it arrives: when each
# upgrade froze the first device and thawed the last (the successors inherit stderr)
"$rt" --cores="$cores" --poll="$poll" --log-level=info --control-socket="$dir/ctl.sock" \
	"${devs[@]}" >/dev/null 2> >(python3 -u -c '
import sys, time
for line in sys.stdin:
    sys.stdout.write("%d %s" % (time.time_ns(), line))' >"$dir/rt.log") &
rt_pid=$!
for _ in $(seq 1 200); do
	[[ -S $dir/ctl.sock && -S $dir/n2.sock && -S $dir/g0.sock ]] && break
	sleep 0.05
done
[[ -S $dir/ctl.sock ]] || { echo "$0: vfu-rt did not start:" >&2; cat "$dir/rt.log" >&2; exit 1; }

# the load: until SIGINT (vfu-bench then stops, drains and reports)
for i in 0 1 2; do
	probe=()
	((i == 0)) && probe=(--probe="$dir/g0.sock")
	"$vb" --socket="$dir/n$i.sock" --rw=randread --bs=4k --iodepth="$qd" --runtime=3600 \
		--completion=irq --no-floor --json --gaps="$dir/gaps$i.txt" --gap-min=1000 \
		--thinktime="$think" "${probe[@]}" >"$dir/b$i.json" 2>"$dir/b$i.err" &
	bench_pids+=($!)
done
sleep 1 # connect, create queues
echo "upgrade: load running on n0 n1 n2 (QD$qd each), $quiet s quiet, then $n upgrades" >&2
quiet_from=$(date +%s%N)
sleep "$quiet"
quiet_to=$(date +%s%N)

: >"$dir/upgrades.txt"
for ((k = 1; k <= n; k++)); do
	t0=$(date +%s%N)
	if out=$("$vc" --socket "$dir/ctl.sock" --json upgrade 2>"$dir/upg$k.err"); then
		t1=$(date +%s%N)
		echo "$k $t0 $t1 ok $(tr -d '\n' <<<"$out")" >>"$dir/upgrades.txt"
		new=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["new_pid"])' \
			"$out" 2>/dev/null || true)
		[[ -n $new ]] && rt_pid=$new
	else
		t1=$(date +%s%N)
		echo "$k $t0 $t1 failed $(tr '\n' ' ' <"$dir/upg$k.err")" >>"$dir/upgrades.txt"
	fi
	echo "upgrade: $k/$n: $(cut -d' ' -f4- <<<"$(tail -n 1 "$dir/upgrades.txt")" | cut -c1-120)" >&2
	sleep "$spacing"
done
sleep "$spacing"

for p in "${bench_pids[@]}"; do
	kill -INT "$p" 2>/dev/null || true
done
bench_rc=()
for p in "${bench_pids[@]}"; do
	rc=0
	wait "$p" || rc=$?
	bench_rc+=("$rc")
done
bench_pids=()

python3 - "$dir" "$n" "$spacing" "$quiet_from" "$quiet_to" "$qd" "$poll" "$cores" "$think" \
	"${bench_rc[@]}" <<'EOF'
import json, os, statistics, sys

d, n, spacing, quiet_from, quiet_to, qd, poll, cores, think = sys.argv[1:10]
rcs = sys.argv[10:]
n = int(n)
spacing_ns = float(spacing) * 1e9
quiet_from, quiet_to = int(quiet_from), int(quiet_to)
devs = ["n0", "n1", "n2"]

gaps, lost = [], []
for i in range(3):
    g = []
    try:
        for line in open(os.path.join(d, "gaps%d.txt" % i)):
            if line.startswith("#"):
                if "not kept" in line:
                    lost.append(devs[i])
                continue
            _, a, b, _ = line.split()
            g.append((int(a), int(b)))
    except OSError:
        pass
    gaps.append(g)

def longest(g, lo, hi):
    """The longest gap overlapping [lo, hi], ns (0: none of >= 1 ms)."""
    return max([b - a for a, b in g if a < hi and b > lo] or [0])

def ms(ns):
    return "<1" if ns == 0 else "%.2f" % (ns / 1e6)

# the daemon's log: per upgrade, the first "freezing" and the last "thawed"
# (stamped by the filter in front of its stderr)
frozen = []  # [first freeze, last thaw] per upgrade, realtime ns
for line in open(os.path.join(d, "rt.log"), errors="replace"):
    t, _, msg = line.partition(" ")
    if ": upgrade: started " in msg:
        frozen.append([0, 0])
    elif frozen and msg.rstrip().endswith(": freezing") and not frozen[-1][0]:
        frozen[-1][0] = int(t)
    elif frozen and msg.rstrip().endswith(": thawed"):
        frozen[-1][1] = int(t)

print("| upgrade | pids | command ms | daemon pause_us | first freeze to last thaw (ms) | "
      "pause: longest gap, any device (ms) | %s |" % " | ".join(devs))
print("|---|---|---|---|---|---|" + "---|" * 3)
pauses, daemon, cmd, ftt, first = [], [], [], [], None
parts = {"freeze_us": [], "save_us": [], "restore_us": []}  # the daemon's pause, split
for idx, line in enumerate(open(os.path.join(d, "upgrades.txt"))):
    k, t0, t1, status, rest = (line.rstrip("\n").split(" ", 4) + [""])[:5]
    t0, t1 = int(t0), int(t1)
    per = [longest(g, t0, t1 + spacing_ns / 2) for g in gaps]
    cmd.append((t1 - t0) / 1e6)
    if status != "ok":
        print("| %s | failed: %s | %.1f | - | - | %s | %s |" % (k, rest.strip()[:80], cmd[-1],
              ms(max(per)), " | ".join(ms(x) for x in per)))
        continue
    r = json.loads(rest)
    first = first or r
    pauses.append(max(per))
    daemon.append(r["pause_us"])
    for key in parts:
        if key in r:
            parts[key].append(r[key])
    f = frozen[idx] if idx < len(frozen) else [0, 0]
    if f[0] and f[1] > f[0]:
        ftt.append(f[1] - f[0])
    print("| %s | %d -> %d | %.1f | %d | %s | %s | %s |" % (k, r["old_pid"], r["new_pid"],
          cmd[-1], r["pause_us"], "%.2f" % ((f[1] - f[0]) / 1e6) if f[0] and f[1] > f[0] else "-",
          ms(max(per)), " | ".join(ms(x) for x in per)))

def p50(v):
    return statistics.median(v) if v else 0

print()
print("| over %d upgrades (%d succeeded) | p50 | max |" % (n, len(pauses)))
print("|---|---|---|")
if pauses:
    print("| pause, longest gap of any device | %s ms | %s ms |" % (ms(p50(pauses)), ms(max(pauses))))
    print("| daemon pause_us | %.0f us | %d us |" % (p50(daemon), max(daemon)))
    for key, v in parts.items():
        if v:
            print("| of it: %s | %.0f us | %d us |" % (key, p50(v), max(v)))
if ftt:
    print("| daemon log: first freeze to last thaw | %.2f ms | %.2f ms |" % (p50(ftt) / 1e6,
          max(ftt) / 1e6))
print("| vfu-ctl upgrade wall time | %.1f ms | %.1f ms |" % (p50(cmd), max(cmd) if cmd else 0))
quiet = max(longest(g, quiet_from, quiet_to) for g in gaps)
print()
print("Quiet %.1f s before the first upgrade: longest gap of any device %s ms." %
      ((quiet_to - quiet_from) / 1e9, ms(quiet)))
if lost:
    print("Warning: vfu-bench ran out of room for gaps on %s: the later upgrades' rows "
          "are incomplete." % ", ".join(lost))
if first:
    print("Handed over per upgrade: %d devices, %d fds, %d bytes of state." %
          (first["devices"], first["fds"], first["bytes"]))
tot_iops, errs, notes = 0.0, 0, []
for i in range(3):
    try:
        j = json.load(open(os.path.join(d, "b%d.json" % i)))
        tot_iops += sum(x["read"]["iops"] + x["write"]["iops"] for x in j["jobs"])
        errs += sum(x["nvme_errors"] for x in j["jobs"])
        if i == 0 and "probe" in j:
            notes.append("GPIO probe on n0's bench: longest wait %.2f ms"
                         % (j["probe"]["lat_ns"]["max"] / 1e6))
    except (OSError, ValueError, KeyError):
        notes.append("%s: no result (vfu-bench exit %s: %s)" % (devs[i], rcs[i],
                     open(os.path.join(d, "b%d.err" % i)).read().strip().splitlines()[-1:]))
print("Load: %s workers (%s polling), vfu-bench QD%s 4k randread x3 (thinktime %s us), %.0f "
      "IOPS in all over the run, %d NVMe errors%s." % (cores, poll, qd, think, tot_iops, errs,
                                     "; " + "; ".join(notes) if notes else ""))
EOF
