import type { Usage } from '@aob/events';
import { createLogger } from '@aob/observability';
import type { ChatMessage, ModelCompletion } from '../model/model-client';
import type { AgentContext, JsonValue, RunModel, RunOptions } from './agent-definition';

/** A scripted model for FakeAgentContext: answers each call from the messages it got. */
export type FakeModel = (messages: ChatMessage[]) => string;

/**
 * In-memory AgentContext for agent unit tests: steps are kept in a map (so a second `run` with
 * the same context resumes like a redelivery), tokens and model calls are recorded.
 */
export class FakeAgentContext implements AgentContext {
  runId = 'run-1';
  threadId = 'run-1';
  tenantId = 'tenant-a';
  agent = 'test';
  attempt = 1;
  options: RunOptions = {};
  threadState: JsonValue | undefined;
  readonly tokens: string[] = [];
  readonly modelCalls: ChatMessage[][] = [];
  readonly executedSteps: string[] = [];
  readonly checkpoints = new Map<
    number,
    { id: string; output: JsonValue; state: JsonValue | undefined }
  >();
  readonly log = createLogger({ app: 'test', level: 'silent' });
  readonly model: RunModel;

  private controller = new AbortController();
  private stepCount = 0;
  private currentState: JsonValue | undefined;
  private totalUsage: Usage = { promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: 0 };

  constructor(answer: FakeModel = () => 'ok') {
    this.model = {
      chat: async ({ messages, onToken }): Promise<ModelCompletion> => {
        this.modelCalls.push(messages);
        const content = answer(messages);
        for (const token of content.split(/(?<= )/))
          (onToken ?? ((t: string) => this.emitToken(t)))(token);
        const usage = { promptTokens: 3, completionTokens: 2, totalTokens: 5, costUsd: 0.001 };
        this.addUsage(usage);
        return { content, model: 'fake-model', usage };
      },
    };
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get state(): JsonValue | undefined {
    return this.currentState;
  }

  get usage(): Usage {
    return this.totalUsage;
  }

  abort(reason?: unknown): void {
    this.controller.abort(reason);
  }

  /** Starts a new delivery: step numbering restarts, checkpoints stay. */
  redeliver(): void {
    this.attempt++;
    this.stepCount = 0;
    this.controller = new AbortController();
  }

  setState(state: JsonValue): void {
    this.currentState = state;
  }

  addUsage(u: Usage): void {
    this.totalUsage = {
      promptTokens: this.totalUsage.promptTokens + u.promptTokens,
      completionTokens: this.totalUsage.completionTokens + u.completionTokens,
      totalTokens: this.totalUsage.totalTokens + u.totalTokens,
      costUsd: this.totalUsage.costUsd + u.costUsd,
    };
  }

  emitToken(text: string): void {
    this.tokens.push(text);
  }

  async step<T extends JsonValue>(id: string, fn: () => Promise<T>): Promise<T> {
    const n = ++this.stepCount;
    const saved = this.checkpoints.get(n);
    if (saved) {
      this.currentState = saved.state;
      return saved.output as T;
    }
    const output = await fn();
    this.executedSteps.push(id);
    this.checkpoints.set(n, { id, output, state: this.currentState });
    return output;
  }
}
