'use strict';

// Contract v2 section 4.1 on a single instance: timeline offsets and epochs,
// history, and recovery with `timeline:subscribe { since }`, over both
// transports with the real socket.io-client. Multi-instance recovery (history
// in Redis) is not implemented yet; see h.clusterPosition in helpers.js.
//
// Every wait has a deadline; the only fixed windows are negative ones
// (h.quietPeriod: nothing more arrives) and one h.elapse (half of history_ttl).

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const h = require('../helpers');
const { clusterForDescribe } = require('../redis');

const SKIP = h.isPeer && 'the peer implements contract v1: no offsets, epochs, history or recovery (section 4.1 is v2)';
const TOKEN = 's3cret';
const BASE = { internal_token: TOKEN, events_per_second: 0 };
const KINDS = new Set(['timeline:new_item', 'timeline:item_updated', 'timeline:refresh']);
const ACK_TIMEOUT = 5000;

/** A timeline of its own: { entityType, entityId }. */
const newKey = (entityType = 'contact') => ({ entityType, entityId: h.uid('tl') });
const sameTimeline = (p, key) => p && p.entityType === key.entityType && p.entityId === key.entityId;
const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
const positionOf = (p) => ({ offset: p.offset, epoch: p.epoch });

/** The internal API of `server`: each call asserts 202 and resolves with the reply. */
function backend(server) {
  const call = async (method, path, body) => {
    const res = await h.http(method, `${server.internalUrl}${path}`, { token: TOKEN, body });
    assert.equal(res.status, 202, `${method} ${path}: ${res.status} ${res.text}`);
    return res.json;
  };
  const base = (key) => `/v1/timeline/${key.entityType}/${encodeURIComponent(key.entityId)}`;
  return {
    newItem: (key, item) => call('POST', `${base(key)}/items`, item),
    update: (key, itemId, item) => call('PUT', `${base(key)}/items/${encodeURIComponent(itemId)}`, item),
    refresh: (key, body) => call('POST', `${base(key)}/refresh`, body),
    batch: (events) => call('POST', '/v1/timeline/batch', { events }),
  };
}

/** `n` new items, one after another (ids `${tag}-0`, ...): resolves with the replies. */
async function publishItems(api, key, n, tag) {
  const replies = [];
  for (let i = 0; i < n; i++) replies.push(await api.newItem(key, { id: `${tag}-${i}` }));
  return replies;
}

/**
 * What the socket receives about timelines, in arrival order, as [event,
 * payload]; the acks of subscribes made with subscribeLogged() are put in
 * their place as ['ack', ack], so the order of events and ack is visible.
 */
function orderLog(socket) {
  const log = [];
  socket.onAny((event, payload) => {
    if (event.startsWith('timeline:')) log.push([event, payload]);
  });
  return log;
}

/** timeline:subscribe with an ack, logged in `log` when it arrives; resolves with the ack. */
function subscribeLogged(socket, log, payload, timeoutMs = ACK_TIMEOUT) {
  return new Promise((resolve, reject) => {
    socket.timeout(timeoutMs).emit('timeline:subscribe', payload, (err, ack) => {
      if (err) {
        reject(new Error(`no ack for timeline:subscribe ${JSON.stringify(payload)} within ${timeoutMs} ms`));
        return;
      }
      log.push(['ack', ack]);
      resolve(ack);
    });
  });
}

/** The entries of `log` from the index `from` on that concern `key` (events) or are acks. */
const entriesFor = (log, key, from = 0) => log.slice(from).filter(([event, p]) => event === 'ack' || sameTimeline(p, key));

/**
 * The frontend recipe of section 4.1: subscribe, remember the position of
 * the last event received, and on every (re)connect subscribe again with
 * `since` that position. Without an event to go by (first subscribe, history
 * lost), the ack's position is the one to remember.
 *   f.subscribe()  subscribes now (the first time; later ones run on 'connect')
 *   f.log          see orderLog(); f.marks[i] is where the i-th subscribe started in it
 *   f.sent[i]      the i-th subscribe's payload; f.acks[i] its ack
 *   f.last         { offset, epoch } to recover from
 */
function follow(socket, key) {
  const f = { log: orderLog(socket), last: null, sent: [], acks: [], marks: [], eventSinceSubscribe: false };
  socket.onAny((event, p) => {
    if (KINDS.has(event) && sameTimeline(p, key) && p.offset !== undefined && p.offset !== null) {
      f.last = positionOf(p);
      f.eventSinceSubscribe = true;
    }
  });
  f.subscribe = () => {
    const payload = f.last ? { ...key, since: f.last } : { ...key };
    f.sent.push(payload);
    f.marks.push(f.log.length);
    f.eventSinceSubscribe = false;
    return subscribeLogged(socket, f.log, payload).then((ack) => {
      f.acks.push(ack);
      if (ack.ok && ack.recovered !== true && !f.eventSinceSubscribe) f.last = positionOf(ack);
      return ack;
    });
  };
  socket.on('connect', () => {
    f.subscribe().catch(() => {}); // the test waits for f.acks and reports a missing ack
  });
  return f;
}

