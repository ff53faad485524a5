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
//   BENCH_RAW_N (default 5000), BENCH_BUS_N (default 2000), EXECUTOR_CONCURRENCY (default 32)

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'package.json'));
const { connect } = require('@nats-io/transport-node');
const { jetstream, jetstreamManager, AckPolicy } = require('@nats-io/jetstream');
const { CloudEvent } = require('cloudevents');
const testing = require(path.join(root, 'libs/testing/dist'));
const events = require(path.join(root, 'libs/events/dist'));

const RAW_N = Number(process.env.BENCH_RAW_N ?? 5000);
const BUS_N = Number(process.env.BENCH_BUS_N ?? 2000);
const CONCURRENCY = Number(process.env.EXECUTOR_CONCURRENCY ?? 32);
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

async function benchRaw(nc) {
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
  const replies = nc.subscribe('bench.reply.>');
  const done = waitForCount(replies, RAW_N, 120_000);
  const consumer = await js.consumers.get('BENCH_RAW', 'bench-raw');
  const messages = await consumer.consume({ max_messages: 500 });
  let inFlight = 0;
  (async () => {
    for await (const m of messages) {
      inFlight++;
      // the same shape as a worker: do the work (a reply publish) off the loop, ack after it is stored
      js.publish(`bench.reply.${m.seq}`, m.data, { msgID: `reply-${m.seq}` })
        .then(() => m.ack())
        .finally(() => inFlight--);
    }
  })().catch((e) => log(`raw consumer: ${e.message}`));
  const payload = new TextEncoder().encode(
    JSON.stringify({ agent: 'echo', input: { message: 'hi' } }),
  );
  const t0 = performance.now();
  await publishAll(RAW_N, 256, (i) =>
    js.publish(`bench.raw.${i % 16}`, payload, { msgID: `raw-${i}` }),
  );
  await done;
  const seconds = (performance.now() - t0) / 1000;
  messages.stop();
  replies.unsubscribe();
  return { messages: RAW_N, seconds: round(seconds), perSecond: round(RAW_N / seconds) };
}

async function startExecutor(env) {
  const port = await testing.freePort();
  const child = spawn(process.execPath, [path.join(root, 'apps/agent-executor/dist/main.js')], {
    env: { ...process.env, ...env, PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await testing.waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, {
    timeoutMs: 30_000,
    what: 'agent-executor /readyz',
  });
  return child;
}

async function benchBus(nc, natsUrl) {
  const db = await testing.createTestDatabase('aob_bench');
  const jsm = await jetstreamManager(nc);
  await events.provisionJetStream(jsm);
  const executor = await startExecutor({
    NATS_URL: natsUrl,
    DATABASE_URL: db.url,
    EXECUTOR_CONCURRENCY: String(CONCURRENCY),
  });
  try {
    const js = jetstream(nc);
    const publishRun = (i, prefix) => {
      const ce = new CloudEvent({
        id: `${prefix}-${i}`,
        source: 'aob://bench',
        type: 'aob.agent.execute.v1',
        tenantid: 'bench',
        datacontenttype: 'application/json',
        data: { agent: 'echo', input: { message: i } },
      });
      const { headers, data } = events.encodeBinary(ce);
      return js.publish('agent.execute.echo', data, { headers, msgID: ce.id });
    };
    // warm-up: JIT, connection pools, prepared plans
    const warm = nc.subscribe('agent.status.completed');
    const warmed = waitForCount(warm, 100, 60_000);
    await publishAll(100, 32, (i) => publishRun(i, 'warm'));
    await warmed;
    warm.unsubscribe();

    const sub = nc.subscribe('agent.status.completed');
    const done = waitForCount(sub, BUS_N, 300_000);
    const t0 = performance.now();
    await publishAll(BUS_N, 256, (i) => publishRun(i, 'run'));
    await done;
    const seconds = (performance.now() - t0) / 1000;
    sub.unsubscribe();
    return {
      runs: BUS_N,
      seconds: round(seconds),
      perSecond: round(BUS_N / seconds),
      executorConcurrency: CONCURRENCY,
    };
  } finally {
    executor.kill('SIGTERM');
    await new Promise((r) => executor.once('exit', r));
    await db.drop();
  }
}

const round = (x) => Math.round(x * 100) / 100;

/** Runs the section on a private nats-server of its own; returns its JSON. */
export async function run() {
  const server = await testing.startNatsServer();
  const nc = await connect({ servers: server.url });
  try {
    log(`raw JetStream, ${RAW_N} messages`);
    const raw = await benchRaw(nc);
    log(`AOB bus, ${BUS_N} echo runs`);
    const bus = await benchBus(nc, server.url);
    return { raw, bus, ratio: round(bus.perSecond / raw.perSecond), goal: 'bus >= 0.10 x raw' };
  } finally {
    await nc.close();
    await server.stop();
  }
}
