#!/usr/bin/env bash
# The demo: a WebSocket echo backend, wsproxy-fast in front of it, and one
# message through the proxy. Needs only the Rust toolchain.
#
#   scripts/demo.sh          keep the proxy running afterwards (Ctrl-C stops it)
#   scripts/demo.sh --once   exit after the message went through (CI)
#
# Addresses: DEMO_PROXY (default 127.0.0.1:8080), DEMO_BACKEND (127.0.0.1:9000).
# With --once both default to port 0: each server takes a port the kernel
# gives it and prints it ("listening on"), so a demo run by another test
# run on the same machine, or anything else on 8080 or 9000, is no matter.
set -euo pipefail
cd "$(dirname "$0")/.."

once=false
[ "${1:-}" = "--once" ] && once=true
if $once; then
  proxy_addr=${DEMO_PROXY:-127.0.0.1:0}
  backend_addr=${DEMO_BACKEND:-127.0.0.1:0}
else
  proxy_addr=${DEMO_PROXY:-127.0.0.1:8080}
  backend_addr=${DEMO_BACKEND:-127.0.0.1:9000}
fi

echo "demo: building (first time: about a minute)…"
cargo build --release --quiet -p wsproxy-fast -p wsproxy-bench
bin=target/release

logs=$(mktemp -d "${TMPDIR:-/tmp}/demo.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$logs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# listening_addr NAME LOG PID: waits (10 s at most) until the server PID
# has printed "listening on ADDR" into LOG, and prints ADDR. Only whole
# lines count: wsbench writes that line in pieces, the newline last.
listening_addr() {
  local name=$1 log=$2 pid=$3 addr lines
  for _ in $(seq 200); do
    lines=$(wc -l <"$log")
    if [ "$lines" -gt 0 ]; then
      addr=$(sed -n "1,${lines}s/.*listening on \([^ ]*\).*/\1/p" "$log")
      addr=${addr%%$'\n'*}
      if [ -n "$addr" ]; then echo "$addr"; return 0; fi
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "demo: $name did not start (is its address taken? set DEMO_PROXY / DEMO_BACKEND)" >&2
  return 1
}

# Both servers print to the terminal as well as to their logs.
: >"$logs/backend.log"
: >"$logs/proxy.log"
"$bin/wsbench" echo-server --listen "$backend_addr" > >(tee "$logs/backend.log") 2>&1 &
pids+=($!)
backend_addr=$(listening_addr "the echo backend" "$logs/backend.log" "${pids[0]}")

"$bin/wsproxy-fast" --listen "$proxy_addr" --upstream "$backend_addr" --workers auto \
  > >(tee "$logs/proxy.log") 2>&1 &
pids+=($!)
proxy_addr=$(listening_addr wsproxy-fast "$logs/proxy.log" "${pids[1]}")

echo "demo: sending a message to ws://$proxy_addr/demo"
reply=$("$bin/wsbench" send --url "ws://$proxy_addr/demo" "hello through wsproxy-fast")
echo "demo: the echo backend answered through the proxy: $reply"
[ "$reply" = "hello through wsproxy-fast" ] || { echo "demo: unexpected reply" >&2; exit 1; }

if ! $once; then
  echo "demo: proxy on ws://$proxy_addr -> echo backend on $backend_addr; Ctrl-C to stop"
  echo "demo: try it:  $bin/wsbench send --url ws://$proxy_addr/ 'your text'"
  wait "${pids[1]}"
fi
