#!/usr/bin/env python3
"""Draws OUT_DIR/soak.png from a scripts/soak.sh run: the proxy's fd count,
RSS and CPU use over time, seconds from the start of the load, with the
warm-up and the drain shaded and the fitted trend line (analyze.py's fit)
drawn over the window it was fitted on.

    target/tools/venv/bin/python scripts/soak/plot.py OUT_DIR [PNG]

Needs matplotlib (scripts/setup.sh matplotlib installs it into the venv).
"""

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import analyze  # noqa: E402  (the fit and the warm-up rule, shared)


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: plot.py OUT_DIR [PNG]", file=sys.stderr)
        return 2
    out = Path(argv[1])
    png = Path(argv[2]) if len(argv) == 3 else out / "soak.png"
    with open(out / "samples.csv") as f:
        samples = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    phases = dict(line.strip().split("=", 1) for line in open(out / "phases.txt") if "=" in line)
    start, end = float(phases["load_start"]), float(phases["load_end"])
    load_secs = float(phases["load_secs"])
    warmup = min(analyze.WARMUP_MAX_S, max(analyze.WARMUP_MIN_S, analyze.WARMUP_SHARE * load_secs))
    window_end = load_secs - analyze.WIND_DOWN_S
    env = {}
    if (out / "env.txt").exists():
        env = dict(line.strip().split("=", 1) for line in open(out / "env.txt") if "=" in line)

    t = [s["t"] - start for s in samples]
    cpu = [0.0] + [
        100 * (b["cpu_s"] - a["cpu_s"]) / max(b["t"] - a["t"], 1e-3) for a, b in zip(samples, samples[1:])
    ]
    panels = [
        ("fds", [s["fds"] for s in samples], "open file descriptors", True),
        ("rss", [s["rss_kib"] / 1024 for s in samples], "RSS (MiB)", True),
        ("cpu", cpu, "CPU (% of one core)", False),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 8.5), sharex=True)
    for ax, (name, values, label, fitted) in zip(axes, panels):
        ax.plot(t, values, color="#e65100", linewidth=1)
        ax.axvspan(min(t), 0, color="#9e9e9e", alpha=0.15)
        ax.axvspan(0, warmup, color="#1565c0", alpha=0.08)
        ax.axvspan(end - start, max(t), color="#9e9e9e", alpha=0.15)
        if fitted:
            window = [(x, v) for x, v in zip(t, values) if warmup <= x <= window_end]
            if len(window) >= 3:
                slope = analyze.fit(window)
                xs = [window[0][0], window[-1][0]]
                mean_x = sum(x for x, _ in window) / len(window)
                mean_v = sum(v for _, v in window) / len(window)
                ys = [mean_v + slope * (x - mean_x) for x in xs]
                unit = "fds" if name == "fds" else "MiB"
                ax.plot(xs, ys, color="#2e7d32", linewidth=2,
                        label=f"fit: {slope * 60:+.3f} {unit}/min ({slope * (xs[1] - xs[0]):+.2f} over the window)")
                ax.legend(loc="lower right", fontsize=8)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("seconds from the start of the load (grey: idle before / drain after; blue: warm-up)")
    fig.suptitle(
        f"wsproxy-fast soak: {load_secs:.0f} s mixed load ({env.get('git', '?')}, {env.get('date', '?')})",
        fontsize=11,
    )
    fig.tight_layout()
    tmp = png.with_suffix(".png.tmp")
    fig.savefig(tmp, format="png", dpi=110)
    tmp.replace(png)
    print(f"soak: plot in {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
