import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from '@aob/testing';
import { callScript, runNode } from './run-node-script';

interface ServiceStatus {
  name: 'postgres' | 'redis' | 'nats';
  host: string;
  port: number;
  state: 'up' | 'started' | 'down' | 'remote';
  detail: string;
}

const SCRIPT = 'scripts/ensure-services.mjs';

/** The machine's own services, whatever the environment the tests were started with says. */
const localEnv: NodeJS.ProcessEnv = {
  ...process.env,
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/aob',
  REDIS_URL: 'redis://127.0.0.1:6379',
  NATS_URL: 'nats://127.0.0.1:4222',
};

const byName = (statuses: ServiceStatus[]) => Object.fromEntries(statuses.map((s) => [s.name, s]));

describe('ensure-services', () => {
  it('finds PostgreSQL, Redis and NATS with JetStream up on this machine', async () => {
    const statuses = byName(
      await callScript<ServiceStatus[]>(SCRIPT, 'm.ensureServices()', localEnv),
    );
    expect(statuses.postgres).toMatchObject({
      state: 'up',
      port: 5432,
      detail: 'accepting connections',
    });
    expect(statuses.redis).toMatchObject({ state: 'up', port: 6379, detail: 'PONG' });
    expect(statuses.nats).toMatchObject({ state: 'up', port: 4222 });
    expect(statuses.nats?.detail).toMatch(/with JetStream$/);
  });

  it('leaves a service on another host alone', async () => {
    const statuses = byName(
      await callScript<ServiceStatus[]>(SCRIPT, 'm.checkServices()', {
        ...localEnv,
        DATABASE_URL: 'postgres://app:secret@db.example.invalid:6432/aob',
      }),
    );
    expect(statuses.postgres).toMatchObject({
      state: 'remote',
      host: 'db.example.invalid',
      port: 6432,
    });
  });

  it('reports a local service on a non-default port as down and does not try to start it', async () => {
    const port = await freePort();
    const env = { ...localEnv, REDIS_URL: `redis://127.0.0.1:${port}` };
    const statuses = byName(await callScript<ServiceStatus[]>(SCRIPT, 'm.checkServices()', env));
    expect(statuses.redis).toMatchObject({ state: 'down', port });

    await expect(callScript(SCRIPT, 'm.ensureServices({ timeoutMs: 1000 })', env)).rejects.toThrow(
      new RegExp(`redis at 127\\.0\\.0\\.1:${port}: .*only the default port 6379 is managed`),
    );
    const cli = await runNode([SCRIPT], { env });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain(`redis at 127.0.0.1:${port}`);
  });

  describe('against a private nats-server', () => {
    let server: ChildProcess | undefined;
    let storeDir: string | undefined;

    afterEach(async () => {
      if (server && server.exitCode === null) {
        const exited = new Promise((r) => server?.once('exit', r));
        server.kill('SIGTERM');
        await exited;
      }
      if (storeDir) rmSync(storeDir, { recursive: true, force: true });
      server = storeDir = undefined;
    });

    async function startNats(args: string[]): Promise<number> {
      const port = await freePort();
      server = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), ...args], {
        stdio: 'ignore',
      });
      const accepts = () =>
        new Promise<boolean>((resolve) => {
          const socket = connect(port, '127.0.0.1');
          socket.once('connect', () => (socket.destroy(), resolve(true)));
          socket.once('error', () => resolve(false));
        });
      await waitFor(accepts, { what: `nats-server on ${port}` });
      return port;
    }

    it('tells NATS with JetStream from NATS without it', async () => {
      const plain = await startNats([]);
      const env = { ...localEnv, NATS_URL: `nats://127.0.0.1:${plain}` };
      const statuses = byName(await callScript<ServiceStatus[]>(SCRIPT, 'm.checkServices()', env));
      expect(statuses.nats).toMatchObject({ state: 'down', port: plain });
      expect(statuses.nats?.detail).toMatch(/running without JetStream/);
    });

    it('accepts NATS started with -js', async () => {
      storeDir = mkdtempSync(path.join(os.tmpdir(), 'aob-ensure-services-'));
      const port = await startNats(['-js', '-sd', storeDir]);
      const env = { ...localEnv, NATS_URL: `nats://localhost:${port}` };
      const statuses = byName(await callScript<ServiceStatus[]>(SCRIPT, 'm.checkServices()', env));
      expect(statuses.nats).toMatchObject({ state: 'up', host: '127.0.0.1', port });
    });

    it('does not take a NATS server for Redis', async () => {
      const port = await startNats([]);
      const env = { ...localEnv, REDIS_URL: `redis://127.0.0.1:${port}` };
      const statuses = byName(await callScript<ServiceStatus[]>(SCRIPT, 'm.checkServices()', env));
      expect(statuses.redis).toMatchObject({ state: 'down' });
      expect(statuses.redis?.detail).toMatch(/^unexpected answer to PING: INFO /);
    });
  });
});
