'use strict';

// Test harness for the Switchboard end-to-end suite.
//
// The suite is target-agnostic: `startServer(config)` takes the contract's
// configuration keys (shared/spec/PROTOCOL.md section 6, durations in ms) and
// starts either the Rust binary (TARGET=rust, the default) or the Node.js
// reference peer (TARGET=peer), translating the keys into that target's flags
// or environment variables.

const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const fs = require('node:fs');
const assert = require('node:assert/strict');
const { before, after } = require('node:test');
// E2E_CLIENT=v2 runs the whole suite with socket.io-client 2.x (through
// legacy-client.js) against servers with `allow_eio3 = true`.
const E2E_CLIENT = process.env.E2E_CLIENT || 'v4';
if (!['v2', 'v4'].includes(E2E_CLIENT)) throw new Error(`E2E_CLIENT: expected v2 or v4, got ${E2E_CLIENT}`);
const { io } = E2E_CLIENT === 'v2' ? require('./legacy-client') : require('socket.io-client');

// E2E_PARSER=msgpack runs the whole suite through socket.io-msgpack-parser:
// every Rust server gets `parser = "msgpack"` (unless a test sets it) and
// every client of connect() the msgpack parser.
const E2E_PARSER = process.env.E2E_PARSER || 'default';
if (!['default', 'msgpack'].includes(E2E_PARSER)) throw new Error(`E2E_PARSER: expected default or msgpack, got ${E2E_PARSER}`);
const CLIENT_PARSER = E2E_PARSER === 'msgpack' ? { parser: require('socket.io-msgpack-parser') } : {};

const TARGET = process.env.TARGET || 'rust';
if (TARGET !== 'rust' && TARGET !== 'peer') throw new Error(`TARGET must be "rust" or "peer", not "${TARGET}"`);
const isPeer = TARGET === 'peer';
const isRust = TARGET === 'rust';

const PEER_DIR = process.env.PEER_DIR
  ? path.resolve(process.env.PEER_DIR)
  : path.resolve(__dirname, '../../../shared/peer-node');
const SWITCHBOARD_BIN = process.env.SWITCHBOARD_BIN
  ? path.resolve(process.env.SWITCHBOARD_BIN)
  : path.resolve(__dirname, '../../target/debug/switchboard');

const TRANSPORTS = ['websocket', 'polling'];

// A plain timer. Tests do not call it directly: a test waits for a condition
// (`eventually`, `nextEvent`, `waitForOutput`, ...), and the few fixed delays
// left are named for what they are (`separateTimestamps`, `quietPeriod`,
// `elapse`, `graceFor`, below). Benchmarks use it for their own pacing.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// Configuration translation
// ---------------------------------------------------------------------------

// Contract keys (section 6) that are durations; the tests give them in ms.
const DURATION_KEYS = new Set(['typing_timeout', 'sweep_interval', 'stale_after', 'node_timeout', 'shutdown_timeout', 'history_ttl', 'idle_after']);
const LIST_KEYS = new Set(['entity_types', 'cors_origins']);
const KNOWN_KEYS = new Set([
  'listen', 'internal_listen', 'internal_token', 'redis_url', 'auth_mode', 'jwt_secret', 'jwt_public_key_file',
  'typing_timeout', 'sweep_interval', 'stale_after', 'node_timeout', 'shutdown_timeout', 'max_body',
  'entity_types', 'cors_origins', 'max_payload', 'max_tickets_per_socket', 'max_timelines_per_socket',
  'events_per_second', 'log_format',
  // v2 (sections 3.1, 3.2, 4.1, 4.2); the peer implements v1 and ignores them.
  'history_size', 'history_ttl', 'client_queue_max', 'idle_after', 'max_watched_tickets',
  // v2 (section 6): the agent console.
  'demo',
  // v2 (section 1): client generations.
  'allow_eio3', 'parser',
]);

// The peer's environment variable for each contract key it understands.
const PEER_ENV = {
  internal_token: 'INTERNAL_TOKEN',
  redis_url: 'REDIS_URL',
  typing_timeout: 'TYPING_TIMEOUT_MS',
  sweep_interval: 'SWEEP_INTERVAL_MS',
  stale_after: 'STALE_AFTER_MS',
  max_body: 'MAX_BODY',
  entity_types: 'ENTITY_TYPES',
  cors_origins: 'CORS_ORIGIN', // socket.io's cors.origin; the peer's CORS is not the contract's
  max_payload: 'MAX_PAYLOAD',
  max_tickets_per_socket: 'MAX_TICKETS_PER_SOCKET',
  max_timelines_per_socket: 'MAX_TIMELINES_PER_SOCKET',
  events_per_second: 'EVENTS_PER_SECOND',
};

function checkKeys(config) {
  for (const key of Object.keys(config)) {
    if (!KNOWN_KEYS.has(key)) throw new Error(`startServer: unknown config key "${key}"`);
  }
}

