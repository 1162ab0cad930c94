#!/usr/bin/env node
// usage: node handshake-flood.js host:port N concurrency — N Engine.IO polling
// handshakes never polled again; NOKEEP=1: each on a new connection.
const http = require('node:http');
const [addr, N, C] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] || 50)];
const agent = process.env.NOKEEP ? false : new http.Agent({ keepAlive: true, maxSockets: C });
function handshake() {
  return new Promise((resolve) => {
    const req = http.get(`http://${addr}/socket.io/?EIO=4&transport=polling`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve('error'));
  });
}
(async () => {
  let next = 0; const by = {};
  const t0 = Date.now();
  await Promise.all(Array.from({ length: C }, async () => {
    while (next < N) { next++; const s = await handshake(); by[s] = (by[s] || 0) + 1; }
  }));
  if (agent) agent.destroy();
  console.log(JSON.stringify({ by, ms: Date.now() - t0 }));
})();
