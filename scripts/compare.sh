#!/usr/bin/env bash
# Side-by-side comparison: the same workloads, through nginx, HAProxy and
# wsproxy-fast, and straight to the echo backend ("direct"), on loopback.
#
#   scripts/compare.sh                 full run: 3 repetitions, 5 s per measurement
#                                      (about 6 minutes on 2 cores, plus builds)
#   scripts/compare.sh --smoke         every workload ~1 s, 1 repetition, small
#                                      connection counts; exits non-zero if any
#                                      target errors or a proxy dies (CI)
#   WSPROXY_FLAGS="--relay copy" scripts/compare.sh    extra wsproxy-fast flags
#   WSPROXY_BIN=/path/to/wsproxy-fast scripts/compare.sh  measure another build
#                                      (e.g. an older commit) instead of this tree's
#   scripts/compare.sh --tls [--smoke] the same over TLS (wss://): see below
#
# Options: --reps N, --duration SECS (per measurement), --out DIR (default
# target/compare/<date>, tls-<date> with --tls), --no-plot (skip the PNG and
# matplotlib), --targets "direct nginx haproxy wsproxy-fast", --workloads
# "idle small many bulk handshakes latency" (and "resumed" with --tls).
#
# --tls: every proxy terminates TLS with one ECDSA P-256 certificate made
# for the run by scripts/tls-cert.sh (OUT/tls/), nginx with
# bench/conf/nginx-tls.conf.in, HAProxy with bench/conf/haproxy-tls.in,
# wsproxy-fast with --tls-cert/--tls-key; the echo backend stays plaintext,
# so there is no direct target. wsbench connects with wss://, trusts the
# run's CA and offers only --tls-suite (default TLS13_AES_128_GCM_SHA256,
# hence TLS 1.3), so every proxy negotiates the same version, suite and
# group (X25519); the summary shows what each one did. Workloads: idle,
# small, bulk, handshakes (every handshake full: resumption off) and
# resumed (handshakes with one shared session store: all but the first few
# resume; the summary gives the share that did).
#
# It installs nginx and HAProxy (apt) and matplotlib (PyPI, into a venv under
# target/) through scripts/setup.sh if missing, builds the release binaries
# and copies them into the output directory (so a rebuild during the run
# changes nothing), then starts one wsbench echo backend (2 threads) and,
# in front of it, nginx (bench/conf/nginx.conf.in), HAProxy
# (bench/conf/haproxy.cfg.in) and wsproxy-fast --workers 2, each on its own
# port (the echo backend and wsproxy-fast bind port 0; nginx and HAProxy
# get one from free_port in scripts/lib.sh and, if it was taken by the
# time they bind it, are started once more on another, with a note saying
# so; any other start failure ends the run). The proxies are restarted at
# the start of every repetition, so the idle-memory figure (taken first) is
# measured on fresh processes. Within a repetition every workload runs
# against each target in turn, the order rotating from one repetition to
# the next.
#
# Workloads (full / --smoke), all with one load-generator thread:
#   idle        hold 5000 / 200 connections (sources spread over 127.0.0.1-32):
#               proxy RSS per idle pair
#   small       echo, 50 / 20 connections x 64 B, 1 in flight each
#   many        echo, 1000 / 100 connections x 128 B
#   bulk        echo, 8 / 2 connections x 64 KiB, 4 / 2 in flight each
#   handshakes  50 / 10 slots of connect + upgrade + one echo + close
#   resumed     (--tls only) handshakes, resuming TLS sessions
#   latency     rate, 50 / 20 connections x 64 B at 10000 / 2000 msg/s
#               (below every target's saturation): p50/p99 from schedule
#
# Around every measurement it samples, from /proc, the CPU time
# (utime+stime) and RSS (VmRSS) of all the proxy's processes (nginx master
# and workers, HAProxy's one process, wsproxy-fast's one process), of the
# echo backend and of the load generator. Raw results: one JSON line per
# measurement in OUT/runs.jsonl; OUT/summary.md holds the markdown table
# (medians, ratios) that is also printed at the end, OUT/compare.png the plot.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmdline="scripts/compare.sh${*:+ $*}"
wsproxy_given=${WSPROXY_BIN:-}
smoke=false
plot=true
reps=
duration=
out=
tls=false
tls_suite=TLS13_AES_128_GCM_SHA256
targets=
workloads=
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=true ;;
    --tls) tls=true ;;
    --tls-suite) tls_suite=$2; shift ;;
    --no-plot) plot=false ;;
    --reps) reps=$2; shift ;;
    --duration) duration=$2; shift ;;
    --out) out=$2; shift ;;
    --targets) targets=$2; shift ;;
    --workloads) workloads=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

