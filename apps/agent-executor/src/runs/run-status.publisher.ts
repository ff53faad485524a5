import { DomainError } from '@aob/errors';
import {
  EVENTS,
  EventPublisher,
  type EventKey,
  type RunCancelled,
  type RunFailure,
  type RunResult,
  type RunStarted,
  type RunStep,
} from '@aob/events';
import type { ExecutorRun } from '@aob/persistence';
import { Injectable } from '@nestjs/common';

/** The request a status event answers: its tenant, run and trace context. */
export interface RunRef {
  tenantId: string;
  runId: string;
  agent: string;
  threadId: string;
  traceparent?: string;
  tracestate?: string;
}

const KEY_BY_TYPE = new Map<string, EventKey>(
  (Object.entries(EVENTS) as [EventKey, (typeof EVENTS)[EventKey]][]).map(([key, def]) => [
    def.type,
    key,
  ]),
);

/** Status event ids are derived from the run, so a repeated publish is stored once (Nats-Msg-Id). */
export const statusEventIds = {
  started: (runId: string, attempt: number) => `${runId}.started.${attempt}`,
  step: (runId: string, step: number) => `${runId}.step.${step}`,
  completed: (runId: string) => `${runId}.completed`,
  /** A run reopened by a dead-letter replay may fail again: each life's failure has its own id. */
  failed: (runId: string, replays = 0) =>
    replays > 0 ? `${runId}.failed.${replays}` : `${runId}.failed`,
  cancelled: (runId: string) => `${runId}.cancelled`,
};

/** Publishes `agent.status.*` CloudEvents: subject = run id, tenantid and trace context of the request. */
@Injectable()
export class RunStatusPublisher {
  constructor(private readonly publisher: EventPublisher) {}

  async started(run: RunRef, attempt: number): Promise<void> {
    const data: RunStarted = {
      runId: run.runId,
      agent: run.agent,
      threadId: run.threadId,
      attempt,
    };
    await this.publisher.publish(
      'agentStarted',
      data,
      this.options(run, statusEventIds.started(run.runId, attempt)),
    );
  }

  async step(run: RunRef, data: RunStep): Promise<void> {
    await this.publisher.publish(
      'agentStep',
      data,
      this.options(run, statusEventIds.step(run.runId, data.step)),
    );
  }

  async completed(run: RunRef, result: RunResult, time: Date): Promise<void> {
    await this.publisher.publish(
      'agentCompleted',
      result,
      this.options(run, statusEventIds.completed(run.runId), time),
    );
  }

  async failed(run: RunRef, failure: RunFailure, time: Date, replays = 0): Promise<void> {
    await this.publisher.publish(
      'agentFailed',
      failure,
      this.options(run, statusEventIds.failed(run.runId, replays), time),
    );
  }

  async cancelled(run: RunRef, data: RunCancelled, time: Date): Promise<void> {
    await this.publisher.publish(
      'agentCancelled',
      data,
      this.options(run, statusEventIds.cancelled(run.runId), time),
    );
  }

  /** Publishes a finished run's stored terminal event again: same id, type, data and time. */
  async republish(
    run: ExecutorRun,
    trace: Pick<RunRef, 'traceparent' | 'tracestate'>,
  ): Promise<void> {
    const key = run.resultType ? KEY_BY_TYPE.get(run.resultType) : undefined;
    if (!key || !run.resultEventId) {
      throw new DomainError(
        'Internal',
        `run ${run.runId} is ${run.status} but has no stored status event to publish`,
      );
    }
    const ref: RunRef = {
      tenantId: run.tenantId,
      runId: run.runId,
      agent: run.agent,
      threadId: run.threadId,
      ...trace,
    };
    // The stored data passed the catalog schema when it was first published.
    await this.publisher.publish(
      key,
      run.result as never,
      this.options(ref, run.resultEventId, run.finishedAt ?? undefined),
    );
  }

  private options(run: RunRef, id: string, time?: Date) {
    return {
      id,
      tenantId: run.tenantId,
      ceSubject: run.runId,
      ...(time === undefined ? {} : { time: time.toISOString() }),
      ...(run.traceparent === undefined ? {} : { traceparent: run.traceparent }),
      ...(run.tracestate === undefined ? {} : { tracestate: run.tracestate }),
    };
  }
}
