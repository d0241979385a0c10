#!/usr/bin/env python3
"""Summarizes one scripts/attack.sh run (standard library only).

    python3 bench/attack/summarize.py OUT_DIR [--check TARGET
        --max-flood-echo-ms MS --min-flood-ratio R]

Reads OUT_DIR/runs.jsonl (one JSON object per attack phase, written by
attack.sh) and OUT_DIR/env.txt, and writes OUT_DIR/summary.md (also
printed):

- the Reliability table: for each attack and proxy, legitimate handshakes/s
  relative to the same proxy without attack, the worst legitimate
  handshake and the worst echo latency of a repetition (medians over
  repetitions: one repetition disturbed by something else on the machine
  does not make the figure);
- the detail table: rates, the highest worst latencies, errors, echoes
  lost, proxy CPU, attack volume.

With --check, exits 1 unless TARGET survived every phase and, under the
connection flood, kept at least R of its handshake rate and an echo worst
latency under MS milliseconds.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

NAMES = {"nginx": "nginx", "haproxy": "HAProxy", "wsproxy-fast": "wsproxy-fast"}
ATTACKS = ["none", "slowloris", "slow-reader", "header-bomb", "idle", "flood"]
LABELS = {
    "none": "no attack",
    "slowloris": "slowloris",
    "slow-reader": "slow readers",
    "header-bomb": "header bombs",
    "idle": "idle connections",
    "flood": "connection flood",
}


def get(value, *path):
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def load(out):
    runs = []
    with open(out / "runs.jsonl") as f:
        for line in f:
            line = line.strip()
            if line:
                runs.append(json.loads(line))
    env = {}
    env_path = out / "env.txt"
    if env_path.exists():
        for line in env_path.read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
    return runs, env


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def highest(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def ms(us):
    return None if us is None else us / 1000


def share(text):
    try:
        return f"{float(text):.0%}"
    except (TypeError, ValueError):
        return "?"


def fmt(value, spec, unit=""):
    return "n/a" if value is None else format(value, spec) + unit


class Cell:
    """One proxy under one attack, over the repetitions."""

    def __init__(self, runs):
        self.runs = runs
        self.rate = median(get(r, "handshakes", "handshakes_per_s") for r in runs)
        # No handshake completed: no worst one to tell.
        hs = [ms(get(r, "handshakes", "cycle_latency", "max_us"))
              for r in runs if get(r, "handshakes", "handshakes")]
        echo = [ms(get(r, "echo", "latency", "max_us")) for r in runs]
        # Each repetition's worst, then the median of those (what a run
        # typically sees) and the highest (the worst seen at all).
        self.hs_worst, self.hs_worst_max = median(hs), highest(hs)
        self.echo_worst, self.echo_worst_max = median(echo), highest(echo)
        self.hs_errors = sum(get(r, "handshakes", "errors", "total") or 0 for r in runs)
        self.echo_lost = sum(get(r, "echo", "unanswered") or 0 for r in runs)
        self.echo_errors = sum(get(r, "echo", "errors", "total") or 0 for r in runs)
        self.alive = all(r.get("proxy_alive") for r in runs)
        self.cpu = median(r["proxy_cpu_ticks"] / r["clk_tck"] for r in runs)
        self.opened = median(sum(a.get("opened", 0) for a in r.get("attackers") or [] if a) for r in runs)
        self.missing = any(get(r, "handshakes") is None or get(r, "echo") is None for r in runs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--check", metavar="TARGET")
    parser.add_argument("--max-flood-echo-ms", type=float, default=200)
    parser.add_argument("--min-flood-ratio", type=float, default=0.1)
    args = parser.parse_args()
    runs, env = load(args.out)

    targets = [t for t in NAMES if any(r["target"] == t for r in runs)]
    attacks = [a for a in ATTACKS if any(r["attack"] == a for r in runs)]
    cells = {}
    for t in targets:
        for a in attacks:
            group = [r for r in runs if r["target"] == t and r["attack"] == a]
            if group:
                cells[(t, a)] = Cell(group)

    def ratio(t, a):
        base, cell = cells.get((t, "none")), cells.get((t, a))
        if not base or not cell or not base.rate or cell.rate is None:
            return None
        return cell.rate / base.rate

    lines = []
    versions = [f"{env.get('wsproxy', '?')} ({env.get('wsproxy_bin', '?')}, tree {env.get('git', '?')})"]
    versions += [env[k] for k in ("nginx", "haproxy") if env.get(k)]
    lines.append(f"Run: `{env.get('command', 'scripts/attack.sh')}`, {env.get('date', '?')}, "
                 f"{env.get('host_nproc', '?')} × {env.get('cpu_model', '?')}, kernel {env.get('kernel', '?')}; "
                 f"{'; '.join(versions)}; {env.get('reps', '?')} repetition(s) of {env.get('duration_s', '?')} s; "
                 f"load average {env.get('loadavg_start', '?')} before, {env.get('loadavg_end', '?')} after; "
                 f"other processes took {share(env.get('other_cpu_share'))} of the CPU meanwhile.")
    lines.append("")
    lines.append("Legitimate handshakes/s relative to no attack · worst legitimate handshake · "
                 "worst echo latency (medians over repetitions):")
    lines.append("")
    lines.append("| attack | " + " | ".join(NAMES[t] for t in targets) + " |")
    lines.append("|---|" + "---|" * len(targets))
    for a in attacks:
        row = [LABELS[a]]
        for t in targets:
            cell = cells.get((t, a))
            if not cell:
                row.append("")
                continue
            if a == "none":
                head = f"{fmt(cell.rate, ',.0f')}/s"
            else:
                head = f"{fmt(ratio(t, a), '.2f')}×"
            text = f"{head} · {fmt(cell.hs_worst, ',.0f', ' ms')} · {fmt(cell.echo_worst, ',.0f', ' ms')}"
            if not cell.alive:
                text += " (died)"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Detail (medians, and the highest worst over repetitions; errors and echoes lost "
                 "summed over repetitions):")
    lines.append("")
    lines.append("| attack | proxy | handshakes/s | vs none | worst handshake (highest) | handshake errors "
                 "| worst echo (highest) | echoes lost | proxy CPU | attack connections |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for a in attacks:
        for t in targets:
            cell = cells.get((t, a))
            if not cell:
                continue
            lines.append(
                f"| {LABELS[a]} | {NAMES[t]} | {fmt(cell.rate, ',.0f')} | {fmt(ratio(t, a), '.2f')} "
                f"| {fmt(cell.hs_worst, ',.1f', ' ms')} ({fmt(cell.hs_worst_max, ',.1f', ' ms')}) "
                f"| {cell.hs_errors} "
                f"| {fmt(cell.echo_worst, ',.1f', ' ms')} ({fmt(cell.echo_worst_max, ',.1f', ' ms')}) "
                f"| {cell.echo_lost + cell.echo_errors} | {fmt(cell.cpu, '.1f', ' s')} "
                f"| {fmt(cell.opened, ',.0f') if a != 'none' else ''} |"
            )
    text = "\n".join(lines) + "\n"
    (args.out / "summary.md").write_text(text)
    print(text)

    if not args.check:
        return 0
    problems = []
    t = args.check
    for a in attacks:
        cell = cells.get((t, a))
        if cell and not cell.alive:
            problems.append(f"{t} died under {LABELS[a]}")
        if cell and cell.missing:
            problems.append(f"a load against {t} under {LABELS[a]} gave no report")
    flood = cells.get((t, "flood"))
    if flood:
        # The worst of all repetitions: the check holds for every one.
        r = ratio(t, "flood")
        if r is None or r < args.min_flood_ratio:
            problems.append(f"{t} under the connection flood: handshakes at {fmt(r, '.2f')}× their "
                            f"rate without attack (at least {args.min_flood_ratio} wanted)")
        if flood.echo_worst_max is None or flood.echo_worst_max >= args.max_flood_echo_ms:
            problems.append(f"{t} under the connection flood: worst echo latency "
                            f"{fmt(flood.echo_worst_max, '.0f')} ms (under {args.max_flood_echo_ms:.0f} wanted)")
    for p in problems:
        print(f"check failed: {p}", file=sys.stderr)
    if not problems:
        print(f"checks passed for {t}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
