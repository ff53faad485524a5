// Bench section `model-gateway-overhead`: latency the model gateway adds in front of an LLM server.
//
// A fake OpenAI-compatible upstream (node:http in a process of its own, as an LLM server is,
// answering at once) is called twice with the same keep-alive HTTP client (undici Agent, in this
// process): directly, and through the model gateway (a real
// child process, `node apps/model-gateway/dist/main.js`, with auth on — the bootstrap admin key,
// a fresh Postgres database for stored keys and the audit log —, tenant quotas on — every request
// checked and settled in Redis (own key prefix) against limits high enough never to refuse — and
// metering on — a usage event per request to a private nats-server), with the node options of its
// k8s manifest (NODE_OPTIONS: a larger young generation). Added latency =
// percentile through the gateway − the same percentile direct, per mode and concurrency:
//   batch  — non-streamed completion, time to the whole answer;
//   stream — streamed completion, time to the first content token.
// Also reported: CPU time per request of the gateway process and of the fake upstream (a bare
// node:http server), from /proc.
// The direct baseline is measured interleaved with the gateway in the same run: after a warm-up
// both ways, BENCH_GW_ROUNDS rounds each send a block directly and then a block through the gateway
// (the order alternating per round), so machine noise (other processes on a shared box) falls on
// both sides alike. Loopback only; bounded request counts: BENCH_GW_N (default 2000 each way at
// each concurrency: a p99 of fewer samples is mostly noise), BENCH_GW_WARMUP (default 3000: a JIT-cold gateway measured at concurrency 1 doubles its CPU per request),
// BENCH_GW_ROUNDS (default 10), BENCH_GW_PHASES (say `batch:64`: only that phase). BENCH_GW_NODE_ARGS adds node flags to the gateway process (e.g.
// `--cpu-prof --cpu-prof-dir=/tmp/prof` to see where its time goes); BENCH_GW_MAIN runs another
// build of it (an older commit's, to compare).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'apps/model-gateway/package.json'));
const { Agent, request } = require('undici');
const { connect } = require('@nats-io/transport-node');
const { jetstreamManager } = require('@nats-io/jetstream');
const testing = require(path.join(root, 'libs/testing/dist'));

const N = Number(process.env.BENCH_GW_N ?? 2000);
const WARMUP = Number(process.env.BENCH_GW_WARMUP ?? 3000);
const ROUNDS = Math.max(1, Number(process.env.BENCH_GW_ROUNDS ?? 10));
const NODE_ARGS = (process.env.BENCH_GW_NODE_ARGS ?? '').split(' ').filter(Boolean);
/** Another build of the gateway to measure (e.g. an older commit's), else this tree's. */
const MAIN = process.env.BENCH_GW_MAIN ?? path.join(root, 'apps/model-gateway/dist/main.js');
/** Only these phases (`batch:1,stream:64`, ...), e.g. to profile one; all four by default. */
const PHASES = (process.env.BENCH_GW_PHASES ?? '').split(',').filter(Boolean);
const wanted = (mode, concurrency) =>
  PHASES.length === 0 || PHASES.includes(`${mode}:${concurrency}`);
const ADMIN_KEY = 'aob_bench_admin_key_0123456789abcdef';
const UPSTREAM_KEY = 'sk-bench-upstream';
const GOAL = { addedP50Ms: 1, addedP99Ms: 5 };
const log = (m) => process.stderr.write(`bench: ${m}\n`);

const MESSAGES = [
  { role: 'system', content: 'You are a benchmark.' },
  { role: 'user', content: 'Say five words.' },
];
const WORDS = ['Five ', 'words ', 'from ', 'the ', 'upstream.'];

/**
 * The fake upstream's program: answers at once, streamed or not, with usage. It runs in a process
 * of its own (startUpstream), as an LLM server does: the direct calls then cross processes as the
 * gateway's do, instead of staying in the client's event loop.
 */
function upstreamMain(WORDS) {
  const { createServer } = require('node:http');
  const completion = JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created: 1,
    model: 'bench-model',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: WORDS.join('') },
        logprobs: null,
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 20, completion_tokens: 5, total_tokens: 25 },
  });
  const base = {
    id: 'chatcmpl-bench',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'bench-model',
  };
  const frame = (delta, finish = null) =>
    `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
  const stream =
    frame({ role: 'assistant', content: '' }) +
    WORDS.map((w) => frame({ content: w })).join('') +
    frame({}, 'stop') +
    `data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: 20, completion_tokens: 5, total_tokens: 25 } })}\n\n` +
    'data: [DONE]\n\n';
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"object":"list","data":[]}');
      return;
    }
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (body.includes('"stream":true')) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        // the first content token goes out in its own write, like a real server's first token
        const split = stream.indexOf('data:', stream.indexOf('"content":"Five'));
        res.write(stream.slice(0, split));
        setImmediate(() => res.end(stream.slice(split)));
      } else {
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(completion),
        });
        res.end(completion);
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
  process.on('SIGTERM', () => process.exit(0));
}

/**
 * A reference point, not the gateway: the least a node proxy can do (node:http in, an undici
 * keep-alive Pool out, the body and the answer passed through untouched). Its added latency is the
 * price of the extra hop and process alone, which no gateway written in node can go below.
 */
function bareProxyMain(upstreamUrl, undiciPath) {
  const { createServer } = require('node:http');
  const { Pool } = require(undiciPath);
  const pool = new Pool(upstreamUrl, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 });
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const up = await pool.request({
        method: 'POST',
        path: req.url,
        headers: { 'content-type': 'application/json', authorization: req.headers.authorization },
        body: Buffer.concat(chunks),
      });
      res.writeHead(up.statusCode, { 'content-type': up.headers['content-type'] });
      for await (const chunk of up.body) res.write(chunk);
      res.end();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
  process.on('SIGTERM', () => process.exit(0));
}

/** Runs `main(...args)` (a self-contained function) in a node process of its own, serving HTTP. */
async function startServerProcess(main, ...args) {
  const child = spawn(
    process.execPath,
    ['-e', `(${main.toString()})(...${JSON.stringify(args)})`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const [port] = await once(child.stdout, 'data');
  return { child, url: `http://127.0.0.1:${Number(String(port).trim())}` };
}

