// Bench section `backbone`: throughput of the event backbone.
//
// Both measurements run in the same process against the same private nats-server (file storage),
// so the ratio between them is meaningful on a noisy machine:
//   raw  — JetStream alone: publish (with Nats-Msg-Id) → durable pull consumer → publish a reply
//          to a second stream → ack. The floor any JetStream-based job runner pays.
//   bus  — AOB end to end: a binary CloudEvent `aob.agent.execute.v1` for the `echo` agent →
//          agent-executor (a real child process: decode, validate, claim the run in Postgres,
//          started event, checkpoint, completed event, Redis run stream) → `agent.status.completed`.
//
// Needs a build (`npm run bench` builds first) and the local PostgreSQL and Redis.
//   BENCH_ROUNDS (default 3), BENCH_RAW_N (default 10000), BENCH_BUS_N (default 2000),
//   EXECUTOR_CONCURRENCY (default 32),
//   BENCH_EXECUTOR_NODE_ARGS (extra node flags for the executor, e.g. --cpu-prof)

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'package.json'));
const { connect } = require('@nats-io/transport-node');
const { jetstream, jetstreamManager, AckPolicy } = require('@nats-io/jetstream');
const { CloudEvent } = require('cloudevents');
const { Client: PgClient } = require('pg');
const { Redis } = require('ioredis');
const testing = require(path.join(root, 'libs/testing/dist'));
const events = require(path.join(root, 'libs/events/dist'));

