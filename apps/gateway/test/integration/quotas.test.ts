import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import type { NatsConnection } from '@nats-io/nats-core';
import { principalFor } from '@aob/auth';
import { connectNats, decodeCloudEvent } from '@aob/events';
import { billingPeriod, QuotaLimiter } from '@aob/quotas';
import {
  createTestDatabase,
  freePort,
  startNatsServer,
  testRedisUrl,
  uniqueKeyPrefix,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
} from '@aob/testing';
import { startGateway } from '../../src/app.module';
import { loadGatewayConfig } from '../../src/config';
import { QuotasService } from '../../src/quotas/quotas.service';
import { usageQuerySchema } from '../../src/usage/usage-query';
import { UsageService } from '../../src/usage/usage.service';
import { ADMIN_KEY, registerAgents, TENANT, withPg } from './gateway-harness';

jest.setTimeout(90_000);

interface Gateway {
  app: INestApplication;
  base: string;
}

async function bootGateway(
  nats: string,
  db: string,
  env: Record<string, string>,
): Promise<Gateway> {
  const app = await startGateway(
    loadGatewayConfig({
      PORT: '0',
      DATABASE_URL: db,
      NATS_URL: nats,
      REDIS_URL: testRedisUrl(),
      AOB_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY,
      AOB_BOOTSTRAP_TENANT: TENANT,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      AGENTS_CACHE_MS: '0',
      ...env,
    }),
  );
  const { port } = (app.getHttpServer() as { address(): AddressInfo }).address();
  return { app, base: `http://127.0.0.1:${port}` };
}

const call = (gw: Gateway, path: string, init: { method?: string; json?: unknown } = {}) =>
  fetch(gw.base + path, {
    method: init.method ?? 'GET',
    headers: { 'x-api-key': ADMIN_KEY, 'content-type': 'application/json' },
    ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
  });

const submit = (gw: Gateway, i: number) =>
  call(gw, '/v1/runs', { method: 'POST', json: { agent: 'echo', input: { message: i } } });

async function insertDaily(
  db: string,
  tenant: string,
  rows: [string, string, string, string, number, number, number, number][],
) {
  await withPg(db, async (pg) => {
    for (const [day, model, deployment, agent, requests, prompt, completion, cost] of rows) {
      await pg.query(
        `INSERT INTO metering.usage_daily (tenant_id, day, model, deployment, agent, requests, prompt_tokens, completion_tokens, total_tokens, cost_usd)
         VALUES ($1, $2::date, $3, $4, $5, $6, $7, $8, $7::bigint + $8::bigint, $9)`,
        [tenant, day, model, deployment, agent, requests, prompt, completion, cost],
      );
    }
  });
}

