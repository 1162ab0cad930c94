'use strict';

// Multi-instance mode (redis_url set): timeline fan-out and cluster-wide
// presence (contract sections 3 "Multi-instance", 4 and 5). Every describe
// starts its own Redis (tests/js/redis.js) and its own nodes, and waits for
// the cluster to form (GET /v1/stats cluster.nodes on every node).
//
// The rule under test: with redis_url set, Switchboard behaves for every
// client exactly as one instance would, whichever instance the client or the
// backend reached.
//
// TARGET=peer runs the fan-out part only: the Node.js peer's presence is not
// cluster-wide (see shared/peer-node/README.md).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { isDeepStrictEqual } = require('node:util');
const h = require('../helpers');
const { requireRedisServer, clusterForDescribe } = require('../redis');

const TOKEN = 's3cret';
const PRESENCE_SKIP = h.isPeer ? 'the peer has no cluster-wide presence' : false;
const NODE_CONFIG = { internal_token: TOKEN, events_per_second: 0, node_timeout: 2000 };

const api = (node, method, p, body) => h.http(method, `${node.internalUrl}${p}`, { token: TOKEN, body });

const viewersOn = async (node, ticketId) => {
  const res = await api(node, 'GET', `/v1/tickets/${encodeURIComponent(ticketId)}/viewers`);
  assert.equal(res.status, 200, `viewers of ${ticketId} on ${node.internalUrl}: ${res.status} ${res.text}`);
  h.assertKeys(res.json, ['ticketId', 'viewers'], 'viewers reply');
  assert.equal(res.json.ticketId, ticketId);
  h.assertViewerList(res.json.viewers);
  return res.json.viewers;
};
const idsOf = (viewers) => viewers.map((v) => v.agentId);

// Waits until the viewers endpoint of every node lists exactly these agentIds
// (in this order): what a node knows of the others is eventually consistent.
const listedEverywhere = (nodes, ticketId, ids, timeoutMs = 5000) => h.eventually(async () => {
  const lists = [];
  for (const node of nodes) lists.push(await viewersOn(node, ticketId));
  if (lists.every((l) => JSON.stringify(idsOf(l)) === JSON.stringify(ids))) return lists;
  throw new Error(`viewers of ${ticketId} per node: ${JSON.stringify(lists.map(idsOf))}`);
}, { timeoutMs, message: `viewers ${JSON.stringify(ids)} of ${ticketId} on every node` });

// Redis and `count` nodes (NODE_CONFIG, then `config`) for the describe; see redis.js.
const clusterContext = (count, config = {}) => clusterForDescribe(count, { ...NODE_CONFIG, ...config }, { token: TOKEN });

const ADA = { agentId: 'ada', agentName: 'Ada' };
const BOB = { agentId: 'bob', agentName: 'Bob' };
const CY = { agentId: 'cy', agentName: 'Cy' };

// ticket:view, asserting the ack is ok; returns the ack.
const view = async (s, ticketId, agent) => {
  const ack = await h.emitAck(s, 'ticket:view', { ticketId, ...agent });
  assert.equal(ack.ok, true, `ticket:view ${ticketId} as ${agent.agentId}: ${JSON.stringify(ack)}`);
  return ack;
};
// timeline:subscribe with an ack; resolves with the ack. Offsets and epochs
// (v2 section 4.1) are cluster-wide: the fan-out test checks their values.
const subscribe = async (s, entityType, entityId) => {
  const ack = await h.emitAck(s, 'timeline:subscribe', { entityType, entityId });
  assert.deepEqual(ack, h.withPosition({ ok: true, entityType, entityId }, h.clusterPosition(ack)));
  await h.nextEvent(s, 'timeline:subscribed', { where: (p) => p.entityType === entityType && p.entityId === entityId });
  return ack;
};

// A plain failure (not a skip) when Redis is missing: these tests must run.
it('redis-server is installed (the multi-instance tests need it)', () => {
  requireRedisServer();
});

