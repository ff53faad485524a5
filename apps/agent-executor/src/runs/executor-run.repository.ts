import {
  DataSource,
  ExecutorRun,
  retryOnConnectionError,
  type ConnectionRetry,
} from '@aob/persistence';
import { Injectable } from '@nestjs/common';
import { LeaseLostError } from './checkpoint.repository';
import { preparedQuery } from './prepared-query';

export interface ClaimInput {
  tenantId: string;
  runId: string;
  agent: string;
  threadId: string;
  /** CloudEvent id of the request. */
  eventId: string;
  input: unknown;
  /** Delivery count of the request message (the run's attempt on its first claim). */
  attempts: number;
  /** `ce-aobreplay` of the request: the dead-letter replay it is (0: not a replay). */
  replay: number;
  /** Identifies this claim (one delivery in one process). */
  leaseOwner: string;
  leaseTtlMs: number;
  /** Stream sequence of the request message (stored with the lease; absent: unknown). */
  streamSeq?: number;
}

export type ClaimResult =
  /**
   * This delivery owns the run now. `startedAt` is when the run was first claimed;
   * `hasCheckpoints` says whether earlier deliveries checkpointed steps (only then are they read).
   */
  | {
      kind: 'claimed';
      startedAt: Date;
      hasCheckpoints: boolean;
      /** The run's attempt number: deliveries that claimed it, counted across replays. */
      attempt: number;
      /** Dead-letter replays the run has accepted (this one included). */
      replays: number;
    }
  /** The run has finished: answer with its stored terminal event. */
  | { kind: 'terminal'; run: ExecutorRun }
  /**
   * Another delivery holds a live lease on it. `sameMessage`: that delivery was one of this very
   * message (same stream sequence), which JetStream delivers only once at a time, so its holder is
   * gone (it could not release the lease, say in a database outage) and the lease will run out.
   */
  | { kind: 'busy'; leaseRemainingMs: number; sameMessage: boolean }
  /** The run id belongs to another tenant or another agent. */
  | { kind: 'conflict'; reason: string };

export interface TerminalRecord {
  status: 'completed' | 'failed' | 'cancelled';
  /** CloudEvent id and type of the terminal status event, and its data. */
  eventId: string;
  eventType: string;
  result: unknown;
  attempts: number;
}

/** The last step's checkpoint, written in the statement that finishes the run (one commit, not two). */
export interface FinalCheckpoint {
  threadId: string;
  step: number;
  stepId: string;
  state: unknown;
  output: unknown;
}

export interface FinishResult {
  /** The finish time (the terminal event's `time`). */
  finishedAt: Date;
  /** Id of the checkpoint written with it, when one was given. */
  checkpointId?: string;
}

/**
 * What a claim does to an existing row (shared by the one-row and the batched statement): takes over a
 * `running` row of the same tenant and agent whose lease is free, expired or already this owner's,
 * or reopens a `failed` one for a replay numbered above its `replays`.
 */
const CLAIM_CONFLICT = `       ON CONFLICT (run_id) DO UPDATE
         SET attempts = CASE WHEN r.lease_owner = EXCLUDED.lease_owner THEN r.attempts
                             ELSE GREATEST(r.attempts + 1, EXCLUDED.attempts) END,
             lease_owner = EXCLUDED.lease_owner,
             lease_expires_at = EXCLUDED.lease_expires_at,
             lease_seq = EXCLUDED.lease_seq,
             status = 'running',
             replays = GREATEST(r.replays, EXCLUDED.replays),
             result_event_id = NULL,
             result_type = NULL,
             result = NULL,
             finished_at = NULL,
             updated_at = now()
         WHERE r.tenant_id = EXCLUDED.tenant_id
           AND r.agent = EXCLUDED.agent
           AND ((r.status = 'running'
                 AND (r.lease_owner IS NULL OR r.lease_owner = EXCLUDED.lease_owner
                      OR r.lease_expires_at IS NULL OR r.lease_expires_at <= now()))
             OR (r.status = 'failed' AND EXCLUDED.replays > r.replays))
       RETURNING r.run_id, r.started_at, r.attempts, r.replays, r.has_checkpoints`;

interface ClaimedRow {
  run_id: string;
  started_at: Date;
  attempts: number;
  replays: number;
  has_checkpoints: boolean;
}

