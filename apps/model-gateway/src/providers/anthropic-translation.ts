import type { IncomingHttpHeaders } from 'node:http';
import type { ChatCompletionRequest, ChatMessage } from '../openai/chat-completion-request';
import { messageText } from '../tokens/token-counter';
import type { FinishReason, ProviderChunk, TokenUsage, ToolCall } from './provider';
import { UpstreamError } from './upstream-error';
import { isRecord } from './upstream-response';

/**
 * OpenAI chat completions ↔ Anthropic Messages API (anthropic-version 2023-06-01), both ways:
 * system/developer messages → `system`; tool calls ↔ `tool_use` blocks; tool messages →
 * `tool_result` blocks of a user turn; `stop_reason` ↔ `finish_reason`; `input_tokens` /
 * `output_tokens` ↔ usage; and the SSE events message_start … message_stop → OpenAI chunks.
 */

export type AnthropicBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown }
  | { type: 'tool_result'; tool_use_id: string; content: string };

export interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: AnthropicBlock[];
}

export interface AnthropicRequest {
  model: string;
  max_tokens: number;
  messages: AnthropicMessage[];
  system?: string;
  temperature?: number;
  top_p?: number;
  stop_sequences?: string[];
  tools?: { name: string; description?: string; input_schema: Record<string, unknown> }[];
  tool_choice?: {
    type: 'auto' | 'any' | 'none' | 'tool';
    name?: string;
    disable_parallel_tool_use?: boolean;
  };
  metadata?: { user_id: string };
  stream?: boolean;
}

/** @throws UpstreamError `bad_request` when a tool call's arguments are not a JSON object */
export function toAnthropicRequest(
  body: ChatCompletionRequest,
  opts: { model: string; maxTokens: number; stream: boolean },
): AnthropicRequest {
  const system: string[] = [];
  const messages: AnthropicMessage[] = [];
  const push = (role: AnthropicMessage['role'], blocks: AnthropicBlock[]) => {
    if (blocks.length === 0) return;
    const last = messages.at(-1);
    // Anthropic wants user and assistant turns to alternate: consecutive ones are merged
    if (last && last.role === role) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  };
  body.messages.forEach((m, i) => {
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(messageText(m));
        return;
      case 'user':
        push('user', [{ type: 'text', text: messageText(m) }]);
        return;
      case 'tool':
        push('user', [
          { type: 'tool_result', tool_use_id: m.tool_call_id, content: messageText(m) },
        ]);
        return;
      case 'assistant':
        push('assistant', assistantBlocks(m, i));
        return;
    }
  });
  const out: AnthropicRequest = { model: opts.model, max_tokens: opts.maxTokens, messages };
  if (system.length > 0) out.system = system.join('\n\n');
  // Anthropic's temperature runs 0..1, OpenAI's 0..2
  if (body.temperature != null) out.temperature = Math.min(1, body.temperature);
  if (body.top_p != null) out.top_p = body.top_p;
  if (body.stop != null)
    out.stop_sequences = typeof body.stop === 'string' ? [body.stop] : body.stop;
  if (body.tools?.length) {
    out.tools = body.tools.map((t) => ({
      name: t.function.name,
      ...(t.function.description === undefined ? {} : { description: t.function.description }),
      input_schema: t.function.parameters ?? { type: 'object', properties: {} },
    }));
  }
  const choice = toolChoice(body);
  if (choice) out.tool_choice = choice;
  if (body.user) out.metadata = { user_id: body.user };
  if (opts.stream) out.stream = true;
  return out;
}

function assistantBlocks(
  m: Extract<ChatMessage, { role: 'assistant' }>,
  i: number,
): AnthropicBlock[] {
  const blocks: AnthropicBlock[] = [];
  const text = messageText(m);
  if (text !== '') blocks.push({ type: 'text', text });
  (m.tool_calls ?? []).forEach((call, j) => {
    let input: unknown;
    try {
      input = call.function.arguments.trim() === '' ? {} : JSON.parse(call.function.arguments);
    } catch {
      input = undefined;
    }
    if (!isRecord(input)) {
      throw new UpstreamError(
        'bad_request',
        `messages[${i}].tool_calls[${j}].function.arguments must be a JSON object for this model`,
      );
    }
    blocks.push({ type: 'tool_use', id: call.id, name: call.function.name, input });
  });
  return blocks;
}

