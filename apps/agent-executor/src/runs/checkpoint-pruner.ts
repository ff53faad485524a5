import { counter } from '@aob/observability';
import { DataSource, RetentionJob } from '@aob/persistence';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ExecutorConfig } from '../config';
import { EXECUTOR_CONFIG } from '../executor.tokens';

/** Old rows each statement looks at (and at most deletes): short statements, bounded work. */
export const CHECKPOINT_PRUNE_BATCH = 1_000;

const prunedCounter = () =>
  counter({
    name: 'aob_executor_checkpoints_pruned_total',
    help: 'Checkpoints of finished runs deleted by the retention job',
  });

/**
 * One bounded batch: the next `$3` checkpoints older than the cut-off `$1` after the cursor `$4`
 * (oldest first, through checkpoints_created_idx), of which those go that satisfy all of this:
 * - the run is finished (completed, failed, cancelled): a running run's checkpoints are how it
 *   resumes after a crash, so they are never touched;
 * - the checkpoint is older than the thread's `$2`-th newest checkpoint of a finished run: a thread
 *   continued later (even by a run that is running now and may resume) starts from those.
 * The cursor moves past the window whether or not its rows went, so a pass reads each old row once
 * and a batch never looks at more than its window. (Rows sharing the window's last timestamp
 * beyond the limit wait for a later pass; checkpoints take clock_timestamp(), one per statement.)
 * `FOR UPDATE SKIP LOCKED`: replicas pruning at the same time take disjoint rows and never wait.
 * The cursor travels as text (microseconds); the ids reach the DELETE as an array, so it is a
 * primary-key lookup each, and the small window keeps the planner's estimate (and cost) small.
 */
const PRUNE_SQL = `
WITH win AS (
  SELECT checkpoint_id, created_at FROM executor.checkpoints
   WHERE created_at < $1 AND created_at > $4::timestamptz
   ORDER BY created_at
   LIMIT $3),
last AS (SELECT max(created_at)::text AS upto FROM win),
doomed AS (
  SELECT c.checkpoint_id
    FROM executor.checkpoints c
   WHERE c.checkpoint_id IN (SELECT checkpoint_id FROM win)
     AND EXISTS (SELECT 1 FROM executor.runs r
                  WHERE r.run_id = c.run_id AND r.status IN ('completed', 'failed', 'cancelled'))
     AND c.created_at < (
           SELECT n.created_at
             FROM executor.checkpoints n
             JOIN executor.runs nr
               ON nr.run_id = n.run_id AND nr.status IN ('completed', 'failed', 'cancelled')
            WHERE n.tenant_id = c.tenant_id AND n.thread_id = c.thread_id
            ORDER BY n.created_at DESC
           OFFSET $2 - 1 LIMIT 1)
   FOR UPDATE OF c SKIP LOCKED),
gone AS (
  DELETE FROM executor.checkpoints
   WHERE checkpoint_id = ANY (ARRAY(SELECT checkpoint_id FROM doomed))
  RETURNING 1)
SELECT (SELECT upto FROM last) AS upto,
       (SELECT count(*)::int FROM win) AS scanned,
       (SELECT count(*)::int FROM gone) AS deleted`;

interface PruneBatch {
  /** The window's newest created_at (the next cursor); null when no old row is left. */
  upto: string | null;
  scanned: number;
  deleted: number;
}

/**
 * Deletes checkpoints of finished runs older than CHECKPOINT_RETENTION_DAYS every
 * CHECKPOINT_PRUNE_INTERVAL_MS, keeping each thread's CHECKPOINT_KEEP_LATEST newest ones.
 * Safe on several replicas (bounded batches, SKIP LOCKED).
 */
@Injectable()
export class CheckpointPruner extends RetentionJob {
  protected readonly log = new Logger(CheckpointPruner.name);
  private readonly pruned = prunedCounter();

  constructor(
    private readonly ds: DataSource,
    @Inject(EXECUTOR_CONFIG) private readonly config: ExecutorConfig,
  ) {
    super('checkpoint retention', () => ({
      everyMs: config.CHECKPOINT_PRUNE_INTERVAL_MS,
      retentionDays: config.CHECKPOINT_RETENTION_DAYS,
    }));
  }

  protected async pass(before: Date): Promise<number> {
    let total = 0;
    let cursor = '-infinity';
    while (!this.stopped) {
      const [batch] = await this.ds.query<PruneBatch[]>(PRUNE_SQL, [
        before,
        this.config.CHECKPOINT_KEEP_LATEST,
        CHECKPOINT_PRUNE_BATCH,
        cursor,
      ]);
      if (!batch?.upto) break;
      total += batch.deleted;
      this.pruned.inc(batch.deleted);
      if (batch.scanned < CHECKPOINT_PRUNE_BATCH) break;
      cursor = batch.upto;
    }
    if (total > 0)
      this.log.log(
        `deleted ${total} checkpoints of finished runs from before ${before.toISOString()}`,
      );
    return total;
  }
}
