import { DomainError } from '@aob/errors';
import { usageSchema, type Usage } from '@aob/events';
import type { Checkpoint } from '@aob/persistence';
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
  /** Steps this delivery executed (restored ones excluded). */
  executedSteps = 0;
  private readonly done: ReadonlyMap<number, Checkpoint>;

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
      return saved.output as T;
    }
    this.signal.throwIfAborted();
    const output = ((await fn()) ?? null) as T;
    // The step counts only once its checkpoint is durable; a crash before this line re-runs it.
    const checkpoint = await this.deps.checkpoints.save(
      {
        tenantId: this.tenantId,
        threadId: this.threadId,
        runId: this.runId,
        step: n,
        stepId: id,
        state: { agent: this.currentState ?? null, usage: this.totalUsage },
        output,
      },
      this.deps.leaseOwner,
      this.deps.leaseTtlMs,
    );
    this.executedSteps++;
    this.deps.metrics.steps.inc({ agent: this.agent });
    this.deps.stream.append('step', { step: n, id, output });
    try {
      await this.deps.status.step(
        { runId: this.runId, tenantId: this.tenantId, agent: this.agent, threadId: this.threadId },
        {
          runId: this.runId,
          agent: this.agent,
          threadId: this.threadId,
          step: n,
          id,
          checkpointId: checkpoint.checkpointId,
          output,
        },
      );
    } catch (err) {
      // Informational event: the checkpoint is the truth, and the run's final event still comes.
      this.deps.metrics.statusPublishErrors.inc({ event: 'step' });
      this.log.warn({ err, step: n }, 'publishing the step event failed');
    }
    return output;
  }

  private restore(saved: Checkpoint): void {
    const parsed = checkpointStateSchema.safeParse(saved.state);
    if (!parsed.success) return;
    this.currentState = parsed.data.agent ?? undefined;
    this.totalUsage = parsed.data.usage;
  }

  private async chat(request: Parameters<RunModel['chat']>[0]) {
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
