import { Inject, Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from '@aob/persistence';
import { OUTBOX_CHANNEL } from './outbox-wakeup';

export interface NewOutboxMessage {
  eventId: string;
  /** NATS subject. */
  subject: string;
  /** NATS headers of the binary-mode CloudEvent. */
  headers: Record<string, string>;
  payload: Uint8Array;
}

export interface PendingOutboxMessage extends NewOutboxMessage {
  id: string;
  attempts: number;
}

export type PublishOutcome = { id: string; ok: true } | { id: string; ok: false; error: string };

/** gateway.outbox: CloudEvents written with the state they announce, published by OutboxRelay. */
@Injectable()
export class OutboxRepository {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  /**
   * Inside the caller's transaction; the NOTIFY is delivered to every relay when it commits.
   * `ifAbsent`: a row with the same event id (a repeated request) is left as it is.
   */
  async insert(
    m: EntityManager,
    msg: NewOutboxMessage,
    opts: { ifAbsent?: boolean } = {},
  ): Promise<void> {
    await m.query(
      `WITH inserted AS (
         INSERT INTO gateway.outbox (event_id, subject, headers, payload) VALUES ($1, $2, $3::jsonb, $4)
         ${opts.ifAbsent ? 'ON CONFLICT (event_id) DO NOTHING' : ''}
       )
       SELECT pg_notify('${OUTBOX_CHANNEL}', '')`,
      [msg.eventId, msg.subject, JSON.stringify(msg.headers), Buffer.from(msg.payload)],
    );
  }

  /**
   * Locks up to `limit` unsent rows (oldest first, skipping rows another replica holds), hands them
   * to `publish`, and records the outcome in the same transaction: sent rows get sent_at, failed
   * ones an attempt and the error. Returns the outcomes.
   */
  async publishBatch(
    limit: number,
    publish: (rows: PendingOutboxMessage[]) => Promise<PublishOutcome[]>,
  ): Promise<PublishOutcome[]> {
    return this.ds.transaction(async (m) => {
      const rows: {
        id: string;
        event_id: string;
        subject: string;
        headers: Record<string, string>;
        payload: Buffer;
        attempts: number;
      }[] = await m.query(
        `SELECT id, event_id, subject, headers, payload, attempts FROM gateway.outbox
            WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit],
      );
      if (rows.length === 0) return [];
      const outcomes = await publish(
        rows.map((r) => ({
          id: String(r.id),
          eventId: r.event_id,
          subject: r.subject,
          headers: r.headers,
          payload: r.payload,
          attempts: r.attempts,
        })),
      );
      const sent = outcomes.filter((o) => o.ok).map((o) => o.id);
      if (sent.length > 0) {
        await m.query(
          `UPDATE gateway.outbox SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1::bigint[])`,
          [sent],
        );
      }
      const failed = outcomes.filter((o): o is Extract<PublishOutcome, { ok: false }> => !o.ok);
      if (failed.length > 0) {
        await m.query(
          `UPDATE gateway.outbox o SET attempts = o.attempts + 1, last_error = f.error
             FROM unnest($1::bigint[], $2::text[]) AS f(id, error) WHERE o.id = f.id`,
          [failed.map((f) => f.id), failed.map((f) => f.error.slice(0, 2_000))],
        );
      }
      return outcomes;
    });
  }

  /** Unsent rows (the relay's backlog). */
  async backlog(): Promise<number> {
    const rows: { n: string }[] = await this.ds.query(
      `SELECT count(*) AS n FROM gateway.outbox WHERE sent_at IS NULL`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  /** Deletes sent rows older than the retention, a bounded batch at a time. Returns how many went. */
  async pruneSent(olderThanHours: number, batch = 10_000): Promise<number> {
    let total = 0;
    for (;;) {
      // A CTE so the driver answers rows of a SELECT (TypeORM reshapes DELETE results).
      const rows: { n: string }[] = await this.ds.query(
        `WITH gone AS (
           DELETE FROM gateway.outbox WHERE id IN (
             SELECT id FROM gateway.outbox WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => $1::double precision)
              LIMIT $2)
           RETURNING id)
         SELECT count(*) AS n FROM gone`,
        [olderThanHours * 3600, batch],
      );
      const n = Number(rows[0]?.n ?? 0);
      total += n;
      if (n < batch) return total;
    }
  }
}
