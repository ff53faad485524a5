import { z } from 'zod';
import { baseEnvSchema, loadConfig } from '@aob/config';

export const modelGatewayEnvSchema = baseEnvSchema.extend({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8081),
  /** Path of the model catalog (YAML, or JSON by its `.json` name). @default the packaged catalog/default.yaml */
  MODEL_CATALOG: z.string().min(1).optional(),
  /** Usage events held in memory while JetStream does not answer. @default 10000 */
  USAGE_QUEUE_MAX: z.coerce.number().int().positive().default(10_000),
});

export type ModelGatewayConfig = z.infer<typeof modelGatewayEnvSchema>;

export const loadModelGatewayConfig = (env: NodeJS.ProcessEnv = process.env) =>
  loadConfig(modelGatewayEnvSchema, env);
