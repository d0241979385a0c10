#!/usr/bin/env bash
# Autobahn|Testsuite through wsproxy-fast: the real crossbario fuzzer
# (wstest 25.10.1) runs every case once straight against a known-good peer
# and once through wsproxy-fast per relay mode, and the per-case results
# must be identical. The proxy is meant to be invisible to WebSocket, so
# any difference is a proxy bug (it changed bytes, closed early, lost a
# close frame, ...), whatever the verdict itself.
#
#   scripts/autobahn.sh                 the 301 cases without compression
#                                       (all but 12.x and 13.x; CI)
#   scripts/autobahn.sh --full          all 517 cases, permessage-deflate
#                                       (12.x, 13.x) included
#   scripts/autobahn.sh --modes copy,tls    only these proxy modes
#
# Options: --modes LIST (comma-separated, of copy, splice, tls; default all
# three), --cases LIST (comma-separated wstest case IDs or patterns, e.g.
# 5.*,9.3.2, to rerun a few; the exclusions still apply; wstest matches a
# pattern with * as a prefix, so 12.*.1 takes 12.1.10-12.1.18 too), --jobs N (case sets run at
# once, default 2), --out DIR (default target/autobahn/<date>[-full]).
#
# Two directions; in each, one case set (every case once) direct and one
# per mode:
#
#   fuzzingclient   `wstest -m fuzzingclient` -> [wsproxy-fast] -> echo.js
#                   (node, ws 8.23.0, scripts/autobahn/): the upstream is
#                   tested through the proxy.
#   fuzzingserver   client.js -> [wsproxy-fast] -> `wstest -m fuzzingserver`:
#                   the client is tested through the proxy (client.js
#                   fetches /runCase?case=N&agent=MODE for every case,
#                   echoing each message, then /updateReports).
#
# Modes: copy = `--relay copy`, splice = `--relay splice`, tls = a TLS
# listener (--tls-cert/--tls-key, a certificate from scripts/tls-cert.sh;
# relay auto, which copies under TLS). wstest 25.10.1 connects to wss://
# without verifying the certificate (Twisted's ClientContextFactory when the
# spec names no "hostname"); client.js trusts the run's CA.
#
# Every case set has its own peers (echo.js or wstest fuzzingserver) and
# its own wsproxy-fast, and at most --jobs sets run at once: several cases
# judge by the clock (6.x give the echo 0.5 s, a closing handshake gets
# 1 s), and one wstest fuzzingserver serving four clients, or eight sets on
# two cores, let a 9.x case's seconds of Python starve another set's timer
# (seen: 6.23.4 FAILED, 9.3.2 UNCLEAN, direct as well as proxied).
#
# Ports: echo.js and wsproxy-fast listen on port 0 and say which port they
# got. wstest fuzzingserver must be told its port, from free_port
# (scripts/lib.sh: outside the ephemeral port range, free on 0.0.0.0); if
# the port is taken all the same by the time wstest binds it, the case set
# prints "port N was taken at start; retrying on M" and starts wstest once
# more. Any other start failure fails the case set.
#
# compare.py (scripts/autobahn/) compares each case's verdict (behavior,
# behaviorClose, close code) and details (what wstest received, the close
# code it sent, clean TCP close, whether it had to drop the connection)
# with direct's, and prints per mode: cases run, identical, different
# verdicts, different details, missing, then each differing case with both
# sides. The script exits non-zero on any difference, a missing case or
# report, a wstest or client run failing or running over its time limit, a
# proxy dying or logging a warning or error, or a peer dying. The reports
# stay in OUT (wstest's HTML as well: OUT/DIRECTION/AGENT/reports/index.html).
#
# Tools: scripts/setup.sh autobahn (wstest in a CPython 2.7 virtualenv, ws
# from scripts/autobahn/package-lock.json; both under target/tools/), run
# first by this script. About 4 minutes on 2 busy cores for the default
# set (each case set 36 s alone, ~55 s two at a time, 9.x most of it);
# --full takes hours there (12.x and 13.x compress in Python and node).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

full=false
modes=copy,splice,tls
cases='*'
jobs=2
out=
case_set=
while [ $# -gt 0 ]; do
  case "$1" in
    --full) full=true ;;
    --modes) modes=$2; shift ;;
    --cases) cases=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --out) out=$2; shift ;;
    # Internal: run one case set (DIRECTION AGENT) into --out, then exit.
    --case-set) case_set="$2 $3"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
