import type { CloudEvent } from 'cloudevents';

/** A decoded, schema-validated CloudEvent as a JetStream handler receives it. */
export interface InboundEvent<T = unknown> {
  id: string;
  type: string;
  source: string;
  /** CloudEvent `subject` attribute (AOB status events: the run id). */
  subject?: string;
  time?: string;
  /** `tenantid` extension attribute. */
  tenantId?: string;
  traceparent?: string;
  tracestate?: string;
  /** `data`, parsed by the catalog schema of `type`. */
  data: T;
  /** The whole event, extensions included. */
  event: CloudEvent<unknown>;
}
