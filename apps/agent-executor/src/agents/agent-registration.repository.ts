import { DataSource } from '@aob/persistence';
import { Injectable } from '@nestjs/common';

export interface AgentRegistrationInput {
  name: string;
  description: string;
  version: string;
  /** JSON Schema of the agent's input. */
  inputSchema: Record<string, unknown>;
}

/** executor.agents: the agents executors offer, read by the gateway (`GET /v1/agents`). Not tenant-scoped. */
@Injectable()
export class AgentRegistrationRepository {
  constructor(private readonly ds: DataSource) {}

  /** Inserts or updates every given agent; agents registered by other executors stay. */
  async upsert(agents: readonly AgentRegistrationInput[]): Promise<void> {
    if (agents.length === 0) return;
    await this.ds.transaction(async (tx) => {
      for (const a of agents) {
        await tx.query(
          `INSERT INTO executor.agents (name, description, input_schema, version)
           VALUES ($1, $2, $3::jsonb, $4)
           ON CONFLICT (name) DO UPDATE
             SET description = EXCLUDED.description, input_schema = EXCLUDED.input_schema,
                 version = EXCLUDED.version, updated_at = now()
             WHERE (executor.agents.description, executor.agents.input_schema, executor.agents.version)
                   IS DISTINCT FROM (EXCLUDED.description, EXCLUDED.input_schema, EXCLUDED.version)`,
          [a.name, a.description, JSON.stringify(a.inputSchema), a.version],
        );
      }
    });
  }
}
