'use strict';

// Multi-instance mode (redis_url set) under faults (contract section 3
// "Multi-instance" and "Redis outage", section 5 /ready and "partial",
// section 6 SIGTERM): an instance killed (SIGKILL), an instance stopped
// (SIGTERM), Redis stopped under traffic and started again on the same port,
// Redis absent when the nodes start.
//
// Time bounds asserted are the contract's only: node_timeout plus a few
// seconds for a lost node, 5 s for the resync after Redis comes back (with a
// margin: 10 s). Rust target only: the Node.js peer has no cluster-wide
// presence, no node_lost and no resync.

const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const { isDeepStrictEqual } = require('node:util');
const h = require('../helpers');
const { startRedis, requireRedisServer, clusterFixture, clusterForDescribe } = require('../redis');

const TOKEN = 's3cret';
const SKIP = h.isPeer ? 'the peer has no cluster-wide presence, node_lost or resync' : false;
const NODE_TIMEOUT = 2000;
const LOST_MARGIN = 8000; // "node_timeout plus a few seconds"
const RESYNC_BOUND = 10_000; // the contract's 5 s, with margin
const NODE_CONFIG = { internal_token: TOKEN, events_per_second: 0, node_timeout: NODE_TIMEOUT, shutdown_timeout: 5000 };

const api = (node, method, p, body) => h.http(method, `${node.internalUrl}${p}`, { token: TOKEN, body });

const viewersOn = async (node, ticketId) => {
  const res = await api(node, 'GET', `/v1/tickets/${encodeURIComponent(ticketId)}/viewers`);
  assert.equal(res.status, 200, `viewers of ${ticketId} on ${node.internalUrl}: ${res.status} ${res.text}`);
  h.assertViewerList(res.json.viewers);
  return res.json.viewers;
};
const idsOf = (viewers) => viewers.map((v) => v.agentId);
const listedOn = (nodes, ticketId, ids, timeoutMs = 5000) => h.eventually(async () => {
  const lists = [];
  for (const node of nodes) lists.push(idsOf(await viewersOn(node, ticketId)));
  if (lists.every((l) => JSON.stringify(l) === JSON.stringify(ids))) return true;
  throw new Error(`viewers of ${ticketId} per node: ${JSON.stringify(lists)}`);
}, { timeoutMs, message: `viewers ${JSON.stringify(ids)} of ${ticketId} on ${nodes.map((n) => n.internalUrl).join(', ')}` });

const view = async (s, ticketId, agentId, agentName = agentId.toUpperCase()) => {
  const ack = await h.emitAck(s, 'ticket:view', { ticketId, agentId, agentName });
  assert.equal(ack.ok, true, `ticket:view ${ticketId} as ${agentId}: ${JSON.stringify(ack)}`);
  return ack;
};
const subscribe = async (s, entityType, entityId) => {
  const ack = await h.emitAck(s, 'timeline:subscribe', { entityType, entityId });
  assert.deepEqual(ack, h.withPosition({ ok: true, entityType, entityId }, h.clusterPosition(ack)));
};
// Publish replies (v2 section 4.1). Cluster-wide offsets are not implemented
// yet: while Redis is up only the fields are required (h.clusterPosition, see
// helpers.js); during an outage they are null by the contract.
const DELIVERED_PARTIAL = h.withPosition({ delivered: true, partial: true }, { offset: null, epoch: null });
const isDelivered = (json) => {
  try {
    return isDeepStrictEqual(json, h.withPosition({ delivered: true }, h.clusterPosition(json)));
  } catch {
    return false; // no offset or epoch, or malformed ones
  }
};
const publish = (node, entityType, entityId, item) => api(node, 'POST', `/v1/timeline/${entityType}/${entityId}/items`, item);

