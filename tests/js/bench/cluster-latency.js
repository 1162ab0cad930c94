'use strict';

// Cross-instance publish→delivery latency: two nodes on one Redis, a
// subscriber (websocket) on node B, N publishes (default 1000) sent one at a
// time to node A's internal API, each item carrying an increasing seq.
// Latency = the subscriber's receive time minus the time just before the
// HTTP request (one process, one clock). Checks that all N arrived, in order.
//
//   SWITCHBOARD_BIN=../../target/release/switchboard node bench/cluster-latency.js [N]
//   TARGET=peer node bench/cluster-latency.js [N]     # the Node.js peer with the Redis adapter
//
// Prints one line of JSON. Bounded: N ≤ 10000, 60 s to receive them all.

const { performance } = require('node:perf_hooks');
const h = require('../helpers');
const { withNodesOnRedis } = require('../redis');

const N = Math.max(1, Math.min(Number(process.argv[2] || 1000), 10_000));

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
const ms = (x) => Number(x.toFixed(3));

h.runBench(() => withNodesOnRedis(2, { events_per_second: 0 }, async ({ nodes }) => {
  const [A, B] = nodes;
  const sub = await h.connect(B.url, { transports: ['websocket'] });
  const entityId = h.uid('bench');
  await h.emitAck(sub, 'timeline:subscribe', { entityType: 'contact', entityId });

  const sentAt = new Array(N);
  const latency = [];
  const order = [];
  let done;
  const all = new Promise((resolve) => {
    done = resolve;
  });
  sub.on('timeline:new_item', (p) => {
    const now = performance.now();
    if (p.entityId !== entityId || typeof p.item.seq !== 'number') return;
    order.push(p.item.seq);
    latency.push(now - sentAt[p.item.seq]);
    if (order.length === N) done();
  });

  // Warm-up (not measured): make sure the path is up.
  await h.eventually(async () => {
    await h.http('POST', `${A.internalUrl}/v1/timeline/contact/${entityId}/items`, { body: { id: 'warm' } });
    return h.eventsOf(sub, 'timeline:new_item').length > 0;
  }, { timeoutMs: 10_000, intervalMs: 100, message: 'warm-up delivery' });

  const httpMs = [];
  const started = performance.now();
  for (let seq = 0; seq < N; seq++) {
    sentAt[seq] = performance.now();
    const res = await h.http('POST', `${A.internalUrl}/v1/timeline/contact/${entityId}/items`, { body: { id: `i${seq}`, seq } });
    httpMs.push(performance.now() - sentAt[seq]);
    if (res.status !== 202) throw new Error(`publish ${seq}: ${res.status} ${res.text}`);
  }
  const publishSeconds = (performance.now() - started) / 1000;
  await Promise.race([all, h.sleep(60_000)]);

  const inOrder = order.length === N && order.every((seq, i) => seq === i);
  const sorted = [...latency].sort((a, b) => a - b);
  const httpSorted = [...httpMs].sort((a, b) => a - b);
  console.log(JSON.stringify({
    bench: 'cluster-latency',
    target: h.TARGET,
    publishes: N,
    received: order.length,
    inOrder,
    p50Ms: ms(pct(sorted, 50)),
    p99Ms: ms(pct(sorted, 99)),
    maxMs: ms(sorted[sorted.length - 1]),
    httpP50Ms: ms(pct(httpSorted, 50)),
    publishesPerSecond: Math.round(N / publishSeconds),
  }));
  sub.close();
  if (!inOrder) process.exitCode = 1;
}));
