import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports';

export interface StartNatsServerOptions {
  /** Enable JetStream with a private store directory. @default true */
  jetstream?: boolean;
  /** Also open the HTTP monitoring port (`/jsz`, `/varz`) on a free port. @default false */
  monitorPort?: boolean;
}

/** A private `nats-server` for one test suite: its own port and its own JetStream store. */
export interface TestNatsServer {
  url: string;
  port: number;
  monitorUrl?: string;
  storeDir: string;
  /** Process id of the running server (changes on restart). */
  readonly pid: number | undefined;
  /** Stops the server and deletes its store. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Stops (SIGTERM by default, SIGKILL to simulate a crash) and starts again on the same port and store. */
  restart(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Stops the server and keeps its store: an outage that lasts until start(). */
  kill(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Starts a killed server again on the same port and store. */
  start(): Promise<void>;
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 15_000;
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Starts `nats-server -a 127.0.0.1 -p <free port> -js -sd <tmpdir>` and waits until it accepts clients. */
export async function startNatsServer(opts: StartNatsServerOptions = {}): Promise<TestNatsServer> {
  const jetstream = opts.jetstream ?? true;
  const port = await freePort();
  const monitor = opts.monitorPort ? await freePort() : undefined;
  const storeDir = await mkdtemp(join(tmpdir(), 'aob-nats-'));
  const args = ['-a', HOST, '-p', String(port)];
  if (jetstream) args.push('-js', '-sd', storeDir);
  if (monitor !== undefined) args.push('-m', String(monitor));

  let child = await launch(args, port);
  const kill = async (signal: 'SIGTERM' | 'SIGKILL') => {
    const current = child;
    if (current.exitCode !== null || current.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
    current.kill(signal);
    await exited;
    running.delete(current);
  };
  return {
    url: `nats://${HOST}:${port}`,
    port,
    ...(monitor === undefined ? {} : { monitorUrl: `http://${HOST}:${monitor}` }),
    storeDir,
    get pid() {
      return child.pid;
    },
    async stop(signal = 'SIGTERM') {
      await kill(signal);
      await rm(storeDir, { recursive: true, force: true });
    },
    async restart(signal = 'SIGTERM') {
      await kill(signal);
      child = await launch(args, port);
    },
    kill: (signal = 'SIGTERM') => kill(signal),
    async start() {
      if (child.exitCode === null && child.signalCode === null) return;
      child = await launch(args, port);
    },
  };
}

async function launch(args: string[], port: number): Promise<ChildProcess> {
  installExitHook();
  const child = spawn('nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    // Keep the tail only: the server logs to stderr for as long as it runs.
    stderr = (stderr + chunk.toString()).slice(-4_000);
  });
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (err) =>
      reject(new Error(`cannot start nats-server (is it on PATH?): ${err.message}`)),
    );
    child.once('exit', (code, signal) =>
      reject(new Error(`nats-server exited early (code ${code}, signal ${signal}):\n${stderr}`)),
    );
  });
  exited.catch(() => undefined);
  try {
    await Promise.race([waitForInfo(port), exited]);
  } catch (err) {
    child.kill('SIGKILL');
    running.delete(child);
    throw err;
  }
  return child;
}

/** Ready = a TCP client receives the server's INFO line (JetStream is up by then). */
async function waitForInfo(port: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (await gotInfo(port)) return;
    if (Date.now() > deadline)
      throw new Error(`nats-server on port ${port} not ready after ${READY_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function gotInfo(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('data', (chunk) => done(chunk.toString().startsWith('INFO')));
  });
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A failed suite must not leave servers behind.
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}
