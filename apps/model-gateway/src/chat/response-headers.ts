/**
 * OpenAI's rate-limit headers when the upstream sent none (the local model, or a server without
 * limits). The gateway enforces no per-tenant quota itself, and says so: the limits read
 * `unlimited` rather than a made-up number.
 */
export const RATE_LIMIT_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-ratelimit-limit-requests': 'unlimited',
  'x-ratelimit-remaining-requests': 'unlimited',
  'x-ratelimit-reset-requests': '0s',
  'x-ratelimit-limit-tokens': 'unlimited',
  'x-ratelimit-remaining-tokens': 'unlimited',
  'x-ratelimit-reset-tokens': '0s',
});

/**
 * Headers of every served completion. `upstreamRateLimit` (the serving upstream's
 * `x-ratelimit-*`) replaces the `unlimited` defaults when the upstream sent any.
 */
export function completionHeaders(
  deployment: string,
  overheadMs: number,
  upstreamRateLimit: Record<string, string> = {},
  attempts = 1,
): Record<string, string> {
  const rateLimit =
    Object.keys(upstreamRateLimit).length > 0 ? upstreamRateLimit : RATE_LIMIT_HEADERS;
  return {
    'x-aob-deployment': deployment,
    // time inside the gateway, upstream time (and backoff waits) excluded; one decimal is plenty
    'x-aob-overhead-ms': String(Math.max(0, Math.round(overheadMs * 10) / 10)),
    'x-aob-attempts': String(attempts),
    ...rateLimit,
  };
}
