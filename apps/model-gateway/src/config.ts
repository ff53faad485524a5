import { z } from 'zod';
import { authEnvSchema } from '@aob/auth';
import { baseEnvSchema, loadConfig } from '@aob/config';
import { quotaEnvShape } from '@aob/quotas';

export const modelGatewayEnvSchema = baseEnvSchema.extend({
  /** OIDC_ISSUER_URL, OIDC_AUDIENCE, OIDC_TENANT_CLAIM, OIDC_ROLES_CLAIM, API_KEY_CACHE_MS ... (libs/auth). */
  ...authEnvSchema.shape,
  PORT: z.coerce.number().int().min(0).max(65_535).default(8081),
  /** Path of the model catalog (YAML, or JSON by its `.json` name). @default the packaged catalog/default.yaml */
  MODEL_CATALOG: z.string().min(1).optional(),
  /** Usage events held in memory while JetStream does not answer. @default 10000 */
  USAGE_QUEUE_MAX: z.coerce.number().int().positive().default(10_000),
  /** Postgres pool size of this process (stored API keys, audit log, quota overrides). */
  DB_POOL_SIZE: z.coerce.number().int().positive().default(4),
  /** QUOTA_DEFAULT_RPS, QUOTA_DEFAULT_BURST, QUOTA_DEFAULT_TPM, QUOTA_DEFAULT_MONTHLY_BUDGET_USD, QUOTA_FAIL_MODE ... (libs/quotas). */
  ...quotaEnvShape,
});

export type ModelGatewayConfig = z.infer<typeof modelGatewayEnvSchema>;

export const loadModelGatewayConfig = (env: NodeJS.ProcessEnv = process.env) =>
  loadConfig(modelGatewayEnvSchema, env);
