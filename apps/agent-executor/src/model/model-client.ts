import { DomainError } from '@aob/errors';
import type { Usage } from '@aob/events';
import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';

// A type, not an interface: it must be assignable to JsonValue (checkpoint state).
export type ChatMessage = {
  role: 'system' | 'user' | 'assistant';
  content: string;
};

export interface ModelCompletion {
  content: string;
  /** The model id the gateway reports in the chunks. */
  model: string;
  /** `x-aob-deployment`: the catalog deployment that served the call. */
  deployment?: string;
  usage: Usage;
}

export interface ModelCall {
  messages: ChatMessage[];
  /** Deployment name, alias or `tier:<tier>`. */
  model: string;
  maxTokens?: number;
  temperature?: number;
  /** Attribution headers: the model gateway bills the call to this tenant, run and agent. */
  tenantId: string;
  runId: string;
  agent: string;
  signal: AbortSignal;
  onToken: (text: string) => void;
}

export interface ModelClientOptions {
  /** MODEL_GATEWAY_URL, e.g. http://127.0.0.1:8081/v1. */
  baseUrl: string;
  /** AOB_SERVICE_KEY: authenticates the executor as the service principal. */
  apiKey: string;
  /** Time limit of one call. */
  timeoutMs: number;
}

/** Status codes a later attempt may get past (timeouts, rate limits); other 4xx never will. */
const RETRYABLE_4XX = new Set([408, 429]);

/**
 * Chat completions through the model gateway with the official `openai` client, always streamed
 * with the final usage chunk. The client does not retry: a failed call fails the delivery, and
 * JetStream redelivers it with backoff, counted in the run's attempts.
 */
export class ModelClient {
  private readonly openai: OpenAI;

  constructor(opts: ModelClientOptions) {
    this.openai = new OpenAI({
      baseURL: opts.baseUrl,
      apiKey: opts.apiKey,
      timeout: opts.timeoutMs,
      maxRetries: 0,
    });
  }

  async streamChat(call: ModelCall): Promise<ModelCompletion> {
    try {
      const { data: stream, response } = await this.openai.chat.completions
        .create(
          {
            model: call.model,
            messages: call.messages,
            stream: true,
            stream_options: { include_usage: true },
            ...(call.maxTokens === undefined ? {} : { max_tokens: call.maxTokens }),
            ...(call.temperature === undefined ? {} : { temperature: call.temperature }),
          },
          {
            signal: call.signal,
            headers: {
              'x-aob-tenant-id': call.tenantId,
              'x-aob-run-id': call.runId,
              'x-aob-agent': call.agent,
            },
          },
        )
        .withResponse();
      let content = '';
      let model = call.model;
      let usage: Usage | undefined;
      for await (const chunk of stream) {
        if (chunk.model) model = chunk.model;
        const delta = chunk.choices[0]?.delta?.content;
        if (delta) {
          content += delta;
          call.onToken(delta);
        }
        if (chunk.usage) usage = toUsage(chunk.usage);
      }
      // The SDK may end an aborted stream quietly: partial content is not a completion.
      call.signal.throwIfAborted();
      const deployment = response.headers.get('x-aob-deployment') ?? undefined;
      return {
        content,
        model,
        ...(deployment === undefined ? {} : { deployment }),
        usage: usage ?? { promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: 0 },
      };
    } catch (err) {
      throw modelError(err, call.signal);
    }
  }
}

function toUsage(u: OpenAI.CompletionUsage & { cost_usd?: unknown }): Usage {
  const count = (n: unknown) =>
    typeof n === 'number' && Number.isFinite(n) && n >= 0 ? Math.round(n) : 0;
  const promptTokens = count(u.prompt_tokens);
  const completionTokens = count(u.completion_tokens);
  const costUsd =
    typeof u.cost_usd === 'number' && Number.isFinite(u.cost_usd) && u.cost_usd >= 0
      ? u.cost_usd
      : 0;
  return {
    promptTokens,
    completionTokens,
    totalTokens: count(u.total_tokens) || promptTokens + completionTokens,
    costUsd,
  };
}

/**
 * Maps a failed model call to a DomainError: 4xx (but 408 and 429) cannot succeed on retry;
 * 429, 5xx, timeouts and network errors may. An abort keeps the signal's reason (the run decides).
 */
export function modelError(err: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted) return signal.reason ?? err;
  if (err instanceof APIUserAbortError) return err;
  if (err instanceof APIError && typeof err.status === 'number') {
    const status = err.status;
    const message = `model gateway answered ${status}: ${err.message}`;
    if (status >= 400 && status < 500 && !RETRYABLE_4XX.has(status)) {
      return new DomainError(
        status === 401 || status === 403 ? 'Unauthorized' : 'UpstreamError',
        message,
        {
          retryable: false,
          details: { status },
          cause: err,
        },
      );
    }
    const retryAfterMs = retryAfter(err.headers as Headers | undefined);
    return new DomainError(status === 429 ? 'QuotaExceeded' : 'UpstreamError', message, {
      retryable: true,
      details: { status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
      cause: err,
    });
  }
  if (err instanceof APIConnectionError) {
    return new DomainError('Unavailable', `model gateway unreachable: ${err.message}`, {
      retryable: true,
      cause: err,
    });
  }
  if (err instanceof APIError) {
    // An error event inside an already-started stream carries no status: treat as transient.
    return new DomainError('UpstreamError', `model stream failed: ${err.message}`, {
      retryable: true,
      cause: err,
    });
  }
  return err;
}

function retryAfter(headers: Headers | undefined): number | undefined {
  const value = headers?.get('retry-after-ms') ?? undefined;
  if (value !== undefined && /^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value));
  const seconds = headers?.get('retry-after') ?? undefined;
  if (seconds !== undefined && /^\d+(\.\d+)?$/.test(seconds))
    return Math.round(Number(seconds) * 1000);
  return undefined;
}
