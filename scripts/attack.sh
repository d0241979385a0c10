#!/usr/bin/env bash
# Attacks side by side: nginx, HAProxy and wsproxy-fast in front of the same
# echo backend (as scripts/compare.sh runs them), each attacked in turn while
# a legitimate client keeps doing handshakes (connect, upgrade, one echo,
# close) and a small echo load runs on tunnels opened before the attack.
#
#   scripts/attack.sh              full run: every attack against every proxy,
#                                  3 repetitions of 10 s (about 15 minutes)
#   scripts/attack.sh --smoke      wsproxy-fast only, small attacks, 3 s each
#                                  (about 1 minute); fails unless wsproxy-fast
#                                  passes the checks below (CI)
#   WSPROXY_BIN=/path/to/wsproxy-fast scripts/attack.sh   attack another build
#   WSPROXY_FLAGS="--max-connections 5000" scripts/attack.sh   extra flags
#
# Options: --targets "nginx haproxy wsproxy-fast", --attacks "none slowloris
# slow-reader header-bomb idle flood" (none, the baseline, always runs
# first), --reps N, --duration SECS (of legitimate load per attack), --out
# DIR (default target/attack/<date>), --check (apply the checks to a full
# run too), --no-build (use target/release as it is).
#
# Each attack phase, on a freshly started proxy:
#   1. the echo load: wsbench rate, 10 connections x 64 B at 1000 msg/s,
#      latency from schedule; its tunnels open before the attack starts
#   2. the attack: wsbench attack processes (below), until every connection
#      is up (at most --ramp, 5 s; 3 s in smoke)
#   3. the legitimate client: wsbench handshakes, 4 slots, for --duration
#   4. the echo load and the attack run on a little past its end, then stop
#
#   attack        full                          smoke
#   slowloris     3000 conns, a line per 1 s     300 conns
#   slow-reader   500 conns, 1 MiB echo, 16 B/s  50 conns
#   header-bomb   2 procs x 16 conns, flat out   2 procs x 4 conns
#   idle          9000 conns sending nothing     1000 conns
#   flood         4 procs connecting and         4 procs
#                 resetting flat out, half with
#                 a garbage request line
#
# The results, per proxy and attack: legitimate handshakes/s relative to
# the same proxy without attack, the worst legitimate handshake (connect to
# the Close echo) and the worst echo latency, errors, and the proxy's CPU.
# Raw results in OUT/runs.jsonl (one JSON object per phase, with every
# wsbench report), OUT/env.txt (machine, versions, load average before and
# after), OUT/summary.md (the tables, also printed), logs in OUT/logs/.
#
# Checks (--smoke, --check), on wsproxy-fast: under the connection flood the
# echo load's worst latency stays under 200 ms and legitimate handshakes
# keep at least 0.1x their rate without attack; the proxy survives every
# attack. The figures mean something only on a quiet machine: the attacks
# and the proxies share its cores, so anything else running moves them.
# env.txt records the load average before and after and other_cpu_share,
# the share of the machine's CPU that processes outside the run took (the
# run says so when it is over 5%).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmdline="scripts/attack.sh${*:+ $*}"
wsproxy_given=${WSPROXY_BIN:-}
smoke=false
check=false
build=true
reps=
duration=
ramp=
out=
targets=
attacks=
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=true check=true ;;
    --check) check=true ;;
    --no-build) build=false ;;
    --reps) reps=$2; shift ;;
    --duration) duration=$2; shift ;;
    --out) out=$2; shift ;;
    --targets) targets=$2; shift ;;
    --attacks) attacks=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

if $smoke; then
  targets=${targets:-wsproxy-fast}
  reps=${reps:-1} duration=${duration:-3} ramp=3
  slowloris_conns=300 reader_conns=50 bomb_procs=2 bomb_conns=4 idle_conns=1000
  out=${out:-$ROOT/target/attack/smoke-$(date +%Y%m%d-%H%M%S)}