describe('cluster: timeline fan-out (sections 4, 5)', () => {
  const ctx = clusterContext(3, { max_body: 1_000_000 }); // room for a batch of 1000

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const connect = (node) => h.connect(node.url, { transports: [transport] });

      it('a publish to any node reaches the subscribers on every node, and answers exactly { delivered: true } (v2: with offset and epoch)', async () => {
        const [A, B, C] = ctx.nodes;
        const id = h.uid('c');
        const sA = await connect(A);
        const sB = await connect(B);
        const other = await connect(C); // on C, following another timeline
        const ackA = await subscribe(sA, 'contact', id);
        const ackB = await subscribe(sB, 'contact', id);
        // One stream cluster-wide: the same epoch on every node, offsets
        // from 1 whichever node a publish reached.
        const epoch = h.epochOf(ackA, 'ack on A');
        assert.deepEqual(h.withPosition({}, { offset: ackB.offset, epoch: ackB.epoch }), h.withPosition({}, { offset: 0, epoch }), 'ack on B');
        const at = (offset) => ({ offset, epoch });
        await subscribe(other, 'contact', `${id}-other`);

        // To C, which has no local subscriber of this timeline: never skipped.
        let res = await api(C, 'POST', `/v1/timeline/contact/${id}/items`, { id: 1, text: 'hello' });
        assert.equal(res.status, 202, res.text);
        assert.deepEqual(res.json, h.withPosition({ delivered: true }, at(1)));
        for (const s of [sA, sB]) {
          const ev = await h.nextEvent(s, 'timeline:new_item');
          assert.deepEqual(ev, h.withPosition({ entityType: 'contact', entityId: id, item: { id: 1, text: 'hello' } }, at(1)));
        }

        res = await api(A, 'PUT', `/v1/timeline/contact/${id}/items/1`, { id: 1, text: 'edited' });
        assert.equal(res.status, 202, res.text);
        assert.deepEqual(res.json, h.withPosition({ delivered: true }, at(2)));
        for (const s of [sA, sB]) {
          const ev = await h.nextEvent(s, 'timeline:item_updated');
          assert.deepEqual(ev, h.withPosition({ entityType: 'contact', entityId: id, itemId: '1', item: { id: 1, text: 'edited' } }, at(2)));
        }

        res = await api(B, 'POST', `/v1/timeline/contact/${id}/refresh`, { reason: 'merged' });
        assert.equal(res.status, 202, res.text);
        assert.deepEqual(res.json, h.withPosition({ delivered: true }, at(3)));
        for (const s of [sA, sB]) {
          const ev = await h.nextEvent(s, 'timeline:refresh');
          assert.deepEqual(ev, h.withPosition({ entityType: 'contact', entityId: id, reason: 'merged' }, at(3)));
        }

        res = await api(C, 'POST', `/v1/timeline/contact/${id}/refresh`, {});
        assert.equal(res.status, 202, res.text);
        assert.deepEqual(res.json, h.withPosition({ delivered: true }, at(4)));
        for (const s of [sA, sB]) {
          const ev = await h.nextEvent(s, 'timeline:refresh');
          assert.deepEqual(ev, h.withPosition({ entityType: 'contact', entityId: id, reason: null }, at(4)));
        }

        // Each subscriber got each event once; the other timeline got nothing.
        await Promise.all([
          h.noEvent(sA, 'timeline:new_item'), h.noEvent(sB, 'timeline:new_item'),
          h.noEvent(sA, 'timeline:refresh'), h.noEvent(sB, 'timeline:refresh'),
          h.noEvent(other, 'timeline:new_item'), h.noEvent(other, 'timeline:item_updated'), h.noEvent(other, 'timeline:refresh'),
        ]);
      });

      it('publishes sent one after another to one node arrive in order on the other nodes', async () => {
        const [A, B, C] = ctx.nodes;
        const id = h.uid('c');
        const sB = await connect(B);
        const sC = await connect(C);
        await subscribe(sB, 'deal', id);
        await subscribe(sC, 'deal', id);
        const N = 100;
        for (let seq = 0; seq < N; seq++) {
          const res = await api(A, 'POST', `/v1/timeline/deal/${id}/items`, { id: `i${seq}`, seq });
          assert.equal(res.status, 202, res.text);
        }
        for (const s of [sB, sC]) {
          for (let seq = 0; seq < N; seq++) {
            const ev = await h.nextEvent(s, 'timeline:new_item', 5000);
            assert.equal(ev.item.seq, seq, `item ${seq} out of order on ${s === sB ? 'B' : 'C'}`);
          }
        }
        await h.noEvent(sB, 'timeline:new_item', 200);
      });

      it('a batch of 1000 to one node arrives complete and in order on every node', async () => {
        const [A, B, C] = ctx.nodes;
        const id = h.uid('c');
        const sA = await connect(A);
        const sB = await connect(B);
        const sC = await connect(C);
        for (const s of [sA, sB, sC]) {
          await subscribe(s, 'contact', id);
          await subscribe(s, 'deal', id);
        }
        // A mix of the three kinds over two timelines, each carrying its place.
        const events = [];
        const expected = [];
        for (let seq = 0; seq < 1000; seq++) {
          const entityType = seq % 2 === 0 ? 'contact' : 'deal';
          if (seq % 10 === 9) {
            events.push({ type: 'refresh', entityType, entityId: id, reason: `r${seq}` });
            expected.push(['timeline:refresh', `r${seq}`]);
          } else if (seq % 10 === 5) {
            events.push({ type: 'item_updated', entityType, entityId: id, itemId: `i${seq}`, item: { id: `i${seq}`, seq } });
            expected.push(['timeline:item_updated', seq]);
          } else {
            events.push({ type: 'new_item', entityType, entityId: id, item: { id: `i${seq}`, seq } });
            expected.push(['timeline:new_item', seq]);
          }
        }
        const res = await api(B, 'POST', '/v1/timeline/batch', { events });
        assert.equal(res.status, 202, res.text);
        assert.deepEqual(res.json, { accepted: 1000 });

        const kinds = new Set(['timeline:new_item', 'timeline:item_updated', 'timeline:refresh']);
        for (const [name, s] of [['A', sA], ['B', sB], ['C', sC]]) {
          await h.eventually(() => h.eventsOf(s).filter((e) => kinds.has(e.event)).length >= 1000, {
            timeoutMs: 15_000,
            message: `1000 batch events on ${name}`,
          });
          const got = h.eventsOf(s).filter((e) => kinds.has(e.event)).map((e) => {
            const p = e.args[0];
            return [e.event, e.event === 'timeline:refresh' ? p.reason : p.item.seq];
          });
          assert.equal(got.length, 1000, `${name} got ${got.length} batch events`);
          assert.deepEqual(got, expected, `batch order on ${name}`);
        }
      });

      it('unsubscribe and disconnect end delivery from the other nodes', async () => {
        const [A, B, C] = ctx.nodes;
        const id = h.uid('c');
        const sB = await connect(B);
        const gone = await connect(B);
        const control = await connect(C);
        await subscribe(sB, 'contact', id);
        await subscribe(gone, 'contact', id);
        await subscribe(control, 'contact', id);
        const unsub = await h.emitAck(sB, 'timeline:unsubscribe', { entityType: 'contact', entityId: id });
        assert.deepEqual(unsub, { ok: true, entityType: 'contact', entityId: id });
        gone.disconnect();
        await h.eventually(async () => (await h.statsOf(B, TOKEN)).timelines.subscriptions === 0, { message: 'B has no subscription left' });

        const res = await api(A, 'POST', `/v1/timeline/contact/${id}/items`, { id: 1 });
        assert.equal(res.status, 202, res.text);
        await h.nextEvent(control, 'timeline:new_item'); // it went out
        await h.noEvent(sB, 'timeline:new_item', 500);
      });
    });
  }
});

