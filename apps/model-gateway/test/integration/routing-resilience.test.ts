import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import OpenAI from 'openai';
import { decodeCloudEvent, type UsageRecord } from '@aob/events';
import {
  createTestDatabase,
  startNatsServer,
  testRedisUrl,
  uniqueKeyPrefix,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
} from '@aob/testing';
import { startModelGateway } from '../../src/bootstrap';
import { validateCatalog } from '../../src/catalog/catalog-loader';
import { loadModelGatewayConfig } from '../../src/config';
import { countTextTokens } from '../../src/tokens/token-counter';
import { FAKE_USAGE, FakeLlmUpstream, type WireFormat } from '../support/fake-llm-upstream';

jest.setTimeout(20_000);

const ADMIN_KEY = 'aob_test_admin_key_0123456789abcdef';
const OPENAI_KEY = 'sk-fake-openai-key';
const ANTHROPIC_KEY = 'sk-ant-fake-key';
const MESSAGES = [{ role: 'user' as const, content: 'Say hello.' }];

/** One fake upstream per deployment, so each test owns the state it drives. */
const FAKES = {
  openai: 'openai',
  anthropic: 'anthropic',
  fbPrimary: 'openai',
  fbBackup: 'openai',
  cbPrimary: 'openai',
  cbBackup: 'openai',
  slow: 'openai',
  limited: 'openai',
  narrow: 'openai',
  probed: 'openai',
  stPrimary: 'openai',
  stBackup: 'anthropic',
  ctxSmall: 'openai',
  ctxLarge: 'openai',
} as const satisfies Record<string, WireFormat>;
type FakeName = keyof typeof FAKES;

let fakes: Record<FakeName, FakeLlmUpstream>;
let nats: TestNatsServer;
let db: TestDatabase;
let app: INestApplication;
let baseUrl: string;
let client: OpenAI;
let nc: NatsConnection;
let jsm: JetStreamManager;

/** Fast retries and no probes unless a deployment says otherwise. */
function deployment(name: string, fake: FakeName, extra: Record<string, unknown> = {}) {
  const f = fakes[fake];
  return {
    name,
    provider: f.format,
    model: `${name}-upstream-model`,
    baseUrl: f.baseUrl,
    apiKeyEnv: f.format === 'openai' ? 'FAKE_OPENAI_KEY' : 'FAKE_ANTHROPIC_KEY',
    inputCostPer1M: 1,
    outputCostPer1M: 2,
    timeoutMs: 3_000,
    retry: { maxRetries: 1, baseDelayMs: 5, maxDelayMs: 2_000 },
    healthCheck: false,
    ...extra,
  };
}

