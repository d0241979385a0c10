#!/usr/bin/env bash
# websocat smoke test: sends N numbered text lines through the proxy on one
# connection and checks that every one comes back, in order, byte for byte.
#
#   loadtest/websocat-smoke.sh [--short] [--tls] [ws[s]://HOST:PORT/PATH]
#
# N is 10000 (--short: 200; LINES overrides). Without a URL it starts its
# own echo backend and wsproxy-fast (see loadtest/common.sh; --tls: over
# wss://, websocat --insecure). Prints one line
#   websocat-smoke: N/N lines echoed in S s through URL
# and exits 0; a missing, reordered or altered echo, a websocat failure or a
# missing websocat exits 1.
set -euo pipefail
. "$(dirname "$0")/common.sh"
loadtest_args "$@"
websocat=$(require_tool websocat)
# wss://: the test certificate is self-made; skip its checks.
tls_flags=()
! $TLS || tls_flags=(--insecure)

lines=${LINES:-$($SHORT && echo 200 || echo 10000)}
scratch_dir work

# Each line: its number and a fixed tail, so a lost or duplicated line shows.
awk -v n="$lines" 'BEGIN { for (i = 1; i <= n; i++) printf "line %06d of the websocat smoke test\n", i }' >"$work/sent"
start=$EPOCHREALTIME
# websocat sends each line as a text message; at EOF it sends Close, and the
# echo backend answers Close only after every echo, so all come back first.
timeout 60 "$websocat" "${tls_flags[@]}" --text "$TARGET_URL" <"$work/sent" >"$work/received" ||
  die "websocat failed (exit $?) against $TARGET_URL"
elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
check_own_proxy

got=$(wc -l <"$work/received")
if ! cmp -s "$work/sent" "$work/received"; then
  note "echoes differ from what was sent ($got of $lines lines came back); first difference:"
  diff "$work/sent" "$work/received" | head -n 6 >&2 || true
  exit 1
fi
echo "websocat-smoke: $got/$lines lines echoed in $elapsed s through $TARGET_URL"
