#!/usr/bin/env bash
# Side-by-side comparison: the same workloads, through nginx, HAProxy and
# wsproxy-fast, and straight to the backend ("direct"), on loopback:
# WebSocket workloads in front of one echo backend, and keep-alive HTTP
# workloads (a static file, a small proxied answer) run with wrk.
#
#   scripts/compare.sh                 full run: 3 repetitions, 5 s per measurement
#                                      (about 8 minutes on 2 cores, plus builds)
#   scripts/compare.sh --smoke         every workload ~1 s, 1 repetition, small
#                                      connection counts; exits non-zero if any
#                                      target errors or a proxy dies (CI)
#   WSPROXY_FLAGS="--relay copy" scripts/compare.sh    extra wsproxy-fast flags
#                                      (WebSocket workloads; see "HTTP" below)
#   WSPROXY_BIN=/path/to/wsproxy-fast scripts/compare.sh  measure another build
#                                      (e.g. an older commit) instead of this tree's
#   scripts/compare.sh --tls [--smoke] the same over TLS (wss://, https://): see below
#   scripts/compare.sh --workloads "http-file http-api"   the HTTP workloads only
#
# Options: --reps N, --duration SECS (per measurement; whole seconds when an
# HTTP workload runs, as wrk takes them), --out DIR (default
# target/compare/<date>, tls-<date> with --tls), --no-plot (skip the PNGs
# and matplotlib), --targets "direct nginx haproxy wsproxy-fast",
# --workloads "idle small many bulk handshakes latency http-file http-api"
# (and "resumed" with --tls).
#
# Floors: --targets may also name floor-epoll and floor-uring
# (bench/src/bin/floor-*.rs, started by scripts/targets.sh with as many
# workers as wsproxy-fast), the least work a relay can do on epoll and on
# io_uring: the head forwarded unparsed, then bytes both ways. They are not
# in the default targets, speak plaintext only (not with --tls), and take
# part in small, many, bulk and handshakes only (the other pairs are
# skipped, with a note). The table then has a wsproxy-fast / floor-epoll
# column. For example:
#   scripts/compare.sh --workloads "small many bulk handshakes" \
#     --targets "direct nginx haproxy wsproxy-fast floor-epoll floor-uring"
#
# --tls: every proxy terminates TLS with one ECDSA P-256 certificate made
# for the run by scripts/tls-cert.sh (OUT/tls/), nginx with
# bench/conf/nginx-tls.conf.in, HAProxy with bench/conf/haproxy-tls.in,
# wsproxy-fast with --tls-cert/--tls-key (its HTTP configuration: the same
# files in the listener's tls table); the backends stay plaintext, so
# there is no direct target. wsbench connects with wss://, trusts the
# run's CA and offers only --tls-suite (default TLS13_AES_128_GCM_SHA256,
# hence TLS 1.3); wrk connects with https:// and, through an OpenSSL
# configuration file (OUT/tls/openssl-client.cnf, in OPENSSL_CONF), offers
# only TLS 1.3 and that suite, so every proxy negotiates the same version,
# suite and group (X25519); the summary shows what each one did (for the
# HTTP workloads, as openssl s_client with the same configuration saw it
# just before each measurement). Workloads: idle, small, bulk, handshakes
# (every handshake full: resumption off), resumed (handshakes with one
# shared session store: all but the first few resume; the summary gives
# the share that did), http-file and http-api (every connection kept
# alive, so a handshake is amortised over up to 1000 requests; wrk does
# not resume sessions).
#
# It installs nginx, HAProxy and wrk (apt) and matplotlib (PyPI, into a
# venv under target/) through scripts/setup.sh if missing, builds the
# release binaries and copies them into the output directory (so a rebuild
# during the run changes nothing), then starts one wsbench echo backend (2
# threads) and, in front of it, nginx (bench/conf/nginx.conf.in), HAProxy
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
# HTTP: the HTTP workloads run against separate instances of each proxy,
# started and restarted beside the WebSocket ones, configured as a web
# server would be: nginx with bench/conf/nginx-http.conf.in (worker_processes
# auto, sendfile, tcp_nopush, keepalive_requests 1000, upstream keepalive 32),
# HAProxy with bench/conf/haproxy-http.cfg.in (keep-alive both sides,
# http-reuse safe; http-api only: it serves no files), wsproxy-fast with
# --config bench/conf/wsproxy-http.toml.in (workers = 2, a root route, a
# group with its default keepalive 32; $WSPROXY_FLAGS does not apply to
# it). The file is OUT/www/2k.html (2048 bytes written by this script).
# The upstream of http-api, and its direct target, is one more nginx
# (bench/conf/nginx-api.conf.in: 1 worker, a 65-byte JSON answer,
# keepalive_requests 100000), the same process for every target and never
# a measured one: its CPU counts as the backend's. http-file has no direct
# target (there is nothing behind a file server to go to directly) and no
# HAProxy row; those pairs are skipped, with a note. Before each HTTP
# measurement, bench/compare/http_check.py fetches the URL twice on one
# connection and checks status 200, the exact body and that the connection
# stayed open.
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
#   http-file   wrk -t1 -c50 / -c10 --latency, GET of the 2 KiB static file
#               (nginx, wsproxy-fast): requests/s, p50/p99, CPU per request
#   http-api    the same, GET /api/item proxied to the JSON upstream
#               (direct, nginx, HAProxy, wsproxy-fast)
#
# Around every measurement it samples, from /proc, the CPU time
# (utime+stime) and RSS (VmRSS) of all the proxy's processes (nginx master
# and workers, HAProxy's one process, wsproxy-fast's one process), of the
# backend (the echo backend; the API nginx's master and worker) and of the
# load generator. An HTTP measurement fails if wrk reports any error (a
# socket error, a timeout, a status of 400 or more), or read less than one
# body's bytes per response; it also records how many connections the API
# upstream accepted (nginx stub_status), i.e. how well each proxy kept its
# upstream connections alive. Raw results: one JSON line per measurement
# in OUT/runs.jsonl; OUT/summary.md holds the markdown tables (medians,
# ratios) that are also printed at the end, OUT/compare.png and
# OUT/compare-http.png the plots.
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
  workloads=${workloads:-idle small bulk handshakes resumed http-file http-api}
  kind=tls-
