'use strict';

// Server CPU per delivered message: S websocket subscribers on one timeline,
// P timeline events published through the internal API (batches of 100),
// every subscriber receiving every event. Reads the server's user and system
// CPU time from /proc/<pid>/stat before and after. Bounded: S ≤ 2000,
// P ≤ 20000, 120 s to deliver.
//
//   TARGET=rust SWITCHBOARD_BIN=../../target/release/switchboard node bench/fanout-cpu.js [S] [P]
//   TARGET=peer node bench/fanout-cpu.js [S] [P]      # the Node.js original
//
// Prints one line of JSON. The client runs on the same machine; only the
// server's CPU time is counted.

const fs = require('node:fs');
const h = require('../helpers');

const S = Math.max(1, Math.min(Number(process.argv[2] || 200), 2000));
const P = Math.max(100, Math.min(Number(process.argv[3] || 2000), 20_000));
const TICKS = 100; // USER_HZ on Linux

function cpuMs(pid) {
  // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(fields[11]) * 1000) / TICKS, system: (Number(fields[12]) * 1000) / TICKS };
}

h.runBench(async () => {
  const server = await h.startServer({ events_per_second: 0 });
  try {
    const entityId = h.uid('cpu');
    let received = 0;
    let done;
    const all = new Promise((resolve) => {
      done = resolve;
    });
    const sockets = [];
    for (let i = 0; i < S; i += 50) {
      const batch = [];
      for (let j = i; j < Math.min(S, i + 50); j++) {
        batch.push((async () => {
          const s = await h.connect(server.url, { transports: ['websocket'] });
          await h.emitAck(s, 'timeline:subscribe', { entityType: 'client', entityId }, 10_000);
          s.on('timeline:new_item', () => {
            received += 1;
            if (received === S * P) done();
          });
          return s;
        })());
      }
      sockets.push(...(await Promise.all(batch)));
    }
    await h.sleep(500);
    const before = cpuMs(server.proc.pid);
    const started = Date.now();
    for (let sent = 0; sent < P; sent += 100) {
      const events = [];
      for (let k = sent; k < Math.min(P, sent + 100); k++) {
        events.push({ type: 'new_item', entityType: 'client', entityId, item: { id: k, text: 'Call booked with the customer' } });
      }
      const res = await h.http('POST', `${server.internalUrl}/v1/timeline/batch`, { body: { events }, timeoutMs: 30_000 });
      if (res.status !== 202) throw new Error(`batch answered ${res.status} ${res.text}`);
    }
    await Promise.race([all, h.sleep(120_000).then(() => { throw new Error(`only ${received} of ${S * P} delivered`); })]);
    const elapsedMs = Date.now() - started;
    const after = cpuMs(server.proc.pid);
    const deliveries = S * P;
    console.log(JSON.stringify({
      bench: 'fanout-cpu',
      target: process.env.TARGET || 'rust',
      subscribers: S,
      publishes: P,
      deliveries,
      elapsedMs,
      serverUserCpuMs: after.user - before.user,
      serverSystemCpuMs: after.system - before.system,
      userCpuUsPerDelivery: Number((((after.user - before.user) * 1000) / deliveries).toFixed(3)),
      totalCpuUsPerDelivery: Number((((after.user - before.user + after.system - before.system) * 1000) / deliveries).toFixed(3)),
    }));
    for (const s of sockets) s.close();
  } finally {
    await server.stop();
  }
});
