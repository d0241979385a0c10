#!/usr/bin/env bash
# Runs the fuzz targets under fuzz/ (cargo-fuzz, libFuzzer) and prints what
# each run did: executions, executions per second, coverage (libFuzzer's
# `cov`: edges, and `ft`: features) and the corpus size.
#
#   scripts/fuzz.sh TARGET [SECONDS]   one target (default 60 s)
#   scripts/fuzz.sh all SECONDS        every target, one after another
#   scripts/fuzz.sh list               the targets
#
# Targets: request_head, response_head, proxy_protocol, config, pipeline, nginx,
# h2_frame, h2_conn, hpack (see fuzz/README.md for what each checks besides panics).
#
# Installs cargo-fuzz (cargo install) when it is missing. It builds on the
# stable toolchain: with no sanitizer (the code under test has no unsafe)
# cargo-fuzz needs no nightly flag. Debug assertions and overflow checks
# are on. Each run is one job under `nice -n 19` (FUZZ_NICE overrides).
#
# The seeds in fuzz/corpus/TARGET are only read; what the run adds goes to
# fuzz/work/TARGET (git-ignored, kept between runs so a later run resumes)
# and a crash to fuzz/artifacts/TARGET/. A crash, an invariant failure or a
# timeout stops the run and fails this script; turn the input into a
# regression test (fuzz/README.md says how).
#
# Extra libFuzzer flags can follow after `--`, e.g.
#   scripts/fuzz.sh request_head 30 -- -max_len=16384
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TARGETS=(request_head response_head proxy_protocol config pipeline nginx h2_frame h2_conn hpack)
NICE=${FUZZ_NICE:-19}
# Inputs longer than this are not tried; above every target's limit
# (request heads of 1 KiB, response heads of 2 KiB, PROXY headers of 4 KiB).
MAX_LEN=8192
# An input that takes longer than this, in seconds, is reported as a hang.
INPUT_TIMEOUT=10

usage() {
  sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

ensure_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    note "installing cargo-fuzz"
    nice -n "$NICE" cargo install cargo-fuzz --locked
  fi
}

# build_flags: the cargo-fuzz options every build and run uses.
BUILD_FLAGS=(--sanitizer none --debug-assertions)

# run_target NAME SECONDS [LIBFUZZER FLAG...]
run_target() {
  local name=$1 seconds=$2
  shift 2
  local work=$ROOT/fuzz/work/$name artifacts=$ROOT/fuzz/artifacts/$name
  local log=$ROOT/fuzz/work/$name.log
  [ -d "$ROOT/fuzz/corpus/$name" ] || die "no seed corpus fuzz/corpus/$name"
  mkdir -p "$work" "$artifacts"
  note "$name: fuzzing for $seconds s (log: $log)"
  local status=0
  (cd "$ROOT" && nice -n "$NICE" cargo fuzz run "${BUILD_FLAGS[@]}" "$name" \
    "$work" "$ROOT/fuzz/corpus/$name" -- \
    -max_total_time="$seconds" -max_len=$MAX_LEN -timeout=$INPUT_TIMEOUT \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$@") >"$log" 2>&1 || status=$?
  summarise "$name" "$log" "$work"
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    die "$name: the run failed (exit $status); the input is in fuzz/artifacts/$name/"
  fi
}

# summarise NAME LOG WORKDIR: one line of figures from libFuzzer's output.
summarise() {
  local name=$1 log=$2 work=$3
  local runs execs last cov ft corpus
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corpus=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
  echo "fuzz: $name: executions=${runs:-?} exec/s=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corpus:-?} (entries/bytes; $(find "$work" -type f | wc -l) files in fuzz/work/$name)"
}

[ $# -ge 1 ] || usage
target=$1
shift
seconds=60
if [ $# -ge 1 ] && [ "$1" != -- ]; then
  seconds=$1
  shift
fi
[ "${1:-}" = -- ] && shift
[[ "$seconds" =~ ^[0-9]+$ ]] || die "SECONDS must be a whole number, not $seconds"

case "$target" in
  list)
    printf '%s\n' "${TARGETS[@]}"
    ;;
  all)
    ensure_cargo_fuzz
    for t in "${TARGETS[@]}"; do
      run_target "$t" "$seconds" "$@"
    done
    ;;
  *)
    printf '%s\n' "${TARGETS[@]}" | grep -qx -- "$target" ||
      die "unknown target $target (one of: ${TARGETS[*]}, or all)"
    ensure_cargo_fuzz
    run_target "$target" "$seconds" "$@"
    ;;
esac
