// k6 ramping-VU echo test through the proxy (k6 1.1, k6/experimental/websockets).
//
//   k6 run -e URL=ws://127.0.0.1:8080/ loadtest/k6/echo.js
//   loadtest/k6.sh echo [--short] [--tls] [URL]  (starts its own proxy without URL)
//
// A wss:// URL skips certificate checks (insecureSkipTLSVerify): the load
// tests' certificates are throwaways.
//
// Each VU iteration opens a WebSocket, sends MESSAGES text messages one at a
// time (each waits for its echo), checks every echo byte for byte, and
// closes. VUs ramp 0 -> VUS over a fifth of DURATION, hold, then ramp down.
//
// Environment: URL (required), VUS (default 50), DURATION (default 60s),
// MESSAGES (default 50), SIZE (payload bytes, default 64), RTT_P95_MS
// (threshold, default 25), SHORT=1 (CI: 10 VUs for 4 s).
//
// Thresholds (k6 exits 99 if one fails): checks > 99.9% (each connection
// opened, every echo matched, closed cleanly), echo_ok > 99.9%, echo_rtt p95
// below RTT_P95_MS, and no WebSocket errors.

import { WebSocket } from 'k6/experimental/websockets';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

const URL = __ENV.URL;
if (!URL) {
  throw new Error('set URL, e.g. k6 run -e URL=ws://127.0.0.1:8080/ loadtest/k6/echo.js');
}
const SHORT = __ENV.SHORT === '1';
const VUS = Number(__ENV.VUS || (SHORT ? 10 : 50));
const DURATION_S = parseDuration(__ENV.DURATION || (SHORT ? '4s' : '60s'));
const MESSAGES = Number(__ENV.MESSAGES || 50);
const SIZE = Number(__ENV.SIZE || 64);
const RTT_P95_MS = Number(__ENV.RTT_P95_MS || 25);

// Round trip of one message, send to echo (ms; k6's clock has 1 ms steps).
const echoRtt = new Trend('echo_rtt', true);
// Whether each echo equalled what was sent.
const echoOk = new Rate('echo_ok');
// WebSocket error events.
const wsErrors = new Counter('ws_errors');

function parseDuration(text) {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!match) throw new Error(`DURATION ${text}: use e.g. 30s, 2m`);
  const scale = { ms: 0.001, s: 1, m: 60 }[match[2] || 's'];
  return Number(match[1]) * scale;
}

const ramp = Math.max(1, Math.round(DURATION_S / 5));
export const options = {
  insecureSkipTLSVerify: URL.startsWith('wss://'),
  scenarios: {
    echo: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: `${ramp}s`, target: VUS },
        { duration: `${Math.max(1, DURATION_S - 2 * ramp)}s`, target: VUS },
        { duration: `${ramp}s`, target: 0 },
      ],
      gracefulRampDown: '5s',
    },
  },
  thresholds: {
    checks: ['rate>0.999'],
    echo_ok: ['rate>0.999'],
    echo_rtt: [`p(95)<${RTT_P95_MS}`],
    ws_errors: ['count==0'],
  },
};

export default function () {
  const ws = new WebSocket(URL);
  const filler = 'x'.repeat(Math.max(0, SIZE - 24));
  let sent = 0;
  let echoed = 0;
  let expected = '';
  let sentAt = 0;
  let opened = false;

  function sendNext() {
    // The VU, iteration and message number make every payload unique.
    expected = `${__VU}:${__ITER}:${sent}:`.padEnd(24, '.') + filler;
    sentAt = Date.now();
    ws.send(expected);
    sent++;
  }

  ws.onopen = () => {
    opened = true;
    sendNext();
  };
  ws.onmessage = (event) => {
    echoRtt.add(Date.now() - sentAt);
    echoOk.add(event.data === expected);
    echoed++;
    if (echoed < MESSAGES) {
      sendNext();
    } else {
      ws.close();
    }
  };
  ws.onerror = (event) => {
    wsErrors.add(1);
    console.error(`VU ${__VU}: WebSocket error: ${event.error}`);
  };
  ws.onclose = () => {
    check(null, {
      'connection opened': () => opened,
      'every message echoed': () => echoed === MESSAGES,
    });
  };
}