describe('cluster: presence across nodes (section 3)', { skip: PRESENCE_SKIP }, () => {
  const ctx = clusterContext(2, { typing_timeout: 10_000 });

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const connect = (node) => h.connect(node.url, { transports: [transport] });

      it('agents on two nodes see each other: collision:warning, agent:joined, viewers:updated, viewers endpoint on either node', async () => {
        const [A, B] = ctx.nodes;
        const t = h.uid('t');
        const ada = await connect(A);
        const bob = await connect(B);
        const ackA = await view(ada, t, ADA);
        assert.deepEqual(idsOf(ackA.viewers), ['ada']);
        const [onA, onB] = await listedEverywhere([A, B], t, ['ada']);
        assert.deepEqual(onA, ackA.viewers);
        assert.deepEqual(onB, ackA.viewers);
        await h.nextEvent(ada, 'viewers:updated');

        await h.separateTimestamps(3); // a later `since`
        const ackB = await view(bob, t, BOB);
        h.assertKeys(ackB, ['ok', 'ticketId', 'viewers'], 'ack');
        assert.equal(ackB.ticketId, t);
        h.assertViewerList(ackB.viewers);
        assert.deepEqual(idsOf(ackB.viewers), ['ada', 'bob']);
        assert.deepEqual(ackB.viewers[0], ackA.viewers[0], 'Ada as seen from B is Ada as seen from A');

        const warning = await h.nextEvent(bob, 'collision:warning');
        h.assertKeys(warning, ['ticketId', 'viewers', 'severity', 'message'], 'collision:warning');
        assert.equal(warning.ticketId, t);
        assert.deepEqual(warning.viewers, [ackA.viewers[0]]);
        assert.equal(warning.severity, 'warning');
        assert.equal(warning.message, 'Ada is viewing this ticket');

        const joined = await h.nextEvent(ada, 'agent:joined');
        assert.deepEqual(joined, { ticketId: t, agentId: 'bob', agentName: 'Bob', since: ackB.viewers[1].since });
        for (const s of [ada, bob]) {
          const vu = await h.nextEvent(s, 'viewers:updated', { where: (p) => p.viewers.length === 2 });
          assert.deepEqual(vu, { ticketId: t, viewers: ackB.viewers });
        }
        const [listA, listB] = await listedEverywhere([A, B], t, ['ada', 'bob']);
        assert.deepEqual(listA, ackB.viewers);
        assert.deepEqual(listB, ackB.viewers);
        await Promise.all([
          h.noEvent(ada, 'collision:warning'),
          h.noEvent(bob, 'agent:joined'),
          h.noEvent(ada, 'agent:joined'),
        ]);
      });

      it('typing on one node: agent:typing, viewers:updated and a critical warning on the other; stop_typing', async () => {
        const [A, B] = ctx.nodes;
        const t = h.uid('t');
        const ada = await connect(A);
        const bob = await connect(B);
        await view(ada, t, ADA);
        await listedEverywhere([A, B], t, ['ada']);
        await view(bob, t, BOB);
        await listedEverywhere([A, B], t, ['ada', 'bob']);
        h.clearEvents(ada);
        h.clearEvents(bob);

        assert.deepEqual(await h.emitAck(ada, 'ticket:typing', { ticketId: t, agentId: 'ada' }), { ok: true, ticketId: t });
        const typing = await h.nextEvent(bob, 'agent:typing');
        assert.deepEqual(typing, { ticketId: t, agentId: 'ada', agentName: 'Ada', warning: 'COLLISION_RISK', message: 'Ada is typing...' });
        const vu = await h.nextEvent(bob, 'viewers:updated', { where: (p) => p.viewers.some((v) => v.status === 'typing') });
        const adaTyping = vu.viewers.find((v) => v.agentId === 'ada');
        assert.equal(adaTyping.status, 'typing');
        assert.ok(Number.isInteger(adaTyping.typingStartedAt));
        await h.noEvent(ada, 'agent:typing');
        const [, onB] = await h.eventually(async () => {
          const lists = [await viewersOn(A, t), await viewersOn(B, t)];
          return lists.every((l) => l.find((v) => v.agentId === 'ada').status === 'typing') && lists;
        }, { message: 'Ada typing on both endpoints' });
        assert.deepEqual(onB.find((v) => v.agentId === 'ada'), adaTyping);

        // A third agent on B: critical, about the typist (and Bob).
        const cy = await connect(B);
        const ackC = await view(cy, t, CY);
        assert.deepEqual(idsOf(ackC.viewers), ['ada', 'bob', 'cy']);
        const warning = await h.nextEvent(cy, 'collision:warning');
        assert.equal(warning.severity, 'critical');
        assert.equal(warning.message, 'Ada is typing a reply');
        assert.deepEqual(idsOf(warning.viewers), ['ada', 'bob']);
        assert.equal(warning.viewers[0].status, 'typing');
        await listedEverywhere([A, B], t, ['ada', 'bob', 'cy']);

        assert.deepEqual(await h.emitAck(ada, 'ticket:stop_typing', { ticketId: t, agentId: 'ada' }), { ok: true, ticketId: t });
        for (const s of [bob, cy]) {
          assert.deepEqual(await h.nextEvent(s, 'agent:stopped_typing'), { ticketId: t, agentId: 'ada', agentName: 'Ada' });
        }
        await h.noEvent(ada, 'agent:stopped_typing');
        await h.eventually(async () => {
          const lists = [await viewersOn(A, t), await viewersOn(B, t)];
          return lists.every((l) => l.every((v) => v.status === 'viewing' && v.typingStartedAt === null));
        }, { message: 'everyone viewing again on both endpoints' });
      });

      it('leave and disconnect on one node are agent:left on the other', async () => {
        const [A, B] = ctx.nodes;
        const t = h.uid('t');
        const ada = await connect(A);
        const bob = await connect(B);
        const cy = await connect(B);
        await view(ada, t, ADA);
        await listedEverywhere([A, B], t, ['ada']);
        await view(bob, t, BOB);
        await listedEverywhere([A, B], t, ['ada', 'bob']);
        await view(cy, t, CY);
        await listedEverywhere([A, B], t, ['ada', 'bob', 'cy']);
        h.clearEvents(ada);
        h.clearEvents(bob);
        h.clearEvents(cy);

        assert.deepEqual(await h.emitAck(bob, 'ticket:leave', { ticketId: t, agentId: 'bob' }), { ok: true, ticketId: t });
        assert.deepEqual(await h.nextEvent(ada, 'agent:left'), { ticketId: t, agentId: 'bob', agentName: 'Bob', reason: 'left' });
        assert.deepEqual(await h.nextEvent(cy, 'agent:left'), { ticketId: t, agentId: 'bob', agentName: 'Bob', reason: 'left' });
        const vu = await h.nextEvent(ada, 'viewers:updated', { where: (p) => p.viewers.length === 2 });
        assert.deepEqual(idsOf(vu.viewers), ['ada', 'cy']);
        await listedEverywhere([A, B], t, ['ada', 'cy']);
        await h.noEvent(bob, 'agent:left');

        cy.disconnect();
        assert.deepEqual(await h.nextEvent(ada, 'agent:left'), { ticketId: t, agentId: 'cy', agentName: 'Cy', reason: 'disconnected' });
        const vu2 = await h.nextEvent(ada, 'viewers:updated', { where: (p) => p.viewers.length === 1 });
        assert.deepEqual(idsOf(vu2.viewers), ['ada']);
        await listedEverywhere([A, B], t, ['ada']);

        // And the other way round: A's agent leaves, B's sockets hear it.
        const dan = await connect(B);
        await view(dan, t, { agentId: 'dan', agentName: 'Dan' });
        await listedEverywhere([A, B], t, ['ada', 'dan']);
        ada.disconnect();
        assert.deepEqual(await h.nextEvent(dan, 'agent:left'), { ticketId: t, agentId: 'ada', agentName: 'Ada', reason: 'disconnected' });
        await listedEverywhere([A, B], t, ['dan']);
        await h.noEvent(bob, 'agent:left', 100); // Bob left the room: nothing more for him
      });

      it('one agent with tabs on two nodes is one viewer: one agent:joined, earliest since, leaving one tab keeps it', async () => {
        const [A, B] = ctx.nodes;
        const t = h.uid('t');
        const bob = await connect(B);
        const tabA = await connect(A);
        const tabB = await connect(B);
        await view(bob, t, BOB);
        await listedEverywhere([A, B], t, ['bob']);

        await h.separateTimestamps(3);
        const ack1 = await view(tabA, t, ADA);
        const since = ack1.viewers.find((v) => v.agentId === 'ada').since;
        const joined = await h.nextEvent(bob, 'agent:joined');
        assert.deepEqual(joined, { ticketId: t, agentId: 'ada', agentName: 'Ada', since });
        await listedEverywhere([A, B], t, ['bob', 'ada']);
        assert.equal((await h.nextEvent(tabA, 'collision:warning')).message, 'Bob is viewing this ticket');
        h.clearEvents(bob);
        h.clearEvents(tabA);

        await h.separateTimestamps(5);
        const ack2 = await view(tabB, t, ADA);
        assert.deepEqual(idsOf(ack2.viewers), ['bob', 'ada'], 'the second tab is not a second viewer');
        assert.equal(ack2.viewers[1].since, since, 'since is the earliest view, from the other node');
        const vu = await h.nextEvent(tabB, 'viewers:updated');
        assert.deepEqual(vu, { ticketId: t, viewers: ack2.viewers });
        const warning = await h.nextEvent(tabB, 'collision:warning');
        assert.deepEqual(idsOf(warning.viewers), ['bob'], 'the new tab is warned about the others only');
        assert.equal(warning.message, 'Bob is viewing this ticket');
        const [onA, onB] = await listedEverywhere([A, B], t, ['bob', 'ada']);
        assert.equal(onA[1].since, since);
        assert.equal(onB[1].since, since);
        await Promise.all([
          h.noEvent(bob, 'agent:joined', 500),
          h.noEvent(tabA, 'collision:warning'),
          h.noEvent(tabA, 'agent:joined'),
          h.noEvent(tabB, 'agent:joined'),
        ]);

        // Leaving on A keeps the viewer (its tab on B still views the ticket).
        assert.deepEqual(await h.emitAck(tabA, 'ticket:leave', { ticketId: t, agentId: 'ada' }), { ok: true, ticketId: t });
        await h.noEvent(bob, 'agent:left', 500);
        await h.noEvent(tabB, 'agent:left');
        for (const node of [A, B]) {
          const list = await viewersOn(node, t);
          assert.deepEqual(idsOf(list), ['bob', 'ada'], `after one tab left, on ${node.internalUrl}`);
          assert.equal(list[1].since, since);
        }

        // The last tab leaves: now the room hears it.
        assert.deepEqual(await h.emitAck(tabB, 'ticket:leave', { ticketId: t, agentId: 'ada' }), { ok: true, ticketId: t });
        assert.deepEqual(await h.nextEvent(bob, 'agent:left'), { ticketId: t, agentId: 'ada', agentName: 'Ada', reason: 'left' });
        await listedEverywhere([A, B], t, ['bob']);
      });

      it('one agent with tabs on two nodes: closing one tab keeps the viewer, closing the last is agent:left disconnected', async () => {
        const [A, B] = ctx.nodes;
        const t = h.uid('t');
        const bob = await connect(A);
        const tabA = await connect(A);
        const tabB = await connect(B);
        await view(bob, t, BOB);
        await listedEverywhere([A, B], t, ['bob']);
        await h.separateTimestamps(3);
        const since = (await view(tabB, t, ADA)).viewers.find((v) => v.agentId === 'ada').since;
        await listedEverywhere([A, B], t, ['bob', 'ada']);
        await view(tabA, t, ADA);
        await h.nextEvent(bob, 'agent:joined');
        await h.noEvent(bob, 'agent:joined', 300);

        // Typing is the agent's: a tab on one node types, the viewer types.
        assert.deepEqual(await h.emitAck(tabB, 'ticket:typing', { ticketId: t, agentId: 'ada' }), { ok: true, ticketId: t });
        assert.deepEqual(await h.nextEvent(bob, 'agent:typing'), { ticketId: t, agentId: 'ada', agentName: 'Ada', warning: 'COLLISION_RISK', message: 'Ada is typing...' });
        await h.noEvent(tabA, 'agent:typing');

        tabB.disconnect(); // the typing tab goes: the viewer stays, typing stops
        assert.deepEqual(await h.nextEvent(bob, 'agent:stopped_typing'), { ticketId: t, agentId: 'ada', agentName: 'Ada' });
        await h.noEvent(bob, 'agent:left', 500);
        const lists = await listedEverywhere([A, B], t, ['bob', 'ada']);
        for (const list of lists) {
          assert.equal(list[1].since, since, 'since kept');
          assert.equal(list[1].status, 'viewing');
        }

        tabA.disconnect();
        assert.deepEqual(await h.nextEvent(bob, 'agent:left'), { ticketId: t, agentId: 'ada', agentName: 'Ada', reason: 'disconnected' });
        await listedEverywhere([A, B], t, ['bob']);
      });
    });
  }
});

