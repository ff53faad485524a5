// Bench section `metering-ingest`: usage events ingested per second, exactly once.
//
// A real metering process (apps/metering/dist, a child process) consumes `aob.metering.usage.v1`
// from a private nats-server (file storage) into a fresh database:
//   publish  — the baseline: binary CloudEvents published with Nats-Msg-Id, 256 in flight, no consumer
//              running. What the producer side alone manages on this machine.
//   live     — metering running; N events published; time from the first publish until all N are
//              committed in Postgres (published → committed, end to end).
//   backlog  — metering stopped, N events waiting in the stream, metering started: time from the
//              first to the last commit (the consumer's own pace, without the publisher in the way).
// Exactly once is checked: raw records = aggregate requests = events published; then every event is
// republished with another Nats-Msg-Id and nothing changes.
// Needs a build (`npm run bench` builds first) and the local PostgreSQL and Redis.
//   BENCH_METERING_N (default 20000)

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'package.json'));
const { connect } = require('@nats-io/transport-node');
const { jetstream, jetstreamManager } = require('@nats-io/jetstream');
const { Client } = require('pg');
const testing = require(path.join(root, 'libs/testing/dist'));
const events = require(path.join(root, 'libs/events/dist'));

const N = Number(process.env.BENCH_METERING_N ?? 20_000);
const log = (m) => process.stderr.write(`bench: ${m}\n`);
const round = (x) => Math.round(x * 100) / 100;

function record(i, tenantId) {
  return {
    tenantId,
    runId: `run-${i % 1000}`,
    agent: i % 2 ? 'chat' : 'pipeline',
    model: i % 3 ? 'sim-small' : 'sim-medium',
    deployment: i % 3 ? 'local-fast' : 'local-balanced',
    promptTokens: 100 + (i % 7),
    completionTokens: 20 + (i % 5),
    costUsd: 0.000018,
    latencyMs: 10,
    at: new Date().toISOString(),
  };
}

async function publishAll(publisher, n, prefix, tenantId, msgIdSuffix) {
  let next = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next < n) {
        const i = next++;
        const id = `chatcmpl-${prefix}-${i}`;
        await publisher.publish('meteringUsage', record(i, tenantId), {
          id,
          tenantId,
          ...(msgIdSuffix ? { msgId: `${id}-${msgIdSuffix}` } : {}),
        });
      }
    }),
  );
}

async function startMetering(env) {
  const port = await testing.freePort();
  const child = spawn(process.execPath, [path.join(root, 'apps/metering/dist/main.js')], {
    env: { ...process.env, ...env, PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await testing.waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, {
    timeoutMs: 30_000,
    what: 'metering /readyz',
  });
  return child;
}

async function stop(child) {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
}

async function counts(pg, tenantId) {
  const raw = await pg.query(
    'SELECT count(*)::int AS n FROM metering.usage_records WHERE tenant_id = $1',
    [tenantId],
  );
  const agg = await pg.query(
    'SELECT COALESCE(sum(requests),0)::int AS n FROM metering.usage_daily WHERE tenant_id = $1',
    [tenantId],
  );
  return { raw: raw.rows[0].n, aggregated: agg.rows[0].n };
}

/** Polls until `n` records of the tenant are committed; returns [first seen, done] timestamps. */
async function waitCommitted(pg, tenantId, n, timeoutMs = 300_000) {
  let first;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const { raw } = await counts(pg, tenantId);
    if (raw > 0 && first === undefined) first = performance.now();
    if (raw >= n) return [first, performance.now()];
    if (performance.now() > deadline) throw new Error(`only ${raw}/${n} committed`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function run() {
  const server = await testing.startNatsServer();
  const db = await testing.createTestDatabase('aob_bench_metering');
  const nc = await connect({ servers: server.url });
  const pg = new Client({ connectionString: db.url });
  await pg.connect();
  const env = {
    NATS_URL: server.url,
    DATABASE_URL: db.url,
    REDIS_URL: testing.testRedisUrl(),
    QUOTA_KEY_PREFIX: testing.uniqueKeyPrefix('benchm'),
  };
  let metering;
  try {
    await events.provisionJetStream(await jetstreamManager(nc));
    const publisher = new events.EventPublisher(jetstream(nc), 'aob://model-gateway');

    log(`metering: publish baseline, ${N} events (no consumer)`);
    let t0 = performance.now();
    await publishAll(publisher, N, 'backlog', 'bench-backlog');
    const publishSeconds = (performance.now() - t0) / 1000;

    log(`metering: backlog of ${N} events`);
    metering = await startMetering(env);
    const [firstCommit, backlogDone] = await waitCommitted(pg, 'bench-backlog', N);
    const backlogSeconds = (backlogDone - firstCommit) / 1000;

    log(`metering: live, ${N} events published → committed`);
    t0 = performance.now();
    await publishAll(publisher, N, 'live', 'bench-live');
    const [, liveDone] = await waitCommitted(pg, 'bench-live', N);
    const liveSeconds = (liveDone - t0) / 1000;

    log('metering: republishing every live event with another Nats-Msg-Id');
    await publishAll(publisher, N, 'live', 'bench-live', 'again');
    const jsm = await jetstreamManager(nc);
    await testing.waitFor(
      async () => {
        const info = await jsm.consumers.info('METERING', 'metering');
        return info.num_pending + info.num_ack_pending === 0;
      },
      { timeoutMs: 120_000, what: 'consumer drained' },
    );
    const live = await counts(pg, 'bench-live');
    const backlog = await counts(pg, 'bench-backlog');
    const exactlyOnce =
      live.raw === N && live.aggregated === N && backlog.raw === N && backlog.aggregated === N;
    return {
      events: N,
      publish: { seconds: round(publishSeconds), perSecond: round(N / publishSeconds) },
      backlog: { seconds: round(backlogSeconds), perSecond: round(N / backlogSeconds) },
      live: { seconds: round(liveSeconds), perSecond: round(N / liveSeconds) },
      exactlyOnce,
      counted: { live, backlog },
      goal: '20000 events/s',
    };
  } finally {
    if (metering) await stop(metering);
    await pg.end();
    await nc.close();
    await server.stop();
    await db.drop();
  }
}
