#!/usr/bin/env node
// Makes sure the three services AOB needs (PostgreSQL, Redis/Dragonfly, NATS with JetStream) answer
// on this machine, starting the Debian-packaged ones that are down. Used by `npm run services`,
// `npm start` and `npm test`; plain Node with no dependencies so it runs before `npm ci`.
//
//   node scripts/ensure-services.mjs [--check] [--timeout <seconds>]
//
// A service whose URL variable (DATABASE_URL, REDIS_URL, NATS_URL) names another host is not
// checked: it is someone else's to run. One on this machine but on a non-default port (the
// docker-compose.test.yml ports, say) is checked but never started: the start commands below
// only know the default ports.

import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** @typedef {'postgres' | 'redis' | 'nats'} ServiceName */

/**
 * @typedef {object} ServiceStatus
 * @property {ServiceName} name
 * @property {string} host
 * @property {number} port
 * @property {'up' | 'started' | 'down' | 'remote'} state
 *   `remote`: the URL names another host, so nothing was checked.
 * @property {string} detail one line for a person
 */

/**
 * Which variable, default URL, and Debian start command belong to each service. The start commands
 * are the ones this machine kind documents; they bring a service up on its default port only.
 */
const SERVICES = /** @type {const} */ ({
  postgres: {
    env: 'DATABASE_URL',
    defaultUrl: 'postgres://postgres@127.0.0.1:5432/aob',
    defaultPort: 5432,
    start: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
    // Binary needed to start it, and the Debian package that ships it.
    needs: [{ bin: 'pg_ctlcluster', pkg: 'postgresql' }],
  },
  redis: {
    env: 'REDIS_URL',
    defaultUrl: 'redis://127.0.0.1:6379',
    defaultPort: 6379,
    start:
      'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no ' +
      '--dir /var/lib/redis --logfile /var/log/redis/ci.log',
    needs: [{ bin: 'redis-server', pkg: 'redis-server' }],
  },
  nats: {
    env: 'NATS_URL',
    defaultUrl: 'nats://127.0.0.1:4222',
    defaultPort: 4222,
    start:
      'start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- ' +
      '-a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log',
    needs: [
      { bin: '/usr/sbin/nats-server', pkg: 'nats-server' },
      { bin: 'start-stop-daemon', pkg: 'dpkg' },
    ],
  },
});

export const SERVICE_NAMES = /** @type {ServiceName[]} */ (Object.keys(SERVICES));

/** Thrown when a service is down and could not be brought up; the message says what to do. */
export class ServicesError extends Error {
  /** @param {string} message @param {ServiceStatus[]} statuses */
  constructor(message, statuses) {
    super(message);
    this.name = 'ServicesError';
    this.statuses = statuses;
  }
}

const PROBE_TIMEOUT_MS = 2000;
const EXTRA_BIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];
const NO_JETSTREAM = 'is running without JetStream: restart it with -js';

/** @param {string} host */
function isLocalHost(host) {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || h === '' || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * Where `name` should be reached, from its URL variable (or the contract's default).
 * @param {ServiceName} name
 * @param {NodeJS.ProcessEnv} env
 */
export function serviceTarget(name, env = process.env) {
  const spec = SERVICES[name];
  const raw = env[spec.env] || spec.defaultUrl;
  let url;
  try {
    url = new URL(raw);
  } catch {
    throw new ServicesError(`${spec.env} is not a valid URL: ${JSON.stringify(raw)}`, []);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = url.port ? Number(url.port) : spec.defaultPort;
  return {
    name,
    host: host === 'localhost' ? '127.0.0.1' : host,
    port,
    local: isLocalHost(host),
    managed: isLocalHost(host) && port === spec.defaultPort,
  };
}

/**
 * Opens a TCP connection, optionally writes `send`, and resolves with the first line the peer
 * sends back (or '' when `expectLine` is false and the connect succeeded).
 * Rejects on refusal, timeout, or a peer that closes before a line.
 * @param {string} host @param {number} port
 * @param {{send?: string, expectLine?: boolean, timeoutMs?: number}} [opts]
 * @returns {Promise<string>}
 */
function tcpExchange(host, port, { send, expectLine = true, timeoutMs = PROBE_TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let buffer = '';
    const done = (/** @type {Error | null} */ err, /** @type {string} */ line = '') => {
      socket.destroy();
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(line);
    };
    const timer = setTimeout(() => done(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.setEncoding('utf8');
    socket.once('error', (err) => done(err));
    socket.once('connect', () => {
      if (send !== undefined) socket.write(send);
      if (!expectLine) done(null);
    });
    socket.on('data', (chunk) => {
      buffer += chunk;
      const eol = buffer.indexOf('\r\n');
      if (eol >= 0) done(null, buffer.slice(0, eol));
    });
    socket.once('close', () => done(new Error('connection closed before an answer')));
  });
}

/**
 * @param {string} cmd @param {string[]} args @param {NodeJS.ProcessEnv} [env]
 * @returns {Promise<{code: number, out: string}>}
 */
function run(cmd, args, env = process.env) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.once('error', (err) => resolve({ code: -1, out: err.message }));
    child.once('close', (code) => resolve({ code: code ?? -1, out: out.trim() }));
  });
}

/**
 * Finds an executable on PATH or in the sbin directories a non-root PATH often lacks.
 * @param {string} bin a name or an absolute path
 * @returns {string | undefined}
 */
export function findExecutable(bin) {
  const candidates = path.isAbsolute(bin)
    ? [bin]
    : [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_BIN_DIRS].map(
        (dir) => path.join(dir, bin),
      );
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // try the next directory
    }
  }
  return undefined;
}

