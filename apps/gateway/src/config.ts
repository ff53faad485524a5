import { z } from 'zod';
import { authEnvSchema } from '@aob/auth';
import { baseEnvSchema, durationMs, loadConfig } from '@aob/config';
import { quotaEnvShape } from '@aob/quotas';

const commaList = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  );

export const gatewayEnvSchema = baseEnvSchema.extend({
  /** OIDC_ISSUER_URL, OIDC_AUDIENCE, OIDC_TENANT_CLAIM, OIDC_ROLES_CLAIM, API_KEY_CACHE_MS ... (libs/auth). */
  ...authEnvSchema.shape,
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  /** Browser origins allowed by CORS (comma-separated); empty = CORS off. */
  CORS_ORIGINS: commaList,
  /** Postgres pool size of this process. */
  DB_POOL_SIZE: z.coerce.number().int().positive().default(10),
  /** Sent outbox rows are deleted after this many hours. */
  OUTBOX_RETENTION_HOURS: z.coerce.number().positive().default(24),
  /** The relay looks for unsent outbox rows at least this often (it is also kicked after each submission). */
  OUTBOX_POLL_MS: durationMs(1_000),
  /** Rows the relay publishes per transaction. */
  OUTBOX_BATCH_SIZE: z.coerce.number().int().positive().max(10_000).default(200),
  /** Interval of SSE `: keep-alive` comments (proxies close idle streams). */
  SSE_KEEPALIVE_MS: durationMs(15_000),
  /** Key prefix of the Redis run streams; must match the agent executor's. */
  RUN_STREAM_KEY_PREFIX: z.string().min(1).default('aob'),
  /** How long the agent list (and its compiled input schemas) is cached. */
  AGENTS_CACHE_MS: durationMs(5_000),
  /** Status events projected at once. */
  PROJECTION_CONCURRENCY: z.coerce.number().int().positive().max(1_000).default(16),
  /** QUOTA_DEFAULT_RPS, QUOTA_DEFAULT_BURST, QUOTA_DEFAULT_TPM, QUOTA_DEFAULT_MONTHLY_BUDGET_USD, QUOTA_FAIL_MODE ... (libs/quotas). */
  ...quotaEnvShape,
});

export type GatewayConfig = Readonly<z.infer<typeof gatewayEnvSchema>>;

/** Parses the environment once, at start-up. */
export function loadGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  return loadConfig(gatewayEnvSchema, env);
}

/** Nest injection token of the GatewayConfig. */
export const GATEWAY_CONFIG = Symbol('GATEWAY_CONFIG');
