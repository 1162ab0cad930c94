'use strict';

// Contract section 4: live timelines, and their delivery from the internal API (section 5).
// v2 (section 4.1) adds `offset` and `epoch` to the events, the publish replies
// and the subscribe ack: `h.withPosition(v1 shape, { offset, epoch })` is the
// exact shape for the target (the peer implements v1). Recovery with `since`
// is tested in recovery.test.js.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const h = require('../helpers');

const TOKEN = 's3cret';
const CONFIG = { internal_token: TOKEN, entity_types: ['contact', 'deal'], events_per_second: 0, max_timelines_per_socket: 3 };

describe('live timelines (section 4)', () => {
  const server = h.serverForDescribe(CONFIG);
  afterEach(() => h.closeAllSockets());

  const api = (method, path, opts = {}) => h.http(method, `${server.internalUrl}${path}`, { token: TOKEN, ...opts });
  const publishItem = async (type, id, item) => {
    const res = await api('POST', `/v1/timeline/${type}/${encodeURIComponent(id)}/items`, { body: item });
    assert.equal(res.status, 202, res.text);
    return res;
  };

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const connect = () => h.connect(server.url, { transports: [transport] });
      // Subscribes; resolves with the ack (its `epoch` is the one the timeline's next event carries).
      const subscribe = async (s, entityType, entityId) => {
        const ack = await h.emitAck(s, 'timeline:subscribe', { entityType, entityId });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        await h.nextEvent(s, 'timeline:subscribed', { where: (p) => p.entityType === entityType && p.entityId === String(entityId) });
        return ack;
      };

      it('timeline:subscribe answers timeline:subscribed and the ack', async () => {
        const s = await connect();
        const e = h.uid('e');
        const ack = await h.emitAck(s, 'timeline:subscribe', { entityType: 'contact', entityId: e });
        // Nothing published yet: offset 0, with the epoch the first event will carry.
        assert.deepEqual(ack, h.withPosition({ ok: true, entityType: 'contact', entityId: e }, { offset: 0, epoch: h.epochOf(ack, 'ack') }));
        const ev = await h.nextEvent(s, 'timeline:subscribed');
        h.assertKeys(ev, ['entityType', 'entityId'], 'timeline:subscribed');
        assert.deepEqual(ev, { entityType: 'contact', entityId: e });
      });

      it('timeline:new_item reaches subscribers with { entityType, entityId, item }', async () => {
        const s1 = await connect();
        const s2 = await connect();
        const e = h.uid('e');
        const epoch = h.epochOf(await subscribe(s1, 'contact', e), 'ack');
        await subscribe(s2, 'contact', e);
        const item = { id: 17, kind: 'note', body: 'hé 😀', nested: { list: [1, null, true] } };
        const res = await publishItem('contact', e, item);
        h.assertKeys(res.json, h.withPositionKeys(['delivered']));
        assert.deepEqual(res.json, h.withPosition({ delivered: true }, { offset: 1, epoch }));
        for (const s of [s1, s2]) {
          const ev = await h.nextEvent(s, 'timeline:new_item');
          h.assertKeys(ev, h.withPositionKeys(['entityType', 'entityId', 'item']), 'timeline:new_item');
          assert.deepEqual(ev, h.withPosition({ entityType: 'contact', entityId: e, item }, { offset: 1, epoch }));
        }
        const res2 = await publishItem('contact', e, { id: 'str-id' });
        assert.deepEqual(res2.json, h.withPosition({ delivered: true }, { offset: 2, epoch }));
        assert.deepEqual(await h.nextEvent(s1, 'timeline:new_item'), h.withPosition({ entityType: 'contact', entityId: e, item: { id: 'str-id' } }, { offset: 2, epoch }));
      });

      it('timeline:item_updated carries { entityType, entityId, itemId, item }', async () => {
        const s = await connect();
        const e = h.uid('e');
        const epoch = h.epochOf(await subscribe(s, 'deal', e), 'ack');
        const res = await api('PUT', `/v1/timeline/deal/${e}/items/42`, { body: { id: 42, status: 'won' } });
        assert.equal(res.status, 202, res.text);
        assert.deepEqual(res.json, h.withPosition({ delivered: true }, { offset: 1, epoch }));
        const ev = await h.nextEvent(s, 'timeline:item_updated');
        h.assertKeys(ev, h.withPositionKeys(['entityType', 'entityId', 'itemId', 'item']), 'timeline:item_updated');
        assert.deepEqual(ev, h.withPosition({ entityType: 'deal', entityId: e, itemId: '42', item: { id: 42, status: 'won' } }, { offset: 1, epoch }));
        // An item without an id is fine for an update.
        const res2 = await api('PUT', `/v1/timeline/deal/${e}/items/it-9`, { body: { status: 'lost' } });
        assert.equal(res2.status, 202, res2.text);
        assert.deepEqual(res2.json, h.withPosition({ delivered: true }, { offset: 2, epoch }));
        assert.deepEqual(await h.nextEvent(s, 'timeline:item_updated'), h.withPosition({ entityType: 'deal', entityId: e, itemId: 'it-9', item: { status: 'lost' } }, { offset: 2, epoch }));
      });

      it('timeline:refresh carries { entityType, entityId, reason }, reason a string or null', async () => {
        const s = await connect();
        const e = h.uid('e');
        const epoch = h.epochOf(await subscribe(s, 'contact', e), 'ack');
        const path = `/v1/timeline/contact/${e}/refresh`;
        const bodies = [
          [{ body: { reason: 'merged' } }, 'merged'],
          [{ body: { reason: null } }, null],
          [{ body: {} }, null],
          [{}, null], // no body at all
          [{ raw: '' }, null], // an empty body
        ];
        for (const [i, [opts, reason]] of bodies.entries()) {
          const position = { offset: i + 1, epoch };
          const res = await api('POST', path, opts);
          assert.equal(res.status, 202, `${JSON.stringify(opts)}: ${res.text}`);
          assert.deepEqual(res.json, h.withPosition({ delivered: true }, position));
          const ev = await h.nextEvent(s, 'timeline:refresh');
          h.assertKeys(ev, h.withPositionKeys(['entityType', 'entityId', 'reason']), 'timeline:refresh');
          assert.deepEqual(ev, h.withPosition({ entityType: 'contact', entityId: e, reason }, position), JSON.stringify(opts));
        }
      });

      it('a publish reaches only its own timeline', async () => {
        const s = await connect();
        const e = h.uid('e');
        await subscribe(s, 'contact', e);
        await publishItem('contact', `${e}-other`, { id: 1 });
        await publishItem('deal', e, { id: 2 });
        await h.noEvent(s, 'timeline:new_item', 200);
        await publishItem('contact', e, { id: 3 });
        assert.equal((await h.nextEvent(s, 'timeline:new_item')).item.id, 3);
      });

      it('an integer entityId is the same timeline as its decimal string', async () => {
        const s = await connect();
        const n = 1e9 + Math.floor(Math.random() * 1e9);
        const ack = await h.emitAck(s, 'timeline:subscribe', { entityType: 'contact', entityId: n });
        const epoch = h.epochOf(ack, 'ack');
        assert.deepEqual(ack, h.withPosition({ ok: true, entityType: 'contact', entityId: String(n) }, { offset: 0, epoch }));
        await publishItem('contact', String(n), { id: 1 });
        assert.deepEqual(await h.nextEvent(s, 'timeline:new_item'), h.withPosition({ entityType: 'contact', entityId: String(n), item: { id: 1 } }, { offset: 1, epoch }));
      });

      it('subscribing twice is one subscription: the second answers too, one delivery per publish', async () => {
        const s = await connect();
        const e = h.uid('e');
        const epoch = h.epochOf(await subscribe(s, 'contact', e), 'ack');
        const ack = await h.emitAck(s, 'timeline:subscribe', { entityType: 'contact', entityId: e });
        assert.deepEqual(ack, h.withPosition({ ok: true, entityType: 'contact', entityId: e }, { offset: 0, epoch }));
        assert.deepEqual(await h.nextEvent(s, 'timeline:subscribed'), { entityType: 'contact', entityId: e });
        await publishItem('contact', e, { id: 1 });
        await h.nextEvent(s, 'timeline:new_item');
        await h.noEvent(s, 'timeline:new_item', 200);
        // One unsubscribe ends it.
        await h.emitAck(s, 'timeline:unsubscribe', { entityType: 'contact', entityId: e });
        await publishItem('contact', e, { id: 2 });
        await h.noEvent(s, 'timeline:new_item', 200);
      });

      it('timeline:unsubscribe answers timeline:unsubscribed and the ack; no more deliveries', async () => {
        const s = await connect();
        const other = await connect();
        const e = h.uid('e');
        await subscribe(s, 'contact', e);
        await subscribe(other, 'contact', e);
        const ack = await h.emitAck(s, 'timeline:unsubscribe', { entityType: 'contact', entityId: e });
        assert.equal(ack.ok, true);
        assert.equal(ack.entityType, 'contact');
        assert.equal(ack.entityId, e);
        const ev = await h.nextEvent(s, 'timeline:unsubscribed');
        h.assertKeys(ev, ['entityType', 'entityId'], 'timeline:unsubscribed');
        assert.deepEqual(ev, { entityType: 'contact', entityId: e });
        await publishItem('contact', e, { id: 1 });
        await h.nextEvent(other, 'timeline:new_item');
        await h.noEvent(s, 'timeline:new_item', 200);
      });

      it('unsubscribing what is not subscribed still answers ok and timeline:unsubscribed', async () => {
        const s = await connect();
        const e = h.uid('e');
        const ack = await h.emitAck(s, 'timeline:unsubscribe', { entityType: 'deal', entityId: e });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        assert.deepEqual(await h.nextEvent(s, 'timeline:unsubscribed'), { entityType: 'deal', entityId: e });
        // Without an ack too.
        s.emit('timeline:unsubscribe', { entityType: 'deal', entityId: e });
        assert.deepEqual(await h.nextEvent(s, 'timeline:unsubscribed'), { entityType: 'deal', entityId: e });
        await h.noEvent(s, 'timeline:error', 100);
      });

      it('a refused subscribe answers with the error only', async () => {
        const s = await connect();
        h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'task', entityId: '1' }), 'FORBIDDEN');
        s.emit('timeline:subscribe', { entityType: 'Task', entityId: '1' });
        const err = await h.nextEvent(s, 'timeline:error');
        assert.equal(err.code, 'INVALID_PAYLOAD');
        await h.noEvent(s, 'timeline:subscribed');
      });

      it('a batch is delivered in order', async () => {
        const s = await connect();
        const e = h.uid('e');
        const contact = { offset: 0, epoch: h.epochOf(await subscribe(s, 'contact', e), 'contact ack') };
        const deal = { offset: 0, epoch: h.epochOf(await subscribe(s, 'deal', e), 'deal ack') };
        // The position each event gets: the next offset of its own timeline.
        const next = (tl) => {
          tl.offset += 1;
          return { ...tl };
        };
        const events = [
          { type: 'new_item', entityType: 'contact', entityId: e, item: { id: 1 } },
          { type: 'item_updated', entityType: 'contact', entityId: e, itemId: 1, item: { id: 1, v: 2 } },
          { type: 'refresh', entityType: 'deal', entityId: e, reason: 'r1' },
          { type: 'new_item', entityType: 'contact', entityId: e, item: { id: 'two' } },
          { type: 'refresh', entityType: 'contact', entityId: e },
          { type: 'new_item', entityType: 'contact', entityId: `${e}-x`, item: { id: 3 } },
        ];
        const res = await api('POST', '/v1/timeline/batch', { body: { events } });
        assert.equal(res.status, 202, res.text);
        assert.deepEqual(res.json, { accepted: 6 });
        await h.eventually(() => h.eventsOf(s).filter((x) => x.event.startsWith('timeline:')).length >= 5, { message: '5 deliveries' });
        await h.quietPeriod(100); // no sixth delivery (`${e}-x` has no subscriber)
        const got = h.eventsOf(s).filter((x) => x.event.startsWith('timeline:')).map((x) => [x.event, x.args[0]]);
        assert.deepEqual(got, [
          ['timeline:new_item', h.withPosition({ entityType: 'contact', entityId: e, item: { id: 1 } }, next(contact))],
          ['timeline:item_updated', h.withPosition({ entityType: 'contact', entityId: e, itemId: '1', item: { id: 1, v: 2 } }, next(contact))],
          ['timeline:refresh', h.withPosition({ entityType: 'deal', entityId: e, reason: 'r1' }, next(deal))],
          ['timeline:new_item', h.withPosition({ entityType: 'contact', entityId: e, item: { id: 'two' } }, next(contact))],
          ['timeline:refresh', h.withPosition({ entityType: 'contact', entityId: e, reason: null }, next(contact))],
        ]);
      });

      it('a batch with one bad event delivers nothing (all-or-nothing)', async () => {
        const s = await connect();
        const e = h.uid('e');
        await subscribe(s, 'contact', e);
        const good = { type: 'new_item', entityType: 'contact', entityId: e, item: { id: 1 } };
        const bad400 = await api('POST', '/v1/timeline/batch', { body: { events: [good, good, { type: 'new_item', entityType: 'contact', entityId: e, item: { no: 'id' } }] } });
        h.assertHttpError(bad400, 400, 'INVALID_PAYLOAD');
        const bad403 = await api('POST', '/v1/timeline/batch', { body: { events: [good, { ...good, entityType: 'task' }] } });
        h.assertHttpError(bad403, 403, 'FORBIDDEN');
        await h.noEvent(s, 'timeline:new_item', 250);
      });

      it('a refused publish delivers nothing', async () => {
        const s = await connect();
        const e = h.uid('e');
        await subscribe(s, 'contact', e);
        h.assertHttpError(await api('POST', `/v1/timeline/contact/${e}/items`, { body: { noId: true } }), 400, 'INVALID_PAYLOAD');
        h.assertHttpError(await api('POST', `/v1/timeline/contact/${e}/items`, { raw: '{"id":' }), 400, 'INVALID_JSON');
        h.assertHttpError(await api('POST', `/v1/timeline/contact/${e}/refresh`, { body: { reason: 7 } }), 400, 'INVALID_PAYLOAD');
        const noToken = await h.http('POST', `${server.internalUrl}/v1/timeline/contact/${e}/items`, { body: { id: 1 } });
        h.assertHttpError(noToken, 401, 'UNAUTHORIZED');
        await Promise.all([h.noEvent(s, 'timeline:new_item', 250), h.noEvent(s, 'timeline:refresh', 250)]);
      });
    });
  }
});