IFS=, read -ra mode_list <<<"$modes"
[ ${#mode_list[@]} -gt 0 ] || die "--modes needs at least one of copy, splice, tls"
for mode in "${mode_list[@]}"; do
  case "$mode" in
    copy | splice | tls) ;;
    *) die "unknown mode '$mode' in --modes (known: copy, splice, tls)" ;;
  esac
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive integer"
[[ $cases =~ ^[0-9.*]+(,[0-9.*]+)*$ ]] || die "--cases takes case patterns like 1.*,9.3.2 (got '$cases')"
# As a JSON array: ["1.*", "9.3.2"].
cases_json="[\"${cases//,/\", \"}\"]"
if $full; then
  exclude='[]'
  # The longest one case set of all 517 may take (about 10 minutes alone).
  run_limit=2400
  out=${out:-$ROOT/target/autobahn/$(date +%Y%m%d-%H%M%S)-full}
else
  exclude='["12.*", "13.*"]'
  # The longest one case set of the 301 may take (about 40 s alone).
  run_limit=600
  out=${out:-$ROOT/target/autobahn/$(date +%Y%m%d-%H%M%S)}
fi

WSTEST=$ROOT/target/tools/autobahn-venv/bin/wstest
export NODE_PATH=$ROOT/target/tools/autobahn-node/node_modules

# launch_fuzzingserver PORT: wstest fuzzingserver on PORT (it binds
# 0.0.0.0), its spec in the case set's $dir; returns as wait_port does.
launch_fuzzingserver() {
  cat >"$dir/spec.json" <<EOF || return 1
{
  "url": "ws://127.0.0.1:$1",
  "outdir": "$dir/reports",
  "cases": $cases_json,
  "exclude-cases": $exclude,
  "exclude-agent-cases": {}
}
EOF
  # wstest writes nothing but its reports (where the spec says); run it in
  # its directory anyway.
  spawn "$dir/wstest.log" bash -c 'cd "$1" && exec "$2" -m fuzzingserver -s "$3" --webport 0' \
    _ "$dir" "$WSTEST" "$dir/spec.json"
  wait_port "127.0.0.1:$1" 20 "$SPAWNED" "$dir/wstest.log"
}

# run_case_set DIRECTION AGENT: one case set into OUT/DIRECTION/AGENT/: its
# peer, its proxy (AGENT = copy, splice or tls; none for direct), the run,
# then the checks that the proxy and the peer lived through it.
run_case_set() {
  local direction=$1 agent=$2 dir peer_pid upstream url tool_pid rc=0 ok=true
  dir=$out/$direction/$agent
  mkdir -p "$dir"
  case "$direction" in
    fuzzingclient)
      spawn "$dir/echo.log" node "$ROOT/scripts/autobahn/echo.js" 0
      peer_pid=$SPAWNED
      wait_line "$dir/echo.log" '^listening on ' 10 "$peer_pid" || die "echo.js did not start"
      upstream=$(sed -n 's/^listening on //p' "$dir/echo.log" | head -n 1)
      ;;
    fuzzingserver)
      start_on_free_port "$direction $agent: wstest fuzzingserver" launch_fuzzingserver || {
        tail_log "$dir/wstest.log"
        die "wstest fuzzingserver did not start"
      }
      peer_pid=$SPAWNED
      upstream=127.0.0.1:$PORT
      ;;
    *) die "unknown direction '$direction'" ;;
  esac
  case "$agent" in
    direct) url=ws://$upstream ;;
    copy) start_wsproxy "$upstream" "$dir" --relay copy ;;
    splice) start_wsproxy "$upstream" "$dir" --relay splice ;;
    tls) start_wsproxy "$upstream" "$dir" --tls-cert "$out/tls/cert.pem" --tls-key "$out/tls/key.pem" ;;
    *) die "unknown agent '$agent'" ;;
  esac
  if [ "$agent" != direct ]; then
    mv "$WSPROXY_LOG" "$dir/wsproxy.log"
    if [ "$agent" = tls ]; then url=wss://$WSPROXY_ADDR; else url=ws://$WSPROXY_ADDR; fi
  fi

  case "$direction" in
    fuzzingclient)
      cat >"$dir/spec.json" <<EOF
{
  "outdir": "$dir/reports",
  "servers": [{"agent": "$agent", "url": "$url"}],
  "cases": $cases_json,
  "exclude-cases": $exclude,
  "exclude-agent-cases": {}
}
EOF
      spawn "$dir/run.log" bash -c 'cd "$1" && exec timeout "$2" "$3" -m fuzzingclient -s "$4"' \
        _ "$dir" "$run_limit" "$WSTEST" "$dir/spec.json"
      ;;
    fuzzingserver)
      spawn "$dir/run.log" timeout "$run_limit" node "$ROOT/scripts/autobahn/client.js" \
        "$url" "$agent" "$upstream" "$out/tls/ca.pem"
      ;;
  esac
  tool_pid=$SPAWNED
  wait "$tool_pid" || rc=$?
  forget "$tool_pid"
  echo "$SECONDS" >"$dir/wall_s"
  if [ "$rc" -ne 0 ]; then
    tail_log "$dir/run.log"
    note "$direction $agent: the run failed (exit $rc$([ "$rc" -eq 124 ] && echo ": over ${run_limit} s"))"
    ok=false
  fi
  if [ "$agent" != direct ]; then
    if ! alive "$WSPROXY_PID"; then
      tail_log "$dir/wsproxy.log"
      note "$direction $agent: wsproxy-fast died during the run"
      ok=false
    fi
    # Any warning or error fails, but the one at startup about a low
    # open-file limit (the machine's).
    if grep -E ' (WARN|ERROR) ' "$dir/wsproxy.log" | grep -v ' main: open-file limit ' >&2; then
      note "$direction $agent: wsproxy-fast logged the warnings/errors above"
      ok=false
    fi
  fi
  if ! alive "$peer_pid"; then
    tail_log "$dir/$([ "$direction" = fuzzingclient ] && echo echo || echo wstest).log"
    note "$direction $agent: the peer died during the run"
    ok=false
  fi
  $ok
}

