import type { DataSource } from '@aob/persistence';
import type { BillingPeriod } from './billing-period';
import type { QuotaOverrides } from './quota-limits';
import type { QuotaStore } from './quota-limiter';

interface OverrideRow {
  requests_per_second: number | null;
  burst: number | null;
  tokens_per_minute: string | null;
  monthly_budget_usd: string | null;
}

const num = (v: string | number | null) => (v === null ? null : Number(v));

/** metering.tenant_quotas (overrides) and the month's committed cost from metering.usage_daily. */
export class QuotaRepository implements QuotaStore {
  constructor(private readonly ds: DataSource) {}

  async findOverrides(tenantId: string): Promise<QuotaOverrides | null> {
    const rows: OverrideRow[] = await this.ds.query(
      `SELECT requests_per_second, burst, tokens_per_minute, monthly_budget_usd
         FROM metering.tenant_quotas WHERE tenant_id = $1`,
      [tenantId],
    );
    const row = rows[0];
    if (!row) return null;
    return {
      requestsPerSecond: num(row.requests_per_second),
      burst: num(row.burst),
      tokensPerMinute: num(row.tokens_per_minute),
      monthlyBudgetUsd: num(row.monthly_budget_usd),
    };
  }

  /** Replaces the tenant's overrides (a field left out or null falls back to the default). */
  async saveOverrides(tenantId: string, o: QuotaOverrides, updatedBy: string): Promise<void> {
    await this.ds.query(
      `INSERT INTO metering.tenant_quotas
         (tenant_id, requests_per_second, burst, tokens_per_minute, monthly_budget_usd, updated_by, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, now())
       ON CONFLICT (tenant_id) DO UPDATE SET
         requests_per_second = EXCLUDED.requests_per_second, burst = EXCLUDED.burst,
         tokens_per_minute = EXCLUDED.tokens_per_minute, monthly_budget_usd = EXCLUDED.monthly_budget_usd,
         updated_by = EXCLUDED.updated_by, updated_at = now()`,
      [
        tenantId,
        o.requestsPerSecond ?? null,
        o.burst ?? null,
        o.tokensPerMinute ?? null,
        o.monthlyBudgetUsd ?? null,
        updatedBy,
      ],
    );
  }

  async monthSpendUsd(tenantId: string, period: BillingPeriod): Promise<number> {
    const rows: { cost: string | null }[] = await this.ds.query(
      `SELECT SUM(cost_usd) AS cost FROM metering.usage_daily
        WHERE tenant_id = $1 AND day >= $2::date AND day < $3::date`,
      [tenantId, period.start.toISOString().slice(0, 10), period.end.toISOString().slice(0, 10)],
    );
    return Number(rows[0]?.cost ?? 0);
  }
}
