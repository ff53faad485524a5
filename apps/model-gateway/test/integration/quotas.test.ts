import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import OpenAI from 'openai';
import { QuotaLimiter, QuotaRepository } from '@aob/quotas';
import {
  createTestDatabase,
  startNatsServer,
  testRedisUrl,
  uniqueKeyPrefix,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
} from '@aob/testing';
import { startModelGateway } from '../../src/bootstrap';
import { validateCatalog } from '../../src/catalog/catalog-loader';
import { loadModelGatewayConfig } from '../../src/config';

jest.setTimeout(90_000);

const SERVICE_KEY = 'aob_test_service_key_0123456789abcdef';
const MESSAGES = [{ role: 'user' as const, content: 'Count to a few hundred.' }];
/** What the simulated models answer when max_tokens does not cut them. */
const ANSWER_TOKENS = 200;

const CATALOG = validateCatalog({
  deployments: [
    {
      name: 'quick',
      provider: 'local',
      model: 'sim-quick',
      inputCostPer1M: 0.1,
      outputCostPer1M: 0.2,
      simulate: { ttftMs: 1, tokensPerSecond: 200_000, maxOutputTokens: ANSWER_TOKENS },
    },
    {
      // holds its reservation long enough for a whole burst to arrive while it is in flight
      name: 'held',
      provider: 'local',
      model: 'sim-held',
      inputCostPer1M: 0.1,
      outputCostPer1M: 0.2,
      simulate: { ttftMs: 1_500, tokensPerSecond: 200_000, maxOutputTokens: ANSWER_TOKENS },
    },
  ],
});

interface Instance {
  app: INestApplication;
  baseURL: string;
}

/** Two model gateways sharing one Redis (quota state), one Postgres and one NATS. */
class Pair {
  readonly instances: Instance[] = [];
  private constructor(private readonly db: TestDatabase) {}

  static async start(nats: string, env: Record<string, string>): Promise<Pair> {
    const pair = new Pair(await createTestDatabase('aob_model_gateway'));
    const config = loadModelGatewayConfig({
      NATS_URL: nats,
      DATABASE_URL: pair.db.url,
      REDIS_URL: testRedisUrl(),
      QUOTA_KEY_PREFIX: uniqueKeyPrefix('mgw-quota'),
      AOB_BOOTSTRAP_TENANT: 'acme',
      AOB_SERVICE_KEY: SERVICE_KEY,
      LOG_LEVEL: 'silent',
      ...env,
    });
    for (let i = 0; i < 2; i++) {
      const app = await startModelGateway(config, { port: 0, host: '127.0.0.1', catalog: CATALOG });
      const { port } = app.getHttpServer().address() as AddressInfo;
      pair.instances.push({ app, baseURL: `http://127.0.0.1:${port}/v1` });
    }
    return pair;
  }

  /** The executor's client of one tenant on instance i % 2. */
  client(tenant: string, i: number): OpenAI {
    const instance = this.instances[i % 2] as Instance;
    return new OpenAI({
      apiKey: SERVICE_KEY,
      baseURL: instance.baseURL,
      maxRetries: 0,
      defaultHeaders: { 'x-aob-tenant-id': tenant },
    });
  }

  get<T>(token: abstract new (...args: never[]) => T): T {
    return (this.instances[0] as Instance).app.get(token);
  }

  async close(): Promise<void> {
    await Promise.all(this.instances.map((i) => i.app.close()));
    await this.db.drop();
  }
}

type Outcome =
  | { ok: true; headers: Headers; totalTokens: number }
  | { ok: false; error: InstanceType<typeof OpenAI.APIError> };

/** One completion, streamed with usage or not; refusals become values. */
async function attempt(
  client: OpenAI,
  params: { model: string; max_tokens?: number; stream?: boolean },
): Promise<Outcome> {
  try {
    if (params.stream) {
      const { data, response } = await client.chat.completions
        .create({
          model: params.model,
          messages: MESSAGES,
          ...(params.max_tokens === undefined ? {} : { max_tokens: params.max_tokens }),
          stream: true,
          stream_options: { include_usage: true },
        })
        .withResponse();
      let totalTokens = -1;
      for await (const chunk of data) if (chunk.usage) totalTokens = chunk.usage.total_tokens;
      return { ok: true, headers: response.headers, totalTokens };
    }
    const { data, response } = await client.chat.completions
      .create({
        model: params.model,
        messages: MESSAGES,
        ...(params.max_tokens === undefined ? {} : { max_tokens: params.max_tokens }),
      })
      .withResponse();
    return { ok: true, headers: response.headers, totalTokens: data.usage?.total_tokens ?? -1 };
  } catch (err) {
    if (err instanceof OpenAI.APIError) return { ok: false, error: err };
    throw err;
  }
}

const refusals = (outcomes: Outcome[]) => outcomes.flatMap((o) => (o.ok ? [] : [o.error]));
const admitted = (outcomes: Outcome[]) => outcomes.flatMap((o) => (o.ok ? [o] : []));