interface QueuedClaim {
  c: ClaimInput;
  resolve: (row: ClaimedRow | undefined) => void;
  reject: (err: unknown) => void;
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
const UNIQUE_VIOLATION = '23505';

/**
 * executor.runs: the source of truth for at-most-once completion. A run is executed under a lease
 * (owner + expiry, on the database clock) so two deliveries of one run never execute it at once.
 */
@Injectable()
export class ExecutorRunRepository {
  constructor(private readonly ds: DataSource) {}

  find(tenantId: string, runId: string, retry?: ConnectionRetry): Promise<ExecutorRun | null> {
    return retryOnConnectionError(
      () => this.ds.getRepository(ExecutorRun).findOneBy({ tenantId, runId }),
      retry,
    );
  }

  /**
   * Claims the run for this delivery in one statement: inserts it, takes over a `running` row of the
   * same tenant and agent whose lease is free or expired, or reopens a `failed` one for a
   * dead-letter replay numbered above the run's `replays` (it resumes after its last checkpoint).
   * Otherwise says why not. `attempts` counts the claims: the delivery count on the first one, one
   * more on each later one (a replay's deliveries start again at 1; the run's attempts go on).
   *
   * Safe to run again with the same lease owner (`retry`: after a lost connection the first attempt
   * may have committed): a run already leased to this owner is claimed again, attempts unchanged.
   */
  async claim(c: ClaimInput, retry?: ConnectionRetry): Promise<ClaimResult> {
    return retryOnConnectionError(() => this.claimOnce(c), retry);
  }

  /** Claims waiting for the next batch (see insertClaim). */
  private claimQueue: QueuedClaim[] = [];
  private claimFlushScheduled = false;

  /**
   * The claim statement for one run. Claims issued in the same turn of the event loop (a pull
   * batch's deliveries start together) go to Postgres as one multi-row statement: one round trip,
   * one commit and one backend wake-up for all of them instead of one each. A batch that fails for
   * any reason is retried claim by claim, so one bad row (or an outage) is answered per run.
   * @returns the claimed row, or undefined when the run was not claimable (the caller finds out why)
   */
  private insertClaim(c: ClaimInput): Promise<ClaimedRow | undefined> {
    return new Promise((resolve, reject) => {
      this.claimQueue.push({ c, resolve, reject });
      if (!this.claimFlushScheduled) {
        this.claimFlushScheduled = true;
        setImmediate(() => this.flushClaims());
      }
    });
  }

  private flushClaims(): void {
    this.claimFlushScheduled = false;
    const queued = this.claimQueue;
    this.claimQueue = [];
    // One row per run id and statement (ON CONFLICT cannot touch a row twice): a second claim of
    // the same run waits for the next batch. Sorted, so concurrent batches lock rows in one order.
    const batch = new Map<string, QueuedClaim>();
    for (const q of queued) {
      if (batch.has(q.c.runId)) this.claimQueue.push(q);
      else batch.set(q.c.runId, q);
    }
    if (this.claimQueue.length > 0) {
      this.claimFlushScheduled = true;
      setImmediate(() => this.flushClaims());
    }
    const claims = [...batch.values()].sort((a, b) => (a.c.runId < b.c.runId ? -1 : 1));
    if (claims.length === 1) {
      const [only] = claims as [QueuedClaim];
      this.insertOneClaim(only.c).then(only.resolve, only.reject);
      return;
    }
    this.insertClaims(claims.map((q) => q.c)).then(
      (rows) => {
        const byRun = new Map(rows.map((r) => [r.run_id, r]));
        for (const q of claims) q.resolve(byRun.get(q.c.runId));
      },
      () => {
        for (const q of claims) this.insertOneClaim(q.c).then(q.resolve, q.reject);
      },
    );
  }

  private async insertOneClaim(c: ClaimInput): Promise<ClaimedRow | undefined> {
    const rows = await preparedQuery<ClaimedRow>(
      this.ds,
      'executor_run_claim',
      `INSERT INTO executor.runs AS r
         (run_id, tenant_id, agent, thread_id, status, event_id, input, attempts, lease_owner, lease_expires_at, replays, lease_seq)
       VALUES ($1, $2, $3, $4, 'running', $5, $6::jsonb, $7, $8, now() + $9 * interval '1 millisecond', $10, $11)
${CLAIM_CONFLICT}`,
      [
        c.runId,
        c.tenantId,
        c.agent,
        c.threadId,
        c.eventId,
        JSON.stringify(c.input ?? null),
        c.attempts,
        c.leaseOwner,
        c.leaseTtlMs,
        c.replay,
        c.streamSeq ?? null,
      ],
    );
    return rows[0];
  }

