'use strict';

// socket.io-client 2.x dressed as 4.x, so that the whole suite can run with
// it (E2E_CLIENT=v2, see helpers.js). It adds what the tests use and 2.x
// lacks — onAny, timeout(ms).emit(..., cb(err, ack)), emitWithAck — and
// reports a namespace refusal (2.x: an `error` event) as `connect_error`.
// `auth: { token }` becomes the handshake query's `token`, the way a 2.x
// client sends its token to Switchboard (2.x has no `auth`).

const ioV2 = require('socket.io-client-v2');

// 2.x's emit() sends to the server, except for its reserved event names
// (connect_error among them), which it emits locally.
const emitLocally = (socket, event, ...args) => socket.emit(event, ...args);

function withTimeout(socket, ms) {
  return {
    emit(event, ...args) {
      const cb = args.pop();
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        cb(new Error('operation has timed out'));
      }, ms);
      socket.emit(event, ...args, (...reply) => {
        if (done) return;
        clearTimeout(timer);
        cb(null, ...reply);
      });
      return socket;
    },
    emitWithAck(event, ...args) {
      return new Promise((resolve, reject) => {
        this.emit(event, ...args, (err, reply) => (err ? reject(err) : resolve(reply)));
      });
    },
  };
}

/** io(url, opts) of socket.io-client 2.x with the 4.x surface the tests use. */
function io(url, opts = {}) {
  const { auth, ...rest } = opts;
  const query = { ...(rest.query || {}) };
  if (auth && typeof auth === 'object' && auth.token !== undefined) query.token = auth.token;
  const socket = ioV2(url, { ...rest, query });

  const anyListeners = [];
  socket.onAny = (fn) => {
    anyListeners.push(fn);
    return socket;
  };
  const onevent = socket.onevent;
  socket.onevent = function (packet) {
    const args = packet.data || [];
    for (const fn of anyListeners) fn(...args);
    onevent.call(this, packet);
  };
  socket.timeout = (ms) => withTimeout(socket, ms);
  socket.emitWithAck = (event, ...args) =>
    new Promise((resolve) => {
      socket.emit(event, ...args, resolve);
    });
  socket.on('error', (err) => {
    const message = typeof err === 'string' ? err : (err && err.message) || JSON.stringify(err);
    emitLocally(socket, 'connect_error', Object.assign(new Error(message), { data: err }));
  });
  return socket;
}

module.exports = { io };
