'use strict';

// A throw-away Redis for the multi-instance tests and benchmarks: Debian's
// `redis-server` on a loopback port, no persistence, in the foreground.
//
//   const redis = await startRedis();          // a free port (probed; another one on a bind race)
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

/**
 * The process id of the redis-server on 127.0.0.1:port (`INFO server`,
 * process_id), or null when nothing answers it (refused, closed, an error
 * reply, timeout). Tells our redis-server from another one on that port.
 */
function serverPid(port, timeoutMs = 500) {
  return new Promise((resolve) => {
    let buf = '';
    let done = false;
    const finish = (pid) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(pid);
    };
    const sock = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => finish(null), timeoutMs);
    sock.setEncoding('latin1');
    sock.once('connect', () => sock.write('*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n'));
    sock.on('data', (d) => {
      buf += d;
      if (!buf.startsWith('$')) {
        if (buf.includes('\r\n')) finish(null);
        return;
      }
      const m = /^\$(\d+)\r\n/.exec(buf);
      if (!m || buf.length < m[0].length + Number(m[1])) return; // the bulk reply is not complete yet
      const pid = /\bprocess_id:(\d+)/.exec(buf);
      finish(pid ? Number(pid[1]) : null);
    });
    sock.once('error', () => finish(null));
    sock.once('close', () => finish(null));
  });
}

const isAddressInUse = (text) => /address already in use/i.test(text);

/**
 * Starts redis-server on a loopback port; resolves with a handle once that
 * very process (its pid, from INFO) answers PING.
 *
 * Ports: redis-server cannot bind port 0 and report the port (`--port 0`
 * means "no TCP at all"), so the port is probed (`h.freePort`) and, should
 * another process take it before redis-server binds it ("Address already in
 * use" on its output, then it exits), redis-server is started again on another
 * probed port, up to 5 times. A port given by the caller (`{ port }`, e.g. one
 * nodes already point at) and a restart() keep their port: a bind failure
 * there is retried on that same port until it is free, for up to 10 s, since
 * the nodes cannot be told another one. Checking the pid means a redis-server
 * of someone else's on that port is never taken for ours.
 *
 * `{ cluster: true }`: a Redis Cluster node (cluster-enabled, its own
 * nodes.conf) whose cluster bus gets a probed port of its own too
 * (`--cluster-port`; the default, port + 10000, is out of range for half of
 * the ephemeral ports and may be taken); `clusterPort` in the handle.
 */
async function startRedis({ port, cluster = false } = {}) {
  const bin = requireRedisServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-redis-'));
  let redisPort = port || null;
  let busPort = null;
  let current = null; // the spawnProcess() handle of the running redis-server

  // One redis-server on `onPort`: resolves with its handle once it answers,
  // throws (with .addressInUse) when it exits first.
  async function spawnOn(onPort) {
    if (cluster && busPort === null) {
      busPort = await h.freePort();
      while (busPort === onPort) busPort = await h.freePort();
    }
    const clusterArgs = cluster
      ? ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(busPort)]
      : [];
    const p = h.spawnProcess(bin, [
      '--port', String(onPort),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--dir', dir,
      '--loglevel', 'warning',
      ...clusterArgs,
    ], { env: { ...process.env }, cwd: dir });
    let exit = null;
    p.exited.then((e) => {
      exit = e;
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (exit) {
        const output = `${p.stdout()}${p.stderr()}`;
        const e = new Error(`redis-server on port ${onPort} exited at start (code ${exit.code}, signal ${exit.signal})\n${output}`);
        e.addressInUse = isAddressInUse(output);
        if (e.addressInUse && cluster && redisPort === null) busPort = null; // the bus port may be the one taken
        throw e;
      }
      if ((await serverPid(onPort)) === p.proc.pid && (await ping(onPort))) return p;
      if (Date.now() > deadline) {
        p.proc.kill('SIGKILL');
        await p.exited;
        throw new Error(`redis-server on port ${onPort} does not answer PING after 10 s\n${p.stdout()}${p.stderr()}`);
      }
      await h.sleep(25); // polling interval of this wait
    }
  }

  async function spawnOne() {
    if (redisPort === null) {
      // A probed port of our own: on a bind race, another one.
      for (let attempt = 1; ; attempt++) {
        const candidate = await h.freePort();
        try {
          current = await spawnOn(candidate);
          redisPort = candidate;
          return;
        } catch (e) {
          if (!e.addressInUse || attempt >= 5) throw e;
        }
      }
    }
    // A fixed port: wait for it to be free (bounded).
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        current = await spawnOn(redisPort);
        return;
      } catch (e) {
        if (!e.addressInUse || Date.now() > deadline) {
          throw new Error(`${e.message}${e.addressInUse ? `\n(port ${redisPort} still in use after 10 s)` : ''}`);
        }
      }
      await h.sleep(100); // polling interval: is the port free yet?
    }
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

  try {
    await spawnOne();
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    url: `redis://127.0.0.1:${redisPort}`,
    port: redisPort,
    clusterPort: busPort,
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
    /** Stops it if running, then starts it again on the same port (see above: waits for the port if need be). */
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

module.exports = { startRedis, requireRedisServer, findRedisServer, ping, serverPid, clusterFixture, clusterForDescribe, withNodesOnRedis };
