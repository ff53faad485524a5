import {
  EVENTS,
  JetStreamContext,
  JetStreamExceptionFilter,
  type ExecuteRequest,
  type InboundEvent,
} from '@aob/events';
import { Controller, UseFilters } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { RunExecutor } from './run-executor';

/** `aob.agent.execute.v1` deliveries of the `agent-executor-workers` consumer. */
@Controller()
@UseFilters(JetStreamExceptionFilter)
export class ExecuteRequestHandler {
  constructor(private readonly executor: RunExecutor) {}

  @EventPattern(EVENTS.agentExecute.type)
  handle(
    @Payload() event: InboundEvent<ExecuteRequest>,
    @Ctx() ctx: JetStreamContext,
  ): Promise<void> {
    return this.executor.execute(event, ctx);
  }
}
