import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  createTestDatabase,
  freePort,
  startNatsServer,
  testRedisUrl,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
} from '@aob/testing';

export const APPS = [
  'gateway',
  'model-gateway',
  'metering',
  'agent-executor',
  'dlq-replayer',
] as const;
export type AppName = (typeof APPS)[number];

const ROOT = path.resolve(__dirname, '../../..');

interface RunningApp {
  child: ChildProcess;
  port: number;
  logs: string[];
}

/**
 * The whole platform as real processes (`node apps/<app>/dist/main.js`), configured only through
 * the contract's environment, against a private nats-server and a fresh database.
 */
export class Stack {
  readonly adminKey = `aob_e2e_${randomBytes(16).toString('hex')}`;
  readonly serviceKey = `svc_e2e_${randomBytes(16).toString('hex')}`;
  readonly apps = new Map<AppName, RunningApp>();
  readonly ports = new Map<AppName, number>();
  nats!: TestNatsServer;
  db!: TestDatabase;
  nc!: NatsConnection;

  /** Redis every app uses (a private redis-server's URL when the test stops and starts it). */
  redisUrl = testRedisUrl();

  async start(
    apps: readonly AppName[] = APPS,
    extraEnv: Record<string, string> = {},
    servers: { databaseServerUrl?: string; redisUrl?: string } = {},
  ): Promise<void> {
    if (servers.redisUrl) this.redisUrl = servers.redisUrl;
    this.nats = await startNatsServer();
    this.db = await createTestDatabase('aob_e2e', servers.databaseServerUrl);
    for (const app of APPS) this.ports.set(app, await freePort());
    this.extraEnv = extraEnv;
    // the executor and model gateway first: the gateway validates agents the executor registers
    const order = [...apps].sort((a, b) => rank(a) - rank(b));
    for (const app of order) await this.startApp(app);
    this.nc = await connect({ servers: this.nats.url });
  }

  private extraEnv: Record<string, string> = {};

  env(app: AppName): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      NODE_ENV: 'test',
      PORT: String(this.ports.get(app)),
      NATS_URL: this.nats.url,
      DATABASE_URL: this.db.url,
      REDIS_URL: this.redisUrl,
      MODEL_GATEWAY_URL: `http://127.0.0.1:${this.ports.get('model-gateway')}/v1`,
      AOB_BOOTSTRAP_ADMIN_KEY: this.adminKey,
      AOB_SERVICE_KEY: this.serviceKey,
      LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'warn',
      EXECUTOR_RETRY_BASE_MS: '100',
      EXECUTOR_RETRY_MAX_MS: '500',
      SHUTDOWN_GRACE_MS: '5000',
      ...this.extraEnv,
    };
  }

  /** Starts one app; `env` overrides the stack's environment for this process only. */
  async startApp(app: AppName, env: Record<string, string> = {}): Promise<void> {
    const logs: string[] = [];
    const child = spawn(process.execPath, [path.join(ROOT, 'apps', app, 'dist', 'main.js')], {
      env: { ...this.env(app), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (b: Buffer) => {
      logs.push(...b.toString().split('\n').filter(Boolean));
      if (logs.length > 400) logs.splice(0, logs.length - 400);
      if (process.env.E2E_VERBOSE) process.stderr.write(`[${app}] ${b.toString()}`);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const port = this.ports.get(app)!;
    this.apps.set(app, { child, port, logs });
    try {
      await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error('exited');
          return (await fetch(`http://127.0.0.1:${port}/readyz`)).ok;
        },
        { timeoutMs: 30_000, intervalMs: 100, what: `${app} /readyz` },
      );
    } catch (err) {
      throw new Error(
        `${app} did not become ready: ${(err as Error).message}\n${logs.slice(-30).join('\n')}`,
      );
    }
  }

  /** Stops an app: SIGTERM (graceful) or SIGKILL (a crash). */
  async stopApp(app: AppName, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const running = this.apps.get(app);
    if (!running || running.child.exitCode !== null || running.child.signalCode !== null) return;
    const exited = new Promise((r) => running.child.once('exit', r));
    running.child.kill(signal);
    // a process that ignores SIGTERM past its grace period is killed, so no test leaves one behind
    const timer = setTimeout(() => running.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  logs(app: AppName): string[] {
    return this.apps.get(app)?.logs ?? [];
  }

  url(app: AppName, p: string): string {
    return `http://127.0.0.1:${this.ports.get(app)}${p}`;
  }

  /** fetch against the gateway with the admin key. */
  async api(p: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (!headers.has('x-api-key')) headers.set('x-api-key', this.adminKey);
    if (init.body && !headers.has('content-type')) headers.set('content-type', 'application/json');
    return fetch(this.url('gateway', p), { ...init, headers });
  }

  async stop(): Promise<void> {
    await Promise.all([...this.apps.keys()].map((a) => this.stopApp(a, 'SIGTERM')));
    await this.nc?.close();
    await this.nats?.stop();
    await this.db?.drop();
  }
}

function rank(app: AppName): number {
  return { 'model-gateway': 0, 'agent-executor': 1, gateway: 2, metering: 3, 'dlq-replayer': 4 }[
    app
  ];
}
