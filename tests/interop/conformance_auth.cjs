'use strict';
// Preload for the MCP conformance suite (`node --require ./conformance_auth.cjs …/conformance/dist/index.js
// server --url …`): the suite (0.1.16) has no option to send extra request headers, but the gateway
// needs `Authorization: Bearer <key>`. Every request the suite's server mode makes goes through
// either the global `fetch` (the MCP TypeScript SDK transport and the suite's own raw requests) or
// `undici.request` (the dns-rebinding-protection scenario). Both are wrapped here to add
// `Authorization: Bearer $INTEROP_AUTH_BEARER` to requests whose origin is $INTEROP_AUTH_ORIGIN
// (e.g. http://127.0.0.1:PORT) when the request does not already carry an Authorization header.
// Nothing else is changed. Without INTEROP_AUTH_BEARER this preload does nothing.
const token = process.env.INTEROP_AUTH_BEARER;
const origin = process.env.INTEROP_AUTH_ORIGIN;

function targets(url) {
  try {
    return new URL(String(url)).origin === origin;
  } catch (_) {
    return false;
  }
}

function hasAuth(headers) {
  if (!headers) return false;
  if (typeof headers.has === 'function') return headers.has('authorization');
  if (Array.isArray(headers)) {
    if (headers.length && Array.isArray(headers[0])) {
      return headers.some(([k]) => String(k).toLowerCase() === 'authorization');
    }
    for (let i = 0; i < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === 'authorization') return true;
    }
    return false;
  }
  return Object.keys(headers).some((k) => k.toLowerCase() === 'authorization');
}

if (token && origin) {
  const value = `Bearer ${token}`;
  let count = 0;

  const originalFetch = globalThis.fetch;
  globalThis.fetch = function fetchWithAuth(input, init) {
    const url = typeof input === 'string' || input instanceof URL ? input : input && input.url;
    if (targets(url)) {
      const base = (init && init.headers) || (input instanceof Request ? input.headers : undefined);
      const headers = new Headers(base || undefined);
      if (!headers.has('authorization')) headers.set('authorization', value);
      init = { ...(init || {}), headers };
      count += 1;
    }
    return originalFetch.call(this, input, init);
  };

  // undici is a CommonJS package: the suite's ESM `import { request } from "undici"` reads the
  // cached module.exports, so replacing `request` before the suite loads is enough.
  let undici = null;
  try {
    undici = require(require.resolve('undici', { paths: [process.cwd(), __dirname] }));
  } catch (_) {
    undici = null;
  }
  if (undici && typeof undici.request === 'function') {
    const originalRequest = undici.request;
    undici.request = function requestWithAuth(url, opts) {
      if (targets(url)) {
        const o = { ...(opts || {}) };
        const h = o.headers;
        if (!hasAuth(h)) {
          if (Array.isArray(h)) {
            o.headers = h.length && Array.isArray(h[0]) ? [...h, ['authorization', value]] : [...h, 'authorization', value];
          } else {
            o.headers = { ...(h || {}), authorization: value };
          }
        }
        opts = o;
        count += 1;
      }
      return originalRequest.call(this, url, opts);
    };
  }
  process.on('exit', () => {
    process.stderr.write(`conformance_auth: added Authorization to ${count} request(s) for ${origin}\n`);
  });
}
