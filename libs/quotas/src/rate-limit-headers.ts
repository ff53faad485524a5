import { randomInt } from 'node:crypto';
import type { QuotaDecision } from './quota-limiter';

/**
 * IETF `RateLimit-Policy` / `RateLimit` (draft-ietf-httpapi-ratelimit-headers): one policy per
 * limit that was checked. `"burst"` is the request bucket (q = capacity, w = seconds to refill it),
 * `"tpm"` the token bucket. `t` is the seconds until the bucket is full again. Empty when nothing
 * was limited (or the state is unknown).
 */
export function ietfRateLimitHeaders(
  d: QuotaDecision,
  include: { requests?: boolean; tokens?: boolean } = { requests: true },
): Record<string, string> {
  const policies: string[] = [];
  const states: string[] = [];
  if (include.requests !== false && d.requests) {
    const window = Math.max(1, Math.ceil(d.requests.limit / d.limits.requestsPerSecond));
    policies.push(`"burst";q=${d.requests.limit};w=${window}`);
    states.push(`"burst";r=${d.requests.remaining};t=${Math.ceil(d.requests.resetMs / 1000)}`);
  }
  if (include.tokens && d.tokens) {
    policies.push(`"tpm";q=${d.tokens.limit};w=60`);
    states.push(`"tpm";r=${d.tokens.remaining};t=${Math.ceil(d.tokens.resetMs / 1000)}`);
  }
  if (policies.length === 0) return {};
  return { 'RateLimit-Policy': policies.join(', '), RateLimit: states.join(', ') };
}

/**
 * OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (reset as a Go-style duration,
 * `1s`, `6m0s`, `250ms`). Limits are bucket capacities: burst for requests, tokensPerMinute for tokens.
 */
export function openAiRateLimitHeaders(d: QuotaDecision): Record<string, string> {
  const h: Record<string, string> = {};
  if (d.requests) {
    h['x-ratelimit-limit-requests'] = String(d.requests.limit);
    h['x-ratelimit-remaining-requests'] = String(d.requests.remaining);
    h['x-ratelimit-reset-requests'] = goDuration(d.requests.resetMs);
  }
  if (d.tokens) {
    h['x-ratelimit-limit-tokens'] = String(d.tokens.limit);
    h['x-ratelimit-remaining-tokens'] = String(d.tokens.remaining);
    h['x-ratelimit-reset-tokens'] = goDuration(d.tokens.resetMs);
  }
  return h;
}

/**
 * Seconds for `Retry-After`: the wait the bucket needs plus random jitter (up to half the wait, at
 * least up to a second), so rejected clients do not all come back in the same instant.
 */
export function jitteredRetryAfterSeconds(
  retryAfterMs: number,
  random: (maxMs: number) => number = defaultJitter,
): number {
  const base = Math.max(0, retryAfterMs);
  const jitter = random(Math.max(1_000, Math.round(base / 2)));
  return Math.max(1, Math.ceil((base + jitter) / 1000));
}

const defaultJitter = (maxMs: number) => randomInt(0, maxMs + 1);

/** 1500 → "1.5s", 360000 → "6m0s", 20 → "20ms". */
export function goDuration(ms: number): string {
  const v = Math.max(0, Math.round(ms));
  if (v < 1000) return `${v}ms`;
  const totalSeconds = v / 1000;
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = Math.round((totalSeconds % 60) * 1000) / 1000;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
