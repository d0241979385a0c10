#!/usr/bin/env python3
"""Summarizes one scripts/compare.sh run (standard library only).

    python3 bench/compare/summarize.py OUT_DIR

Reads OUT_DIR/runs.jsonl (one JSON object per measurement, written by
compare.sh) and OUT_DIR/env.txt (machine, versions, settings), and writes:

- OUT_DIR/summary.md: the side-by-side table of the WebSocket workloads
  (median over repetitions of each figure, each proxy's throughput relative
  to direct, and wsproxy-fast relative to nginx and to HAProxy), the table
  of the keep-alive HTTP workloads (one row per workload and target:
  requests/s, proxy CPU per request, each relative to nginx, latency, the
  upstream's CPU per request and the upstream connections opened), the
  project's targets against those medians, and a context table
  (load-generator CPU, backend CPU, steal);
- OUT_DIR/summary.json: the same medians with min/max, for plot.py;
- stdout: the tables and the targets.

A failed measurement (the load generator's exit status not 0, a problem
compare.sh recorded, such as an error wrk counted, or the proxy died) is
left out of the medians; its cell is marked with "!" and a count below the
table.

A `--tls` run (env.txt `tls=true`) has no direct column, adds the resumed
handshakes rows, checks the TLS targets, and lists the TLS version, cipher
suite and key-exchange group each proxy negotiated (they must agree).
"""

import json
import statistics
import sys
from pathlib import Path

TARGETS = ["direct", "nginx", "haproxy", "wsproxy-fast", "floor-epoll", "floor-uring"]
PROXIES = ["nginx", "haproxy", "wsproxy-fast"]
NAMES = {
    "direct": "direct",
    "nginx": "nginx",
    "haproxy": "HAProxy",
    "wsproxy-fast": "wsproxy-fast",
    "floor-epoll": "floor-epoll",
    "floor-uring": "floor-uring",
}


# --- per-run figures (None when the run cannot give it) -------------------------


def cpu_s(run, key="proxy_cpu_ticks"):
    ticks = run.get(key)
    return None if ticks is None else ticks / run["clk_tck"]


def result(run, *path):
    value = run.get("result")
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def per_unit(cpu, count, scale):
    if cpu is None or not count:
        return None
    return cpu * scale / count


def msgs_per_s(run):
    return result(run, "msgs_per_s")


def gbit(run):
    return result(run, "payload_gbit_per_s_each_way")


def handshakes_per_s(run):
    return result(run, "handshakes_per_s")


def p50(run):
    return result(run, "latency", "p50_us")


def p99(run):
    return result(run, "latency", "p99_us")


def upgrade_p99(run):
    return result(run, "upgrade_latency", "p99_us")


def cpu_us_per_msg(run):
    return per_unit(cpu_s(run), result(run, "messages"), 1e6)


def cpu_s_per_gb(run):
    """Proxy CPU seconds per 10^9 payload bytes relayed, counting both
    directions (each echoed byte crosses the proxy twice)."""
    messages, size = result(run, "messages"), result(run, "size")
    if messages is None or size is None:
        return None
    return per_unit(cpu_s(run), 2 * messages * size, 1e9)


def cpu_us_per_handshake(run):
    return per_unit(cpu_s(run), result(run, "handshakes"), 1e6)


def requests_per_s(run):
    return result(run, "requests_per_s")


def cpu_us_per_request(run):
    return per_unit(cpu_s(run), result(run, "requests"), 1e6)


def backend_us_per_request(run):
    return per_unit(cpu_s(run, "backend_cpu_ticks"), result(run, "requests"), 1e6)


def upstream_connections(run):
    return result(run, "upstream_connections")


def rss_per_pair(run):
    held, before, pairs = run.get("proxy_rss_kb_held"), run.get("proxy_rss_kb_before"), result(run, "opened")
    if held is None or before is None or not pairs:
        return None
    return (held - before) * 1024 / pairs


def rss_held_mib(run):
    held = run.get("proxy_rss_kb_held")
    return None if held is None else held / 1024


def resumed_pct(run):
    """Share of the run's TLS handshakes that resumed a session (%)."""
    fraction = result(run, "tls", "resumed_fraction")
    return None if fraction is None else 100 * fraction


def kernel_share(run):
    """Percentage of the proxy's CPU time spent in the kernel (stime)."""
    total, system = run.get("proxy_cpu_ticks"), run.get("proxy_sys_ticks")
    if not total or system is None:
        return None
    return 100 * system / total