/**
 * Probes one service; never rejects.
 * @param {ServiceName} name @param {string} host @param {number} port
 * @returns {Promise<{ok: boolean, detail: string}>}
 */
async function probe(name, host, port) {
  try {
    if (name === 'postgres') {
      // pg_isready knows the difference between "accepting connections" and "starting up";
      // a bare TCP connect would call a recovering server ready.
      const pgIsReady = findExecutable('pg_isready');
      if (pgIsReady) {
        const { code, out } = await run(pgIsReady, ['-h', host, '-p', String(port), '-t', '2']);
        return code === 0
          ? { ok: true, detail: 'accepting connections' }
          : { ok: false, detail: out };
      }
      await tcpExchange(host, port, { expectLine: false });
      return { ok: true, detail: 'port open (pg_isready not installed)' };
    }
    if (name === 'redis') {
      const line = await tcpExchange(host, port, { send: 'PING\r\n' });
      if (line === '+PONG') return { ok: true, detail: 'PONG' };
      // It answers but wants a password: it is up; credentials are the apps' business.
      if (line.startsWith('-NOAUTH')) return { ok: true, detail: 'answers (password required)' };
      return { ok: false, detail: `unexpected answer to PING: ${line}` };
    }
    // NATS greets every client with one INFO line; `jetstream` is true only when started with -js.
    const line = await tcpExchange(host, port);
    if (!line.startsWith('INFO '))
      return { ok: false, detail: `not a NATS server (said ${line.slice(0, 60)})` };
    const info = JSON.parse(line.slice(5));
    if (info.jetstream !== true) {
      return {
        ok: false,
        detail: `NATS ${info.version ?? ''} ${NO_JETSTREAM}`,
      };
    }
    return { ok: true, detail: `NATS ${info.version ?? '?'} with JetStream` };
  } catch (err) {
    return { ok: false, detail: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Checks every service without starting anything.
 * @param {{env?: NodeJS.ProcessEnv}} [opts]
 * @returns {Promise<ServiceStatus[]>}
 */
export async function checkServices({ env = process.env } = {}) {
  return Promise.all(
    SERVICE_NAMES.map(async (name) => {
      const t = serviceTarget(name, env);
      if (!t.local) {
        return {
          name,
          host: t.host,
          port: t.port,
          state: 'remote',
          detail: `${SERVICES[name].env} points to ${t.host}: not checked`,
        };
      }
      const p = await probe(name, t.host, t.port);
      return { name, host: t.host, port: t.port, state: p.ok ? 'up' : 'down', detail: p.detail };
    }),
  );
}

const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts one managed service with its Debian command and waits until it answers.
 * @param {ServiceName} name @param {string} host @param {number} port @param {number} timeoutMs
 * @returns {Promise<{ok: boolean, detail: string}>}
 */
async function startAndWait(name, host, port, timeoutMs) {
  const spec = SERVICES[name];
  const missing = spec.needs.filter((n) => !findExecutable(n.bin));
  if (name === 'postgres' && !missing.length && !existsSync('/etc/postgresql')) {
    missing.push({ bin: '/etc/postgresql', pkg: 'postgresql' });
  }
  if (
    name === 'postgres' &&
    existsSync('/etc/postgresql') &&
    readdirSync('/etc/postgresql').length !== 1
  ) {
    return { ok: false, detail: 'expected exactly one PostgreSQL version under /etc/postgresql' };
  }
  if (missing.length) {
    const pkgs = [...new Set(missing.map((m) => m.pkg))].join(' ');
    return {
      ok: false,
      detail: `${missing.map((m) => m.bin).join(', ')} not found: install it with \`apt-get install -y ${pkgs}\``,
    };
  }
  // Same directories findExecutable searched, so a non-root PATH without sbin still works.
  const PATH = [process.env.PATH, ...EXTRA_BIN_DIRS].filter(Boolean).join(path.delimiter);
  const { code, out } = await run('/bin/sh', ['-c', spec.start], { ...process.env, PATH });
  if (code !== 0) return { ok: false, detail: `\`${spec.start}\` exited with ${code}: ${out}` };
  const deadline = Date.now() + timeoutMs;
  let last = { ok: false, detail: 'not probed' };
  while (Date.now() < deadline) {
    last = await probe(name, host, port);
    if (last.ok) return last;
    await sleep(250);
  }
  return {
    ok: false,
    detail: `started, but not answering after ${timeoutMs / 1000} s: ${last.detail}`,
  };
}

/**
 * Checks every service and starts the managed ones that are down, waiting (bounded) until they
 * answer. Resolves with each service's status; rejects with a ServicesError naming every service
 * still down and what to do about it.
 * @param {{env?: NodeJS.ProcessEnv, timeoutMs?: number, log?: (line: string) => void}} [opts]
 *   timeoutMs: how long to wait for each started service (default 30000);
 *   log: receives one line per service (default: nothing).
 * @returns {Promise<ServiceStatus[]>}
 */
export async function ensureServices({
  env = process.env,
  timeoutMs = 30_000,
  log = () => {},
} = {}) {
  const checked = await checkServices({ env });
  const statuses = await Promise.all(
    checked.map(async (s) => {
      if (s.state !== 'down') return s;
      const t = serviceTarget(s.name, env);
      // Starting a second NATS cannot fix one that runs without JetStream: the port is taken.
      if (!t.managed || s.detail.includes(NO_JETSTREAM)) {
        const hint = t.managed
          ? ''
          : ` (not started: only the default port ${SERVICES[s.name].defaultPort} is managed here;` +
            ' for the compose ports run `docker compose -f docker-compose.test.yml up -d`)';
        return { ...s, detail: s.detail + hint };
      }
      log(`${s.name}: down (${s.detail}); starting it`);
      const r = await startAndWait(s.name, s.host, s.port, timeoutMs);
      return { ...s, state: r.ok ? 'started' : 'down', detail: r.detail };
    }),
  );
  for (const s of statuses)
    log(`${s.name.padEnd(8)} ${`${s.host}:${s.port}`.padEnd(16)} ${s.state.padEnd(7)} ${s.detail}`);
  const down = statuses.filter((s) => s.state === 'down');
  if (down.length) {
    throw new ServicesError(
      `service${down.length > 1 ? 's' : ''} not available: ` +
        down.map((s) => `${s.name} at ${s.host}:${s.port}: ${s.detail}`).join('; '),
      statuses,
    );
  }
  return statuses;
}

async function main() {
  const args = process.argv.slice(2);
  const checkOnly = args.includes('--check');
  const t = args.indexOf('--timeout');
  const timeoutMs = t >= 0 ? Number(args[t + 1]) * 1000 : 30_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new Error('--timeout takes a number of seconds');
  const log = (/** @type {string} */ line) => console.log(line);
  if (checkOnly) {
    const statuses = await checkServices();
    for (const s of statuses)
      log(
        `${s.name.padEnd(8)} ${`${s.host}:${s.port}`.padEnd(16)} ${s.state.padEnd(7)} ${s.detail}`,
      );
    process.exitCode = statuses.some((s) => s.state === 'down') ? 1 : 0;
    return;
  }
  await ensureServices({ timeoutMs, log });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err) => {
    console.error(`ensure-services: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  });
}
