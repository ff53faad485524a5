import { Column, Entity, PrimaryColumn } from 'typeorm';

/** An agent some executor offers. Executors upsert theirs at start-up; the gateway reads them. */
@Entity({ schema: 'executor', name: 'agents' })
export class AgentRegistration {
  @PrimaryColumn({ type: 'text' }) name!: string;
  @Column({ type: 'text' }) description!: string;
  /** JSON Schema (draft 2020-12) of the agent's `input`. */
  @Column({ name: 'input_schema', type: 'jsonb' }) inputSchema!: Record<string, unknown>;
  @Column({ type: 'text', default: '1' }) version!: string;
  @Column({ name: 'registered_at', type: 'timestamptz', default: () => 'now()' })
  registeredAt!: Date;
  @Column({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' }) updatedAt!: Date;
}
