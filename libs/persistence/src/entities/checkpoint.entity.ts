import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** State after one finished step of a run. (run_id, step) is unique: a step is saved once. */
@Entity({ schema: 'executor', name: 'checkpoints' })
@Index('checkpoints_run_step_uq', ['runId', 'step'], { unique: true })
@Index('checkpoints_thread_idx', ['tenantId', 'threadId', 'createdAt'])
@Index('checkpoints_created_idx', ['createdAt'])
export class Checkpoint {
  @PrimaryGeneratedColumn('uuid', { name: 'checkpoint_id' }) checkpointId!: string;
  @Column({ name: 'tenant_id', type: 'text' }) tenantId!: string;
  @Column({ name: 'thread_id', type: 'text' }) threadId!: string;
  @Column({ name: 'run_id', type: 'text' }) runId!: string;
  @Column({ type: 'int' }) step!: number;
  @Column({ name: 'step_id', type: 'text', nullable: true }) stepId!: string | null;
  @Column({ type: 'jsonb', nullable: true }) state!: unknown;
  @Column({ type: 'jsonb', nullable: true }) output!: unknown;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'clock_timestamp()' })
  createdAt!: Date;
}
