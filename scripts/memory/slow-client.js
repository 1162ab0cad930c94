// usage: node slow-client.js PUBLIC_PORT INTERNAL_PORT [max items]
// A raw websocket client subscribes to a timeline and stops reading its TCP
// socket; 1 KB items are published (batches of 8) until the server counts a
// slow-client disconnect (switchboard_slow_client_disconnects_total), at most
// `max items`. Prints the items published.
const net = require('node:net');
const crypto = require('node:crypto');
const [port, internal, MAX] = [process.argv[2], process.argv[3], Number(process.argv[4] || 40000)];
const FILLER = 'x'.repeat(1000);
const key = { entityType: 'contact', entityId: `slow-${process.pid}` };

function frame(text) {
  const p = Buffer.from(text);
  const mask = crypto.randomBytes(4);
  const head = p.length < 126 ? Buffer.from([0x81, 0x80 | p.length]) : Buffer.from([0x81, 0x80 | 126, p.length >> 8, p.length & 0xff]);
  return Buffer.concat([head, mask, Buffer.from(p.map((b, i) => b ^ mask[i % 4]))]);
}

function slowClient() {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      sock.write(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    let seen = '';
    sock.on('data', (d) => {
      seen += d.toString('latin1');
      if (seen.includes('0{"sid"') && !seen.includes('40{')) sock.write(frame('40'));
      if (seen.includes('40{"sid"') && !sock.subscribed) {
        sock.subscribed = true;
        sock.write(frame(`421${JSON.stringify(['timeline:subscribe', key])}`));
      }
      if (seen.includes('431[')) {
        sock.pause();
        resolve(sock);
      }
    });
    sock.on('error', () => {});
  });
}

async function slowDisconnects() {
  const text = await (await fetch(`http://127.0.0.1:${internal}/metrics`)).text();
  return Number(text.match(/^switchboard_slow_client_disconnects_total (\d+)$/m)[1]);
}

(async () => {
  const sock = await slowClient();
  const before = await slowDisconnects();
  const t0 = Date.now();
  let n = 0;
  while (n < MAX) {
    const events = [];
    for (let i = 0; i < 8; i++, n++) events.push({ type: 'new_item', ...key, item: { id: `i-${n}`, body: FILLER } });
    const res = await fetch(`http://127.0.0.1:${internal}/v1/timeline/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events }) });
    if (res.status !== 202) throw new Error(`batch: ${res.status}`);
    if (n % 400 === 0 && (await slowDisconnects()) > before) break;
  }
  console.log(JSON.stringify({ published: n, ms: Date.now() - t0, disconnected: (await slowDisconnects()) > before }));
  sock.destroy();
})();
