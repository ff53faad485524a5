import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import OpenAI from 'openai';
import { ApiKeyService, principalFor } from '@aob/auth';
import {
  createTestDatabase,
  startNatsServer,
  testRedisUrl,
  uniqueKeyPrefix,
  type TestDatabase,
  type TestNatsServer,
} from '@aob/testing';
// The OpenID provider fixture lives beside libs/auth's own tests (oidc-provider is a root dev
// dependency); it belongs in @aob/testing once that package takes it.
// eslint-disable-next-line no-restricted-imports
import {
  startTestOidcProvider,
  type TestOidcProvider,
} from '../../../../libs/auth/test/support/test-oidc-provider';
import { startModelGateway } from '../../src/bootstrap';
import { validateCatalog } from '../../src/catalog/catalog-loader';
import { loadModelGatewayConfig } from '../../src/config';

jest.setTimeout(60_000);

const ADMIN_KEY = 'aob_test_admin_key_0123456789abcdef';
const TENANT = 'acme';
const AUDIENCE = 'https://model-gateway.aob.test';
const MESSAGES = [{ role: 'user' as const, content: 'Who am I?' }];

const CATALOG = validateCatalog({
  deployments: [
    {
      name: 'local-fast',
      provider: 'local',
      model: 'sim-small',
      tier: 'fast',
      inputCostPer1M: 0.15,
      outputCostPer1M: 0.6,
      simulate: { ttftMs: 1, tokensPerSecond: 50_000, maxOutputTokens: 8 },
    },
  ],
});

describe('model gateway: identity (stored API keys and OIDC, official openai client)', () => {
  let nats: TestNatsServer;
  let db: TestDatabase;
  let idp: TestOidcProvider;
  let app: INestApplication;
  let baseURL: string;
  let keys: ApiKeyService;
  const admin = principalFor('bootstrap-admin', TENANT, 'admin', 'api-key');

  const clientWith = (apiKey: string) => new OpenAI({ apiKey, baseURL, maxRetries: 0 });
  const complete = (c: OpenAI) =>
    c.chat.completions.create({ model: 'tier:fast', messages: MESSAGES }).withResponse();

  beforeAll(async () => {
    [nats, db, idp] = await Promise.all([
      startNatsServer(),
      createTestDatabase('aob_model_gateway'),
      startTestOidcProvider({
        audience: AUDIENCE,
        otherAudiences: ['https://elsewhere.aob.test'],
        clients: [
          { clientId: 'developer-a', tenantId: TENANT, roles: ['developer'] },
          { clientId: 'viewer-a', tenantId: TENANT, roles: ['viewer'] },
          { clientId: 'no-tenant', roles: ['developer'] },
        ],
      }),
    ]);
    app = await startModelGateway(
      loadModelGatewayConfig({
        NATS_URL: nats.url,
        DATABASE_URL: db.url,
        REDIS_URL: testRedisUrl(),
        QUOTA_KEY_PREFIX: uniqueKeyPrefix('mgw-auth'),
        AOB_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY,
        AOB_BOOTSTRAP_TENANT: TENANT,
        OIDC_ISSUER_URL: idp.issuer,
        OIDC_AUDIENCE: AUDIENCE,
        // a token signed by a rotated key refetches the key set at once
        OIDC_JWKS_COOLDOWN_MS: '0',
        LOG_LEVEL: 'silent',
      }),
      { port: 0, host: '127.0.0.1', catalog: CATALOG },
    );
    baseURL = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}/v1`;
    keys = app.get(ApiKeyService);
  });

  afterAll(async () => {
    await app?.close();
    await idp?.close();
    await nats?.stop();
    await db?.drop();
  });

  it('accepts a stored API key as the openai client apiKey, streamed and not', async () => {
    const created = await keys.create(admin, { name: 'sdk', role: 'developer' });
    const client = clientWith(created.key);
    const { data, response } = await complete(client);
    expect(response.status).toBe(200);
    expect(data.choices[0]?.finish_reason).toBe('stop');
    const stream = await client.chat.completions.create({
      model: 'tier:fast',
      messages: MESSAGES,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(data.choices[0]?.message.content);
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toContain('tier:fast');
  });

  it("answers a revoked key 401 in OpenAI's shape with WWW-Authenticate", async () => {
    const created = await keys.create(admin, { name: 'to-revoke', role: 'developer' });
    const client = clientWith(created.key);
    await expect(complete(client)).resolves.toMatchObject({ response: { status: 200 } });
    await keys.revoke(admin, created.id);

    const err = await complete(client).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err).toMatchObject({
      status: 401,
      type: 'invalid_request_error',
      code: 'invalid_api_key',
    });
    expect((err as InstanceType<typeof OpenAI.APIError>).headers?.get('www-authenticate')).toMatch(
      /^Bearer/,
    );
  });

  it("answers a viewer key (no models:invoke) 403 in OpenAI's shape", async () => {
    const created = await keys.create(admin, { name: 'read-only', role: 'viewer' });
    const err = await complete(clientWith(created.key)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(err).toMatchObject({
      status: 403,
      type: 'permission_error',
      code: 'permission_denied',
      error: { message: 'missing permission models:invoke', param: null },
    });
    await expect(clientWith(created.key).models.list()).rejects.toBeInstanceOf(
      OpenAI.PermissionDeniedError,
    );
  });

  it('a key limited by scopes gets only what its scopes name', async () => {
    const scoped = await keys.create(admin, {
      name: 'runs-only',
      role: 'developer',
      scopes: ['runs:read'],
    });
    await expect(complete(clientWith(scoped.key))).rejects.toBeInstanceOf(
      OpenAI.PermissionDeniedError,
    );
  });

  it('accepts an OIDC access token from the provider as the apiKey', async () => {
    const { data, response } = await complete(clientWith(await idp.token('developer-a')));
    expect(response.status).toBe(200);
    expect(data.object).toBe('chat.completion');
  });

  it('refuses OIDC tokens of a viewer (403), without a tenant (403) or for another audience (401)', async () => {
    await expect(complete(clientWith(await idp.token('viewer-a')))).rejects.toBeInstanceOf(
      OpenAI.PermissionDeniedError,
    );
    await expect(complete(clientWith(await idp.token('no-tenant')))).rejects.toMatchObject({
      status: 403,
      type: 'permission_error',
    });
    const elsewhere = await idp.token('developer-a', { resource: 'https://elsewhere.aob.test' });
    await expect(complete(clientWith(elsewhere))).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
  });

  it("answers 503 in OpenAI's shape while the identity provider cannot verify a token", async () => {
    await idp.rotateKeys();
    idp.setAvailable(false);
    try {
      // signed with the new key: the gateway must refetch the JWKS, and the provider is down
      const fresh = await idp.sign({
        iss: idp.issuer,
        aud: AUDIENCE,
        sub: 'developer-a',
        tenant_id: TENANT,
        roles: ['developer'],
        exp: Math.floor(Date.now() / 1000) + 300,
      });
      const err = await complete(clientWith(fresh)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.InternalServerError);
      expect(err).toMatchObject({ status: 503, type: 'server_error' });
    } finally {
      idp.setAvailable(true);
    }
    await expect(complete(clientWith(await idp.token('developer-a')))).resolves.toMatchObject({
      response: { status: 200 },
    });
  });
});
