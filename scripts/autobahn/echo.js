// The known-good echo upstream scripts/autobahn.sh puts behind wsproxy-fast
// for `wstest -m fuzzingclient`: every message comes back as it came (text
// as text, binary as binary), pings are answered by ws itself, and every
// protocol error is ws's own verdict, so the direct run and the runs through
// the proxy differ only if the proxy does.
//
//   node echo.js PORT        (0: any free port)
//
// Prints "listening on 127.0.0.1:PORT" once it accepts connections.
//
// Options, and why:
//   maxFragments: 0        ws 8.23 refuses messages of more than 16384
//                          fragments by default; cases 9.3.x/9.4.x send a
//                          4 MiB message in fragments as small as 64 B
//                          (65536 of them), so the limit is lifted.
//   perMessageDeflate      on, so the compression cases (12.x, 13.x, run
//                          with --full) negotiate permessage-deflate through
//                          the proxy instead of being skipped.
'use strict';

const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`echo.js: bad port '${process.argv[2]}'`);
  process.exit(2);
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxFragments: 0,
  perMessageDeflate: true,
});

server.on('listening', () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});
server.on('error', (err) => {
  console.error(`echo.js: ${err.message}`);
  process.exit(1);
});
server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  // A protocol error from the fuzzer is expected (ws closes with the right
  // code); it must not crash the echo.
  ws.on('error', () => {});
});
