"""Twenty WebSocket cases in the manner of the Autobahn|Testsuite, each sent
twice through the proxy to the same echo upstream: over HTTP/2 (extended
CONNECT, RFC 8441) and over HTTP/1.1 (an Upgrade on a TLS connection).
The octets that come back have to be the same on both paths, and end with
the Close the case expects.

    replay.py HOST:PORT CA-FILE [PATH]

PATH (default /echo) routes to an echo upstream that behaves like
Autobahn's: it echoes data frames as they come, answers a Ping with a Pong,
ignores Pongs, answers a Close with the same code (1002 for an invalid
code or a 1-octet payload, nothing for an empty one) and then closes; a
text message that is not UTF-8 gets 1007, a control frame over 125 octets
1002. Prints the table; exits 1 if any case differs.
"""

import struct
import sys
import time

from peer import (
    BINARY,
    CLOSE,
    CONT,
    PONG,
    TEXT,
    WS_PING,
    BUDGET,
    Fail,
    Lib,
    Target,
    tls_connect,
    ws_close,
    ws_describe,
    ws_frame,
    ws_parse,
)


def fragments(opcode, payload, n):
    size = -(-len(payload) // n)
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)]
    return [
        ws_frame(opcode if i == 0 else CONT, p, fin=i == len(pieces) - 1)
        for i, p in enumerate(pieces)
    ]


BYE = ws_close(1000)

# (name, frames the client sends, the close code the upstream ends with;
# None for an empty Close).
CASES = [
    ("text 'Hello'", [ws_frame(TEXT, b"Hello"), BYE], 1000),
    ("binary of 125 octets", [ws_frame(BINARY, bytes(range(125))), BYE], 1000),
    ("text of 126 octets (16-bit length)", [ws_frame(TEXT, b"*" * 126), BYE], 1000),
    ("binary of 65 536 octets (64-bit length)", [ws_frame(BINARY, bytes(range(256)) * 256), BYE], 1000),
    ("text in 3 fragments", fragments(TEXT, b"fragmented text!", 3) + [BYE], 1000),
    (
        "binary in 2 fragments, Ping between",
        [ws_frame(BINARY, b"first", fin=False), ws_frame(WS_PING, b"between"), ws_frame(CONT, b"second"), BYE],
        1000,
    ),
    (
        "text in 2 fragments, Pong between",
        [ws_frame(TEXT, b"one ", fin=False), ws_frame(PONG, b"unsolicited"), ws_frame(CONT, b"two"), BYE],
        1000,
    ),
    ("Ping of 125 octets", [ws_frame(WS_PING, b"p" * 125), BYE], 1000),
    ("empty Ping", [ws_frame(WS_PING), BYE], 1000),
    ("unsolicited Pong, then text", [ws_frame(PONG, b"hi"), ws_frame(TEXT, b"after pong"), BYE], 1000),
    ("Close 1000 with a reason", [ws_frame(TEXT, b"x"), ws_close(1000, b"normal closure")], 1000),
    ("Close 1001", [ws_close(1001)], 1001),
    ("Close without a payload", [ws_frame(BINARY, b"\x00\xff"), ws_close()], None),
    ("Close with a 1-octet payload", [ws_frame(CLOSE, b"\x03")], 1002),
    ("Close 999", [ws_close(999)], 1002),
    ("Close 1005 (never on the wire)", [ws_close(1005)], 1002),
    ("Close 3000 (registered)", [ws_close(3000, b"app")], 3000),
    ("Close 5000", [ws_close(5000)], 1002),
    ("text that is not UTF-8", [ws_frame(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")], 1007),
    ("Ping of 126 octets", [ws_frame(WS_PING, b"p" * 126)], 1002),
]


def over_h2(t, path, sent):
    lib = Lib(t)
    try:
        stream = lib.websocket(path)
        answer = lib.response(stream)
        if answer.get(":status") != "200":
            raise Fail(f"extended CONNECT answered {answer}")
        lib.send(stream, sent)
        got, end = lib.received(stream, lambda b: False)
        if end != "END_STREAM":
            raise Fail(f"the tunnel ended with {end}, not END_STREAM")
        return got
    finally:
        lib.close()


def over_h1(t, path, sent):
    sock = tls_connect(t, alpn=("http/1.1",), expect="http/1.1")
    try:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {t.authority()}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(65536)
            if not chunk:
                raise Fail(f"no answer to the upgrade: {got!r}")
            got += chunk
        head, got = got.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise Fail(f"upgrade answered {head.splitlines()[0]!r}")
        sock.sendall(sent)
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, OSError):
                break
            if not chunk:
                break
            got += chunk
        return got
    finally:
        sock.close()


def closing_code(frames):
    if not frames or frames[-1][1] != CLOSE:
        return "no Close"
    payload = frames[-1][2]
    return struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None


def main(argv):
    t = Target.from_argv(argv[:2])
    path = argv[2] if len(argv) > 2 else "/echo"
    failed = 0
    print(f"{'#':>2}  {'case':<40} {'over HTTP/2':<40} {'over HTTP/1.1':<40} outcome")
    start = time.monotonic()
    for i, (name, frames, close) in enumerate(CASES, 1):
        started = time.monotonic()
        sent = b"".join(frames)
        h2_said = h1_said = "-"
        try:
            if started - start > BUDGET:
                raise Fail(f"not run, {BUDGET:.0f}s spent on the cases before")
            h2_got = over_h2(t, path, sent)
            h2_frames, h2_rest = ws_parse(h2_got)
            h2_said = ws_describe(h2_frames)
            h1_got = over_h1(t, path, sent)
            h1_frames, _ = ws_parse(h1_got)
            h1_said = ws_describe(h1_frames)
            if h2_got != h1_got:
                outcome = "FAIL the octets differ"
            elif h2_rest:
                outcome = f"FAIL {len(h2_rest)} octets after the last whole frame"
            elif closing_code(h2_frames) != close:
                outcome = f"FAIL ends with {closing_code(h2_frames)}, expected Close {close}"
            else:
                outcome = "ok, the same octets"
        except (Fail, OSError) as e:
            outcome = f"FAIL {type(e).__name__}: {e}"
        failed += not outcome.startswith("ok")
        print(
            f"{i:>2}  {name:<40} {h2_said:<40} {h1_said:<40} {outcome} ({time.monotonic() - started:.2f}s)",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
