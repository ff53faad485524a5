import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * Why a consumer terminated a message. nats-server 2.9 drops term(reason), so every consumer
 * records the reason here before term(); the dlq-replayer joins it to the advisory.
 */
@Entity({ schema: 'dlq', name: 'terminations' })
export class TerminationRecord {
  @PrimaryColumn({ type: 'text' }) stream!: string;
  @PrimaryColumn({ type: 'text' }) consumer!: string;
  @PrimaryColumn({ name: 'stream_seq', type: 'bigint' }) streamSeq!: string;
  @Column({ type: 'text' }) subject!: string;
  @Column({ name: 'event_id', type: 'text', nullable: true }) eventId!: string | null;
  @Column({ name: 'event_type', type: 'text', nullable: true }) eventType!: string | null;
  @Column({ name: 'tenant_id', type: 'text', nullable: true }) tenantId!: string | null;
  @Column({ type: 'text' }) code!: string;
  @Column({ type: 'text' }) reason!: string;
  @Column({ type: 'int' }) deliveries!: number;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
}
