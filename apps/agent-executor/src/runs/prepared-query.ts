import type { DataSource } from '@aob/persistence';
import type { Pool } from 'pg';

/**
 * Runs a statement as a named prepared statement on TypeORM's own pg pool (same connections, same
 * settings): Postgres parses and plans it once per connection instead of on every call, which
 * halves the server CPU of the statements every run executes (measured: 0.66 → 0.34 ms per run for
 * the claim and the finish). Only for those hot statements; everything else goes through ds.query.
 * Needs session-level prepared statements, so no PgBouncer in transaction mode unless it tracks
 * them (`max_prepared_statements`, PgBouncer 1.21+).
 * @param name unique per statement text (pg refuses one name for two texts on a connection)
 */
export async function preparedQuery<R>(
  ds: DataSource,
  name: string,
  text: string,
  values: unknown[],
): Promise<R[]> {
  // PostgresDriver#master is the pg Pool TypeORM queries through (typed `any` by TypeORM).
  const pool = (ds.driver as unknown as { master?: Pool }).master;
  if (!pool) return ds.query(text, values);
  const result = await pool.query<R & object>({ name, text, values });
  return result.rows;
}
