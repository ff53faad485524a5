import { type BeforeApplicationShutdown, Logger } from '@nestjs/common';
import { DomainError } from '@aob/errors';
import { hashApiKey, hashEquals, storedKeyPrefix } from '../api-key-format';
import { principalFor, type Principal } from '../permissions';
import type { ApiKeyRecord, ApiKeyRepository } from './api-key.repository';

export interface ApiKeyVerifierOptions {
  /**
   * How long a verified key is trusted without reading Postgres again. A key revoked by another
   * process keeps working here for at most this long (the revoking process forgets it at once).
   * @default 30000
   */
  cacheTtlMs?: number;
  /** last_used_at is written at most this often per key (by any process). @default 60000 */
  lastUsedIntervalMs?: number;
  /** Verified keys held in memory; the oldest go first. @default 10000 */
  maxCachedKeys?: number;
}

interface CachedKey {
  record: ApiKeyRecord;
  principal: Principal;
  until: number;
}

/** The subject of a stored key's principal. */
export const apiKeySubject = (id: string) => `api-key:${id}`;

/** Verifies stored API keys (`aob_<prefix>_<secret>`) against auth.api_keys, with a short cache. */
export class ApiKeyVerifier implements BeforeApplicationShutdown {
  private readonly logger = new Logger('auth');
  /** By hex SHA-256 of the key: the key itself is never kept in memory. */
  private readonly cache = new Map<string, CachedKey>();
  private readonly lastTouched = new Map<string, number>();
  private readonly touches = new Set<Promise<void>>();
  private readonly cacheTtlMs: number;
  private readonly lastUsedIntervalMs: number;
  private readonly maxCachedKeys: number;

  constructor(
    private readonly repo: ApiKeyRepository,
    opts: ApiKeyVerifierOptions = {},
  ) {
    this.cacheTtlMs = opts.cacheTtlMs ?? 30_000;
    this.lastUsedIntervalMs = opts.lastUsedIntervalMs ?? 60_000;
    this.maxCachedKeys = opts.maxCachedKeys ?? 10_000;
  }

  /** Whether `value` has the form of a stored key (anything else is not looked up). */
  static isStoredKeyForm(value: string): boolean {
    return storedKeyPrefix(value) !== undefined;
  }

  /**
   * The principal of a live stored key.
   * @throws DomainError Unauthorized (unknown, revoked or expired key), Unavailable (Postgres down)
   */
  async verify(value: string): Promise<Principal> {
    const prefix = storedKeyPrefix(value);
    if (prefix === undefined) throw new DomainError('Unauthorized', 'invalid credentials');
    const hash = hashApiKey(value);
    const cacheKey = hash.toString('hex');
    const now = Date.now();
    let entry = this.cache.get(cacheKey);
    if (entry && entry.until <= now) {
      this.cache.delete(cacheKey);
      entry = undefined;
    }
    if (!entry) {
      let stored;
      try {
        stored = await this.repo.findLiveByPrefix(prefix);
      } catch (err) {
        throw new DomainError('Unavailable', 'API keys cannot be verified right now', {
          retryable: true,
          cause: err,
        });
      }
      if (!stored || !hashEquals(stored.keyHash, hash))
        throw new DomainError('Unauthorized', 'invalid credentials');
      const { keyHash: _hash, ...record } = stored;
      entry = {
        record,
        principal: principalFor(apiKeySubject(record.id), record.tenantId, record.role, 'api-key', {
          ...(record.scopes === null ? {} : { scopes: record.scopes }),
        }),
        until: now + this.cacheTtlMs,
      };
      if (this.cacheTtlMs > 0) this.remember(cacheKey, entry);
    }
    if (entry.record.expiresAt !== null && entry.record.expiresAt.getTime() <= now) {
      this.cache.delete(cacheKey);
      throw new DomainError('Unauthorized', 'API key expired');
    }
    this.touch(entry.record.id, now);
    return entry.principal;
  }

  /** Drops a key from this process' cache (after revoking it). */
  forget(id: string): void {
    for (const [k, v] of this.cache) if (v.record.id === id) this.cache.delete(k);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await Promise.allSettled([...this.touches]);
  }

  private remember(cacheKey: string, entry: CachedKey): void {
    this.cache.set(cacheKey, entry);
    // Map iteration is insertion order: the first key is the oldest
    while (this.cache.size > this.maxCachedKeys) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
  }

  /** Records use off the request path, at most once per interval per key and process. */
  private touch(id: string, now: number): void {
    const last = this.lastTouched.get(id);
    if (last !== undefined && now - last < this.lastUsedIntervalMs) return;
    this.lastTouched.set(id, now);
    if (this.lastTouched.size > this.maxCachedKeys) this.lastTouched.clear();
    const p = this.repo
      .touchLastUsed(id, this.lastUsedIntervalMs)
      .catch((err: unknown) => {
        this.lastTouched.delete(id);
        this.logger.warn({ err, keyId: id }, 'could not record the last use of an API key');
      })
      .finally(() => this.touches.delete(p));
    this.touches.add(p);
  }
}
