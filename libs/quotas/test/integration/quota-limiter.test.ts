import { createServer, type Server, type Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { Client } from 'pg';
import { createDataSource, type DataSource } from '@aob/persistence';
import {
  createTestDatabase,
  freePort,
  startRedisServer,
  testRedisUrl,
  waitFor,
  uniqueKeyPrefix,
  type TestDatabase,
} from '@aob/testing';
import {
  billingPeriod,
  connectQuotaRedis,
  ModelQuotaGuard,
  QuotaLimiter,
  QuotaRepository,
  type BudgetNotification,
  type QuotaLimits,
} from '@aob/quotas';

const UNLIMITED: QuotaLimits = {
  requestsPerSecond: 0,
  burst: 0,
  tokensPerMinute: 0,
  monthlyBudgetUsd: 0,
};

describe('QuotaLimiter against one Redis, from two instances', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let repo: QuotaRepository;
  let redisA: Redis;
  let redisB: Redis;
  let prefix: string;
  const notes: BudgetNotification[] = [];

  const limiter = (redis: Redis, defaults: Partial<QuotaLimits> = {}, extra: object = {}) =>
    new QuotaLimiter(redis, {
      store: repo,
      defaults: { ...UNLIMITED, ...defaults },
      keyPrefix: prefix,
      onNotification: async (n) => {
        notes.push(n);
      },
      ...extra,
    });

  beforeAll(async () => {
    db = await createTestDatabase('aob_quotas');
    ds = createDataSource({ url: db.url, poolSize: 4 });
    await ds.initialize();
    repo = new QuotaRepository(ds);
    // two connections: what two replicas would have
    redisA = await connectQuotaRedis({
      url: testRedisUrl(),
      name: 'quota-test-a',
      commandTimeoutMs: 1_000,
    });
    redisB = await connectQuotaRedis({
      url: testRedisUrl(),
      name: 'quota-test-b',
      commandTimeoutMs: 1_000,
    });
  });

  beforeEach(() => {
    prefix = uniqueKeyPrefix('q');
    notes.length = 0;
  });

  afterAll(async () => {
    redisA?.disconnect();
    redisB?.disconnect();
    await ds?.destroy();
    await db?.drop();
  });

  it('a burst across two instances admits exactly what the bucket holds', async () => {
    // a slow refill (1 request per 100 s) so the test's own duration adds nothing
    const a = limiter(redisA, { requestsPerSecond: 0.01, burst: 20 });
    const b = limiter(redisB, { requestsPerSecond: 0.01, burst: 20 });
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).admit('burst-tenant')),
    );
    const allowed = results.filter((d) => d.allowed);
    expect(allowed).toHaveLength(20);
    expect(results.every((d) => !d.degraded)).toBe(true);
    const refused = results.find((d) => !d.allowed)!;
    expect(refused.reason).toBe('requests');
    expect(refused.requests).toMatchObject({ limit: 20, remaining: 0 });
    // ~100 s until one request refills
    expect(refused.retryAfterMs).toBeGreaterThan(90_000);
    // another tenant has a bucket of its own
    expect((await a.admit('other-tenant')).allowed).toBe(true);
  });

  it('refills from the Redis clock', async () => {
    const a = limiter(redisA, { requestsPerSecond: 20, burst: 2 });
    expect((await a.admit('refill')).allowed).toBe(true);
    expect((await a.admit('refill')).allowed).toBe(true);
    const third = await a.admit('refill');
    expect(third.allowed).toBe(false);
    expect(third.retryAfterMs).toBeLessThanOrEqual(50);
    await new Promise((r) => setTimeout(r, 60));
    expect((await a.admit('refill')).allowed).toBe(true);
  });

  it('concurrent token reservations never exceed tokensPerMinute; settling gives back the unused part', async () => {
    const a = limiter(redisA, { tokensPerMinute: 10_000 });
    const b = limiter(redisB, { tokensPerMinute: 10_000 });
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        (i % 2 === 0 ? a : b).admit('tpm', { scope: 'models', tokens: 700 }),
      ),
    );
    const granted = results.filter((d) => d.allowed);
    // 10 000 / 700 = 14.3: the refill during the burst (10 000 per minute) cannot add a 15th
    expect(granted).toHaveLength(14);
    expect(granted.reduce((s, d) => s + d.reservation!.tokens, 0)).toBeLessThanOrEqual(10_000);
    expect(results.find((d) => !d.allowed)?.reason).toBe('tokens');

    // each request used 100 of its 700: 14 × 600 come back, enough for more reservations
    await Promise.all(granted.map((d, i) => (i % 2 === 0 ? a : b).settle(d.reservation!, 100)));
    const again = await Promise.all(
      Array.from({ length: 20 }, () => a.admit('tpm', { scope: 'models', tokens: 700 })),
    );
    const regranted = again.filter((d) => d.allowed).length;
    // in use: 14 × 100 settled; free ≈ 8 600 → 12 more
    expect(regranted).toBe(12);
  });

  it('a request used more than it reserved: the bucket goes into debt', async () => {
    const a = limiter(redisA, { tokensPerMinute: 1_000 });
    const d = await a.admit('debt', { scope: 'models', tokens: 100 });
    await a.settle(d.reservation!, 1_500);
    const next = await a.admit('debt', { scope: 'models', tokens: 10 });
    expect(next.allowed).toBe(false);
    expect(next.reason).toBe('tokens');
    expect(next.tokens?.remaining).toBe(0);
    // a reservation larger than the whole limit can never succeed
    expect((await a.admit('debt2', { scope: 'models', tokens: 1_001 })).reason).toBe('too-large');
  });

  it('budget: refuses at 100 %, warns at 80 %, each notification once per period across instances', async () => {
    const tenant = `budget-${prefix}`;
    const period = billingPeriod(new Date());
    await insertDaily(db.url, tenant, period.start, 7.5);
    const a = limiter(redisA, { monthlyBudgetUsd: 10 });
    const b = limiter(redisB, { monthlyBudgetUsd: 10 });
    const first = await a.admit(tenant);
    expect(first.allowed).toBe(true);
    expect(first.budget).toEqual({ limitUsd: 10, spentUsd: 7.5, remainingUsd: 2.5 });
    expect(notes).toEqual([]);

    // metering commits 1 USD more: 85 % → one warning, whichever instance sees it
    await a.recordSpend(tenant, period, 1);
    await Promise.all([a.admit(tenant), b.admit(tenant), b.recordSpend(tenant, period, 0)]);
    await new Promise((r) => setImmediate(r));
    expect(notes.map((n) => n.kind)).toEqual(['warning']);
    expect(notes[0]).toMatchObject({ tenantId: tenant, period: period.id, threshold: 0.8 });

    await b.recordSpend(tenant, period, 2);
    const refused = await Promise.all([a.admit(tenant), b.admit(tenant)]);
    expect(refused.map((d) => d.reason)).toEqual(['budget', 'budget']);
    await new Promise((r) => setImmediate(r));
    expect(notes.map((n) => n.kind)).toEqual(['warning', 'exceeded']);
    expect(notes[1]).toMatchObject({ spendUsd: 10.5, budgetUsd: 10 });
  });

  it('rebuilds a missing spend counter from Postgres, including the batch just committed', async () => {
    const tenant = `rebuild-${prefix}`;
    const period = billingPeriod(new Date());
    await insertDaily(db.url, tenant, period.start, 3);
    const a = limiter(redisA, { monthlyBudgetUsd: 100 });
    await a.recordSpend(tenant, period, 3); // counter missing: rebuilt (3), not 3 + 3
    const d = await a.admit(tenant);
    expect(d.budget?.spentUsd).toBe(3);
    await a.recordSpend(tenant, period, 0.25);
    expect((await a.peek(tenant)).budget?.spentUsd).toBe(3.25);
  });

  it('uses stored overrides over the defaults; a PUT takes effect everywhere after invalidation', async () => {
    const tenant = `override-${prefix}`;
    const a = limiter(redisA, { requestsPerSecond: 0.01, burst: 1 });
    const b = limiter(redisB, { requestsPerSecond: 0.01, burst: 1 });
    expect((await a.peek(tenant)).limits).toMatchObject({ requestsPerSecond: 0.01, burst: 1 });
    await repo.saveOverrides(tenant, { burst: 5, tokensPerMinute: 0 }, 'test');
    // still cached on b until invalidated
    expect((await b.peek(tenant)).limits.burst).toBe(1);
    await a.invalidateLimits(tenant);
    const peek = await b.peek(tenant);
    expect(peek.limits).toEqual({
      requestsPerSecond: 0.01,
      burst: 5,
      tokensPerMinute: 0,
      monthlyBudgetUsd: 0,
    });
    expect(peek.requests).toMatchObject({ limit: 5, remaining: 5 });
  });

  it('fails open by default and closed when told, quickly, when Redis refuses connections', async () => {
    const port = await freePort();
    const dead = await connectQuotaRedis({
      url: `redis://127.0.0.1:${port}`,
      name: 'dead',
      commandTimeoutMs: 100,
    });
    try {
      const open = limiter(dead, { requestsPerSecond: 1 });
      const closed = limiter(dead, { requestsPerSecond: 1 }, { failMode: 'closed' });
      const t0 = Date.now();
      expect(await open.admit('t')).toMatchObject({ allowed: true, degraded: true });
      expect(await closed.admit('t')).toMatchObject({
        allowed: false,
        reason: 'unavailable',
        degraded: true,
      });
      expect(Date.now() - t0).toBeLessThan(1_000);
    } finally {
      dead.disconnect();
    }
  });

  it('never hangs on a Redis that accepts but does not answer: the command times out', async () => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((s) => {
      sockets.add(s);
      s.on('data', () => undefined); // swallow everything, answer nothing
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const { port } = server.address() as { port: number };
    const mute = await connectQuotaRedis({
      url: `redis://127.0.0.1:${port}`,
      name: 'mute',
      commandTimeoutMs: 100,
    });
    try {
      const open = limiter(mute, { requestsPerSecond: 1 });
      const t0 = Date.now();
      const d = await open.admit('t');
      expect(d).toMatchObject({ allowed: true, degraded: true });
      expect(Date.now() - t0).toBeLessThan(2_500);
    } finally {
      mute.disconnect();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('ModelQuotaGuard reserves the worst case, answers OpenAI headers, settles once', async () => {
    const a = limiter(redisA, { requestsPerSecond: 0.01, burst: 3, tokensPerMinute: 3_000 });
    const guard = new ModelQuotaGuard(a);
    const req = { messages: [{ role: 'user', content: 'hello' }], max_tokens: 1_000 };
    const first = await guard.admit('mg', req);
    expect(first.allowed).toBe(true);
    expect(first.reservedTokens).toBe(guard.worstCaseTokens(req));
    expect(first.headers['x-ratelimit-limit-tokens']).toBe('3000');
    expect(Number(first.headers['x-ratelimit-remaining-tokens'])).toBe(
      3_000 - first.reservedTokens,
    );
    expect(first.headers['x-ratelimit-remaining-requests']).toBe('2');
    const second = await guard.admit('mg', req);
    const third = await guard.admit('mg', req);
    expect(third.allowed).toBe(false);
    expect(third.error).toMatchObject({
      status: 429,
      body: { error: { type: 'tokens', code: 'rate_limit_exceeded' } },
    });
    expect(third.error!.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    await first.settle(20);
    await first.settle(20); // a second settle changes nothing
    await second.settle(20);
    const after = await guard.admit('mg', req);
    expect(after.allowed).toBe(true);
    expect(Number(after.headers['x-ratelimit-remaining-tokens'])).toBeGreaterThanOrEqual(
      3_000 - 40 - after.reservedTokens,
    );
    expect(Number(after.headers['x-ratelimit-remaining-tokens'])).toBeLessThan(
      3_000 - 40 - after.reservedTokens + 20,
    );
  });
});

describe('QuotaLimiter leases (QUOTA_LEASE_MS), from two instances', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let repo: QuotaRepository;
  let prefix: string;
  const connections: Redis[] = [];
  const limiters: QuotaLimiter[] = [];

  const connect = async (name: string) => {
    const redis = await connectQuotaRedis({ url: testRedisUrl(), name, commandTimeoutMs: 1_000 });
    connections.push(redis);
    return redis;
  };
  /** One replica: its command connection, and its subscriber when `follow`. */
  const replica = async (defaults: Partial<QuotaLimits>, leaseMs: number, follow = true) => {
    const limiter = new QuotaLimiter(await connect('lease-cmd'), {
      store: repo,
      defaults: { ...UNLIMITED, ...defaults },
      keyPrefix: prefix,
      leaseMs,
    });
    limiters.push(limiter);
    if (follow) await limiter.followInvalidations(await connect('lease-sub'));
    return limiter;
  };
  const models = { scope: 'models', lease: true } as const;

  beforeAll(async () => {
    db = await createTestDatabase('aob_quota_leases');
    ds = createDataSource({ url: db.url, poolSize: 2 });
    await ds.initialize();
    repo = new QuotaRepository(ds);
  });

  beforeEach(() => {
    prefix = uniqueKeyPrefix('ql');
  });

  afterEach(async () => {
    await Promise.all(limiters.splice(0).map((l) => l.close()));
    for (const r of connections.splice(0)) r.disconnect();
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  it('a steady tenant is served from leases, and the two replicas still admit exactly the bucket', async () => {
    // 1 request per 100 s: the bucket holds 200 for the whole test
    const limits = { requestsPerSecond: 0.01, burst: 200 };
    const a = await replica(limits, 5_000);
    const b = await replica(limits, 5_000);
    const results = [];
    for (let i = 0; i < 300; i++) results.push(await (i % 2 === 0 ? a : b).admit('steady', models));
    expect(results.filter((d) => d.allowed)).toHaveLength(200);
    // most admissions made no round trip
    expect(results.filter((d) => d.leased).length).toBeGreaterThan(150);
    const refused = results.at(-1)!;
    expect(refused).toMatchObject({ allowed: false, reason: 'requests' });
    // the headers of a leased admission count what the leases hold as the tenant's
    const leased = results.find((d) => d.leased)!;
    expect(leased.requests!.limit).toBe(200);
    expect(leased.requests!.remaining).toBeLessThan(200);
  });

  it('a lease never holds more than a tenth of a bucket, and goes back whole when it ends', async () => {
    const a = await replica({ requestsPerSecond: 0.01, burst: 50 }, 5_000);
    const admitted = [];
    for (let i = 0; i < 12; i++) admitted.push(await a.admit('share', models));
    expect(admitted.every((d) => d.allowed)).toBe(true);
    // 12 admitted, a lease of at most 5 (10 % of 50) is held: Redis shows at most 50 - 12 left
    // and at least 50 - 12 - 5
    const held = await a.peek('share', 'models');
    expect(held.requests!.remaining).toBeLessThanOrEqual(38);
    expect(held.requests!.remaining).toBeGreaterThanOrEqual(33);
    await a.close(); // shutdown: what the lease did not hand out goes back
    expect((await a.peek('share', 'models')).requests!.remaining).toBe(38);
  });

  it('settlements go back into the lease, and the lease back to Redis when it expires', async () => {
    const a = await replica({ tokensPerMinute: 100_000 }, 100);
    for (let i = 0; i < 20; i++) {
      const d = await a.admit('tokens', { ...models, tokens: 1_000 });
      expect(d.allowed).toBe(true);
      await a.settle(d.reservation!, 100); // used 100 of the 1 000 reserved
    }
    // expired and swept (every leaseMs): used 20 × 100, the rest came back (plus a little refill)
    await new Promise((r) => setTimeout(r, 350));
    const tokens = (await a.peek('tokens', 'models')).tokens!;
    expect(tokens.remaining).toBeGreaterThanOrEqual(100_000 - 2_000);
  });

  it("a change of a tenant's limits on another replica ends its leases here at once", async () => {
    const a = await replica({ requestsPerSecond: 0.01, burst: 500 }, 5_000);
    const b = await replica({ requestsPerSecond: 0.01, burst: 500 }, 5_000);
    const tenant = `put-${prefix}`;
    for (let i = 0; i < 20; i++) await a.admit(tenant, models);
    expect((await a.admit(tenant, models)).leased).toBe(true);
    await repo.saveOverrides(tenant, { burst: 1 }, 'test');
    await b.invalidateLimits(tenant); // what the gateway's PUT does
    await new Promise((r) => setTimeout(r, 20)); // the message crosses Redis pub/sub
    const next = await a.admit(tenant, models);
    expect(next.leased).toBeUndefined();
    expect(next.limits.burst).toBe(1);
  });

  it('a Redis restart ends the leases; admissions fail open meanwhile, and leasing resumes after', async () => {
    const server = await startRedisServer();
    try {
      const own = async (name: string) => {
        const redis = await connectQuotaRedis({ url: server.url, name, commandTimeoutMs: 500 });
        connections.push(redis);
        return redis;
      };
      const a = new QuotaLimiter(await own('restart-cmd'), {
        store: repo,
        defaults: { ...UNLIMITED, requestsPerSecond: 0.01, burst: 500 },
        keyPrefix: prefix,
        leaseMs: 5_000,
      });
      limiters.push(a);
      await a.followInvalidations(await own('restart-sub'));
      for (let i = 0; i < 10; i++) await a.admit('restart', models);
      expect((await a.admit('restart', models)).leased).toBe(true);

      await server.stop();
      // the subscriber noticed: its leases are gone (their remainder died with the server)
      await waitFor(async () => !(await a.admit('restart', models)).leased, {
        what: 'no more leases',
        timeoutMs: 5_000,
      });
      const down = await a.admit('restart', models);
      expect(down).toMatchObject({ allowed: true, degraded: true });
      expect(down.leased).toBeUndefined();

      await server.start();
      await waitFor(async () => (await a.admit('restart', models)).leased === true, {
        what: 'leases again after the restart',
        timeoutMs: 15_000,
        intervalMs: 50,
      });
    } finally {
      await server.stop();
    }
  });

  it('without a live invalidation subscriber there are no leases: every admission is exact', async () => {
    const a = await replica({ requestsPerSecond: 0.01, burst: 500 }, 5_000, false);
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await a.admit('nosub', models));
    expect(results.every((d) => d.allowed && !d.leased)).toBe(true);
    expect((await a.peek('nosub', 'models')).requests!.remaining).toBe(480);
  });
});

async function insertDaily(url: string, tenant: string, day: Date, costUsd: number): Promise<void> {
  const pg = new Client({ connectionString: url });
  await pg.connect();
  try {
    await pg.query(
      `INSERT INTO metering.usage_daily (tenant_id, day, model, deployment, agent, requests, prompt_tokens, completion_tokens, total_tokens, cost_usd)
       VALUES ($1, $2::date, 'm', 'd', '', 1, 1, 1, 2, $3)`,
      [tenant, day.toISOString().slice(0, 10), costUsd],
    );
  } finally {
    await pg.end();
  }
}