  private insertClaims(cs: ClaimInput[]): Promise<ClaimedRow[]> {
    return preparedQuery<ClaimedRow>(
      this.ds,
      'executor_run_claim_batch',
      `INSERT INTO executor.runs AS r
         (run_id, tenant_id, agent, thread_id, status, event_id, input, attempts, lease_owner, lease_expires_at, replays, lease_seq)
       SELECT v.run_id, v.tenant_id, v.agent, v.thread_id, 'running', v.event_id, v.input::jsonb, v.attempts,
              v.lease_owner, now() + v.ttl_ms * interval '1 millisecond', v.replays, v.lease_seq
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[],
                     $8::text[], $9::bigint[], $10::int[], $11::bigint[])
              AS v(run_id, tenant_id, agent, thread_id, event_id, input, attempts, lease_owner, ttl_ms, replays, lease_seq)
${CLAIM_CONFLICT}`,
      [
        cs.map((c) => c.runId),
        cs.map((c) => c.tenantId),
        cs.map((c) => c.agent),
        cs.map((c) => c.threadId),
        cs.map((c) => c.eventId),
        cs.map((c) => JSON.stringify(c.input ?? null)),
        cs.map((c) => c.attempts),
        cs.map((c) => c.leaseOwner),
        cs.map((c) => c.leaseTtlMs),
        cs.map((c) => c.replay),
        cs.map((c) => c.streamSeq ?? null),
      ],
    );
  }

  private async claimOnce(c: ClaimInput): Promise<ClaimResult> {
    // has_checkpoints rides along (set by the statements that write checkpoints) so a first
    // delivery, which has none, needs no second query to find that out.
    const claimed = await this.insertClaim(c);
    if (claimed) {
      return {
        kind: 'claimed',
        startedAt: claimed.started_at,
        hasCheckpoints: claimed.has_checkpoints,
        attempt: claimed.attempts,
        replays: claimed.replays,
      };
    }

    // Read the row without the tenant filter only to tell the cases apart; nothing of another
    // tenant's run leaves this method.
    const rows: {
      tenant_id: string;
      agent: string;
      status: string;
      remaining_ms: number | null;
      lease_seq: string | null;
    }[] = await this.ds.query(
      `SELECT tenant_id, agent, status, lease_seq,
              GREATEST(0, EXTRACT(EPOCH FROM (lease_expires_at - now())) * 1000)::float8 AS remaining_ms
         FROM executor.runs WHERE run_id = $1`,
      [c.runId],
    );
    const row = rows[0];
    // Deleted between the two statements (never by this app): a retry will claim it.
    if (!row) return { kind: 'busy', leaseRemainingMs: 0, sameMessage: false };
    if (row.tenant_id !== c.tenantId)
      return { kind: 'conflict', reason: `run id ${c.runId} is taken` };
    if (TERMINAL.has(row.status)) {
      const run = await this.find(c.tenantId, c.runId);
      if (run) return { kind: 'terminal', run };
    }
    if (row.agent !== c.agent) {
      return {
        kind: 'conflict',
        reason: `run ${c.runId} exists for agent "${row.agent}", not "${c.agent}"`,
      };
    }
    return {
      kind: 'busy',
      leaseRemainingMs: Math.ceil(row.remaining_ms ?? 0),
      sameMessage:
        c.streamSeq !== undefined &&
        row.lease_seq !== null &&
        row.lease_seq === String(c.streamSeq),
    };
  }

