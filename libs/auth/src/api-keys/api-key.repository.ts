import type { DataSource, EntityManager } from '@aob/persistence';
import { isPermission, isRole, type Permission, type Role } from '../permissions';

/** Reads across every tenant: only for platform admins (the service checks). */
export const ALL_TENANTS = Symbol('all tenants');
/** Which tenant's keys a call may touch. */
export type TenantScope = string | typeof ALL_TENANTS;

export interface ApiKeyRecord {
  id: string;
  tenantId: string;
  name: string;
  prefix: string;
  role: Role;
  /** null: every permission of the role. */
  scopes: Permission[] | null;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  /** created_at as microsecond ISO text: the keyset pagination position. */
  cursorTs: string;
}

/** A live key found by its prefix, with the hash to compare. */
export interface StoredApiKey extends ApiKeyRecord {
  keyHash: Buffer;
}

export interface NewApiKeyRow {
  id: string;
  tenantId: string;
  name: string;
  prefix: string;
  keyHash: Buffer;
  role: Role;
  scopes: readonly Permission[] | null;
  createdBy: string;
  expiresAt: Date | null;
}

export interface ApiKeyListQuery {
  limit: number;
  /** Continue after this (createdAt as returned in cursorTs, id). */
  after?: { createdAt: string; id: string };
}

interface ApiKeyRow {
  id: string;
  tenant_id: string;
  name: string;
  prefix: string;
  role: string;
  scopes: string[] | null;
  created_by: string;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  cursor_ts: string;
  key_hash?: Buffer;
}

const COLUMNS = `id, tenant_id, name, prefix, role, scopes, created_by, created_at, expires_at, last_used_at,
  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_ts`;

/** auth.api_keys. Every call but the credential lookup takes the tenant. */
export class ApiKeyRepository {
  constructor(private readonly ds: DataSource) {}

  /** Inserts a key; false when its prefix is taken (the caller draws another key). */
  async insert(m: EntityManager, k: NewApiKeyRow): Promise<boolean> {
    const rows: unknown[] = await m.query(
      `INSERT INTO auth.api_keys (id, tenant_id, name, prefix, key_hash, role, scopes, created_by, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT DO NOTHING
       RETURNING 1`,
      [k.id, k.tenantId, k.name, k.prefix, k.keyHash, k.role, k.scopes, k.createdBy, k.expiresAt],
    );
    return rows.length === 1;
  }

  async findById(
    m: EntityManager | undefined,
    scope: TenantScope,
    id: string,
  ): Promise<ApiKeyRecord | null> {
    const params: unknown[] = [id];
    const tenant = scope === ALL_TENANTS ? '' : ` AND tenant_id = $${params.push(scope)}`;
    const rows: ApiKeyRow[] = await (m ?? this.ds).query(
      `SELECT ${COLUMNS} FROM auth.api_keys WHERE id = $1 AND revoked_at IS NULL${tenant}`,
      params,
    );
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** The live (not revoked) key with this prefix, hash included: the credential lookup. */
  async findLiveByPrefix(prefix: string): Promise<StoredApiKey | null> {
    const rows: ApiKeyRow[] = await this.ds.query(
      `SELECT ${COLUMNS}, key_hash FROM auth.api_keys WHERE prefix = $1 AND revoked_at IS NULL`,
      [prefix],
    );
    const row = rows[0];
    return row?.key_hash ? { ...toRecord(row), keyHash: row.key_hash } : null;
  }

  /** Live keys, newest first, keyset-paginated on (created_at, id). */
  async list(
    scope: TenantScope,
    q: ApiKeyListQuery,
  ): Promise<{ items: ApiKeyRecord[]; hasMore: boolean }> {
    const where = ['revoked_at IS NULL'];
    const params: unknown[] = [];
    if (scope !== ALL_TENANTS) where.push(`tenant_id = $${params.push(scope)}`);
    if (q.after) {
      params.push(q.after.createdAt, q.after.id);
      where.push(
        `(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`,
      );
    }
    const rows: ApiKeyRow[] = await this.ds.query(
      `SELECT ${COLUMNS} FROM auth.api_keys WHERE ${where.join(' AND ')}
        ORDER BY created_at DESC, id DESC LIMIT $${params.push(q.limit + 1)}`,
      params,
    );
    return { items: rows.slice(0, q.limit).map(toRecord), hasMore: rows.length > q.limit };
  }

  /** Revokes a live key of the scope; null when there is none (unknown, other tenant, already revoked). */
  async revoke(
    m: EntityManager,
    scope: TenantScope,
    id: string,
    by: string,
  ): Promise<ApiKeyRecord | null> {
    const params: unknown[] = [id, by];
    const tenant = scope === ALL_TENANTS ? '' : ` AND tenant_id = $${params.push(scope)}`;
    const result: unknown = await m.query(
      `UPDATE auth.api_keys SET revoked_at = now(), revoked_by = $2
        WHERE id = $1 AND revoked_at IS NULL${tenant}
        RETURNING ${COLUMNS}`,
      params,
    );
    // TypeORM's postgres driver answers UPDATE ... RETURNING with [rows, affectedCount]
    const rows = (
      Array.isArray(result) && Array.isArray(result[0]) ? result[0] : result
    ) as ApiKeyRow[];
    return rows[0] ? toRecord(rows[0]) : null;
  }

  /** Sets last_used_at unless another process did so less than `minIntervalMs` ago. */
  async touchLastUsed(id: string, minIntervalMs: number): Promise<void> {
    await this.ds.query(
      `UPDATE auth.api_keys SET last_used_at = now()
        WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))`,
      [id, minIntervalMs / 1000],
    );
  }

  transaction<T>(fn: (m: EntityManager) => Promise<T>): Promise<T> {
    return this.ds.transaction(fn);
  }
}

function toRecord(r: ApiKeyRow): ApiKeyRecord {
  if (!isRole(r.role)) throw new Error(`auth.api_keys ${r.id} has an unknown role`);
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    prefix: r.prefix,
    role: r.role,
    scopes: r.scopes === null ? null : r.scopes.filter(isPermission),
    createdBy: r.created_by,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    lastUsedAt: r.last_used_at,
    cursorTs: r.cursor_ts,
  };
}
