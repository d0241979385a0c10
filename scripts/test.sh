#!/usr/bin/env bash
# The project's one test command (README and CI run exactly this): install
# the tools tests need, check that vendor/rustls is its release plus its one
# patch, check formatting and lints, run every test, run the
# demo once end to end, and a seconds-long smoke of the side-by-side bench
# (nginx, HAProxy), the k6 and the websocat load scripts so they cannot rot.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# nginx is the oracle tests/nginx.rs compares --nginx-config against;
# pebble the ACME CA of tests/acme.rs; h2 the HTTP/2 client library of
# tests/h2.rs and tests/h2_drain.rs; nghttp2 (nghttp, h2load) the HTTP/2
# clients of tests/h2_clients.rs.
scripts/setup.sh websocat systemd-analyze websockets h2 kubernetes-validate nginx pebble nghttp2
# `ip netns`: tests/source_addresses.rs runs out of ports in a namespace.
scripts/setup.sh iproute2
scripts/vendor-rustls.sh --check
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
scripts/demo.sh --once
scripts/smoke.sh
# Three nodes in network namespaces behind HAProxy: keys, a rolling upgrade
# by --takeover, capacity, a node killed (about 15 s).
scripts/fleet.sh --smoke
