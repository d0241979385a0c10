#!/usr/bin/env python3
"""Judges a scripts/soak.sh run: lost bytes, descriptor and memory growth,
unexplained proxy warnings.

    analyze.py OUT_DIR

Reads OUT_DIR/samples.csv (scripts/soak/sample.py), phases.txt
(load_start, load_end, drain_end as epoch seconds, load_secs the load's
set length), soak.json (wsbench
soak's report) and wsproxy.log. Writes OUT_DIR/summary.csv (metric, value,
limit, ok: one figure per row) and prints it as a table. Exits 1 if any
check fails, 2 if the inputs are unusable.

The checks, and their tolerances:
- streams: wsbench soak reported no failed stream (every echoed byte equal
  to what was sent, every clean stream's checksums equal, no stall) and
  checked some bytes.
- fd trend: from the end of the warm-up (WARMUP_SHARE of the load, at most
  WARMUP_MAX_S, at least WARMUP_MIN_S) to WIND_DOWN_S before the load's set
  end (streams then finish, and the count falls), the least-squares slope of the fd
  count times the window's length must stay within max(FD_GROWTH_ABS,
  FD_GROWTH_SHARE x the window's median). Load makes the count swing by
  tens (connections come and go); a leak of one fd per few hundred streams
  still crosses the limit within a 10-minute run.
- fd drain: DRAIN_S after the load, the proxy must hold no more fds than it
  did idle before the load.
- RSS trend: the same fit on VmRSS within max(RSS_GROWTH_ABS_KIB,
  RSS_GROWTH_SHARE x the window's median). The warm-up covers the timer
  wheel's first revolution (102.4 s, src/timer.rs): until then its slots
  grow with every new connection (8 bytes an entry), then they hold steady.
- log: no WARN or ERROR line from the proxy but those in EXPLAINED.
"""

import csv
import json
import re
import statistics
import sys
from pathlib import Path

WARMUP_SHARE = 0.2
WARMUP_MAX_S = 120.0
WARMUP_MIN_S = 5.0
WIND_DOWN_S = 1.0
FD_GROWTH_ABS = 16
FD_GROWTH_SHARE = 0.25
RSS_GROWTH_ABS_KIB = 1024
RSS_GROWTH_SHARE = 0.10

# WARN/ERROR lines the run explains, each with why.
EXPLAINED = [
    # At startup, about the machine's hard open-file limit; no fault of the
    # run and nothing to do with the load.
    (re.compile(r" WARN  main: open-file limit \d+: room for \d+ connections?"), "startup: the machine's fd limit"),
]
LEVEL = re.compile(r"^\S+ (WARN|ERROR) ")


def fit(points):
    """Least-squares slope (per second) of (t, value) points."""
    if len(points) < 3:
        return 0.0
    ts, vs = zip(*points)
    if len(set(ts)) < 2:
        return 0.0
    return statistics.linear_regression(ts, vs).slope


