import {
  context,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type TextMapGetter,
} from '@opentelemetry/api';
import { describeError } from '@aob/errors';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { tracingEnabled } from './state';

/** W3C trace context as the CloudEvents distributed-tracing extension carries it. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

/** What a messaging span describes (OpenTelemetry messaging semantic conventions, NATS JetStream). */
export interface MessageSpanInfo {
  /** `create` (a message written for later sending: the outbox), `publish` or `process`. */
  operation: 'create' | 'publish' | 'process';
  /** NATS subject (`messaging.destination.name`). */
  destination: string;
  /** Nats-Msg-Id = CloudEvent id (`messaging.message.id`). */
  messageId?: string;
  eventType?: string;
  eventSource?: string;
  tenantId?: string;
  runId?: string;
  /** Durable consumer (`messaging.consumer.group.name`), process spans. */
  consumerGroup?: string;
  /** Payload bytes (`messaging.message.body.size`). */
  bodySize?: number;
  /** JetStream delivery count of this message, process spans. */
  deliveryCount?: number;
}

const OPERATION_TYPE = { create: 'create', publish: 'send', process: 'process' } as const;
const SPAN_KIND = {
  create: SpanKind.PRODUCER,
  publish: SpanKind.PRODUCER,
  process: SpanKind.CONSUMER,
} as const;

const TRACER_NAME = '@aob/observability';

/** Always W3C trace context, whatever OTEL_PROPAGATORS says: it is what the CloudEvents extension carries. */
const w3c = new W3CTraceContextPropagator();

const carrierGetter: TextMapGetter<TraceCarrier> = {
  keys: (c) => Object.keys(c),
  get: (c, key) =>
    key === 'traceparent' ? c.traceparent : key === 'tracestate' ? c.tracestate : undefined,
};

/** A started messaging span; `end` it once the operation (and its settlement) is over. */
export class MessageSpan {
  /** The context to run the operation in (the span active). */
  readonly context: Context;

  constructor(
    readonly span: Span,
    parent: Context,
  ) {
    this.context = trace.setSpan(parent, span);
  }

  /** This span as W3C trace context: what a message it creates carries. */
  carrier(): TraceCarrier {
    return carrierOf(this.context);
  }

  /** Runs `fn(...args)` with this span active (no closure needed on the hot path). */
  run<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): R {
    return context.with(this.context, fn, undefined, ...args);
  }

  setAttribute(key: string, value: string | number | boolean): void {
    this.span.setAttribute(key, value);
  }

  /** Ends the span; an error marks it failed and is recorded as an exception event. */
  end(error?: unknown): void {
    if (error !== undefined) {
      const { code, message } = describeError(error);
      if (error instanceof Error) this.span.recordException(error);
      this.span.setAttribute('error.type', code);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message });
    }
    this.span.end();
  }
}

/**
 * The active span's W3C trace context, for a message created now; undefined when tracing is off
 * or nothing is being traced.
 */
export function activeTraceCarrier(): TraceCarrier | undefined {
  if (!tracingEnabled()) return undefined;
  const active = context.active();
  if (!trace.getSpan(active)?.spanContext()) return undefined;
  const carrier = carrierOf(active);
  return carrier.traceparent === undefined ? undefined : carrier;
}

/** The context a carrier names (its remote span as parent), or undefined when it names none. */
export function contextFromCarrier(
  carrier: TraceCarrier | undefined,
  base: Context = ROOT_CONTEXT,
): Context | undefined {
  if (carrier?.traceparent === undefined) return undefined;
  const ctx = w3c.extract(base, carrier, carrierGetter);
  return trace.getSpanContext(ctx) === undefined ? undefined : ctx;
}

/**
 * The active OpenTelemetry context (undefined when tracing is off), to run later work in the
 * context of the request that caused it (`runWithContext`).
 */
export function captureTraceContext(): Context | undefined {
  return tracingEnabled() ? context.active() : undefined;
}

/** Runs `fn(...args)` in a captured context, or plainly when there is none. */
export function runWithContext<A extends unknown[], R>(
  ctx: Context | undefined,
  fn: (...args: A) => R,
  ...args: A
): R {
  return ctx === undefined ? fn(...args) : context.with(ctx, fn, undefined, ...args);
}

/**
 * Starts a messaging span, or returns undefined when tracing is off (callers then skip all
 * tracing work). Parent: the active span when there is one, else the message's own trace context
 * (`carrier`); a carrier from another trace than the parent becomes a link.
 *
 * Names and attributes follow the OpenTelemetry messaging conventions: `<operation> <subject>`,
 * `messaging.system=nats`, `messaging.operation.type/name`, `messaging.destination.name`,
 * `messaging.message.id`, plus `cloudevents.event_id/type/source` and `aob.tenant_id/run_id`.
 */
export function startMessageSpan(
  info: MessageSpanInfo,
  carrier?: TraceCarrier,
): MessageSpan | undefined {
  if (!tracingEnabled()) return undefined;
  const active = context.active();
  const activeSpan = trace.getSpan(active);
  const fromMessage = contextFromCarrier(carrier);
  let parent: Context = active;
  const links: Link[] = [];
  if (info.operation === 'process' || activeSpan === undefined) {
    // a consumer continues the producer's trace, whatever runs around it
    if (fromMessage !== undefined) parent = fromMessage;
  } else if (fromMessage !== undefined) {
    const linked = trace.getSpanContext(fromMessage)!;
    if (linked.traceId !== activeSpan.spanContext().traceId) links.push({ context: linked });
  }
  const attributes: Attributes = {
    'messaging.system': 'nats',
    'messaging.operation.type': OPERATION_TYPE[info.operation],
    'messaging.operation.name': info.operation,
    'messaging.destination.name': info.destination,
  };
  if (info.messageId !== undefined) {
    attributes['messaging.message.id'] = info.messageId;
    attributes['cloudevents.event_id'] = info.messageId;
  }
  if (info.eventType !== undefined) attributes['cloudevents.event_type'] = info.eventType;
  if (info.eventSource !== undefined) attributes['cloudevents.event_source'] = info.eventSource;
  if (info.consumerGroup !== undefined)
    attributes['messaging.consumer.group.name'] = info.consumerGroup;
  if (info.bodySize !== undefined) attributes['messaging.message.body.size'] = info.bodySize;
  if (info.deliveryCount !== undefined)
    attributes['messaging.nats.message.delivery_count'] = info.deliveryCount;
  if (info.tenantId !== undefined) attributes['aob.tenant_id'] = info.tenantId;
  if (info.runId !== undefined) attributes['aob.run_id'] = info.runId;
  const span = trace
    .getTracer(TRACER_NAME)
    .startSpan(
      `${info.operation} ${info.destination}`,
      { kind: SPAN_KIND[info.operation], attributes, links },
      parent,
    );
  return new MessageSpan(span, parent);
}

function carrierOf(ctx: Context): TraceCarrier {
  const out: Record<string, string> = {};
  w3c.inject(ctx, out, defaultTextMapSetter);
  return {
    ...(out.traceparent === undefined ? {} : { traceparent: out.traceparent }),
    ...(out.tracestate === undefined ? {} : { tracestate: out.tracestate }),
  };
}