# (workload, key, label, per-run function, "higher"/"lower" is better, number format)
ROWS = [
    ("small", "msgs", "msgs/s", msgs_per_s, "higher", "k"),
    ("small", "p50", "latency p50 (µs)", p50, "lower", "int"),
    ("small", "p99", "latency p99 (µs)", p99, "lower", "int"),
    ("small", "cpu_msg", "proxy CPU µs / msg", cpu_us_per_msg, "lower", "2"),
    ("many", "msgs", "msgs/s", msgs_per_s, "higher", "k"),
    ("many", "p99", "latency p99 (µs)", p99, "lower", "int"),
    ("many", "cpu_msg", "proxy CPU µs / msg", cpu_us_per_msg, "lower", "2"),
    ("bulk", "gbit", "Gbit/s payload each way", gbit, "higher", "2"),
    ("bulk", "p99", "latency p99 (µs)", p99, "lower", "int"),
    ("bulk", "cpu_gb", "proxy CPU s / GB relayed", cpu_s_per_gb, "lower", "3"),
    ("handshakes", "hs", "handshakes/s", handshakes_per_s, "higher", "int"),
    ("handshakes", "upgrade_p99", "upgrade p99 (µs)", upgrade_p99, "lower", "int"),
    ("handshakes", "cpu_hs", "proxy CPU µs / handshake", cpu_us_per_handshake, "lower", "1"),
    ("resumed", "hs", "handshakes/s", handshakes_per_s, "higher", "int"),
    ("resumed", "resumed_pct", "handshakes resumed (%)", resumed_pct, "higher", "1"),
    ("resumed", "upgrade_p99", "upgrade p99 (µs)", upgrade_p99, "lower", "int"),
    ("resumed", "cpu_hs", "proxy CPU µs / handshake", cpu_us_per_handshake, "lower", "1"),
    ("idle", "rss_pair", "RSS bytes / idle pair", rss_per_pair, "lower", "int"),
    ("idle", "rss_held", "proxy RSS MiB while holding", rss_held_mib, "lower", "1"),
    ("latency", "p50", "latency p50 (µs)", p50, "lower", "int"),
    ("latency", "p99", "latency p99 (µs)", p99, "lower", "int"),
]

# The keep-alive HTTP workloads (wrk), in a table of their own: (workload,
# key, label, per-run function, better, format), one column each.
HTTP_WORKLOADS = ["http-file", "http-api"]
HTTP_COLUMNS = [
    ("rps", "requests/s", requests_per_s, "higher", "k"),
    ("cpu_req", "proxy CPU µs / request", cpu_us_per_request, "lower", "2"),
    ("p50", "latency p50 (µs)", p50, "lower", "int"),
    ("p99", "latency p99 (µs)", p99, "lower", "int"),
    ("backend_req", "upstream CPU µs / request", backend_us_per_request, "lower", "2"),
    ("upstream_conns", "upstream connections opened", upstream_connections, "lower", "int"),
]
HTTP_ROWS = [(w, *column) for w in HTTP_WORKLOADS for column in HTTP_COLUMNS]

# HTTP columns followed by the ratio to nginx's median.
HTTP_VS_NGINX = {"rps", "cpu_req"}

# Rows whose proxy cells also show the ratio to direct.
VS_DIRECT = {"msgs", "gbit", "hs"}

# The project's targets: (label, workload, key, versus, bound, "min"/"max").
# versus None: an absolute bound on wsproxy-fast's own figure.
GOALS = [
    ("small-message echo ≥ 1.4× nginx msgs/s", "small", "msgs", "nginx", 1.4, "min"),
    ("small-message proxy CPU per message ≤ 0.5× nginx", "small", "cpu_msg", "nginx", 0.5, "max"),
    ("bulk ≥ 2× nginx Gbit/s", "bulk", "gbit", "nginx", 2.0, "min"),
    ("bulk ≥ 1.2× HAProxy Gbit/s", "bulk", "gbit", "haproxy", 1.2, "min"),
    ("handshakes ≥ 1.5× nginx", "handshakes", "hs", "nginx", 1.5, "min"),
    ("RSS per idle pair ≤ 512 bytes", "idle", "rss_pair", None, 512, "max"),
]

# The targets of a --tls run.
TLS_GOALS = [
    ("wss bulk ≥ 1.0× nginx Gbit/s", "bulk", "gbit", "nginx", 1.0, "min"),
    ("RSS per idle TLS pair ≤ 0.5× nginx's", "idle", "rss_pair", "nginx", 0.5, "max"),
]


