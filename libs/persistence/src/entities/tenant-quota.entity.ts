import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A tenant's quota overrides. NULL = the environment's default applies; 0 = unlimited. */
@Entity({ schema: 'metering', name: 'tenant_quotas' })
export class TenantQuota {
  @PrimaryColumn({ name: 'tenant_id', type: 'text' }) tenantId!: string;
  @Column({ name: 'requests_per_second', type: 'double precision', nullable: true })
  requestsPerSecond!: number | null;
  @Column({ type: 'integer', nullable: true }) burst!: number | null;
  @Column({ name: 'tokens_per_minute', type: 'bigint', nullable: true }) tokensPerMinute!:
    string | null;
  @Column({ name: 'monthly_budget_usd', type: 'numeric', nullable: true }) monthlyBudgetUsd!:
    string | null;
  @Column({ name: 'updated_by', type: 'text', nullable: true }) updatedBy!: string | null;
  @Column({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' }) updatedAt!: Date;
}
