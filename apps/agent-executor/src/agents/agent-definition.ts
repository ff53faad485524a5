import type { Usage } from '@aob/events';
import type { createLogger } from '@aob/observability';
import type { z } from 'zod';
import type { ChatMessage, ModelCompletion } from '../model/model-client';

export type Logger = ReturnType<typeof createLogger>;

export type JsonValue =
  string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** `ExecuteRequest.options` of the contract. */
export interface RunOptions {
  model?: string;
  tier?: 'fast' | 'balanced' | 'quality';
  maxTokens?: number;
  temperature?: number;
  timeoutMs?: number;
}

/** A model call bound to the run: tenant/run/agent headers, the run's options, signal and usage. */
export interface RunModel {
  /**
   * Streams one chat completion through the model gateway. Every content delta goes to
   * `ctx.emitToken` (unless `onToken` is given) and the usage is added to the run's.
   */
  chat(request: {
    messages: ChatMessage[];
    onToken?: (text: string) => void;
  }): Promise<ModelCompletion>;
}

/** What an agent sees of the run it executes. */
export interface AgentContext {
  readonly runId: string;
  readonly threadId: string;
  readonly tenantId: string;
  readonly agent: string;
  /** Delivery number of the request (1 on the first delivery). */
  readonly attempt: number;
  readonly options: RunOptions;
  /** Aborted when the run must stop (shutdown, `options.timeoutMs`, lost lease). Pass it to I/O. */
  readonly signal: AbortSignal;
  /** Agent state of the thread's latest checkpoint from an earlier run (thread continuation). */
  readonly threadState: JsonValue | undefined;
  /** Agent state as of the last finished step (restored from checkpoints on resume). */
  readonly state: JsonValue | undefined;
  /** Sets the agent state saved with the next checkpoint. */
  setState(state: JsonValue): void;
  /**
   * Runs one checkpointed step. Steps are numbered from 1 in call order; when this run already
   * checkpointed step n (an earlier delivery crashed or failed after it) its stored output is
   * returned and `fn` does not run. Call steps in a deterministic order.
   */
  step<T extends JsonValue>(id: string, fn: () => Promise<T>): Promise<T>;
  /** Appends a model token to the run's stream (for UIs); never fails the run. */
  emitToken(text: string): void;
  readonly model: RunModel;
  /** Usage accumulated so far (model calls of this run, including checkpointed steps). */
  readonly usage: Readonly<Usage>;
  addUsage(usage: Usage): void;
  /** Logger with runId, tenantId, agent and attempt on every line. */
  readonly log: Logger;
}

/** An agent the executor can run. Register it with `AgentRegistry.register` (see README.md). */
export interface AgentDefinition<S extends z.ZodType = z.ZodType> {
  /** Also the NATS subject token: `agent.execute.<name>`; must match [a-z0-9][a-z0-9_-]{0,63}. */
  name: string;
  description: string;
  version: string;
  /** Validates `ExecuteRequest.input`; published as JSON Schema in executor.agents. */
  inputSchema: S;
  /** Returns the run's output (JSON). Throw a DomainError to choose retryable or not. */
  run(ctx: AgentContext, input: z.output<S>): Promise<JsonValue>;
}

/** Keeps the input type of `run` tied to the schema. */
export const defineAgent = <S extends z.ZodType>(
  definition: AgentDefinition<S>,
): AgentDefinition<S> => definition;