def main(argv):
    if len(argv) != 2:
        print("usage: analyze.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    try:
        with open(out / "samples.csv") as f:
            samples = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        phases = dict(line.strip().split("=", 1) for line in open(out / "phases.txt") if "=" in line)
        load_start, load_end = float(phases["load_start"]), float(phases["load_end"])
        load_secs = float(phases["load_secs"])
        soak = json.loads((out / "soak.json").read_text() or "{}")
        log_lines = (out / "wsproxy.log").read_text(errors="replace").splitlines()
    except (OSError, KeyError, ValueError) as err:
        print(f"soak: cannot read the run in {out}: {err}", file=sys.stderr)
        return 2

    load_s = load_end - load_start
    warmup = min(WARMUP_MAX_S, max(WARMUP_MIN_S, WARMUP_SHARE * load_secs))
    before = [s for s in samples if s["t"] < load_start]
    window_end = load_start + load_secs - WIND_DOWN_S
    window = [s for s in samples if load_start + warmup <= s["t"] <= window_end]
    after = [s for s in samples if s["t"] > load_end]
    if not before or len(window) < 3 or not after:
        print(f"soak: too few samples (before {len(before)}, window {len(window)}, after {len(after)})",
              file=sys.stderr)
        return 2
    window_s = window[-1]["t"] - window[0]["t"]

    rows = []  # (metric, value, limit, ok)

    def row(metric, value, limit="", ok=True):
        rows.append((metric, value, limit, ok))

    row("load_s", f"{load_s:.1f}")
    row("warmup_s", f"{warmup:.1f}")
    row("fit_window_s", f"{window_s:.1f}")
    row("samples", len(samples))
    for key in ("seed", "streams", "clean", "messages_sent", "messages_checked", "bytes_sent", "bytes_checked"):
        row(key, soak.get(key, "missing"))
    for fault, n in soak.get("aborted", {}).items():
        row(f"aborted_{fault}", n)
    for kind, counts in soak.get("kinds", {}).items():
        row(f"{kind}_streams", counts.get("streams"))
    failed = soak.get("failed")
    row("failed_streams", failed, "0", failed == 0 and soak.get("ok") is True and soak.get("bytes_checked", 0) > 0)
    for i, why in enumerate(soak.get("failures", [])):
        row(f"failure_{i + 1}", why, "", False)

    def trend(name, key, scale, unit, abs_limit, share):
        values = [s[key] / scale for s in window]
        median = statistics.median(values)
        slope = fit([(s["t"], s[key] / scale) for s in window])
        growth = slope * window_s
        limit = max(abs_limit / scale, share * median)
        row(f"{name}_idle_before", f"{before[-1][key] / scale:.1f}")
        row(f"{name}_window_first", f"{window[0][key] / scale:.1f}")
        row(f"{name}_window_last", f"{window[-1][key] / scale:.1f}")
        row(f"{name}_window_median", f"{median:.1f}")
        row(f"{name}_window_max", f"{max(values):.1f}")
        row(f"{name}_slope_per_min", f"{slope * 60:.3f}")
        row(f"{name}_fitted_growth_{unit}", f"{growth:.2f}", f"<= {limit:.1f}", growth <= limit)
        row(f"{name}_after_drain", f"{after[-1][key] / scale:.1f}")

    trend("fds", "fds", 1, "fds", FD_GROWTH_ABS, FD_GROWTH_SHARE)
    fds_left = after[-1]["fds"] - before[-1]["fds"]
    row("fds_left_after_drain", f"{fds_left:.0f}", "<= 0", fds_left <= 0)
    trend("rss_mib", "rss_kib", 1024, "mib", RSS_GROWTH_ABS_KIB, RSS_GROWTH_SHARE)
    load_cpu = [s["cpu_s"] for s in samples if load_start <= s["t"] <= load_end]
    if len(load_cpu) >= 2:
        row("proxy_cpu_s_during_load", f"{load_cpu[-1] - load_cpu[0]:.1f}")

    flagged = [line for line in log_lines if LEVEL.match(line)]
    explained = [line for line in flagged if any(p.search(line) for p, _ in EXPLAINED)]
    unexplained = [line for line in flagged if line not in explained]
    row("log_warn_error_lines", len(flagged))
    row("log_explained", len(explained))
    row("log_unexplained", len(unexplained), "0", not unexplained)
    for i, line in enumerate(unexplained[:10]):
        row(f"log_unexplained_{i + 1}", line, "", False)

    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["metric", "value", "limit", "ok"])
        for metric, value, limit, ok in rows:
            writer.writerow([metric, value, limit, "yes" if ok else "NO"])
    width = max(len(r[0]) for r in rows)
    for metric, value, limit, ok in rows:
        mark = "" if ok else "   <-- FAILED"
        print(f"  {metric:<{width}}  {value}{f'  ({limit})' if limit else ''}{mark}")
    failures = [r[0] for r in rows if not r[3]]
    if failures:
        print(f"soak: FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
