import { randomUUID } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { CloudEvent } from 'cloudevents';
import type { MsgHdrs } from '@nats-io/nats-core';
import { DomainError } from '@aob/errors';
import {
  EVENTS,
  encodeBinary,
  eventSource,
  executeRequestSchema,
  executeSubject,
  RunEventStream,
  type ExecuteRequest,
} from '@aob/events';
import { counter, startMessageSpan, tracingEnabled, type TraceCarrier } from '@aob/observability';
import type { Principal } from '@aob/auth';
import { requestHash } from '../common/canonical-json';
import { ProblemException } from '../common/problem.exception';
import { invalid, parseOrThrow } from '../common/validation';
import { AgentRegistry } from '../agents/agent-registry';
import { QuotaAdmissionService } from '../quotas/quota-admission.service';
import { OutboxRelay } from '../outbox/outbox-relay';
import type { RunRecord } from './run-record';
import { RunRepository } from './run.repository';

export interface SubmitOptions {
  /** Validated Idempotency-Key header. */
  idempotencyKey?: string;
  /** Validated W3C traceparent of the request. */
  traceparent?: string;
}

export interface SubmitResult {
  runId: string;
  status: 'queued';
  /** True when this answers a repeated Idempotency-Key (nothing new was queued). */
  replayed: boolean;
  /** RateLimit-Policy / RateLimit headers of the quota check, for the answer. */
  rateLimitHeaders: Record<string, string>;
}

const submittedCounter = () =>
  counter({
    name: 'aob_gateway_runs_submitted_total',
    help: 'POST /v1/runs outcomes',
    labelNames: ['outcome'] as const,
  });
const runStreamErrors = () =>
  counter({
    name: 'aob_gateway_run_stream_errors_total',
    help: 'Failed appends to the Redis run stream (best effort)',
  });

/**
 * POST /v1/runs: validates the request, writes the queued run and its execute event in one
 * transaction (the outbox relay publishes it), and honours Idempotency-Key.
 */
@Injectable()
export class RunSubmissionService {
  private readonly log = new Logger(RunSubmissionService.name);
  private readonly submitted = submittedCounter();
  private readonly streamErrors = runStreamErrors();
  private readonly source = eventSource('gateway');

  constructor(
    private readonly runs: RunRepository,
    private readonly agents: AgentRegistry,
    private readonly relay: OutboxRelay,
    private readonly runStream: RunEventStream,
    private readonly quotas: QuotaAdmissionService,
  ) {}

  async submit(
    principal: Principal,
    body: unknown,
    opts: SubmitOptions = {},
  ): Promise<SubmitResult> {
    const request = parseOrThrow(executeRequestSchema, body, 'request body');
    const tenantId = principal.tenantId;
    // Admission: request bucket and monthly budget; throws 429/402 (QuotaRejectedException).
    const rateLimitHeaders = await this.quotas.admit(tenantId);
    const hash = requestHash(body);
    const key = opts.idempotencyKey;

    if (key !== undefined) {
      const previous = await this.runs.findByIdempotencyKey(tenantId, key);
      if (previous) return { ...this.replay(previous, hash), rateLimitHeaders };
    }

    const agent = await this.agents.find(request.agent);
    if (!agent) {
      this.submitted.inc({ outcome: 'unknown-agent' });
      throw new DomainError(
        'UnknownAgent',
        `agent "${request.agent}" is not registered (GET /v1/agents lists them)`,
        {
          details: { agent: request.agent },
        },
      );
    }
    const inputErrors = this.agents.validateInput(agent, request.input);
    if (inputErrors.length > 0) {
      this.submitted.inc({ outcome: 'invalid-input' });
      throw invalid(`input does not match the input schema of agent ${agent.name}`, inputErrors);
    }

    const eventId = randomUUID();
    const runId = request.runId ?? eventId;
    const threadId = request.threadId ?? runId;
    const data: ExecuteRequest = { ...request, runId, threadId };
    // Tracing on: a `create` span under the request's span; the outbox row keeps its context, so
    // the relay's publish and the executor continue the request's trace. Off: the caller's
    // traceparent, passed through as it came.
    const created = !tracingEnabled()
      ? undefined
      : startMessageSpan({
          operation: 'create',
          destination: executeSubject(request.agent),
          messageId: eventId,
          eventType: EVENTS.agentExecute.type,
          eventSource: this.source,
          tenantId,
          runId,
        });
    created?.end();
    const { headers, payload } = this.encode(
      eventId,
      runId,
      tenantId,
      data,
      created?.carrier() ?? { traceparent: opts.traceparent },
    );

    const result = await this.runs.createWithOutbox(
      {
        runId,
        tenantId,
        agent: request.agent,
        threadId,
        input: request.input,
        options: request.options,
        idempotencyKey: key ?? null,
        requestHash: hash,
        eventId,
      },
      { eventId, subject: executeSubject(request.agent), headers, payload },
    );
    if (!result.created) {
      if (result.conflict === 'idempotency-key' && key !== undefined) {
        // A concurrent request with the same key won the race: answer as its replay.
        const winner = await this.runs.findByIdempotencyKey(tenantId, key);
        if (winner) return { ...this.replay(winner, hash), rateLimitHeaders };
      }
      this.submitted.inc({ outcome: 'conflict' });
      throw new DomainError('Conflict', `run ${runId} already exists`, { details: { runId } });
    }
    this.submitted.inc({ outcome: 'queued' });

    // Before the kick, so the queued entry normally precedes the executor's first one.
    await this.runStream
      .append(runId, 'status', { status: 'queued', attempt: 0 })
      .catch((err: Error) => {
        this.streamErrors.inc();
        this.log.warn(`run stream append for ${runId} failed (the run goes on): ${err.message}`);
      });
    this.relay.kick();
    return { runId, status: 'queued', replayed: false, rateLimitHeaders };
  }

  private replay(previous: RunRecord, hash: string): Omit<SubmitResult, 'rateLimitHeaders'> {
    if (previous.requestHash !== hash) {
      this.submitted.inc({ outcome: 'idempotency-mismatch' });
      throw new ProblemException(
        422,
        'idempotency-key-reused',
        'Unprocessable Content',
        'this Idempotency-Key was already used with a different request body',
        { runId: previous.runId },
      );
    }
    this.submitted.inc({ outcome: 'replayed' });
    return { runId: previous.runId, status: 'queued', replayed: true };
  }

  /** The execute request as a binary-mode CloudEvent: NATS headers (as stored in the outbox) and payload. */
  private encode(
    eventId: string,
    runId: string,
    tenantId: string,
    data: ExecuteRequest,
    { traceparent, tracestate }: TraceCarrier,
  ): { headers: Record<string, string>; payload: Uint8Array } {
    const event = new CloudEvent<ExecuteRequest>({
      id: eventId,
      source: this.source,
      type: EVENTS.agentExecute.type,
      subject: runId,
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      tenantid: tenantId,
      ...(traceparent === undefined ? {} : { traceparent }),
      ...(tracestate === undefined ? {} : { tracestate }),
      data,
    });
    const { headers, data: payload } = encodeBinary(event);
    return { headers: headersToRecord(headers), payload };
  }
}

function headersToRecord(h: MsgHdrs): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of h.keys()) out[name] = h.get(name);
  return out;
}
