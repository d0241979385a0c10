#!/usr/bin/env bash
# A fleet on one machine: N wsproxy-fast nodes, each its own process in its
# own network namespace, behind a real L4 balancer, in front of M named echo
# backends, and what the fleet does when keys, upgrades, load and failures
# hit it.
#
#   scripts/fleet.sh                   every scenario, full counts (about 40 s
#                                      on 2 cores, plus builds)
#   scripts/fleet.sh --smoke           3 nodes, small counts, about 15 s; exits
#                                      non-zero on any violation (CI: scripts/test.sh)
#   scripts/fleet.sh --balancer nft --scenarios "keys kill"
#
# Options: --nodes N (default 3), --upstreams M (default 3), --balancer
# haproxy|nft (default haproxy), --scenarios "keys rolling capacity kill"
# (default all four, run in this order), --keys N and --rounds R (keys:
# 1000 x 5; smoke 200 x 3), --conns N (steady connections of rolling and
# kill: 300; smoke 60), --capacity N (tunnels per node to hold: 9000; smoke
# 300; a node has room for 9200 under a 20000-descriptor limit), --out DIR
# (default target/fleet/<date>), --no-plot. Needs root (namespaces), ip
# (iproute2), python3, and HAProxy or nftables (installed through
# scripts/setup.sh when missing; if that fails it says what to install).
#
# Topology (every name carries a random run id, so parallel runs never
# meet; all of it is removed on exit, Ctrl-C or failure included):
#
#   cli ns 10.90.1.2 ── veth ── lb ns: 10.90.1.1 (the VIP, port 8080)
#                                      br0 10.90.2.1 ── veth ── node I ns: 10.90.2.(10+I)
#                                                    └─ veth ── up ns: 10.90.2.(100+J)
#
# The balancer namespace holds the bridge and routes (nodes' default route
# is 10.90.2.1). --balancer haproxy: HAProxy 2.6 in mode tcp, round-robin,
# send-proxy-v2 to every node, TCP health checks (check-send-proxy, inter
# 500ms, fall 2, rise 2), retries with redispatch; the nodes' listeners
# have proxy_protocol = true. Beyond 8000 tunnels (capacity) it runs
# several HAProxy processes on the VIP (SO_REUSEPORT): one process may
# hold 20000 descriptors here, two per tunnel. --balancer nft: nftables
# DNAT in the balancer namespace, `jhash ip saddr . tcp sport mod N` over
# the live nodes, and a health check in this script (a TCP connect to each
# node every 500 ms, 2 failures in a row take a node out of the rule); the
# nodes see clients' own addresses, without PROXY protocol.
#
# Each node: wsproxy-fast --config (workers = 1, drain spread 2 s and
# timeout 10 s; smoke 1 s and 4 s), one group over the M backends with
# balance = "hash" and hash_key = "query:key" (every node lists them in
# the same order, so a key maps to the same backend on all of them), the
# field X-Node: nodeI on every 101, its admin listener on 10.90.2.(10+I):9901.
# Each backend: wsbench echo-server --name upJ (X-Upstream: upJ on its 101).
# Clients are wsbench keys / steady / hold in the client namespace.
#
# Scenarios:
#   keys      every key connects R times through the balancer (landing on
#             whichever node it picks), one echo each: a key on two
#             backends is a violation (must be 0), as is any failed attempt
#   rolling   steady load (--conns connections, a message every 100 ms,
#             reconnect at once when closed); each node in turn is replaced
#             by a new process started with --takeover on its control
#             socket: the new one logs "took over", the old one drains and
#             exits. Must be 0: refused or reset attempts (and, behind
#             HAProxy, its connection errors and retries toward the nodes),
#             connections dropped without a Close, keys on two backends,
#             and messages unanswered at a Close that were sent longer
#             before it than the run's slowest echo took. A message sent
#             within a round trip of the Close crossed it on the wire: the
#             closing handshake leaves it unanswered (counted, with its age).
#             Needs a wsproxy-fast whose --help lists --takeover; without
#             one it is skipped with a note (named in --scenarios: fails)
#   capacity  --capacity tunnels per node held idle through the balancer
#             (wsbench hold, 8000 per client process): tunnels held per
#             node (its /metrics) and RSS per tunnel per node (VmRSS held
#             minus VmRSS before, over its tunnels); every held connection
#             must still echo afterwards
#   kill      steady load; node 1 gets SIGKILL: the time until the balancer
#             marks it down (HAProxy's log, or this script's check) and
#             until every client is back on the other nodes (their
#             /metrics add up to --conns again); must recover within 60 s
#
# Every node's tunnels and RSS are sampled every 100 ms (scripts/fleet/
# sample.py, in the balancer namespace; a node's /metrics is its admin
# listener's, which a takeover hands to the new process, so a replaced
# node's line shows the new process while the old one drains). Outputs in
# OUT: summary.md (the table, also printed), samples.csv, events.csv,
# fleet.png (connections per node over time, one panel per scenario,
# scripts/fleet/plot.py), each scenario's JSON, env.txt and logs/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmdline="scripts/fleet.sh${*:+ $*}"
nodes=3 upstreams=3 balancer=haproxy smoke=false plot=true out=
scenarios='' keys='' rounds='' conns='' capacity=''
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=true ;;
    --nodes) nodes=$2; shift ;;
    --upstreams) upstreams=$2; shift ;;
    --balancer) balancer=$2; shift ;;
    --scenarios) scenarios=$2; shift ;;
    --keys) keys=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --conns) conns=$2; shift ;;
    --capacity) capacity=$2; shift ;;
    --out) out=$2; shift ;;
    --no-plot) plot=false ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
