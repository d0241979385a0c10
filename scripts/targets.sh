# Shell helpers shared by scripts/compare.sh and scripts/attack.sh: the
# proxies under test started in front of the echo backend, and /proc
# sampling of their CPU and memory. Source it after lib.sh, do not run it:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/targets.sh"
#
# The caller sets `out` (the run's directory: configurations under
# out/NAME, logs under out/logs), `tls` (true or false: with true, the
# certificate is out/tls/, see scripts/tls-cert.sh) and, before starting a
# target, ECHO_ADDR and ECHO_PID (start_echo in lib.sh); for the HTTP
# instances also API_ADDR (the API upstream, itself nginx-api), `api_body`
# (what it answers) and the static files under out/www.
#
#   start_target NAME        direct | nginx | haproxy | wsproxy-fast |
#                            floor-epoll | floor-uring, in front of the
#                            echo backend, or direct-http |
#                            nginx-http | haproxy-http | wsproxy-fast-http
#                            for the HTTP workloads: its address in
#                            ADDR[NAME], main PID in MAIN[NAME]
#   start_nginx nginx-api    the API upstream, likewise
#   stop_target NAME         SIGTERM (nginx's master stops its workers)
#   target_pids NAME         the PIDs whose CPU and memory are the target's
#   target_alive NAME        still runs as started (nginx: same workers)
#   cpu_ticks PID..., sys_ticks PID..., rss_kb PID..., child_ticks,
#   children_of PID, stat_field PID N    /proc readings
#
# nginx (bench/conf/nginx.conf.in) and HAProxy (bench/conf/haproxy.cfg.in,
# with --tls bench/conf/nginx-tls.conf.in and bench/conf/haproxy-tls.in)
# get a port from free_port and are started once more on another if it
# was taken; the echo backend and wsproxy-fast bind port 0. Extra
# wsproxy-fast flags come from $WSPROXY_FLAGS (see start_wsproxy).
#
# floor-epoll and floor-uring (bench/src/bin/) are the least a relay can
# do, on epoll and on io_uring: the head forwarded unparsed to the echo
# backend, then bytes relayed both ways. Plaintext only; they bind port 0
# and run as many workers as start_wsproxy gives wsproxy-fast.

tls=${tls:-false}
# --- /proc sampling ------------------------------------------------------------

# Field N (1-based, as in proc(5)) of /proc/PID/stat, for N >= 3.
stat_field() {
  local stat rest fields
  # read, not $(<FILE): see alive in lib.sh.
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || { echo 0; return; }
  rest=${stat##*) }
  read -ra fields <<<"$rest"
  echo "${fields[$(($2 - 3))]}"
}

# Sum of utime+stime (clock ticks) over PIDs.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(stat_field "$pid" 14) + $(stat_field "$pid" 15)))
  done
  echo "$total"
}

# Sum of stime alone (clock ticks) over PIDs: the kernel's share.
sys_ticks() {
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(stat_field "$pid" 15)))
  done
  echo "$total"
}

# CPU ticks of this shell's waited-for children (the load generator).
child_ticks() {
  echo $(($(stat_field $$ 16) + $(stat_field $$ 17)))
}

