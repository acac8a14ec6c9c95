// OAuth 2 authorization server for the interop tests: `oidc-provider` (see package.json for the
// pinned version) on 127.0.0.1, configured the way an MCP authorization server is used
// (authorization code + PKCE S256, dynamic client registration, RFC 8707 resource indicators,
// refresh-token rotation with reuse detection, client credentials, token introspection).
//
//   node oauth_provider.mjs [--port 0] [--access-token-ttl 3600] [--no-default-scope]
//
// Prints exactly one line on stdout, `READY http://127.0.0.1:<port>` (the issuer, no path), once
// it is listening; everything else (oidc-provider's notices included) goes to stderr. Exits 0 on
// SIGTERM / SIGINT.
//
// Endpoints besides oidc-provider's own (discovery at /.well-known/oauth-authorization-server and
// /.well-known/openid-configuration, /auth, /token, /reg, /token/introspection, /token/revocation,
// /jwks, /me):
//   GET  /interaction/<uid>          login page (prompt "login") or consent page (prompt "consent")
//   POST /interaction/<uid>/login    form fields username, password (any username, password "pass")
//   POST /interaction/<uid>/confirm  consent: grants every requested scope / claim / resource scope
//   POST /interaction/<uid>/abort    (GET works too) the user refuses: error=access_denied to the client
//   GET  /__stats                    JSON counters (see `stats` below)
//   POST /__stats/reset              zeroes the counters
//   POST /__revoke-access-tokens     destroys every access token issued so far (refresh tokens stay)
//
// Statically configured clients:
//   mcp-resource / mcp-resource-secret   the resource server (introspection only, no grants)
//   mcp-machine  / mcp-machine-secret    client_credentials only (client_secret_basic or _post)
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

// oidc-provider prints its notices with console.info (stdout): stdout carries the READY line only.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'access-token-ttl': { type: 'string', default: '3600' },
    'no-default-scope': { type: 'boolean', default: false },
  },
  strict: true,
});
const port = Number(opts.port);
const accessTokenTTL = Number(opts['access-token-ttl']);
const defaultScope = !opts['no-default-scope'];
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`oauth_provider: bad --port ${opts.port}`);
  process.exit(2);
}
if (!Number.isInteger(accessTokenTTL) || accessTokenTTL <= 0) {
  console.error(`oauth_provider: bad --access-token-ttl ${opts['access-token-ttl']}`);
  process.exit(2);
}

const { default: Provider, errors } = await import('oidc-provider');

const RESOURCE_SCOPE = 'mcp';
const PASSWORD = 'pass';

// ---------------------------------------------------------------------------------------------
// counters
// ---------------------------------------------------------------------------------------------

function zeroStats() {
  return {
    authorization_code: 0, // successful authorization_code grants
    refresh_token: 0, // successful refresh_token grants
    client_credentials: 0, // successful client_credentials grants
    refresh_errors: 0, // failed refresh_token grants (any reason, reuse included)
    reuse_detected: 0, // refresh_token grants presenting an already rotated (consumed) refresh token
    registrations: 0, // successful dynamic client registrations
    introspections: 0, // introspection requests answered (active or not)
    introspections_active: 0, // ... of which answered active: true
    token_errors: 0, // failed token requests, every grant type
    grants_revoked: 0, // grants revoked (reuse detection, revocation endpoint)
    logins: 0, // successful login form submissions
    login_failures: 0, // login form submissions with a wrong password
    consents: 0, // consent form submissions
    aborts: 0, // interactions aborted by the user (access_denied)
  };
}
let stats = zeroStats();
// Values of refresh tokens that were rotated away (consumed): presenting one again is reuse.
// Opaque token values are their `jti`.
const rotatedRefreshTokens = new Set();

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

// oidc-provider keeps the specific reason of an error in `error_detail` (not sent to the client).
function describe(err) {
  const detail = err?.error_detail ? ` (${err.error_detail})` : '';
  return `${err?.error}: ${err?.error_description || err?.message}${detail}`;
}

