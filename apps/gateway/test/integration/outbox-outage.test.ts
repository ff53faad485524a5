import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats, STREAMS } from '@aob/events';
import { freePort, waitFor } from '@aob/testing';
import { startHarness, withPg, type GatewayHarness } from './gateway-harness';

jest.setTimeout(90_000);

/**
 * A nats-server that can be down for a while and come back on the same port with the same
 * store (the shared fixture's restart() brings it back at once).
 */
class PausableNatsServer {
  private child: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    readonly storeDir: string,
  ) {}

  static async start(): Promise<PausableNatsServer> {
    const server = new PausableNatsServer(
      await freePort(),
      await mkdtemp(join(tmpdir(), 'aob-gw-nats-')),
    );
    await server.resume();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async resume(): Promise<void> {
    this.child = spawn(
      'nats-server',
      ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir],
      { stdio: 'ignore' },
    );
    await waitFor(
      async () => {
        try {
          const nc = await connectNats({ url: this.url, name: 'probe' });
          await (await jetstreamManager(nc)).getAccountInfo();
          await nc.close();
          return true;
        } catch {
          return false;
        }
      },
      { what: 'nats-server up', timeoutMs: 15_000 },
    );
  }

  async pause(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }

  async stop(): Promise<void> {
    await this.pause();
    await rm(this.storeDir, { recursive: true, force: true });
  }
}

describe('gateway: the outbox rides out a NATS outage', () => {
  let nats: PausableNatsServer;
  let gw: GatewayHarness;

  beforeAll(async () => {
    nats = await PausableNatsServer.start();
    gw = await startHarness(nats.url, { OUTBOX_POLL_MS: '100' });
  });

  afterAll(async () => {
    await gw?.close();
    await nats?.stop();
  });

  const sentAt = (runId: string) =>
    withPg(gw.db.url, async (pg) => {
      const { rows } = await pg.query<{ sent_at: Date | null; attempts: number }>(
        `SELECT o.sent_at, o.attempts FROM gateway.outbox o JOIN gateway.runs r ON r.event_id = o.event_id WHERE r.run_id = $1`,
        [runId],
      );
      return rows[0];
    });

  it('answers 202 while NATS is down and publishes once it is back', async () => {
    await nats.pause();
    const res = await gw.request('/v1/runs', {
      method: 'POST',
      json: { agent: 'echo', input: { message: 'during outage' } },
    });
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    // the row waits in the outbox
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await sentAt(runId))?.sent_at).toBeNull();
    const ready = await gw.request('/readyz', { key: null });
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { down: string[] }).down).toContain('nats');

    await nats.resume();
    await waitFor(async () => (await sentAt(runId))?.sent_at != null, {
      what: 'outbox row published',
      timeoutMs: 30_000,
    });

    const nc = await connectNats({ url: nats.url, name: 'check' });
    try {
      const jsm = await jetstreamManager(nc);
      const msg = await jsm.streams.getMessage(STREAMS.AGENT_EXECUTION.name, {
        last_by_subj: 'agent.execute.echo',
      });
      expect(msg?.header.get('Nats-Msg-Id')).toBe(runId);
      expect(JSON.parse(new TextDecoder().decode(msg!.data))).toMatchObject({
        runId,
        input: { message: 'during outage' },
      });
      const info = await jsm.streams.info(STREAMS.AGENT_EXECUTION.name);
      expect(info.state.messages).toBe(1);
    } finally {
      await nc.close();
    }
    const metrics = await (await gw.request('/metrics', { key: null })).text();
    expect(metrics).toMatch(/^aob_outbox_backlog \d+$/m);
  });
});
