"""RFC 9113 and RFC 8441 conformance of the proxy's HTTP/2 listener, one
case a connection, each checking the error code (or answer) the RFC
requires.

    conformance.py HOST:PORT CA-FILE [CASE...]

The proxy routes /ws to a WebSocket echo upstream, /hold to an upstream
that never answers (streams there stay open), /http to a plain HTTP/1.1
upstream, /origin to the echo with an Origin allow-list of
https://good.example, /down to a closed port, /reset to an upstream that
resets the connection on the first frame, /static/ to files (hello.txt
holds "hello over h2\\n"); nothing else. Prints one line a case; exits 1 if
any failed.
"""

import struct
import sys

import h2.events
import h2.settings

from peer import (
    ACK,
    BINARY,
    CLOSE,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENABLE_PUSH,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE,
    PING,
    PRIORITY,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    TEXT,
    WINDOW_UPDATE,
    CONT,
    PREFACE,
    Fail,
    Lib,
    Raw,
    Target,
    frame,
    run_table,
    settings_payload,
    ws_close,
    ws_frame,
    ws_parse,
    ws_describe,
)


def get(t, path, extra=()):
    return [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", path),
        (":authority", t.authority()),
        *extra,
    ]


def connect(t, path="/ws", extra=()):
    return [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", path),
        (":authority", t.authority()),
        ("sec-websocket-version", "13"),
        *extra,
    ]


def goaway_on(frames, name, settings=()):
    """A case: `frames(raw)` gives bytes whose sending is a connection
    error `name`."""

    def case(t):
        raw = Raw(t, settings)
        try:
            raw.send(frames(raw))
            return raw.expect_goaway(name)
        finally:
            raw.close()

    return case


def reset_on(headers, name="PROTOCOL_ERROR", end_stream=True):
    """A case: a request with `headers(t)` on stream 1 is a stream error
    `name`, and the connection goes on."""

    def case(t):
        raw = Raw(t)
        try:
            raw.headers(1, headers(t), end_stream=end_stream)
            outcome = raw.expect_reset(1, name)
            raw.ping_ok()
            return outcome + ", connection still answers PING"
        finally:
            raw.close()

    return case


def status_of(t, headers):
    lib = Lib(t)
    try:
        # A CONNECT's stream stays open for the tunnel; a GET ends with its head.
        stream = lib.request(headers, end_stream=headers[0][1] != "CONNECT")
        return lib.response(stream), lib, stream
    except Exception:
        lib.close()
        raise


def expect_status(headers, status, body=None):
    def case(t):
        answer, lib, stream = status_of(t, headers(t))
        try:
            if answer.get(":status") != str(status):
                raise Fail(f":status {answer.get(':status')}, expected {status}: {answer}")
            if body is not None:
                got, _ = lib.received(stream, lambda b: False)
                if got != body:
                    raise Fail(f"body {got[:80]!r}, expected {body!r}")
            return f":status {status}"
        finally:
            lib.close()

    return case


# --- Frames and streams (RFC 9113 §4, §5, §6) ---


def frame_too_large(raw):
    # §4.2: over our SETTINGS_MAX_FRAME_SIZE of 16 384.
    return frame(PING, 0, 0, bytes(16385))


def data_oversize_on_open_stream(raw):
    raw.headers(1, connect(raw.target, "/hold"))
    return frame(DATA, 0, 1, bytes(16385))


def data_on_idle_stream(raw):
    return frame(DATA, 0, 1, b"x")


def headers_on_even_stream(raw):
    return frame(HEADERS, END_HEADERS | END_STREAM, 2, raw.block(get(raw.target, "/http")))


def headers_on_closed_stream(raw):
    # Stream 3 makes 1 closed (§5.1.1: streams below the highest are closed).
    h = frame(HEADERS, END_HEADERS | END_STREAM, 3, raw.block(get(raw.target, "/hold")))
    return h + frame(HEADERS, END_HEADERS | END_STREAM, 1, raw.block(get(raw.target, "/hold")))


def data_on_stream_zero(raw):
    return frame(DATA, 0, 0, b"x")


def rst_on_idle_stream(raw):
    return frame(RST_STREAM, 0, 5, struct.pack(">I", 8))


