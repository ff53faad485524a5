import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { INestApplication } from '@nestjs/common';
import { connectNats } from '@aob/events';
import {
  createTestDatabase,
  startNatsServer,
  startPostgresServer,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
  type TestPostgresServer,
} from '@aob/testing';
import { publishUsage, rawCount, startMeteringApp, usageRecord } from './usage-fixtures';

jest.setTimeout(90_000);

/**
 * A batch whose commit fails for want of Postgres is retried in place, its messages held (kept
 * alive by working(), fetches stopped by maxInFlight), instead of being nak'ed into spending their
 * deliveries. A private Postgres server, so it can be stopped.
 */
describe('metering ingestion through a Postgres outage', () => {
  let pgServer: TestPostgresServer;
  let nats: TestNatsServer;
  let db: TestDatabase;
  let nc: NatsConnection;
  let app: INestApplication | undefined;

  beforeAll(async () => {
    [pgServer, nats] = await Promise.all([startPostgresServer(), startNatsServer()]);
    db = await createTestDatabase('aob_metering', pgServer.url);
    ({ app } = await startMeteringApp(nats.url, db.url));
    nc = await connectNats({ url: nats.url, name: 'metering-outage-test' });
  });

  afterAll(async () => {
    await app?.close().catch(() => undefined);
    await nc?.close();
    await nats?.stop();
    await pgServer?.destroy();
  });

  const consumer = async () => (await jetstreamManager(nc)).consumers.info('METERING', 'metering');

  it('usage events that arrive while Postgres is down are stored once it is back, each on its first delivery', async () => {
    const before = (await consumer()).delivered.consumer_seq;
    const records = Array.from({ length: 40 }, (_, i) => ({
      id: `chatcmpl-outage-${i}`,
      record: usageRecord(i, 'tenant-a'),
    }));
    await pgServer.stop('immediate');
    try {
      await publishUsage(nc, records);
      // Before: nak'd with the consumer's backoff (500 ms, 1 s, 2 s...): three deliveries or more.
      await new Promise((r) => setTimeout(r, 3_500));
      expect((await consumer()).num_ack_pending).toBe(40);
    } finally {
      await pgServer.start();
    }
    await waitFor(async () => (await rawCount(db.url, 'tenant-a')) === 40, {
      timeoutMs: 20_000,
      what: '40 usage records',
    });
    await waitFor(async () => (await consumer()).num_ack_pending === 0, { what: 'all acked' });
    expect((await consumer()).delivered.consumer_seq - before).toBe(40);
  });
});
