#!/usr/bin/env python3
"""Loads the single-page app through wsproxy-fast in headless Chromium and
checks what a browser gets from a keep-alive proxy.

    check.py --url https://localhost:PORT/ --metrics http://127.0.0.1:PORT/metrics \
             --spki BASE64 --site DIR [--max-connections 8] [--timeout 30] [--out DIR]
             [--protocol http/1.1|h2]

Run by scripts/browser.sh, which starts the proxy and its upstreams. It
asserts that
  1. the page's WebSocket message (wss:// on the page's origin) came back
     from the echo upstream, as the page shows it;
  2. every asset arrived: the page's own count (stylesheets with rules,
     images decoded, modules run, JSON parsed) is complete, and the
     browser's resource timing lists each file of the site and each API
     route with status 200, a body, over --protocol (http/1.1 or h2; the
     page itself too);
  3. the proxy accepted at most --max-connections client connections for
     the whole page (its /metrics before and after), where one connection
     per request would take one per asset;
  4. with --protocol h2, the WebSocket was an HTTP/2 stream (RFC 8441): the
     proxy's wsproxy_h2_streams_total{kind="websocket"} rose, and its
     {kind="request"} rose by the page and its assets. Chromium sends a
     WebSocket over HTTP/2 only when the server's SETTINGS enable extended
     CONNECT; otherwise it opens an HTTP/1.1 connection for it.
Prints the figures, and exits 0 if all hold, 1 otherwise; Chromium,
chromedriver or selenium missing is a failure, never a skip.

Selenium only drives /usr/bin/chromedriver (Debian's chromium-driver): it
is never allowed to fetch a driver or a browser of its own.
"""

import argparse
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# Selenium Manager (selenium's driver downloader) stays off: offline mode,
# and a manager path that does not exist, so that any attempt to run it
# fails loudly instead of reaching for the network.
os.environ["SE_OFFLINE"] = "true"
os.environ["SE_MANAGER_PATH"] = "/nonexistent/selenium-manager"

# api.py sits beside this file; no __pycache__ left in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api  # noqa: E402  (the API routes the page fetches)


def fail(message):
    print("check: FAILED: " + message, file=sys.stderr)
    sys.exit(1)


