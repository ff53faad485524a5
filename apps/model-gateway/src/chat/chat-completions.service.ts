import { createHash, randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import type { UsageRecord } from '@aob/events';
import type { Deployment } from '../catalog/catalog.schema';
import { costUsd } from '../catalog/pricing';
import { ModelGatewayMetrics } from '../metrics/model-gateway.metrics';
import { type ChatCompletionRequest, requestedMaxTokens } from '../openai/chat-completion-request';
import {
  type ChatCompletion,
  type ChatCompletionChunk,
  type CompletionIdentity,
  chatCompletion,
  chatCompletionChunk,
  completionUsage,
  usageChunk,
} from '../openai/chat-completion-response';
import type {
  ProviderChunk,
  ProviderCompletion,
  ProviderRequest,
  TokenUsage,
} from '../providers/provider';
import { ProviderRegistry } from '../providers/provider-registry';
import { type RouteDecision, Router } from '../routing/router';
import { countPromptTokens, countTextTokens } from '../tokens/token-counter';
import { UsagePublisher } from '../usage/usage-publisher';
import type { Caller } from './caller';
import { completionHeaders } from './response-headers';

export interface CompletionResponse {
  headers: Record<string, string>;
  body: ChatCompletion;
}

export interface CompletionStream {
  headers: Record<string, string>;
  /** Wire chunks; stop iterating (or abort the signal) to stop generation. */
  chunks: AsyncIterable<ChatCompletionChunk>;
}

type EndChunk = Extract<ProviderChunk, { type: 'end' }>;

/**
 * Serves one chat completion: resolve the model, call the deployment's provider, shape OpenAI's
 * answer, and account for it (metrics, one usage event, also when the client leaves early).
 */
@Injectable()
export class ChatCompletionsService {
  private readonly fingerprints = new Map<string, string>();

  constructor(
    private readonly router: Router,
    private readonly providers: ProviderRegistry,
    private readonly usage: UsagePublisher,
    private readonly metrics: ModelGatewayMetrics,
  ) {}

  /**
   * A non-streamed completion. `startedAt` (performance.now()) is when the gateway took the request.
   * @throws DomainError NotFound (unknown model), Unavailable (provider not implemented), InvalidRequest
   */
  async complete(
    body: ChatCompletionRequest,
    caller: Caller,
    signal: AbortSignal,
    startedAt: number,
  ): Promise<CompletionResponse> {
    const route = this.router.resolve(body.model);
    const provider = this.providers.for(route.deployment);
    const who = this.identity(route.deployment);
    const upstreamAt = performance.now();
    let result: ProviderCompletion;
    try {
      result = await provider.complete(providerRequest(body), signal);
    } catch (err) {
      // nothing reached the client, but the prompt was read: bill what was consumed
      if (signal.aborted)
        this.account(
          route,
          who.id,
          caller,
          { promptTokens: countPrompt(body), completionTokens: 0 },
          startedAt,
          'batch',
        );
      throw err;
    }
    const providerMs = performance.now() - upstreamAt;
    const cost = this.account(route, who.id, caller, result.usage, startedAt, 'batch');
    return {
      headers: completionHeaders(route.deployment.name, performance.now() - startedAt - providerMs),
      body: chatCompletion(who, result, cost),
    };
  }

  /**
   * A streamed completion. Resolves once the provider produced its first chunk, so errors before
   * any output still become a proper HTTP error; the rest flows through `chunks`.
   */
  async stream(
    body: ChatCompletionRequest,
    caller: Caller,
    signal: AbortSignal,
    startedAt: number,
  ): Promise<CompletionStream> {
    const route = this.router.resolve(body.model);
    const provider = this.providers.for(route.deployment);
    const who = this.identity(route.deployment);
    const overheadMs = performance.now() - startedAt;
    const upstream = provider.stream(providerRequest(body), signal)[Symbol.asyncIterator]();
    let first: IteratorResult<ProviderChunk>;
    try {
      first = await upstream.next();
    } catch (err) {
      if (signal.aborted)
        this.account(
          route,
          who.id,
          caller,
          { promptTokens: countPrompt(body), completionTokens: 0 },
          startedAt,
          'stream',
        );
      throw err;
    }
    return {
      headers: completionHeaders(route.deployment.name, overheadMs),
      chunks: this.relay({ route, who, caller, body, upstream, first, startedAt }),
    };
  }

  private async *relay(s: {
    route: RouteDecision;
    who: CompletionIdentity;
    caller: Caller;
    body: ChatCompletionRequest;
    upstream: AsyncIterator<ProviderChunk>;
    first: IteratorResult<ProviderChunk>;
    startedAt: number;
  }): AsyncGenerator<ChatCompletionChunk> {
    const includeUsage = s.body.stream_options?.include_usage === true;
    const deployment = s.route.deployment.name;
    let emitted = '';
    let end: EndChunk | undefined;
    let sawToken = false;
    try {
      yield chatCompletionChunk(
        s.who,
        { role: 'assistant', content: '', refusal: null },
        null,
        includeUsage,
      );
      for (let next = s.first; !next.done; next = await s.upstream.next()) {
        const chunk = next.value;
        if (chunk.type === 'end') {
          end = chunk;
          continue;
        }
        if (!sawToken) {
          sawToken = true;
          this.metrics.timeToFirstToken.observe(
            { deployment },
            (performance.now() - s.startedAt) / 1000,
          );
        }
        emitted += chunk.content;
        yield chatCompletionChunk(s.who, { content: chunk.content }, null, includeUsage);
      }
      if (!end) throw new Error(`provider of ${deployment} ended its stream without a finish`);
      const cost = costUsd(s.route.deployment, end.usage);
      yield chatCompletionChunk(s.who, {}, end.finishReason, includeUsage);
      if (includeUsage) yield usageChunk(s.who, completionUsage(end.usage, cost));
    } finally {
      // stops the provider (and its timers) when the client left mid-stream
      await s.upstream.return?.();
      const usage = end?.usage ?? {
        promptTokens: countPrompt(s.body),
        completionTokens: countTextTokens(emitted),
      };
      this.account(s.route, s.who.id, s.caller, usage, s.startedAt, 'stream');
    }
  }

  /** Metrics and the usage event of one finished (or abandoned) completion; returns its cost. */
  private account(
    route: RouteDecision,
    completionId: string,
    caller: Caller,
    usage: TokenUsage,
    startedAt: number,
    mode: 'stream' | 'batch',
  ): number {
    const deployment = route.deployment;
    const cost = costUsd(deployment, usage);
    const latencyMs = performance.now() - startedAt;
    this.metrics.tokens.inc({ deployment: deployment.name, kind: 'prompt' }, usage.promptTokens);
    this.metrics.tokens.inc(
      { deployment: deployment.name, kind: 'completion' },
      usage.completionTokens,
    );
    this.metrics.duration.observe({ deployment: deployment.name, mode }, latencyMs / 1000);
    const record: UsageRecord = {
      tenantId: caller.tenantId,
      requested: route.requested,
      model: deployment.model,
      deployment: deployment.name,
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      costUsd: cost,
      latencyMs: Math.round(latencyMs),
      at: new Date().toISOString(),
    };
    if (caller.runId !== undefined) record.runId = caller.runId;
    if (caller.agent !== undefined) record.agent = caller.agent;
    this.usage.enqueue(completionId, record);
    return cost;
  }

  private identity(deployment: Deployment): CompletionIdentity {
    return {
      id: `chatcmpl-${randomUUID().replaceAll('-', '')}`,
      created: Math.floor(Date.now() / 1000),
      model: deployment.model,
      systemFingerprint: this.fingerprint(deployment),
    };
  }

  /** Changes when the deployment's configuration changes, as OpenAI's does with its backend. */
  private fingerprint(deployment: Deployment): string {
    let fp = this.fingerprints.get(deployment.name);
    if (fp === undefined) {
      fp = `fp_${createHash('sha256').update(JSON.stringify(deployment)).digest('hex').slice(0, 10)}`;
      this.fingerprints.set(deployment.name, fp);
    }
    return fp;
  }
}

function providerRequest(body: ChatCompletionRequest): ProviderRequest {
  const maxTokens = requestedMaxTokens(body);
  return maxTokens === undefined ? { body } : { body, maxTokens };
}

const countPrompt = (body: ChatCompletionRequest) => countPromptTokens(body.messages, body.tools);
