import { context, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { tracingConfigured } from './config';
import {
  activeTraceCarrier,
  captureTraceContext,
  contextFromCarrier,
  runWithContext,
  startMessageSpan,
} from './messaging';
import { startTracing } from './start';
import { setTracingEnabled, tracingEnabled } from './state';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const tracer = () => trace.getTracer('test');

const REMOTE = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const OTHER = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

beforeAll(() => provider.register());
afterAll(async () => {
  setTracingEnabled(false);
  await provider.shutdown();
  trace.disable();
  context.disable();
});
beforeEach(() => {
  exporter.reset();
  setTracingEnabled(true);
});

describe('tracingConfigured', () => {
  it('needs an OTLP endpoint', () => {
    expect(tracingConfigured({})).toBe(false);
    expect(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: ' ' })).toBe(false);
    expect(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toBe(true);
    expect(
      tracingConfigured({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }),
    ).toBe(true);
  });

  it('startTracing starts nothing without an endpoint, or when disabled', () => {
    setTracingEnabled(false);
    expect(startTracing('test', {})).toBe(false);
    expect(
      startTracing('test', {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9',
        OTEL_SDK_DISABLED: 'true',
      }),
    ).toBe(false);
    expect(tracingEnabled()).toBe(false);
  });

  it('is off with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' };
    expect(tracingConfigured({ ...endpoint, OTEL_SDK_DISABLED: 'TRUE' })).toBe(false);
    expect(tracingConfigured({ ...endpoint, OTEL_SDK_DISABLED: 'false' })).toBe(true);
    expect(tracingConfigured({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
    expect(tracingConfigured({ ...endpoint, OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
  });
});

describe('messaging spans', () => {
  it('does nothing while tracing is off', () => {
    setTracingEnabled(false);
    tracer().startActiveSpan('request', (root) => {
      expect(startMessageSpan({ operation: 'publish', destination: 'a.b' })).toBeUndefined();
      expect(activeTraceCarrier()).toBeUndefined();
      expect(captureTraceContext()).toBeUndefined();
      root.end();
    });
  });

  it('a consumer span continues the trace the message carries, whatever is active', () => {
    tracer().startActiveSpan('unrelated', (unrelated) => {
      const span = startMessageSpan(
        {
          operation: 'process',
          destination: 'agent.execute.chat',
          consumerGroup: 'agent-executor-workers',
          messageId: 'ev-1',
          eventType: 'aob.agent.execute.v1',
          tenantId: 't1',
          runId: 'run-1',
          deliveryCount: 2,
        },
        { traceparent: REMOTE },
      )!;
      span.end();
      unrelated.end();
    });
    const process = exporter
      .getFinishedSpans()
      .find((s) => s.name === 'process agent.execute.chat')!;
    expect(process.kind).toBe(SpanKind.CONSUMER);
    expect(process.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(process.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(process.attributes).toMatchObject({
      'messaging.system': 'nats',
      'messaging.operation.type': 'process',
      'messaging.destination.name': 'agent.execute.chat',
      'messaging.consumer.group.name': 'agent-executor-workers',
      'messaging.message.id': 'ev-1',
      'cloudevents.event_id': 'ev-1',
      'cloudevents.event_type': 'aob.agent.execute.v1',
      'aob.tenant_id': 't1',
      'aob.run_id': 'run-1',
      'messaging.nats.message.delivery_count': 2,
    });
  });

  it('a producer span is a child of the active span; a carrier of another trace becomes a link', () => {
    let carrier: { traceparent?: string } = {};
    let rootTraceId = '';
    tracer().startActiveSpan('request', (root) => {
      rootTraceId = root.spanContext().traceId;
      const span = startMessageSpan(
        { operation: 'publish', destination: 'agent.status.completed' },
        { traceparent: OTHER },
      )!;
      carrier = span.carrier();
      span.end();
      root.end();
    });
    const publish = exporter.getFinishedSpans().find((s) => s.name.startsWith('publish'))!;
    const root = exporter.getFinishedSpans().find((s) => s.name === 'request')!;
    expect(publish.kind).toBe(SpanKind.PRODUCER);
    expect(publish.attributes['messaging.operation.type']).toBe('send');
    expect(publish.spanContext().traceId).toBe(rootTraceId);
    expect(publish.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(publish.links.map((l) => l.context.traceId)).toEqual([
      '4bf92f3577b34da6a3ce929d0e0e4736',
    ]);
    // what the published event carries: this producer span
    const m = TRACEPARENT.exec(carrier.traceparent ?? '');
    expect(m?.[1]).toBe(rootTraceId);
    expect(m?.[2]).toBe(publish.spanContext().spanId);
  });

  it('without an active span a producer span continues the carrier (the outbox relay)', () => {
    const span = startMessageSpan(
      { operation: 'publish', destination: 'agent.execute.echo' },
      {
        traceparent: REMOTE,
        tracestate: 'vendor=abc',
      },
    )!;
    expect(span.carrier().tracestate).toBe('vendor=abc');
    span.end(new Error('no ack'));
    const [publish] = exporter.getFinishedSpans();
    expect(publish!.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(publish!.links).toEqual([]);
    expect(publish!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'no ack' });
    expect(publish!.events.map((e) => e.name)).toEqual(['exception']);
  });

  it('an invalid traceparent starts a new trace', () => {
    expect(contextFromCarrier({ traceparent: '00-zz-00-01' })).toBeUndefined();
    expect(
      contextFromCarrier({
        traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01',
      }),
    ).toBeUndefined();
    const span = startMessageSpan(
      { operation: 'process', destination: 'x' },
      { traceparent: 'junk' },
    )!;
    span.end();
    expect(exporter.getFinishedSpans()[0]!.parentSpanContext).toBeUndefined();
  });

  it('run() makes the span active; activeTraceCarrier serialises it', async () => {
    const span = startMessageSpan(
      { operation: 'process', destination: 'metering.usage' },
      {
        traceparent: REMOTE,
      },
    )!;
    const seen = await span.run(async (n: number) => {
      await new Promise((r) => setImmediate(r));
      return { n, carrier: activeTraceCarrier() };
    }, 7);
    span.end();
    expect(seen.n).toBe(7);
    expect(seen.carrier?.traceparent).toBe(span.carrier().traceparent);
    expect(activeTraceCarrier()).toBeUndefined();
  });

  it('captureTraceContext / runWithContext carry a request context to later work', async () => {
    let captured: ReturnType<typeof captureTraceContext>;
    let requestSpanId = '';
    tracer().startActiveSpan('request', (root) => {
      requestSpanId = root.spanContext().spanId;
      captured = captureTraceContext();
      root.end();
    });
    await new Promise((r) => setImmediate(r));
    runWithContext(captured, () => {
      startMessageSpan({ operation: 'publish', destination: 'metering.usage' })!.end();
    });
    const publish = exporter.getFinishedSpans().find((s) => s.name === 'publish metering.usage')!;
    expect(publish.parentSpanContext?.spanId).toBe(requestSpanId);
    expect(runWithContext(undefined, (a: number) => a + 1, 1)).toBe(2);
  });
});
