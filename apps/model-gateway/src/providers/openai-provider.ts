import type { Deployment } from '../catalog/catalog.schema';
import type { ChatCompletionRequest } from '../openai/chat-completion-request';
import { countPromptTokens, countTextTokens } from '../tokens/token-counter';
import type {
  FinishReason,
  Provider,
  ProviderChunk,
  ProviderCompletion,
  ProviderRequest,
  ProviderStream,
  TokenUsage,
  ToolCall,
} from './provider';
import { UpstreamError } from './upstream-error';
import { asUpstreamError, type UpstreamHttpClient } from './upstream-http-client';
import {
  isRecord,
  probeUpstream,
  openAiRateLimitHeaders,
  parseJsonEvent,
  readJsonBody,
  readServerSentEvents,
  upstreamErrorOf,
} from './upstream-response';

export const OPENAI_DEFAULT_BASE_URL = 'https://api.openai.com/v1';

/**
 * Any OpenAI-compatible chat completions server: OpenAI, vLLM, Ollama, llama.cpp server, SGLang.
 * The validated request goes upstream as it came (tools and tool_choice included) with the
 * deployment's model id; streams always ask for the usage chunk, and when the upstream gives no
 * usage the tokens are counted here with the gateway's tokenizer.
 */
export class OpenAiProvider implements Provider {
  private readonly url: URL;
  private readonly probeUrl: URL;
  private readonly headers: Record<string, string>;

  constructor(
    readonly deployment: Deployment,
    private readonly http: UpstreamHttpClient,
    apiKey: string | undefined,
  ) {
    const base = trimSlash(deployment.baseUrl ?? OPENAI_DEFAULT_BASE_URL);
    this.url = new URL(`${base}/chat/completions`);
    const check = deployment.healthCheck;
    // vLLM, llama.cpp: `/health`; anything OpenAI-compatible: the models list
    this.probeUrl = new URL(check !== false && check.path ? check.path : `${base}/models`, base);
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (apiKey) this.headers.authorization = `Bearer ${apiKey}`;
  }

  async complete(req: ProviderRequest, signal: AbortSignal): Promise<ProviderCompletion> {
    const res = await this.send(req, false, signal);
    const rateLimit = openAiRateLimitHeaders(res.headers);
    if (res.status !== 200) throw await upstreamErrorOf(res, rateLimit, openAiErrorFields);
    let body: unknown;
    try {
      body = await readJsonBody(res);
    } catch (err) {
      throw asUpstreamError(err, signal);
    }
    const choice: unknown =
      isRecord(body) && Array.isArray(body.choices) ? body.choices[0] : undefined;
    if (!isRecord(choice) || !isRecord(choice.message)) {
      throw new UpstreamError('protocol', 'upstream answered without a choice');
    }
    const message = choice.message;
    const content = typeof message.content === 'string' ? message.content : null;
    const toolCalls = readToolCalls(message.tool_calls);
    return {
      content,
      toolCalls,
      finishReason: finishReasonOf(choice.finish_reason),
      usage:
        readUsage(isRecord(body) ? body.usage : undefined) ??
        countedUsage(req.body, content ?? '', toolCalls),
      rateLimit,
    };
  }

  async stream(req: ProviderRequest, signal: AbortSignal): Promise<ProviderStream> {
    const res = await this.send(req, true, signal);
    const rateLimit = openAiRateLimitHeaders(res.headers);
    if (res.status !== 200) throw await upstreamErrorOf(res, rateLimit, openAiErrorFields);
    return { rateLimit, chunks: this.relay(req.body, res.body, signal) };
  }

  async probe(signal: AbortSignal): Promise<boolean> {
    return probeUpstream(this.http, this.probeUrl, this.headers, signal, this.deployment);
  }

  private send(req: ProviderRequest, stream: boolean, signal: AbortSignal) {
    return this.http.send({
      method: 'POST',
      url: this.url,
      headers: stream ? { ...this.headers, accept: 'text/event-stream' } : this.headers,
      body: JSON.stringify(upstreamBody(req.body, this.deployment.model, stream)),
      signal,
      idleTimeoutMs: this.deployment.timeoutMs,
    });
  }

