import { DomainError } from '@aob/errors';
import { usageSchema, type Usage } from '@aob/events';
import type { Checkpoint, ConnectionRetry } from '@aob/persistence';
import { z } from 'zod';
import type {
  AgentContext,
  JsonValue,
  Logger,
  RunModel,
  RunOptions,
} from '../agents/agent-definition';
import type { ModelClient } from '../model/model-client';
import type { CheckpointRepository } from './checkpoint.repository';
import type { ExecutorMetrics } from './executor.metrics';
import type { FinalCheckpoint } from './executor-run.repository';
import type { RunStatusPublisher, RunRef } from './run-status.publisher';
import type { RunStreamWriter } from './run-stream-writer';

/** What a checkpoint's `state` holds: the agent's own state and the run's usage up to that step. */
const checkpointStateSchema = z.object({
  agent: z.json().nullable().optional(),
  usage: usageSchema,
});

export const ZERO_USAGE: Usage = Object.freeze({
  promptTokens: 0,
  completionTokens: 0,
  totalTokens: 0,
  costUsd: 0,
});

export interface RunContextDeps {
  checkpoints: CheckpointRepository;
  status: RunStatusPublisher;
  stream: RunStreamWriter;
  model: ModelClient;
  metrics: ExecutorMetrics;
  log: Logger;
  leaseOwner: string;
  leaseTtlMs: number;
  /** How checkpoint writes wait out a database outage (absent: they fail at once). */
  dbRetry?: ConnectionRetry;
}

export interface RunContextInit {
  run: RunRef;
  attempt: number;
  options: RunOptions;
  signal: AbortSignal;
  threadState: JsonValue | undefined;
  /** The run's checkpoints from earlier deliveries. */
  done: readonly Checkpoint[];
}

/** AgentContext of one delivery: numbered, checkpointed steps that resume after the last finished one. */
export class RunContext implements AgentContext {
  readonly runId: string;
  readonly threadId: string;
  readonly tenantId: string;
  readonly agent: string;
  readonly attempt: number;
  readonly options: RunOptions;
  readonly signal: AbortSignal;
  readonly threadState: JsonValue | undefined;
  readonly model: RunModel;
  readonly log: Logger;

  private currentState: JsonValue | undefined;
  private totalUsage: Usage = { ...ZERO_USAGE };
  private stepCount = 0;
  private pending: FinalCheckpoint | undefined;
  /** Steps this delivery executed (restored ones excluded). */
  executedSteps = 0;
  private readonly done: ReadonlyMap<number, Checkpoint>;
  private readonly lastDoneStep: number;

  constructor(
    init: RunContextInit,
    private readonly deps: RunContextDeps,
  ) {
    this.runId = init.run.runId;
    this.threadId = init.run.threadId;
    this.tenantId = init.run.tenantId;
    this.agent = init.run.agent;
    this.attempt = init.attempt;
    this.options = init.options;
    this.signal = init.signal;
    this.threadState = init.threadState;
    this.done = new Map(init.done.map((c) => [c.step, c]));
    this.lastDoneStep = Math.max(0, ...init.done.map((c) => c.step));
    this.log = deps.log;
    this.model = { chat: (request) => this.chat(request) };
  }

  get state(): JsonValue | undefined {
    return this.currentState;
  }

  setState(state: JsonValue): void {
    this.currentState = state;
  }

  get usage(): Readonly<Usage> {
    return this.totalUsage;
  }

  addUsage(u: Usage): void {
    const t = this.totalUsage;
    this.totalUsage = {
      promptTokens: t.promptTokens + u.promptTokens,
      completionTokens: t.completionTokens + u.completionTokens,
      totalTokens: t.totalTokens + u.totalTokens,
      // Rounded to nano-dollars so float sums stay stable across resumes.
      costUsd: Math.round((t.costUsd + u.costUsd) * 1e9) / 1e9,
    };
  }

  emitToken(text: string): void {
    if (text !== '') this.deps.stream.append('token', { text });
  }

