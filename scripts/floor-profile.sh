#!/usr/bin/env bash
# Where the CPU goes: wsproxy-fast against the epoll floor relay
# (bench/src/bin/floor-epoll.rs), sampled by `perf record` attached to the
# running relay while wsbench drives it, for the small-message and the
# handshake workloads of scripts/compare.sh.
#
#   scripts/floor-profile.sh                      small and handshakes
#   scripts/floor-profile.sh --workloads small --duration 8
#
# Options: --targets "A B" (default "wsproxy-fast floor-epoll"; also
# floor-uring), --workloads "small handshakes", --duration SECS (default 5),
# --out DIR (default target/floor-profile/<date>). Each target is started as
# scripts/targets.sh starts it for scripts/compare.sh; perf samples every
# thread of the relay at 2999 Hz for the whole load, with call graphs.
#
# Output: OUT/TARGET-WORKLOAD.perf.data and .txt (perf report, by symbol),
# OUT/summary.md: each relay's samples by where they ran (its own code,
# libc, the kernel), the kernel symbols with the most samples side by side,
# and the samples per message or handshake, so that the difference between
# two relays shows as calls, not only as shares.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

targets="wsproxy-fast floor-epoll"
workloads="small handshakes"
duration=5
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) targets=$2; shift ;;
    --workloads) workloads=$2; shift ;;
    --duration) duration=$2; shift ;;
    --out) out=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
for target in $targets; do
  case "$target" in
    wsproxy-fast | floor-epoll | floor-uring) ;;
    *) die "unknown target '$target' (wsproxy-fast, floor-epoll, floor-uring)" ;;
  esac
done
for workload in $workloads; do
  case "$workload" in
    small | handshakes) ;;
    *) die "unknown workload '$workload' (small, handshakes)" ;;
  esac
done
command -v perf >/dev/null 2>&1 || die "perf is needed (apt-get install linux-perf)"

out=${out:-$ROOT/target/floor-profile/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
build_release
tls=false
. "$(dirname "$0")/targets.sh"

start_echo 2 "$out/logs"
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kernel=$(uname -r)"
  echo "perf=$(perf --version)"
  echo "wsproxy=$("$BIN/wsproxy-fast" --version)"
  echo "git=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "command=scripts/floor-profile.sh --targets \"$targets\" --workloads \"$workloads\" --duration $duration"
} >"$out/env.txt"

for target in $targets; do
  start_target "$target"
  for workload in $workloads; do
    name=$target-$workload
    case "$workload" in
      small) load=(echo --conns 50 --size 64) ;;
      handshakes) load=(handshakes --conns 50) ;;
    esac
    # The load runs a second longer than perf, which starts once the load
    # is under way, so that neither the ramp-up nor the end is sampled.
    "$BIN/wsbench" "${load[0]}" --url "ws://${ADDR[$target]}/profile" --threads 1 --json \
      "${load[@]:1}" --duration $((duration + 2)) >"$out/$name.json" 2>"$out/logs/$name.wsbench.err" &
    bench=$!
    LIB_PIDS+=("$bench")
    sleep 1
    perf record -F 2999 -g -p "${MAIN[$target]}" -o "$out/$name.perf.data" -- sleep "$duration" \
      >"$out/logs/$name.perf.out" 2>&1 || die "perf record failed on $target; see $out/logs/$name.perf.out"
    wait "$bench" || die "wsbench against $target failed; see $out/logs/$name.wsbench.err"
    forget "$bench"
    perf report -i "$out/$name.perf.data" --stdio --no-children --sort dso,sym \
      --percent-limit 0.3 >"$out/$name.txt" 2>/dev/null
    perf report -i "$out/$name.perf.data" --stdio --no-children --sort dso -g none \
      >"$out/$name.dso.txt" 2>/dev/null
    note "$name: $(tail -n 1 "$out/logs/$name.wsbench.err" | cut -c1-120)"
  done
  stop_target "$target"
done

python3 - "$out" "$duration" "$targets" "$workloads" <<'EOF' | tee "$out/summary.md"
import json
import re
import sys
from pathlib import Path

out, duration = Path(sys.argv[1]), float(sys.argv[2])
targets, workloads = sys.argv[3].split(), sys.argv[4].split()

def samples(path):
    """(total samples, {(dso, symbol): share %}) of a perf report by dso,sym."""
    text = path.read_text()
    total = int(re.search(r"# Samples: (\d+)", text).group(1)) if "# Samples:" in text else 0
    m = re.search(r"of event '[^']*'\n# Event count \(approx\.\): (\d+)", text)
    shares = {}
    for line in text.splitlines():
        f = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.+)$", line)
        if f:
            shares[(f.group(2), f.group(4).strip())] = float(f.group(1))
    return total, shares

def where(dso):
    if dso == "[kernel.kallsyms]":
        return "kernel"
    if dso.startswith("libc"):
        return "libc"
    return "own code"

for workload in workloads:
    unit = "message" if workload == "small" else "handshake"
    print(f"### {workload}\n")
    done, rows, sym = {}, {}, {}
    for t in targets:
        r = json.loads((out / f"{t}-{workload}.json").read_text())
        rate = r.get("msgs_per_s") or r.get("handshakes_per_s") or 0
        done[t] = rate * duration
        total, shares = samples(out / f"{t}-{workload}.txt")
        split = {"own code": 0.0, "libc": 0.0, "kernel": 0.0}
        for (dso, s), share in shares.items():
            split[where(dso)] += share
        rows[t] = (total, split)
        sym[t] = {s: share * total / 100 for (dso, s), share in shares.items() if where(dso) == "kernel"}
    print(f"| figure | " + " | ".join(targets) + " |")
    print("|---|" + "--:|" * len(targets))
    print(f"| samples (2999 Hz, {duration:g} s) | " + " | ".join(f"{rows[t][0]:,}" for t in targets) + " |")
    print(f"| {unit}s in that time | " + " | ".join(f"{done[t]:,.0f}" for t in targets) + " |")
    print(f"| samples per 1000 {unit}s | " + " | ".join(
        f"{1000 * rows[t][0] / done[t]:.1f}" if done[t] else "–" for t in targets) + " |")
    for part in ("own code", "libc", "kernel"):
        print(f"| {part} (% of samples shown) | " + " | ".join(f"{rows[t][1][part]:.1f}" for t in targets) + " |")
    names = sorted(set().union(*(sym[t] for t in targets)),
                   key=lambda s: -max(sym[t].get(s, 0) / done[t] if done[t] else 0 for t in targets))[:15]
    print(f"\nKernel symbols, samples per 1000 {unit}s (the 15 largest):\n")
    print("| kernel symbol | " + " | ".join(targets) + " |")
    print("|---|" + "--:|" * len(targets))
    for s in names:
        cells = [f"{1000 * sym[t].get(s, 0) / done[t]:.2f}" if done[t] else "–" for t in targets]
        print(f"| `{s}` | " + " | ".join(cells) + " |")
    print()
EOF
note "done: $out/summary.md"
