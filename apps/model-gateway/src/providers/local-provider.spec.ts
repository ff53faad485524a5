import fc from 'fast-check';
import { isDomainError } from '@aob/errors';
import { validateCatalog } from '../catalog/catalog-loader';
import type { Deployment } from '../catalog/catalog.schema';
import { parseChatCompletionRequest, requestedMaxTokens } from '../openai/chat-completion-request';
import { countTextTokens } from '../tokens/token-counter';
import { LocalProvider } from './local-provider';
import type { ProviderChunk, ProviderRequest, ProviderStream } from './provider';
import { VOCABULARY, simulatedText } from './simulated-text';

function deployment(simulate: Record<string, number> = {}, model = 'sim-small'): Deployment {
  const catalog = validateCatalog({
    deployments: [
      {
        name: 'local-test',
        provider: 'local',
        model,
        inputCostPer1M: 1,
        outputCostPer1M: 2,
        simulate,
      },
    ],
  });
  return catalog.deployments[0] as Deployment;
}

function request(
  extra: Record<string, unknown> = {},
  content = 'Tell me about rivers.',
): ProviderRequest {
  const body = parseChatCompletionRequest({
    model: 'local-test',
    messages: [{ role: 'user', content }],
    ...extra,
  });
  const maxTokens = requestedMaxTokens(body);
  return maxTokens === undefined ? { body } : { body, maxTokens };
}

const fast = new LocalProvider(
  deployment({ ttftMs: 0, tokensPerSecond: 1_000_000, maxOutputTokens: 64 }),
);
const live = () => new AbortController().signal;

/** The chunks of a provider stream, as an async iterable. */
async function* chunksOf(opened: Promise<ProviderStream>): AsyncGenerator<ProviderChunk> {
  const { chunks } = await opened;
  for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
}

async function collect(opened: Promise<ProviderStream>): Promise<ProviderChunk[]> {
  const out: ProviderChunk[] = [];
  for await (const c of chunksOf(opened)) out.push(c);
  return out;
}

describe('simulatedText', () => {
  it('uses only words that are one token in every form it writes them', () => {
    expect(VOCABULARY.length).toBeGreaterThanOrEqual(100);
  });

  it('is exactly the asked number of tokens, sentence-cased, ending with a period', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 2, max: 600 }), (seed, tokens) => {
        const text = simulatedText(seed, tokens);
        expect(countTextTokens(text)).toBe(tokens);
        expect(text).toMatch(/^[A-Z][a-z]*( [a-z]+)*\.( [A-Z][a-z]*( [a-z]+)*\.)*$/);
      }),
      { numRuns: 300 },
    );
    expect(countTextTokens(simulatedText('x', 1))).toBe(1);
  });

  it('depends on the seed only', () => {
    expect(simulatedText('a', 50)).toBe(simulatedText('a', 50));
    expect(simulatedText('a', 50)).not.toBe(simulatedText('b', 50));
  });
});