def push_promise_from_client(raw):
    return frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + raw.block(get(raw.target, "/")))


def continuation_without_headers(raw):
    return frame(CONTINUATION, END_HEADERS, 1, raw.block(get(raw.target, "/http")))


def frame_inside_field_block(raw):
    # §6.10: nothing but CONTINUATION of that stream until END_HEADERS.
    block = raw.block(get(raw.target, "/http"))
    return frame(HEADERS, END_STREAM, 1, block[:3]) + frame(PING, 0, 0, bytes(8))


def ping_wrong_size(raw):
    return frame(PING, 0, 0, bytes(7))


def window_update_zero_on_connection(raw):
    return frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0))


def window_overflow_on_connection(raw):
    # §6.9.1: 65 535 + 2^31-1 passes 2^31-1.
    return frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF))


def settings_initial_window_too_big(raw):
    return frame(SETTINGS, 0, 0, settings_payload([(INITIAL_WINDOW_SIZE, 1 << 31)]))


def settings_max_frame_too_small(raw):
    return frame(SETTINGS, 0, 0, settings_payload([(MAX_FRAME_SIZE, 16383)]))


def settings_enable_push_two(raw):
    return frame(SETTINGS, 0, 0, settings_payload([(ENABLE_PUSH, 2)]))


def settings_ack_with_payload(raw):
    return frame(SETTINGS, ACK, 0, settings_payload([(INITIAL_WINDOW_SIZE, 1)]))


def settings_odd_length(raw):
    return frame(SETTINGS, 0, 0, bytes(5))


def settings_on_a_stream(raw):
    return frame(SETTINGS, 0, 1, b"")


def hpack_string_too_long(raw):
    # A literal value of 20 000 octets (over the 16 KiB string limit), not
    # Huffman coded, split over HEADERS and CONTINUATION.
    value = b"v" * 20000
    block = raw.block(get(raw.target, "/http")) + b"\x00\x01x" + b"\x7f" + _hpack_int(20000 - 127) + value
    return (
        frame(HEADERS, END_STREAM, 1, block[:16000])
        + frame(CONTINUATION, END_HEADERS, 1, block[16000:])
    )


def _hpack_int(n):
    """The continuation octets of an HPACK integer past its prefix."""
    out = b""
    while n >= 128:
        out += bytes([n % 128 + 128])
        n //= 128
    return out + bytes([n])


def hpack_bad_index(raw):
    # Index 200 is neither in the static table nor in the (empty) dynamic one.
    return frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff" + _hpack_int(200 - 127))


def first_frame_not_settings(t):
    raw = Raw(t, handshake=False)
    try:
        raw.send(PREFACE + frame(PING, 0, 0, bytes(8)))
        return raw.expect_goaway("PROTOCOL_ERROR")
    finally:
        raw.close()


def data_after_end_stream(t):
    # §5.1: half-closed (remote) takes no DATA: STREAM_CLOSED. /hold never
    # answers, so the stream stays half-closed until then.
    raw = Raw(t)
    try:
        raw.headers(1, get(t, "/hold"), end_stream=True)
        raw.data(1, b"late")
        outcome = raw.expect_reset(1, "STREAM_CLOSED")
        raw.ping_ok()
        return outcome
    finally:
        raw.close()


def window_overflow_on_stream(t):
    raw = Raw(t)
    try:
        raw.headers(1, get(t, "/hold"), end_stream=True)
        raw.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0x7FFFFFFF)))
        outcome = raw.expect_reset(1, "FLOW_CONTROL_ERROR")
        raw.ping_ok()
        return outcome
    finally:
        raw.close()


def data_beyond_stream_window(t):
    # The stream's window is 65 535 octets and /hold never takes the tunnel,
    # so nothing is consumed and no WINDOW_UPDATE comes: 65 536 octets
    # overflow it (§6.9.1).
    raw = Raw(t)
    try:
        raw.headers(1, connect(t, "/hold"))
        chunk = bytes(16384)
        raw.send(b"".join(frame(DATA, 0, 1, chunk) for _ in range(4)))
        outcome = raw.expect_reset(1, "FLOW_CONTROL_ERROR")
        raw.ping_ok()
        return outcome
    finally:
        raw.close()


