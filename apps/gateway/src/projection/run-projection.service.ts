import { Injectable, Logger } from '@nestjs/common';
import { DomainError } from '@aob/errors';
import {
  TENANT_PATTERN,
  type InboundEvent,
  type RunCancelled,
  type RunFailure,
  type RunResult,
  type RunStarted,
  type RunStep,
} from '@aob/events';
import { counter } from '@aob/observability';
import {
  RunProjectionRepository,
  type ProjectionOutcome,
  type RunStatusUpdate,
} from './run-projection.repository';

const projectedCounter = () =>
  counter({
    name: 'aob_gateway_status_events_total',
    help: 'Status events projected into gateway.runs, by type and outcome',
    labelNames: ['type', 'outcome'] as const,
  });

/** Folds agent status events (AGENT_STATUS, durable gateway-run-status) into gateway.runs. */
@Injectable()
export class RunProjectionService {
  private readonly log = new Logger(RunProjectionService.name);
  private readonly projected = projectedCounter();

  constructor(private readonly repo: RunProjectionRepository) {}

  started(e: InboundEvent<RunStarted>): Promise<ProjectionOutcome> {
    const d = e.data;
    return this.apply(e, {
      runId: d.runId,
      agent: d.agent,
      threadId: d.threadId,
      status: 'running',
      attempts: d.attempt,
    });
  }

  step(e: InboundEvent<RunStep>): Promise<ProjectionOutcome> {
    const d = e.data;
    return this.apply(e, {
      runId: d.runId,
      agent: d.agent,
      threadId: d.threadId,
      status: 'running',
      attempts: 0,
    });
  }

  completed(e: InboundEvent<RunResult>): Promise<ProjectionOutcome> {
    const d = e.data;
    return this.apply(e, {
      runId: d.runId,
      agent: d.agent,
      threadId: d.threadId,
      status: 'completed',
      attempts: d.attempts,
      output: d.output,
      usage: d.usage,
      durationMs: d.durationMs,
    });
  }

  failed(e: InboundEvent<RunFailure>): Promise<ProjectionOutcome> {
    const d = e.data;
    return this.apply(e, {
      runId: d.runId,
      agent: d.agent,
      threadId: d.threadId,
      status: 'failed',
      attempts: d.attempts,
      error: { ...d.error, deadLettered: d.deadLettered },
    });
  }

  cancelled(e: InboundEvent<RunCancelled>): Promise<ProjectionOutcome> {
    const d = e.data;
    return this.apply(e, {
      runId: d.runId,
      agent: d.agent,
      // cancelled events carry no thread: the default thread of a run is the run itself
      threadId: d.runId,
      status: 'cancelled',
      attempts: 0,
      error: { code: 'Cancelled', message: d.reason, retryable: false },
    });
  }

  private async apply(
    e: InboundEvent,
    u: Omit<RunStatusUpdate, 'tenantId'>,
  ): Promise<ProjectionOutcome> {
    const tenantId = e.tenantId;
    if (tenantId === undefined || !TENANT_PATTERN.test(tenantId) || tenantId === '*') {
      // No retry can give the event a tenant: terminate it (recorded for the DLQ).
      throw new DomainError(
        'InvalidEvent',
        `status event ${e.id} (${e.type}) has no valid tenantid attribute`,
      );
    }
    const outcome = await this.repo.apply({ ...u, tenantId });
    this.projected.inc({ type: e.type, outcome });
    if (outcome === 'tenant-mismatch') {
      this.log.warn(
        `ignored ${e.type} ${e.id}: run ${u.runId} belongs to another tenant than the event's tenantid ${tenantId}`,
      );
    }
    return outcome;
  }
}
