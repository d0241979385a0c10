#!/usr/bin/env bash
# Builds the OCI image of wsproxy-fast with podman: deploy/Containerfile,
# FROM scratch, holding a static binary and the CA certificates. Pulls no
# base image.
#
#   scripts/image.sh            build the static binary and the image
#   scripts/image.sh --check    the same, then run the image once and check it
#
# The binary is built for x86_64-unknown-linux-musl (rustup's target, with
# Debian's musl-gcc for ring's C and assembly): musl links into a static
# binary whole, and its resolver reads /etc/hosts and /etc/resolv.conf
# itself, which the container runtime provides. A static glibc binary
# (-C target-feature=+crt-static) would still load NSS modules at run time
# to resolve a host name (an upstream "app:9000"), and an image FROM
# scratch has none. The binary is stripped into target/image/ (the release
# profile keeps line tables for backtraces; the image does not need them).
#
# The image is IMAGE (default localhost/wsproxy-fast:VERSION, VERSION from
# Cargo.toml). scripts/setup.sh podman musl installs what this needs
# (podman and runc, the CA certificates, musl-gcc and the rustup target);
# anything missing exits 1 saying so.
#
# --check starts the image with podman, in quick mode in front of a
# wsbench echo backend on this machine, and checks that /healthz answers
# ok, that a WebSocket message comes back through it, and that
# `podman stop` (SIGTERM, the image's STOPSIGNAL) drains it: a tunnel held
# open gets Close 1001 and the container exits with status 0. The
# container runs with:
#   --network host        the proxy listens on 127.0.0.1 ports the kernel picks,
#                         as the tests do; no port publishing, no CNI bridge
#   --ulimit nofile, nproc  podman's defaults are above the hard limits of a
#                         host that denies CAP_SYS_RESOURCE (a sandbox): the
#                         runtime could not set them and would not start
#   --runtime runc        only where /sys/fs/cgroup is not cgroup v2 alone:
#                         crun refuses cgroup v1 and hybrid hosts
# PODMAN_RUN_FLAGS adds flags of your own. On failure the container's log
# is printed and the directory with the rest is kept.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown argument '$1' (usage: $0 [--check])" ;;
esac

TARGET=x86_64-unknown-linux-musl
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)
IMAGE=${IMAGE:-localhost/wsproxy-fast:$VERSION}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
STAGE=$ROOT/target/image

command -v podman >/dev/null 2>&1 || die "podman is missing: run scripts/setup.sh podman"
[ -f "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE: run scripts/setup.sh podman"
command -v x86_64-linux-musl-gcc >/dev/null 2>&1 ||
  die "musl-gcc is missing (ring's C code needs it): run scripts/setup.sh musl"
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" ||
  die "rustup has no $TARGET target: run scripts/setup.sh musl"

note "building the static binary ($TARGET)"
(cd "$ROOT" && cargo build --release --locked --quiet --target "$TARGET" -p wsproxy-fast)
binary=$ROOT/target/$TARGET/release/wsproxy-fast
file_type=$(file -b "$binary" 2>/dev/null || true)
case $file_type in
  *static*) ;;
  "") ;; # no file(1): podman's run below shows it anyway
  *) die "$binary is not static: $file_type" ;;
esac

rm -rf "$STAGE"
mkdir -p "$STAGE"
strip -o "$STAGE/wsproxy-fast" "$binary"
cp "$CA_BUNDLE" "$STAGE/ca-certificates.crt"
note "building $IMAGE from deploy/Containerfile ($(du -h "$STAGE/wsproxy-fast" | cut -f1) binary)"
podman build --quiet --build-arg "VERSION=$VERSION" -t "$IMAGE" \
  -f "$ROOT/deploy/Containerfile" "$STAGE" >/dev/null
podman image inspect --format '{{.Id}} {{.Size}} bytes' "$IMAGE" | sed "s|^|$LIB_NAME: $IMAGE |" >&2
$check || exit 0

# ---- --check: run it once --------------------------------------------------

