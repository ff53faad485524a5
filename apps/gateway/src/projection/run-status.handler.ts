import { Controller, UseFilters } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import {
  EVENTS,
  JetStreamExceptionFilter,
  type InboundEvent,
  type RunCancelled,
  type RunFailure,
  type RunResult,
  type RunStarted,
  type RunStep,
} from '@aob/events';
import { RunProjectionService } from './run-projection.service';

/** JetStream handlers of the durable `gateway-run-status` consumer (payloads already validated by the transport). */
@Controller()
@UseFilters(JetStreamExceptionFilter)
export class RunStatusHandler {
  constructor(private readonly projection: RunProjectionService) {}

  @EventPattern(EVENTS.agentStarted.type)
  async started(@Payload() e: InboundEvent<RunStarted>): Promise<void> {
    await this.projection.started(e);
  }

  @EventPattern(EVENTS.agentStep.type)
  async step(@Payload() e: InboundEvent<RunStep>): Promise<void> {
    await this.projection.step(e);
  }

  @EventPattern(EVENTS.agentCompleted.type)
  async completed(@Payload() e: InboundEvent<RunResult>): Promise<void> {
    await this.projection.completed(e);
  }

  @EventPattern(EVENTS.agentFailed.type)
  async failed(@Payload() e: InboundEvent<RunFailure>): Promise<void> {
    await this.projection.failed(e);
  }

  @EventPattern(EVENTS.agentCancelled.type)
  async cancelled(@Payload() e: InboundEvent<RunCancelled>): Promise<void> {
    await this.projection.cancelled(e);
  }
}
