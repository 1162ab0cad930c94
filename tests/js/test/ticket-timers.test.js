'use strict';

// Contract section 3, the timed rules: typing timeout and the stale sweep.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const h = require('../helpers');

const TOKEN = 's3cret';
const TYPING_TIMEOUT = 1000;
const SWEEP_INTERVAL = 300;
const STALE_AFTER = 1500;

function viewersOf(server, ticketId) {
  return h.http('GET', `${server.internalUrl}/v1/tickets/${encodeURIComponent(ticketId)}/viewers`, { token: TOKEN }).then((res) => {
    assert.equal(res.status, 200, res.text);
    return res.json.viewers;
  });
}

async function view(s, ticketId, agentId, agentName) {
  const ack = await h.emitAck(s, 'ticket:view', { ticketId, agentId, agentName });
  assert.equal(ack.ok, true, JSON.stringify(ack));
  return ack;
}

describe(`typing timeout (typing_timeout ${TYPING_TIMEOUT} ms)`, () => {
  // No stale sweep within these tests.
  const server = h.serverForDescribe({ typing_timeout: TYPING_TIMEOUT, internal_token: TOKEN, events_per_second: 0 });
  afterEach(() => h.closeAllSockets());

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const connect = () => h.connect(server.url, { transports: [transport] });

      it('typing without a new ticket:typing falls back to viewing with agent:stopped_typing', async () => {
        const a = await connect();
        const b = await connect();
        const t = h.uid('t');
        await view(a, t, 'ada', 'Ada');
        await view(b, t, 'bob', 'Bob');
        const started = Date.now();
        await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        await h.nextEvent(a, 'agent:typing');
        const typingNow = { where: (p) => p.viewers.some((v) => v.status === 'typing') };
        await h.nextEvent(a, 'viewers:updated', typingNow);
        await h.nextEvent(b, 'viewers:updated', typingNow);
        h.clearEvents(a, 'viewers:updated');
        h.clearEvents(b, 'viewers:updated');
        const stopped = await h.nextEvent(a, 'agent:stopped_typing', TYPING_TIMEOUT + 3000);
        const elapsed = Date.now() - started;
        assert.deepEqual(stopped, { ticketId: t, agentId: 'bob', agentName: 'Bob' });
        assert.ok(elapsed >= TYPING_TIMEOUT - 100, `stopped after ${elapsed} ms, before typing_timeout`);
        const vu = await h.nextEvent(a, 'viewers:updated', { where: (p) => p.viewers.length === 2 && p.viewers.every((v) => v.status === 'viewing') });
        h.assertViewerList(vu.viewers);
        assert.equal(vu.viewers.find((v) => v.agentId === 'bob').typingStartedAt, null);
        await h.nextEvent(b, 'viewers:updated', { where: (p) => p.viewers.length === 2 && p.viewers.every((v) => v.status === 'viewing') });
        await h.noEvent(b, 'agent:stopped_typing', 100);
        // Still a viewer.
        assert.deepEqual((await viewersOf(server, t)).map((v) => [v.agentId, v.status]), [['ada', 'viewing'], ['bob', 'viewing']]);
      });

      it('a repeated ticket:typing renews the timeout', async () => {
        const a = await connect();
        const b = await connect();
        const t = h.uid('t');
        await view(a, t, 'ada', 'Ada');
        await view(b, t, 'bob', 'Bob');
        await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        await h.nextEvent(a, 'agent:typing');
        await h.elapse(TYPING_TIMEOUT * 0.6); // renew past the middle of the first timeout
        const renewed = Date.now();
        await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        // The first typing's timeout would fire now; the renewal keeps it typing.
        await h.noEvent(a, 'agent:stopped_typing', TYPING_TIMEOUT * 0.6);
        assert.equal((await viewersOf(server, t)).find((v) => v.agentId === 'bob').status, 'typing');
        await h.nextEvent(a, 'agent:stopped_typing', TYPING_TIMEOUT + 3000);
        assert.ok(Date.now() - renewed >= TYPING_TIMEOUT - 100, 'stopped before the renewed timeout');
      });
    });
  }
});

