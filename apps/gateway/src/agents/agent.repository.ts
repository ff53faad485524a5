import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from '@aob/persistence';

export interface AgentInfo {
  name: string;
  description: string;
  version: string;
  /** JSON Schema (draft 2020-12) of the agent's `input`. */
  inputSchema: Record<string, unknown>;
  updatedAt: Date;
}

/** executor.agents, read-only: executors register their agents there at start-up. */
@Injectable()
export class AgentRepository {
  constructor(@Inject(DataSource) private readonly ds: DataSource) {}

  async listAll(): Promise<AgentInfo[]> {
    const rows: {
      name: string;
      description: string;
      version: string;
      input_schema: Record<string, unknown>;
      updated_at: Date;
    }[] = await this.ds.query(
      `SELECT name, description, version, input_schema, updated_at FROM executor.agents ORDER BY name`,
    );
    return rows.map((r) => ({
      name: r.name,
      description: r.description,
      version: r.version,
      inputSchema: r.input_schema,
      updatedAt: r.updated_at,
    }));
  }
}