def fmt(value, style):
    if value is None:
        return "–"
    if style == "k":
        return f"{value / 1000:.1f}k" if abs(value) >= 1000 else f"{value:.0f}"
    if style == "int":
        return f"{value:,.0f}"
    return f"{value:.{int(style)}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def load(out):
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.strip()]
    env = {}
    env_file = out / "env.txt"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
    return runs, env


def good(run):
    return (
        run["exit"] == 0
        and run["proxy_alive"]
        and not run.get("problem")
        and run.get("result") is not None
    )


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(runs):
    """medians[workload][key][target] = stats; failures[(workload, target)] = count."""
    medians, failures = {}, {}
    for run in runs:
        if not good(run):
            failures[(run["workload"], run["target"])] = failures.get((run["workload"], run["target"]), 0) + 1
    for workload, key, _label, function, _better, _style in ROWS + HTTP_ROWS:
        for target in TARGETS:
            chosen = [r for r in runs if r["workload"] == workload and r["target"] == target and good(r)]
            medians.setdefault(workload, {}).setdefault(key, {})[target] = stats(function(r) for r in chosen)
    return medians, failures


def median_of(medians, workload, key, target):
    cell = medians.get(workload, {}).get(key, {}).get(target)
    return None if cell is None else cell["median"]


def shown_targets(env):
    """The run's targets, in the table's order."""
    chosen = env.get("targets", " ".join(TARGETS)).split()
    return [t for t in TARGETS if t in chosen]


def workload_titles(env):
    def parts(name, default):
        return env.get(name, default).replace("@", "x").split("x")

    small, many, bulk, latency = parts("small", "50x64"), parts("many", "1000x128"), parts("bulk", "8x65536x4"), parts("latency", "50x64x10000")
    return {
        "small": f"small: {small[0]} conns × {small[1]} B",
        "many": f"many: {many[0]} conns × {many[1]} B",
        "bulk": f"bulk: {bulk[0]} conns × {int(bulk[1]) // 1024} KiB, {bulk[2]} in flight",
        "handshakes": f"handshakes: {env.get('handshakes', '50')} slots" + (", all full" if env.get("tls") == "true" else ""),
        "resumed": f"resumed: {env.get('resumed', '50')} slots, sessions resumed",
        "idle": f"idle: {env.get('idle', '5000')} held pairs",
        "latency": f"latency: {latency[0]} conns × {latency[1]} B at {latency[2]} msg/s",
        "http-file": f"http-file: {env.get('http_file_bytes', '2048')} B static file, {env.get('http_conns', '50')} conns",
        "http-api": f"http-api: {env.get('http_api_body_bytes', '65')} B JSON proxied, {env.get('http_conns', '50')} conns",
    }


def table(medians, failures, env):
    if all(workload in HTTP_WORKLOADS for workload in measured(env)):
        return []
    titles = workload_titles(env)
    targets = shown_targets(env)
    # wsproxy-fast against the other proxies, and against the epoll floor
    # (the least a relay can do) when it ran.
    versus = ["nginx", "haproxy"] + (["floor-epoll"] if "floor-epoll" in targets else [])
    lines = [
        "| workload | figure | "
        + " | ".join(NAMES[t] for t in targets)
        + "".join(f" | wsproxy-fast / {NAMES[v]}" for v in versus)
        + " |",
        "|---|---|" + "--:|" * (len(targets) + len(versus)),
    ]
    shown = set()
    for workload, key, label, _function, better, style in ROWS:
        if workload not in medians or all(
            medians[workload][key][t] is None for t in targets
        ) and not any(failures.get((workload, t)) for t in targets):
            continue
        cells = []
        for target in targets:
            value = median_of(medians, workload, key, target)
            cell = fmt(value, style)
            if key in VS_DIRECT and target != "direct":
                r = ratio(value, median_of(medians, workload, key, "direct"))
                if r is not None:
                    cell += f" ({r:.2f}× direct)"
            if failures.get((workload, target)):
                cell += " !"
            cells.append(cell)
        ours = median_of(medians, workload, key, "wsproxy-fast")
        ratios = []
        for other in versus:
            r = ratio(ours, median_of(medians, workload, key, other))
            ratios.append("–" if r is None else f"{r:.2f}×")
        title = titles[workload] if workload not in shown else ""
        shown.add(workload)
        arrow = "↑" if better == "higher" else "↓"
        lines.append(f"| {title} | {label} {arrow} | " + " | ".join(cells + ratios) + " |")
        if workload == "latency" and key == "p99":
            direct = median_of(medians, "latency", "p99", "direct")
            added = []
            for target in targets:
                value = median_of(medians, "latency", "p99", target)
                if target == "direct":
                    added.append("0")
                else:
                    added.append("–" if value is None or direct is None else f"{value - direct:+,.0f}")
            lines.append("|  | added p99 vs direct (µs) ↓ | " + " | ".join(added) + " |" + "  |" * len(versus))
    return lines


