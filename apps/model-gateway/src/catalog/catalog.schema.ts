import { z } from 'zod';

/** Providers the catalog may name (CONTRACT.md section 7). */
export const PROVIDER_KINDS = ['local', 'openai', 'anthropic'] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

export const TIERS = ['fast', 'balanced', 'quality'] as const;
export type Tier = (typeof TIERS)[number];

/** `tier:fast` etc.: what clients (and the executor, by default) ask for instead of a model name. */
export const TIER_PREFIX = 'tier:';
export const tierRef = (tier: Tier) => `${TIER_PREFIX}${tier}`;

/** Deployment names end up in headers, metric labels and usage records: keep them plain. */
const DEPLOYMENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Aliases are model names clients send (`gpt-4o`, `meta-llama/Llama-3.1-8B`, `ft:gpt-4o:acme`). */
const ALIAS = /^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$/;
const ENV_VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** How the `local` provider imitates a model. Ignored by the other providers. */
export const simulationSchema = z.strictObject({
  /** Time to first token, in milliseconds. @default 30 */
  ttftMs: z.number().int().nonnegative().max(600_000).default(30),
  /** Generation speed after the first token. @default 400 */
  tokensPerSecond: z.number().positive().max(1_000_000).default(400),
  /** Natural length of an answer, in tokens, when the client sets no lower max_tokens. @default 256 */
  maxOutputTokens: z.number().int().positive().max(100_000).default(256),
});
export type Simulation = z.infer<typeof simulationSchema>;

/** How one group of deployments (a tier, or an alias several deployments share) is ranked. */
export const ROUTING_STRATEGIES = ['cost', 'latency', 'least-busy'] as const;
export type RoutingStrategy = (typeof ROUTING_STRATEGIES)[number];

export const routingGroupSchema = z.strictObject({
  /**
   * `cost`: cheapest first (input + output price); `latency`: lowest EWMA time to first token
   * first (unmeasured deployments first, so they get measured); `least-busy`: lowest
   * in-flight / maxConcurrency first. @default 'cost'
   */
  strategy: z.enum(ROUTING_STRATEGIES).default('cost'),
});
export type RoutingGroup = z.infer<typeof routingGroupSchema>;

/** Retries of one deployment before the next candidate is tried. */
export const retrySchema = z.strictObject({
  /** Retries after the first attempt (0: none). @default 1 */
  maxRetries: z.number().int().min(0).max(10).default(1),
  /** First backoff; doubles per retry, with full jitter. @default 100 */
  baseDelayMs: z.number().int().nonnegative().max(60_000).default(100),
  /** Cap of one backoff, and the longest upstream `Retry-After` waited for: a longer one moves on to the next candidate. @default 2000 */
  maxDelayMs: z.number().int().nonnegative().max(300_000).default(2_000),
});

/** Per-deployment circuit breaker: out of rotation after consecutive failures, tested again later. */
export const circuitBreakerSchema = z.strictObject({
  /** Consecutive failed calls that open the circuit. @default 5 */
  consecutiveFailures: z.number().int().positive().max(1_000).default(5),
  /** How long an open circuit refuses calls before one test call is let through. @default 10000 */
  halfOpenAfterMs: z.number().int().positive().max(3_600_000).default(10_000),
});

/** Background probe of an upstream (openai/anthropic only). */
export const healthCheckSchema = z.strictObject({
  /**
   * Path on the upstream's origin, e.g. `/health` (vLLM, llama.cpp). @default the models list:
   * `<baseUrl path>/models` for openai, `/v1/models` for anthropic
   */
  path: z.string().startsWith('/').optional(),
  /** @default 5000 */
  intervalMs: z.number().int().min(10).max(3_600_000).default(5_000),
  /** A probe slower than this failed. @default 2000 */
  timeoutMs: z.number().int().positive().max(60_000).default(2_000),
  /** Failed probes in a row that take the deployment out of rotation (one success brings it back). @default 2 */
  unhealthyAfter: z.number().int().positive().max(100).default(2),
});

