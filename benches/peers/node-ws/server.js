// Raw broadcast peer: every text message to every client, sender included, verbatim.
// Usage: node server.js [HOST:PORT] (default 127.0.0.1:9002; port 0 picks one).
// Prints `peer listening ws=HOST:PORT` once bound.
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const arg = process.argv[2] || '127.0.0.1:9002';
const cut = arg.lastIndexOf(':');
const host = arg.slice(0, cut).replace(/^\[|\]$/g, '');
const port = Number(arg.slice(cut + 1));

const wss = new WebSocketServer({ host, port, perMessageDeflate: false });
wss.on('listening', () => {
  const a = wss.address();
  const shown = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  console.log(`peer listening ws=${shown}:${a.port}`);
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: false });
    }
  });
  ws.on('error', () => {});
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
