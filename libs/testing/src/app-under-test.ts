import { freePort } from './ports';
import { createTestDatabase, type TestDatabase } from './postgres';
import { startNatsServer, type TestNatsServer } from './nats-server';
import { testRedisUrl } from './redis';

export interface AppUnderTest {
  /** http://127.0.0.1:<port> of the booted app. */
  baseUrl: string;
  nats: TestNatsServer;
  db: TestDatabase;
  /** Closes the app, then stops NATS and drops the database. */
  close(): Promise<void>;
}

/**
 * A private nats-server, a fresh migrated database and the local Redis, then the app booted by
 * `boot` with the contract's environment pointing at them (PORT a free port, logs silent).
 */
export async function startAppUnderTest(
  boot: (env: NodeJS.ProcessEnv) => Promise<{ close(): Promise<void> }>,
  extraEnv: Record<string, string> = {},
): Promise<AppUnderTest> {
  const nats = await startNatsServer();
  const db = await createTestDatabase();
  const port = await freePort();
  const app = await boot({
    NATS_URL: nats.url,
    DATABASE_URL: db.url,
    REDIS_URL: testRedisUrl(),
    PORT: String(port),
    LOG_LEVEL: 'silent',
    ...extraEnv,
  });
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    nats,
    db,
    close: async () => {
      await app.close();
      await nats.stop();
      await db.drop();
    },
  };
}