describe(`stale sweep (sweep_interval ${SWEEP_INTERVAL} ms, stale_after ${STALE_AFTER} ms)`, () => {
  const server = h.serverForDescribe({
    typing_timeout: 10000,
    sweep_interval: SWEEP_INTERVAL,
    stale_after: STALE_AFTER,
    internal_token: TOKEN,
    events_per_second: 0,
  });
  afterEach(() => h.closeAllSockets());

  // Keeps an agent active with a ticket event every 300 ms until stopped.
  function keepActive(s, ticketId, agentId, event = 'ticket:typing') {
    let on = true;
    const payload = event === 'ticket:view' ? { ticketId, agentId, agentName: agentId } : { ticketId, agentId };
    const loop = (async () => {
      while (on) {
        await h.emitAck(s, event, payload);
        await h.elapse(300); // the activity's pace
      }
    })();
    return async () => {
      on = false;
      await loop;
    };
  }

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const connect = () => h.connect(server.url, { transports: [transport] });

      it('an idle viewer is removed with agent:left reason stale, sent to its own sockets too; they stay connected', async () => {
        const a1 = await connect();
        const a2 = await connect();
        const b = await connect();
        const t = h.uid('t');
        const started = Date.now();
        await view(a1, t, 'ada', 'Ada');
        await view(a2, t, 'ada', 'Ada');
        await view(b, t, 'bob', 'Bob');
        const stop = keepActive(b, t, 'bob');
        try {
          const expected = { ticketId: t, agentId: 'ada', agentName: 'Ada', reason: 'stale' };
          const deadline = STALE_AFTER + SWEEP_INTERVAL + 3000;
          assert.deepEqual(await h.nextEvent(b, 'agent:left', deadline), expected);
          assert.ok(Date.now() - started >= STALE_AFTER - 100, 'removed before stale_after');
          assert.deepEqual(await h.nextEvent(a1, 'agent:left', 1000), expected);
          assert.deepEqual(await h.nextEvent(a2, 'agent:left', 1000), expected);
          await h.nextEvent(b, 'viewers:updated', { where: (p) => p.viewers.length === 1 && p.viewers[0].agentId === 'bob' });
          assert.deepEqual((await viewersOf(server, t)).map((v) => v.agentId), ['bob']);
          assert.equal(a1.connected, true);
          assert.equal(a2.connected, true);
          // They no longer view the ticket ...
          h.assertAckError(await h.emitAck(a1, 'ticket:typing', { ticketId: t, agentId: 'ada' }), 'NOT_VIEWING');
          h.assertAckError(await h.emitAck(a2, 'ticket:leave', { ticketId: t, agentId: 'ada' }), 'NOT_VIEWING');
          // ... and are out of the room.
          h.clearEvents(a1);
          h.clearEvents(a2);
          await h.emitAck(b, 'ticket:stop_typing', { ticketId: t, agentId: 'bob' });
          await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
          await Promise.all([h.noEvent(a1, 'agent:typing'), h.noEvent(a1, 'viewers:updated'), h.noEvent(a2, 'agent:typing')]);
        } finally {
          await stop();
        }
        // Viewing again works and starts a new since.
        const ack = await view(a1, t, 'ada', 'Ada');
        assert.deepEqual(ack.viewers.map((v) => v.agentId), ['bob', 'ada']);
      });

      it('activity keeps a viewer: typing and heartbeat views prevent staleness', async () => {
        const a = await connect();
        const b = await connect();
        const c = await connect();
        const t = h.uid('t');
        await view(a, t, 'ada', 'Ada');
        await view(b, t, 'bob', 'Bob');
        await view(c, t, 'cy', 'Cy');
        const stopA = keepActive(a, t, 'ada', 'ticket:typing');
        const stopB = keepActive(b, t, 'bob', 'ticket:view');
        try {
          // Cy (idle) goes stale; Ada and Bob stay.
          const left = await h.nextEvent(a, 'agent:left', STALE_AFTER + SWEEP_INTERVAL + 3000);
          assert.equal(left.agentId, 'cy');
          assert.equal(left.reason, 'stale');
          // Two more sweeps: nobody else leaves.
          await h.noEvent(b, 'agent:left', SWEEP_INTERVAL * 2 + 10, { where: (p) => p.agentId !== 'cy' });
          assert.deepEqual((await viewersOf(server, t)).map((v) => v.agentId).sort(), ['ada', 'bob']);
        } finally {
          await Promise.all([stopA(), stopB()]);
        }
      });
    });
  }
});
