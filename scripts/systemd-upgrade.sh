#!/usr/bin/env bash
# Runs the binary upgrade of deploy/wsproxy-fast.socket and
# deploy/wsproxy-fast@.service under a real systemd, and counts refused
# clients. It boots systemd in a container (systemd-nspawn: this machine's
# /usr read-only, a network namespace of its own, a throwaway root in
# target/systemd-upgrade/) and there, while a client connects every few
# milliseconds to the socket's address, does what the README's "Upgrading
# the binary under systemd" says:
#
#   systemctl start wsproxy-fast.socket wsproxy-fast@a
#   systemctl start wsproxy-fast@b          (the new binary beside the old)
#   systemctl stop wsproxy-fast@a           (drains and exits)
#
# then stops @b too and connects once more. It passes when every
# connection was answered (none refused, none left waiting), instance a
# stayed stopped while b ran (the socket starts nothing then), and, with
# no instance running, a client's arrival started wsproxy-fast@a and was
# answered.
#
#   scripts/systemd-upgrade.sh              the units as shipped, running
#                                           target/release/wsproxy-fast
#   scripts/systemd-upgrade.sh --stand-in   ExecStart= runs a few lines of
#                                           Python instead, which take the
#                                           sockets from LISTEN_FDS and
#                                           answer with the instance's name
#
# The stand-in checks systemd's part alone (both instances get the one
# socket, as the same user; the socket triggers nothing while an instance
# runs). The units are installed as shipped but for the binary's path
# (/usr is this machine's, read-only: /opt/wsproxy-fast/ instead); the
# configuration is examples/app-upstream.toml with a 3 s drain, checked by
# the real binary's --check in ExecStartPre= either way.
#
# Needs root, systemd-nspawn (scripts/setup.sh systemd-nspawn) and python3.
# Prints what it saw and exits 0, or 1 naming what failed; the container's
# boot log and its journal of the units stay in target/systemd-upgrade/out/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

stand_in=false
case "${1:-}" in
  "") ;;
  --stand-in) stand_in=true ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown argument '$1' (usage: $0 [--stand-in])" ;;
esac

command -v systemd-nspawn >/dev/null 2>&1 || die "systemd-nspawn is missing: run scripts/setup.sh systemd-nspawn"
command -v python3 >/dev/null 2>&1 || die "python3 is missing"
[ "$(id -u)" -eq 0 ] || die "systemd-nspawn needs root"
[ -x /lib/systemd/systemd ] || die "no /lib/systemd/systemd to boot: apt-get install systemd"

note "building target/release/wsproxy-fast"
(cd "$ROOT" && cargo build --release --quiet -p wsproxy-fast)

work=$ROOT/target/systemd-upgrade
root=$work/root
out=$work/out
rm -rf "$work"
mkdir -p "$root"/{etc/systemd/system/multi-user.target.wants,etc/wsproxy-fast,opt/wsproxy-fast,usr,var,tmp,run,root} "$out"
# A merged-/usr root: everything but /etc comes from this machine's /usr.
for dir in bin lib lib64 sbin; do ln -s "usr/$dir" "$root/$dir"; done
cp -L /etc/os-release /etc/passwd /etc/group /etc/nsswitch.conf "$root/etc/"
# A machine id: without one systemd takes this for a first boot and
# enables every installed service by preset.
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$root/etc/machine-id"
echo >>"$root/etc/machine-id"

cp "$BIN/wsproxy-fast" "$root/opt/wsproxy-fast/wsproxy-fast"
{
  cat "$ROOT/examples/app-upstream.toml"
  printf '\n[drain]\ntimeout = "3s"\nspread = "1s"\n'
} >"$root/etc/wsproxy-fast/wsproxy.toml"
sed 's|/usr/local/bin/wsproxy-fast|/opt/wsproxy-fast/wsproxy-fast|' \
  "$ROOT/deploy/wsproxy-fast.socket" >"$root/etc/systemd/system/wsproxy-fast.socket"
sed 's|/usr/local/bin/wsproxy-fast|/opt/wsproxy-fast/wsproxy-fast|' \
  "$ROOT/deploy/wsproxy-fast@.service" >"$root/etc/systemd/system/wsproxy-fast@.service"
