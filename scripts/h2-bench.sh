#!/usr/bin/env bash
# HTTP/2 benchmark: wsproxy-fast with `http2 = true` against nginx for
# static files, and WebSockets as HTTP/2 streams (RFC 8441) against
# WebSockets over HTTP/1.1 through wsproxy-fast, and against HAProxy's
# WebSockets over HTTP/2, on loopback over TLS.
#
#   scripts/h2-bench.sh              full run: 3 repetitions (about 2 minutes
#                                    on 2 cores, plus builds)
#   scripts/h2-bench.sh --smoke      every workload small and short, 1
#                                    repetition (seconds); exits non-zero if
#                                    any measurement fails (CI)
#
# Options: --reps N, --out DIR (default target/h2-bench/<date>).
#
# Workloads (full / --smoke):
#   static      h2load -n 200000 / 2000 -c 4 -m 10 -t 1, GET of a 2048-byte
#               file (the same bytes as scripts/compare.sh's http-file),
#               against wsproxy-fast (a static root on its http2 = true
#               listener) and nginx (bench/conf/nginx-h2.conf.in, `listen
#               ... ssl http2`), same certificate, same load: requests/s,
#               and proxy CPU per request; any failed or errored request
#               fails the measurement
#   ws-held     bench's h2ws: 1000 / 20 WebSockets to the echo backend
#               (wsbench echo-server) through a proxy: through wsproxy-fast
#               as streams of 10 / 2 HTTP/2 connections (target
#               wsproxy-fast-h2) or as many HTTP/1.1 connections
#               (wsproxy-fast-h1), and through HAProxy as HTTP/2 streams
#               (haproxy-h2: bench/conf/haproxy.cfg.in, 2 threads, `bind
#               ... ssl crt ... alpn h2,http/1.1`, RFC 8441 on by default);
#               held idle 2 s, then 100 / 10 messages of 32 bytes on each,
#               one outstanding per WebSocket: proxy RSS per WebSocket (at
#               `held`, less the fresh process's), and proxy CPU per message
#               (from `held` to the end, closes included)
#   ws-open     WebSocket handshakes for 5 / 1 s, 100 / 10 in flight: over
#               HTTP/2 (wsproxy-fast-h2, haproxy-h2) h2ws handshakes (10 / 2
#               connections, 10 / 5 streams at a time each: extended
#               CONNECT, one echo, close), over HTTP/1.1 wsbench handshakes
#               (TCP, a full TLS handshake, the upgrade, one echo, close):
#               handshakes/s and proxy CPU per handshake
#
# The proxies are started afresh for every measurement (so RSS starts from
# a fresh process) from binaries copied into OUT/bin: wsproxy-fast with
# --config OUT/wsproxy.toml (workers = 2; `/` the static root, `/ws` the
# echo backend), nginx with worker_processes 2, HAProxy with nbthread 2.
# The echo backend (2 threads) runs throughout. CPU is utime+stime of every
# process of the proxy (nginx's master and workers), from /proc/PID/stat,
# before and after; RSS is VmRSS.
#
# Needs nginx, HAProxy and nghttp2-client (h2load): scripts/setup.sh nginx
# haproxy nghttp2 installs them if missing. Raw results: one JSON line per
# measurement in OUT/runs.jsonl; OUT/summary.md holds the tables (medians
# over the repetitions, ratios), also printed at the end; OUT/env.txt the
# machine, versions and parameters.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmdline="scripts/h2-bench.sh${*:+ $*}"
smoke=false
reps=
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=true ;;
    --reps)
      reps=${2:?--reps needs a number}
      shift
      ;;
    --out)
      out=${2:?--out needs a directory}
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$1' (see $0 --help)" ;;
  esac
  shift
done

if $smoke; then
  reps=${reps:-1}
  static_requests=2000
  ws_conns=2 ws_streams=10 ws_messages=10
  open_conns=2 open_streams=5 open_secs=1
else
  reps=${reps:-3}
  static_requests=200000
  ws_conns=10 ws_streams=100 ws_messages=100
  open_conns=10 open_streams=10 open_secs=5
fi
ws_size=32
hold_secs=2
workers=2
out=${out:-$ROOT/target/h2-bench/$(date -u +%Y-%m-%d-%H%M%S)}

"$ROOT/scripts/setup.sh" nginx haproxy nghttp2 >&2
command -v h2load >/dev/null 2>&1 || die "h2load is missing: run scripts/setup.sh nghttp2"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || die "nginx is missing: run scripts/setup.sh nginx"
haproxy_bin=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$haproxy_bin" ] || die "HAProxy is missing: run scripts/setup.sh haproxy"