if $smoke; then
  keys=${keys:-200} rounds=${rounds:-3} conns=${conns:-60} capacity=${capacity:-300}
  hold_secs=2 drain_spread=1s drain_timeout=4s
  out=${out:-$ROOT/target/fleet/smoke-$(date +%Y%m%d-%H%M%S)}
else
  keys=${keys:-1000} rounds=${rounds:-5} conns=${conns:-300} capacity=${capacity:-9000}
  hold_secs=10 drain_spread=2s drain_timeout=10s
  out=${out:-$ROOT/target/fleet/$(date +%Y%m%d-%H%M%S)}
fi
explicit_scenarios=$scenarios
scenarios=${scenarios:-keys rolling capacity kill}
for n in "$nodes" "$upstreams"; do
  { [[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 50 ]; } || die "--nodes and --upstreams take 1 to 50"
done
for n in "$keys" "$rounds" "$conns" "$capacity"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "--keys, --rounds, --conns and --capacity take positive integers"
done
[ "$conns" -le 5000 ] || die "--conns: at most 5000 (one client thread each)"
case "$balancer" in haproxy | nft) ;; *) die "--balancer is haproxy or nft" ;; esac
for s in $scenarios; do
  case "$s" in keys | rolling | capacity | kill) ;; *) die "unknown scenario '$s'" ;; esac
done
# In this order whatever the order given: kill leaves a node down.
ordered=
for s in keys rolling capacity kill; do [[ " $scenarios " != *" $s "* ]] || ordered+="${ordered:+ }$s"; done
scenarios=$ordered
[[ " $scenarios " != *" kill "* ]] || [ "$nodes" -ge 2 ] || die "kill needs --nodes 2 or more"

# --- tools ---------------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "needs root: network namespaces and veth pairs (run it as root)"
export PATH="$PATH:/usr/sbin:/sbin"
command -v python3 >/dev/null 2>&1 || die "python3 not found: apt-get install python3"
tools=(iproute2)
if [ "$balancer" = haproxy ]; then tools+=(haproxy); else tools+=(nftables); fi
$plot && tools+=(matplotlib)
"$ROOT/scripts/setup.sh" "${tools[@]}" >&2 ||
  die "scripts/setup.sh ${tools[*]} failed: install them (apt-get install iproute2 haproxy nftables; pip install matplotlib)"
command -v ip >/dev/null 2>&1 || die "ip not found: scripts/setup.sh iproute2 (apt-get install iproute2)"
if [ "$balancer" = haproxy ]; then
  command -v haproxy >/dev/null 2>&1 || die "haproxy not found: scripts/setup.sh haproxy (apt-get install haproxy)"
else
  command -v nft >/dev/null 2>&1 || die "nft not found: scripts/setup.sh nftables (apt-get install nftables)"
fi

mkdir -p "$out/logs" "$out/bin" "$out/nodes"
out=$(cd "$out" && pwd)
build_release
cp "$BIN/wsproxy-fast" "$BIN/wsbench" "$out/bin/"
BIN=$out/bin
takeover=false
[[ $("$BIN/wsproxy-fast" --help 2>&1) != *--takeover* ]] || takeover=true
if ! $takeover && [[ " $scenarios " == *" rolling "* ]]; then
  [ -z "$explicit_scenarios" ] || die "rolling: this wsproxy-fast has no --takeover"
  note "rolling: skipped, this wsproxy-fast has no --takeover"
  scenarios=$(sed -e 's/rolling//' -e 's/  */ /g' <<<"$scenarios")
fi
# Each tunnel holds one descriptor in a client and one in a backend.
ulimit -n "$(ulimit -Hn)"

# --- names and clean-up ------------------------------------------------------------

