import {
  goDuration,
  ietfRateLimitHeaders,
  jitteredRetryAfterSeconds,
  openAiRateLimitHeaders,
} from './rate-limit-headers';
import type { QuotaDecision } from './quota-limiter';
import { billingPeriod, billingPeriodOf } from './billing-period';
import { effectiveLimits } from './quota-limits';
import { estimatePromptTokens } from './model-quota-guard';

const decision: QuotaDecision = {
  allowed: false,
  reason: 'requests',
  retryAfterMs: 400,
  limits: { requestsPerSecond: 10, burst: 20, tokensPerMinute: 6000, monthlyBudgetUsd: 0 },
  requests: { limit: 20, remaining: 0, resetMs: 2000 },
  tokens: { limit: 6000, remaining: 5400, resetMs: 6000 },
};

describe('rate-limit headers', () => {
  it('writes IETF RateLimit-Policy and RateLimit for the request bucket', () => {
    expect(ietfRateLimitHeaders(decision)).toEqual({
      'RateLimit-Policy': '"burst";q=20;w=2',
      RateLimit: '"burst";r=0;t=2',
    });
    expect(ietfRateLimitHeaders(decision, { requests: true, tokens: true })).toEqual({
      'RateLimit-Policy': '"burst";q=20;w=2, "tpm";q=6000;w=60',
      RateLimit: '"burst";r=0;t=2, "tpm";r=5400;t=6',
    });
    expect(
      ietfRateLimitHeaders({ allowed: true, limits: { ...decision.limits, requestsPerSecond: 0 } }),
    ).toEqual({});
  });

  it("writes OpenAI's x-ratelimit-* headers", () => {
    expect(openAiRateLimitHeaders(decision)).toEqual({
      'x-ratelimit-limit-requests': '20',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '2s',
      'x-ratelimit-limit-tokens': '6000',
      'x-ratelimit-remaining-tokens': '5400',
      'x-ratelimit-reset-tokens': '6s',
    });
  });

  it('formats durations the way OpenAI does', () => {
    expect(goDuration(20)).toBe('20ms');
    expect(goDuration(1500)).toBe('1.5s');
    expect(goDuration(360_000)).toBe('6m0s');
    expect(goDuration(3_723_000)).toBe('1h2m3s');
  });

  it('jitters Retry-After upwards, never below the wait nor below 1 s', () => {
    expect(jitteredRetryAfterSeconds(400, () => 0)).toBe(1);
    expect(jitteredRetryAfterSeconds(400, (max) => max)).toBe(2);
    expect(jitteredRetryAfterSeconds(10_000, (max) => max)).toBe(15);
    const seen = new Set(Array.from({ length: 200 }, () => jitteredRetryAfterSeconds(3_000)));
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(3);
    expect(seen.size).toBeGreaterThan(1);
  });
});

describe('limits and periods', () => {
  it('overrides win over defaults field by field; null means the default', () => {
    const d = { requestsPerSecond: 5, burst: 10, tokensPerMinute: 1000, monthlyBudgetUsd: 50 };
    expect(effectiveLimits(d, { burst: 3, tokensPerMinute: null, monthlyBudgetUsd: 0 })).toEqual({
      requestsPerSecond: 5,
      burst: 3,
      tokensPerMinute: 1000,
      monthlyBudgetUsd: 0,
    });
    expect(effectiveLimits(d, null)).toEqual(d);
  });

  it('billing periods are UTC calendar months', () => {
    const p = billingPeriod(new Date('2025-12-31T23:59:59.999Z'));
    expect(p.id).toBe('2025-12');
    expect(p.end.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(billingPeriodOf('2025-02').start.toISOString()).toBe('2025-02-01T00:00:00.000Z');
    expect(() => billingPeriodOf('2025-13')).toThrow('invalid billing period');
  });

  it('estimates prompt tokens generously', () => {
    const messages = [{ role: 'user', content: 'x'.repeat(300) }];
    expect(estimatePromptTokens(messages)).toBeGreaterThanOrEqual(300 / 4);
    expect(estimatePromptTokens(undefined)).toBe(0);
  });
});
