import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats, CONSUMERS, EventPublisher, STREAMS } from '@aob/events';
import {
  startNatsServer,
  startPostgresServer,
  waitFor,
  type TestNatsServer,
  type TestPostgresServer,
} from '@aob/testing';
import { startHarness, TENANT, withPg, type GatewayHarness } from './gateway-harness';

jest.setTimeout(90_000);

/**
 * The run projection waits a Postgres outage out within the delivery (the message held, kept alive
 * by working()) instead of nak'ing it into spending its deliveries. A private Postgres server.
 */
describe('gateway: the run projection rides out a Postgres outage', () => {
  let pgServer: TestPostgresServer;
  let nats: TestNatsServer;
  let gw: GatewayHarness;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    [pgServer, nats] = await Promise.all([startPostgresServer(), startNatsServer()]);
    gw = await startHarness(nats.url, {}, { databaseServerUrl: pgServer.url });
    nc = await connectNats({ url: nats.url, name: 'fake-executor' });
    jsm = await jetstreamManager(nc);
  });

  afterAll(async () => {
    await nc?.close();
    await gw?.close().catch(() => undefined);
    await nats?.stop();
    await pgServer?.destroy();
  });

  const consumer = () =>
    jsm.consumers.info(STREAMS.AGENT_STATUS.name, CONSUMERS.gatewayRunStatus.durable);

  it('a status event that arrives while Postgres is down is projected once it is back, on its first delivery', async () => {
    const runId = `pg-out-${Date.now()}`;
    const before = (await consumer()).delivered.consumer_seq;
    await pgServer.stop('immediate');
    try {
      await new EventPublisher(jetstream(nc), 'aob://agent-executor').publish(
        'agentCompleted',
        {
          runId,
          agent: 'echo',
          threadId: runId,
          output: { echo: 'later' },
          usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2, costUsd: 0 },
          attempts: 1,
          durationMs: 7,
        },
        { id: `${runId}.completed`, tenantId: TENANT, ceSubject: runId },
      );
      // Before: nak'd with the consumer's backoff (500 ms, 1 s, 2 s...): three deliveries or more.
      await new Promise((r) => setTimeout(r, 3_500));
      expect((await consumer()).num_ack_pending).toBe(1);
    } finally {
      await pgServer.start();
    }
    await waitFor(
      async () => {
        const c = await consumer();
        return c.num_ack_pending === 0 && c.num_pending === 0;
      },
      { what: 'the event to be projected and acked', timeoutMs: 20_000 },
    );
    const row = await withPg(gw.db.url, async (pg) => {
      const { rows } = await pg.query('SELECT status, output FROM gateway.runs WHERE run_id = $1', [
        runId,
      ]);
      return rows[0] as unknown;
    });
    expect(row).toEqual({ status: 'completed', output: { echo: 'later' } });
    expect((await consumer()).delivered.consumer_seq - before).toBe(1);
  });
});
