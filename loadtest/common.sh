# Shared by the loadtest/ scripts; source it, do not run it. Parses the
# arguments every script takes and provides the target:
#
#   SCRIPT [--short] [--tls] [ws[s]://HOST:PORT/PATH]
#
#   --short     the seconds-long CI version of the test
#   --tls       test over TLS (wss://): the self-started wsproxy-fast gets a
#               certificate from scripts/tls-cert.sh (--tls-cert/--tls-key);
#               a wss:// URL implies it. Clients skip certificate checks.
#   URL         the proxy to test (also from $URL); without one the script
#               builds wsproxy-fast and wsbench, starts an echo backend and
#               wsproxy-fast --workers 2 $WSPROXY_FLAGS in front of it on free
#               loopback ports, and stops both when it exits.
#
# After `loadtest_args "$@"`: SHORT and TLS (true/false) and TARGET_URL are set.
# `require_tool NAME` prints the tool's path or fails loudly.
# `scratch_dir VAR` makes a temporary directory and puts its path in VAR; it
# is removed on exit if the script succeeded, kept (and named) if it failed.

. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

loadtest_args() {
  SHORT=false
  TLS=false
  TARGET_URL=${URL:-}
  while [ $# -gt 0 ]; do
    case "$1" in
      --short) SHORT=true ;;
      --tls) TLS=true ;;
      ws://* | wss://*) TARGET_URL=$1 ;;
      -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
      *) die "unknown argument '$1' (usage: $0 [--short] [--tls] [ws[s]://HOST:PORT/PATH])" ;;
    esac
    shift
  done
  case "$TARGET_URL" in
    wss://*) TLS=true ;;
    ws://*) ! $TLS || die "--tls needs a wss:// URL, not $TARGET_URL" ;;
  esac
  if [ -z "$TARGET_URL" ]; then
    scratch_dir LOADTEST_DIR
    build_release
    start_echo 1 "$LOADTEST_DIR"
    if $TLS; then
      "$ROOT/scripts/tls-cert.sh" "$LOADTEST_DIR/tls" >/dev/null
      start_wsproxy "$ECHO_ADDR" "$LOADTEST_DIR" \
        --tls-cert "$LOADTEST_DIR/tls/cert.pem" --tls-key "$LOADTEST_DIR/tls/key.pem"
      TARGET_URL=wss://$WSPROXY_ADDR/loadtest
    else
      start_wsproxy "$ECHO_ADDR" "$LOADTEST_DIR"
      TARGET_URL=ws://$WSPROXY_ADDR/loadtest
    fi
    note "started echo backend $ECHO_ADDR and wsproxy-fast $WSPROXY_ADDR$($TLS && echo ' (TLS)') (logs in $LOADTEST_DIR, kept if the test fails)"
  fi
}

require_tool() {
  find_tool "$1" || die "$1 is not installed: run scripts/setup.sh $1"
}

# Fails if the proxy this script started has died (a crash under load).
check_own_proxy() {
  if [ -n "${WSPROXY_PID:-}" ] && ! alive "$WSPROXY_PID"; then
    tail_log "$WSPROXY_LOG"
    die "wsproxy-fast died during the test"
  fi
}

SCRATCH_DIRS=()
scratch_dir() {
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/$LIB_NAME.XXXXXX")
  SCRATCH_DIRS+=("$dir")
  printf -v "$1" '%s' "$dir"
}

loadtest_exit() {
  local status=$?
  lib_cleanup
  if [ "$status" -eq 0 ]; then
    [ ${#SCRATCH_DIRS[@]} -eq 0 ] || rm -rf "${SCRATCH_DIRS[@]}"
  elif [ ${#SCRATCH_DIRS[@]} -gt 0 ]; then
    note "kept for inspection: ${SCRATCH_DIRS[*]}"
  fi
  return "$status"
}
trap loadtest_exit EXIT
