"""Holds WebSocket tunnels open over one HTTP/2 connection, so tests/h2.rs
can read the proxy's gauges while they live.

    tunnels.py HOST:PORT CA-FILE N

Opens N tunnels to /ws, gets one echo on each, prints "open", waits for a
line on stdin, then closes each with a Close handshake and prints
"closed".
"""

import sys

from peer import CLOSE, TEXT, Fail, Lib, Target, ws_close, ws_frame, ws_parse


def main(argv):
    t, n = Target.from_argv(argv[:2]), int(argv[2])
    lib = Lib(t)
    streams = [lib.websocket() for _ in range(n)]
    for s in streams:
        answer = lib.response(s)
        if answer.get(":status") != "200":
            raise Fail(f"stream {s} answered {answer}")
        lib.send(s, ws_frame(TEXT, f"stream {s}".encode()))
        got, end = lib.received(s, lambda b: len(ws_parse(b)[0]) >= 1)
        if ws_parse(got)[0][0][2] != f"stream {s}".encode():
            raise Fail(f"stream {s} echoed {got!r} ({end})")
    print("open", flush=True)
    sys.stdin.readline()
    for s in streams:
        lib.send(s, ws_close(1000), end_stream=True)
        got, end = lib.received(s, lambda b: False)
        frames, _ = ws_parse(got)
        if [f[1] for f in frames] != [CLOSE] or end != "END_STREAM":
            raise Fail(f"stream {s} closed with {frames} ({end})")
    lib.close()
    print("closed", flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (Fail, OSError) as e:
        print(f"FAIL  tunnels: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
