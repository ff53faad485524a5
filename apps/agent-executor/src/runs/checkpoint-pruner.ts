import { counter } from '@aob/observability';
import { DataSource } from '@aob/persistence';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { ExecutorConfig } from '../config';
import { EXECUTOR_CONFIG } from '../executor.tokens';

const DAY_MS = 86_400_000;
/** Rows per DELETE: short statements that never hold up the hot path for long. */
export const CHECKPOINT_PRUNE_BATCH = 1_000;

const prunedCounter = () =>
  counter({
    name: 'aob_executor_checkpoints_pruned_total',
    help: 'Checkpoints of finished runs deleted by the retention job',
  });

/**
 * One bounded batch. A checkpoint goes when all of this holds:
 * - it is older than the cut-off;
 * - its run is finished (completed, failed, cancelled): a running run's checkpoints are how it
 *   resumes after a crash, so they are never touched;
 * - it is older than the thread's `keep`-th newest checkpoint of a finished run: a thread
 *   continued later (even by a run that is running now and may resume) starts from those.
 * `FOR UPDATE SKIP LOCKED`: replicas pruning at the same time take disjoint rows and never wait.
 */
const PRUNE_SQL = `
WITH doomed AS (
  SELECT c.checkpoint_id
    FROM executor.checkpoints c
   WHERE c.created_at < $1
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
   ORDER BY c.created_at
   LIMIT $3
   FOR UPDATE OF c SKIP LOCKED)
DELETE FROM executor.checkpoints d USING doomed WHERE d.checkpoint_id = doomed.checkpoint_id`;

/**
 * Deletes checkpoints of finished runs older than CHECKPOINT_RETENTION_DAYS every
 * CHECKPOINT_PRUNE_INTERVAL_MS, keeping each thread's CHECKPOINT_KEEP_LATEST newest ones.
 * Safe on several replicas (bounded batches, SKIP LOCKED).
 */
@Injectable()
export class CheckpointPruner implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger(CheckpointPruner.name);
  private readonly pruned = prunedCounter();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;

  constructor(
    private readonly ds: DataSource,
    @Inject(EXECUTOR_CONFIG) private readonly config: ExecutorConfig,
  ) {}

  onApplicationBootstrap(): void {
    const every = this.config.CHECKPOINT_PRUNE_INTERVAL_MS;
    if (every <= 0) return;
    this.timer = setInterval(() => void this.prune().catch(() => undefined), every);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass: deletes every prunable checkpoint (relative to `now`); returns how many. */
  prune(now = new Date()): Promise<number> {
    this.running ??= this.pass(
      new Date(now.getTime() - this.config.CHECKPOINT_RETENTION_DAYS * DAY_MS),
    ).finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(before: Date): Promise<number> {
    let total = 0;
    try {
      while (!this.stopped) {
        const result: [unknown[], number] = await this.ds.query(PRUNE_SQL, [
          before,
          this.config.CHECKPOINT_KEEP_LATEST,
          CHECKPOINT_PRUNE_BATCH,
        ]);
        const n = result[1];
        total += n;
        this.pruned.inc(n);
        if (n < CHECKPOINT_PRUNE_BATCH) break;
      }
      if (total > 0)
        this.log.log(
          `deleted ${total} checkpoints of finished runs from before ${before.toISOString()}`,
        );
      return total;
    } catch (err) {
      this.log.warn(
        `checkpoint retention pass failed (next one in ${this.config.CHECKPOINT_PRUNE_INTERVAL_MS} ms): ${(err as Error).message}`,
      );
      throw err;
    }
  }
}
