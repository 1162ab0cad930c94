'use strict';

// Contract v2 section 3.2: watching tickets from a list view — tickets:watch /
// tickets:unwatch, viewers:updated to watchers (once per change per socket,
// also for a socket that views and watches), no viewer and no other events
// from watching, the all-or-nothing limit, errors. Single instance; the
// cluster side is in cluster-v2.test.js. The Node peer implements v1.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const h = require('../helpers');

const TOKEN = 's3cret';
const SKIP = h.isPeer ? 'contract v2 (section 3.2): the peer implements v1' : false;
const MAX_WATCHED = 5;

const ADA = { agentId: 'ada', agentName: 'Ada' };
const BOB = { agentId: 'bob', agentName: 'Bob' };

describe('watching tickets from a list view (section 3.2)', { skip: SKIP }, () => {
  const server = h.serverForDescribe({ internal_token: TOKEN, events_per_second: 0, max_watched_tickets: MAX_WATCHED });
  afterEach(() => h.closeAllSockets());

  const viewersOf = async (ticketId) => {
    const res = await h.http('GET', `${server.internalUrl}/v1/tickets/${encodeURIComponent(ticketId)}/viewers`, { token: TOKEN });
    assert.equal(res.status, 200, res.text);
    return res.json.viewers;
  };

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const connect = () => h.connect(server.url, { transports: [transport] });
      const view = async (s, ticketId, agent) => {
        const ack = await h.emitAck(s, 'ticket:view', { ticketId, ...agent });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        return ack;
      };
      const watch = async (s, ticketIds) => {
        const ack = await h.emitAck(s, 'tickets:watch', { ticketIds });
        assert.equal(ack.ok, true, `tickets:watch: ${JSON.stringify(ack)}`);
        return ack;
      };
      const idsOf = (viewers) => viewers.map((v) => v.agentId);
      const updateOf = (s, ticketId, ids) => h.nextEvent(s, 'viewers:updated', {
        where: (p) => p.ticketId === ticketId && JSON.stringify(idsOf(p.viewers)) === JSON.stringify(ids),
      });

      it('the ack holds the current list of each distinct id, in the order given; watching adds no viewer', async () => {
        const [ada, list] = [await connect(), await connect()];
        const [t1, t2, t3] = [h.uid('t'), h.uid('t'), h.uid('t')];
        const viewed = await view(ada, t2, ADA);
        const ack = await watch(list, [t3, t2, t3, t1]);
        h.assertKeys(ack, ['ok', 'tickets'], 'tickets:watch ack');
        assert.deepEqual(ack.tickets, [
          { ticketId: t3, viewers: [] },
          { ticketId: t2, viewers: viewed.viewers },
          { ticketId: t1, viewers: [] },
        ]);
        for (const entry of ack.tickets) h.assertViewerList(entry.viewers);
        // Numbers are identifiers too, turned into their decimal string.
        const n = 900000 + Math.floor(Math.random() * 1000);
        assert.deepEqual((await watch(list, [n])).tickets, [{ ticketId: String(n), viewers: [] }]);
        assert.deepEqual(idsOf(await viewersOf(t2)), ['ada'], 'the watcher is no viewer');
        assert.deepEqual(await viewersOf(t1), []);
        await h.noEvent(ada, 'agent:joined');
        await h.noEvent(ada, 'collision:warning');
      });

      it('a watcher gets viewers:updated for each change (join, typing, draft, leave down to []) and nothing else', async () => {
        const [list, ada, bob] = [await connect(), await connect(), await connect()];
        const t = h.uid('t');
        await watch(list, [t]);
        await view(ada, t, ADA);
        const first = await updateOf(list, t, ['ada']);
        h.assertKeys(first, ['ticketId', 'viewers'], 'viewers:updated');
        h.assertViewerList(first.viewers);
        await view(bob, t, BOB);
        await updateOf(list, t, ['ada', 'bob']);
        await h.emitAck(bob, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        await h.nextEvent(list, 'viewers:updated', { where: (p) => p.viewers[1].status === 'typing' });
        await h.emitAck(ada, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true });
        await h.nextEvent(list, 'viewers:updated', { where: (p) => p.viewers[0].editing });
        await h.emitAck(ada, 'ticket:leave', { ticketId: t, agentId: 'ada' });
        await updateOf(list, t, ['bob']);
        bob.close();
        assert.deepEqual(await updateOf(list, t, []), { ticketId: t, viewers: [] });
        // Watching alone brings no collision, agent or ticket events.
        const res = await h.http('POST', `${server.internalUrl}/v1/tickets/${encodeURIComponent(t)}/events`, { token: TOKEN, body: { kind: 'reply' } });
        assert.equal(res.status, 202, res.text);
        const others = h.eventsOf(list).filter((e) => e.event !== 'viewers:updated');
        assert.deepEqual(others.map((e) => e.event), []);
        await h.noEvent(list, 'ticket:updated');
        await h.noEvent(list, 'collision:warning', 0);
      });

      it('a socket that views and watches a ticket receives each viewers:updated once', async () => {
        const [both, bob] = [await connect(), await connect()];
        const t = h.uid('t');
        await view(both, t, ADA);
        await watch(both, [t]);
        await h.quietPeriod(100); // the view's own viewers:updated is in
        h.clearEvents(both);
        await view(bob, t, BOB);
        await h.emitAck(bob, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        await h.emitAck(bob, 'ticket:leave', { ticketId: t, agentId: 'bob' });
        await updateOf(both, t, ['ada']);
        await h.quietPeriod(300);
        const updates = [...h.eventsOf(both, 'viewers:updated')];
        // Claimed: the last one (Bob left). Left: Bob joins, types, stops
        // typing as he leaves (v1's order), once each: no repeat.
        const states = updates.map((u) => u.viewers.map((v) => `${v.agentId}:${v.status}`).join(','));
        assert.deepEqual(states, ['ada:viewing,bob:viewing', 'ada:viewing,bob:typing', 'ada:viewing,bob:viewing'], `each change once: ${JSON.stringify(updates)}`);
        // Its viewer events still come, as to any viewer.
        assert.equal(h.eventsOf(both, 'agent:joined').length, 1);
      });

      it('tickets:unwatch stops the updates (ids not watched are ignored); its ack is { ok: true }', async () => {
        const [list, ada] = [await connect(), await connect()];
        const [t1, t2] = [h.uid('t'), h.uid('t')];
        await watch(list, [t1, t2]);
        assert.deepEqual(await h.emitAck(list, 'tickets:unwatch', { ticketIds: [t1, h.uid('never')] }), { ok: true });
        await view(ada, t1, ADA);
        await view(ada, t2, ADA);
        await updateOf(list, t2, ['ada']);
        await h.noEvent(list, 'viewers:updated', 300, { where: (p) => p.ticketId === t1 });
        // Watching again works, with the current list.
        const ack = await watch(list, [t1]);
        assert.deepEqual(idsOf(ack.tickets[0].viewers), ['ada']);
      });

      it(`at most max_watched_tickets (${MAX_WATCHED}) per socket, all or nothing: LIMIT_EXCEEDED adds none of the ids`, async () => {
        const [list, ada] = [await connect(), await connect()];
        const ids = Array.from({ length: MAX_WATCHED + 1 }, () => h.uid('t'));
        await watch(list, ids.slice(0, 3));
        // Watching a ticket again adds nothing: still 3.
        await watch(list, ids.slice(0, 3));
        h.assertAckError(await h.emitAck(list, 'tickets:watch', { ticketIds: ids.slice(2) }), 'LIMIT_EXCEEDED');
        await view(ada, ids[3], ADA);
        await h.noEvent(list, 'viewers:updated', 300);
        list.emit('tickets:watch', { ticketIds: ids.slice(3) });
        const err = await h.nextEvent(list, 'ticket:error');
        h.assertKeys(err, ['event', 'code', 'message'], 'ticket:error');
        assert.deepEqual([err.event, err.code], ['tickets:watch', 'LIMIT_EXCEEDED']);
        // Exactly up to the limit is fine.
        const ack = await watch(list, ids.slice(3, MAX_WATCHED));
        assert.equal(ack.tickets.length, MAX_WATCHED - 3);
        await h.emitAck(ada, 'ticket:leave', { ticketId: ids[3], agentId: 'ada' });
        await updateOf(list, ids[3], []);
        // Unwatching frees places.
        assert.deepEqual(await h.emitAck(list, 'tickets:unwatch', { ticketIds: [ids[0]] }), { ok: true });
        await watch(list, [ids[MAX_WATCHED]]);
      });

      it('bad ticketIds are INVALID_PAYLOAD: in the ack, or as ticket:error with the event name', async () => {
        const s = await connect();
        const tooMany = Array.from({ length: 101 }, (_, i) => `t${i}`);
        const hundred = tooMany.slice(0, 100);
        const bad = [{}, { ticketIds: [] }, { ticketIds: tooMany }, { ticketIds: 't1' }, { ticketIds: ['ok', ''] }, { ticketIds: [1.5] }, { ticketIds: [null] }, { ticketIds: ['x'.repeat(129)] }, 'tickets', null];
        for (const event of ['tickets:watch', 'tickets:unwatch']) {
          for (const payload of bad) h.assertAckError(await h.emitAck(s, event, payload), 'INVALID_PAYLOAD');
          s.emit(event, { ticketIds: [] });
          const err = await h.nextEvent(s, 'ticket:error');
          assert.deepEqual([err.event, err.code], [event, 'INVALID_PAYLOAD']);
        }
        // 100 ids are fine for unwatch (and ignored); watch is limited by max_watched_tickets here.
        assert.deepEqual(await h.emitAck(s, 'tickets:unwatch', { ticketIds: hundred }), { ok: true });
        h.assertAckError(await h.emitAck(s, 'tickets:watch', { ticketIds: hundred }), 'LIMIT_EXCEEDED');
      });
    });
  }
});

