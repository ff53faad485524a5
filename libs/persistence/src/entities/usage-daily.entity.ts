import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Usage per tenant x UTC day x model x deployment x agent ('' = outside any run). */
@Entity({ schema: 'metering', name: 'usage_daily' })
export class UsageDaily {
  @PrimaryColumn({ name: 'tenant_id', type: 'text' }) tenantId!: string;
  @PrimaryColumn({ type: 'date' }) day!: string;
  @PrimaryColumn({ type: 'text' }) model!: string;
  @PrimaryColumn({ type: 'text' }) deployment!: string;
  @PrimaryColumn({ type: 'text', default: '' }) agent!: string;
  @Column({ type: 'bigint', default: 0 }) requests!: string;
  @Column({ name: 'prompt_tokens', type: 'bigint', default: 0 }) promptTokens!: string;
  @Column({ name: 'completion_tokens', type: 'bigint', default: 0 }) completionTokens!: string;
  @Column({ name: 'total_tokens', type: 'bigint', default: 0 }) totalTokens!: string;
  @Column({ name: 'cost_usd', type: 'numeric', default: 0 }) costUsd!: string;
  @Column({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' }) updatedAt!: Date;
}