/** Waits for the ack of f's subscribe number `i` (0 = the first). */
const ackNumber = (f, i, timeoutMs = ACK_TIMEOUT) =>
  h.eventually(() => f.acks[i], { timeoutMs, message: `the ack of subscribe #${i + 1} (${JSON.stringify(f.sent[i] || 'not sent')})` });

/**
 * Asserts what one subscribe whose `since` cannot be recovered got, from its
 * place in the log on: timeline:subscribed, then timeline:refresh
 * { reason: "history_lost" } without offset or epoch, then the ack with
 * recovered: false, missed: 0 and `current`, the timeline's position; nothing
 * replayed.
 */
function assertLost(entries, key, current) {
  assert.deepEqual(entries, [
    ['timeline:subscribed', { ...key }],
    ['timeline:refresh', { ...key, reason: 'history_lost' }],
    ['ack', { ok: true, ...key, ...current, recovered: false, missed: 0 }],
  ]);
}

/**
 * Asserts a recovered subscribe (from its place in the log on, with `since`
 * as sent): timeline:subscribed, the events after since.offset up to the
 * ack's offset in order, then the ack { recovered: true, missed } with
 * missed = ack.offset - since.offset; live events may come before or after
 * the ack. Returns the offsets received after timeline:subscribed.
 */
function assertRecovered(entries, key, since) {
  assert.deepEqual(entries[0], ['timeline:subscribed', { ...key }], JSON.stringify(entries.slice(0, 3)));
  const at = entries.findIndex(([event]) => event === 'ack');
  assert.ok(at > 0, `no ack: ${JSON.stringify(entries)}`);
  const ack = entries[at][1];
  assert.deepEqual(ack, { ok: true, ...key, offset: ack.offset, epoch: since.epoch, recovered: true, missed: ack.offset - since.offset });
  const events = entries.filter(([event]) => KINDS.has(event)).map(([, p]) => p);
  for (const p of events) assert.equal(p.epoch, since.epoch, `epoch of ${JSON.stringify(p)}`);
  const offsets = events.map((p) => p.offset);
  assert.deepEqual(offsets, range(since.offset + 1, since.offset + offsets.length), 'contiguous from since.offset + 1, no duplicate');
  // Every missed event comes before the ack (live ones may too).
  const beforeAck = entries.slice(1, at).map(([event, p]) => (KINDS.has(event) ? p.offset : event));
  assert.deepEqual(beforeAck.slice(0, ack.missed), range(since.offset + 1, ack.offset), `before the ack: ${JSON.stringify(beforeAck)}`);
  return events.map((p) => p.offset);
}

/**
 * Where the suite runs: 'one instance', or 'two instances over Redis', where
 * every socket connects to the second node and publishes alternate between
 * the two (so two nodes publish to one timeline, and the subscribers' node
 * hears half of the events from the other). Recovery on a node that never
 * followed the timeline is tested on its own below.
 */
const TOPOLOGIES = ['one instance', 'two instances over Redis'];
const skipFor = (topology) => SKIP || (topology !== 'one instance' && h.isPeer && 'the peer has no cluster-wide history');

function deploymentForDescribe(topology, config) {
  if (topology === 'one instance') return h.serverForDescribe(config);
  const ctx = clusterForDescribe(2, config, { token: TOKEN });
  let turn = 0;
  return {
    get url() { return ctx.nodes[1].url; },
    get internalUrl() { return ctx.nodes[turn++ % 2].internalUrl; },
  };
}

