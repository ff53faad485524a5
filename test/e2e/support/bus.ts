import { randomUUID } from 'node:crypto';
import { headers as natsHeaders, type NatsConnection, type Subscription } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';

export interface StatusEvent {
  subject: string;
  type: string;
  id: string;
  runId: string;
  tenantId: string;
  data: Record<string, unknown>;
}

/** Percent-encodes a header value as the CloudEvents NATS binding asks (space, ", %, non-ASCII). */
const pct = (v: string) =>
  Array.from(new TextEncoder().encode(v))
    .map((b) =>
      b <= 0x20 || b === 0x22 || b === 0x25 || b >= 0x7f
        ? `%${b.toString(16).toUpperCase().padStart(2, '0')}`
        : String.fromCharCode(b),
    )
    .join('');

/** Publishes an execute request by hand in binary content mode (ce- headers), as any client would. */
export async function publishBinary(
  nc: NatsConnection,
  agent: string,
  data: unknown,
  opts: { id?: string; tenant?: string; msgId?: string } = {},
): Promise<string> {
  const id = opts.id ?? randomUUID();
  const h = natsHeaders();
  h.set('ce-specversion', '1.0');
  h.set('ce-id', pct(id));
  h.set('ce-source', pct('/e2e/tests'));
  // an extension whose value needs percent-encoding (space, quote, percent, non-ASCII)
  h.set('ce-note', pct('a "quoted" 100% vålue'));
  h.set('ce-type', 'aob.agent.execute.v1');
  h.set('ce-tenantid', pct(opts.tenant ?? 'default'));
  h.set('ce-datacontenttype', 'application/json');
  await jetstream(nc).publish(`agent.execute.${agent}`, JSON.stringify(data), {
    headers: h,
    msgID: opts.msgId ?? id,
  });
  return id;
}

/** Publishes an execute request in structured content mode (the whole event as JSON). */
export async function publishStructured(
  nc: NatsConnection,
  agent: string,
  data: unknown,
  opts: { id?: string; tenant?: string } = {},
): Promise<string> {
  const id = opts.id ?? randomUUID();
  const h = natsHeaders();
  h.set('Content-Type', 'application/cloudevents+json');
  const event = {
    specversion: '1.0',
    id,
    source: 'e2e-test',
    type: 'aob.agent.execute.v1',
    tenantid: opts.tenant ?? 'default',
    datacontenttype: 'application/json',
    data,
  };
  await jetstream(nc).publish(`agent.execute.${agent}`, JSON.stringify(event), {
    headers: h,
    msgID: id,
  });
  return id;
}

const decodePct = (v: string) => decodeURIComponent(v);

/** Collects every `agent.status.*` event (core subscription: sees republished duplicates too). */
export class StatusWatcher {
  readonly events: StatusEvent[] = [];
  private readonly sub: Subscription;

  constructor(nc: NatsConnection) {
    const sub = nc.subscribe('agent.status.>');
    this.sub = sub;
    void (async () => {
      for await (const m of sub) {
        const get = (k: string) => decodePct(m.headers?.get(k) ?? '');
        this.events.push({
          subject: m.subject,
          type: get('ce-type'),
          id: get('ce-id'),
          runId: get('ce-subject'),
          tenantId: get('ce-tenantid'),
          data: m.json<Record<string, unknown>>(),
        });
      }
    })();
  }

  of(runId: string, subject?: string): StatusEvent[] {
    return this.events.filter((e) => e.runId === runId && (!subject || e.subject === subject));
  }

  async waitFor(
    runId: string,
    subject: string,
    timeoutMs = 30_000,
    count = 1,
  ): Promise<StatusEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const found = this.of(runId, subject);
      if (found.length >= count) return found;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(
      `no ${subject} for ${runId} within ${timeoutMs} ms; saw: ${JSON.stringify(this.of(runId).map((e) => e.subject))}`,
    );
  }

  stop(): void {
    this.sub.unsubscribe();
  }
}