def measured(env):
    """The run's workloads."""
    return env.get("workloads", " ".join(w for w, *_ in ROWS)).split()


def http_table(runs, medians, failures, env):
    """One row per HTTP workload and target that ran: the medians, and
    requests/s and proxy CPU per request relative to nginx's."""
    titles = workload_titles(env)
    header = ["workload", "target"]
    for key, label, _function, better, _style in HTTP_COLUMNS:
        header.append(f"{label} {'↑' if better == 'higher' else '↓'}")
        if key in HTTP_VS_NGINX:
            header.append("× nginx")
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|---|" + "--:|" * (len(header) - 2),
    ]
    for workload in HTTP_WORKLOADS:
        if workload not in measured(env):
            continue
        first = True
        for target in shown_targets(env):
            if not any(r["workload"] == workload and r["target"] == target for r in runs):
                continue
            cells = [titles[workload] if first else "", NAMES[target]]
            first = False
            for key, _label, _function, _better, style in HTTP_COLUMNS:
                value = median_of(medians, workload, key, target)
                cell = fmt(value, style)
                if key == "rps" and failures.get((workload, target)):
                    cell += " !"
                cells.append(cell)
                if key in HTTP_VS_NGINX:
                    r = ratio(value, median_of(medians, workload, key, "nginx"))
                    cells.append("–" if r is None else f"{r:.2f}×")
            lines.append("| " + " | ".join(cells) + " |")
    return lines if len(lines) > 2 else []


def negotiated(runs, env):
    """What each proxy's TLS handshakes negotiated, over every measurement;
    a warning when proxies, measurements or handshakes disagree."""
    if env.get("tls") != "true":
        return []
    seen, differing = {}, 0
    for run in runs:
        tls = result(run, "tls")
        if not isinstance(tls, dict):
            continue
        seen.setdefault(run["target"], set()).add(f"{tls['version']} {tls['suite']} {tls.get('group') or '(no key exchange)'}")
        differing += tls.get("differing") or 0
    if not seen:
        return ["TLS: no handshake completed."]
    per_target = [f"{NAMES[t]} {', '.join(sorted(seen[t]))}" for t in TARGETS if t in seen]
    params = set().union(*seen.values())
    line = "TLS negotiated (client offered " + env.get("tls_suite", "?") + "): " + "; ".join(per_target) + "."
    if len(params) > 1 or differing:
        line += f" **Not the same everywhere** ({differing} handshake(s) differed within a measurement)."
    return [line]


def goals(medians, env):
    lines = []
    for label, workload, key, versus, bound, kind in (TLS_GOALS if env.get("tls") == "true" else GOALS):
        if workload not in measured(env):
            continue
        ours = median_of(medians, workload, key, "wsproxy-fast")
        value = ours if versus is None else ratio(ours, median_of(medians, workload, key, versus))
        if value is None:
            lines.append(f"- {label}: not measured")
            continue
        met = value >= bound if kind == "min" else value <= bound
        shown = f"{value:,.0f} bytes" if versus is None else f"{value:.2f}×"
        lines.append(f"- {label}: {shown} — {'met' if met else 'NOT met'}")
    return lines