describe('cluster: GET /v1/stats cluster part (section 5)', () => {
  const ctx = clusterContext(3);

  it('sums the figures of every node; one agent×ticket is one viewer; every node answers the same', async () => {
    const [A, B, C] = ctx.nodes;
    const connect = (node, transport = 'websocket') => h.connect(node.url, { transports: [transport] });
    const t1 = h.uid('t');
    const t2 = h.uid('t');
    const t3 = h.uid('t');
    const e = h.uid('e');
    const a1 = await connect(A);
    const a2 = await connect(A, 'polling');
    const b1 = await connect(B);
    const c1 = await connect(C);
    await view(a1, t1, ADA);
    await view(a1, t2, ADA);
    await view(a2, t1, BOB);
    await view(b1, t1, ADA); // Ada's second tab, on another node: still one viewer of t1
    await view(c1, t3, CY);
    await subscribe(a1, 'contact', e);
    await subscribe(a2, 'contact', e);
    await subscribe(a2, 'deal', e);
    await subscribe(b1, 'contact', e); // the same room on another node

    const expected = {
      nodes: 3,
      connections: 4,
      // Viewers: (ada,t1), (ada,t2), (bob,t1), (cy,t3). The peer counts one
      // agent on two nodes twice (documented), so it is not held to that.
      tickets: { watched: 3, viewers: h.isPeer ? 5 : 4 },
      timelines: { rooms: 2, subscriptions: 4 },
    };
    const all = await h.eventually(async () => {
      const got = [];
      for (const node of [A, B, C]) got.push(await h.statsOf(node, TOKEN));
      if (got.every((s) => isDeepStrictEqual(s.cluster, expected))) return got;
      throw new Error(`cluster parts: ${JSON.stringify(got.map((s) => s.cluster))}`);
    }, { timeoutMs: 5000, message: 'cluster figures' });

    for (const s of all) {
      h.assertKeys(s, ['nodeId', 'uptimeSeconds', 'connections', 'tickets', 'timelines', 'cluster'], 'stats');
      h.assertKeys(s.cluster, ['nodes', 'connections', 'tickets', 'timelines'], 'stats.cluster');
      h.assertKeys(s.cluster.tickets, ['watched', 'viewers'], 'stats.cluster.tickets');
      h.assertKeys(s.cluster.timelines, ['rooms', 'subscriptions'], 'stats.cluster.timelines');
    }
    assert.equal(new Set(all.map((s) => s.nodeId)).size, 3, `three different nodeIds: ${all.map((s) => s.nodeId)}`);
    // This instance's own part: its connections and timelines.
    assert.deepEqual(all.map((s) => s.connections), [2, 1, 1]);
    assert.deepEqual(all.map((s) => s.timelines), [{ rooms: 2, subscriptions: 3 }, { rooms: 1, subscriptions: 1 }, { rooms: 0, subscriptions: 0 }]);

    // a1 goes: Ada stays on t1 (tab on B), leaves t2.
    a1.disconnect();
    const after1 = { nodes: 3, connections: 3, tickets: { watched: 2, viewers: 3 }, timelines: { rooms: 2, subscriptions: 3 } };
    await h.eventually(async () => {
      const got = [];
      for (const node of [A, B, C]) got.push((await h.statsOf(node, TOKEN)).cluster);
      if (got.every((c) => isDeepStrictEqual(c, after1))) return true;
      throw new Error(`cluster parts: ${JSON.stringify(got)}`);
    }, { timeoutMs: 5000, message: 'cluster figures after a disconnect' });

    for (const s of [a2, b1, c1]) s.disconnect();
    const empty = { nodes: 3, connections: 0, tickets: { watched: 0, viewers: 0 }, timelines: { rooms: 0, subscriptions: 0 } };
    await h.eventually(async () => {
      const got = [];
      for (const node of [A, B, C]) got.push((await h.statsOf(node, TOKEN)).cluster);
      if (got.every((c) => isDeepStrictEqual(c, empty))) return true;
      throw new Error(`cluster parts: ${JSON.stringify(got)}`);
    }, { timeoutMs: 5000, message: 'cluster figures once everyone is gone' });
  });
});

