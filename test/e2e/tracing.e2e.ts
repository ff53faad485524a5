/**
 * OpenTelemetry traces across the whole path of a chat run: HTTP request → outbox → NATS →
 * executor → model gateway → metering, and the status events back to the gateway. The four apps
 * run as real processes exporting OTLP/HTTP JSON to a collector in this test, which records the
 * spans exactly as an OpenTelemetry collector would receive them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from '@aob/testing';
import { Stack } from './support/stack';

jest.setTimeout(90_000);

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
}
interface RecordedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean | undefined>;
}

/** A minimal OTLP/HTTP trace receiver (JSON encoding, `POST /v1/traces`). */
class FakeCollector {
  readonly spans: RecordedSpan[] = [];
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        if (!String(req.headers['content-type']).startsWith('application/json')) {
          res.writeHead(415).end();
          return;
        }
        this.record(JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise((r) => this.server.close(r));
  }

  private record(body: OtlpExport): void {
    for (const rs of body.resourceSpans ?? []) {
      const service = String(attrs(rs.resource?.attributes)['service.name']);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          this.spans.push({
            service,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? '',
            name: s.name,
            kind: s.kind,
            attributes: attrs(s.attributes),
          });
        }
      }
    }
  }
}

interface OtlpExport {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: OtlpValue }[] };
    scopeSpans?: {
      spans?: {
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        kind: number;
        attributes?: { key: string; value: OtlpValue }[];
      }[];
    }[];
  }[];
}

function attrs(list: { key: string; value: OtlpValue }[] = []) {
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const { key, value } of list)
    out[key] =
      value.stringValue ??
      (value.intValue === undefined ? value.boolValue : Number(value.intValue));
  return out;
}

// OTLP span kinds
const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;

const collector = new FakeCollector();
const stack = new Stack();

beforeAll(async () => {
  await collector.start();
  await stack.start(['gateway', 'model-gateway', 'metering', 'agent-executor'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '100',
  });
});
afterAll(async () => {
  await stack.stop();
  await collector.stop();
});

it('one trace spans gateway, executor, model gateway and metering, parented across every NATS hop', async () => {
  const res = await stack.api('/v1/runs', {
    method: 'POST',
    body: JSON.stringify({ agent: 'chat', input: { prompt: 'trace me' } }),
  });
  expect(res.status).toBe(202);
  const { runId } = (await res.json()) as { runId: string };

  const spansOf = (traceId: string) => collector.spans.filter((s) => s.traceId === traceId);
  const find = (traceId: string, service: string, name: string) =>
    spansOf(traceId).find((s) => s.service === service && s.name === name);

  // the request's server span: its trace is the run's trace
  const isRequest = (s: RecordedSpan) =>
    s.service === 'gateway' && s.kind === SERVER && s.name === 'POST /v1/runs';
  await waitFor(() => collector.spans.some(isRequest), {
    timeoutMs: 20_000,
    what: 'the gateway server span of POST /v1/runs',
  });
  const request = collector.spans.find(isRequest)!;
  const traceId = request.traceId;
  await waitFor(
    () =>
      find(traceId, 'metering', 'process metering.usage') !== undefined &&
      find(traceId, 'gateway', 'process agent.status.completed') !== undefined,
    { timeoutMs: 30_000, what: 'metering and status spans in the trace' },
  ).catch((err: Error) => {
    const seen = collector.spans
      .filter((s) => !/^(xadd|expire|evalsha|pg)/.test(s.name))
      .map(
        (s) =>
          `${s.traceId === traceId ? '*' : ' '} ${s.service}: ${s.name} ${s.spanId}<-${s.parentSpanId}`,
      );
    throw new Error(`${err.message}; spans received:\n${seen.join('\n')}`);
  });
  const trace = spansOf(traceId);
  expect(new Set(trace.map((s) => s.service))).toEqual(
    new Set(['gateway', 'agent-executor', 'model-gateway', 'metering']),
  );
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  const parentOf = (s: RecordedSpan) => byId.get(s.parentSpanId);

  // HTTP request → outbox row (create) → relay publish → executor process
  const create = find(traceId, 'gateway', `create agent.execute.chat`)!;
  expect(create.kind).toBe(PRODUCER);
  expect(parentOf(create)).toBe(request);
  const relay = find(traceId, 'gateway', 'publish agent.execute.chat')!;
  expect(relay.kind).toBe(PRODUCER);
  expect(parentOf(relay)).toBe(create);
  const execute = find(traceId, 'agent-executor', 'process agent.execute.chat')!;
  expect(execute.kind).toBe(CONSUMER);
  expect(parentOf(execute)).toBe(create);
  expect(execute.attributes).toMatchObject({
    'messaging.system': 'nats',
    'messaging.operation.type': 'process',
    'messaging.destination.name': 'agent.execute.chat',
    'messaging.consumer.group.name': 'agent-executor-workers',
    'cloudevents.event_type': 'aob.agent.execute.v1',
    'aob.run_id': runId,
    'aob.tenant_id': 'default',
  });
  expect(execute.attributes['messaging.message.id']).toBe(
    create.attributes['messaging.message.id'],
  );

  // executor → model gateway over HTTP (fetch client span → server span)
  const mgServer = find(traceId, 'model-gateway', 'POST /v1/chat/completions')!;
  expect(mgServer.kind).toBe(SERVER);
  expect(mgServer).toBeDefined();
  const client = parentOf(mgServer)!;
  expect(client).toMatchObject({ service: 'agent-executor', kind: CLIENT });
  let up = parentOf(client);
  while (up && up !== execute) up = parentOf(up);
  expect(up).toBe(execute);

  // model gateway → usage event → metering
  const usagePublish = find(traceId, 'model-gateway', 'publish metering.usage')!;
  expect(usagePublish.kind).toBe(PRODUCER);
  expect(parentOf(usagePublish)).toBe(mgServer);
  const metering = find(traceId, 'metering', 'process metering.usage')!;
  expect(metering.kind).toBe(CONSUMER);
  expect(parentOf(metering)).toBe(usagePublish);
  expect(metering.attributes).toMatchObject({
    'messaging.consumer.group.name': 'metering',
    'aob.run_id': runId,
    'aob.tenant_id': 'default',
  });

  // executor → status events → the gateway's projection
  const completedPublish = find(traceId, 'agent-executor', 'publish agent.status.completed')!;
  expect(parentOf(completedPublish)).toBe(execute);
  const projection = find(traceId, 'gateway', 'process agent.status.completed')!;
  expect(projection.kind).toBe(CONSUMER);
  expect(parentOf(projection)).toBe(completedPublish);
  expect(projection.attributes['aob.run_id']).toBe(runId);

  // probes and scrapes are never traced
  expect(collector.spans.some((s) => /healthz|readyz|metrics/.test(s.name))).toBe(false);
});