  /** Extends the lease; false when this claim no longer holds it. */
  async renewLease(
    tenantId: string,
    runId: string,
    leaseOwner: string,
    leaseTtlMs: number,
  ): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `WITH renewed AS (
         UPDATE executor.runs SET lease_expires_at = now() + $4 * interval '1 millisecond', updated_at = now()
          WHERE run_id = $1 AND tenant_id = $2 AND lease_owner = $3 AND status = 'running'
          RETURNING 1)
       SELECT * FROM renewed`,
      [runId, tenantId, leaseOwner, leaseTtlMs],
    );
    return rows.length > 0;
  }

  /** Gives the run up so the next delivery claims it at once (retry, shutdown). Idempotent. */
  async releaseLease(
    tenantId: string,
    runId: string,
    leaseOwner: string,
    retry?: ConnectionRetry,
  ): Promise<void> {
    await retryOnConnectionError(
      () =>
        this.ds.query(
          `UPDATE executor.runs SET lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
            WHERE run_id = $1 AND tenant_id = $2 AND lease_owner = $3 AND status = 'running'`,
          [runId, tenantId, leaseOwner],
        ),
      retry,
    );
  }

  /**
   * Stores the terminal outcome and its status event, if this claim still holds the lease, together
   * with the run's last checkpoint when one is given: one statement, so one commit, and the step
   * and the outcome become durable together (or, when the lease is lost, neither).
   *
   * With `retry`, a connection lost after the server committed is answered as the first attempt
   * would have been: the repeat finds the run already finished with exactly this outcome.
   * @returns the finish time and the checkpoint's id, or null when the lease was lost
   * @throws LeaseLostError when another delivery already wrote the checkpoint's step
   */
  async finish(
    tenantId: string,
    runId: string,
    leaseOwner: string,
    t: TerminalRecord,
    checkpoint?: FinalCheckpoint,
    retry?: ConnectionRetry,
  ): Promise<FinishResult | null> {
    return retryOnConnectionError(async (attempt) => {
      const done = await this.finishOnce(tenantId, runId, leaseOwner, t, checkpoint);
      if (done || attempt === 1) return done;
      return this.finishedAs(tenantId, runId, t, checkpoint);
    }, retry);
  }

  /**
   * The run as an earlier attempt of finish() left it, if it did: finished with this status, event
   * id and result (durations and usage make a result unique to the delivery that computed it).
   */
  private async finishedAs(
    tenantId: string,
    runId: string,
    t: TerminalRecord,
    checkpoint: FinalCheckpoint | undefined,
  ): Promise<FinishResult | null> {
    const rows: { finished_at: Date; checkpoint_id: string | null }[] = await this.ds.query(
      `SELECT r.finished_at, c.checkpoint_id
         FROM executor.runs r
         LEFT JOIN executor.checkpoints c ON c.run_id = r.run_id AND c.step = $6
        WHERE r.run_id = $1 AND r.tenant_id = $2 AND r.status = $3 AND r.result_event_id = $4
          AND r.result = $5::jsonb`,
      [runId, tenantId, t.status, t.eventId, JSON.stringify(t.result), checkpoint?.step ?? null],
    );
    const row = rows[0];
    if (!row) return null;
    return row.checkpoint_id === null
      ? { finishedAt: row.finished_at }
      : { finishedAt: row.finished_at, checkpointId: row.checkpoint_id };
  }

  private async finishOnce(
    tenantId: string,
    runId: string,
    leaseOwner: string,
    t: TerminalRecord,
    checkpoint: FinalCheckpoint | undefined,
  ): Promise<FinishResult | null> {
    const params: unknown[] = [
      runId,
      tenantId,
      leaseOwner,
      t.status,
      t.eventId,
      t.eventType,
      JSON.stringify(t.result),
      t.attempts,
    ];
    const done = (checkpointed: boolean) => `UPDATE executor.runs
            SET status = $4, result_event_id = $5, result_type = $6, result = $7::jsonb, attempts = $8,
                finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL${
                  checkpointed ? ', has_checkpoints = true' : ''
                }
          WHERE run_id = $1 AND tenant_id = $2 AND lease_owner = $3 AND status = 'running'
          RETURNING finished_at`;
    if (!checkpoint) {
      const rows = await preparedQuery<{ finished_at: Date }>(
        this.ds,
        'executor_run_finish',
        `WITH done AS (${done(false)}) SELECT finished_at FROM done`,
        params,
      );
      return rows[0] ? { finishedAt: rows[0].finished_at } : null;
    }
    params.push(
      checkpoint.threadId,
      checkpoint.step,
      checkpoint.stepId,
      JSON.stringify(checkpoint.state ?? null),
      JSON.stringify(checkpoint.output ?? null),
    );
    let rows: { finished_at: Date; checkpoint_id: string }[];
    try {
      rows = await preparedQuery(
        this.ds,
        'executor_run_finish_with_checkpoint',
        `WITH done AS (${done(true)}),
              saved AS (
                INSERT INTO executor.checkpoints (tenant_id, thread_id, run_id, step, step_id, state, output)
                SELECT $2, $9, $1, $10, $11, $12::jsonb, $13::jsonb FROM done
                RETURNING checkpoint_id)
         SELECT done.finished_at, saved.checkpoint_id FROM done CROSS JOIN saved`,
        params,
      );
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new LeaseLostError(
          `step ${checkpoint.step} of run ${runId} was checkpointed by another delivery`,
        );
      }
      throw err;
    }
    const row = rows[0];
    return row ? { finishedAt: row.finished_at, checkpointId: row.checkpoint_id } : null;
  }

  /**
   * Ends a cancelled run that nobody is executing (a `running` row whose lease is free or expired:
   * waiting for a retry, or its worker died) in one statement, with its stored cancelled event.
   * @returns the run's agent, thread, attempts and finish time, or null when it is not such a run
   */
  async cancelIdle(
    tenantId: string,
    runId: string,
    reason: string,
    event: { eventId: string; eventType: string },
  ): Promise<{ agent: string; threadId: string; attempts: number; finishedAt: Date } | null> {
    const rows: { agent: string; thread_id: string; attempts: number; finished_at: Date }[] =
      await this.ds.query(
        `WITH done AS (
           UPDATE executor.runs
              SET status = 'cancelled', result_event_id = $3, result_type = $4,
                  result = jsonb_build_object('runId', run_id, 'agent', agent, 'reason', $5::text),
                  finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
            WHERE run_id = $1 AND tenant_id = $2 AND status = 'running'
              AND (lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= now())
            RETURNING agent, thread_id, attempts, finished_at)
         SELECT * FROM done`,
        [runId, tenantId, event.eventId, event.eventType, reason],
      );
    const row = rows[0];
    return row
      ? {
          agent: row.agent,
          threadId: row.thread_id,
          attempts: row.attempts,
          finishedAt: row.finished_at,
        }
      : null;
  }

  /**
   * Records a run that failed before it could be claimed (unknown agent, invalid input).
   * @returns the finish time, or null when the run id already had a row (left untouched)
   */
  async insertFailed(
    c: Omit<ClaimInput, 'leaseOwner' | 'leaseTtlMs' | 'replay' | 'streamSeq'>,
    t: Omit<TerminalRecord, 'status'>,
    retry?: ConnectionRetry,
  ): Promise<Date | null> {
    return retryOnConnectionError(async (attempt) => {
      const inserted = await this.insertFailedOnce(c, t);
      if (inserted || attempt === 1) return inserted;
      // An earlier attempt may have committed: the row it wrote is this one.
      const rows: { finished_at: Date }[] = await this.ds.query(
        `SELECT finished_at FROM executor.runs
          WHERE run_id = $1 AND tenant_id = $2 AND event_id = $3 AND status = 'failed'
            AND result_event_id = $4 AND result = $5::jsonb`,
        [c.runId, c.tenantId, c.eventId, t.eventId, JSON.stringify(t.result)],
      );
      return rows[0]?.finished_at ?? null;
    }, retry);
  }

  private async insertFailedOnce(
    c: Omit<ClaimInput, 'leaseOwner' | 'leaseTtlMs' | 'replay' | 'streamSeq'>,
    t: Omit<TerminalRecord, 'status'>,
  ): Promise<Date | null> {
    const rows: { finished_at: Date }[] = await this.ds.query(
      `INSERT INTO executor.runs
         (run_id, tenant_id, agent, thread_id, status, event_id, input, attempts, result_event_id, result_type, result, finished_at)
       VALUES ($1, $2, $3, $4, 'failed', $5, $6::jsonb, $7, $8, $9, $10::jsonb, now())
       ON CONFLICT (run_id) DO NOTHING
       RETURNING finished_at`,
      [
        c.runId,
        c.tenantId,
        c.agent,
        c.threadId,
        c.eventId,
        JSON.stringify(c.input ?? null),
        c.attempts,
        t.eventId,
        t.eventType,
        JSON.stringify(t.result),
      ],
    );
    return rows[0]?.finished_at ?? null;
  }
}
