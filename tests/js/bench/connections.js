'use strict';

// Memory per connection: RSS of an idle server, then with N connected
// socket.io-client sockets (websocket), each viewing a ticket and following a
// timeline. Bounded: N sockets, one pass, then everything is closed.
//
//   TARGET=rust SWITCHBOARD_BIN=../../target/release/switchboard node bench/connections.js 1000
//   TARGET=peer node bench/connections.js 1000
//   ... node bench/connections.js 1000 idle      # connected only
//   ... node bench/connections.js 1000 polling   # long-polling clients
//
// Prints one line of JSON with the figures.

const fs = require('node:fs');
const h = require('../helpers');

const N = Math.min(Number(process.argv[2] || 1000), 20000);
// `idle`: connect only (no ticket, no timeline); `polling`: long-polling clients.
const IDLE = process.argv.includes('idle');
const TRANSPORT = process.argv.includes('polling') ? 'polling' : 'websocket';

function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/^VmRSS:\s+(\d+) kB$/m)[1]);
}

async function settle(pid) {
  // RSS after the allocator has quieted down: the lowest of a few samples.
  let min = Infinity;
  for (let i = 0; i < 5; i++) {
    await h.sleep(200);
    min = Math.min(min, rssKiB(pid));
  }
  return min;
}

(async () => {
  const server = await h.startServer({ events_per_second: 0, max_tickets_per_socket: 10, max_timelines_per_socket: 10 });
  const pid = server.proc.pid;
  try {
    const idle = await settle(pid);
    const sockets = [];
    for (let i = 0; i < N; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(N, i + 100); j++) {
        batch.push((async () => {
          const s = await h.connect(server.url, { transports: [TRANSPORT] });
          if (IDLE) return s;
          await h.emitAck(s, 'ticket:view', { ticketId: `t${j % 200}`, agentId: `a${j}`, agentName: `Agent ${j}` }, 10000);
          await h.emitAck(s, 'timeline:subscribe', { entityType: 'client', entityId: `${j % 500}` }, 10000);
          return s;
        })());
      }
      sockets.push(...(await Promise.all(batch)));
    }
    const loaded = await settle(pid);
    console.log(JSON.stringify({
      target: process.env.TARGET || 'rust',
      connections: N,
      transport: TRANSPORT,
      idle: IDLE,
      idleRssKiB: idle,
      loadedRssKiB: loaded,
      perConnectionKiB: Number(((loaded - idle) / N).toFixed(2)),
    }));
    for (const s of sockets) s.close();
  } finally {
    await server.stop();
  }
  process.exit(0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