# Sum of VmRSS (KiB) over PIDs.
rss_kb() {
  local total=0 pid kb
  for pid in "$@"; do
    kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

children_of() {
  local parent=$1 f stat rest fields
  for f in /proc/[0-9]*/stat; do
    # Processes come and go meanwhile; read, not $(<FILE): see alive in lib.sh.
    { read -r stat <"$f"; } 2>/dev/null || continue
    rest=${stat##*) }
    read -ra fields <<<"$rest"
    [ "${fields[1]}" = "$parent" ] && { f=${f#/proc/}; echo "${f%/stat}"; }
  done
  return 0
}

# --- the targets -----------------------------------------------------------------

# Address, main PID and (nginx) worker PIDs of each instance.
declare -A ADDR MAIN WORKERS

# launch_nginx_as NAME PORT: nginx instance NAME (nginx, nginx-http or
# nginx-api) on 127.0.0.1:PORT; returns as wait_port does.
launch_nginx_as() {
  local name=$1 dir=$out/$1 listen=127.0.0.1:$2 template upstream=
  case "$name" in
    nginx) template=nginx.conf.in upstream=$ECHO_ADDR ;;
    nginx-http) template=nginx-http.conf.in upstream=$API_ADDR ;;
    nginx-api) template=nginx-api.conf.in ;;
  esac
  if $tls && [ "$name" != nginx-api ]; then
    listen="$listen ssl"
    sed -e "s#@CERT@#$out/tls/cert.pem#g" -e "s#@KEY@#$out/tls/key.pem#g" \
      "$ROOT/bench/conf/nginx-tls.conf.in" >"$dir/server-tls.conf" || return 1
  else
    echo "# plaintext run: no TLS" >"$dir/server-tls.conf" || return 1
  fi
  sed -e "s#@PREFIX@#$dir#g" -e "s#@USER@#$(id -un)#g" -e "s#@UPSTREAM@#$upstream#g" \
    -e "s#@LISTEN@#$listen#g" -e "s#@ROOT@#$out/www#g" -e "s#@BODY@#${api_body:-}#g" \
    "$ROOT/bench/conf/$template" >"$dir/nginx.conf" || return 1
  spawn "$out/logs/$name.log" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  # nginx tries a taken port 5 times, 0.5 s apart, then gives up; it says
  # so on stderr.
  wait_port "127.0.0.1:$2" 10 "$SPAWNED" "$out/logs/$name.log"
}

# For start_on_free_port, which passes the port alone.
launch_nginx() { launch_nginx_as nginx "$1"; }
launch_nginx_http() { launch_nginx_as nginx-http "$1"; }
launch_nginx_api() { launch_nginx_as nginx-api "$1"; }

# start_nginx NAME: starts nginx instance NAME and waits for its workers.
start_nginx() {
  local name=$1 dir=$out/$1 want deadline
  mkdir -p "$dir"
  start_on_free_port "$name" "launch_${name//-/_}" || {
    tail_log "$out/logs/$name.log"
    tail_log "$dir/error.log"
    die "$name did not start"
  }
  MAIN[$name]=$SPAWNED
  ADDR[$name]=127.0.0.1:$PORT
  # worker_processes auto: one worker per core; the API upstream has one.
  want=$(nproc)
  [ "$name" != nginx-api ] || want=1
  deadline=$((SECONDS + 10))
  while [ "$(children_of "${MAIN[$name]}" | wc -l)" -lt "$want" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "$name started fewer than $want workers"
    sleep 0.05
  done
  WORKERS[$name]=$(children_of "${MAIN[$name]}" | sort | tr '\n' ' ')
}

# launch_haproxy_as NAME PORT: HAProxy instance NAME (haproxy or
# haproxy-http) on 127.0.0.1:PORT; returns as wait_port does.
launch_haproxy_as() {
  local name=$1 dir=$out/$1 bind_tls='' template=haproxy.cfg.in upstream=${ECHO_ADDR:-}
  if [ "$name" = haproxy-http ]; then
    template=haproxy-http.cfg.in upstream=$API_ADDR
  fi
  if $tls; then
    bind_tls=$(grep -v '^#' "$ROOT/bench/conf/haproxy-tls.in" | tr '\n' ' ' | sed -e "s#@CRT@#$out/tls/haproxy.pem#g")
  fi
  sed -e "s#@PREFIX@#$dir#g" -e "s#@UPSTREAM@#$upstream#g" -e "s#@BIND_TLS@#$bind_tls#g" \
    -e "s#@LISTEN@#127.0.0.1:$2#g" "$ROOT/bench/conf/$template" >"$dir/haproxy.cfg" || return 1
  spawn "$out/logs/$name.log" haproxy -db -f "$dir/haproxy.cfg"
  wait_port "127.0.0.1:$2" 10 "$SPAWNED" "$out/logs/$name.log"
}

launch_haproxy() { launch_haproxy_as haproxy "$1"; }
launch_haproxy_http() { launch_haproxy_as haproxy-http "$1"; }

# start_haproxy NAME: starts HAProxy instance NAME.
start_haproxy() {
  local name=$1
  mkdir -p "$out/$name"
  start_on_free_port "$name" "launch_${name//-/_}" || {
    tail_log "$out/logs/$name.log"
    die "$name did not start"
  }
  MAIN[$name]=$SPAWNED
  ADDR[$name]=127.0.0.1:$PORT
  WORKERS[$name]=
}

start_target_wsproxy() {
  if $tls; then
    start_wsproxy "$ECHO_ADDR" "$out/logs" --tls-cert "$out/tls/cert.pem" --tls-key "$out/tls/key.pem"
  else
    start_wsproxy "$ECHO_ADDR" "$out/logs"
  fi
  MAIN[wsproxy-fast]=$WSPROXY_PID
  ADDR[wsproxy-fast]=$WSPROXY_ADDR
  WORKERS[wsproxy-fast]=
}

# wsproxy-fast for the HTTP workloads, from its configuration file (which
# the command-line flags cannot be combined with); it binds port 0.
start_wsproxy_http() {
  local dir=$out/wsproxy-fast-http log tls_table='# plaintext run: no TLS'
  mkdir -p "$dir"
  if $tls; then
    tls_table="tls = { cert = \"$out/tls/cert.pem\", key = \"$out/tls/key.pem\" }"
  fi
  sed -e "s#@PREFIX@#$dir#g" -e "s#@ROOT@#$out/www#g" -e "s#@UPSTREAM@#$API_ADDR#g" \
    -e "s|@TLS@|$tls_table|g" "$ROOT/bench/conf/wsproxy-http.toml.in" >"$dir/wsproxy.toml"
  log=$(mktemp "$out/logs/wsproxy-http.XXXXXX.log")
  spawn "$log" "$WSPROXY_BIN" --config "$dir/wsproxy.toml"
  wait_line "$log" ' main: listening on ' 10 "$SPAWNED" ||
    die "wsproxy-fast did not start with $dir/wsproxy.toml"
  MAIN[wsproxy-fast-http]=$SPAWNED
  ADDR[wsproxy-fast-http]=$(sed -n 's/.* main: listening on //p' "$log" | head -n 1)
  WORKERS[wsproxy-fast-http]=
}

# Worker threads of each floor relay: those of wsproxy-fast (start_wsproxy).
FLOOR_WORKERS=2

# start_floor NAME: floor-epoll or floor-uring, from $BIN.
start_floor() {
  local name=$1 log
  log=$(mktemp "$out/logs/$name.XXXXXX.log")
  spawn "$log" "$BIN/$name" --listen 127.0.0.1:0 --upstream "$ECHO_ADDR" --workers "$FLOOR_WORKERS"
  wait_line "$log" '^listening on ' 10 "$SPAWNED" || {
    tail_log "$log"
    die "$name did not start"
  }
  MAIN[$name]=$SPAWNED
  ADDR[$name]=$(sed -n 's/^listening on //p' "$log" | head -n 1)
  WORKERS[$name]=
}

start_target() {
  case "$1" in
    floor-epoll | floor-uring) start_floor "$1" ;;
    direct) ADDR[direct]=$ECHO_ADDR MAIN[direct]='' WORKERS[direct]='' ;;
    direct-http) ADDR[direct-http]=$API_ADDR MAIN[direct-http]='' WORKERS[direct-http]='' ;;
    nginx | nginx-http) start_nginx "$1" ;;
    haproxy | haproxy-http) start_haproxy "$1" ;;
    wsproxy-fast) start_target_wsproxy ;;
    wsproxy-fast-http) start_wsproxy_http ;;
  esac
}

stop_target() {
  local pid=${MAIN[$1]:-}
  [ -n "$pid" ] || return 0
  # nginx's master stops its own workers on SIGTERM.
  stop "$pid"
  forget "$pid"
  MAIN[$1]=
}

# The PIDs whose CPU and memory count as the instance's: none for direct.
target_pids() {
  local main=${MAIN[$1]:-}
  [ -n "$main" ] || return 0
  echo "$main"
  [[ $1 != nginx* ]] || children_of "$main"
  return 0
}

# Whether the instance still runs as started (nginx: the same workers, none
# died and was replaced by the master).
target_alive() {
  local main=${MAIN[$1]:-}
  [ -n "$main" ] || return 0
  alive "$main" || return 1
  [[ $1 != nginx* ]] || [ "$(children_of "$main" | sort | tr '\n' ' ')" = "${WORKERS[$1]}" ]
}
