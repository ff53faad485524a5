// Bench section `metering-ingest`: usage events ingested per second, exactly once.
//
// A real metering process (apps/metering/dist, a child process) consumes `aob.metering.usage.v1`
// from a private nats-server (file storage) into a fresh database:
//   publish  — the baseline (the ceiling of `live`): binary CloudEvents, encoded as EventPublisher
//              encodes them (encodeBinary) before the clock starts, published with Nats-Msg-Id and
//              up to 4096 JetStream acks outstanding (one reply subscription, no promise per
//              message), no consumer running. What the producer side alone manages on this machine.
//   backlog  — metering stopped, N events waiting in the stream, metering started: time from the
//              first to the last commit (the consumer's own pace, without the publisher in the way).
//   live     — metering running; N events published the same way; time from the first publish
//              until all N are committed in Postgres (published → committed, end to end).
//              `live.ofPublish` = live rate / publish rate of the same run.
//   cpu      — CPU time per event of each process during backlog and live (from /proc: metering,
//              nats-server, this process as the publisher, the Postgres backends of the bench
//              database): where the time goes on a machine with few cores.
// Exactly once is checked: raw records = aggregate requests = events published; then every event is
// republished with another Nats-Msg-Id and nothing changes.
// Needs a build (`npm run bench` builds first) and the local PostgreSQL and Redis.
//   BENCH_METERING_N (default 20000)
//   BENCH_METERING_MAIN: the metering entry point to run (default apps/metering/dist/main.js), to
//                        compare another build under the same publisher on the same machine

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'package.json'));
const { connect } = require('@nats-io/transport-node');
const { createInbox } = require('@nats-io/nats-core');
const { CloudEvent } = require('cloudevents');
const { jetstreamManager } = require('@nats-io/jetstream');
const { Client } = require('pg');
const testing = require(path.join(root, 'libs/testing/dist'));
const events = require(path.join(root, 'libs/events/dist'));

const N = Number(process.env.BENCH_METERING_N ?? 20_000);
const MAIN = path.resolve(
  process.env.BENCH_METERING_MAIN ?? path.join(root, 'apps/metering/dist/main.js'),
);
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

/** Binary-mode CloudEvents exactly as EventPublisher would publish them, ready to send. */
function encodeAll(n, prefix, tenantId, msgIdSuffix) {
  return Array.from({ length: n }, (_, i) => {
    const id = `chatcmpl-${prefix}-${i}`;
    const event = new CloudEvent(
      {
        id,
        source: 'aob://model-gateway',
        type: events.EVENTS.meteringUsage.type,
        time: new Date().toISOString(),
        datacontenttype: 'application/json',
        tenantid: tenantId,
        data: record(i, tenantId),
      },
      true,
    );
    const { headers, data } = events.encodeBinary(event);
    headers.set('Nats-Msg-Id', msgIdSuffix ? `${id}-${msgIdSuffix}` : id);
    return { headers, data };
  });
}

/**
 * Publishes to JetStream with up to `window` acks outstanding: every message carries a reply
 * subject under one inbox subscription, the PubAcks are counted as they come back (an error ack
 * fails the run). What js.publish does, without a promise and a timer per message.
 */
async function publishPipelined(nc, messages, window = 4096) {
  const inbox = createInbox();
  let acked = 0;
  let sent = 0;
  let failure;
  let wake;
  const sub = nc.subscribe(`${inbox}.*`, {
    callback: (err, m) => {
      if (err) failure ??= err;
      else if (m.data.length === 0 || m.string().includes('"error"'))
        failure ??= new Error(`publish failed: ${m.string() || 'no responders'}`);
      acked++;
      wake?.();
    },
  });
  const until = async (done) => {
    const deadline = performance.now() + 60_000;
    while (!done() && !failure) {
      if (performance.now() > deadline) throw new Error(`only ${acked}/${sent} publishes acked`);
      await new Promise((r) => {
        wake = r;
        setTimeout(r, 100);
      });
    }
  };
  try {
    for (const m of messages) {
      if (sent - acked >= window) await until(() => sent - acked < window);
      if (failure) break;
      nc.publish('metering.usage', m.data, { headers: m.headers, reply: `${inbox}.${sent}` });
      sent++;
    }
    await until(() => acked >= sent);
    if (failure) throw failure;
  } finally {
    sub.unsubscribe();
  }
}

/** CPU seconds (user + system) of a process, from /proc; 0 where there is no /proc. */
function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

async function cpuSnapshot(pg, meteringPid, natsPid) {
  const { rows } = await pg.query(
    'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
  );
  const self = process.cpuUsage();
  return {
    metering: cpuSeconds(meteringPid),
    natsServer: cpuSeconds(natsPid),
    publisher: (self.user + self.system) / 1e6,
    postgres: rows.reduce((sum, r) => sum + cpuSeconds(r.pid), 0),
  };
}

/** Microseconds of CPU per event, per process, between two snapshots. */
function cpuPerEvent(before, after, n) {
  return Object.fromEntries(
    Object.keys(before).map((k) => [k, Math.round(((after[k] - before[k]) / n) * 1e6)]),
  );
}

async function startMetering(env) {
  const port = await testing.freePort();
  const child = spawn(process.execPath, [MAIN], {
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
    log(`metering: publish baseline, ${N} events (no consumer)`);
    const backlogMessages = encodeAll(N, 'backlog', 'bench-backlog');
    let t0 = performance.now();
    await publishPipelined(nc, backlogMessages);
    const publishSeconds = (performance.now() - t0) / 1000;

    log(`metering: backlog of ${N} events`);
    metering = await startMetering(env);
    let cpu0 = await cpuSnapshot(pg, metering.pid, server.pid);
    const [firstCommit, backlogDone] = await waitCommitted(pg, 'bench-backlog', N);
    const backlogSeconds = (backlogDone - firstCommit) / 1000;
    const backlogCpu = cpuPerEvent(cpu0, await cpuSnapshot(pg, metering.pid, server.pid), N);

    log(`metering: live, ${N} events published → committed`);
    const liveMessages = encodeAll(N, 'live', 'bench-live');
    cpu0 = await cpuSnapshot(pg, metering.pid, server.pid);
    t0 = performance.now();
    const publishing = publishPipelined(nc, liveMessages);
    const [, liveDone] = await waitCommitted(pg, 'bench-live', N);
    await publishing;
    const liveSeconds = (liveDone - t0) / 1000;
    const liveCpu = cpuPerEvent(cpu0, await cpuSnapshot(pg, metering.pid, server.pid), N);

    log('metering: republishing every live event with another Nats-Msg-Id');
    await publishPipelined(nc, encodeAll(N, 'live', 'bench-live', 'again'));
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
    const publishRate = N / publishSeconds;
    return {
      events: N,
      publish: { seconds: round(publishSeconds), perSecond: round(publishRate) },
      backlog: {
        seconds: round(backlogSeconds),
        perSecond: round(N / backlogSeconds),
        ofPublish: round(N / backlogSeconds / publishRate),
      },
      live: {
        seconds: round(liveSeconds),
        perSecond: round(N / liveSeconds),
        ofPublish: round(N / liveSeconds / publishRate),
      },
      cpuMicrosPerEvent: { backlog: backlogCpu, live: liveCpu },
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
