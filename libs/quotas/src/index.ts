export {
  QUOTA_FIELDS,
  effectiveBurst,
  effectiveLimits,
  quotaOverridesSchema,
  type QuotaLimits,
  type QuotaOverrides,
} from './quota-limits';
export { quotaEnvShape, defaultLimitsFromEnv, type QuotaEnv } from './quota-env';
export { billingPeriod, billingPeriodOf, type BillingPeriod } from './billing-period';
export {
  QuotaLimiter,
  type AdmitOptions,
  type BucketState,
  type BudgetNotification,
  type QuotaDecision,
  type QuotaLimiterOptions,
  type QuotaRejection,
  type QuotaStore,
  type TokenReservation,
} from './quota-limiter';
export {
  ietfRateLimitHeaders,
  openAiRateLimitHeaders,
  jitteredRetryAfterSeconds,
  goDuration,
} from './rate-limit-headers';
export { connectQuotaRedis, type QuotaRedisOptions } from './quota-redis';
export { QuotaRepository } from './quota.repository';
export { budgetEventId, publishBudgetNotification } from './budget-events';
export { ModelQuotaGuard, estimatePromptTokens, type ModelAdmission } from './model-quota-guard';
export {
  QuotaModule,
  QUOTA_REDIS,
  QUOTA_INVALIDATIONS,
  type QuotaModuleOptions,
} from './quota.module';