// Ada (on A), then Cy with a tab on each node (so Cy outlives either node),
// then Bob (on B) view ticket t, each listed on both nodes before the next.
const adaCyBobView = async ([A, B], t, { ada, cyA, cyB, bob }) => {
  await view(ada, t, 'ada', 'Ada');
  await listedOn([A, B], t, ['ada']);
  await h.separateTimestamps(3);
  await view(cyA, t, 'cy', 'Cy');
  await view(cyB, t, 'cy', 'Cy');
  await listedOn([A, B], t, ['ada', 'cy']);
  await h.separateTimestamps(3);
  await view(bob, t, 'bob', 'Bob');
  await listedOn([A, B], t, ['ada', 'cy', 'bob']);
};

// Publishes to contact `entityId` on `node` (ids probe1, probe2, ...) until
// `subscriber` has one of them: cross-instance delivery works (again).
const publishUntilDelivered = (node, entityId, subscriber, message) => {
  let probe = 0;
  return h.eventually(async () => {
    probe += 1;
    const r = await publish(node, 'contact', entityId, { id: `probe${probe}` });
    assert.equal(r.status, 202, r.text);
    return h.eventsOf(subscriber, 'timeline:new_item').some((p) => String(p.item.id).startsWith('probe'));
  }, { timeoutMs: RESYNC_BOUND, intervalMs: 200, message });
};

// GET /ready: 200 { status: "ready" } or 503 NOT_READY.
const readyStatus = async (node) => (await h.http('GET', `${node.internalUrl}/ready`, { timeoutMs: 2000 })).status;
const assertNotReady = async (node) => {
  const res = await h.http('GET', `${node.internalUrl}/ready`, { timeoutMs: 2000 });
  h.assertHttpError(res, 503, 'NOT_READY');
};
const waitReady = (nodes, want, timeoutMs) => h.eventually(async () => {
  const got = [];
  for (const n of nodes) got.push(await readyStatus(n));
  if (got.every((s) => s === want)) return true;
  throw new Error(`GET /ready per node: ${JSON.stringify(got)}`);
}, { timeoutMs, intervalMs: 100, message: `GET /ready ${want} on every node` });

const alive = (node) => node.proc.exitCode === null && node.proc.signalCode === null;

// Redis and two nodes (NODE_CONFIG, then `config`) for the describe; see redis.js.
const clusterOfTwo = (config = {}) => clusterForDescribe(2, { ...NODE_CONFIG, ...config }, { token: TOKEN });

// A plain failure (not a skip) when Redis is missing: these tests must run.
it('redis-server is installed (the multi-instance tests need it)', { skip: SKIP }, () => {
  requireRedisServer();
});

