'use strict';

// The client generations of contract section 1, behind one small interface,
// for tests that run the same scenario with each of them:
//
//   const c = await openClient('socket.io-client 2.x', 'upgrade', url, { query: { token } });
//   await c.emitAck('ticket:view', {...});   c.emit('ticket:view', 'x');
//   await c.next('viewers:updated', (p) => ...);   c.close();
//
// socket.io-client 2.x has no onAny, emitWithAck or timeout(): every client
// here records the contract's server events by name and answers acks with
// its own timer, so the same code drives all of them.

const h = require('./helpers');

/** The real packages (npm aliases in package.json), newest last. */
const GENERATIONS = {
  'socket.io-client 2.x': { lib: require('socket.io-client-v2'), engineIo: 3 },
  'socket.io-client 3.x': { lib: require('socket.io-client-v3'), engineIo: 4 },
  'socket.io-client 4.x': { lib: require('socket.io-client'), engineIo: 4 },
};

/**
 * Transports as the client is told to use them. `upgrade` starts with
 * long-polling and moves to a websocket; openClient waits for the move.
 */
const TRANSPORTS = {
  websocket: ['websocket'],
  polling: ['polling'],
  upgrade: ['polling', 'websocket'],
};

/** Every event the server sends to clients (contract sections 2-4). */
const SERVER_EVENTS = [
  'viewers:updated', 'collision:warning', 'agent:joined', 'agent:left', 'agent:typing', 'agent:stopped_typing',
  'ticket:error', 'timeline:error', 'timeline:subscribed', 'timeline:unsubscribed',
  'timeline:new_item', 'timeline:item_updated', 'timeline:refresh',
];

const open = new Set();

class Client {
  constructor(socket) {
    this.socket = socket;
    this.events = [];
    this.waiters = [];
    for (const name of SERVER_EVENTS) socket.on(name, (payload) => this.push(name, payload));
  }

  push(name, payload) {
    const i = this.waiters.findIndex((w) => w.name === name && w.where(payload));
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve(payload);
    else this.events.push({ name, payload });
  }

  /** The first `name` event matching `where`, received already or within timeoutMs. */
  next(name, where = () => true, timeoutMs = 3000) {
    const i = this.events.findIndex((e) => e.name === name && where(e.payload));
    if (i >= 0) return Promise.resolve(this.events.splice(i, 1)[0].payload);
    return new Promise((resolve, reject) => {
      const waiter = { name, where, resolve };
      this.waiters.push(waiter);
      setTimeout(() => {
        const j = this.waiters.indexOf(waiter);
        if (j < 0) return;
        this.waiters.splice(j, 1);
        const seen = this.events.map((e) => e.name).join(', ') || 'nothing';
        reject(new Error(`no "${name}" within ${timeoutMs} ms (unclaimed: ${seen})`));
      }, timeoutMs);
    });
  }

  emit(event, payload) {
    this.socket.emit(event, payload);
  }

  emitAck(event, payload, timeoutMs = 3000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ack for ${event} within ${timeoutMs} ms`)), timeoutMs);
      this.socket.emit(event, payload, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
    });
  }

  /** The Engine.IO transport in use now: `websocket` or `polling`. */
  transport() {
    return this.socket.io.engine.transport.name;
  }

  close() {
    open.delete(this);
    this.socket.close();
  }
}

/**
 * A connected client of `generation` over `transport` (a key of TRANSPORTS).
 * opts: `parser` (e.g. socket.io-msgpack-parser), `query`, `auth`,
 * `timeoutMs`. Rejects with the connect error when the server refuses.
 */
async function openClient(generation, transport, url, { timeoutMs = 5000, ...opts } = {}) {
  const { lib } = GENERATIONS[generation];
  const io = lib.io || lib;
  const socket = io(url, {
    forceNew: true,
    reconnection: false,
    timeout: timeoutMs,
    transports: TRANSPORTS[transport],
    ...opts,
  });
  const client = new Client(socket);
  open.add(client);
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${generation} over ${transport}: no connect within ${timeoutMs} ms`)), timeoutMs);
      const fail = (err) => {
        clearTimeout(timer);
        reject(new Error(`${generation} over ${transport}: ${err && err.message ? err.message : JSON.stringify(err)}`));
      };
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('connect_error', fail);
      // 2.x reports a namespace refused by a middleware as `error`.
      if (GENERATIONS[generation].engineIo === 3) socket.once('error', fail);
    });
    if (transport === 'upgrade') {
      await h.eventually(() => {
        if (client.transport() !== 'websocket') throw new Error(`${generation}: still on ${client.transport()}, no upgrade`);
        return true;
      }, { timeoutMs: 5000, message: 'the upgrade to websocket' });
    }
  } catch (e) {
    client.close();
    throw e;
  }
  return client;
}

function closeAllClients() {
  for (const c of [...open]) c.close();
}

module.exports = { GENERATIONS, TRANSPORTS, openClient, closeAllClients };