const RAW_N = Number(process.env.BENCH_RAW_N ?? 10000);
const BUS_N = Number(process.env.BENCH_BUS_N ?? 2000);
const CONCURRENCY = Number(process.env.EXECUTOR_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
// untimed warm-up of each side (JIT, pools, prepared plans) before the rounds
const WARM_RUNS = 1000;
const WARM_MESSAGES = 5000;
const log = (m) => process.stderr.write(`bench: ${m}\n`);
const nanos = (ms) => ms * 1_000_000;

/** Publishes n messages keeping at most `window` publishes in flight. */
async function publishAll(n, window, publishOne) {
  let next = 0;
  const workers = Array.from({ length: window }, async () => {
    while (next < n) await publishOne(next++);
  });
  await Promise.all(workers);
}

function waitForCount(sub, n, timeoutMs) {
  return new Promise((resolve, reject) => {
    let count = 0;
    const timer = setTimeout(
      () => reject(new Error(`only ${count}/${n} arrived in ${timeoutMs} ms`)),
      timeoutMs,
    );
    (async () => {
      for await (const _ of sub) {
        if (++count >= n) {
          clearTimeout(timer);
          resolve(count);
          return;
        }
      }
    })().catch(reject);
  });
}

/** Creates the raw baseline's streams and consumer once; `rawRound` then measures on them. */
async function setupRaw(nc) {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  for (const [name, subj] of [
    ['BENCH_RAW', 'bench.raw.>'],
    ['BENCH_REPLY', 'bench.reply.>'],
  ]) {
    await jsm.streams.add({
      name,
      subjects: [subj],
      storage: 'file',
      duplicate_window: nanos(120_000),
    });
  }
  await jsm.consumers.add('BENCH_RAW', {
    durable_name: 'bench-raw',
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(30_000),
    max_ack_pending: 1000,
  });
  const consumer = await js.consumers.get('BENCH_RAW', 'bench-raw');
  const messages = await consumer.consume({ max_messages: 500 });
  (async () => {
    for await (const m of messages) {
      // the same shape as a worker: do the work (a reply publish) off the loop, ack after it is stored
      js.publish(`bench.reply.${m.seq}`, m.data, { msgID: `reply-${m.seq}` }).then(
        () => m.ack(),
        (e) => log(`raw reply: ${e.message}`),
      );
    }
  })().catch((e) => log(`raw consumer: ${e.message}`));
  return { js, stop: () => messages.stop() };
}

async function rawRound(nc, raw, round, natsPid, n = RAW_N) {
  const replies = nc.subscribe('bench.reply.>');
  const done = waitForCount(replies, n, 120_000);
  const cpu = await cpuProbe(async () => ({ natsServer: [natsPid()] }));
  const payload = new TextEncoder().encode(
    JSON.stringify({ agent: 'echo', input: { message: 'hi' } }),
  );
  const t0 = performance.now();
  await publishAll(n, 256, (i) =>
    raw.js.publish(`bench.raw.${i % 16}`, payload, { msgID: `raw-${round}-${i}` }),
  );
  await done;
  const seconds = (performance.now() - t0) / 1000;
  const cpuMsPerMessage = await cpu(n);
  replies.unsubscribe();
  return {
    messages: n,
    seconds: round2(seconds),
    perSecond: round2(n / seconds),
    cpuMsPerMessage,
  };
}

async function startExecutor(env) {
  const port = await testing.freePort();
  // BENCH_EXECUTOR_NODE_ARGS: extra node flags for the executor, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`
  const nodeArgs = (process.env.BENCH_EXECUTOR_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const main = path.join(root, 'apps/agent-executor/dist/main.js');
  const child = spawn(process.execPath, [...nodeArgs, main], {
    env: { ...process.env, ...env, PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await testing.waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, {
    timeoutMs: 30_000,
    what: 'agent-executor /readyz',
  });
  return child;
}

/** Starts the executor on a fresh database and warms it up; `busRound` then measures through it. */
async function setupBus(nc, natsUrl, natsPid) {
  const db = await testing.createTestDatabase('aob_bench');
  if (process.env.BENCH_PG_LOG_MS) {
    const admin = new PgClient({ connectionString: db.url });
    await admin.connect();
    await admin.query(
      `ALTER DATABASE "${new URL(db.url).pathname.slice(1)}" SET log_min_duration_statement = ${Number(process.env.BENCH_PG_LOG_MS)}`,
    );
    await admin.end();
  }
  const jsm = await jetstreamManager(nc);
  await events.provisionJetStream(jsm);
  const executor = await startExecutor({
    NATS_URL: natsUrl,
    DATABASE_URL: db.url,
    EXECUTOR_CONCURRENCY: String(CONCURRENCY),
  });
  const js = jetstream(nc);
  const publishRun = (id) => {
    const ce = new CloudEvent({
      id,
      source: 'aob://bench',
      type: 'aob.agent.execute.v1',
      tenantid: 'bench',
      datacontenttype: 'application/json',
      data: { agent: 'echo', input: { message: id } },
    });
    const { headers, data } = events.encodeBinary(ce);
    return js.publish('agent.execute.echo', data, { headers, msgID: ce.id });
  };
  const pg = new PgClient({ connectionString: db.url });
  await pg.connect();
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: true });
  await redis.connect();
  const redisPid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);
  await redis.quit();
  const participants = async () => {
    const backends = await pg.query(
      `SELECT pid, backend_type FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid()`,
    );
    const of = (vacuum) =>
      backends.rows
        .filter((r) => (r.backend_type === 'autovacuum worker') === vacuum)
        .map((r) => r.pid);
    return {
      executor: [executor.pid],
      natsServer: [natsPid()],
      postgres: of(false),
      postgresAutovacuum: of(true),
      redis: Number.isFinite(redisPid) ? [redisPid] : [],
    };
  };
  const stop = async () => {
    await pg.end().catch(() => undefined);
    executor.kill('SIGTERM');
    await new Promise((r) => executor.once('exit', r));
    await db.drop();
  };
  try {
    // warm-up: JIT, connection pools, prepared plans
    const warm = nc.subscribe('agent.status.completed');
    const warmed = waitForCount(warm, WARM_RUNS, 120_000);
    await publishAll(WARM_RUNS, 256, (i) => publishRun(`warm-${i}`));
    await warmed;
    warm.unsubscribe();
  } catch (err) {
    await stop();
    throw err;
  }
  /** Bytes of WAL the whole server has written so far (the bench database is its main writer). */
  const walBytes = async () =>
    Number((await pg.query(`SELECT pg_current_wal_lsn() - '0/0' AS b`)).rows[0].b);
  return { publishRun, participants, walBytes, stop };
}

async function busRound(nc, bus, round) {
  const sub = nc.subscribe('agent.status.completed');
  const done = waitForCount(sub, BUS_N, 300_000);
  const cpu = await cpuProbe(bus.participants);
  const wal0 = await bus.walBytes();
  const t0 = performance.now();
  await publishAll(BUS_N, 256, (i) => bus.publishRun(`run-${round}-${i}`));
  await done;
  const seconds = (performance.now() - t0) / 1000;
  const cpuMsPerRun = await cpu(BUS_N);
  const walBytesPerRun = Math.round(((await bus.walBytes()) - wal0) / BUS_N);
  sub.unsubscribe();
  return {
    runs: BUS_N,
    seconds: round2(seconds),
    perSecond: round2(BUS_N / seconds),
    cpuMsPerRun,
    walBytesPerRun,
  };
}

/** CPU seconds (user + system) a process has used so far; undefined where /proc is not there. */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks (USER_HZ 100)
  } catch {
    return undefined;
  }
}