function toolChoice(body: ChatCompletionRequest): AnthropicRequest['tool_choice'] {
  const choice = body.tool_choice;
  if (choice === undefined || !body.tools?.length) return undefined;
  if (choice === 'none') return { type: 'none' };
  const single = body.parallel_tool_calls === false ? { disable_parallel_tool_use: true } : {};
  if (choice === 'auto') return { type: 'auto', ...single };
  if (choice === 'required') return { type: 'any', ...single };
  return { type: 'tool', name: choice.function.name, ...single };
}

export function finishReasonOf(stopReason: unknown): FinishReason {
  switch (stopReason) {
    case 'max_tokens':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      // end_turn, stop_sequence, pause_turn
      return 'stop';
  }
}

/** Prompt tokens are the uncached, cache-written and cache-read input tokens together. */
function usageOf(usage: unknown, previous?: TokenUsage): TokenUsage | undefined {
  if (!isRecord(usage)) return previous;
  const n = (v: unknown) => (typeof v === 'number' ? v : 0);
  const hasInput =
    typeof usage.input_tokens === 'number' ||
    typeof usage.cache_creation_input_tokens === 'number' ||
    typeof usage.cache_read_input_tokens === 'number';
  return {
    promptTokens: hasInput
      ? n(usage.input_tokens) +
        n(usage.cache_creation_input_tokens) +
        n(usage.cache_read_input_tokens)
      : (previous?.promptTokens ?? 0),
    completionTokens:
      typeof usage.output_tokens === 'number'
        ? usage.output_tokens
        : (previous?.completionTokens ?? 0),
  };
}

export interface TranslatedMessage {
  content: string | null;
  toolCalls: ToolCall[];
  finishReason: FinishReason;
  usage: TokenUsage | undefined;
}

/** A non-streamed Messages API answer in OpenAI's terms. */
export function fromAnthropicMessage(message: unknown): TranslatedMessage {
  if (!isRecord(message) || !Array.isArray(message.content)) {
    throw new UpstreamError('protocol', 'upstream answered without message content');
  }
  let text = '';
  let sawText = false;
  const toolCalls: ToolCall[] = [];
  for (const block of message.content) {
    if (!isRecord(block)) continue;
    if (block.type === 'text' && typeof block.text === 'string') {
      text += block.text;
      sawText = true;
    } else if (block.type === 'tool_use') {
      toolCalls.push({
        id: String(block.id),
        type: 'function',
        function: { name: String(block.name), arguments: JSON.stringify(block.input ?? {}) },
      });
    }
  }
  return {
    content: sawText || toolCalls.length === 0 ? text : null,
    toolCalls,
    finishReason: finishReasonOf(message.stop_reason),
    usage: usageOf(message.usage),
  };
}

/** An `error` event or error body in routing terms. */
export function anthropicStreamError(error: unknown): UpstreamError {
  const type = isRecord(error) ? error.type : undefined;
  const message =
    isRecord(error) && typeof error.message === 'string' ? error.message : 'unknown error';
  const text = `upstream stream failed: ${typeof type === 'string' ? type : 'error'}: ${message}`;
  return new UpstreamError(type === 'rate_limit_error' ? 'rate_limited' : 'server', text);
}

export function anthropicErrorFields(body: unknown): { message?: string; code?: string } {
  const error = isRecord(body) ? body.error : undefined;
  if (!isRecord(error)) return {};
  return {
    ...(typeof error.message === 'string' ? { message: error.message } : {}),
    ...(typeof error.type === 'string' ? { code: error.type } : {}),
  };
}

/**
 * Turns the Messages API's stream events into provider chunks, one event at a time. Tool-use
 * blocks become tool calls numbered in order of appearance (OpenAI's `index`).
 */
