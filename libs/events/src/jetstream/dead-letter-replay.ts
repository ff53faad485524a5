import { DomainError } from '@aob/errors';
import type { JetStreamClient } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
import { dlqSubject } from '../catalog';

/** Message headers as stored with a dead letter (JSON: name -> every value, in order). */
export type StoredHeaders = Record<string, string[]>;

/**
 * The CloudEvent extension attribute a replayed event carries: the replay number (1, 2, ...).
 * A consumer that sees it knows the event comes back from the DLQ on purpose.
 */
export const REPLAY_EXTENSION = 'aobreplay';
export const REPLAY_HEADER = `ce-${REPLAY_EXTENSION}`;

/** Nats-Msg-Id of the DLQ copy: one copy per original stream sequence, however often captured. */
export const deadLetterCopyMsgId = (stream: string, streamSeq: number | string) =>
  `dlq-${stream}-${streamSeq}`;

/** Nats-Msg-Id of replay `n` of dead letter `id`: a retried replay is stored once. */
export const replayMsgId = (id: string, replay: number) => `replay-${id}-${replay}`;

export function headersToRecord(h: MsgHdrs | undefined): StoredHeaders {
  const out: StoredHeaders = {};
  if (!h) return out;
  for (const [name, values] of h) out[name] = [...values];
  return out;
}

/**
 * The headers to publish again: every original header except the server-facing `Nats-*` ones
 * (a stale Nats-Msg-Id would be de-duplicated away, a Nats-Expected-* would fail the publish).
 */
function republishHeaders(stored: StoredHeaders, extra: StoredHeaders = {}): MsgHdrs {
  const h = natsHeaders();
  for (const [name, values] of Object.entries({ ...stored, ...extra })) {
    if (/^nats-/i.test(name)) continue;
    for (const v of values) h.append(name, v);
  }
  return h;
}

/** What is needed to publish a dead message again. */
export interface DeadMessage {
  subject: string;
  headers: StoredHeaders;
  data: Uint8Array;
}

async function publish(
  js: JetStreamClient,
  subject: string,
  data: Uint8Array,
  headers: MsgHdrs,
  msgID: string,
): Promise<{ seq: number; duplicate: boolean }> {
  try {
    const ack = await js.publish(subject, data, { headers, msgID });
    return { seq: ack.seq, duplicate: ack.duplicate };
  } catch (err) {
    throw new DomainError(
      'Unavailable',
      `publish to ${subject} failed: ${(err as Error).message}`,
      {
        retryable: true,
        cause: err,
      },
    );
  }
}

/**
 * Copies a dead message, untouched (same headers, same payload), to `dlq.<original subject>` on the
 * DLQ stream. Idempotent per original stream sequence (Nats-Msg-Id `dlq-<stream>-<seq>`).
 * @throws DomainError('Unavailable', retryable) when JetStream did not acknowledge the publish
 */
export function copyToDeadLetterStream(
  js: JetStreamClient,
  msg: DeadMessage & { stream: string; streamSeq: number | string },
): Promise<{ seq: number; duplicate: boolean }> {
  return publish(
    js,
    dlqSubject(msg.subject),
    msg.data,
    republishHeaders(msg.headers),
    deadLetterCopyMsgId(msg.stream, msg.streamSeq),
  );
}

/**
 * Republishes a dead message to its original subject: same payload and headers (so the same
 * CloudEvent id), a fresh Nats-Msg-Id `replay-<id>-<n>` and the extension header `ce-aobreplay: n`.
 * The shared replay rule of the gateway (`POST /v1/dlq/:id/replay`) and the dlq-replayer's sweeper.
 * @throws DomainError('Unavailable', retryable) when JetStream did not acknowledge the publish
 */
export function replayDeadLetter(
  js: JetStreamClient,
  deadLetterId: string,
  replay: number,
  msg: DeadMessage,
): Promise<{ seq: number; duplicate: boolean }> {
  if (!Number.isInteger(replay) || replay < 1)
    throw new RangeError(`replay number must be a positive integer, got ${replay}`);
  return publish(
    js,
    msg.subject,
    msg.data,
    republishHeaders(msg.headers, { [REPLAY_HEADER]: [String(replay)] }),
    replayMsgId(deadLetterId, replay),
  );
}
