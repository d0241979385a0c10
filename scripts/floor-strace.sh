#!/usr/bin/env bash
# System calls per WebSocket handshake: wsproxy-fast against the floor
# relays (bench/src/bin/floor-epoll.rs, floor-uring.rs), counted by
# `strace -c -f` attached to every thread of the running relay, in front of
# the wsbench echo backend, while `wsbench handshakes` runs against it.
#
#   scripts/floor-strace.sh                 wsproxy-fast, floor-epoll, floor-uring
#   scripts/floor-strace.sh --targets "wsproxy-fast floor-epoll"
#
# Options: --conns N (handshake slots, default 10), --duration SECS (default
# 3), --out DIR (default target/floor-strace/<date>). Each target is started
# as scripts/targets.sh starts it for scripts/compare.sh (wsproxy-fast
# --workers 2, the floors with as many workers), strace attaches after
# start-up (so the start-up calls are not counted) and detaches once the
# load has ended; every call the relay made in between is divided by the
# handshakes wsbench completed (each one: connect, upgrade, one 16-byte
# echo, Close, the server closes). strace slows the relay down a great
# deal, so the rates are meaningless; the calls per handshake are not.
#
# Output: OUT/NAME.strace (strace's table), OUT/NAME.json (wsbench's
# result), OUT/summary.md: calls per handshake of each system call and
# target, and the calls wsproxy-fast makes that floor-epoll does not.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

targets="wsproxy-fast floor-epoll floor-uring"
conns=10
duration=3
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --targets) targets=$2; shift ;;
    --conns) conns=$2; shift ;;
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
command -v strace >/dev/null 2>&1 || die "strace is needed (apt-get install strace)"

out=${out:-$ROOT/target/floor-strace/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
build_release
tls=false
. "$(dirname "$0")/targets.sh"

start_echo 2 "$out/logs"
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "kernel=$(uname -r)"
  echo "strace=$(strace -V | head -n 1)"
  echo "wsproxy=$("$BIN/wsproxy-fast" --version)"
  echo "git=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "command=scripts/floor-strace.sh --targets \"$targets\" --conns $conns --duration $duration"
} >"$out/env.txt"

for target in $targets; do
  start_target "$target"
  # -p with -f attaches to every thread of the process.
  strace -f -c -o "$out/$target.strace" -p "${MAIN[$target]}" 2>"$out/logs/$target.strace.err" &
  tracer=$!
  LIB_PIDS+=("$tracer")
  # strace says on stderr when it has attached ("attached with N threads").
  deadline=$((SECONDS + 10))
  while ! grep -q ' attached' "$out/logs/$target.strace.err"; do
    [ "$SECONDS" -lt "$deadline" ] || die "strace did not attach to $target"
    sleep 0.05
  done
  "$BIN/wsbench" handshakes --url "ws://${ADDR[$target]}/strace" --threads 1 --json \
    --conns "$conns" --duration "$duration" >"$out/$target.json" 2>"$out/logs/$target.wsbench.err" ||
    die "wsbench handshakes against $target failed; see $out/logs/$target.wsbench.err"
  kill -INT "$tracer"
  wait "$tracer" || true
  forget "$tracer"
  stop_target "$target"
  note "$target: $(tail -n 1 "$out/logs/$target.wsbench.err" | cut -c1-120)"
done

python3 - "$out" $targets <<'EOF' | tee "$out/summary.md"
import json
import sys
from pathlib import Path

out, targets = Path(sys.argv[1]), sys.argv[2:]
calls, handshakes = {}, {}
for target in targets:
    handshakes[target] = json.loads((out / f"{target}.json").read_text())["handshakes"]
    calls[target] = {}
    for line in (out / f"{target}.strace").read_text().splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
            calls[target][fields[-1]] = int(fields[3])
names = sorted(set().union(*calls.values()), key=lambda n: -max(calls[t].get(n, 0) / handshakes[t] for t in targets))
print("| system call | " + " | ".join(targets) + " |")
print("|---|" + "--:|" * len(targets))
for name in names:
    cells = [f"{calls[t].get(name, 0) / handshakes[t]:.2f}" if name in calls[t] else "–" for t in targets]
    print(f"| {name} | " + " | ".join(cells) + " |")
totals = [f"**{sum(calls[t].values()) / handshakes[t]:.2f}**" for t in targets]
print("| **all, per handshake** | " + " | ".join(totals) + " |")
print("| handshakes counted | " + " | ".join(f"{handshakes[t]:,}" for t in targets) + " |")
if "wsproxy-fast" in targets and "floor-epoll" in targets:
    extra = [n for n in names if n in calls["wsproxy-fast"] and n not in calls["floor-epoll"]]
    print()
    print("Calls wsproxy-fast makes that floor-epoll does not: " + (", ".join(
        f"{n} ({calls['wsproxy-fast'][n] / handshakes['wsproxy-fast']:.2f})" for n in extra) or "none") + ".")
EOF
note "done: $out/summary.md"