# wsproxy-fast, wsbench and h2ws (a wsproxy-bench binary).
build_release
mkdir -p "$out/bin" "$out/logs" "$out/www" "$out/nginx" "$out/haproxy"
out=$(cd "$out" && pwd)
cp "$BIN/wsproxy-fast" "$BIN/wsbench" "$BIN/h2ws" "$out/bin/"
"$ROOT/scripts/tls-cert.sh" "$out/tls" >/dev/null
# Printable and fixed: the same bytes as scripts/compare.sh's http-file.
head -c 2048 <(yes 'wsproxy-fast keep-alive benchmark: a static file of 2048 bytes.') >"$out/www/2k.html"

. "$ROOT/scripts/targets.sh"
clk_tck=$(getconf CLK_TCK)
runs=$out/runs.jsonl
: >"$runs"
failures=0
failures_before=0
started=$SECONDS

start_echo 2 "$out/logs"
note "echo backend $ECHO_ADDR"

cat >"$out/wsproxy.toml" <<EOF
# Written by scripts/h2-bench.sh.
workers = $workers

[[listener]]
address = "127.0.0.1:0"
tls = { cert = "$out/tls/cert.pem", key = "$out/tls/key.pem" }
http2 = true

[[server]]

[[server.route]]
location = "/"
root = "$out/www"

[[server.route]]
location = "/ws"
upstream = "$ECHO_ADDR"
EOF

# start_wsproxy_h2: wsproxy-fast on the configuration above; PROXY_ADDR,
# PROXY_PIDS.
start_wsproxy_h2() {
  local log
  log=$(mktemp "$out/logs/wsproxy.XXXXXX.log")
  spawn "$log" "$out/bin/wsproxy-fast" --config "$out/wsproxy.toml"
  wait_line "$log" ' main: listening on ' 10 "$SPAWNED" || die "wsproxy-fast did not start"
  PROXY_ADDR=$(sed -n 's/.* main: listening on //p' "$log" | head -n 1)
  PROXY_PIDS=("$SPAWNED")
}

# launch_nginx_h2 PORT: nginx on 127.0.0.1:PORT; returns as wait_port does.
launch_nginx_h2() {
  local dir=$out/nginx
  sed -e "s|@PREFIX@|$dir|g" -e "s|@LISTEN@|127.0.0.1:$1|g" -e "s|@ROOT@|$out/www|g" \
    -e "s|@CERT@|$out/tls/cert.pem|g" -e "s|@KEY@|$out/tls/key.pem|g" \
    -e "s|@WORKERS@|$workers|g" -e "s|@USER@|$(id -un)|g" \
    "$ROOT/bench/conf/nginx-h2.conf.in" >"$dir/nginx.conf"
  : >"$dir/error.log"
  spawn "$out/logs/nginx.log" "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  NGINX_PID=$SPAWNED
  PROXY_ADDR=127.0.0.1:$1
  wait_port "$PROXY_ADDR" 10 "$NGINX_PID" "$dir/error.log" "$out/logs/nginx.log"
}

start_nginx_h2() {
  start_on_free_port nginx launch_nginx_h2 || die "nginx did not start; see $out/nginx/error.log"
  # The master and its workers, once all the workers run.
  local deadline=$((SECONDS + 10))
  while :; do
    mapfile -t PROXY_PIDS < <(children_of "$NGINX_PID")
    [ "${#PROXY_PIDS[@]}" -lt "$workers" ] || break
    [ "$SECONDS" -lt "$deadline" ] || die "nginx started ${#PROXY_PIDS[@]} of $workers workers"
    sleep 0.05
  done
  PROXY_PIDS+=("$NGINX_PID")
}

# launch_haproxy_h2 PORT: HAProxy on 127.0.0.1:PORT, ALPN h2 and http/1.1;
# returns as wait_port does.
launch_haproxy_h2() {
  local dir=$out/haproxy
  sed -e "s#@PREFIX@#$dir#g" -e "s#@UPSTREAM@#$ECHO_ADDR#g" -e "s#@LISTEN@#127.0.0.1:$1#g" \
    -e "s#@BIND_TLS@#ssl crt $out/tls/haproxy.pem alpn h2,http/1.1#g" \
    "$ROOT/bench/conf/haproxy.cfg.in" >"$dir/haproxy.cfg"
  spawn "$out/logs/haproxy.log" "$haproxy_bin" -db -f "$dir/haproxy.cfg"
  PROXY_PIDS=("$SPAWNED")
  PROXY_ADDR=127.0.0.1:$1
  wait_port "$PROXY_ADDR" 10 "$SPAWNED" "$out/logs/haproxy.log"
}

