import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type * as JoseModule from 'jose' with { 'resolution-mode': 'import' };
import type { CryptoKey, JWK } from 'jose' with { 'resolution-mode': 'import' };
import type * as OidcProviderModule from 'oidc-provider' with { 'resolution-mode': 'import' };
import { PERMISSIONS } from '../../src/permissions';

// ESM-only packages, loaded with import() (see jest.config.js: Jest turns them into CommonJS)
type Jose = typeof JoseModule;
type Provider = InstanceType<typeof OidcProviderModule.default>;

export interface TestClient {
  clientId: string;
  /** Extra claim `tenant_id` of its access tokens (omitted when undefined). */
  tenantId?: string;
  /** Extra claim `roles` (an array, or a space-separated string). */
  roles?: string[] | string;
}

export interface TestOidcProviderOptions {
  /** The resource (RFC 8707) whose access tokens are JWTs with this `aud`. */
  audience: string;
  /** More resources the provider issues tokens for (to test a wrong audience). @default [] */
  otherAudiences?: string[];
  clients: TestClient[];
}

export interface SigningKey {
  kid: string;
  privateJwk: JWK;
  privateKey: CryptoKey;
}

/** A real OpenID provider (panva/oidc-provider) on a loopback port: client credentials, JWT access tokens. */
export interface TestOidcProvider {
  issuer: string;
  audience: string;
  /** The key signing tokens now (the first of the JWKS). */
  currentKey(): SigningKey;
  /** An access token from the token endpoint (client credentials grant, resource indicator). */
  token(clientId: string, opts?: { scope?: string; resource?: string }): Promise<string>;
  /** Publishes a new signing key first in the JWKS (the old one stays, as providers do in a rollover). */
  rotateKeys(): Promise<SigningKey>;
  /** Signs arbitrary claims with the provider's current key (crafted tokens for negative cases). */
  sign(claims: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
  /** While false every request answers 503 (a provider outage). */
  setAvailable(available: boolean): void;
  jose: Jose;
  close(): Promise<void>;
}

export const clientSecret = (clientId: string) =>
  `secret-of-${clientId}-0123456789abcdef0123456789`;

export async function startTestOidcProvider(
  opts: TestOidcProviderOptions,
): Promise<TestOidcProvider> {
  const jose: Jose = await import('jose');
  const { default: Provider, errors }: typeof OidcProviderModule = await quietly(
    () => import('oidc-provider'),
  );
  let handler: RequestListener | undefined;
  let available = true;
  const server: Server = createServer((req, res) => {
    if (!handler || !available) {
      res.statusCode = 503;
      res.end();
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const resources = new Set([opts.audience, ...(opts.otherAudiences ?? [])]);
  const keys: SigningKey[] = [];

  const newKey = async (): Promise<SigningKey> => {
    const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
    const kid = `k${keys.length + 1}-${Math.random().toString(36).slice(2, 8)}`;
    const privateJwk = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
    return { kid, privateJwk, privateKey };
  };

  const build = (): Provider => {
    const provider = quietly(
      () =>
        new Provider(issuer, {
          clients: opts.clients.map((c) => ({
            client_id: c.clientId,
            client_secret: clientSecret(c.clientId),
            grant_types: ['client_credentials'],
            redirect_uris: [],
            response_types: [],
            token_endpoint_auth_method: 'client_secret_post',
            ...(c.tenantId === undefined ? {} : { tenant_id: c.tenantId }),
            ...(c.roles === undefined ? {} : { roles: c.roles }),
          })),
          extraClientMetadata: { properties: ['tenant_id', 'roles'] },
          features: {
            devInteractions: { enabled: false },
            clientCredentials: { enabled: true },
            resourceIndicators: {
              enabled: true,
              defaultResource: () => opts.audience,
              useGrantedResource: () => true,
              getResourceServerInfo: (_ctx, resource) => {
                if (!resources.has(resource)) throw new errors.InvalidTarget();
                return {
                  scope: PERMISSIONS.join(' '),
                  audience: resource,
                  accessTokenFormat: 'jwt',
                  accessTokenTTL: 300,
                  jwt: { sign: { alg: 'RS256' } },
                };
              },
            },
          },
          extraTokenClaims: (ctx) => {
            const meta: Record<string, unknown> = ctx.oidc.client?.metadata() ?? {};
            return {
              ...(meta.tenant_id === undefined ? {} : { tenant_id: meta.tenant_id }),
              ...(meta.roles === undefined ? {} : { roles: meta.roles }),
            };
          },
          jwks: { keys: keys.map((k) => k.privateJwk) },
          ttl: { ClientCredentials: 300 },
        }),
    );
    return provider;
  };

  keys.unshift(await newKey());
  handler = listener(build());

  const current = () => {
    const k = keys[0];
    if (!k) throw new Error('no signing key');
    return k;
  };

  return {
    issuer,
    audience: opts.audience,
    jose,
    currentKey: current,
    async token(clientId, o = {}) {
      const body = new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: clientId,
        client_secret: clientSecret(clientId),
        resource: o.resource ?? opts.audience,
        ...(o.scope === undefined ? {} : { scope: o.scope }),
      });
      const res = await fetch(`${issuer}/token`, { method: 'POST', body });
      const json = (await res.json()) as {
        access_token?: string;
        error?: string;
        error_description?: string;
      };
      if (!res.ok || !json.access_token) {
        throw new Error(
          `token request failed: ${res.status} ${json.error ?? ''} ${json.error_description ?? ''}`,
        );
      }
      return json.access_token;
    },
    async rotateKeys() {
      keys.unshift(await newKey());
      // a provider's key set is fixed at construction: serve a new instance (same issuer, same clients)
      handler = listener(build());
      return current();
    },
    async sign(claims, header = {}) {
      const k = current();
      return new jose.SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: k.kid, ...header })
        .sign(k.privateKey);
    },
    setAvailable(v) {
      available = v;
    },
    async close() {
      handler = undefined;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Koa's callback returns a promise that never rejects (Koa answers errors itself). */
function listener(provider: Provider): RequestListener {
  const callback = provider.callback();
  return (req, res) => void callback(req, res);
}

/**
 * Runs `fn` without oidc-provider's start-up warnings (Node 20 is not its supported LTS; the
 * in-memory adapter is what a test wants).
 */
function quietly<T>(fn: () => T): T {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!String(args[0]).startsWith('oidc-provider WARNING')) warn(...args);
  };
  const restore = () => {
    console.warn = warn;
  };
  try {
    const result = fn();
    if (result instanceof Promise) {
      return result.finally(restore) as T;
    }
    restore();
    return result;
  } catch (err) {
    restore();
    throw err;
  }
}