export const deploymentSchema = z.strictObject({
  /** Unique; what `x-aob-deployment` and usage records report. */
  name: z.string().regex(DEPLOYMENT_NAME, 'must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}'),
  provider: z.enum(PROVIDER_KINDS),
  /** The upstream's model id; the `model` field of responses. */
  model: z.string().min(1).max(200),
  /**
   * openai/anthropic only: the upstream's base URL. @default https://api.openai.com/v1 (openai),
   * https://api.anthropic.com (anthropic; `/v1/messages` is appended unless it ends in `/v1`)
   */
  baseUrl: z.url().optional(),
  /** Name of the environment variable that holds the upstream's API key. */
  apiKeyEnv: z.string().regex(ENV_VAR, 'must be an environment variable name').optional(),
  tier: z.enum(TIERS).optional(),
  /** Other names clients may ask for. */
  aliases: z
    .array(z.string().regex(ALIAS, 'must match [A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}'))
    .default([]),
  /** USD per million prompt tokens. */
  inputCostPer1M: z.number().nonnegative(),
  /** USD per million completion tokens. */
  outputCostPer1M: z.number().nonnegative(),
  /** In-flight requests this deployment takes (a bulkhead: more are turned to the next candidate). @default 64 */
  maxConcurrency: z.number().int().positive().default(64),
  /**
   * Upper bound of one upstream attempt: the whole response when not streamed; the first token,
   * then every gap between chunks, when streamed. @default 30000
   */
  timeoutMs: z.number().int().positive().default(30_000),
  /** Prompt + max_tokens this deployment accepts; a larger request goes to one that fits. @default unlimited */
  contextWindow: z.number().int().positive().optional(),
  /**
   * Completion tokens assumed when the client sets no max_tokens (cost estimates for
   * `x-aob-max-cost-usd`; anthropic's required `max_tokens`). @default simulate.maxOutputTokens
   * for local, 4096 otherwise
   */
  maxOutputTokens: z.number().int().positive().optional(),
  retry: retrySchema.prefault({}),
  circuitBreaker: circuitBreakerSchema.prefault({}),
  /** `false` turns the background probe off. @default probes on, for openai/anthropic */
  healthCheck: z.union([z.literal(false), healthCheckSchema]).prefault({}),
  simulate: simulationSchema.prefault({}),
});
export type Deployment = z.infer<typeof deploymentSchema>;

export const catalogSchema = z
  .strictObject({
    deployments: z.array(deploymentSchema).min(1, 'the catalog needs at least one deployment'),
    /** model reference → references tried in order when all its deployments fail or are out of rotation. */
    fallbacks: z.record(z.string(), z.array(z.string()).min(1)).default({}),
    /** `tier:<tier>` or a shared alias → how its deployments are ranked. Unlisted groups: `cost`. */
    routing: z.record(z.string(), routingGroupSchema).default({}),
  })
  .superRefine((catalog, ctx) => {
    const owner = new Map<string, string>();
    catalog.deployments.forEach((d, i) => {
      if (owner.has(d.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['deployments', i, 'name'],
          message: `duplicate deployment name "${d.name}"`,
        });
      }
      owner.set(d.name, d.name);
    });
    // an alias several deployments share is a group, routed like a tier; it may not shadow a name
    const aliasOwners = new Map<string, string[]>();
    catalog.deployments.forEach((d, i) => {
      d.aliases.forEach((alias, j) => {
        const path = ['deployments', i, 'aliases', j];
        if (alias.startsWith(TIER_PREFIX)) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `"${alias}": aliases may not start with "${TIER_PREFIX}"`,
          });
        } else if (alias === d.name) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `"${alias}" is already the deployment's name`,
          });
        } else if (owner.has(alias)) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `"${alias}" is the name of deployment "${alias}"`,
          });
        } else if (aliasOwners.get(alias)?.includes(d.name)) {
          ctx.addIssue({ code: 'custom', path, message: `duplicate alias "${alias}"` });
        } else {
          aliasOwners.set(alias, [...(aliasOwners.get(alias) ?? []), d.name]);
        }
      });
    });
    for (const alias of aliasOwners.keys()) owner.set(alias, alias);
    const tiers = new Set(catalog.deployments.flatMap((d) => (d.tier ? [tierRef(d.tier)] : [])));
    const known = (ref: string) => owner.has(ref) || tiers.has(ref);
    for (const [from, targets] of Object.entries(catalog.fallbacks)) {
      if (!known(from)) {
        ctx.addIssue({
          code: 'custom',
          path: ['fallbacks', from],
          message: `"${from}" names no deployment, alias or served tier`,
        });
      }
      targets.forEach((to, k) => {
        if (!known(to)) {
          ctx.addIssue({
            code: 'custom',
            path: ['fallbacks', from, k],
            message: `"${to}" names no deployment, alias or served tier`,
          });
        }
      });
    }
    for (const ref of Object.keys(catalog.routing)) {
      if (!tiers.has(ref) && !aliasOwners.has(ref)) {
        ctx.addIssue({
          code: 'custom',
          path: ['routing', ref],
          message: `"${ref}" names no served tier or alias`,
        });
      }
    }
  });

export type Catalog = z.infer<typeof catalogSchema>;
