'use strict';

// Contract v2 section 4.2: a socket whose queue of unsent messages passes
// `client_queue_max` has its transport closed, never a message dropped on a
// connection that stays open; the others are not slowed; the closes are
// counted in switchboard_slow_client_disconnects_total.
//
// The slow clients: a raw websocket client (no socket.io-client) that stops
// reading its TCP socket, socket.io-client whose websocket stops reading, and
// a raw long-polling session that is never polled again. Every publishing
// loop is bounded in count and time; loopback TCP buffers absorb a few MB
// before the server's queue grows, so the websocket loops publish up to
// 24 MB of 1 KB items, in batches.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const crypto = require('node:crypto');
const h = require('../helpers');

const SKIP = h.isPeer && 'the peer implements contract v1: its queues have no bound (section 4.2 is v2)';
const TOKEN = 's3cret';
// A batch of 8 items is at most 8 messages queued at once for a subscriber
// that keeps up; QUEUE_MAX is small, yet 32 batches of lag, so that a
// well-behaved client on a loaded machine (debug build) stays below it.
const QUEUE_MAX = 256;
const BATCH = 8;
const MAX_BATCHES = 3000;
const MAX_PUBLISH_MS = 90_000;
const FILLER = 'x'.repeat(1000);

/** A raw RFC 6455 client over a TCP socket: text frames only, enough for Engine.IO. */
class RawWebsocket {
  constructor(port) {
    this.port = port;
    this.texts = [];
    this.waiters = [];
    this.buf = Buffer.alloc(0);
    this.upgraded = false;
    this.ended = false;
  }

