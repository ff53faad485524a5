import { z } from 'zod';
import { baseEnvSchema, loadConfig } from '@aob/config';

export const meteringEnvSchema = baseEnvSchema.extend({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8082),
});

export type MeteringConfig = z.infer<typeof meteringEnvSchema>;

export const loadMeteringConfig = (env: NodeJS.ProcessEnv = process.env) => loadConfig(meteringEnvSchema, env);
