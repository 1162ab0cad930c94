'use strict';

// Lost-node detection time: two nodes on one Redis, an agent viewing a
// ticket on node A and another viewing it on node B; SIGKILL node A; the time
// from the kill to B's client receiving agent:left { reason: "node_lost" }.
//
//   SWITCHBOARD_BIN=../../target/release/switchboard node bench/node-lost.js              # node_timeout default (15 s)
//   SWITCHBOARD_BIN=../../target/release/switchboard node bench/node-lost.js --node-timeout 2000
//
// Prints one line of JSON. Bounded: waits node_timeout + 60 s at most.

const h = require('../helpers');
const { withNodesOnRedis } = require('../redis');

const i = process.argv.indexOf('--node-timeout');
const nodeTimeout = i > 0 ? Number(process.argv[i + 1]) : undefined; // ms; undefined = the server's default
if (nodeTimeout !== undefined && !(nodeTimeout > 0)) throw new Error('--node-timeout takes a number of milliseconds');
const DEFAULT_NODE_TIMEOUT = 15_000;

h.runBench(async () => {
  if (h.isPeer) throw new Error('the peer has no node_lost handling');
  const config = nodeTimeout !== undefined ? { node_timeout: nodeTimeout } : {};
  await withNodesOnRedis(2, config, async ({ nodes }) => {
    const [A, B] = nodes;
    const ticketId = h.uid('t');
    const ada = await h.connect(A.url, { transports: ['websocket'] });
    const bob = await h.connect(B.url, { transports: ['websocket'] });
    await h.emitAck(ada, 'ticket:view', { ticketId, agentId: 'ada', agentName: 'Ada' });
    await h.emitAck(bob, 'ticket:view', { ticketId, agentId: 'bob', agentName: 'Bob' });
    await h.eventually(async () => {
      const res = await h.http('GET', `${B.internalUrl}/v1/tickets/${ticketId}/viewers`);
      return res.json && res.json.viewers.some((v) => v.agentId === 'ada');
    }, { timeoutMs: 10_000, message: 'B lists Ada' });

    const bound = (nodeTimeout || DEFAULT_NODE_TIMEOUT) + 60_000;
    const lost = h.nextEvent(bob, 'agent:left', { timeout: bound, where: (p) => p.agentId === 'ada' });
    const killedAt = Date.now();
    A.proc.kill('SIGKILL');
    const ev = await lost;
    const detectMs = Date.now() - killedAt;
    let listGoneMs = null;
    await h.eventually(async () => {
      const res = await h.http('GET', `${B.internalUrl}/v1/tickets/${ticketId}/viewers`);
      return res.json && !res.json.viewers.some((v) => v.agentId === 'ada');
    }, { timeoutMs: 10_000, message: 'B no longer lists Ada' });
    listGoneMs = Date.now() - killedAt;
    console.log(JSON.stringify({
      bench: 'node-lost',
      target: h.TARGET,
      nodeTimeoutMs: nodeTimeout || `default (${DEFAULT_NODE_TIMEOUT})`,
      reason: ev.reason,
      agentLeftMs: detectMs,
      overNodeTimeoutMs: detectMs - (nodeTimeout || DEFAULT_NODE_TIMEOUT),
      viewersEndpointClearMs: listGoneMs,
    }));
    if (ev.reason !== 'node_lost') process.exitCode = 1;
  });
});