  open() {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString('base64');
      this.sock = net.connect(this.port, '127.0.0.1', () => {
        this.sock.write(
          'GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n' +
            `Host: 127.0.0.1:${this.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      this.sock.on('data', (chunk) => {
        this.buf = Buffer.concat([this.buf, chunk]);
        if (!this.upgraded) {
          const end = this.buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = this.buf.subarray(0, end).toString();
          if (!head.startsWith('HTTP/1.1 101')) {
            reject(new Error(`no upgrade: ${head}`));
            return;
          }
          this.upgraded = true;
          this.buf = this.buf.subarray(end + 4);
          resolve();
        }
        this.parse();
      });
      this.sock.on('error', () => {});
      this.sock.on('close', () => {
        this.ended = true;
        this.notify();
      });
    });
  }

  parse() {
    for (;;) {
      if (this.buf.length < 2) return;
      const opcode = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      const payload = this.buf.subarray(at, at + len);
      this.buf = this.buf.subarray(at + len);
      if (opcode === 1) {
        const text = payload.toString();
        // Answer pings while reading, as any client does.
        if (text === '2') this.send('3');
        this.texts.push(text);
      }
      this.notify();
    }
  }

  notify() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves with the first text frame for which test(text) holds. */
  async next(test, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.texts.findIndex(test);
      if (i >= 0) return this.texts.splice(i, 1)[0];
      if (this.ended) throw new Error(`connection ended; frames left: ${JSON.stringify(this.texts)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no such frame within ${timeoutMs} ms; got ${JSON.stringify(this.texts)}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** A masked text frame, as a client must send. */
  send(text) {
    const payload = Buffer.from(text);
    const mask = crypto.randomBytes(4);
    const head = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
    this.sock.write(Buffer.concat([head, mask, masked]));
  }

  /** Stops reading the TCP socket: the kernel buffers fill, then the server's queue. */
  stopReading() {
    this.sock.pause();
  }

  resumeReading() {
    this.sock.resume();
  }

  /** Resolves once the server ended the connection (reading what is left first). */
  async closedByServer(timeoutMs) {
    this.resumeReading();
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error(`the server did not close the connection within ${timeoutMs} ms`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  destroy() {
    this.sock.destroy();
  }
}

function timelinePath(key) {
  return `/v1/timeline/${key.entityType}/${encodeURIComponent(key.entityId)}`;
}

async function slowDisconnects(server) {
  const res = await h.http('GET', `${server.internalUrl}/metrics`, { token: TOKEN });
  assert.equal(res.status, 200);
  const m = res.text.match(/^switchboard_slow_client_disconnects_total (\d+)$/m);
  assert.ok(m, 'switchboard_slow_client_disconnects_total is exposed');
  return Number(m[1]);
}

async function connectionsOf(server) {
  const res = await h.http('GET', `${server.internalUrl}/metrics`, { token: TOKEN });
  return Number(res.text.match(/^switchboard_connections (\d+)$/m)[1]);
}

/**
 * Publishes batches of BATCH 1 KB items to `key` until done() holds (checked
 * every 10 batches), at most MAX_BATCHES batches and MAX_PUBLISH_MS. Resolves
 * with the ids published, in order.
 */
async function publishUntil(server, key, tag, done) {
  const ids = [];
  const started = Date.now();
  for (let b = 0; b < MAX_BATCHES && Date.now() - started < MAX_PUBLISH_MS; b++) {
    const events = [];
    for (let i = 0; i < BATCH; i++) {
      const id = `${tag}-${ids.length}`;
      ids.push(id);
      events.push({ type: 'new_item', entityType: key.entityType, entityId: key.entityId, item: { id, body: FILLER } });
    }
    const res = await h.http('POST', `${server.internalUrl}/v1/timeline/batch`, { token: TOKEN, body: { events } });
    assert.equal(res.status, 202, `batch ${b}: ${res.status} ${res.text}`);
    if (b % 10 === 9 && (await done())) return ids;
  }
  assert.fail(`still not done after ${ids.length} items in ${Date.now() - started} ms`);
}

/** Resolves as `promise` does, or fails after ms (its timer cleared either way). */
async function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls a long-polling session until what it received matches `re` (at most 5 polls). */
async function pollUntil(url, re) {
  let got = '';
  for (let i = 0; i < 5 && !re.test(got); i++) {
    const res = await h.http('GET', url);
    assert.equal(res.status, 200, `poll: ${res.status} ${res.text}`);
    got += `\x1e${res.text}`;
  }
  assert.match(got, re);
}

/** Records the ids of `timeline:new_item` for `key` on a socket.io-client socket, in arrival order. */
function recordItems(socket, key) {
  const ids = [];
  socket.on('timeline:new_item', (p) => {
    if (p.entityId === key.entityId) ids.push(p.item.id);
  });
  return ids;
}

describe('slow clients (section 4.2)', { skip: SKIP }, () => {
  const server = h.serverForDescribe({
    internal_token: TOKEN,
    events_per_second: 0,
    client_queue_max: QUEUE_MAX,
    max_body: 1_000_000,
  });

  it('a websocket client that stops reading is disconnected; a normal subscriber gets every item in order', async () => {
    const key = { entityType: 'contact', entityId: h.uid('slow') };
    const before = await slowDisconnects(server);

    const normal = await h.connect(server.url, { transports: ['websocket'] });
    const received = recordItems(normal, key);
    const ack = await h.emitAck(normal, 'timeline:subscribe', key);
    assert.equal(ack.ok, true, JSON.stringify(ack));

    const raw = new RawWebsocket(server.port);
    await raw.open();
    await raw.next((t) => t.startsWith('0{'));
    raw.send('40');
    await raw.next((t) => t.startsWith('40'));
    raw.send(`421${JSON.stringify(['timeline:subscribe', key])}`);
    const rawAck = await raw.next((t) => t.startsWith('431'));
    assert.match(rawAck, /"ok":true/);
    assert.equal(await connectionsOf(server), 2);
    raw.stopReading();

    const published = await publishUntil(server, key, 'ws', async () => (await slowDisconnects(server)) > before);

    // The normal subscriber was not slowed down or cut: every item, in order.
    await h.eventually(() => received.length >= published.length, {
      timeoutMs: 20_000,
      message: `normal subscriber receives all ${published.length} items (has ${received.length})`,
    });
    assert.deepEqual(received, published);
    assert.equal(normal.connected, true);
    assert.equal(await slowDisconnects(server), before + 1);

    // The server dropped the slow connection (its socket is gone) and is healthy.
    await raw.closedByServer(30_000);
    await h.eventually(async () => (await connectionsOf(server)) === 1, { message: 'the slow socket is gone' });
    const health = await h.http('GET', `${server.internalUrl}/health`);
    assert.equal(health.status, 200);
    normal.close();
  });

  it('socket.io-client whose websocket stops reading sees a transport close and reconnects by itself', async () => {
    const key = { entityType: 'contact', entityId: h.uid('slow') };
    const before = await slowDisconnects(server);
    const slow = await h.connect(server.url, { transports: ['websocket'], reconnection: true, reconnectionDelay: 100 });
    assert.equal((await h.emitAck(slow, 'timeline:subscribe', key)).ok, true);
    const reason = new Promise((resolve) => slow.once('disconnect', resolve));
    const tcp = slow.io.engine.transport.ws._socket;
    tcp.pause();

    await publishUntil(server, key, 'sio', async () => (await slowDisconnects(server)) > before);
    assert.equal(await slowDisconnects(server), before + 1);

    tcp.resume();
    const why = await within(reason, 30_000, 'the disconnect event');
    assert.ok(['transport close', 'transport error'].includes(why), `disconnect reason ${why}`);
    await h.eventually(() => slow.connected, { timeoutMs: 10_000, message: 'socket.io-client reconnected' });
    // The new connection works: it can subscribe again.
    assert.equal((await h.emitAck(slow, 'timeline:subscribe', key)).ok, true);
    slow.close();
  });

  it('a long-polling session not polled while messages pile up is closed past client_queue_max', async () => {
    const key = { entityType: 'contact', entityId: h.uid('slow') };
    await h.eventually(async () => (await connectionsOf(server)) === 0, { message: 'the earlier sockets are gone' });
    const before = await slowDisconnects(server);
    const base = `${server.url}/socket.io/?EIO=4&transport=polling`;
    const open = await h.http('GET', base);
    const sid = JSON.parse(open.text.slice(1)).sid;
    const url = `${base}&sid=${sid}`;
    assert.equal((await h.http('POST', url, { raw: '40', headers: { 'content-type': 'text/plain' } })).status, 200);
    await pollUntil(url, /(^|\x1e)40/);
    const subscribe = `421${JSON.stringify(['timeline:subscribe', key])}`;
    assert.equal((await h.http('POST', url, { raw: subscribe, headers: { 'content-type': 'text/plain' } })).status, 200);
    await pollUntil(url, /(^|\x1e)431\[\{[^\]]*"ok":true/);

    // Exactly client_queue_max messages wait: the session stays.
    for (let i = 0; i < QUEUE_MAX; i++) {
      const res = await h.http('POST', `${server.internalUrl}${timelinePath(key)}/items`, { token: TOKEN, body: { id: `p-${i}` } });
      assert.equal(res.status, 202);
    }
    assert.equal(await slowDisconnects(server), before);
    assert.equal(await connectionsOf(server), 1);
    // One more closes it.
    await h.http('POST', `${server.internalUrl}${timelinePath(key)}/items`, { token: TOKEN, body: { id: 'p-last' } });
    await h.eventually(async () => (await connectionsOf(server)) === 0, { message: 'the polling session is closed' });
    assert.equal(await slowDisconnects(server), before + 1);
    const poll = await h.http('GET', url);
    assert.equal(poll.status, 400, `a poll of the closed session: ${poll.status} ${poll.text}`);
  });
});
