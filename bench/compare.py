#!/usr/bin/env python3
"""compare.py RESULT.json...: median per (stack, test) over passes, and moat / best peer.

Best peer = the better of pasta and slirp4netns on that test in this set of runs (SPEC R-PERF-1).
Higher is better for throughput and rates; lower is better for latency, loss, CPU and memory.
"""
import json
import statistics
import sys
from collections import defaultdict

# (test, key, unit, higher_is_better)
METRICS = [
    ("tcp_out", "gbps", "Gbit/s", True),
    ("tcp_out_p4", "gbps", "Gbit/s", True),
    ("tcp_dl", "gbps", "Gbit/s", True),
    ("tcp_in", "gbps", "Gbit/s", True),
    ("tcp_in_ext", "gbps", "Gbit/s", True),
    ("tcp_dl", "stack_cpu_s_per_GB", "stack s/GB", False),
    ("tcp_rr", "tps", "trans/s", True),
    ("tcp_rr", "p50_us", "p50 us", False),
    ("tcp_rr_1cpu", "tps", "trans/s", True),
    ("tcp_rr_1cpu", "p50_us", "p50 us", False),
    ("tcp_crr", "cps", "conn/s", True),
    ("udp_out", "lost_pct", "loss %", False),
    ("dns", "qps", "query/s", True),
    ("mem", "vmhwm_kb", "peak RSS KiB", False),
    ("mem", "rss_after_start_kb", "RSS after start KiB", False),
]


def main(paths):
    vals = defaultdict(list)  # (stack, test, key) -> [values]
    for p in paths:
        try:
            js = json.load(open(p))
        except Exception as e:  # a failed run leaves no or partial JSON
            print(f"<!-- skipped {p}: {e} -->")
            continue
        label = js.get("label", "?")
        stack = "moat" if label.startswith("moat") else label.split("-")[0]
        for test, res in js.get("results", {}).items():
            if not isinstance(res, dict):
                continue
            for t, key, _, _ in METRICS:
                if t == test and isinstance(res.get(key), (int, float)) and (res.get("ok", True) or test == "mem"):
                    vals[(stack, test, key)].append(float(res[key]))
    med = {k: statistics.median(v) for k, v in vals.items() if v}
    print("| test | metric | moat | pasta | slirp4netns | moat / best peer |")
    print("|---|---|---|---|---|---|")
    for test, key, unit, hib in METRICS:
        m = med.get(("moat", test, key))
        peers = [med.get((s, test, key)) for s in ("pasta", "slirp4netns")]
        known = [x for x in peers if x is not None]
        best = (max(known) if hib else min(known)) if known else None
        if m is None and not known:
            continue
        ratio = "-"
        if m is not None and best:
            ratio = "%.2f" % ((m / best) if hib else (best / m if m else float("inf")))
        fmt = lambda x: "-" if x is None else ("%.3f" % x if x < 100 else "%.0f" % x)
        print(f"| {test} | {unit} | {fmt(m)} | {fmt(peers[0])} | {fmt(peers[1])} | {ratio} |")
    print("\nRatios are oriented so that > 1 means moat is better (for lower-is-better metrics: best/moat).")
    print("n per cell = " + ", ".join(sorted({str(len(v)) for v in vals.values()})) + " passes (median).")


if __name__ == "__main__":
    main(sys.argv[1:])