for (const topology of TOPOLOGIES) {
  describe(`${topology}: timeline offsets, history and recovery (section 4.1, v2)`, { skip: skipFor(topology) }, () => {
    const server = deploymentForDescribe(topology, BASE); // history_size, history_ttl: the defaults (100, 5 min)
    afterEach(() => h.closeAllSockets());

    for (const transport of h.TRANSPORTS) {
      describe(`over ${transport}`, () => {
        const connect = (opts = {}) => h.connect(server.url, { transports: [transport], ...opts });

        it('offsets on every kind of event, batches included: contiguous from 1 per timeline, the reply\'s position is the event\'s', async () => {
          const api = backend(server);
          const s = await connect();
          const log = orderLog(s);
          const a = newKey('contact');
          const b = { entityType: 'deal', entityId: a.entityId }; // same id, another timeline
          const ackA = await subscribeLogged(s, log, a);
          const ackB = await subscribeLogged(s, log, b);
          // Before any publish: offset 0, with the epoch the first event will carry.
          const epochA = h.epochOf(ackA, 'ack of a');
          const epochB = h.epochOf(ackB, 'ack of b');
          assert.deepEqual(ackA, { ok: true, ...a, offset: 0, epoch: epochA });
          assert.deepEqual(ackB, { ok: true, ...b, offset: 0, epoch: epochB });

          // What each timeline must get, with the offsets counted here.
          const expected = new Map([[a, []], [b, []]]);
          const counters = new Map([[a, 0], [b, 0]]);
          const epochs = new Map([[a, epochA], [b, epochB]]);
          const expect = (key, event, fields) => {
            counters.set(key, counters.get(key) + 1);
            const position = { offset: counters.get(key), epoch: epochs.get(key) };
            expected.get(key).push([event, { ...key, ...fields, ...position }]);
            return position;
          };
          const single = async (reply, key, event, fields) => {
            assert.deepEqual(reply, { delivered: true, ...expect(key, event, fields) }, `reply to ${event} on ${key.entityType}`);
          };

          await single(await api.newItem(a, { id: 1, text: 'one' }), a, 'timeline:new_item', { item: { id: 1, text: 'one' } });
          await single(await api.update(a, 1, { id: 1, text: 'uno' }), a, 'timeline:item_updated', { itemId: '1', item: { id: 1, text: 'uno' } });
          await single(await api.refresh(a, { reason: 'merged' }), a, 'timeline:refresh', { reason: 'merged' });
          await single(await api.refresh(a), a, 'timeline:refresh', { reason: null });
          await single(await api.newItem(b, { id: 'b1' }), b, 'timeline:new_item', { item: { id: 'b1' } });
          const batch = [
            [{ type: 'new_item', ...a, item: { id: 2 } }, a, 'timeline:new_item', { item: { id: 2 } }],
            [{ type: 'item_updated', ...b, itemId: 'b1', item: { v: 2 } }, b, 'timeline:item_updated', { itemId: 'b1', item: { v: 2 } }],
            [{ type: 'refresh', ...a, reason: 'import' }, a, 'timeline:refresh', { reason: 'import' }],
            [{ type: 'new_item', ...b, item: { id: 'b2' } }, b, 'timeline:new_item', { item: { id: 'b2' } }],
            [{ type: 'refresh', ...b }, b, 'timeline:refresh', { reason: null }],
            [{ type: 'new_item', ...a, item: { id: 3 } }, a, 'timeline:new_item', { item: { id: 3 } }],
          ];
          assert.deepEqual(await api.batch(batch.map(([event]) => event)), { accepted: batch.length }, 'the batch reply stays { accepted }');
          for (const [, key, event, fields] of batch) expect(key, event, fields);
          await single(await api.newItem(a, { id: 4 }), a, 'timeline:new_item', { item: { id: 4 } });

          const total = expected.get(a).length + expected.get(b).length;
          await h.eventually(() => log.filter(([event]) => KINDS.has(event)).length >= total, { message: `${total} events` });
          await h.quietPeriod(150); // and no more
          for (const key of [a, b]) {
            const got = log.filter(([event, p]) => KINDS.has(event) && sameTimeline(p, key));
            assert.deepEqual(got, expected.get(key), `the events of ${key.entityType}:${key.entityId}`);
            assert.deepEqual(got.map(([, p]) => p.offset), range(1, counters.get(key)), 'contiguous from 1');
          }
          assert.equal(log.filter(([event]) => KINDS.has(event)).length, total);

          // A later subscribe's ack has the timeline's position; recovering from
          // offset 0 replays the very events the live subscriber got.
          const late = await connect();
          const lateLog = orderLog(late);
          assert.deepEqual(await subscribeLogged(late, lateLog, b), { ok: true, ...b, offset: counters.get(b), epoch: epochB });
          const mark = lateLog.length;
          const ack = await subscribeLogged(late, lateLog, { ...a, since: { offset: 0, epoch: epochA } });
          assert.deepEqual(ack, { ok: true, ...a, offset: counters.get(a), epoch: epochA, recovered: true, missed: counters.get(a) });
          assert.deepEqual(lateLog.slice(mark), [['timeline:subscribed', a], ...expected.get(a), ['ack', ack]]);
        });

        it('the frontend recipe: disconnect, 50 published meanwhile, resubscribe with since on connect: the 50 in order, then the ack, then live events', async () => {
          const api = backend(server);
          const key = newKey();
          const s = await connect();
          const f = follow(s, key);
          const first = await f.subscribe();
          const epoch = h.epochOf(first, 'ack');
          assert.deepEqual(first, { ok: true, ...key, offset: 0, epoch });
          await publishItems(api, key, 3, 'live');
          await h.eventually(() => f.last && f.last.offset === 3, { message: 'the 3 live events' });

          s.disconnect();
          const missed = await publishItems(api, key, 50, 'missed');
          assert.deepEqual(missed.map(positionOf), range(4, 53).map((offset) => ({ offset, epoch })));
          s.connect(); // 'connect' subscribes again with since { offset: 3, epoch }
          const ack = await ackNumber(f, 1);
          assert.deepEqual(f.sent[1], { ...key, since: { offset: 3, epoch } });
          assert.deepEqual(ack, { ok: true, ...key, offset: 53, epoch, recovered: true, missed: 50 });
          const entries = entriesFor(f.log, key, f.marks[1]);
          assert.deepEqual(entries, [
            ['timeline:subscribed', key],
            ...range(0, 49).map((i) => ['timeline:new_item', { ...key, item: { id: `missed-${i}` }, offset: 4 + i, epoch }]),
            ['ack', ack],
          ]);

          // Live again: each event once.
          await publishItems(api, key, 2, 'after');
          await h.eventually(() => f.last.offset === 55, { message: 'the 2 live events after the recovery' });
          await h.quietPeriod(150); // no duplicate
          assert.deepEqual(
            f.log.filter(([event]) => KINDS.has(event)).map(([, p]) => p.offset),
            range(1, 55),
            'every event once, in order, across the disconnection',
          );
        });

        it('the same when the transport drops and socket.io-client reconnects by itself', async () => {
          const api = backend(server);
          const key = newKey();
          const s = await connect({ reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 200 });
          const f = follow(s, key);
          const epoch = h.epochOf(await f.subscribe(), 'ack');
          await publishItems(api, key, 3, 'live');
          await h.eventually(() => f.last && f.last.offset === 3, { message: 'the 3 live events' });

          s.io.engine.close(); // as a network drop: the client reconnects after its backoff
          await h.disconnected(s);
          await publishItems(api, key, 50, 'meanwhile'); // some may be delivered live after the reconnection
          const ack = await ackNumber(f, 1);
          assert.deepEqual(f.sent[1], { ...key, since: { offset: 3, epoch } });
          await h.eventually(() => f.last.offset === 53, { message: 'offset 53 received' });
          await h.quietPeriod(150); // no duplicate
          const offsets = assertRecovered(entriesFor(f.log, key, f.marks[1]), key, { offset: 3, epoch });
          assert.deepEqual(offsets, range(4, 53));
          assert.ok(ack.missed >= 0 && ack.missed <= 50, JSON.stringify(ack));
        });

        it('publishes racing a recovering subscribe: every event once, in offset order, over several reconnections', { timeout: 60_000 }, async (t) => {
          const api = backend(server);
          const key = newKey();
          const s = await connect();
          const f = follow(s, key);
          const epoch = h.epochOf(await f.subscribe(), 'ack');
          const ROUNDS = 6;
          let published = 0;
          let raced = 0;
          for (let round = 1; round <= ROUNDS; round++) {
            s.disconnect();
            published += (await publishItems(api, key, 5, `r${round}-away`)).length; // missed for sure
            // Two publishers going on while the socket reconnects and recovers
            // (at most 5 + 2 x 30 behind: within the default history of 100).
            const loops = [publishItems(api, key, 30, `r${round}-a`), publishItems(api, key, 30, `r${round}-b`)];
            s.connect();
            const ack = await ackNumber(f, round, 10_000);
            published += (await Promise.all(loops)).reduce((n, replies) => n + replies.length, 0);
            assert.equal(ack.recovered, true, `round ${round}: ${JSON.stringify(ack)} for ${JSON.stringify(f.sent[round])}`);
            assert.equal(ack.epoch, epoch);
            await h.eventually(() => f.last.offset === published, { timeoutMs: 10_000, message: `round ${round}: offset ${published} received` });
            const offsets = assertRecovered(entriesFor(f.log, key, f.marks[round]), key, f.sent[round].since);
            if (offsets.some((o) => o > ack.offset)) raced += 1; // live events around the recovery
          }
          await h.quietPeriod(200); // no duplicate
          assert.deepEqual(
            f.log.filter(([event]) => KINDS.has(event)).map(([, p]) => p.offset),
            range(1, published),
            'contiguous, no duplicate, none lost',
          );
          t.diagnostic(`${published} events; live events around the recovery in ${raced} of ${ROUNDS} rounds`);
        });

        it('recovered: false for another epoch and for an offset ahead: subscribed, refresh history_lost, then the ack', async () => {
          const api = backend(server);
          const key = newKey();
          const replies = await publishItems(api, key, 3, 'x');
          const current = positionOf(replies[2]);
          // Each case publishes one event afterwards: `since` is taken from the position then.
          const cases = [
            ['another epoch', () => ({ offset: 1, epoch: 'not-an-epoch' })],
            ['another epoch, offset 0', () => ({ offset: 0, epoch: `${current.epoch}x`.slice(-128) })],
            ['an offset ahead of the timeline', () => ({ offset: current.offset + 1, epoch: current.epoch })],
            ['an offset far ahead', () => ({ offset: 1_000_000, epoch: current.epoch })],
          ];
          for (const [name, sinceNow] of cases) {
            const since = sinceNow();
            const s = await connect();
            const log = orderLog(s);
            await subscribeLogged(s, log, { ...key, since });
            assertLost(entriesFor(log, key), key, current);
            await h.quietPeriod(100); // nothing replayed afterwards
            assert.equal(log.length, 3, `${name}: ${JSON.stringify(log)}`);
            // Subscribed all the same: live events follow.
            const next = await api.newItem(key, { id: `after-${name}` });
            current.offset += 1;
            assert.deepEqual(positionOf(next), current);
            await h.eventually(() => log.length === 4, { message: `${name}: the live event` });
            assert.deepEqual(log[3], ['timeline:new_item', { ...key, item: { id: `after-${name}` }, ...current }]);
            s.close();
          }
        });

        it('since at the current position: recovered, nothing missed; since offset 0 replays everything', async () => {
          const api = backend(server);
          const key = newKey();
          const replies = await publishItems(api, key, 4, 'y');
          const { epoch } = replies[0];
          const s = await connect();
          const log = orderLog(s);
          const ack = await subscribeLogged(s, log, { ...key, since: { offset: 4, epoch } });
          assert.deepEqual(ack, { ok: true, ...key, offset: 4, epoch, recovered: true, missed: 0 });
          assert.deepEqual(log, [['timeline:subscribed', key], ['ack', ack]]);
          const s2 = await connect();
          const log2 = orderLog(s2);
          const ack2 = await subscribeLogged(s2, log2, { ...key, since: { offset: 0, epoch } });
          assert.deepEqual(ack2, { ok: true, ...key, offset: 4, epoch, recovered: true, missed: 4 });
          assert.deepEqual(log2, [
            ['timeline:subscribed', key],
            ...range(0, 3).map((i) => ['timeline:new_item', { ...key, item: { id: `y-${i}` }, offset: i + 1, epoch }]),
            ['ack', ack2],
          ]);
          await h.quietPeriod(100);
          assert.equal(log.length, 2);
          assert.equal(log2.length, 6);
        });

        describe('since must be { offset: integer >= 0, epoch: non-empty string of at most 128 characters }', () => {
          const epoch = 'e-1';
          const bad = [
            ['a number', 5],
            ['a string', '3'],
            ['an array', [3, epoch]],
            ['true', true],
            ['an empty object', {}],
            ['no epoch', { offset: 3 }],
            ['no offset', { epoch }],
            ['a negative offset', { offset: -1, epoch }],
            ['a fractional offset', { offset: 1.5, epoch }],
            ['an offset as a string', { offset: '3', epoch }],
            ['a null offset', { offset: null, epoch }],
            ['an empty epoch', { offset: 3, epoch: '' }],
            ['a numeric epoch', { offset: 3, epoch: 7 }],
            ['a null epoch', { offset: 3, epoch: null }],
            ['an epoch of 129 characters', { offset: 3, epoch: 'x'.repeat(129) }],
          ];
          for (const [name, since] of bad) {
            it(`INVALID_PAYLOAD for ${name}, in the ack or as timeline:error; nothing subscribed`, async () => {
              const api = backend(server);
              const key = newKey();
              const s = await connect();
              h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { ...key, since }), 'INVALID_PAYLOAD');
              s.emit('timeline:subscribe', { ...key, since });
              const err = await h.nextEvent(s, 'timeline:error');
              h.assertKeys(err, ['event', 'code', 'message'], 'timeline:error');
              assert.deepEqual([err.event, err.code], ['timeline:subscribe', 'INVALID_PAYLOAD']);
              await api.newItem(key, { id: 1 });
              await Promise.all([
                h.noEvent(s, 'timeline:subscribed', 150),
                h.noEvent(s, 'timeline:refresh', 150),
                h.noEvent(s, 'timeline:new_item', 150),
                h.noEvent(s, 'timeline:error', 150), // one error for the one event without an ack
              ]);
            });
          }

          it('since: null is the same as no since; an epoch of 128 characters and extra fields are fine', async () => {
            const api = backend(server);
            const key = newKey();
            const { epoch: current } = await api.newItem(key, { id: 1 });
            const s = await connect();
            const log = orderLog(s);
            const ack = await subscribeLogged(s, log, { ...key, since: null });
            assert.deepEqual(ack, { ok: true, ...key, offset: 1, epoch: current });
            assert.deepEqual(log, [['timeline:subscribed', key], ['ack', ack]]);
            // Valid shapes, unknown epochs: not recovered.
            for (const since of [{ offset: 0, epoch: '😀'.repeat(128) }, { offset: 1, epoch: 'x'.repeat(128), extra: true }]) {
              const mark = log.length;
              await subscribeLogged(s, log, { ...key, since });
              assertLost(log.slice(mark), key, { offset: 1, epoch: current });
            }
            // And a known one with an extra field: recovered.
            const mark = log.length;
            const ack2 = await subscribeLogged(s, log, { ...key, since: { offset: 1, epoch: current, note: 'x' } });
            assert.deepEqual(ack2, { ok: true, ...key, offset: 1, epoch: current, recovered: true, missed: 0 });
            assert.deepEqual(log.slice(mark), [['timeline:subscribed', key], ['ack', ack2]]);
            await h.quietPeriod(100);
            assert.equal(log.filter(([event]) => event === 'timeline:refresh').length, 2, 'history_lost for the two unknown epochs only');
          });
        });
      });
    }
  });

  describe(`${topology}: recovered: false when history is too short (history_size 5)`, { skip: skipFor(topology) }, () => {
    const server = deploymentForDescribe(topology, { ...BASE, history_size: 5 });
    afterEach(() => h.closeAllSockets());

    for (const transport of h.TRANSPORTS) {
      it(`over ${transport}: 5 missed are recovered, 6 are not`, async () => {
        const api = backend(server);
        const key = newKey();
        const replies = await publishItems(api, key, 10, 'z');
        const current = positionOf(replies[9]);
        const s = await h.connect(server.url, { transports: [transport] });
        const log = orderLog(s);
        await subscribeLogged(s, log, { ...key, since: { offset: 4, epoch: current.epoch } });
        assertLost(log, key, current);
        const mark = log.length;
        const ack = await subscribeLogged(s, log, { ...key, since: { offset: 5, epoch: current.epoch } });
        assert.deepEqual(ack, { ok: true, ...key, ...current, recovered: true, missed: 5 });
        assert.deepEqual(log.slice(mark), [
          ['timeline:subscribed', key],
          ...range(5, 9).map((i) => ['timeline:new_item', { ...key, item: { id: `z-${i}` }, offset: i + 1, epoch: current.epoch }]),
          ['ack', ack],
        ]);
      });
    }
  });

  describe(`${topology}: recovered: false when history is off (history_size 0)`, { skip: skipFor(topology) }, () => {
    const server = deploymentForDescribe(topology, { ...BASE, history_size: 0 });
    afterEach(() => h.closeAllSockets());

    for (const transport of h.TRANSPORTS) {
      it(`over ${transport}: events still carry offsets; any missed event is lost, none missed is recovered`, async () => {
        const api = backend(server);
        const key = newKey();
        const s = await h.connect(server.url, { transports: [transport] });
        const log = orderLog(s);
        const first = await subscribeLogged(s, log, key);
        const epoch = h.epochOf(first, 'ack');
        const replies = await publishItems(api, key, 3, 'w');
        assert.deepEqual(replies.map(positionOf), range(1, 3).map((offset) => ({ offset, epoch })));
        await h.eventually(() => log.length === 5, { message: 'the 3 live events' });
        assert.deepEqual(log.slice(2).map(([, p]) => positionOf(p)), range(1, 3).map((offset) => ({ offset, epoch })));
        const current = { offset: 3, epoch };
        for (const offset of [2, 0]) {
          const s2 = await h.connect(server.url, { transports: [transport] });
          const log2 = orderLog(s2);
          await subscribeLogged(s2, log2, { ...key, since: { offset, epoch } });
          assertLost(log2, key, current);
          s2.close();
        }
        const s3 = await h.connect(server.url, { transports: [transport] });
        const log3 = orderLog(s3);
        const ack = await subscribeLogged(s3, log3, { ...key, since: current });
        assert.deepEqual(ack, { ok: true, ...key, ...current, recovered: true, missed: 0 });
        assert.deepEqual(log3, [['timeline:subscribed', key], ['ack', ack]]);
      });
    }
  });

  describe(`${topology}: recovered: false once history expired (history_ttl 1 s)`, { skip: skipFor(topology) }, () => {
    const TTL = 1000;
    // The server checks max(ttl / 10, 1 s) apart: expired between TTL and 2 x TTL
    // after the last publish; the rest is margin for a loaded machine.
    const EXPIRED_WITHIN = 2 * TTL + 3000;
    const server = deploymentForDescribe(topology, { ...BASE, history_ttl: TTL });
    afterEach(() => h.closeAllSockets());

    for (const transport of h.TRANSPORTS) {
      it(`over ${transport}: kept for history_ttl after the last publish, then not recovered`, { timeout: 30_000 }, async () => {
        const api = backend(server);
        const key = newKey();
        const connect = () => h.connect(server.url, { transports: [transport] });
        const s = await connect();
        const f = follow(s, key);
        await f.subscribe();
        await publishItems(api, key, 2, 'v');
        const publishedAt = Date.now();
        await h.eventually(() => f.last && f.last.offset === 2, { message: 'the 2 live events' });
        const old = { ...f.last };

        // Half way through history_ttl the history is there.
        const probe = await connect();
        const probeLog = orderLog(probe);
        await h.elapse(Math.max(0, publishedAt + TTL / 2 - Date.now()));
        const kept = await subscribeLogged(probe, probeLog, { ...key, since: { offset: 1, epoch: old.epoch } });
        assert.deepEqual(kept, { ok: true, ...key, ...old, recovered: true, missed: 1 }, `${Date.now() - publishedAt} ms after the last publish`);

        // Then it expires.
        await h.eventually(async () => (await subscribeLogged(probe, probeLog, { ...key, since: old })).recovered === false, {
          timeoutMs: EXPIRED_WITHIN,
          intervalMs: 100,
          message: 'the history expired',
        });

        // The frontend comes back with its since from before the expiry.
        s.disconnect();
        s.connect();
        const ack = await ackNumber(f, 1);
        assert.deepEqual(f.sent[1], { ...key, since: old });
        // The timeline kept its epoch and offset, or started a new epoch at offset 0.
        const current = positionOf(ack);
        if (current.epoch === old.epoch) assert.equal(current.offset, old.offset, JSON.stringify(ack));
        else assert.equal(current.offset, 0, JSON.stringify(ack));
        assertLost(entriesFor(f.log, key, f.marks[1]), key, current);
        // ... and the ack's position is the timeline's: the next event follows it.
        const next = await api.newItem(key, { id: 'after' });
        assert.deepEqual(positionOf(next), { offset: current.offset + 1, epoch: current.epoch });
        await h.eventually(() => f.last.offset === current.offset + 1 && f.last.epoch === current.epoch, { message: 'the event after the expiry' });
      });
    }
  });
}

