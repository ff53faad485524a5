import { Module, type OnModuleInit } from '@nestjs/common';
import { AgentRegistry } from './agent-registry';
import { chatAgent } from './chat.agent';
import { echoAgent } from './echo.agent';
import { pipelineAgent } from './pipeline.agent';

/** The contract's built-in agents (CONTRACT.md section 5). Other agent modules follow this shape. */
@Module({})
export class BuiltinAgentsModule implements OnModuleInit {
  constructor(private readonly registry: AgentRegistry) {}

  onModuleInit(): void {
    for (const agent of [echoAgent, chatAgent, pipelineAgent]) this.registry.register(agent);
  }
}
