import type { Deployment } from '../catalog/catalog.schema';
import type { ChatCompletionRequest } from '../openai/chat-completion-request';

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

/** A function call the model asked for, in OpenAI's shape. */
export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** What a provider is asked to do: the validated client request, bound for one deployment. */
export interface ProviderRequest {
  body: ChatCompletionRequest;
  /** The client's completion token cap (`max_completion_tokens` ?? `max_tokens`). */
  maxTokens?: number;
}

export interface ProviderCompletion {
  /** null when the model only called tools. */
  content: string | null;
  toolCalls: ToolCall[];
  finishReason: FinishReason;
  usage: TokenUsage;
  /** OpenAI-style `x-ratelimit-*` headers the upstream sent, passed on to the client. */
  rateLimit: Record<string, string>;
}

/** One step of a streamed completion: text and tool-call pieces as they come, then exactly one `end`. */
export type ProviderChunk =
  | { type: 'delta'; content: string }
  | {
      type: 'tool_call';
      /** Position of the call in the message; the first piece of a call carries id and name. */
      index: number;
      id?: string;
      name?: string;
      arguments: string;
    }
  | { type: 'end'; finishReason: FinishReason; usage: TokenUsage };

/** An upstream stream that has answered (status and headers read); chunks follow. */
export interface ProviderStream {
  /** OpenAI-style `x-ratelimit-*` headers the upstream sent. */
  rateLimit: Record<string, string>;
  chunks: AsyncIterator<ProviderChunk>;
}

/**
 * A model behind one catalog deployment. Both calls stop work and release timers and sockets
 * when `signal` aborts (the client went away, or a timeout fired), rejecting with an error.
 * Upstream failures reject with `UpstreamError`, which says whether retrying or failing over helps.
 */
export interface Provider {
  readonly deployment: Deployment;
  complete(req: ProviderRequest, signal: AbortSignal): Promise<ProviderCompletion>;
  stream(req: ProviderRequest, signal: AbortSignal): Promise<ProviderStream>;
  /** Remote providers: one health probe (the catalog's `healthCheck`); true when the upstream answered below 500. */
  probe?(signal: AbortSignal): Promise<boolean>;
}