else
  targets=${targets:-direct nginx haproxy wsproxy-fast}
  workloads=${workloads:-idle small many bulk handshakes latency http-file http-api}
  kind=
fi
if $smoke; then
  reps=${reps:-1} duration=${duration:-1} hold_secs=1
  small_conns=20 many_conns=100 bulk_conns=2 bulk_inflight=2 hs_slots=10
  idle_conns=200 lat_conns=20 lat_rate=2000 http_conns=10
  out=${out:-$ROOT/target/compare/smoke-$kind$(date +%Y%m%d-%H%M%S)}
else
  # The idle hold is long enough that every proxy's steady idle state is
  # what gets sampled: wsproxy-fast frees handshake buffers and pipes once a
  # worker has not used them for a whole 2 s trim period (up to 4 s).
  reps=${reps:-3} duration=${duration:-5} hold_secs=10
  small_conns=50 many_conns=1000 bulk_conns=8 bulk_inflight=4 hs_slots=50
  idle_conns=5000 lat_conns=50 lat_rate=10000 http_conns=50
  out=${out:-$ROOT/target/compare/$kind$(date +%Y%m%d-%H%M%S)}
fi
bulk_size=65536
# The HTTP workloads' static file (bytes), and the API upstream's answer.
http_file_size=2048
api_body='{"id":42,"name":"wsproxy-fast","tags":["bench","http"],"ok":true}'
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
    floor-epoll | floor-uring) ! $tls || die "--tls has no $target target: the floor relays speak plaintext only" ;;
    *) die "unknown target '$target'" ;;
  esac