beforeAll(async () => {
  const started = await Promise.all(
    Object.entries(FAKES).map(
      async ([name, format]) => [name, await FakeLlmUpstream.start(format)] as const,
    ),
  );
  fakes = Object.fromEntries(started) as Record<FakeName, FakeLlmUpstream>;
  const catalog = validateCatalog({
    deployments: [
      deployment('oa', 'openai', { aliases: ['gpt-test'] }),
      deployment('an', 'anthropic', { aliases: ['claude-test'], maxOutputTokens: 321 }),
      deployment('fb-primary', 'fbPrimary'),
      deployment('fb-backup', 'fbBackup'),
      deployment('cb-primary', 'cbPrimary', {
        retry: { maxRetries: 0 },
        circuitBreaker: { consecutiveFailures: 2, halfOpenAfterMs: 400 },
      }),
      deployment('cb-backup', 'cbBackup'),
      // asked for as `slow-fallback`, it has a fallback; as `slow`, none
      deployment('slow', 'slow', {
        aliases: ['slow-fallback'],
        timeoutMs: 250,
        retry: { maxRetries: 0 },
      }),
      deployment('limited', 'limited', {
        retry: { maxRetries: 1, baseDelayMs: 5, maxDelayMs: 1_500 },
      }),
      deployment('narrow', 'narrow', { maxConcurrency: 1 }),
      deployment('probed', 'probed', {
        healthCheck: { intervalMs: 40, timeoutMs: 500, unhealthyAfter: 1 },
      }),
      deployment('st-primary', 'stPrimary', { retry: { maxRetries: 0 } }),
      deployment('st-backup', 'stBackup'),
      deployment('ctx-small', 'ctxSmall', {
        tier: 'quality',
        contextWindow: 60,
        inputCostPer1M: 0.1,
      }),
      deployment('ctx-large', 'ctxLarge', {
        tier: 'quality',
        contextWindow: 100_000,
        inputCostPer1M: 9,
      }),
    ],
    fallbacks: {
      'fb-primary': ['fb-backup'],
      'cb-primary': ['cb-backup'],
      'slow-fallback': ['fb-backup'],
      probed: ['fb-backup'],
      'st-primary': ['st-backup'],
    },
  });
  db = await createTestDatabase('aob_model_gateway');
  nats = await startNatsServer();
  const config = loadModelGatewayConfig({
    NATS_URL: nats.url,
    DATABASE_URL: db.url,
    REDIS_URL: testRedisUrl(),
    QUOTA_KEY_PREFIX: uniqueKeyPrefix('mgw'),
    AOB_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY,
    AOB_BOOTSTRAP_TENANT: 'acme',
    LOG_LEVEL: 'silent',
  });
  app = await startModelGateway(config, {
    port: 0,
    host: '127.0.0.1',
    catalog,
    env: { FAKE_OPENAI_KEY: OPENAI_KEY, FAKE_ANTHROPIC_KEY: ANTHROPIC_KEY },
  });
  baseUrl = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  client = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${baseUrl}/v1`, maxRetries: 0 });
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await app?.close();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
  await Promise.all(Object.values(fakes ?? {}).map((f) => f.close()));
});

beforeEach(() => {
  for (const f of Object.values(fakes)) f.reset();
});

async function usageEvent(id: string): Promise<UsageRecord> {
  let found: UsageRecord | undefined;
  await waitFor(
    async () => {
      const info = await jsm.streams.info('METERING');
      for (
        let seq = info.state.last_seq;
        seq >= info.state.first_seq && info.state.messages > 0;
        seq--
      ) {
        const stored = await jsm.streams.getMessage('METERING', { seq });
        if (!stored) continue;
        const event = decodeCloudEvent({ headers: stored.header, data: stored.data });
        if (event.id === id) {
          found = event.data as UsageRecord;
          return true;
        }
      }
      return false;
    },
    { timeoutMs: 10_000, what: `usage event ${id}` },
  );
  return found as UsageRecord;
}

async function metric(pattern: RegExp): Promise<string | undefined> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return text.match(pattern)?.[1];
}

const failure = (p: Promise<unknown>) => p.then(() => undefined).catch((e: unknown) => e);

describe('openai provider', () => {
  it('passes a completion through with the upstream model, key, usage and rate-limit headers', async () => {
    fakes.openai.next({
      kind: 'answer',
      text: 'Four words from upstream.',
      headers: { 'x-ratelimit-limit-requests': '500', 'x-ratelimit-remaining-requests': '499' },
    });
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-test', messages: MESSAGES, temperature: 0.2, max_tokens: 50 })
      .withResponse();
    expect(data.choices[0]?.message.content).toBe('Four words from upstream.');
    expect(data.model).toBe('oa-upstream-model');
    expect(data.usage).toMatchObject({
      prompt_tokens: FAKE_USAGE.prompt,
      completion_tokens: FAKE_USAGE.completion,
      cost_usd: (FAKE_USAGE.prompt * 1 + FAKE_USAGE.completion * 2) / 1e6,
    });
    expect(response.headers.get('x-aob-deployment')).toBe('oa');
    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('500');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('499');
    expect(Number(response.headers.get('x-aob-overhead-ms'))).toBeLessThan(200);
    const [sent] = fakes.openai.calls;
    expect(sent?.headers.authorization).toBe(`Bearer ${OPENAI_KEY}`);
    expect(sent?.body).toMatchObject({
      model: 'oa-upstream-model',
      temperature: 0.2,
      max_tokens: 50,
    });
    expect(sent?.body).not.toHaveProperty('stream');
    const usage = await usageEvent(data.id);
    expect(usage).toMatchObject({
      deployment: 'oa',
      requested: 'gpt-test',
      model: 'oa-upstream-model',
    });
  });

  it('streams, always asking the upstream for usage, and counts tokens itself when the upstream gives none', async () => {
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    const stream = await client.chat.completions.create({
      model: 'oa',
      messages: MESSAGES,
      stream: true,
    });
    for await (const c of stream) chunks.push(c);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(
      'Hello from the fake upstream.',
    );
    expect(fakes.openai.calls[0]?.body).toMatchObject({
      stream: true,
      stream_options: { include_usage: true },
    });
    const usage = await usageEvent(chunks[0]?.id ?? '');
    expect(usage).toMatchObject({
      promptTokens: FAKE_USAGE.prompt,
      completionTokens: FAKE_USAGE.completion,
    });

    fakes.openai.next({ kind: 'answer', usage: false }, { kind: 'answer', usage: false });
    const counted = await client.chat.completions.create({
      model: 'oa',
      messages: MESSAGES,
      stream: true,
      stream_options: { include_usage: true },
    });
    let last: OpenAI.ChatCompletionChunk | undefined;
    for await (const c of counted) last = c;
    // "Hello from the fake upstream." is 6 o200k tokens; the prompt 1 message of 3 words
    expect(last?.usage).toMatchObject({ completion_tokens: 6, prompt_tokens: 10 });
    const batch = await client.chat.completions.create({ model: 'oa', messages: MESSAGES });
    expect(batch.usage).toMatchObject({ completion_tokens: 6, prompt_tokens: 10 });
  });

  it('passes tools and tool calls through, streamed and not', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
    ];
    const call = { id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' };
    fakes.openai.next(
      { kind: 'answer', toolCalls: [call] },
      { kind: 'answer', toolCalls: [call], text: '' },
    );
    const batch = await client.chat.completions.create({
      model: 'oa',
      messages: MESSAGES,
      tools,
      tool_choice: 'required',
    });
    expect(batch.choices[0]).toMatchObject({
      finish_reason: 'tool_calls',
      message: {
        content: null,
        tool_calls: [
          {
            id: 'call_1',
            type: 'function',
            function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
          },
        ],
      },
    });
    expect(fakes.openai.calls[0]?.body).toMatchObject({ tools, tool_choice: 'required' });

    const stream = client.chat.completions.stream({ model: 'oa', messages: MESSAGES, tools });
    const final = await stream.finalChatCompletion();
    expect(final.choices[0]?.finish_reason).toBe('tool_calls');
    expect(final.choices[0]?.message.tool_calls).toEqual([
      {
        id: 'call_1',
        type: 'function',
        function: { name: 'get_weather', arguments: '{"city":"Paris"}' },
      },
    ]);
    // and the conversation continues with the tool's answer
    await client.chat.completions.create({
      model: 'oa',
      messages: [
        ...MESSAGES,
        {
          role: 'assistant',
          content: null,
          tool_calls: batch.choices[0]?.message.tool_calls ?? [],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '21°C' },
      ],
      tools,
    });
    expect((fakes.openai.calls[2]?.body.messages as unknown[]).slice(1)).toEqual([
      { role: 'assistant', content: null, tool_calls: [expect.objectContaining({ id: 'call_1' })] },
      { role: 'tool', tool_call_id: 'call_1', content: '21°C' },
    ]);
  });
});

describe('anthropic provider', () => {
  const tools: OpenAI.ChatCompletionTool[] = [
    {
      type: 'function',
      function: { name: 'lookup', description: 'Look up', parameters: { type: 'object' } },
    },
  ];
  const conversation: OpenAI.ChatCompletionMessageParam[] = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Find it.' },
    {
      role: 'assistant',
      content: null,
      tool_calls: [
        { id: 'toolu_1', type: 'function', function: { name: 'lookup', arguments: '{"q":"x"}' } },
      ],
    },
    { role: 'tool', tool_call_id: 'toolu_1', content: 'found' },
  ];

  it('translates the request to the Messages API and the answer back', async () => {
    fakes.anthropic.next({
      kind: 'answer',
      text: 'Done.',
      headers: {
        'anthropic-ratelimit-requests-limit': '50',
        'anthropic-ratelimit-requests-remaining': '49',
      },
    });
    const { data, response } = await client.chat.completions
      .create({
        model: 'claude-test',
        messages: conversation,
        tools,
        tool_choice: 'auto',
        stop: 'END',
        temperature: 1.5,
      })
      .withResponse();
    const sent = fakes.anthropic.calls[0];
    expect(sent?.path).toBe('/v1/messages');
    expect(sent?.headers['x-api-key']).toBe(ANTHROPIC_KEY);
    expect(sent?.headers['anthropic-version']).toBe('2023-06-01');
    expect(sent?.body).toEqual({
      model: 'an-upstream-model',
      max_tokens: 321,
      system: 'Be brief.',
      temperature: 1,
      stop_sequences: ['END'],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Find it.' }] },
        {
          role: 'assistant',
          content: [{ type: 'tool_use', id: 'toolu_1', name: 'lookup', input: { q: 'x' } }],
        },
        {
          role: 'user',
          content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'found' }],
        },
      ],
      tools: [{ name: 'lookup', description: 'Look up', input_schema: { type: 'object' } }],
      tool_choice: { type: 'auto' },
    });
    expect(data.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: 'Done.' } });
    expect(data.usage).toMatchObject({
      prompt_tokens: FAKE_USAGE.prompt,
      completion_tokens: FAKE_USAGE.completion,
    });
    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('50');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('49');
  });

  it('streams text and tool_use as OpenAI chunks with finish_reason and usage', async () => {
    fakes.anthropic.next({
      kind: 'answer',
      text: 'Let me check.',
      toolCalls: [{ id: 'toolu_2', name: 'lookup', arguments: '{"q":"y"}' }],
    });
    const stream = client.chat.completions.stream({
      model: 'an',
      messages: MESSAGES,
      tools,
      max_tokens: 99,
      stream_options: { include_usage: true },
    });
    const final = await stream.finalChatCompletion();
    expect(fakes.anthropic.calls[0]?.body).toMatchObject({ stream: true, max_tokens: 99 });
    expect(final.choices[0]).toMatchObject({
      finish_reason: 'tool_calls',
      message: {
        content: 'Let me check.',
        tool_calls: [
          { id: 'toolu_2', type: 'function', function: { name: 'lookup', arguments: '{"q":"y"}' } },
        ],
      },
    });
    expect(final.usage).toMatchObject({
      prompt_tokens: FAKE_USAGE.prompt,
      completion_tokens: FAKE_USAGE.completion,
    });
  });

  it("ends the stream with OpenAI's error event when Anthropic sends an error event midway", async () => {
    fakes.anthropic.next({ kind: 'answer', failAfterChunks: 2, failWith: 'error-event' });
    const stream = await client.chat.completions.create({
      model: 'an',
      messages: MESSAGES,
      stream: true,
    });
    const got: string[] = [];
    const err = await failure(
      (async () => {
        for await (const c of stream) got.push(c.choices[0]?.delta.content ?? '');
      })(),
    );
    expect(got.join('')).toBe('Hello from ');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as Error).message).toMatch(/an failed mid-stream: .*overloaded_error/);
  });
});

describe('fallbacks and resilience', () => {
  it('retries a 5xx, then falls back to the next deployment of the chain', async () => {
    fakes.fbPrimary.always({ kind: 'status', status: 500 });
    const { data, response } = await client.chat.completions
      .create({ model: 'fb-primary', messages: MESSAGES })
      .withResponse();
    expect(data.choices[0]?.message.content).toBe('Hello from the fake upstream.');
    expect(response.headers.get('x-aob-deployment')).toBe('fb-backup');
    expect(response.headers.get('x-aob-attempts')).toBe('3');
    expect(fakes.fbPrimary.calls).toHaveLength(2); // first attempt + one retry
    expect(fakes.fbBackup.calls).toHaveLength(1);
    const usage = await usageEvent(data.id);
    expect(usage).toMatchObject({ requested: 'fb-primary', deployment: 'fb-backup' });
  });

  it('opens the circuit after consecutive failures, then lets one test through and closes it', async () => {
    fakes.cbPrimary.always({ kind: 'status', status: 503 });
    for (let i = 0; i < 2; i++) {
      const res = await client.chat.completions
        .create({ model: 'cb-primary', messages: MESSAGES })
        .withResponse();
      expect(res.response.headers.get('x-aob-deployment')).toBe('cb-backup');
    }
    expect(fakes.cbPrimary.calls).toHaveLength(2);
    expect(await metric(/aob_model_gateway_circuit_state\{deployment="cb-primary"\} (\d)/)).toBe(
      '1',
    );
    // open: requests go straight to the backup without touching the primary
    const skipped = await client.chat.completions
      .create({ model: 'cb-primary', messages: MESSAGES })
      .withResponse();
    expect(skipped.response.headers.get('x-aob-deployment')).toBe('cb-backup');
    expect(fakes.cbPrimary.calls).toHaveLength(2);

    fakes.cbPrimary.always({ kind: 'answer' });
    await new Promise((r) => setTimeout(r, 450));
    const recovered = await client.chat.completions
      .create({ model: 'cb-primary', messages: MESSAGES })
      .withResponse();
    expect(recovered.response.headers.get('x-aob-deployment')).toBe('cb-primary');
    expect(await metric(/aob_model_gateway_circuit_state\{deployment="cb-primary"\} (\d)/)).toBe(
      '0',
    );
    expect(
      await metric(
        /aob_model_gateway_upstream_errors_total\{deployment="cb-primary",reason="server"\} (\d+)/,
      ),
    ).toBe('2');
  });

  it('gives up on an upstream that hangs after timeoutMs, aborting the call', async () => {
    fakes.slow.always({ kind: 'hang' });
    const started = performance.now();
    const err = await failure(
      client.chat.completions.create({ model: 'slow', messages: MESSAGES }),
    );
    expect(err).toMatchObject({ status: 504, code: 'upstream_timeout' });
    expect(performance.now() - started).toBeLessThan(2_000);
    await waitFor(() => fakes.slow.calls[0]?.closedEarly === true, {
      timeoutMs: 2_000,
      what: 'upstream socket closed',
    });

    const viaFallback = await client.chat.completions
      .create({ model: 'slow-fallback', messages: MESSAGES })
      .withResponse();
    expect(viaFallback.response.headers.get('x-aob-deployment')).toBe('fb-backup');
  });

  it("waits for the upstream's Retry-After before retrying, and passes a long one on to the client", async () => {
    fakes.limited.next(
      { kind: 'status', status: 429, headers: { 'retry-after': '1' } },
      { kind: 'answer' },
    );
    const data = await client.chat.completions.create({ model: 'limited', messages: MESSAGES });
    expect(data.choices[0]?.message.content).toBeTruthy();
    const [first, second] = fakes.limited.calls;
    expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(990);

    fakes.limited.reset().always({
      kind: 'status',
      status: 429,
      headers: {
        'retry-after': '30',
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': '30s',
      },
    });
    const started = performance.now();
    const err = await failure(
      client.chat.completions.create({ model: 'limited', messages: MESSAGES }),
    );
    expect(performance.now() - started).toBeLessThan(1_000); // 30 s is more than maxDelayMs: no waiting
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const headers = (err as InstanceType<typeof OpenAI.RateLimitError>).headers;
    expect(headers.get('retry-after')).toBe('30');
    expect(headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(fakes.limited.calls).toHaveLength(1);
  });

  it('turns a request away with 429 when the deployment is at maxConcurrency (bulkhead)', async () => {
    fakes.narrow.always({ kind: 'answer', delayMs: 300 });
    const first = client.chat.completions.create({ model: 'narrow', messages: MESSAGES });
    await waitFor(() => fakes.narrow.calls.length === 1, {
      timeoutMs: 2_000,
      what: 'first call upstream',
    });
    const err = await failure(
      client.chat.completions.create({ model: 'narrow', messages: MESSAGES }),
    );
    expect(err).toMatchObject({ status: 429, code: 'deployment_at_capacity' });
    expect((await first).choices[0]?.message.content).toBeTruthy();
    expect(fakes.narrow.calls).toHaveLength(1);
    expect(
      await metric(
        /aob_model_gateway_upstream_errors_total\{deployment="narrow",reason="at_capacity"\} (\d+)/,
      ),
    ).toBe('1');
  });

  it('takes a deployment whose health probe fails out of rotation before a user hits it', async () => {
    fakes.probed.down = true;
    await waitFor(
      async () =>
        (await metric(/aob_model_gateway_deployment_up\{deployment="probed"\} (\d)/)) === '0',
      {
        timeoutMs: 3_000,
        what: 'probe marks probed down',
      },
    );
    const res = await client.chat.completions
      .create({ model: 'probed', messages: MESSAGES })
      .withResponse();
    expect(res.response.headers.get('x-aob-deployment')).toBe('fb-backup');
    expect(fakes.probed.calls).toHaveLength(0);

    fakes.probed.down = false;
    await waitFor(
      async () =>
        (await metric(/aob_model_gateway_deployment_up\{deployment="probed"\} (\d)/)) === '1',
      {
        timeoutMs: 3_000,
        what: 'probe marks probed up',
      },
    );
    const back = await client.chat.completions
      .create({ model: 'probed', messages: MESSAGES })
      .withResponse();
    expect(back.response.headers.get('x-aob-deployment')).toBe('probed');
  });
});

describe('streams under failure', () => {
  it('fails over before the first byte: an error status or a stream cut before any token', async () => {
    fakes.stPrimary.next(
      { kind: 'status', status: 502 },
      { kind: 'answer', failAfterChunks: 0, failWith: 'cut' },
    );
    for (let i = 0; i < 2; i++) {
      const { data: stream, response } = await client.chat.completions
        .create({ model: 'st-primary', messages: MESSAGES, stream: true })
        .withResponse();
      expect(response.headers.get('x-aob-deployment')).toBe('st-backup');
      let text = '';
      for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
      expect(text).toBe('Hello from the fake upstream.');
    }
    expect(fakes.stPrimary.calls).toHaveLength(2);
    expect(fakes.stBackup.calls).toHaveLength(2);
  });

  it('ends a stream that breaks after the first byte with an error event, never a clean end, and bills it', async () => {
    fakes.stPrimary.next({ kind: 'answer', failAfterChunks: 3, failWith: 'cut' });
    const res = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'st-primary', messages: MESSAGES, stream: true }),
    });
    expect(res.headers.get('x-aob-deployment')).toBe('st-primary');
    const text = await res.text();
    const frames = text.trim().split('\n\n');
    expect(frames.at(-1)).not.toBe('data: [DONE]');
    const last = JSON.parse((frames.at(-1) ?? '').replace(/^data: /, '')) as {
      error: Record<string, unknown>;
    };
    expect(last.error).toMatchObject({ type: 'server_error', code: 'upstream_error' });
    expect(last.error.message).toMatch(/st-primary failed mid-stream/);
    expect(fakes.stBackup.calls).toHaveLength(0);
    const first = JSON.parse((frames[0] ?? '').replace(/^data: /, '')) as { id: string };
    const usage = await usageEvent(first.id);
    // billed for what reached the client: three words
    expect(usage).toMatchObject({
      deployment: 'st-primary',
      completionTokens: countTextTokens('Hello from the '),
    });

    // the official client raises it
    fakes.stPrimary.next({ kind: 'answer', failAfterChunks: 2, failWith: 'error-event' });
    const stream = await client.chat.completions.create({
      model: 'st-primary',
      messages: MESSAGES,
      stream: true,
    });
    const err = await failure(
      (async () => {
        for await (const _ of stream) void _;
      })(),
    );
    expect(err).toBeInstanceOf(OpenAI.APIError);
  });

  it('closes the upstream request when the client goes away', async () => {
    fakes.openai.always({
      kind: 'answer',
      text: 'one two three four five six seven eight nine ten',
      chunkDelayMs: 100,
    });
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'oa', messages: MESSAGES, stream: true },
      { signal: controller.signal },
    );
    let id = '';
    await failure(
      (async () => {
        for await (const c of stream) {
          id = c.id;
          if (c.choices[0]?.delta.content) controller.abort();
        }
      })(),
    );
    await waitFor(() => fakes.openai.calls[0]?.closedEarly === true, {
      timeoutMs: 3_000,
      what: 'upstream socket closed',
    });
    const usage = await usageEvent(id);
    expect(usage.completionTokens).toBeLessThan(8);
  });
});

describe('routing', () => {
  it('skips a deployment whose context window is too small, and answers 400 when none fits', async () => {
    const small = await client.chat.completions
      .create({ model: 'tier:quality', messages: MESSAGES })
      .withResponse();
    expect(small.response.headers.get('x-aob-deployment')).toBe('ctx-small'); // cheapest
    const long = [{ role: 'user' as const, content: 'word '.repeat(100) }];
    const large = await client.chat.completions
      .create({ model: 'tier:quality', messages: long })
      .withResponse();
    expect(large.response.headers.get('x-aob-deployment')).toBe('ctx-large');
    expect(fakes.ctxSmall.calls).toHaveLength(1);
    const err = await failure(
      client.chat.completions.create({ model: 'ctx-small', messages: long }),
    );
    expect(err).toMatchObject({ status: 400, code: 'context_length_exceeded', param: 'messages' });
  });

  it('honours x-aob-max-cost-usd and x-aob-max-latency-ms', async () => {
    const long = [{ role: 'user' as const, content: 'word '.repeat(100) }];
    // ctx-large costs 9 $/M input: 104 prompt tokens + 10 output ≈ 0.00096 $
    const cheapOnly = await failure(
      client.chat.completions.create(
        { model: 'tier:quality', messages: long, max_tokens: 10 },
        { headers: { 'x-aob-max-cost-usd': '0.0005' } },
      ),
    );
    expect(cheapOnly).toMatchObject({ status: 400, code: 'max_cost_exceeded' });
    const fits = await client.chat.completions
      .create(
        { model: 'tier:quality', messages: long, max_tokens: 10 },
        { headers: { 'x-aob-max-cost-usd': '0.01' } },
      )
      .withResponse();
    expect(fits.response.headers.get('x-aob-deployment')).toBe('ctx-large');
    const tooCheap = await failure(
      client.chat.completions.create(
        { model: 'tier:quality', messages: MESSAGES, max_tokens: 10 },
        { headers: { 'x-aob-max-cost-usd': '0.0000001' } },
      ),
    );
    expect(tooCheap).toMatchObject({ status: 400, code: 'max_cost_exceeded' });

    // two slow answers lift the moving average of time to first token well above 50 ms
    fakes.openai.always({ kind: 'answer', delayMs: 200 });
    await client.chat.completions.create({ model: 'oa', messages: MESSAGES });
    await client.chat.completions.create({ model: 'oa', messages: MESSAGES });
    const tooSlow = await failure(
      client.chat.completions.create(
        { model: 'oa', messages: MESSAGES },
        { headers: { 'x-aob-max-latency-ms': '50' } },
      ),
    );
    expect(tooSlow).toMatchObject({ status: 503, code: 'no_deployment_available' });
    const bad = await failure(
      client.chat.completions.create(
        { model: 'oa', messages: MESSAGES },
        { headers: { 'x-aob-max-latency-ms': 'soon' } },
      ),
    );
    expect(bad).toMatchObject({ status: 400 });
  });
});
