const FAMILIES = ['requests', 'tokens'] as const;

/** The three `x-ratelimit-*` headers OpenAI sends per limit family. */
const familyHeaders = (family: (typeof FAMILIES)[number]) =>
  [
    `x-ratelimit-limit-${family}`,
    `x-ratelimit-remaining-${family}`,
    `x-ratelimit-reset-${family}`,
  ] as const;

/** A family nobody limits: said as `unlimited` rather than a made-up number. */
const UNLIMITED = (family: (typeof FAMILIES)[number]): Record<string, string> => {
  const [limit, remaining, reset] = familyHeaders(family);
  return { [limit]: 'unlimited', [remaining]: 'unlimited', [reset]: '0s' };
};

/**
 * OpenAI's `x-ratelimit-*` of an answer, per family (requests, tokens): the tenant's own limit
 * (from the quota check) when one is set, since it is the limit the caller is held to; else the
 * serving upstream's, passed through; else `unlimited`.
 */
export function rateLimitHeaders(
  tenant: Record<string, string>,
  upstream: Record<string, string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const family of FAMILIES) {
    const names = familyHeaders(family);
    const from = [tenant, upstream].find((source) => names.some((n) => source[n] !== undefined));
    if (!from) {
      Object.assign(out, UNLIMITED(family));
      continue;
    }
    for (const name of names) {
      const value = from[name];
      if (value !== undefined) out[name] = value;
    }
  }
  return out;
}

/**
 * Headers of every served completion: where it ran, the gateway's own time and the rate limits
 * (see rateLimitHeaders).
 */
export function completionHeaders(
  deployment: string,
  overheadMs: number,
  rateLimit: { tenant: Record<string, string>; upstream?: Record<string, string> },
  attempts = 1,
): Record<string, string> {
  return {
    'x-aob-deployment': deployment,
    // time inside the gateway, upstream time (and backoff waits) excluded; one decimal is plenty
    'x-aob-overhead-ms': String(Math.max(0, Math.round(overheadMs * 10) / 10)),
    'x-aob-attempts': String(attempts),
    ...rateLimitHeaders(rateLimit.tenant, rateLimit.upstream ?? {}),
  };
}