function html(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function isHttpUrl(value) {
  try {
    const u = new URL(value);
    return (u.protocol === 'http:' || u.protocol === 'https:') && !u.hash;
  } catch {
    return false;
  }
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
}

function page(title, body) {
  return `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>${html(title)}</title></head>
<body>
<h1>${html(title)}</h1>
${body}
</body>
</html>
`;
}

function loginPage(uid, params, error) {
  const action = `/interaction/${encodeURIComponent(uid)}`;
  return page('Sign-in', `
${error ? `<p class="error" id="error">${html(error)}</p>` : ''}
<p>Client <code>${html(params.client_id)}</code> asks you to sign in.</p>
<form id="login" method="post" action="${action}/login">
  <input type="hidden" name="prompt" value="login">
  <label>Username <input type="text" name="username" value="" autofocus></label>
  <label>Password <input type="password" name="password" value=""></label>
  <button type="submit">Sign in</button>
</form>
<form id="abort" method="post" action="${action}/abort">
  <button type="submit">Cancel</button>
</form>
`);
}

function consentPage(uid, params, details, accountId) {
  const action = `/interaction/${encodeURIComponent(uid)}`;
  const items = [];
  for (const s of details.missingOIDCScope || []) items.push(`scope <code>${html(s)}</code>`);
  for (const c of details.missingOIDCClaims || []) items.push(`claim <code>${html(c)}</code>`);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes || {})) {
    items.push(`resource <code>${html(indicator)}</code>: scope <code>${html(scopes.join(' '))}</code>`);
  }
  return page('Authorize', `
<p>Signed in as <code>${html(accountId)}</code>. Client <code>${html(params.client_id)}</code> asks for:</p>
<ul>${items.map((i) => `<li>${i}</li>`).join('')}</ul>
<form id="consent" method="post" action="${action}/confirm">
  <input type="hidden" name="prompt" value="consent">
  <button type="submit">Allow</button>
</form>
<form id="abort" method="post" action="${action}/abort">
  <button type="submit">Deny</button>
</form>
`);
}

// ---------------------------------------------------------------------------------------------
// the provider
// ---------------------------------------------------------------------------------------------

const server = createServer();
server.keepAliveTimeout = 1000;
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const configuration = {
  clients: [
    {
      client_id: 'mcp-resource',
      client_secret: 'mcp-resource-secret',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: 'mcp-machine',
      client_secret: 'mcp-machine-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  // A client registered without grant_types may refresh too.
  clientDefaults: {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  },
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
  responseTypes: ['code'],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  claims: { openid: ['sub'] },
  // `mcp` is listed so that clients may register `scope: "mcp"` (RFC 7591) and discovery shows it;
  // an access token carries it for a resource only when the request named that resource.
  scopes: ['openid', 'offline_access', RESOURCE_SCOPE],
  pkce: { required: () => true }, // S256 is the only method oidc-provider 9 supports
  features: {
    devInteractions: { enabled: false }, // own pages below (password check, deny button)
    registration: { enabled: true, initialAccessToken: false },
    registrationManagement: { enabled: true, rotateRegistrationAccessToken: false },
    introspection: {
      enabled: true,
      // Only the resource server (and a client about its own tokens) may introspect.
      allowedPolicy: async (ctx, client, token) => client.clientId === 'mcp-resource'
        || token.clientId === client.clientId,
    },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A token request without `resource` gets the (single) resource of the grant.
      defaultResource: async (ctx, client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (!isHttpUrl(resourceIndicator)) {
          throw new errors.InvalidTarget('resource must be an http(s) URL');
        }
        return {
          scope: RESOURCE_SCOPE,
          audience: resourceIndicator,
          accessTokenTTL,
          accessTokenFormat: 'opaque',
        };
      },
    },
    userinfo: { enabled: true },
  },
  // Refresh tokens on every authorization_code grant of a client allowed the refresh_token grant,
  // whether or not it asked for offline_access; they do not die with the browser session.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  rotateRefreshToken: true,
  ttl: {
    AccessToken: accessTokenTTL,
    ClientCredentials: accessTokenTTL,
    AuthorizationCode: 120,
    IdToken: 3600,
    RefreshToken: 14 * 24 * 3600,
    Interaction: 600,
    Session: 24 * 3600,
    Grant: 14 * 24 * 3600,
  },
  interactions: {
    url: async (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub }),
  }),
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', `<pre id="error">${html(JSON.stringify(out))}</pre>`);
  },
};

const provider = new Provider(issuer, configuration);

provider.on('grant.success', (ctx) => {
  const gty = ctx.oidc.params?.grant_type;
  if (gty in stats && typeof stats[gty] === 'number') stats[gty] += 1;
});
provider.on('grant.error', (ctx, err) => {
  stats.token_errors += 1;
  const params = ctx.oidc?.params;
  if (params?.grant_type === 'refresh_token') {
    stats.refresh_errors += 1;
    if (rotatedRefreshTokens.has(params.refresh_token)
        || err?.error_detail === 'refresh token already used') {
      stats.reuse_detected += 1;
    }
  }
  console.error(`oauth_provider: token error grant_type=${params?.grant_type} ${describe(err)}`);
});
provider.on('refresh_token.consumed', (token) => {
  rotatedRefreshTokens.add(token.jti);
});
// Access tokens issued, so a test can revoke them all (POST /__revoke-access-tokens): the
// upstream then rejects a token the client still believes valid (its 401 path).
const issuedAccessTokens = new Set();
provider.on('access_token.saved', (token) => {
  issuedAccessTokens.add(token.jti);
});
provider.on('grant.revoked', () => {
  stats.grants_revoked += 1;
});
provider.on('registration_create.success', () => {
  stats.registrations += 1;
});
provider.on('registration_create.error', (ctx, err) => {
  console.error(`oauth_provider: registration error ${describe(err)}`);
});
provider.on('authorization.error', (ctx, err) => {
  console.error(`oauth_provider: authorization error ${describe(err)}`);
});
provider.on('introspection.error', (ctx, err) => {
  console.error(`oauth_provider: introspection error ${describe(err)}`);
});
provider.on('server_error', (ctx, err) => {
  console.error('oauth_provider: server error', err);
});

