"""The client side of tests/h2.rs: TLS with ALPN h2 to the proxy, and two
ways to speak HTTP/2 over it.

- `Lib` drives the `h2` library's H2Connection: a client nobody here wrote,
  for everything a well-behaved client does (extended CONNECT, echo over
  DATA frames, PING, PRIORITY, half-close).
- `Raw` writes frames by hand (HPACK by the `hpack` library `h2` uses) for
  what `h2` refuses to send: protocol violations and attacks. It reads the
  proxy's frames one by one, decoding every field block so the HPACK table
  stays in step.

Both raise `Fail` with a line saying what was expected and what came.
"""

import os
import socket
import ssl
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS parameters (RFC 9113 §6.5.2, RFC 8441 §3).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS = 1, 2, 3
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = 4, 5, 6
ENABLE_CONNECT_PROTOCOL = 8

CODES = {
    0: "NO_ERROR",
    1: "PROTOCOL_ERROR",
    2: "INTERNAL_ERROR",
    3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT",
    5: "STREAM_CLOSED",
    6: "FRAME_SIZE_ERROR",
    7: "REFUSED_STREAM",
    8: "CANCEL",
    9: "COMPRESSION_ERROR",
    10: "CONNECT_ERROR",
    11: "ENHANCE_YOUR_CALM",
    12: "INADEQUATE_SECURITY",
    13: "HTTP_1_1_REQUIRED",
}
CODE = {name: code for code, name in CODES.items()}
TYPES = [
    "DATA",
    "HEADERS",
    "PRIORITY",
    "RST_STREAM",
    "SETTINGS",
    "PUSH_PROMISE",
    "PING",
    "GOAWAY",
    "WINDOW_UPDATE",
    "CONTINUATION",
]

# Socket timeout: a proxy that stops answering fails the case, never hangs.
TIMEOUT = float(os.environ.get("H2_TIMEOUT", "10"))

# Seconds a table keeps starting cases; those left are reported as not run.
BUDGET = float(os.environ.get("H2_BUDGET", "inf"))


class Fail(Exception):
    """A case did not go as RFC 9113 and the proxy's limits say."""


class Target:
    """Where the proxy listens and how to trust it: `HOST:PORT CA-FILE`."""

    def __init__(self, addr, ca, name="localhost"):
        host, port = addr.rsplit(":", 1)
        self.host, self.port, self.ca, self.name = host, int(port), ca, name

    @staticmethod
    def from_argv(argv):
        return Target(argv[0], argv[1])

    def authority(self):
        return f"{self.name}:{self.port}"


