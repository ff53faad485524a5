import { randomUUID } from 'node:crypto';
import { DomainError, describeError, isDomainError, type ErrorCode } from '@aob/errors';
import {
  EVENTS,
  ID_PATTERN,
  REPLAY_EXTENSION,
  REPLAY_HEADER,
  RunEventStream,
  TENANT_PATTERN,
  type ExecuteRequest,
  type InboundEvent,
  type RunCancelled,
  type RunFailure,
  type RunResult,
} from '@aob/events';
import { isConnectionError, type ConnectionRetry, type ExecutorRun } from '@aob/persistence';
import { Inject, Injectable } from '@nestjs/common';
import type { AgentDefinition, JsonValue, Logger } from '../agents/agent-definition';
import { AgentRegistry } from '../agents/agent-registry';
import type { ExecutorConfig } from '../config';
import { EXECUTOR_CONFIG, EXECUTOR_LOGGER } from '../executor.tokens';
import { ModelClient } from '../model/model-client';
import { CheckpointRepository, LeaseLostError } from './checkpoint.repository';
import { ExecutorRunRepository } from './executor-run.repository';
import { executorMetrics, type ExecutorMetrics, type RunOutcome } from './executor.metrics';
import { RunCancellations, RunCancelledError } from './run-cancellations';
import { agentStateOf, RunContext } from './run-context';
import { RunStatusPublisher, statusEventIds, type RunRef } from './run-status.publisher';
import { RunStreamWriter } from './run-stream-writer';

/** The parts of a JetStream delivery the executor needs (JetStreamContext has them). */
export interface Delivery {
  natsSubject: string;
  /** 1 on the first delivery. */
  deliveryCount: number;
  isLastDelivery: boolean;
  /** Aborted when the shutdown grace period ends. */
  signal: AbortSignal;
  /** Message headers (`ce-aobreplay` of a dead-letter replay, whatever the content mode). */
  headers?: { get(name: string): string } | undefined;
  /** Stream sequence of the message: the same on every delivery of it. */
  streamSeq?: number;
}

/** Floor of the wait a duplicate delivery is told to take while another one holds the run. */
const MIN_BUSY_RETRY_MS = 100;

/**
 * Executes one delivery of an execute request: at most one completion per run id, a checkpoint
 * after every step, status events on `agent.status.*` and the run's Redis stream.
 *
 * Settlement follows from how `execute` ends: it returns (ack), throws a retryable error (nak with
 * backoff or `details.retryAfterMs`) or a non-retryable one (term; the transport records why).
 */
@Injectable()
export class RunExecutor {
  /** Lease owners are `<process id>/<claim number>`: one per claim, so two deliveries of a run in one process exclude each other too. */
  private readonly processId = randomUUID();
  private claims = 0;
  private readonly metrics: ExecutorMetrics = executorMetrics();

  constructor(
    @Inject(EXECUTOR_CONFIG) private readonly config: ExecutorConfig,
    @Inject(EXECUTOR_LOGGER) private readonly logger: Logger,
    private readonly registry: AgentRegistry,
    private readonly runs: ExecutorRunRepository,
    private readonly checkpoints: CheckpointRepository,
    private readonly status: RunStatusPublisher,
    private readonly runStream: RunEventStream,
    private readonly model: ModelClient,
    private readonly cancellations: RunCancellations,
  ) {
    cancellations.onCancelNotRunningHere((tenantId, runId, reason) => {
      void this.cancelIdle(tenantId, runId, reason);
    });
  }

  /**
   * A new cancellation of a run this process is not running: when nobody holds it (it waits for a
   * retry, or its worker died), end it now rather than at its next delivery (which then finds it
   * cancelled and republishes the event). A run that is queued or held elsewhere is left to its
   * delivery and its holder; every executor tries, one statement each, and one wins.
   */
  private async cancelIdle(tenantId: string, runId: string, reason: string): Promise<void> {
    const log = this.logger.child({ runId, tenantId });
    try {
      const ended = await this.runs.cancelIdle(tenantId, runId, reason, {
        eventId: statusEventIds.cancelled(runId),
        eventType: EVENTS.agentCancelled.type,
      });
      if (!ended) return;
      const run: RunRef = { tenantId, runId, agent: ended.agent, threadId: ended.threadId };
      const stream = new RunStreamWriter(this.runStream, runId, log, this.metrics);
      stream.append('cancelled', { runId, reason });
      await this.status.cancelled(run, { runId, agent: ended.agent, reason }, ended.finishedAt);
      await stream.flush();
      this.count(ended.agent, 'cancelled');
      log.info({ reason }, 'run cancelled while no delivery held it');
    } catch (err) {
      // Stored or not, the run's next delivery settles it (it checks the cancellation).
      log.warn({ err }, 'ending an idle cancelled run failed; its next delivery will');
    }
  }

