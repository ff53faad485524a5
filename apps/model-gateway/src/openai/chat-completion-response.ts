import type { FinishReason, ProviderCompletion, TokenUsage, ToolCall } from '../providers/provider';

/** OpenAI's `usage`, plus `cost_usd` (AOB's addition: USD at the deployment's catalog prices). */
export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number; audio_tokens: number };
  completion_tokens_details: {
    reasoning_tokens: number;
    audio_tokens: number;
    accepted_prediction_tokens: number;
    rejected_prediction_tokens: number;
  };
  cost_usd: number;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: {
    index: number;
    message: {
      role: 'assistant';
      content: string | null;
      refusal: null;
      annotations: [];
      tool_calls?: ToolCall[];
    };
    logprobs: null;
    finish_reason: FinishReason;
  }[];
  usage: CompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: {
    index: number;
    delta: {
      role?: 'assistant';
      content?: string;
      refusal?: null;
      tool_calls?: ToolCallDelta[];
    };
    logprobs: null;
    finish_reason: FinishReason | null;
  }[];
  /** With stream_options.include_usage: null on every chunk but the last, which has no choices. */
  usage?: CompletionUsage | null;
}

/** A piece of a streamed tool call: the first piece of a call has its id, type and name. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments: string };
}

/** What every response and chunk of one completion shares. */
export interface CompletionIdentity {
  /** `chatcmpl-...` */
  id: string;
  /** Unix seconds. */
  created: number;
  /** The deployment's upstream model id. */
  model: string;
  systemFingerprint: string;
}

export function completionUsage(usage: TokenUsage, costUsd: number): CompletionUsage {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
    cost_usd: costUsd,
  };
}

export function chatCompletion(
  who: CompletionIdentity,
  result: Pick<ProviderCompletion, 'content' | 'toolCalls' | 'finishReason' | 'usage'>,
  costUsd: number,
): ChatCompletion {
  return {
    id: who.id,
    object: 'chat.completion',
    created: who.created,
    model: who.model,
    system_fingerprint: who.systemFingerprint,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: result.content,
          refusal: null,
          annotations: [],
          // OpenAI sends tool_calls only when the model called tools
          ...(result.toolCalls.length > 0 ? { tool_calls: result.toolCalls } : {}),
        },
        logprobs: null,
        finish_reason: result.finishReason,
      },
    ],
    usage: completionUsage(result.usage, costUsd),
  };
}

/** A chunk with one choice; `usage: null` is added when the client asked for a usage chunk. */
export function chatCompletionChunk(
  who: CompletionIdentity,
  delta: ChatCompletionChunk['choices'][number]['delta'],
  finishReason: FinishReason | null,
  includeUsage: boolean,
): ChatCompletionChunk {
  const chunk: ChatCompletionChunk = {
    id: who.id,
    object: 'chat.completion.chunk',
    created: who.created,
    model: who.model,
    system_fingerprint: who.systemFingerprint,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
  if (includeUsage) chunk.usage = null;
  return chunk;
}

/** The last chunk of a stream with stream_options.include_usage: no choices, the usage. */
export function usageChunk(who: CompletionIdentity, usage: CompletionUsage): ChatCompletionChunk {
  return {
    id: who.id,
    object: 'chat.completion.chunk',
    created: who.created,
    model: who.model,
    system_fingerprint: who.systemFingerprint,
    choices: [],
    usage,
  };
}
