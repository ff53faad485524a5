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
  type ToolCallDelta,
  usageChunk,
} from '../openai/chat-completion-response';
import { upstreamFailed } from '../openai/openai-errors';
import type {
  ProviderChunk,
  ProviderRequest,
  ProviderStream,
  TokenUsage,
} from '../providers/provider';
import { isUpstreamError } from '../providers/upstream-error';
import type { DeploymentHealth } from '../resilience/deployment-health';
import { Router, type RouteRequirements } from '../routing/router';
import { UpstreamDispatcher } from '../routing/upstream-dispatcher';
import { countPromptTokens, countTextTokens } from '../tokens/token-counter';
import type { QuotaTicket } from '../quotas/model-quota.service';
import { UsagePublisher } from '../usage/usage-publisher';
import type { Caller } from './caller';
import { completionHeaders } from './response-headers';
import type { RouteConstraints } from './route-constraints';

export interface CompletionResponse {
  headers: Record<string, string>;
  body: ChatCompletion;
}

export interface CompletionStream {
  headers: Record<string, string>;
  /** Wire chunks; stop iterating (or abort the signal) to stop generation. */
  chunks: AsyncIterable<ChatCompletionChunk>;
}

/** The request as it came in: what to serve, for whom, since when (performance.now()). */
export interface CompletionCall {
  body: ChatCompletionRequest;
  caller: Caller;
  constraints: RouteConstraints;
  signal: AbortSignal;
  startedAt: number;
  /** The admitted quota: its headers go on the answer, the real usage settles it. */
  quota: QuotaTicket;
}

type EndChunk = Extract<ProviderChunk, { type: 'end' }>;

interface OpenedStream {
  stream: ProviderStream;
  first: IteratorResult<ProviderChunk>;
}

/**
 * Serves one chat completion: plan the route, run it through the dispatcher (retries, breakers,
 * fallbacks), shape OpenAI's answer, and account for it (metrics, one usage event, also when the
 * client leaves early or the upstream breaks mid-stream).
 */
@Injectable()
export class ChatCompletionsService {
  private readonly fingerprints = new Map<string, string>();

  constructor(
    private readonly router: Router,
    private readonly dispatcher: UpstreamDispatcher,
    private readonly usage: UsagePublisher,
    private readonly metrics: ModelGatewayMetrics,
  ) {}

  /**
   * A non-streamed completion.
   * @throws DomainError NotFound (unknown model), InvalidRequest, and the dispatcher's 429/502/503/504
   */
  async complete(call: CompletionCall): Promise<CompletionResponse> {
    const { body, signal, startedAt } = call;
    const plan = this.router.plan(body.model, requirements(body, call.constraints));
    const req = providerRequest(body);
    let tried: Deployment | undefined;
    try {
      const done = await this.dispatcher.dispatch(plan, (p, s) => p.complete(req, s), signal, {
        hold: false,
        mode: 'batch',
        onAttempt: (d) => (tried = d),
      });
      const who = this.identity(done.deployment);
      const result = done.value;
      const cost = this.account(
        call,
        plan.requested,
        done.deployment,
        who.id,
        result.usage,
        'batch',
      );
      return {
        headers: completionHeaders(
          done.deployment.name,
          performance.now() - startedAt - done.upstreamMs,
          { tenant: call.quota.headers, upstream: result.rateLimit },
          done.attempts,
        ),
        body: chatCompletion(who, result, cost),
      };
    } catch (err) {
      // nothing reached the client, but the prompt was sent upstream: bill what was consumed
      if (signal.aborted && tried) {
        const usage = { promptTokens: countPrompt(body), completionTokens: 0 };
        this.account(call, plan.requested, tried, this.identity(tried).id, usage, 'batch');
      }
      // no upstream answered: none of the reservation was used (no-op when accounted above)
      call.quota.settle(0);
      throw err;
    }
  }

  /**
   * A streamed completion. Resolves once a deployment produced its first chunk: until then a
   * failure moves on to the next candidate and still becomes a proper HTTP error; after it, the
   * rest flows through `chunks` and a failure ends the stream with an error event.
   */
  async stream(call: CompletionCall): Promise<CompletionStream> {
    const { body, signal, startedAt } = call;
    const plan = this.router.plan(body.model, requirements(body, call.constraints));
    const req = providerRequest(body);
    let tried: Deployment | undefined;
    let done;
    try {
      done = await this.dispatcher.dispatch(plan, (p, s) => openStream(p.stream(req, s)), signal, {
        hold: true,
        mode: 'stream',
        onAttempt: (d) => (tried = d),
      });
    } catch (err) {
      if (signal.aborted && tried) {
        const usage = { promptTokens: countPrompt(body), completionTokens: 0 };
        this.account(call, plan.requested, tried, this.identity(tried).id, usage, 'stream');
      }
      call.quota.settle(0);
      throw err;
    }
    const who = this.identity(done.deployment);
    return {
      headers: completionHeaders(
        done.deployment.name,
        performance.now() - startedAt - done.upstreamMs,
        { tenant: call.quota.headers, upstream: done.value.stream.rateLimit },
        done.attempts,
      ),
      chunks: this.relay({
        call,
        requested: plan.requested,
        deployment: done.deployment,
        health: done.health,
        who,
        opened: done.value,
        release: () => done.release(),
      }),
    };
  }

