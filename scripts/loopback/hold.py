#!/usr/bin/env python3
"""One process of scripts/loopback-load.sh: holds established loopback TCP
connections until SIGTERM or SIGINT, or until the hold time is over.

    hold.py CONNECTIONS HOLD_SECS ADDRESS...

It listens on port 0 of every ADDRESS (127.0.0.x), then opens CONNECTIONS
connections round-robin over the addresses: each client socket binds its
own ADDRESS with port 0 first (as a load generator choosing its source
address does, e.g. wsbench --src-ips), so the kernel gives it a local port
from the ephemeral range on that address; the listener accepts it. Both
ends stay open, idle. It prints "holding N" once all are established.

Every socket has SO_LINGER 0, so closing it (at exit) sends a reset and
leaves nothing in TIME_WAIT behind. The process asks the kernel for
SIGTERM when its parent dies, so it cannot outlive the script.
"""

import ctypes
import resource
import signal
import socket
import struct
import sys

# prctl(2): deliver a signal to this process when its parent exits.
PR_SET_PDEATHSIG = 1
# Accept queue per listener; every connect is accepted before the next.
BACKLOG = 128
# Descriptors beyond two per connection: listeners, stdio, Python's own.
FD_SLACK = 64
# SO_LINGER on, 0 s: close() resets the connection, no TIME_WAIT.
LINGER_RESET = struct.pack("ii", 1, 0)


def fail(message):
    sys.exit("hold.py: " + message)


def main():
    if len(sys.argv) < 4:
        fail("usage: hold.py CONNECTIONS HOLD_SECS ADDRESS...")
    count, hold = int(sys.argv[1]), float(sys.argv[2])
    addresses = sys.argv[3:]
    stop = {signal.SIGTERM, signal.SIGINT}
    # Held until the wait below; one arriving during set-up ends it there.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    need = 2 * count + len(addresses) + FD_SLACK
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and need > hard:
        fail(f"{count} connections need {need} descriptors; the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    listeners = []
    for address in addresses:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((address, 0))
        listener.listen(BACKLOG)
        listeners.append(listener)

    held = []
    for i in range(count):
        listener = listeners[i % len(listeners)]
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        try:
            client.bind((listener.getsockname()[0], 0))
            client.connect(listener.getsockname())
        except OSError as e:
            fail(f"connection {i + 1} of {count} to {listener.getsockname()}: {e}")
        accepted, _ = listener.accept()
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        held += (client, accepted)

    print(f"holding {count}", flush=True)
    got = signal.sigtimedwait(stop, hold)
    print("stopping: " + (signal.Signals(got.si_signo).name if got else "hold time over"), flush=True)


if __name__ == "__main__":
    main()