function flagValue(key, value) {
  if (DURATION_KEYS.has(key) && typeof value === 'number') return `${value}ms`;
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

/** Command-line flags for the Rust binary: `--typing-timeout 1000ms`, `--entity-types a,b`, ... */
function rustFlags(config) {
  checkKeys(config);
  const args = [];
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined || value === null) continue;
    args.push(`--${key.replace(/_/g, '-')}`, flagValue(key, value));
  }
  return args;
}

function peerEnv(config) {
  checkKeys(config);
  const env = {};
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined || value === null) continue;
    const name = PEER_ENV[key];
    if (!name) continue; // keys the peer does not implement (section 6 only)
    env[name] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return env;
}

// Environment for a child: ours minus any SWITCHBOARD_* setting that would
// leak into the server's configuration.
function baseEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('SWITCHBOARD_')) delete env[k];
  if (!env.RUST_LOG) env.RUST_LOG = 'warn';
  return env;
}

// The Rust server's ready line, logged at info by the target switchboard::app:
//   text: `... INFO switchboard::app: switchboard serving node=… public=127.0.0.1:41234 internal=127.0.0.1:38111`
//   json: `{"level":"INFO","fields":{"message":"switchboard serving","node":"…","public":"…","internal":"…"},"target":"switchboard::app",…}`
const SERVING_TARGET = 'switchboard::app';
const SERVING_MESSAGE = 'switchboard serving';

/**
 * RUST_LOG for the Rust server such that the ready line is logged: unchanged
 * when it already lets every target log at info or more and names no
 * switchboard target, otherwise with `switchboard::app=info` appended (that
 * module logs only its start, stop and shutdown warnings).
 */
