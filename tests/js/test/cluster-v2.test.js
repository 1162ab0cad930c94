'use strict';

// Contract v2 sections 3.1-3.3 across two instances with Redis: an agent with
// a tab on each instance is one viewer whose devices, editing and idle combine
// across both; a watcher on one instance sees changes made on the other
// (down to []); a ticket update posted to one instance reaches the viewers on
// the other, except its author's sockets there. Every describe starts its own
// Redis and nodes (tests/js/redis.js). The Node peer implements v1.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const h = require('../helpers');
const { clusterForDescribe } = require('../redis');

const TOKEN = 's3cret';
const SKIP = h.isPeer ? 'contract v2 (sections 3.1-3.3): the peer implements v1' : false;
const IDLE_AFTER = 1500;
const NODE_CONFIG = { internal_token: TOKEN, events_per_second: 0, node_timeout: 2000, idle_after: IDLE_AFTER };

const ADA = { agentId: 'ada', agentName: 'Ada' };
const BOB = { agentId: 'bob', agentName: 'Bob' };

const viewerOf = (viewers, agentId) => viewers.find((v) => v.agentId === agentId);

const viewersOn = async (node, ticketId) => {
  const res = await h.http('GET', `${node.internalUrl}/v1/tickets/${encodeURIComponent(ticketId)}/viewers`, { token: TOKEN });
  assert.equal(res.status, 200, res.text);
  h.assertViewerList(res.json.viewers);
  return res.json.viewers;
};

// Waits until every node's viewers endpoint shows `agentId` satisfying `test`.
const everywhere = (nodes, ticketId, agentId, test, what) => h.eventually(async () => {
  const lists = [];
  for (const node of nodes) lists.push(await viewersOn(node, ticketId));
  if (lists.every((l) => {
    const v = viewerOf(l, agentId);
    return v && test(v);
  })) return lists;
  throw new Error(JSON.stringify(lists));
}, { timeoutMs: 5000, message: `${what} on every node` });