if [ -n "$case_set" ]; then
  [ -d "$out/tls" ] || die "--case-set needs --out with the run's tls/ in it"
  out=$(cd "$out" && pwd)
  # shellcheck disable=SC2086 # "DIRECTION AGENT"
  run_case_set $case_set
  exit
fi

"$ROOT/scripts/setup.sh" autobahn >&2 || die "scripts/setup.sh autobahn failed"
[ -x "$WSTEST" ] || die "wstest missing after scripts/setup.sh autobahn"
build_release
mkdir -p "$out"
out=$(cd "$out" && pwd)
"$ROOT/scripts/tls-cert.sh" "$out/tls" >/dev/null
note "reports in $out"

started=$SECONDS
sets=()
for direction in fuzzingclient fuzzingserver; do
  for agent in direct "${mode_list[@]}"; do sets+=("$direction $agent"); done
done
note "${#sets[@]} case sets of $($full && echo "all 517 cases" || echo "the 301 cases without compression")$(
  [ "$cases" = '*' ] || echo ", only $cases"), $jobs at a time"
failed=false
running=()
next=0
while [ "$next" -lt ${#sets[@]} ] || [ ${#running[@]} -gt 0 ]; do
  while [ ${#running[@]} -lt "$jobs" ] && [ "$next" -lt ${#sets[@]} ]; do
    read -r direction agent <<<"${sets[next]}"
    mkdir -p "$out/$direction"
    spawn "$out/$direction/$agent.log" "$0" --out "$out" --cases "$cases" $($full && echo --full) \
      --case-set "$direction" "$agent"
    running+=("$SPAWNED $direction $agent")
    next=$((next + 1))
  done
  left=()
  for run in "${running[@]}"; do
    read -r pid direction agent <<<"$run"
    if alive "$pid"; then
      left+=("$run")
      continue
    fi
    rc=0
    wait "$pid" || rc=$?
    forget "$pid"
    if [ "$rc" -eq 0 ]; then
      # A start retried on another port passes, but is reported.
      grep -h 'was taken at start' "$out/$direction/$agent.log" >&2 || true
      note "$direction $agent done in $(<"$out/$direction/$agent/wall_s") s"
    else
      sed -e 's/^/    /' "$out/$direction/$agent.log" >&2
      note "$direction $agent FAILED (exit $rc)"
      failed=true
    fi
  done
  running=("${left[@]}")
  [ ${#running[@]} -eq 0 ] || sleep 0.2
done

agents=$(IFS=,; echo "${mode_list[*]}")
for direction in fuzzingclient fuzzingserver; do
  dirs=("$out/$direction/direct/reports")
  for mode in "${mode_list[@]}"; do dirs+=("$out/$direction/$mode/reports"); done
  python3 "$ROOT/scripts/autobahn/compare.py" "$direction" "$agents" "$out/$direction.summary.json" "${dirs[@]}" || failed=true
done

! $failed || die "FAILED after $((SECONDS - started)) s (reports and logs in $out)"
note "no difference from direct in either direction ($((SECONDS - started)) s; reports in $out)"
