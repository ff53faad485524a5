import type { QuotaDecision, QuotaLimiter } from './quota-limiter';
import { jitteredRetryAfterSeconds, openAiRateLimitHeaders } from './rate-limit-headers';

/** The parts of an OpenAI chat request the worst case is computed from. */
export interface ModelRequestShape {
  messages?: unknown;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
}

/** An OpenAI-shaped refusal. */
export interface ModelQuotaError {
  status: 400 | 402 | 429 | 503;
  body: { error: { message: string; type: string; code: string } };
  /** Jittered seconds for Retry-After (429/503). */
  retryAfterSeconds?: number;
}

export interface ModelAdmission {
  allowed: boolean;
  decision: QuotaDecision;
  /** x-ratelimit-* headers for the response (success or refusal). */
  headers: Record<string, string>;
  /** Set when refused: send it as is (with Retry-After when present). */
  error?: ModelQuotaError;
  /** Tokens reserved for this request (0 when tokens are unlimited). */
  reservedTokens: number;
  /**
   * Settles the reservation to the real usage (prompt + completion tokens; 0 when the upstream
   * was never reached). Call exactly once when the request ends, streamed or not; later calls do nothing.
   */
  settle(actualTokens: number): Promise<void>;
}

export interface ModelQuotaGuardOptions {
  /** Request bucket of model calls (separate from the gateway's `runs`). @default 'models' */
  scope?: string;
  /** Completion tokens assumed when the request sets no max_tokens. @default 4096 */
  defaultMaxTokens?: number;
}

/**
 * Rough upper estimate of prompt tokens: one token per 3 characters of the messages' JSON plus 4
 * per message. Only the worst case is reserved with it; settle() corrects to the real count.
 */
export function estimatePromptTokens(messages: unknown): number {
  if (!Array.isArray(messages)) return 0;
  const chars = JSON.stringify(messages).length;
  return Math.ceil(chars / 3) + 4 * messages.length;
}

/**
 * The model gateway's side of quotas: per request, one round trip takes a request from the
 * tenant's `models` bucket, reserves prompt estimate + max_tokens from tokensPerMinute and checks
 * the monthly budget; the answer carries OpenAI's rate-limit headers; settle() gives back what the
 * request did not use.
 */
export class ModelQuotaGuard {
  private readonly scope: string;
  private readonly defaultMaxTokens: number;

  constructor(
    private readonly limiter: QuotaLimiter,
    opts: ModelQuotaGuardOptions = {},
  ) {
    this.scope = opts.scope ?? 'models';
    this.defaultMaxTokens = opts.defaultMaxTokens ?? 4096;
  }

  /** Worst-case tokens of a request. */
  worstCaseTokens(req: ModelRequestShape): number {
    const max = req.max_completion_tokens ?? req.max_tokens ?? this.defaultMaxTokens;
    return estimatePromptTokens(req.messages) + Math.max(0, Math.ceil(max));
  }

  async admit(tenantId: string, req: ModelRequestShape): Promise<ModelAdmission> {
    const worst = this.worstCaseTokens(req);
    const decision = await this.limiter.admit(tenantId, {
      scope: this.scope,
      requests: 1,
      tokens: worst,
      // served from a local lease when the limiter has leases on (QUOTA_LEASE_MS)
      lease: true,
    });
    const headers = openAiRateLimitHeaders(decision);
    const reservation = decision.reservation;
    let settled = false;
    const settle = async (actual: number) => {
      if (settled || !reservation) return;
      settled = true;
      await this.limiter.settle(reservation, actual);
    };
    const admission: ModelAdmission = {
      allowed: decision.allowed,
      decision,
      headers,
      reservedTokens: reservation?.tokens ?? 0,
      settle,
    };
    if (!decision.allowed) admission.error = refusal(decision, worst);
    return admission;
  }
}

function refusal(d: QuotaDecision, worst: number): ModelQuotaError {
  const retry = () => jitteredRetryAfterSeconds(d.retryAfterMs ?? 1_000);
  switch (d.reason) {
    case 'requests':
      return {
        status: 429,
        retryAfterSeconds: retry(),
        body: {
          error: {
            message: `Rate limit reached for requests (burst ${d.requests?.limit ?? 0}, ${d.limits.requestsPerSecond}/s)`,
            type: 'requests',
            code: 'rate_limit_exceeded',
          },
        },
      };
    case 'tokens':
      return {
        status: 429,
        retryAfterSeconds: retry(),
        body: {
          error: {
            message: `Rate limit reached for tokens per minute (limit ${d.limits.tokensPerMinute}, requested ${worst})`,
            type: 'tokens',
            code: 'rate_limit_exceeded',
          },
        },
      };
    case 'too-large':
      return {
        status: 400,
        body: {
          error: {
            message: `Request too large: its worst case of ${worst} tokens (prompt estimate + max_tokens) exceeds the tenant's limit of ${d.limits.tokensPerMinute} tokens per minute; lower max_tokens`,
            type: 'invalid_request_error',
            code: 'tokens_exceed_limit',
          },
        },
      };
    case 'budget':
      return {
        status: 402,
        body: {
          error: {
            message: `Monthly budget of ${d.limits.monthlyBudgetUsd} USD is used up`,
            type: 'insufficient_quota',
            code: 'insufficient_quota',
          },
        },
      };
    default:
      return {
        status: 503,
        retryAfterSeconds: retry(),
        body: {
          error: {
            message: 'Quota state is unavailable (QUOTA_FAIL_MODE=closed)',
            type: 'server_error',
            code: 'quota_unavailable',
          },
        },
      };
  }
}
