import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  connectNats,
  decodeCloudEvent,
  encodeBinary,
  NATS_CONNECTION,
  type UsageRecord,
} from '@aob/events';
import { billingPeriod } from '@aob/quotas';
import { metricsRegistry } from '@aob/observability';
import {
  createTestDatabase,
  startNatsServer,
  testRedisUrl,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
} from '@aob/testing';
import { rawMessageOf, UsageDecoder } from '../../src/ingestion/usage-decoder';
import { SpendTracker } from '../../src/quotas/spend-tracker';
import { RawRecordPruner } from '../../src/retention/raw-record-pruner';
import {
  consumerBacklog,
  dailyTotals,
  publishUsage,
  rawCount,
  startMeteringApp,
  sumOf,
  usageRecord,
  withPg,
} from './usage-fixtures';

jest.setTimeout(120_000);

/** Usage events this process found already stored (the proof that a redelivery really happened). */
async function duplicatesSeen(): Promise<number> {
  const metric = metricsRegistry.getSingleMetric('aob_metering_usage_events_total');
  const values = (await metric?.get())?.values ?? [];
  return values.filter((v) => v.labels.outcome === 'duplicate').reduce((s, v) => s + v.value, 0);
}

describe('metering ingestion', () => {
  let nats: TestNatsServer;
  let db: TestDatabase;
  let nc: NatsConnection;
  let app: INestApplication | undefined;
  let quotaPrefix: string;
  let redis: Redis;

  beforeAll(async () => {
    nats = await startNatsServer();
    db = await createTestDatabase('aob_metering');
    redis = new Redis(testRedisUrl());
    const started = await startMeteringApp(nats.url, db.url, {
      QUOTA_DEFAULT_MONTHLY_BUDGET_USD: '1',
    });
    app = started.app;
    quotaPrefix = started.quotaPrefix;
    nc = await connectNats({ url: nats.url, name: 'metering-test' });
  });

  afterAll(async () => {
    await app?.close();
    await nc?.close();
    redis?.disconnect();
    await nats?.stop();
    await db?.drop();
  });

  it('stores every usage event once and aggregates per tenant × model × deployment × agent × day', async () => {
    const records = Array.from({ length: 600 }, (_, i) => ({
      id: `chatcmpl-a${i}`,
      record: usageRecord(i, 'tenant-a'),
    }));
    await publishUsage(nc, records);
    await waitFor(async () => (await rawCount(db.url, 'tenant-a')) === 600, {
      timeoutMs: 30_000,
      what: '600 records',
    });
    const expected = sumOf(records.map((r) => r.record));
    const totals = await dailyTotals(db.url, 'tenant-a');
    expect(totals).toMatchObject({
      requests: 600,
      promptTokens: expected.promptTokens,
      completionTokens: expected.completionTokens,
      totalTokens: expected.promptTokens + expected.completionTokens,
    });
    expect(totals.costUsd).toBeCloseTo(expected.costUsd, 9);
    const groups = await withPg(
      db.url,
      async (pg) =>
        (
          await pg.query<{ model: string; agent: string; requests: string }>(
            `SELECT model, agent, requests FROM metering.usage_daily WHERE tenant_id = 'tenant-a' ORDER BY 1, 2`,
          )
        ).rows,
    );
    // 2 models × {'' (no run), chat, pipeline}
    expect(groups.map((g) => `${g.model}/${g.agent}`)).toEqual([
      'sim-medium/',
      'sim-medium/pipeline',
      'sim-small/',
      'sim-small/chat',
    ]);
  });

  it('reads a usage event from the bytes the JetStream client received, as from its decoded headers', async () => {
    await publishUsage(nc, [{ id: 'chatcmpl-raw-1', record: usageRecord(1, 'tenant-raw') }]);
    // an ordered (ephemeral) consumer: the app's durable one keeps every message
    const consumer = await jetstream(nc).consumers.get('METERING', {
      deliver_policy: DeliverPolicy.Last,
    });
    const msg = await consumer.next({ expires: 5_000 });
    expect(msg).not.toBeNull();
    const raw = rawMessageOf(msg);
    expect(raw).toBeDefined();
    const decoder = new UsageDecoder();
    const full = decoder.decodeFull(msg!);
    expect(full).toMatchObject({ kind: 'usage', id: 'chatcmpl-raw-1' });
    expect(decoder.decodeLeanRaw(raw!.bytes, raw!.headerLength)).toEqual(full);
    expect(decoder.decode(msg!)).toEqual(full);
  });

  it('counts a republished event once: same CloudEvent id, different Nats-Msg-Id, long after the first', async () => {
    const records = Array.from({ length: 50 }, (_, i) => ({
      id: `chatcmpl-d${i}`,
      record: usageRecord(i, 'tenant-d'),
    }));
    await publishUsage(nc, records);
    await waitFor(async () => (await rawCount(db.url, 'tenant-d')) === 50, { what: '50 records' });
    const before = await dailyTotals(db.url, 'tenant-d');
    // a different Nats-Msg-Id gets past JetStream's duplicate window: only metering can catch it
    await publishUsage(
      nc,
      records.map((r) => ({ ...r, msgId: `${r.id}-again` })),
    );
    await publishUsage(
      nc,
      records.slice(0, 10).map((r) => ({ ...r, msgId: `${r.id}-third` })),
    );
    await waitFor(async () => (await consumerBacklog(nc)) === 0, {
      timeoutMs: 30_000,
      what: 'consumer drained',
    });
    expect(await rawCount(db.url, 'tenant-d')).toBe(50);
    expect(await dailyTotals(db.url, 'tenant-d')).toEqual(before);
  });

  it('terminates an event whose tenantid attribute contradicts its data (recorded in dlq.terminations)', async () => {
    const { jetstream } = await import('@nats-io/jetstream');
    const { EventPublisher } = await import('@aob/events');
    const publisher = new EventPublisher(jetstream(nc), 'aob://model-gateway');
    await publisher.publish('meteringUsage', usageRecord(1, 'tenant-x'), {
      id: 'chatcmpl-mismatch',
      tenantId: 'tenant-y',
    });
    await waitFor(
      async () =>
        (
          await withPg(db.url, (pg) =>
            pg.query(`SELECT 1 FROM dlq.terminations WHERE event_id = 'chatcmpl-mismatch'`),
          )
        ).rowCount === 1,
      { what: 'termination recorded' },
    );
    expect(await rawCount(db.url, 'tenant-x')).toBe(0);
  });

  it('feeds the month spend counter and publishes the 80 % warning and the exceeded event once', async () => {
    const seen: { subject: string; id: string; data: unknown }[] = [];
    const sub = nc.subscribe('metering.>');
    void (async () => {
      for await (const m of sub) {
        if (m.subject === 'metering.usage') continue;
        const e = decodeCloudEvent({ headers: m.headers, data: m.data });
        seen.push({ subject: m.subject, id: e.id, data: e.data });
      }
    })();
    const spend = (i: number, costUsd: number) => ({
      id: `chatcmpl-s${i}`,
      record: { ...usageRecord(i, 'spender'), costUsd } satisfies UsageRecord,
    });
    // 0.5 USD of the 1 USD budget: nothing yet
    await publishUsage(nc, [spend(0, 0.25), spend(1, 0.25)]);
    await waitFor(async () => (await rawCount(db.url, 'spender')) === 2, { what: 'first spend' });
    await app!.get(SpendTracker).idle();
    const period = billingPeriod(new Date());
    const key = `${quotaPrefix}:q:{spender}:spend:${period.id}`;
    expect(Number(await redis.get(key))).toBeCloseTo(0.5, 9);

    await publishUsage(nc, [spend(2, 0.35)]); // 85 %
    await waitFor(() => seen.some((s) => s.subject === 'metering.budget.warning'), {
      what: 'warning',
    });
    await publishUsage(nc, [spend(3, 0.1), spend(4, 0.2), spend(5, 0.2)]); // 135 %
    await waitFor(() => seen.some((s) => s.subject === 'metering.quota.exceeded'), {
      what: 'exceeded',
    });
    await publishUsage(nc, [spend(6, 0.2)]);
    await waitFor(async () => (await rawCount(db.url, 'spender')) === 7, { what: 'all spend' });
    await app!.get(SpendTracker).idle();
    await new Promise((r) => setTimeout(r, 300));
    sub.unsubscribe();

    expect(Number(await redis.get(key))).toBeCloseTo(1.55, 9);
    expect(seen.map((s) => s.subject).sort()).toEqual([
      'metering.budget.warning',
      'metering.quota.exceeded',
    ]);
    expect(seen.find((s) => s.subject === 'metering.quota.exceeded')).toMatchObject({
      id: `spender.monthly-budget.${period.id}.exceeded`,
      data: { tenantId: 'spender', limit: 'monthlyBudgetUsd', window: period.id },
    });
    expect(seen.find((s) => s.subject === 'metering.budget.warning')?.data).toMatchObject({
      threshold: 0.8,
    });
    // both events are on METERING and the consumer acks them without a termination
    await waitFor(async () => (await consumerBacklog(nc)) === 0, { what: 'consumer drained' });
    const terminated = await withPg(db.url, (pg) =>
      pg.query(
        `SELECT 1 FROM dlq.terminations WHERE event_type LIKE 'aob.metering.%' AND event_id <> 'chatcmpl-mismatch'`,
      ),
    );
    expect(terminated.rowCount).toBe(0);
  });

  it('terminates poison inside a big batch with its reason and commits the rest of the batch', async () => {
    const { jetstream } = await import('@nats-io/jetstream');
    const { CloudEvent } = await import('cloudevents');
    const js = jetstream(nc);
    /** Published around EventPublisher (which would refuse them), as a broken producer could. */
    const rawPublish = async (id: string, data: unknown, over: Record<string, unknown> = {}) => {
      const event = new CloudEvent<unknown>(
        {
          id,
          source: 'aob://model-gateway',
          type: 'aob.metering.usage.v1',
          datacontenttype: 'application/json',
          data,
          ...over,
        },
        false,
      );
      const { headers, data: bytes } = encodeBinary(event);
      await js.publish('metering.usage', bytes, { headers, msgID: id });
      return { headers, bytes };
    };
    const good = Array.from({ length: 1_500 }, (_, i) => ({
      id: `chatcmpl-p${i}`,
      record: usageRecord(i, 'tenant-p'),
    }));
    const poison = {
      'chatcmpl-p-schema': 'promptTokens',
      'chatcmpl-p-type': 'unknown event type',
      'chatcmpl-p-nul': 'cannot be stored',
      'chatcmpl-p-json': 'not valid JSON',
    };
    const publishing = publishUsage(nc, good);
    await rawPublish('chatcmpl-p-schema', { ...usageRecord(1, 'tenant-p'), promptTokens: -1 });
    await rawPublish('chatcmpl-p-type', usageRecord(2, 'tenant-p'), {
      type: 'com.example.unknown',
    });
    // valid for the schema, refused by Postgres (text cannot hold NUL): the batch is retried entry by entry
    await rawPublish('chatcmpl-p-nul', { ...usageRecord(3, 'tenant-p'), model: 'sim\u0000small' });
    const broken = encodeBinary(
      new CloudEvent<unknown>(
        {
          id: 'chatcmpl-p-json',
          source: 'aob://model-gateway',
          type: 'aob.metering.usage.v1',
          datacontenttype: 'application/json',
          data: {},
        },
        false,
      ),
    );
    await js.publish('metering.usage', new TextEncoder().encode('{"tenantId":'), {
      headers: broken.headers,
      msgID: 'chatcmpl-p-json',
    });
    await publishing;
    await waitFor(async () => (await rawCount(db.url, 'tenant-p')) === 1_500, {
      timeoutMs: 30_000,
      what: '1500 records',
    });
    await waitFor(async () => (await consumerBacklog(nc)) === 0, { what: 'consumer drained' });
    const terminated = await withPg(
      db.url,
      async (pg) =>
        (
          await pg.query<{ event_id: string; reason: string }>(
            `SELECT event_id, reason FROM dlq.terminations WHERE event_id LIKE 'chatcmpl-p-%' ORDER BY 1`,
          )
        ).rows,
    );
    expect(terminated.map((t) => t.event_id)).toEqual(Object.keys(poison).sort());
    for (const t of terminated)
      expect(t.reason).toContain(poison[t.event_id as keyof typeof poison]);
    const totals = await dailyTotals(db.url, 'tenant-p');
    expect(totals.requests).toBe(1_500);
    expect(totals.promptTokens).toBe(sumOf(good.map((g) => g.record)).promptTokens);
  });

  it('prunes raw records past retention and keeps the aggregates', async () => {
    await withPg(db.url, (pg) =>
      pg.query(
        `UPDATE metering.usage_records SET received_at = now() - interval '100 days' WHERE tenant_id = 'tenant-d'`,
      ),
    );
    const before = await dailyTotals(db.url, 'tenant-d');
    expect(await app!.get(RawRecordPruner).prune()).toBe(50);
    expect(await rawCount(db.url, 'tenant-d')).toBe(0);
    expect(await dailyTotals(db.url, 'tenant-d')).toEqual(before);
  });

  it('a graceful stop mid-batch loses nothing and double-counts nothing', async () => {
    const records = Array.from({ length: 3_000 }, (_, i) => ({
      id: `chatcmpl-g${i}`,
      record: usageRecord(i, 'tenant-g'),
    }));
    // the first half arrives while the app runs and is stopped after its first batch; the second
    // half while it is down (a fast machine could otherwise ingest everything before the stop)
    const publishing = publishUsage(nc, records.slice(0, 1_500));
    await waitFor(async () => (await rawCount(db.url, 'tenant-g')) > 0, {
      what: 'first batch',
      intervalMs: 5,
    });
    await app!.close();
    app = undefined;
    await publishing;
    await publishUsage(nc, records.slice(1_500));
    const mid = await rawCount(db.url, 'tenant-g');
    expect(mid).toBeGreaterThan(0);
    expect(mid).toBeLessThanOrEqual(1_500);
    app = (
      await startMeteringApp(nats.url, db.url, {
        QUOTA_KEY_PREFIX: quotaPrefix,
        QUOTA_DEFAULT_MONTHLY_BUDGET_USD: '1',
      })
    ).app;
    await waitFor(async () => (await rawCount(db.url, 'tenant-g')) === 3_000, {
      timeoutMs: 60_000,
      what: 'all 3000',
    });
    await waitFor(async () => (await consumerBacklog(nc)) === 0, { what: 'consumer drained' });
    const expected = sumOf(records.map((r) => r.record));
    const totals = await dailyTotals(db.url, 'tenant-g');
    expect(totals.requests).toBe(3_000);
    expect(totals.promptTokens).toBe(expected.promptTokens);
    expect(totals.costUsd).toBeCloseTo(expected.costUsd, 9);
  });

  it('a crash mid-batch (committed but never acked) loses nothing and double-counts nothing', async () => {
    const jsm = await jetstreamManager(nc);
    // redeliver unacked messages after 1 s instead of 30 s (the restarted app provisions 30 s again)
    const info = await jsm.consumers.info('METERING', 'metering');
    await jsm.consumers.update('METERING', 'metering', { ...info.config, ack_wait: nanos(1_000) });
    const duplicatesBefore = await duplicatesSeen();
    const records = Array.from({ length: 3_000 }, (_, i) => ({
      id: `chatcmpl-c${i}`,
      record: usageRecord(i, 'tenant-c'),
    }));
    const publishing = publishUsage(nc, records);
    await waitFor(async () => (await rawCount(db.url, 'tenant-c')) > 0, {
      what: 'first batch',
      intervalMs: 5,
    });
    // the crash: the app's NATS connection dies at once, so batches in flight commit and their acks are lost
    await app!.get<NatsConnection>(NATS_CONNECTION).close();
    await app!.close();
    app = undefined;
    await publishing;
    // let the 1 s ack_wait run out before the restart provisions 30 s again: the server has then
    // queued the unacked deliveries for redelivery, and the restarted app gets them at once
    await new Promise((r) => setTimeout(r, 1_500));
    const committed = await rawCount(db.url, 'tenant-c');
    expect(committed).toBeGreaterThan(0);
    expect(committed).toBeLessThan(3_000);
    app = (
      await startMeteringApp(nats.url, db.url, {
        QUOTA_KEY_PREFIX: quotaPrefix,
        QUOTA_DEFAULT_MONTHLY_BUDGET_USD: '1',
      })
    ).app;
    await waitFor(async () => (await rawCount(db.url, 'tenant-c')) === 3_000, {
      timeoutMs: 90_000,
      what: 'all 3000',
    });
    await waitFor(async () => (await consumerBacklog(nc)) === 0, {
      timeoutMs: 60_000,
      what: 'consumer drained',
    });
    const expected = sumOf(records.map((r) => r.record));
    const totals = await dailyTotals(db.url, 'tenant-c');
    expect(totals.requests).toBe(3_000);
    expect(totals.promptTokens).toBe(expected.promptTokens);
    expect(totals.completionTokens).toBe(expected.completionTokens);
    expect(totals.costUsd).toBeCloseTo(expected.costUsd, 9);
    // committed-but-unacked messages did come back, and were recognised
    expect((await duplicatesSeen()) - duplicatesBefore).toBeGreaterThan(0);
  });
});
