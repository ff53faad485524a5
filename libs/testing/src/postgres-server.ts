import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { freePort } from './ports';

/** How a private PostgreSQL server stops: `fast` (SIGINT) or `immediate` (SIGQUIT, like a crash). */
export type PostgresStopMode = 'fast' | 'immediate';

/** A private PostgreSQL cluster for one test suite: its own data directory and port, trust auth. */
export interface TestPostgresServer {
  /** postgres://postgres@127.0.0.1:<port>/postgres (the server URL createTestDatabase takes). */
  url: string;
  port: number;
  dataDir: string;
  /** Stops the server and keeps the data directory (start() brings it back). */
  stop(mode?: PostgresStopMode): Promise<void>;
  /** Starts the stopped server again on the same port and data directory. */
  start(): Promise<void>;
  /** stop(mode) then start(). */
  restart(mode?: PostgresStopMode): Promise<void>;
  /** Stops the server and deletes its data directory. */
  destroy(): Promise<void>;
}

export interface StartPostgresServerOptions {
  /** Directory of initdb and postgres. @default PG_BIN or /usr/lib/postgresql/15/bin */
  binDir?: string;
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 30_000;
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * initdb into a temporary directory, then `postgres` on a free port. fsync is off (the machine does
 * not crash in a test; a killed server loses nothing the OS already has), synchronous_commit stays
 * on: an `immediate` stop must never lose a commit the server acknowledged.
 * As root, both run as the `postgres` OS user (PostgreSQL refuses to run as root).
 */
export async function startPostgresServer(
  opts: StartPostgresServerOptions = {},
): Promise<TestPostgresServer> {
  const bin = opts.binDir ?? process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
  const root = await mkdtemp(join(tmpdir(), 'aob-pg-'));
  const dataDir = join(root, 'data');
  const user = process.getuid?.() === 0 ? osUser('postgres') : undefined;
  if (user) await chown(root, user.uid, user.gid);
  const asUser = user ? { uid: user.uid, gid: user.gid } : {};
  execFileSync(
    join(bin, 'initdb'),
    [
      '-D',
      dataDir,
      '-U',
      'postgres',
      '--auth=trust',
      '--no-sync',
      '-E',
      'UTF8',
      '--no-instructions',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], ...asUser },
  );
  const port = await freePort();
  const args = [
    '-D',
    dataDir,
    '-p',
    String(port),
    '-k',
    root,
    '-c',
    `listen_addresses=${HOST}`,
    '-c',
    'fsync=off',
    '-c',
    'max_connections=200',
  ];
  const url = `postgres://postgres@${HOST}:${port}/postgres`;
  let child: ChildProcess | undefined;

  const start = async () => {
    child = await launch(join(bin, 'postgres'), args, url, asUser);
  };
  const stop = async (mode: PostgresStopMode = 'fast') => {
    const current = child;
    if (!current || current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
    current.kill(mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
    await exited;
    running.delete(current);
  };
  await start();
  return {
    url,
    port,
    dataDir,
    stop,
    start,
    async restart(mode = 'fast') {
      await stop(mode);
      await start();
    },
    async destroy() {
      await stop('immediate');
      await rm(root, { recursive: true, force: true });
    },
  };
}

function osUser(name: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
  return { uid, gid };
}

async function launch(
  postgres: string,
  args: string[],
  url: string,
  asUser: { uid?: number; gid?: number },
): Promise<ChildProcess> {
  installExitHook();
  const child = spawn(postgres, args, { stdio: ['ignore', 'ignore', 'pipe'], ...asUser });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`cannot start postgres: ${err.message}`)));
    child.once('exit', (code, signal) =>
      reject(new Error(`postgres exited early (code ${code}, signal ${signal}):\n${stderr}`)),
    );
  });
  exited.catch(() => undefined);
  try {
    await Promise.race([waitUntilAccepting(url), exited]);
  } catch (err) {
    child.kill('SIGQUIT');
    running.delete(child);
    throw err;
  }
  return child;
}

async function waitUntilAccepting(url: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch {
      if (Date.now() > deadline)
        throw new Error(`postgres at ${url} not ready after ${READY_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A failed suite must not leave servers behind (SIGQUIT: the postmaster takes its backends along).
  process.once('exit', () => {
    for (const child of running) child.kill('SIGQUIT');
  });
}
