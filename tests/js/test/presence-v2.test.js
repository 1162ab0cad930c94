'use strict';

// Contract v2 section 3.1: presence detail — devices, drafts (editing), away
// tabs and idle_after (idle), the critical warning for an editing colleague,
// and viewers:updated only on a real change. Single instance; the cluster
// side is in cluster-v2.test.js. The Node peer implements v1: skipped there.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const h = require('../helpers');

const TOKEN = 's3cret';
const SKIP = h.isPeer ? 'contract v2 (section 3.1): the peer implements v1' : false;
const IDLE_AFTER = 1500;

const ADA = { agentId: 'ada', agentName: 'Ada' };
const BOB = { agentId: 'bob', agentName: 'Bob' };

// The viewer of `agentId` in a list.
const viewerOf = (viewers, agentId) => viewers.find((v) => v.agentId === agentId);

describe('presence detail (section 3.1)', { skip: SKIP }, () => {
  const server = h.serverForDescribe({ internal_token: TOKEN, events_per_second: 0, idle_after: IDLE_AFTER });
  afterEach(() => h.closeAllSockets());

  const viewersOf = async (ticketId) => {
    const res = await h.http('GET', `${server.internalUrl}/v1/tickets/${encodeURIComponent(ticketId)}/viewers`, { token: TOKEN });
    assert.equal(res.status, 200, res.text);
    h.assertViewerList(res.json.viewers);
    return res.json.viewers;
  };

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const connect = () => h.connect(server.url, { transports: [transport] });

      // ticket:view (with `extra`, e.g. a device); asserts the ack, takes the
      // viewers:updated the view brings to this socket, returns the ack.
      const view = async (s, ticketId, agent, extra = {}) => {
        const ack = await h.emitAck(s, 'ticket:view', { ticketId, ...agent, ...extra });
        assert.equal(ack.ok, true, `ticket:view: ${JSON.stringify(ack)}`);
        h.assertViewerList(ack.viewers);
        await h.nextEvent(s, 'viewers:updated', { where: (p) => p.ticketId === ticketId });
        return ack;
      };
      // The next viewers:updated on `s` in which `agentId` satisfies `test`.
      const updateWhere = (s, agentId, test, timeout = 2000) => h.nextEvent(s, 'viewers:updated', {
        timeout,
        where: (p) => {
          const v = viewerOf(p.viewers, agentId);
          return Boolean(v && test(v));
        },
      });
      const ok = async (s, event, payload) => {
        const ack = await h.emitAck(s, event, payload);
        assert.deepEqual(ack, { ok: true, ticketId: payload.ticketId }, `${event}: ${JSON.stringify(ack)}`);
      };

      it('a viewer carries editing, idle and devices ("web" without a device) in the ack, events and GET viewers', async () => {
        const s = await connect();
        const t = h.uid('t');
        const ack = await h.emitAck(s, 'ticket:view', { ticketId: t, ...ADA });
        const v = ack.viewers[0];
        assert.deepEqual({ ...v, since: 0 }, { agentId: 'ada', agentName: 'Ada', status: 'viewing', since: 0, typingStartedAt: null, editing: false, idle: false, devices: ['web'] });
        const vu = await h.nextEvent(s, 'viewers:updated');
        assert.deepEqual(vu, { ticketId: t, viewers: ack.viewers });
        assert.deepEqual(await viewersOf(t), ack.viewers);
        // device: null is "web" too.
        const s2 = await connect();
        const ack2 = await h.emitAck(s2, 'ticket:view', { ticketId: t, ...BOB, device: null });
        assert.deepEqual(viewerOf(ack2.viewers, 'bob').devices, ['web']);
        const warning = await h.nextEvent(s2, 'collision:warning');
        h.assertViewerList(warning.viewers);
      });

      it('devices: a new tab on another device is broadcast; each view sets its socket\'s device; a tab leaving takes its device', async () => {
        const [web, phone, bob] = [await connect(), await connect(), await connect()];
        const t = h.uid('t');
        await view(web, t, ADA);
        await view(bob, t, BOB);
        h.clearEvents(web);
        h.clearEvents(bob);
        await h.emitAck(phone, 'ticket:view', { ticketId: t, ...ADA, device: 'mobile' });
        for (const s of [web, phone, bob]) {
          const vu = await updateWhere(s, 'ada', (v) => v.devices.length === 2);
          assert.deepEqual(viewerOf(vu.viewers, 'ada').devices, ['mobile', 'web'], 'distinct devices, sorted');
        }
        assert.deepEqual(viewerOf(await viewersOf(t), 'ada').devices, ['mobile', 'web']);
        // The same view again: no change, no broadcast to the room.
        await h.emitAck(phone, 'ticket:view', { ticketId: t, ...ADA, device: 'mobile' });
        await h.noEvent(bob, 'viewers:updated');
        // A view without a device makes that socket "web" again.
        await h.emitAck(phone, 'ticket:view', { ticketId: t, ...ADA });
        const vu = await updateWhere(bob, 'ada', (v) => v.devices.length === 1);
        assert.deepEqual(viewerOf(vu.viewers, 'ada').devices, ['web']);
        // A tablet tab, then it leaves: its device goes with it.
        await h.emitAck(phone, 'ticket:view', { ticketId: t, ...ADA, device: 'tablet' });
        await updateWhere(bob, 'ada', (v) => v.devices.includes('tablet'));
        await ok(phone, 'ticket:leave', { ticketId: t, agentId: 'ada' });
        const afterLeave = await updateWhere(bob, 'ada', (v) => !v.devices.includes('tablet'));
        assert.deepEqual(viewerOf(afterLeave.viewers, 'ada').devices, ['web']);
      });

      it('an invalid device is INVALID_PAYLOAD (ack, or ticket:error without one) and changes nothing', async () => {
        const s = await connect();
        const t = h.uid('t');
        for (const device of ['Mobile', '', 7, '1phone', 'x'.repeat(33)]) {
          h.assertAckError(await h.emitAck(s, 'ticket:view', { ticketId: t, ...ADA, device }), 'INVALID_PAYLOAD');
        }
        s.emit('ticket:view', { ticketId: t, ...ADA, device: 'Web' });
        const err = await h.nextEvent(s, 'ticket:error');
        h.assertKeys(err, ['event', 'code', 'message'], 'ticket:error');
        assert.equal(err.event, 'ticket:view');
        assert.equal(err.code, 'INVALID_PAYLOAD');
        assert.deepEqual(await viewersOf(t), []);
      });

      it('ticket:draft: editing while any tab has a draft; the room hears each change once, a repeat broadcasts nothing', async () => {
        const [a1, a2, bob] = [await connect(), await connect(), await connect()];
        const t = h.uid('t');
        await view(a1, t, ADA);
        await view(a2, t, ADA);
        await view(bob, t, BOB);
        h.clearEvents(a1);
        h.clearEvents(bob);
        await ok(a1, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true });
        for (const s of [a1, a2, bob]) assert.equal(viewerOf((await updateWhere(s, 'ada', (v) => v.editing)).viewers, 'ada').editing, true);
        assert.equal(viewerOf(await viewersOf(t), 'ada').status, 'viewing', 'a draft is not typing');
        await ok(a1, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true });
        await ok(a2, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true });
        await ok(a1, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: false });
        await h.noEvent(bob, 'viewers:updated', 300);
        assert.equal(viewerOf(await viewersOf(t), 'ada').editing, true, 'tab 2 still has a draft');
        await ok(a2, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: false });
        await updateWhere(bob, 'ada', (v) => !v.editing);
        await h.noEvent(bob, 'agent:typing');
      });

      it('an editing colleague makes the collision warning critical: "Ada is editing a reply"', async () => {
        const [ada, bob] = [await connect(), await connect()];
        const t = h.uid('t');
        await view(ada, t, ADA);
        await ok(ada, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true });
        await h.emitAck(bob, 'ticket:view', { ticketId: t, ...BOB });
        const warning = await h.nextEvent(bob, 'collision:warning');
        assert.equal(warning.severity, 'critical');
        assert.equal(warning.message, 'Ada is editing a reply');
        assert.equal(warning.viewers[0].editing, true);
        // Typing and editing: typing wins, as in v1.
        const cy = await connect();
        await ok(ada, 'ticket:typing', { ticketId: t, agentId: 'ada' });
        await h.emitAck(cy, 'ticket:view', { ticketId: t, agentId: 'cy', agentName: 'Cy' });
        const w2 = await h.nextEvent(cy, 'collision:warning');
        assert.deepEqual([w2.severity, w2.message], ['critical', 'Ada is typing a reply']);
      });

      it('a draft ends with ticket:leave and with disconnect of its tab; it does not time out like typing', async () => {
        const [a1, a2, bob] = [await connect(), await connect(), await connect()];
        const t = h.uid('t');
        await view(a1, t, ADA);
        await view(a2, t, ADA);
        await view(bob, t, BOB);
        await ok(a1, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true });
        await updateWhere(bob, 'ada', (v) => v.editing);
        await ok(a1, 'ticket:leave', { ticketId: t, agentId: 'ada' });
        await updateWhere(bob, 'ada', (v) => !v.editing);
        await ok(a2, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true });
        await updateWhere(bob, 'ada', (v) => v.editing);
        const a3 = await connect();
        await view(a3, t, ADA);
        a2.close();
        const vu = await updateWhere(bob, 'ada', (v) => !v.editing);
        assert.deepEqual(vu.viewers.map((v) => v.agentId), ['ada', 'bob'], 'Ada stays through her other tab');
      });

      it('ticket:activity: idle while every tab is away; active (or any other ticket event) ends it; repeats broadcast nothing', async () => {
        const [a1, a2, bob] = [await connect(), await connect(), await connect()];
        const t = h.uid('t');
        await view(a1, t, ADA);
        await view(a2, t, ADA);
        await view(bob, t, BOB);
        h.clearEvents(bob);
        await ok(a1, 'ticket:activity', { ticketId: t, agentId: 'ada', state: 'away' });
        await h.noEvent(bob, 'viewers:updated', 300);
        await ok(a2, 'ticket:activity', { ticketId: t, agentId: 'ada', state: 'away' });
        assert.equal(viewerOf((await updateWhere(bob, 'ada', (v) => v.idle)).viewers, 'ada').idle, true);
        assert.equal(viewerOf(await viewersOf(t), 'ada').idle, true);
        await ok(a2, 'ticket:activity', { ticketId: t, agentId: 'ada', state: 'away' });
        await h.noEvent(bob, 'viewers:updated', 300);
        await ok(a1, 'ticket:activity', { ticketId: t, agentId: 'ada', state: 'active' });
        await updateWhere(bob, 'ada', (v) => !v.idle);
        // Each other ticket event of an away tab makes it active again.
        const events = [
          ['ticket:typing', {}],
          ['ticket:stop_typing', {}],
          ['ticket:draft', { editing: false }],
          ['ticket:view', { agentName: 'Ada' }],
        ];
        for (const [event, extra] of events) {
          await ok(a1, 'ticket:activity', { ticketId: t, agentId: 'ada', state: 'away' });
          await updateWhere(bob, 'ada', (v) => v.idle, 2000);
          const ack = await h.emitAck(a1, event, { ticketId: t, agentId: 'ada', ...extra });
          assert.equal(ack.ok, true, `${event}: ${JSON.stringify(ack)}`);
          await updateWhere(bob, 'ada', (v) => !v.idle);
        }
      });

      it(`idle after idle_after (${IDLE_AFTER} ms) without activity, within 1 s and not before; false again at the next activity`, async () => {
        const [ada, bob] = [await connect(), await connect()];
        const t = h.uid('t');
        await view(ada, t, ADA);
        const bobAck = await view(bob, t, BOB);
        // The server stamped Bob's view (his last activity) with `since`,
        // on the same machine's clock as Date.now().
        const bobViewed = viewerOf(bobAck.viewers, 'bob').since;
        const vu = await updateWhere(bob, 'ada', (v) => v.idle, IDLE_AFTER + 3000);
        assert.equal(viewerOf(vu.viewers, 'bob').idle, false, 'Bob viewed later');
        assert.ok(Date.now() - bobViewed < IDLE_AFTER + 1000, `Ada idle ${Date.now() - bobViewed} ms after Bob's later view`);
        assert.equal(viewerOf(await viewersOf(t), 'ada').idle, true);
        const bobIdle = await updateWhere(ada, 'bob', (v) => v.idle, IDLE_AFTER + 3000);
        const after = Date.now() - bobViewed;
        assert.ok(after >= IDLE_AFTER, `Bob idle ${after} ms after his view: before idle_after`);
        assert.ok(after < IDLE_AFTER + 1000, `Bob idle ${after} ms after his view: later than idle_after + 1 s`);
        assert.equal(viewerOf(bobIdle.viewers, 'bob').idle, true);
        // `away` is not activity; `active` is.
        await ok(ada, 'ticket:activity', { ticketId: t, agentId: 'ada', state: 'away' });
        await h.noEvent(bob, 'viewers:updated', 200, { where: (p) => !viewerOf(p.viewers, 'ada').idle });
        await ok(ada, 'ticket:activity', { ticketId: t, agentId: 'ada', state: 'active' });
        await updateWhere(bob, 'ada', (v) => !v.idle);
        assert.equal(viewerOf(await viewersOf(t), 'ada').idle, false);
      });

      it('draft and activity need the socket to view the ticket as that agent (NOT_VIEWING), with and without an ack', async () => {
        const s = await connect();
        const t = h.uid('t');
        h.assertAckError(await h.emitAck(s, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true }), 'NOT_VIEWING');
        h.assertAckError(await h.emitAck(s, 'ticket:activity', { ticketId: t, agentId: 'ada', state: 'away' }), 'NOT_VIEWING');
        await view(s, t, ADA);
        h.assertAckError(await h.emitAck(s, 'ticket:draft', { ticketId: t, agentId: 'bob', editing: true }), 'NOT_VIEWING');
        for (const [event, payload] of [
          ['ticket:draft', { ticketId: h.uid('t'), agentId: 'ada', editing: true }],
          ['ticket:activity', { ticketId: h.uid('t'), agentId: 'ada', state: 'active' }],
        ]) {
          s.emit(event, payload);
          const err = await h.nextEvent(s, 'ticket:error');
          assert.deepEqual({ ...err, message: '' }, { event, code: 'NOT_VIEWING', message: '' });
        }
        assert.deepEqual((await viewersOf(t)).map((v) => [v.editing, v.idle]), [[false, false]]);
      });

      it('bad draft and activity payloads are INVALID_PAYLOAD, with and without an ack', async () => {
        const s = await connect();
        const t = h.uid('t');
        await view(s, t, ADA);
        const bad = [
          ['ticket:draft', { ticketId: t, agentId: 'ada' }],
          ['ticket:draft', { ticketId: t, agentId: 'ada', editing: 'true' }],
          ['ticket:draft', { ticketId: t, agentId: 'ada', editing: 1 }],
          ['ticket:draft', { agentId: 'ada', editing: true }],
          ['ticket:activity', { ticketId: t, agentId: 'ada' }],
          ['ticket:activity', { ticketId: t, agentId: 'ada', state: 'idle' }],
          ['ticket:activity', { ticketId: t, state: 'away' }],
          ['ticket:activity', 'away'],
        ];
        for (const [event, payload] of bad) h.assertAckError(await h.emitAck(s, event, payload), 'INVALID_PAYLOAD');
        for (const [event, payload] of bad.slice(0, 2).concat(bad.slice(4, 6))) {
          s.emit(event, payload);
          const err = await h.nextEvent(s, 'ticket:error');
          assert.deepEqual([err.event, err.code], [event, 'INVALID_PAYLOAD']);
        }
        assert.deepEqual((await viewersOf(t)).map((v) => [v.editing, v.idle]), [[false, false]]);
      });
    });
  }
});