/**
 * Where the CPU goes: per participant, CPU seconds used during a round. Postgres counts the
 * backends connected to the bench database; Redis is the whole server (the bench is its main user).
 */
async function cpuProbe(participants) {
  // per process id: a backend (or autovacuum worker) that appears during the round counts whole
  const read = async () => {
    const out = {};
    for (const [name, pids] of Object.entries(await participants())) {
      out[name] = new Map();
      for (const pid of pids) {
        const secs = cpuSeconds(pid);
        if (secs !== undefined) out[name].set(pid, secs);
      }
    }
    const usage = process.cpuUsage();
    out.bench = new Map([[process.pid, (usage.user + usage.system) / 1e6]]);
    return out;
  };
  const before = await read();
  return async (per) => {
    const after = await read();
    const used = {};
    for (const [name, pids] of Object.entries(after)) {
      if (pids.size === 0) continue;
      let secs = 0;
      for (const [pid, v] of pids) secs += v - (before[name]?.get(pid) ?? 0);
      used[name] = round2((secs * 1000) / per);
    }
    return used; // CPU milliseconds per message / run
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

const round2 = (x) => Math.round(x * 100) / 100;

/**
 * Runs the section on a private nats-server of its own; returns its JSON. Raw and bus rounds
 * alternate (raw, bus, raw, bus, ...) so that a noisy neighbour hits both sides alike; the ratio
 * is the median of the per-round ratios.
 */
export async function run() {
  const server = await testing.startNatsServer();
  const nc = await connect({ servers: server.url });
  const raw = await setupRaw(nc);
  let bus;
  try {
    const natsPid = () => server.pid;
    bus = await setupBus(nc, server.url, natsPid);
    log(`warm-up: raw JetStream, ${WARM_MESSAGES} messages`);
    await rawRound(nc, raw, 'warm', natsPid, WARM_MESSAGES);
    const rounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      log(`round ${r + 1}/${ROUNDS}: raw JetStream, ${RAW_N} messages`);
      const rawResult = await rawRound(nc, raw, r, natsPid);
      log(`round ${r + 1}/${ROUNDS}: AOB bus, ${BUS_N} echo runs`);
      const busResult = await busRound(nc, bus, r);
      rounds.push({
        rawPerSecond: rawResult.perSecond,
        busPerSecond: busResult.perSecond,
        ratio: round2(busResult.perSecond / rawResult.perSecond),
        rawCpuMsPerMessage: rawResult.cpuMsPerMessage,
        busCpuMsPerRun: busResult.cpuMsPerRun,
        busWalBytesPerRun: busResult.walBytesPerRun,
      });
    }
    return {
      raw: { messages: RAW_N, perSecond: round2(median(rounds.map((r) => r.rawPerSecond))) },
      bus: {
        runs: BUS_N,
        perSecond: round2(median(rounds.map((r) => r.busPerSecond))),
        executorConcurrency: CONCURRENCY,
      },
      ratio: round2(median(rounds.map((r) => r.ratio))),
      rounds,
      goal: 'bus >= 0.10 x raw (median of per-round ratios)',
    };
  } finally {
    raw.stop();
    await bus?.stop();
    await nc.close();
    await server.stop();
  }
}