function rustLogWithServingLine(filter) {
  const directives = String(filter || 'warn').split(',').map((d) => d.trim()).filter(Boolean);
  const globalVerbose = directives.some((d) => /^(info|debug|trace)$/i.test(d));
  const namesSwitchboard = directives.some((d) => /^switchboard(::|=|\[|$)/.test(d));
  if (globalVerbose && !namesSwitchboard) return directives.join(',');
  if (directives.some((d) => d.startsWith(`${SERVING_TARGET}=`))) return directives.join(',');
  return [...directives, `${SERVING_TARGET}=info`].join(',');
}

/**
 * The bound addresses from the Rust server's ready line in `text` (its stderr
 * so far; either log format), or null while that line is not complete:
 * { public, internal } as "host:port" strings.
 */
function parseServingLine(text) {
  const complete = text.split('\n').slice(0, -1); // the last piece has no newline yet
  for (const line of complete) {
    if (!line.includes(SERVING_MESSAGE)) continue;
    const trimmed = line.trim();
    if (trimmed.startsWith('{')) {
      let obj = null;
      try {
        obj = JSON.parse(trimmed);
      } catch {
        continue;
      }
      const f = (obj && obj.fields) || obj || {};
      if (f.message === SERVING_MESSAGE && f.public && f.internal) return { public: String(f.public), internal: String(f.internal) };
      continue;
    }
    // eslint-disable-next-line no-control-regex
    const plain = trimmed.replace(/\x1b\[[0-9;]*m/g, ''); // the text format colours its fields even on a pipe
    const pub = plain.match(/\bpublic=(\S+)/);
    const internal = plain.match(/\binternal=(\S+)/);
    if (pub && internal) return { public: pub[1], internal: internal[1] };
  }
  return null;
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/**
 * A loopback TCP port that was free a moment ago (listen on port 0, read it,
 * close): probe-then-release, so another process may take it before the
 * caller binds it. Only for what cannot bind port 0 and report the port: the
 * Node peer (it logs the port it was given, not the one bound), redis-server,
 * and tests whose subject is a configured address; each of them retries with
 * another port when the bind fails ("address already in use").
 */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const running = new Set();
process.on('exit', () => {
  for (const proc of running) {
    try {
      proc.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

const OUTPUT_CAP = 256 * 1024;

/**
 * Spawns a process and keeps its output. Resolves nothing by itself: use
 * `exited` (a promise of { code, signal }) and `stdout()` / `stderr()`.
 */
function spawnProcess(command, args, { env, cwd } = {}) {
  const proc = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let out = '';
  let err = '';
  const echo = process.env.SERVER_OUTPUT === '1';
  proc.stdout.on('data', (d) => {
    if (out.length < OUTPUT_CAP) out += d;
    if (echo) process.stderr.write(d);
  });
  proc.stderr.on('data', (d) => {
    if (err.length < OUTPUT_CAP) err += d;
    if (echo) process.stderr.write(d);
  });
  const exited = new Promise((resolve) => {
    proc.on('error', (e) => {
      err += `\nspawn error: ${e.message}`;
      running.delete(proc);
      resolve({ code: null, signal: null, error: e });
    });
    // 'close' comes after 'exit' once the output pipes are drained too.
    proc.on('close', (code, signal) => {
      running.delete(proc);
      resolve({ code, signal });
    });
  });
  return { proc, exited, stdout: () => out, stderr: () => err };
}

/** Runs a command to completion (bounded by timeoutMs) and returns { code, signal, stdout, stderr, timedOut }. */
async function runToExit(command, args, { env, cwd, timeoutMs = 10_000 } = {}) {
  const p = spawnProcess(command, args, { env, cwd });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.proc.kill('SIGKILL');
  }, timeoutMs);
  const { code, signal } = await p.exited;
  clearTimeout(timer);
  return { code, signal, stdout: p.stdout(), stderr: p.stderr(), timedOut };
}

async function httpOk(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

function tcpOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Waits until the process's output (stdout and stderr) satisfies `test`
 * (called with the output so far; a truthy result is returned), polling every
 * 20 ms. Fails at once when the process exits first, and after timeoutMs
 * (killing it), with the output in the error.
 */
async function waitForOutput(p, test, { timeoutMs = 20_000, what = 'the expected output' } = {}) {
  let exit = null;
  p.exited.then((e) => {
    exit = e;
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = test(p.stdout(), p.stderr());
    if (got) return got;
    if (exit) {
      const e = new Error(`process exited (code ${exit.code}, signal ${exit.signal}) before ${what}\nstderr:\n${p.stderr()}\nstdout:\n${p.stdout()}`);
      e.exited = exit;
      e.output = p.stdout() + p.stderr();
      throw e;
    }
    if (Date.now() > deadline) {
      p.proc.kill('SIGKILL');
      throw new Error(`no ${what} within ${timeoutMs} ms\nstderr:\n${p.stderr()}\nstdout:\n${p.stdout()}`);
    }
    await sleep(20);
  }
}

/**
 * Waits until GET internalUrl/health answers 200 (polling every 50 ms) and the
 * public port accepts connections; fails after timeoutMs, or at once when the
 * process exits, with its stderr in the error.
 */
async function waitHealthy(p, internalUrl, publicPort, timeoutMs = 20_000) {
  let exit = null;
  p.exited.then((e) => {
    exit = e;
  });
  const deadline = Date.now() + timeoutMs;
  let healthy = false;
  while (Date.now() < deadline) {
    if (exit) {
      throw new Error(`server exited during start-up (code ${exit.code}, signal ${exit.signal})\nstderr:\n${p.stderr()}\nstdout:\n${p.stdout()}`);
    }
    if (!healthy) healthy = await httpOk(`${internalUrl}/health`);
    if (healthy && (await tcpOpen(publicPort))) return;
    await sleep(50);
  }
  p.proc.kill('SIGKILL');
  throw new Error(`server not healthy after ${timeoutMs} ms\nstderr:\n${p.stderr()}\nstdout:\n${p.stdout()}`);
}

function commandFor(config, { args = [], env = {} } = {}) {
  if (isPeer) {
    if (!fs.existsSync(path.join(PEER_DIR, 'node_modules'))) {
      throw new Error(`peer dependencies missing: run "npm ci" in ${PEER_DIR}`);
    }
    return {
      command: process.execPath,
      args: [path.join(PEER_DIR, 'server.js')],
      cwd: PEER_DIR,
      env: { ...baseEnv(), ...peerEnv(config), ...env },
    };
  }
  const fullEnv = { ...baseEnv(), ...env };
  fullEnv.RUST_LOG = rustLogWithServingLine(fullEnv.RUST_LOG);
  return {
    command: SWITCHBOARD_BIN,
    args: [...rustFlags(config), ...args],
    cwd: path.dirname(SWITCHBOARD_BIN),
    env: fullEnv,
  };
}

/** "127.0.0.1:41234" (or "[::1]:41234") → 41234. */
function portOf(addr) {
  const m = /:(\d+)$/.exec(addr);
  if (!m) throw new Error(`not a host:port address: ${addr}`);
  return Number(m[1]);
}

/** True when a start-up failure was the bind of a port someone else holds. */
function isAddressInUse(e) {
  return /EADDRINUSE|address already in use/i.test(`${e && e.message}`);
}

/**
 * The Rust binary: `--listen 127.0.0.1:0 --internal-listen 127.0.0.1:0` (the
 * kernel picks two free ports, nothing is probed and released), then the
 * addresses actually bound are read from its ready line. opts.port /
 * opts.internalPort put a fixed port in those flags instead; with
 * opts.listenFlags === false the caller sets the addresses (a config file,
 * the environment) and the ready line says which they are; given ports are
 * then checked against it.
 */
async function startRust(config, opts) {
  const spec = commandFor(config, opts);
  if (opts.listenFlags !== false) {
    spec.args = ['--listen', `127.0.0.1:${opts.port || 0}`, '--internal-listen', `127.0.0.1:${opts.internalPort || 0}`, ...spec.args];
  }
  const logFormatGiven = spec.args.includes('--log-format') || config.log_format !== undefined || 'SWITCHBOARD_LOG_FORMAT' in (opts.env || {});
  if (!logFormatGiven && opts.listenFlags !== false) spec.args.push('--log-format', 'text');
  const p = spawnProcess(spec.command, spec.args, { env: spec.env, cwd: spec.cwd });
  const bound = await waitForOutput(p, (_out, err) => parseServingLine(err), {
    what: `the "${SERVING_MESSAGE}" line (logged at info by ${SERVING_TARGET}; RUST_LOG=${spec.env.RUST_LOG})`,
  });
  const port = portOf(bound.public);
  const internalPort = portOf(bound.internal);
  for (const [want, got, key] of [[opts.port, port, 'listen'], [opts.internalPort, internalPort, 'internal_listen']]) {
    if (want && want !== got) {
      p.proc.kill('SIGKILL');
      throw new Error(`${key}: asked for port ${want}, the server reports ${got}\n${p.stderr()}`);
    }
  }
  const urls = { url: `http://${bound.public}`, internalUrl: `http://${bound.internal}`, port, internalPort };
  await waitHealthy(p, urls.internalUrl, port);
  return { p, ...urls };
}

// The peer's ready line (stdout), printed once both of its ports are bound.
const PEER_READY = /^switchboard peer \S+: public /m;

/**
 * The Node peer cannot report a port it did not choose (it prints PORT as
 * given, 0 included), so it gets two probed ports (`freePort`): should
 * another process take one in between, the peer exits with EADDRINUSE and is
 * started again on two new ports (up to 5 times). Fixed ports (opts.port,
 * opts.internalPort) are not retried.
 */
async function startPeer(config, opts) {
  const fixed = Boolean(opts.port || opts.internalPort);
  for (let attempt = 1; ; attempt++) {
    const port = opts.port || (await freePort());
    let internalPort = opts.internalPort || (await freePort());
    while (internalPort === port) internalPort = await freePort();
    const spec = commandFor(config, opts);
    Object.assign(spec.env, { PORT: String(port), HOST: '127.0.0.1', INTERNAL_PORT: String(internalPort), INTERNAL_HOST: '127.0.0.1' });
    const p = spawnProcess(spec.command, spec.args, { env: spec.env, cwd: spec.cwd });
    try {
      await waitForOutput(p, (out) => PEER_READY.test(out), { what: 'the peer\'s "switchboard peer …: public …" line' });
    } catch (e) {
      if (!fixed && attempt < 5 && isAddressInUse(e)) continue;
      throw e;
    }
    const urls = { url: `http://127.0.0.1:${port}`, internalUrl: `http://127.0.0.1:${internalPort}`, port, internalPort };
    await waitHealthy(p, urls.internalUrl, port);
    return { p, ...urls };
  }
}

/**
 * Starts the server under test on two free loopback ports (see startRust,
 * startPeer for how they are chosen) and resolves once it is healthy.
 * `config` uses the contract's keys; durations in ms, lists as arrays.
 * `opts.args` / `opts.env` add raw flags or environment variables (Rust target);
 * `opts.port` / `opts.internalPort` fix the ports, and `opts.listenFlags: false`
 * leaves out --listen / --internal-listen (when a config file or env sets them).
 * Returns { url, internalUrl, port, internalPort, proc, stop(), stderr(), stdout(), exited }.
 */
async function startServer(config = {}, opts = {}) {
  if (isRust && E2E_PARSER !== 'default' && config.parser === undefined) config = { ...config, parser: E2E_PARSER };
  if (isRust && E2E_CLIENT === 'v2' && config.allow_eio3 === undefined) config = { ...config, allow_eio3: true };
  const { p, url, internalUrl, port, internalPort } = isPeer ? await startPeer(config, opts) : await startRust(config, opts);
  let stopped = null;
  return {
    url,
    internalUrl,
    port,
    internalPort,
    proc: p.proc,
    exited: p.exited,
    stderr: p.stderr,
    stdout: p.stdout,
    /** SIGTERM, then SIGKILL after 5 s; resolves with { code, signal }. */
    stop() {
      if (stopped) return stopped;
      stopped = (async () => {
        if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGTERM');
        const timer = setTimeout(() => p.proc.kill('SIGKILL'), 5000);
        const result = await p.exited;
        clearTimeout(timer);
        return result;
      })();
      return stopped;
    },
  };
}

/**
 * Starts a server (`startServer(config, opts)`) before the enclosing describe's
 * tests and, after them, closes every socket and stops it. Returns the server
 * object, filled in once that `before` has run (use it inside tests and hooks).
 */
function serverForDescribe(config = {}, opts = {}) {
  const server = {};
  before(async () => {
    Object.assign(server, await startServer(config, opts));
  });
  after(async () => {
    closeAllSockets();
    if (server.stop) await server.stop();
  });
  return server;
}

// ---------------------------------------------------------------------------
// Socket.IO clients
// ---------------------------------------------------------------------------

const RECORDER = Symbol('switchboard.recorder');
const openSockets = new Set();

// Every socket made by connect() records the events it receives, so a test
// can wait for an event that arrived before it started waiting (an emit to a
// socket often lands in the same tick as the ack of the action causing it).
function attachRecorder(socket) {
  const rec = { events: [], waiters: [] };
  socket[RECORDER] = rec;
  const push = (event, args) => {
    const idx = rec.waiters.findIndex((w) => w.name === event && w.where(...args));
    if (idx >= 0) {
      const [w] = rec.waiters.splice(idx, 1);
      w.resolve(args[0]);
      return;
    }
    rec.events.push({ event, args });
  };
  socket.onAny((event, ...args) => push(event, args));
  socket.on('disconnect', (reason, description) => push('disconnect', [reason, description]));
  socket.on('connect_error', (err) => push('connect_error', [err]));
  return rec;
}

/**
 * A connected socket.io-client socket (forceNew, no reconnection unless
 * opts.reconnection). opts.transports e.g. ['websocket'] or ['polling'].
 */
function connect(url, opts = {}) {
  const { timeout = 5000, ...rest } = opts;
  const socket = io(url, { forceNew: true, reconnection: false, timeout, ...CLIENT_PARSER, ...rest });
  attachRecorder(socket);
  openSockets.add(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`connect to ${url} (${JSON.stringify(rest.transports || 'default')}) timed out`));
    }, timeout + 1000);
    socket.once('connect', () => {
      clearTimeout(timer);
      clearEvents(socket, 'connect_error');
      resolve(socket);
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      socket.close();
      reject(new Error(`connect to ${url} failed: ${err.message}`));
    });
  });
}

/** Closes every socket made by connect() that is still open. */
function closeAllSockets() {
  for (const s of openSockets) s.close();
  openSockets.clear();
}

/** Sentinel for emitAck: send the event with no payload argument at all. */
const NO_PAYLOAD = Symbol('no payload');

/** Emits with an ack and resolves with the ack's argument. */
async function emitAck(socket, event, payload, timeoutMs = 2000) {
  const args = payload === NO_PAYLOAD ? [] : [payload];
  try {
    return await socket.timeout(timeoutMs).emitWithAck(event, ...args);
  } catch (e) {
    throw new Error(`no ack for ${event} within ${timeoutMs} ms (${e.message})`);
  }
}

function waitOpts(opts) {
  if (typeof opts === 'number') return { timeout: opts, where: () => true };
  return { timeout: 2000, where: () => true, ...(opts || {}) };
}

/**
 * Resolves with the first payload of event `name` on `socket` not yet taken by
 * an earlier nextEvent (already received or arriving within the timeout).
 * opts: a timeout in ms (default 2000) or { timeout, where(payload) }.
 */
function nextEvent(socket, name, opts) {
  const { timeout, where } = waitOpts(opts);
  const rec = socket[RECORDER];
  if (!rec) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.off(name, handler);
        reject(new Error(`no "${name}" within ${timeout} ms`));
      }, timeout);
      function handler(...args) {
        if (!where(...args)) return;
        clearTimeout(timer);
        socket.off(name, handler);
        resolve(args[0]);
      }
      socket.on(name, handler);
    });
  }
  const idx = rec.events.findIndex((e) => e.event === name && where(...e.args));
  if (idx >= 0) {
    const [e] = rec.events.splice(idx, 1);
    return Promise.resolve(e.args[0]);
  }
  return new Promise((resolve, reject) => {
    const waiter = { name, where, resolve };
    rec.waiters.push(waiter);
    setTimeout(() => {
      const i = rec.waiters.indexOf(waiter);
      if (i < 0) return;
      rec.waiters.splice(i, 1);
      const seen = rec.events.map((e) => e.event).join(', ') || 'nothing';
      reject(new Error(`no "${name}" within ${timeout} ms (socket has unclaimed: ${seen})`));
    }, timeout);
  });
}

