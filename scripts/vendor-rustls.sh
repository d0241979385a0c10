#!/usr/bin/env bash
# Re-creates vendor/rustls: the rustls release from crates.io (through
# `cargo vendor`, which checks the package's checksum) with
# vendor/rustls-invalid-sni.patch applied. See vendor/README.md for why.
#
#   scripts/vendor-rustls.sh VERSION    replace vendor/rustls with VERSION + the patch
#   scripts/vendor-rustls.sh --check    fail unless vendor/rustls is exactly its
#                                       version as published + the patch
#
# A 0.23.x security release is taken with the first form, then
# `cargo update -p rustls` and the tests (tests/tls.rs holds the SNI test).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

patch_file=$ROOT/vendor/rustls-invalid-sni.patch
check=false
case ${1:-} in
  --check)
    check=true
    version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/vendor/rustls/Cargo.toml" | head -1)
    ;;
  [0-9]*) version=$1 ;;
  *) die "usage: $0 VERSION | --check" ;;
esac
command -v git >/dev/null 2>&1 || die "git is not installed"

work=$(mktemp -d)
trap 'rm -rf "$work"; lib_cleanup' EXIT
mkdir -p "$work/project/src"
touch "$work/project/src/lib.rs"
cat >"$work/project/Cargo.toml" <<TOML
[package]
name = "vendor-rustls"
version = "0.0.0"
edition = "2021"
[dependencies]
rustls = { version = "=$version", default-features = false }
[workspace]
TOML
(cd "$work/project" && cargo vendor --versioned-dirs --quiet "$work/out" >/dev/null) ||
  die "cargo vendor could not fetch rustls $version"
tree=$work/tree
mkdir -p "$tree/vendor"
cp -r "$work/out/rustls-$version" "$tree/vendor/rustls"
rm "$tree/vendor/rustls/.cargo-checksum.json"
(cd "$tree" && git apply -p1 "$patch_file") ||
  die "the patch does not apply to rustls $version: redo it by hand and save it as $patch_file"

if $check; then
  diff -r "$tree/vendor/rustls" "$ROOT/vendor/rustls" >"$work/diff" || {
    tail_log "$work/diff"
    die "vendor/rustls is not rustls $version as published plus $(basename "$patch_file")"
  }
  note "vendor/rustls is rustls $version as published plus $(basename "$patch_file")"
else
  rm -rf "$ROOT/vendor/rustls"
  cp -r "$tree/vendor/rustls" "$ROOT/vendor/rustls"
  note "vendor/rustls is now rustls $version plus the patch; run cargo update -p rustls and the tests"
fi
