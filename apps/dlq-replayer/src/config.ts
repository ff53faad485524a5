import { z } from 'zod';
import { baseEnvSchema, loadConfig } from '@aob/config';

export const dlqReplayerEnvSchema = baseEnvSchema.extend({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8084),
});

export type DlqReplayerConfig = z.infer<typeof dlqReplayerEnvSchema>;

export const loadDlqReplayerConfig = (env: NodeJS.ProcessEnv = process.env) =>
  loadConfig(dlqReplayerEnvSchema, env);
