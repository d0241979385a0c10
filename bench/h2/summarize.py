#!/usr/bin/env python3
"""Summarizes one scripts/h2-bench.sh run (standard library only).

    python3 bench/h2/summarize.py OUT_DIR

Reads OUT_DIR/runs.jsonl (one JSON object per measurement) and
OUT_DIR/env.txt, and writes OUT_DIR/summary.md (also printed): medians
over the repetitions of

- static: requests/s and proxy CPU per request, wsproxy-fast and nginx
  serving one 2048-byte file over HTTP/2 to h2load, and their ratio;
- ws-held: proxy RSS per WebSocket (held idle) and proxy CPU per message,
  WebSockets through wsproxy-fast as HTTP/2 streams against HTTP/1.1
  connections, and through HAProxy as HTTP/2 streams;
- ws-open: WebSocket handshakes per second and proxy CPU per handshake,
  likewise.

A measurement the script marked failed ("ok": false) is left out of the
medians and counted beside its cell.
"""

import json
import statistics
import sys
from pathlib import Path


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "n/a"
    return "{:,.{}f}".format(value, digits)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return "{:.2f}x".format(a / b)


def cpu_us(run, count):
    if not count:
        return None
    return run["proxy_cpu_ticks"] / run["clk_tck"] * 1e6 / count


def static_figures(run):
    return {
        "rps": run.get("requests_per_s"),
        "cpu_us": cpu_us(run, run.get("requests")),
    }


def held_figures(run):
    load = run.get("h2ws") or {}
    websockets = load.get("opened") or 0
    messages = load.get("messages") or 0
    grown = run["proxy_rss_kb_held"] - run["proxy_rss_kb_before"]
    return {
        "websockets": websockets or None,
        "rss_b": grown * 1024 / websockets if websockets else None,
        "cpu_us": cpu_us(run, messages),
        "msgs_per_s": messages / load["echo_s"] if load.get("echo_s") else None,
    }


def open_figures(run):
    load = run.get("load") or {}
    count = load.get("handshakes")
    secs = load.get("secs", load.get("duration_s"))
    return {
        "hs_per_s": count / secs if count and secs else None,
        "cpu_us": cpu_us(run, count),
    }


FIGURES = {"static": static_figures, "ws-held": held_figures, "ws-open": open_figures}


def main():
    out = Path(sys.argv[1])
    env = dict(
        line.split("=", 1) for line in (out / "env.txt").read_text().splitlines() if "=" in line
    )
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.strip()]
    # (workload, target) -> {figure: median}, and the failed count.
    medians, failed = {}, {}
    for workload, figures in FIGURES.items():
        for target in sorted({r["target"] for r in runs if r["workload"] == workload}):
            good = [figures(r) for r in runs if r["workload"] == workload and r["target"] == target and r["ok"]]
            failed[workload, target] = sum(
                1 for r in runs if r["workload"] == workload and r["target"] == target and not r["ok"]
            )
            keys = good[0].keys() if good else []
            medians[workload, target] = {k: median([g[k] for g in good]) for k in keys}

    def cell(workload, target, key, digits=0):
        value = fmt(medians.get((workload, target), {}).get(key), digits)
        bad = failed.get((workload, target), 0)
        return value + (" (%d failed)" % bad if bad else "")

    def get(workload, target, key):
        return medians.get((workload, target), {}).get(key)

    lines = [
        "# HTTP/2 benchmark, %s" % env.get("date", "?"),
        "",
        "`%s` on %s (%s CPUs), %s; %s, %s, %s; median of %s repetition(s) (%s mode)."
        % (
            env.get("command", "?"),
            env.get("cpu_model", "?"),
            env.get("host_nproc", "?"),
            env.get("kernel", "?"),
            env.get("wsproxy", "?"),
            env.get("nginx", "?"),
            env.get("haproxy", "?"),
            env.get("reps", "?"),
            env.get("mode", "?"),
        ),
        "",
        "## Static file over HTTP/2 (%s)" % env.get("static", "?"),
        "",
        "| target | requests/s | proxy CPU per request (us) |",
        "|---|---:|---:|",
    ]
    for target in ("wsproxy-fast", "nginx"):
        lines.append(
            "| %s | %s | %s |" % (target, cell("static", target, "rps"), cell("static", target, "cpu_us", 2))
        )
    lines.append(
        "| wsproxy-fast / nginx | %s | %s |"
        % (
            ratio(get("static", "wsproxy-fast", "rps"), get("static", "nginx", "rps")),
            ratio(get("static", "wsproxy-fast", "cpu_us"), get("static", "nginx", "cpu_us")),
        )
    )
    names = {
        "wsproxy-fast-h2": "wsproxy-fast, HTTP/2 streams",
        "wsproxy-fast-h1": "wsproxy-fast, HTTP/1.1 connections",
        "haproxy-h2": "HAProxy, HTTP/2 streams",
    }
    lines += [
        "",
        "## WebSockets: HTTP/2 streams against HTTP/1.1 connections",
        "",
        "Held: %s. Handshakes: %s." % (env.get("ws_held", "?"), env.get("ws_open", "?")),
        "",
        "| proxy, WebSockets as | RSS per WebSocket (bytes) | CPU per message (us) | messages/s | handshakes/s | CPU per handshake (us) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for target in ("wsproxy-fast-h2", "wsproxy-fast-h1", "haproxy-h2"):
        lines.append(
            "| %s | %s | %s | %s | %s | %s |"
            % (
                names[target],
                cell("ws-held", target, "rss_b"),
                cell("ws-held", target, "cpu_us", 2),
                cell("ws-held", target, "msgs_per_s"),
                cell("ws-open", target, "hs_per_s"),
                cell("ws-open", target, "cpu_us", 1),
            )
        )
    for label, a, b in (
        ("wsproxy-fast: HTTP/2 / HTTP/1.1", "wsproxy-fast-h2", "wsproxy-fast-h1"),
        ("HTTP/2: wsproxy-fast / HAProxy", "wsproxy-fast-h2", "haproxy-h2"),
    ):
        lines.append(
            "| %s | %s | %s | %s | %s | %s |"
            % (
                label,
                ratio(get("ws-held", a, "rss_b"), get("ws-held", b, "rss_b")),
                ratio(get("ws-held", a, "cpu_us"), get("ws-held", b, "cpu_us")),
                ratio(get("ws-held", a, "msgs_per_s"), get("ws-held", b, "msgs_per_s")),
                ratio(get("ws-open", a, "hs_per_s"), get("ws-open", b, "hs_per_s")),
                ratio(get("ws-open", a, "cpu_us"), get("ws-open", b, "cpu_us")),
            )
        )
    lines += [
        "",
        "RSS per WebSocket: the proxy's VmRSS with every WebSocket open and idle, less a fresh "
        "process's, over the WebSockets. CPU: utime+stime of the proxy's processes. An HTTP/1.1 "
        "WebSocket handshake includes its TCP connection and a full TLS handshake; an HTTP/2 one "
        "is an extended CONNECT stream on a connection already open. Messages/s and handshakes/s "
        "are bounded by the one blocking load generator as much as by the proxy.",
        "",
    ]
    text = "\n".join(lines)
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
