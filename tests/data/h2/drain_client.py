#!/usr/bin/env python3
"""Opens WebSocket streams over one HTTP/2 connection (RFC 8441), echoes a
message on each, says `open N` and waits for the proxy to drain: then
prints every frame it gets (GOAWAY, DATA with END_STREAM, ...) as
`frame TYPE stream=S end=E payload=HEX`, answers each Close, and prints
`closed` when the proxy closes the connection.

    drain_client.py HOST PORT STREAMS

The `h2` library drives the connection until the drain; its state machine
refuses frames after a GOAWAY, which RFC 9113 §6.8 allows for streams the
GOAWAY kept, so from there frames are read by hand.
"""

import os
import socket
import ssl
import struct
import sys

import h2.config
import h2.connection
import h2.events
import h2.settings

host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"])
sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=30), server_hostname="localhost")
if sock.selected_alpn_protocol() != "h2":
    sys.exit(f"ALPN chose {sock.selected_alpn_protocol()!r}, not h2")
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
sock.sendall(conn.data_to_send())
state = {}


def masked(opcode, payload):
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def pump(done):
    while not done():
        data = sock.recv(65536)
        if not data:
            sys.exit("the proxy closed the connection early")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                state.setdefault(ev.stream_id, {})["status"] = dict(ev.headers)[b":status"]
            elif isinstance(ev, h2.events.DataReceived):
                s = state.setdefault(ev.stream_id, {})
                s["data"] = s.get("data", b"") + ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        sock.sendall(conn.data_to_send())


settings = h2.settings.SettingCodes
pump(lambda: conn.remote_settings.get(settings.ENABLE_CONNECT_PROTOCOL) == 1)
ids = []
for _ in range(count):
    sid = conn.get_next_available_stream_id()
    ids.append(sid)
    conn.send_headers(
        sid,
        [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":path", "/"),
            (":authority", "localhost"),
            ("sec-websocket-version", "13"),
        ],
    )
sock.sendall(conn.data_to_send())
pump(lambda: all("status" in state.get(i, {}) for i in ids))
for i in ids:
    if state[i]["status"] != b"200":
        sys.exit(f"stream {i}: status {state[i]['status']!r}")
    conn.send_data(i, masked(1, b"hello %d" % i))
sock.sendall(conn.data_to_send())
pump(lambda: all(state[i].get("data", b"").endswith(b"hello %d" % i) for i in ids))
print(f"open {len(ids)}", flush=True)

names = {0: "DATA", 1: "HEADERS", 3: "RST_STREAM", 4: "SETTINGS", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE"}
buf = b""
while True:
    data = sock.recv(65536)
    if not data:
        print("closed", flush=True)
        break
    buf += data
    while len(buf) >= 9:
        length = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + length:
            break
        kind, flags = buf[3], buf[4]
        stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        payload, buf = buf[9 : 9 + length], buf[9 + length :]
        end = flags & 1 if kind == 0 else 0
        print(f"frame {names.get(kind, kind)} stream={stream} end={end} payload={payload.hex()}", flush=True)
        if kind == 0 and end:
            close = masked(8, struct.pack(">H", 1001))
            frame = len(close).to_bytes(3, "big") + b"\x00\x01" + stream.to_bytes(4, "big") + close
            sock.sendall(frame)
