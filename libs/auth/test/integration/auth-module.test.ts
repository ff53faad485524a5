import { Controller, Get, type INestApplication, Module, type Type } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import { baseEnvSchema, loadConfig } from '@aob/config';
import { bootstrapHttpApp, ObservabilityModule } from '@aob/observability';
import { DatabaseModule, DataSource } from '@aob/persistence';
import { createTestDatabase, waitFor, type TestDatabase } from '@aob/testing';
import {
  ApiKeyService,
  AuthModule,
  authEnvSchema,
  authOptionsFromEnv,
  CurrentPrincipal,
  principalFor,
  RequirePermission,
  type Principal,
} from '../../src';
import { startTestOidcProvider, type TestOidcProvider } from '../support/test-oidc-provider';

jest.setTimeout(30_000);

const AUDIENCE = 'https://models.aob.test';

/** A route like the model gateway's: only `models:invoke` may call it. */
@Controller('v1/models')
class ModelsProbeController {
  @Get()
  @RequirePermission('models:invoke')
  list(@CurrentPrincipal() p: Principal) {
    return { subject: p.subject, tenantId: p.tenantId, role: p.role };
  }
}

/** AuthModule installed in an app that is not the gateway, configured from the environment. */
async function bootApp(
  env: Record<string, string>,
  useDatabase: boolean,
): Promise<INestApplication> {
  // the way an app's config merges the auth variables
  const config = loadConfig(baseEnvSchema.extend(authEnvSchema.shape), env);
  @Module({
    imports: [
      ObservabilityModule.forRoot({ app: 'auth-probe', logLevel: 'silent' }),
      ...(useDatabase ? [DatabaseModule.forRoot({ url: env.DATABASE_URL!, poolSize: 2 })] : []),
      AuthModule.forRoot(authOptionsFromEnv(config, { useDatabase })),
    ],
    controllers: [ModelsProbeController],
  })
  class ProbeModule {}
  return bootstrapHttpApp(ProbeModule as Type, { app: 'auth-probe', port: 0, host: '127.0.0.1' });
}

describe('AuthModule.forRoot outside the gateway', () => {
  let db: TestDatabase;
  let idp: TestOidcProvider;
  let app: INestApplication;
  let base: string;

  beforeAll(async () => {
    db = await createTestDatabase('aob_auth_module');
    idp = await startTestOidcProvider({
      audience: AUDIENCE,
      clients: [
        { clientId: 'executor-x', tenantId: 'tenant-x', roles: ['executor'] },
        { clientId: 'viewer-x', tenantId: 'tenant-x', roles: ['viewer'] },
      ],
    });
    app = await bootApp(
      { DATABASE_URL: db.url, OIDC_ISSUER_URL: idp.issuer, OIDC_AUDIENCE: AUDIENCE },
      true,
    );
    base = `http://127.0.0.1:${(app.getHttpServer() as { address(): AddressInfo }).address().port}`;
  });

  afterAll(async () => {
    await app?.close();
    await idp?.close();
    await db?.drop();
  });

  const get = (headers: Record<string, string>) => fetch(`${base}/v1/models`, { headers });

  it('accepts a stored key as Bearer (what the OpenAI SDK sends) and an OIDC token', async () => {
    const keys = app.get(ApiKeyService);
    const created = await keys.create(principalFor('root', 'tenant-x', 'admin', 'api-key'), {
      name: 'sdk',
      role: 'executor',
    });
    const viaKey = await get({ authorization: `Bearer ${created.key}` });
    expect(viaKey.status).toBe(200);
    expect(await viaKey.json()).toEqual({
      subject: `api-key:${created.id}`,
      tenantId: 'tenant-x',
      role: 'executor',
    });
    const viaToken = await get({ authorization: `Bearer ${await idp.token('executor-x')}` });
    expect(await viaToken.json()).toEqual({
      subject: 'executor-x',
      tenantId: 'tenant-x',
      role: 'executor',
    });
  });

  it('403s a role without models:invoke and writes the denial to auth.audit_log', async () => {
    const res = await get({ authorization: `Bearer ${await idp.token('viewer-x')}` });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ permission: 'models:invoke' });
    const ds = app.get(DataSource);
    await waitFor(
      async () =>
        (
          await ds.query<unknown[]>(
            `SELECT 1 FROM auth.audit_log WHERE actor = 'viewer-x' AND decision = 'deny' AND resource = 'GET /v1/models'`,
          )
        ).length === 1,
      { what: 'the denial in auth.audit_log' },
    );
  });

  it('without a database: bootstrap and service keys only, stored keys answer 401', async () => {
    const bare = await bootApp({ AOB_SERVICE_KEY: 'service-key-0123456789abcdef' }, false);
    try {
      const url = `http://127.0.0.1:${(bare.getHttpServer() as { address(): AddressInfo }).address().port}/v1/models`;
      const asService = await fetch(url, {
        headers: { 'x-api-key': 'service-key-0123456789abcdef', 'x-aob-tenant-id': 'tenant-x' },
      });
      expect(asService.status).toBe(200);
      const stored = await fetch(url, {
        headers: { 'x-api-key': `aob_01234567_${'a'.repeat(43)}` },
      });
      expect(stored.status).toBe(401);
      const jwt = await fetch(url, {
        headers: { authorization: `Bearer ${await idp.token('executor-x')}` },
      });
      expect(jwt.status).toBe(401);
    } finally {
      await bare.close();
    }
  });
});