describe('presence detail and watching draw from the rate limit (sections 3.1, 3.2)', { skip: SKIP }, () => {
  const server = h.serverForDescribe({ events_per_second: 1 });
  afterEach(() => h.closeAllSockets());

  it('past the burst, ticket:draft, ticket:activity and tickets:watch are RATE_LIMITED, with and without an ack', async () => {
    const s = await h.connect(server.url, { transports: ['websocket'] });
    const t = h.uid('t');
    const view = await h.emitAck(s, 'ticket:view', { ticketId: t, ...ADA });
    assert.equal(view.ok, true);
    const acks = [];
    for (let i = 0; i < 3; i++) {
      acks.push(await h.emitAck(s, i % 2 ? 'ticket:activity' : 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true, state: 'away' }));
    }
    // Burst 2 at 1/s: the view and one more pass within this loop.
    h.assertAckError(acks[acks.length - 1], 'RATE_LIMITED');
    // Without an ack: ticket:error with the event's name (tickets:watch too).
    for (const [event, payload] of [['ticket:draft', { ticketId: t, agentId: 'ada', editing: true }], ['tickets:watch', { ticketIds: [t] }]]) {
      s.emit(event, payload);
      const err = await h.nextEvent(s, 'ticket:error');
      assert.deepEqual([err.event, err.code], [event, 'RATE_LIMITED']);
    }
  });
});

