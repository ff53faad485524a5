import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { migrate, parseDatabaseUrl, quoteIdent } from '@aob/persistence';

export interface TestDatabase {
  /** URL of a fresh, migrated database of its own. */
  url: string;
  name: string;
  /** Drops the database (terminating leftover connections). */
  drop(): Promise<void>;
}

/** Base server URL for test databases. @default TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/postgres */
const baseUrl = () =>
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * A fresh database `aob_test_<random>` with every migration applied, on `serverUrl` (a private
 * server of startPostgresServer) or the shared test server.
 */
export async function createTestDatabase(
  prefix = 'aob_test',
  serverUrl: string = baseUrl(),
): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  await migrate(url);
  return {
    url,
    name,
    drop: async () => {
      const client = new Client({ connectionString: parseDatabaseUrl(url).adminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
