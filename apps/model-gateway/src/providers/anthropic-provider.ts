import type { Deployment } from '../catalog/catalog.schema';
import type { ChatCompletionRequest } from '../openai/chat-completion-request';
import {
  AnthropicStreamTranslator,
  anthropicErrorFields,
  anthropicRateLimitHeaders,
  fromAnthropicMessage,
  toAnthropicRequest,
} from './anthropic-translation';
import { countedUsage } from './openai-provider';
import type {
  Provider,
  ProviderChunk,
  ProviderCompletion,
  ProviderRequest,
  ProviderStream,
} from './provider';
import { UpstreamError } from './upstream-error';
import { asUpstreamError, type UpstreamHttpClient } from './upstream-http-client';
import {
  parseJsonEvent,
  probeUpstream,
  readJsonBody,
  readServerSentEvents,
  upstreamErrorOf,
} from './upstream-response';

export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';
export const ANTHROPIC_VERSION = '2023-06-01';

/** `https://api.anthropic.com` and `https://proxy/v1` both lead to `/v1/messages`. */
export function anthropicMessagesUrl(baseUrl: string | undefined): URL {
  const base = (baseUrl ?? ANTHROPIC_DEFAULT_BASE_URL).replace(/\/+$/, '');
  return new URL(base.endsWith('/v1') ? `${base}/messages` : `${base}/v1/messages`);
}

/** Anthropic's Messages API behind the OpenAI chat completions contract (see anthropic-translation.ts). */
export class AnthropicProvider implements Provider {
  private readonly url: URL;
  private readonly probeUrl: URL;
  private readonly headers: Record<string, string>;

  constructor(
    readonly deployment: Deployment,
    private readonly http: UpstreamHttpClient,
    apiKey: string | undefined,
    /** max_tokens sent when the client sets none (Anthropic requires it). */
    private readonly defaultMaxTokens: number,
  ) {
    this.url = anthropicMessagesUrl(deployment.baseUrl);
    const check = deployment.healthCheck;
    this.probeUrl = new URL(
      check !== false && check.path ? check.path : this.url.pathname.replace(/messages$/, 'models'),
      this.url,
    );
    this.headers = {
      'content-type': 'application/json',
      accept: 'application/json',
      'anthropic-version': ANTHROPIC_VERSION,
    };
    if (apiKey) this.headers['x-api-key'] = apiKey;
  }

  async complete(req: ProviderRequest, signal: AbortSignal): Promise<ProviderCompletion> {
    const res = await this.send(req, false, signal);
    const rateLimit = anthropicRateLimitHeaders(res.headers);
    if (res.status !== 200) throw await upstreamErrorOf(res, rateLimit, anthropicErrorFields);
    let body: unknown;
    try {
      body = await readJsonBody(res);
    } catch (err) {
      throw asUpstreamError(err, signal);
    }
    const message = fromAnthropicMessage(body);
    return {
      content: message.content,
      toolCalls: message.toolCalls,
      finishReason: message.finishReason,
      usage: message.usage ?? countedUsage(req.body, message.content ?? '', message.toolCalls),
      rateLimit,
    };
  }

  async stream(req: ProviderRequest, signal: AbortSignal): Promise<ProviderStream> {
    const res = await this.send(req, true, signal);
    const rateLimit = anthropicRateLimitHeaders(res.headers);
    if (res.status !== 200) throw await upstreamErrorOf(res, rateLimit, anthropicErrorFields);
    return { rateLimit, chunks: this.relay(req.body, res.body, signal) };
  }

  async probe(signal: AbortSignal): Promise<boolean> {
    return probeUpstream(this.http, this.probeUrl, this.headers, signal, this.deployment);
  }

  private send(req: ProviderRequest, stream: boolean, signal: AbortSignal) {
    // translate before sending: a request Anthropic cannot express fails here, as a 400
    const body = toAnthropicRequest(req.body, {
      model: this.deployment.model,
      maxTokens: req.maxTokens ?? this.defaultMaxTokens,
      stream,
    });
    return this.http.send({
      method: 'POST',
      url: this.url,
      headers: stream ? { ...this.headers, accept: 'text/event-stream' } : this.headers,
      body: JSON.stringify(body),
      signal,
      idleTimeoutMs: this.deployment.timeoutMs,
    });
  }

  private async *relay(
    body: ChatCompletionRequest,
    events: AsyncIterable<Buffer> & { destroy(err?: Error): unknown },
    signal: AbortSignal,
  ): AsyncGenerator<ProviderChunk> {
    const translator = new AnthropicStreamTranslator();
    let content = '';
    const args = new Map<number, { name: string; arguments: string }>();
    let end: Extract<ProviderChunk, { type: 'end' }> | undefined;
    let ended = false;
    try {
      for await (const event of readServerSentEvents(events)) {
        if (end) continue; // read to the end of the body so the socket is reused
        for (const chunk of translator.push(event.event, parseJsonEvent(event.data))) {
          if (chunk.type === 'end') {
            end = chunk;
            continue;
          }
          if (chunk.type === 'delta') content += chunk.content;
          else {
            const call = args.get(chunk.index) ?? { name: chunk.name ?? '', arguments: '' };
            call.arguments += chunk.arguments;
            args.set(chunk.index, call);
          }
          yield chunk;
        }
      }
      ended = true;
    } catch (err) {
      throw asUpstreamError(err, signal);
    } finally {
      if (!ended) events.destroy();
    }
    if (!end) throw new UpstreamError('protocol', 'upstream stream ended before message_stop');
    if (!translator.reportedUsage) {
      const calls = [...args.values()].map((c, i) => ({
        id: String(i),
        type: 'function' as const,
        function: c,
      }));
      end = { ...end, usage: countedUsage(body, content, calls) };
    }
    yield end;
  }
}
