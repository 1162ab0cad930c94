'use strict';

// Contract section 1: connection, transports, upgrade, origins.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const nodeHttp = require('node:http');
const crypto = require('node:crypto');
const h = require('../helpers');

const TOKEN = 's3cret';

describe('connection (section 1)', () => {
  const server = h.serverForDescribe({ internal_token: TOKEN, events_per_second: 0 });
  afterEach(() => h.closeAllSockets());

  for (const transport of h.TRANSPORTS) {
    describe(`over ${transport}`, () => {
      it('connects to namespace / and answers acks', async () => {
        const s = await h.connect(server.url, { transports: [transport] });
        assert.equal(s.connected, true);
        assert.equal(s.io.engine.transport.name, transport);
        const ack = await h.emitAck(s, 'ticket:view', { ticketId: h.uid('t'), agentId: 'a', agentName: 'A' });
        assert.equal(ack.ok, true);
      });

      it('an ack callback is answered exactly once per event, even for many events in flight', async () => {
        const s = await h.connect(server.url, { transports: [transport] });
        const t = h.uid('t');
        await h.emitAck(s, 'ticket:view', { ticketId: t, agentId: 'a', agentName: 'A' });
        let calls = 0;
        const n = 20;
        await new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`only ${calls} acks`)), 3000);
          for (let i = 0; i < n; i++) {
            s.emit(i % 2 ? 'ticket:typing' : 'ticket:stop_typing', { ticketId: t, agentId: 'a' }, () => {
              calls += 1;
              if (calls === n) {
                clearTimeout(timer);
                resolve();
              }
            });
          }
        });
        await h.quietPeriod(100); // no ack answered twice
        assert.equal(calls, n);
      });

      it('a payload with a binary field is parsed like any other (extra fields ignored)', async () => {
        const s = await h.connect(server.url, { transports: [transport] });
        const t = h.uid('t');
        const ack = await h.emitAck(s, 'ticket:view', { ticketId: t, agentId: 'a', agentName: 'A', avatar: Buffer.from([0, 1, 2, 255]) });
        assert.equal(ack.ok, true, JSON.stringify(ack));
        assert.equal(ack.ticketId, t);
        h.assertAckError(await h.emitAck(s, 'ticket:view', Buffer.from('{"ticketId":"x"}')), 'INVALID_PAYLOAD');
      });

      it('a client disconnect is seen by the server (stats)', async () => {
        const s = await h.connect(server.url, { transports: [transport] });
        const stats = async () => (await h.http('GET', `${server.internalUrl}/v1/stats`, { token: TOKEN })).json.connections;
        const before = await stats();
        assert.ok(before >= 1);
        s.disconnect();
        await h.eventually(async () => (await stats()) === before - 1, { message: 'connection count drops' });
      });
    });
  }

  it('upgrades from polling to websocket and keeps the session', async () => {
    const s = await h.connect(server.url, {}); // default transports: polling, then websocket
    const t = h.uid('t');
    const ack = await h.emitAck(s, 'ticket:view', { ticketId: t, agentId: 'a', agentName: 'A' });
    assert.equal(ack.ok, true);
    await h.eventually(() => s.io.engine.transport.name === 'websocket', { timeoutMs: 5000, message: 'upgrade to websocket' });
    const again = await h.emitAck(s, 'ticket:view', { ticketId: h.uid('t'), agentId: 'a', agentName: 'A' });
    assert.equal(again.ok, true);
    // Same socket, same state: it still views the first ticket.
    assert.deepEqual(await h.emitAck(s, 'ticket:typing', { ticketId: t, agentId: 'a' }), { ok: true, ticketId: t });
  });

  it('the upgrade event fires and the ack comes back over websocket', async () => {
    const s = await h.connect(server.url, { transports: ['polling', 'websocket'] });
    if (s.io.engine.transport.name !== 'websocket') {
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no upgrade within 5 s')), 5000);
        s.io.engine.once('upgrade', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    assert.equal(s.io.engine.transport.name, 'websocket');
    const ack = await h.emitAck(s, 'ticket:view', { ticketId: h.uid('t'), agentId: 'a', agentName: 'A' });
    assert.equal(ack.ok, true);
  });
});

// --- Origins ---------------------------------------------------------------

function rawGet(url, headers) {
  return new Promise((resolve, reject) => {
    const req = nodeHttp.get(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

// A raw WebSocket handshake: resolves 101 when upgraded, else the HTTP status.
function rawUpgrade(url, headers) {
  return new Promise((resolve, reject) => {
    const req = nodeHttp.get(url, {
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
        ...headers,
      },
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('upgrade', (res, sock) => {
      sock.destroy();
      resolve({ status: 101, headers: res.headers });
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode, headers: res.headers });
    });
    req.on('error', reject);
  });
}

describe('origins (section 1, cors_origins)', { skip: h.isPeer && 'the peer uses socket.io\'s cors option, not the contract\'s origin check' }, () => {
  const GOOD = 'http://good.example';
  const OTHER = 'http://other.example:8080';
  const server = h.serverForDescribe({ internal_token: TOKEN, cors_origins: [GOOD, OTHER] });

  const handshake = (origin) => rawGet(`${server.url}/socket.io/?EIO=4&transport=polling`, origin ? { Origin: origin } : {});

  it('a polling handshake from an origin on the list works and gets its CORS header', async () => {
    for (const origin of [GOOD, OTHER]) {
      const res = await handshake(origin);
      assert.equal(res.status, 200, res.body);
      assert.equal(res.headers['access-control-allow-origin'], origin);
      assert.match(res.body, /"sid"/);
    }
  });

  it('a polling handshake from an origin off the list gets 403 and no CORS headers', async () => {
    for (const origin of ['http://evil.example', 'https://good.example', 'http://good.example:8080', 'http://other.example', 'http://good.example.evil', 'null']) {
      const res = await handshake(origin);
      assert.equal(res.status, 403, `${origin}: ${res.status} ${res.body}`);
      assert.equal(res.headers['access-control-allow-origin'], undefined, origin);
      assert.equal(res.headers['access-control-allow-credentials'], undefined, origin);
    }
  });

  it('a request without Origin is not affected', async () => {
    const res = await handshake(null);
    assert.equal(res.status, 200, res.body);
    const s = await h.connect(server.url, { transports: ['polling'] });
    assert.equal(s.connected, true);
    const ws = await h.connect(server.url, { transports: ['websocket'] });
    assert.equal(ws.connected, true);
  });

  it('a websocket handshake from an origin off the list gets 403; on the list it upgrades', async () => {
    const url = `${server.url}/socket.io/?EIO=4&transport=websocket`;
    assert.equal((await rawUpgrade(url, { Origin: 'http://evil.example' })).status, 403);
    assert.equal((await rawUpgrade(url, { Origin: GOOD })).status, 101);
    assert.equal((await rawUpgrade(url, {})).status, 101);
  });

  it('an upgrade of a polling session from an origin off the list gets 403', async () => {
    const res = await handshake(GOOD);
    const sid = JSON.parse(res.body.slice(res.body.indexOf('{'))).sid;
    const url = `${server.url}/socket.io/?EIO=4&transport=websocket&sid=${encodeURIComponent(sid)}`;
    assert.equal((await rawUpgrade(url, { Origin: 'http://evil.example' })).status, 403);
  });
});