def tls_connect(target, alpn=("h2", "http/1.1"), expect="h2"):
    """A TLS socket to the proxy that verified its certificate and agreed
    on `expect` by ALPN."""
    ctx = ssl.create_default_context(cafile=target.ca)
    ctx.set_alpn_protocols(list(alpn))
    sock = socket.create_connection((target.host, target.port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    tls = ctx.wrap_socket(sock, server_hostname=target.name)
    got = tls.selected_alpn_protocol()
    if got != expect:
        raise Fail(f"ALPN chose {got!r}, expected {expect!r}")
    return tls


def frame(kind, flags, stream, payload=b""):
    """One frame as bytes, whatever its length (oversize ones on purpose)."""
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, kind, flags, stream) + payload


def settings_payload(params):
    return b"".join(struct.pack(">HI", k, v) for k, v in params)


def code_name(code):
    return CODES.get(code, f"0x{code:x}")


class Frame:
    def __init__(self, kind, flags, stream, payload):
        self.kind, self.flags, self.stream, self.payload = kind, flags, stream, payload
        self.headers = None  # decoded field block of HEADERS (with CONTINUATION)

    def code(self):
        """The error code of RST_STREAM or GOAWAY."""
        at = 0 if self.kind == RST_STREAM else 4
        return struct.unpack(">I", self.payload[at : at + 4])[0]

    def __repr__(self):
        name = TYPES[self.kind] if self.kind < len(TYPES) else f"type{self.kind}"
        extra = ""
        if self.kind in (RST_STREAM, GOAWAY):
            extra = " " + code_name(self.code())
            if self.kind == GOAWAY and len(self.payload) > 8:
                extra += f" {self.payload[8:]!r}"
        if self.headers is not None:
            extra = f" {self.headers}"
        if self.kind == DATA:
            extra = f" {len(self.payload)} octets"
        return f"{name}(stream {self.stream}, flags 0x{self.flags:x}{extra})"


class Raw:
    """A hand-driven HTTP/2 client: the preface and SETTINGS exchange are
    done on construction (unless `handshake=False`); then any frame."""

    def __init__(self, target, settings=(), handshake=True):
        self.target = target
        self.sock = tls_connect(target)
        self.buf = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.seen = []  # every frame read, for failure messages
        self.eof = False
        self.server_settings = {}
        if handshake:
            self.send(PREFACE + frame(SETTINGS, 0, 0, settings_payload(settings)))
            first = self.read()
            if first is None or first.kind != SETTINGS or first.flags & ACK:
                raise Fail(f"the proxy's first frame is {first}, not SETTINGS")
            for i in range(0, len(first.payload), 6):
                k, v = struct.unpack(">HI", first.payload[i : i + 6])
                self.server_settings[k] = v
            self.send(frame(SETTINGS, ACK, 0))

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def block(self, headers):
        """A field block for `headers` ((name, value) pairs, bytes or str)."""
        return self.encoder.encode(headers)

    def headers(self, stream, headers, end_stream=False, priority=None):
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        payload = self.block(headers)
        if priority is not None:
            flags |= PRIORITY_FLAG
            payload = priority + payload
        self.send(frame(HEADERS, flags, stream, payload))

    def data(self, stream, payload, end_stream=False):
        self.send(frame(DATA, END_STREAM if end_stream else 0, stream, payload))

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            raise  # for available(), which reads without waiting
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            chunk = b""
        except socket.timeout:
            raise Fail(f"no answer within {TIMEOUT}s; frames so far: {self.seen[-8:]}")
        if not chunk:
            self.eof = True
        self.buf += chunk

    def available(self):
        """The frames that have come so far (up to 1 MB of them), without
        waiting for more."""
        self.sock.settimeout(0)
        try:
            while not self.eof and len(self.buf) < 1 << 20:
                self._fill()
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        finally:
            self.sock.settimeout(TIMEOUT)
        frames = []
        while len(self.buf) >= 9 and len(self.buf) >= 9 + int.from_bytes(self.buf[:3], "big"):
            frames.append(self.read())
        return frames

    def read(self):
        """The next frame, or None at the end of the connection."""
        while True:
            if len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + n:
                    kind, flags = self.buf[3], self.buf[4]
                    stream = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                    f = Frame(kind, flags, stream, self.buf[9 : 9 + n])
                    self.buf = self.buf[9 + n :]
                    if kind == HEADERS:
                        self._decode_block(f)
                    self.seen.append(f)
                    return f
            if self.eof:
                return None
            self._fill()

    def _decode_block(self, f):
        fragment = f.payload
        if f.flags & PADDED:
            fragment = fragment[1 : len(fragment) - fragment[0]]
        if f.flags & PRIORITY_FLAG:
            fragment = fragment[5:]
        while not f.flags & END_HEADERS:
            c = self.read()
            if c is None or c.kind != CONTINUATION:
                raise Fail(f"HEADERS followed by {c}, not CONTINUATION")
            fragment += c.payload
            f.flags |= c.flags & END_HEADERS
        f.headers = {k: v for k, v in self.decoder.decode(fragment, raw=False)}

    def until(self, want, what):
        """Reads until `want(frame)` holds; Fail at the end of the
        connection."""
        while True:
            f = self.read()
            if f is None:
                raise Fail(f"connection ended before {what}; frames: {self.seen[-8:]}")
            if want(f):
                return f

    def goaway(self):
        """The proxy's GOAWAY, as (error name, debug text)."""
        f = self.until(lambda f: f.kind == GOAWAY, "a GOAWAY")
        return code_name(f.code()), f.payload[8:].decode(errors="replace")

    def expect_goaway(self, name):
        got, debug = self.goaway()
        if got != name:
            raise Fail(f"GOAWAY {got} ({debug}), expected {name}")
        return f"GOAWAY {got} ({debug})"

    def answer(self, stream):
        """The first HEADERS or RST_STREAM on `stream`, or a GOAWAY."""
        return self.until(
            lambda f: f.stream == stream and f.kind in (HEADERS, RST_STREAM) or f.kind == GOAWAY,
            f"an answer on stream {stream}",
        )

    def expect_reset(self, stream, name):
        f = self.answer(stream)
        if f.kind != RST_STREAM or code_name(f.code()) != name:
            raise Fail(f"stream {stream}: {f}, expected RST_STREAM {name}")
        return f"RST_STREAM {name}"

    def expect_status(self, stream, status):
        f = self.answer(stream)
        if f.kind != HEADERS or f.headers.get(":status") != str(status):
            raise Fail(f"stream {stream}: {f}, expected :status {status}")
        return f":status {status}"

    def ping_ok(self):
        """The connection still answers a PING."""
        data = os.urandom(8)
        self.send(frame(PING, 0, 0, data))
        f = self.until(
            lambda f: f.kind == PING and f.flags & ACK and f.payload == data or f.kind == GOAWAY,
            "the PING ACK",
        )
        if f.kind == GOAWAY:
            raise Fail(f"{f} instead of the PING ACK")


class Lib:
    """A client on the `h2` library's H2Connection."""

    def __init__(self, target, settings=None):
        self.target = target
        self.sock = tls_connect(target)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.pending = []
        # Wait for the proxy's SETTINGS: extended CONNECT needs its
        # ENABLE_CONNECT_PROTOCOL (RFC 8441 §3).
        self.wait(lambda e: isinstance(e, h2.events.RemoteSettingsChanged), "the proxy's SETTINGS")

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def events(self):
        """Reads once from the socket; the events it gave."""
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Fail(f"no answer within {TIMEOUT}s")
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            return [None]
        events = self.conn.receive_data(data)
        self.flush()
        return events

    def wait(self, want, what):
        """The first event, kept or new, for which `want(event)` holds
        (taken out of `pending`, which keeps every other event)."""
        while True:
            for i, e in enumerate(self.pending):
                if want(e):
                    return self.pending.pop(i)
                if isinstance(e, h2.events.ConnectionTerminated):
                    raise Fail(
                        f"GOAWAY {code_name(e.error_code)} ({e.additional_data}) before {what}"
                    )
            try:
                events = self.events()
            except Fail as e:
                raise Fail(f"{e} waiting for {what}; events: {self.pending[-8:]}")
            if events == [None]:
                raise Fail(f"connection ended before {what}; events: {self.pending[-8:]}")
            self.pending.extend(events)

    def request(self, headers, end_stream=True):
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, headers, end_stream=end_stream)
        self.flush()
        return stream

    def websocket(self, path="/ws", extra=()):
        """Extended CONNECT (RFC 8441 §4) for a WebSocket on `path`."""
        return self.request(
            [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "https"),
                (":path", path),
                (":authority", self.target.authority()),
                ("sec-websocket-version", "13"),
                *extra,
            ],
            end_stream=False,
        )

    def response(self, stream):
        """The response headers of `stream` as a dict, or a Fail naming
        the reset."""
        e = self.wait(
            lambda e: getattr(e, "stream_id", None) == stream
            and isinstance(e, (h2.events.ResponseReceived, h2.events.StreamReset)),
            f"the response on stream {stream}",
        )
        if isinstance(e, h2.events.StreamReset):
            raise Fail(f"stream {stream} reset with {code_name(e.error_code)}")
        return dict(e.headers)

    def send(self, stream, data, end_stream=False):
        """Sends `data` on `stream`, waiting for window as it needs."""
        view = memoryview(data)
        while True:
            window = min(self.conn.local_flow_control_window(stream), self.conn.max_outbound_frame_size)
            n = min(window, len(view))
            if n or not view:
                last = n == len(view)
                self.conn.send_data(stream, bytes(view[:n]), end_stream=end_stream and last)
                self.flush()
                view = view[n:]
                if last:
                    return
            else:
                self.wait(lambda e: isinstance(e, h2.events.WindowUpdated), "a WINDOW_UPDATE")

    def received(self, stream, until):
        """Body octets of `stream` until `until(octets)` holds or the
        stream ends; (octets, end) where end is None (still open),
        "END_STREAM" or "RST_STREAM <code>"."""
        out = bytearray()
        end = None
        mine = (h2.events.DataReceived, h2.events.StreamEnded, h2.events.StreamReset)
        while end is None and not until(bytes(out)):
            e = self.wait(
                lambda e: isinstance(e, mine) and e.stream_id == stream,
                f"more of stream {stream} ({len(out)} octets so far)",
            )
            if isinstance(e, h2.events.DataReceived):
                out += e.data
                self.conn.acknowledge_received_data(e.flow_controlled_length, stream)
                self.flush()
                if e.stream_ended is not None:
                    end = "END_STREAM"
            elif isinstance(e, h2.events.StreamEnded):
                end = "END_STREAM"
            else:
                end = f"RST_STREAM {code_name(e.error_code)}"
        return bytes(out), end


