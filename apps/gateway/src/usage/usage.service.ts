import { Injectable } from '@nestjs/common';
import type { UsageGroup, UsageQuery } from './usage-query';
import { UsageRepository, type UsageSums } from './usage.repository';

export type UsageItem = { [K in UsageGroup]?: string | null } & UsageSums;

export interface UsageReport {
  items: UsageItem[];
  totals: UsageSums;
  from: string;
  to: string;
  groupBy: UsageGroup;
}

/** GET /v1/usage: the tenant's daily aggregates grouped by one dimension, with totals. */
@Injectable()
export class UsageService {
  constructor(private readonly usage: UsageRepository) {}

  async report(tenantId: string, q: UsageQuery): Promise<UsageReport> {
    const rows = await this.usage.grouped(tenantId, q);
    const items: UsageItem[] = rows.map(({ key, ...sums }) => ({
      // usage outside any run is stored under agent '' and reported as null
      [q.groupBy]: q.groupBy === 'agent' && key === '' ? null : key,
      ...sums,
    }));
    const totals: UsageSums = {
      requests: 0,
      promptTokens: 0,
      completionTokens: 0,
      totalTokens: 0,
      costUsd: 0,
    };
    for (const r of rows) {
      totals.requests += r.requests;
      totals.promptTokens += r.promptTokens;
      totals.completionTokens += r.completionTokens;
      totals.totalTokens += r.totalTokens;
      totals.costUsd += r.costUsd;
    }
    // sums of exact decimals: round away float noise (costs carry at most 10 decimals)
    totals.costUsd = Math.round(totals.costUsd * 1e10) / 1e10;
    return { items, totals, from: q.from, to: q.to, groupBy: q.groupBy };
  }
}