describe('watching: 100 ids in one tickets:watch (section 3.2)', { skip: SKIP }, () => {
  const server = h.serverForDescribe({ events_per_second: 0 });
  afterEach(() => h.closeAllSockets());

  it('a watch of 100 ids answers 100 lists in order; a socket hears only the tickets it watches', async () => {
    const s = await h.connect(server.url, { transports: ['websocket'] });
    const ids = Array.from({ length: 100 }, () => h.uid('t'));
    const ack = await h.emitAck(s, 'tickets:watch', { ticketIds: ids });
    assert.deepEqual(ack.tickets.map((e) => e.ticketId), ids);
    s.close();
    // (That disconnect ends its watches is a unit test: a closed socket
    // cannot be observed from outside.) Another socket hears only what it
    // watches.
    const s2 = await h.connect(server.url, { transports: ['websocket'] });
    const ada = await h.connect(server.url, { transports: ['websocket'] });
    assert.equal((await h.emitAck(s2, 'tickets:watch', { ticketIds: [ids[0]] })).ok, true);
    await h.emitAck(ada, 'ticket:view', { ticketId: ids[1], ...ADA });
    await h.emitAck(ada, 'ticket:view', { ticketId: ids[0], ...ADA });
    await h.nextEvent(s2, 'viewers:updated', { where: (p) => p.ticketId === ids[0] });
    await h.noEvent(s2, 'viewers:updated', 200, { where: (p) => p.ticketId === ids[1] });
  });
});
