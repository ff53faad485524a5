import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from '@aob/persistence';
import type { CommittedSpend, UsageEntry } from './usage-entry';

/**
 * Raw records and daily aggregates of metering, written together in one statement: the raw
 * INSERT ... ON CONFLICT DO NOTHING RETURNING yields only rows new to the table, and only those
 * are added to the aggregates. Rows are sorted by key so concurrent batches lock in one order.
 */
const INSERT_BATCH_SQL = `
WITH input AS (
  SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::bigint[], $10::bigint[], $11::numeric[], $12::float8[], $13::timestamptz[]
  ) AS i(source, event_id, tenant_id, run_id, agent, requested, model, deployment,
         prompt_tokens, completion_tokens, cost_usd, latency_ms, occurred_at)
), ins AS (
  INSERT INTO metering.usage_records
    (source, event_id, tenant_id, run_id, agent, requested, model, deployment,
     prompt_tokens, completion_tokens, cost_usd, latency_ms, occurred_at)
  SELECT * FROM input ORDER BY source, event_id
  ON CONFLICT (source, event_id) DO NOTHING
  RETURNING tenant_id, agent, model, deployment, prompt_tokens, completion_tokens, cost_usd, occurred_at
), agg AS (
  INSERT INTO metering.usage_daily AS d
    (tenant_id, day, model, deployment, agent, requests, prompt_tokens, completion_tokens, total_tokens, cost_usd)
  SELECT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, model, deployment, COALESCE(agent, ''),
         count(*), sum(prompt_tokens), sum(completion_tokens), sum(prompt_tokens + completion_tokens), sum(cost_usd)
    FROM ins GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (tenant_id, day, model, deployment, agent) DO UPDATE SET
    requests = d.requests + EXCLUDED.requests,
    prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens,
    total_tokens = d.total_tokens + EXCLUDED.total_tokens,
    cost_usd = d.cost_usd + EXCLUDED.cost_usd,
    updated_at = now()
  RETURNING 1
)
SELECT tenant_id, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM') AS period,
       sum(cost_usd)::text AS cost, count(*)::int AS records
  FROM ins GROUP BY 1, 2`;

@Injectable()
export class UsageRecordRepository {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  /**
   * Stores a batch in one transaction (a single statement). Entries already stored, in this batch
   * or any earlier one, change nothing. Returns the cost newly committed per tenant and period.
   */
  async insertBatch(entries: readonly UsageEntry[]): Promise<CommittedSpend[]> {
    if (entries.length === 0) return [];
    // a key twice in one batch: keep the first (ON CONFLICT would too, but the arrays stay smaller)
    const seen = new Set<string>();
    const unique = entries.filter((e) => {
      const k = `${e.source}\u0000${e.eventId}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    const col = <V>(f: (e: UsageEntry) => V) => unique.map(f);
    const rows: { tenant_id: string; period: string; cost: string; records: number }[] =
      await this.ds.query(INSERT_BATCH_SQL, [
        col((e) => e.source),
        col((e) => e.eventId),
        col((e) => e.record.tenantId),
        col((e) => e.record.runId ?? null),
        col((e) => e.record.agent ?? null),
        col((e) => e.record.requested ?? null),
        col((e) => e.record.model),
        col((e) => e.record.deployment),
        col((e) => e.record.promptTokens),
        col((e) => e.record.completionTokens),
        // as text: numeric keeps exactly the decimal the event carried
        col((e) => String(e.record.costUsd)),
        col((e) => e.record.latencyMs),
        col((e) => e.record.at),
      ]);
    return rows.map((r) => ({
      tenantId: r.tenant_id,
      period: r.period,
      costUsd: Number(r.cost),
      records: r.records,
    }));
  }

  /** Deletes up to `limit` raw records received before `before`; returns how many. */
  async pruneRawRecords(before: Date, limit: number): Promise<number> {
    const result: [unknown[], number] = await this.ds.query(
      `DELETE FROM metering.usage_records WHERE ctid IN (
         SELECT ctid FROM metering.usage_records WHERE received_at < $1 LIMIT $2)`,
      [before, limit],
    );
    return result[1];
  }
}
