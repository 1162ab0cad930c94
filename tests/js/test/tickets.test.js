'use strict';

// Contract section 3: ticket collision detection (single instance, auth_mode none).

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const h = require('../helpers');

const TOKEN = 's3cret';

describe('ticket collision detection (section 3)', () => {
  const server = h.serverForDescribe({ typing_timeout: 10000, internal_token: TOKEN, events_per_second: 0 });
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
      const ADA = { agentId: 'ada', agentName: 'Ada' };
      const BOB = { agentId: 'bob', agentName: 'Bob' };
      const CY = { agentId: 'cy', agentName: 'Cy' };

      // Views `ticketId` as `agent` on socket `s`, returns the ack, and takes
      // the viewers:updated that the view sends to that socket.
      const view = async (s, ticketId, agent) => {
        const ack = await h.emitAck(s, 'ticket:view', { ticketId, ...agent });
        assert.equal(ack.ok, true, `ticket:view failed: ${JSON.stringify(ack)}`);
        await h.nextEvent(s, 'viewers:updated', { where: (p) => p.ticketId === ticketId && p.viewers.some((v) => v.agentId === agent.agentId) });
        return ack;
      };

      // Ada (socket a) and then Bob (socket b) view a new ticket t.
      const adaThenBobView = async () => {
        const a = await connect();
        const b = await connect();
        const t = h.uid('t');
        const ackA = await view(a, t, ADA);
        await view(b, t, BOB);
        return { a, b, t, ackA };
      };

      // Two tabs of Ada (a1, a2) and then Bob (b) view a new ticket t.
      const twoAdaTabsThenBobView = async () => {
        const a1 = await connect();
        const a2 = await connect();
        const b = await connect();
        const t = h.uid('t');
        await view(a1, t, ADA);
        await view(a2, t, ADA);
        await view(b, t, BOB);
        return { a1, a2, b, t };
      };

      // The next viewers:updated on `s` that lists `n` viewers.
      const viewersUpdatedTo = (s, n) => h.nextEvent(s, 'viewers:updated', { where: (p) => p.viewers.length === n });
      // The next viewers:updated on `s` in which someone types.
      const viewersUpdatedTyping = (s) => h.nextEvent(s, 'viewers:updated', { where: (p) => p.viewers.some((v) => v.status === 'typing') });

      it('the first viewer gets an ack with itself and viewers:updated, and no collision:warning', async () => {
        const s = await connect();
        const t = h.uid('t');
        const before = Date.now();
        const ack = await h.emitAck(s, 'ticket:view', { ticketId: t, ...ADA });
        h.assertKeys(ack, ['ok', 'ticketId', 'viewers'], 'ack');
        assert.equal(ack.ok, true);
        assert.equal(ack.ticketId, t);
        assert.equal(ack.viewers.length, 1);
        const v = ack.viewers[0];
        h.assertViewer(v);
        assert.deepEqual({ ...v, since: 0 }, h.v2Viewer({ agentId: 'ada', agentName: 'Ada', status: 'viewing', since: 0, typingStartedAt: null }));
        // Milliseconds since the epoch (generous clock tolerance, not a speed check).
        assert.ok(Math.abs(v.since - before) < 60_000, `since ${v.since} is not Date.now()-like (${before})`);
        const vu = await h.nextEvent(s, 'viewers:updated');
        h.assertKeys(vu, ['ticketId', 'viewers'], 'viewers:updated');
        assert.equal(vu.ticketId, t);
        assert.deepEqual(vu.viewers, ack.viewers);
        await Promise.all([h.noEvent(s, 'collision:warning'), h.noEvent(s, 'agent:joined')]);
        assert.deepEqual(await viewersOf(t), ack.viewers);
      });

      it('a second agent gets collision:warning; the room gets agent:joined and viewers:updated', async () => {
        const a = await connect();
        const b = await connect();
        const t = h.uid('t');
        const ackA = await view(a, t, ADA);
        await h.separateTimestamps(3);
        const ackB = await h.emitAck(b, 'ticket:view', { ticketId: t, ...BOB });
        assert.equal(ackB.ok, true);
        assert.deepEqual(ackB.viewers.map((v) => v.agentId), ['ada', 'bob']);
        h.assertViewerList(ackB.viewers);
        assert.equal(ackB.viewers[0].since, ackA.viewers[0].since, 'since of the first viewer stays');

        const warning = await h.nextEvent(b, 'collision:warning');
        h.assertKeys(warning, ['ticketId', 'viewers', 'severity', 'message'], 'collision:warning');
        assert.equal(warning.ticketId, t);
        assert.deepEqual(warning.viewers, ackA.viewers, 'the others, not the agent itself');
        assert.equal(warning.severity, 'warning');
        assert.equal(warning.message, 'Ada is viewing this ticket');

        const joined = await h.nextEvent(a, 'agent:joined');
        h.assertKeys(joined, ['ticketId', 'agentId', 'agentName', 'since'], 'agent:joined');
        assert.deepEqual(joined, { ticketId: t, agentId: 'bob', agentName: 'Bob', since: ackB.viewers[1].since });

        for (const s of [a, b]) {
          const vu = await viewersUpdatedTo(s, 2);
          assert.equal(vu.ticketId, t);
          assert.deepEqual(vu.viewers, ackB.viewers);
        }
        await Promise.all([h.noEvent(b, 'agent:joined'), h.noEvent(a, 'collision:warning')]);
      });

      it('viewer lists are ordered by since, then agentId', async () => {
        const t = h.uid('t');
        const first = await connect();
        await view(first, t, { agentId: 'zed', agentName: 'Zed' });
        await h.separateTimestamps(3);
        // Several agents at (nearly) the same moment: ties on since are ordered by agentId.
        const ids = ['m5', 'm4', 'm3', 'm2', 'm1'];
        const sockets = await Promise.all(ids.map(() => connect()));
        await Promise.all(sockets.map((s, i) => h.emitAck(s, 'ticket:view', { ticketId: t, agentId: ids[i], agentName: ids[i] })));
        const list = await viewersOf(t);
        assert.equal(list.length, 6);
        assert.equal(list[0].agentId, 'zed', 'the earliest viewer first, whatever its id');
        h.assertViewerList(list);
        const last = await viewersUpdatedTo(first, 6);
        h.assertViewerList(last.viewers);
        assert.deepEqual(last.viewers, list);
      });

      it('ticket:typing sends agent:typing to the others and viewers:updated with status typing', async () => {
        const { a, b, t } = await adaThenBobView();
        await viewersUpdatedTo(a, 2);
        const ack = await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        assert.deepEqual(ack, { ok: true, ticketId: t });
        const typing = await h.nextEvent(a, 'agent:typing');
        h.assertKeys(typing, ['ticketId', 'agentId', 'agentName', 'warning', 'message'], 'agent:typing');
        assert.deepEqual(typing, { ticketId: t, agentId: 'bob', agentName: 'Bob', warning: 'COLLISION_RISK', message: 'Bob is typing...' });
        for (const s of [a, b]) {
          const vu = await viewersUpdatedTyping(s);
          h.assertViewerList(vu.viewers);
          const bob = vu.viewers.find((v) => v.agentId === 'bob');
          assert.equal(bob.status, 'typing');
          assert.ok(bob.typingStartedAt >= bob.since);
          assert.equal(vu.viewers.find((v) => v.agentId === 'ada').status, 'viewing');
        }
        await h.noEvent(b, 'agent:typing');
        const list = await viewersOf(t);
        assert.equal(list.find((v) => v.agentId === 'bob').status, 'typing');
      });

      it('a new viewer of a ticket where someone types gets a critical warning', async () => {
        const a = await connect();
        const b = await connect();
        const c = await connect();
        const t = h.uid('t');
        await view(a, t, ADA);
        await h.emitAck(a, 'ticket:typing', { ticketId: t, agentId: 'ada' });
        const ack = await h.emitAck(c, 'ticket:view', { ticketId: t, ...CY });
        assert.equal(ack.ok, true);
        const w = await h.nextEvent(c, 'collision:warning');
        h.assertKeys(w, ['ticketId', 'viewers', 'severity', 'message'], 'collision:warning');
        assert.equal(w.severity, 'critical');
        assert.equal(w.message, 'Ada is typing a reply');
        assert.deepEqual(w.viewers.map((v) => [v.agentId, v.status]), [['ada', 'typing']]);

        // Several others, one of them typing: still critical, and the warning lists all the others.
        await h.separateTimestamps(3);
        const ackB = await h.emitAck(b, 'ticket:view', { ticketId: t, ...BOB });
        assert.equal(ackB.ok, true);
        const w2 = await h.nextEvent(b, 'collision:warning');
        assert.equal(w2.severity, 'critical');
        assert.deepEqual(w2.viewers.map((v) => v.agentId), ['ada', 'cy']);
        h.assertViewerList(w2.viewers);
        assert.equal(typeof w2.message, 'string');
        assert.match(w2.message, /Ada/);
        assert.match(w2.message, /typing/);
      });

      it('a warning about several viewing agents is severity warning and names them', async () => {
        const [a, b, c] = await Promise.all([connect(), connect(), connect()]);
        const t = h.uid('t');
        await view(a, t, ADA);
        await h.separateTimestamps(3);
        await view(b, t, BOB);
        await h.separateTimestamps(3);
        await h.emitAck(c, 'ticket:view', { ticketId: t, ...CY });
        const w = await h.nextEvent(c, 'collision:warning');
        assert.equal(w.severity, 'warning');
        assert.deepEqual(w.viewers.map((v) => v.agentId), ['ada', 'bob']);
        assert.match(w.message, /Ada/);
        assert.match(w.message, /Bob/);
        assert.match(w.message, /viewing/);
      });

      it('repeated ticket:typing re-broadcasts nothing and keeps typingStartedAt', async () => {
        const { a, b, t } = await adaThenBobView();
        await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        await h.nextEvent(a, 'agent:typing');
        const vu = await viewersUpdatedTyping(a);
        const startedAt = vu.viewers.find((v) => v.agentId === 'bob').typingStartedAt;
        await viewersUpdatedTyping(b);
        h.clearEvents(a);
        h.clearEvents(b);
        await h.separateTimestamps(5);
        const ack = await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        assert.deepEqual(ack, { ok: true, ticketId: t });
        await Promise.all([h.noEvent(a, 'agent:typing'), h.noEvent(a, 'viewers:updated'), h.noEvent(b, 'viewers:updated')]);
        const bob = (await viewersOf(t)).find((v) => v.agentId === 'bob');
        assert.equal(bob.status, 'typing');
        assert.equal(bob.typingStartedAt, startedAt);
      });

      it('ticket:stop_typing sends agent:stopped_typing to the others and viewers:updated with status viewing', async () => {
        const { a, b, t } = await adaThenBobView();
        await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        await h.nextEvent(a, 'agent:typing');
        h.clearEvents(a, 'viewers:updated');
        const ack = await h.emitAck(b, 'ticket:stop_typing', { ticketId: t, agentId: 'bob' });
        assert.deepEqual(ack, { ok: true, ticketId: t });
        const stopped = await h.nextEvent(a, 'agent:stopped_typing');
        h.assertKeys(stopped, ['ticketId', 'agentId', 'agentName'], 'agent:stopped_typing');
        assert.deepEqual(stopped, { ticketId: t, agentId: 'bob', agentName: 'Bob' });
        const vu = await h.nextEvent(a, 'viewers:updated', { where: (p) => p.viewers.every((v) => v.status === 'viewing') });
        assert.deepEqual(vu.viewers.find((v) => v.agentId === 'bob').typingStartedAt, null);
        await h.noEvent(b, 'agent:stopped_typing');
        // stop_typing while only viewing still answers ok.
        assert.deepEqual(await h.emitAck(b, 'ticket:stop_typing', { ticketId: t, agentId: 'bob' }), { ok: true, ticketId: t });
        assert.deepEqual((await viewersOf(t)).map((v) => v.status), ['viewing', 'viewing']);
      });

      it('ticket:leave sends agent:left (reason left) to the rest of the room, not to the leaver', async () => {
        const { a, b, t } = await adaThenBobView();
        await viewersUpdatedTo(a, 2);
        const ack = await h.emitAck(b, 'ticket:leave', { ticketId: t, agentId: 'bob' });
        assert.deepEqual(ack, { ok: true, ticketId: t });
        const left = await h.nextEvent(a, 'agent:left');
        h.assertKeys(left, ['ticketId', 'agentId', 'agentName', 'reason'], 'agent:left');
        assert.deepEqual(left, { ticketId: t, agentId: 'bob', agentName: 'Bob', reason: 'left' });
        const vu = await viewersUpdatedTo(a, 1);
        assert.deepEqual(vu.viewers.map((v) => v.agentId), ['ada']);
        await h.noEvent(b, 'agent:left');
        assert.deepEqual((await viewersOf(t)).map((v) => v.agentId), ['ada']);

        // The leaver is out of the room and no longer viewing.
        h.clearEvents(b);
        await h.emitAck(a, 'ticket:typing', { ticketId: t, agentId: 'ada' });
        await Promise.all([h.noEvent(b, 'agent:typing'), h.noEvent(b, 'viewers:updated')]);
        h.assertAckError(await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' }), 'NOT_VIEWING');
        h.assertAckError(await h.emitAck(b, 'ticket:leave', { ticketId: t, agentId: 'bob' }), 'NOT_VIEWING');
      });

      it('the last viewer leaving empties the ticket', async () => {
        const a = await connect();
        const t = h.uid('t');
        await view(a, t, ADA);
        assert.equal((await h.emitAck(a, 'ticket:leave', { ticketId: t, agentId: 'ada' })).ok, true);
        assert.deepEqual(await viewersOf(t), []);
        // Viewing again starts anew.
        const ack = await h.emitAck(a, 'ticket:view', { ticketId: t, ...ADA });
        assert.equal(ack.viewers.length, 1);
      });

      it('NOT_VIEWING for typing, stop_typing and leave on a ticket this socket does not view as that agent', async () => {
        const a = await connect();
        const b = await connect();
        const t = h.uid('t');
        for (const ev of ['ticket:typing', 'ticket:stop_typing', 'ticket:leave']) {
          h.assertAckError(await h.emitAck(a, ev, { ticketId: t, agentId: 'ada' }), 'NOT_VIEWING');
        }
        await view(a, t, ADA);
        await view(b, t, BOB);
        // Socket a views as ada; bob views from another socket: a may not act as bob.
        for (const ev of ['ticket:typing', 'ticket:stop_typing', 'ticket:leave']) {
          h.assertAckError(await h.emitAck(a, ev, { ticketId: t, agentId: 'bob' }), 'NOT_VIEWING');
        }
        // Another ticket is another ticket.
        h.assertAckError(await h.emitAck(a, 'ticket:typing', { ticketId: h.uid('t'), agentId: 'ada' }), 'NOT_VIEWING');
        // A third socket of ada that does not view the ticket.
        const a2 = await connect();
        h.assertAckError(await h.emitAck(a2, 'ticket:typing', { ticketId: t, agentId: 'ada' }), 'NOT_VIEWING');
        assert.deepEqual((await viewersOf(t)).map((v) => [v.agentId, v.status]), [['ada', 'viewing'], ['bob', 'viewing']]);
      });

      it('INVALID_PAYLOAD comes before NOT_VIEWING', async () => {
        const a = await connect();
        h.assertAckError(await h.emitAck(a, 'ticket:typing', { ticketId: h.uid('t'), agentId: '' }), 'INVALID_PAYLOAD');
        h.assertAckError(await h.emitAck(a, 'ticket:leave', { ticketId: h.uid('t') }), 'INVALID_PAYLOAD');
      });

      it('disconnect sends agent:left with reason disconnected', async () => {
        const { a, b, t } = await adaThenBobView();
        await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        b.disconnect();
        const left = await h.nextEvent(a, 'agent:left');
        assert.deepEqual(left, { ticketId: t, agentId: 'bob', agentName: 'Bob', reason: 'disconnected' });
        await viewersUpdatedTo(a, 1);
        assert.deepEqual((await viewersOf(t)).map((v) => v.agentId), ['ada']);
      });

      it('a re-sent ticket:view (heartbeat) keeps since and sends no agent:joined or warning', async () => {
        const { a, b, t, ackA } = await adaThenBobView();
        await h.nextEvent(a, 'agent:joined');
        h.clearEvents(a);
        h.clearEvents(b);
        await h.separateTimestamps(5);
        const again = await h.emitAck(b, 'ticket:view', { ticketId: t, ...BOB });
        assert.equal(again.ok, true);
        const sinceA = ackA.viewers[0].since;
        assert.deepEqual(again.viewers.map((v) => v.since), [sinceA, again.viewers[1].since]);
        const firstB = (await viewersOf(t)).find((v) => v.agentId === 'bob');
        assert.equal(firstB.since, again.viewers[1].since);
        await Promise.all([h.noEvent(a, 'agent:joined'), h.noEvent(a, 'collision:warning'), h.noEvent(b, 'agent:joined')]);
        // since stays through typing and stopping too.
        await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        await h.emitAck(b, 'ticket:stop_typing', { ticketId: t, agentId: 'bob' });
        await h.emitAck(b, 'ticket:view', { ticketId: t, ...BOB });
        assert.deepEqual((await viewersOf(t)).map((v) => v.since), [sinceA, firstB.since]);
      });

      it('a socket switching agent on a ticket first leaves as the old agent', async () => {
        const o = await connect();
        const s = await connect();
        const t = h.uid('t');
        await view(o, t, CY);
        await view(s, t, ADA);
        await h.nextEvent(o, 'agent:joined');
        await viewersUpdatedTo(o, 2);
        h.clearEvents(s);
        const ack = await h.emitAck(s, 'ticket:view', { ticketId: t, ...BOB });
        assert.equal(ack.ok, true);
        assert.deepEqual(ack.viewers.map((v) => v.agentId), ['cy', 'bob']);
        const left = await h.nextEvent(o, 'agent:left');
        assert.deepEqual(left, { ticketId: t, agentId: 'ada', agentName: 'Ada', reason: 'left' });
        const joined = await h.nextEvent(o, 'agent:joined');
        assert.equal(joined.agentId, 'bob');
        await h.nextEvent(o, 'viewers:updated', { where: (p) => p.viewers.map((v) => v.agentId).join() === 'cy,bob' });
        assert.deepEqual((await viewersOf(t)).map((v) => v.agentId), ['cy', 'bob']);
        await h.noEvent(s, 'agent:left');
        h.assertAckError(await h.emitAck(s, 'ticket:typing', { ticketId: t, agentId: 'ada' }), 'NOT_VIEWING');
        assert.equal((await h.emitAck(s, 'ticket:typing', { ticketId: t, agentId: 'bob' })).ok, true);
      });

      describe('one agent with several tabs is one viewer', () => {
        it('a second tab: no agent:joined, no warning about itself, viewers:updated on that socket only', async () => {
          const a1 = await connect();
          const b = await connect();
          const a2 = await connect();
          const t = h.uid('t');
          const ackA = await view(a1, t, ADA);
          await h.separateTimestamps(3);
          await view(b, t, BOB);
          await viewersUpdatedTo(a1, 2);
          h.clearEvents(a1);
          h.clearEvents(b);
          await h.separateTimestamps(5);
          const ack = await h.emitAck(a2, 'ticket:view', { ticketId: t, ...ADA });
          assert.equal(ack.ok, true);
          assert.deepEqual(ack.viewers.map((v) => v.agentId), ['ada', 'bob']);
          assert.equal(ack.viewers[0].since, ackA.viewers[0].since, 'since is the earliest view');
          const vu = await h.nextEvent(a2, 'viewers:updated');
          assert.deepEqual(vu, { ticketId: t, viewers: ack.viewers });
          const w = await h.nextEvent(a2, 'collision:warning');
          assert.deepEqual(w.viewers.map((v) => v.agentId), ['bob'], 'a warning about the others only');
          assert.equal(w.message, 'Bob is viewing this ticket');
          await Promise.all([
            h.noEvent(b, 'agent:joined'),
            h.noEvent(a1, 'agent:joined'),
            h.noEvent(b, 'viewers:updated'),
            h.noEvent(a1, 'viewers:updated'),
            h.noEvent(b, 'collision:warning'),
            h.noEvent(a1, 'collision:warning'),
            h.noEvent(a2, 'collision:warning'),
          ]);
          assert.equal((await viewersOf(t)).length, 2);
        });

        it('a second tab alone on a ticket gets viewers:updated and no collision:warning', async () => {
          const a1 = await connect();
          const a2 = await connect();
          const t = h.uid('t');
          await view(a1, t, ADA);
          const ack = await h.emitAck(a2, 'ticket:view', { ticketId: t, ...ADA });
          assert.equal(ack.viewers.length, 1);
          await h.nextEvent(a2, 'viewers:updated');
          await Promise.all([h.noEvent(a2, 'collision:warning'), h.noEvent(a1, 'agent:joined'), h.noEvent(a2, 'agent:joined')]);
        });

        it('the room events reach every tab; typing excludes all the typist’s tabs', async () => {
          const { a1, a2, b, t } = await twoAdaTabsThenBobView();
          await h.nextEvent(a1, 'agent:joined');
          await h.nextEvent(a2, 'agent:joined');
          await h.emitAck(a2, 'ticket:typing', { ticketId: t, agentId: 'ada' });
          await h.nextEvent(b, 'agent:typing');
          await viewersUpdatedTyping(a1);
          await Promise.all([h.noEvent(a1, 'agent:typing'), h.noEvent(a2, 'agent:typing')]);
          await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
          await h.nextEvent(a1, 'agent:typing', { where: (p) => p.agentId === 'bob' });
          await h.nextEvent(a2, 'agent:typing', { where: (p) => p.agentId === 'bob' });
        });

        it('the viewer types while any tab types', async () => {
          const { a1, a2, b, t } = await twoAdaTabsThenBobView();
          await h.emitAck(a1, 'ticket:typing', { ticketId: t, agentId: 'ada' });
          await h.nextEvent(b, 'agent:typing');
          const startedAt = (await viewersOf(t)).find((v) => v.agentId === 'ada').typingStartedAt;
          h.clearEvents(b);
          await h.separateTimestamps(5);
          // A second tab starting to type: the viewer already types.
          await h.emitAck(a2, 'ticket:typing', { ticketId: t, agentId: 'ada' });
          assert.equal((await viewersOf(t)).find((v) => v.agentId === 'ada').typingStartedAt, startedAt);
          // The first tab stops: the second still types.
          await h.emitAck(a1, 'ticket:stop_typing', { ticketId: t, agentId: 'ada' });
          await Promise.all([h.noEvent(b, 'agent:typing'), h.noEvent(b, 'agent:stopped_typing')]);
          const ada = (await viewersOf(t)).find((v) => v.agentId === 'ada');
          assert.equal(ada.status, 'typing');
          await h.emitAck(a2, 'ticket:stop_typing', { ticketId: t, agentId: 'ada' });
          const stopped = await h.nextEvent(b, 'agent:stopped_typing');
          assert.equal(stopped.agentId, 'ada');
          assert.equal((await viewersOf(t)).find((v) => v.agentId === 'ada').status, 'viewing');
        });

        it('leaving or disconnecting one tab keeps the viewer; the last tab’s disconnect is reason disconnected', async () => {
          const a1 = await connect();
          const a2 = await connect();
          const a3 = await connect();
          const b = await connect();
          const t = h.uid('t');
          const ackA = await view(a1, t, ADA);
          await view(a2, t, ADA);
          await view(a3, t, ADA);
          await view(b, t, BOB);
          assert.deepEqual(await h.emitAck(a1, 'ticket:leave', { ticketId: t, agentId: 'ada' }), { ok: true, ticketId: t });
          a2.disconnect();
          await Promise.all([h.noEvent(b, 'agent:left'), h.noEvent(a3, 'agent:left')]);
          const list = await viewersOf(t);
          assert.deepEqual(list.map((v) => v.agentId), ['ada', 'bob']);
          assert.equal(list[0].since, ackA.viewers[0].since);
          a3.disconnect();
          const left = await h.nextEvent(b, 'agent:left');
          assert.deepEqual(left, { ticketId: t, agentId: 'ada', agentName: 'Ada', reason: 'disconnected' });
          await h.noEvent(a1, 'agent:left', 100);
          assert.deepEqual((await viewersOf(t)).map((v) => v.agentId), ['bob']);
        });
      });
    });
  }
});
