import { trace } from '@opentelemetry/api';
import { tracingEnabled } from './state';

const NO_FIELDS: Record<string, string> = {};

function traceLogFields(): Record<string, string> {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx ? { trace_id: ctx.traceId, span_id: ctx.spanId } : NO_FIELDS;
}

/**
 * A pino mixin adding `trace_id` and `span_id` of the active span to each log line when tracing
 * is on; undefined (no mixin at all) when it is off.
 */
export function traceLogMixin(): (() => Record<string, string>) | undefined {
  return tracingEnabled() ? traceLogFields : undefined;
}
