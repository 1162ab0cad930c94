'use strict';

// The internal API's OpenAPI document (docs/openapi.json, served at
// GET /v1/openapi.json): a valid OpenAPI 3.1 document, and one the running
// server keeps. Every documented operation is called; its status must be one
// the document lists for it, an error's code one of the codes it lists, and a
// success body must match the documented schema. (That every route of the
// router is documented is checked in src/internal_api/openapi.rs, against
// the table the router is built from.)

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../helpers');

const SKIP = h.isPeer ? 'the Node original serves no OpenAPI document' : false;
const TOKEN = 's3cret';
const DOC_FILE = path.resolve(__dirname, '../../../docs/openapi.json');

// A valid request for each operation (path parameters and body).
const VALID = {
  publishNewItem: { params: { entityType: 'deal', entityId: '1' }, body: { id: 1, text: 'hi' } },
  publishItemUpdated: { params: { entityType: 'deal', entityId: '1', itemId: '1' }, body: { id: 1, text: 'edited' } },
  publishRefresh: { params: { entityType: 'deal', entityId: '1' }, body: { reason: 'bulk' } },
  publishBatch: { body: { events: [{ type: 'refresh', entityType: 'deal', entityId: 1 }] } },
  ticketViewers: { params: { ticketId: '42' } },
  ticketEvent: { params: { ticketId: '42' }, body: { kind: 'reply', by: { agentId: '8', agentName: 'Bob' }, summary: 'Sent', version: 12 } },
};
// A request the operation must refuse, and the status it refuses it with.
const INVALID = {
  publishNewItem: [{ params: { entityType: 'deal', entityId: '1' }, raw: '{', status: 400 },
    { params: { entityType: 'deal', entityId: '1' }, body: { text: 'no id' }, status: 400 },
    { params: { entityType: 'lead', entityId: '1' }, body: { id: 1 }, status: 403 },
    { params: { entityType: 'deal', entityId: '1' }, body: { id: 1, pad: 'x'.repeat(2048) }, status: 413 }],
  publishItemUpdated: [{ params: { entityType: 'deal', entityId: '1', itemId: '1' }, raw: '[', status: 400 }],
  publishRefresh: [{ params: { entityType: 'Deal', entityId: '1' }, body: {}, status: 400 }],
  publishBatch: [{ body: { events: [{ type: 'delete', entityType: 'deal', entityId: 1 }] }, status: 400 }],
  ticketViewers: [{ params: { ticketId: '%00' }, status: 400 }],
  ticketEvent: [{ params: { ticketId: '42' }, raw: '{', status: 400 },
    { params: { ticketId: '42' }, body: { kind: 'Reply!' }, status: 400 }],
};

function operations(doc) {
  const ops = [];
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (['parameters', 'summary', 'description'].includes(method)) continue;
      const security = op.security || doc.security || [];
      ops.push({ path: p, method: method.toUpperCase(), op, needsToken: security.length > 0 });
    }
  }
  return ops;
}

function fill(template, params = {}) {
  return template.replace(/\{(\w+)\}/g, (_, name) => {
    assert.ok(name in params, `no value for {${name}} of ${template}`);
    return params[name];
  });
}

function resolve(doc, v) {
  return v && v.$ref ? v.$ref.slice(2).split('/').reduce((o, k) => o[k], doc) : v;
}

