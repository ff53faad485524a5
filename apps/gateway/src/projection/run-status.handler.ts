import { Controller, UseFilters } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import {
  EVENTS,
  JetStreamContext,
  JetStreamExceptionFilter,
  type InboundEvent,
  type RunCancelled,
  type RunFailure,
  type RunResult,
  type RunStarted,
  type RunStep,
} from '@aob/events';
import { RunProjectionService } from './run-projection.service';

/**
 * JetStream handlers of the durable `gateway-run-status` consumer (payloads already validated by
 * the transport). A Postgres outage is waited out within the delivery until shutdown (ctx.signal).
 */
@Controller()
@UseFilters(JetStreamExceptionFilter)
export class RunStatusHandler {
  constructor(private readonly projection: RunProjectionService) {}

  @EventPattern(EVENTS.agentStarted.type)
  async started(
    @Payload() e: InboundEvent<RunStarted>,
    @Ctx() ctx: JetStreamContext,
  ): Promise<void> {
    await this.projection.started(e, ctx.signal);
  }

  @EventPattern(EVENTS.agentStep.type)
  async step(@Payload() e: InboundEvent<RunStep>, @Ctx() ctx: JetStreamContext): Promise<void> {
    await this.projection.step(e, ctx.signal);
  }

  @EventPattern(EVENTS.agentCompleted.type)
  async completed(
    @Payload() e: InboundEvent<RunResult>,
    @Ctx() ctx: JetStreamContext,
  ): Promise<void> {
    await this.projection.completed(e, ctx.signal);
  }

  @EventPattern(EVENTS.agentFailed.type)
  async failed(
    @Payload() e: InboundEvent<RunFailure>,
    @Ctx() ctx: JetStreamContext,
  ): Promise<void> {
    await this.projection.failed(e, ctx.signal);
  }

  @EventPattern(EVENTS.agentCancelled.type)
  async cancelled(
    @Payload() e: InboundEvent<RunCancelled>,
    @Ctx() ctx: JetStreamContext,
  ): Promise<void> {
    await this.projection.cancelled(e, ctx.signal);
  }
}
