import { z } from 'zod';

/** Parses "true"/"false"/"1"/"0" from the environment. */
export const booleanFromEnv = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .optional()
    .transform((v) => (v === undefined ? fallback : v === 'true' || v === '1' || v === 'yes'));

/** A positive integer of milliseconds from the environment. */
export const durationMs = (fallback: number) =>
  z.coerce.number().int().nonnegative().default(fallback);

/**
 * Variables every AOB app reads (../shared/CONTRACT.md section 2). Apps extend this schema with
 * their own and parse it once at start-up.
 */
export const baseEnvSchema = z.object({
  NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222'),
  DATABASE_URL: z.string().min(1).default('postgres://postgres@127.0.0.1:5432/aob'),
  REDIS_URL: z.string().min(1).default('redis://127.0.0.1:6379'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  AOB_BOOTSTRAP_ADMIN_KEY: z.string().min(16).optional(),
  AOB_BOOTSTRAP_TENANT: z.string().min(1).default('default'),
  /** Shared secret services use to call each other (executor -> model gateway). */
  AOB_SERVICE_KEY: z.string().min(16).optional(),
  /** Seconds the process waits for in-flight work on SIGTERM. */
  SHUTDOWN_GRACE_MS: durationMs(25_000),
});

export type BaseEnv = z.infer<typeof baseEnvSchema>;