describe('cluster faults: an instance killed (SIGKILL)', { skip: SKIP }, () => {
  const ctx = clusterOfTwo();

  it('survivors get agent:left node_lost and viewers:updated within node_timeout + a few seconds; its viewers leave the list', { timeout: 60_000 }, async () => {
    const [A, B] = ctx.nodes; // A dies
    const t = h.uid('t');
    const e = h.uid('e');
    const ada = await h.connect(A.url, { transports: ['websocket'] });
    const cyA = await h.connect(A.url, { transports: ['websocket'] });
    const cyB = await h.connect(B.url, { transports: ['polling'] });
    const bob = await h.connect(B.url, { transports: ['websocket'] });
    const dan = await h.connect(B.url, { transports: ['polling'] });
    await adaCyBobView([A, B], t, { ada, cyA, cyB, bob });
    await h.separateTimestamps(3);
    await view(dan, t, 'dan', 'Dan');
    await listedOn([A, B], t, ['ada', 'cy', 'bob', 'dan']);
    await subscribe(bob, 'contact', e);
    for (const s of [bob, dan, cyB]) h.clearEvents(s);

    const killedAt = Date.now();
    A.proc.kill('SIGKILL');
    const bound = NODE_TIMEOUT + LOST_MARGIN;
    const lost = { ticketId: t, agentId: 'ada', agentName: 'Ada', reason: 'node_lost' };
    assert.deepEqual(await h.nextEvent(bob, 'agent:left', bound), lost);
    const elapsed = Date.now() - killedAt;
    assert.deepEqual(await h.nextEvent(dan, 'agent:left', 2000), lost);
    assert.deepEqual(await h.nextEvent(cyB, 'agent:left', 2000), lost);
    for (const s of [bob, dan, cyB]) {
      const vu = await h.nextEvent(s, 'viewers:updated', { timeout: 2000, where: (p) => !p.viewers.some((v) => v.agentId === 'ada') });
      assert.equal(vu.ticketId, t);
      assert.deepEqual(idsOf(vu.viewers), ['cy', 'bob', 'dan']);
    }
    // Cy still has a tab on B: Cy is not lost.
    await h.noEvent(bob, 'agent:left', 500, { where: (p) => p.agentId === 'cy' });
    assert.deepEqual(idsOf(await viewersOn(B, t)), ['cy', 'bob', 'dan']);
    h.assertViewerList(await viewersOn(B, t));
    assert.ok(elapsed <= bound, `agent:left node_lost after ${elapsed} ms`);

    // B counts one node now, and the lost node's figures are gone.
    await h.eventually(async () => {
      const c = (await h.statsOf(B, TOKEN)).cluster;
      if (c.nodes === 1 && c.connections === 3 && c.tickets.viewers === 3 && c.tickets.watched === 1) return true;
      throw new Error(JSON.stringify(c));
    }, { timeoutMs: 5000, message: 'B reports a cluster of one' });

    // The survivor goes on: publishes, presence, readiness.
    assert.equal(await readyStatus(B), 200);
    const res = await publish(B, 'contact', e, { id: 1 });
    assert.equal(res.status, 202, res.text);
    assert.deepEqual(res.json, h.withPosition({ delivered: true }, h.clusterPosition(res.json)));
    await h.nextEvent(bob, 'timeline:new_item');
    assert.deepEqual(await h.emitAck(bob, 'ticket:leave', { ticketId: t, agentId: 'bob' }), { ok: true, ticketId: t });
    assert.deepEqual(await h.nextEvent(dan, 'agent:left'), { ticketId: t, agentId: 'bob', agentName: 'Bob', reason: 'left' });
  });
});

describe('cluster faults: an instance stopped (SIGTERM)', { skip: SKIP }, () => {
  // A long node_timeout: what the others see must come from the goodbye, not
  // from a lost-node timeout.
  const LONG_NODE_TIMEOUT = 10_000;
  const ctx = clusterOfTwo({ node_timeout: LONG_NODE_TIMEOUT });

  it('the others get agent:left disconnected promptly; its clients see transport close; it exits 0', { timeout: 60_000 }, async () => {
    const [A, B] = ctx.nodes; // A is stopped
    const t = h.uid('t');
    const ada = await h.connect(A.url, { transports: ['websocket'] });
    const cyA = await h.connect(A.url, { transports: ['websocket'] });
    const cyB = await h.connect(B.url, { transports: ['websocket'] });
    const bob = await h.connect(B.url, { transports: ['websocket'] });
    await adaCyBobView([A, B], t, { ada, cyA, cyB, bob });
    h.clearEvents(bob);
    h.clearEvents(cyB);

    const stoppedAt = Date.now();
    const exit = A.stop(); // SIGTERM (SIGKILL only after 5 s)
    const [reasonAda, reasonCy] = await Promise.all([h.disconnected(ada, 6000), h.disconnected(cyA, 6000)]);
    assert.equal(reasonAda, 'transport close');
    assert.equal(reasonCy, 'transport close');
    // Promptly: well before node_timeout could have declared A lost.
    const left = { ticketId: t, agentId: 'ada', agentName: 'Ada', reason: 'disconnected' };
    assert.deepEqual(await h.nextEvent(bob, 'agent:left', 6000), left);
    assert.ok(Date.now() - stoppedAt < LONG_NODE_TIMEOUT, 'agent:left came from the goodbye');
    assert.deepEqual(await h.nextEvent(cyB, 'agent:left', 2000), left);
    const result = await exit;
    assert.deepEqual(result, { code: 0, signal: null }, `exit after SIGTERM:\n${A.stderr()}`);

    const vu = await h.nextEvent(bob, 'viewers:updated', { where: (p) => !p.viewers.some((v) => v.agentId === 'ada') });
    assert.deepEqual(idsOf(vu.viewers), ['cy', 'bob']);
    await h.noEvent(bob, 'agent:left', 300, { where: (p) => p.agentId === 'cy' });
    assert.deepEqual(idsOf(await viewersOn(B, t)), ['cy', 'bob']);
    await h.eventually(async () => (await h.statsOf(B, TOKEN)).cluster.nodes === 1, {
      timeoutMs: LONG_NODE_TIMEOUT + 5000,
      message: 'B reports a cluster of one',
    });
  });
});

