import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Deployment } from '../catalog/catalog.schema';
import type { ChatCompletionRequest } from '../openai/chat-completion-request';
import { invalidParam } from '../openai/openai-errors';
import {
  countPromptTokens,
  countTextTokens,
  messageText,
  tokenPieces,
} from '../tokens/token-counter';
import type {
  FinishReason,
  Provider,
  ProviderChunk,
  ProviderCompletion,
  ProviderRequest,
  ProviderStream,
  TokenUsage,
} from './provider';
import { simulatedText } from './simulated-text';

interface Plan {
  content: string;
  /** `content` cut into tokens, for streaming. */
  pieces: string[];
  finishReason: FinishReason;
  usage: TokenUsage;
}

/**
 * The built-in simulated model. The answer is a pure function of the deployment's model id, the
 * conversation and the sampling parameters; its natural length is `simulate.maxOutputTokens`,
 * cut at the client's max_tokens (finish_reason `length`) or at a stop sequence. Timing follows
 * `simulate.ttftMs` and `simulate.tokensPerSecond`, on streamed and non-streamed calls alike.
 */
export class LocalProvider implements Provider {
  constructor(readonly deployment: Deployment) {}

  /** The simulated model always answers in text: `content` is never null. */
  async complete(
    req: ProviderRequest,
    signal: AbortSignal,
  ): Promise<ProviderCompletion & { content: string }> {
    const plan = this.plan(req);
    const { ttftMs, tokensPerSecond } = this.deployment.simulate;
    await pause(ttftMs + (plan.pieces.length * 1000) / tokensPerSecond, signal);
    return {
      content: plan.content,
      toolCalls: [],
      finishReason: plan.finishReason,
      usage: plan.usage,
      rateLimit: {},
    };
  }

  stream(req: ProviderRequest, signal: AbortSignal): Promise<ProviderStream> {
    // planning first: a refused request rejects here, before anything is streamed
    const plan = this.plan(req);
    return Promise.resolve({ rateLimit: {}, chunks: this.generate(plan, signal) });
  }

  private async *generate(plan: Plan, signal: AbortSignal): AsyncGenerator<ProviderChunk> {
    const { ttftMs, tokensPerSecond } = this.deployment.simulate;
    await pause(ttftMs, signal);
    const begun = performance.now();
    let sent = 0;
    while (sent < plan.pieces.length) {
      // token k is due k/rate seconds after the first; timers are coarse, so send every due one
      const elapsedMs = performance.now() - begun;
      const due = Math.min(
        plan.pieces.length,
        Math.floor((elapsedMs * tokensPerSecond) / 1000) + 1,
      );
      while (sent < due) {
        signal.throwIfAborted();
        yield { type: 'delta', content: plan.pieces[sent++] as string };
      }
      if (sent < plan.pieces.length) {
        await pause((sent * 1000) / tokensPerSecond - (performance.now() - begun), signal);
      }
    }
    signal.throwIfAborted();
    yield { type: 'end', finishReason: plan.finishReason, usage: plan.usage };
  }

  private plan(req: ProviderRequest): Plan {
    const body = req.body;
    refuseForcedToolCalls(body);
    const promptTokens = countPromptTokens(body.messages, body.tools);
    const natural = simulatedText(
      conversationSeed(this.deployment, body),
      this.deployment.simulate.maxOutputTokens,
    );
    let content = cutAtStop(natural, body.stop);
    let pieces = tokenPieces(content);
    let finishReason: FinishReason = 'stop';
    if (req.maxTokens !== undefined && pieces.length > req.maxTokens) {
      pieces = pieces.slice(0, req.maxTokens);
      content = pieces.join('');
      finishReason = 'length';
    }
    return {
      content,
      pieces,
      finishReason,
      usage: { promptTokens, completionTokens: countTextTokens(content) },
    };
  }
}

/** The simulated model answers in text only: a request that demands a tool call cannot be honoured. */
function refuseForcedToolCalls(body: ChatCompletionRequest): void {
  const choice = body.tool_choice;
  if (choice === 'required' || typeof choice === 'object') {
    throw invalidParam(
      'tool_choice',
      'the local simulated model does not call tools: tool_choice must be "auto" or "none"',
    );
  }
}

/** Everything that decides the answer, hashed: same conversation and parameters, same text. */
function conversationSeed(deployment: Deployment, body: ChatCompletionRequest): string {
  const material = JSON.stringify({
    model: deployment.model,
    messages: body.messages.map((m) => ({
      role: m.role,
      text: messageText(m),
      name: 'name' in m ? (m.name ?? null) : null,
      toolCalls: m.role === 'assistant' ? (m.tool_calls ?? []) : [],
      toolCallId: m.role === 'tool' ? m.tool_call_id : null,
    })),
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    seed: body.seed ?? null,
  });
  return createHash('sha256').update(material).digest('hex');
}

/** OpenAI stops before the first stop sequence and does not return it. */
function cutAtStop(text: string, stop: ChatCompletionRequest['stop']): string {
  const sequences = (typeof stop === 'string' ? [stop] : (stop ?? [])).filter((s) => s !== '');
  let end = text.length;
  for (const s of sequences) {
    const at = text.indexOf(s);
    if (at !== -1 && at < end) end = at;
  }
  return text.slice(0, end);
}

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  // timers/promises clears its timer when the signal aborts
  if (ms > 0) await sleep(ms, undefined, { signal });
}