describe('cluster: presence detail, watching and ticket updates (sections 3.1-3.3)', { skip: SKIP }, () => {
  const ctx = clusterForDescribe(2, NODE_CONFIG, { token: TOKEN });
  afterEach(() => h.closeAllSockets());

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const connect = (node) => h.connect(node.url, { transports: [transport] });
      const ok = async (s, event, payload) => {
        const ack = await h.emitAck(s, event, payload);
        assert.equal(ack.ok, true, `${event}: ${JSON.stringify(ack)}`);
        return ack;
      };
      const updateWhere = (s, agentId, test, timeout = 3000) => h.nextEvent(s, 'viewers:updated', {
        timeout,
        where: (p) => {
          const v = viewerOf(p.viewers, agentId);
          return Boolean(v && test(v));
        },
      });

      it('an agent with a tab on each instance is one viewer: devices, editing and idle combine across both', async () => {
        const [A, B] = ctx.nodes;
        const t = h.uid('t');
        const adaWeb = await connect(A);
        const adaPhone = await connect(B);
        const bob = await connect(A);
        await ok(adaWeb, 'ticket:view', { ticketId: t, ...ADA });
        await everywhere([A, B], t, 'ada', () => true, 'Ada');
        await ok(bob, 'ticket:view', { ticketId: t, ...BOB });
        await everywhere([A, B], t, 'bob', () => true, 'Bob');
        await ok(adaPhone, 'ticket:view', { ticketId: t, ...ADA, device: 'mobile' });
        // Bob (on A) hears the new device of Ada's tab on B.
        const vu = await updateWhere(bob, 'ada', (v) => v.devices.length === 2);
        assert.deepEqual(viewerOf(vu.viewers, 'ada').devices, ['mobile', 'web']);
        assert.deepEqual(vu.viewers.map((v) => v.agentId), ['ada', 'bob'], 'still one viewer Ada');
        await everywhere([A, B], t, 'ada', (v) => v.devices.length === 2, 'two devices');

        // A draft on B: editing on A too; ended on B, not editing anywhere.
        await ok(adaPhone, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true });
        await updateWhere(bob, 'ada', (v) => v.editing);
        const cy = await connect(A);
        await ok(cy, 'ticket:view', { ticketId: t, agentId: 'cy', agentName: 'Cy' });
        const warning = await h.nextEvent(cy, 'collision:warning');
        assert.deepEqual([warning.severity, warning.message], ['critical', 'Ada is editing a reply']);
        await ok(adaPhone, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: false });
        await updateWhere(bob, 'ada', (v) => !v.editing);

        // Away on B alone: not idle (the tab on A is in use); away on both: idle.
        await ok(adaPhone, 'ticket:activity', { ticketId: t, agentId: 'ada', state: 'away' });
        await everywhere([A, B], t, 'ada', () => true, 'Ada');
        await h.noEvent(bob, 'viewers:updated', 300, { where: (p) => viewerOf(p.viewers, 'ada').idle });
        await ok(adaWeb, 'ticket:activity', { ticketId: t, agentId: 'ada', state: 'away' });
        await updateWhere(bob, 'ada', (v) => v.idle);
        await everywhere([A, B], t, 'ada', (v) => v.idle, 'Ada idle');
        // Any activity on either instance ends it.
        await ok(adaPhone, 'ticket:activity', { ticketId: t, agentId: 'ada', state: 'active' });
        await updateWhere(bob, 'ada', (v) => !v.idle);
        await everywhere([A, B], t, 'ada', (v) => !v.idle, 'Ada active');

        // The tab on B goes: its device goes with it, Ada stays.
        adaPhone.close();
        const gone = await updateWhere(bob, 'ada', (v) => v.devices.length === 1);
        assert.deepEqual(viewerOf(gone.viewers, 'ada').devices, ['web']);
      });

      it('idle after idle_after on both instances for a viewer on one; every tab\'s activity counts', async () => {
        const [A, B] = ctx.nodes;
        const t = h.uid('t');
        const ada = await connect(B);
        const bob = await connect(A);
        const ack = await ok(ada, 'ticket:view', { ticketId: t, ...ADA });
        const since = ack.viewers[0].since;
        await everywhere([A], t, 'ada', () => true, 'Ada on A');
        await ok(bob, 'ticket:view', { ticketId: t, ...BOB });
        const vu = await updateWhere(bob, 'ada', (v) => v.idle, IDLE_AFTER + 3000);
        const after = Date.now() - since;
        assert.ok(after >= IDLE_AFTER && after < IDLE_AFTER + 1000, `Ada idle on A ${after} ms after her view on B`);
        assert.equal(viewerOf(vu.viewers, 'bob').idle, false);
        await ok(ada, 'ticket:typing', { ticketId: t, agentId: 'ada' });
        await updateWhere(bob, 'ada', (v) => !v.idle);
      });

      it('a watcher on one instance sees every change made on the other, down to [], once each; watching adds no viewer', async () => {
        const [A, B] = ctx.nodes;
        const t = h.uid('t');
        const ada = await connect(B);
        await ok(ada, 'ticket:view', { ticketId: t, ...ADA });
        await everywhere([A], t, 'ada', () => true, 'Ada on A');
        const list = await connect(A);
        const ack = await ok(list, 'tickets:watch', { ticketIds: [t] });
        assert.deepEqual(ack.tickets.map((e) => [e.ticketId, e.viewers.map((v) => v.agentId)]), [[t, ['ada']]], 'the cluster-wide list');
        const bob = await connect(B);
        await ok(bob, 'ticket:view', { ticketId: t, ...BOB });
        await updateWhere(list, 'bob', () => true);
        await ok(ada, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true });
        await updateWhere(list, 'ada', (v) => v.editing);
        await ok(bob, 'ticket:leave', { ticketId: t, agentId: 'bob' });
        await h.nextEvent(list, 'viewers:updated', { where: (p) => p.viewers.length === 1 });
        ada.close();
        assert.deepEqual(await h.nextEvent(list, 'viewers:updated', { where: (p) => p.viewers.length === 0 }), { ticketId: t, viewers: [] });
        await h.quietPeriod(300);
        assert.deepEqual(h.eventsOf(list).map((e) => e.event), [], 'no more viewers:updated, and no collision, agent or ticket events');
        for (const node of [A, B]) assert.deepEqual(await viewersOn(node, t), [], 'the watcher is no viewer');
      });

      it('an update posted to one instance reaches the viewers on the other, except its author\'s sockets there; n counts agents cluster-wide', async () => {
        const [A, B] = ctx.nodes;
        const t = h.uid('t');
        const adaOnA = await connect(A);
        const adaOnB = await connect(B);
        const bobOnA = await connect(A);
        const bobOnB = await connect(B);
        const cyOnB = await connect(B);
        const list = await connect(B);
        await ok(list, 'tickets:watch', { ticketIds: [t] });
        for (const [s, agent] of [[adaOnA, ADA], [adaOnB, ADA], [bobOnA, BOB], [bobOnB, BOB], [cyOnB, { agentId: 'cy', agentName: 'Cy' }]]) {
          await ok(s, 'ticket:view', { ticketId: t, ...agent });
        }
        await h.eventually(async () => (await viewersOn(A, t)).length === 3 && (await viewersOn(B, t)).length === 3, { message: '3 viewers on both' });
        const res = await h.http('POST', `${A.internalUrl}/v1/tickets/${encodeURIComponent(t)}/events`, {
          token: TOKEN,
          body: { kind: 'reply', by: { agentId: 'bob', agentName: 'Bob' }, summary: 'sent', version: 3 },
        });
        assert.equal(res.status, 202, res.text);
        assert.deepEqual(res.json, { delivered: true, viewers: 2 });
        const events = [];
        for (const s of [adaOnA, adaOnB, cyOnB]) events.push(await h.nextEvent(s, 'ticket:updated'));
        for (const ev of events) assert.deepEqual(ev, events[0], 'the same event on both instances');
        assert.deepEqual({ ...events[0], at: 0 }, { ticketId: t, kind: 'reply', by: { agentId: 'bob', agentName: 'Bob' }, summary: 'sent', version: '3', at: 0 });
        await Promise.all([h.noEvent(bobOnA, 'ticket:updated'), h.noEvent(bobOnB, 'ticket:updated'), h.noEvent(list, 'ticket:updated')]);
        // Posted to B, nobody excluded: all three agents.
        const res2 = await h.http('POST', `${B.internalUrl}/v1/tickets/${encodeURIComponent(t)}/events`, { token: TOKEN, body: { kind: 'status' } });
        assert.deepEqual(res2.json, { delivered: true, viewers: 3 });
        for (const s of [adaOnA, adaOnB, bobOnA, bobOnB, cyOnB]) assert.equal((await h.nextEvent(s, 'ticket:updated')).kind, 'status');
      });
    });
  }
});
