#!/usr/bin/env bash
# The project's one test command (README and CI run exactly this): install
# the tools tests need, check formatting and lints, run every test, and run
# the demo once end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh websocat
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
scripts/demo.sh --once
