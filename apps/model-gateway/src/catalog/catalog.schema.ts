import { z } from 'zod';

/** Providers the catalog may name (CONTRACT.md section 7). Only `local` is served so far. */
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

export const deploymentSchema = z.strictObject({
  /** Unique; what `x-aob-deployment` and usage records report. */
  name: z.string().regex(DEPLOYMENT_NAME, 'must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}'),
  provider: z.enum(PROVIDER_KINDS),
  /** The upstream's model id; the `model` field of responses. */
  model: z.string().min(1).max(200),
  /** openai/anthropic only: the upstream's base URL. */
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
  /** In-flight requests this deployment takes (enforced with routing, in a later version). @default 64 */
  maxConcurrency: z.number().int().positive().default(64),
  /** Upper bound of one upstream call. @default 30000 */
  timeoutMs: z.number().int().positive().default(30_000),
  simulate: simulationSchema.prefault({}),
});
export type Deployment = z.infer<typeof deploymentSchema>;

export const catalogSchema = z
  .strictObject({
    deployments: z.array(deploymentSchema).min(1, 'the catalog needs at least one deployment'),
    /** model reference → references tried in order when it fails (used by the routing version). */
    fallbacks: z.record(z.string(), z.array(z.string()).min(1)).default({}),
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
    catalog.deployments.forEach((d, i) => {
      d.aliases.forEach((alias, j) => {
        const path = ['deployments', i, 'aliases', j];
        if (alias.startsWith(TIER_PREFIX)) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `"${alias}": aliases may not start with "${TIER_PREFIX}"`,
          });
          return;
        }
        const taken = owner.get(alias);
        if (alias === d.name) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `"${alias}" is already the deployment's name`,
          });
        } else if (taken === d.name) {
          ctx.addIssue({ code: 'custom', path, message: `duplicate alias "${alias}"` });
        } else if (taken !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path,
            message: `"${alias}" already names deployment "${taken}"`,
          });
        }
        if (taken === undefined) owner.set(alias, d.name);
      });
    });
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
  });

export type Catalog = z.infer<typeof catalogSchema>;
