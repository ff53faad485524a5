import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from '@aob/persistence';
import type { UsageGroup, UsageQuery } from './usage-query';

export interface UsageSums {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  costUsd: number;
}

export interface UsageGroupRow extends UsageSums {
  /** The group's key: model, deployment, agent ('' outside runs) or day (YYYY-MM-DD). */
  key: string;
}

/** Fixed SQL per group: the column name never comes from the request. */
const GROUP_SQL: Record<UsageGroup, string> = {
  model: 'model',
  deployment: 'deployment',
  agent: 'agent',
  day: `to_char(day, 'YYYY-MM-DD')`,
};

/** metering.usage_daily, read-only and always filtered by tenant (metering writes it). */
@Injectable()
export class UsageRepository {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  async grouped(tenantId: string, q: UsageQuery): Promise<UsageGroupRow[]> {
    const key = GROUP_SQL[q.groupBy];
    const rows: {
      key: string;
      requests: string;
      prompt: string;
      completion: string;
      total: string;
      cost: string;
    }[] = await this.ds.query(
      `SELECT ${key} AS key, sum(requests) AS requests, sum(prompt_tokens) AS prompt,
                sum(completion_tokens) AS completion, sum(total_tokens) AS total, sum(cost_usd)::text AS cost
           FROM metering.usage_daily
          WHERE tenant_id = $1 AND day >= $2::date AND day <= $3::date
          GROUP BY 1 ORDER BY 1`,
      [tenantId, q.from, q.to],
    );
    return rows.map((r) => ({
      key: r.key,
      requests: Number(r.requests),
      promptTokens: Number(r.prompt),
      completionTokens: Number(r.completion),
      totalTokens: Number(r.total),
      costUsd: Number(r.cost),
    }));
  }
}