/**
 * Asserts that no `name` event (matching opts.where, if given) is waiting
 * unclaimed on the socket or arrives within ms.
 */
async function noEvent(socket, name, ms = 300, opts = {}) {
  const where = opts.where || (() => true);
  const rec = socket[RECORDER];
  if (!rec) {
    let got = null;
    const handler = (...args) => {
      if (where(...args)) got = args;
    };
    socket.on(name, handler);
    await quietPeriod(ms);
    socket.off(name, handler);
    assert.equal(got, null, `unexpected "${name}": ${JSON.stringify(got)}`);
    return;
  }
  const check = () => {
    const hit = rec.events.find((e) => e.event === name && where(...e.args));
    if (hit) assert.fail(`unexpected "${name}": ${JSON.stringify(hit.args[0])}`);
  };
  check();
  await quietPeriod(ms);
  check();
}

/** Unclaimed recorded events of `name` (or all) on the socket, oldest first. */
function eventsOf(socket, name) {
  const rec = socket[RECORDER];
  return rec.events.filter((e) => name === undefined || e.event === name).map((e) => (name === undefined ? e : e.args[0]));
}

/** Forgets recorded events of `name` (or all). */
function clearEvents(socket, name) {
  const rec = socket[RECORDER];
  if (!rec) return;
  rec.events = rec.events.filter((e) => name !== undefined && e.event !== name);
}