describe('disconnect ends subscriptions (section 4, counted by /v1/stats)', () => {
  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      const server = h.serverForDescribe(CONFIG);

      const stats = async () => {
        const res = await h.http('GET', `${server.internalUrl}/v1/stats`, { token: TOKEN });
        assert.equal(res.status, 200, res.text);
        return res.json;
      };

      it('subscriptions are counted and end with the connection', async () => {
        const s1 = await h.connect(server.url, { transports: [transport] });
        const s2 = await h.connect(server.url, { transports: [transport] });
        for (const [s, type, id] of [[s1, 'contact', '1'], [s1, 'deal', '1'], [s2, 'contact', '1'], [s2, 'contact', '1']]) {
          assert.equal((await h.emitAck(s, 'timeline:subscribe', { entityType: type, entityId: id })).ok, true);
        }
        const st = await stats();
        assert.deepEqual(st.timelines, { rooms: 2, subscriptions: 3 });
        assert.equal(st.connections, 2);
        s1.disconnect();
        await h.eventually(async () => (await stats()).timelines.subscriptions === 1, { message: 'subscriptions back to 1' });
        assert.deepEqual((await stats()).timelines, { rooms: 1, subscriptions: 1 });
        // The remaining subscriber still gets its deliveries; the gone one's timeline has none.
        const res = await h.http('POST', `${server.internalUrl}/v1/timeline/contact/1/items`, { token: TOKEN, body: { id: 1 } });
        assert.equal(res.status, 202);
        await h.nextEvent(s2, 'timeline:new_item');
        s2.disconnect();
        await h.eventually(async () => {
          const x = await stats();
          return x.connections === 0 && x.timelines.subscriptions === 0 && x.timelines.rooms === 0;
        }, { message: 'no connections and no subscriptions' });
      });
    });
  }
});
