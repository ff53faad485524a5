import { z } from 'zod';

/** The two JetStream advisories that mean "this message is dead". */
export type DeadMessageAdvisoryKind = 'max_deliveries' | 'terminated';

/**
 * Fields the capture needs from `io.nats.jetstream.advisory.v1.max_deliver` and
 * `io.nats.jetstream.advisory.v1.terminated` (nats-server 2.9: no `reason` in the latter).
 */
export const deadMessageAdvisorySchema = z.object({
  type: z.string(),
  stream: z.string().min(1),
  consumer: z.string().min(1),
  stream_seq: z.number().int().positive(),
  deliveries: z.number().int().nonnegative(),
});
export type DeadMessageAdvisory = z.infer<typeof deadMessageAdvisorySchema>;

/** Kind of advisory by its subject `$JS.EVENT.ADVISORY.CONSUMER.<KIND>.<stream>.<consumer>`. */
export function advisoryKind(subject: string): DeadMessageAdvisoryKind | undefined {
  if (subject.startsWith('$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.')) return 'max_deliveries';
  if (subject.startsWith('$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.')) return 'terminated';
  return undefined;
}

/** Parses an advisory payload; undefined when it is not one the capture understands. */
export function parseAdvisory(data: Uint8Array): DeadMessageAdvisory | undefined {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch {
    return undefined;
  }
  const parsed = deadMessageAdvisorySchema.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}