/** Resolves when the socket is disconnected, with the reason. */
function disconnected(socket, timeoutMs = 3000) {
  return nextEvent(socket, 'disconnect', timeoutMs);
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/**
 * fetch wrapper: { body } is sent as JSON, { raw } as is; { token } adds
 * `Authorization: Bearer <token>`. Resolves { status, headers, json, text }.
 */
async function http(method, url, { body, raw, token, headers = {}, timeoutMs = 5000 } = {}) {
  const h = { ...headers };
  let payload;
  if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] = h['content-type'] || 'application/json';
  } else if (raw !== undefined) {
    payload = raw;
    h['content-type'] = h['content-type'] || 'application/json';
  }
  if (token !== undefined) h.authorization = `Bearer ${token}`;
  const res = await fetch(url, { method, headers: h, body: payload, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let json = null;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, json, text };
}

// ---------------------------------------------------------------------------
// Assertions and small utilities
// ---------------------------------------------------------------------------

/** Asserts that obj is a plain object with exactly these keys. */
function assertKeys(obj, keys, what = 'object') {
  assert.ok(obj && typeof obj === 'object' && !Array.isArray(obj), `${what} must be an object, got ${JSON.stringify(obj)}`);
  assert.deepEqual(Object.keys(obj).sort(), [...keys].sort(), `${what} keys: ${JSON.stringify(obj)}`);
}

