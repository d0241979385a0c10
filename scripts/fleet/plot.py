#!/usr/bin/env python3
"""Draws OUT_DIR/fleet.png from a scripts/fleet.sh run: each node's open
tunnels (from its /metrics) over time, one panel per scenario that holds
tunnels (rolling, capacity, kill; each with its own scale, so 300 steady
connections show beside 27000 held ones), with the run's events (a node
replaced or killed) marked, and every node's RSS over the whole run.

    target/tools/venv/bin/python scripts/fleet/plot.py OUT_DIR [PNG]

Needs matplotlib (scripts/setup.sh matplotlib installs it into the venv).
"""

import csv
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

# The scenarios drawn, and how their first event starts: "NAME: ...".
SCENARIOS = ("rolling", "capacity", "kill")
STARTS = re.compile(r"^(keys|rolling|capacity|kill): ")
# Seconds shown before a scenario's first event.
LEAD_S = 0.2


def events_in(events, start, end):
    return [(t, what) for t, what in events if start <= t <= end]


def mark(ax, events, origin):
    for t, what in events:
        ax.axvline(t - origin, color="#9e9e9e", linewidth=0.8, linestyle="--")
        ax.text(t - origin, 0.02, " " + what, rotation=90, va="bottom", fontsize=7, color="#616161",
                transform=ax.get_xaxis_transform())


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: plot.py OUT_DIR [PNG]", file=sys.stderr)
        return 2
    out = Path(argv[1])
    png = Path(argv[2]) if len(argv) == 3 else out / "fleet.png"
    with open(out / "samples.csv") as f:
        samples = list(csv.DictReader(f))
    events = []
    if (out / "events.csv").exists():
        with open(out / "events.csv") as f:
            events = [(float(t), what) for t, what in csv.reader(f)]
    env = {}
    if (out / "env.txt").exists():
        env = dict(line.strip().split("=", 1) for line in open(out / "env.txt") if "=" in line)
    if not samples:
        print("fleet: no samples to plot", file=sys.stderr)
        return 1
    origin = float(samples[0]["t"])
    last = float(samples[-1]["t"])
    nodes = sorted({int(s["node"]) for s in samples})

    # Each scenario runs from its first event to the next scenario's.
    starts = []
    for t, what in events:
        m = STARTS.match(what)
        if m and m.group(1) not in [name for name, _ in starts]:
            starts.append((m.group(1), t))
    spans = [(name, t, starts[i + 1][1] if i + 1 < len(starts) else last)
             for i, (name, t) in enumerate(starts)]
    spans = [span for span in spans if span[0] in SCENARIOS]

    fig, axes = plt.subplots(len(spans) + 1, 1, figsize=(11, 3.2 * (len(spans) + 1)), squeeze=False)
    axes = [row[0] for row in axes]
    for ax, (name, start, end) in zip(axes, spans):
        for node in nodes:
            rows = [s for s in samples if int(s["node"]) == node and start - LEAD_S <= float(s["t"]) <= end]
            ax.plot([float(s["t"]) - origin for s in rows],
                    [int(s["tunnels"]) if s["up"] == "1" else None for s in rows],
                    linewidth=1.2, label=f"node{node}")
        mark(ax, events_in(events, start, end), origin)
        ax.set_title(name, fontsize=10, loc="left")
        ax.set_ylabel("open tunnels")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    rss_ax = axes[-1]
    for node in nodes:
        rss = [(float(s["t"]) - origin, int(s["rss_kib"]) / 1024)
               for s in samples if int(s["node"]) == node and s["rss_kib"]]
        rss_ax.plot([x for x, _ in rss], [y for _, y in rss], linewidth=1, label=f"node{node}")
    for _, start, _ in spans:
        rss_ax.axvline(start - origin, color="#9e9e9e", linewidth=0.8, linestyle="--")
    rss_ax.set_title("RSS of each node's process (a replaced node: its new process)", fontsize=10, loc="left")
    rss_ax.set_ylabel("RSS (MiB)")
    rss_ax.set_ylim(bottom=0)
    rss_ax.grid(alpha=0.3)
    rss_ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("seconds from the start of the run (from each node's /metrics, every "
                        f"{env.get('sample_s', '?')} s; dashed: events)")
    fig.suptitle(
        f"wsproxy-fast fleet: {len(nodes)} nodes behind {env.get('balancer', '?')}: open tunnels per node "
        f"({env.get('git', '?')}, {env.get('date', '?')})",
        fontsize=11,
    )
    fig.tight_layout()
    tmp = png.with_suffix(".png.tmp")
    fig.savefig(tmp, format="png", dpi=110)
    tmp.replace(png)
    print(f"fleet: plot in {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