describe('model gateway: tenant quotas across two instances on one Redis', () => {
  let nats: TestNatsServer;

  beforeAll(async () => {
    nats = await startNatsServer();
  });

  afterAll(async () => {
    await nats?.stop();
  });

  describe('requests per second (QUOTA_DEFAULT_RPS / QUOTA_DEFAULT_BURST)', () => {
    let pair: Pair;

    beforeAll(async () => {
      // a refill every 5 s: nothing refills while the burst is answered
      pair = await Pair.start(nats.url, { QUOTA_DEFAULT_RPS: '0.2', QUOTA_DEFAULT_BURST: '5' });
    });

    afterAll(async () => {
      await pair?.close();
    });

    it("admits exactly the bucket across both instances; the rest get 429 in OpenAI's shape", async () => {
      const outcomes = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          attempt(pair.client('burst-t', i), { model: 'quick' }),
        ),
      );
      const ok = admitted(outcomes);
      expect(ok).toHaveLength(5);
      for (const o of ok) {
        expect(o.headers.get('x-ratelimit-limit-requests')).toBe('5');
        expect(Number(o.headers.get('x-ratelimit-remaining-requests'))).toBeLessThan(5);
        expect(o.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(\.\d+)?m?s$/);
        // no token limit for the tenant, none from the local upstream
        expect(o.headers.get('x-ratelimit-limit-tokens')).toBe('unlimited');
      }
      const refused = refusals(outcomes);
      expect(refused).toHaveLength(7);
      for (const err of refused) {
        expect(err).toBeInstanceOf(OpenAI.RateLimitError);
        expect(err).toMatchObject({
          status: 429,
          type: 'requests',
          code: 'rate_limit_exceeded',
          param: null,
          error: { message: expect.stringContaining('Rate limit reached for requests') },
        });
        expect(err.headers?.get('x-ratelimit-limit-requests')).toBe('5');
        expect(err.headers?.get('x-ratelimit-remaining-requests')).toBe('0');
        expect(Number(err.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
      }
      // both instances refused: the bucket is one, not one per process
      const refusedBy = new Set(outcomes.flatMap((o, i) => (o.ok ? [] : [i % 2])));
      expect(refusedBy).toEqual(new Set([0, 1]));
    });

    it("uses a bucket of its own (`models`): the tenant's run admissions are untouched", async () => {
      const limiter = pair.get(QuotaLimiter);
      for (let i = 0; i < 6; i++) await attempt(pair.client('scoped-t', i), { model: 'quick' });
      expect((await limiter.peek('scoped-t', 'models')).requests?.remaining).toBe(0);
      const runs = await limiter.peek('scoped-t', 'runs');
      expect(runs.requests?.remaining).toBe(5);
    });

    it('gives another tenant a bucket of its own', async () => {
      const other = await attempt(pair.client('burst-t-neighbour', 0), { model: 'quick' });
      expect(other.ok).toBe(true);
    });
  });

  describe('tokens per minute (QUOTA_DEFAULT_TPM) and tenant overrides', () => {
    const TPM = 1_000;
    const MAX_TOKENS = 300;
    let pair: Pair;

    beforeAll(async () => {
      pair = await Pair.start(nats.url, { QUOTA_DEFAULT_TPM: String(TPM) });
    });

    afterAll(async () => {
      await pair?.close();
    });

    it('never admits more reserved worst cases than the limit, and settles to the real usage', async () => {
      const started = performance.now();
      // streamed and not, on both instances, all in flight at once (the `held` model answers after 1.5 s)
      const outcomes = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          attempt(pair.client('tpm-t', i), {
            model: 'held',
            max_tokens: MAX_TOKENS,
            stream: i % 3 === 0,
          }),
        ),
      );
      const ok = admitted(outcomes);
      const refused = refusals(outcomes);
      expect(ok.every((o) => o.headers.get('x-ratelimit-limit-tokens') === String(TPM))).toBe(true);
      // the first admitted request saw the full bucket less its own reservation (prompt
      // estimate + max_tokens); all requests are alike, so each reserved that much
      const remainingSeen = ok.map((o) => Number(o.headers.get('x-ratelimit-remaining-tokens')));
      const reservedEach = TPM - Math.max(...remainingSeen);
      expect(reservedEach).toBeGreaterThan(MAX_TOKENS);
      const elapsedS = (performance.now() - started) / 1000;
      // refill during the burst is at most TPM/60 per second
      expect(ok.length * reservedEach).toBeLessThanOrEqual(TPM + Math.ceil((elapsedS * TPM) / 60));
      expect(ok.length).toBeGreaterThanOrEqual(1);
      expect(refused.length).toBe(10 - ok.length);
      for (const err of refused) {
        expect(err).toBeInstanceOf(OpenAI.RateLimitError);
        expect(err).toMatchObject({ status: 429, type: 'tokens', code: 'rate_limit_exceeded' });
        expect(err.headers?.get('x-ratelimit-limit-tokens')).toBe(String(TPM));
        expect(Number(err.headers?.get('retry-after'))).toBeGreaterThanOrEqual(1);
      }

      // after settling, the bucket lacks what was really used, not the reserved worst cases
      const used = ok.reduce((sum, o) => sum + o.totalTokens, 0);
      expect(ok.every((o) => o.totalTokens > ANSWER_TOKENS)).toBe(true);
      expect(used).toBeLessThan(ok.length * reservedEach);
      const limiter = pair.get(QuotaLimiter);
      let remaining = 0;
      await waitFor(
        async () => {
          remaining = (await limiter.peek('tpm-t', 'models')).tokens?.remaining ?? -1;
          return remaining >= TPM - used;
        },
        { timeoutMs: 5_000, what: 'settled token bucket' },
      );
      const refillS = (performance.now() - started) / 1000;
      expect(remaining).toBeLessThanOrEqual(TPM - used + Math.ceil((refillS * TPM) / 60) + 1);
    });

    it('refuses a request whose worst case exceeds the whole limit with 400 tokens_exceed_limit', async () => {
      const outcome = await attempt(pair.client('tpm-big-t', 0), {
        model: 'quick',
        max_tokens: TPM * 2,
      });
      expect(outcome.ok).toBe(false);
      const err = (outcome as { error: InstanceType<typeof OpenAI.APIError> }).error;
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err).toMatchObject({ status: 400, code: 'tokens_exceed_limit' });
    });

    it("applies a tenant's override (QuotaRepository + invalidateLimits) on both instances", async () => {
      const repo = pair.get(QuotaRepository);
      const limiter = pair.get(QuotaLimiter);
      await repo.saveOverrides(
        'override-t',
        { requestsPerSecond: 0.2, burst: 2, tokensPerMinute: 50_000 },
        'test',
      );
      await limiter.invalidateLimits('override-t');
      const outcomes = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          attempt(pair.client('override-t', i), { model: 'quick' }),
        ),
      );
      const ok = admitted(outcomes);
      expect(ok).toHaveLength(2);
      expect(ok[0]?.headers.get('x-ratelimit-limit-requests')).toBe('2');
      expect(ok[0]?.headers.get('x-ratelimit-limit-tokens')).toBe('50000');
      expect(refusals(outcomes).every((e) => e.status === 429 && e.type === 'requests')).toBe(true);

      // a tenant without overrides keeps the defaults: no request limit, TPM from the env
      const plain = await attempt(pair.client('plain-t', 1), {
        model: 'quick',
        max_tokens: MAX_TOKENS,
      });
      expect(plain.ok).toBe(true);
      const headers = (plain as { headers: Headers }).headers;
      expect(headers.get('x-ratelimit-limit-requests')).toBe('unlimited');
      expect(headers.get('x-ratelimit-limit-tokens')).toBe(String(TPM));
    });
  });

  describe('leases (QUOTA_LEASE_MS): a steady tenant', () => {
    let pair: Pair;

    beforeAll(async () => {
      // a long lease and a refill every 100 s: the test decides when leases end
      pair = await Pair.start(nats.url, {
        QUOTA_DEFAULT_RPS: '0.01',
        QUOTA_DEFAULT_BURST: '100',
        QUOTA_LEASE_MS: '10000',
      });
    });

    afterAll(async () => {
      await pair?.close();
    });

    const leaseHits = async () => {
      const res = await fetch(
        `${(pair.instances[0] as Instance).baseURL.replace(/\/v1$/, '')}/metrics`,
      );
      const line = (await res.text())
        .split('\n')
        .find((l) => l.startsWith('aob_quota_leases_total{scope="models",event="hit"}'));
      return Number(line?.split(' ')[1] ?? 0);
    };

    it('is mostly admitted without a round trip, and still exactly its bucket across both instances', async () => {
      const before = await leaseHits();
      const outcomes: Outcome[] = [];
      for (let i = 0; i < 130; i++) {
        outcomes.push(await attempt(pair.client('steady-t', i), { model: 'quick' }));
      }
      expect(admitted(outcomes)).toHaveLength(100);
      expect(refusals(outcomes).every((e) => e.status === 429 && e.type === 'requests')).toBe(true);
      expect(await leaseHits()).toBeGreaterThan(before + 50);
    });

    it("ends the tenant's leases on both instances when its limits change", async () => {
      for (let i = 0; i < 20; i++) await attempt(pair.client('put-t', i), { model: 'quick' });
      const before = await leaseHits();
      await pair.get(QuotaRepository).saveOverrides('put-t', { burst: 1 }, 'test');
      await pair.get(QuotaLimiter).invalidateLimits('put-t');
      await new Promise((r) => setTimeout(r, 50)); // the message crosses Redis pub/sub
      // the bucket (80 left) is capped at the new burst: one more call on either instance, no lease
      const outcomes: Outcome[] = [];
      for (let i = 0; i < 4; i++)
        outcomes.push(await attempt(pair.client('put-t', i), { model: 'quick' }));
      expect(admitted(outcomes)).toHaveLength(1);
      expect(admitted(outcomes)[0]?.headers.get('x-ratelimit-limit-requests')).toBe('1');
      expect(await leaseHits()).toBe(before);
    });
  });
});
