// k6 connection soak through the proxy (k6 1.1, k6/experimental/websockets).
//
//   k6 run -e URL=ws://127.0.0.1:8080/ loadtest/k6/soak.js
//   loadtest/k6.sh soak [--short] [--tls] [URL]  (starts its own proxy without URL)
//
// A wss:// URL skips certificate checks (insecureSkipTLSVerify): the load
// tests' certificates are throwaways.
//
// VUS connections stay open for DURATION. Every PING_INTERVAL each one sends
// a Ping (the echo backend answers Pong through the proxy) and a small text
// message whose echo is checked; a connection that closes before the end is
// counted as dropped. This is what an edge proxy mostly does: hold many
// quiet connections and keep them alive.
//
// Environment: URL (required), VUS (default 500), DURATION (default 120s),
// PING_INTERVAL (default 5s), SHORT=1 (CI: 20 VUs for 4 s, pings every 0.5 s).
//
// Thresholds (k6 exits 99 if one fails): checks > 99.9% (opened, every ping
// answered, every echo matched, not dropped), pong_ok and echo_ok > 99.9%,
// ws_dropped == 0, ws_errors == 0.

import { WebSocket } from 'k6/experimental/websockets';
import { check } from 'k6';
import { setInterval, clearInterval, setTimeout } from 'k6/timers';
import { Counter, Rate } from 'k6/metrics';

const URL = __ENV.URL;
if (!URL) {
  throw new Error('set URL, e.g. k6 run -e URL=ws://127.0.0.1:8080/ loadtest/k6/soak.js');
}
const SHORT = __ENV.SHORT === '1';
const VUS = Number(__ENV.VUS || (SHORT ? 20 : 500));
const DURATION_S = seconds(__ENV.DURATION || (SHORT ? '4s' : '120s'));
const PING_S = seconds(__ENV.PING_INTERVAL || (SHORT ? '0.5s' : '5s'));

// Whether each Ping got its Pong before the next Ping (or the end).
const pongOk = new Rate('pong_ok');
// Whether each keep-alive message came back unchanged.
const echoOk = new Rate('echo_ok');
// Connections closed before the soak ended them.
const dropped = new Counter('ws_dropped');
const wsErrors = new Counter('ws_errors');

function seconds(text) {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!match) throw new Error(`duration ${text}: use e.g. 500ms, 5s, 2m`);
  return Number(match[1]) * { ms: 0.001, s: 1, m: 60 }[match[2] || 's'];
}

export const options = {
  insecureSkipTLSVerify: URL.startsWith('wss://'),
  scenarios: {
    soak: {
      // One iteration per VU: each VU holds one connection for the whole soak.
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${Math.ceil(DURATION_S + 30)}s`,
    },
  },
  thresholds: {
    checks: ['rate>0.999'],
    pong_ok: ['rate>0.999'],
    echo_ok: ['rate>0.999'],
    ws_dropped: ['count==0'],
    ws_errors: ['count==0'],
  },
};

export default function () {
  const ws = new WebSocket(URL);
  let opened = false;
  let closing = false;
  let awaitingPong = false;
  let expected = null;
  let ticks = 0;
  let timer = null;

  function settle() {
    // A Ping or message still unanswered at the next tick (or the end) failed.
    if (awaitingPong) pongOk.add(false);
    if (expected !== null) echoOk.add(false);
    awaitingPong = false;
    expected = null;
  }

  ws.onopen = () => {
    opened = true;
    timer = setInterval(() => {
      settle();
      ticks++;
      awaitingPong = true;
      ws.ping();
      expected = `keep-alive ${__VU}:${ticks}`;
      ws.send(expected);
    }, PING_S * 1000);
    setTimeout(() => {
      clearInterval(timer);
      closing = true;
      // Give the last tick's answers a moment (a tenth of the interval) before closing.
      setTimeout(() => {
        settle();
        ws.close();
      }, Math.min(1000, PING_S * 100));
    }, DURATION_S * 1000);
  };
  ws.onpong = () => {
    if (awaitingPong) pongOk.add(true);
    awaitingPong = false;
  };
  ws.onmessage = (event) => {
    echoOk.add(event.data === expected);
    expected = null;
  };
  ws.onerror = (event) => {
    wsErrors.add(1);
    console.error(`VU ${__VU}: WebSocket error: ${event.error}`);
  };
  ws.onclose = () => {
    if (timer !== null) clearInterval(timer);
    if (!closing) dropped.add(1);
    check(null, {
      'connection opened': () => opened,
      'held until the end': () => closing,
      'pinged at least once': () => ticks > 0,
    });
  };
}
