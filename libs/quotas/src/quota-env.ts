import { z } from 'zod';
import type { QuotaLimits } from './quota-limits';

const nonNegative = (fallback: number) =>
  z.coerce.number().finite().nonnegative().default(fallback);

/**
 * Quota variables shared by every app that checks or feeds quotas (gateway, model gateway,
 * metering): spread into the app's env schema with `baseEnvSchema.extend({...quotaEnvShape})`.
 * Defaults of 0 mean unlimited.
 */
export const quotaEnvShape = {
  /** Requests per second per tenant (token-bucket rate). 0 or unset = unlimited. */
  QUOTA_DEFAULT_RPS: nonNegative(0),
  /** Bucket capacity. 0 or unset = max(1, ceil(QUOTA_DEFAULT_RPS)). */
  QUOTA_DEFAULT_BURST: z.coerce.number().int().nonnegative().default(0),
  /** Model tokens per minute per tenant. 0 or unset = unlimited. */
  QUOTA_DEFAULT_TPM: z.coerce.number().int().nonnegative().default(0),
  /** USD per calendar month (UTC) per tenant. 0 or unset = unlimited. */
  QUOTA_DEFAULT_MONTHLY_BUDGET_USD: nonNegative(0),
  /** When Redis cannot answer: `open` admits (and counts it), `closed` refuses with 503. */
  QUOTA_FAIL_MODE: z.enum(['open', 'closed']).default('open'),
  /** Redis/Dragonfly of quota state. @default REDIS_URL */
  QUOTA_REDIS_URL: z.string().min(1).optional(),
  /**
   * A quota command waits at most this long for Redis before the fail mode applies. Not lower
   * than a GC pause or a busy event loop: a timer that fires before the waiting reply is read
   * counts as a failure although Redis answered.
   */
  QUOTA_REDIS_TIMEOUT_MS: z.coerce.number().int().positive().max(10_000).default(250),
  /** First segment of quota keys: `<prefix>:q:{<tenant>}:...`. */
  QUOTA_KEY_PREFIX: z.string().min(1).default('aob'),
  /** Tenant overrides are cached in Redis this long (a PUT replaces the cache at once). */
  QUOTA_LIMITS_CACHE_SECONDS: z.coerce.number().int().positive().default(60),
  /** The month's spend counter is rebuilt from Postgres at least this often. */
  QUOTA_SPEND_RESYNC_SECONDS: z.coerce.number().int().positive().default(300),
  /**
   * Lifetime of a quota lease at the model gateway: a tenant calling models steadily gets a small
   * local allowance (at most 10 % of each bucket, sized after its recent demand) and most of its
   * calls are admitted without a Redis round trip; what a lease did not use goes back when it ends.
   * Totals stay exact (a lease is taken from the buckets); a PUT of the tenant's limits ends its
   * leases on every replica at once. 0 = one round trip per call.
   */
  QUOTA_LEASE_MS: z.coerce.number().int().nonnegative().max(10_000).default(100),
  /** Fraction of the monthly budget at which the one-per-month warning event is published. */
  QUOTA_BUDGET_WARNING_FRACTION: z.coerce.number().positive().max(1).default(0.8),
};

export type QuotaEnv = z.infer<z.ZodObject<typeof quotaEnvShape>>;

/** The default limits an env describes. */
export function defaultLimitsFromEnv(env: QuotaEnv): QuotaLimits {
  return {
    requestsPerSecond: env.QUOTA_DEFAULT_RPS,
    burst: env.QUOTA_DEFAULT_BURST,
    tokensPerMinute: env.QUOTA_DEFAULT_TPM,
    monthlyBudgetUsd: env.QUOTA_DEFAULT_MONTHLY_BUDGET_USD,
  };
}