def say(message):
    print("check: " + message, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the page, https://localhost:PORT/")
    p.add_argument("--metrics", required=True, help="the proxy's /metrics URL")
    p.add_argument("--spki", required=True, help="base64 SHA-256 of the test certificate's public key")
    p.add_argument("--site", required=True, help="the site's root directory")
    p.add_argument("--max-connections", type=int, default=8)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds for the page, the echo and the assets")
    p.add_argument("--out", default=None, help="directory for chromedriver's log and a screenshot")
    p.add_argument(
        "--protocol",
        choices=("http/1.1", "h2"),
        default="http/1.1",
        help="the protocol (ALPN) the page, its assets and the WebSocket must use",
    )
    return p.parse_args()


def metrics(url):
    """(connections accepted, {status code: requests answered}, {kind: HTTP/2
    streams}) from /metrics."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    except OSError as e:
        fail("cannot read the proxy's metrics at %s: %s" % (url, e))
    accepted = None
    answered = {}
    h2_streams = {}
    for line in text.splitlines():
        m = re.match(r"^wsproxy_connections_accepted_total (\d+)$", line)
        if m:
            accepted = int(m.group(1))
        m = re.match(r'^wsproxy_handshakes_total\{code="(\d+)"\} (\d+)$', line)
        if m:
            answered[m.group(1)] = int(m.group(2))
        m = re.match(r'^wsproxy_h2_streams_total\{kind="([a-z]+)"\} (\d+)$', line)
        if m:
            h2_streams[m.group(1)] = int(m.group(2))
    if accepted is None:
        fail("no wsproxy_connections_accepted_total in %s" % url)
    return accepted, answered, h2_streams


def expected_paths(site):
    """URL paths the page must fetch: every file of the site but the page
    itself, and every API route."""
    paths = set()
    for directory, _, files in os.walk(site):
        for name in files:
            rel = os.path.relpath(os.path.join(directory, name), site)
            if rel != "index.html":
                paths.add("/" + rel.replace(os.sep, "/"))
    return paths | set(api.ROUTES)


def start_browser(spki, out):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        fail("selenium is not installed in %s: run scripts/setup.sh selenium" % sys.executable)
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            fail("%s is missing (Debian package %s): run scripts/setup.sh chromium" % (path, package))

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile.")
    for flag in (
        # As root, headless, on a machine without a display or GPU.
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # Only the page's own connections: no QUIC, and none of the
        # browser's own traffic (updates, sync, safe browsing lists),
        # which a closed network refuses and which is not the page's.
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--user-data-dir=" + profile,
        # The test certificate is signed by a throwaway CA the browser does
        # not trust. Rather than --ignore-certificate-errors (any
        # certificate, any host), accept exactly this certificate's key:
        # the connection then counts as secure, as with a trusted CA, and
        # no error page stands in for the app.
        "--ignore-certificate-errors-spki-list=" + spki,
    ):
        options.add_argument(flag)
    log = os.path.join(out, "chromedriver.log") if out else os.devnull
    service = Service(executable_path=CHROMEDRIVER, log_output=log)
    driver = webdriver.Chrome(service=service, options=options)
    return driver, profile


# The resources the browser fetched for the page, from Resource Timing.
RESOURCES_JS = """
return performance.getEntriesByType('resource').map(e => ({
  name: e.name, status: e.responseStatus, protocol: e.nextHopProtocol,
  size: e.decodedBodySize, type: e.initiatorType}));
"""


def wait_done(driver, element_id, timeout):
    """Waits until the page marks #ID done; returns (state, text). No such
    element (an error page instead of the app): (None, a description)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def done(d):
        found = d.find_elements(By.ID, element_id)
        return not found or found[0].get_attribute("data-done")

    try:
        WebDriverWait(driver, timeout).until(done)
    except TimeoutException:
        pass
    found = driver.find_elements(By.ID, element_id)
    if not found:
        return None, "no #%s on the page %r" % (element_id, driver.title)
    return found[0].get_attribute("data-done"), found[0].text


def load_page(driver, args, token):
    """Loads the page and returns what it showed and fetched."""
    from urllib.parse import urlsplit

    driver.set_page_load_timeout(args.timeout)
    driver.set_script_timeout(args.timeout)
    url = args.url + ("&" if "?" in args.url else "?") + "token=" + token
    started = time.monotonic()
    driver.get(url)
    echo_state, echo_text = wait_done(driver, "echo", args.timeout)
    assets_state, assets_text = wait_done(driver, "assets", args.timeout)
    elapsed = time.monotonic() - started
    page = driver.execute_script(
        "const nav = performance.getEntriesByType('navigation')[0];"
        "return {title: document.title, secure: window.isSecureContext, "
        "ready: document.readyState, origin: location.origin, "
        "protocol: nav ? nav.nextHopProtocol : null};"
    )
    resources = driver.execute_script(RESOURCES_JS)
    for entry in resources:
        parts = urlsplit(entry["name"])
        entry["path"] = parts.path
        entry["origin"] = "%s://%s" % (parts.scheme, parts.netloc)
    if args.out:
        driver.save_screenshot(os.path.join(args.out, "page.png"))
    return {
        "echo": (echo_state, echo_text),
        "assets": (assets_state, assets_text),
        "page": page,
        "resources": resources,
        "elapsed": elapsed,
    }


def main():
    # A SIGTERM (browser.sh's time limit) still quits the browser and its
    # driver, in the finally below.
    signal.signal(signal.SIGTERM, lambda *_: fail("stopped by SIGTERM (out of time?)"))
    args = parse_args()
    want = expected_paths(args.site)
    token = secrets.token_hex(8)

    driver, profile = start_browser(args.spki, args.out)
    from selenium.common.exceptions import WebDriverException

    try:
        caps = driver.capabilities
        driver_version = caps.get("chrome", {}).get("chromedriverVersion", "?").split(" ")[0]
        say("Chromium %s, chromedriver %s" % (caps.get("browserVersion", "?"), driver_version))
        before, answered_before, h2_before = metrics(args.metrics)
        try:
            seen = load_page(driver, args, token)
        except WebDriverException as e:
            fail("the browser could not load %s: %s" % (args.url, str(e.msg or e).splitlines()[0]))
    finally:
        # Quit before the second reading: whatever the browser still opens
        # for this page counts too.
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    after, answered_after, h2_after = metrics(args.metrics)

    problems = []
    page = seen["page"]
    origin = args.url.rstrip("/")
    if page["title"] != "wsproxy-fast browser check" or page["ready"] != "complete":
        problems.append("the app did not load: title %r, readyState %r" % (page["title"], page["ready"]))
    if not page["secure"]:
        problems.append("the page is not a secure context (a certificate problem?)")
    if page["protocol"] != args.protocol:
        problems.append("the page came over %r, not %s" % (page["protocol"], args.protocol))

    # 1. The echo.
    echo_state, echo_text = seen["echo"]
    if echo_state == "ok" and echo_text == "echo " + token:
        say('WebSocket: "%s" echoed over wss://%s/ws' % (echo_text, origin.split("://", 1)[1]))
    else:
        problems.append("no echo: the page shows %r (state %r)" % (echo_text, echo_state))

    # 2. The assets: the page's count, and the browser's resource timing.
    assets_state, assets_text = seen["assets"]
    by_path = {}
    for entry in seen["resources"]:
        by_path.setdefault(entry["path"], []).append(entry)
    bad = []
    missing = sorted(want - set(by_path))
    if missing:
        bad.append("never fetched (%d): %s" % (len(missing), ", ".join(missing)))
    for path in sorted(want & set(by_path)):
        entries = by_path[path]
        for e in entries:
            if e["origin"] != origin or e["status"] != 200 or e["size"] <= 0 or e["protocol"] != args.protocol:
                bad.append(
                    "%s: status %s, %s bytes, protocol %r, origin %s"
                    % (path, e["status"], e["size"], e["protocol"], e["origin"])
                )
    extra = sorted(set(by_path) - want)
    if assets_state == "ok" and not bad:
        say(
            "assets: %d/%d loaded (the page counted %s; %d resources, all 200 over %s)"
            % (len(want), len(want), assets_text, len(seen["resources"]), args.protocol)
        )
    else:
        problems.append("assets: the page shows %r (state %r)" % (assets_text, assets_state))
        problems.extend("asset " + b for b in bad)
    if extra:
        problems.append("fetched outside the site: %s" % ", ".join(extra))

    # 3. Connections for the whole page, and requests answered on them.
    connections = after - before
    requests = {
        code: answered_after.get(code, 0) - answered_before.get(code, 0)
        for code in answered_after
        if answered_after.get(code, 0) != answered_before.get(code, 0)
    }
    total = sum(requests.values())
    by_code = ", ".join("%s: %d" % (c, n) for c, n in sorted(requests.items()))
    say(
        "proxy: %d client connections accepted for the page (at most %d), %d requests answered (%s); page done in %.1f s"
        % (connections, args.max_connections, total, by_code or "none", seen["elapsed"])
    )
    if connections > args.max_connections:
        problems.append(
            "the proxy accepted %d connections for one page, more than %d: are connections kept open?"
            % (connections, args.max_connections)
        )
    if args.protocol == "http/1.1" and (connections < 1 or total < len(want) + 2):
        problems.append(
            "the proxy's metrics do not match the page: %d connections, %d requests for %d assets, the page and the WebSocket"
            % (connections, total, len(want))
        )

    # 4. Over HTTP/2: the page and its assets as request streams, the
    # WebSocket as an extended CONNECT stream on the same connection.
    if args.protocol == "h2":
        if "websocket" not in h2_after or "request" not in h2_after:
            problems.append('no wsproxy_h2_streams_total{kind="websocket"|"request"} in %s' % args.metrics)
        else:
            ws_streams = h2_after["websocket"] - h2_before.get("websocket", 0)
            request_streams = h2_after["request"] - h2_before.get("request", 0)
            say(
                "proxy: HTTP/2 streams for the page: %d requests, %d WebSocket (extended CONNECT)"
                % (request_streams, ws_streams)
            )
            if ws_streams < 1:
                problems.append(
                    "the WebSocket did not go over HTTP/2 (wsproxy_h2_streams_total{kind=\"websocket\"} "
                    "rose by %d): are extended CONNECT's SETTINGS sent?" % ws_streams
                )
            if request_streams < len(want) + 1:
                problems.append(
                    "%d HTTP/2 request streams for %d assets and the page" % (request_streams, len(want))
                )

    if problems:
        for p in problems:
            print("check: FAILED: " + p, file=sys.stderr)
        return 1
    say("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
