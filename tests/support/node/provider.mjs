// Local OpenID Connect provider for Andon integration tests (oidc-provider 9).
//
// Usage: node provider.mjs <config.json>
// The config is written by tests/support/oidc_provider.py; see that module for the schema.
// Prints exactly one line "READY <issuer>" on stdout once it is listening.
//
// Interactions: our own login form at /interaction/:uid (GET renders, POST checks `login` + `password`).
// Consent is never asked: loadExistingGrant grants every requested scope/claim on the fly.
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { issuer, port } = config;
const resourceAudience = config.resource_audience || undefined;

const accounts = new Map(config.accounts.map((a) => [a.sub, a]));
const accountsByEmail = new Map(config.accounts.map((a) => [a.email.toLowerCase(), a]));

const clients = config.clients.map((c) => {
  const grantTypes = c.grant_types ?? ['authorization_code'];
  const interactive = grantTypes.includes('authorization_code');
  return {
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: grantTypes,
    response_types: interactive ? ['code'] : [],
    redirect_uris: interactive ? (c.redirect_uris ?? []) : [],
    post_logout_redirect_uris: c.post_logout_redirect_uris ?? [],
    token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  };
});

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const html = (s) => String(s).replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${html(title)}</title></head><body>${body}</body></html>`;
}

function loginForm(uid, login = '', error = '') {
  return page('Sign-in', `
<h1>Sign-in</h1>
${error ? `<p class="error">${html(error)}</p>` : ''}
<form id="login" method="post" action="/interaction/${html(uid)}" autocomplete="off">
  <input type="email" name="login" value="${html(login)}" required>
  <input type="password" name="password" required>
  <button type="submit">Sign-in</button>
</form>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  cookies: {
    keys: [randomBytes(32).toString('hex')],
    // Plain http on 127.0.0.1: never mark cookies Secure (oidc-provider only does so when ctx.secure).
    long: { httpOnly: true, sameSite: 'lax', secure: false },
    short: { httpOnly: true, sameSite: 'lax', secure: false },
  },
  responseTypes: ['code'],
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // Put the scope-released claims into the ID token too (default: only at userinfo for the code flow).
  conformIdTokenClaims: false,
  async findAccount(_ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: account.email,
          email_verified: true,
          name: account.name,
          groups: account.groups ?? [],
        };
      },
    };
  },
  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  // Auto-consent: create (or extend) the grant with whatever the request asks for.
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
    if (!grant) {
      grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
    }
    grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
    const claims = [...oidc.requestParamClaims];
    if (claims.length) grant.addOIDCClaims(claims);
    for (const [indicator, server] of Object.entries(oidc.resourceServers ?? {})) {
      if (server.scope) grant.addResourceScope(indicator, server.scope);
    }
    await grant.save();
    return grant;
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Only client_credentials defaults to the API audience; the code flow keeps an opaque userinfo token.
      async defaultResource(ctx, _client, oneOf) {
        if (oneOf) return oneOf;
        if (ctx.oidc.params?.grant_type === 'client_credentials') return resourceAudience;
        return undefined;
      },
      async useGrantedResource() {
        return false;
      },
      async getResourceServerInfo(_ctx, resourceIndicator) {
        if (resourceAudience && resourceIndicator === resourceAudience) {
          return {
            audience: resourceAudience,
            scope: 'api',
            accessTokenFormat: 'jwt',
            accessTokenTTL: 300,
            jwt: { sign: { alg: 'RS256' } },
          };
        }
        throw new errors.InvalidTarget();
      },
    },
  },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    ClientCredentials: 300,
    IdToken: 600,
    Interaction: 600,
    Grant: 3600,
    Session: 3600,
    RefreshToken: 3600,
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>${html(out.error)}</h1><p>${html(out.error_description ?? '')}</p>`);
  },
});

// Login interaction handlers, mounted before oidc-provider's own routes.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)$/.exec(ctx.path);
  if (!match) return next();
  ctx.set('cache-control', 'no-store');
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== match[1]) ctx.throw(400, 'interaction mismatch');
  if (ctx.method === 'GET') {
    if (details.prompt.name !== 'login') {
      // Consent is granted by loadExistingGrant; anything else just resumes.
      ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, {}, { mergeWithLastSubmission: true }));
      ctx.status = 303;
      return undefined;
    }
    ctx.type = 'html';
    ctx.body = loginForm(details.uid, details.params.login_hint ?? '');
    return undefined;
  }
  if (ctx.method !== 'POST') ctx.throw(405);
  const form = await readForm(ctx.req);
  const login = (form.get('login') ?? '').trim();
  const account = accountsByEmail.get(login.toLowerCase());
  if (!account || account.password !== form.get('password')) {
    ctx.status = 200;
    ctx.type = 'html';
    ctx.body = loginForm(details.uid, login, 'Invalid email or password');
    return undefined;
  }
  const result = { login: { accountId: account.sub } };
  ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }));
  ctx.status = 303;
  return undefined;
});

// Static clients are validated lazily; fail fast on bad metadata instead of at the first request.
for (const { client_id: clientId } of clients) {
  if (!(await provider.Client.find(clientId))) throw new Error(`client ${clientId} failed to load`);
}

const server = createServer(provider.callback());
server.listen(port, '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`READY ${issuer}\n`);

const shutdown = () => server.close(() => process.exit(0));
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