def priority_frames_ignored(t):
    # §5.3.2: PRIORITY is accepted in any state, even idle, and ignored.
    raw = Raw(t)
    try:
        raw.send(frame(PRIORITY, 0, 3, struct.pack(">IB", 0, 15)))
        raw.send(frame(PRIORITY, 0, 9, struct.pack(">IB", 0x80000003, 200)))
        raw.headers(1, get(t, "/http"), end_stream=True, priority=struct.pack(">IB", 3, 10))
        outcome = raw.expect_status(1, 200)
        raw.ping_ok()
        return f"PRIORITY on idle streams and in HEADERS ignored, {outcome}"
    finally:
        raw.close()


def priority_on_itself(t):
    raw = Raw(t)
    try:
        raw.headers(1, get(t, "/hold"), end_stream=True)
        raw.send(frame(PRIORITY, 0, 1, struct.pack(">IB", 1, 0)))
        return raw.expect_reset(1, "PROTOCOL_ERROR")
    finally:
        raw.close()


def ping_answered(t):
    lib = Lib(t)
    try:
        lib.conn.ping(b"h2-test!")
        lib.flush()
        e = lib.wait(lambda e: isinstance(e, h2.events.PingAckReceived), "the PING ACK")
        if e.ping_data != b"h2-test!":
            raise Fail(f"PING ACK with {e.ping_data!r}")
        return "PING ACK with the same 8 octets"
    finally:
        lib.close()


def server_settings(t):
    raw = Raw(t)
    try:
        want = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384,
            h2.settings.SettingCodes.HEADER_TABLE_SIZE: 4096,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 32768,
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        }
        got = raw.server_settings
        wrong = {k.name: (got.get(int(k)), v) for k, v in want.items() if got.get(int(k)) != v}
        if wrong:
            raise Fail(f"SETTINGS (got, want): {wrong}")
        update = raw.until(lambda f: f.kind == WINDOW_UPDATE and f.stream == 0, "the connection WINDOW_UPDATE")
        increment = struct.unpack(">I", update.payload)[0]
        if 65535 + increment != 1 << 20:
            raise Fail(f"connection window 65535 + {increment}, expected 1 MiB")
        return "SETTINGS as documented, connection window 1 MiB"
    finally:
        raw.close()


def goaway_from_client(t):
    # §6.8: the client's GOAWAY stops streams the server would open (none
    # here); the client's own open stream carries on.
    lib = Lib(t)
    try:
        stream = lib.websocket()
        answer = lib.response(stream)
        if answer.get(":status") != "200":
            raise Fail(f"extended CONNECT answered {answer}")
        # Sent by hand: the h2 library sends nothing after its own GOAWAY.
        lib.sock.sendall(frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)))
        message = ws_frame(TEXT, b"after GOAWAY")
        lib.send(stream, message)
        got, ended = lib.received(stream, lambda b: len(ws_parse(b)[0]) >= 1)
        frames, _ = ws_parse(got)
        if not frames or frames[0][2] != b"after GOAWAY":
            raise Fail(f"echo after GOAWAY: {ws_describe(frames)}, end: {ended}")
        return "the open stream still echoes after the client's GOAWAY"
    finally:
        lib.close()


# --- Requests (RFC 9113 §8, RFC 8441 §4) ---


def upper_case_name(t):
    return get(t, "/http", [("X-Upper", "1")])


def missing_path(t):
    return [h for h in get(t, "/http") if h[0] != ":path"]


def connection_header(t):
    return get(t, "/http", [("connection", "keep-alive")])


def te_not_trailers(t):
    return get(t, "/http", [("te", "gzip")])


def pseudo_after_regular(t):
    h = get(t, "/http")
    return h[:3] + [("accept", "*/*")] + h[3:]


def unknown_pseudo(t):
    h = get(t, "/http")
    return h[:1] + [(":bogus", "1")] + h[1:]


def protocol_without_connect(t):
    h = get(t, "/ws")
    return h[:1] + [(":protocol", "websocket")] + h[1:]


