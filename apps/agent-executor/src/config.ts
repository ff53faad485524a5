import { baseEnvSchema, durationMs, loadConfig } from '@aob/config';
import { z } from 'zod';

/** Environment of the agent executor (CONTRACT.md section 2 plus the EXECUTOR_* knobs of README.md). */
export const appEnvSchema = baseEnvSchema.extend({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8083),
  MODEL_GATEWAY_URL: z.url().default('http://127.0.0.1:8081/v1'),
  /** Runs one process executes at the same time. */
  EXECUTOR_CONCURRENCY: z.coerce.number().int().positive().max(1_024).default(16),
  /** Overrides the catalog's retry backoff base / cap (tests and tuning); unset = the catalog's. */
  EXECUTOR_RETRY_BASE_MS: z.coerce.number().int().positive().optional(),
  EXECUTOR_RETRY_MAX_MS: z.coerce.number().int().positive().optional(),
  /** How long a claim on a run holds without renewal; renewed every third of it while the run works. */
  EXECUTOR_LEASE_TTL_MS: z.coerce.number().int().min(1_000).default(30_000),
  /** Postgres connections per process. */
  EXECUTOR_DB_POOL_SIZE: z.coerce.number().int().positive().default(10),
  /** Time limit of one model call (the run's own `options.timeoutMs` may cut it shorter). */
  MODEL_TIMEOUT_MS: durationMs(120_000),
  /** Key prefix of the per-run Redis streams; the gateway reads the same keys. */
  RUN_STREAM_KEY_PREFIX: z.string().min(1).default('aob'),
  /** Lifetime of a run's Redis stream after its last entry (the contract asks for at least 24 h). */
  RUN_STREAM_TTL_SECONDS: z.coerce.number().int().min(86_400).default(86_400),
  /** Checkpoints of finished runs older than this many days are pruned (CheckpointPruner). */
  CHECKPOINT_RETENTION_DAYS: z.coerce.number().positive().default(7),
  /** Newest checkpoints of each thread that are never pruned (a continued thread starts from them). */
  CHECKPOINT_KEEP_LATEST: z.coerce.number().int().min(1).default(1),
  /** Period of the checkpoint pruner; 0 turns it off. */
  CHECKPOINT_PRUNE_INTERVAL_MS: durationMs(3_600_000),
});

export type ExecutorConfig = Readonly<z.infer<typeof appEnvSchema>>;

export const loadExecutorConfig = (env: NodeJS.ProcessEnv = process.env): ExecutorConfig =>
  loadConfig(appEnvSchema, env);
