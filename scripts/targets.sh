# Shell helpers shared by scripts/compare.sh and scripts/attack.sh: the
# proxies under test started in front of the echo backend, and /proc
# sampling of their CPU and memory. Source it after lib.sh, do not run it:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/targets.sh"
#
# The caller sets `out` (the run's directory: configurations under
# out/nginx and out/haproxy, logs under out/logs), `tls` (true or false:
# with true, the certificate is out/tls/, see scripts/tls-cert.sh) and,
# before starting a target, ECHO_ADDR and ECHO_PID (start_echo in lib.sh).
#
#   start_target NAME        direct | nginx | haproxy | wsproxy-fast: its
#                            address in ADDR[NAME], main PID in MAIN[NAME]
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

declare -A ADDR MAIN WORKERS

# launch_nginx PORT: nginx on 127.0.0.1:PORT; returns as wait_port does.
launch_nginx() {
  local dir=$out/nginx listen=127.0.0.1:$1
  if $tls; then
    listen="$listen ssl"
    sed -e "s#@CERT@#$out/tls/cert.pem#g" -e "s#@KEY@#$out/tls/key.pem#g" \
      "$ROOT/bench/conf/nginx-tls.conf.in" >"$dir/server-tls.conf" || return 1
  else
    echo "# plaintext run: no TLS" >"$dir/server-tls.conf" || return 1
  fi
  sed -e "s#@PREFIX@#$dir#g" -e "s#@USER@#$(id -un)#g" -e "s#@UPSTREAM@#$ECHO_ADDR#g" \
    -e "s#@LISTEN@#$listen#g" "$ROOT/bench/conf/nginx.conf.in" >"$dir/nginx.conf" || return 1
  spawn "$out/logs/nginx.log" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
  # nginx tries a taken port 5 times, 0.5 s apart, then gives up; it says
  # so on stderr.
  wait_port "127.0.0.1:$1" 10 "$SPAWNED" "$out/logs/nginx.log"
}

start_nginx() {
  local dir=$out/nginx want deadline
  mkdir -p "$dir"
  start_on_free_port nginx launch_nginx || {
    tail_log "$out/logs/nginx.log"
    tail_log "$dir/error.log"
    die "nginx did not start"
  }
  MAIN[nginx]=$SPAWNED
  ADDR[nginx]=127.0.0.1:$PORT
  # worker_processes auto: one worker per core.
  want=$(nproc)
  deadline=$((SECONDS + 10))
  while [ "$(children_of "${MAIN[nginx]}" | wc -l)" -lt "$want" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "nginx started fewer than $want workers"
    sleep 0.05
  done
  WORKERS[nginx]=$(children_of "${MAIN[nginx]}" | sort | tr '\n' ' ')
}

# launch_haproxy PORT: HAProxy on 127.0.0.1:PORT; returns as wait_port does.
launch_haproxy() {
  local dir=$out/haproxy bind_tls=
  if $tls; then
    bind_tls=$(grep -v '^#' "$ROOT/bench/conf/haproxy-tls.in" | tr '\n' ' ' | sed -e "s#@CRT@#$out/tls/haproxy.pem#g")
  fi
  sed -e "s#@PREFIX@#$dir#g" -e "s#@UPSTREAM@#$ECHO_ADDR#g" -e "s#@BIND_TLS@#$bind_tls#g" \
    -e "s#@LISTEN@#127.0.0.1:$1#g" "$ROOT/bench/conf/haproxy.cfg.in" >"$dir/haproxy.cfg" || return 1
  spawn "$out/logs/haproxy.log" haproxy -db -f "$dir/haproxy.cfg"
  wait_port "127.0.0.1:$1" 10 "$SPAWNED" "$out/logs/haproxy.log"
}

start_haproxy() {
  mkdir -p "$out/haproxy"
  start_on_free_port haproxy launch_haproxy || {
    tail_log "$out/logs/haproxy.log"
    die "haproxy did not start"
  }
  MAIN[haproxy]=$SPAWNED
  ADDR[haproxy]=127.0.0.1:$PORT
  WORKERS[haproxy]=
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

start_target() {
  case "$1" in
    direct) ADDR[direct]=$ECHO_ADDR MAIN[direct]='' WORKERS[direct]='' ;;
    nginx) start_nginx ;;
    haproxy) start_haproxy ;;
    wsproxy-fast) start_target_wsproxy ;;
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

# The PIDs whose CPU and memory count as the target's: none for direct.
target_pids() {
  local main=${MAIN[$1]:-}
  [ -n "$main" ] || return 0
  echo "$main"
  [ "$1" = nginx ] && children_of "$main"
  return 0
}

# Whether the target still runs as started (nginx: the same workers, none
# died and was replaced by the master).
target_alive() {
  local main=${MAIN[$1]:-}
  [ -n "$main" ] || return 0
  alive "$main" || return 1
  [ "$1" != nginx ] || [ "$(children_of "$main" | sort | tr '\n' ' ')" = "${WORKERS[nginx]}" ]
}