describe('presence detail with auth_mode = jwt (sections 1, 3.1)', { skip: SKIP }, () => {
  const crypto = require('node:crypto');
  const SECRET = 'jwt-s3cret';
  const b64u = (data) => Buffer.from(data).toString('base64url');
  const sign = (claims) => {
    const data = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
    return `${data}.${b64u(crypto.createHmac('sha256', SECRET).update(data).digest())}`;
  };
  const server = h.serverForDescribe({ auth_mode: 'jwt', jwt_secret: SECRET, events_per_second: 0 });
  afterEach(() => h.closeAllSockets());

  it('an omitted agentId is the token\'s; another agent\'s is FORBIDDEN (after INVALID_PAYLOAD), with and without an ack', async () => {
    const s = await h.connect(server.url, { transports: ['websocket'], auth: { token: sign({ sub: 'ada', name: 'Ada' }) } });
    const t = h.uid('t');
    const view = await h.emitAck(s, 'ticket:view', { ticketId: t, device: 'mobile' });
    assert.deepEqual(view.viewers[0].devices, ['mobile']);
    assert.deepEqual(await h.emitAck(s, 'ticket:draft', { ticketId: t, editing: true }), { ok: true, ticketId: t });
    assert.deepEqual(await h.emitAck(s, 'ticket:activity', { ticketId: t, state: 'away' }), { ok: true, ticketId: t });
    const vu = await h.nextEvent(s, 'viewers:updated', { where: (p) => p.viewers[0].idle && p.viewers[0].editing });
    assert.equal(vu.viewers[0].agentId, 'ada');
    h.clearEvents(s, 'viewers:updated'); // the view's and the draft's
    h.assertAckError(await h.emitAck(s, 'ticket:draft', { ticketId: t, agentId: 'bob', editing: false }), 'FORBIDDEN');
    h.assertAckError(await h.emitAck(s, 'ticket:draft', { ticketId: t, agentId: 'bob', editing: 'no' }), 'INVALID_PAYLOAD');
    s.emit('ticket:activity', { ticketId: t, agentId: 'bob', state: 'active' });
    const err = await h.nextEvent(s, 'ticket:error');
    assert.deepEqual([err.event, err.code], ['ticket:activity', 'FORBIDDEN']);
    await h.noEvent(s, 'viewers:updated', 200, { where: (p) => !p.viewers[0].idle });
  });
});

describe('presence detail: the stale sweep ends a draft (section 3.1)', { skip: SKIP }, () => {
  const server = h.serverForDescribe({ events_per_second: 0, sweep_interval: 200, stale_after: 600 });
  afterEach(() => h.closeAllSockets());

  it('a stale viewer leaves with its draft; a new view of that socket has none', async () => {
    const ada = await h.connect(server.url, { transports: ['websocket'] });
    const list = await h.connect(server.url, { transports: ['websocket'] });
    const t = h.uid('t');
    await h.emitAck(ada, 'ticket:view', { ticketId: t, ...ADA });
    await h.emitAck(ada, 'ticket:draft', { ticketId: t, agentId: 'ada', editing: true });
    const ack = await h.emitAck(list, 'tickets:watch', { ticketIds: [t] });
    assert.equal(ack.tickets[0].viewers[0].editing, true);
    const left = await h.nextEvent(ada, 'agent:left', 3000);
    assert.equal(left.reason, 'stale');
    await h.nextEvent(list, 'viewers:updated', { where: (p) => p.viewers.length === 0 });
    const again = await h.emitAck(ada, 'ticket:view', { ticketId: t, ...ADA });
    assert.equal(again.viewers[0].editing, false, 'the draft ended with the sweep');
  });
});