export class AnthropicStreamTranslator {
  private usage: TokenUsage | undefined;
  private stopReason: unknown;
  private readonly toolIndexByBlock = new Map<number, number>();
  private stopped = false;

  /** Chunks for one event. @throws UpstreamError for an `error` event */
  push(event: string | undefined, data: unknown): ProviderChunk[] {
    if (!isRecord(data)) return [];
    const type = event ?? data.type;
    switch (type) {
      case 'message_start':
        this.usage = usageOf(isRecord(data.message) ? data.message.usage : undefined);
        return [];
      case 'content_block_start':
        return this.blockStart(data);
      case 'content_block_delta':
        return this.blockDelta(data);
      case 'message_delta':
        if (isRecord(data.delta) && data.delta.stop_reason != null)
          this.stopReason = data.delta.stop_reason;
        this.usage = usageOf(data.usage, this.usage);
        return [];
      case 'message_stop':
        this.stopped = true;
        return [
          {
            type: 'end',
            finishReason: finishReasonOf(this.stopReason),
            usage: this.usage ?? { promptTokens: 0, completionTokens: 0 },
          },
        ];
      case 'error':
        throw anthropicStreamError(data.error);
      default:
        // ping, content_block_stop, and event types added later
        return [];
    }
  }

  /** Whether `message_stop` came: a stream that ends without it was cut. */
  get complete(): boolean {
    return this.stopped;
  }

  /** Whether message_start reported usage (else the gateway counts tokens itself). */
  get reportedUsage(): boolean {
    return this.usage !== undefined;
  }

  private blockStart(data: Record<string, unknown>): ProviderChunk[] {
    const block = data.content_block;
    if (!isRecord(block) || typeof data.index !== 'number') return [];
    if (block.type === 'text' && typeof block.text === 'string' && block.text !== '') {
      return [{ type: 'delta', content: block.text }];
    }
    if (block.type !== 'tool_use') return [];
    const index = this.toolIndexByBlock.size;
    this.toolIndexByBlock.set(data.index, index);
    return [
      { type: 'tool_call', index, id: String(block.id), name: String(block.name), arguments: '' },
    ];
  }

  private blockDelta(data: Record<string, unknown>): ProviderChunk[] {
    const delta = data.delta;
    if (!isRecord(delta) || typeof data.index !== 'number') return [];
    if (delta.type === 'text_delta' && typeof delta.text === 'string' && delta.text !== '') {
      return [{ type: 'delta', content: delta.text }];
    }
    if (delta.type === 'input_json_delta' && typeof delta.partial_json === 'string') {
      const index = this.toolIndexByBlock.get(data.index);
      if (index === undefined || delta.partial_json === '') return [];
      return [{ type: 'tool_call', index, arguments: delta.partial_json }];
    }
    // thinking_delta, signature_delta: not part of OpenAI's answer
    return [];
  }
}

/**
 * Anthropic's `anthropic-ratelimit-*` headers as OpenAI's `x-ratelimit-*` (reset times, RFC 3339
 * there, become durations such as `12s`).
 */
export function anthropicRateLimitHeaders(
  headers: IncomingHttpHeaders,
  now = Date.now(),
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kind of ['requests', 'tokens'] as const) {
    const limit = headers[`anthropic-ratelimit-${kind}-limit`];
    const remaining = headers[`anthropic-ratelimit-${kind}-remaining`];
    const reset = headers[`anthropic-ratelimit-${kind}-reset`];
    if (typeof limit === 'string') out[`x-ratelimit-limit-${kind}`] = limit;
    if (typeof remaining === 'string') out[`x-ratelimit-remaining-${kind}`] = remaining;
    if (typeof reset === 'string') {
      const at = Date.parse(reset);
      if (!Number.isNaN(at))
        out[`x-ratelimit-reset-${kind}`] = `${Math.max(0, Math.ceil((at - now) / 1000))}s`;
    }
  }
  return out;
}
