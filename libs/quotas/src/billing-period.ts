/** A UTC calendar month: the window of monthlyBudgetUsd. */
export interface BillingPeriod {
  /** `YYYY-MM`. */
  id: string;
  /** First instant, inclusive. */
  start: Date;
  /** First instant of the next month, exclusive. */
  end: Date;
}

export function billingPeriod(at: Date): BillingPeriod {
  const start = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
  const end = new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1));
  return { id: start.toISOString().slice(0, 7), start, end };
}

/** The period of a `YYYY-MM` id. */
export function billingPeriodOf(id: string): BillingPeriod {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(id))
    throw new Error(`invalid billing period "${id}" (YYYY-MM)`);
  return billingPeriod(new Date(`${id}-01T00:00:00Z`));
}
