import { randomUUID } from 'node:crypto';
import { DomainError } from '@aob/errors';
import type { JetStreamClient } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/nats-core';
import {
  startMessageSpan,
  tracingEnabled,
  type MessageSpan,
  type TraceCarrier,
} from '@aob/observability';
import { CloudEvent } from 'cloudevents';
import { encodeBinary } from '../binding/cloud-event-codec';
import { JSON_CONTENT_TYPE } from '../binding/nats-binding';
import { percentEncodeHeaderValue } from '../binding/percent-encoding';
import { EVENTS, type EventData, type EventKey } from '../catalog';
import { subjectMatches } from './subject-match';

export interface PublishOptions {
  /** CloudEvent id. @default a random UUID v4 */
  id?: string;
  /** NATS subject. Required when the catalog subject has a wildcard (e.g. `agent.execute.<agent>`). @default the catalog subject */
  subject?: string;
  /** `tenantid` extension attribute. */
  tenantId?: string;
  /** CloudEvent `subject` attribute (AOB status events: the run id). */
  ceSubject?: string;
  /** W3C trace context (CloudEvents distributed-tracing extension). */
  traceparent?: string;
  tracestate?: string;
  /** CloudEvent `time`, RFC 3339. @default now */
  time?: string;
  /** Nats-Msg-Id for JetStream de-duplication. @default the event id */
  msgId?: string;
}

export interface PublishResult {
  /** CloudEvent id. */
  id: string;
  /** Stream sequence the message was stored at (the original one when `duplicate`). */
  seq: number;
  /** True when JetStream had already stored this Nats-Msg-Id within the duplicate window. */
  duplicate: boolean;
}

/** An RFC 3339 timestamp exactly as Date#toISOString writes it (what AOB passes as `time`). */
function isCanonicalTimestamp(value: unknown): boolean {
  if (typeof value !== 'string' || value.length !== 24) return false;
  const ms = Date.parse(value);
  return !Number.isNaN(ms) && new Date(ms).toISOString() === value;
}

/**
 * `aob.run_id` of a span: `data.runId`, else the CloudEvent subject (status events: the run id),
 * else `fallback` (an execute request without runId runs under its event id).
 */
export function runIdOf(ceSubject: unknown, data: unknown, fallback?: string): { runId?: string } {
  const runId = (data as { runId?: unknown } | null | undefined)?.runId;
  if (typeof runId === 'string') return { runId };
  if (typeof ceSubject === 'string' && ceSubject !== '') return { runId: ceSubject };
  return fallback === undefined ? {} : { runId: fallback };
}

/**
 * Publishes catalog events to JetStream as binary-mode CloudEvents. Every publish carries
 * Nats-Msg-Id (the event id unless told otherwise) so a retried publish is stored once.
 */
export class EventPublisher {
  /** The source passed the SDK's schema check once (it never changes). */
  private sourceChecked = false;

  constructor(
    private readonly js: JetStreamClient,
    private readonly source: string,
  ) {}

