import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** One audited decision: every authorization denial and every admin action. Append-only. */
@Entity({ schema: 'auth', name: 'audit_log' })
export class AuditLogEntry {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id!: string;
  @Column({ type: 'timestamptz', default: () => 'now()' }) at!: Date;
  /** Principal subject: `api-key:<id>`, a token's `sub`, `bootstrap-admin`, `service`. */
  @Column({ type: 'text' }) actor!: string;
  @Column({ name: 'actor_kind', type: 'text' }) actorKind!: string;
  /** The actor's tenant. */
  @Column({ name: 'tenant_id', type: 'text' }) tenantId!: string;
  /** e.g. `route.access`, `api-key.create`, `api-key.revoke`. */
  @Column({ type: 'text' }) action!: string;
  /** e.g. `POST /v1/api-keys`, `api-key:<id>`. */
  @Column({ type: 'text' }) resource!: string;
  @Column({ type: 'text' }) decision!: 'allow' | 'deny';
  @Column({ type: 'text', nullable: true }) reason!: string | null;
  @Column({ type: 'jsonb', nullable: true }) details!: Record<string, unknown> | null;
  @Column({ name: 'request_id', type: 'text', nullable: true }) requestId!: string | null;
}
