'use strict';

// Contract section 2: replies, error codes, identifiers, precedence, limits.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const h = require('../helpers');

const TOKEN = 's3cret';
const CONFIG = {
  typing_timeout: 10000,
  internal_token: TOKEN,
  entity_types: ['contact', 'deal'],
  events_per_second: 0,
  max_tickets_per_socket: 3,
  max_timelines_per_socket: 3,
  max_payload: 10000,
};

describe('replies and errors (section 2)', () => {
  const server = h.serverForDescribe(CONFIG);
  afterEach(() => h.closeAllSockets());

  const viewers = async (ticketId) => {
    const res = await h.http('GET', `${server.internalUrl}/v1/tickets/${encodeURIComponent(ticketId)}/viewers`, { token: TOKEN });
    assert.equal(res.status, 200, res.text);
    return res.json.viewers;
  };

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const connect = () => h.connect(server.url, { transports: [transport] });
      const view = (ticketId, agentId = 'a1', agentName = 'Ada') => ({ ticketId, agentId, agentName });

      it('a successful ack is { ok: true, ticketId, viewers }', async () => {
        const s = await connect();
        const t = h.uid('t');
        const ack = await h.emitAck(s, 'ticket:view', view(t));
        h.assertKeys(ack, ['ok', 'ticketId', 'viewers'], 'ticket:view ack');
        assert.equal(ack.ok, true);
        assert.equal(ack.ticketId, t);
        h.assertViewerList(ack.viewers);
      });

      it('a failed ack is { ok: false, error: { code, message } } and no *:error event is sent as well', async () => {
        const s = await connect();
        h.assertAckError(await h.emitAck(s, 'ticket:view', 'not an object'), 'INVALID_PAYLOAD');
        h.assertAckError(await h.emitAck(s, 'timeline:subscribe', 'not an object'), 'INVALID_PAYLOAD');
        h.assertAckError(await h.emitAck(s, 'ticket:typing', { ticketId: h.uid('t'), agentId: 'a1' }), 'NOT_VIEWING');
        await Promise.all([h.noEvent(s, 'ticket:error'), h.noEvent(s, 'timeline:error')]);
      });

      it('without an ack a ticket failure arrives as ticket:error { event, code, message } to that socket alone', async () => {
        const s = await connect();
        const other = await connect();
        s.emit('ticket:view', 'not an object');
        const err = await h.nextEvent(s, 'ticket:error');
        h.assertKeys(err, ['event', 'code', 'message'], 'ticket:error');
        assert.equal(err.event, 'ticket:view');
        assert.equal(err.code, 'INVALID_PAYLOAD');
        assert.equal(typeof err.message, 'string');
        assert.ok(err.message.length > 0);

        s.emit('ticket:leave', { ticketId: h.uid('t'), agentId: 'a1' });
        const err2 = await h.nextEvent(s, 'ticket:error');
        h.assertKeys(err2, ['event', 'code', 'message'], 'ticket:error');
        assert.deepEqual([err2.event, err2.code], ['ticket:leave', 'NOT_VIEWING']);
        await h.noEvent(other, 'ticket:error');
        assert.equal(s.connected, true);
      });

      it('without an ack a timeline failure arrives as timeline:error { event, code, message }', async () => {
        const s = await connect();
        s.emit('timeline:subscribe', { entityType: 'task', entityId: '1' });
        const err = await h.nextEvent(s, 'timeline:error');
        h.assertKeys(err, ['event', 'code', 'message'], 'timeline:error');
        assert.deepEqual([err.event, err.code], ['timeline:subscribe', 'FORBIDDEN']);
        s.emit('timeline:unsubscribe', { entityType: 'contact' });
        const err2 = await h.nextEvent(s, 'timeline:error');
        h.assertKeys(err2, ['event', 'code', 'message'], 'timeline:error');
        assert.deepEqual([err2.event, err2.code], ['timeline:unsubscribe', 'INVALID_PAYLOAD']);
        await h.noEvent(s, 'ticket:error', 100);
      });

      describe('INVALID_PAYLOAD', () => {
        const ok = { ticketId: 'x', agentId: 'a1', agentName: 'Ada' };
        const cases = [
          ['a string payload', 'hello'],
          ['a number payload', 42],
          ['a null payload', null],
          ['an array payload', [ok]],
          ['a boolean payload', true],
          ['no payload at all', h.NO_PAYLOAD],
          ['missing ticketId', { agentId: 'a1', agentName: 'Ada' }],
          ['missing agentId', { ticketId: 'x', agentName: 'Ada' }],
          ['missing agentName', { ticketId: 'x', agentId: 'a1' }],
          ['ticketId null', { ...ok, ticketId: null }],
          ['ticketId boolean', { ...ok, ticketId: true }],
          ['ticketId object', { ...ok, ticketId: { id: 1 } }],
          ['ticketId array', { ...ok, ticketId: ['x'] }],
          ['ticketId binary', { ...ok, ticketId: Buffer.from('x') }],
          ['agentName a number', { ...ok, agentName: 5 }],
          ['empty ticketId', { ...ok, ticketId: '' }],
          ['empty agentId', { ...ok, agentId: '' }],
          ['empty agentName', { ...ok, agentName: '' }],
          ['ticketId of 129 characters', { ...ok, ticketId: 't'.repeat(129) }],
          ['agentId of 129 characters (astral code points)', { ...ok, agentId: '😀'.repeat(129) }],
          ['ticketId with NUL', { ...ok, ticketId: 'a\u0000b' }],
          ['ticketId with a newline', { ...ok, ticketId: 'a\nb' }],
          ['agentId with DEL', { ...ok, agentId: 'a\u007f' }],
          ['agentId with a C1 control (U+0085)', { ...ok, agentId: 'a\u0085' }],
          ['agentName with a tab', { ...ok, agentName: 'Ada\tL' }],
          ['agentName with U+009F', { ...ok, agentName: 'Ada\u009f' }],
          ['agentName of 201 characters', { ...ok, agentName: 'n'.repeat(201) }],
          ['agentName of spaces only', { ...ok, agentName: '   ' }],
          ['agentName of Unicode white space only', { ...ok, agentName: '\u00a0\u2003\u3000' }],
          ['a non-integral number id', { ...ok, ticketId: 1.5 }],
          ['an id of 2^53', { ...ok, ticketId: 2 ** 53 }],
          ['an id of -(2^53)', { ...ok, agentId: -(2 ** 53) }],
          ['an id of 1e21', { ...ok, agentId: 1e21 }],
        ];
        for (const [name, payload] of cases) {
          it(`ticket:view with ${name}`, async () => {
            const s = await connect();
            h.assertAckError(await h.emitAck(s, 'ticket:view', payload), 'INVALID_PAYLOAD');
            assert.equal(s.connected, true);
          });
        }

        const tlCases = [
          ['a string payload', 'contact'],
          ['missing entityType', { entityId: '1' }],
          ['missing entityId', { entityType: 'contact' }],
          ['entityType a number', { entityType: 5, entityId: '1' }],
          ['empty entityType', { entityType: '', entityId: '1' }],
          ['entityType with upper case', { entityType: 'Contact', entityId: '1' }],
          ['entityType starting with a digit', { entityType: '1contact', entityId: '1' }],
          ['entityType starting with _', { entityType: '_contact', entityId: '1' }],
          ['entityType with a space', { entityType: 'con tact', entityId: '1' }],
          ['entityType with a dot', { entityType: 'con.tact', entityId: '1' }],
          ['entityType of 33 characters', { entityType: 'c'.repeat(33), entityId: '1' }],
          ['empty entityId', { entityType: 'contact', entityId: '' }],
          ['entityId of 129 characters', { entityType: 'contact', entityId: 'e'.repeat(129) }],
          ['entityId with a control character', { entityType: 'contact', entityId: 'e\u0001' }],
          ['entityId non-integral', { entityType: 'contact', entityId: 2.25 }],
          ['entityId beyond 2^53-1', { entityType: 'contact', entityId: 2 ** 53 + 2 }],
        ];
        for (const [name, payload] of tlCases) {
          it(`timeline:subscribe with ${name}`, async () => {
            const s = await connect();
            h.assertAckError(await h.emitAck(s, 'timeline:subscribe', payload), 'INVALID_PAYLOAD');
            await h.noEvent(s, 'timeline:subscribed', 100);
          });
        }

        it('ticket:typing / stop_typing / leave and timeline:unsubscribe validate their payloads too', async () => {
          const s = await connect();
          for (const ev of ['ticket:typing', 'ticket:stop_typing', 'ticket:leave']) {
            h.assertAckError(await h.emitAck(s, ev, 'x'), 'INVALID_PAYLOAD');
            h.assertAckError(await h.emitAck(s, ev, { ticketId: 't1' }), 'INVALID_PAYLOAD');
            h.assertAckError(await h.emitAck(s, ev, { agentId: 'a1' }), 'INVALID_PAYLOAD');
            h.assertAckError(await h.emitAck(s, ev, { ticketId: 't1', agentId: '' }), 'INVALID_PAYLOAD');
            h.assertAckError(await h.emitAck(s, ev, { ticketId: 0.5, agentId: 'a1' }), 'INVALID_PAYLOAD');
          }
          h.assertAckError(await h.emitAck(s, 'timeline:unsubscribe', { entityType: 'BAD', entityId: '1' }), 'INVALID_PAYLOAD');
          h.assertAckError(await h.emitAck(s, 'timeline:unsubscribe', { entityType: 'contact', entityId: '' }), 'INVALID_PAYLOAD');
        });

        it('boundaries are accepted: 128-character ids, 200-character names, astral code points', async () => {
          const s = await connect();
          const t = `${h.uid('t')}-`.padEnd(128, 'x');
          const agentId = '😀'.repeat(128); // 128 code points, 256 UTF-16 units
          const agentName = '名'.repeat(199) + '😀'; // 200 code points
          const ack = await h.emitAck(s, 'ticket:view', { ticketId: t, agentId, agentName });
          assert.equal(ack.ok, true, JSON.stringify(ack));
          assert.equal(ack.ticketId, t);
          assert.equal(ack.viewers[0].agentId, agentId);
          assert.equal(ack.viewers[0].agentName, agentName);
          const ack2 = await h.emitAck(s, 'ticket:view', { ticketId: h.uid('t'), agentId: 'a1', agentName: ' Ada Lovelace ' });
          assert.equal(ack2.ok, true, JSON.stringify(ack2));
          assert.equal(ack2.viewers[0].agentName, ' Ada Lovelace ');
          const ack3 = await h.emitAck(s, 'timeline:subscribe', { entityType: 'contact', entityId: 'e'.repeat(128) });
          assert.equal(ack3.ok, true, JSON.stringify(ack3));
        });

        it('a bad payload changes no state and does not disconnect', async () => {
          const s = await connect();
          const t = h.uid('t');
          h.assertAckError(await h.emitAck(s, 'ticket:view', { ticketId: t, agentId: 'a1', agentName: '' }), 'INVALID_PAYLOAD');
          h.assertAckError(await h.emitAck(s, 'ticket:view', { ticketId: t, agentId: 'a1\u0000', agentName: 'Ada' }), 'INVALID_PAYLOAD');
          assert.deepEqual(await viewers(t), []);
          await h.noEvent(s, 'viewers:updated', 100);

          // Viewing: a bad typing event neither types nor leaves.
          assert.equal((await h.emitAck(s, 'ticket:view', { ticketId: t, agentId: 'a1', agentName: 'Ada' })).ok, true);
          await h.nextEvent(s, 'viewers:updated');
          h.assertAckError(await h.emitAck(s, 'ticket:typing', { ticketId: t, agentId: 1.5 }), 'INVALID_PAYLOAD');
          h.assertAckError(await h.emitAck(s, 'ticket:leave', { ticketId: t }), 'INVALID_PAYLOAD');
          // A view with a bad name from the same socket does not rename or remove the viewer.
          h.assertAckError(await h.emitAck(s, 'ticket:view', { ticketId: t, agentId: 'a1', agentName: ' ' }), 'INVALID_PAYLOAD');
          const list = await viewers(t);
          assert.equal(list.length, 1);
          assert.equal(list[0].agentName, 'Ada');
          assert.equal(list[0].status, 'viewing');
          await h.noEvent(s, 'viewers:updated', 100);

          // A bad subscribe subscribes nothing.
          const e = h.uid('e');
          h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'Contact', entityId: e }), 'INVALID_PAYLOAD');
          const pub = await h.http('POST', `${server.internalUrl}/v1/timeline/contact/${e}/items`, { token: TOKEN, body: { id: 1 } });
          assert.equal(pub.status, 202);
          await h.noEvent(s, 'timeline:new_item', 200);
          assert.equal(s.connected, true);
          assert.equal((await h.emitAck(s, 'ticket:typing', { ticketId: t, agentId: 'a1' })).ok, true);
        });
      });

      it('integer ids are turned into decimal strings', async () => {
        const s = await connect();
        const other = await connect();
        const n = 1e9 + Math.floor(Math.random() * 1e9);
        const ack = await h.emitAck(s, 'ticket:view', { ticketId: n, agentId: 7, agentName: 'Ada' });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        assert.equal(ack.ticketId, String(n));
        assert.equal(ack.viewers[0].agentId, '7');
        const vu = await h.nextEvent(s, 'viewers:updated');
        assert.equal(vu.ticketId, String(n));

        // The number and its decimal string are the same ticket and agent.
        await h.separateTimestamps(5); // a later since, so the order of the list is known
        const ack2 = await h.emitAck(other, 'ticket:view', { ticketId: String(n), agentId: -9007199254740991, agentName: 'Bob' });
        assert.equal(ack2.ok, true, JSON.stringify(ack2));
        assert.deepEqual(ack2.viewers.map((v) => v.agentId), ['7', '-9007199254740991']);
        const joined = await h.nextEvent(s, 'agent:joined');
        assert.equal(joined.ticketId, String(n));
        assert.equal(joined.agentId, '-9007199254740991');
        const typing = await h.emitAck(s, 'ticket:typing', { ticketId: String(n), agentId: '7' });
        assert.deepEqual(typing, { ok: true, ticketId: String(n) });
        const at = await h.nextEvent(other, 'agent:typing');
        assert.equal(at.agentId, '7');
        assert.equal(at.ticketId, String(n));
        assert.deepEqual((await viewers(String(n))).map((v) => v.agentId), ['7', '-9007199254740991']);

        const sub = await h.emitAck(s, 'timeline:subscribe', { entityType: 'deal', entityId: 9007199254740991 });
        assert.deepEqual(sub, h.withPosition({ ok: true, entityType: 'deal', entityId: '9007199254740991' }, { offset: 0, epoch: h.epochOf(sub, 'ack') }));
        const subscribed = await h.nextEvent(s, 'timeline:subscribed');
        assert.deepEqual(subscribed, { entityType: 'deal', entityId: '9007199254740991' });
        const zero = await h.emitAck(s, 'timeline:subscribe', { entityType: 'deal', entityId: 0 });
        assert.equal(zero.entityId, '0');
      });

      it('unknown extra fields are ignored', async () => {
        const s = await connect();
        const t = h.uid('t');
        const ack = await h.emitAck(s, 'ticket:view', { ticketId: t, agentId: 'a1', agentName: 'Ada', color: 'red', nested: { x: [1] }, ts: 5 });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        h.assertKeys(ack, ['ok', 'ticketId', 'viewers']);
        h.assertKeys(ack.viewers[0], h.VIEWER_KEYS, 'viewer');
        const typing = await h.emitAck(s, 'ticket:typing', { ticketId: t, agentId: 'a1', extra: true });
        assert.deepEqual(typing, { ok: true, ticketId: t });
        // (`since` is a field of v2's timeline:subscribe, see recovery.test.js.)
        const sub = await h.emitAck(s, 'timeline:subscribe', { entityType: 'contact', entityId: 'x', from: 5, nested: { since: 5 } });
        assert.deepEqual(sub, h.withPosition({ ok: true, entityType: 'contact', entityId: 'x' }, { offset: 0, epoch: h.epochOf(sub, 'ack') }));
      });

      describe('FORBIDDEN', () => {
        it('an entity type off the allow-list is FORBIDDEN', async () => {
          const s = await connect();
          h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'task', entityId: '1' }), 'FORBIDDEN');
          h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'c'.repeat(32), entityId: '1' }), 'FORBIDDEN');
          await h.noEvent(s, 'timeline:subscribed', 100);
        });

        it('INVALID_PAYLOAD comes before FORBIDDEN', async () => {
          const s = await connect();
          h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'task', entityId: '' }), 'INVALID_PAYLOAD');
          h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'task' }), 'INVALID_PAYLOAD');
          h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'task', entityId: 1.5 }), 'INVALID_PAYLOAD');
        });
      });

      describe('LIMIT_EXCEEDED', () => {
        it('max_tickets_per_socket: the 4th ticket is refused; re-viewing one is not; leaving makes room', async () => {
          const s = await connect();
          const ts = [h.uid('t'), h.uid('t'), h.uid('t'), h.uid('t'), h.uid('t')];
          for (const t of ts.slice(0, 3)) assert.equal((await h.emitAck(s, 'ticket:view', view(t))).ok, true);
          h.assertAckError(await h.emitAck(s, 'ticket:view', view(ts[3])), 'LIMIT_EXCEEDED');
          assert.deepEqual(await viewers(ts[3]), []);
          // Refreshing a ticket already viewed (heartbeat) is no new ticket.
          assert.equal((await h.emitAck(s, 'ticket:view', view(ts[0]))).ok, true);
          // The limit is per socket.
          const other = await connect();
          assert.equal((await h.emitAck(other, 'ticket:view', view(ts[3], 'b1', 'Bob'))).ok, true);
          assert.equal((await h.emitAck(s, 'ticket:leave', { ticketId: ts[1], agentId: 'a1' })).ok, true);
          assert.equal((await h.emitAck(s, 'ticket:view', view(ts[4]))).ok, true);
          h.assertAckError(await h.emitAck(s, 'ticket:view', view(ts[1])), 'LIMIT_EXCEEDED');
          assert.equal(s.connected, true);
        });

        it('INVALID_PAYLOAD comes before LIMIT_EXCEEDED for tickets', async () => {
          const s = await connect();
          for (let i = 0; i < 3; i++) assert.equal((await h.emitAck(s, 'ticket:view', view(h.uid('t')))).ok, true);
          h.assertAckError(await h.emitAck(s, 'ticket:view', { ticketId: h.uid('t'), agentId: 'a1', agentName: '' }), 'INVALID_PAYLOAD');
          h.assertAckError(await h.emitAck(s, 'ticket:view', view(h.uid('t'))), 'LIMIT_EXCEEDED');
        });

        it('max_timelines_per_socket: the 4th timeline is refused with the error only; re-subscribing is not; unsubscribing makes room', async () => {
          const s = await connect();
          const es = [h.uid('e'), h.uid('e'), h.uid('e'), h.uid('e')];
          for (const e of es.slice(0, 3)) {
            assert.equal((await h.emitAck(s, 'timeline:subscribe', { entityType: 'contact', entityId: e })).ok, true);
            await h.nextEvent(s, 'timeline:subscribed');
          }
          h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'contact', entityId: es[3] }), 'LIMIT_EXCEEDED');
          await h.noEvent(s, 'timeline:subscribed', 150);
          // Nothing was subscribed.
          await h.http('POST', `${server.internalUrl}/v1/timeline/contact/${es[3]}/items`, { token: TOKEN, body: { id: 1 } });
          await h.noEvent(s, 'timeline:new_item', 150);
          // The same timeline again is one subscription, not a new one.
          assert.equal((await h.emitAck(s, 'timeline:subscribe', { entityType: 'contact', entityId: es[0] })).ok, true);
          // Same id under another type is another timeline.
          h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'deal', entityId: es[0] }), 'LIMIT_EXCEEDED');
          assert.equal((await h.emitAck(s, 'timeline:unsubscribe', { entityType: 'contact', entityId: es[1] })).ok, true);
          assert.equal((await h.emitAck(s, 'timeline:subscribe', { entityType: 'contact', entityId: es[3] })).ok, true);
        });

        it('INVALID_PAYLOAD and FORBIDDEN come before LIMIT_EXCEEDED for timelines', async () => {
          const s = await connect();
          for (let i = 0; i < 3; i++) assert.equal((await h.emitAck(s, 'timeline:subscribe', { entityType: 'deal', entityId: h.uid('e') })).ok, true);
          h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'task', entityId: h.uid('e') }), 'FORBIDDEN');
          h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'deal', entityId: '' }), 'INVALID_PAYLOAD');
          h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'deal', entityId: h.uid('e') }), 'LIMIT_EXCEEDED');
        });
      });

      describe('UNKNOWN_EVENT', () => {
        it('an undefined event with an ack answers UNKNOWN_EVENT', async () => {
          const s = await connect();
          h.assertAckError(await h.emitAck(s, 'ticket:delete', { ticketId: 't' }), 'UNKNOWN_EVENT');
          h.assertAckError(await h.emitAck(s, 'whatever', h.NO_PAYLOAD), 'UNKNOWN_EVENT');
          h.assertAckError(await h.emitAck(s, 'timeline:publish', 'x'), 'UNKNOWN_EVENT');
          await Promise.all([h.noEvent(s, 'ticket:error', 150), h.noEvent(s, 'timeline:error', 150)]);
          assert.equal(s.connected, true);
        });

        it('an undefined event without an ack is ignored and the connection stays', async () => {
          const s = await connect();
          s.emit('ticket:delete', { ticketId: 't' });
          s.emit('whatever');
          await h.quietPeriod(300); // no reply arrives
          assert.deepEqual(h.eventsOf(s), [], 'no reply to an unknown event without ack');
          assert.equal(s.connected, true);
          assert.equal((await h.emitAck(s, 'ticket:view', view(h.uid('t')))).ok, true);
        });
      });

      describe('max_payload', () => {
        it('a message larger than max_payload closes that connection only', async () => {
          const bystander = await connect();
          const t = h.uid('t');
          assert.equal((await h.emitAck(bystander, 'ticket:view', view(t, 'b1', 'Bob'))).ok, true);
          const s = await connect();
          // Below the limit is fine.
          const small = await h.emitAck(s, 'ticket:view', { ...view(t), pad: 'p'.repeat(5000) });
          assert.equal(small.ok, true);
          await h.nextEvent(bystander, 'agent:joined');
          s.emit('ticket:typing', { ticketId: t, agentId: 'a1', pad: 'p'.repeat(30000) });
          await h.disconnected(s, 5000);
          assert.equal(s.connected, false);
          await h.noEvent(bystander, 'agent:typing', 200);
          assert.equal(bystander.connected, true);
          const ack = await h.emitAck(bystander, 'ticket:typing', { ticketId: t, agentId: 'b1' });
          assert.equal(ack.ok, true);
        });
      });
    });
  }
});