// Counters for introspection (oidc-provider emits no success event for it), /__stats, and the
// interaction pages. provider.use() runs before oidc-provider's own routes.
provider.use(async (ctx, next) => {
  if (ctx.path === '/__stats' && ctx.method === 'GET') {
    ctx.set('cache-control', 'no-store');
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/__revoke-access-tokens' && ctx.method === 'POST') {
    let revoked = 0;
    for (const jti of issuedAccessTokens) {
      const token = await provider.AccessToken.find(jti);
      if (token) {
        await token.destroy();
        revoked += 1;
      }
    }
    issuedAccessTokens.clear();
    ctx.body = { revoked };
    return;
  }
  if (ctx.path === '/__stats/reset' && ctx.method === 'POST') {
    stats = zeroStats();
    ctx.status = 204;
    return;
  }
  // RFC 6749 §3.3: an authorization request without `scope` gets the default scope `mcp`
  // (off with --no-default-scope: such a request then ends in error=access_denied, nothing granted).
  if (defaultScope && ctx.path === '/auth' && ctx.method === 'GET' && !ctx.query.scope) {
    ctx.query = { ...ctx.query, scope: RESOURCE_SCOPE };
  }
  const m = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(ctx.path);
  if (m) {
    await interaction(ctx, decodeURIComponent(m[1]), m[2]);
    return;
  }
  await next();
  if (ctx.path === '/token/introspection' && ctx.method === 'POST' && ctx.status === 200) {
    stats.introspections += 1;
    if (ctx.body && ctx.body.active === true) stats.introspections_active += 1;
  }
});

async function interaction(ctx, uid, action) {
  ctx.set('cache-control', 'no-store');
  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (err) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Error', `<pre id="error">${html(err.message)}</pre>`);
    return;
  }
  if (details.uid !== uid) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Error', '<pre id="error">interaction mismatch</pre>');
    return;
  }
  const { prompt, params, session } = details;

  const finish = async (result, merge) => {
    ctx.respond = false; // interactionFinished writes the 303 itself
    await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
  };

  if (action === undefined) {
    if (ctx.method !== 'GET') ctx.throw(405);
    ctx.type = 'html';
    if (prompt.name === 'login') {
      ctx.body = loginPage(uid, params);
    } else if (prompt.name === 'consent') {
      ctx.body = consentPage(uid, params, prompt.details, session?.accountId);
    } else {
      ctx.status = 501;
      ctx.body = page('Error', `<pre id="error">unsupported prompt ${html(prompt.name)}</pre>`);
    }
    return;
  }

  if (action === 'abort') {
    if (ctx.method === 'POST') await readForm(ctx.req);
    stats.aborts += 1;
    await finish({ error: 'access_denied', error_description: 'End-User aborted interaction' }, false);
    return;
  }

  if (ctx.method !== 'POST') ctx.throw(405);
  const form = await readForm(ctx.req);

  if (action === 'login') {
    if (prompt.name !== 'login') ctx.throw(400, `expected prompt ${prompt.name}, got login`);
    const username = (form.username || form.login || '').trim();
    if (!username || form.password !== PASSWORD) {
      stats.login_failures += 1;
      ctx.status = 200;
      ctx.type = 'html';
      ctx.body = loginPage(uid, params, 'Invalid username or password.');
      return;
    }
    stats.logins += 1;
    await finish({ login: { accountId: username } }, false);
    return;
  }

  // confirm
  if (prompt.name !== 'consent') ctx.throw(400, `expected prompt ${prompt.name}, got consent`);
  const { details: missing } = prompt;
  let grant;
  if (details.grantId) {
    grant = await provider.Grant.find(details.grantId);
  }
  if (!grant) {
    grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  }
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  for (const detail of missing.rar || []) grant.addRar(detail);
  const grantId = await grant.save();
  stats.consents += 1;
  await finish({ consent: { grantId } }, true);
}

server.on('request', provider.callback());
process.stdout.write(`READY ${issuer}\n`);
console.error(`oauth_provider: listening at ${issuer} (access token TTL ${accessTokenTTL}s)`);

function shutdown(signal) {
  console.error(`oauth_provider: ${signal}, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