done
for workload in $workloads; do
  case "$workload" in
    idle | small | many | bulk | handshakes | latency | http-file | http-api) ;;
    resumed) $tls || die "the resumed workload resumes TLS sessions: it needs --tls" ;;
    *) die "unknown workload '$workload'" ;;
  esac
done

# Whether WORKLOAD is one of the keep-alive HTTP workloads (wrk), not a
# WebSocket one (wsbench).
is_http() {
  [[ $1 == http-* ]]
}

http=false ws=false
for workload in $workloads; do
  if is_http "$workload"; then http=true; else ws=true; fi
done
if $http; then
  [[ $duration =~ ^[1-9][0-9]*$ ]] || die "--duration must be whole seconds for the HTTP workloads (wrk -d)"
  # wrk offers what OpenSSL is configured to offer; that file names TLS 1.3
  # suites only (a TLS 1.2 suite is configured another way).
  ! $tls || [[ $tls_suite == TLS13_* ]] ||
    die "--tls-suite $tls_suite: the HTTP workloads take a TLS 1.3 suite (TLS13_...)"
fi

# Whether TARGET takes part in WORKLOAD: HAProxy serves no files, a file
# server has nothing behind it to go to directly, and the floor relays
# relay WebSocket messages only.
runs_pair() {
  if [[ $2 == floor-* ]]; then
    case "$1" in small | many | bulk | handshakes) return 0 ;; *) return 1 ;; esac
  fi
  [ "$1" != http-file ] || [ "$2" = nginx ] || [ "$2" = wsproxy-fast ]
}

