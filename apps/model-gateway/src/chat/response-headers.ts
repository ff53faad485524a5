/**
 * OpenAI's rate-limit headers. This version enforces no quota, and says so: the limits read
 * `unlimited` rather than a made-up number. Per-tenant limits arrive with the quotas issue
 * (metering), and these headers will then carry real figures.
 */
export const RATE_LIMIT_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-ratelimit-limit-requests': 'unlimited',
  'x-ratelimit-remaining-requests': 'unlimited',
  'x-ratelimit-reset-requests': '0s',
  'x-ratelimit-limit-tokens': 'unlimited',
  'x-ratelimit-remaining-tokens': 'unlimited',
  'x-ratelimit-reset-tokens': '0s',
});

/** Headers of every served completion. */
export function completionHeaders(deployment: string, overheadMs: number): Record<string, string> {
  return {
    'x-aob-deployment': deployment,
    // time inside the gateway, the provider's own time excluded; one decimal is plenty
    'x-aob-overhead-ms': String(Math.max(0, Math.round(overheadMs * 10) / 10)),
    ...RATE_LIMIT_HEADERS,
  };
}