run=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
ns_lb=wsf-$run-lb ns_cli=wsf-$run-cli ns_up=wsf-$run-up
ns_node=()
for ((i = 1; i <= nodes; i++)); do ns_node[i]=wsf-$run-n$i; done
vip=10.90.1.1 port=8080 admin_port=9901 upstream_port=9000
# Seconds between two samples of every node's /metrics and RSS.
sample_s=0.1
node_ip() { echo "10.90.2.$((10 + $1))"; }
up_ip() { echo "10.90.2.$((100 + $1))"; }
created_ns=()
finish() {
  local ns
  lib_cleanup
  for ns in "${created_ns[@]}"; do ip netns del "$ns" 2>/dev/null || note "could not delete namespace $ns"; done
  created_ns=()
}
trap finish EXIT

in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

ns_new() {
  ip netns add "$1"
  created_ns+=("$1")
  ip -n "$1" link set lo up
}

# veth_to_bridge NS IFNAME ADDR...: a veth pair from the balancer's bridge
# (its end named IFNAME there) to eth0 in NS, with ADDR (/24) on eth0.
veth_to_bridge() {
  local ns=$1 ifname=$2 addr
  shift 2
  ip -n "$ns_lb" link add "$ifname" type veth peer name eth0 netns "$ns"
  ip -n "$ns_lb" link set "$ifname" master br0 up
  for addr in "$@"; do ip -n "$ns" addr add "$addr/24" dev eth0; done
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via 10.90.2.1
}

build_network() {
  local i j ups=()
  ns_new "$ns_lb"
  ns_new "$ns_cli"
  ns_new "$ns_up"
  in_ns "$ns_lb" sysctl -qw net.ipv4.ip_forward=1
  # Tens of thousands of connections from one client address to one VIP.
  in_ns "$ns_cli" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
  in_ns "$ns_lb" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
  ip -n "$ns_lb" link add br0 type bridge
  ip -n "$ns_lb" addr add 10.90.2.1/24 dev br0
  ip -n "$ns_lb" link set br0 up
  ip -n "$ns_lb" link add c0 type veth peer name eth0 netns "$ns_cli"
  ip -n "$ns_lb" addr add "$vip/24" dev c0
  ip -n "$ns_lb" link set c0 up
  ip -n "$ns_cli" addr add 10.90.1.2/24 dev eth0
  ip -n "$ns_cli" link set eth0 up
  ip -n "$ns_cli" route add default via "$vip"
  for ((i = 1; i <= nodes; i++)); do
    ns_new "${ns_node[i]}"
    veth_to_bridge "${ns_node[i]}" "n$i" "$(node_ip "$i")"
  done
  for ((j = 1; j <= upstreams; j++)); do ups+=("$(up_ip "$j")"); done
  veth_to_bridge "$ns_up" u0 "${ups[@]}"
}

# --- events, table, checks ---------------------------------------------------------

failures=0
rows=()
event() {
  # CSV: the text quoted, without quotes of its own.
  printf '%s,"%s"\n' "$(date +%s.%N)" "${1//\"/}" >>"$out/events.csv"
  note "$1"
}
# row SCENARIO FIGURE VALUE [CHECK]: one line of the summary table.
row() {
  rows+=("| $1 | $2 | $3 | ${4:-} |")
}
# check SCENARIO FIGURE VALUE: a figure that must be 0.
check_zero() {
  if [ "$3" = 0 ]; then
    row "$1" "$2" "$3" "must be 0: ok"
  else
    row "$1" "$2" "$3" "must be 0: **FAILED**"
    failures=$((failures + 1))
  fi
}
fail() {
  failures=$((failures + 1))
  note "FAILED: $*"
}
# jq-free JSON reading: json FILE EXPR (a Python expression over `d`).
json() {
  python3 -c 'import json, sys; d = json.loads(open(sys.argv[1]).readline()); print(eval(sys.argv[2]))' "$1" "$2"
}
# The one JSON line in a wsbench log (stdout and stderr together).
json_line() {
  grep -m 1 '^{' "$1" >"$2" || { tail_log "$1"; die "no JSON result in $1"; }
}

# --- the fleet -----------------------------------------------------------------------

node_gen=()
node_pid=()

node_config() {
  local i=$1 j servers=""
  for ((j = 1; j <= upstreams; j++)); do servers+="${servers:+, }\"$(up_ip "$j"):$upstream_port\""; done
  cat <<EOF
# scripts/fleet.sh: node $i of $nodes behind $balancer.
workers = 1
admin = "$(node_ip "$i"):$admin_port"
[drain]
spread = "$drain_spread"
timeout = "$drain_timeout"
[[listener]]
address = "$(node_ip "$i"):$port"
proxy_protocol = $([ "$balancer" = haproxy ] && echo true || echo false)
[upstream.echo]
servers = [$servers]
balance = "hash"
hash_key = "query:key"
[[server]]
response_headers = [{ name = "X-Node", value = "node$i" }]
[[server.route]]
location = "/"
upstream = "echo"
EOF
}