describe('a restarted single instance names a new epoch', { skip: SKIP }, () => {
  const servers = [];
  afterEach(async () => {
    h.closeAllSockets();
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });
  const start = async () => {
    const server = await h.startServer(BASE);
    servers.push(server);
    return server;
  };

  for (const transport of h.TRANSPORTS) {
    it(`over ${transport}: the same timeline has another epoch, and a since with the old one is not recovered`, { timeout: 30_000 }, async () => {
      const key = newKey();
      const first = await start();
      const s1 = await h.connect(first.url, { transports: [transport] });
      const f1 = follow(s1, key);
      await f1.subscribe();
      await publishItems(backend(first), key, 2, 'u');
      await h.eventually(() => f1.last && f1.last.offset === 2, { message: 'the 2 live events' });
      const old = { ...f1.last };
      s1.close();
      await first.stop();

      const second = await start();
      const s2 = await h.connect(second.url, { transports: [transport] });
      const log = orderLog(s2);
      const fresh = await subscribeLogged(s2, log, key);
      assert.deepEqual(fresh, { ok: true, ...key, offset: 0, epoch: h.epochOf(fresh, 'ack') });
      assert.notEqual(fresh.epoch, old.epoch, 'a new epoch after the restart');
      const s3 = await h.connect(second.url, { transports: [transport] });
      const log3 = orderLog(s3);
      await subscribeLogged(s3, log3, { ...key, since: old });
      assertLost(log3, key, positionOf(fresh));
      const next = await backend(second).newItem(key, { id: 'after' });
      assert.deepEqual(positionOf(next), { offset: 1, epoch: fresh.epoch });
    });
  }
});