describe('LocalProvider', () => {
  it('answers the same conversation and parameters with the same text, and others with other text', async () => {
    const a = await fast.complete(request(), live());
    expect((await fast.complete(request(), live())).content).toBe(a.content);
    expect((await fast.complete(request({ temperature: 0 }), live())).content).not.toBe(a.content);
    expect((await fast.complete(request({}, 'Tell me about stones.'), live())).content).not.toBe(
      a.content,
    );
    const otherModel = new LocalProvider(
      deployment({ ttftMs: 0, tokensPerSecond: 1_000_000, maxOutputTokens: 64 }, 'sim-large'),
    );
    expect((await otherModel.complete(request(), live())).content).not.toBe(a.content);
  });

  it('writes maxOutputTokens tokens ending with a period, with honest usage', async () => {
    const result = await fast.complete(request(), live());
    expect(result.finishReason).toBe('stop');
    expect(result.content).toMatch(/\.$/);
    expect(result.usage).toEqual({
      promptTokens: 8 + countTextTokens('Tell me about rivers.') - 1,
      completionTokens: 64,
    });
    expect(countTextTokens(result.content)).toBe(64);
  });

  it('cuts at max_tokens with finish_reason length, as a prefix of the full answer', async () => {
    const full = await fast.complete(request(), live());
    for (const max of [1, 7, 63]) {
      const cut = await fast.complete(request({ max_tokens: max }), live());
      expect(cut.finishReason).toBe('length');
      expect(cut.usage.completionTokens).toBe(max);
      expect(full.content.startsWith(cut.content)).toBe(true);
    }
    const roomy = await fast.complete(request({ max_completion_tokens: 64 }), live());
    expect(roomy).toEqual(full);
  });

  it('stops before a stop sequence without returning it', async () => {
    const full = await fast.complete(request(), live());
    const word = full.content.split(' ')[3] as string;
    const stopped = await fast.complete(request({ stop: [` ${word}`, 'zzz'] }), live());
    expect(stopped.finishReason).toBe('stop');
    expect(stopped.content).toBe(full.content.slice(0, full.content.indexOf(` ${word}`)));
    expect(stopped.usage.completionTokens).toBe(countTextTokens(stopped.content));
  });

  it('streams deltas that join to the non-streamed content, then one end with the same usage', async () => {
    for (const extra of [{}, { max_tokens: 10 }]) {
      const result = await fast.complete(request(extra), live());
      const chunks = await collect(fast.stream(request(extra), live()));
      const end = chunks.at(-1);
      expect(end).toEqual({ type: 'end', finishReason: result.finishReason, usage: result.usage });
      const deltas = chunks.slice(0, -1);
      expect(deltas.every((c) => c.type === 'delta')).toBe(true);
      expect(deltas.map((c) => (c.type === 'delta' ? c.content : '')).join('')).toBe(
        result.content,
      );
      expect(deltas).toHaveLength(result.usage.completionTokens);
    }
  });

  it('takes ttftMs and tokensPerSecond', async () => {
    const timed = new LocalProvider(
      deployment({ ttftMs: 100, tokensPerSecond: 200, maxOutputTokens: 41 }),
    );
    const started = performance.now();
    const seen: number[] = [];
    for await (const c of chunksOf(timed.stream(request(), live())))
      if (c.type === 'delta') seen.push(performance.now() - started);
    // first token after ttft; 40 more at 200/s = 200 ms
    expect(seen[0]).toBeGreaterThanOrEqual(95);
    expect(seen[0]).toBeLessThan(400);
    expect(seen.at(-1)).toBeGreaterThanOrEqual(290);
    expect(seen.at(-1)).toBeLessThan(1_500);
    const batchStart = performance.now();
    await timed.complete(request(), live());
    expect(performance.now() - batchStart).toBeGreaterThanOrEqual(290);
  });

  it('stops generating when the signal aborts, mid-wait and between tokens', async () => {
    const slow = new LocalProvider(
      deployment({ ttftMs: 10, tokensPerSecond: 50, maxOutputTokens: 200 }),
    );
    const controller = new AbortController();
    const got: string[] = [];
    const run = (async () => {
      for await (const c of chunksOf(slow.stream(request(), controller.signal)))
        if (c.type === 'delta') got.push(c.content);
    })();
    setTimeout(() => controller.abort(), 150);
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(100);
    const count = got.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(got.length).toBe(count);

    const batch = new AbortController();
    const pending = slow.complete(request(), batch.signal);
    batch.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('refuses to be forced into a tool call it cannot make', async () => {
    const tools = [{ type: 'function', function: { name: 'lookup' } }];
    for (const tool_choice of ['required', { type: 'function', function: { name: 'lookup' } }]) {
      const err: unknown = await fast
        .complete(request({ tools, tool_choice }), live())
        .catch((e: unknown) => e);
      expect(isDomainError(err) && err.code).toBe('InvalidRequest');
    }
    expect(
      (await fast.complete(request({ tools, tool_choice: 'auto' }), live())).finishReason,
    ).toBe('stop');
  });
});
