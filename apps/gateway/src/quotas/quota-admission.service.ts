import { Injectable } from '@nestjs/common';
import { ietfRateLimitHeaders, jitteredRetryAfterSeconds, QuotaLimiter } from '@aob/quotas';
import { QuotaRejectedException } from './quota-rejected.exception';

/** The gateway's request bucket: runs submitted per tenant. */
export const RUNS_SCOPE = 'runs';

/**
 * Admission of POST /v1/runs: one Redis round trip takes a request from the tenant's bucket and
 * checks the month's budget. Returns the RateLimit headers of the answer or throws
 * QuotaRejectedException (429 with jittered Retry-After, 402 over budget, 503 when failing closed).
 */
@Injectable()
export class QuotaAdmissionService {
  constructor(private readonly limiter: QuotaLimiter) {}

  async admit(tenantId: string): Promise<Record<string, string>> {
    const d = await this.limiter.admit(tenantId, { scope: RUNS_SCOPE });
    const headers = ietfRateLimitHeaders(d);
    if (d.allowed) return headers;
    if (d.reason === 'budget') {
      throw new QuotaRejectedException(
        'BudgetExceeded',
        `the monthly budget of ${d.limits.monthlyBudgetUsd} USD is used up (${round(d.budget?.spentUsd ?? 0)} USD this month)`,
        headers,
        {
          limit: 'monthlyBudgetUsd',
          budgetUsd: d.limits.monthlyBudgetUsd,
          spentUsd: round(d.budget?.spentUsd ?? 0),
        },
      );
    }
    const retryAfter = jitteredRetryAfterSeconds(d.retryAfterMs ?? 1_000);
    if (d.reason === 'unavailable') {
      throw new QuotaRejectedException(
        'Unavailable',
        'quota state is unavailable and QUOTA_FAIL_MODE is closed; retry later',
        { ...headers, 'Retry-After': String(retryAfter) },
        { retryAfterSeconds: retryAfter },
      );
    }
    throw new QuotaRejectedException(
      'QuotaExceeded',
      `too many requests: at most ${d.limits.requestsPerSecond}/s with bursts of ${d.requests?.limit ?? d.limits.burst}`,
      { ...headers, 'Retry-After': String(retryAfter) },
      { limit: 'requestsPerSecond', retryAfterSeconds: retryAfter },
    );
  }
}

const round = (usd: number) => Math.round(usd * 1e6) / 1e6;
