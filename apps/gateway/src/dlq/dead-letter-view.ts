import { z } from 'zod';
import {
  DEAD_LETTER_STATUSES,
  type DeadLetterRecord,
  type DeadLetterStatus,
} from '@aob/persistence';
import { pageQuerySchema } from '../common/list-query';

/** A dead letter as `/v1/dlq` shows it (CONTRACT.md section 6). */
export interface DeadLetterView {
  id: string;
  /** null: the message named no tenant (not a CloudEvent); only platform admins see these. */
  tenantId: string | null;
  subject: string;
  eventId: string | null;
  type: string | null;
  reason: string;
  code?: string;
  deliveries: number;
  replays: number;
  status: DeadLetterStatus;
  firstFailedAt: string;
  lastFailedAt: string;
  quarantineUntil?: string;
  lastReplayedAt?: string;
}

export function toDeadLetterView(r: DeadLetterRecord): DeadLetterView {
  return {
    id: r.id,
    tenantId: r.tenantId,
    subject: r.subject,
    eventId: r.eventId,
    type: r.type,
    reason: r.reason,
    ...(r.code === null ? {} : { code: r.code }),
    deliveries: r.deliveries,
    replays: r.replays,
    status: r.status,
    firstFailedAt: r.firstFailedAt.toISOString(),
    lastFailedAt: r.lastFailedAt.toISOString(),
    ...(r.quarantineUntil === null ? {} : { quarantineUntil: r.quarantineUntil.toISOString() }),
    ...(r.lastReplayedAt === null ? {} : { lastReplayedAt: r.lastReplayedAt.toISOString() }),
  };
}

const subjectSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9_.-]+$/, 'must be a concrete NATS subject (no wildcards)');

export const deadLetterListQuerySchema = pageQuerySchema.extend({
  status: z.enum(DEAD_LETTER_STATUSES).optional(),
  subject: subjectSchema.optional(),
});
export type DeadLetterListQueryInput = z.infer<typeof deadLetterListQuerySchema>;

/** Body of `POST /v1/dlq/replay`: every matching entry (not discarded) is replayed. */
export const bulkReplaySchema = z
  .object({
    status: z.enum(DEAD_LETTER_STATUSES).optional(),
    subject: subjectSchema.optional(),
    ids: z.array(z.uuid()).min(1).max(1_000).optional(),
  })
  .strict();
export type BulkReplayInput = z.infer<typeof bulkReplaySchema>;
