import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/** One usage event as received (audit trail). (source, event_id) makes ingestion idempotent. */
@Entity({ schema: 'metering', name: 'usage_records' })
@Index('usage_records_received_idx', ['receivedAt'])
@Index('usage_records_tenant_occurred_idx', ['tenantId', 'occurredAt'])
export class UsageRecordRow {
  @PrimaryColumn({ type: 'text' }) source!: string;
  @PrimaryColumn({ name: 'event_id', type: 'text' }) eventId!: string;
  @Column({ name: 'tenant_id', type: 'text' }) tenantId!: string;
  @Column({ name: 'run_id', type: 'text', nullable: true }) runId!: string | null;
  @Column({ type: 'text', nullable: true }) agent!: string | null;
  @Column({ type: 'text', nullable: true }) requested!: string | null;
  @Column({ type: 'text' }) model!: string;
  @Column({ type: 'text' }) deployment!: string;
  @Column({ name: 'prompt_tokens', type: 'bigint' }) promptTokens!: string;
  @Column({ name: 'completion_tokens', type: 'bigint' }) completionTokens!: string;
  /** numeric: exact sums; read as a string. */
  @Column({ name: 'cost_usd', type: 'numeric' }) costUsd!: string;
  @Column({ name: 'latency_ms', type: 'double precision' }) latencyMs!: number;
  @Column({ name: 'occurred_at', type: 'timestamptz' }) occurredAt!: Date;
  @Column({ name: 'received_at', type: 'timestamptz', default: () => 'now()' }) receivedAt!: Date;
}
