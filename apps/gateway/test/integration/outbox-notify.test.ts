import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats, STREAMS } from '@aob/events';
import { startNatsServer, testRedisUrl, waitFor, type TestNatsServer } from '@aob/testing';
import { startGateway } from '../../src/app.module';
import { loadGatewayConfig } from '../../src/config';
import { OutboxRelay } from '../../src/outbox/outbox-relay';
import { ADMIN_KEY, startHarness, TENANT, type GatewayHarness } from './gateway-harness';

jest.setTimeout(60_000);

/**
 * Two gateway replicas on one database; the second one's slow poll is effectively off, so only
 * LISTEN/NOTIFY can wake it. Rows the first replica commits while its own relay is paused must
 * reach JetStream through the second one at once.
 */
describe('outbox relay wakes on NOTIFY', () => {
  let nats: TestNatsServer;
  let first: GatewayHarness;
  let second: Awaited<ReturnType<typeof startGateway>>;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer();
    first = await startHarness(nats.url, { OUTBOX_POLL_MS: '600000' });
    // the first replica accepts runs but never publishes: its relay is stopped
    await first.app.get(OutboxRelay).onModuleDestroy();
    second = await startGateway(
      loadGatewayConfig({
        PORT: '0',
        DATABASE_URL: first.db.url,
        NATS_URL: nats.url,
        REDIS_URL: testRedisUrl(),
        AOB_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY,
        AOB_BOOTSTRAP_TENANT: TENANT,
        LOG_LEVEL: 'silent',
        OUTBOX_POLL_MS: '600000',
      }),
    );
    nc = await connectNats({ url: nats.url, name: 'outbox-notify-test' });
  });

  afterAll(async () => {
    await nc?.close();
    await second?.close();
    await first?.close();
    await nats?.stop();
  });

  it('publishes a row committed by another replica within a fraction of the poll interval', async () => {
    const jsm = await jetstreamManager(nc);
    const before = (await jsm.streams.info(STREAMS.AGENT_EXECUTION.name)).state.messages;
    const started = Date.now();
    const res = await first.request('/v1/runs', {
      method: 'POST',
      json: { agent: 'echo', input: { message: 'wake' } },
    });
    expect(res.status).toBe(202);
    await waitFor(
      async () =>
        (await jsm.streams.info(STREAMS.AGENT_EXECUTION.name)).state.messages === before + 1,
      { timeoutMs: 5_000, what: 'the execute event on AGENT_EXECUTION' },
    );
    // the publisher can only be the second replica, whose poll is 600 s away: NOTIFY woke it
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
