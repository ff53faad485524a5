#!/usr/bin/env node
// `npm start`: the whole AOB stack on this machine, from a fresh clone, in one command.
//
//   npm start [-- --no-install] [-- --no-build] [-- --no-demo]
//
// install (when needed) → services → build → migrate → provision → dev keys → the five apps,
// each `node apps/<app>/dist/main.js` with its PORT, logs prefixed with its name → wait for every
// /readyz → print the endpoints, the admin key and a curl one-liner → run one `chat` demo run.
// Ctrl-C or SIGTERM stops the apps: SIGTERM, a grace period, then SIGKILL.

import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ensureServices, ServicesError } from './ensure-services.mjs';
import { loadOrCreateDevEnv } from './lib/dev-env.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The contract's processes and default ports (shared/CONTRACT.md section 1). */
const APPS = [
  { name: 'gateway', port: 8080, what: 'public API, SSE, console, /openapi.json' },
  {
    name: 'model-gateway',
    port: 8081,
    what: 'OpenAI-compatible API at /v1',
    // as deploy/k8s/base/model-gateway.yaml runs it (NODE_OPTIONS): a larger young generation
    node: ['--max-semi-space-size=64'],
  },
  { name: 'metering', port: 8082, what: 'usage and quotas' },
  { name: 'agent-executor', port: 8083, what: 'JetStream workers' },
  { name: 'dlq-replayer', port: 8084, what: 'dead letters' },
];
const READY_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 15_000;
const DEMO_TIMEOUT_MS = 60_000;
const LOG_TAIL = 30;
const NAME_WIDTH = Math.max(...APPS.map((a) => a.name.length));
const COLORS = [36, 35, 33, 32, 34];
const tty = process.stdout.isTTY;

const FLAGS = new Set(['--no-install', '--no-build', '--no-demo', '--help']);

class StartError extends Error {}

const say = (/** @type {string} */ line) =>
  console.log(`${tty ? '\x1b[1m' : ''}aob${tty ? '\x1b[0m' : ''} ${line}`);

/** @type {import('node:child_process').ChildProcess | undefined} */
let setupChild;

/** Runs one setup command with inherited output; rejects naming the step when it fails. */
function step(
  /** @type {string} */ label,
  /** @type {string[]} */ argv,
  /** @type {NodeJS.ProcessEnv} */ env,
) {
  say(`${label}: ${argv.join(' ')}`);
  return new Promise((resolve, reject) => {
    const [cmd = '', ...args] = argv;
    const child = spawn(cmd, args, { cwd: root, env, stdio: 'inherit' });
    setupChild = child;
    child.once('error', (err) =>
      reject(new StartError(`${label}: cannot run ${cmd}: ${err.message}`)),
    );
    child.once('exit', (code, signal) => {
      setupChild = undefined;
      if (code === 0) resolve(undefined);
      else
        reject(
          new StartError(`${label} failed (${signal ?? `exit ${code}`}): see the output above`),
        );
    });
  });
}

/** True when node_modules is missing or older than package-lock.json. */
function needsInstall() {
  const modules = path.join(root, 'node_modules');
  if (!existsSync(modules)) return true;
  // npm rewrites node_modules/.package-lock.json on every install: a better clock than the folder.
  const marker = path.join(modules, '.package-lock.json');
  const installedAt = statSync(existsSync(marker) ? marker : modules).mtimeMs;
  const lock = path.join(root, 'package-lock.json');
  return existsSync(lock) && statSync(lock).mtimeMs > installedAt;
}

/** Resolves true when something already listens on 127.0.0.1:port. */
function portTaken(/** @type {number} */ port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(false));
  });
}

/** pino-pretty when the project happens to have it; pino's JSON lines otherwise. */
function makeFormatter() {
  try {
    const { prettyFactory } = createRequire(import.meta.url)('pino-pretty');
    const pretty = prettyFactory({ colorize: Boolean(tty), ignore: 'pid,hostname' });
    return (/** @type {string} */ line) => {
      if (!line.startsWith('{')) return line;
      try {
        return String(pretty(line)).replace(/\n$/, '');
      } catch {
        return line;
      }
    };
  } catch {
    return (/** @type {string} */ line) => line;
  }
}

/**
 * @typedef {object} RunningApp
 * @property {string} name
 * @property {number} port
 * @property {string} what
 * @property {import('node:child_process').ChildProcess} child
 * @property {string[]} tail the last lines it printed, for error messages
 * @property {Promise<{code: number | null, signal: NodeJS.Signals | null}>} exited
 */

/** @type {RunningApp[]} */
const running = [];
let stopping = false;