# Each target runs as one instance for the WebSocket workloads (named after
# the target: nginx, haproxy, wsproxy-fast, direct) and one for the HTTP
# workloads (nginx-http, haproxy-http, wsproxy-fast-http, direct-http);
# nginx-api is the HTTP workloads' upstream.
read -ra target_list <<<"$targets"
count=${#target_list[@]}
# The instances to (re)start each repetition, and the pairs left out.
instances=() skipped=()
for target in "${target_list[@]}"; do
  for workload in $workloads; do
    if ! is_http "$workload" && runs_pair "$workload" "$target"; then
      instances+=("$target")
      break
    fi
  done
  for workload in $workloads; do
    if ! runs_pair "$workload" "$target"; then
      skipped+=("$workload/$target")
    elif is_http "$workload" && [[ " ${instances[*]} " != *" $target-http "* ]]; then
      instances+=("$target-http")
    fi
  done
done
[ ${#skipped[@]} -eq 0 ] ||
  note "not measured: ${skipped[*]} (HAProxy serves no files; behind a file server there is nothing to go to directly; the floor relays run small, many, bulk and handshakes only)"
[ ${#instances[@]} -gt 0 ] || die "nothing to measure: no target in '$targets' runs the workloads '$workloads'"

# --- tools, binaries, limits ---------------------------------------------------

command -v python3 >/dev/null 2>&1 || die "python3 is needed for the summary (apt-get install python3)"
tools=()
# nginx is also the HTTP workloads' upstream.
if [[ " $targets " == *" nginx "* ]] || $http; then tools+=(nginx); fi
[[ " $targets " == *" haproxy "* ]] && tools+=(haproxy)
$http && tools+=(wrk)
$plot && tools+=(matplotlib)
[ ${#tools[@]} -eq 0 ] || "$ROOT/scripts/setup.sh" "${tools[@]}"
export PATH="$PATH:/usr/sbin:/sbin"

mkdir -p "$out/logs" "$out/bin"
out=$(cd "$out" && pwd)
build_release
wsproxy_origin=${WSPROXY_BIN:-built from this tree}
cp "${WSPROXY_BIN:-$BIN/wsproxy-fast}" "$out/bin/wsproxy-fast"
cp "$BIN/wsbench" "$out/bin/"
for target in $targets; do
  [[ $target != floor-* ]] || cp "$BIN/$target" "$out/bin/"
done
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

# The HTTP workloads: the static file, the API's answer (to check bodies
# against), and over TLS what wrk and openssl s_client offer. OpenSSL reads
# OPENSSL_CONF when a program sets up TLS; the file replaces the system's
# configuration for those two programs only.
wrk_env=()
if $http; then
  mkdir -p "$out/www"
  # Printable and fixed: the same bytes in every run.
  head -c "$http_file_size" <(yes 'wsproxy-fast keep-alive benchmark: a static file of 2048 bytes.') \
    >"$out/www/2k.html"
  printf '%s' "$api_body" >"$out/api-body.json"
  if $tls; then
    cat >"$out/tls/openssl-client.cnf" <<EOF
# Written by scripts/compare.sh --tls: what wrk and openssl s_client offer.
openssl_conf = compare_init
[compare_init]
ssl_conf = compare_ssl
[compare_ssl]
system_default = compare_client
[compare_client]
MinProtocol = TLSv1.3
Ciphersuites = ${tls_suite/#TLS13_/TLS_}
EOF
    wrk_env=(env "OPENSSL_CONF=$out/tls/openssl-client.cnf")
  fi
fi

clk_tck=$(getconf CLK_TCK)
runs=$out/runs.jsonl
: >"$runs"
failures=0
started=$SECONDS

. "$(dirname "$0")/targets.sh"

# instance WORKLOAD TARGET: the instance that serves WORKLOAD for TARGET.
instance() {
  if is_http "$1"; then echo "$2-http"; else echo "$2"; fi
}

# The PIDs whose CPU counts as WORKLOAD's backend: the echo backend, the
# API upstream (nginx master and worker), or none (http-file).
backend_pids() {
  case "$1" in
    http-file) ;;
    http-api) target_pids nginx-api ;;
    *) echo "$ECHO_PID" ;;
  esac
}

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

# A JSON string holding the first line of TEXT, or null when TEXT is empty.
json_text() {
  local text=${1%%$'\n'*}
  [ -n "$text" ] || { echo null; return; }
  text=${text//\\/\\\\}
  printf '"%s"\n' "${text//\"/\\\"}"
}

# --- the HTTP workloads ------------------------------------------------------------

# The URL WORKLOAD requests from INSTANCE, and the file holding the body
# every answer must carry.
http_url() {
  local scheme=http
  $tls && scheme=https
  case "$1" in
    http-file) echo "$scheme://${ADDR[$2]}/2k.html" ;;
    http-api) echo "$scheme://${ADDR[$2]}/api/item" ;;
  esac
}

http_body() {
  case "$1" in
    http-file) echo "$out/www/2k.html" ;;
    http-api) echo "$out/api-body.json" ;;
  esac
}

# "ACCEPTS REQUESTS": connections the API upstream has accepted and
# requests it has served so far (nginx stub_status; this query counts as
# one of each).
api_counts() {
  local host=${API_ADDR%:*} port=${API_ADDR##*:}
  { exec 3<>"/dev/tcp/$host/$port" && printf 'GET /status HTTP/1.0\r\n\r\n' >&3 && cat <&3; } 2>/dev/null |
    awk '/^server accepts/ { getline; print $1, $3; exit }'
}

# What openssl s_client, offering what wrk offers, negotiates with ADDR, as
# JSON in wsbench's names (TLSv1_3, TLS13_AES_128_GCM_SHA256, X25519).
tls_params() {
  local said version suite group
  said=$("${wrk_env[@]}" openssl s_client -brief -connect "$1" -CAfile "$out/tls/ca.pem" \
    -verify_return_error </dev/null 2>&1) || return 1
  version=$(sed -n 's/^Protocol version: //p' <<<"$said")
  suite=$(sed -n 's/^Ciphersuite: //p' <<<"$said")
  group=$(sed -n 's/^Server Temp Key: \([^,]*\).*/\1/p' <<<"$said")
  [ -n "$version" ] && [ -n "$suite" ] || return 1
  [ "$version" != TLSv1.3 ] || suite=TLS13_${suite#TLS_}
  printf '{"version":"%s","suite":"%s","group":"%s"}\n' "${version/./_}" "$suite" "$group"
}

# wrk_problem RESULT BODY_BYTES: why wrk's RESULT (the line
# bench/compare/wrk-report.lua prints) fails the measurement; nothing if it
# does not. wrk counts a status of 400 or more as an error; an answer
# shorter than the body (a redirect, a 304) shows in the bytes read.
wrk_problem() {
  local result=$1 body=$2 requests bytes errors
  local re='^\{"requests":([0-9]+),"duration_us":[0-9]+,"bytes":([0-9]+),.*"errors":\{"connect":([0-9]+),"read":([0-9]+),"write":([0-9]+),"status":([0-9]+),"timeout":([0-9]+)\}'
  if [ -z "$result" ]; then
    echo "wrk printed no result"
  elif ! [[ $result =~ $re ]]; then
    echo "wrk's result is not as bench/compare/wrk-report.lua prints it"
  else
    requests=${BASH_REMATCH[1]} bytes=${BASH_REMATCH[2]}
    errors=$((BASH_REMATCH[3] + BASH_REMATCH[4] + BASH_REMATCH[5] + BASH_REMATCH[6] + BASH_REMATCH[7]))
    if [ "$requests" -eq 0 ]; then
      echo "no request completed"
    elif [ "$errors" -gt 0 ]; then
      echo "wrk counted $errors error(s): connect ${BASH_REMATCH[3]}, read ${BASH_REMATCH[4]}, write ${BASH_REMATCH[5]}, status >= 400 ${BASH_REMATCH[6]}, timeout ${BASH_REMATCH[7]}"
    elif [ "$bytes" -lt $((requests * body)) ]; then
      echo "$bytes bytes read for $requests responses: less than one $body-byte body each"
    fi
  fi
}

# --- one measurement ---------------------------------------------------------------

measure() {
  local rep=$1 workload=$2 target=$3 name url args pids=() backend=() rc=0 result gen problem='' line
  local cpu0 cpu1 sys0 sys1 backend0 backend1 gen0 gen1 rss0 rss1 rss_held=null backend_rss0 backend_rss_held=null
  local stdout=$out/logs/$rep-$workload-$target.json stderr=$out/logs/$rep-$workload-$target.err
  local body_bytes tls_json='' api0='' api1='' http_fields='' check_args=() a0 r0 a1 r1
  name=$(instance "$workload" "$target")
  mapfile -t pids < <(target_pids "$name")
  mapfile -t backend < <(backend_pids "$workload")
  if is_http "$workload"; then
    stdout=$out/logs/$rep-$workload-$target.txt
    url=$(http_url "$workload" "$name")
    args=(-t1 "-c$http_conns" "-d${duration}s" --latency -s "$ROOT/bench/compare/wrk-report.lua" "$url")
    body_bytes=$(wc -c <"$(http_body "$workload")")
    # Checked outside the sampled window: the answer, and what TLS says.
    ! $tls || check_args=(--ca "$out/tls/ca.pem")
    problem=$(python3 "$ROOT/bench/compare/http_check.py" "$url" "$(http_body "$workload")" \
      "${check_args[@]}" 2>&1 >/dev/null) || problem=${problem:-the check of $url failed}
    if $tls && [ -z "$problem" ]; then
      tls_json=$(tls_params "${ADDR[$name]}") || problem="openssl s_client could not complete a handshake with ${ADDR[$name]}"
    fi
    [ "$workload" != http-api ] || api0=$(api_counts)
  else
    url="$scheme://${ADDR[$name]}/$workload"
    read -ra args <<<"$(workload_args "$workload" "$url")"
  fi
  cpu0=$(cpu_ticks "${pids[@]}")
  sys0=$(sys_ticks "${pids[@]}")
  backend0=$(cpu_ticks "${backend[@]}")
  rss0=$(rss_kb "${pids[@]}")
  backend_rss0=$(rss_kb "${backend[@]}")
  gen0=$(child_ticks)
  local limit
  limit=$(awk -v d="$duration" -v h="$hold_secs" -v s="$run_slack" 'BEGIN { printf "%d", d + h + s }')
  if is_http "$workload"; then
    # wrk first opens and closes one connection to check the address (no
    # request, no TLS handshake: wsproxy-fast logs a failed handshake under
    # --tls); for direct it is one of the upstream connections counted.
    "${wrk_env[@]}" timeout -k 5 "$limit" wrk "${args[@]}" >"$stdout" 2>"$stderr" || rc=$?
  elif [ "$workload" = idle ]; then
    timeout -k 5 "$limit" "$BIN/wsbench" "${args[@]}" >"$stdout" 2>"$stderr" &
    gen=$!
    LIB_PIDS+=("$gen")
    if wait_line "$stderr" '^held [0-9]+' "$limit" "$gen"; then
      # Sample half way through the hold, all connections idle since.
      sleep "$(awk -v h="$hold_secs" 'BEGIN { print h / 2 }')"
      rss_held=$(rss_kb "${pids[@]}")
      backend_rss_held=$(rss_kb "${backend[@]}")
    fi
    wait "$gen" || rc=$?
    forget "$gen"
  else
    timeout -k 5 "$limit" "$BIN/wsbench" "${args[@]}" >"$stdout" 2>"$stderr" || rc=$?
  fi
  gen1=$(child_ticks)
  cpu1=$(cpu_ticks "${pids[@]}")
  sys1=$(sys_ticks "${pids[@]}")
  backend1=$(cpu_ticks "${backend[@]}")
  rss1=$(rss_kb "${pids[@]}")
  local up=true
  target_alive "$name" || up=false
  if is_http "$workload"; then
    [ "$workload" != http-api ] || api1=$(api_counts)
    result=$(grep -m 1 '^{"requests":' "$stdout" || true)
    [ -n "$problem" ] || problem=$(wrk_problem "$result" "$body_bytes")
    # Connections and requests the API upstream saw, less the second query.
    local upstream_conns=null upstream_requests=null
    if [ -n "$api0" ] && [ -n "$api1" ]; then
      read -r a0 r0 <<<"$api0"
      read -r a1 r1 <<<"$api1"
      upstream_conns=$((a1 - a0 - 1)) upstream_requests=$((r1 - r0 - 1))
    fi
    http_fields=",\"url\":\"$url\",\"conns\":$http_conns,\"body_bytes\":$body_bytes,\"upstream_connections\":$upstream_conns,\"upstream_requests\":$upstream_requests"
    [ -z "$tls_json" ] || http_fields+=",\"tls\":$tls_json"
    [ -z "$result" ] || result=${result%\}}$http_fields\}
    line=$(sed -n 's/^Requests\/sec: *//p' "$stdout" | head -n 1)
    line="${line:-?} requests/s; $(grep -m 1 '^ *99%' "$stdout" | tr -s ' ' | sed 's/^ //; s/%/% latency/')"
  else
    result=$(head -c 100000 "$stdout" | head -n 1)
    line=$(tail -n 1 "$stderr" | cut -c1-160)
  fi
  local proxy_fields='"proxy_cpu_ticks":null,"proxy_sys_ticks":null,"proxy_rss_kb_before":null,"proxy_rss_kb_held":null,"proxy_rss_kb_after":null'
  if [ ${#pids[@]} -gt 0 ]; then
    proxy_fields="\"proxy_cpu_ticks\":$((cpu1 - cpu0)),\"proxy_sys_ticks\":$((sys1 - sys0)),\"proxy_rss_kb_before\":$rss0,\"proxy_rss_kb_held\":$rss_held,\"proxy_rss_kb_after\":$rss1"
  fi
  local backend_fields='"backend_cpu_ticks":null,"backend_rss_kb_before":null,"backend_rss_kb_held":null'
  if [ ${#backend[@]} -gt 0 ]; then
    backend_fields="\"backend_cpu_ticks\":$((backend1 - backend0)),\"backend_rss_kb_before\":$backend_rss0,\"backend_rss_kb_held\":$backend_rss_held"
  fi
  printf '{"rep":%d,"workload":"%s","target":"%s","exit":%d,"proxy_alive":%s,"problem":%s,"clk_tck":%d,%s,%s,"gen_cpu_ticks":%d,"result":%s}\n' \
    "$rep" "$workload" "$target" "$rc" "$up" "$(json_text "$problem")" "$clk_tck" "$proxy_fields" \
    "$backend_fields" "$((gen1 - gen0))" "$(json_or_null "$result")" >>"$runs"
  printf '  %-11s %-13s %s\n' "$workload" "$target" "$line" >&2
  if [ "$rc" -ne 0 ] || ! $up || [ -n "$problem" ]; then
    failures=$((failures + 1))
    if ! $up; then
      note "$target died or lost a worker during $workload (rep $rep); its log: $out/logs/"
    elif [ -n "$problem" ]; then
      note "$workload against $target failed: $problem; see $stdout"
    else
      note "$workload against $target failed (exit $rc); see $stderr"
    fi
    tail_log "$stderr"
    $smoke && die "smoke run failed: $workload against $target"
    if ! $up; then
      stop_target "$name"
      start_target "$name"
    fi
  fi
}

# --- the run -------------------------------------------------------------------------

note "output in $out"
$ws && start_echo 2 "$out/logs"
if $http; then
  start_nginx nginx-api
  API_ADDR=${ADDR[nginx-api]}
fi
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host_nproc=$(nproc)"
  echo "cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "kernel=$(uname -r)"
  echo "rustc=$(rustc -V 2>/dev/null || echo unknown)"
  echo "wsproxy=$("$BIN/wsproxy-fast" --version)"
  echo "git=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  if [[ " $targets " == *" nginx "* ]] || $http; then echo "nginx=$(nginx -v 2>&1)"; fi
  $http && echo "wrk=$(wrk -v 2>&1 | head -n 1 | sed 's/ Copyright.*//')"
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
  [[ " $targets " != *" floor-"* ]] || echo "floor_workers=$FLOOR_WORKERS"
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
  echo "http_conns=$http_conns"
  echo "http_file_bytes=$http_file_size"
  echo "http_api_body_bytes=${#api_body}"
  echo "steal_ticks_start=$(awk '/^cpu / { print $9 }' /proc/stat)"
} >"$out/env.txt"

for ((rep = 1; rep <= reps; rep++)); do
  note "repetition $rep of $reps: (re)starting the proxies"
  for name in "${instances[@]}"; do
    stop_target "$name"
    start_target "$name"
  done
  for workload in $workloads; do
    for ((i = 0; i < count; i++)); do
      target=${target_list[$(((i + rep - 1) % count))]}
      runs_pair "$workload" "$target" || continue
      measure "$rep" "$workload" "$target"
    done
  done
done
for name in "${instances[@]}"; do stop_target "$name"; done
echo "steal_ticks_end=$(awk '/^cpu / { print $9 }' /proc/stat)" >>"$out/env.txt"
echo "elapsed_s=$((SECONDS - started))" >>"$out/env.txt"

python3 "$ROOT/bench/compare/summarize.py" "$out"
if $plot; then
  "$TOOLS_VENV/bin/python" "$ROOT/bench/compare/plot.py" "$out"
else
  note "--no-plot: skipped the PNGs"
fi
note "done in $((SECONDS - started)) s; raw results $runs, table $out/summary.md"
if [ "$failures" -gt 0 ]; then
  die "$failures measurement(s) failed; see the notes above and $out/logs/"
fi