describe('OpenAPI document of the internal API', { skip: SKIP }, () => {
  const server = h.serverForDescribe({ internal_token: TOKEN, entity_types: ['deal'], max_body: 1024 });

  it('is a valid OpenAPI 3.1 document (official schema)', async () => {
    const { Validator } = await import('@seriousme/openapi-schema-validator');
    const doc = JSON.parse(fs.readFileSync(DOC_FILE, 'utf8'));
    const validator = new Validator();
    const result = await validator.validate(doc);
    assert.equal(validator.version, '3.1');
    assert.ok(result.valid, JSON.stringify(result.errors, null, 2));
  });

  it('is served at GET /v1/openapi.json, with the token like every /v1 route', async () => {
    const url = `${server.internalUrl}/v1/openapi.json`;
    h.assertHttpError(await h.http('GET', url), 401, 'UNAUTHORIZED');
    const res = await h.http('GET', url, { token: TOKEN });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /application\/json/);
    assert.deepEqual(res.json, JSON.parse(fs.readFileSync(DOC_FILE, 'utf8')));
  });

  it('describes what each route answers', async () => {
    const Ajv2020 = require('ajv/dist/2020').default;
    const doc = JSON.parse(fs.readFileSync(DOC_FILE, 'utf8'));
    const ajv = new Ajv2020({ strict: false, validateSchema: false, allErrors: true });
    ajv.addSchema({ ...doc, $id: 'openapi' });
    const schemaOf = (response, type = 'application/json') => {
      const content = resolve(doc, response).content || {};
      return content[type] && content[type].schema;
    };
    const conforms = (response, body, what) => {
      const schema = schemaOf(response);
      if (!schema) return;
      const validate = ajv.compile({ $ref: `openapi#/paths/${what}` });
      assert.ok(validate(body), `${what}: ${JSON.stringify(body)} ${JSON.stringify(validate.errors)}`);
    };
    const pointer = (p, method, status) =>
      `${p.replace(/~/g, '~0').replace(/\//g, '~1')}/${method.toLowerCase()}/responses/${status}/content/application~1json/schema`;

    const ops = operations(doc);
    assert.ok(ops.length >= 10, `${ops.length} operations`);
    for (const { path: p, method, op, needsToken } of ops) {
      const valid = VALID[op.operationId] || {};
      const url = `${server.internalUrl}${fill(p, valid.params)}`;
      const documented = Object.keys(op.responses);

      // Without the token.
      const anonymous = await h.http(method, url, { body: valid.body });
      if (needsToken) {
        assert.equal(anonymous.status, 401, `${method} ${p} without token: ${anonymous.text}`);
        assert.equal(anonymous.json.error.code, 'UNAUTHORIZED');
      } else {
        assert.ok(anonymous.status < 400 || documented.includes(String(anonymous.status)), `${method} ${p}: ${anonymous.status}`);
      }

      // A valid request: a documented success, its body as documented.
      const res = await h.http(method, url, { body: valid.body, token: TOKEN });
      const status = String(res.status);
      assert.ok(documented.includes(status) && res.status < 300, `${method} ${p} answered ${res.status}, documented ${documented}: ${res.text}`);
      if (schemaOf(op.responses[status])) conforms(op.responses[status], res.json, pointer(p, method, status));
      else assert.ok(resolve(doc, op.responses[status]).content['text/plain'], `${method} ${p}: content type`);

      // Refused requests: a documented status, a documented code.
      for (const bad of INVALID[op.operationId] || []) {
        const badUrl = `${server.internalUrl}${fill(p, bad.params)}`;
        const refused = await h.http(method, badUrl, { body: bad.body, raw: bad.raw, token: TOKEN });
        assert.equal(refused.status, bad.status, `${method} ${badUrl}: ${refused.text}`);
        const response = resolve(doc, op.responses[String(bad.status)]);
        assert.ok(response, `${method} ${p} does not document ${bad.status}`);
        const codes = schemaOf(response).properties.error.properties.code.enum;
        assert.ok(codes.includes(refused.json.error.code), `${method} ${p}: ${refused.json.error.code} not in ${codes}`);
      }
    }
  });

  it('a path it does not list is 404 NOT_FOUND, a listed path with another method 405', async () => {
    h.assertHttpError(await h.http('GET', `${server.internalUrl}/v1/nothing`, { token: TOKEN }), 404, 'NOT_FOUND');
    const res = await h.http('DELETE', `${server.internalUrl}/v1/stats`, { token: TOKEN });
    assert.equal(res.status, 405);
  });
});
