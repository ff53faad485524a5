import { Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { z } from 'zod';
import { AgentRegistrationRepository } from './agent-registration.repository';
import { AgentRegistry } from './agent-registry';

/**
 * Publishes the registry to executor.agents once every module has registered its agents
 * (onApplicationBootstrap runs after all onModuleInit hooks), before the consumer starts pulling.
 */
@Injectable()
export class AgentCatalogSync implements OnApplicationBootstrap {
  constructor(
    private readonly registry: AgentRegistry,
    private readonly registrations: AgentRegistrationRepository,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.registrations.upsert(
      this.registry.list().map((a) => ({
        name: a.name,
        description: a.description,
        version: a.version,
        inputSchema: z.toJSONSchema(a.inputSchema, { io: 'input', unrepresentable: 'any' }),
      })),
    );
  }
}