// ---------------------------------------------------------------------------
// What only a cluster has: a node that never followed the timeline, a node
// restarted while the history lives on in Redis, Redis stopped.
// ---------------------------------------------------------------------------

describe('two instances over Redis: recovery on another instance', { skip: skipFor('cluster') }, () => {
  const ctx = clusterForDescribe(2, BASE, { token: TOKEN });

  for (const transport of h.TRANSPORTS) {
    it(`over ${transport}: 50 missed on A are recovered on B, which never followed the timeline, and on A again`, async () => {
      const [A, B] = ctx.nodes;
      const key = newKey();
      const onA = await h.connect(A.url, { transports: [transport] });
      const f = follow(onA, key);
      const epoch = h.epochOf(await f.subscribe(), 'ack on A');
      await publishItems(backend(B), key, 3, 'live');
      await h.eventually(() => f.last && f.last.offset === 3, { message: 'the 3 live events on A' });
      const since = { ...f.last };
      onA.close();

      const missed = await publishItems(backend(A), key, 50, 'missed');
      assert.deepEqual(missed.map(positionOf), range(4, 53).map((offset) => ({ offset, epoch })));
      // What a socket recovering from `since` must get: 4 to the last offset.
      const expected = range(0, 49).map((i) => ['timeline:new_item', { ...key, item: { id: `missed-${i}` }, offset: 4 + i, epoch }]);
      for (const [name, node, other] of [['B', B, A], ['A', A, B]]) {
        const s = await h.connect(node.url, { transports: [transport] });
        const log = orderLog(s);
        const ack = await subscribeLogged(s, log, { ...key, since });
        const offset = 3 + expected.length;
        assert.deepEqual(ack, { ok: true, ...key, offset, epoch, recovered: true, missed: offset - 3 }, `on ${name}`);
        assert.deepEqual(log, [['timeline:subscribed', key], ...expected, ['ack', ack]], `on ${name}`);
        // Live again through the other node: once, next offset.
        const id = `after-${name}`;
        const next = await backend(other).newItem(key, { id });
        assert.deepEqual(positionOf(next), { offset: offset + 1, epoch });
        const live = ['timeline:new_item', { ...key, item: { id }, ...positionOf(next) }];
        await h.eventually(() => log.length === expected.length + 3, { message: `the live event after the recovery on ${name}` });
        assert.deepEqual(log.at(-1), live);
        expected.push(live);
        s.close();
      }
    });

    it(`over ${transport}: a subscribe on a node that never followed the timeline gets its position from Redis`, async () => {
      const [A, B] = ctx.nodes;
      const key = newKey();
      const replies = await publishItems(backend(A), key, 4, 'p');
      const s = await h.connect(B.url, { transports: [transport] });
      const log = orderLog(s);
      const ack = await subscribeLogged(s, log, key);
      assert.deepEqual(ack, { ok: true, ...key, ...positionOf(replies[3]) });
      const untouched = newKey();
      const fresh = await subscribeLogged(s, log, untouched);
      const epoch = h.epochOf(fresh, 'ack of an untouched timeline');
      assert.deepEqual(fresh, { ok: true, ...untouched, offset: 0, epoch });
      const first = await backend(A).newItem(untouched, { id: 1 });
      assert.deepEqual(positionOf(first), { offset: 1, epoch }, 'the ack carried the epoch the first event carries');
    });
  }
});

