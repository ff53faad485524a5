import { Logger } from '@nestjs/common';
import { DomainError } from '@aob/errors';
import type { PublishOptions, UsageRecord } from '@aob/events';
import { ModelGatewayMetrics } from '../metrics/model-gateway.metrics';
import { UsagePublisher, type UsageEventSink } from './usage-publisher';

/** A JetStream stand-in whose availability the test controls. */
class FakeJetStream implements UsageEventSink {
  readonly stored: { id: string; record: UsageRecord; opts: PublishOptions }[] = [];
  down = false;
  reject: DomainError | undefined;
  attempts = 0;
  private hold: Promise<void> | undefined;
  private release: (() => void) | undefined;

  freeze(): void {
    this.hold = new Promise((resolve) => (this.release = resolve));
  }
  thaw(): void {
    this.release?.();
    this.hold = undefined;
  }

  async publish(
    _key: 'meteringUsage',
    data: UsageRecord,
    opts: PublishOptions = {},
  ): Promise<{ id: string; seq: number; duplicate: boolean }> {
    this.attempts++;
    if (this.hold) await this.hold;
    if (this.reject) throw this.reject;
    if (this.down) throw new DomainError('Unavailable', 'no responders', { retryable: true });
    this.stored.push({ id: opts.id ?? '', record: data, opts });
    return { id: opts.id ?? '', seq: this.stored.length, duplicate: false };
  }
}

const record = (n: number): UsageRecord => ({
  tenantId: 'acme',
  runId: `run-${n}`,
  model: 'sim-small',
  deployment: 'local-fast',
  promptTokens: 10,
  completionTokens: n,
  costUsd: 0.001,
  latencyMs: 5,
  at: '2026-01-02T03:04:05.000Z',
});

const metrics = new ModelGatewayMetrics();
const counted = async (outcome: string) =>
  (await metrics.usageEvents.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;

describe('UsagePublisher', () => {
  beforeAll(() => Logger.overrideLogger(false));

  it('publishes each record once with the completion id, tenant and run id on the CloudEvent', async () => {
    const js = new FakeJetStream();
    const usage = new UsagePublisher(js, metrics);
    usage.enqueue('chatcmpl-1', record(1));
    expect(await usage.flush(1_000)).toBe(0);
    expect(js.stored).toEqual([
      {
        id: 'chatcmpl-1',
        record: record(1),
        opts: { id: 'chatcmpl-1', tenantId: 'acme', ceSubject: 'run-1' },
      },
    ]);
  });

  it('keeps events while JetStream is down and delivers them when it is back', async () => {
    const js = new FakeJetStream();
    const usage = new UsagePublisher(js, metrics, { retryBaseMs: 5, retryMaxMs: 20 });
    const retriedBefore = await counted('retried');
    js.down = true;
    for (let n = 1; n <= 5; n++) usage.enqueue(`chatcmpl-${n}`, record(n));
    await new Promise((r) => setTimeout(r, 60));
    expect(js.stored).toHaveLength(0);
    expect(usage.pending).toBe(5);
    expect(await counted('retried')).toBeGreaterThan(retriedBefore);
    js.down = false;
    expect(await usage.flush(2_000)).toBe(0);
    expect(js.stored.map((s) => s.id).sort()).toEqual([
      'chatcmpl-1',
      'chatcmpl-2',
      'chatcmpl-3',
      'chatcmpl-4',
      'chatcmpl-5',
    ]);
  });

  it('drops new events beyond the bound instead of growing without limit', async () => {
    const js = new FakeJetStream();
    js.freeze();
    const usage = new UsagePublisher(js, metrics, { maxQueue: 3, concurrency: 1 });
    const droppedBefore = await counted('dropped');
    for (let n = 1; n <= 5; n++) usage.enqueue(`chatcmpl-${n}`, record(n));
    expect(usage.pending).toBe(3);
    expect(await counted('dropped')).toBe(droppedBefore + 2);
    js.thaw();
    expect(await usage.flush(1_000)).toBe(0);
    expect(js.stored.map((s) => s.id)).toEqual(['chatcmpl-1', 'chatcmpl-2', 'chatcmpl-3']);
  });

  it('drops a record JetStream refuses as invalid rather than retrying it for ever', async () => {
    const js = new FakeJetStream();
    js.reject = new DomainError('InvalidRequest', 'invalid aob.metering.usage.v1 data');
    const usage = new UsagePublisher(js, metrics);
    usage.enqueue('chatcmpl-bad', record(1));
    expect(await usage.flush(1_000)).toBe(0);
    expect(js.attempts).toBe(1);
  });

  it('reports events it could not publish before shutdown', async () => {
    const js = new FakeJetStream();
    js.down = true;
    const usage = new UsagePublisher(js, metrics, { retryBaseMs: 5, shutdownFlushMs: 50 });
    const lostBefore = await counted('lost');
    usage.enqueue('chatcmpl-late', record(1));
    await usage.onApplicationShutdown();
    expect(await counted('lost')).toBe(lostBefore + 1);
  });
});
