'use strict';

// Stretch goal of the multi-instance issue: `redis_url` pointing at a Redis
// Cluster. Classic pub/sub is broadcast over the cluster bus, so two
// Switchboard nodes attached to two different masters of one Redis Cluster
// must still form one Switchboard cluster. (No failover: a node keeps
// retrying the master it was given.)

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const h = require('../helpers');
const { startRedis } = require('../redis');

const SKIP = h.isPeer ? 'the peer has no cluster-wide presence' : false;

// `count` cluster-enabled redis-servers (each answering PING, with a probed
// port and cluster bus port of its own: see startRedis in redis.js), joined
// into one Redis Cluster of masters.
async function startRedisCluster(count) {
  const servers = [];
  const stop = () => Promise.all(servers.map((s) => s.cleanup()));
  try {
    for (let i = 0; i < count; i++) servers.push(await startRedis({ cluster: true }));
    execFileSync('redis-cli', ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`),
      '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'pipe', timeout: 20_000 });
    for (const s of servers) {
      await h.eventually(() => execFileSync('redis-cli', ['-p', String(s.port), 'cluster', 'info'], { timeout: 5000 })
        .toString().includes('cluster_state:ok'), { timeoutMs: 15_000, message: `cluster state ok on ${s.port}` });
    }
  } catch (e) {
    await stop();
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
    if (rc) await rc.stop();
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
    // v2 offset and epoch: only the fields, not yet their values (h.clusterPosition, helpers.js).
    assert.deepEqual(res.json, h.withPosition({ delivered: true }, h.clusterPosition(res.json)));
    assert.deepEqual((await item).item, { id: 1 });
  });
});
