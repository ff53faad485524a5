import { DomainError } from '@aob/errors';
import type { DataSource, EntityManager } from 'typeorm';
import type { DeadLetterStatus } from './entities/dead-letter.entity';

/** Whose dead letters: one tenant's, or every tenant's (a platform admin, the sweeper). */
export type DeadLetterScope = { tenantId: string } | { allTenants: true };

export interface DeadLetterRecord {
  id: string;
  tenantId: string | null;
  stream: string;
  consumer: string;
  streamSeq: number;
  subject: string;
  eventId: string | null;
  type: string | null;
  code: string | null;
  reason: string;
  deliveries: number;
  replays: number;
  status: DeadLetterStatus;
  firstFailedAt: Date;
  lastFailedAt: Date;
  quarantineUntil: Date | null;
  lastReplayedAt: Date | null;
  headers: Record<string, string[]>;
  /** The original payload; null when the original was gone from its stream when captured. */
  data: Buffer | null;
  createdAt: Date;
  /** created_at as microsecond ISO text: the list cursor. */
  cursorTs: string;
}

export interface NewDeadLetter {
  tenantId: string | null;
  stream: string;
  consumer: string;
  streamSeq: number;
  subject: string;
  eventId: string | null;
  type: string | null;
  code: string | null;
  reason: string;
  deliveries: number;
  status: 'quarantined' | 'parked';
  quarantineUntil: Date | null;
  headers: Record<string, string[]>;
  data: Uint8Array | null;
}

/** A new failure of an entry that had been replayed: its message died again at a new sequence. */
export interface FailedReplay {
  subject: string;
  eventId: string;
  stream: string;
  consumer: string;
  streamSeq: number;
  code: string | null;
  reason: string;
  deliveries: number;
  /** Decides from the entry's replay count whether it goes back to quarantine or is parked. */
  next(replays: number): { status: 'quarantined' | 'parked'; quarantineUntil: Date | null };
}

export interface DeadLetterFilter {
  status?: DeadLetterStatus;
  subject?: string;
  ids?: string[];
}

export interface DeadLetterListQuery extends DeadLetterFilter {
  limit: number;
  after?: { createdAt: string; id: string };
}

/** Publishes replay number `replay` of an entry; throwing leaves the entry unchanged. */
export type ReplayPublisher = (entry: DeadLetterRecord, replay: number) => Promise<unknown>;

const COLUMNS = `id, tenant_id, stream, consumer, stream_seq, subject, event_id, type, code, reason,
  deliveries, replays, status, first_failed_at, last_failed_at, quarantine_until, last_replayed_at,
  headers, data, created_at,
  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_ts`;

interface Row {
  id: string;
  tenant_id: string | null;
  stream: string;
  consumer: string;
  stream_seq: string;
  subject: string;
  event_id: string | null;
  type: string | null;
  code: string | null;
  reason: string;
  deliveries: number;
  replays: number;
  status: DeadLetterStatus;
  first_failed_at: Date;
  last_failed_at: Date;
  quarantine_until: Date | null;
  last_replayed_at: Date | null;
  headers: Record<string, string[]>;
  data: Buffer | null;
  created_at: Date;
  cursor_ts: string;
}

