import { z } from 'zod';
import { baseEnvSchema, durationMs, loadConfig } from '@aob/config';

export const dlqReplayerEnvSchema = baseEnvSchema.extend({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8084),
  /** How long a new dead letter waits before its first automatic replay. */
  DLQ_QUARANTINE_MS: durationMs(600_000),
  /** Automatic (and manual) replays before an entry that keeps failing is parked for a human. */
  DLQ_MAX_REPLAYS: z.coerce.number().int().nonnegative().default(3),
  /** How often the sweeper looks for entries whose quarantine has ended. */
  DLQ_SWEEP_INTERVAL_MS: durationMs(5_000),
  /** Entries one sweep replays at most (per replica). */
  DLQ_SWEEP_BATCH: z.coerce.number().int().positive().max(10_000).default(100),
  /** Advisories captured at once by this process. */
  DLQ_CAPTURE_CONCURRENCY: z.coerce.number().int().positive().max(256).default(8),
});

export type DlqReplayerConfig = Readonly<z.infer<typeof dlqReplayerEnvSchema>>;

export const loadDlqReplayerConfig = (env: NodeJS.ProcessEnv = process.env): DlqReplayerConfig =>
  loadConfig(dlqReplayerEnvSchema, env);

/** Nest injection token of the DlqReplayerConfig. */
export const DLQ_REPLAYER_CONFIG = Symbol('DLQ_REPLAYER_CONFIG');
