import { Redis } from 'ioredis';

export interface QuotaRedisOptions {
  url: string;
  /** CLIENT SETNAME. */
  name: string;
  /** A command waits at most this long (QUOTA_REDIS_TIMEOUT_MS). @default 250 */
  commandTimeoutMs?: number;
}

/**
 * The Redis connection of quota checks: fails fast instead of queueing while Redis is away and
 * times a command out after commandTimeoutMs, so a check never hangs a request (the fail mode
 * decides). Commands are auto-pipelined: under load, one write carries many requests' checks
 * instead of one system call each. Reconnects in the background; resolves once connected or
 * after a first failed attempt.
 */
export async function connectQuotaRedis(opts: QuotaRedisOptions): Promise<Redis> {
  const redis = new Redis(opts.url, {
    connectionName: opts.name,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeoutMs ?? 250,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
    // the checks and settlements issued in one turn of the event loop leave in one socket write
    enableAutoPipelining: true,
  });
  // failures surface through the checks (metric + log); no unhandled 'error' events
  redis.on('error', () => undefined);
  // bounded: a server that accepts but never answers must not hold up start-up either
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    redis.connect().catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, 2_000))),
  ]);
  clearTimeout(timer);
  return redis;
}
