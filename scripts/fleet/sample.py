#!/usr/bin/env python3
"""Samples every node of a scripts/fleet.sh run: its open tunnels (the sum
of wsproxy_upstream_tunnels_active on its admin listener's /metrics) and
its RSS (VmRSS of the PID in OUT/nodes/I/pid, which a takeover replaces),
every INTERVAL seconds, until stopped. Runs inside the balancer's network
namespace, where every node's admin address is reachable.

    sample.py OUT INTERVAL ADMIN...      appends to OUT/samples.csv
    sample.py --once ADMIN...            prints each node's tunnels, one line
"""

import os
import sys
import time
import urllib.request

TIMEOUT_S = 1.0


def tunnels(admin):
    """Open tunnels of the node at ADMIN, or None if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{admin}/metrics", timeout=TIMEOUT_S) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        if line.startswith("wsproxy_upstream_tunnels_active"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def rss_kib(pid_file):
    try:
        with open(pid_file) as f:
            pid = f.read().strip()
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def main(argv):
    if len(argv) >= 3 and argv[1] == "--once":
        print(" ".join("-" if t is None else str(t) for t in map(tunnels, argv[2:])))
        return 0
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    out, interval, admins = argv[1], float(argv[2]), argv[3:]
    path = os.path.join(out, "samples.csv")
    new = not os.path.exists(path)
    with open(path, "a", buffering=1) as f:
        if new:
            f.write("t,node,up,tunnels,rss_kib\n")
        next_at = time.time()
        while True:
            now = time.time()
            for i, admin in enumerate(admins, 1):
                count = tunnels(admin)
                rss = rss_kib(os.path.join(out, "nodes", str(i), "pid"))
                f.write(f"{now:.3f},{i},{int(count is not None)},{count or 0},{rss or ''}\n")
            next_at += interval
            time.sleep(max(0.0, next_at - time.time()))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