else
  targets=${targets:-nginx haproxy wsproxy-fast}
  reps=${reps:-3} duration=${duration:-10} ramp=5
  slowloris_conns=3000 reader_conns=500 bomb_procs=2 bomb_conns=16 idle_conns=9000
  out=${out:-$ROOT/target/attack/$(date +%Y%m%d-%H%M%S)}
fi
flood_procs=4
hs_slots=4
echo_conns=10 echo_rate=1000
src_ips=32
# The checks (see the top).
max_flood_echo_ms=200
min_flood_ratio=0.1
attacks=" ${attacks:-slowloris slow-reader header-bomb idle flood} "
attacks="none${attacks// none / }"
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer"
[[ $duration =~ ^[1-9][0-9]*$ ]] || die "--duration must be a whole number of seconds"
for target in $targets; do
  case "$target" in
    nginx | haproxy | wsproxy-fast) ;;
    *) die "unknown target '$target'" ;;
  esac
done
for attack in $attacks; do
  case "$attack" in
    none | slowloris | slow-reader | header-bomb | idle | flood) ;;
    *) die "unknown attack '$attack'" ;;
  esac
done

command -v python3 >/dev/null 2>&1 || die "python3 is needed for the summary (apt-get install python3)"
tools=()
[[ " $targets " == *" nginx "* ]] && tools+=(nginx)
[[ " $targets " == *" haproxy "* ]] && tools+=(haproxy)
[ ${#tools[@]} -eq 0 ] || "$ROOT/scripts/setup.sh" "${tools[@]}"
export PATH="$PATH:/usr/sbin:/sbin"

mkdir -p "$out/logs" "$out/bin"
out=$(cd "$out" && pwd)
if $build; then build_release; fi
cp "${WSPROXY_BIN:-$BIN/wsproxy-fast}" "$BIN/wsbench" "$out/bin/"
BIN=$out/bin
WSPROXY_BIN=$BIN/wsproxy-fast

# 9000 idle connections, each a descriptor for the attacker and one or two
# for the proxy.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=20000
ulimit -n "$((hard < 20000 ? hard : 20000))"
[ "$(ulimit -n)" -ge $((idle_conns + 1000)) ] ||
  die "the open-file limit ($(ulimit -n)) is too low for $idle_conns idle connections"

tls=false
. "$(dirname "$0")/targets.sh"

clk_tck=$(getconf CLK_TCK)
runs=$out/runs.jsonl
: >"$runs"
failures=0
started=$SECONDS

# wsbench attack processes for ATTACK against ADDR, lasting SECS: one
# command line per process.
attack_commands() {
  local attack=$1 addr=$2 secs=$3 i common
  common="$BIN/wsbench attack --url ws://$addr/ --duration $secs --ramp $ramp --src-ips $src_ips --json"
  case "$attack" in
    slowloris) echo "$common --kind slowloris --conns $slowloris_conns" ;;
    slow-reader) echo "$common --kind slow-reader --conns $reader_conns" ;;
    header-bomb) for ((i = 0; i < bomb_procs; i++)); do echo "$common --kind header-bomb --conns $bomb_conns"; done ;;
    idle) echo "$common --kind idle --conns $idle_conns" ;;
    flood) for ((i = 0; i < flood_procs; i++)); do echo "$common --kind flood --threads 1"; done ;;
  esac
}

# First line of FILE, or null.
json_of() {
  local line
  line=$(head -c 100000 "$1" 2>/dev/null | head -n 1)
  if [ -n "$line" ]; then echo "$line"; else echo null; fi
}

