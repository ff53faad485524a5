import type { JsMsg } from '@nats-io/jetstream';
import { isDomainError } from '@aob/errors';

/** What to tell JetStream about one delivery. */
export type Settlement =
  | { action: 'ack' }
  | { action: 'nak'; delayMs: number }
  | { action: 'term'; code: string; reason: string };

/** How handling one delivery went. `poison` marks failures no retry can fix (decode, schema, size, type). */
export type HandlingOutcome = { ok: true } | { ok: false; error: unknown; poison?: boolean };

export interface DeliveryAttempt {
  /** 1 on the first delivery. */
  deliveryCount: number;
  /** Consumer max_deliver; <= 0 means unlimited. */
  maxDeliver: number;
}

export interface RetryPolicy {
  retryBaseMs: number;
  retryMaxMs: number;
}

/**
 * Exponential backoff with full jitter: uniform in [0, min(max, base * 2^(attempt-1))).
 * Full jitter spreads a burst of failures (say, a provider outage) instead of retrying in lockstep.
 */
export function retryDelayMs(
  deliveryCount: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(deliveryCount - 1, 0), 30);
  const ceiling = Math.min(policy.retryMaxMs, policy.retryBaseMs * 2 ** exponent);
  return Math.floor(random() * ceiling);
}

/** Code and message of anything a handler may throw, including Nest's `{status, message}` error objects. */
export function describeFailure(error: unknown): {
  code: string;
  message: string;
  retryable: boolean;
} {
  if (isDomainError(error))
    return { code: error.code, message: error.message, retryable: error.retryable };
  if (error instanceof Error)
    return { code: 'Internal', message: error.message || error.name, retryable: true };
  if (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { message?: unknown }).message === 'string'
  ) {
    return { code: 'Internal', message: (error as { message: string }).message, retryable: true };
  }
  return { code: 'Internal', message: String(error), retryable: true };
}

function retryAfterMs(error: unknown): number | undefined {
  if (!isDomainError(error)) return undefined;
  const value = error.details?.retryAfterMs;
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
    ? Math.round(value)
    : undefined;
}

/**
 * The one place that maps a handling outcome to ack / nak(delay) / term.
 * - success: ack
 * - poison (not a CloudEvent, invalid data, unknown type, too large): term at once
 * - non-retryable DomainError: term at once
 * - retryable DomainError or any other error: nak(backoff), or term on the last delivery
 */
export function settlementFor(
  outcome: HandlingOutcome,
  delivery: DeliveryAttempt,
  policy: RetryPolicy,
  random: () => number = Math.random,
): Settlement {
  if (outcome.ok) return { action: 'ack' };
  const failure = describeFailure(outcome.error);
  if (outcome.poison || !failure.retryable)
    return { action: 'term', code: failure.code, reason: failure.message };
  if (delivery.maxDeliver > 0 && delivery.deliveryCount >= delivery.maxDeliver) {
    return {
      action: 'term',
      code: failure.code,
      reason: `gave up after ${delivery.deliveryCount} deliveries: ${failure.message}`,
    };
  }
  return {
    action: 'nak',
    delayMs: retryAfterMs(outcome.error) ?? retryDelayMs(delivery.deliveryCount, policy, random),
  };
}

/** Why and what was terminated: recorded durably (DLQ) by onTerminate, since 2.9.10 drops term reasons. */
export interface TerminationInfo {
  stream: string;
  durable: string;
  streamSeq: number;
  natsSubject: string;
  deliveryCount: number;
  /** DomainError code (`InvalidEvent`, `PayloadTooLarge`, a handler's code, or `Internal`). */
  code: string;
  reason: string;
  eventId?: string;
  eventType?: string;
  tenantId?: string;
}

/** The record of `msg` of `consumer` about to be terminated for `why` (optional fields only when known). */
export function terminationInfo(
  msg: JsMsg,
  consumer: { stream: string; durable: string },
  why: {
    code: string;
    reason: string;
    eventId?: string | undefined;
    eventType?: string | undefined;
    tenantId?: string | undefined;
  },
): TerminationInfo {
  const info: TerminationInfo = {
    stream: consumer.stream,
    durable: consumer.durable,
    streamSeq: msg.info.streamSequence,
    natsSubject: msg.subject,
    deliveryCount: msg.info.deliveryCount,
    code: why.code,
    reason: why.reason,
  };
  if (why.eventId !== undefined) info.eventId = why.eventId;
  if (why.eventType !== undefined) info.eventType = why.eventType;
  if (why.tenantId !== undefined) info.tenantId = why.tenantId;
  return info;
}