start_target() {
  case "$1" in
    nginx) start_nginx_h2 ;;
    haproxy-h2) start_on_free_port haproxy launch_haproxy_h2 || die "HAProxy did not start; see $out/logs/haproxy.log" ;;
    *) start_wsproxy_h2 ;;
  esac
}

stop_target() {
  stop "${PROXY_PIDS[@]}"
  forget "${PROXY_PIDS[@]}"
}

# record REP WORKLOAD TARGET JSON-FIELDS: one line of runs.jsonl; "ok" is
# false when the measurement counted a failure (failures_before holds the
# count when it began).
record() {
  local ok=true
  [ "$failures" -eq "$failures_before" ] || ok=false
  echo "{\"rep\":$1,\"workload\":\"$2\",\"target\":\"$3\",\"ok\":$ok,\"clk_tck\":$clk_tck,$4}" >>"$runs"
}

# json_of FILE: the one JSON object a load tool printed, or null.
json_of() {
  local text
  text=$(head -n 1 "$1" 2>/dev/null || true)
  [[ $text == "{"*"}" ]] && echo "$text" || echo null
}

# failed WHAT: counts a failed measurement and says so.
failed() {
  failures=$((failures + 1))
  note "FAILED: $*"
}

measure_static() {
  local rep=$1 target=$2 log cpu0 cpu1 report rps done_ succeeded bad
  failures_before=$failures
  start_target "$target"
  log=$out/logs/static-$target-$rep.txt
  cpu0=$(cpu_ticks "${PROXY_PIDS[@]}")
  if ! h2load -n "$static_requests" -c 4 -m 10 -t 1 "https://$PROXY_ADDR/2k.html" >"$log" 2>&1; then
    failed "static $target: h2load exited non-zero (see $log)"
  fi
  cpu1=$(cpu_ticks "${PROXY_PIDS[@]}")
  report=$(grep '^requests:' "$log" || true)
  rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$log")
  done_=$(sed -n 's/.* \([0-9]*\) done,.*/\1/p' <<<"$report")
  succeeded=$(sed -n 's/.* \([0-9]*\) succeeded,.*/\1/p' <<<"$report")
  bad=$(sed -n 's/.* \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/\1 \2 \3/p' <<<"$report")
  if ! grep -q '^Application protocol: h2$' "$log"; then
    failed "static $target: h2load did not speak h2 (see $log)"
  fi
  if [ "$bad" != "0 0 0" ] || [ "${succeeded:-0}" != "$static_requests" ]; then
    failed "static $target: $report"
  fi
  alive "${PROXY_PIDS[0]}" || failed "static $target: the proxy died"
  record "$rep" static "$target" "\"requests\":${succeeded:-0},\"requests_per_s\":${rps:-null},\"proxy_cpu_ticks\":$((cpu1 - cpu0)),\"proxy_rss_kb_after\":$(rss_kb "${PROXY_PIDS[@]}")"
  note "static $target: ${rps:-?} req/s, $((cpu1 - cpu0)) CPU ticks for ${succeeded:-0} requests"
  stop_target
}

measure_held() {
  local rep=$1 target=$2 log json rss0 rss_held cpu_held cpu_end pid flags=()
  [ "$target" = wsproxy-fast-h1 ] && flags=(--http1)
  failures_before=$failures
  start_target "$target"
  log=$out/logs/ws-held-$target-$rep.log
  json=$out/logs/ws-held-$target-$rep.json
  rss0=$(rss_kb "${PROXY_PIDS[@]}")
  "$out/bin/h2ws" run "${flags[@]}" --url "https://localhost:${PROXY_ADDR##*:}/ws" --ca "$out/tls/ca.pem" \
    --conns "$ws_conns" --streams "$ws_streams" --hold "$hold_secs" --messages "$ws_messages" \
    --size "$ws_size" >"$json" 2>"$log" &
  pid=$!
  LIB_PIDS+=("$pid")
  if ! wait_line "$log" '^held ' 60 "$pid"; then
    wait "$pid" || true
    forget "$pid"
    failed "ws-held $target: the WebSockets did not open (see $log)"
    stop_target
    return
  fi
  rss_held=$(rss_kb "${PROXY_PIDS[@]}")
  cpu_held=$(cpu_ticks "${PROXY_PIDS[@]}")
  wait "$pid" || failed "ws-held $target: $(tail -n 1 "$log")"
  forget "$pid"
  cpu_end=$(cpu_ticks "${PROXY_PIDS[@]}")
  alive "${PROXY_PIDS[0]}" || failed "ws-held $target: the proxy died"
  record "$rep" ws-held "$target" "\"h2ws\":$(json_of "$json"),\"proxy_rss_kb_before\":$rss0,\"proxy_rss_kb_held\":$rss_held,\"proxy_cpu_ticks\":$((cpu_end - cpu_held))"
  note "ws-held $target: RSS $rss0 -> $rss_held KiB; $((cpu_end - cpu_held)) CPU ticks for the messages; $(tail -n 1 "$log")"
  stop_target
}

