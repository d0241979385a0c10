#!/usr/bin/env bash
# Where the CPU goes: wsproxy-fast against the epoll floor relay
# (bench/src/bin/floor-epoll.rs), sampled by `perf record` attached to the
# running relay while wsbench drives it, for the small-message and the
# handshake workloads of scripts/compare.sh.
#
#   scripts/floor-profile.sh                      small and handshakes
#   scripts/floor-profile.sh --workloads small --duration 8
#
# --again DIR makes the reports and the summary again from DIR's samples.
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
again=
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) targets=$2; shift ;;
    --workloads) workloads=$2; shift ;;
    --duration) duration=$2; shift ;;
    --out) out=$2; shift ;;
    --again) again=$2; shift ;;
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

if [ -n "$again" ]; then
  out=$(cd "$again" && pwd) || die "no directory $again"
  duration=$(sed -n 's/^command=.* --duration //p' "$out/env.txt")
  [ -n "$duration" ] || die "$again/env.txt does not say the duration"
else
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
      note "$name: $(tail -n 1 "$out/logs/$name.wsbench.err" | cut -c1-120)"
    done
    stop_target "$target"
  done
fi

# By symbol and by object with exact sample counts; and the call graphs of
# the larger symbols, to read.
for target in $targets; do
  for workload in $workloads; do
    name=$target-$workload
    perf report -i "$out/$name.perf.data" --stdio --no-children -n -g none --sort dso,sym \
      >"$out/$name.txt" 2>/dev/null
    perf report -i "$out/$name.perf.data" --stdio --no-children -n -g none --sort dso \
      >"$out/$name.dso.txt" 2>/dev/null
    perf report -i "$out/$name.perf.data" --stdio --no-children -g caller --percent-limit 2 \
      --sort sym >"$out/$name.callers.txt" 2>/dev/null
  done
done

python3 - "$out" "$duration" "$targets" "$workloads" <<'EOF' | tee "$out/summary.md"
import json
import re
import sys
from pathlib import Path

out, duration = Path(sys.argv[1]), float(sys.argv[2])
targets, workloads = sys.argv[3].split(), sys.argv[4].split()

def rows(path, pattern):
    """The (samples, fields...) of each line of a perf report with -n."""
    for line in path.read_text().splitlines():
        m = re.match(r"\s+[\d.]+%\s+(\d+)\s+" + pattern + r"$", line)
        if m:
            yield (int(m.group(1)),) + m.groups()[1:]

def where(dso):
    if dso == "[kernel.kallsyms]":
        return "kernel"
    if dso.startswith("libc"):
        return "libc"
    return "own code"

for workload in workloads:
    unit = "message" if workload == "small" else "handshake"
    print(f"### {workload}\n")
    done, rows_, sym = {}, {}, {}
    # Each sample stands for 1/2999 s of CPU.
    us = lambda n, t: n * 1e6 / 2999 / done[t]
    for t in targets:
        r = json.loads((out / f"{t}-{workload}.json").read_text())
        rate = r.get("msgs_per_s") or r.get("handshakes_per_s") or 0
        done[t] = rate * duration
        split = {"own code": 0, "libc": 0, "kernel": 0}
        for n, dso in rows(out / f"{t}-{workload}.dso.txt", r"(\S+)\s*"):
            split[where(dso)] += n
        total = sum(split.values())
        rows_[t] = (total, split)
        sym[t] = {}
        for n, dso, s in rows(out / f"{t}-{workload}.txt", r"(\S+)\s+\[[.k]\]\s+(.+?)\s*"):
            if where(dso) == "kernel":
                sym[t][s] = sym[t].get(s, 0) + n
    print(f"| figure | " + " | ".join(targets) + " |")
    print("|---|" + "--:|" * len(targets))
    print(f"| samples (2999 Hz, {duration:g} s) | " + " | ".join(f"{rows_[t][0]:,}" for t in targets) + " |")
    print(f"| {unit}s in that time | " + " | ".join(f"{done[t]:,.0f}" for t in targets) + " |")
    print(f"| sampled CPU µs per {unit} | " + " | ".join(
        f"{us(rows_[t][0], t):.2f}" if done[t] else "–" for t in targets) + " |")
    for part in ("own code", "libc", "kernel"):
        print(f"| … in {part}, µs per {unit} (share) | " + " | ".join(
            f"{us(rows_[t][1][part], t):.2f} ({100 * rows_[t][1][part] / max(rows_[t][0], 1):.1f}%)"
            if done[t] else "–" for t in targets) + " |")
    names = sorted(set().union(*(sym[t] for t in targets)),
                   key=lambda s: -max(sym[t].get(s, 0) / done[t] if done[t] else 0 for t in targets))[:15]
    print(f"\nKernel symbols, sampled CPU µs per {unit} (the 15 largest):\n")
    print("| kernel symbol | " + " | ".join(targets) + " |")
    print("|---|" + "--:|" * len(targets))
    for s in names:
        cells = [f"{us(sym[t].get(s, 0), t):.2f}" if done[t] else "–" for t in targets]
        print(f"| `{s}` | " + " | ".join(cells) + " |")
    print()
EOF
note "done: $out/summary.md"
