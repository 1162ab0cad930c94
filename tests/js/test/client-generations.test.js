'use strict';

// Contract section 1, client generations (v2): the real socket.io-client 2.x
// (with allow_eio3), 3.x and 4.x, socket.io-msgpack-parser (parser = msgpack)
// and python-socketio's client, each over websocket, long-polling and
// polling upgraded to websocket, run through the same scenario. The suite
// prints the matrix (client x transport -> pass/fail) at the end.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const h = require('../helpers');
const { startRedis } = require('../redis');
const { GENERATIONS, TRANSPORTS, openClient, closeAllClients } = require('../generations');
const msgpackParser = require('socket.io-msgpack-parser');

const SKIP = h.isPeer && 'allow_eio3 and parser are keys of the Rust binary';
const PYTHON = process.env.PYTHON_SOCKETIO_PYTHON || path.join(__dirname, '..', '..', 'python', '.venv', 'bin', 'python');
const PYTHON_SCENARIO = path.join(__dirname, '..', '..', 'python', 'scenario.py');

// row -> transport -> 'pass' | 'FAIL'
const matrix = new Map();
function record(row, transport, outcome) {
  if (!matrix.has(row)) matrix.set(row, {});
  matrix.get(row)[transport] = outcome;
}

/** Runs `body` as one cell of the matrix: its outcome is recorded, its error rethrown. */
async function cell(row, transport, body) {
  try {
    await body();
    record(row, transport, 'pass');
  } catch (e) {
    record(row, transport, 'FAIL');
    throw e;
  }
}

function printMatrix() {
  const transports = Object.keys(TRANSPORTS);
  const width = Math.max(...[...matrix.keys()].map((r) => r.length), 'client'.length);
  const lines = [
    `| ${'client'.padEnd(width)} | ${transports.map((t) => t.padEnd(9)).join(' | ')} |`,
    `|${'-'.repeat(width + 2)}|${transports.map(() => '-'.repeat(11)).join('|')}|`,
  ];
  for (const [row, cells] of matrix) {
    lines.push(`| ${row.padEnd(width)} | ${transports.map((t) => (cells[t] || 'not run').padEnd(9)).join(' | ')} |`);
  }
  console.log(`\nClient generations x transports (contract section 1):\n${lines.join('\n')}\n`);
}

const api = (server, method, p, body) => h.http(method, `${server.internalUrl}${p}`, { body });

/**
 * What every generation must do: two agents on a ticket (ack, viewers:updated,
 * collision:warning), an error ack and an error event, a timeline with a
 * published item (numbers and null intact), and a payload with binary in it.
 */
async function contractScenario(server, open, { binary = true } = {}) {
  const ticket = h.uid('t');
  const a = await open();
  const b = await open();

  const view = { ticketId: ticket, agentId: 'ada', agentName: 'Ada' };
  if (binary) view.avatar = Buffer.from([0, 1, 2, 255]);
  const first = await a.emitAck('ticket:view', view);
  assert.equal(first.ok, true, JSON.stringify(first));
  assert.deepEqual(first.viewers.map((v) => v.agentId), ['ada']);

  const second = await b.emitAck('ticket:view', { ticketId: ticket, agentId: 'bob', agentName: 'Bob' });
  assert.equal(second.ok, true, JSON.stringify(second));
  assert.equal(second.viewers.length, 2);
  const updated = await a.next('viewers:updated', (p) => p.ticketId === ticket && p.viewers.length === 2);
  assert.deepEqual(updated.viewers.map((v) => v.agentId).sort(), ['ada', 'bob']);
  const warning = await b.next('collision:warning', (p) => p.ticketId === ticket);
  assert.deepEqual(warning.viewers.map((v) => v.agentId), ['ada']);

  const refused = await a.emitAck('ticket:view', { ticketId: ticket });
  assert.deepEqual(refused.ok, false);
  assert.equal(refused.error.code, 'INVALID_PAYLOAD');
  a.emit('ticket:typing', { ticketId: h.uid('never-viewed'), agentId: 'ada' });
  const error = await a.next('ticket:error', (p) => p.event === 'ticket:typing');
  assert.equal(error.code, 'NOT_VIEWING');
  if (binary) {
    // A binary where a string belongs is refused like any wrong type.
    const wrong = await a.emitAck('ticket:view', { ticketId: Buffer.from('x'), agentId: 'ada', agentName: 'Ada' });
    assert.equal(wrong.error.code, 'INVALID_PAYLOAD');
  }

  const entityId = h.uid('e');
  const subscribed = await b.emitAck('timeline:subscribe', { entityType: 'contact', entityId });
  assert.equal(subscribed.ok, true, JSON.stringify(subscribed));
  const item = { id: 1, text: 'héllo', amount: 12.5, big: 2 ** 40, negative: -3, none: null, tags: ['a', true] };
  const published = await api(server, 'POST', `/v1/timeline/contact/${entityId}/items`, item);
  assert.equal(published.status, 202, published.text);
  const arrived = await b.next('timeline:new_item', (p) => p.entityId === entityId);
  assert.deepEqual(arrived.item, item);

  a.close();
  b.close();
}