describe('two instances over Redis: an instance restarted keeps the epochs', { skip: skipFor('cluster') }, () => {
  const ctx = clusterForDescribe(2, BASE, { token: TOKEN });

  it('a frontend that was on the stopped node recovers on its replacement, same epoch, next offset', { timeout: 30_000 }, async () => {
    const [A, B] = ctx.nodes;
    const key = newKey();
    const s = await h.connect(B.url);
    const f = follow(s, key);
    const epoch = h.epochOf(await f.subscribe(), 'ack');
    await publishItems(backend(A), key, 2, 'before');
    await h.eventually(() => f.last && f.last.offset === 2, { message: 'the 2 live events' });
    const since = { ...f.last };
    s.close();
    await B.stop();
    await publishItems(backend(A), key, 3, 'while-away');

    const [C] = await h.startNodes(1, { ...BASE, redis_url: ctx.redis.url });
    ctx.nodes.push(C);
    await h.waitCluster([A, C], 2, { token: TOKEN });
    const s2 = await h.connect(C.url);
    const log = orderLog(s2);
    const ack = await subscribeLogged(s2, log, { ...key, since });
    assert.deepEqual(ack, { ok: true, ...key, offset: 5, epoch, recovered: true, missed: 3 });
    const next = await backend(C).newItem(key, { id: 'after' });
    assert.deepEqual(positionOf(next), { offset: 6, epoch });
  });
});

