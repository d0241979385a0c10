"""A live WebSocket client made with Python `websockets` (sync API), which
answers Pings by itself: echoes small messages, a 1 MiB message, and a
fragmented message whose fragments are spread over pauses longer than the
proxy's ping interval, then sits idle for six intervals and echoes again.
Prints how many Pings it received, then "ok".

    live_client.py ws://HOST:PORT/
    live_client.py wss://HOST:PORT/ CA_FILE NAME
"""

import ssl
import sys
import time

from websockets.sync.client import connect

url = sys.argv[1]
tls = {}
if len(sys.argv) > 2:
    tls["ssl"] = ssl.create_default_context(cafile=sys.argv[2])
    tls["server_hostname"] = sys.argv[3]
pings = 0


def count_ping(frame_opcode):
    global pings
    pings += 1


with connect(url, max_size=None, ping_interval=None, compression=None, **tls) as ws:
    # Count the Pings the library answers: its protocol object sees every
    # frame; wrap the one method that handles incoming control frames.
    protocol = ws.protocol
    original = protocol.recv_frame

    def recv_frame(frame):
        if frame.opcode.name == "PING":
            count_ping(frame.opcode)
        return original(frame)

    protocol.recv_frame = recv_frame

    for i in range(5):
        ws.send(f"small {i}")
        assert ws.recv(timeout=10) == f"small {i}"

    big = bytes(range(256)) * 4096  # 1 MiB
    ws.send(big)
    echoed = b""
    # The upstream echoes frame by frame; the library joins fragments.
    echoed = ws.recv(timeout=20)
    assert echoed == big, len(echoed)

    def fragments():
        for i in range(3):
            yield f"part {i} ".encode() * 1000
            time.sleep(1.5)  # the proxy pings between fragments

    ws.send(fragments())
    want = b"".join(f"part {i} ".encode() * 1000 for i in range(3))
    assert ws.recv(timeout=20) == want

    ws.send(big)
    assert ws.recv(timeout=20) == big

    time.sleep(6.5)  # silent: only Pings and Pongs
    ws.send("still here")
    assert ws.recv(timeout=10) == "still here"

print(f"pings {pings}")
print("ok")
