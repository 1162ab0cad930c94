'use strict';

// Stretch goal of the multi-instance issue: `redis_url` pointing at a Redis
// Cluster. Classic pub/sub is broadcast over the cluster bus, so two
// Switchboard nodes attached to two different masters of one Redis Cluster
// must still form one Switchboard cluster. (No failover: a node keeps
// retrying the master it was given.)

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('../helpers');
const { requireRedisServer, ping } = require('../redis');

const SKIP = h.isPeer ? 'the peer has no cluster-wide presence' : false;

async function startRedisCluster(count) {
  const bin = requireRedisServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-rc-'));
  const servers = [];
  for (let i = 0; i < count; i++) {
    const port = await h.freePort();
    const cwd = path.join(dir, String(port));
    fs.mkdirSync(cwd);
    const proc = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
      '--cluster-config-file', 'nodes.conf', '--save', '', '--appendonly', 'no'], { cwd, stdio: 'ignore' });
    servers.push({ port, proc, url: `redis://127.0.0.1:${port}` });
  }
  const stop = () => {
    for (const s of servers) s.proc.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const s of servers) await h.eventually(() => ping(s.port), { timeoutMs: 10_000, message: `redis on ${s.port}` });
    execFileSync('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`),
      '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore', timeout: 20_000 });
    for (const s of servers) {
      await h.eventually(() => execFileSync('redis-cli', ['-p', String(s.port), 'cluster', 'info'], { timeout: 5000 })
        .toString().includes('cluster_state:ok'), { timeoutMs: 15_000, message: `cluster state ok on ${s.port}` });
    }
  } catch (e) {
    stop();
    throw e;
  }
  return { servers, stop };
}

describe('cluster: redis_url pointing at nodes of a Redis Cluster', { skip: SKIP }, () => {
  let rc;
  let nodes = [];
  before(async () => {
    rc = await startRedisCluster(3);
    nodes = await Promise.all([0, 1].map((i) => h.startServer({ redis_url: rc.servers[i].url, node_timeout: 2000 })));
    await h.waitCluster(nodes, 2);
  });
  after(async () => {
    h.closeAllSockets();
    await h.stopNodes(nodes);
    if (rc) rc.stop();
  });

  it('two nodes on two masters share presence and timeline publishes', async () => {
    const [A, B] = nodes;
    const ada = await h.connect(A.url, { transports: ['websocket'] });
    const bob = await h.connect(B.url, { transports: ['websocket'] });
    const ticketId = h.uid('t');
    await h.emitAck(ada, 'ticket:view', { ticketId, agentId: 'ada', agentName: 'Ada' });
    await h.eventually(async () => (await h.http('GET', `${B.internalUrl}/v1/tickets/${ticketId}/viewers`)).json.viewers.length === 1,
      { message: 'Ada listed on B' });
    const warning = h.nextEvent(bob, 'collision:warning');
    const ack = await h.emitAck(bob, 'ticket:view', { ticketId, agentId: 'bob', agentName: 'Bob' });
    assert.deepEqual(ack.viewers.map((v) => v.agentId), ['ada', 'bob']);
    assert.equal((await warning).message, 'Ada is viewing this ticket');

    const entityId = h.uid('e');
    await h.emitAck(bob, 'timeline:subscribe', { entityType: 'client', entityId });
    const item = h.nextEvent(bob, 'timeline:new_item');
    const res = await h.http('POST', `${A.internalUrl}/v1/timeline/client/${entityId}/items`, { body: { id: 1 } });
    assert.deepEqual(res.json, { delivered: true });
    assert.deepEqual((await item).item, { id: 1 });
  });
});