  async step<T extends JsonValue>(id: string, fn: () => Promise<T>): Promise<T> {
    const n = ++this.stepCount;
    const saved = this.done.get(n);
    if (saved) {
      if (saved.stepId !== id) {
        throw new DomainError(
          'Internal',
          `step ${n} of run ${this.runId} was checkpointed as "${saved.stepId}" but the agent now calls it "${id}": agents must call their steps in a deterministic order`,
        );
      }
      this.restore(saved);
      this.log.debug({ step: n, stepId: id }, 'step restored from checkpoint');
      // The newest checkpoint may have been committed just before a crash, before its step was
      // announced: announce it again (same event id, so JetStream stores it once).
      if (n === this.lastDoneStep) {
        await this.announce(
          {
            threadId: this.threadId,
            step: n,
            stepId: id,
            state: saved.state,
            output: saved.output,
          },
          saved.checkpointId,
        );
      }
      return saved.output as T;
    }
    await this.checkpointPending();
    this.signal.throwIfAborted();
    const output = ((await fn()) ?? null) as T;
    // Not written yet: the checkpoint becomes durable before the run's next side effect (the next
    // step, a model call) or together with the run's outcome (RunExecutor). A crash before that
    // re-runs this step, as a crash between fn() and the checkpoint always did.
    this.pending = {
      threadId: this.threadId,
      step: n,
      stepId: id,
      state: { agent: this.currentState ?? null, usage: this.totalUsage },
      output,
    };
    return output;
  }

  /** The finished step whose checkpoint is not written yet; the caller writes it and reports back with stepCommitted. */
  takePendingCheckpoint(): FinalCheckpoint | undefined {
    const pending = this.pending;
    this.pending = undefined;
    return pending;
  }

  /** Writes the pending checkpoint on its own (under the lease). @throws LeaseLostError */
  async checkpointPending(): Promise<void> {
    const pending = this.takePendingCheckpoint();
    if (!pending) return;
    const checkpoint = await this.deps.checkpoints.save(
      { tenantId: this.tenantId, runId: this.runId, ...pending },
      this.deps.leaseOwner,
      this.deps.leaseTtlMs,
      this.deps.dbRetry,
    );
    await this.stepCommitted(pending, checkpoint.checkpointId);
  }

  /**
   * What follows a durable checkpoint: the step metric, the `step` stream entry and the step status
   * event (informational: a failed publish is logged, the checkpoint is the truth). The event is
   * handed to the connection before this returns, so a status event published after it is stored after it.
   */
  stepCommitted(c: FinalCheckpoint, checkpointId: string): Promise<void> {
    this.executedSteps++;
    this.deps.metrics.steps.inc({ agent: this.agent });
    return this.announce(c, checkpointId);
  }

  /** The `step` stream entry and the step status event of a durable checkpoint. */
  private announce(c: FinalCheckpoint, checkpointId: string): Promise<void> {
    this.deps.stream.append('step', { step: c.step, id: c.stepId, output: c.output });
    return this.deps.status
      .step(
        { runId: this.runId, tenantId: this.tenantId, agent: this.agent, threadId: this.threadId },
        {
          runId: this.runId,
          agent: this.agent,
          threadId: this.threadId,
          step: c.step,
          id: c.stepId,
          checkpointId,
          output: c.output as JsonValue,
        },
      )
      .catch((err: unknown) => {
        this.deps.metrics.statusPublishErrors.inc({ event: 'step' });
        this.log.warn({ err, step: c.step }, 'publishing the step event failed');
      });
  }

  private restore(saved: Checkpoint): void {
    const parsed = checkpointStateSchema.safeParse(saved.state);
    if (!parsed.success) return;
    this.currentState = parsed.data.agent ?? undefined;
    this.totalUsage = parsed.data.usage;
  }

  private async chat(request: Parameters<RunModel['chat']>[0]) {
    // A model call is a side effect (billed): the step before it must not run again after a crash.
    await this.checkpointPending();
    const completion = await this.deps.model.streamChat({
      messages: request.messages,
      model: this.options.model ?? `tier:${this.options.tier ?? 'balanced'}`,
      ...(this.options.maxTokens === undefined ? {} : { maxTokens: this.options.maxTokens }),
      ...(this.options.temperature === undefined ? {} : { temperature: this.options.temperature }),
      tenantId: this.tenantId,
      runId: this.runId,
      agent: this.agent,
      signal: this.signal,
      onToken: request.onToken ?? ((text) => this.emitToken(text)),
    });
    this.addUsage(completion.usage);
    this.log.debug(
      { model: completion.model, deployment: completion.deployment, usage: completion.usage },
      'model call finished',
    );
    return completion;
  }
}

/** Agent state of a checkpoint (for thread continuation). */
export function agentStateOf(state: unknown): JsonValue | undefined {
  const parsed = checkpointStateSchema.safeParse(state);
  return parsed.success ? (parsed.data.agent ?? undefined) : undefined;
}
