import { Column, Entity, PrimaryColumn } from 'typeorm';

export const DEAD_LETTER_STATUSES = ['quarantined', 'parked', 'replayed', 'discarded'] as const;
export type DeadLetterStatus = (typeof DEAD_LETTER_STATUSES)[number];

/** A dead message captured by the dlq-replayer (migration 1763777300000). */
@Entity({ schema: 'dlq', name: 'dead_letters' })
export class DeadLetter {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ name: 'tenant_id', type: 'text', nullable: true }) tenantId!: string | null;
  @Column({ type: 'text' }) stream!: string;
  @Column({ type: 'text' }) consumer!: string;
  @Column({ name: 'stream_seq', type: 'bigint' }) streamSeq!: string;
  @Column({ type: 'text' }) subject!: string;
  @Column({ name: 'event_id', type: 'text', nullable: true }) eventId!: string | null;
  @Column({ type: 'text', nullable: true }) type!: string | null;
  @Column({ type: 'text', nullable: true }) code!: string | null;
  @Column({ type: 'text' }) reason!: string;
  @Column({ type: 'int' }) deliveries!: number;
  @Column({ type: 'int' }) replays!: number;
  @Column({ type: 'text' }) status!: DeadLetterStatus;
  @Column({ name: 'first_failed_at', type: 'timestamptz' }) firstFailedAt!: Date;
  @Column({ name: 'last_failed_at', type: 'timestamptz' }) lastFailedAt!: Date;
  @Column({ name: 'quarantine_until', type: 'timestamptz', nullable: true })
  quarantineUntil!: Date | null;
  @Column({ name: 'last_replayed_at', type: 'timestamptz', nullable: true })
  lastReplayedAt!: Date | null;
  @Column({ type: 'jsonb' }) headers!: Record<string, string[]>;
  @Column({ type: 'bytea', nullable: true }) data!: Buffer | null;
  @Column({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @Column({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}
