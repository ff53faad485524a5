import { generateKeyPairSync } from 'node:crypto';
import { ROLE_PERMISSIONS, ROLES, type Permission, type Role } from '@aob/auth';
import { startNatsServer, waitFor, type TestNatsServer } from '@aob/testing';
// The OpenID provider fixture lives beside libs/auth's own tests (oidc-provider is a root dev
// dependency); it belongs in @aob/testing once that package takes it.
// eslint-disable-next-line no-restricted-imports
import {
  startTestOidcProvider,
  type TestOidcProvider,
} from '../../../../libs/auth/test/support/test-oidc-provider';
import { ADMIN_KEY, startHarness, TENANT, withPg, type GatewayHarness } from './gateway-harness';

jest.setTimeout(60_000);

const AUDIENCE = 'https://gateway.aob.test';
const SERVICE_KEY = 'test-service-key-0123456789abcdef';
const CONSOLE_ORIGIN = 'https://console.aob.test';
const OTHER_TENANT = 'tenant-b';
const UNKNOWN_UUID = '00000000-0000-4000-8000-000000000000';

/** Credential of a request: an OIDC token, a stored or bootstrap API key (X-API-Key or Bearer), or none. */
type Auth = { bearer: string } | { apiKey: string } | null;

describe('gateway: identity and access', () => {
  let nats: TestNatsServer;
  let idp: TestOidcProvider;
  let gw: GatewayHarness;
  const roleTokens = new Map<Role, string>();

  beforeAll(async () => {
    nats = await startNatsServer();
    idp = await startTestOidcProvider({
      audience: AUDIENCE,
      otherAudiences: ['https://elsewhere.aob.test'],
      clients: [
        ...ROLES.map((role) => ({ clientId: `${role}-a`, tenantId: TENANT, roles: [role] })),
        { clientId: 'admin-b', tenantId: OTHER_TENANT, roles: ['admin'] },
        { clientId: 'platform', tenantId: '*', roles: 'admin' },
        { clientId: 'no-role', tenantId: TENANT, roles: ['superuser'] },
      ],
    });
    gw = await startHarness(nats.url, {
      OIDC_ISSUER_URL: idp.issuer,
      OIDC_AUDIENCE: AUDIENCE,
      OIDC_JWKS_COOLDOWN_MS: '0',
      AOB_SERVICE_KEY: SERVICE_KEY,
      CORS_ORIGINS: CONSOLE_ORIGIN,
    });
    for (const role of ROLES) roleTokens.set(role, await idp.token(`${role}-a`));
  });

  afterAll(async () => {
    await gw?.close();
    await idp?.close();
    await nats?.stop();
  });

  function call(
    path: string,
    auth: Auth,
    init: RequestInit & { json?: unknown } = {},
  ): Promise<Response> {
    const headers = new Headers(init.headers);
    if (auth && 'bearer' in auth) headers.set('authorization', `Bearer ${auth.bearer}`);
    return gw.request(path, {
      ...init,
      headers,
      key: auth && 'apiKey' in auth ? auth.apiKey : null,
    });
  }
  const token = (role: Role): Auth => ({ bearer: roleTokens.get(role)! });

  async function expectProblem(
    res: Response,
    status: number,
    detail?: RegExp,
  ): Promise<Record<string, unknown>> {
    const body = (await res.json()) as Record<string, unknown>;
    expect({ status: res.status, body }).toMatchObject({ status, body: { status } });
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    if (detail) expect(body.detail).toMatch(detail);
    if (status === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    return body;
  }

  async function mintKey(body: Record<string, unknown>, auth: Auth = { apiKey: ADMIN_KEY }) {
    const res = await call('/v1/api-keys', auth, { method: 'POST', json: body });
    expect(res.status).toBe(201);
    return (await res.json()) as {
      id: string;
      key: string;
      prefix: string;
      tenantId: string;
      role: Role;
    };
  }

  async function submitRun(auth: Auth): Promise<string> {
    const res = await call('/v1/runs', auth, {
      method: 'POST',
      json: { agent: 'echo', input: {} },
    });
    expect(res.status).toBe(202);
    return ((await res.json()) as { runId: string }).runId;
  }

  describe('401 for missing or bad credentials', () => {
    it('answers problem+json with WWW-Authenticate: Bearer', async () => {
      await expectProblem(await call('/v1/runs', null), 401, /credentials required/);
      await expectProblem(
        await call('/v1/runs', { apiKey: 'not-a-key-at-all-0123456789' }),
        401,
        /invalid credentials/,
      );
      await expectProblem(
        await call('/v1/runs', { bearer: 'aob_00000000_' + 'x'.repeat(43) }),
        401,
        /invalid credentials/,
      );
      await expectProblem(
        await call('/v1/runs', null, { headers: { authorization: 'Basic dXNlcjpwYXNz' } }),
        401,
        /Bearer/,
      );
      await expectProblem(
        await call(
          '/v1/runs',
          { apiKey: ADMIN_KEY },
          { headers: { authorization: `Bearer ${roleTokens.get('admin')}` } },
        ),
        401,
        /not both/,
      );
    });

    it('401s tokens for another audience, expired, tampered with, alg none, or signed by another key', async () => {
      const now = Math.floor(Date.now() / 1000);
      const claims = {
        iss: idp.issuer,
        aud: AUDIENCE,
        sub: 'x',
        tenant_id: TENANT,
        roles: ['admin'],
        iat: now,
        exp: now + 300,
      };
      const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const valid = roleTokens.get('viewer')!;
      const [h, , s] = valid.split('.');
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const cases: [string, string, RegExp][] = [
        [
          'wrong audience',
          await idp.token('admin-a', { resource: 'https://elsewhere.aob.test' }),
          /"aud"/,
        ],
        ['expired', await idp.sign({ ...claims, iat: now - 900, exp: now - 600 }), /expired/],
        ['tampered', `${h}.${b64({ ...claims, sub: 'viewer-a' })}.${s}`, /signature/],
        ['alg none', `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims)}.`, /algorithm none/],
        [
          'another key under the provider kid',
          await new idp.jose.SignJWT(claims)
            .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: idp.currentKey().kid })
            .sign(privateKey),
          /signature/,
        ],
      ];
      for (const [, bad, detail] of cases) {
        await expectProblem(await call('/v1/agents', { bearer: bad }), 401, detail);
      }
      expect((await call('/v1/agents', { bearer: valid })).status).toBe(200);
    });

    it('403s a token without a known role and audits it', async () => {
      const body = await expectProblem(
        await call('/v1/agents', { bearer: await idp.token('no-role') }),
        403,
        /no AOB role/,
      );
      expect(body.code).toBe('Forbidden');
    });
  });

  describe('each role against each route', () => {
    // every route the gateway serves, with a request that succeeds when the permission is there
    const ROUTES: {
      route: string;
      permission: Permission | null;
      path: string;
      init?: RequestInit & { json?: unknown };
      ok: number;
    }[] = [
      {
        route: 'POST /v1/runs',
        permission: 'runs:create',
        path: '/v1/runs',
        init: { method: 'POST', json: { agent: 'echo', input: {} } },
        ok: 202,
      },
      { route: 'GET /v1/runs', permission: 'runs:read', path: '/v1/runs', ok: 200 },
      {
        route: 'GET /v1/runs/:runId',
        permission: 'runs:read',
        path: '/v1/runs/no-such-run',
        ok: 404,
      },
      {
        route: 'GET /v1/runs/:runId/events',
        permission: 'runs:read',
        path: '/v1/runs/no-such-run/events',
        ok: 404,
      },
      {
        route: 'POST /v1/runs/:runId/cancel',
        permission: 'runs:cancel',
        path: '/v1/runs/no-such-run/cancel',
        init: { method: 'POST' },
        ok: 404,
      },
      {
        route: 'GET /v1/threads/:threadId/history',
        permission: 'runs:read',
        path: '/v1/threads/no-such-thread/history',
        ok: 404,
      },
      { route: 'GET /v1/agents', permission: 'agents:read', path: '/v1/agents', ok: 200 },
      {
        route: 'POST /v1/api-keys',
        permission: 'keys:manage',
        path: '/v1/api-keys',
        init: { method: 'POST', json: { name: 'table', role: 'viewer' } },
        ok: 201,
      },
      { route: 'GET /v1/api-keys', permission: 'keys:manage', path: '/v1/api-keys', ok: 200 },
      {
        route: 'DELETE /v1/api-keys/:id',
        permission: 'keys:manage',
        path: `/v1/api-keys/${UNKNOWN_UUID}`,
        init: { method: 'DELETE' },
        ok: 404,
      },
      { route: 'GET /openapi.json', permission: null, path: '/openapi.json', ok: 200 },
    ];

    const cases = ROLES.flatMap((role) =>
      (['oidc token', 'stored API key'] as const).flatMap((via) =>
        ROUTES.map((r) => ({ role, via, ...r })),
      ),
    );
    const roleKeys = new Map<Role, string>();

    beforeAll(async () => {
      for (const role of ROLES)
        roleKeys.set(role, (await mintKey({ name: `${role} key`, role })).key);
    });

    it.each(cases)('$role via $via → $route', async ({ role, via, permission, path, init, ok }) => {
      const auth: Auth = via === 'oidc token' ? token(role) : { apiKey: roleKeys.get(role)! };
      const res = await call(path, auth, init);
      if (permission === null || ROLE_PERMISSIONS[role].includes(permission)) {
        expect(res.status).toBe(ok);
      } else {
        const body = await expectProblem(res, 403, new RegExp(`missing permission ${permission}`));
        expect(body.permission).toBe(permission);
      }
    });

    it('writes every denial to auth.audit_log', async () => {
      await waitFor(
        async () =>
          withPg(gw.db.url, async (pg) => {
            const { rows } = await pg.query<{ n: string }>(
              `SELECT count(*) AS n FROM auth.audit_log WHERE action = 'route.access' AND decision = 'deny' AND actor = 'viewer-a'`,
            );
            // viewer lacks runs:create, runs:cancel and keys:manage (x3 routes)
            return Number(rows[0]?.n) === 5;
          }),
        { what: 'the viewer token denials in the audit log' },
      );
      const row = await withPg(gw.db.url, async (pg) => {
        const { rows } = await pg.query(
          `SELECT actor, actor_kind, tenant_id, action, resource, decision, reason, details FROM auth.audit_log
            WHERE actor = 'viewer-a' AND resource = 'POST /v1/runs'`,
        );
        return rows[0] as Record<string, unknown>;
      });
      expect(row).toMatchObject({
        actor_kind: 'jwt',
        tenant_id: TENANT,
        decision: 'deny',
        reason: 'missing permission runs:create',
        details: { permission: 'runs:create', role: 'viewer' },
      });
    });
  });

  describe('scopes', () => {
    it('403s a token missing the scope, naming the permission', async () => {
      const scoped = await idp.token('admin-a', { scope: 'runs:read agents:read' });
      expect((await call('/v1/runs', { bearer: scoped })).status).toBe(200);
      const body = await expectProblem(
        await call(
          '/v1/runs',
          { bearer: scoped },
          { method: 'POST', json: { agent: 'echo', input: {} } },
        ),
        403,
        /runs:create/,
      );
      expect(body.permission).toBe('runs:create');
    });

    it('applies the scopes of a stored key too', async () => {
      const { key } = await mintKey({
        name: 'read only',
        role: 'developer',
        scopes: ['runs:read'],
      });
      expect((await call('/v1/runs', { apiKey: key })).status).toBe(200);
      await expectProblem(await call('/v1/agents', { apiKey: key }), 403, /agents:read/);
    });
  });

  describe('API keys', () => {
    it('creates a key shown once, uses it as X-API-Key and as Bearer, lists it without the secret, revokes it at once', async () => {
      const res = await call(
        '/v1/api-keys',
        { apiKey: ADMIN_KEY },
        {
          method: 'POST',
          json: {
            name: 'sdk',
            role: 'executor',
            expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
          },
        },
      );
      expect(res.status).toBe(201);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const created = (await res.json()) as Record<string, string>;
      expect(created).toMatchObject({
        name: 'sdk',
        role: 'executor',
        tenantId: TENANT,
        createdBy: 'bootstrap-admin',
      });
      expect(created.key).toMatch(new RegExp(`^aob_${created.prefix}_[A-Za-z0-9_-]{43}$`));
      expect(res.headers.get('location')).toBe(`/v1/api-keys/${created.id}`);
      const key = created.key!;

      expect((await call('/v1/agents', { apiKey: key })).status).toBe(200);
      expect((await call('/v1/agents', { bearer: key })).status).toBe(200);
      await submitRun({ bearer: key });

      const listed = await call('/v1/api-keys', { apiKey: ADMIN_KEY });
      const text = await listed.text();
      expect(text).not.toContain(key);
      expect(text).not.toContain(key.slice(13));
      const item = (JSON.parse(text) as { items: Record<string, unknown>[] }).items.find(
        (k) => k.id === created.id,
      );
      expect(item).toMatchObject({
        prefix: created.prefix,
        role: 'executor',
        expiresAt: created.expiresAt,
      });
      expect(item).not.toHaveProperty('key');
      await waitFor(
        async () => {
          const page = (await (await call('/v1/api-keys', { apiKey: ADMIN_KEY })).json()) as {
            items: Record<string, unknown>[];
          };
          return typeof page.items.find((k) => k.id === created.id)?.lastUsedAt === 'string';
        },
        { what: 'lastUsedAt in the listing' },
      );

      expect(
        (await call(`/v1/api-keys/${created.id}`, { apiKey: ADMIN_KEY }, { method: 'DELETE' }))
          .status,
      ).toBe(204);
      await expectProblem(await call('/v1/agents', { apiKey: key }), 401, /invalid credentials/);
      await expectProblem(
        await call(`/v1/api-keys/${created.id}`, { apiKey: ADMIN_KEY }, { method: 'DELETE' }),
        404,
      );
      const after = (await (await call('/v1/api-keys', { apiKey: ADMIN_KEY })).json()) as {
        items: { id: string }[];
      };
      expect(after.items.map((k) => k.id)).not.toContain(created.id);

      const audit = await withPg(
        gw.db.url,
        async (pg) =>
          (
            await pg.query<{ action: string; decision: string }>(
              `SELECT action, decision FROM auth.audit_log WHERE resource = $1 ORDER BY id`,
              [`api-key:${created.id}`],
            )
          ).rows,
      );
      expect(audit.slice(0, 2)).toEqual([
        { action: 'api-key.create', decision: 'allow' },
        { action: 'api-key.revoke', decision: 'allow' },
      ]);
    });

    it('validates the body and the id before any query', async () => {
      await expectProblem(
        await call(
          '/v1/api-keys',
          { apiKey: ADMIN_KEY },
          { method: 'POST', json: { name: '', role: 'root' } },
        ),
        400,
      );
      await expectProblem(
        await call(
          '/v1/api-keys',
          { apiKey: ADMIN_KEY },
          { method: 'POST', json: { name: 'x', role: 'viewer', scopes: ['runs:delete'] } },
        ),
        400,
      );
      await expectProblem(
        await call(
          '/v1/api-keys',
          { apiKey: ADMIN_KEY },
          {
            method: 'POST',
            json: { name: 'x', role: 'viewer', expiresAt: '2001-01-01T00:00:00Z' },
          },
        ),
        400,
        /future/,
      );
      await expectProblem(
        await call(
          `/v1/api-keys/1;DROP TABLE auth.api_keys`,
          { apiKey: ADMIN_KEY },
          { method: 'DELETE' },
        ),
        400,
      );
      await expectProblem(await call('/v1/api-keys?limit=0', { apiKey: ADMIN_KEY }), 400);
    });

    it('never mints a key more powerful than its creator', async () => {
      const scopedAdmin = await mintKey({
        name: 'key admin',
        role: 'admin',
        scopes: ['keys:manage', 'runs:read'],
      });
      const denied = await call(
        '/v1/api-keys',
        { apiKey: scopedAdmin.key },
        { method: 'POST', json: { name: 'dev', role: 'developer' } },
      );
      const body = await expectProblem(denied, 403, /cannot have permissions its creator lacks/);
      expect(body.permission).toBe('runs:create');
      const allowed = await call(
        '/v1/api-keys',
        { apiKey: scopedAdmin.key },
        {
          method: 'POST',
          json: { name: 'reader', role: 'viewer', scopes: ['runs:read'] },
        },
      );
      expect(allowed.status).toBe(201);
    });

    it('lets only a platform admin (admin of tenant *) act on another tenant', async () => {
      await expectProblem(
        await call(
          '/v1/api-keys',
          { apiKey: ADMIN_KEY },
          { method: 'POST', json: { name: 'x', role: 'viewer', tenantId: OTHER_TENANT } },
        ),
        403,
        /platform admin/,
      );
      const platform: Auth = { bearer: await idp.token('platform') };
      const forB = await mintKey(
        { name: 'b viewer', role: 'viewer', tenantId: OTHER_TENANT },
        platform,
      );
      expect(forB.tenantId).toBe(OTHER_TENANT);
      const all = (await (await call('/v1/api-keys?limit=100', platform)).json()) as {
        items: { tenantId: string }[];
      };
      expect(new Set(all.items.map((k) => k.tenantId))).toEqual(new Set([TENANT, OTHER_TENANT]));
      expect((await call(`/v1/api-keys/${forB.id}`, platform, { method: 'DELETE' })).status).toBe(
        204,
      );
    });
  });

  describe('tenant isolation', () => {
    it('hides runs and keys of one tenant from the other (404, never 403)', async () => {
      const adminB: Auth = { bearer: await idp.token('admin-b') };
      const runA = await submitRun(token('developer'));
      const runB = await submitRun(adminB);

      await expectProblem(await call(`/v1/runs/${runA}`, adminB), 404);
      await expectProblem(await call(`/v1/runs/${runA}/events`, adminB), 404);
      await expectProblem(await call(`/v1/runs/${runB}`, token('admin')), 404);
      expect((await call(`/v1/runs/${runA}`, token('viewer'))).status).toBe(200);
      const listB = (await (await call('/v1/runs?limit=100', adminB)).json()) as {
        items: { runId: string; tenantId: string }[];
      };
      expect(listB.items.map((r) => r.runId)).toEqual([runB]);

      const keyA = await mintKey({ name: 'a only', role: 'viewer' });
      const keyB = await mintKey({ name: 'b only', role: 'viewer' }, adminB);
      await expectProblem(await call(`/v1/api-keys/${keyA.id}`, adminB, { method: 'DELETE' }), 404);
      const keysB = (await (await call('/v1/api-keys?limit=100', adminB)).json()) as {
        items: { id: string; tenantId: string }[];
      };
      expect(keysB.items.every((k) => k.tenantId === OTHER_TENANT)).toBe(true);
      expect(keysB.items.map((k) => k.id)).toContain(keyB.id);
      await expectProblem(await call(`/v1/api-keys?tenantId=${TENANT}`, adminB), 403);
      // the key still works: the other tenant's DELETE did nothing
      expect((await call('/v1/runs', { apiKey: keyA.key })).status).toBe(200);
      // and a tenant-b key sees tenant-b's runs only
      const seenByKeyB = (await (
        await call('/v1/runs?limit=100', { apiKey: keyB.key })
      ).json()) as { items: { runId: string }[] };
      expect(seenByKeyB.items.map((r) => r.runId)).toEqual([runB]);
    });
  });

  describe('bootstrap and service keys', () => {
    it('keeps the bootstrap admin key working', async () => {
      expect((await call('/v1/api-keys', { apiKey: ADMIN_KEY })).status).toBe(200);
      expect((await call('/v1/agents', { bearer: ADMIN_KEY })).status).toBe(200);
    });

    it('accepts the service key as role executor of the named tenant only', async () => {
      await expectProblem(
        await call('/v1/agents', { apiKey: SERVICE_KEY }),
        401,
        /x-aob-tenant-id/,
      );
      const asService = (path: string, init: RequestInit = {}) =>
        call(
          path,
          { apiKey: SERVICE_KEY },
          { ...init, headers: { 'x-aob-tenant-id': OTHER_TENANT } },
        );
      expect((await asService('/v1/agents')).status).toBe(200);
      await expectProblem(await asService('/v1/api-keys'), 403, /keys:manage/);
    });
  });

  describe('the HTTP edge', () => {
    it('sets security headers on every answer, 401s included, and no X-Powered-By', async () => {
      for (const res of [
        await call('/v1/agents', null),
        await call('/v1/agents', { apiKey: ADMIN_KEY }),
      ]) {
        expect(res.headers.get('x-content-type-options')).toBe('nosniff');
        expect(res.headers.get('strict-transport-security')).toMatch(/max-age=/);
        expect(res.headers.get('content-security-policy')).toBeTruthy();
        expect(res.headers.get('x-powered-by')).toBeNull();
      }
    });

    it('caps bodies at 1 MiB (413) and answers malformed JSON with 400, both problem+json', async () => {
      const big = JSON.stringify({ name: 'x'.repeat(1_100_000), role: 'viewer' });
      const tooLarge = await call(
        '/v1/api-keys',
        { apiKey: ADMIN_KEY },
        {
          method: 'POST',
          body: big,
          headers: { 'content-type': 'application/json' },
        },
      );
      await expectProblem(tooLarge, 413);
      const malformed = await call(
        '/v1/api-keys',
        { apiKey: ADMIN_KEY },
        {
          method: 'POST',
          body: '{"name": ',
          headers: { 'content-type': 'application/json' },
        },
      );
      await expectProblem(malformed, 400, /not valid JSON/);
    });

    it('answers CORS preflights for configured origins only', async () => {
      const preflight = (origin: string) =>
        fetch(`${gw.baseUrl}/v1/runs`, {
          method: 'OPTIONS',
          headers: {
            origin,
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'authorization,content-type',
          },
        });
      const allowed = await preflight(CONSOLE_ORIGIN);
      expect(allowed.status).toBe(204);
      expect(allowed.headers.get('access-control-allow-origin')).toBe(CONSOLE_ORIGIN);
      expect(allowed.headers.get('access-control-allow-headers')).toMatch(/authorization/i);
      const other = await preflight('https://evil.example');
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
      const simple = await call(
        '/v1/agents',
        { apiKey: ADMIN_KEY },
        { headers: { origin: CONSOLE_ORIGIN } },
      );
      expect(simple.headers.get('access-control-allow-origin')).toBe(CONSOLE_ORIGIN);
    });
  });

  describe('provider key rotation', () => {
    it('accepts tokens under the provider’s new key (JWKS refetched on the unknown kid)', async () => {
      const before = await idp.token('viewer-a');
      expect((await call('/v1/agents', { bearer: before })).status).toBe(200);
      const rotated = await idp.rotateKeys();
      const after = await idp.token('viewer-a');
      expect(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid).toBe(
        rotated.kid,
      );
      expect((await call('/v1/agents', { bearer: after })).status).toBe(200);
    });
  });
});