const toRecord = (r: Row): DeadLetterRecord => ({
  id: r.id,
  tenantId: r.tenant_id,
  stream: r.stream,
  consumer: r.consumer,
  streamSeq: Number(r.stream_seq),
  subject: r.subject,
  eventId: r.event_id,
  type: r.type,
  code: r.code,
  reason: r.reason,
  deliveries: r.deliveries,
  replays: r.replays,
  status: r.status,
  firstFailedAt: r.first_failed_at,
  lastFailedAt: r.last_failed_at,
  quarantineUntil: r.quarantine_until,
  lastReplayedAt: r.last_replayed_at,
  headers: r.headers,
  data: r.data,
  createdAt: r.created_at,
  cursorTs: r.cursor_ts,
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_REASON = 4_000;

/** Appends `AND tenant_id = $n` unless the scope is every tenant. */
function scoped(scope: DeadLetterScope, where: string[], params: unknown[]): void {
  if ('tenantId' in scope) {
    params.push(scope.tenantId);
    where.push(`tenant_id = $${params.length}`);
  }
}

/**
 * dlq.dead_letters, shared by the dlq-replayer (capture, sweeper) and the gateway (`/v1/dlq`).
 * Every read and change takes a scope; a replay publishes while holding the row lock, so two
 * replicas (or a human and the sweeper) never replay the same entry at once.
 */
export class DeadLetterRepository {
  constructor(private readonly ds: DataSource) {}

  /** Open dead letters (all tenants) by status: what waits for a replay or a human. */
  async countOpen(): Promise<{ quarantined: number; parked: number }> {
    const rows: { status: 'quarantined' | 'parked'; n: number }[] = await this.ds.query(
      `SELECT status, count(*)::int AS n FROM dlq.dead_letters
        WHERE status IN ('quarantined', 'parked') GROUP BY status`,
    );
    const out = { quarantined: 0, parked: 0 };
    for (const r of rows) out[r.status] = r.n;
    return out;
  }

  async existsAt(stream: string, streamSeq: number): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(
      `SELECT 1 FROM dlq.dead_letters WHERE stream = $1 AND stream_seq = $2`,
      [stream, streamSeq],
    );
    return rows.length > 0;
  }

  /** Inserts the entry unless its (stream, stream_seq) is already captured. */
  async insert(d: NewDeadLetter): Promise<{ id: string; created: boolean }> {
    const inserted: { id: string }[] = await this.ds.query(
      `INSERT INTO dlq.dead_letters (tenant_id, stream, consumer, stream_seq, subject, event_id, type, code,
         reason, deliveries, status, quarantine_until, headers, data)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14)
       ON CONFLICT (stream, stream_seq) DO NOTHING
       RETURNING id`,
      [
        d.tenantId,
        d.stream,
        d.consumer,
        d.streamSeq,
        d.subject,
        d.eventId,
        d.type,
        d.code,
        d.reason.slice(0, MAX_REASON),
        d.deliveries,
        d.status,
        d.quarantineUntil,
        JSON.stringify(d.headers),
        d.data === null ? null : Buffer.from(d.data),
      ],
    );
    if (inserted[0]) return { id: inserted[0].id, created: true };
    const existing: { id: string }[] = await this.ds.query(
      `SELECT id FROM dlq.dead_letters WHERE stream = $1 AND stream_seq = $2`,
      [d.stream, d.streamSeq],
    );
    return { id: existing[0]!.id, created: false };
  }

  /**
   * When a replayed entry's message dies again, that failure belongs to the same entry (its replay
   * count must keep growing, or auto-replay would never stop): the entry moves to the new stream
   * sequence and goes back to quarantine or is parked. Returns its id, or null when no replayed
   * entry has this event (the caller then inserts a new one).
   */
  async reopenAfterFailedReplay(f: FailedReplay): Promise<string | null> {
    return this.ds.transaction(async (m: EntityManager) => {
      const rows: { id: string; replays: number }[] = await m.query(
        `SELECT id, replays FROM dlq.dead_letters
          WHERE subject = $1 AND event_id = $2 AND status = 'replayed'
          ORDER BY last_replayed_at DESC NULLS LAST LIMIT 1 FOR UPDATE`,
        [f.subject, f.eventId],
      );
      const row = rows[0];
      if (!row) return null;
      const next = f.next(row.replays);
      await m.query(
        `UPDATE dlq.dead_letters SET stream = $2, consumer = $3, stream_seq = $4, code = $5, reason = $6,
           deliveries = $7, status = $8, quarantine_until = $9, last_failed_at = now(), updated_at = now()
         WHERE id = $1`,
        [
          row.id,
          f.stream,
          f.consumer,
          f.streamSeq,
          f.code,
          f.reason.slice(0, MAX_REASON),
          f.deliveries,
          next.status,
          next.quarantineUntil,
        ],
      );
      return row.id;
    });
  }

  async get(scope: DeadLetterScope, id: string): Promise<DeadLetterRecord | null> {
    if (!UUID.test(id)) return null;
    const where = ['id = $1'];
    const params: unknown[] = [id];
    scoped(scope, where, params);
    const rows: Row[] = await this.ds.query(
      `SELECT ${COLUMNS} FROM dlq.dead_letters WHERE ${where.join(' AND ')}`,
      params,
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** Newest first, keyset-paginated on (created_at, id). */
  async list(
    scope: DeadLetterScope,
    q: DeadLetterListQuery,
  ): Promise<{ items: DeadLetterRecord[]; hasMore: boolean }> {
    const where: string[] = ['TRUE'];
    const params: unknown[] = [];
    scoped(scope, where, params);
    this.filter(q, where, params);
    if (q.after) {
      params.push(q.after.createdAt, q.after.id);
      where.push(
        `(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`,
      );
    }
    params.push(q.limit + 1);
    const rows: Row[] = await this.ds.query(
      `SELECT ${COLUMNS} FROM dlq.dead_letters WHERE ${where.join(' AND ')}
        ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return { items: rows.slice(0, q.limit).map(toRecord), hasMore: rows.length > q.limit };
  }

  /** Marks the entry discarded (never replayed again). Returns false when it is not in scope. */
  async discard(scope: DeadLetterScope, id: string): Promise<boolean> {
    if (!UUID.test(id)) return false;
    const where = ['id = $1'];
    const params: unknown[] = [id];
    scoped(scope, where, params);
    const rows: unknown[] = await this.ds.query(
      `UPDATE dlq.dead_letters SET status = 'discarded', quarantine_until = NULL, updated_at = now()
        WHERE ${where.join(' AND ')} RETURNING id`,
      params,
    );
    // node-postgres answers UPDATE ... RETURNING through TypeORM as [rows, count]
    const returned = Array.isArray(rows[0]) ? (rows[0] as unknown[]) : rows;
    return returned.length > 0;
  }

  /**
   * Replays one entry now: locks it, publishes replay number `replays + 1`, marks it replayed.
   * @returns the updated entry, or null when it is not in scope
   * @throws DomainError('Conflict') when it is discarded or its original payload is gone
   */
  async replay(
    scope: DeadLetterScope,
    id: string,
    publish: ReplayPublisher,
  ): Promise<DeadLetterRecord | null> {
    if (!UUID.test(id)) return null;
    return this.ds.transaction(async (m: EntityManager) => {
      const where = ['id = $1'];
      const params: unknown[] = [id];
      scoped(scope, where, params);
      const rows: Row[] = await m.query(
        `SELECT ${COLUMNS} FROM dlq.dead_letters WHERE ${where.join(' AND ')} FOR UPDATE`,
        params,
      );
      const entry = rows[0] ? toRecord(rows[0]) : null;
      if (!entry) return null;
      if (entry.status === 'discarded')
        throw new DomainError('Conflict', `dead letter ${id} is discarded`);
      if (entry.data === null)
        throw new DomainError(
          'Conflict',
          `dead letter ${id} cannot be replayed: its original message was gone from ${entry.stream} when captured`,
        );
      return this.markReplayed(m, entry, publish);
    });
  }

  /** Ids in scope matching the filter that a replay may take (not discarded, payload kept). */
  async replayableIds(
    scope: DeadLetterScope,
    f: DeadLetterFilter,
    limit: number,
  ): Promise<string[]> {
    const where = [`status <> 'discarded'`, 'data IS NOT NULL'];
    const params: unknown[] = [];
    scoped(scope, where, params);
    this.filter(f, where, params);
    params.push(limit);
    const rows: { id: string }[] = await this.ds.query(
      `SELECT id FROM dlq.dead_letters WHERE ${where.join(' AND ')}
        ORDER BY created_at, id LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => r.id);
  }

  /**
   * The sweeper: takes up to `limit` quarantined entries whose quarantine has ended (SKIP LOCKED:
   * replicas share the work), and per entry either replays it or parks it, as `decide` says.
   * A failed publish leaves that entry quarantined for the next sweep.
   */
  async sweepDue(
    limit: number,
    decide: (entry: DeadLetterRecord) => 'replay' | 'park',
    publish: ReplayPublisher,
    onError: (entry: DeadLetterRecord, err: unknown) => void,
  ): Promise<{ replayed: number; parked: number }> {
    return this.ds.transaction(async (m: EntityManager) => {
      const rows: Row[] = await m.query(
        `SELECT ${COLUMNS} FROM dlq.dead_letters
          WHERE status = 'quarantined' AND quarantine_until <= now()
          ORDER BY quarantine_until LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit],
      );
      let replayed = 0;
      let parked = 0;
      for (const entry of rows.map(toRecord)) {
        if (entry.data === null || decide(entry) === 'park') {
          await m.query(
            `UPDATE dlq.dead_letters SET status = 'parked', quarantine_until = NULL, updated_at = now() WHERE id = $1`,
            [entry.id],
          );
          parked++;
          continue;
        }
        try {
          await this.markReplayed(m, entry, publish);
          replayed++;
        } catch (err) {
          onError(entry, err);
        }
      }
      return { replayed, parked };
    });
  }

  private async markReplayed(
    m: EntityManager,
    entry: DeadLetterRecord,
    publish: ReplayPublisher,
  ): Promise<DeadLetterRecord> {
    const replay = entry.replays + 1;
    // Published before the update commits: if the commit is lost, the next attempt reuses the same
    // replay number and so the same Nats-Msg-Id, which JetStream de-duplicates.
    await publish(entry, replay);
    const rows: Row[] = await m.query(
      `UPDATE dlq.dead_letters SET status = 'replayed', replays = $2, last_replayed_at = now(),
         quarantine_until = NULL, updated_at = now()
        WHERE id = $1 RETURNING ${COLUMNS}`,
      [entry.id, replay],
    );
    const updated = Array.isArray(rows[0]) ? (rows[0] as unknown as Row[])[0] : rows[0];
    return toRecord(updated!);
  }

  private filter(f: DeadLetterFilter, where: string[], params: unknown[]): void {
    if (f.status) {
      params.push(f.status);
      where.push(`status = $${params.length}`);
    }
    if (f.subject) {
      params.push(f.subject);
      where.push(`subject = $${params.length}`);
    }
    if (f.ids) {
      params.push(f.ids.filter((id) => UUID.test(id)));
      where.push(`id = ANY($${params.length}::uuid[])`);
    }
  }
}
