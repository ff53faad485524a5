import { Inject, Injectable } from '@nestjs/common';
import {
  DataSource,
  retryOnConnectionError,
  type ConnectionRetry,
  type RunStatus,
} from '@aob/persistence';

/** What one status event says about a run. */
export interface RunStatusUpdate {
  runId: string;
  tenantId: string;
  agent: string;
  threadId: string;
  status: Exclude<RunStatus, 'queued'>;
  /** Highest attempt the event knows of (0 when it does not say). */
  attempts: number;
  output?: unknown;
  usage?: unknown;
  error?: unknown;
  durationMs?: number;
}

export type ProjectionOutcome =
  /** The row was created or moved forward. */
  | 'applied'
  /** The row is already terminal (a duplicate or a late event). */
  | 'stale'
  /** The row belongs to another tenant: never touched. */
  | 'tenant-mismatch';

const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));

/**
 * Writes the run projection from status events. Idempotent and order-tolerant: status only moves
 * forward (queued < running < terminal), a terminal row is never changed, attempts only grow. The
 * one way back: a `failed` run reopened by a dead-letter replay, told apart from a late event by
 * its attempts (the executor counts them on across replays): an event with more attempts than the
 * failed row moves it again.
 */
@Injectable()
export class RunProjectionRepository {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  /** @param retry waits out a database outage (safe: applying an update twice changes nothing more) */
  apply(u: RunStatusUpdate, retry?: ConnectionRetry): Promise<ProjectionOutcome> {
    return retryOnConnectionError(() => this.applyOnce(u), retry);
  }

  private async applyOnce(u: RunStatusUpdate): Promise<ProjectionOutcome> {
    const terminal = u.status !== 'running';
    // A run first seen on the bus (submitted straight to NATS) is created from the event.
    const rows: unknown[] = await this.ds.query(
      `INSERT INTO gateway.runs AS r (run_id, tenant_id, agent, thread_id, status, input, output, error, usage, attempts, duration_ms)
       VALUES ($1, $2, $3, $4, $5, NULL, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10)
       ON CONFLICT (run_id) DO UPDATE SET
         status = EXCLUDED.status,
         output = CASE WHEN $11::boolean THEN EXCLUDED.output ELSE r.output END,
         error = CASE WHEN $11::boolean THEN EXCLUDED.error WHEN r.status = 'failed' THEN NULL ELSE r.error END,
         usage = CASE WHEN $11::boolean THEN EXCLUDED.usage ELSE r.usage END,
         duration_ms = CASE WHEN $11::boolean THEN EXCLUDED.duration_ms ELSE r.duration_ms END,
         attempts = GREATEST(r.attempts, EXCLUDED.attempts),
         updated_at = now()
       WHERE r.tenant_id = EXCLUDED.tenant_id
         AND (r.status IN ('queued', 'running')
           -- a dead-letter replay reopened the failed run: its attempts go on counting
           OR (r.status = 'failed' AND EXCLUDED.attempts > r.attempts))
       RETURNING 1`,
      [
        u.runId,
        u.tenantId,
        u.agent,
        u.threadId,
        u.status,
        json(u.output),
        json(u.error),
        json(u.usage),
        u.attempts,
        u.durationMs === undefined ? null : Math.round(u.durationMs),
        terminal,
      ],
    );
    if (rows.length > 0) return 'applied';
    const owner: { tenant_id: string }[] = await this.ds.query(
      `SELECT tenant_id FROM gateway.runs WHERE run_id = $1`,
      [u.runId],
    );
    return owner[0] && owner[0].tenant_id !== u.tenantId ? 'tenant-mismatch' : 'stale';
  }
}