  async execute(event: InboundEvent<ExecuteRequest>, delivery: Delivery): Promise<void> {
    const req = event.data;
    const tenantId = event.tenantId;
    if (tenantId === undefined || tenantId === '') {
      throw this.reject(
        req.agent,
        new DomainError(
          'InvalidEvent',
          `execute request ${event.id} has no tenantid extension attribute`,
        ),
      );
    }
    if (!TENANT_PATTERN.test(tenantId) || tenantId === '*') {
      throw this.reject(
        req.agent,
        new DomainError(
          'InvalidEvent',
          `execute request ${event.id} has an invalid tenantid "${tenantId}"`,
        ),
      );
    }
    const subjectAgent = delivery.natsSubject.split('.').pop();
    if (subjectAgent !== req.agent) {
      throw this.reject(
        req.agent,
        new DomainError(
          'InvalidRequest',
          `subject ${delivery.natsSubject} does not match agent "${req.agent}" of the request`,
        ),
      );
    }
    const runId = req.runId ?? event.id;
    if (!ID_PATTERN.test(runId)) {
      throw this.reject(
        req.agent,
        new DomainError(
          'InvalidRequest',
          `CloudEvent id "${event.id}" cannot serve as run id (${ID_PATTERN.source}); set data.runId`,
        ),
      );
    }
    const run: RunRef = {
      tenantId,
      runId,
      agent: req.agent,
      threadId: req.threadId ?? runId,
      ...(event.traceparent === undefined ? {} : { traceparent: event.traceparent }),
      ...(event.tracestate === undefined ? {} : { tracestate: event.tracestate }),
    };
    const attempt = delivery.deliveryCount;
    const log = this.logger.child({
      runId,
      tenantId,
      agent: req.agent,
      attempt,
      eventId: event.id,
    });
    const stream = new RunStreamWriter(this.runStream, runId, log, this.metrics);
    // Every statement of the delivery waits out a database outage (until shutdown): the message is
    // held meanwhile (the transport's working() heartbeats), so the outage spends no delivery.
    const db = this.dbRetry(delivery.signal, log);

    // A request this executor cannot run may still be a repeat of a run that finished (say, under
    // an agent version that is gone): that run's stored event wins. A runnable request learns the
    // same from its claim, so the common path reads nothing before claiming.
    const agent = this.registry.get(req.agent);
    const parsed = agent?.inputSchema.safeParse(req.input);
    if (!agent || !parsed?.success) {
      const existing = await this.runs.find(tenantId, runId, db);
      if (existing && existing.status !== 'running') return this.replay(existing, run, log);
      const error = !agent
        ? new DomainError(
            'UnknownAgent',
            `agent "${req.agent}" is not registered with this executor`,
          )
        : new DomainError(
            'InvalidRequest',
            `invalid input for agent ${req.agent}: ${(parsed?.error?.issues ?? [])
              .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
              .join('; ')}`,
          );
      return this.failUnclaimed(run, event, attempt, error, stream, log, db);
    }

    const leaseOwner = `${this.processId}/${++this.claims}`;
    const claimInput = {
      tenantId,
      runId,
      agent: req.agent,
      threadId: run.threadId,
      eventId: event.id,
      input: req.input,
      attempts: attempt,
      replay: replayNumber(event, delivery),
      leaseOwner,
      leaseTtlMs: this.config.EXECUTOR_LEASE_TTL_MS,
      ...(delivery.streamSeq === undefined ? {} : { streamSeq: delivery.streamSeq }),
    };
    let claim = await this.runs.claim(claimInput, db);
    // The lease is held by an earlier delivery of this very message, which is gone (JetStream
    // delivers a message once at a time) without releasing it, say because the database was down
    // then: wait until the lease runs out and take the run over, holding the message meanwhile.
    // Naking would spend deliveries on a run nobody executes.
    while (claim.kind === 'busy' && claim.sameMessage && !delivery.signal.aborted) {
      const waitMs = Math.max(
        MIN_BUSY_RETRY_MS,
        Math.min(claim.leaseRemainingMs + 25, this.config.EXECUTOR_LEASE_TTL_MS),
      );
      log.info(
        { waitMs },
        'run is leased to an earlier delivery of this message; taking it over when the lease ends',
      );
      await sleep(waitMs, delivery.signal);
      if (delivery.signal.aborted) break;
      claim = await this.runs.claim(claimInput, db);
    }
    switch (claim.kind) {
      case 'terminal':
        return this.replay(claim.run, run, log);
      case 'conflict':
        throw this.reject(req.agent, new DomainError('InvalidRequest', claim.reason));
      case 'busy': {
        this.count(req.agent, 'busy');
        if (claim.sameMessage) {
          // Only at shutdown: hand the message back, never drop it.
          throw new DomainError('Unavailable', `worker shutting down; run ${runId} not claimed`, {
            retryable: true,
          });
        }
        if (delivery.isLastDelivery) {
          // The holder's own message still guarantees the run finishes; dead-lettering this
          // duplicate would only put a second copy of the run in the DLQ.
          log.warn(
            'run is held by another delivery and this duplicate is out of deliveries; dropping the duplicate',
          );
          return;
        }
        const retryAfterMs = Math.max(
          MIN_BUSY_RETRY_MS,
          Math.min(claim.leaseRemainingMs, this.config.EXECUTOR_LEASE_TTL_MS / 3),
        );
        log.info({ retryAfterMs }, 'run is held by another delivery; retrying later');
        throw new DomainError('Conflict', `run ${runId} is being executed by another delivery`, {
          retryable: true,
          details: { retryAfterMs },
        });
      }
      case 'claimed':
        return this.run(agent, parsed.data, {
          run,
          req,
          // Counted across dead-letter replays (a replay's deliveries start at 1 again).
          attempt: claim.attempt,
          replays: claim.replays,
          delivery,
          db,
          leaseOwner,
          startedAt: claim.startedAt,
          hasCheckpoints: claim.hasCheckpoints,
          stream,
          log,
        });
    }
  }

