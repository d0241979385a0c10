#!/usr/bin/env bash
# Loopback load: holds many established TCP connections between 127.0.0.2
# and 127.0.0.20, as a machine busy with other test runs and load
# generators does, until it is stopped. Run the harness beside it to see
# that it copes:
#
#   scripts/loopback-load.sh --connections 30000 &
#   scripts/test.sh                   (or scripts/autobahn.sh, ...)
#   kill %1                           (SIGTERM; Ctrl-C in the foreground)
#
# Options: --connections N (default 30000, at most 200000), --processes P
# (default one per 3750 connections), --hold SECS (the longest it holds
# them, default 3600; it stops earlier on SIGTERM or SIGINT).
#
# Each of the P processes (scripts/loopback/hold.py) listens on port 0 of
# every address 127.0.0.2-127.0.0.20 and connects to those listeners from
# the same addresses, round-robin, binding each client socket's address
# first: the kernel gives every client end a local port from the ephemeral
# range (/proc/sys/net/ipv4/ip_local_port_range) on its address, so those
# ports are taken on 127.0.0.x while still free on 127.0.0.1. Each
# connection costs two descriptors in its process (both ends), and a
# process may hold at most `ulimit -Hn` of them, hence several processes.
# It prints "holding N connections" on stdout once all are established
# (`ss -s` counts them, both ends, under "estab"), and stops every process
# when it exits for any reason; the connections close with resets, leaving
# nothing in TIME_WAIT.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

connections=30000
processes=
hold=3600
# Connections per process by default: 7500 descriptors each.
per_process=3750
# The longest set-up may take, per process (a few seconds when idle).
setup_secs=120
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) connections=$2; shift ;;
    --processes) processes=$2; shift ;;
    --hold) hold=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
{ [[ $connections =~ ^[1-9][0-9]*$ ]] && [ "$connections" -le 200000 ]; } ||
  die "--connections must be between 1 and 200000"
processes=${processes:-$(((connections + per_process - 1) / per_process))}
{ [[ $processes =~ ^[1-9][0-9]*$ ]] && [ "$processes" -le 64 ]; } || die "--processes must be between 1 and 64"
[ "$processes" -le "$connections" ] || processes=$connections
{ [[ $hold =~ ^[1-9][0-9]*$ ]] && [ "$hold" -le 86400 ]; } || die "--hold must be between 1 and 86400 seconds"
addresses=()
for i in $(seq 2 20); do addresses+=("127.0.0.$i"); done
hard=$(ulimit -Hn)
most=$(((connections + processes - 1) / processes))
if [ "$hard" != unlimited ] && [ $((2 * most + 100)) -gt "$hard" ]; then
  die "$most connections per process need $((2 * most + 100)) descriptors; the hard limit is $hard: use more --processes"
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/loopback-load.XXXXXX")
finish() {
  lib_cleanup
  rm -rf "$logs"
}
trap finish EXIT

pids=()
for ((p = 0; p < processes; p++)); do
  # The first connections % processes processes take one more.
  n=$((connections / processes + (p < connections % processes ? 1 : 0)))
  spawn "$logs/$p.log" python3 "$ROOT/scripts/loopback/hold.py" "$n" "$hold" "${addresses[@]}"
  pids+=("$SPAWNED")
done
for ((p = 0; p < processes; p++)); do
  wait_line "$logs/$p.log" '^holding [0-9]+' "$setup_secs" "${pids[p]}" ||
    die "process $((p + 1)) of $processes did not establish its connections"
done
echo "holding $connections connections ($processes process$([ "$processes" -eq 1 ] || echo es), ${addresses[0]}-${addresses[-1]}, for at most $hold s)"

# Until the hold is over (each process ends by itself, status 0) or a
# signal arrives (the trap stops them all). One ending otherwise is a fault.
running=("${pids[@]}")
while [ ${#running[@]} -gt 0 ]; do
  ended=
  rc=0
  wait -n -p ended "${running[@]}" || rc=$?
  [ -n "$ended" ] || die "waiting for the processes failed (status $rc)"
  forget "$ended"
  for ((p = 0; p < processes; p++)); do [ "${pids[p]}" != "$ended" ] || break; done
  [ "$rc" -eq 0 ] || { tail_log "$logs/$p.log"; die "process $((p + 1)) of $processes ended with status $rc"; }
  left=()
  for pid in "${running[@]}"; do [ "$pid" = "$ended" ] || left+=("$pid"); done
  running=("${left[@]}")
done
note "hold time over ($hold s); stopped"
