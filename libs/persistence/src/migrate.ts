import { Client } from 'pg';
import { createDataSource } from './data-source';

/** Splits a postgres URL into the database name and a URL of the maintenance database. */
export function parseDatabaseUrl(url: string): { database: string; adminUrl: string } {
  const u = new URL(url);
  const database = decodeURIComponent(u.pathname.replace(/^\//, '')) || 'postgres';
  const admin = new URL(url);
  admin.pathname = '/postgres';
  return { database, adminUrl: admin.toString() };
}

/** Creates the database named in `url` when it is missing. Returns true when it created it. */
export async function createDatabaseIfMissing(url: string): Promise<boolean> {
  const { database, adminUrl } = parseDatabaseUrl(url);
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount) return false;
    try {
      await client.query(`CREATE DATABASE ${quoteIdent(database)}`);
    } catch (err) {
      // another migrator created it between our check and our CREATE
      if ((err as { code?: string }).code !== '42P04') throw err;
      return false;
    }
    return true;
  } finally {
    await client.end();
  }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export interface MigrateResult {
  createdDatabase: boolean;
  applied: string[];
}

/** Creates the database if needed and applies pending migrations (each in its own transaction). */
export async function migrate(url: string): Promise<MigrateResult> {
  const createdDatabase = await createDatabaseIfMissing(url);
  const ds = createDataSource({ url, poolSize: 2, applicationName: 'aob-migrate' });
  await ds.initialize();
  try {
    const applied = await ds.runMigrations({ transaction: 'each' });
    return { createdDatabase, applied: applied.map((m) => m.name) };
  } finally {
    await ds.destroy();
  }
}
