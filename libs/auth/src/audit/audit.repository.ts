import type { DataSource, EntityManager } from '@aob/persistence';

export interface AuditEvent {
  /** When it was decided. */
  at: Date;
  /** Principal subject, or `anonymous`. */
  actor: string;
  actorKind: string;
  /** The actor's tenant. */
  tenantId: string;
  /** e.g. `route.access`, `api-key.create`, `api-key.revoke`. */
  action: string;
  /** e.g. `POST /v1/api-keys`, `api-key:<id>`. */
  resource: string;
  decision: 'allow' | 'deny';
  reason?: string;
  details?: Record<string, unknown>;
  requestId?: string;
}

/** auth.audit_log: append-only. */
export class AuditRepository {
  constructor(private readonly ds: DataSource) {}

  /** Inserts the events in one statement (inside `m` when given, so they commit with the change). */
  async insert(events: readonly AuditEvent[], m?: EntityManager): Promise<void> {
    if (events.length === 0) return;
    const params: unknown[] = [];
    const tuples = events.map((e) => {
      const base = params.length;
      params.push(
        e.at,
        e.actor,
        e.actorKind,
        e.tenantId,
        e.action,
        e.resource,
        e.decision,
        e.reason ?? null,
        e.details === undefined ? null : JSON.stringify(e.details),
        e.requestId ?? null,
      );
      return `(${Array.from({ length: 10 }, (_, i) => `$${base + i + 1}`).join(', ')})`;
    });
    await (m ?? this.ds).query(
      `INSERT INTO auth.audit_log (at, actor, actor_kind, tenant_id, action, resource, decision, reason, details, request_id)
       VALUES ${tuples.join(', ')}`,
      params,
    );
  }
}