  private async *relay(s: {
    call: CompletionCall;
    requested: string;
    deployment: Deployment;
    health: DeploymentHealth;
    who: CompletionIdentity;
    opened: OpenedStream;
    release: () => void;
  }): AsyncGenerator<ChatCompletionChunk> {
    const { body, startedAt, signal } = s.call;
    const upstream = s.opened.stream.chunks;
    const includeUsage = body.stream_options?.include_usage === true;
    const deployment = s.deployment.name;
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
      let next = s.opened.first;
      while (!next.done) {
        const chunk = next.value;
        if (chunk.type === 'end') {
          end = chunk;
        } else {
          if (!sawToken) {
            sawToken = true;
            this.metrics.timeToFirstToken.observe(
              { deployment },
              (performance.now() - startedAt) / 1000,
            );
          }
          if (chunk.type === 'delta') {
            emitted += chunk.content;
            yield chatCompletionChunk(s.who, { content: chunk.content }, null, includeUsage);
          } else {
            emitted += (chunk.name ?? '') + chunk.arguments;
            yield chatCompletionChunk(
              s.who,
              { tool_calls: [toolCallDelta(chunk)] },
              null,
              includeUsage,
            );
          }
        }
        next = await this.nextChunk(upstream, s.health, signal);
      }
      if (!end) throw new Error(`provider of ${deployment} ended its stream without a finish`);
      const cost = costUsd(s.deployment, end.usage);
      yield chatCompletionChunk(s.who, {}, end.finishReason, includeUsage);
      if (includeUsage) yield usageChunk(s.who, completionUsage(end.usage, cost));
    } finally {
      // stops the upstream (and frees its socket) when the client left mid-stream
      await upstream.return?.().catch(() => undefined);
      s.release();
      const usage = end?.usage ?? {
        promptTokens: countPrompt(body),
        completionTokens: countTextTokens(emitted),
      };
      this.account(s.call, s.requested, s.deployment, s.who.id, usage, 'stream');
    }
  }

  /** The next upstream chunk; a failure after the first byte is the deployment's, and the client's error event. */
  private async nextChunk(
    upstream: AsyncIterator<ProviderChunk>,
    health: DeploymentHealth,
    signal: AbortSignal,
  ): Promise<IteratorResult<ProviderChunk>> {
    try {
      return await upstream.next();
    } catch (err) {
      if (signal.aborted || !isUpstreamError(err)) throw err;
      health.recordFailure(err);
      this.metrics.upstreamErrors.inc({ deployment: health.name, reason: 'mid_stream' });
      throw upstreamFailed(502, `${health.name} failed mid-stream: ${err.message}`, {
        code: 'upstream_error',
      });
    }
  }

  /**
   * Metrics, the usage event and the quota settlement of one finished (or abandoned)
   * completion; returns its cost.
   */
  private account(
    call: CompletionCall,
    requested: string,
    deployment: Deployment,
    completionId: string,
    usage: TokenUsage,
    mode: 'stream' | 'batch',
  ): number {
    const cost = costUsd(deployment, usage);
    const latencyMs = performance.now() - call.startedAt;
    this.metrics.tokens.inc({ deployment: deployment.name, kind: 'prompt' }, usage.promptTokens);
    this.metrics.tokens.inc(
      { deployment: deployment.name, kind: 'completion' },
      usage.completionTokens,
    );
    this.metrics.duration.observe({ deployment: deployment.name, mode }, latencyMs / 1000);
    const record: UsageRecord = {
      tenantId: call.caller.tenantId,
      requested,
      model: deployment.model,
      deployment: deployment.name,
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      costUsd: cost,
      latencyMs: Math.round(latencyMs),
      at: new Date().toISOString(),
    };
    if (call.caller.runId !== undefined) record.runId = call.caller.runId;
    if (call.caller.agent !== undefined) record.agent = call.caller.agent;
    this.usage.enqueue(completionId, record);
    call.quota.settle(usage.promptTokens + usage.completionTokens);
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

/** Opens a provider stream and waits for its first chunk: the point after which there is no failover. */
async function openStream(opening: Promise<ProviderStream>): Promise<OpenedStream> {
  const stream = await opening;
  try {
    return { stream, first: await stream.chunks.next() };
  } catch (err) {
    await stream.chunks.return?.().catch(() => undefined);
    throw err;
  }
}

function toolCallDelta(chunk: Extract<ProviderChunk, { type: 'tool_call' }>): ToolCallDelta {
  const delta: ToolCallDelta = { index: chunk.index, function: { arguments: chunk.arguments } };
  if (chunk.id !== undefined) {
    delta.id = chunk.id;
    delta.type = 'function';
  }
  if (chunk.name !== undefined) delta.function = { name: chunk.name, arguments: chunk.arguments };
  return delta;
}

function providerRequest(body: ChatCompletionRequest): ProviderRequest {
  const maxTokens = requestedMaxTokens(body);
  return maxTokens === undefined ? { body } : { body, maxTokens };
}

function requirements(
  body: ChatCompletionRequest,
  constraints: RouteConstraints,
): RouteRequirements {
  const maxTokens = requestedMaxTokens(body);
  return {
    promptTokens: () => countPrompt(body),
    ...(maxTokens === undefined ? {} : { maxTokens }),
    ...constraints,
  };
}

const countPrompt = (body: ChatCompletionRequest) => countPromptTokens(body.messages, body.tools);
