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
import type { ConnectionRetry } from '@aob/persistence';
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

const dependencyRetriesCounter = () =>
  counter({
    name: 'aob_gateway_dependency_retries_total',
    help: 'Projection statements retried because a dependency (postgres) was unreachable; the status event waits, held',
    labelNames: ['dependency'] as const,
  });

/** Folds agent status events (AGENT_STATUS, durable gateway-run-status) into gateway.runs. */
@Injectable()
export class RunProjectionService {
  private readonly log = new Logger(RunProjectionService.name);
  private readonly projected = projectedCounter();
  private readonly dependencyRetries = dependencyRetriesCounter();
  /** Since when Postgres has been unreachable (logged once per outage, not per retry). */
  private outageSince: number | undefined;

  constructor(private readonly repo: RunProjectionRepository) {}

  started(e: InboundEvent<RunStarted>, signal?: AbortSignal): Promise<ProjectionOutcome> {
    const d = e.data;
    return this.apply(
      e,
      {
        runId: d.runId,
        agent: d.agent,
        threadId: d.threadId,
        status: 'running',
        attempts: d.attempt,
      },
      signal,
    );
  }

  step(e: InboundEvent<RunStep>, signal?: AbortSignal): Promise<ProjectionOutcome> {
    const d = e.data;
    return this.apply(
      e,
      {
        runId: d.runId,
        agent: d.agent,
        threadId: d.threadId,
        status: 'running',
        attempts: 0,
      },
      signal,
    );
  }

  completed(e: InboundEvent<RunResult>, signal?: AbortSignal): Promise<ProjectionOutcome> {
    const d = e.data;
    return this.apply(
      e,
      {
        runId: d.runId,
        agent: d.agent,
        threadId: d.threadId,
        status: 'completed',
        attempts: d.attempts,
        output: d.output,
        usage: d.usage,
        durationMs: d.durationMs,
      },
      signal,
    );
  }

  failed(e: InboundEvent<RunFailure>, signal?: AbortSignal): Promise<ProjectionOutcome> {
    const d = e.data;
    return this.apply(
      e,
      {
        runId: d.runId,
        agent: d.agent,
        threadId: d.threadId,
        status: 'failed',
        attempts: d.attempts,
        error: { ...d.error, deadLettered: d.deadLettered },
      },
      signal,
    );
  }

  cancelled(e: InboundEvent<RunCancelled>, signal?: AbortSignal): Promise<ProjectionOutcome> {
    const d = e.data;
    return this.apply(
      e,
      {
        runId: d.runId,
        agent: d.agent,
        // cancelled events carry no thread: the default thread of a run is the run itself
        threadId: d.runId,
        status: 'cancelled',
        attempts: 0,
        error: { code: 'Cancelled', message: d.reason, retryable: false },
      },
      signal,
    );
  }

  /**
   * Applies the update; with the delivery's signal, a Postgres outage is waited out (the message is
   * held, kept alive by the transport's working() heartbeats) instead of spending its deliveries.
   */
  private async apply(
    e: InboundEvent,
    u: Omit<RunStatusUpdate, 'tenantId'>,
    signal?: AbortSignal,
  ): Promise<ProjectionOutcome> {
    const tenantId = e.tenantId;
    if (tenantId === undefined || !TENANT_PATTERN.test(tenantId) || tenantId === '*') {
      // No retry can give the event a tenant: terminate it (recorded for the DLQ).
      throw new DomainError(
        'InvalidEvent',
        `status event ${e.id} (${e.type}) has no valid tenantid attribute`,
      );
    }
    const outcome = await this.repo.apply(
      { ...u, tenantId },
      signal === undefined ? undefined : this.retryScope(signal),
    );
    this.projected.inc({ type: e.type, outcome });
    if (outcome === 'tenant-mismatch') {
      this.log.warn(
        `ignored ${e.type} ${e.id}: run ${u.runId} belongs to another tenant than the event's tenantid ${tenantId}`,
      );
    }
    return outcome;
  }

  private retryScope(signal: AbortSignal): ConnectionRetry {
    return {
      signal,
      onRetry: (err) => {
        this.dependencyRetries.inc({ dependency: 'postgres' });
        if (this.outageSince !== undefined) return;
        this.outageSince = Date.now();
        this.log.warn(
          `Postgres is unreachable (${(err as Error).message}); status events are held and retried until it is back`,
        );
      },
      onRecovered: () => {
        if (this.outageSince === undefined) return;
        this.log.log(
          `Postgres is reachable again after ${Date.now() - this.outageSince} ms; projecting`,
        );
        this.outageSince = undefined;
      },
    };
  }
}
