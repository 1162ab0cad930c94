'use strict';

// Recovery after a Redis restart: two nodes on one Redis, a subscriber
// (websocket) on node B, a publish to node A every 50 ms. Redis is stopped
// (SIGTERM), 3 s later started again on the same port; the figure is the time
// from the restart (just before redis-server is spawned again) to the first
// cross-instance delivery (an item published to A that reaches B), plus when
// /ready is 200 on both, B's subscriber gets timeline:refresh "resync", and B
// lists a viewer made on A during the outage (null: not within 30 s).
//
//   SWITCHBOARD_BIN=../../target/release/switchboard node bench/redis-restart.js
//   TARGET=peer node bench/redis-restart.js     # delivery only; the peer has no resync
//
// Prints one line of JSON. Bounded: at most 1200 publishes (60 s), 30 s to recover.

const h = require('../helpers');
const { withNodesOnRedis } = require('../redis');

h.runBench(() => withNodesOnRedis(2, { events_per_second: 0 }, async ({ redis, nodes }) => {
  const [A, B] = nodes;
  const entityId = h.uid('bench');
  const ticketId = h.uid('t');
  const sub = await h.connect(B.url, { transports: ['websocket'] });
  const ada = await h.connect(A.url, { transports: ['websocket'] });
  await h.emitAck(sub, 'timeline:subscribe', { entityType: 'contact', entityId });
  await h.emitAck(ada, 'ticket:view', { ticketId, agentId: 'ada', agentName: 'Ada' });

  let restartAt = Infinity;
  let firstDelivery = null;
  let refreshAt = null;
  sub.on('timeline:new_item', (p) => {
    const now = Date.now();
    if (firstDelivery === null && now >= restartAt) firstDelivery = { at: now, seq: p.item.seq };
  });
  sub.on('timeline:refresh', (p) => {
    if (p.reason === 'resync' && refreshAt === null && Date.now() >= restartAt) refreshAt = Date.now();
  });

  let sent = 0;
  let partial = 0;
  let traffic = true;
  const loop = (async () => {
    const until = Date.now() + 60_000;
    for (let seq = 0; traffic && seq < 1200 && Date.now() < until; seq++) {
      try {
        const res = await h.http('POST', `${A.internalUrl}/v1/timeline/contact/${entityId}/items`, { body: { id: `i${seq}`, seq }, timeoutMs: 2000 });
        sent += 1;
        if (res.json && res.json.partial) partial += 1;
      } catch {
        /* counted as not sent */
      }
      await h.sleep(50);
    }
  })();

  try {
    // Make sure cross-instance delivery works before the outage.
    await h.eventually(() => h.eventsOf(sub, 'timeline:new_item').length > 0, { timeoutMs: 10_000, message: 'delivery before the outage' });
    await redis.stop();
    // A viewer made on A during the outage: B can only learn of it from A's
    // re-published viewers.
    const cy = await h.connect(A.url, { transports: ['websocket'] });
    await h.emitAck(cy, 'ticket:view', { ticketId, agentId: 'cy', agentName: 'Cy' });
    await h.sleep(3000);
    restartAt = Date.now();
    await redis.restart();
    const redisUpMs = Date.now() - restartAt;

    const ready = async (n) => (await h.http('GET', `${n.internalUrl}/ready`).catch(() => ({ status: 0 }))).status === 200;
    let readyMs = null;
    let viewersMs = null;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (firstDelivery === null || readyMs === null || viewersMs === null)) {
      if (readyMs === null && (await ready(A)) && (await ready(B))) readyMs = Date.now() - restartAt;
      if (viewersMs === null) {
        const res = await h.http('GET', `${B.internalUrl}/v1/tickets/${ticketId}/viewers`).catch(() => null);
        if (res && res.json && Array.isArray(res.json.viewers) && res.json.viewers.some((v) => v.agentId === 'cy')) viewersMs = Date.now() - restartAt;
      }
      await h.sleep(20);
    }
    traffic = false;
    await loop;
    console.log(JSON.stringify({
      bench: 'redis-restart',
      target: h.TARGET,
      outageMs: 3000,
      redisUpMs,
      firstCrossDeliveryMs: firstDelivery ? firstDelivery.at - restartAt : null,
      readyMs,
      resyncRefreshMs: refreshAt ? refreshAt - restartAt : null,
      viewersRepublishedMs: viewersMs,
      publishes: sent,
      partialReplies: partial,
    }));
    if (!firstDelivery) process.exitCode = 1;
  } finally {
    traffic = false;
    await loop;
  }
}));