def context(runs, medians, env):
    """Load-generator CPU (share of one core), echo-backend CPU per message
    (the HTTP table has the upstream's per request), and the kernel's share
    of the proxy's CPU, per workload and target: to
    check that neither the generator nor the backend decided the proxied
    figures, and to see how much of a proxy's cost is loopback TCP."""
    targets = shown_targets(env)
    lines = [
        "| workload | figure | " + " | ".join(NAMES[t] for t in targets) + " |",
        "|---|---|" + "--:|" * len(targets),
    ]
    duration = float(env.get("duration_s", "5"))
    for workload in ("small", "many", "bulk", "handshakes", "resumed", "latency", *HTTP_WORKLOADS):
        gen, backend, kernel = [], [], []
        for target in targets:
            chosen = [r for r in runs if r["workload"] == workload and r["target"] == target and good(r)]
            share = stats(cpu_s(r, "gen_cpu_ticks") / duration * 100 for r in chosen)
            gen.append(fmt(share and share["median"], "0") + ("%" if share else ""))
            count = "handshakes" if workload in ("handshakes", "resumed") else ("received" if workload == "latency" else "messages")
            per = stats(per_unit(cpu_s(r, "backend_cpu_ticks"), result(r, count), 1e6) for r in chosen)
            backend.append(fmt(per and per["median"], "2"))
            share = stats(kernel_share(r) for r in chosen)
            kernel.append(fmt(share and share["median"], "0") + ("%" if share else ""))
        if any(cell != "–" for cell in gen):
            unit = {"handshakes": "handshake", "resumed": "handshake", "bulk": "64 KiB msg"}.get(workload, "msg")
            lines.append(f"| {workload} | load generator CPU (% of a core) | " + " | ".join(gen) + " |")
            # The HTTP table has the upstream's CPU per request already.
            if workload not in HTTP_WORKLOADS:
                lines.append(f"| {workload} | echo backend CPU µs / {unit} | " + " | ".join(backend) + " |")
            lines.append(f"| {workload} | proxy CPU in the kernel (stime share) | " + " | ".join(kernel) + " |")
    try:
        steal = (int(env["steal_ticks_end"]) - int(env["steal_ticks_start"])) / runs[0]["clk_tck"]
        elapsed = float(env["elapsed_s"])
        cores = int(env["host_nproc"])
        lines.append("")
        lines.append(f"CPU steal during the run: {steal:.1f} s over {elapsed:.0f} s × {cores} cores ({100 * steal / (elapsed * cores):.1f}%).")
    except (KeyError, ValueError, IndexError, ZeroDivisionError):
        pass
    return lines


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: summarize.py OUT_DIR")
    out = Path(sys.argv[1])
    runs, env = load(out)
    if not runs:
        sys.exit(f"summarize: no measurements in {out / 'runs.jsonl'}")
    medians, failures = summarize(runs)
    reps = env.get("reps", "?")
    tls = env.get("tls") == "true"
    versions = f"{env.get('nginx', 'nginx ?')}, {env.get('haproxy', 'HAProxy ?')}"
    if "wrk" in env:
        versions += f", {env['wrk']}"
    if tls:
        versions += (
            f"; TLS libraries: nginx {env.get('nginx_openssl', '?')}, HAProxy {env.get('haproxy_openssl', '?')}, "
            f"rustls {env.get('rustls', '?')} (Cargo.lock: wsbench, and wsproxy-fast once it terminates TLS)"
        )
    kinds = {w in HTTP_WORKLOADS for w in measured(env)}
    scheme = ", ".join(name for name, http in (("wss://", False), ("https://", True)) if http in kinds)
    head = [
        (f"Over TLS ({scheme}), one ECDSA P-256 certificate for every proxy. " if tls else "")
        + f"Medians of {reps} repetition(s), {env.get('date', '?')}, {env.get('host_nproc', '?')} × {env.get('cpu_model', '?')}, "
        f"kernel {env.get('kernel', '?')}; {env.get('wsproxy', 'wsproxy-fast')} ({env.get('wsproxy_bin', 'built from this tree')}, "
        f"tree {env.get('git', '?')}, flags: {env.get('wsproxy_flags') or 'none'}), "
        f"{versions}. ↑ higher is better, ↓ lower is better.",
        "",
    ]
    body = table(medians, failures, env)
    http_lines = http_table(runs, medians, failures, env)
    if http_lines:
        http_lines = [
            "Keep-alive HTTP (wrk -t1, every connection kept alive; proxy CPU is all the proxy's "
            "processes, the upstream is one nginx worker, the same for every target):",
            "",
        ] + http_lines
        body = body + ([""] if body else []) + http_lines
    notes = []
    if failures:
        notes = ["", "! failed measurements, left out of the medians: " + ", ".join(
            f"{workload}/{target} ×{count}" for (workload, target), count in sorted(failures.items()))]
    goal_lines = goals(medians, env)
    tls_lines = negotiated(runs, env)
    if tls_lines:
        notes = notes + [""] + tls_lines
    print("\n".join(head + body + notes))
    if goal_lines:
        print()
        print("Targets (wsproxy-fast, medians of this run):")
        print("\n".join(goal_lines))
    markdown = (
        ["# Comparison " + env.get("date", ""), "", f"Command: `{env.get('command', 'scripts/compare.sh')}`", ""]
        + head + body + notes
        + (["", "## Targets", ""] + goal_lines if goal_lines else [])
        + ["", "## Context", ""] + context(runs, medians, env) + [""]
    )
    (out / "summary.md").write_text("\n".join(markdown))
    (out / "summary.json").write_text(json.dumps({"env": env, "medians": medians}, indent=1))


if __name__ == "__main__":
    main()
