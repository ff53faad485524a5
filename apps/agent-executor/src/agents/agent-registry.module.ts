import { Global, Module } from '@nestjs/common';
import { AgentRegistry } from './agent-registry';

/** Makes the one AgentRegistry injectable in every agent module. */
@Global()
@Module({ providers: [AgentRegistry], exports: [AgentRegistry] })
export class AgentRegistryModule {}
