'use strict';

// auth_mode = jwt (contract section 1): the token in the handshake's
// `auth: { token }` names the agent. Rust only: the Node original does not
// implement it.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('../helpers');

const SKIP = h.isPeer ? 'the Node original has no auth_mode = jwt' : false;
const SECRET = 'jwt-s3cret';
const now = () => Math.floor(Date.now() / 1000);
const b64u = (data) => Buffer.from(data).toString('base64url');

/** A compact JWS: HS256 with a secret, RS256 / ES256 with a private key. */
function sign(claims, { alg = 'HS256', key = SECRET } = {}) {
  const data = `${b64u(JSON.stringify({ alg, typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
  let signature;
  if (alg === 'HS256') signature = crypto.createHmac('sha256', key).update(data).digest();
  else if (alg === 'RS256') signature = crypto.sign('sha256', Buffer.from(data), key);
  else signature = crypto.sign('sha256', Buffer.from(data), { key, dsaEncoding: 'ieee-p1363' });
  return `${data}.${b64u(signature)}`;
}

const connectWith = (server, token, transport = 'websocket') =>
  h.connect(server.url, { transports: [transport], ...(token === undefined ? {} : { auth: { token } }) });

async function refused(server, token) {
  await assert.rejects(connectWith(server, token), /unauthorized/);
}

describe('auth_mode = jwt with an HS256 secret', { skip: SKIP }, () => {
  const server = h.serverForDescribe({ auth_mode: 'jwt', jwt_secret: SECRET, events_per_second: 0 });

  it('a missing, malformed, badly signed, expired or not-yet-valid token is refused at connect with "unauthorized"', async () => {
    await refused(server, undefined);
    await refused(server, 'not-a-token');
    await refused(server, sign({ sub: 'ada' }, { key: 'another-secret' }));
    await refused(server, sign({ sub: 'ada', exp: now() - 120 }));
    await refused(server, sign({ sub: 'ada', nbf: now() + 120 }));
    await refused(server, sign({ name: 'Ada' }));
  });

  it('exp and nbf have 60 s of leeway', async () => {
    await connectWith(server, sign({ sub: 'ada', exp: now() - 30 }));
    await connectWith(server, sign({ sub: 'ada', nbf: now() + 30 }));
  });

  for (const transport of h.TRANSPORTS) {
    it(`over ${transport}: the token's sub is the agent; an omitted agentId means it; name from the token`, async () => {
      const s = await connectWith(server, sign({ sub: 'ada', name: 'Ada Lovelace' }), transport);
      const ticketId = h.uid('t');
      const ack = await h.emitAck(s, 'ticket:view', { ticketId });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      assert.equal(ack.viewers[0].agentId, 'ada');
      assert.equal(ack.viewers[0].agentName, 'Ada Lovelace');
      assert.deepEqual(await h.emitAck(s, 'ticket:typing', { ticketId }), { ok: true, ticketId });
      assert.deepEqual(await h.emitAck(s, 'ticket:typing', { ticketId, agentId: 'ada' }), { ok: true, ticketId });
    });
  }

  it('an agentId that differs from the token is FORBIDDEN, with and without ack, and changes nothing', async () => {
    const s = await connectWith(server, sign({ sub: 'ada' }));
    const ticketId = h.uid('t');
    h.assertAckError(await h.emitAck(s, 'ticket:view', { ticketId, agentId: 'bob', agentName: 'Bob' }), 'FORBIDDEN');
    const error = h.nextEvent(s, 'ticket:error');
    s.emit('ticket:view', { ticketId, agentId: 'bob', agentName: 'Bob' });
    assert.equal((await error).code, 'FORBIDDEN');
    const res = await h.http('GET', `${server.internalUrl}/v1/tickets/${ticketId}/viewers`);
    assert.deepEqual(res.json.viewers, []);
  });

  it('INVALID_PAYLOAD comes before FORBIDDEN', async () => {
    const s = await connectWith(server, sign({ sub: 'ada' }));
    h.assertAckError(await h.emitAck(s, 'ticket:view', { ticketId: '', agentId: 'bob' }), 'INVALID_PAYLOAD');
  });

  it('without name in the token: the payload agentName, else sub', async () => {
    const s = await connectWith(server, sign({ sub: 'cy' }));
    const named = await h.emitAck(s, 'ticket:view', { ticketId: h.uid('t'), agentName: 'Cy Young' });
    assert.equal(named.viewers[0].agentName, 'Cy Young');
    const bare = await h.emitAck(s, 'ticket:view', { ticketId: h.uid('t') });
    assert.equal(bare.viewers[0].agentName, 'cy');
  });

  it('when the token expires the server disconnects the socket', { timeout: 20_000 }, async () => {
    // Accepted within the leeway, so it expires a few seconds from now.
    const s = await connectWith(server, sign({ sub: 'ada', exp: now() - 57 }));
    const reason = await h.disconnected(s, 10_000);
    assert.equal(reason, 'io server disconnect');
  });
});

describe('auth_mode = jwt with a public key file', { skip: SKIP }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-jwt-'));
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsaPem = path.join(dir, 'rsa.pem');
  const ecPem = path.join(dir, 'ec.pem');
  fs.writeFileSync(rsaPem, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  fs.writeFileSync(ecPem, ec.publicKey.export({ type: 'spki', format: 'pem' }));

  describe('RS256', () => {
    const server = h.serverForDescribe({ auth_mode: 'jwt', jwt_public_key_file: rsaPem });
    it('accepts a token signed with the private key, refuses others (including HS256 with the PEM as secret)', async () => {
      const s = await connectWith(server, sign({ sub: 'ada' }, { alg: 'RS256', key: rsa.privateKey }));
      assert.equal((await h.emitAck(s, 'ticket:view', { ticketId: h.uid('t') })).viewers[0].agentId, 'ada');
      await refused(server, sign({ sub: 'ada' }, { alg: 'RS256', key: crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey }));
      await refused(server, sign({ sub: 'ada' }, { alg: 'HS256', key: fs.readFileSync(rsaPem) }));
    });
  });

  describe('ES256', () => {
    const server = h.serverForDescribe({ auth_mode: 'jwt', jwt_public_key_file: ecPem });
    it('accepts a token signed with the private key, refuses an RS256 one', async () => {
      const s = await connectWith(server, sign({ sub: 'bob' }, { alg: 'ES256', key: ec.privateKey }));
      assert.equal((await h.emitAck(s, 'ticket:view', { ticketId: h.uid('t') })).viewers[0].agentId, 'bob');
      await refused(server, sign({ sub: 'bob' }, { alg: 'RS256', key: rsa.privateKey }));
    });
  });
});