# WebSocket framing (RFC 6455 §5.2) for the client side: masked frames out,
# the upstream's frames parsed back.
TEXT, BINARY, CLOSE, WS_PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
OPCODES = {0x0: "cont", 0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}


def ws_frame(opcode, payload=b"", fin=True, mask=b"\x01\x02\x03\x04"):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def ws_close(code=None, reason=b""):
    if code is None:
        return ws_frame(CLOSE)
    return ws_frame(CLOSE, struct.pack(">H", code) + reason)


def ws_parse(data):
    """The frames in `data` (unmasked, from the upstream) as (fin, opcode,
    payload) and the octets left over."""
    frames, at = [], 0
    while len(data) - at >= 2:
        b0, b1 = data[at], data[at + 1]
        n, head = b1 & 0x7F, 2
        if n == 126:
            if len(data) - at < 4:
                break
            n, head = struct.unpack(">H", data[at + 2 : at + 4])[0], 4
        elif n == 127:
            if len(data) - at < 10:
                break
            n, head = struct.unpack(">Q", data[at + 2 : at + 10])[0], 10
        if b1 & 0x80:
            head += 4
        if len(data) - at < head + n:
            break
        frames.append((bool(b0 & 0x80), b0 & 0x0F, data[at + head : at + head + n]))
        at += head + n
    return frames, data[at:]


