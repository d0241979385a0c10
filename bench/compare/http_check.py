#!/usr/bin/env python3
"""Checks one HTTP workload's URL before scripts/compare.sh measures it
(standard library only).

    python3 bench/compare/http_check.py URL BODY_FILE [--ca CA_PEM]

Sends GET URL twice on one connection (https with --ca: the certificate
verified against that CA). Each answer must be 200 with exactly the bytes
of BODY_FILE, and the first must leave the connection open (keep-alive),
so that wrk measures what it is meant to. Exits 0, or 1 with the reason
on stderr.
"""

import argparse
import http.client
import ssl
import sys
import urllib.parse

# Seconds any one answer may take: the targets answer in microseconds.
TIMEOUT_S = 10


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("body_file")
    parser.add_argument("--ca", help="CA certificate (PEM) for an https URL")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    with open(args.body_file, "rb") as f:
        want = f.read()
    if url.scheme == "https":
        context = ssl.create_default_context(cafile=args.ca)
        conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=TIMEOUT_S, context=context)
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT_S)
    path = url.path or "/"
    try:
        for attempt in (1, 2):
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                sys.exit(f"GET {args.url}: status {response.status}, not 200")
            if body != want:
                sys.exit(f"GET {args.url}: a {len(body)}-byte body, not the {len(want)} bytes of {args.body_file}")
            if attempt == 1 and response.will_close:
                sys.exit(f"GET {args.url}: the connection is not kept alive after the answer")
    except (OSError, http.client.HTTPException) as e:
        sys.exit(f"GET {args.url}: {e}")
    finally:
        conn.close()


if __name__ == "__main__":
    main()