def extended_connect_without_path(t):
    return [h for h in connect(t) if h[0] != ":path"]


def content_length_mismatch(t):
    raw = Raw(t)
    try:
        raw.headers(1, [(":method", "POST")] + get(t, "/hold")[1:] + [("content-length", "10")])
        raw.data(1, b"12345", end_stream=True)
        outcome = raw.expect_reset(1, "PROTOCOL_ERROR")
        raw.ping_ok()
        return outcome
    finally:
        raw.close()


def header_list_too_large(t):
    # 3 fields of 12 000 octets: 36 KB decoded, over the 32 KiB list
    # limit, in a block under 64 KiB: answered 431 (§10.5.1 of RFC 9113,
    # RFC 6585 §5).
    raw = Raw(t)
    try:
        extra = [(f"x-big-{i}", "b" * 12000) for i in range(3)]
        block = raw.block(get(t, "/http") + extra)
        frames = frame(HEADERS, END_STREAM, 1, block[:16384])
        rest = block[16384:]
        while rest:
            piece, rest = rest[:16384], rest[16384:]
            frames += frame(CONTINUATION, 0 if rest else END_HEADERS, 1, piece)
        raw.send(frames)
        outcome = raw.expect_status(1, 431)
        raw.ping_ok()
        return outcome
    finally:
        raw.close()


def post_body_past_the_window(t):
    # 100 000 octets: more than the stream's window of 65 535, so the
    # proxy has to give window back (WINDOW_UPDATE) as it forwards them;
    # five times, on streams of one connection. tests/h2.rs checks that
    # the upstream got no octet past each Content-Length.
    lib = Lib(t)
    try:
        body = bytes(range(256)) * 390 + bytes(160)
        for _ in range(5):
            stream = lib.request(
                [(":method", "POST")] + get(t, "/http")[1:] + [("content-length", str(len(body)))],
                end_stream=False,
            )
            lib.send(stream, body, end_stream=True)
            answer = lib.response(stream)
            got, end = lib.received(stream, lambda b: False)
            if answer.get(":status") != "200" or got != b"got 100000 octets":
                raise Fail(f"POST on stream {stream} answered {answer} {got!r} ({end})")
        return ":status 200 five times, the upstream got all 100 000 octets each time"
    finally:
        lib.close()


def connect_without_protocol(t):
    # A classic CONNECT (§8.5) is a valid request (src/h2/request.rs takes
    # it as Target::Connect); the proxy tunnels WebSockets only and answers
    # 405, as it does an HTTP/1.1 CONNECT.
    raw = Raw(t)
    try:
        raw.headers(1, [(":method", "CONNECT"), (":authority", "example.com:443")])
        outcome = raw.expect_status(1, 405)
        raw.ping_ok()
        return outcome
    finally:
        raw.close()


def extended_connect_echo(t):
    lib = Lib(t)
    try:
        if not lib.conn.remote_settings.enable_connect_protocol:
            raise Fail("no SETTINGS_ENABLE_CONNECT_PROTOCOL from the proxy")
        stream = lib.websocket()
        answer = lib.response(stream)
        if answer.get(":status") != "200":
            raise Fail(f"extended CONNECT answered {answer}")
        sent = [
            ws_frame(TEXT, b"hello over h2"),
            ws_frame(BINARY, bytes(range(256)) * 300),
            ws_frame(TEXT, b"frag-", fin=False),
            ws_frame(CONT, b"mented"),
        ]
        lib.send(stream, b"".join(sent))
        got, ended = lib.received(stream, lambda b: len(ws_parse(b)[0]) >= 4)
        frames, _ = ws_parse(got)
        want = [(True, TEXT, b"hello over h2"), (True, BINARY, bytes(range(256)) * 300),
                (False, TEXT, b"frag-"), (True, CONT, b"mented")]
        if frames != want:
            raise Fail(f"echo: {ws_describe(frames)}, end: {ended}")
        lib.send(stream, ws_close(1000))
        got, ended = lib.received(stream, lambda b: False)
        frames, _ = ws_parse(got)
        if [f[1] for f in frames] != [CLOSE] or ended != "END_STREAM":
            raise Fail(f"close handshake: {ws_describe(frames)}, end: {ended}")
        return ":status 200, 4 frames (77 KB) echoed over DATA, Close answered and END_STREAM"
    finally:
        lib.close()


