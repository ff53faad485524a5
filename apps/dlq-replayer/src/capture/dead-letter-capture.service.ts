import { Inject, Injectable, Logger } from '@nestjs/common';
import type { JetStreamClient, JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import {
  JETSTREAM,
  JETSTREAM_MANAGER,
  REPLAY_HEADER,
  STREAMS,
  copyToDeadLetterStream,
  decodeCloudEventDetailed,
  headersToRecord,
} from '@aob/events';
import { counter } from '@aob/observability';
import {
  DeadLetterRepository,
  TerminationRepository,
  type TerminationRecord,
} from '@aob/persistence';
import { DLQ_REPLAYER_CONFIG, type DlqReplayerConfig } from '../config';
import { afterFailure } from '../replay/replay-policy';
import type { DeadMessageAdvisory, DeadMessageAdvisoryKind } from './advisory';

export type CaptureOutcome = 'captured' | 'reopened' | 'duplicate' | 'ignored';

/** Streams whose dead messages are not captured: our own plumbing (a loop otherwise). */
const OWN_STREAMS: ReadonlySet<string> = new Set([STREAMS.AOB_ADVISORIES.name, STREAMS.DLQ.name]);

const capturedCounter = () =>
  counter({
    name: 'aob_dlq_captured_total',
    help: 'Dead-message advisories handled by the dlq-replayer, by advisory kind and outcome',
    labelNames: ['kind', 'outcome'] as const,
  });

interface CloudEventFacts {
  eventId: string | null;
  type: string | null;
  tenantId: string | null;
}

/** Non-CloudEvents are still captured: with no tenant, only platform admins see them. */
function cloudEventFacts(original: StoredMsg | null): CloudEventFacts | undefined {
  if (!original) return undefined;
  try {
    const { event, attributes } = decodeCloudEventDetailed({
      headers: original.header,
      data: original.data,
    });
    const tenant = attributes.tenantid;
    return {
      eventId: event.id,
      type: event.type,
      tenantId: typeof tenant === 'string' && tenant !== '' ? tenant : null,
    };
  } catch {
    return undefined;
  }
}

function reasonFor(
  kind: DeadMessageAdvisoryKind,
  adv: DeadMessageAdvisory,
  termination: TerminationRecord | null,
  originalGone: boolean,
): string {
  let reason: string;
  if (kind === 'max_deliveries') {
    reason = termination
      ? `max deliveries reached: ${termination.reason}`
      : 'max deliveries reached';
  } else {
    reason =
      termination?.reason ??
      `terminated by consumer ${adv.stream}/${adv.consumer} (no reason recorded)`;
  }
  if (originalGone)
    reason += ` (the original, ${adv.stream} seq ${adv.stream_seq}, was no longer in the stream)`;
  return reason;
}

/**
 * Turns one dead-message advisory into a dead letter: fetches the original by stream sequence,
 * joins the reason its consumer recorded, copies it to `dlq.<subject>` and stores the entry.
 * Idempotent: a re-delivered advisory finds its entry and changes nothing.
 */
@Injectable()
export class DeadLetterCaptureService {
  private readonly log = new Logger(DeadLetterCaptureService.name);
  private readonly captured = capturedCounter();

  constructor(
    @Inject(JETSTREAM) private readonly js: JetStreamClient,
    @Inject(JETSTREAM_MANAGER) private readonly jsm: JetStreamManager,
    private readonly deadLetters: DeadLetterRepository,
    private readonly terminations: TerminationRepository,
    @Inject(DLQ_REPLAYER_CONFIG) private readonly config: DlqReplayerConfig,
  ) {}

  async capture(kind: DeadMessageAdvisoryKind, adv: DeadMessageAdvisory): Promise<CaptureOutcome> {
    const outcome = await this.captureOnce(kind, adv);
    this.captured.inc({ kind, outcome });
    return outcome;
  }

  private async captureOnce(
    kind: DeadMessageAdvisoryKind,
    adv: DeadMessageAdvisory,
  ): Promise<CaptureOutcome> {
    if (OWN_STREAMS.has(adv.stream)) {
      this.log.warn(`ignoring a dead message of ${adv.stream} seq ${adv.stream_seq}: not captured`);
      return 'ignored';
    }
    if (await this.deadLetters.existsAt(adv.stream, adv.stream_seq)) return 'duplicate';

    const original = await this.jsm.streams.getMessage(adv.stream, { seq: adv.stream_seq });
    const termination = await this.terminations.find(adv.stream, adv.consumer, adv.stream_seq);
    const facts = cloudEventFacts(original);
    const eventId = facts?.eventId ?? termination?.eventId ?? null;
    const type = facts?.type ?? termination?.eventType ?? null;
    const tenantId = facts ? facts.tenantId : (termination?.tenantId ?? null);
    const code = termination?.code ?? (kind === 'max_deliveries' ? 'MaxDeliveries' : null);
    const reason = reasonFor(kind, adv, termination, original === null);
    const subject = original?.subject ?? termination?.subject ?? `unknown.${adv.stream}`;
    const policy = {
      quarantineMs: this.config.DLQ_QUARANTINE_MS,
      maxReplays: this.config.DLQ_MAX_REPLAYS,
    };

    if (original) {
      const headers = headersToRecord(original.header);
      // Copy first, store second: a crash in between re-copies under the same Nats-Msg-Id.
      await copyToDeadLetterStream(this.js, {
        stream: adv.stream,
        streamSeq: adv.stream_seq,
        subject: original.subject,
        headers,
        data: original.data,
      });
      if (eventId !== null && original.header?.has(REPLAY_HEADER)) {
        const reopened = await this.deadLetters.reopenAfterFailedReplay({
          subject: original.subject,
          eventId,
          stream: adv.stream,
          consumer: adv.consumer,
          streamSeq: adv.stream_seq,
          code,
          reason,
          deliveries: adv.deliveries,
          next: (replays) => afterFailure(code, replays, policy),
        });
        if (reopened !== null) {
          this.log.warn(`replay of dead letter ${reopened} failed again: ${reason}`);
          return 'reopened';
        }
      }
      const next = afterFailure(code, 0, policy);
      const { id, created } = await this.deadLetters.insert({
        tenantId,
        stream: adv.stream,
        consumer: adv.consumer,
        streamSeq: adv.stream_seq,
        subject: original.subject,
        eventId,
        type,
        code,
        reason,
        deliveries: adv.deliveries,
        status: next.status,
        quarantineUntil: next.quarantineUntil,
        headers,
        data: original.data,
      });
      if (created)
        this.log.warn(
          `dead letter ${id}: ${original.subject} (${adv.stream} seq ${adv.stream_seq}, tenant ${tenantId ?? 'unknown'}) ${next.status}: ${reason}`,
        );
      return created ? 'captured' : 'duplicate';
    }

    // Nothing left to replay: kept for the record, parked for a human.
    const { id, created } = await this.deadLetters.insert({
      tenantId,
      stream: adv.stream,
      consumer: adv.consumer,
      streamSeq: adv.stream_seq,
      subject,
      eventId,
      type,
      code,
      reason,
      deliveries: adv.deliveries,
      status: 'parked',
      quarantineUntil: null,
      headers: {},
      data: null,
    });
    if (created) this.log.warn(`dead letter ${id}: ${reason}`);
    return created ? 'captured' : 'duplicate';
  }
}
