#!/usr/bin/env python3
"""bench/suite helper: the issue's performance targets as a Markdown table, from one suite run's JSON files."""
import json
import os
import sys


def load(work, name):
    try:
        with open(os.path.join(work, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def iops(work, name):
    """Total IOPS of a vfu-bench run (all jobs, both directions) or of a fio run."""
    d = load(work, name)
    if not d:
        return None
    return sum(j[k]["iops"] for j in d["jobs"] for k in ("read", "write"))


def pct(work, name, p):
    """The worst percentile p (e.g. "99.000000") over a vfu-bench run's jobs, in ns."""
    d = load(work, name)
    if not d:
        return None
    vals = [j[k]["lat_ns"]["percentile"][p] for j in d["jobs"] for k in ("read", "write")
            if j[k]["total_ios"]]
    return max(vals) if vals else None


def ratio(a, b):
    return a / b if a and b else None


def fmt(v, scale=1.0, unit=""):
    return "n/a" if v is None else "%.2f%s" % (v / scale, unit)


def main():
    w = sys.argv[1]
    rows = []

    p50 = pct(w, "db-mmap-qd1", "50.000000")
    rows.append(("QD1 polled: p50 <= 2 us", fmt(p50, 1e3, " us"),
                 p50 is not None and p50 <= 2000))

    r = ratio(iops(w, "db-mmap-qd1"), iops(w, "db-msg-qd1"))
    rows.append(("mmap doorbells >= 10x the IOPS of message doorbells at QD1", fmt(r, unit="x"),
                 r is not None and r >= 10))

    q = iops(w, "qd128")
    rows.append(("QD128 polled: >= 4M IOPS on one worker core", fmt(q, 1e6, "M IOPS"),
                 q is not None and q >= 4e6))

    r = ratio(iops(w, "irq-qd32"), iops(w, "irq1-qd32"))
    pa, pb = pct(w, "irq-qd32", "99.000000"), pct(w, "irq1-qd32", "99.000000")
    ok = r is not None and r >= 3 and pa is not None and pb is not None and pa <= pb
    rows.append(("batched irqs >= 3x one eventfd write per completion at QD32, p99 no worse",
                 "%s; p99 %s vs %s" % (fmt(r, unit="x"), fmt(pa, 1e3, " us"),
                                      fmt(pb, 1e3, " us")), ok))

    f = iops(w, "be-file-randread")
    r1 = ratio(f, iops(w, "fio-default"))
    r2 = ratio(f, iops(w, "fio-batch"))
    r3 = ratio(f, iops(w, "fio-sqpoll"))
    rows.append(("file backend >= 0.9x fio io_uring on the same file (randread QD32)",
                 "%s of fio (defaults), %s (batched submit), %s (SQPOLL, 2 CPUs)"
                 % (fmt(r1, unit="x"), fmt(r2, unit="x"), fmt(r3, unit="x")),
                 r1 is not None and all(r is None or r >= 0.9 for r in (r1, r2, r3))))

    r4 = ratio(iops(w, "be-direct"), iops(w, "fio-direct"))
    rows.append(("(extra) file backend with O_DIRECT vs fio --direct=1 (disk-bound)",
                 fmt(r4, unit="x"), r4 is not None and r4 >= 0.9))

    print("| target | measured | met |")
    print("|---|---|---|")
    for target, measured, ok in rows:
        print("| %s | %s | %s |" % (target, measured, "yes" if ok else "**no**"))


if __name__ == "__main__":
    main()
