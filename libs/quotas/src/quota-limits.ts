import { z } from 'zod';

/** A tenant's effective limits. 0 = unlimited. */
export interface QuotaLimits {
  /** Token-bucket refill rate of requests. */
  requestsPerSecond: number;
  /** Token-bucket capacity; 0 with a rate = max(1, ceil(requestsPerSecond)). */
  burst: number;
  /** Model tokens (prompt + completion) per minute, reserved before a model call and settled after. */
  tokensPerMinute: number;
  /** Cost (USD, catalog prices) per UTC calendar month. */
  monthlyBudgetUsd: number;
}

export const QUOTA_FIELDS = [
  'requestsPerSecond',
  'burst',
  'tokensPerMinute',
  'monthlyBudgetUsd',
] as const;

/** Stored overrides of one tenant: a missing or null field means the environment's default. */
export type QuotaOverrides = { [K in keyof QuotaLimits]?: number | null };

const limitValue = z.number().finite().nonnegative().nullable().optional();

/** Body of `PUT /v1/tenants/:tenantId/quotas`: every field optional, null or omitted = default. */
export const quotaOverridesSchema = z
  .object({
    requestsPerSecond: limitValue,
    burst: z.number().int().nonnegative().max(1_000_000).nullable().optional(),
    tokensPerMinute: z.number().int().nonnegative().nullable().optional(),
    monthlyBudgetUsd: limitValue,
  })
  .strict();

/** Overrides on top of defaults. */
export function effectiveLimits(
  defaults: QuotaLimits,
  overrides: QuotaOverrides | null,
): QuotaLimits {
  const pick = (k: keyof QuotaLimits) => overrides?.[k] ?? defaults[k];
  return {
    requestsPerSecond: pick('requestsPerSecond'),
    burst: pick('burst'),
    tokensPerMinute: pick('tokensPerMinute'),
    monthlyBudgetUsd: pick('monthlyBudgetUsd'),
  };
}

/** The burst a bucket really gets: an unset burst with a rate means one second's worth (at least 1). */
export function effectiveBurst(limits: QuotaLimits): number {
  if (limits.requestsPerSecond <= 0) return 0;
  return limits.burst >= 1 ? limits.burst : Math.max(1, Math.ceil(limits.requestsPerSecond));
}