describe('cluster: the stale sweep across nodes (section 3)', { skip: PRESENCE_SKIP }, () => {
  // Short timers: idle 1.5 s makes a viewer stale; each node sweeps every 300 ms.
  const ctx = clusterContext(2, { stale_after: 1500, sweep_interval: 300 });

  it('an idle agent with tabs on two nodes leaves once, with reason stale; every tab hears it and stays connected', async () => {
    const [A, B] = ctx.nodes;
    const t = h.uid('t');
    const adaA = await h.connect(A.url, { transports: ['websocket'] });
    const adaB = await h.connect(B.url, { transports: ['websocket'] });
    const bob = await h.connect(A.url, { transports: ['websocket'] });
    await view(adaA, t, ADA);
    await view(adaB, t, ADA);
    await listedEverywhere([A, B], t, ['ada']);
    // Bob stays active (a heartbeat view every 500 ms) while Ada idles.
    const heartbeat = setInterval(() => bob.emit('ticket:view', { ticketId: t, ...BOB }), 500);
    try {
      await view(bob, t, BOB);
      const left = (s) => h.nextEvent(s, 'agent:left', { where: (p) => p.ticketId === t && p.agentId === 'ada', timeout: 6000 });
      const [onBob, onA, onB] = await Promise.all([left(bob), left(adaA), left(adaB)]);
      for (const p of [onBob, onA, onB]) assert.equal(p.reason, 'stale');
      await listedEverywhere([A, B], t, ['bob']);
      await h.noEvent(bob, 'agent:left', 500, { where: (p) => p.agentId === 'ada' });
      assert.equal(adaA.connected && adaB.connected, true, 'stale tabs stay connected');
      h.assertAckError(await h.emitAck(adaB, 'ticket:typing', { ticketId: t, agentId: 'ada' }), 'NOT_VIEWING');
    } finally {
      clearInterval(heartbeat);
    }
  });

  it('activity on one node keeps the viewer on every node', async () => {
    const [A, B] = ctx.nodes;
    const t = h.uid('t');
    const adaA = await h.connect(A.url, { transports: ['websocket'] });
    const adaB = await h.connect(B.url, { transports: ['websocket'] });
    await view(adaA, t, ADA);
    await view(adaB, t, ADA);
    // Only the tab on B is active (typing renews the activity every 400 ms).
    const typing = setInterval(() => adaB.emit('ticket:typing', { ticketId: t, agentId: 'ada' }), 400);
    try {
      await h.noEvent(adaA, 'agent:left', 3000 + 10); // twice stale_after
      await listedEverywhere([A, B], t, ['ada']);
    } finally {
      clearInterval(typing);
    }
  });
});