// A viewer's keys: v1's, plus `editing`, `idle` and `devices` in v2
// (section 3.1) — the Rust server; the Node peer implements v1.
const V1_VIEWER_KEYS = ['agentId', 'agentName', 'status', 'since', 'typingStartedAt'];
const VIEWER_KEYS = isRust ? [...V1_VIEWER_KEYS, 'editing', 'idle', 'devices'] : V1_VIEWER_KEYS;

/**
 * What a viewer in its default v2 state adds to the v1 shape (not editing,
 * not idle, on the web); nothing for the peer (v1):
 *   assert.deepEqual(v, h.v2Viewer({ agentId, agentName, status, since, typingStartedAt }));
 */
function v2Viewer(v1, extra = {}) {
  return isRust ? { ...v1, editing: false, idle: false, devices: ['web'], ...extra } : v1;
}

/** Asserts the shape of one viewer object. */
function assertViewer(v) {
  assertKeys(v, VIEWER_KEYS, 'viewer');
  assert.equal(typeof v.agentId, 'string');
  assert.equal(typeof v.agentName, 'string');
  assert.ok(v.status === 'viewing' || v.status === 'typing', `status ${v.status}`);
  assert.ok(Number.isInteger(v.since), `since ${v.since}`);
  if (v.status === 'viewing') assert.equal(v.typingStartedAt, null);
  else assert.ok(Number.isInteger(v.typingStartedAt), `typingStartedAt ${v.typingStartedAt}`);
  if (isRust) {
    assert.equal(typeof v.editing, 'boolean', `editing ${v.editing}`);
    assert.equal(typeof v.idle, 'boolean', `idle ${v.idle}`);
    assert.ok(Array.isArray(v.devices) && v.devices.length > 0, `devices ${JSON.stringify(v.devices)}`);
    assert.deepEqual(v.devices, [...new Set(v.devices)].sort(), `devices distinct and sorted: ${JSON.stringify(v.devices)}`);
  }
}

/** Asserts a viewer list: valid viewers ordered by since, then agentId. */
function assertViewerList(list) {
  assert.ok(Array.isArray(list), `viewers must be an array: ${JSON.stringify(list)}`);
  list.forEach(assertViewer);
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1];
    const b = list[i];
    const ordered = a.since < b.since || (a.since === b.since && a.agentId < b.agentId);
    assert.ok(ordered, `viewers not ordered by since, then agentId: ${JSON.stringify(list)}`);
  }
}

