// The known-good echoing client scripts/autobahn.sh drives against
// `wstest -m fuzzingserver`, straight or through wsproxy-fast: it asks the
// fuzzing server how many cases it has, runs each one (/runCase?case=N),
// echoing every message back as it came, and finally asks it to write its
// reports (/updateReports). The verdicts are the fuzzing server's.
//
//   node client.js BASE_URL AGENT HOST [CA_FILE]
//
// BASE_URL is ws://HOST:PORT or wss://HOST:PORT (then CA_FILE, a PEM CA
// certificate, is trusted for it). AGENT names the run in the reports.
// HOST is the Host header every request carries: the fuzzing server's own
// address, as it refuses (400) a Host whose port is not the one it listens
// on, and wsproxy-fast passes the client's Host on unchanged, as a reverse
// proxy does (the client addresses the site, not the proxy's port).
// Cases run one at a time; exits 0 once the reports are written, 1 if a
// connection fails before that.
//
// Like echo.js it lifts ws's fragment limit (maxFragments 0 is the client's
// default already) and offers permessage-deflate (the client's default), so
// the compression cases negotiate it.
'use strict';

const fs = require('fs');
const WebSocket = require('ws');

const [base, agent, host, caFile] = process.argv.slice(2);
if (!base || !agent || !host || !/^wss?:\/\//.test(base)) {
  console.error('usage: node client.js ws[s]://HOST:PORT AGENT HOST [CA_FILE]');
  process.exit(2);
}
const options = { maxFragments: 0, headers: { Host: host } };
if (caFile) options.ca = fs.readFileSync(caFile);

const url = (path) => `${base}${path}${path.includes('?') ? '&' : '?'}agent=${encodeURIComponent(agent)}`;

function fail(what, err) {
  console.error(`client.js: ${what}: ${err.message}`);
  process.exit(1);
}

function runCase(n, count) {
  if (n > count) {
    const ws = new WebSocket(url('/updateReports'), options);
    ws.on('error', (err) => fail('/updateReports', err));
    ws.on('close', () => {
      console.log(`client.js: ${count} cases run, reports written for ${agent}`);
      process.exit(0);
    });
    return;
  }
  const ws = new WebSocket(url(`/runCase?case=${n}`), options);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  // Protocol errors are what the cases provoke: ws closes with its code and
  // the fuzzing server judges it; only the next case matters here.
  ws.on('error', () => {});
  ws.on('close', () => runCase(n + 1, count));
}

const counter = new WebSocket(`${base}/getCaseCount`, options);
let count = 0;
counter.on('message', (data) => {
  count = Number(String(data));
});
counter.on('error', (err) => fail('/getCaseCount', err));
counter.on('close', () => {
  if (!(count > 0)) fail('/getCaseCount', new Error(`no case count (got ${count})`));
  runCase(1, count);
});