/** @returns {RunningApp} */
function startApp(
  /** @type {typeof APPS[number]} */ app,
  /** @type {number} */ index,
  /** @type {NodeJS.ProcessEnv} */ env,
) {
  const format = makeFormatter();
  const child = spawn(
    process.execPath,
    [...(app.node ?? []), path.join('apps', app.name, 'dist', 'main.js')],
    { cwd: root, env: { ...env, PORT: String(app.port) }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const prefix = tty
    ? `\x1b[${COLORS[index % COLORS.length]}m${app.name.padEnd(NAME_WIDTH)} |\x1b[0m `
    : `${app.name.padEnd(NAME_WIDTH)} | `;
  /** @type {string[]} */
  const tail = [];
  for (const stream of [child.stdout, child.stderr]) {
    readline.createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      tail.push(line);
      if (tail.length > LOG_TAIL) tail.shift();
      process.stdout.write(`${prefix}${format(line)}\n`);
    });
  }
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => {
      tail.push(`(could not start: ${err.message})`);
      resolve({ code: -1, signal: null });
    });
  });
  return { ...app, child, tail, exited };
}

const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/** Polls GET /readyz until 200; rejects naming the app, its last answer and its last log lines. */
async function waitReady(/** @type {RunningApp} */ app) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer yet';
  let exit;
  void app.exited.then((e) => (exit = e));
  while (Date.now() < deadline) {
    if (exit) break;
    try {
      const res = await fetch(`http://127.0.0.1:${app.port}/readyz`, {
        signal: AbortSignal.timeout(2000),
      });
      if (res.status === 200) return;
      last = `${res.status} ${(await res.text()).slice(0, 300)}`;
    } catch (err) {
      last = err instanceof Error ? String(err.cause ?? err.message) : String(err);
    }
    await sleep(500);
  }
  const why = exit
    ? `exited (${exit.signal ?? `code ${exit.code}`}) before it was ready`
    : `was not ready within ${READY_TIMEOUT_MS / 1000} s (last /readyz: ${last})`;
  throw new StartError(
    `${app.name} ${why}. Its last log lines:\n${app.tail.map((l) => `  ${l}`).join('\n') || '  (none)'}`,
  );
}

/** Stops every app: SIGTERM, then SIGKILL for those still running after the grace period. */
async function stopAll() {
  stopping = true;
  setupChild?.kill('SIGTERM');
  const alive = running.filter((a) => a.child.exitCode === null && a.child.signalCode === null);
  if (!alive.length) return;
  say(`stopping ${alive.map((a) => a.name).join(', ')}`);
  for (const a of alive) a.child.kill('SIGTERM');
  const timer = sleep(STOP_GRACE_MS).then(() => 'timeout');
  for (const a of alive) {
    if ((await Promise.race([a.exited, timer])) === 'timeout') {
      say(`${a.name} still running after ${STOP_GRACE_MS / 1000} s: SIGKILL`);
      a.child.kill('SIGKILL');
      await a.exited;
    }
  }
}

/** The shell one-liner a person can paste: submit a chat run, then follow its events. */
function curlOneLiner(/** @type {string} */ key) {
  const body = JSON.stringify({ agent: 'chat', input: { prompt: 'Hello' } });
  return (
    `KEY='${key}'; RUN=$(curl -s -X POST localhost:8080/v1/runs -H "X-API-Key: $KEY" ` +
    `-H 'content-type: application/json' -d '${body}' | sed -n 's/.*"runId":"\\([^"]*\\)".*/\\1/p'); ` +
    `echo "run $RUN"; curl -sSN localhost:8080/v1/runs/$RUN/events -H "X-API-Key: $KEY"`
  );
}

/** Submits one chat run and prints its streamed tokens; failures are reported, not fatal. */
async function demo(/** @type {string} */ key) {
  const signal = AbortSignal.timeout(DEMO_TIMEOUT_MS);
  const headers = { 'X-API-Key': key, 'content-type': 'application/json' };
  const res = await fetch('http://127.0.0.1:8080/v1/runs', {
    method: 'POST',
    headers,
    body: JSON.stringify({ agent: 'chat', input: { prompt: 'Hello from npm start' } }),
    signal,
  });
  const created = await res.json().catch(() => ({}));
  if (res.status !== 202 || typeof created.runId !== 'string') {
    throw new Error(
      `POST /v1/runs answered ${res.status} ${JSON.stringify(created).slice(0, 300)}`,
    );
  }
  say(`demo: run ${created.runId} queued; its stream:`);
  const events = await fetch(`http://127.0.0.1:8080/v1/runs/${created.runId}/events`, {
    headers: { 'X-API-Key': key, accept: 'text/event-stream' },
    signal,
  });
  if (events.status !== 200 || !events.body)
    throw new Error(`GET events answered ${events.status}`);
  const decoder = new TextDecoder();
  let buffer = '';
  let sawToken = false;
  for await (const chunk of events.body) {
    buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const type = /^event:\s?(.*)$/m.exec(block)?.[1] ?? 'message';
      const dataText = [...block.matchAll(/^data:\s?(.*)$/gm)].map((m) => m[1]).join('\n');
      let data;
      try {
        data = JSON.parse(dataText);
      } catch {
        data = dataText;
      }
      if (type === 'token') {
        sawToken = true;
        process.stdout.write(String(data?.text ?? ''));
      } else if (type === 'completed' || type === 'failed' || type === 'cancelled') {
        if (sawToken) process.stdout.write('\n');
        if (type === 'completed') {
          say(
            `demo: completed by ${data?.output?.model ?? '?'}, ${data?.usage?.totalTokens ?? '?'} tokens`,
          );
        } else {
          say(`demo: run ${type}: ${JSON.stringify(data?.error ?? data?.reason ?? data)}`);
        }
        return;
      }
    }
  }
  throw new Error('the event stream ended before the run did');
}

