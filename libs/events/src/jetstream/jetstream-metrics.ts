import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { counter, gauge } from '@aob/observability';
import type { Gauge } from '@aob/observability';

/**
 * JetStream state as Prometheus series, read from the server when /metrics is scraped (one
 * consumer/stream info request each, shared by the gauges of one scrape): consumer lag
 * (`num_pending`), messages awaiting ack, messages being redelivered, and stream sizes (the DLQ's
 * size). Every replica reports the same server-side numbers: aggregate with `max by`.
 */
interface Tracked {
  nc: NatsConnection;
  jsm?: Promise<JetStreamManager>;
  consumers: Set<string>;
  streams: Set<string>;
}

const tracked = new Set<Tracked>();
const INFO_TIMEOUT_MS = 2_000;
/** One snapshot serves all gauges of one scrape (prom-client collects them concurrently). */
const SNAPSHOT_TTL_MS = 500;

interface Snapshot {
  consumers: Map<string, { pending: number; ackPending: number; redelivered: number }>;
  streams: Map<string, { messages: number; bytes: number }>;
}
let snapshot: { at: number; value: Promise<Snapshot> } | undefined;

const key = (stream: string, durable: string) => `${stream}/${durable}`;

async function take(): Promise<Snapshot> {
  const out: Snapshot = { consumers: new Map(), streams: new Map() };
  await Promise.all(
    [...tracked].map(async (t) => {
      if (t.nc.isClosed()) return;
      try {
        t.jsm ??= jetstreamManager(t.nc, { timeout: INFO_TIMEOUT_MS });
        const jsm = await t.jsm;
        await Promise.all([
          ...[...t.consumers].map(async (k) => {
            const [stream, durable] = k.split('/') as [string, string];
            const info = await jsm.consumers.info(stream, durable).catch(() => undefined);
            if (info)
              out.consumers.set(k, {
                pending: info.num_pending,
                ackPending: info.num_ack_pending,
                redelivered: info.num_redelivered,
              });
          }),
          ...[...t.streams].map(async (stream) => {
            const info = await jsm.streams.info(stream).catch(() => undefined);
            if (info)
              out.streams.set(stream, { messages: info.state.messages, bytes: info.state.bytes });
          }),
        ]);
      } catch {
        t.jsm = undefined; // JetStream did not answer: no series this scrape, retried next time
      }
    }),
  );
  return out;
}

function current(): Promise<Snapshot> {
  const now = Date.now();
  if (!snapshot || now - snapshot.at > SNAPSHOT_TTL_MS) snapshot = { at: now, value: take() };
  return snapshot.value;
}

type ConsumerField = 'pending' | 'ackPending' | 'redelivered';

/** collect() of a consumer gauge: this scrape's snapshot, one series per tracked consumer. */
function collectConsumers(field: ConsumerField) {
  return async function (this: Gauge<'stream' | 'consumer'>): Promise<void> {
    const snap = await current();
    this.reset();
    for (const [k, v] of snap.consumers) {
      const [stream, consumer] = k.split('/') as [string, string];
      this.set({ stream, consumer }, v[field]);
    }
  };
}

let registered = false;
function registerGauges(): void {
  if (registered) return;
  registered = true;
  gauge({
    name: 'aob_jetstream_consumer_pending',
    help: 'Messages in the stream not yet delivered to the durable consumer (consumer lag)',
    labelNames: ['stream', 'consumer'] as const,
    collect: collectConsumers('pending'),
  });
  gauge({
    name: 'aob_jetstream_consumer_ack_pending',
    help: 'Messages delivered to the durable consumer and not yet acknowledged',
    labelNames: ['stream', 'consumer'] as const,
    collect: collectConsumers('ackPending'),
  });
  gauge({
    name: 'aob_jetstream_consumer_redelivered',
    help: 'Messages of the durable consumer delivered more than once and not yet acknowledged',
    labelNames: ['stream', 'consumer'] as const,
    collect: collectConsumers('redelivered'),
  });
  gauge({
    name: 'aob_jetstream_stream_messages',
    help: 'Messages stored in the stream (stream="DLQ": the dead-letter queue size)',
    labelNames: ['stream'] as const,
    async collect() {
      const snap = await current();
      this.reset();
      for (const [stream, v] of snap.streams) this.set({ stream }, v.messages);
    },
  });
}

/** Deliveries with a delivery count above 1 that this process received, by consumer. */
export const redeliveriesCounter = () =>
  counter({
    name: 'aob_jetstream_redeliveries_total',
    help: 'Redelivered messages (delivery count > 1) received by this process',
    labelNames: ['stream', 'consumer'] as const,
  });

/**
 * Reports the given durable consumers (`STREAM/durable`) and streams on /metrics until the
 * returned function is called (or the connection closes).
 */
export function trackJetStream(
  nc: NatsConnection,
  what: { consumers?: { stream: string; durable: string }[]; streams?: string[] },
): () => void {
  registerGauges();
  redeliveriesCounter();
  const entry: Tracked = {
    nc,
    consumers: new Set((what.consumers ?? []).map((c) => key(c.stream, c.durable))),
    streams: new Set(what.streams ?? []),
  };
  tracked.add(entry);
  return () => {
    tracked.delete(entry);
  };
}