describe('gateway: quotas across two gateway processes, and usage', () => {
  let nats: TestNatsServer;
  let db: TestDatabase;
  let nc: NatsConnection;
  let a: Gateway;
  let b: Gateway;

  beforeAll(async () => {
    nats = await startNatsServer();
    db = await createTestDatabase('aob_gw_quotas');
    await registerAgents(db.url);
    // one quota key space shared by both processes, as replicas share one Dragonfly
    // a generous command timeout: a timed-out check fails open, which would blur "exactly"
    const env = {
      QUOTA_KEY_PREFIX: uniqueKeyPrefix('gq'),
      RUN_STREAM_KEY_PREFIX: uniqueKeyPrefix('gw'),
      QUOTA_REDIS_TIMEOUT_MS: '2000',
    };
    a = await bootGateway(nats.url, db.url, env);
    b = await bootGateway(nats.url, db.url, env);
    nc = await connectNats({ url: nats.url, name: 'quotas-test' });
  });

  afterAll(async () => {
    await nc?.close();
    await a?.app.close();
    await b?.app.close();
    await nats?.stop();
    await db?.drop();
  });

  it('without limits (the default), runs are admitted and no RateLimit headers are sent', async () => {
    const res = await submit(a, 0);
    expect(res.status).toBe(202);
    expect(res.headers.get('ratelimit')).toBeNull();
    const quotas = await (await call(a, '/v1/quotas')).json();
    expect(quotas).toEqual({
      requestsPerSecond: 0,
      burst: 0,
      tokensPerMinute: 0,
      monthlyBudgetUsd: 0,
      remaining: { requests: null, tokens: null, budgetUsd: null },
    });
  });

  it('a burst across both gateways admits exactly the bucket; 429s carry problem+json, Retry-After and RateLimit headers', async () => {
    const put = await call(a, `/v1/tenants/${TENANT}/quotas`, {
      method: 'PUT',
      json: { requestsPerSecond: 0.01, burst: 10 },
    });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({
      requestsPerSecond: 0.01,
      burst: 10,
      remaining: { requests: 10 },
    });

    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => submit(i % 2 === 0 ? a : b, i)),
    );
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 202)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(30);
    // every admission was decided by the shared bucket (none failed open)
    expect(answers.filter((r) => r.status === 202 && r.headers.get('ratelimit') === null)).toEqual(
      [],
    );

    const ok = answers.find((r) => r.status === 202)!;
    expect(ok.headers.get('ratelimit-policy')).toBe('"burst";q=10;w=1000');
    expect(ok.headers.get('ratelimit')).toMatch(/^"burst";r=\d;t=\d+$/);

    const refused = answers.find((r) => r.status === 429)!;
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    const problem = (await refused.json()) as { type: string; status: number; code: string };
    expect(problem).toMatchObject({
      type: 'https://aob.dev/problems/quota-exceeded',
      status: 429,
      code: 'QuotaExceeded',
    });
    // 1 request per 100 s: the wait is ~100 s, plus jitter
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(90);
    expect(refused.headers.get('ratelimit-policy')).toBe('"burst";q=10;w=1000');
    expect(refused.headers.get('ratelimit')).toMatch(/^"burst";r=0;t=\d+$/);
    const retryAfters = new Set(
      answers.filter((r) => r.status === 429).map((r) => r.headers.get('retry-after')),
    );
    expect(retryAfters.size).toBeGreaterThan(1); // jittered

    expect(await (await call(b, '/v1/quotas')).json()).toMatchObject({
      remaining: { requests: 0 },
    });
  });

  it('lets only an admin of the tenant (or a platform admin) set its quotas', async () => {
    const other = await call(a, '/v1/tenants/tenant-b/quotas', {
      method: 'PUT',
      json: { burst: 5 },
    });
    expect(other.status).toBe(403);
    const invalid = await call(a, `/v1/tenants/${TENANT}/quotas`, {
      method: 'PUT',
      json: { burst: -1, extra: true },
    });
    expect(invalid.status).toBe(400);
    const platformAdmin = principalFor('key:root', '*', 'admin', 'api-key');
    const view = await a.app
      .get(QuotasService)
      .update(platformAdmin, 'tenant-b', { tokensPerMinute: 5_000 });
    expect(view).toMatchObject({ tokensPerMinute: 5_000, remaining: { tokens: 5_000 } });
    const developer = principalFor('key:dev', 'tenant-b', 'developer', 'api-key');
    await expect(a.app.get(QuotasService).update(developer, 'tenant-c', {})).rejects.toThrow(
      'only set the quotas',
    );
  });

  it('over budget: new runs get 402 and metering.quota.exceeded is published once', async () => {
    const period = billingPeriod(new Date());
    const today = new Date().toISOString().slice(0, 10);
    await insertDaily(db.url, TENANT, [
      [today, 'sim-small', 'local-fast', 'chat', 3, 100, 50, 1.5],
    ]);
    await call(a, `/v1/tenants/${TENANT}/quotas`, {
      method: 'PUT',
      json: { requestsPerSecond: 0, monthlyBudgetUsd: 2 },
    });
    // the spend counter was missing: rebuilt from Postgres, 1.5 of 2 USD
    expect((await submit(a, 1)).status).toBe(202);
    expect(await (await call(a, '/v1/quotas')).json()).toMatchObject({
      monthlyBudgetUsd: 2,
      remaining: { budgetUsd: 0.5 },
    });

    const seen: { id: string; data: unknown }[] = [];
    const sub = nc.subscribe('metering.quota.exceeded');
    void (async () => {
      for await (const m of sub) {
        const e = decodeCloudEvent({ headers: m.headers, data: m.data });
        seen.push({ id: e.id, data: e.data });
      }
    })();
    // the server has the subscription before anything can publish (a PING/PONG after the SUB):
    // on a loaded machine the app's PUB, on another connection, could otherwise arrive first
    await nc.flush();
    // metering would add committed cost like this after a batch
    await a.app.get(QuotaLimiter).recordSpend(TENANT, period, 0.75);

    const answers = await Promise.all([submit(a, 2), submit(b, 3), submit(a, 4)]);
    expect(answers.map((r) => r.status)).toEqual([402, 402, 402]);
    const problem = (await answers[0].json()) as Record<string, unknown>;
    expect(problem).toMatchObject({
      type: 'https://aob.dev/problems/budget-exceeded',
      status: 402,
      code: 'BudgetExceeded',
      budgetUsd: 2,
      spentUsd: 2.25,
    });
    await waitFor(() => seen.length > 0, { what: 'quota exceeded event' });
    await new Promise((r) => setTimeout(r, 300));
    sub.unsubscribe();
    expect(seen).toEqual([
      {
        id: `${TENANT}.monthly-budget.${period.id}.exceeded`,
        data: { tenantId: TENANT, limit: 'monthlyBudgetUsd', window: period.id, observed: 2.25 },
      },
    ]);
    // lifting the budget admits again
    await call(a, `/v1/tenants/${TENANT}/quotas`, { method: 'PUT', json: {} });
    expect((await submit(b, 5)).status).toBe(202);
  });

  it('GET /v1/usage groups the metering aggregates of the caller only, with totals', async () => {
    await insertDaily(db.url, 'usage-t', [
      ['2025-03-01', 'sim-small', 'local-fast', 'chat', 2, 100, 40, 0.000012],
      ['2025-03-01', 'sim-medium', 'local-balanced', '', 1, 10, 5, 0.000003],
      ['2025-03-02', 'sim-small', 'local-fast', 'pipeline', 4, 200, 80, 0.000024],
      ['2025-04-01', 'sim-small', 'local-fast', 'chat', 100, 1, 1, 1],
    ]);
    await insertDaily(db.url, 'someone-else', [
      ['2025-03-01', 'sim-small', 'local-fast', 'chat', 9, 9, 9, 9],
    ]);
    const viewer = principalFor('key:viewer', 'usage-t', 'viewer', 'api-key');
    const report = (q: Record<string, string>) =>
      a.app.get(UsageService).report(viewer.tenantId, usageQuerySchema.parse(q));

    const byModel = await report({ from: '2025-03-01', to: '2025-03-31', groupBy: 'model' });
    expect(byModel.items).toEqual([
      {
        model: 'sim-medium',
        requests: 1,
        promptTokens: 10,
        completionTokens: 5,
        totalTokens: 15,
        costUsd: 0.000003,
      },
      {
        model: 'sim-small',
        requests: 6,
        promptTokens: 300,
        completionTokens: 120,
        totalTokens: 420,
        costUsd: 0.000036,
      },
    ]);
    expect(byModel.totals).toEqual({
      requests: 7,
      promptTokens: 310,
      completionTokens: 125,
      totalTokens: 435,
      costUsd: 0.000039,
    });
    const byAgent = await report({
      from: '2025-03-01T10:00:00Z',
      to: '2025-03-02',
      groupBy: 'agent',
    });
    expect(byAgent.items.map((i) => [i.agent, i.requests])).toEqual([
      [null, 1],
      ['chat', 2],
      ['pipeline', 4],
    ]);
    const byDay = await report({ from: '2025-03-02', to: '2025-04-30' });
    expect(byDay.groupBy).toBe('day');
    expect(byDay.items.map((i) => [i.day, i.requests])).toEqual([
      ['2025-03-02', 4],
      ['2025-04-01', 100],
    ]);

    // over HTTP: the admin key is tenant-a's, which sees its own usage only
    const res = await call(a, '/v1/usage?groupBy=deployment&from=2025-03-01&to=2025-03-31');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      items: [],
      totals: { requests: 0 },
      from: '2025-03-01',
      to: '2025-03-31',
    });
    const current = (await (await call(a, '/v1/usage')).json()) as {
      from: string;
      items: { day: string; costUsd: number }[];
    };
    expect(current.from).toBe(`${billingPeriod(new Date()).id}-01`);
    expect(current.items).toEqual([
      expect.objectContaining({ day: new Date().toISOString().slice(0, 10), costUsd: 1.5 }),
    ]);
    for (const bad of [
      'groupBy=tenant',
      'from=2025-03-05&to=2025-03-01',
      'from=yesterday',
      'limit=3',
    ]) {
      expect((await call(a, `/v1/usage?${bad}`)).status).toBe(400);
    }
  });

  it('fails open by default and closed when told, without hanging, while quota Redis is unreachable', async () => {
    const deadRedis = `redis://127.0.0.1:${await freePort()}`;
    const base = {
      QUOTA_REDIS_URL: deadRedis,
      QUOTA_DEFAULT_RPS: '1',
      RUN_STREAM_KEY_PREFIX: uniqueKeyPrefix('gw'),
    };
    const open = await bootGateway(nats.url, db.url, base);
    const closed = await bootGateway(nats.url, db.url, { ...base, QUOTA_FAIL_MODE: 'closed' });
    try {
      const t0 = Date.now();
      expect((await submit(open, 10)).status).toBe(202);
      const refused = await submit(closed, 11);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(Date.now() - t0).toBeLessThan(3_000);
      const metrics = await (await fetch(`${open.base}/metrics`)).text();
      expect(metrics).toMatch(/aob_quota_backend_failures_total\{op="admit",mode="open"\} [1-9]/);
    } finally {
      await open.app.close();
      await closed.app.close();
    }
  });
});
