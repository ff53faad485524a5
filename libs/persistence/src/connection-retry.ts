/**
 * Retrying statements through a database outage. A statement that failed because Postgres could
 * not be reached (refused, reset, timed out, shut down, restarting) is run again after a capped
 * exponential backoff with jitter, for as long as the caller's signal allows; any other error is
 * thrown at once. Consumers use it so an outage holds their message (the transport's `working()`
 * heartbeats keep JetStream from redelivering it) instead of spending its deliveries.
 *
 * Only statements that are safe to run twice belong in it: the connection may be lost after the
 * server committed, so the retry must find the effect and answer as the first attempt would have.
 */

/** Socket-level error codes of an unreachable server. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** SQLSTATEs of a server that is going away or not accepting connections yet. */
const SERVER_CODES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down, in recovery)
]);

/** Messages node-postgres uses for connections lost or never made (no code attached). */
const CONNECTION_MESSAGES =
  /connection terminated|connection timeout|timeout exceeded when trying to connect|client has encountered a connection error|client was closed|cannot use a pool after calling end|not queryable/i;

/**
 * Whether the error says the database could not be reached (class 08 connection exceptions, the
 * 57P0x shutdown codes, socket errors, node-postgres' lost-connection messages), looking through
 * TypeORM's `driverError`, `cause` and the errors of an AggregateError (a refused dual-stack connect).
 */
export function isConnectionError(err: unknown, depth = 0): boolean {
  if (typeof err !== 'object' || err === null || depth > 4) return false;
  const e = err as {
    code?: unknown;
    message?: unknown;
    driverError?: unknown;
    cause?: unknown;
    errors?: unknown;
  };
  if (typeof e.code === 'string') {
    if (NETWORK_CODES.has(e.code) || SERVER_CODES.has(e.code) || /^08[0-9A-Z]{3}$/.test(e.code))
      return true;
  }
  if (typeof e.message === 'string' && CONNECTION_MESSAGES.test(e.message)) return true;
  if (e.driverError !== undefined && e.driverError !== err)
    if (isConnectionError(e.driverError, depth + 1)) return true;
  if (e.cause !== undefined && e.cause !== err)
    if (isConnectionError(e.cause, depth + 1)) return true;
  if (Array.isArray(e.errors)) return e.errors.some((x) => isConnectionError(x, depth + 1));
  return false;
}

export interface ConnectionRetry {
  /** Retrying stops when it aborts: the last error is thrown. */
  signal: AbortSignal;
  /** Called before each wait (a metric, a log line once per outage). */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Called when a statement succeeds after at least one retry. */
  onRecovered?: (retries: number) => void;
  /** First backoff. @default 100 */
  baseDelayMs?: number;
  /** Backoff cap. @default 2000 */
  maxDelayMs?: number;
  /** @default Math.random */
  random?: () => number;
}

/** The wait before retry number `attempt` (1-based): half of the capped exponential step, plus jitter up to the other half. */
export function connectionRetryDelayMs(
  attempt: number,
  opts: Pick<ConnectionRetry, 'baseDelayMs' | 'maxDelayMs' | 'random'> = {},
): number {
  const base = opts.baseDelayMs ?? 100;
  const cap = opts.maxDelayMs ?? 2_000;
  const step = Math.min(cap, base * 2 ** Math.min(attempt - 1, 30));
  return Math.round(step / 2 + (opts.random ?? Math.random)() * (step / 2));
}

/**
 * Runs `fn` (given the attempt number, from 1), again after each connection-class failure until it
 * succeeds, fails otherwise, or `retry.signal` aborts. Without `retry` it runs once.
 */
export async function retryOnConnectionError<T>(
  fn: (attempt: number) => Promise<T>,
  retry: ConnectionRetry | undefined,
): Promise<T> {
  if (!retry) return fn(1);
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await fn(attempt);
      if (attempt > 1) retry.onRecovered?.(attempt - 1);
      return result;
    } catch (err) {
      if (retry.signal.aborted || !isConnectionError(err)) throw err;
      const delayMs = connectionRetryDelayMs(attempt, retry);
      retry.onRetry?.(err, attempt, delayMs);
      if (!(await sleep(delayMs, retry.signal))) throw err;
    }
  }
}

/** Resolves true after `ms`, false as soon as the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
