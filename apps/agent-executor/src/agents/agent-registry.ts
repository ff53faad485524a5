import { AGENT_NAME_PATTERN } from '@aob/events';
import { Injectable } from '@nestjs/common';
import type { AgentDefinition } from './agent-definition';

/**
 * The agents this process can run. Modules register theirs in `onModuleInit`; at application
 * bootstrap `AgentCatalogSync` upserts the whole registry into `executor.agents`.
 */
@Injectable()
export class AgentRegistry {
  private readonly agents = new Map<string, AgentDefinition>();

  /** @throws Error on an invalid name or a name registered twice (two modules fighting over one agent). */
  register(definition: AgentDefinition): void {
    if (!AGENT_NAME_PATTERN.test(definition.name)) {
      throw new Error(`agent name "${definition.name}" must match ${AGENT_NAME_PATTERN.source}`);
    }
    if (this.agents.has(definition.name))
      throw new Error(`agent "${definition.name}" is registered twice`);
    this.agents.set(definition.name, definition);
  }

  get(name: string): AgentDefinition | undefined {
    return this.agents.get(name);
  }

  list(): AgentDefinition[] {
    return [...this.agents.values()];
  }
}