if $tls; then
  targets=${targets:-nginx haproxy wsproxy-fast}
  workloads=${workloads:-idle small bulk handshakes resumed}
  kind=tls-
else
  targets=${targets:-direct nginx haproxy wsproxy-fast}
  workloads=${workloads:-idle small many bulk handshakes latency}
  kind=
fi
if $smoke; then
  reps=${reps:-1} duration=${duration:-1} hold_secs=1
  small_conns=20 many_conns=100 bulk_conns=2 bulk_inflight=2 hs_slots=10
  idle_conns=200 lat_conns=20 lat_rate=2000
  out=${out:-$ROOT/target/compare/smoke-$kind$(date +%Y%m%d-%H%M%S)}
else
  # The idle hold is long enough that every proxy's steady idle state is
  # what gets sampled: wsproxy-fast frees handshake buffers and pipes once a
  # worker has not used them for a whole 2 s trim period (up to 4 s).
  reps=${reps:-3} duration=${duration:-5} hold_secs=10
  small_conns=50 many_conns=1000 bulk_conns=8 bulk_inflight=4 hs_slots=50
  idle_conns=5000 lat_conns=50 lat_rate=10000
  out=${out:-$ROOT/target/compare/$kind$(date +%Y%m%d-%H%M%S)}
fi
bulk_size=65536
# Source addresses 127.0.0.1..=127.0.0.N for the connection-heavy workloads.
src_ips=32
# Longest any one wsbench run may take beyond its own duration.
run_slack=60
[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer"
[[ $duration =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--duration must be a number of seconds"
for target in $targets; do
  case "$target" in
    direct) ! $tls || die "--tls has no direct target: the echo backend speaks plaintext only" ;;
    nginx | haproxy | wsproxy-fast) ;;
    *) die "unknown target '$target'" ;;
  esac
done
for workload in $workloads; do
  case "$workload" in
    idle | small | many | bulk | handshakes | latency) ;;
    resumed) $tls || die "the resumed workload resumes TLS sessions: it needs --tls" ;;
    *) die "unknown workload '$workload'" ;;
  esac
done

# --- tools, binaries, limits ---------------------------------------------------

command -v python3 >/dev/null 2>&1 || die "python3 is needed for the summary (apt-get install python3)"
tools=()
[[ " $targets " == *" nginx "* ]] && tools+=(nginx)
[[ " $targets " == *" haproxy "* ]] && tools+=(haproxy)
$plot && tools+=(matplotlib)
[ ${#tools[@]} -eq 0 ] || "$ROOT/scripts/setup.sh" "${tools[@]}"
export PATH="$PATH:/usr/sbin:/sbin"

mkdir -p "$out/logs" "$out/bin"
out=$(cd "$out" && pwd)
build_release
wsproxy_origin=${WSPROXY_BIN:-built from this tree}
cp "${WSPROXY_BIN:-$BIN/wsproxy-fast}" "$out/bin/wsproxy-fast"
cp "$BIN/wsbench" "$out/bin/"
BIN=$out/bin
WSPROXY_BIN=$BIN/wsproxy-fast

# Each proxied idle pair costs the proxy 2 descriptors; ask for 20000.
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=20000
ulimit -n "$((hard < 20000 ? hard : 20000))"
max_idle=$((($(ulimit -n) - 200) / 2))
if [ "$idle_conns" -gt "$max_idle" ]; then
  note "the fd limit ($(ulimit -n)) allows only $max_idle idle pairs; holding that many"
  idle_conns=$max_idle
fi

# --tls: the run's certificate, and what wsbench adds to every command.
scheme=ws
tls_args=()
if $tls; then
  "$ROOT/scripts/tls-cert.sh" "$out/tls" >/dev/null
  scheme=wss
  tls_args=(--ca "$out/tls/ca.pem" --tls-suite "$tls_suite")
fi

clk_tck=$(getconf CLK_TCK)
runs=$out/runs.jsonl
: >"$runs"
failures=0
started=$SECONDS

. "$(dirname "$0")/targets.sh"

# --- one measurement ---------------------------------------------------------------

# wsbench arguments for WORKLOAD against URL.
workload_args() {
  local url=$2 common=(--url "$2" --threads 1 --json "${tls_args[@]}")
  case "$1" in
    idle) echo hold "${common[@]}" --conns "$idle_conns" --src-ips "$src_ips" --hold "$hold_secs" ;;
    small) echo echo "${common[@]}" --conns "$small_conns" --size 64 --duration "$duration" ;;
    many) echo echo "${common[@]}" --conns "$many_conns" --size 128 --duration "$duration" --src-ips "$src_ips" ;;
    bulk) echo echo "${common[@]}" --conns "$bulk_conns" --size "$bulk_size" --inflight "$bulk_inflight" --duration "$duration" ;;
    handshakes) echo handshakes "${common[@]}" --conns "$hs_slots" --src-ips "$src_ips" --duration "$duration" ;;
    resumed) echo handshakes "${common[@]}" --resume --conns "$hs_slots" --src-ips "$src_ips" --duration "$duration" ;;
    latency) echo rate "${common[@]}" --conns "$lat_conns" --size 64 --rate "$lat_rate" --duration "$duration" ;;
  esac
}