async function main() {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => !FLAGS.has(a));
  if (unknown.length || args.includes('--help')) {
    console.error('usage: npm start [-- --no-install] [-- --no-build] [-- --no-demo]');
    return unknown.length ? 2 : 0;
  }
  const env = { ...process.env };

  if (!args.includes('--no-install') && needsInstall()) {
    await step(
      'install',
      [process.execPath, path.join('scripts', 'lib', 'clean-install.mjs')],
      env,
    );
  }

  say('services: checking PostgreSQL, Redis, NATS');
  await ensureServices({ env, log: (line) => say(`services: ${line}`) });

  if (!args.includes('--no-build')) await step('build', ['npm', 'run', 'build'], env);
  const missing = APPS.filter(
    (a) => !existsSync(path.join(root, 'apps', a.name, 'dist', 'main.js')),
  );
  if (missing.length) {
    throw new StartError(
      `not built: ${missing.map((a) => `apps/${a.name}/dist/main.js`).join(', ')} (run without --no-build)`,
    );
  }

  await step('migrate', ['npm', 'run', 'migrate'], env);
  await step('provision', ['npm', 'run', 'provision'], env);

  const devEnvFile = path.join(root, '.aob', 'dev.env');
  const dev = loadOrCreateDevEnv(devEnvFile);
  if (dev.created.length)
    say(`generated ${dev.created.join(', ')} in ${path.relative(root, devEnvFile)}`);
  // A value exported in the shell wins, so a developer can pin their own key.
  for (const [k, v] of Object.entries(dev.values)) env[k] ||= v;
  const key = env.AOB_BOOTSTRAP_ADMIN_KEY ?? '';

  const taken = [];
  for (const app of APPS) if (await portTaken(app.port)) taken.push(`${app.port} (${app.name})`);
  if (taken.length) {
    throw new StartError(
      `port ${taken.join(', ')} already in use: is another \`npm start\` running?`,
    );
  }

  if (stopping) return 130;
  APPS.forEach((app, i) => running.push(startApp(app, i, env)));
  // Until all are ready, waitReady reports an exit with the app's last lines; after that, one app
  // going down takes the stack down, so a half-running stack is never mistaken for a working one.
  await Promise.all(running.map(waitReady));
  for (const app of running) {
    void app.exited.then(({ code, signal }) => {
      if (stopping) return;
      say(`${app.name} exited (${signal ?? `code ${code}`}); stopping the others`);
      void shutdown(1);
    });
  }

  const lines = [
    '',
    'AOB is up:',
    ...APPS.map((a) => `  ${a.name.padEnd(NAME_WIDTH)}  http://127.0.0.1:${a.port}  ${a.what}`),
    '',
    `Admin API key (tenant ${env.AOB_BOOTSTRAP_TENANT || 'default'}; local dev only, kept in .aob/dev.env):`,
    `  ${key}`,
    '',
    'Submit a chat run and follow its events:',
    `  ${curlOneLiner(key)}`,
    '',
    'Ctrl-C stops everything.',
    '',
  ];
  console.log(lines.join('\n'));

  if (!args.includes('--no-demo')) {
    try {
      await demo(key);
    } catch (err) {
      say(
        `demo: did not complete: ${err instanceof Error ? err.message : String(err)} (the apps keep running)`,
      );
    }
  }
  // Stay up until a signal or an app exit calls shutdown().
  return new Promise(() => {});
}

let shuttingDown = false;
async function shutdown(/** @type {number} */ code) {
  if (shuttingDown) return;
  shuttingDown = true;
  await stopAll();
  process.exit(code);
}

for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.on(sig, () => {
    // A second Ctrl-C while stopping means "now".
    if (shuttingDown) {
      for (const a of running) a.child.kill('SIGKILL');
      process.exit(130);
    }
    void shutdown(128 + (os.constants.signals[sig] ?? 0));
  });
}

main().then(
  (code) => void shutdown(code),
  (err) => {
    // Our own errors are written for a person; anything else is a bug here, so keep its stack.
    const known = err instanceof StartError || err instanceof ServicesError;
    console.error(
      `\naob start: ${known ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    void shutdown(1);
  },
);
