#!/usr/bin/env python3
"""Draws OUT_DIR/compare.png (the WebSocket workloads) and
OUT_DIR/compare-http.png (the keep-alive HTTP workloads) from
OUT_DIR/summary.json (written by summarize.py): one bar chart per headline
figure, a bar per target at the median over repetitions, whiskers from the
lowest to the highest repetition. A plot whose workloads did not run is not
drawn.

    target/tools/venv/bin/python bench/compare/plot.py OUT_DIR [PNG [HTTP_PNG]]

Needs matplotlib (scripts/setup.sh matplotlib installs it into the venv).
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

TARGETS = ["direct", "nginx", "haproxy", "wsproxy-fast", "floor-epoll", "floor-uring"]
LABELS = {
    "direct": "direct",
    "nginx": "nginx",
    "haproxy": "HAProxy",
    "wsproxy-fast": "wsproxy-fast",
    "floor-epoll": "floor-epoll",
    "floor-uring": "floor-uring",
}
COLOURS = {
    "direct": "#9e9e9e",
    "nginx": "#2e7d32",
    "haproxy": "#1565c0",
    "wsproxy-fast": "#e65100",
    "floor-epoll": "#6a1b9a",
    "floor-uring": "#ad1457",
}

# (workload, key, title, log scale)
PANELS = [
    ("small", "msgs", "small echo: msgs/s (higher is better)", False),
    ("small", "cpu_msg", "small echo: proxy CPU µs per message (lower)", False),
    ("bulk", "gbit", "bulk: Gbit/s payload each way (higher)", False),
    ("handshakes", "hs", "handshakes/s (higher)", False),
    ("idle", "rss_pair", "RSS bytes per idle pair (lower, log scale)", True),
    ("latency", "p99", "p99 µs at a fixed rate (lower)", False),
]

# A --tls run: no fixed-rate latency, resumed handshakes instead.
PANELS_TLS = [
    ("small", "msgs", "wss small echo: msgs/s (higher is better)", False),
    ("small", "cpu_msg", "wss small echo: proxy CPU µs per message (lower)", False),
    ("bulk", "gbit", "wss bulk: Gbit/s payload each way (higher)", False),
    ("handshakes", "hs", "full TLS handshakes/s (higher)", False),
    ("resumed", "hs", "resumed TLS handshakes/s (higher)", False),
    ("idle", "rss_pair", "RSS bytes per idle TLS pair (lower, log scale)", True),
]

# The keep-alive HTTP workloads (wrk), plaintext or --tls alike.
PANELS_HTTP = [
    ("http-file", "rps", "static 2 KiB file: requests/s (higher)", False),
    ("http-file", "cpu_req", "static file: proxy CPU µs per request (lower)", False),
    ("http-file", "p99", "static file: latency p99 µs (lower)", False),
    ("http-api", "rps", "proxied JSON: requests/s (higher)", False),
    ("http-api", "cpu_req", "proxied JSON: proxy CPU µs per request (lower)", False),
    ("http-api", "p99", "proxied JSON: latency p99 µs (lower)", False),
]


def draw(panels, medians, env, png, title):
    """One 2 × 3 figure of PANELS into PNG."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for ax, (workload, key, panel_title, log) in zip(axes.flat, panels):
        cells = medians.get(workload, {}).get(key, {})
        shown = [t for t in TARGETS if cells.get(t)]
        ax.set_title(panel_title, fontsize=10)
        if not shown:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            continue
        values = [cells[t]["median"] for t in shown]
        low = [max(cells[t]["median"] - cells[t]["min"], 0) for t in shown]
        high = [max(cells[t]["max"] - cells[t]["median"], 0) for t in shown]
        bars = ax.bar(
            [LABELS[t] for t in shown],
            values,
            yerr=[low, high],
            capsize=3,
            color=[COLOURS[t] for t in shown],
        )
        if log:
            ax.set_yscale("log")
        for bar, value in zip(bars, values):
            text = f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax.tick_params(axis="x", labelsize=8)
        ax.margins(y=0.15)
    flags = env.get("wsproxy_flags") or "none"
    binary = env.get("wsproxy_bin", "built from this tree")
    fig.suptitle(
        f"{title} — medians of {env.get('reps', '?')} reps, "
        f"whiskers min–max; {env.get('host_nproc', '?')} cores, {env.get('date', '')[:10]}\n"
        f"wsproxy-fast: {binary} (tree {env.get('git', '?')}), flags: {flags}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(png, dpi=110)
    plt.close(fig)
    print(f"plot: wrote {png}")


def measured(panels, medians):
    """Whether any panel has a figure."""
    return any(any(medians.get(w, {}).get(k, {}).values()) for w, k, _title, _log in panels)


def main():
    if len(sys.argv) not in (2, 3, 4):
        sys.exit("usage: plot.py OUT_DIR [PNG [HTTP_PNG]]")
    out = Path(sys.argv[1])
    png = Path(sys.argv[2]) if len(sys.argv) >= 3 else out / "compare.png"
    http_png = Path(sys.argv[3]) if len(sys.argv) == 4 else out / "compare-http.png"
    summary = json.loads((out / "summary.json").read_text())
    medians, env = summary["medians"], summary["env"]
    tls = env.get("tls") == "true"
    panels = PANELS_TLS if tls else PANELS
    if measured(panels, medians):
        draw(panels, medians, env, png,
             f"wsproxy-fast vs nginx vs HAProxy on loopback{', over TLS 1.3' if tls else ''}")
    if measured(PANELS_HTTP, medians):
        draw(PANELS_HTTP, medians, env, http_png,
             f"Keep-alive HTTP (wrk -t1 -c{env.get('http_conns', '?')}){', over TLS 1.3' if tls else ''}: "
             "wsproxy-fast vs nginx (vs HAProxy, proxied only)")


if __name__ == "__main__":
    main()
