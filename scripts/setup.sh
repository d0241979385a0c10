#!/usr/bin/env bash
# Installs the third-party tools the tests and benchmarks drive, if missing.
# Safe to re-run. Usage: scripts/setup.sh [websocat] ...   (default: websocat)
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/$1" ]; }

install_websocat() {
  if have websocat; then
    echo "setup: websocat present"
    return
  fi
  echo "setup: installing websocat 1.x from crates.io (a few minutes of compiling)"
  cargo install websocat --version '^1' --locked
}

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(websocat)
for tool in "${tools[@]}"; do
  case "$tool" in
    websocat) install_websocat ;;
    *) echo "setup: unknown tool '$tool'" >&2; exit 2 ;;
  esac
done