# start_node I [takeover]: node I's next process; with "takeover", it takes
# the listeners over from the process serving node I's control socket, and
# serves that socket in turn.
start_node() {
  local i=$1 from=${2:-} gen log args sock=$out/nodes/$1/control.sock
  gen=$((${node_gen[i]:--1} + 1))
  node_gen[i]=$gen
  log=$out/logs/node$i-$gen.log
  args=(--config "$out/nodes/$i/node.toml")
  ! $takeover || args+=(--control-socket "$sock")
  [ -z "$from" ] || args+=(--takeover "$sock")
  spawn "$log" ip netns exec "${ns_node[i]}" "$BIN/wsproxy-fast" "${args[@]}"
  node_pid[i]=$SPAWNED
  if [ -n "$from" ]; then
    wait_line "$log" 'took over' 20 "$SPAWNED" || die "node$i: the new process did not take over"
  else
    wait_line "$log" ' main: listening on ' 10 "$SPAWNED" || die "node$i did not start"
  fi
  echo "$SPAWNED" >"$out/nodes/$i/pid.tmp"
  mv "$out/nodes/$i/pid.tmp" "$out/nodes/$i/pid"
}

start_upstreams() {
  local j log
  for ((j = 1; j <= upstreams; j++)); do
    log=$out/logs/up$j.log
    spawn "$log" ip netns exec "$ns_up" "$BIN/wsbench" echo-server --listen "$(up_ip "$j"):$upstream_port" \
      --threads 1 --name "up$j"
    wait_line "$log" '^listening on ' 10 "$SPAWNED" || die "backend up$j did not start"
  done
}

# HAProxy processes: one holds 20000 descriptors, two per tunnel.
haproxy_procs=1
if [ "$balancer" = haproxy ] && [[ " $scenarios " == *" capacity "* ]]; then
  haproxy_procs=$(((nodes * capacity + 7999) / 8000))
fi

# HAProxy process K's configuration: all the same but for the stats socket.
haproxy_config() {
  local k=$1 i
  echo "# scripts/fleet.sh: the L4 balancer in front of $nodes nodes (process $k of $haproxy_procs)."
  echo "global"
  echo "    nbthread 1"
  echo "    stats socket $out/haproxy-$k.sock"
  echo "    maxconn 9000"
  echo "defaults"
  echo "    mode tcp"
  echo "    maxconn 9000"
  echo "    timeout connect 2s"
  echo "    timeout client 1h"
  echo "    timeout server 1h"
  echo "    retries 3"
  echo "    option redispatch 1"
  echo "frontend fleet"
  echo "    bind $vip:$port"
  echo "    default_backend nodes"
  echo "backend nodes"
  echo "    balance roundrobin"
  echo "    default-server send-proxy-v2 check check-send-proxy inter 500ms fall 2 rise 2"
  for ((i = 1; i <= nodes; i++)); do echo "    server node$i $(node_ip "$i"):$port"; done
}

start_haproxy() {
  local k
  for ((k = 1; k <= haproxy_procs; k++)); do
    haproxy_config "$k" >"$out/haproxy-$k.cfg"
    spawn "$out/logs/haproxy-$k.log" ip netns exec "$ns_lb" haproxy -db -f "$out/haproxy-$k.cfg"
  done
}

# What HAProxy met connecting to the nodes, all processes added up (its
# stats socket, backend "nodes"): "ECON WRETR WREDIS", connection errors,
# retries and redispatches; "- - -" with the nft balancer.
haproxy_errors() {
  [ "$balancer" = haproxy ] || { echo "- - -"; return; }
  python3 - "$out"/haproxy-*.sock <<'PY'
import socket, sys

totals = {"econ": 0, "wretr": 0, "wredis": 0}
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(path)
    s.sendall(b"show stat\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    lines = data.decode().splitlines()
    names = lines[0].lstrip("# ").split(",")
    for line in lines[1:]:
        row = dict(zip(names, line.split(",")))
        if row.get("pxname") == "nodes" and row.get("svname") == "BACKEND":
            for key in totals:
                totals[key] += int(row[key] or 0)
print(totals["econ"], totals["wretr"], totals["wredis"])
PY
}

# nft_rule IP...: the DNAT rule spreads new connections over these nodes.
nft_rule() {
  local map="" k=0 ip
  for ip in "$@"; do
    map+="${map:+, }$k : $ip"
    k=$((k + 1))
  done
  in_ns "$ns_lb" nft -f - <<EOF
flush ruleset
table ip fleet {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $vip tcp dport $port dnat to jhash ip saddr . tcp sport mod $k map { $map }
  }
}
EOF
}