/** Asserts an ack is { ok: false, error: { code, message } } with this code. */
function assertAckError(ack, code) {
  assertKeys(ack, ['ok', 'error'], 'failure ack');
  assert.equal(ack.ok, false);
  assertKeys(ack.error, ['code', 'message'], 'ack error');
  assert.equal(ack.error.code, code, `expected ${code}, got ${JSON.stringify(ack.error)}`);
  assert.equal(typeof ack.error.message, 'string');
  assert.ok(ack.error.message.length > 0, 'error message must not be empty');
}

/** Asserts an HTTP reply is the error envelope { error: { code, message } } with this status and code. */
function assertHttpError(res, status, code) {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${res.text}`);
  assertKeys(res.json, ['error'], 'error envelope');
  assertKeys(res.json.error, ['code', 'message'], 'error');
  assert.equal(res.json.error.code, code, res.text);
  assert.equal(typeof res.json.error.message, 'string');
  assert.match(res.headers.get('content-type') || '', /application\/json/);
}

// ---------------------------------------------------------------------------
// Timeline positions (contract v2, section 4.1)
// ---------------------------------------------------------------------------
//
// v2 adds `offset` and `epoch` to every timeline event published through the
// internal API, to each single publish's reply and to the timeline:subscribe
// ack. The Rust server implements v2; the Node peer (TARGET=peer) implements
// v1 and sends neither. Tests write the v1 shape and wrap it in
// `withPosition(...)`: the one place where the targets differ.

/** True when the target sends timeline offsets and epochs (v2): the Rust server. */
const hasPositions = isRust;

/**
 * The exact shape to expect: `expected` plus `{ offset, epoch }` for a v2
 * target, `expected` unchanged for the peer (v1).
 *   assert.deepEqual(ev, h.withPosition({ entityType, entityId, item }, { offset: 1, epoch }));
 */
function withPosition(expected, { offset, epoch } = {}) {
  return hasPositions ? { ...expected, offset, epoch } : expected;
}

/** `keys` plus 'offset' and 'epoch' for a v2 target (for assertKeys). */
function withPositionKeys(keys) {
  return hasPositions ? [...keys, 'offset', 'epoch'] : keys;
}

/**
 * The epoch of a subscribe ack, an event or a publish reply: asserts it is a
 * non-empty string a client can send back in `since` (at most 128
 * characters) and returns it; undefined for the peer (v1), which has none.
 */
function epochOf(payload, what = 'payload') {
  if (!hasPositions) return undefined;
  const { epoch } = payload || {};
  assert.equal(typeof epoch, 'string', `${what}: epoch must be a string: ${JSON.stringify(payload)}`);
  assert.ok(epoch.length > 0 && [...epoch].length <= 128, `${what}: epoch must be 1 to 128 characters: ${JSON.stringify(payload)}`);
  return epoch;
}

/**
 * Multi-instance mode (redis_url set): the shape of a position where its
 * value is not what the test is about, or may legitimately be either (a
 * publish racing a Redis outage, a Redis Cluster node that refuses the
 * history script): both null, or an integer >= 0 and a non-empty string.
 * Returns the position found, to compare the rest exactly:
 *   assert.deepEqual(ev, h.withPosition({ entityType, entityId, item }, h.clusterPosition(ev)));
 * The values themselves are checked where they matter: test/recovery.test.js
 * (both topologies) and the fan-out test of test/cluster.test.js.
 */
function clusterPosition(payload) {
  if (!hasPositions) return {};
  assert.ok(payload && typeof payload === 'object' && 'offset' in payload && 'epoch' in payload, `offset and epoch missing: ${JSON.stringify(payload)}`);
  const { offset, epoch } = payload;
  const none = offset === null && epoch === null;
  const some = Number.isInteger(offset) && offset >= 0 && typeof epoch === 'string' && epoch.length > 0;
  assert.ok(none || some, `offset and epoch must be both null or an integer >= 0 and a non-empty string: ${JSON.stringify(payload)}`);
  return { offset, epoch };
}

let uidCounter = 0;
/** A unique identifier for this process: prefix-<pid>-<n>. */
function uid(prefix = 'id') {
  uidCounter += 1;
  return `${prefix}-${process.pid}-${uidCounter}`;
}

// ---------------------------------------------------------------------------
// Time: waiting for a condition, and the few fixed delays that are not waits
// ---------------------------------------------------------------------------
//
// A test never sleeps "long enough" for something to happen: it waits for it
// with a deadline and a message (`eventually` below, `nextEvent`,
// `disconnected`, `waitForOutput`, `waitCluster`, ...). The fixed delays left
// are of four kinds, each with its own name so that a reader knows which:
//   separateTimestamps(ms)  two actions must get different millisecond stamps;
//   quietPeriod(ms)         a window in which something must NOT happen (a
//                           negative assertion: its length is the assertion's);
//   elapse(ms)              the scenario needs time to pass (half of a server
//                           timer, the pace of an activity or traffic loop);
//   graceFor(ms, why)       something the test needs but cannot observe (say
//                           what in `why`); a last resort.

/**
 * Returns once Date.now() is at least `ms` past the call (default 3 ms), so
 * that what the server stamps next (viewer `since`, `typingStartedAt`: the
 * same clock, millisecond resolution) is later than anything it stamped
 * before the call. Not a wait for anything.
 */
async function separateTimestamps(ms = 3) {
  const until = Date.now() + ms;
  while (Date.now() < until) await sleep(Math.max(1, until - Date.now()));
}

/**
 * A window of `ms` in which the caller asserts that something does NOT
 * happen (no event arrives, no process exits, no extra ack): the delay is the
 * assertion's, not a wait for anything. See also noEvent().
 */
function quietPeriod(ms) {
  return sleep(ms);
}

/**
 * Lets `ms` pass on purpose, as part of the scenario: e.g. renew typing half
 * way through typing_timeout, or pace a loop that keeps an agent active or
 * sends traffic. Not a wait for anything.
 */
function elapse(ms) {
  return sleep(ms);
}

/**
 * A fixed grace period for something the test needs but cannot observe from
 * outside (`why` says what, for the reader and in the source). Use only when
 * there is no condition to wait for.
 */
function graceFor(ms, why) {
  if (!why) throw new Error('graceFor: say what the grace period is for');
  return sleep(ms);
}

/** Polls fn() until it returns a truthy value; fails after timeoutMs. */
async function eventually(fn, { timeoutMs = 3000, intervalMs = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`${message} not met within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------
// Multi-instance (Redis) helpers
// ---------------------------------------------------------------------------

/**
 * Starts `count` nodes with the same config (e.g. { redis_url, node_timeout })
 * one after the other; if one fails to start, stops the ones already started.
 */
async function startNodes(count, config = {}, opts = {}) {
  const nodes = [];
  try {
    for (let i = 0; i < count; i++) nodes.push(await startServer(config, opts));
  } catch (e) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw e;
  }
  return nodes;
}