  /**
   * Validates `data` against the catalog schema and publishes it.
   * @throws DomainError('InvalidRequest') when data or subject do not fit the catalog entry
   * @throws DomainError('Unavailable', retryable) when JetStream did not acknowledge the publish
   */
  async publish<K extends EventKey>(
    key: K,
    data: EventData<K>,
    opts: PublishOptions = {},
  ): Promise<PublishResult> {
    const definition = EVENTS[key];
    const parsed = definition.schema.safeParse(data);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({
        path: i.path.join('.'),
        message: i.message,
      }));
      throw new DomainError(
        'InvalidRequest',
        `invalid ${definition.type} data: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`,
        { details: { issues } },
      );
    }
    const subject = opts.subject ?? definition.subject;
    if (/[*>]/.test(subject)) {
      throw new DomainError(
        'InvalidRequest',
        `publishing ${definition.type} needs a concrete NATS subject matching ${definition.subject}`,
      );
    }
    if (!subjectMatches(definition.subject, subject)) {
      throw new DomainError(
        'InvalidRequest',
        `subject ${subject} does not match ${definition.subject} of ${definition.type}`,
      );
    }
    const id = opts.id ?? randomUUID();
    // Tracing on: a producer span (child of the active span, else of the given trace context)
    // whose context the event carries, so its consumers continue this trace.
    const span = !tracingEnabled()
      ? undefined
      : startMessageSpan(
          {
            operation: 'publish',
            destination: subject,
            messageId: opts.msgId ?? id,
            eventType: definition.type,
            eventSource: this.source,
            ...(opts.tenantId === undefined ? {} : { tenantId: opts.tenantId }),
            ...runIdOf(opts.ceSubject, parsed.data),
          },
          opts,
        );
    const trace = span === undefined ? opts : span.carrier();
    const attributes: Record<string, unknown> = {
      id,
      source: this.source,
      type: definition.type,
      time: opts.time ?? new Date().toISOString(),
      datacontenttype: JSON_CONTENT_TYPE,
      data: parsed.data,
    };
    // The SDK rejects extension attributes whose value is undefined: only set what was given.
    if (opts.ceSubject !== undefined) attributes.subject = opts.ceSubject;
    if (opts.tenantId !== undefined) attributes.tenantid = opts.tenantId;
    if (trace.traceparent !== undefined) attributes.traceparent = trace.traceparent;
    if (trace.tracestate !== undefined) attributes.tracestate = trace.tracestate;
    let event: CloudEvent<unknown>;
    try {
      event = new CloudEvent<unknown>(attributes, this.needsSchemaCheck(opts));
      this.sourceChecked = true;
    } catch (err) {
      const error = new DomainError(
        'InvalidRequest',
        `invalid CloudEvent attributes for ${definition.type}: ${(err as Error).message}`,
        { cause: err },
      );
      span?.end(error);
      throw error;
    }
    const { headers, data: payload } = encodeBinary(event);
    return this.send(subject, event, headers, payload, opts.msgId ?? event.id, span);
  }

  /**
   * Whether the SDK's JSON-schema validation (ajv, the costliest part of building an event) must run.
   * The attributes come from the catalog (type), this publisher (source, checked on the first
   * publish), or are generated here (id, time); the SDK check runs whenever a caller-given value is
   * not plainly valid, so an invalid one fails exactly as before.
   */
  private needsSchemaCheck(opts: PublishOptions): boolean {
    if (!this.sourceChecked) return true;
    if (opts.time !== undefined && !isCanonicalTimestamp(opts.time)) return true;
    if (
      opts.ceSubject !== undefined &&
      (typeof opts.ceSubject !== 'string' || opts.ceSubject === '')
    )
      return true;
    for (const v of [opts.id, opts.tenantId, opts.traceparent, opts.tracestate]) {
      if (v !== undefined && typeof v !== 'string') return true;
    }
    return false;
  }

  /** Publishes an already-built CloudEvent (e.g. a dead letter being replayed) in binary mode. */
  async publishCloudEvent(
    natsSubject: string,
    event: CloudEvent<unknown>,
    opts: { msgId?: string } = {},
  ): Promise<PublishResult> {
    const { headers, data } = encodeBinary(event);
    const msgId = opts.msgId ?? event.id;
    if (!tracingEnabled()) return this.send(natsSubject, event, headers, data, msgId, undefined);
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const given: TraceCarrier = {
      traceparent: str(event.traceparent),
      tracestate: str(event.tracestate),
    };
    const span = startMessageSpan(
      {
        operation: 'publish',
        destination: natsSubject,
        messageId: msgId,
        eventType: event.type,
        eventSource: event.source,
        ...(str(event.tenantid) === undefined ? {} : { tenantId: str(event.tenantid) }),
        ...runIdOf(event.subject, event.data),
      },
      given,
    );
    // An existing event keeps its own (origin) trace context; one without gets this span's.
    if (span !== undefined && given.traceparent === undefined) {
      const carrier = span.carrier();
      if (carrier.traceparent !== undefined) headers.set('ce-traceparent', carrier.traceparent);
      if (carrier.tracestate !== undefined)
        headers.set('ce-tracestate', percentEncodeHeaderValue(carrier.tracestate));
    }
    return this.send(natsSubject, event, headers, data, msgId, span);
  }

  private async send(
    natsSubject: string,
    event: CloudEvent<unknown>,
    headers: MsgHdrs,
    data: Uint8Array,
    msgId: string,
    span: MessageSpan | undefined,
  ): Promise<PublishResult> {
    try {
      const ack = await this.js.publish(natsSubject, data, { msgID: msgId, headers });
      span?.setAttribute('messaging.nats.stream.sequence', ack.seq);
      if (ack.duplicate) span?.setAttribute('messaging.nats.duplicate', true);
      span?.end();
      return { id: event.id, seq: ack.seq, duplicate: ack.duplicate };
    } catch (err) {
      const error = new DomainError(
        'Unavailable',
        `publish of ${event.type} ${event.id} to ${natsSubject} failed: ${(err as Error).message}`,
        {
          retryable: true,
          cause: err,
        },
      );
      span?.end(error);
      throw error;
    }
  }
}