  private async run(
    agent: AgentDefinition,
    input: unknown,
    c: {
      run: RunRef;
      req: ExecuteRequest;
      attempt: number;
      replays: number;
      delivery: Delivery;
      db: ConnectionRetry;
      leaseOwner: string;
      startedAt: Date;
      hasCheckpoints: boolean;
      stream: RunStreamWriter;
      log: Logger;
    },
  ): Promise<void> {
    const { run, attempt, delivery, leaseOwner, stream, log } = c;
    const ttl = this.config.EXECUTOR_LEASE_TTL_MS;
    const claimedAt = Date.now();

    // Stops the agent when the run is cancelled, the lease is lost or the run's own time limit
    // passes; the transport's signal covers shutdown.
    const stop = new AbortController();
    // Fires at once when the cancellation arrived before the claim: the run is never started.
    const unwatch = this.cancellations.watch(run.tenantId, run.runId, (reason) =>
      stop.abort(new RunCancelledError(reason)),
    );
    if (stop.signal.aborted) {
      unwatch();
      return this.finishCancelled(stop.signal.reason as RunCancelledError, {
        ...c,
        ctx: undefined,
        agentName: agent.name,
        claimedAt,
      });
    }
    log.info('run claimed');

    // Not awaited here: the event is handed to the connection now, so it is stored before any
    // later status event of the run, and its outcome is awaited before the run's outcome is published.
    const started = this.status.started(run, attempt).catch((err: unknown) => {
      this.metrics.statusPublishErrors.inc({ event: 'started' });
      log.warn({ err }, 'publishing the started event failed');
    });
    stream.append('status', { status: 'running', attempt });

    const signal = AbortSignal.any([delivery.signal, stop.signal]);
    const renewal = setInterval(
      () => {
        this.runs.renewLease(run.tenantId, run.runId, leaseOwner, ttl).then(
          (held) => {
            c.db.onRecovered?.(1);
            if (!held)
              stop.abort(new LeaseLostError(`run ${run.runId} was taken over by another delivery`));
          },
          (err: unknown) => {
            // An outage is reported once (by the run's retry scope), not at every tick.
            if (isConnectionError(err)) c.db.onRetry?.(err, 0, 0);
            else log.warn({ err }, 'lease renewal failed; retrying at the next tick');
          },
        );
      },
      Math.max(200, Math.floor(ttl / 3)),
    );
    const timeoutMs = c.req.options?.timeoutMs;
    const deadline =
      timeoutMs === undefined
        ? undefined
        : setTimeout(
            () =>
              stop.abort(
                new DomainError(
                  'Timeout',
                  `run exceeded its time limit of ${timeoutMs} ms (options.timeoutMs)`,
                ),
              ),
            timeoutMs,
          );

    let output: JsonValue;
    let ctx: RunContext | undefined;
    try {
      const [done, threadState] = await Promise.all([
        c.hasCheckpoints ? this.checkpoints.listForRun(run.tenantId, run.runId, c.db) : [],
        run.threadId === run.runId
          ? undefined
          : this.checkpoints.latestThreadState(run.tenantId, run.threadId, run.runId, c.db),
      ]);
      if (done.length > 0)
        log.info({ checkpoints: done.length }, 'resuming after the last checkpointed step');
      ctx = new RunContext(
        {
          run,
          attempt,
          options: c.req.options ?? {},
          signal,
          threadState: agentStateOf(threadState),
          done,
        },
        {
          checkpoints: this.checkpoints,
          status: this.status,
          stream,
          model: this.model,
          metrics: this.metrics,
          log,
          leaseOwner,
          leaseTtlMs: ttl,
          dbRetry: c.db,
        },
      );
      // A result that arrives after an abort still counts: finish() checks the lease atomically.
      output = (await agent.run(ctx, input)) ?? null;
    } catch (thrown) {
      clearInterval(renewal);
      clearTimeout(deadline);
      unwatch();
      const err: unknown = stop.signal.aborted ? stop.signal.reason : thrown;
      await started;
      if (err instanceof RunCancelledError)
        return this.finishCancelled(err, { ...c, ctx, agentName: agent.name, claimedAt });
      return this.handleFailure(err, { ...c, ctx, agentName: agent.name, claimedAt });
    }
    clearInterval(renewal);
    clearTimeout(deadline);
    unwatch();
    // Cancelled while the last step was finishing: the API promised `cancelled`, and nothing is
    // stored yet, so the cancellation wins (the finished step keeps its checkpoint).
    if (stop.signal.reason instanceof RunCancelledError) {
      await started;
      return this.finishCancelled(stop.signal.reason, {
        ...c,
        ctx,
        agentName: agent.name,
        claimedAt,
      });
    }

    const result: RunResult = {
      runId: run.runId,
      agent: run.agent,
      threadId: run.threadId,
      output,
      usage: ctx.usage,
      attempts: attempt,
      durationMs: Math.max(0, Date.now() - c.startedAt.getTime()),
    };
    const lastStep = ctx.takePendingCheckpoint();
    let finished;
    try {
      finished = await this.runs.finish(
        run.tenantId,
        run.runId,
        leaseOwner,
        {
          status: 'completed',
          eventId: statusEventIds.completed(run.runId),
          eventType: EVENTS.agentCompleted.type,
          result,
          attempts: attempt,
        },
        lastStep,
        c.db,
      );
    } catch (err) {
      if (err instanceof LeaseLostError) throw this.leaseLost(run, log);
      throw err;
    }
    if (!finished) throw this.leaseLost(run, log);
    // Committed: from here a crash is healed by the next delivery republishing the stored event.
    await started;
    // The step event is handed to the connection first, so it is stored before the completed one.
    const stepPublished =
      lastStep && finished.checkpointId !== undefined
        ? ctx.stepCommitted(lastStep, finished.checkpointId)
        : undefined;
    stream.append('completed', result);
    await Promise.all([stepPublished, this.status.completed(run, result, finished.finishedAt)]);
    await stream.flush();
    this.count(run.agent, 'completed');
    this.metrics.duration.observe({ agent: run.agent }, (Date.now() - claimedAt) / 1000);
    log.info(
      { durationMs: result.durationMs, steps: ctx.executedSteps, usage: result.usage },
      'run completed',
    );
  }

