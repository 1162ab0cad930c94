'use strict';

// Contract v2 section 3.3 and its section 5 row: POST /v1/tickets/{ticketId}/events
// sends ticket:updated to every socket viewing the ticket except the sockets
// of `by.agentId`, and answers 202 { delivered: true, viewers: n }. Single
// instance; the cluster side is in cluster-v2.test.js. The peer implements v1.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const h = require('../helpers');

const TOKEN = 's3cret';
const MAX_BODY = 2048;
const SKIP = h.isPeer ? 'contract v2 (section 3.3): the peer implements v1' : false;

const ADA = { agentId: 'ada', agentName: 'Ada' };
const BOB = { agentId: 'bob', agentName: 'Bob' };
const CY = { agentId: 'cy', agentName: 'Cy' };

const UPDATED_KEYS = ['ticketId', 'kind', 'by', 'summary', 'version', 'at'];

describe('ticket updated by someone else (section 3.3)', { skip: SKIP }, () => {
  const server = h.serverForDescribe({ internal_token: TOKEN, events_per_second: 0, max_body: MAX_BODY });
  afterEach(() => h.closeAllSockets());

  const post = (ticketId, body, opts = {}) => h.http('POST', `${server.internalUrl}/v1/tickets/${encodeURIComponent(ticketId)}/events`, { token: TOKEN, body, ...opts });

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const connect = () => h.connect(server.url, { transports: [transport] });
      const view = async (s, ticketId, agent) => {
        const ack = await h.emitAck(s, 'ticket:view', { ticketId, ...agent });
        assert.equal(ack.ok, true, JSON.stringify(ack));
      };

      it('every viewer but the sockets of by.agentId gets ticket:updated with exactly the contract\'s keys; 202 { delivered, viewers: n }', async () => {
        const [ada1, ada2, bob1, bob2, cy] = [await connect(), await connect(), await connect(), await connect(), await connect()];
        const t = h.uid('t');
        for (const [s, agent] of [[ada1, ADA], [ada2, ADA], [bob1, BOB], [bob2, BOB], [cy, CY]]) await view(s, t, agent);
        const before = Date.now();
        const res = await post(t, { kind: 'reply', by: { agentId: 'bob', agentName: 'Bob' }, summary: 'Bob replied to the customer', version: 12 });
        assert.equal(res.status, 202, res.text);
        assert.deepEqual(res.json, { delivered: true, viewers: 2 }, 'Ada and Cy: two agents, whatever their tabs');
        for (const s of [ada1, ada2, cy]) {
          const ev = await h.nextEvent(s, 'ticket:updated');
          h.assertKeys(ev, UPDATED_KEYS, 'ticket:updated');
          const { at, ...rest } = ev;
          assert.deepEqual(rest, { ticketId: t, kind: 'reply', by: { agentId: 'bob', agentName: 'Bob' }, summary: 'Bob replied to the customer', version: '12' });
          assert.ok(Number.isInteger(at) && at >= before - 1000 && at <= Date.now() + 1000, `at ${at} is the server's Date.now()`);
        }
        await Promise.all([h.noEvent(bob1, 'ticket:updated'), h.noEvent(bob2, 'ticket:updated')]);
      });

      it('without by, or by null, every viewer hears it, with by: null; a missing name is null; summary and version may be absent or null', async () => {
        const [ada, bob] = [await connect(), await connect()];
        const t = h.uid('t');
        await view(ada, t, ADA);
        await view(bob, t, BOB);
        let res = await post(t, { kind: 'status' });
        assert.deepEqual([res.status, res.json], [202, { delivered: true, viewers: 2 }]);
        for (const s of [ada, bob]) {
          const ev = await h.nextEvent(s, 'ticket:updated');
          assert.deepEqual({ ...ev, at: 0 }, { ticketId: t, kind: 'status', by: null, summary: null, version: null, at: 0 });
        }
        res = await post(t, { kind: 'note.internal', by: null, summary: null, version: null });
        assert.equal(res.status, 202, res.text);
        for (const s of [ada, bob]) assert.equal((await h.nextEvent(s, 'ticket:updated')).by, null);
        res = await post(t, { kind: 'assign', by: { agentId: 'ada' }, version: 'v-7', extra: true });
        assert.deepEqual(res.json, { delivered: true, viewers: 1 });
        const ev = await h.nextEvent(bob, 'ticket:updated');
        assert.deepEqual([ev.by, ev.version, ev.summary], [{ agentId: 'ada', agentName: null }, 'v-7', null]);
        await h.noEvent(ada, 'ticket:updated');
        // An author who does not view the ticket: everyone hears it.
        res = await post(t, { kind: 'reply', by: { agentId: 99, agentName: 'Dan' } });
        assert.deepEqual(res.json, { delivered: true, viewers: 2 });
        const fromDan = await h.nextEvent(ada, 'ticket:updated');
        assert.deepEqual(fromDan.by, { agentId: '99', agentName: 'Dan' });
        await h.nextEvent(bob, 'ticket:updated');
      });

      it('only viewers of that ticket hear it: not other tickets\' viewers, not a socket that left, not watchers', async () => {
        const [ada, bob, list] = [await connect(), await connect(), await connect()];
        const [t, other] = [h.uid('t'), h.uid('t')];
        await view(ada, t, ADA);
        await view(bob, other, BOB);
        await view(bob, t, BOB);
        await h.emitAck(bob, 'ticket:leave', { ticketId: t, agentId: 'bob' });
        assert.equal((await h.emitAck(list, 'tickets:watch', { ticketIds: [t] })).ok, true);
        const res = await post(t, { kind: 'reply' });
        assert.deepEqual(res.json, { delivered: true, viewers: 1 });
        await h.nextEvent(ada, 'ticket:updated');
        await Promise.all([h.noEvent(bob, 'ticket:updated'), h.noEvent(list, 'ticket:updated')]);
      });
    });
  }

  it('a ticket nobody views: 202 { delivered: true, viewers: 0 }', async () => {
    const res = await post(h.uid('t'), { kind: 'reply', by: { agentId: 'ada' } });
    assert.equal(res.status, 202, res.text);
    assert.deepEqual(res.json, { delivered: true, viewers: 0 });
    assert.match(res.headers.get('content-type') || '', /application\/json/);
  });

  it('the section 5 errors: INVALID_JSON, INVALID_PAYLOAD, UNAUTHORIZED, PAYLOAD_TOO_LARGE, 405; none sends anything', async () => {
    const ada = await h.connect(server.url, { transports: ['websocket'] });
    const t = h.uid('t');
    assert.equal((await h.emitAck(ada, 'ticket:view', { ticketId: t, ...ADA })).ok, true);
    h.assertHttpError(await post(t, undefined, { raw: '{"kind": ' }), 400, 'INVALID_JSON');
    h.assertHttpError(await post(t, undefined, { raw: '' }), 400, 'INVALID_JSON');
    const invalid = [
      {}, [], 'reply', 7, null,
      { kind: null }, { kind: '' }, { kind: 'Reply' }, { kind: '1reply' }, { kind: 're ply' }, { kind: 3 },
      { kind: `a${'b'.repeat(64)}` },
      { kind: 'reply', by: 'bob' }, { kind: 'reply', by: {} }, { kind: 'reply', by: { agentId: '' } },
      { kind: 'reply', by: { agentId: 'bob', agentName: '' } }, { kind: 'reply', by: { agentId: 'x'.repeat(129) } },
      { kind: 'reply', summary: 'x'.repeat(501) }, { kind: 'reply', summary: 5 },
      { kind: 'reply', version: 1.5 }, { kind: 'reply', version: '' }, { kind: 'reply', version: true },
    ];
    for (const body of invalid) {
      const res = await post(t, undefined, { raw: JSON.stringify(body) });
      h.assertHttpError(res, 400, 'INVALID_PAYLOAD');
    }
    // The longest kind and summary are fine.
    const longest = await post(t, { kind: `a${'b'.repeat(63)}`, summary: 'x'.repeat(500) });
    assert.equal(longest.status, 202, longest.text);
    await h.nextEvent(ada, 'ticket:updated');
    // A bad ticket id in the path.
    h.assertHttpError(await post('x'.repeat(129), { kind: 'reply' }), 400, 'INVALID_PAYLOAD');
    h.assertHttpError(await post('a\u0001b', { kind: 'reply' }), 400, 'INVALID_PAYLOAD');
    // Token missing or wrong.
    h.assertHttpError(await post(t, { kind: 'reply' }, { token: undefined }), 401, 'UNAUTHORIZED');
    h.assertHttpError(await post(t, { kind: 'reply' }, { token: 'wrong' }), 401, 'UNAUTHORIZED');
    // Over max_body; exactly max_body is fine.
    const padded = (n) => {
      const base = JSON.stringify({ kind: 'reply', pad: '' });
      return JSON.stringify({ kind: 'reply', pad: 'x'.repeat(n - base.length) });
    };
    h.assertHttpError(await post(t, undefined, { raw: padded(MAX_BODY + 1) }), 413, 'PAYLOAD_TOO_LARGE');
    const exact = await post(t, undefined, { raw: padded(MAX_BODY) });
    assert.equal(exact.status, 202, exact.text);
    await h.nextEvent(ada, 'ticket:updated');
    // Another method on the route.
    const get = await h.http('GET', `${server.internalUrl}/v1/tickets/${t}/events`, { token: TOKEN });
    assert.equal(get.status, 405, get.text);
    await h.noEvent(ada, 'ticket:updated');
  });
});
