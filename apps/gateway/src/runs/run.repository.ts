import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager, type RunStatus } from '@aob/persistence';
import { cursorTimestampSql, type PageCursor } from '../common/page-cursor';
import { OutboxRepository, type NewOutboxMessage } from '../outbox/outbox.repository';
import { toRunRecord, type RunRecord, type RunRow } from './run-record';

const RUN_COLUMNS = `run_id, tenant_id, agent, thread_id, status, input, output, error, usage, attempts, duration_ms,
  idempotency_key, request_hash, created_at, updated_at, ${cursorTimestampSql('created_at')} AS cursor_ts`;

export interface NewRun {
  runId: string;
  tenantId: string;
  agent: string;
  threadId: string;
  input: unknown;
  options: unknown;
  idempotencyKey: string | null;
  requestHash: string;
  eventId: string;
}

/** What a cancel request did to the run (RunRepository.requestCancel). */
export type CancelOutcome =
  | { kind: 'not-found' }
  | { kind: 'finished'; status: 'completed' | 'failed' }
  | { kind: 'already-cancelled' }
  /** The execute event was never published: the run was ended in this transaction. */
  | { kind: 'ended-here' }
  /** The cancel request is in the outbox; the executor ends the run. */
  | { kind: 'requested'; status: RunStatus };

export interface CancelMessages {
  /** `aob.agent.cancel.v1` for the executors. */
  request: NewOutboxMessage;
  /** `agent.status.cancelled`, published only when the run is ended here. */
  cancelled: NewOutboxMessage;
  /** The run's `error` when it is ended here. */
  error: unknown;
}

/** Which uniqueness rule an insert broke. */
export type RunInsertConflict = 'run-id' | 'idempotency-key';

export interface RunListQuery {
  status?: RunStatus;
  agent?: string;
  limit: number;
  after?: PageCursor;
}

/** gateway.runs: submissions and reads. Every read takes the tenant id. */
@Injectable()
export class RunRepository {
  constructor(
    @Inject(DataSource) private readonly ds: DataSource,
    private readonly outbox: OutboxRepository,
  ) {}

  async findById(tenantId: string, runId: string): Promise<RunRecord | null> {
    const rows: RunRow[] = await this.ds.query(
      `SELECT ${RUN_COLUMNS} FROM gateway.runs WHERE run_id = $1 AND tenant_id = $2`,
      [runId, tenantId],
    );
    return rows[0] ? toRunRecord(rows[0]) : null;
  }

  async findByIdempotencyKey(tenantId: string, key: string): Promise<RunRecord | null> {
    const rows: RunRow[] = await this.ds.query(
      `SELECT ${RUN_COLUMNS} FROM gateway.runs WHERE tenant_id = $1 AND idempotency_key = $2`,
      [tenantId, key],
    );
    return rows[0] ? toRunRecord(rows[0]) : null;
  }

  /**
   * Inserts the queued run and its execute event in one transaction: the event is published
   * (by the outbox relay) if and only if the run exists. When the run id or the tenant's
   * idempotency key is taken, nothing is written (ON CONFLICT DO NOTHING: no failed statement, no
   * aborted transaction) and the caller is told which.
   */
  async createWithOutbox(
    run: NewRun,
    message: NewOutboxMessage,
  ): Promise<{ created: true } | { created: false; conflict: RunInsertConflict }> {
    return this.ds.transaction(async (m: EntityManager) => {
      const inserted: unknown[] = await m.query(
        `INSERT INTO gateway.runs (run_id, tenant_id, agent, thread_id, status, input, options, attempts,
           idempotency_key, request_hash, event_id)
         VALUES ($1, $2, $3, $4, 'queued', $5::jsonb, $6::jsonb, 0, $7, $8, $9)
         ON CONFLICT DO NOTHING
         RETURNING 1`,
        [
          run.runId,
          run.tenantId,
          run.agent,
          run.threadId,
          JSON.stringify(run.input ?? null),
          run.options === undefined ? null : JSON.stringify(run.options),
          run.idempotencyKey,
          run.requestHash,
          run.eventId,
        ],
      );
      if (inserted.length === 0) {
        const byKey: unknown[] =
          run.idempotencyKey === null
            ? []
            : await m.query(
                `SELECT 1 FROM gateway.runs WHERE tenant_id = $1 AND idempotency_key = $2`,
                [run.tenantId, run.idempotencyKey],
              );
        return { created: false, conflict: byKey.length > 0 ? 'idempotency-key' : 'run-id' };
      }
      await this.outbox.insert(m, message);
      return { created: true };
    });
  }

