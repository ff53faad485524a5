// Bench section `quota-check`: latency of one quota check against the local Redis/Dragonfly.
//
// Both run in the same process over the same kind of connection, so the ratio is meaningful:
//   ping    — a bare Redis PING round trip: the floor of any check.
//   admit   — QuotaLimiter.admit: budget + request bucket + token reservation in one Lua script
//             (EVALSHA), limits cached in Redis (the steady state).
//   settle  — QuotaLimiter.settle: giving back the unused part of a reservation.
// Sequential calls (one in flight) measure latency; a concurrent run measures checks per second.
// Needs a build (`npm run bench` builds first) and the local Redis.
//   BENCH_QUOTA_N (default 20000)

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'package.json'));
const quotas = require(path.join(root, 'libs/quotas/dist'));
const testing = require(path.join(root, 'libs/testing/dist'));

const N = Number(process.env.BENCH_QUOTA_N ?? 20_000);
const log = (m) => process.stderr.write(`bench: ${m}\n`);

function percentiles(samples) {
  const s = Float64Array.from(samples).sort();
  const at = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const us = (ms) => Math.round(ms * 1000) / 1000;
  return { p50Ms: us(at(0.5)), p99Ms: us(at(0.99)), maxMs: us(s[s.length - 1]) };
}

async function timeEach(n, fn) {
  const samples = new Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    samples[i] = performance.now() - t0;
  }
  return percentiles(samples);
}

/** No overrides, no spend: what Postgres would answer for a tenant that never spent anything. */
const store = { findOverrides: async () => null, monthSpendUsd: async () => 0 };

export async function run() {
  const redis = await quotas.connectQuotaRedis({
    url: testing.testRedisUrl(),
    name: 'bench-quota',
    commandTimeoutMs: 1_000,
  });
  const prefix = testing.uniqueKeyPrefix('benchq');
  try {
    const limiter = new quotas.QuotaLimiter(redis, {
      store,
      keyPrefix: prefix,
      // limits that never refuse: every call does the full work (budget, both buckets) and succeeds
      defaults: {
        requestsPerSecond: 1e9,
        burst: 1e9,
        tokensPerMinute: 1e12,
        monthlyBudgetUsd: 1e9,
      },
    });
    // warm-up: script load (NOSCRIPT → EVAL once), JIT, limits and spend cached
    for (let i = 0; i < 2_000; i++) await redis.ping();
    for (let i = 0; i < 2_000; i++) await limiter.admit('bench', { scope: 'models', tokens: 100 });

    log(`quota check: ${N} PINGs, ${N} admits, ${N} settles`);
    const ping = await timeEach(N, () => redis.ping());
    const reservations = [];
    const admit = await timeEach(N, async () => {
      const d = await limiter.admit('bench', { scope: 'models', tokens: 500 });
      if (!d.allowed || d.degraded) throw new Error(`unexpected refusal: ${JSON.stringify(d)}`);
      reservations.push(d.reservation);
    });
    const settle = await timeEach(N, (i) => limiter.settle(reservations[i], 120));

    // throughput with 64 checks in flight (pipelined on one connection)
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next++ < N) await limiter.admit(`bench-${next % 16}`, { tokens: 10 });
      }),
    );
    const perSecond = Math.round(N / ((performance.now() - t0) / 1000));
    return {
      checks: N,
      ping,
      admit,
      settle,
      concurrentAdmitsPerSecond: perSecond,
      admitOverPingP99: Math.round((admit.p99Ms / ping.p99Ms) * 100) / 100,
      goal: 'admit p99 < 1 ms',
    };
  } finally {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
}
