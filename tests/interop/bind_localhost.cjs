'use strict';
// Preload (`node --require ./bind_localhost.cjs ...`): a listen() that names no host binds
// 127.0.0.1 instead of every interface. server-everything calls `app.listen(PORT)`; this keeps
// the interop tests on the loopback interface. Unix sockets, handles and explicit hosts are
// left alone.
const net = require('net');

const LOOPBACK = '127.0.0.1';
const originalListen = net.Server.prototype.listen;

function isPort(v) {
  return typeof v === 'number' || (typeof v === 'string' && /^\d+$/.test(v));
}

net.Server.prototype.listen = function listen(...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object') {
    const o = first;
    if (o.host === undefined && o.path === undefined && o.fd === undefined &&
        o.handle === undefined && o._handle === undefined) {
      args[0] = { ...o, host: LOOPBACK };
    }
  } else if (first === undefined || typeof first === 'function' || isPort(first)) {
    // listen(), listen(cb), listen(port[, host][, backlog][, cb])
    if (!isPort(first)) args.splice(0, first === undefined ? 1 : 0, 0);
    if (typeof args[1] !== 'string') args.splice(1, 0, LOOPBACK);
  }
  this.once('listening', () => {
    const a = this.address();
    if (a && typeof a === 'object') {
      process.stderr.write(`bind_localhost: listening on ${a.address}:${a.port}\n`);
    }
  });
  return originalListen.apply(this, args);
};