describe('RATE_LIMITED (events_per_second 5, burst 10)', () => {
  const server = h.serverForDescribe({ ...CONFIG, events_per_second: 5 });
  afterEach(() => h.closeAllSockets());

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const connect = () => h.connect(server.url, { transports: [transport] });

      it('the bucket starts full: 10 events pass, then some of 15 are RATE_LIMITED', async () => {
        const s = await connect();
        const t = h.uid('t');
        const payload = { ticketId: t, agentId: 'a1', agentName: 'Ada' };
        const acks = await Promise.all(Array.from({ length: 15 }, () => h.emitAck(s, 'ticket:view', payload)));
        for (let i = 0; i < 10; i++) assert.equal(acks[i].ok, true, `event ${i + 1}: ${JSON.stringify(acks[i])}`);
        const limited = acks.filter((a) => !a.ok);
        assert.ok(limited.length >= 1, `expected some RATE_LIMITED among ${JSON.stringify(acks)}`);
        for (const a of limited) h.assertAckError(a, 'RATE_LIMITED');
        assert.equal(s.connected, true);
      });

      it('RATE_LIMITED comes before INVALID_PAYLOAD, and arrives as ticket:error without an ack', async () => {
        const s = await connect();
        const payload = { ticketId: h.uid('t'), agentId: 'a1', agentName: 'Ada' };
        const burst = Array.from({ length: 14 }, () => h.emitAck(s, 'ticket:view', payload));
        const bad = h.emitAck(s, 'ticket:view', 'not an object');
        s.emit('timeline:subscribe', { entityType: 'contact', entityId: '1' });
        await Promise.all(burst);
        h.assertAckError(await bad, 'RATE_LIMITED');
        const err = await h.nextEvent(s, 'timeline:error');
        assert.deepEqual([err.event, err.code], ['timeline:subscribe', 'RATE_LIMITED']);
        h.assertKeys(err, ['event', 'code', 'message']);
      });

      it('unknown events draw from the bucket too', async () => {
        const s = await connect();
        const unknown = Array.from({ length: 12 }, () => h.emitAck(s, 'no:such:event', {}));
        const view = h.emitAck(s, 'ticket:view', { ticketId: h.uid('t'), agentId: 'a1', agentName: 'Ada' });
        const results = await Promise.all(unknown);
        assert.equal(results[0].error.code, 'UNKNOWN_EVENT');
        h.assertAckError(await view, 'RATE_LIMITED');
      });

      it('the bucket refills and is per socket', async () => {
        const s = await connect();
        const other = await connect();
        const payload = { ticketId: h.uid('t'), agentId: 'a1', agentName: 'Ada' };
        await Promise.all(Array.from({ length: 14 }, () => h.emitAck(s, 'ticket:view', payload)));
        const ack = await h.emitAck(other, 'ticket:view', { ...payload, agentId: 'b1', agentName: 'Bob' });
        assert.equal(ack.ok, true, 'another socket has its own bucket');
        await h.eventually(async () => (await h.emitAck(s, 'ticket:view', payload)).ok, { timeoutMs: 3000, intervalMs: 250, message: 'bucket refill' });
      });
    });
  }
});
