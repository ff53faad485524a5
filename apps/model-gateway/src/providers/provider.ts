import type { Deployment } from '../catalog/catalog.schema';
import type { ChatCompletionRequest } from '../openai/chat-completion-request';

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

/** What a provider is asked to do: the validated client request, bound for one deployment. */
export interface ProviderRequest {
  body: ChatCompletionRequest;
  /** The client's completion token cap (`max_completion_tokens` ?? `max_tokens`). */
  maxTokens?: number;
}

export interface ProviderCompletion {
  content: string;
  finishReason: FinishReason;
  usage: TokenUsage;
}

/** One step of a streamed completion: text as it comes, then exactly one `end`. */
export type ProviderChunk =
  | { type: 'delta'; content: string }
  | { type: 'end'; finishReason: FinishReason; usage: TokenUsage };

/**
 * A model behind one catalog deployment. Both calls stop work and release timers and sockets
 * when `signal` aborts (the client went away), rejecting with the signal's reason.
 */
export interface Provider {
  readonly deployment: Deployment;
  complete(req: ProviderRequest, signal: AbortSignal): Promise<ProviderCompletion>;
  stream(req: ProviderRequest, signal: AbortSignal): AsyncIterable<ProviderChunk>;
}