/** Stops every node given (SIGTERM, SIGKILL after 5 s); ignores nodes already gone. */
async function stopNodes(nodes) {
  await Promise.all(nodes.filter(Boolean).map((n) => n.stop()));
}

/** GET /v1/stats of a node (with the bearer token, if given); fails unless 200. */
async function statsOf(node, token) {
  const res = await http('GET', `${node.internalUrl}/v1/stats`, { token, timeoutMs: 3000 });
  assert.equal(res.status, 200, `GET /v1/stats on ${node.internalUrl}: ${res.status} ${res.text}`);
  return res.json;
}

/**
 * Waits until GET /v1/stats on every node reports `cluster.nodes === n`
 * (polling every 100 ms; fails after timeoutMs with the last figures seen).
 */
async function waitCluster(nodes, n, { token, timeoutMs = 10_000 } = {}) {
  await eventually(async () => {
    const seen = [];
    for (const node of nodes) {
      const s = await statsOf(node, token);
      const got = s && s.cluster ? s.cluster.nodes : undefined;
      seen.push(got);
    }
    if (seen.every((x) => x === n)) return true;
    throw new Error(`cluster.nodes per node: ${JSON.stringify(seen)}`);
  }, { timeoutMs, intervalMs: 100, message: `cluster of ${n} nodes on all ${nodes.length}` });
}

// ---------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------

/**
 * Runs a benchmark's main(): an error is printed and makes the exit code 1;
 * the process exits 100 ms after main() ends (stray sockets or timers do not
 * keep it alive).
 */
function runBench(main) {
  main().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  }).finally(() => setTimeout(() => process.exit(), 100));
}

module.exports = {
  startNodes,
  stopNodes,
  statsOf,
  waitCluster,
  TARGET,
  isPeer,
  isRust,
  PEER_DIR,
  SWITCHBOARD_BIN,
  TRANSPORTS,
  sleep,
  separateTimestamps,
  quietPeriod,
  elapse,
  graceFor,
  freePort,
  isAddressInUse,
  waitForOutput,
  parseServingLine,
  rustFlags,
  startServer,
  serverForDescribe,
  spawnProcess,
  runToExit,
  connect,
  closeAllSockets,
  NO_PAYLOAD,
  emitAck,
  nextEvent,
  noEvent,
  eventsOf,
  clearEvents,
  disconnected,
  http,
  assertKeys,
  assertViewer,
  assertViewerList,
  assertAckError,
  assertHttpError,
  VIEWER_KEYS,
  v2Viewer,
  hasPositions,
  withPosition,
  withPositionKeys,
  epochOf,
  clusterPosition,
  uid,
  eventually,
  runBench,
};