def end_stream_half_close(separate):
    # RFC 8441 §4 keeps CONNECT's rule: END_STREAM is a half-close (a FIN
    # to the upstream), and the upstream's end comes back as END_STREAM.
    # It may come on the last DATA frame or on an empty one after it.
    def case(t):
        lib = Lib(t)
        try:
            stream = lib.websocket()
            answer = lib.response(stream)
            if answer.get(":status") != "200":
                raise Fail(f"extended CONNECT answered {answer}")
            if separate:
                lib.conn.send_data(stream, ws_frame(TEXT, b"last words"))
                lib.conn.end_stream(stream)
                lib.flush()
            else:
                lib.send(stream, ws_frame(TEXT, b"last words"), end_stream=True)
            got, ended = lib.received(stream, lambda b: False)
            frames, _ = ws_parse(got)
            if frames != [(True, TEXT, b"last words")] or ended != "END_STREAM":
                raise Fail(f"after END_STREAM: {ws_describe(frames)}, end: {ended}")
            return "the echo of the last frame, then END_STREAM once the upstream saw the FIN"
        finally:
            lib.close()

    return case


def upstream_reset(t):
    # RFC 8441 §5: a TCP reset is RST_STREAM with CANCEL (not END_STREAM).
    lib = Lib(t)
    try:
        stream = lib.websocket("/reset")
        answer = lib.response(stream)
        if answer.get(":status") != "200":
            raise Fail(f"extended CONNECT answered {answer}")
        lib.send(stream, ws_frame(TEXT, b"reset me"))
        got, ended = lib.received(stream, lambda b: False)
        if ended != "RST_STREAM CANCEL":
            raise Fail(f"the upstream's reset came as {ended} after {got!r}")
        return "RST_STREAM CANCEL"
    finally:
        lib.close()


def two_tunnels_one_connection(t):
    lib = Lib(t)
    try:
        a, b = lib.websocket(), lib.websocket()
        for s in (a, b):
            if lib.response(s).get(":status") != "200":
                raise Fail(f"stream {s} not 200")
        lib.send(b, ws_frame(TEXT, b"to b"))
        lib.send(a, ws_frame(TEXT, b"to a"))
        got_a, _ = lib.received(a, lambda x: len(ws_parse(x)[0]) >= 1)
        got_b, _ = lib.received(b, lambda x: len(ws_parse(x)[0]) >= 1)
        if ws_parse(got_a)[0][0][2] != b"to a" or ws_parse(got_b)[0][0][2] != b"to b":
            raise Fail(f"crossed tunnels: {got_a!r} {got_b!r}")
        return "two tunnels on one connection, each its own echo"
    finally:
        lib.close()


def websocket_no_route(t):
    return connect(t, "/nope")


def websocket_bad_origin(t):
    return connect(t, "/origin", [("origin", "https://evil.example")])


def websocket_good_origin(t):
    return connect(t, "/origin", [("origin", "https://good.example")])


def websocket_upstream_down(t):
    return connect(t, "/down")


def static_file(t):
    return get(t, "/static/hello.txt")


def plain_request(t):
    return get(t, "/http")


