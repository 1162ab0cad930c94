'use strict';

// Contract section 6: the switchboard binary's configuration, start-up checks,
// logs and shutdown. The peer implements none of it (its README), so these run
// against TARGET=rust only.

const { describe, it, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('../helpers');

const SKIP = h.isPeer && 'section 6 (flags, config file, env, logs, shutdown) is the Rust binary\'s, not the peer\'s';

const KEYS = [
  'listen', 'internal_listen', 'internal_token', 'redis_url', 'auth_mode', 'jwt_secret', 'jwt_public_key_file',
  'typing_timeout', 'sweep_interval', 'stale_after', 'node_timeout', 'shutdown_timeout', 'max_body', 'entity_types',
  'cors_origins', 'max_payload', 'max_tickets_per_socket', 'max_timelines_per_socket', 'events_per_second', 'log_format',
];
const flag = (key) => `--${key.replace(/_/g, '-')}`;
// A message names a key as `typing_timeout`, `typing-timeout` or `TYPING_TIMEOUT`.
const namesKey = (key) => new RegExp(key.replace(/_/g, '[_-]'), 'i');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-e2e-'));
function writeConfig(name, text) {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return file;
}

// Runs the binary expecting it to refuse to start. Should it start anyway, it
// binds port 0 (a port of the kernel's choosing), so it never collides.
async function runRefused(args, env = {}) {
  const withListen = args.some((a) => a.startsWith('--listen')) ? args : ['--listen', '127.0.0.1:0', ...args];
  const fullArgs = withListen.some((a) => a.startsWith('--internal-listen')) ? withListen : ['--internal-listen', '127.0.0.1:0', ...withListen];
  const childEnv = { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn', ...env };
  for (const k of Object.keys(childEnv)) if (k.startsWith('SWITCHBOARD_') && !(k in env)) delete childEnv[k];
  return h.runToExit(h.SWITCHBOARD_BIN, fullArgs, { env: childEnv, timeoutMs: 10_000 });
}

// How many tickets one socket may view on this server (up to 10).
async function ticketLimit(url) {
  const s = await h.connect(url, { transports: ['websocket'] });
  try {
    for (let i = 1; i <= 10; i++) {
      const ack = await h.emitAck(s, 'ticket:view', { ticketId: h.uid('t'), agentId: 'a', agentName: 'A' });
      if (!ack.ok) {
        h.assertAckError(ack, 'LIMIT_EXCEEDED');
        return i - 1;
      }
    }
    return Infinity;
  } finally {
    s.close();
  }
}

describe('operation (section 6)', { skip: SKIP }, () => {
  const servers = [];
  const start = async (config, opts) => {
    const server = await h.startServer(config, opts);
    servers.push(server);
    return server;
  };
  afterEach(async () => {
    h.closeAllSockets();
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  describe('--help', () => {
    it('exits 0 and documents every configuration key as a flag', async () => {
      const res = await h.runToExit(h.SWITCHBOARD_BIN, ['--help'], { timeoutMs: 10_000 });
      assert.equal(res.code, 0, res.stderr);
      const text = res.stdout + res.stderr;
      for (const key of KEYS) assert.ok(text.includes(flag(key)), `--help does not mention ${flag(key)}:\n${text}`);
      assert.ok(text.includes('--config'), '--help does not mention --config');
    });
  });

  describe('a configuration that cannot be served exits non-zero at once, naming the key', () => {
    const cases = [
      ['--typing-timeout banana', ['--typing-timeout', 'banana'], 'typing_timeout'],
      ['--sweep-interval 5 parsecs', ['--sweep-interval', '5 parsecs'], 'sweep_interval'],
      ['--max-body lots', ['--max-body', 'lots'], 'max_body'],
      ['--events-per-second=-3', ['--events-per-second=-3'], 'events_per_second'],
      ['--log-format xml', ['--log-format', 'xml'], 'log_format'],
      ['--auth-mode magic', ['--auth-mode', 'magic'], 'auth_mode'],
      ['--listen not-an-address', ['--listen', 'not-an-address'], 'listen'],
    ];
    for (const [name, args, key] of cases) {
      it(name, async () => {
        const res = await runRefused(args);
        assert.equal(res.timedOut, false, `still running after 10 s: ${name}`);
        assert.notEqual(res.code, 0, `exit code 0 for ${name}`);
        assert.match(res.stderr, namesKey(key), `stderr does not name ${key}:\n${res.stderr}`);
      });
    }

    it('a bad value from the environment', async () => {
      const res = await runRefused([], { SWITCHBOARD_TYPING_TIMEOUT: 'banana' });
      assert.equal(res.timedOut, false);
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, namesKey('typing_timeout'), res.stderr);
    });

    it('a bad value from the config file', async () => {
      const file = writeConfig('bad.toml', 'typing_timeout = "banana"\n');
      const res = await runRefused(['--config', file]);
      assert.equal(res.timedOut, false);
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, namesKey('typing_timeout'), res.stderr);
    });

    it('a config file that does not exist', async () => {
      const res = await runRefused(['--config', path.join(tmp, 'missing.toml')]);
      assert.equal(res.timedOut, false);
      assert.notEqual(res.code, 0);
      assert.ok(res.stderr.length > 0, 'a message on stderr');
    });

    it('a non-loopback internal listener without a token', async () => {
      const res = await runRefused(['--internal-listen', '0.0.0.0:0']);
      assert.equal(res.timedOut, false, 'still running: it must refuse to start');
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, namesKey('internal_token'), res.stderr);
    });

    it('an unreadable public key file for jwt', async () => {
      const res = await runRefused(['--auth-mode', 'jwt', '--jwt-public-key-file', path.join(tmp, 'no-such-key.pem')]);
      assert.equal(res.timedOut, false);
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, namesKey('jwt_public_key_file'), res.stderr);
    });
  });

  describe('layers: flag over env over file over default', () => {
    it('a TOML file via --config sets keys, lists as arrays and durations as strings', async () => {
      // The subject includes the listen addresses, so the file names two
      // probed ports (h.freePort); the server must report exactly those. Should
      // another process take one in between, the server cannot bind it: try
      // again with two new ports.
      let server;
      for (let attempt = 1; !server; attempt++) {
        const port = await h.freePort();
        let internalPort = await h.freePort();
        while (internalPort === port) internalPort = await h.freePort();
        const file = writeConfig('full.toml', [
          `listen = "127.0.0.1:${port}"`,
          `internal_listen = "127.0.0.1:${internalPort}"`,
          'internal_token = "filetoken"',
          'max_tickets_per_socket = 2',
          'entity_types = ["contact", "deal"]',
          'typing_timeout = "10s"',
          'events_per_second = 0',
          'log_format = "text"',
          '',
        ].join('\n'));
        try {
          server = await start({}, { args: ['--config', file], port, internalPort, listenFlags: false });
        } catch (e) {
          if (attempt >= 5 || !h.isAddressInUse(e)) throw e;
        }
      }
      assert.equal(await ticketLimit(server.url), 2);
      const s = await h.connect(server.url, { transports: ['websocket'] });
      h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'task', entityId: '1' }), 'FORBIDDEN');
      assert.equal((await h.emitAck(s, 'timeline:subscribe', { entityType: 'deal', entityId: '1' })).ok, true);
      h.assertHttpError(await h.http('GET', `${server.internalUrl}/v1/stats`), 401, 'UNAUTHORIZED');
      assert.equal((await h.http('GET', `${server.internalUrl}/v1/stats`, { token: 'filetoken' })).status, 200);
    });

    it('SWITCHBOARD_CONFIG names the file too', async () => {
      const file = writeConfig('env-path.toml', 'max_tickets_per_socket = 2\n');
      const server = await start({}, { env: { SWITCHBOARD_CONFIG: file } });
      assert.equal(await ticketLimit(server.url), 2);
    });

    it('a flag overrides the file', async () => {
      const file = writeConfig('flag.toml', 'max_tickets_per_socket = 2\n');
      const server = await start({ max_tickets_per_socket: 4 }, { args: ['--config', file] });
      assert.equal(await ticketLimit(server.url), 4);
    });

    it('the environment overrides the file', async () => {
      const file = writeConfig('env.toml', 'max_tickets_per_socket = 2\nentity_types = ["deal"]\n');
      const server = await start({}, { args: ['--config', file], env: { SWITCHBOARD_MAX_TICKETS_PER_SOCKET: '3', SWITCHBOARD_ENTITY_TYPES: 'contact,task' } });
      assert.equal(await ticketLimit(server.url), 3);
      const s = await h.connect(server.url, { transports: ['websocket'] });
      assert.equal((await h.emitAck(s, 'timeline:subscribe', { entityType: 'task', entityId: '1' })).ok, true, 'comma-separated list from env');
      h.assertAckError(await h.emitAck(s, 'timeline:subscribe', { entityType: 'deal', entityId: '1' }), 'FORBIDDEN');
    });

    it('a flag overrides the environment', async () => {
      const file = writeConfig('all.toml', 'max_tickets_per_socket = 2\n');
      const server = await start({ max_tickets_per_socket: 4 }, { args: ['--config', file], env: { SWITCHBOARD_MAX_TICKETS_PER_SOCKET: '3' } });
      assert.equal(await ticketLimit(server.url), 4);
    });

    it('SWITCHBOARD_TYPING_TIMEOUT overrides the file, and --typing-timeout overrides it', async () => {
      const file = writeConfig('typing.toml', 'typing_timeout = "10m"\n');
      const typeAndWatch = async (server, ms) => {
        const a = await h.connect(server.url, { transports: ['websocket'] });
        const b = await h.connect(server.url, { transports: ['websocket'] });
        const t = h.uid('t');
        await h.emitAck(a, 'ticket:view', { ticketId: t, agentId: 'ada', agentName: 'Ada' });
        await h.emitAck(b, 'ticket:view', { ticketId: t, agentId: 'bob', agentName: 'Bob' });
        await h.emitAck(b, 'ticket:typing', { ticketId: t, agentId: 'bob' });
        await h.nextEvent(a, 'agent:typing');
        try {
          await h.nextEvent(a, 'agent:stopped_typing', ms);
          return true;
        } catch {
          return false;
        }
      };
      const fast = await start({}, { args: ['--config', file], env: { SWITCHBOARD_TYPING_TIMEOUT: '300ms' } });
      assert.equal(await typeAndWatch(fast, 3000), true, 'env 300ms over file 10m: typing should time out');
      const slow = await start({ typing_timeout: '10m' }, { args: ['--config', file], env: { SWITCHBOARD_TYPING_TIMEOUT: '300ms' } });
      assert.equal(await typeAndWatch(slow, 1000), false, 'flag 10m over env 300ms: typing should not time out');
    });
  });

  describe('logs', () => {
    it('log_format json writes one JSON object per line', async () => {
      const server = await start({ log_format: 'json' }, { env: { RUST_LOG: 'info' } });
      const s = await h.connect(server.url, { transports: ['websocket'] });
      await h.emitAck(s, 'ticket:view', { ticketId: 't', agentId: 'a', agentName: 'A' });
      s.close();
      await server.stop();
      const lines = (server.stdout() + server.stderr()).split('\n').filter((l) => l.trim() !== '');
      assert.ok(lines.length > 0, 'no log lines at RUST_LOG=info');
      for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`);
    });

    it('log_format text is human-readable, not JSON', async () => {
      const server = await start({ log_format: 'text' }, { env: { RUST_LOG: 'info' } });
      await server.stop();
      const lines = (server.stdout() + server.stderr()).split('\n').filter((l) => l.trim() !== '');
      assert.ok(lines.length > 0, 'no log lines at RUST_LOG=info');
      assert.throws(() => JSON.parse(lines[0]), `a JSON line in text format: ${lines[0]}`);
    });
  });

  describe('SIGTERM', () => {
    for (const transport of h.TRANSPORTS) {
      it(`closes the transport of every client (${transport}) and exits 0`, async () => {
        const server = await start({ shutdown_timeout: 5000, events_per_second: 0 });
        const s = await h.connect(server.url, { transports: [transport] });
        assert.equal((await h.emitAck(s, 'ticket:view', { ticketId: 't', agentId: 'a', agentName: 'A' })).ok, true);
        // Over polling, let the client's next GET be pending first: a SIGTERM
        // in the moment between two polls can cut that next GET, so the client
        // sees "transport error" (socket.io's Node server does the same); this
        // test checks the ordinary case.
        // The client sends that GET as soon as it has the ack; the server
        // parking it cannot be seen from outside, hence a grace period.
        if (transport === 'polling') await h.graceFor(150, 'the client\'s next long-poll GET to be parked by the server');
        const exit = server.stop(); // SIGTERM (SIGKILL only after 5 s)
        const reason = await h.disconnected(s, 5000);
        assert.equal(reason, 'transport close');
        const result = await exit;
        assert.deepEqual(result, { code: 0, signal: null }, `exit after SIGTERM:\n${server.stderr()}`);
      });
    }
  });
});
