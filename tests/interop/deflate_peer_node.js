// permessage-deflate peer for tests/interop_node.rs, on node's `ws`
// (installed by the test into target/node-ws from npm).
//
// Usage: node deflate_peer_node.js server CONFIG
//        node deflate_peer_node.js client URL CONFIG
//
// CONFIG is ws's perMessageDeflate setting:
//   default  perMessageDeflate: true (15-bit windows, context takeover,
//            messages under 1 KiB sent uncompressed: ws's threshold)
//   small    9-bit windows both ways, threshold 0 (every message)
//   nct      no context takeover either way, threshold 0
//
// server: an echo server on 127.0.0.1 (ephemeral port); prints "PORT n",
//         then "EXT value" for every connection; runs until stdin ends.
// client: sends 120 JSON-like text messages (10 B to 40 KiB) and 20 binary
//         ones, checks every echo, prints "EXT value" and "ok N", closes
//         with 1000. Exit 0 only if every echo matched.
'use strict';

const WebSocket = require('ws');

function deflate(config) {
  if (config === 'default') return true;
  if (config === 'small') {
    return { serverMaxWindowBits: 9, clientMaxWindowBits: 9, threshold: 0 };
  }
  if (config === 'nct') {
    return { serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: 0 };
  }
  console.error(`unknown config ${config}`);
  process.exit(2);
}

// A deterministic generator (same messages every run).
function rng(seed) {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s % n;
  };
}

function message(r, i) {
  const sizes = [10, 100, 700, 1024, 3000, 16384, 40000];
  const size = sizes[r(sizes.length)];
  // JSON.stringify of the growing array, built one record at a time
  // (stringifying the whole array per record was quadratic).
  const parts = [];
  let length = 2; // the brackets
  while (length < size) {
    const part = JSON.stringify({ id: r(100000), user: `player${r(50)}`, pos: [r(2000), r(2000)],
      state: r(2) ? 'online' : 'away', seq: i });
    length += part.length + (parts.length ? 1 : 0);
    parts.push(part);
  }
  return `[${parts.join(',')}]`.slice(0, size);
}

function server(config) {
  const wss = new WebSocket.WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: deflate(config),
    maxPayload: 0 });
  wss.on('listening', () => console.log(`PORT ${wss.address().port}`));
  // The extension as agreed: the response's header line.
  wss.on('headers', (headers) => {
    const line = headers.find((h) => h.toLowerCase().startsWith('sec-websocket-extensions:'));
    console.log(`EXT ${line ? line.slice(line.indexOf(':') + 1).trim() : ''}`);
  });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

function client(url, config) {
  const ws = new WebSocket(url, { perMessageDeflate: deflate(config), maxPayload: 0 });
  const r = rng(7);
  const sent = [];
  for (let i = 0; i < 120; i++) sent.push({ data: message(r, i), binary: false });
  for (let i = 0; i < 20; i++) {
    const b = Buffer.alloc(1 + r(20000));
    for (let j = 0; j < b.length; j++) b[j] = (j * 7 + i) & 0xff;
    sent.push({ data: b, binary: true });
  }
  let n = 0;
  const timer = setTimeout(() => { console.error('timeout'); process.exit(2); }, 60000);
  ws.on('upgrade', (res) => console.log(`EXT ${res.headers['sec-websocket-extensions'] || ''}`));
  ws.on('open', () => ws.send(sent[0].data, { binary: sent[0].binary }));
  ws.on('message', (data, isBinary) => {
    const want = sent[n];
    const same = isBinary === want.binary &&
      (isBinary ? Buffer.compare(data, want.data) === 0 : data.toString('utf8') === want.data);
    if (!same) {
      console.error(`message ${n} differs`);
      process.exit(1);
    }
    n++;
    if (n === sent.length) {
      console.log(`ok ${n}`);
      clearTimeout(timer);
      ws.close(1000);
      return;
    }
    ws.send(sent[n].data, { binary: sent[n].binary });
  });
  ws.on('close', () => process.exit(n === sent.length ? 0 : 1));
  ws.on('error', (e) => { console.error(`error: ${e.message}`); process.exit(2); });
}

const [mode, a, b] = process.argv.slice(2);
if (mode === 'server') server(a);
else if (mode === 'client') client(a, b);
else { console.error('usage: deflate_peer_node.js server CONFIG | client URL CONFIG'); process.exit(2); }
