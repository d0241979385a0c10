#!/usr/bin/env python3
"""The JSON API behind the proxy's /api/ route in the browser check.

    python3 api.py

Listens on 127.0.0.1, a port the kernel picks, and prints
"listening on 127.0.0.1:PORT". Speaks HTTP/1.1 with keep-alive, so the
proxy can keep its upstream connections; each request is logged as
"api: GET PATH connection=N request=M" (M counts requests on connection N),
which shows how the proxy reuses them. GET of a path in ROUTES answers its
JSON; anything else is 404.
"""

import http.server
import itertools
import json
import sys

# What each route answers; the page checks for the top-level key.
ROUTES = {
    "/api/items": {
        "items": [
            {"name": "tunnels", "count": 3},
            {"name": "requests", "count": 25},
            {"name": "connections", "count": 6},
        ]
    },
    "/api/config": {"config": {"theme": "light", "refresh_s": 30}},
    "/api/user": {"user": {"name": "browser", "roles": ["reader"]}},
    "/api/stats": {"stats": {"uptime_s": 1, "version": "test"}},
}

connection_ids = itertools.count(1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection_id = next(connection_ids)
        self.requests = 0

    def do_GET(self):
        self.requests += 1
        print(
            "api: GET %s connection=%d request=%d" % (self.path, self.connection_id, self.requests),
            flush=True,
        )
        answer = ROUTES.get(self.path.split("?", 1)[0])
        status = 200 if answer is not None else 404
        body = json.dumps(answer if answer is not None else {"error": "not found"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # do_GET logs each request in its own format


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print("listening on %s:%d" % (host, port), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
