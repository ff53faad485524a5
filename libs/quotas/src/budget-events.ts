import type { EventPublisher } from '@aob/events';
import type { BudgetNotification } from './quota-limiter';

/** Deterministic CloudEvent id: every replica that notices the crossing publishes the same event. */
export function budgetEventId(n: Pick<BudgetNotification, 'kind' | 'tenantId' | 'period'>): string {
  return `${n.tenantId}.monthly-budget.${n.period}.${n.kind}`;
}

/**
 * `onNotification` for QuotaLimiter: `metering.quota.exceeded` at 100 %, `metering.budget.warning`
 * at the warning fraction, with ids that de-duplicate across replicas (Nats-Msg-Id = id).
 */
export function publishBudgetNotification(publisher: EventPublisher) {
  return async (n: BudgetNotification): Promise<void> => {
    const base = {
      tenantId: n.tenantId,
      limit: 'monthlyBudgetUsd',
      window: n.period,
      observed: n.spendUsd,
    };
    const opts = { id: budgetEventId(n), tenantId: n.tenantId };
    if (n.kind === 'exceeded') await publisher.publish('quotaExceeded', base, opts);
    else await publisher.publish('budgetWarning', { ...base, threshold: n.threshold }, opts);
  };
}
