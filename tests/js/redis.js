'use strict';

// A throw-away Redis for the multi-instance tests and benchmarks: Debian's
// `redis-server` on a loopback port, no persistence, in the foreground.
//
//   const redis = await startRedis();          // a free port
//   const redis = await startRedis({ port });  // this port (e.g. one a node already points at)
//   redis.url        // redis://127.0.0.1:PORT
//   await redis.stop();     // SIGTERM, wait for the exit (SIGKILL after 5 s)
//   await redis.kill();     // SIGKILL, wait for the exit
//   await redis.restart();  // stop if running, start again on the same port (empty: no persistence)
//
// For a describe: `clusterForDescribe(count, config, { token })` (Redis and
// `count` nodes, formed into a cluster, stopped afterwards) or `clusterFixture()`
// (only the stopping: the describe starts Redis and the nodes itself).
// For a benchmark: `withNodesOnRedis(count, config, async ({ redis, nodes }) => ...)`.
//
// REDIS_SERVER overrides the binary (default: `redis-server` on PATH). When it
// is missing, startRedis() throws an error saying how to install it, so the
// cluster tests fail loudly instead of being skipped.

const fs = require('node:fs');
const os = require('node:os');
const net = require('node:net');
const path = require('node:path');
const { before, after, afterEach } = require('node:test');
const h = require('./helpers');

const INSTALL_HINT = 'install it with "apt-get update && apt-get install -y redis-server" (Debian), or set REDIS_SERVER to its path';

/** The redis-server binary, or null when it cannot be found. */
function findRedisServer() {
  const given = process.env.REDIS_SERVER;
  if (given) return fs.existsSync(given) ? path.resolve(given) : null;
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, 'redis-server');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** Throws a clear error when redis-server is not installed. */
function requireRedisServer() {
  const bin = findRedisServer();
  if (!bin) {
    const what = process.env.REDIS_SERVER ? `REDIS_SERVER=${process.env.REDIS_SERVER} does not exist` : 'redis-server is not on PATH';
    throw new Error(`the multi-instance (Redis) tests need Redis: ${what}; ${INSTALL_HINT}`);
  }
  return bin;
}

/**
 * One PING over raw RESP on 127.0.0.1:port; resolves true on "+PONG", false on
 * anything else (refused, closed, an error reply such as -LOADING, timeout).
 */
function ping(port, timeoutMs = 500) {
  return new Promise((resolve) => {
    let buf = '';
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const sock = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.setEncoding('latin1');
    sock.once('connect', () => sock.write('*1\r\n$4\r\nPING\r\n'));
    sock.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) finish(buf.startsWith('+PONG\r\n'));
    });
    sock.once('error', () => finish(false));
    sock.once('close', () => finish(false));
  });
}

/** Starts redis-server; resolves with a handle once it answers PING. */
async function startRedis({ port } = {}) {
  const bin = requireRedisServer();
  const redisPort = port || (await h.freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-redis-'));
  let current = null; // the spawnProcess() handle of the running redis-server

  async function spawnOne() {
    const p = h.spawnProcess(bin, [
      '--port', String(redisPort),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--dir', dir,
      '--loglevel', 'warning',
    ], { env: { ...process.env }, cwd: dir });
    let exit = null;
    p.exited.then((e) => {
      exit = e;
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (exit) {
        throw new Error(`redis-server on port ${redisPort} exited at start (code ${exit.code}, signal ${exit.signal})\n${p.stdout()}${p.stderr()}`);
      }
      if (await ping(redisPort)) break;
      if (Date.now() > deadline) {
        p.proc.kill('SIGKILL');
        await p.exited;
        throw new Error(`redis-server on port ${redisPort} does not answer PING after 10 s\n${p.stdout()}${p.stderr()}`);
      }
      await h.sleep(25);
    }
    current = p;
  }

  async function end(signal) {
    const p = current;
    if (!p) return null;
    current = null;
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill(signal);
    const timer = setTimeout(() => p.proc.kill('SIGKILL'), 5000);
    const result = await p.exited;
    clearTimeout(timer);
    return result;
  }

  await spawnOne();
  return {
    url: `redis://127.0.0.1:${redisPort}`,
    port: redisPort,
    get proc() {
      return current && current.proc;
    },
    get running() {
      return current !== null;
    },
    ping: () => ping(redisPort),
    /** SIGTERM and wait for the exit (SIGKILL after 5 s); a no-op when not running. */
    stop: () => end('SIGTERM'),
    /** SIGKILL and wait for the exit. */
    kill: () => end('SIGKILL'),
    /** Stops it if running, then starts it again on the same port. */
    async restart() {
      await end('SIGTERM');
      await spawnOne();
    },
    /** Stops it and removes its directory; call in `after`. */
    async cleanup() {
      await end('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * For a describe of the multi-instance tests: a context { redis, nodes } for
 * the describe to fill in. Closes every socket after each test and, after the
 * describe, stops the nodes and Redis, whatever happened.
 */
function clusterFixture() {
  const ctx = { redis: null, nodes: [] };
  after(async () => {
    h.closeAllSockets();
    await h.stopNodes(ctx.nodes);
    if (ctx.redis) await ctx.redis.cleanup();
  });
  afterEach(() => h.closeAllSockets());
  return ctx;
}

/**
 * clusterFixture(), filled in before the describe's tests: Redis, and `count`
 * nodes on it (`config` plus redis_url) that have formed one cluster
 * (`token`: the internal_token, to read /v1/stats).
 */
function clusterForDescribe(count, config, { token } = {}) {
  const ctx = clusterFixture();
  before(async () => {
    ctx.redis = await startRedis();
    ctx.nodes = await h.startNodes(count, { ...config, redis_url: ctx.redis.url });
    await h.waitCluster(ctx.nodes, count, { token });
  });
  return ctx;
}

/**
 * For a benchmark: starts Redis and `count` nodes on it (redis_url plus
 * `config`), waits for the cluster to form, runs body({ redis, nodes }) and
 * then stops everything, whatever happened; resolves with body's result.
 */
async function withNodesOnRedis(count, config, body) {
  const redis = await startRedis();
  let nodes = [];
  try {
    nodes = await h.startNodes(count, { redis_url: redis.url, ...config });
    await h.waitCluster(nodes, count);
    return await body({ redis, nodes });
  } finally {
    h.closeAllSockets();
    await h.stopNodes(nodes);
    await redis.cleanup();
  }
}

module.exports = { startRedis, requireRedisServer, findRedisServer, ping, clusterFixture, clusterForDescribe, withNodesOnRedis };