# phase REP TARGET ATTACK: one attack against a fresh TARGET, one JSON line.
phase() {
  local rep=$1 target=$2 attack=$3 tag=$1-$2-$3 addr secs rc_hs=0 rc_echo=0
  local echo_pid attackers=() cmd pid i cpu0 cpu1 pids=() up=true
  stop_target "$target"
  start_target "$target"
  addr=${ADDR[$target]}
  mapfile -t pids < <(target_pids "$target")
  # The echo load and the attack outlast the legitimate client: the
  # attack's ramp at most, then a second.
  secs=$((ramp + duration + 1))
  timeout -k 5 $((secs + 60)) "$BIN/wsbench" rate --url "ws://$addr/echo" --threads 1 --json \
    --conns "$echo_conns" --size 64 --rate "$echo_rate" --duration "$secs" \
    >"$out/logs/$tag-echo.json" 2>"$out/logs/$tag-echo.err" &
  echo_pid=$!
  LIB_PIDS+=("$echo_pid")
  wait_line "$out/logs/$tag-echo.err" '^measuring' 30 "$echo_pid" || die "the echo load did not start against $target"
  cpu0=$(cpu_ticks "${pids[@]}")
  i=0
  while read -r cmd; do
    [ -n "$cmd" ] || continue
    # shellcheck disable=SC2086 # one command line, split on purpose
    spawn "$out/logs/$tag-attack-$i.log" timeout -k 5 $((secs + 60)) $cmd
    attackers+=("$SPAWNED")
    i=$((i + 1))
  done < <(attack_commands "$attack" "$addr" "$((secs + 1))")
  for ((i = 0; i < ${#attackers[@]}; i++)); do
    wait_line "$out/logs/$tag-attack-$i.log" '^attacking' $((ramp + 10)) "${attackers[i]}" ||
      die "attack $attack did not start against $target"
  done
  timeout -k 5 $((duration + 60)) "$BIN/wsbench" handshakes --url "ws://$addr/hs" --threads 1 --json \
    --conns "$hs_slots" --src-ips "$src_ips" --duration "$duration" \
    >"$out/logs/$tag-handshakes.json" 2>"$out/logs/$tag-handshakes.err" || rc_hs=$?
  wait "$echo_pid" || rc_echo=$?
  forget "$echo_pid"
  for pid in "${attackers[@]}"; do wait "$pid" || true; done
  [ ${#attackers[@]} -eq 0 ] || forget "${attackers[@]}"
  cpu1=$(cpu_ticks "${pids[@]}")
  target_alive "$target" || up=false
  local attack_json=
  for ((i = 0; i < ${#attackers[@]}; i++)); do
    # The report is the log's last line (JSON on stdout, after the
    # `attacking` and summary lines on stderr).
    attack_json+="${attack_json:+,}$(grep '^{' "$out/logs/$tag-attack-$i.log" | tail -n 1 || echo null)"
  done
  printf '{"rep":%d,"target":"%s","attack":"%s","proxy_alive":%s,"clk_tck":%d,"proxy_cpu_ticks":%d,"handshakes_exit":%d,"echo_exit":%d,"handshakes":%s,"echo":%s,"attackers":[%s]}\n' \
    "$rep" "$target" "$attack" "$up" "$clk_tck" "$((cpu1 - cpu0))" "$rc_hs" "$rc_echo" \
    "$(json_of "$out/logs/$tag-handshakes.json")" "$(json_of "$out/logs/$tag-echo.json")" "$attack_json" >>"$runs"
  printf '  %-12s %-13s %s\n' "$attack" "$target" "$(tail -n 1 "$out/logs/$tag-handshakes.err" | cut -c1-150)" >&2
  if ! $up; then
    failures=$((failures + 1))
    note "$target died or lost a worker under $attack (rep $rep); its logs: $out/logs/"
  fi
  stop_target "$target"
}

load_average() { cut -d' ' -f1-3 /proc/loadavg; }

# CPU ticks spent by every process on the machine (/proc/stat: user, nice,
# system, irq, softirq; with tick-based accounting a process's system time
# includes the interrupts it was interrupted by).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# CPU ticks of this run: this shell and every child it waited for (the
# proxies, attackers and loads), plus the echo backend, still running.
run_ticks() {
  echo $(($(stat_field $$ 14) + $(stat_field $$ 15) + $(child_ticks) + $(cpu_ticks "$ECHO_PID")))
}

note "output in $out"
start_echo 2 "$out/logs"
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host_nproc=$(nproc)"
  echo "cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "kernel=$(uname -r)"
  echo "rustc=$(rustc -V 2>/dev/null || echo unknown)"
  echo "wsproxy=$("$BIN/wsproxy-fast" --version)"
  echo "git=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  [[ " $targets " == *" nginx "* ]] && echo "nginx=$(nginx -v 2>&1)"
  [[ " $targets " == *" haproxy "* ]] && echo "haproxy=$(haproxy -v | head -n 1)"
  echo "wsproxy_flags=${WSPROXY_FLAGS:-}"
  echo "wsproxy_bin=${wsproxy_given:-built from this tree}"
  echo "command=${WSPROXY_FLAGS:+WSPROXY_FLAGS=\"$WSPROXY_FLAGS\" }${wsproxy_given:+WSPROXY_BIN=$wsproxy_given }$cmdline"
  echo "mode=$($smoke && echo smoke || echo full)"
  echo "reps=$reps"
  echo "duration_s=$duration"
  echo "ramp_s=$ramp"
  echo "targets=$targets"
  echo "attacks=$attacks"
  echo "legit=handshakes x$hs_slots; echo rate ${echo_conns}x64@$echo_rate"
  echo "slowloris=$slowloris_conns"
  echo "slow_reader=$reader_conns"
  echo "header_bomb=${bomb_procs}x$bomb_conns"
  echo "idle=$idle_conns"
  echo "flood=${flood_procs} procs"
  echo "loadavg_start=$(load_average)"
  echo "machine_ticks_start=$(machine_ticks)"
  echo "run_ticks_start=$(run_ticks)"
  echo "steal_ticks_start=$(awk '/^cpu / { print $9 }' /proc/stat)"
} >"$out/env.txt"

for ((rep = 1; rep <= reps; rep++)); do
  note "repetition $rep of $reps"
  for target in $targets; do
    for attack in $attacks; do
      phase "$rep" "$target" "$attack"
    done
  done
done
# What other processes took meanwhile: the figures are comparable only from
# a quiet machine.
others=$(($(machine_ticks) - $(sed -n 's/^machine_ticks_start=//p' "$out/env.txt") -
  ($(run_ticks) - $(sed -n 's/^run_ticks_start=//p' "$out/env.txt"))))
others_share=$(awk -v t="$others" -v s="$((SECONDS - started))" -v n="$(nproc)" -v h="$clk_tck" \
  'BEGIN { v = t / (s * n * h); printf "%.3f", v < 0 ? 0 : v }')
{
  echo "loadavg_end=$(load_average)"
  echo "steal_ticks_end=$(awk '/^cpu / { print $9 }' /proc/stat)"
  echo "elapsed_s=$((SECONDS - started))"
  echo "other_cpu_share=$others_share"
} >>"$out/env.txt"
if awk -v v="$others_share" 'BEGIN { exit !(v > 0.05) }'; then
  note "other processes used $(awk -v v="$others_share" 'BEGIN { printf "%.0f", v * 100 }')% of the machine's CPU during the run: its figures are not those of a quiet machine"
fi

summary_args=("$out")
if $check; then
  summary_args+=(--check "wsproxy-fast" --max-flood-echo-ms "$max_flood_echo_ms" --min-flood-ratio "$min_flood_ratio")
fi
rc=0
python3 "$ROOT/bench/attack/summarize.py" "${summary_args[@]}" || rc=$?
note "done in $((SECONDS - started)) s; raw results $runs, tables $out/summary.md"
[ "$failures" -eq 0 ] || die "$failures phase(s) lost a proxy; see the notes above and $out/logs/"
[ "$rc" -eq 0 ] || die "the checks failed (see above)"