run_flags=(--network host
  --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
[ -e /sys/fs/cgroup/cgroup.controllers ] || run_flags+=(--runtime runc)
read -ra own <<<"${PODMAN_RUN_FLAGS:-}"
run_flags+=("${own[@]}")

work=$(mktemp -d "${TMPDIR:-/tmp}/image-check.XXXXXX")
container=wsproxy-fast-check-$$
started=false
finish() {
  local rc=$?
  if $started; then
    podman logs "$container" >"$work/proxy.log" 2>&1 || true
    podman rm -f "$container" >/dev/null 2>&1 || true
  fi
  lib_cleanup
  if [ "$rc" -eq 0 ]; then
    rm -rf "$work"
  else
    note "the container's log:"
    tail_log "$work/proxy.log"
    note "logs kept in $work"
  fi
}
trap finish EXIT

note "building the echo backend (wsbench)"
(cd "$ROOT" && cargo build --release --quiet -p wsproxy-bench)
start_echo 1 "$work"

podman run -d --name "$container" "${run_flags[@]}" "$IMAGE" \
  --listen 127.0.0.1:0 --admin 127.0.0.1:0 --upstream "$ECHO_ADDR" --workers 2 \
  --drain-spread 1s --drain-timeout 10s >/dev/null
started=true

# wait_logged RE: until the container has logged a line matching RE (10 s).
wait_logged() {
  local deadline=$((SECONDS + 10))
  while :; do
    podman logs "$container" >"$work/proxy.log" 2>&1 || true
    whole_line "$work/proxy.log" "$1" && return 0
    [ "$(podman inspect --format '{{.State.Running}}' "$container")" = true ] ||
      die "the container exited before logging /$1/"
    [ "$SECONDS" -lt "$deadline" ] || die "the container logged no /$1/ within 10 s"
    sleep 0.1
  done
}
wait_logged ' main: listening on '
wait_logged ' main: admin endpoints on '
proxy_addr=$(sed -n 's/.* main: listening on //p' "$work/proxy.log" | head -n 1)
admin_addr=$(sed -n 's|.* main: admin endpoints on http://\([^/]*\)/.*|\1|p' "$work/proxy.log" | head -n 1)
[ -n "$proxy_addr" ] && [ -n "$admin_addr" ] || die "no listening or admin address in the log"
note "the container listens on $proxy_addr, admin on $admin_addr"

# /healthz, over bash's /dev/tcp: the answer is read to the close.
exec 3<>"/dev/tcp/${admin_addr%:*}/${admin_addr##*:}"
printf 'GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$admin_addr" >&3
health=$(timeout 5 cat <&3 | tr -d '\r') || true
exec 3<&-
[[ $health == "HTTP/1.1 200"* ]] && [[ $health == *$'\n\n'ok* ]] ||
  die "/healthz did not answer 200 ok: $health"
note "/healthz: ok"

reply=$("$BIN/wsbench" send --url "ws://$proxy_addr/check" "through the image")
[ "$reply" = "through the image" ] || die "the echo came back as '$reply'"
note "a WebSocket message came back through the container"

# A tunnel held open across the stop: it must get the drain's Close 1001.
python3 - "$proxy_addr" >"$work/hold.out" 2>&1 <<'EOF' &
import base64, os, socket, struct, sys

addr = sys.argv[1]
host, port = addr.rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=30)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(
    (
        f"GET /hold HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
)
data = b""
while b"\r\n\r\n" not in data:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("closed during the handshake")
    data += chunk
head, data = data.split(b"\r\n\r\n", 1)
if not head.startswith(b"HTTP/1.1 101"):
    sys.exit("no upgrade: " + head.decode(errors="replace"))
print("open", flush=True)
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
# The frames the proxy sent until its FIN; the first Close's status code.
i = 0
while i + 2 <= len(data):
    opcode, size, at = data[i] & 0x0F, data[i + 1] & 0x7F, i + 2
    if size == 126:
        size, at = struct.unpack(">H", data[at : at + 2])[0], at + 2
    elif size == 127:
        size, at = struct.unpack(">Q", data[at : at + 8])[0], at + 8
    if data[i + 1] & 0x80:
        at += 4
    if opcode == 8:
        payload = data[at : at + size]
        print("close", struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else "none")
        sys.exit(0)
    i = at + size
print("close none: no Close frame before the end")
EOF
hold_pid=$!
LIB_PIDS+=("$hold_pid")
wait_line "$work/hold.out" '^open$' 10 "$hold_pid" || die "the held tunnel did not open"

note "podman stop (SIGTERM): draining"
podman stop --time 30 "$container" >/dev/null
status=$(podman inspect --format '{{.State.ExitCode}}' "$container")
wait "$hold_pid" || true
forget "$hold_pid"
podman logs "$container" >"$work/proxy.log" 2>&1 || true
grep -q 'SIGTERM received; draining' "$work/proxy.log" || die "the log shows no drain"
whole_line "$work/proxy.log" ' main: stopped$' || die "the log does not say it stopped"
[ "$status" = 0 ] || die "the container exited with status $status"
grep -qx 'close 1001' "$work/hold.out" || die "the held tunnel got no Close 1001: $(cat "$work/hold.out")"
note "the container drained (the held tunnel got Close 1001) and exited with status 0"
