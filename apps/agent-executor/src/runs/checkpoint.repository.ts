import {
  Checkpoint,
  DataSource,
  retryOnConnectionError,
  type ConnectionRetry,
} from '@aob/persistence';
import { Injectable } from '@nestjs/common';
import { preparedQuery } from './prepared-query';

export interface NewCheckpoint {
  tenantId: string;
  threadId: string;
  runId: string;
  step: number;
  stepId: string;
  state: unknown;
  output: unknown;
}

export interface SavedCheckpoint {
  checkpointId: string;
  createdAt: Date;
}

/** Thrown when the run's lease moved to another delivery: this one must stop without writing. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}

/** The step's checkpoint exists already. */
class StepTakenError extends LeaseLostError {}

const UNIQUE_VIOLATION = '23505';

/** executor.checkpoints: one row per finished step of a run; (run_id, step) is unique. */
@Injectable()
export class CheckpointRepository {
  constructor(private readonly ds: DataSource) {}

  /** The run's checkpoints by step number. */
  async listForRun(
    tenantId: string,
    runId: string,
    retry?: ConnectionRetry,
  ): Promise<Checkpoint[]> {
    return retryOnConnectionError(
      () =>
        this.ds
          .getRepository(Checkpoint)
          .find({ where: { tenantId, runId }, order: { step: 'ASC' } }),
      retry,
    );
  }

  /** The state of the thread's newest checkpoint written by another run (thread continuation). */
  async latestThreadState(
    tenantId: string,
    threadId: string,
    exceptRunId: string,
    retry?: ConnectionRetry,
  ): Promise<unknown> {
    const rows: { state: unknown }[] = await retryOnConnectionError(
      () =>
        this.ds.query(
          `SELECT state FROM executor.checkpoints
            WHERE tenant_id = $1 AND thread_id = $2 AND run_id <> $3
            ORDER BY created_at DESC LIMIT 1`,
          [tenantId, threadId, exceptRunId],
        ),
      retry,
    );
    return rows[0]?.state ?? undefined;
  }

  /**
   * Writes the checkpoint and renews the run's lease in one statement, only while `leaseOwner`
   * holds the lease: a delivery that lost its run can never write a step.
   *
   * With `retry`, a connection lost after the server committed is answered as the first attempt
   * would have been: the repeat finds the step written while this owner still holds the lease (no
   * other delivery can have written it then: a step done before this claim is never executed again).
   * @throws LeaseLostError when the lease is gone (or another delivery wrote this step)
   */
  async save(
    c: NewCheckpoint,
    leaseOwner: string,
    leaseTtlMs: number,
    retry?: ConnectionRetry,
  ): Promise<SavedCheckpoint> {
    return retryOnConnectionError(async (attempt) => {
      try {
        return await this.saveOnce(c, leaseOwner, leaseTtlMs);
      } catch (err) {
        if (attempt === 1 || !(err instanceof StepTakenError)) throw err;
        const rows: { checkpoint_id: string; created_at: Date }[] = await this.ds.query(
          `SELECT c.checkpoint_id, c.created_at
             FROM executor.checkpoints c JOIN executor.runs r ON r.run_id = c.run_id
            WHERE c.run_id = $1 AND c.step = $2 AND c.step_id = $3
              AND r.tenant_id = $4 AND r.lease_owner = $5 AND r.status = 'running'`,
          [c.runId, c.step, c.stepId, c.tenantId, leaseOwner],
        );
        const row = rows[0];
        if (!row) throw err;
        return { checkpointId: row.checkpoint_id, createdAt: row.created_at };
      }
    }, retry);
  }

  private async saveOnce(
    c: NewCheckpoint,
    leaseOwner: string,
    leaseTtlMs: number,
  ): Promise<SavedCheckpoint> {
    let rows: { checkpoint_id: string; created_at: Date }[];
    try {
      rows = await preparedQuery(
        this.ds,
        'executor_checkpoint_save',
        `WITH lease AS (
           UPDATE executor.runs
              SET lease_expires_at = now() + $9 * interval '1 millisecond', updated_at = now(),
                  has_checkpoints = true
            WHERE run_id = $3 AND tenant_id = $1 AND lease_owner = $8 AND status = 'running'
            RETURNING run_id)
         INSERT INTO executor.checkpoints (tenant_id, thread_id, run_id, step, step_id, state, output)
         SELECT $1, $2, $3, $4, $5, $6::jsonb, $7::jsonb FROM lease
         RETURNING checkpoint_id, created_at`,
        [
          c.tenantId,
          c.threadId,
          c.runId,
          c.step,
          c.stepId,
          JSON.stringify(c.state ?? null),
          JSON.stringify(c.output ?? null),
          leaseOwner,
          leaseTtlMs,
        ],
      );
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new StepTakenError(
          `step ${c.step} of run ${c.runId} was checkpointed by another delivery`,
        );
      }
      throw err;
    }
    const row = rows[0];
    if (!row) throw new LeaseLostError(`run ${c.runId} is no longer leased to this delivery`);
    return { checkpointId: row.checkpoint_id, createdAt: row.created_at };
  }
}