const startUpstream = () => startServerProcess(upstreamMain, WORDS);

/** The node options the model gateway is deployed with (NODE_OPTIONS of its k8s manifest). */
function deployedNodeOptions() {
  const manifest = readFileSync(path.join(root, 'deploy/k8s/base/model-gateway.yaml'), 'utf8');
  const m = /- name: NODE_OPTIONS\n\s+value: (.+)\n/.exec(manifest);
  return m ? m[1].trim().split(/\s+/) : [];
}

async function startGateway(env) {
  const port = await testing.freePort();
  const child = spawn(process.execPath, [...deployedNodeOptions(), ...NODE_ARGS, MAIN], {
    env: { ...process.env, ...env, PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await testing.waitFor(
    async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => ({ ok: false }))).ok,
    {
      timeoutMs: 30_000,
      what: 'model-gateway /readyz',
    },
  );
  return { child, url: `http://127.0.0.1:${port}` };
}

/** One request; resolves with its latency (ms) and the gateway's own overhead header, if any. */
async function once1(dispatcher, url, headers, stream) {
  const body = JSON.stringify({
    model: 'bench',
    messages: MESSAGES,
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  });
  const started = performance.now();
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers,
    body,
    dispatcher,
  });
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${await res.body.text()}`);
  let latency;
  if (stream) {
    let seen = '';
    for await (const chunk of res.body) {
      if (latency === undefined) {
        seen += chunk.toString();
        if (/"content":"[^"]/.test(seen)) latency = performance.now() - started;
      }
    }
  } else {
    await res.body.text();
    latency = performance.now() - started;
  }
  const overhead = res.headers['x-aob-overhead-ms'];
  return { latency, overhead: overhead === undefined ? undefined : Number(overhead) };
}

async function load(dispatcher, url, headers, stream, concurrency, n) {
  const latencies = [];
  const overheads = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const r = await once1(dispatcher, url, headers, stream);
        latencies.push(r.latency);
        if (r.overhead !== undefined) overheads.push(r.overhead);
      }
    }),
  );
  return { latencies, overheads };
}

/** CPU time (user + system, ms) a process has used so far, from /proc (Linux); NaN elsewhere. */
function cpuMsOf(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // utime and stime, fields 14 and 15 of stat, in clock ticks (100 per second on Linux)
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

function pct(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}
const r3 = (x) => Math.round(x * 1000) / 1000;
const summary = (v) => ({ p50: r3(pct(v, 50)), p99: r3(pct(v, 99)) });

/** Limits that are checked (and metered) on every request but never refuse the bench's load. */
const QUOTAS_ON = {
  QUOTA_DEFAULT_RPS: '1000000',
  QUOTA_DEFAULT_BURST: '1000000',
  QUOTA_DEFAULT_TPM: '1000000000',
  QUOTA_DEFAULT_MONTHLY_BUDGET_USD: '1000000',
};

export async function run() {
  const nats = await testing.startNatsServer();
  const db = await testing.createTestDatabase('aob_bench_mgw');
  const upstream = await startUpstream();
  const dir = mkdtempSync(path.join(tmpdir(), 'aob-bench-gw-'));
  const catalog = path.join(dir, 'catalog.json');
  writeFileSync(
    catalog,
    JSON.stringify({
      deployments: [
        {
          name: 'bench',
          provider: 'openai',
          model: 'bench-model',
          baseUrl: `${upstream.url}/v1`,
          apiKeyEnv: 'BENCH_UPSTREAM_KEY',
          inputCostPer1M: 1,
          outputCostPer1M: 2,
          maxConcurrency: 256,
          timeoutMs: 10_000,
        },
      ],
    }),
  );
  const gateway = await startGateway({
    NATS_URL: nats.url,
    DATABASE_URL: db.url,
    REDIS_URL: testing.testRedisUrl(),
    QUOTA_KEY_PREFIX: testing.uniqueKeyPrefix('bench-mgw'),
    ...QUOTAS_ON,
    AOB_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY,
    MODEL_CATALOG: catalog,
    BENCH_UPSTREAM_KEY: UPSTREAM_KEY,
  });
  const dispatcher = new Agent({ connections: 128, keepAliveTimeout: 60_000, pipelining: 1 });
  const direct = {
    url: `${upstream.url}`,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${UPSTREAM_KEY}` },
  };
  const via = {
    url: gateway.url,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
  };
  const bareProxy = await startServerProcess(
    bareProxyMain,
    upstream.url,
    require.resolve('undici'),
  );
  const bare = { url: bareProxy.url, headers: direct.headers };
  const results = [];
  let gatewayRequests = 0;
  try {
    for (const stream of [false, true]) {
      for (const concurrency of [1, 64]) {
        if (!wanted(stream ? 'stream' : 'batch', concurrency)) continue;
        const n = N;
        const mode = stream ? 'stream (time to first token)' : 'batch (whole answer)';
        log(`model-gateway overhead: ${mode}, concurrency ${concurrency}, ${n} requests each way`);
        await load(dispatcher, direct.url, direct.headers, stream, concurrency, WARMUP);
        await load(dispatcher, via.url, via.headers, stream, concurrency, WARMUP);
        await load(dispatcher, bare.url, bare.headers, stream, concurrency, WARMUP);
        // interleaved: a block each way per round, the order alternating
        const d = { latencies: [], overheads: [] };
        const g = { latencies: [], overheads: [] };
        const b = { latencies: [], overheads: [] };
        const block = Math.max(concurrency, Math.ceil(n / ROUNDS));
        // CPU per request of the gateway process (through it) and of the fake upstream's (a bare
        // node:http server, direct): what the gateway costs next to what serving a request costs
        let gatewayCpuMs = 0;
        let upstreamCpuMs = 0;
        let bareCpuMs = 0;
        for (let round = 0, done = 0; done < n; round++, done += block) {
          const size = Math.min(block, n - done);
          const sides = [
            [direct, d],
            [via, g],
            [bare, b],
          ];
          if (round % 2 === 1) sides.reverse();
          for (const [side, into] of sides) {
            const pid = (side === via ? gateway : side === bare ? bareProxy : upstream).child.pid;
            const cpu0 = cpuMsOf(pid);
            const r = await load(dispatcher, side.url, side.headers, stream, concurrency, size);
            if (side === via) gatewayCpuMs += cpuMsOf(pid) - cpu0;
            else if (side === bare) bareCpuMs += cpuMsOf(pid) - cpu0;
            else upstreamCpuMs += cpuMsOf(pid) - cpu0;
            into.latencies.push(...r.latencies);
            into.overheads.push(...r.overheads);
          }
        }
        gatewayRequests += WARMUP + n;
        const ds = summary(d.latencies);
        const gs = summary(g.latencies);
        const bs = summary(b.latencies);
        const added = { p50: r3(gs.p50 - ds.p50), p99: r3(gs.p99 - ds.p99) };
        results.push({
          mode: stream ? 'stream' : 'batch',
          concurrency,
          requests: n,
          directMs: ds,
          gatewayMs: gs,
          addedMs: added,
          gatewayReportedOverheadMs: summary(g.overheads),
          // the floor: a bare node proxy in the same place (bareProxyMain)
          bareProxyMs: bs,
          bareProxyAddedMs: { p50: r3(bs.p50 - ds.p50), p99: r3(bs.p99 - ds.p99) },
          cpuUsPerRequest: {
            gatewayProcess: Math.round((gatewayCpuMs * 1000) / n),
            upstreamProcess: Math.round((upstreamCpuMs * 1000) / n),
            bareProxyProcess: Math.round((bareCpuMs * 1000) / n),
          },
          meetsGoal: added.p50 < GOAL.addedP50Ms && added.p99 < GOAL.addedP99Ms,
        });
      }
    }
    // metering was on: every gateway request left a usage event on METERING
    const nc = await connect({ servers: nats.url });
    let usageEvents = 0;
    try {
      const jsm = await jetstreamManager(nc);
      await testing
        .waitFor(
          async () =>
            (usageEvents = (await jsm.streams.info('METERING')).state.messages) >= gatewayRequests,
          { timeoutMs: 30_000, what: 'usage events on METERING' },
        )
        .catch(() => undefined);
    } finally {
      await nc.close();
    }
    return {
      goal: { addedP50MsBelow: GOAL.addedP50Ms, addedP99MsBelow: GOAL.addedP99Ms },
      setup:
        'fake OpenAI upstream answering at once; same undici keep-alive client direct and via gateway; gateway with auth (admin key; Postgres for stored keys and audit), tenant quotas (request bucket, tokens-per-minute reserve/settle and monthly budget in Redis, never refusing), metering (usage events to a private nats-server), breaker/bulkhead/timeout/retry policies, health probes',
      results,
      metering: { gatewayRequests, usageEvents },
    };
  } finally {
    await dispatcher.close();
    gateway.child.kill('SIGTERM');
    await once(gateway.child, 'exit');
    for (const proc of [bareProxy, upstream]) {
      proc.child.kill('SIGTERM');
      await once(proc.child, 'exit');
    }
    await nats.stop();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}
