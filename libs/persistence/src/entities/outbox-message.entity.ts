import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** A CloudEvent waiting to be published; written in the same transaction as the state it announces. */
@Entity({ schema: 'gateway', name: 'outbox' })
export class OutboxMessage {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id!: string;
  @Column({ name: 'event_id', type: 'text', unique: true }) eventId!: string;
  @Column({ type: 'text' }) subject!: string;
  @Column({ type: 'jsonb' }) headers!: Record<string, string>;
  @Column({ type: 'bytea' }) payload!: Buffer;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
  @Column({ name: 'sent_at', type: 'timestamptz', nullable: true }) sentAt!: Date | null;
  @Column({ type: 'int', default: 0 }) attempts!: number;
  @Column({ name: 'last_error', type: 'text', nullable: true }) lastError!: string | null;
}
