import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { INestApplication } from '@nestjs/common';
import { Client } from 'pg';
import { EventPublisher, eventSource, type UsageRecord } from '@aob/events';
import { testRedisUrl, uniqueKeyPrefix } from '@aob/testing';
import { startMetering } from '../../src/app.module';
import { loadMeteringConfig } from '../../src/config';

export const MODELS = [
  { model: 'sim-small', deployment: 'local-fast' },
  { model: 'sim-medium', deployment: 'local-balanced' },
] as const;

/** A usage record as the model gateway would publish it. */
export function usageRecord(i: number, tenantId: string, at = new Date()): UsageRecord {
  const m = MODELS[i % MODELS.length]!;
  return {
    tenantId,
    ...(i % 3 === 0 ? {} : { runId: `run-${i % 17}`, agent: i % 2 === 0 ? 'chat' : 'pipeline' }),
    model: m.model,
    deployment: m.deployment,
    promptTokens: 10 + (i % 50),
    completionTokens: 5 + (i % 30),
    costUsd: Number(((10 + (i % 50)) * 0.0000001 + (5 + (i % 30)) * 0.0000004).toFixed(10)),
    latencyMs: 12,
    at: at.toISOString(),
  };
}

/** Publishes records as `aob.metering.usage.v1` with ids `<prefix>-<i>`, `window` publishes in flight. */
export async function publishUsage(
  nc: NatsConnection,
  records: { id: string; record: UsageRecord; msgId?: string }[],
  window = 256,
): Promise<void> {
  const publisher = new EventPublisher(jetstream(nc), eventSource('model-gateway'));
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(window, records.length) }, async () => {
      while (next < records.length) {
        const r = records[next++]!;
        await publisher.publish('meteringUsage', r.record, {
          id: r.id,
          tenantId: r.record.tenantId,
          ...(r.msgId === undefined ? {} : { msgId: r.msgId }),
        });
      }
    }),
  );
}

export function sumOf(records: UsageRecord[]) {
  return {
    requests: records.length,
    promptTokens: records.reduce((s, r) => s + r.promptTokens, 0),
    completionTokens: records.reduce((s, r) => s + r.completionTokens, 0),
    costUsd: records.reduce((s, r) => s + r.costUsd, 0),
  };
}

export async function withPg<T>(url: string, fn: (pg: Client) => Promise<T>): Promise<T> {
  const pg = new Client({ connectionString: url });
  await pg.connect();
  try {
    return await fn(pg);
  } finally {
    await pg.end();
  }
}

export async function rawCount(url: string, tenantId?: string): Promise<number> {
  return withPg(url, async (pg) => {
    const { rows } = await pg.query<{ n: string }>(
      `SELECT count(*) AS n FROM metering.usage_records WHERE $1::text IS NULL OR tenant_id = $1`,
      [tenantId ?? null],
    );
    return Number(rows[0]!.n);
  });
}

export async function dailyTotals(url: string, tenantId: string) {
  return withPg(url, async (pg) => {
    const { rows } = await pg.query<{
      requests: string;
      prompt: string;
      completion: string;
      total: string;
      cost: string;
    }>(
      `SELECT COALESCE(sum(requests),0) AS requests, COALESCE(sum(prompt_tokens),0) AS prompt,
              COALESCE(sum(completion_tokens),0) AS completion, COALESCE(sum(total_tokens),0) AS total,
              COALESCE(sum(cost_usd),0)::text AS cost
         FROM metering.usage_daily WHERE tenant_id = $1`,
      [tenantId],
    );
    const r = rows[0]!;
    return {
      requests: Number(r.requests),
      promptTokens: Number(r.prompt),
      completionTokens: Number(r.completion),
      totalTokens: Number(r.total),
      costUsd: Number(r.cost),
    };
  });
}

/** Messages of the `metering` consumer not yet acked (pending + in flight). */
export async function consumerBacklog(nc: NatsConnection): Promise<number> {
  const info = await (await jetstreamManager(nc)).consumers.info('METERING', 'metering');
  return info.num_pending + info.num_ack_pending;
}

export async function startMeteringApp(
  natsUrl: string,
  databaseUrl: string,
  env: Record<string, string> = {},
) {
  const quotaPrefix = env.QUOTA_KEY_PREFIX ?? uniqueKeyPrefix('mq');
  const config = loadMeteringConfig({
    PORT: '0',
    NATS_URL: natsUrl,
    DATABASE_URL: databaseUrl,
    REDIS_URL: testRedisUrl(),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    QUOTA_KEY_PREFIX: quotaPrefix,
    METERING_BATCH_WAIT_MS: '10',
    SHUTDOWN_GRACE_MS: '10000',
    ...env,
  });
  const app: INestApplication = await startMetering(config);
  return { app, config, quotaPrefix };
}
