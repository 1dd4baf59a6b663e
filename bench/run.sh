#!/usr/bin/env bash
# Build vfu-microbench in Release, run every case, write bench/results.json and bench/RESULTS.md.
#
# Usage: bench/run.sh [extra google-benchmark flags, e.g. --benchmark_filter=region]
# Environment: MIN_TIME (seconds per repetition, default 0.2), REPS (repetitions,
# default 4), BUILD_DIR (default build-bench). Repetitions of all cases are
# randomly interleaved and the table shows their median, so a burst of other
# load on a shared VM hits every variant alike instead of one of them.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
min_time=${MIN_TIME:-0.2}
reps=${REPS:-4}
json=$root/bench/results.json
md=$root/bench/RESULTS.md
console=$(mktemp)
trap 'rm -f "$console"' EXIT

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVFURT_BENCH=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target vfu-microbench >/dev/null

# google-benchmark 1.7.x takes the minimum time as plain seconds ("0.2");
# 1.8+ also accepts "0.2s". Plain seconds work with both.
# CPU time the hypervisor gave to others (steal) and time other processes
# used during the run: both inflate wall-clock figures.
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
read -r busy0 steal0 < <(cpu_ticks)
self0=$(date +%s%N)
"$build/bench/vfu-microbench" --benchmark_min_time="$min_time" \
	--benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=true \
	--benchmark_display_aggregates_only=true \
	--benchmark_format=console --benchmark_out="$json" --benchmark_out_format=json \
	"$@" | tee "$console"
read -r busy1 steal1 < <(cpu_ticks)
elapsed_s=$(( ($(date +%s%N) - self0) / 1000000000 ))
hz=$(getconf CLK_TCK)

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[ -n "$cpu_model" ] || cpu_model=$(uname -m)
bench_ver=$(dpkg-query -W -f='${Version}' libbenchmark-dev 2>/dev/null || echo unknown)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)

{
	echo "# vfu-microbench results"
	echo
	echo "| machine | |"
	echo "|---|---|"
	echo "| date | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
	echo "| nproc | $(nproc) |"
	echo "| CPU | $cpu_model |"
	echo "| kernel | $(uname -r) |"
	echo "| load average before / after | $load_before / $(cut -d' ' -f1-3 /proc/loadavg) |"
	echo "| run | ${elapsed_s} s, $reps randomly interleaved repetitions of >= ${min_time} s per case |"
	echo "| CPU time used by all processes during the run / stolen by the hypervisor | $(( (busy1 - busy0) / hz )) s / $(( (steal1 - steal0) / hz )) s |"
	echo "| google-benchmark | $bench_ver |"
	echo "| tree | $commit$dirty |"
	echo
	echo "One op is one message, pass, trigger, lookup or round trip (see the case names);"
	echo "figures are the median of the repetitions, cv their coefficient of variation"
	echo "(real time): above ~20% the machine was disturbing the case, compare with care."
	echo "ns/op is wall-clock time; cycles/op are TSC cycles (rdtsc), so they scale"
	echo "with the TSC frequency, not the core clock. Client on CPU 0, servers on CPU 1."
	echo "(google-benchmark's \"Library was built as DEBUG\" warning is about Debian's"
	echo "libbenchmark package; vfu-rt and the cases are built Release.)"
	echo
	python3 - "$json" <<'EOF'
import json, sys

def si(v):
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.2f}{suf}"
    return f"{v:.1f}"

with open(sys.argv[1]) as f:
    doc = json.load(f)
rows = {}    # run name -> the row to show (median aggregate, else last run)
cvs = {}     # run name -> coefficient of variation of the repetitions
labels = {}
order = {}   # run name -> registration order (repetitions run interleaved)
for b in doc.get("benchmarks", []):
    key = b.get("run_name", b["name"])
    order.setdefault(key, (b.get("family_index", 0), b.get("per_family_instance_index", 0)))
    if b.get("label"):
        labels[key] = b["label"]
    if b.get("run_type", "iteration") == "aggregate":
        if b.get("aggregate_name") == "median":
            rows[key] = b
        elif b.get("aggregate_name") == "cv":
            cvs[key] = b.get("real_time")
    elif key not in rows or rows[key].get("run_type") != "aggregate":
        rows[key] = b
print("| benchmark | ns/op | cycles/op | items/s | cv | note |")
print("|---|---:|---:|---:|---:|---|")
for key in sorted(rows, key=lambda k: order[k]):
    b = rows[key]
    name = key.removesuffix("/real_time")
    if b.get("error_occurred"):
        print(f"| {name} | | | | | skipped: {b.get('error_message', '')} |")
        continue
    ns = b.get("ns_per_op", b.get("real_time", 0.0))
    cyc = b.get("cycles_per_op")
    items = b.get("items_per_second")
    cyc_s = f"{cyc:.0f}" if cyc is not None else ""
    items_s = si(items) if items else ""
    cv = cvs.get(key)
    cv_s = f"{cv * 100:.0f}%" if cv is not None else ""
    print(f"| {name} | {ns:.1f} | {cyc_s} | {items_s} | {cv_s} | {labels.get(key, '')} |")
EOF
	echo
	if grep -q '^Comparisons' "$console"; then
		echo '```'
		sed -n '/^Comparisons/,$p' "$console"
		echo '```'
	fi
} >"$md.tmp"
mv "$md.tmp" "$md"

echo
cat "$md"
