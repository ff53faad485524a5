import type { UsageRecord } from '@aob/events';

/** A usage event as ingestion stores it: the CloudEvent identity plus its validated data. */
export interface UsageEntry {
  source: string;
  eventId: string;
  record: UsageRecord;
}

/** Cost committed for one tenant in one billing period by one batch. */
export interface CommittedSpend {
  tenantId: string;
  /** `YYYY-MM` (UTC) of the records' `at`. */
  period: string;
  costUsd: number;
  records: number;
}