describe('two instances over Redis: Redis stopped', { skip: skipFor('cluster') }, () => {
  const ctx = clusterForDescribe(2, { ...BASE, node_timeout: 2000 }, { token: TOKEN });

  it('publishes reach local subscribers with offset and epoch null, a since is history_lost; afterwards numbering goes on', { timeout: 60_000 }, async () => {
    const [A] = ctx.nodes;
    const key = newKey();
    const s = await h.connect(A.url);
    const f = follow(s, key);
    const epoch = h.epochOf(await f.subscribe(), 'ack');
    await publishItems(backend(A), key, 2, 'before');
    await h.eventually(() => f.last && f.last.offset === 2, { message: 'the 2 live events' });

    await ctx.redis.stop();
    const res = await h.eventually(async () => {
      const r = await h.http('POST', `${A.internalUrl}/v1/timeline/${key.entityType}/${key.entityId}/items`, { token: TOKEN, body: { id: 'down' } });
      if (r.json && r.json.partial === true) return r;
      throw new Error(`not partial yet: ${r.status} ${r.text}`);
    }, { timeoutMs: 10_000, intervalMs: 200, message: 'a partial publish while Redis is down' });
    assert.deepEqual(res.json, { delivered: true, partial: true, offset: null, epoch: null });
    const local = await h.nextEvent(s, 'timeline:new_item', { where: (p) => p.item.id === 'down' });
    assert.deepEqual(local, { ...key, item: { id: 'down' }, offset: null, epoch: null });

    const other = await h.connect(A.url);
    const log = orderLog(other);
    const ack = await subscribeLogged(other, log, { ...key, since: { offset: 1, epoch } });
    assertLost(log, key, { offset: null, epoch: null });
    assert.equal(ack.recovered, false);

    await ctx.redis.restart();
    await h.eventually(async () => {
      const r = await h.http('POST', `${A.internalUrl}/v1/timeline/${key.entityType}/${key.entityId}/items`, { token: TOKEN, body: { id: 'back' } });
      if (r.status === 202 && r.json.partial === undefined) return r;
      throw new Error(`still partial: ${r.status} ${r.text}`);
    }, { timeoutMs: 15_000, intervalMs: 300, message: 'numbered publishes again' });
    // Redis came back empty (a restarted Redis without persistence): a new
    // epoch, and the frontend gets to know it from the events.
    await h.eventually(() => f.last && f.last.epoch !== epoch, { timeoutMs: 5000, message: 'an event of the new epoch' });
  });
});