  /**
   * Ends a cancelled run: the last finished step keeps its checkpoint, the run is stored
   * `cancelled` with its event (terminal: a redelivery republishes that event and runs nothing),
   * then the `cancelled` stream entry and `agent.status.cancelled`. Returns normally (ack).
   */
  private async finishCancelled(
    cancel: RunCancelledError,
    c: {
      run: RunRef;
      attempt: number;
      leaseOwner: string;
      db: ConnectionRetry;
      stream: RunStreamWriter;
      log: Logger;
      ctx: RunContext | undefined;
      agentName: string;
      claimedAt: number;
    },
  ): Promise<void> {
    const { run, attempt, leaseOwner, stream, log } = c;
    try {
      await c.ctx?.checkpointPending();
    } catch (e) {
      if (e instanceof LeaseLostError) throw this.leaseLost(run, log);
      log.warn({ err: e }, 'writing the checkpoint of the last finished step failed');
    }
    const data: RunCancelled = { runId: run.runId, agent: run.agent, reason: cancel.reason };
    const finished = await this.runs.finish(
      run.tenantId,
      run.runId,
      leaseOwner,
      {
        status: 'cancelled',
        eventId: statusEventIds.cancelled(run.runId),
        eventType: EVENTS.agentCancelled.type,
        result: data,
        attempts: attempt,
      },
      undefined,
      c.db,
    );
    if (!finished) throw this.leaseLost(run, log);
    stream.append('cancelled', { runId: run.runId, reason: cancel.reason });
    try {
      await this.status.cancelled(run, data, finished.finishedAt);
    } finally {
      // A failed publish throws (retryable): the redelivery finds the run cancelled and
      // publishes the stored event again.
      await stream.flush();
    }
    this.count(run.agent, 'cancelled');
    log.info(
      { reason: cancel.reason, steps: c.ctx?.executedSteps ?? 0 },
      c.ctx ? 'run cancelled while running' : 'run cancelled before it started',
    );
  }