address=$(sed -n 's/^ListenStream=//p' "$root/etc/systemd/system/wsproxy-fast.socket" | head -n 1)
port=${address##*:}

if $stand_in; then
  sed -i 's|^ExecStart=.*|ExecStart=/usr/bin/python3 /opt/wsproxy-fast/stand-in.py %i|' \
    "$root/etc/systemd/system/wsproxy-fast@.service"
  cat >"$root/opt/wsproxy-fast/stand-in.py" <<'EOF'
# Takes the listening sockets from LISTEN_FDS and answers each connection
# with the instance's name; on SIGTERM stops accepting without shutting
# the sockets (the other instance accepts from them), waits 2 s, exits 0.
import os, signal, socket, sys, time

name = sys.argv[1]
assert int(os.environ["LISTEN_PID"]) == os.getpid(), "LISTEN_PID is not this process"
sockets = [socket.socket(fileno=3 + i) for i in range(int(os.environ["LISTEN_FDS"]))]
print(name, "got", [s.getsockname() for s in sockets], "uid", os.getuid(), flush=True)
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
for s in sockets:
    s.settimeout(0.02)
while not stop:
    for s in sockets:
        try:
            client, _ = s.accept()
        except (socket.timeout, InterruptedError):
            continue
        client.sendall(name.encode() + b"\n")
        client.close()
print(name, "stopped accepting; draining", flush=True)
time.sleep(2)
EOF
fi

# The client: connects every 5 ms for SECONDS, sends a request, counts the
# first line of each answer (an instance's name, or the proxy's status
# line) and each failure by kind.
cat >"$root/opt/wsproxy-fast/clients.py" <<EOF
import collections, socket, sys, time

seconds, path = float(sys.argv[1]), sys.argv[2]
seen = collections.Counter()
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        with socket.create_connection(("127.0.0.1", $port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            line = s.makefile("rb").readline().decode(errors="replace").strip()
        seen["answered " + (line or "nothing")] += 1
    except OSError as e:
        seen["failed " + (e.strerror or type(e).__name__)] += 1
    time.sleep(0.005)
with open(path, "w") as f:
    f.writelines(f"{n} {what}\n" for what, n in sorted(seen.items()))
EOF

# Inside the container, at boot: the recipe, results as lines in /out.
cat >"$root/opt/wsproxy-fast/upgrade.sh" <<'EOF'
#!/bin/bash
exec >/out/upgrade.log 2>&1
set -x
say() { echo "$*" >>/out/result; }
systemctl start wsproxy-fast.socket wsproxy-fast@a
sleep 1
python3 /opt/wsproxy-fast/clients.py 10 /out/clients &
clients=$!
sleep 2
systemctl start wsproxy-fast@b
sleep 2
say "b after start: $(systemctl is-active wsproxy-fast@b)"
systemctl stop wsproxy-fast@a
sleep 3
say "a while b runs: $(systemctl is-active wsproxy-fast@a)"
wait "$clients"
systemctl stop wsproxy-fast@b
say "with no instance: $(systemctl is-active wsproxy-fast@a) $(systemctl is-active wsproxy-fast@b)"
python3 /opt/wsproxy-fast/clients.py 0.001 /out/first-client
say "a after a client came: $(systemctl is-active wsproxy-fast@a)"
systemctl stop wsproxy-fast@a
journalctl --no-pager -o short-monotonic -u 'wsproxy-fast*' >/out/journal
systemctl poweroff
EOF
cat >"$root/etc/systemd/system/upgrade.service" <<'EOF'
[Service]
Type=oneshot
ExecStart=/bin/bash /opt/wsproxy-fast/upgrade.sh
EOF
ln -s ../upgrade.service "$root/etc/systemd/system/multi-user.target.wants/upgrade.service"

note "booting systemd in a container (a minute at most)"
rc=0
timeout 180 systemd-nspawn --quiet -D "$root" --bind-ro=/usr --bind="$out:/out" --private-network \
  -M wsproxy-upgrade --register=no --keep-unit --boot >"$out/boot.log" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || die "systemd-nspawn exited with status $rc (log: $out/boot.log)"
[ -s "$out/result" ] && [ -s "$out/clients" ] || die "the recipe did not run to its end: $out/upgrade.log"

sed 's/^/  /' "$out/result" "$out/clients" "$out/first-client" >&2
# why MESSAGE: fails, adding the likely cause when the journal shows it.
why() {
  if grep -q 'cannot listen on .*address already in use' "$out/journal" 2>/dev/null; then
    set -- "$1; the binary bound the socket's address itself instead of taking the inherited socket (LISTEN_FDS)"
  fi
  die "$1 (logs: $out)"
}
grep -qx 'b after start: active' "$out/result" || why "wsproxy-fast@b did not stay up"
grep -qx 'a while b runs: inactive' "$out/result" || why "wsproxy-fast@a did not stop, or the socket started it again while @b ran"
grep -qx 'with no instance: inactive inactive' "$out/result" || why "an instance ran after both were stopped"
grep -qx 'a after a client came: active' "$out/result" || why "a client's arrival did not start wsproxy-fast@a"
! grep -q ' failed ' "$out/clients" "$out/first-client" || why "clients were refused or unanswered"
! grep -q 'answered nothing' "$out/clients" "$out/first-client" || why "connections were closed unanswered"
if $stand_in; then
  grep -q ' answered a$' "$out/clients" && grep -q ' answered b$' "$out/clients" ||
    why "not both instances answered during the overlap"
fi
note "every client was answered across the upgrade; the socket started @a only with no instance running"