describe('client generations (contract section 1)', { skip: SKIP }, () => {
  after(() => {
    closeAllClients();
    h.closeAllSockets();
    printMatrix();
  });

  describe('allow_eio3 = true, default parser: every socket.io-client generation', () => {
    const server = h.serverForDescribe({ allow_eio3: true, parser: 'default' });
    for (const generation of Object.keys(GENERATIONS)) {
      for (const transport of Object.keys(TRANSPORTS)) {
        it(`${generation} over ${transport}: the contract's events, acks, errors, timeline, binary`, () =>
          cell(generation, transport, () => contractScenario(server, () => openClient(generation, transport, server.url))));
      }
    }
  });

  describe('parser = msgpack: socket.io-msgpack-parser clients', () => {
    const server = h.serverForDescribe({ parser: 'msgpack' });
    for (const generation of ['socket.io-client 3.x', 'socket.io-client 4.x']) {
      for (const transport of Object.keys(TRANSPORTS)) {
        const row = `${generation} + msgpack-parser`;
        it(`${row} over ${transport}: the same scenario`, () =>
          cell(row, transport, () =>
            contractScenario(server, () => openClient(generation, transport, server.url, { parser: msgpackParser }))));
      }
    }
    for (const transport of ['websocket', 'polling']) {
      it(`a JSON-parser client over ${transport} cannot connect (as with socket.io)`, async () => {
        await assert.rejects(openClient('socket.io-client 4.x', transport, server.url, { timeoutMs: 2000 }));
      });
    }
  });

  describe('python-socketio client', () => {
    const server = h.serverForDescribe({ parser: 'default' });
    before(() => {
      if (!fs.existsSync(PYTHON)) {
        throw new Error(`no Python with python-socketio at ${PYTHON}: run scripts/test (it creates tests/python/.venv), or set PYTHON_SOCKETIO_PYTHON`);
      }
    });
    for (const transport of Object.keys(TRANSPORTS)) {
      it(`python-socketio over ${transport}: the same scenario (tests/python/scenario.py)`, () =>
        cell('python-socketio 5.x', transport, async () => {
          const run = await h.runToExit(PYTHON, [PYTHON_SCENARIO, server.url, server.internalUrl, transport], { timeoutMs: 30_000 });
          assert.equal(run.code, 0, `scenario.py ${transport} exited ${run.code}:\n${run.stdout}\n${run.stderr}`);
          assert.match(run.stdout, /^ok /m, run.stdout);
        }));
    }
  });

  describe('allow_eio3 = false (the default): 2.x is refused, newer clients are not', () => {
    const server = h.serverForDescribe({ parser: 'default', allow_eio3: false });
    it('an Engine.IO v3 request gets 400 {"code":5,"message":"Unsupported protocol version"} (a number, as engine.io)', async () => {
      for (const transport of ['polling', 'websocket']) {
        const res = await h.http('GET', `${server.url}/socket.io/?EIO=3&transport=${transport}`);
        assert.equal(res.status, 400);
        assert.deepEqual(res.json, { code: 5, message: 'Unsupported protocol version' });
      }
    });
    for (const transport of ['websocket', 'polling']) {
      it(`socket.io-client 2.x over ${transport} cannot connect`, async () => {
        await assert.rejects(openClient('socket.io-client 2.x', transport, server.url, { timeoutMs: 2000 }));
      });
    }
    it('socket.io-client 4.x still connects', async () => {
      const c = await openClient('socket.io-client 4.x', 'upgrade', server.url);
      c.close();
    });
    it('other Engine.IO errors carry numeric codes too (engine.io Server.errorMessages)', async () => {
      const cases = [
        ['EIO=4&transport=carrier-pigeon', { code: 0, message: 'Transport unknown' }],
        ['EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAA', { code: 1, message: 'Session ID unknown' }],
        ['EIO=9&transport=polling', { code: 5, message: 'Unsupported protocol version' }],
      ];
      for (const [query, body] of cases) {
        const res = await h.http('GET', `${server.url}/socket.io/?${query}`);
        assert.equal(res.status, 400, query);
        assert.deepEqual(res.json, body, query);
      }
    });
  });

  describe('socket.io-client 2.x with auth_mode = jwt: the token as the query parameter `token`', () => {
    const SECRET = 'generations-secret';
    const server = h.serverForDescribe({ allow_eio3: true, parser: 'default', auth_mode: 'jwt', jwt_secret: SECRET });
    for (const transport of Object.keys(TRANSPORTS)) {
      it(`over ${transport}: connects as the token's sub; a bad token is refused`, () =>
        cell('2.x, jwt in query', transport, async () => {
          const token = hs256({ sub: 'agent-7', name: 'Seven' }, SECRET);
          const c = await openClient('socket.io-client 2.x', transport, server.url, { query: { token } });
          const ticket = h.uid('t');
          const ack = await c.emitAck('ticket:view', { ticketId: ticket });
          assert.equal(ack.ok, true, JSON.stringify(ack));
          assert.deepEqual(ack.viewers.map((v) => [v.agentId, v.agentName]), [['agent-7', 'Seven']]);
          const forbidden = await c.emitAck('ticket:view', { ticketId: ticket, agentId: 'someone-else', agentName: 'X' });
          assert.equal(forbidden.error.code, 'FORBIDDEN');
          c.close();
          await assert.rejects(
            openClient('socket.io-client 2.x', transport, server.url, { query: { token: `${token}x` }, timeoutMs: 2000 }),
            /unauthorized/,
          );
        }));
    }
    it('a 4.x client gets no such allowance: a query token is not read', async () => {
      const token = hs256({ sub: 'agent-7' }, SECRET);
      await assert.rejects(openClient('socket.io-client 4.x', 'websocket', server.url, { query: { token }, timeoutMs: 2000 }), /unauthorized/);
    });
  });

  describe('socket.io-client 2.x across two instances with Redis', () => {
    let redis;
    let nodes = [];
    before(async () => {
      redis = await startRedis();
      nodes = await h.startNodes(2, { allow_eio3: true, parser: 'default', redis_url: redis.url });
      await h.waitCluster(nodes, 2);
    });
    after(async () => {
      closeAllClients();
      await h.stopNodes(nodes);
      if (redis) await redis.cleanup();
    });
    for (const transport of Object.keys(TRANSPORTS)) {
      it(`over ${transport}: presence and collision warnings cross instances, and a timeline publish`, () =>
        cell('2.x, two instances + Redis', transport, async () => {
          const ticket = h.uid('t');
          const a = await openClient('socket.io-client 2.x', transport, nodes[0].url);
          const b = await openClient('socket.io-client 2.x', transport, nodes[1].url);
          assert.equal((await a.emitAck('ticket:view', { ticketId: ticket, agentId: 'ada', agentName: 'Ada' })).ok, true);
          await h.eventually(async () => {
            const res = await api(nodes[1], 'GET', `/v1/tickets/${ticket}/viewers`);
            return res.status === 200 && res.json.viewers.length === 1;
          }, { message: 'node 1 knows the viewer on node 0' });
          const ack = await b.emitAck('ticket:view', { ticketId: ticket, agentId: 'bob', agentName: 'Bob' });
          assert.equal(ack.viewers.length, 2, JSON.stringify(ack));
          await a.next('viewers:updated', (p) => p.ticketId === ticket && p.viewers.length === 2);
          const warning = await b.next('collision:warning', (p) => p.ticketId === ticket);
          assert.deepEqual(warning.viewers.map((v) => v.agentId), ['ada']);
          b.emit('ticket:typing', { ticketId: ticket, agentId: 'bob' });
          const typing = await a.next('agent:typing', (p) => p.ticketId === ticket);
          assert.equal(typing.agentId, 'bob');
          const entityId = h.uid('e');
          assert.equal((await a.emitAck('timeline:subscribe', { entityType: 'contact', entityId })).ok, true);
          const res = await api(nodes[1], 'POST', `/v1/timeline/contact/${entityId}/items`, { id: 1 });
          assert.equal(res.status, 202, res.text);
          await a.next('timeline:new_item', (p) => p.entityId === entityId);
          b.close();
          await a.next('agent:left', (p) => p.ticketId === ticket && p.agentId === 'bob');
          a.close();
        }));
    }
  });
});

/** An HS256 JWT (the tests' own signer, as test/auth-jwt.test.js). */
function hs256(claims, secret) {
  const crypto = require('node:crypto');
  const b64u = (data) => Buffer.from(data).toString('base64url');
  const data = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
  return `${data}.${crypto.createHmac('sha256', secret).update(data).digest('base64url')}`;
}
