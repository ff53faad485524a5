import { context, trace, SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { metricsRegistry, setTracingEnabled } from '@aob/observability';
import {
  EVENTS,
  EventPublisher,
  JetStreamServer,
  provisionJetStream,
  type ConsumerSpec,
  type InboundEvent,
} from '@aob/events';
import { trackJetStream } from '../../src/jetstream/jetstream-metrics';
import { eventually, natsFixture, quietLogger, testConsumer, type NatsFixture } from './support';

jest.setTimeout(30_000);

let nats: NatsFixture;
let publisher: EventPublisher;
const servers: JetStreamServer[] = [];

beforeAll(async () => {
  nats = await natsFixture();
  publisher = new EventPublisher(nats.js, 'aob://test');
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await nats.close();
});

async function startServer(spec: ConsumerSpec, handler: (e: InboundEvent) => Promise<unknown>) {
  const server = new JetStreamServer({
    connection: nats.nc,
    consumers: [spec],
    logger: quietLogger,
  });
  server.addHandler(EVENTS.agentExecute.type, handler as never, true);
  servers.push(server);
  await new Promise<void>(
    (resolve, reject) =>
      void server.listen((err?: unknown) =>
        err ? reject(err instanceof Error ? err : new Error(JSON.stringify(err))) : resolve(),
      ),
  );
}

async function series(name: string): Promise<Map<string, number>> {
  const metric = await metricsRegistry.getSingleMetric(name)!.get();
  return new Map(
    metric.values.map((v) => [
      Object.entries(v.labels)
        .map(([k, l]) => `${k}=${String(l)}`)
        .join(','),
      v.value,
    ]),
  );
}

describe('JetStream metrics on /metrics', () => {
  it('consumer lag, ack pending, redeliveries and stream size come from the server', async () => {
    const { spec, agent, subject } = testConsumer({ retryBaseMs: 10, retryMaxMs: 10 });
    await provisionJetStream(nats.jsm, { streams: [], consumers: [spec] });
    const untrack = trackJetStream(nats.nc, { consumers: [spec], streams: ['DLQ'] });
    const labels = `stream=AGENT_EXECUTION,consumer=${spec.durable}`;
    try {
      for (let i = 0; i < 3; i++)
        await publisher.publish(
          'agentExecute',
          { agent, input: { i } },
          { subject, tenantId: 't' },
        );
      expect((await series('aob_jetstream_consumer_pending')).get(labels)).toBe(3);
      expect((await series('aob_jetstream_consumer_ack_pending')).get(labels)).toBe(0);
      expect((await series('aob_jetstream_stream_messages')).get('stream=DLQ')).toBe(0);

      // every message fails its first delivery: three redeliveries counted by the transport
      const seen = new Set<string>();
      const done = new Set<string>();
      await startServer(spec, async (e) => {
        if (!seen.has(e.id)) {
          seen.add(e.id);
          throw new Error('first delivery fails');
        }
        done.add(e.id);
      });
      await eventually(() => done.size === 3, 'three redelivered messages handled');
      await eventually(
        async () => (await series('aob_jetstream_redeliveries_total')).get(labels) === 3,
        'aob_jetstream_redeliveries_total = 3',
      );
      await eventually(
        async () => (await series('aob_jetstream_consumer_pending')).get(labels) === 0,
        'no lag left',
      );
    } finally {
      untrack();
      await Promise.all(servers.splice(0).map((s) => s.close()));
    }
    // neither tracked nor consumed any more: the consumer's series are gone at the next scrape
    await new Promise((r) => setTimeout(r, 600));
    expect((await series('aob_jetstream_consumer_pending')).has(labels)).toBe(false);
  });
});

describe('trace context across a JetStream hop', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

  beforeAll(() => {
    provider.register();
    setTracingEnabled(true);
  });
  afterAll(async () => {
    setTracingEnabled(false);
    await provider.shutdown();
    trace.disable();
    context.disable();
  });

  it('publish → process → publish: producer and consumer spans chained through traceparent', async () => {
    const { spec, agent, subject } = testConsumer();
    await provisionJetStream(nats.jsm, { streams: [], consumers: [spec] });
    const received: InboundEvent[] = [];
    await startServer(spec, async (e) => {
      received.push(e);
      // a status event published while handling continues the consumer span
      await publisher.publish(
        'agentStarted',
        { runId: 'run-1', agent, threadId: 'run-1', attempt: 1 },
        { ceSubject: 'run-1', tenantId: 't1' },
      );
    });
    const root = trace.getTracer('test').startSpan('request');
    await context.with(trace.setSpan(context.active(), root), () =>
      publisher.publish(
        'agentExecute',
        { agent, input: {}, runId: 'run-1' },
        { subject, tenantId: 't1', id: 'ev-1' },
      ),
    );
    root.end();
    await eventually(
      () => exporter.getFinishedSpans().some((s) => s.name === 'publish agent.status.started'),
      'the status publish span',
    );
    await eventually(
      () => exporter.getFinishedSpans().some((s) => s.name === `process ${subject}`),
      'the process span',
    );
    const spans = exporter.getFinishedSpans();
    const byName = (n: string) => spans.find((s) => s.name === n)!;
    const publish = byName(`publish ${subject}`);
    const process = byName(`process ${subject}`);
    const status = byName('publish agent.status.started');
    const traceId = root.spanContext().traceId;
    expect(publish.kind).toBe(SpanKind.PRODUCER);
    expect(publish.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(received[0]!.traceparent).toBe(`00-${traceId}-${publish.spanContext().spanId}-01`);
    expect(process.kind).toBe(SpanKind.CONSUMER);
    expect(process.spanContext().traceId).toBe(traceId);
    expect(process.parentSpanContext?.spanId).toBe(publish.spanContext().spanId);
    expect(process.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.destination.name': subject,
      'messaging.consumer.group.name': spec.durable,
      'messaging.message.id': 'ev-1',
      'cloudevents.event_type': 'aob.agent.execute.v1',
      'aob.run_id': 'run-1',
      'aob.tenant_id': 't1',
      'messaging.nats.settlement': 'ack',
    });
    expect(status.parentSpanContext?.spanId).toBe(process.spanContext().spanId);
    expect(status.attributes['aob.run_id']).toBe('run-1');
  });
});