  private async handleFailure(
    err: unknown,
    c: {
      run: RunRef;
      attempt: number;
      replays: number;
      delivery: Delivery;
      db: ConnectionRetry;
      leaseOwner: string;
      stream: RunStreamWriter;
      log: Logger;
      ctx: RunContext | undefined;
      agentName: string;
      claimedAt: number;
    },
  ): Promise<never> {
    const { run, attempt, delivery, leaseOwner, db, stream, log } = c;
    if (err instanceof LeaseLostError) throw this.leaseLost(run, log);
    // A step that finished before the failure keeps its result: the next delivery resumes after it.
    try {
      await c.ctx?.checkpointPending();
    } catch (e) {
      if (e instanceof LeaseLostError) throw this.leaseLost(run, log);
      log.warn({ err: e }, 'writing the checkpoint of the last finished step failed');
    }
    if (delivery.signal.aborted) {
      // Shutdown: the work is not at fault. Hand the run back untouched (but for its lease).
      await this.runs.releaseLease(run.tenantId, run.runId, leaseOwner).catch(() => undefined);
      this.count(run.agent, 'released');
      log.warn('released the run at shutdown');
      throw new DomainError('Unavailable', `worker shutting down; run ${run.runId} released`, {
        retryable: true,
      });
    }
    const error = describeError(err);
    if (error.retryable && !delivery.isLastDelivery) {
      await this.runs
        .releaseLease(run.tenantId, run.runId, leaseOwner, db)
        .catch((e: unknown) => log.warn({ err: e }, 'releasing the lease failed'));
      stream.append('status', { status: 'retrying', attempt, error });
      await stream.flush();
      this.count(run.agent, 'retried');
      log.warn({ err }, 'run failed; it will be retried');
      throw err;
    }
    const failure: RunFailure = {
      runId: run.runId,
      agent: run.agent,
      threadId: run.threadId,
      error,
      attempts: attempt,
      deadLettered: true,
    };
    const finished = await this.runs.finish(
      run.tenantId,
      run.runId,
      leaseOwner,
      {
        status: 'failed',
        eventId: statusEventIds.failed(run.runId, c.replays),
        eventType: EVENTS.agentFailed.type,
        result: failure,
        attempts: attempt,
      },
      undefined,
      db,
    );
    if (!finished) throw this.leaseLost(run, log);
    stream.append('failed', failure);
    await this.publishFailed(run, failure, finished.finishedAt, log, c.replays);
    await stream.flush();
    this.count(run.agent, 'failed');
    this.metrics.duration.observe({ agent: run.agent }, (Date.now() - c.claimedAt) / 1000);
    log.error({ err }, 'run failed for good');
    throw finalError(err, error);
  }

