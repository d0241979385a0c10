#!/usr/bin/env bash
# Browser check: headless Chromium loads a single-page app over https
# through wsproxy-fast, as a person's browser would, and the proxy must
# serve it on a browser's usual handful of kept-alive connections.
#
#   scripts/browser.sh            over HTTP/1.1
#   scripts/browser.sh --http2    over HTTP/2 (RFC 9113), the WebSocket
#                                 over HTTP/2 too (RFC 8441)
#
# Starts, on loopback ports the kernel picks:
#   - the echo backend (wsbench echo-server), upstream of the /ws route;
#   - scripts/browser/api.py, a keep-alive HTTP/1.1 JSON API, upstream of
#     the /api/ route;
#   - wsproxy-fast with scripts/browser/wsproxy.toml: one TLS listener
#     (a certificate from scripts/tls-cert.sh for localhost) serving the
#     static app in scripts/browser/site/ (try_files to index.html), /api/
#     and /ws, with /metrics on an admin port.
# Then scripts/browser/check.py (selenium, in the tools venv) drives
# /usr/bin/chromedriver and Chromium to https://localhost:PORT/. The page
# fetches 25 assets (3 stylesheets, 7 JavaScript modules, 10 images, 4 API
# answers and a JSON file) and echoes a message through wss://localhost:PORT/ws.
# It passes when the page shows the echo, every asset loaded (the page's
# own count and the browser's resource timing), and the proxy accepted at
# most MAX_CONNECTIONS (8) client connections for the page: a browser
# opens up to 6 per origin plus one for the WebSocket, where one request
# per connection would need 27.
#
# --http2: the listener has http2 = true, so ALPN offers h2. It passes when
# the page and every asset came over h2 (resource timing's nextHopProtocol),
# the echo came back, and the proxy's /metrics show the WebSocket as an
# HTTP/2 stream (wsproxy_h2_streams_total{kind="websocket"} rose): Chromium
# opens a WebSocket over an HTTP/2 connection only when the server's
# SETTINGS enable extended CONNECT, and otherwise on a connection of its
# own over HTTP/1.1. At most MAX_CONNECTIONS (2 with --http2) client
# connections: one carries everything.
#
# WSPROXY_BIN names another wsproxy-fast binary. $WSPROXY_FLAGS does not
# apply: the proxy's settings are all in its configuration file.
#
# Prints the figures and exits 0; anything missing (Chromium, chromedriver,
# selenium: scripts/setup.sh chromium selenium installs them) or any check
# failing exits 1, with the logs kept in the directory it names.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

http2=false
case "${1:-}" in
  "") ;;
  --http2) http2=true ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown argument '$1' (usage: $0 [--http2])" ;;
esac

if [ "$http2" = true ]; then
  # One HTTP/2 connection carries the page, its assets and the WebSocket;
  # the second allows for a connection Chromium opens ahead of need.
  MAX_CONNECTIONS=${MAX_CONNECTIONS:-2}
  protocol=h2
else
  MAX_CONNECTIONS=${MAX_CONNECTIONS:-8}
  protocol=http/1.1
fi
# Seconds each of the page load, the echo and the assets may take.
PAGE_TIMEOUT=30
# Seconds for the whole browser run: startup, the page, shutdown.
CHECK_TIMEOUT=180
here=$ROOT/scripts/browser

# Fail before starting anything when the browser side is missing: this
# check never skips.
for tool in /usr/bin/chromium /usr/bin/chromedriver; do
  [ -x "$tool" ] || die "$tool is missing: run scripts/setup.sh chromium"
done
python=$TOOLS_VENV/bin/python
[ -x "$python" ] && "$python" -c 'import selenium' 2>/dev/null ||
  die "selenium is not installed in $TOOLS_VENV: run scripts/setup.sh selenium"

work=$(mktemp -d "${TMPDIR:-/tmp}/browser.XXXXXX")
browser_exit() {
  local status=$?
  lib_cleanup
  if [ "$status" -eq 0 ]; then
    rm -rf "$work"
  else
    note "logs kept in $work (wsproxy.log, api.log, echo.log, chromedriver.log, page.png)"
  fi
  return "$status"
}
trap browser_exit EXIT

build_release

"$ROOT/scripts/tls-cert.sh" "$work/tls" >/dev/null
# What Chromium is told to accept instead of a trusted CA (see check.py):
# the base64 SHA-256 of the certificate's public key.
spki=$(openssl x509 -in "$work/tls/cert.pem" -pubkey -noout |
  openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)

spawn "$work/echo.log" "$BIN/wsbench" echo-server --listen 127.0.0.1:0 --threads 2
echo_pid=$SPAWNED
wait_line "$work/echo.log" '^listening on ' 10 "$echo_pid" || die "the echo backend did not start"
echo_addr=$(sed -n 's/^listening on //p' "$work/echo.log" | head -n 1)

spawn "$work/api.log" python3 "$here/api.py"
api_pid=$SPAWNED
wait_line "$work/api.log" '^listening on ' 10 "$api_pid" || die "the API upstream did not start"
api_addr=$(sed -n 's/^listening on //p' "$work/api.log" | head -n 1)

sed -e "s|@CERT_DIR@|$work/tls|g" -e "s|@SITE@|$here/site|g" -e "s|@HTTP2@|$http2|g" \
  -e "s|@API@|$api_addr|g" -e "s|@ECHO@|$echo_addr|g" "$here/wsproxy.toml" >"$work/wsproxy.toml"
spawn "$work/wsproxy.log" "${WSPROXY_BIN:-$BIN/wsproxy-fast}" --config "$work/wsproxy.toml" --log-level debug
proxy_pid=$SPAWNED
wait_line "$work/wsproxy.log" ' main: admin endpoints on ' 10 "$proxy_pid" || die "wsproxy-fast did not start"
proxy_addr=$(sed -n 's/.* main: listening on //p' "$work/wsproxy.log" | head -n 1)
metrics_url=$(sed -n 's|.* main: admin endpoints on \(http://[^ ,]*/metrics\)[ ,].*|\1|p' "$work/wsproxy.log" | head -n 1)
[ -n "$proxy_addr" ] && [ -n "$metrics_url" ] || die "no listening or admin address in $work/wsproxy.log"
# The certificate names localhost; Chromium pools connections per host and
# port, so the page, its assets, the API and the WebSocket share this origin.
url=https://localhost:${proxy_addr##*:}/
note "echo backend $echo_addr, API $api_addr, wsproxy-fast $url (metrics $metrics_url)"

rc=0
timeout "$CHECK_TIMEOUT" "$python" "$here/check.py" --url "$url" --metrics "$metrics_url" \
  --spki "$spki" --site "$here/site" --max-connections "$MAX_CONNECTIONS" --protocol "$protocol" \
  --timeout "$PAGE_TIMEOUT" --out "$work" || rc=$?
[ "$rc" -ne 124 ] || note "the browser run took more than $CHECK_TIMEOUT s"
alive "$proxy_pid" || die "wsproxy-fast died during the page load"

# How the proxy reused its upstream connections for the API requests.
api_requests=$(grep -c '^api: GET ' "$work/api.log" || true)
api_connections=$(sed -n 's/^api: GET .* connection=\([0-9]*\) .*/\1/p' "$work/api.log" | sort -u | wc -l)
note "API upstream: $api_requests requests on $api_connections upstream connections"
[ "$rc" -eq 0 ] || die "the browser check failed (exit $rc)"
echo "browser: ok: Chromium loaded the app over $url ($protocol) through wsproxy-fast"