json_or_null() {
  if [ -n "$1" ]; then echo "$1"; else echo null; fi
}

measure() {
  local rep=$1 workload=$2 target=$3 url args pids=() rc=0 result gen
  local cpu0 cpu1 sys0 sys1 backend0 backend1 gen0 gen1 rss0 rss1 rss_held=null backend_rss0 backend_rss_held=null
  local stdout=$out/logs/$rep-$workload-$target.json stderr=$out/logs/$rep-$workload-$target.err
  url="$scheme://${ADDR[$target]}/$workload"
  read -ra args <<<"$(workload_args "$workload" "$url")"
  mapfile -t pids < <(target_pids "$target")
  cpu0=$(cpu_ticks "${pids[@]}")
  sys0=$(sys_ticks "${pids[@]}")
  backend0=$(cpu_ticks "$ECHO_PID")
  rss0=$(rss_kb "${pids[@]}")
  backend_rss0=$(rss_kb "$ECHO_PID")
  gen0=$(child_ticks)
  local limit
  limit=$(awk -v d="$duration" -v h="$hold_secs" -v s="$run_slack" 'BEGIN { printf "%d", d + h + s }')
  if [ "$workload" = idle ]; then
    timeout -k 5 "$limit" "$BIN/wsbench" "${args[@]}" >"$stdout" 2>"$stderr" &
    gen=$!
    LIB_PIDS+=("$gen")
    if wait_line "$stderr" '^held [0-9]+' "$limit" "$gen"; then
      # Sample half way through the hold, all connections idle since.
      sleep "$(awk -v h="$hold_secs" 'BEGIN { print h / 2 }')"
      rss_held=$(rss_kb "${pids[@]}")
      backend_rss_held=$(rss_kb "$ECHO_PID")
    fi
    wait "$gen" || rc=$?
    forget "$gen"
  else
    timeout -k 5 "$limit" "$BIN/wsbench" "${args[@]}" >"$stdout" 2>"$stderr" || rc=$?
  fi
  gen1=$(child_ticks)
  cpu1=$(cpu_ticks "${pids[@]}")
  sys1=$(sys_ticks "${pids[@]}")
  backend1=$(cpu_ticks "$ECHO_PID")
  rss1=$(rss_kb "${pids[@]}")
  local up=true
  target_alive "$target" || up=false
  result=$(head -c 100000 "$stdout" | head -n 1)
  local proxy_fields='"proxy_cpu_ticks":null,"proxy_sys_ticks":null,"proxy_rss_kb_before":null,"proxy_rss_kb_held":null,"proxy_rss_kb_after":null'
  if [ ${#pids[@]} -gt 0 ]; then
    proxy_fields="\"proxy_cpu_ticks\":$((cpu1 - cpu0)),\"proxy_sys_ticks\":$((sys1 - sys0)),\"proxy_rss_kb_before\":$rss0,\"proxy_rss_kb_held\":$rss_held,\"proxy_rss_kb_after\":$rss1"
  fi
  printf '{"rep":%d,"workload":"%s","target":"%s","exit":%d,"proxy_alive":%s,"clk_tck":%d,%s,"backend_cpu_ticks":%d,"backend_rss_kb_before":%d,"backend_rss_kb_held":%s,"gen_cpu_ticks":%d,"result":%s}\n' \
    "$rep" "$workload" "$target" "$rc" "$up" "$clk_tck" "$proxy_fields" \
    "$((backend1 - backend0))" "$backend_rss0" "$backend_rss_held" "$((gen1 - gen0))" "$(json_or_null "$result")" >>"$runs"
  printf '  %-11s %-13s %s\n' "$workload" "$target" "$(tail -n 1 "$stderr" | cut -c1-160)" >&2
  if [ "$rc" -ne 0 ] || ! $up; then
    failures=$((failures + 1))
    if ! $up; then
      note "$target died or lost a worker during $workload (rep $rep); its log: $out/logs/"
    else
      note "$workload against $target failed (wsbench exit $rc); see $stderr"
    fi
    tail_log "$stderr"
    $smoke && die "smoke run failed: $workload against $target"
    if ! $up; then
      stop_target "$target"
      start_target "$target"
    fi
  fi
}

# --- the run -------------------------------------------------------------------------

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
  echo "tls=$tls"
  if $tls; then
    echo "tls_suite=$tls_suite"
    echo "openssl=$(openssl version)"
    [[ " $targets " == *" nginx "* ]] && echo "nginx_openssl=$(nginx -V 2>&1 | sed -n 's/^built with //p' | head -n 1)"
    [[ " $targets " == *" haproxy "* ]] && echo "haproxy_openssl=$(haproxy -vv | sed -n 's/^Running on OpenSSL version : //p' | head -n 1)"
    echo "rustls=$(awk '/^name = "rustls"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock")"
    echo "cert=$(openssl x509 -in "$out/tls/cert.pem" -noout -text | sed -n 's/^ *\(ASN1 OID\|NIST CURVE\): //p' | head -n 1) ECDSA"
  fi
  echo "wsproxy_flags=${WSPROXY_FLAGS:-}"
  echo "wsproxy_bin=$wsproxy_origin"
  echo "command=${WSPROXY_FLAGS:+WSPROXY_FLAGS=\"$WSPROXY_FLAGS\" }${wsproxy_given:+WSPROXY_BIN=$wsproxy_given }$cmdline"
  echo "mode=$($smoke && echo smoke || echo full)"
  echo "reps=$reps"
  echo "duration_s=$duration"
  echo "hold_s=$hold_secs"
  echo "src_ips=$src_ips"
  echo "workloads=$workloads"
  echo "targets=$targets"
  echo "small=${small_conns}x64"
  echo "many=${many_conns}x128"
  echo "bulk=${bulk_conns}x${bulk_size}x${bulk_inflight}"
  echo "handshakes=$hs_slots"
  echo "resumed=$hs_slots"
  echo "idle=$idle_conns"
  echo "latency=${lat_conns}x64@${lat_rate}"
  echo "steal_ticks_start=$(awk '/^cpu / { print $9 }' /proc/stat)"
} >"$out/env.txt"

read -ra target_list <<<"$targets"
count=${#target_list[@]}
for ((rep = 1; rep <= reps; rep++)); do
  note "repetition $rep of $reps: (re)starting the proxies"
  for target in "${target_list[@]}"; do
    stop_target "$target"
    start_target "$target"
  done
  for workload in $workloads; do
    for ((i = 0; i < count; i++)); do
      measure "$rep" "$workload" "${target_list[$(((i + rep - 1) % count))]}"
    done
  done
done
for target in "${target_list[@]}"; do stop_target "$target"; done
echo "steal_ticks_end=$(awk '/^cpu / { print $9 }' /proc/stat)" >>"$out/env.txt"
echo "elapsed_s=$((SECONDS - started))" >>"$out/env.txt"

python3 "$ROOT/bench/compare/summarize.py" "$out"
if $plot; then
  "$TOOLS_VENV/bin/python" "$ROOT/bench/compare/plot.py" "$out"
else
  note "--no-plot: skipped the PNG"
fi
note "done in $((SECONDS - started)) s; raw results $runs, table $out/summary.md"
if [ "$failures" -gt 0 ]; then
  die "$failures measurement(s) failed; see the notes above and $out/logs/"
fi