  /** A request that cannot run (unknown agent, invalid input): fail the run once, then terminate. */
  private async failUnclaimed(
    run: RunRef,
    event: InboundEvent<ExecuteRequest>,
    attempt: number,
    err: DomainError,
    stream: RunStreamWriter,
    log: Logger,
    db: ConnectionRetry,
  ): Promise<never> {
    const error = describeError(err);
    const failure: RunFailure = {
      runId: run.runId,
      agent: run.agent,
      threadId: run.threadId,
      error,
      attempts: attempt,
      deadLettered: true,
    };
    const finishedAt = await this.runs.insertFailed(
      {
        tenantId: run.tenantId,
        runId: run.runId,
        agent: run.agent,
        threadId: run.threadId,
        eventId: event.id,
        input: event.data.input,
        attempts: attempt,
      },
      {
        eventId: statusEventIds.failed(run.runId),
        eventType: EVENTS.agentFailed.type,
        result: failure,
        attempts: attempt,
      },
      db,
    );
    // Another request owns this run id already: terminate this one without touching that run.
    if (finishedAt) {
      stream.append('failed', failure);
      await this.publishFailed(run, failure, finishedAt, log);
      await stream.flush();
    }
    log.warn({ code: error.code }, `request rejected: ${error.message}`);
    throw this.reject(run.agent, err);
  }

  /** The run finished earlier: publish its stored terminal event again, run nothing. */
  private async replay(stored: ExecutorRun, run: RunRef, log: Logger): Promise<void> {
    await this.status.republish(stored, {
      traceparent: run.traceparent,
      tracestate: run.tracestate,
    });
    this.count(run.agent, 'replayed');
    log.info(
      { status: stored.status, resultEventId: stored.resultEventId },
      'run already finished; republished its terminal event',
    );
  }

  private async publishFailed(
    run: RunRef,
    failure: RunFailure,
    finishedAt: Date,
    log: Logger,
    replays = 0,
  ): Promise<void> {
    try {
      await this.status.failed(run, failure, finishedAt, replays);
    } catch (err) {
      // Stored with the run: a republished request publishes it again.
      log.error({ err }, 'publishing the failed event failed');
    }
  }

  private leaseLost(run: RunRef, log: Logger): DomainError {
    this.count(run.agent, 'retried');
    log.warn('lost the lease on the run to another delivery; stopping without writing');
    return new DomainError('Conflict', `run ${run.runId} was taken over by another delivery`, {
      retryable: true,
    });
  }

  /**
   * How one delivery's statements wait out a database outage: retried with backoff until the
   * shutdown grace ends; counted per retry, logged once per outage (and once when it is over).
   */
  private dbRetry(signal: AbortSignal, log: Logger): ConnectionRetry {
    let since: number | undefined;
    return {
      signal,
      onRetry: (err) => {
        this.metrics.dependencyRetries.inc({ dependency: 'postgres' });
        if (since !== undefined) return;
        since = Date.now();
        log.warn(
          { err, dependency: 'postgres' },
          'Postgres is unreachable; holding the message and retrying until it is back',
        );
      },
      onRecovered: () => {
        if (since === undefined) return;
        log.info(
          { dependency: 'postgres', outageMs: Date.now() - since },
          'Postgres is reachable again; carrying on',
        );
        since = undefined;
      },
    };
  }

  private reject(agent: string, err: DomainError): DomainError {
    this.count(agent, 'rejected');
    return err;
  }

  private count(agent: string, outcome: RunOutcome): void {
    // Requests name any agent they like: only registered names become label values.
    this.metrics.runs.inc({ agent: this.registry.get(agent) ? agent : 'unknown', outcome });
  }
}

/** Resolves after `ms`, or as soon as the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** A non-retryable error for the transport to terminate the message with, keeping the cause's code. */
function finalError(cause: unknown, error: { code: string; message: string }): DomainError {
  if (isDomainError(cause) && !cause.retryable) return cause;
  return new DomainError(error.code as ErrorCode, error.message, { retryable: false, cause });
}

/**
 * The dead-letter replay a request is (`ce-aobreplay`: the extension attribute of a binary-mode
 * event, or the header the replayer adds in either mode); 0 when it is none or not a number.
 */
export function replayNumber(
  event: InboundEvent<unknown>,
  delivery: Pick<Delivery, 'headers'>,
): number {
  const value: unknown =
    (event.event as unknown as Record<string, unknown>)[REPLAY_EXTENSION] ??
    delivery.headers?.get(REPLAY_HEADER);
  const n = typeof value === 'number' ? value : Number(typeof value === 'string' ? value : NaN);
  return Number.isSafeInteger(n) && n > 0 && n <= 2_147_483_647 ? n : 0;
}
