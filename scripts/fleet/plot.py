#!/usr/bin/env python3
"""Draws OUT_DIR/fleet.png from a scripts/fleet.sh run: each node's open
tunnels (from its /metrics) and its RSS over time, seconds from the start
of the run, with the run's events (scenarios starting, a node replaced or
killed) marked.

    target/tools/venv/bin/python scripts/fleet/plot.py OUT_DIR [PNG]

Needs matplotlib (scripts/setup.sh matplotlib installs it into the venv).
"""

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)


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
    start = float(samples[0]["t"])
    nodes = sorted({int(s["node"]) for s in samples})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True, height_ratios=[2, 1])
    for node in nodes:
        rows = [s for s in samples if int(s["node"]) == node]
        t = [float(s["t"]) - start for s in rows]
        top.plot(t, [int(s["tunnels"]) if s["up"] == "1" else None for s in rows],
                 linewidth=1.2, label=f"node{node}")
        rss = [(float(s["t"]) - start, int(s["rss_kib"]) / 1024) for s in rows if s["rss_kib"]]
        if rss:
            bottom.plot([x for x, _ in rss], [y for _, y in rss], linewidth=1, label=f"node{node}")
    for ax in (top, bottom):
        for t, what in events:
            ax.axvline(t - start, color="#9e9e9e", linewidth=0.8, linestyle="--")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    ymax = top.get_ylim()[1]
    for t, what in events:
        top.text(t - start, ymax * 0.98, " " + what, rotation=90, va="top", fontsize=7, color="#616161")
    top.set_ylabel("open tunnels (its /metrics)")
    top.legend(loc="upper right", fontsize=8)
    bottom.set_ylabel("RSS (MiB)")
    bottom.set_xlabel("seconds from the start of the run (dashed: events)")
    fig.suptitle(
        f"wsproxy-fast fleet: {len(nodes)} nodes behind {env.get('balancer', '?')} "
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
