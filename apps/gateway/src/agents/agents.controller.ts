import { Controller, Get } from '@nestjs/common';
import { RequirePermission } from '@aob/auth';
import { AgentRegistry } from './agent-registry';

export interface AgentView {
  name: string;
  description: string;
  version: string;
  inputSchema: Record<string, unknown>;
}

@Controller('v1/agents')
export class AgentsController {
  constructor(private readonly registry: AgentRegistry) {}

  /** Agents are shared by all tenants: every executor serves every tenant. */
  @Get()
  @RequirePermission('agents:read')
  async list(): Promise<{ items: AgentView[] }> {
    const agents = await this.registry.list();
    return {
      items: agents.map((a) => ({
        name: a.name,
        description: a.description,
        version: a.version,
        inputSchema: a.inputSchema,
      })),
    };
  }
}