describe('cluster faults: Redis stopped under traffic, then started again', { skip: SKIP }, () => {
  const ctx = clusterOfTwo();

  it('local delivery and presence go on, /ready 503, partial; then resync: delivery, /ready, viewers, timeline:refresh', { timeout: 90_000 }, async () => {
    const [A, B] = ctx.nodes;
    const e = h.uid('e');
    const t1 = h.uid('t');
    const t2 = h.uid('t');
    const sA = await h.connect(A.url, { transports: ['websocket'] });
    const sB = await h.connect(B.url, { transports: ['polling'] });
    const ada = await h.connect(A.url, { transports: ['websocket'] });
    const bob = await h.connect(B.url, { transports: ['websocket'] });
    await subscribe(sA, 'contact', e);
    await subscribe(sB, 'contact', e);
    await view(ada, t1, 'ada', 'Ada');
    await listedOn([A, B], t1, ['ada']);
    await h.separateTimestamps(3);
    await view(bob, t1, 'bob', 'Bob');
    await listedOn([A, B], t1, ['ada', 'bob']);
    assert.equal(await readyStatus(A), 200);
    assert.equal(await readyStatus(B), 200);
    let res = await publish(A, 'contact', e, { id: 'before' });
    assert.deepEqual(res.json, h.withPosition({ delivered: true }, h.clusterPosition(res.json)));
    await h.nextEvent(sB, 'timeline:new_item', { where: (p) => p.item.id === 'before' });
    await h.nextEvent(sA, 'timeline:new_item', { where: (p) => p.item.id === 'before' });

    // Traffic: a publish to A every 100 ms, numbered, for the whole outage
    // (bounded: at most 600 publishes or 60 s).
    const replies = [];
    let traffic = true;
    const loop = (async () => {
      const until = Date.now() + 60_000;
      for (let seq = 0; traffic && seq < 600 && Date.now() < until; seq++) {
        try {
          const r = await publish(A, 'contact', e, { id: `n${seq}`, seq });
          replies.push({ seq, status: r.status, json: r.json, at: Date.now() });
        } catch (err) {
          replies.push({ seq, status: `no reply (${err.message})`, json: null, at: Date.now() });
        }
        await h.elapse(100); // the traffic's pace
      }
    })();

    try {
      // The outage starts under traffic: a few publishes answered first.
      await h.eventually(() => replies.length >= 3, { timeoutMs: 10_000, message: 'three traffic publishes answered before the outage' });
      await ctx.redis.stop();
      const downAt = Date.now();

      // Readiness drops on both nodes; liveness does not.
      await waitReady([A, B], 503, 10_000);
      await assertNotReady(A);
      await assertNotReady(B);
      assert.equal((await h.http('GET', `${A.internalUrl}/health`)).status, 200);

      // A publish while Redis is down: 202 partial, and the local subscriber has it.
      await h.eventually(() => replies.some((r) => r.at > downAt && r.json && r.json.partial === true), {
        timeoutMs: 10_000,
        message: 'a partial publish while Redis is down',
      });
      res = await publish(A, 'contact', e, { id: 'down-A' });
      assert.equal(res.status, 202, res.text);
      assert.deepEqual(res.json, DELIVERED_PARTIAL);
      await h.nextEvent(sA, 'timeline:new_item', { where: (p) => p.item.id === 'down-A' });
      res = await publish(B, 'contact', e, { id: 'down-B' });
      assert.equal(res.status, 202, res.text);
      assert.deepEqual(res.json, DELIVERED_PARTIAL);
      await h.nextEvent(sB, 'timeline:new_item', { where: (p) => p.item.id === 'down-B' });

      // Local presence on A goes on: a view, a second agent, warnings, joins.
      const cy = await h.connect(A.url, { transports: ['websocket'] });
      const dan = await h.connect(A.url, { transports: ['polling'] });
      const ackCy = await view(cy, t2, 'cy', 'Cy');
      assert.deepEqual(idsOf(ackCy.viewers), ['cy']);
      await h.separateTimestamps(3);
      const ackDan = await view(dan, t2, 'dan', 'Dan');
      assert.deepEqual(idsOf(ackDan.viewers), ['cy', 'dan']);
      const warning = await h.nextEvent(dan, 'collision:warning');
      assert.equal(warning.message, 'Cy is viewing this ticket');
      assert.deepEqual(await h.nextEvent(cy, 'agent:joined'), { ticketId: t2, agentId: 'dan', agentName: 'Dan', since: ackDan.viewers[1].since });
      // A timeline subscribed during the outage is resynced too.
      const sNew = await h.connect(A.url, { transports: ['websocket'] });
      await subscribe(sNew, 'deal', e);
      res = await publish(A, 'deal', e, { id: 'down-deal' });
      assert.equal(res.status, 202, res.text);
      await h.nextEvent(sNew, 'timeline:new_item', { where: (p) => p.item.id === 'down-deal' });

      // Redis comes back on the same port (empty: no persistence).
      for (const s of [sA, sB, sNew]) h.clearEvents(s, 'timeline:refresh');
      await ctx.redis.restart();
      const upAt = Date.now();

      const resync = (entityType) => ({ entityType, entityId: e, reason: 'resync' });
      const refreshes = Promise.all([
        h.nextEvent(sA, 'timeline:refresh', { timeout: RESYNC_BOUND, where: (p) => p.reason === 'resync' }),
        h.nextEvent(sB, 'timeline:refresh', { timeout: RESYNC_BOUND, where: (p) => p.reason === 'resync' }),
        h.nextEvent(sNew, 'timeline:refresh', { timeout: RESYNC_BOUND, where: (p) => p.reason === 'resync' }),
      ]);
      await waitReady([A, B], 200, RESYNC_BOUND);
      // Cross-instance delivery resumes: publish to A until B's subscriber has one.
      await publishUntilDelivered(A, e, sB, 'a publish to A reaches B again');
      const [rA, rB, rNew] = await refreshes;
      assert.deepEqual(rA, resync('contact'));
      assert.deepEqual(rB, resync('contact'));
      assert.deepEqual(rNew, resync('deal'));
      await h.eventually(async () => {
        const r = await publish(A, 'contact', e, { id: 'up' });
        return r.status === 202 && isDelivered(r.json);
      }, { timeoutMs: RESYNC_BOUND, intervalMs: 200, message: 'publishes answer exactly { delivered: true } (v2: with offset and epoch) again' });

      // Each instance re-published its viewers: A's are listed by B and the other way round.
      await listedOn([A, B], t2, ['cy', 'dan'], RESYNC_BOUND);
      await listedOn([A, B], t1, ['ada', 'bob'], RESYNC_BOUND);
      await h.waitCluster([A, B], 2, { token: TOKEN, timeoutMs: RESYNC_BOUND });
      const resumedIn = Date.now() - upAt;

      // And the cluster-wide presence works across nodes again.
      const eve = await h.connect(B.url, { transports: ['websocket'] });
      await view(eve, t2, 'eve', 'Eve');
      assert.equal((await h.nextEvent(eve, 'collision:warning')).message, 'Cy and Dan are viewing this ticket');
      assert.equal((await h.nextEvent(cy, 'agent:joined', { where: (p) => p.agentId === 'eve' })).agentName, 'Eve');
      assert.ok(resumedIn < 3 * RESYNC_BOUND, `resynced in ${resumedIn} ms`);
    } finally {
      traffic = false;
      await loop;
    }

    // Local delivery never stopped: every publish to A answered 202 and
    // reached A's subscriber, in order.
    assert.ok(replies.length > 0);
    for (const r of replies) {
      assert.equal(r.status, 202, `publish ${r.seq}: ${r.status} ${JSON.stringify(r.json)}`);
      assert.ok(
        isDeepStrictEqual(r.json, DELIVERED_PARTIAL) || isDelivered(r.json),
        `publish ${r.seq}: ${JSON.stringify(r.json)}`,
      );
    }
    const last = replies[replies.length - 1].seq;
    await h.eventually(() => h.eventsOf(sA, 'timeline:new_item').some((p) => p.item.seq === last), { timeoutMs: 3000, message: 'the last traffic item on A' });
    const seen = h.eventsOf(sA, 'timeline:new_item').filter((p) => typeof p.item.seq === 'number').map((p) => p.item.seq);
    assert.deepEqual(seen, replies.map((r) => r.seq), 'every publish to A reached A\'s subscriber, in order');
  });
});

