import { invalid } from './validation';

/** Position in a list ordered by (created_at DESC, id DESC). */
export interface PageCursor {
  /** created_at with Postgres' microsecond precision (ISO-8601 text), so no row is skipped or repeated. */
  createdAt: string;
  id: string;
}

const ISO_MICROS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

/** Opaque to clients: base64url of a small JSON array. */
export function encodeCursor(c: PageCursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.id]), 'utf8').toString('base64url');
}

export function decodeCursor(raw: string): PageCursor {
  const bad = () =>
    invalid('cursor is invalid', [{ path: 'cursor', message: 'not a cursor this API returned' }]);
  if (raw.length > 512 || !/^[A-Za-z0-9_-]+$/.test(raw)) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw bad();
  const [createdAt, id] = parsed as unknown[];
  if (
    typeof createdAt !== 'string' ||
    !ISO_MICROS.test(createdAt) ||
    typeof id !== 'string' ||
    id.length === 0 ||
    id.length > 128
  ) {
    throw bad();
  }
  return { createdAt, id };
}

/** SQL expression rendering a timestamptz column as the cursor's ISO text (UTC, microseconds). */
export const cursorTimestampSql = (column: string) =>
  `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
