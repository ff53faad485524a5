import { z } from 'zod';
import { baseEnvSchema, durationMs, loadConfig } from '@aob/config';
import { quotaEnvShape } from '@aob/quotas';

/** The METERING stream keeps 30 days: raw records (the idempotency keys) must outlive any replay of it. */
const MIN_RETENTION_DAYS = 31;

export const meteringEnvSchema = baseEnvSchema.extend({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8082),
  /** Postgres pool size of this process (batch writers + the prune job). */
  DB_POOL_SIZE: z.coerce.number().int().positive().default(6),
  /** Usage events fetched and not yet settled in this process (below the consumer's max_ack_pending of 20 000). */
  METERING_CONCURRENCY: z.coerce.number().int().positive().max(20_000).default(4_000),
  /** Messages per pull request; a batch is written when it holds this many events ... */
  METERING_BATCH_SIZE: z.coerce.number().int().positive().max(10_000).default(1_000),
  /** ... or when its first event has waited this long. */
  METERING_BATCH_WAIT_MS: durationMs(20),
  /** Batches written at once (each one transaction on its own connection). */
  METERING_BATCH_WRITERS: z.coerce.number().int().positive().max(32).default(3),
  /** Pull requests open at once, so the next batch arrives while the previous one commits. */
  METERING_FETCHERS: z.coerce.number().int().positive().max(16).default(2),
  /** Raw usage records older than this are deleted (aggregates stay). */
  METERING_RAW_RETENTION_DAYS: z.coerce
    .number()
    .int()
    .min(
      MIN_RETENTION_DAYS,
      `must be at least ${MIN_RETENTION_DAYS}: raw records are the idempotency keys and METERING keeps 30 days`,
    )
    .default(90),
  /** How often the retention job runs. */
  METERING_PRUNE_INTERVAL_MS: durationMs(3_600_000),
  ...quotaEnvShape,
});

export type MeteringConfig = Readonly<z.infer<typeof meteringEnvSchema>>;

export const loadMeteringConfig = (env: NodeJS.ProcessEnv = process.env): MeteringConfig =>
  loadConfig(meteringEnvSchema, env);

/** Nest injection token of the MeteringConfig. */
export const METERING_CONFIG = Symbol('METERING_CONFIG');
