'use strict';

// Contract section 5: the internal HTTP API (routes, replies, errors, auth,
// limits), and what the public listener serves. Deliveries to sockets are
// checked in timelines.test.js.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const h = require('../helpers');

const TOKEN = 's3cret';
const MAX_BODY = 1024;
const CONFIG = { internal_token: TOKEN, entity_types: ['contact', 'deal'], events_per_second: 0, max_body: MAX_BODY };

describe('internal HTTP API (section 5)', () => {
  const server = h.serverForDescribe(CONFIG);
  afterEach(() => h.closeAllSockets());

  const api = (method, path, opts = {}) => h.http(method, `${server.internalUrl}${path}`, { token: TOKEN, ...opts });
  const accepted = (res, body) => {
    assert.equal(res.status, 202, res.text);
    assert.match(res.headers.get('content-type') || '', /application\/json/);
    assert.deepEqual(res.json, body);
  };
  // A single publish: 202 { delivered: true }, plus (v2) the event's offset,
  // an integer >= 1, and epoch; resolves with that position.
  const delivered = (res) => {
    const position = {};
    if (h.hasPositions) {
      position.offset = res.json && res.json.offset;
      position.epoch = h.epochOf(res.json, 'publish reply');
      assert.ok(Number.isInteger(position.offset) && position.offset >= 1, `offset: ${res.text}`);
    }
    accepted(res, h.withPosition({ delivered: true }, position));
    return position;
  };
  // Publishes to one timeline one after another: offsets one apart, one epoch.
  const consecutive = (...positions) => {
    if (!h.hasPositions) return;
    for (let i = 1; i < positions.length; i++) {
      assert.deepEqual(positions[i], { offset: positions[0].offset + i, epoch: positions[0].epoch }, JSON.stringify(positions));
    }
  };

  describe('probes', () => {
    it('GET /health answers 200 {"status":"ok"} without a token', async () => {
      const res = await h.http('GET', `${server.internalUrl}/health`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, { status: 'ok' });
    });

    it('GET /ready answers 200 {"status":"ready"} without a token', async () => {
      const res = await h.http('GET', `${server.internalUrl}/ready`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, { status: 'ready' });
    });

    it('GET /metrics is Prometheus text without a token', async () => {
      const res = await h.http('GET', `${server.internalUrl}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') || '', /^text\/plain/);
      for (const name of ['switchboard_connections', 'switchboard_viewers', 'switchboard_timeline_subscriptions', 'switchboard_published_total']) {
        assert.match(res.text, new RegExp(`^${name}(\\{[^}]*\\})? [0-9.eE+-]+$`, 'm'), `metric ${name} missing:\n${res.text}`);
      }
      // Every line is a comment or a sample.
      for (const line of res.text.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [^ ]+( [0-9]+)?$/, `not a Prometheus sample: ${line}`);
      }
    });
  });

  describe('authorization', () => {
    const routes = [
      ['POST', '/v1/timeline/contact/1/items', { id: 1 }],
      ['PUT', '/v1/timeline/contact/1/items/1', { id: 1 }],
      ['POST', '/v1/timeline/contact/1/refresh', {}],
      ['POST', '/v1/timeline/batch', { events: [] }],
      ['GET', '/v1/tickets/1/viewers'],
      ['GET', '/v1/stats'],
    ];
    for (const [method, path, body] of routes) {
      it(`${method} ${path} needs the bearer token (401 UNAUTHORIZED)`, async () => {
        h.assertHttpError(await h.http(method, `${server.internalUrl}${path}`, { body }), 401, 'UNAUTHORIZED');
        h.assertHttpError(await h.http(method, `${server.internalUrl}${path}`, { body, token: 'wrong' }), 401, 'UNAUTHORIZED');
        h.assertHttpError(await h.http(method, `${server.internalUrl}${path}`, { body, token: `${TOKEN}x` }), 401, 'UNAUTHORIZED');
        h.assertHttpError(await h.http(method, `${server.internalUrl}${path}`, { body, headers: { authorization: `Basic ${TOKEN}` } }), 401, 'UNAUTHORIZED');
        h.assertHttpError(await h.http(method, `${server.internalUrl}${path}`, { body, headers: { authorization: TOKEN } }), 401, 'UNAUTHORIZED');
        const ok = await h.http(method, `${server.internalUrl}${path}`, { body, token: TOKEN });
        assert.ok(ok.status === 200 || ok.status === 202, `with the token: ${ok.status} ${ok.text}`);
      });
    }
  });

  describe('POST /v1/timeline/{entityType}/{entityId}/items', () => {
    it('accepts an item with a string or an integer id: 202 {"delivered":true} (v2: with offset and epoch)', async () => {
      delivered(await api('POST', '/v1/timeline/contact/c1/items', { body: { id: 'n-1', text: 'hello' } }));
      consecutive(
        delivered(await api('POST', '/v1/timeline/deal/42/items', { body: { id: 7 } })),
        delivered(await api('POST', '/v1/timeline/deal/42/items', { body: { id: 0, extra: [1, 2] } })),
      );
    });

    it('is delivered even when nobody is subscribed', async () => {
      const first = delivered(await api('POST', `/v1/timeline/contact/${h.uid('nobody')}/items`, { body: { id: 1 } }));
      if (h.hasPositions) assert.equal(first.offset, 1, 'the first event of a timeline has offset 1');
    });

    const bad = [
      ['an array item', [{ id: 1 }]],
      ['a string item', 'item'],
      ['a number item', 5],
      ['a null item', null],
      ['an item without id', { text: 'x' }],
      ['an item with a null id', { id: null }],
      ['an item with a fractional id', { id: 1.5 }],
      ['an item with an object id', { id: { n: 1 } }],
      ['an item with a boolean id', { id: true }],
    ];
    for (const [name, body] of bad) {
      it(`400 INVALID_PAYLOAD for ${name}`, async () => {
        h.assertHttpError(await api('POST', '/v1/timeline/contact/c1/items', { raw: JSON.stringify(body) }), 400, 'INVALID_PAYLOAD');
      });
    }

    it('400 INVALID_JSON for a body that does not parse, or no body', async () => {
      h.assertHttpError(await api('POST', '/v1/timeline/contact/c1/items', { raw: '{"id": 1' }), 400, 'INVALID_JSON');
      h.assertHttpError(await api('POST', '/v1/timeline/contact/c1/items', { raw: 'not json' }), 400, 'INVALID_JSON');
      h.assertHttpError(await api('POST', '/v1/timeline/contact/c1/items', { raw: '' }), 400, 'INVALID_JSON');
      h.assertHttpError(await api('POST', '/v1/timeline/contact/c1/items'), 400, 'INVALID_JSON');
    });

    const badPaths = [
      ['an upper-case entity type', '/v1/timeline/Contact/c1/items'],
      ['an entity type starting with a digit', '/v1/timeline/9contact/c1/items'],
      ['an entity type of 33 characters', `/v1/timeline/${'c'.repeat(33)}/c1/items`],
      ['an entityId of 129 characters', `/v1/timeline/contact/${'e'.repeat(129)}/items`],
      ['an entityId with a control character', '/v1/timeline/contact/a%00b/items'],
      ['an entityId with a newline', '/v1/timeline/contact/a%0Ab/items'],
    ];
    for (const [name, path] of badPaths) {
      it(`400 INVALID_PAYLOAD for ${name} in the path`, async () => {
        h.assertHttpError(await api('POST', path, { body: { id: 1 } }), 400, 'INVALID_PAYLOAD');
      });
    }

    it('accepts a 128-character entityId and a percent-encoded one', async () => {
      delivered(await api('POST', `/v1/timeline/contact/${'e'.repeat(128)}/items`, { body: { id: 1 } }));
      delivered(await api('POST', `/v1/timeline/contact/${encodeURIComponent('a b/é')}/items`, { body: { id: 1 } }));
    });

    it('403 FORBIDDEN for an entity type off the allow-list; 400 wins over 403', async () => {
      h.assertHttpError(await api('POST', '/v1/timeline/task/c1/items', { body: { id: 1 } }), 403, 'FORBIDDEN');
      h.assertHttpError(await api('POST', '/v1/timeline/task/c1/items', { body: { noId: 1 } }), 400, 'INVALID_PAYLOAD');
      h.assertHttpError(await api('POST', '/v1/timeline/task/c1/items', { raw: '{' }), 400, 'INVALID_JSON');
      h.assertHttpError(await api('POST', `/v1/timeline/task/${'e'.repeat(129)}/items`, { body: { id: 1 } }), 400, 'INVALID_PAYLOAD');
    });
  });

  describe('PUT /v1/timeline/{entityType}/{entityId}/items/{itemId}', () => {
    it('accepts an item object, with or without id: 202 {"delivered":true} (v2: with offset and epoch)', async () => {
      consecutive(
        delivered(await api('PUT', '/v1/timeline/contact/c1/items/i1', { body: { id: 'i1', v: 2 } })),
        delivered(await api('PUT', '/v1/timeline/contact/c1/items/77', { body: { v: 3 } })),
      );
    });

    it('400 INVALID_PAYLOAD for an item that is not an object or a bad itemId', async () => {
      h.assertHttpError(await api('PUT', '/v1/timeline/contact/c1/items/i1', { raw: '[]' }), 400, 'INVALID_PAYLOAD');
      h.assertHttpError(await api('PUT', '/v1/timeline/contact/c1/items/i1', { raw: '"x"' }), 400, 'INVALID_PAYLOAD');
      h.assertHttpError(await api('PUT', '/v1/timeline/contact/c1/items/i1', { raw: 'null' }), 400, 'INVALID_PAYLOAD');
      h.assertHttpError(await api('PUT', `/v1/timeline/contact/c1/items/${'i'.repeat(129)}`, { body: { v: 1 } }), 400, 'INVALID_PAYLOAD');
      h.assertHttpError(await api('PUT', '/v1/timeline/contact/c1/items/i%01', { body: { v: 1 } }), 400, 'INVALID_PAYLOAD');
      h.assertHttpError(await api('PUT', '/v1/timeline/Contact/c1/items/i1', { body: { v: 1 } }), 400, 'INVALID_PAYLOAD');
    });

    it('400 INVALID_JSON, 403 FORBIDDEN', async () => {
      h.assertHttpError(await api('PUT', '/v1/timeline/contact/c1/items/i1', { raw: '{{' }), 400, 'INVALID_JSON');
      h.assertHttpError(await api('PUT', '/v1/timeline/contact/c1/items/i1', { raw: '' }), 400, 'INVALID_JSON');
      h.assertHttpError(await api('PUT', '/v1/timeline/task/c1/items/i1', { body: { v: 1 } }), 403, 'FORBIDDEN');
      h.assertHttpError(await api('PUT', '/v1/timeline/task/c1/items/i1', { raw: '[]' }), 400, 'INVALID_PAYLOAD');
    });
  });

  describe('POST /v1/timeline/{entityType}/{entityId}/refresh', () => {
    it('accepts a reason string, null, {}, or no body: 202 {"delivered":true} (v2: with offset and epoch)', async () => {
      consecutive(
        delivered(await api('POST', '/v1/timeline/contact/c1/refresh', { body: { reason: 'import' } })),
        delivered(await api('POST', '/v1/timeline/contact/c1/refresh', { body: { reason: null } })),
        delivered(await api('POST', '/v1/timeline/contact/c1/refresh', { body: {} })),
        delivered(await api('POST', '/v1/timeline/contact/c1/refresh')),
        delivered(await api('POST', '/v1/timeline/contact/c1/refresh', { raw: '' })),
      );
    });

    it('400 INVALID_PAYLOAD for a reason that is not a string or null, or a body that is not an object', async () => {
      for (const reason of [5, true, { a: 1 }, ['x']]) {
        h.assertHttpError(await api('POST', '/v1/timeline/contact/c1/refresh', { body: { reason } }), 400, 'INVALID_PAYLOAD');
      }
      h.assertHttpError(await api('POST', '/v1/timeline/contact/c1/refresh', { raw: '[]' }), 400, 'INVALID_PAYLOAD');
      h.assertHttpError(await api('POST', '/v1/timeline/contact/c1/refresh', { raw: '"reason"' }), 400, 'INVALID_PAYLOAD');
      h.assertHttpError(await api('POST', '/v1/timeline/contact/c1/refresh', { raw: '{"reason":' }), 400, 'INVALID_JSON');
      h.assertHttpError(await api('POST', '/v1/timeline/task/c1/refresh', { body: { reason: 5 } }), 400, 'INVALID_PAYLOAD');
      h.assertHttpError(await api('POST', '/v1/timeline/task/c1/refresh', { body: {} }), 403, 'FORBIDDEN');
      h.assertHttpError(await api('POST', '/v1/timeline/contact/%00/refresh', { body: {} }), 400, 'INVALID_PAYLOAD');
    });
  });

  describe('POST /v1/timeline/batch', () => {
    const ne = (over = {}) => ({ type: 'new_item', entityType: 'contact', entityId: 'c1', item: { id: 1 }, ...over });
    const iu = (over = {}) => ({ type: 'item_updated', entityType: 'deal', entityId: 5, itemId: 'i1', item: { v: 1 }, ...over });
    const rf = (over = {}) => ({ type: 'refresh', entityType: 'contact', entityId: 'c1', ...over });

    it('202 {"accepted": n}; [] is fine', async () => {
      accepted(await api('POST', '/v1/timeline/batch', { body: { events: [] } }), { accepted: 0 });
      accepted(await api('POST', '/v1/timeline/batch', { body: { events: [ne(), iu(), rf(), rf({ reason: 'x' }), rf({ reason: null })] } }), { accepted: 5 });
    });

    const bad = [
      ['a body that is an array', [ne()]],
      ['a body without events', {}],
      ['events not an array', { events: ne() }],
      ['events null', { events: null }],
      ['an event that is not an object', { events: [ne(), 'x'] }],
      ['an event of unknown type', { events: [ne(), ne({ type: 'delete' })] }],
      ['an event without type', { events: [ne({ type: undefined })] }],
      ['an event without entityType', { events: [ne({ entityType: undefined })] }],
      ['an event without entityId', { events: [rf({ entityId: undefined })] }],
      ['a new_item without item', { events: [ne({ item: undefined })] }],
      ['a new_item whose item has no id', { events: [ne({ item: { x: 1 } })] }],
      ['a new_item whose item is not an object', { events: [ne({ item: [1] })] }],
      ['an item_updated without itemId', { events: [iu({ itemId: undefined })] }],
      ['an item_updated without item', { events: [iu({ item: undefined })] }],
      ['an item_updated with a bad itemId', { events: [iu({ itemId: '' })] }],
      ['a refresh with a reason that is not a string', { events: [rf({ reason: 1 })] }],
      ['a bad entity type', { events: [ne({ entityType: 'Contact' })] }],
      ['a bad entityId', { events: [ne({ entityId: 'a\u0000' })] }],
      ['a fractional entityId', { events: [ne({ entityId: 1.5 })] }],
      ['a forbidden and an invalid event (400 wins)', { events: [ne({ entityType: 'task' }), ne({ item: null })] }],
    ];
    for (const [name, body] of bad) {
      it(`400 INVALID_PAYLOAD for ${name}`, async () => {
        h.assertHttpError(await api('POST', '/v1/timeline/batch', { raw: JSON.stringify(body) }), 400, 'INVALID_PAYLOAD');
      });
    }

    it('400 INVALID_JSON for a body that does not parse or is empty', async () => {
      h.assertHttpError(await api('POST', '/v1/timeline/batch', { raw: '{"events": [' }), 400, 'INVALID_JSON');
      h.assertHttpError(await api('POST', '/v1/timeline/batch', { raw: '' }), 400, 'INVALID_JSON');
    });

    it('403 FORBIDDEN when an event names an entity type off the allow-list', async () => {
      h.assertHttpError(await api('POST', '/v1/timeline/batch', { body: { events: [ne(), rf({ entityType: 'task' })] } }), 403, 'FORBIDDEN');
    });
  });

  describe('body limit (max_body 1024)', () => {
    const sized = (n) => {
      const base = JSON.stringify({ id: 1, pad: '' });
      const body = JSON.stringify({ id: 1, pad: 'x'.repeat(n - base.length) });
      assert.equal(Buffer.byteLength(body), n);
      return body;
    };

    it('a body of exactly max_body bytes is fine', async () => {
      consecutive(
        delivered(await api('POST', '/v1/timeline/contact/c1/items', { raw: sized(MAX_BODY) })),
        delivered(await api('PUT', '/v1/timeline/contact/c1/items/1', { raw: sized(MAX_BODY) })),
      );
    });

    it('413 PAYLOAD_TOO_LARGE for a body over max_body', async () => {
      h.assertHttpError(await api('POST', '/v1/timeline/contact/c1/items', { raw: sized(MAX_BODY + 1) }), 413, 'PAYLOAD_TOO_LARGE');
      h.assertHttpError(await api('POST', '/v1/timeline/contact/c1/items', { raw: sized(MAX_BODY * 4) }), 413, 'PAYLOAD_TOO_LARGE');
      const events = Array.from({ length: 30 }, (_, i) => ({ type: 'refresh', entityType: 'contact', entityId: `c${i}` }));
      h.assertHttpError(await api('POST', '/v1/timeline/batch', { body: { events } }), 413, 'PAYLOAD_TOO_LARGE');
    });
  });

  describe('GET /v1/tickets/{ticketId}/viewers', () => {
    it('answers [] for a ticket nobody views', async () => {
      const res = await api('GET', '/v1/tickets/nobody-here/viewers');
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') || '', /application\/json/);
      assert.deepEqual(res.json, { ticketId: 'nobody-here', viewers: [] });
    });

    it('lists the viewers of a ticket', async () => {
      const a = await h.connect(server.url, { transports: ['websocket'] });
      const b = await h.connect(server.url, { transports: ['polling'] });
      const t = `${h.uid('t')} é`;
      await h.emitAck(a, 'ticket:view', { ticketId: t, agentId: 'ada', agentName: 'Ada' });
      await h.separateTimestamps(3);
      await h.emitAck(b, 'ticket:view', { ticketId: t, agentId: 'bob', agentName: 'Bob' });
      await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
      const res = await api('GET', `/v1/tickets/${encodeURIComponent(t)}/viewers`);
      assert.equal(res.status, 200, res.text);
      h.assertKeys(res.json, ['ticketId', 'viewers']);
      assert.equal(res.json.ticketId, t);
      h.assertViewerList(res.json.viewers);
      assert.deepEqual(res.json.viewers.map((v) => [v.agentId, v.agentName, v.status]), [['ada', 'Ada', 'viewing'], ['bob', 'Bob', 'typing']]);
    });

    it('400 INVALID_PAYLOAD for a bad ticketId', async () => {
      h.assertHttpError(await api('GET', `/v1/tickets/${'t'.repeat(129)}/viewers`), 400, 'INVALID_PAYLOAD');
      h.assertHttpError(await api('GET', '/v1/tickets/a%07b/viewers'), 400, 'INVALID_PAYLOAD');
    });
  });

  describe('GET /v1/stats', () => {
    it('has the shape { nodeId, uptimeSeconds, connections, tickets, timelines } and no cluster without Redis', async () => {
      const res = await api('GET', '/v1/stats');
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') || '', /application\/json/);
      const s = res.json;
      h.assertKeys(s, ['nodeId', 'uptimeSeconds', 'connections', 'tickets', 'timelines'], 'stats');
      assert.equal(typeof s.nodeId, 'string');
      assert.ok(s.nodeId.length > 0);
      assert.ok(typeof s.uptimeSeconds === 'number' && s.uptimeSeconds >= 0);
      assert.ok(Number.isInteger(s.connections));
      h.assertKeys(s.tickets, ['watched', 'viewers'], 'stats.tickets');
      h.assertKeys(s.timelines, ['rooms', 'subscriptions'], 'stats.timelines');
    });
  });

  describe('unknown routes and methods', () => {
    it('404 NOT_FOUND for a path that is no route', async () => {
      for (const [method, path] of [
        ['GET', '/nope'],
        ['GET', '/v1'],
        ['GET', '/v1/unknown'],
        ['POST', '/v1/timeline/contact/c1/other'],
        ['POST', '/v1/timeline/contact/c1/items/1/extra'],
        ['GET', '/v1/tickets/1/viewers/more'],
        ['GET', '/socket.io/'],
      ]) {
        h.assertHttpError(await api(method, path, method === 'GET' ? {} : { body: {} }), 404, 'NOT_FOUND');
      }
    });

    it(`a wrong method on a known path answers ${h.isPeer ? '404 (peer)' : '405 METHOD_NOT_ALLOWED'}`, async () => {
      for (const [method, path] of [
        ['GET', '/v1/timeline/batch'],
        ['DELETE', '/v1/timeline/contact/c1/items/1'],
        ['GET', '/v1/timeline/contact/c1/refresh'],
        ['POST', '/v1/stats'],
        ['POST', '/v1/tickets/1/viewers'],
      ]) {
        const res = await api(method, path);
        if (h.isPeer) h.assertHttpError(res, 404, 'NOT_FOUND');
        else h.assertHttpError(res, 405, 'METHOD_NOT_ALLOWED');
      }
    });
  });
});

describe('batch size limit (default max_body)', () => {
  let server;
  before(async () => {
    server = await h.startServer({ internal_token: TOKEN, events_per_second: 0 });
  });
  after(async () => {
    if (server) await server.stop();
  });
  const events = (n) => Array.from({ length: n }, (_, i) => ({ type: 'refresh', entityType: 'contact', entityId: `c${i}` }));

  it('1000 events are fine; 1001 are 400 INVALID_PAYLOAD', async () => {
    const ok = await h.http('POST', `${server.internalUrl}/v1/timeline/batch`, { token: TOKEN, body: { events: events(1000) } });
    assert.equal(ok.status, 202, ok.text);
    assert.deepEqual(ok.json, { accepted: 1000 });
    const tooMany = await h.http('POST', `${server.internalUrl}/v1/timeline/batch`, { token: TOKEN, body: { events: events(1001) } });
    h.assertHttpError(tooMany, 400, 'INVALID_PAYLOAD');
  });

  it('no entity allow-list: any well-formed entity type is accepted', async () => {
    const res = await h.http('POST', `${server.internalUrl}/v1/timeline/task/1/items`, { token: TOKEN, body: { id: 1 } });
    assert.equal(res.status, 202, res.text);
  });
});

describe('stats, metrics and viewers counts', () => {
  const server = h.serverForDescribe({ internal_token: TOKEN, events_per_second: 0 });

  const stats = async () => (await h.http('GET', `${server.internalUrl}/v1/stats`, { token: TOKEN })).json;
  // The sum of a metric's samples over all its label sets.
  const metric = async (name) => {
    const res = await h.http('GET', `${server.internalUrl}/metrics`);
    const samples = [...res.text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'gm'))];
    assert.ok(samples.length > 0, `metric ${name} missing:\n${res.text}`);
    return samples.reduce((sum, m) => sum + Number(m[1]), 0);
  };

  it('counts connections, tickets, viewers, timeline rooms and subscriptions of this instance', async () => {
    const empty = await stats();
    assert.deepEqual(
      { connections: empty.connections, tickets: empty.tickets, timelines: empty.timelines },
      { connections: 0, tickets: { watched: 0, viewers: 0 }, timelines: { rooms: 0, subscriptions: 0 } },
    );
    const a1 = await h.connect(server.url, { transports: ['websocket'] });
    const a2 = await h.connect(server.url, { transports: ['polling'] });
    const b = await h.connect(server.url, { transports: ['websocket'] });
    const view = (s, ticketId, agentId) => h.emitAck(s, 'ticket:view', { ticketId, agentId, agentName: agentId });
    await view(a1, 't1', 'ada');
    await view(a2, 't1', 'ada'); // a second tab: still one viewer
    await view(a1, 't2', 'ada');
    await view(b, 't1', 'bob');
    await h.emitAck(a1, 'timeline:subscribe', { entityType: 'contact', entityId: '1' });
    await h.emitAck(b, 'timeline:subscribe', { entityType: 'contact', entityId: '1' });
    await h.emitAck(b, 'timeline:subscribe', { entityType: 'deal', entityId: '1' });
    const s = await stats();
    assert.equal(s.connections, 3);
    assert.deepEqual(s.tickets, { watched: 2, viewers: 3 });
    assert.deepEqual(s.timelines, { rooms: 2, subscriptions: 3 });
    assert.equal(await metric('switchboard_connections'), 3);
    assert.equal(await metric('switchboard_viewers'), 3);
    assert.equal(await metric('switchboard_timeline_subscriptions'), 3);

    const published = await metric('switchboard_published_total');
    const res = await h.http('POST', `${server.internalUrl}/v1/timeline/contact/1/items`, { token: TOKEN, body: { id: 1 } });
    assert.equal(res.status, 202);
    assert.ok((await metric('switchboard_published_total')) > published, 'switchboard_published_total counts publishes');

    a1.disconnect();
    await h.eventually(async () => (await stats()).connections === 2, { message: 'a1 gone' });
    const s2 = await stats();
    assert.deepEqual(s2.tickets, { watched: 1, viewers: 2 });
    assert.deepEqual(s2.timelines, { rooms: 2, subscriptions: 2 });
    a2.disconnect();
    b.disconnect();
    await h.eventually(async () => {
      const x = await stats();
      return x.connections === 0 && x.tickets.viewers === 0 && x.tickets.watched === 0 && x.timelines.subscriptions === 0;
    }, { message: 'all gone' });
    assert.equal(await metric('switchboard_connections'), 0);
  });

  it('uptimeSeconds grows', async () => {
    const first = (await stats()).uptimeSeconds;
    await h.eventually(async () => (await stats()).uptimeSeconds > first, { timeoutMs: 3000, intervalMs: 200, message: 'uptime grows' });
  });
});

describe('the public listener', () => {
  let server;
  before(async () => {
    server = await h.startServer({ internal_token: TOKEN });
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('serves GET /health with 200', async () => {
    const res = await h.http('GET', `${server.url}/health`);
    assert.equal(res.status, 200);
  });

  it('does not serve the internal routes (404)', async () => {
    for (const [method, path, opts] of [
      ['GET', '/v1/stats', { token: TOKEN }],
      ['GET', '/v1/tickets/1/viewers', { token: TOKEN }],
      ['POST', '/v1/timeline/contact/1/items', { token: TOKEN, body: { id: 1 } }],
      ['POST', '/v1/timeline/batch', { token: TOKEN, body: { events: [] } }],
      ['GET', '/metrics', {}],
      ['GET', '/ready', {}],
      ['GET', '/nope', {}],
    ]) {
      const res = await h.http(method, `${server.url}${path}`, opts);
      assert.equal(res.status, 404, `${method} ${path} on the public port: ${res.status} ${res.text}`);
    }
  });
});
