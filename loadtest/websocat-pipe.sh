#!/usr/bin/env bash
# websocat throughput pipe: streams MB megabytes of random bytes through the
# proxy as binary messages on one connection, checks the echo's SHA-256
# against the input's, and reports MB/s.
#
#   loadtest/websocat-pipe.sh [--short] [--tls] [ws[s]://HOST:PORT/PATH]
#
# MB is 512 (--short: 16; MB overrides). Without a URL it starts its own echo
# backend and wsproxy-fast (see loadtest/common.sh; --tls: over wss://,
# websocat --insecure). Prints one line
#   websocat-pipe: 512 MiB through URL and back in S s: X MiB/s each way, sha256 ok
# The figure is one websocat process, one connection, both directions at
# once on the same machine: websocat itself (64 KiB messages) is usually the
# limit, so compare it against the same command without the proxy
# (URL=ws://ECHO_ADDR/), not against the wsbench figures. A checksum
# mismatch, a websocat failure or a missing websocat exits 1.
set -euo pipefail
. "$(dirname "$0")/common.sh"
loadtest_args "$@"
websocat=$(require_tool websocat)
# wss://: the test certificate is self-made; skip its checks.
tls_flags=()
! $TLS || tls_flags=(--insecure)

mb=${MB:-$($SHORT && echo 16 || echo 512)}
scratch_dir work

head -c "$((mb * 1024 * 1024))" /dev/urandom >"$work/sent"
want=$(sha256sum <"$work/sent" | cut -d' ' -f1)
start=$EPOCHREALTIME
# -b: stdin goes out as binary messages (up to 64 KiB each) and received
# payloads are written out as they are; at EOF websocat sends Close and the
# echo backend answers it after the last echo.
got=$(timeout 300 "$websocat" "${tls_flags[@]}" --binary "$TARGET_URL" <"$work/sent" | sha256sum | cut -d' ' -f1)
status=${PIPESTATUS[0]}
elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
[ "$status" -eq 0 ] || die "websocat failed (exit $status) against $TARGET_URL"
check_own_proxy
[ "$got" = "$want" ] || die "the echo's SHA-256 $got differs from the input's $want"
rate=$(awk -v m="$mb" -v s="$elapsed" 'BEGIN { printf "%.1f", m / s }')
echo "websocat-pipe: $mb MiB through $TARGET_URL and back in $elapsed s: $rate MiB/s each way, sha256 ok"