  private async *relay(
    body: ChatCompletionRequest,
    events: AsyncIterable<Buffer> & { destroy(err?: Error): unknown },
    signal: AbortSignal,
  ): AsyncGenerator<ProviderChunk> {
    let finish: FinishReason | undefined;
    let usage: TokenUsage | undefined;
    let content = '';
    const calls: { name: string; arguments: string }[] = [];
    let done = false;
    let ended = false;
    try {
      for await (const event of readServerSentEvents(events)) {
        // read on to the end of the body after [DONE]: a fully read socket goes back to the pool
        if (done) continue;
        if (event.data === '[DONE]') {
          done = true;
          continue;
        }
        const chunk = parseJsonEvent(event.data);
        if (!isRecord(chunk)) continue;
        if (chunk.error !== undefined) throw streamedError(chunk.error);
        usage = readUsage(chunk.usage) ?? usage;
        const choice: unknown = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
        if (!isRecord(choice)) continue;
        const delta = isRecord(choice.delta) ? choice.delta : {};
        if (typeof delta.content === 'string' && delta.content !== '') {
          content += delta.content;
          yield { type: 'delta', content: delta.content };
        }
        if (Array.isArray(delta.tool_calls)) {
          for (const piece of delta.tool_calls) {
            const call = toolCallPiece(piece);
            if (!call) continue;
            const seen = (calls[call.index] ??= { name: '', arguments: '' });
            if (call.name) seen.name += call.name;
            seen.arguments += call.arguments;
            yield call;
          }
        }
        if (typeof choice.finish_reason === 'string') finish = finishReasonOf(choice.finish_reason);
      }
      ended = true;
    } catch (err) {
      throw asUpstreamError(err, signal);
    } finally {
      // an early return (client gone) must not leave the socket half-read
      if (!ended) events.destroy();
    }
    if (finish === undefined) {
      throw new UpstreamError('protocol', 'upstream stream ended before its finish_reason');
    }
    yield {
      type: 'end',
      finishReason: finish,
      usage:
        usage ??
        countedUsage(
          body,
          content,
          calls.map((c, i) => ({
            id: String(i),
            type: 'function',
            function: { name: c.name, arguments: c.arguments },
          })),
        ),
    };
  }
}

/** The client's request with the deployment's model, and the usage chunk always asked for. */
export function upstreamBody(
  body: ChatCompletionRequest,
  model: string,
  stream: boolean,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body, model };
  if (stream) {
    out.stream = true;
    out.stream_options = { ...(body.stream_options ?? {}), include_usage: true };
  } else {
    delete out.stream;
    delete out.stream_options;
  }
  return out;
}

export function openAiErrorFields(body: unknown): { message?: string; code?: string } {
  const error = isRecord(body) ? body.error : undefined;
  if (typeof error === 'string') return { message: error };
  if (!isRecord(error)) return {};
  return {
    ...(typeof error.message === 'string' ? { message: error.message } : {}),
    ...(typeof error.code === 'string' ? { code: error.code } : {}),
  };
}

/** An `{"error": ...}` event inside a stream: the upstream gave up after it started. */
function streamedError(error: unknown): UpstreamError {
  const { message } = openAiErrorFields({ error });
  return new UpstreamError('server', `upstream stream failed: ${message ?? 'unknown error'}`);
}

function finishReasonOf(value: unknown): FinishReason {
  switch (value) {
    case 'length':
      return 'length';
    case 'tool_calls':
    case 'function_call':
      return 'tool_calls';
    case 'content_filter':
      return 'content_filter';
    default:
      return 'stop';
  }
}

function readUsage(value: unknown): TokenUsage | undefined {
  if (!isRecord(value)) return undefined;
  const prompt = value.prompt_tokens;
  const completion = value.completion_tokens;
  if (typeof prompt !== 'number' || typeof completion !== 'number') return undefined;
  return { promptTokens: prompt, completionTokens: completion };
}

function readToolCalls(value: unknown): ToolCall[] {
  if (!Array.isArray(value)) return [];
  const calls: ToolCall[] = [];
  for (const c of value) {
    if (!isRecord(c) || !isRecord(c.function)) continue;
    const fn = c.function;
    calls.push({
      id: typeof c.id === 'string' ? c.id : `call_${calls.length}`,
      type: 'function',
      function: {
        name: typeof fn.name === 'string' ? fn.name : '',
        arguments: typeof fn.arguments === 'string' ? fn.arguments : '',
      },
    });
  }
  return calls;
}

function toolCallPiece(value: unknown): Extract<ProviderChunk, { type: 'tool_call' }> | undefined {
  if (!isRecord(value) || typeof value.index !== 'number') return undefined;
  const fn = isRecord(value.function) ? value.function : {};
  const piece: Extract<ProviderChunk, { type: 'tool_call' }> = {
    type: 'tool_call',
    index: value.index,
    arguments: typeof fn.arguments === 'string' ? fn.arguments : '',
  };
  if (typeof value.id === 'string') piece.id = value.id;
  if (typeof fn.name === 'string') piece.name = fn.name;
  return piece;
}

/** Usage counted here, for upstreams that report none (older llama.cpp, some proxies). */
export function countedUsage(
  body: ChatCompletionRequest,
  content: string,
  toolCalls: readonly ToolCall[],
): TokenUsage {
  let completion = countTextTokens(content);
  for (const call of toolCalls) {
    completion += countTextTokens(call.function.name) + countTextTokens(call.function.arguments);
  }
  return {
    promptTokens: countPromptTokens(body.messages, body.tools),
    completionTokens: completion,
  };
}

const trimSlash = (url: string) => url.replace(/\/+$/, '');
