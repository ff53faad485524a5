import { Column, Entity, PrimaryColumn } from 'typeorm';

export type ExecutorRunStatus = 'running' | 'completed' | 'failed' | 'cancelled';

/** The executor's record of a run: the source of truth for at-most-once completion. */
@Entity({ schema: 'executor', name: 'runs' })
export class ExecutorRun {
  @PrimaryColumn({ name: 'run_id', type: 'text' }) runId!: string;
  @Column({ name: 'tenant_id', type: 'text' }) tenantId!: string;
  @Column({ type: 'text' }) agent!: string;
  @Column({ name: 'thread_id', type: 'text' }) threadId!: string;
  @Column({ type: 'text' }) status!: ExecutorRunStatus;
  @Column({ name: 'event_id', type: 'text' }) eventId!: string;
  @Column({ type: 'jsonb', nullable: true }) input!: unknown;
  /** Deliveries that claimed the run, across dead-letter replays. */
  @Column({ type: 'int', default: 0 }) attempts!: number;
  /** Highest dead-letter replay number (`ce-aobreplay`) accepted; a higher one reopens a failed run. */
  @Column({ type: 'int', default: 0 }) replays!: number;
  /** The terminal status event's CloudEvent id and data, republished as-is on redelivery. */
  @Column({ name: 'result_event_id', type: 'text', nullable: true }) resultEventId!: string | null;
  @Column({ name: 'result_type', type: 'text', nullable: true }) resultType!: string | null;
  @Column({ type: 'jsonb', nullable: true }) result!: unknown;
  @Column({ name: 'started_at', type: 'timestamptz', default: () => 'now()' }) startedAt!: Date;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt!: Date | null;
  @Column({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' }) updatedAt!: Date;
  /** Who executes the run right now (one claim of one worker process); null when nobody does. */
  @Column({ name: 'lease_owner', type: 'text', nullable: true }) leaseOwner!: string | null;
  /** Until when that claim holds unless renewed; a later delivery may take the run over after it. */
  @Column({ name: 'lease_expires_at', type: 'timestamptz', nullable: true })
  leaseExpiresAt!: Date | null;
  /** Stream sequence of the request message whose delivery holds the lease (pg bigint: a string). */
  @Column({ name: 'lease_seq', type: 'bigint', nullable: true }) leaseSeq!: string | null;
  /** Set by the statements that write the run's checkpoints; the claim reads it. */
  @Column({ name: 'has_checkpoints', type: 'boolean', default: false }) hasCheckpoints!: boolean;
}