  /**
   * Records a cancel request in one transaction, the run row locked: the request event goes to the
   * outbox (once per run: a repeated request changes nothing), and when the run's execute event is
   * still unsent its outbox row is deleted and the run ends `cancelled` here. The relay holds the
   * rows it is publishing locked, so a row it is sending right now is never deleted.
   */
  async requestCancel(
    tenantId: string,
    runId: string,
    build: (run: { agent: string }) => CancelMessages,
  ): Promise<CancelOutcome> {
    return this.ds.transaction(async (m: EntityManager) => {
      const rows: { agent: string; status: RunStatus; event_id: string | null }[] = await m.query(
        `SELECT agent, status, event_id FROM gateway.runs WHERE run_id = $1 AND tenant_id = $2 FOR UPDATE`,
        [runId, tenantId],
      );
      const run = rows[0];
      if (!run) return { kind: 'not-found' };
      if (run.status === 'completed' || run.status === 'failed')
        return { kind: 'finished', status: run.status };
      if (run.status === 'cancelled') return { kind: 'already-cancelled' };
      const messages = build(run);
      await this.outbox.insert(m, messages.request, { ifAbsent: true });
      if (run.status === 'queued' && run.event_id !== null) {
        const unsent: unknown[] = await m.query(
          `WITH gone AS (DELETE FROM gateway.outbox WHERE event_id = $1 AND sent_at IS NULL RETURNING 1)
           SELECT 1 FROM gone`,
          [run.event_id],
        );
        if (unsent.length > 0) {
          await m.query(
            `UPDATE gateway.runs SET status = 'cancelled', error = $2::jsonb, updated_at = now() WHERE run_id = $1`,
            [runId, JSON.stringify(messages.error)],
          );
          await this.outbox.insert(m, messages.cancelled, { ifAbsent: true });
          return { kind: 'ended-here' };
        }
      }
      return { kind: 'requested', status: run.status };
    });
  }

  /** Newest first, keyset-paginated on (created_at, run_id). Returns one page and whether more follow. */
  async list(tenantId: string, q: RunListQuery): Promise<{ items: RunRecord[]; hasMore: boolean }> {
    const where = ['tenant_id = $1'];
    const params: unknown[] = [tenantId];
    if (q.status) {
      params.push(q.status);
      where.push(`status = $${params.length}`);
    }
    if (q.agent) {
      params.push(q.agent);
      where.push(`agent = $${params.length}`);
    }
    if (q.after) {
      params.push(q.after.createdAt, q.after.id);
      where.push(`(created_at, run_id) < ($${params.length - 1}::timestamptz, $${params.length})`);
    }
    params.push(q.limit + 1);
    const rows: RunRow[] = await this.ds.query(
      `SELECT ${RUN_COLUMNS} FROM gateway.runs WHERE ${where.join(' AND ')}
        ORDER BY created_at DESC, run_id DESC LIMIT $${params.length}`,
      params,
    );
    return { items: rows.slice(0, q.limit).map(toRunRecord), hasMore: rows.length > q.limit };
  }

  async threadExists(tenantId: string, threadId: string): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `SELECT 1 FROM gateway.runs WHERE tenant_id = $1 AND thread_id = $2 LIMIT 1`,
      [tenantId, threadId],
    );
    return rows.length > 0;
  }
}