CASES = [
    ("server SETTINGS", server_settings),
    ("first frame not SETTINGS", first_frame_not_settings),
    ("frame over MAX_FRAME_SIZE", goaway_on(frame_too_large, "FRAME_SIZE_ERROR")),
    ("DATA over MAX_FRAME_SIZE on an open stream", goaway_on(data_oversize_on_open_stream, "FRAME_SIZE_ERROR")),
    ("DATA on an idle stream", goaway_on(data_on_idle_stream, "PROTOCOL_ERROR")),
    ("DATA on stream 0", goaway_on(data_on_stream_zero, "PROTOCOL_ERROR")),
    ("HEADERS on an even stream", goaway_on(headers_on_even_stream, "PROTOCOL_ERROR")),
    ("HEADERS on a closed stream", goaway_on(headers_on_closed_stream, "STREAM_CLOSED")),
    ("RST_STREAM on an idle stream", goaway_on(rst_on_idle_stream, "PROTOCOL_ERROR")),
    ("PUSH_PROMISE from a client", goaway_on(push_promise_from_client, "PROTOCOL_ERROR")),
    ("CONTINUATION without HEADERS", goaway_on(continuation_without_headers, "PROTOCOL_ERROR")),
    ("PING inside a field block", goaway_on(frame_inside_field_block, "PROTOCOL_ERROR")),
    ("PING of 7 octets", goaway_on(ping_wrong_size, "FRAME_SIZE_ERROR")),
    ("DATA after END_STREAM", data_after_end_stream),
    ("WINDOW_UPDATE of 0 on the connection", goaway_on(window_update_zero_on_connection, "PROTOCOL_ERROR")),
    ("connection window past 2^31-1", goaway_on(window_overflow_on_connection, "FLOW_CONTROL_ERROR")),
    ("stream window past 2^31-1", window_overflow_on_stream),
    ("DATA beyond the stream window", data_beyond_stream_window),
    ("SETTINGS INITIAL_WINDOW_SIZE 2^31", goaway_on(settings_initial_window_too_big, "FLOW_CONTROL_ERROR")),
    ("SETTINGS MAX_FRAME_SIZE 16383", goaway_on(settings_max_frame_too_small, "PROTOCOL_ERROR")),
    ("SETTINGS ENABLE_PUSH 2", goaway_on(settings_enable_push_two, "PROTOCOL_ERROR")),
    ("SETTINGS ACK with a payload", goaway_on(settings_ack_with_payload, "FRAME_SIZE_ERROR")),
    ("SETTINGS of 5 octets", goaway_on(settings_odd_length, "FRAME_SIZE_ERROR")),
    ("SETTINGS on a stream", goaway_on(settings_on_a_stream, "PROTOCOL_ERROR")),
    ("HPACK string over 16 KiB", goaway_on(hpack_string_too_long, "COMPRESSION_ERROR")),
    ("HPACK index out of range", goaway_on(hpack_bad_index, "COMPRESSION_ERROR")),
    ("PRIORITY accepted and ignored", priority_frames_ignored),
    ("PRIORITY on itself", priority_on_itself),
    ("PING answered", ping_answered),
    ("GOAWAY from the client", goaway_from_client),
    ("upper-case field name", reset_on(upper_case_name)),
    ("no :path", reset_on(missing_path)),
    ("connection: keep-alive", reset_on(connection_header)),
    ("te: gzip", reset_on(te_not_trailers)),
    ("pseudo-header after a regular field", reset_on(pseudo_after_regular)),
    ("unknown pseudo-header", reset_on(unknown_pseudo)),
    (":protocol on GET", reset_on(protocol_without_connect)),
    ("extended CONNECT without :path", reset_on(extended_connect_without_path, end_stream=False)),
    ("DATA short of content-length", content_length_mismatch),
    ("header list over 32 KiB", header_list_too_large),
    ("CONNECT without :protocol", connect_without_protocol),
    ("extended CONNECT echo", extended_connect_echo),
    ("END_STREAM on the last DATA half-closes", end_stream_half_close(separate=False)),
    ("END_STREAM on an empty DATA half-closes", end_stream_half_close(separate=True)),
    ("the upstream resets the tunnel", upstream_reset),
    ("two tunnels on one connection", two_tunnels_one_connection),
    ("WebSocket without a route", expect_status(websocket_no_route, 404)),
    ("WebSocket from a refused Origin", expect_status(websocket_bad_origin, 403)),
    ("WebSocket from an allowed Origin", expect_status(websocket_good_origin, 200)),
    ("WebSocket to a down upstream", expect_status(websocket_upstream_down, 502)),
    ("GET of a static file", expect_status(static_file, 200, b"hello over h2\n")),
    ("GET proxied over HTTP/1.1", expect_status(plain_request, 200, b"hello from upstream")),
    ("POSTs of 100 000 octets, past the stream window", post_body_past_the_window),
]


if __name__ == "__main__":
    sys.exit(run_table(CASES, Target.from_argv(sys.argv[1:3]), sys.argv[3:]))
