#!/usr/bin/env bash
# The demo: a WebSocket echo backend, wsproxy-fast in front of it, and one
# message through the proxy. Needs only the Rust toolchain.
#
#   scripts/demo.sh          keep the proxy running afterwards (Ctrl-C stops it)
#   scripts/demo.sh --once   exit after the message went through (CI)
#
# Addresses: DEMO_PROXY (default 127.0.0.1:8080), DEMO_BACKEND (127.0.0.1:9000).
set -euo pipefail
cd "$(dirname "$0")/.."

once=false
[ "${1:-}" = "--once" ] && once=true
proxy_addr=${DEMO_PROXY:-127.0.0.1:8080}
backend_addr=${DEMO_BACKEND:-127.0.0.1:9000}

echo "demo: building (first time: about a minute)…"
cargo build --release --quiet -p wsproxy-fast -p wsproxy-bench
bin=target/release

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Waits until ADDR accepts connections, or fails after 10 s.
wait_for() {
  local host=${1%:*} port=${1##*:}
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "demo: nothing is listening on $1" >&2
  return 1
}

"$bin/wsbench" echo-server --listen "$backend_addr" &
pids+=($!)
wait_for "$backend_addr"

"$bin/wsproxy-fast" --listen "$proxy_addr" --upstream "$backend_addr" --workers auto &
pids+=($!)
wait_for "$proxy_addr"

echo "demo: sending a message to ws://$proxy_addr/demo"
reply=$("$bin/wsbench" send --url "ws://$proxy_addr/demo" "hello through wsproxy-fast")
echo "demo: the echo backend answered through the proxy: $reply"
[ "$reply" = "hello through wsproxy-fast" ] || { echo "demo: unexpected reply" >&2; exit 1; }

if ! $once; then
  echo "demo: proxy on ws://$proxy_addr -> echo backend on $backend_addr; Ctrl-C to stop"
  echo "demo: try it:  $bin/wsbench send --url ws://$proxy_addr/ 'your text'"
  wait "${pids[1]}"
fi