# The nft balancer's health check: a TCP connect to every node each 500 ms;
# 2 failures in a row take a node out of the rule, 2 successes put it back.
nft_checker() {
  local i fails=() up=() live changed
  for ((i = 1; i <= nodes; i++)); do fails[i]=0 up[i]=1; done
  while :; do
    changed=false
    for ((i = 1; i <= nodes; i++)); do
      if in_ns "$ns_lb" timeout 0.4 bash -c "exec 3<>/dev/tcp/$(node_ip "$i")/$port" 2>/dev/null; then
        fails[i]=$((fails[i] < 0 ? fails[i] - 1 : -1))
        if [ "${up[i]}" = 0 ] && [ "${fails[i]}" -le -2 ]; then up[i]=1 changed=true; echo "node$i is UP"; fi
      else
        fails[i]=$((fails[i] > 0 ? fails[i] + 1 : 1))
        if [ "${up[i]}" = 1 ] && [ "${fails[i]}" -ge 2 ]; then up[i]=0 changed=true; echo "node$i is DOWN"; fi
      fi
    done
    if $changed; then
      live=()
      for ((i = 1; i <= nodes; i++)); do [ "${up[i]}" = 0 ] || live+=("$(node_ip "$i")"); done
      [ ${#live[@]} -eq 0 ] || nft_rule "${live[@]}"
    fi
    sleep 0.5
  done
}

admins=()
for ((i = 1; i <= nodes; i++)); do admins+=("$(node_ip "$i"):$admin_port"); done

# Each node's open tunnels, space-separated ("-" for one not answering).
node_tunnels() {
  in_ns "$ns_lb" python3 "$ROOT/scripts/fleet/sample.py" --once "${admins[@]}"
}

# wait_tunnels N SECS [NODE...]: until the nodes (default all) hold N
# tunnels together; prints the seconds it took (fractions), fails after SECS.
wait_tunnels() {
  local want=$1 secs=$2 start now counts total i
  shift 2
  start=$(date +%s.%N)
  while :; do
    read -ra counts <<<"$(node_tunnels)"
    total=0
    for ((i = 1; i <= nodes; i++)); do
      if [ $# -gt 0 ] && [[ " $* " != *" $i "* ]]; then continue; fi
      [ "${counts[i - 1]}" = - ] || total=$((total + counts[i - 1]))
    done
    now=$(date +%s.%N)
    if [ "$total" -eq "$want" ]; then
      awk -v a="$start" -v b="$now" 'BEGIN { printf "%.2f\n", b - a }'
      return 0
    fi
    if awk -v a="$start" -v b="$now" -v s="$secs" 'BEGIN { exit !(b - a > s) }'; then
      note "the nodes hold $total tunnels, not $want, after $secs s (${counts[*]})"
      return 1
    fi
    sleep 0.1
  done
}

# The balancer passes a WebSocket through to a node and a backend.
wait_balancer() {
  local deadline=$((SECONDS + 15))
  until in_ns "$ns_cli" "$BIN/wsbench" send --timeout 1 --url "ws://$vip:$port/ws?key=probe" ready \
    >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "no echo through the balancer at $vip:$port within 15 s"
    sleep 0.2
  done
}

# log_marks FILE...: "FILE:SIZE" for each existing file, its size now.
log_marks() {
  local f
  for f in "$@"; do [ ! -f "$f" ] || echo "$f:$(stat -c %s "$f")"; done
}

# count_since MARKS RE: lines matching RE written to the files since MARKS.
count_since() {
  local mark n=0
  for mark in $1; do
    n=$((n + $(tail -c +"$((${mark##*:} + 1))" "${mark%:*}" | grep -c -- "$2" || true)))
  done
  echo "$n"
}

rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# --- scenarios -----------------------------------------------------------------------

scenario_keys() {
  local log=$out/logs/keys.log res=$out/keys.json
  event "keys: $keys keys x $rounds"
  in_ns "$ns_cli" "$BIN/wsbench" keys --url "ws://$vip:$port/ws" --keys "$keys" --rounds "$rounds" \
    --threads 16 --json >"$log" 2>&1 || true
  json_line "$log" "$res"
  tail -n 1 "$log" >&2
  row keys "connections (keys x rounds)" "$(json "$res" 'd["connections"]') ($keys x $rounds)"
  row keys "keys that entered several nodes" "$(json "$res" 'd["keys_on_several_nodes"]')"
  row keys "connections per node" "$(json "$res" '" ".join(f"{k} {v}" for k, v in d["by_node"].items())')"
  check_zero keys "keys on two upstreams (violations)" "$(json "$res" 'd["violations"]')"
  check_zero keys "failed connection attempts" "$(json "$res" 'sum(v for k, v in d["failures"].items() if k != "first")')"
  check_zero keys "bad echoes" "$(json "$res" 'd["mismatches"]')"
}

# start_steady NAME: --conns keyed connections through the balancer until
# OUT/NAME.stop exists; STEADY_PID, and waits until the nodes hold them.
start_steady() {
  local name=$1
  rm -f "$out/$name.stop"
  spawn "$out/logs/$name.log" ip netns exec "$ns_cli" "$BIN/wsbench" steady --url "ws://$vip:$port/ws" \
    --conns "$conns" --interval-ms 100 --duration 600 --stop-file "$out/$name.stop" \
    --key-prefix "$name-" --json
  STEADY_PID=$SPAWNED
  wait_tunnels "$conns" 30 >/dev/null || die "$name: the steady load did not connect"
}

# stop_steady NAME: ends the load, puts its JSON in OUT/NAME.json.
stop_steady() {
  local name=$1 rc=0
  touch "$out/$name.stop"
  local deadline=$((SECONDS + 30))
  while alive "$STEADY_PID"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$name: the steady load did not stop within 30 s"
    sleep 0.1
  done
  wait "$STEADY_PID" 2>/dev/null || rc=$?
  forget "$STEADY_PID"
  [ "$rc" -le 1 ] || { tail_log "$out/logs/$name.log"; die "$name: wsbench steady failed (status $rc)"; }
  json_line "$out/logs/$name.log" "$out/$name.json"
  tail -n 1 "$out/logs/$name.log" >&2
}

# errors_since "ECON WRETR WREDIS": HAProxy's figures since then, as
# "connection errors E, retries R, redispatches D" ("-" with nft).
errors_since() {
  local e0 r0 d0 e1 r1 d1
  read -r e0 r0 d0 <<<"$1"
  read -r e1 r1 d1 <<<"$(haproxy_errors)"
  if [ "$e0" = - ]; then
    echo "-"
  else
    echo "connection errors $((e1 - e0)), retries $((r1 - r0)), redispatches $((d1 - d0))"
  fi
}

scenario_rolling() {
  local i old_pid res=$out/rolling.json deadline back errors0 errors
  event "rolling: steady load, $conns connections"
  start_steady rolling
  errors0=$(haproxy_errors)
  for ((i = 1; i <= nodes; i++)); do
    old_pid=${node_pid[i]}
    event "replace node$i"
    start_node "$i" takeover
    deadline=$((SECONDS + ${drain_timeout%s} + 10))
    while alive "$old_pid"; do
      [ "$SECONDS" -lt "$deadline" ] || { fail "rolling: node$i's old process did not exit"; break; }
      sleep 0.1
    done
    wait "$old_pid" 2>/dev/null || true
    forget "$old_pid"
    back=$(wait_tunnels "$conns" 30) || fail "rolling: clients did not all come back after node$i"
    note "node$i replaced; every client back ${back:-?} s after the old process exited"
  done
  errors=$(errors_since "$errors0")
  stop_steady rolling
  row rolling "nodes replaced (--takeover)" "$nodes"
  row rolling "messages sent / echoed" "$(json "$res" 'd["sent"]') / $(json "$res" 'd["echoed"]')"
  row rolling "connections closed by a node (Close 1001)" "$(json "$res" 'd["closes_by_server"].get("1001", 0)')"
  row rolling "reconnect gap, max" "$(json "$res" '"%.1f ms" % (d["outages"]["max_us"] / 1000)')"
  check_zero rolling "connection attempts refused" "$(json "$res" 'd["failures"]["refused"]')"
  check_zero rolling "connection attempts reset" "$(json "$res" 'd["failures"]["reset"]')"
  check_zero rolling "other failed attempts" "$(json "$res" 'sum(d["failures"][k] for k in ("rejected", "timeout", "other"))')"
  # A message sent within one round trip of the Close's arrival crossed it
  # on the wire: the closing handshake leaves it unanswered. One sent
  # longer before than the slowest echo of the run took was dropped.
  row rolling "messages that crossed a Close (unanswered)" \
    "$(json "$res" 'd["lost_at_close"] - sum(a > d["rtt"]["max_us"] for a in d["lost_at_close_ages_us"])')" \
    "$(json "$res" '"sent %s µs before the Close; echo round trip p50 %d µs, max %d µs" % (",".join(map(str, sorted(d["lost_at_close_ages_us"]))) or "-", d["rtt"]["p50_us"], d["rtt"]["max_us"])')"
  check_zero rolling "messages unanswered at a Close, sent longer before it than the slowest echo took" \
    "$(json "$res" 'sum(a > d["rtt"]["max_us"] for a in d["lost_at_close_ages_us"]) + max(0, d["lost_at_close"] - len(d["lost_at_close_ages_us"]))')"
  check_zero rolling "connections dropped without a Close" "$(json "$res" 'd["dropped"]')"
  check_zero rolling "keys on two upstreams" "$(json "$res" 'd["violations"]')"
  if [ "$errors" != - ]; then
    if [ "$errors" = "connection errors 0, retries 0, redispatches 0" ]; then
      row rolling "HAProxy → nodes" "$errors" "no connection refused: ok"
    else
      row rolling "HAProxy → nodes" "$errors" "no connection refused: **FAILED**"
      failures=$((failures + 1))
    fi
  fi
}

scenario_capacity() {
  local total=$((nodes * capacity)) per_proc=8000 procs p n i pids=() logs=() counts before=() held=()
  local rc res tunnels survivors opened marks
  procs=$(((total + per_proc - 1) / per_proc))
  marks=$(log_marks "$out"/logs/haproxy-*.log "$out/logs/nft-check.log")
  for ((i = 1; i <= nodes; i++)); do before[i]=$(rss_kib "${node_pid[i]}"); done
  event "capacity: $total tunnels"
  for ((p = 0; p < procs; p++)); do
    n=$((total / procs + (p < total % procs ? 1 : 0)))
    logs[p]=$out/logs/hold-$p.log
    spawn "${logs[p]}" ip netns exec "$ns_cli" "$BIN/wsbench" hold --url "ws://$vip:$port/hold" --conns "$n" \
      --hold "$hold_secs" --probe-timeout 60 --src-ips 1 --json
    pids[p]=$SPAWNED
  done
  for ((p = 0; p < procs; p++)); do
    wait_line "${logs[p]}" '^held [0-9]+' 300 "${pids[p]}" || die "capacity: client $p did not open its connections"
  done
  # Sampled half way through the hold: every connection idle since.
  sleep "$(awk -v h="$hold_secs" 'BEGIN { print h / 2 }')"
  read -ra counts <<<"$(node_tunnels)"
  for ((i = 1; i <= nodes; i++)); do held[i]=$(rss_kib "${node_pid[i]}"); done
  event "capacity: sampled"
  tunnels=0 survivors=0 opened=0
  for ((p = 0; p < procs; p++)); do
    rc=0
    wait "${pids[p]}" || rc=$?
    forget "${pids[p]}"
    [ "$rc" -le 1 ] || { tail_log "${logs[p]}"; die "capacity: client $p failed (status $rc)"; }
    res=$out/capacity-$p.json
    json_line "${logs[p]}" "$res"
    opened=$((opened + $(json "$res" 'd["opened"]')))
    survivors=$((survivors + $(json "$res" 'd["survivors"]')))
  done
  for ((i = 1; i <= nodes; i++)); do
    [ "${counts[i - 1]}" != - ] || counts[i - 1]=0
    tunnels=$((tunnels + counts[i - 1]))
    row capacity "node$i: tunnels held, RSS before → held" \
      "${counts[i - 1]}, $((before[i] / 1024)) → $((held[i] / 1024)) MiB" \
      "$(awk -v a="${before[i]}" -v b="${held[i]}" -v n="${counts[i - 1]}" \
        'BEGIN { if (n > 0) printf "%.0f bytes per tunnel", (b - a) * 1024 / n }')"
  done
  row capacity "tunnels held by the fleet" "$tunnels of $total ($procs client processes)"
  row capacity "times the balancer marked a node down meanwhile" "$(count_since "$marks" ' is DOWN')"
  check_zero capacity "connections not opened" "$((total - opened))"
  check_zero capacity "held connections that no longer echo" "$((total - survivors))"
  (
    IFS=,
    echo "{\"tunnels\":$tunnels,\"target\":$total,\"per_node\":[${counts[*]}],\"rss_kib_before\":[${before[*]}],\"rss_kib_held\":[${held[*]}]}"
  ) >"$out/capacity.json"
}

scenario_kill() {
  local victim=1 pid t0 now elapsed down_after="" recovered="" res=$out/kill.json counts total i
  local marks errors0 errors
  event "kill: steady load, $conns connections"
  start_steady kill
  errors0=$(haproxy_errors)
  pid=${node_pid[victim]}
  marks=$(log_marks "$out"/logs/haproxy-*.log "$out/logs/nft-check.log")
  event "SIGKILL node$victim"
  t0=$(date +%s.%N)
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  forget "$pid"
  # Until the balancer says the node is down (its log) and the other nodes
  # hold every client again (their /metrics), 60 s at most.
  while [ -z "$down_after" ] || [ -z "$recovered" ]; do
    read -ra counts <<<"$(node_tunnels)"
    now=$(date +%s.%N)
    elapsed=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.2f", b - a }')
    if [ -z "$down_after" ] && [ "$(count_since "$marks" "node$victim is DOWN")" -gt 0 ]; then down_after=$elapsed; fi
    if [ -z "$recovered" ]; then
      total=0
      for ((i = 1; i <= nodes; i++)); do
        [ "$i" = "$victim" ] || [ "${counts[i - 1]}" = - ] || total=$((total + counts[i - 1]))
      done
      [ "$total" -ne "$conns" ] || recovered=$elapsed
    fi
    if awk -v e="$elapsed" 'BEGIN { exit !(e > 60) }'; then break; fi
    sleep 0.1
  done
  event "kill: node$victim down, clients back"
  errors=$(errors_since "$errors0")
  stop_steady kill
  [ -n "$down_after" ] || fail "kill: the balancer did not mark node$victim down within 60 s"
  [ -n "$recovered" ] || fail "kill: clients not back on the other nodes within 60 s"
  row kill "balancer marked node$victim down" "${down_after:-not within 60} s after the kill" \
    "$([ "$balancer" = haproxy ] && echo "HAProxy check, inter 500ms fall 2" || echo "script's check, 500 ms, 2 fails")"
  row kill "clients back on the other nodes" "${recovered:-not within 60} s after the kill" \
    "all $conns connections again"
  row kill "client outage, max / p50" "$(json "$res" '"%.0f / %.0f ms" % (d["outages"]["max_us"] / 1000, d["outages"]["p50_us"] / 1000)')"
  row kill "connections dropped by the kill" "$(json "$res" 'd["dropped"]')"
  row kill "messages lost in flight" "$(json "$res" 'd["lost_at_drop"] + d["lost_at_close"]')"
  row kill "attempts refused / reset" "$(json "$res" 'd["failures"]["refused"]') / $(json "$res" 'd["failures"]["reset"]')"
  [ "$errors" = - ] || row kill "HAProxy → nodes" "$errors"
  check_zero kill "keys on two upstreams" "$(json "$res" 'd["violations"]')"
}

# --- the run -------------------------------------------------------------------------

note "run $run, output in $out"
started=$SECONDS
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host_nproc=$(nproc)"
  echo "cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  echo "mem_total=$(awk '/^MemTotal:/ { print $2 " kB" }' /proc/meminfo)"
  echo "kernel=$(uname -r)"
  echo "balancer=$balancer"
  if [ "$balancer" = haproxy ]; then echo "haproxy=$(haproxy -v | head -n 1)"; else echo "nft=$(nft --version)"; fi
  echo "wsproxy=$("$BIN/wsproxy-fast" --version)"
  echo "git=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo -dirty)"
  echo "takeover=$takeover"
  echo "command=$cmdline"
  echo "nodes=$nodes"
  echo "upstreams=$upstreams"
  echo "scenarios=$scenarios"
  echo "keys=${keys}x$rounds"
  echo "steady_conns=$conns"
  echo "capacity_per_node=$capacity"
  echo "haproxy_processes=$haproxy_procs"
  echo "drain=$drain_spread/$drain_timeout"
  echo "sample_s=$sample_s"
} >"$out/env.txt"
: >"$out/events.csv"

build_network
start_upstreams
for ((i = 1; i <= nodes; i++)); do
  mkdir -p "$out/nodes/$i"
  node_config "$i" >"$out/nodes/$i/node.toml"
  start_node "$i"
done
if [ "$balancer" = haproxy ]; then
  start_haproxy
else
  live=()
  for ((i = 1; i <= nodes; i++)); do live+=("$(node_ip "$i")"); done
  nft_rule "${live[@]}"
  spawn "$out/logs/nft-check.log" nft_checker
fi
wait_balancer
spawn "$out/logs/sample.log" ip netns exec "$ns_lb" python3 "$ROOT/scripts/fleet/sample.py" "$out" "$sample_s" "${admins[@]}"
event "fleet up: $nodes nodes, $upstreams upstreams, $balancer"

for s in $scenarios; do
  at=$SECONDS
  "scenario_$s"
  note "$s done in $((SECONDS - at)) s"
done
finish
trap - EXIT

{
  echo "| scenario | figure | value | check |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >"$out/summary.md"
echo "elapsed_s=$((SECONDS - started))" >>"$out/env.txt"
cat "$out/summary.md"
if $plot; then
  "$TOOLS_VENV/bin/python" "$ROOT/scripts/fleet/plot.py" "$out" || fail "the plot failed"
fi
note "done in $((SECONDS - started)) s; table $out/summary.md"
[ "$failures" -eq 0 ] || die "$failures check(s) failed; see the table above and $out/logs/"