describe('cluster faults: Redis absent when the nodes start', { skip: SKIP }, () => {
  const ctx = clusterFixture(); // Redis comes later, in the test
  let redisPort;
  before(async () => {
    requireRedisServer(); // fail now, not once the nodes are up
    redisPort = await h.freePort(); // nothing listens there yet
    ctx.nodes = await h.startNodes(2, { ...NODE_CONFIG, redis_url: `redis://127.0.0.1:${redisPort}` });
  });

  it('the nodes start and serve their own clients, /ready 503; once Redis is up they form the cluster', { timeout: 60_000 }, async () => {
    const [A, B] = ctx.nodes;
    const e = h.uid('e');
    const t = h.uid('t');
    await h.quietPeriod(500); // the nodes must not exit for want of Redis
    assert.ok(alive(A) && alive(B), `a node exited without Redis:\n${A.stderr()}\n${B.stderr()}`);
    await assertNotReady(A);
    await assertNotReady(B);

    const sA = await h.connect(A.url, { transports: ['websocket'] });
    const sB = await h.connect(B.url, { transports: ['polling'] });
    const ada = await h.connect(A.url, { transports: ['websocket'] });
    await subscribe(sA, 'contact', e);
    await subscribe(sB, 'contact', e);
    const ack = await view(ada, t, 'ada', 'Ada');
    assert.deepEqual(idsOf(ack.viewers), ['ada']);
    let res = await publish(A, 'contact', e, { id: 'local' });
    assert.equal(res.status, 202, res.text);
    assert.deepEqual(res.json, DELIVERED_PARTIAL);
    await h.nextEvent(sA, 'timeline:new_item', { where: (p) => p.item.id === 'local' });

    ctx.redis = await startRedis({ port: redisPort });
    await waitReady([A, B], 200, RESYNC_BOUND);
    await h.waitCluster([A, B], 2, { token: TOKEN, timeoutMs: RESYNC_BOUND });
    await publishUntilDelivered(A, e, sB, 'a publish to A reaches B');
    res = await publish(A, 'contact', e, { id: 'joined' });
    assert.deepEqual(res.json, h.withPosition({ delivered: true }, h.clusterPosition(res.json)));
    await h.nextEvent(sB, 'timeline:new_item', { where: (p) => p.item.id === 'joined' });
    // The viewer made before Redis was there is known to B.
    await listedOn([A, B], t, ['ada'], RESYNC_BOUND);
    assert.ok(alive(A) && alive(B));
  });
});
