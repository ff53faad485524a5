import { DomainError } from '@aob/errors';
import type Redis from 'ioredis';

/** SSE `event:` names of CONTRACT.md section 6. */
export type RunStreamEventName = 'status' | 'token' | 'step' | 'completed' | 'failed' | 'cancelled';

export interface RunStreamEntry {
  /** Stream entry id (`<ms>-<seq>`): the SSE `id:`, resumable with Last-Event-ID. */
  id: string;
  event: RunStreamEventName;
  data: unknown;
}

export interface RunEventStreamOptions {
  /** @default 'aob' */
  keyPrefix?: string;
  /** Lifetime after the last append, refreshed on every append. @default 90000 (25 h) */
  ttlSeconds?: number;
}

export interface FollowOptions {
  /** Resume after this entry id (exclusive). @default the beginning of the stream */
  afterId?: string;
  /** Ends the iteration (and closes its connection) when aborted. */
  signal: AbortSignal;
  /** Longest single XREAD BLOCK. @default 5000 */
  blockMs?: number;
}

const EVENT_NAMES: ReadonlySet<string> = new Set<RunStreamEventName>([
  'status',
  'token',
  'step',
  'completed',
  'failed',
  'cancelled',
]);
const TERMINAL: ReadonlySet<string> = new Set<RunStreamEventName>([
  'completed',
  'failed',
  'cancelled',
]);
const ENTRY_ID = /^(\d{1,20})(?:-(\d{1,20}))?$/;
const PAGE = 500;

/** True for the events after which a run emits nothing more. */
export function isTerminalRunEvent(name: string): name is 'completed' | 'failed' | 'cancelled' {
  return TERMINAL.has(name);
}

type RawEntry = [id: string, fields: string[]];

/**
 * Per-run event log for UIs (SSE), one Redis stream per run. Only XADD, XRANGE, XREAD and EXPIRE:
 * commands Dragonfly implements the same way as Redis.
 */
export class RunEventStream {
  private readonly keyPrefix: string;
  private readonly ttlSeconds: number;

  constructor(
    private readonly redis: Redis,
    opts: RunEventStreamOptions = {},
  ) {
    this.keyPrefix = opts.keyPrefix ?? 'aob';
    this.ttlSeconds = opts.ttlSeconds ?? 90_000;
  }

  /** `{runId}` is a hash tag: all of one run's keys land on one cluster slot / Dragonfly shard. */
  key(runId: string): string {
    return `${this.keyPrefix}:run:{${runId}}:events`;
  }

  /** Appends one event and refreshes the TTL, so the stream outlives its last (terminal) entry. */
  async append(runId: string, event: RunStreamEventName, data: unknown): Promise<string> {
    if (!EVENT_NAMES.has(event))
      throw new DomainError('InvalidRequest', `unknown run stream event "${event}"`);
    const key = this.key(runId);
    // Two commands, no MULTI: issued in one tick they travel in one write (auto-pipelining, see
    // RedisModule), together with other runs' appends. Without MULTI a failure between them could
    // leave one entry without a refreshed TTL; the next append (every run ends with a terminal one)
    // sets it again.
    const [id] = await Promise.all([
      this.redis.xadd(key, '*', 'event', event, 'data', JSON.stringify(data ?? null)),
      this.redis.expire(key, this.ttlSeconds),
    ]).catch((err: unknown) => {
      throw new DomainError('Unavailable', `append to ${key} failed: ${describe(err)}`, {
        retryable: true,
        cause: err,
      });
    });
    if (id === null)
      throw new DomainError('Unavailable', `append to ${key} was refused`, { retryable: true });
    return id;
  }

  /** Entries after `afterId` (exclusive), oldest first, at most `count`. */
  async range(runId: string, afterId?: string, count = 1000): Promise<RunStreamEntry[]> {
    const start = afterId === undefined ? '-' : nextEntryId(afterId);
    const raw = (await this.redis.xrange(
      this.key(runId),
      start,
      '+',
      'COUNT',
      count,
    )) as RawEntry[];
    return raw.map(toEntry);
  }

  /**
   * Yields the backlog after `afterId`, then new entries as they arrive, until `signal` aborts.
   * Uses its own duplicate() connection, because XREAD BLOCK holds a connection for its duration.
   */
  async *follow(runId: string, opts: FollowOptions): AsyncIterable<RunStreamEntry> {
    const { signal } = opts;
    if (signal.aborted) return;
    const key = this.key(runId);
    const blockMs = opts.blockMs ?? 5_000;
    let lastId = opts.afterId === undefined ? '0-0' : normaliseEntryId(opts.afterId);
    // the shared client may fail fast while disconnected (enableOfflineQueue: false); this private one
    // must queue its first XREAD until it has connected
    const conn = this.redis.duplicate({ enableOfflineQueue: true });
    // Errors reach us through the rejected command; this only keeps ioredis from logging them twice.
    conn.on('error', () => undefined);
    const stop = () => conn.disconnect();
    signal.addEventListener('abort', stop, { once: true });
    try {
      while (!signal.aborted) {
        let reply: [string, RawEntry[]][] | null;
        try {
          reply = await conn.xread('COUNT', PAGE, 'BLOCK', blockMs, 'STREAMS', key, lastId);
        } catch (err) {
          if (signal.aborted) return;
          throw err;
        }
        for (const [, entries] of reply ?? []) {
          for (const raw of entries) {
            if (signal.aborted) return;
            const entry = toEntry(raw);
            lastId = entry.id;
            yield entry;
          }
        }
      }
    } finally {
      signal.removeEventListener('abort', stop);
      conn.disconnect();
    }
  }
}

function toEntry([id, fields]: RawEntry): RunStreamEntry {
  let event = '';
  let data: unknown = null;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1] as string;
    if (fields[i] === 'event') event = value;
    else if (fields[i] === 'data') {
      try {
        data = JSON.parse(value);
      } catch {
        data = value;
      }
    }
  }
  return { id, event: event as RunStreamEventName, data };
}

function normaliseEntryId(id: string): string {
  const match = ENTRY_ID.exec(id.trim());
  if (!match)
    throw new DomainError(
      'InvalidRequest',
      `invalid run stream entry id "${id}" (expected <ms>-<seq>)`,
    );
  return `${match[1]}-${match[2] ?? '0'}`;
}

/** The smallest id after `id`: XRANGE's exclusive `(id` form is newer than some Dragonfly builds. */
function nextEntryId(id: string): string {
  const [ms, seq] = normaliseEntryId(id).split('-') as [string, string];
  const next = BigInt(seq) + 1n;
  // seq is a 64-bit unsigned counter; past its maximum the next id is the following millisecond.
  return next > 18446744073709551615n ? `${BigInt(ms) + 1n}-0` : `${ms}-${next}`;
}

const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));