measure_open() {
  local rep=$1 target=$2 log json cpu0 cpu1 rc=0
  failures_before=$failures
  start_target "$target"
  log=$out/logs/ws-open-$target-$rep.log
  json=$out/logs/ws-open-$target-$rep.json
  cpu0=$(cpu_ticks "${PROXY_PIDS[@]}")
  if [ "$target" = wsproxy-fast-h1 ]; then
    "$out/bin/wsbench" handshakes --url "wss://localhost:${PROXY_ADDR##*:}/ws" --ca "$out/tls/ca.pem" \
      --conns $((open_conns * open_streams)) --duration "$open_secs" --json >"$json" 2>"$log" || rc=$?
  else
    "$out/bin/h2ws" handshakes --url "https://localhost:${PROXY_ADDR##*:}/ws" --ca "$out/tls/ca.pem" \
      --conns "$open_conns" --streams "$open_streams" --duration "$open_secs" >"$json" 2>"$log" || rc=$?
  fi
  cpu1=$(cpu_ticks "${PROXY_PIDS[@]}")
  [ "$rc" -eq 0 ] || failed "ws-open $target: exit $rc: $(tail -n 1 "$log")"
  alive "${PROXY_PIDS[0]}" || failed "ws-open $target: the proxy died"
  record "$rep" ws-open "$target" "\"load\":$(json_of "$json"),\"proxy_cpu_ticks\":$((cpu1 - cpu0))"
  note "ws-open $target: $(tail -n 1 "$log")"
  stop_target
}

{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host_nproc=$(nproc)"
  echo "cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "kernel=$(uname -r)"
  echo "rustc=$(rustc -V 2>/dev/null || echo unknown)"
  echo "wsproxy=$("$out/bin/wsproxy-fast" --version)"
  echo "git=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "nginx=$("$nginx_bin" -v 2>&1)"
  echo "nginx_openssl=$("$nginx_bin" -V 2>&1 | sed -n 's/^built with //p' | head -n 1)"
  echo "haproxy=$("$haproxy_bin" -v | head -n 1)"
  echo "haproxy_openssl=$("$haproxy_bin" -vv | sed -n 's/^Running on OpenSSL version : //p' | head -n 1)"
  echo "h2load=$(h2load --version | head -n 1)"
  echo "rustls=$(awk '/^name = "rustls"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock")"
  echo "cert=$(openssl x509 -in "$out/tls/cert.pem" -noout -text | sed -n 's/^ *\(ASN1 OID\|NIST CURVE\): //p' | head -n 1) ECDSA"
  echo "command=$cmdline"
  echo "mode=$($smoke && echo smoke || echo full)"
  echo "reps=$reps"
  echo "workers=$workers"
  echo "static=h2load -n $static_requests -c 4 -m 10 -t 1, 2048 bytes"
  echo "ws_held=${ws_conns}x${ws_streams} WebSockets, hold ${hold_secs} s, ${ws_messages} messages x ${ws_size} B each"
  echo "ws_open=${open_conns}x${open_streams} in flight for ${open_secs} s"
  echo "load_average_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "steal_ticks_start=$(awk '/^cpu / { print $9 }' /proc/stat)"
} >"$out/env.txt"

for ((rep = 1; rep <= reps; rep++)); do
  note "repetition $rep of $reps"
  # The order of the targets alternates from one repetition to the next.
  if ((rep % 2)); then pair=(wsproxy-fast nginx) ws=(wsproxy-fast-h2 wsproxy-fast-h1 haproxy-h2); else
    pair=(nginx wsproxy-fast) ws=(haproxy-h2 wsproxy-fast-h1 wsproxy-fast-h2)
  fi
  for target in "${pair[@]}"; do measure_static "$rep" "$target"; done
  for target in "${ws[@]}"; do measure_held "$rep" "$target"; done
  for target in "${ws[@]}"; do measure_open "$rep" "$target"; done
done
echo "load_average_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/env.txt"
echo "steal_ticks_end=$(awk '/^cpu / { print $9 }' /proc/stat)" >>"$out/env.txt"
echo "elapsed_s=$((SECONDS - started))" >>"$out/env.txt"

python3 "$ROOT/bench/h2/summarize.py" "$out"
note "done in $((SECONDS - started)) s; raw results $runs, table $out/summary.md"
[ "$failures" -eq 0 ] || die "$failures measurement(s) failed; see the notes above and $out/logs/"
