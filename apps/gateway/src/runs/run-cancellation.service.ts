import { Injectable, Logger } from '@nestjs/common';
import type { MsgHdrs } from '@nats-io/nats-core';
import { CloudEvent } from 'cloudevents';
import type { Principal } from '@aob/auth';
import { DomainError, notFound } from '@aob/errors';
import {
  EVENTS,
  encodeBinary,
  eventSource,
  RunEventStream,
  type RunCancelled,
  type RunCancelRequest,
} from '@aob/events';
import { counter } from '@aob/observability';
import type { RunStatus } from '@aob/persistence';
import { z } from 'zod';
import { assertId, parseOrThrow } from '../common/validation';
import { OutboxRelay } from '../outbox/outbox-relay';
import type { NewOutboxMessage } from '../outbox/outbox.repository';
import { RunRepository } from './run.repository';

/** Body of `POST /v1/runs/:runId/cancel` (optional). */
export const cancelRunBodySchema = z
  .object({ reason: z.string().min(1).max(1_000).optional() })
  .strict();

export interface CancelAnswer {
  runId: string;
  /**
   * `cancelled` when the run ended at once (it was never handed to a worker, or was cancelled
   * already); otherwise its current status (`queued`, `running`) until the executor's
   * `agent.status.cancelled` lands.
   */
  status: RunStatus;
}

/** CloudEvent ids derived from the run: a repeated request is stored (and published) once. */
export const cancelEventIds = {
  request: (runId: string) => `${runId}.cancel`,
  cancelled: (runId: string) => `${runId}.cancelled`,
};

const DEFAULT_REASON = 'cancelled through the API';

const cancelCounter = () =>
  counter({
    name: 'aob_gateway_run_cancellations_total',
    help: 'POST /v1/runs/:runId/cancel outcomes',
    labelNames: ['outcome'] as const,
  });

/**
 * `POST /v1/runs/:runId/cancel`. In one transaction: the run row is locked, the cancel request
 * (`aob.agent.cancel.v1` on `agent.control.cancel`) goes to the outbox (so it is accepted while NATS
 * is down), and a run whose execute event is still unsent is ended right here (its outbox row is
 * deleted, the run marked `cancelled`, `agent.status.cancelled` queued in the outbox). Every executor
 * follows the control stream: a queued run is never started, a running one is aborted.
 */
@Injectable()
export class RunCancellationService {
  private readonly log = new Logger(RunCancellationService.name);
  private readonly outcomes = cancelCounter();
  private readonly source = eventSource('gateway');

  constructor(
    private readonly runs: RunRepository,
    private readonly relay: OutboxRelay,
    private readonly runStream: RunEventStream,
  ) {}

  async cancel(principal: Principal, runId: string, body: unknown): Promise<CancelAnswer> {
    assertId(runId, 'runId');
    const { reason = DEFAULT_REASON } = parseOrThrow(
      cancelRunBodySchema,
      body ?? {},
      'request body',
    );
    const tenantId = principal.tenantId;
    const result = await this.runs.requestCancel(tenantId, runId, (run) => ({
      request: this.message(
        cancelEventIds.request(runId),
        EVENTS.agentCancel.subject,
        EVENTS.agentCancel.type,
        tenantId,
        runId,
        { runId, agent: run.agent, reason } satisfies RunCancelRequest,
      ),
      cancelled: this.message(
        cancelEventIds.cancelled(runId),
        EVENTS.agentCancelled.subject,
        EVENTS.agentCancelled.type,
        tenantId,
        runId,
        { runId, agent: run.agent, reason } satisfies RunCancelled,
      ),
      error: { code: 'Cancelled', message: reason, retryable: false },
    }));
    switch (result.kind) {
      case 'not-found':
        this.outcomes.inc({ outcome: 'not-found' });
        throw notFound(`run ${runId}`);
      case 'finished':
        this.outcomes.inc({ outcome: 'finished' });
        throw new DomainError('Conflict', `run ${runId} is already ${result.status}`, {
          details: { runId, runStatus: result.status },
        });
      case 'already-cancelled':
        this.outcomes.inc({ outcome: 'already-cancelled' });
        return { runId, status: 'cancelled' };
      case 'ended-here':
        this.outcomes.inc({ outcome: 'ended-here' });
        await this.runStream.append(runId, 'cancelled', { runId, reason }).catch((err: Error) => {
          this.log.warn(`run stream append for ${runId} failed: ${err.message}`);
        });
        this.relay.kick();
        return { runId, status: 'cancelled' };
      case 'requested':
        this.outcomes.inc({ outcome: 'requested' });
        this.relay.kick();
        return { runId, status: result.status };
    }
  }

  private message(
    id: string,
    subject: string,
    type: string,
    tenantId: string,
    runId: string,
    data: unknown,
  ): NewOutboxMessage {
    const event = new CloudEvent<unknown>({
      id,
      source: this.source,
      type,
      subject: runId,
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      tenantid: tenantId,
      data,
    });
    const { headers, data: payload } = encodeBinary(event);
    return { eventId: id, subject, headers: headersToRecord(headers), payload };
  }
}

function headersToRecord(h: MsgHdrs): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of h.keys()) out[name] = h.get(name);
  return out;
}