def ws_describe(frames):
    out = []
    for fin, op, payload in frames:
        name = OPCODES.get(op, f"op{op}")
        if op == CLOSE and len(payload) >= 2:
            name += f" {struct.unpack('>H', payload[:2])[0]}"
        out.append(f"{name}{'' if fin else '+'}[{len(payload)}]")
    return " ".join(out)


def run_table(cases, target, names=None):
    """Runs each `(name, function)` of `cases` (those in `names`, if
    given) on a fresh connection; prints one line a case; the exit status
    says whether all passed."""
    failed = 0
    start = time.monotonic()
    for name, case in cases:
        if names and name not in names:
            continue
        started = time.monotonic()
        if started - start > BUDGET:
            failed += 1
            print(f"FAIL  {name}: not run, {BUDGET:.0f}s spent on the cases before", flush=True)
            continue
        try:
            outcome = case(target)
            line = f"ok    {name}: {outcome}"
        except Fail as e:
            failed += 1
            line = f"FAIL  {name}: {e}"
        except (OSError, h2.exceptions.ProtocolError) as e:
            failed += 1
            line = f"FAIL  {name}: {type(e).__name__}: {e}"
        print(f"{line} ({time.monotonic() - started:.2f}s)", flush=True)
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit("peer.py is a module for the scripts beside it")
