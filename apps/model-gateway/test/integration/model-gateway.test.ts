import 'reflect-metadata';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
import { loadModelGatewayConfig } from '../../src/config';
import { countPromptTokens, countTextTokens } from '../../src/tokens/token-counter';
import { parseChatCompletionRequest } from '../../src/openai/chat-completion-request';

jest.setTimeout(60_000);

const ADMIN_KEY = 'aob_test_admin_key_0123456789abcdef';
const SERVICE_KEY = 'aob_test_service_key_0123456789abcdef';

/** Quick deployments for most tests and a slow one to abort (remote upstreams: routing-resilience.test.ts). */
const CATALOG = `
deployments:
  - name: local-fast
    provider: local
    model: sim-small
    tier: fast
    aliases: [gpt-4o-mini]
    inputCostPer1M: 0.15
    outputCostPer1M: 0.60
    simulate: { ttftMs: 5, tokensPerSecond: 20000, maxOutputTokens: 48 }
  - name: local-slow
    provider: local
    model: sim-slow
    tier: quality
    inputCostPer1M: 5
    outputCostPer1M: 20
    simulate: { ttftMs: 10, tokensPerSecond: 40, maxOutputTokens: 400 }
`;

const MESSAGES = [
  { role: 'system' as const, content: 'You are a test.' },
  { role: 'user' as const, content: 'Say something deterministic.' },
];
const PROMPT_TOKENS = countPromptTokens(
  parseChatCompletionRequest({ model: 'x', messages: MESSAGES }).messages,
);

type UsageWithCost = OpenAI.CompletionUsage & { cost_usd: number };
const costOf = (prompt: number, completion: number, input: number, output: number) =>
  Math.round(((prompt * input + completion * output) / 1e6) * 1e10) / 1e10;

let nats: TestNatsServer;
let db: TestDatabase;
let app: INestApplication;
let baseUrl: string;
let client: OpenAI;
let nc: NatsConnection;
let jsm: JetStreamManager;
let catalogDir: string;

beforeAll(async () => {
  db = await createTestDatabase('aob_model_gateway');
  nats = await startNatsServer();
  catalogDir = mkdtempSync(path.join(tmpdir(), 'aob-model-gateway-'));
  writeFileSync(path.join(catalogDir, 'catalog.yaml'), CATALOG);
  const config = loadModelGatewayConfig({
    NATS_URL: nats.url,
    DATABASE_URL: db.url,
    REDIS_URL: testRedisUrl(),
    QUOTA_KEY_PREFIX: uniqueKeyPrefix('mgw'),
    AOB_BOOTSTRAP_ADMIN_KEY: ADMIN_KEY,
    AOB_BOOTSTRAP_TENANT: 'acme',
    AOB_SERVICE_KEY: SERVICE_KEY,
    MODEL_CATALOG: path.join(catalogDir, 'catalog.yaml'),
    LOG_LEVEL: 'silent',
  });
  app = await startModelGateway(config, { port: 0, host: '127.0.0.1' });
  const { port } = app.getHttpServer().address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${port}`;
  client = new OpenAI({ apiKey: ADMIN_KEY, baseURL: `${baseUrl}/v1`, maxRetries: 0 });
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await app?.close();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
  if (catalogDir) rmSync(catalogDir, { recursive: true, force: true });
});

/** Every usage event stored on the METERING stream, decoded. */
async function usageEvents(): Promise<
  { id: string; tenantid: unknown; subject: unknown; data: UsageRecord }[]
> {
  const info = await jsm.streams.info('METERING');
  const out = [];
  for (
    let seq = info.state.first_seq;
    seq <= info.state.last_seq && info.state.messages > 0;
    seq++
  ) {
    const stored = await jsm.streams.getMessage('METERING', { seq });
    if (!stored || stored.subject !== 'metering.usage') continue;
    const event = decodeCloudEvent({ headers: stored.header, data: stored.data });
    out.push({
      id: event.id,
      tenantid: event.tenantid,
      subject: event.subject,
      data: event.data as UsageRecord,
    });
  }
  return out;
}

async function usageEvent(id: string) {
  let found: Awaited<ReturnType<typeof usageEvents>>[number] | undefined;
  await waitFor(
    async () => (found = (await usageEvents()).find((e) => e.id === id)) !== undefined,
    {
      timeoutMs: 20_000,
      what: `usage event ${id}`,
    },
  );
  return found as NonNullable<typeof found>;
}

async function streamed(
  params: Omit<OpenAI.ChatCompletionCreateParamsStreaming, 'stream'>,
  c = client,
) {
  const stream = await c.chat.completions.create({ ...params, stream: true });
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

describe('model gateway (in-process, official openai client)', () => {
  it('answers a non-streamed completion in OpenAI shape with honest usage and the AOB headers', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: MESSAGES })
      .withResponse();
    expect(data).toMatchObject({
      object: 'chat.completion',
      model: 'sim-small',
      choices: [
        { index: 0, message: { role: 'assistant' }, finish_reason: 'stop', logprobs: null },
      ],
    });
    expect(data.id).toMatch(/^chatcmpl-[A-Za-z0-9]+$/);
    expect(data.system_fingerprint).toMatch(/^fp_[0-9a-f]{10}$/);
    expect(Math.abs(data.created - Date.now() / 1000)).toBeLessThan(5);
    const content = data.choices[0]?.message.content ?? '';
    expect(content).toMatch(/^[A-Z].*\.$/);
    expect(data.usage).toMatchObject({
      prompt_tokens: PROMPT_TOKENS,
      completion_tokens: 48,
      total_tokens: PROMPT_TOKENS + 48,
      cost_usd: costOf(PROMPT_TOKENS, 48, 0.15, 0.6),
    });
    expect(countTextTokens(content)).toBe(48);
    expect(response.headers.get('x-aob-deployment')).toBe('local-fast');
    expect(Number(response.headers.get('x-aob-overhead-ms'))).toBeGreaterThanOrEqual(0);
    // the provider simulates >= 5 ms; overhead excludes it
    expect(Number(response.headers.get('x-aob-overhead-ms'))).toBeLessThan(1_000);
    expect(response.headers.get('x-request-id')).toBeTruthy();
    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('unlimited');
    expect(response.headers.get('x-ratelimit-remaining-tokens')).toBe('unlimited');

    const again = await client.chat.completions.create({ model: 'local-fast', messages: MESSAGES });
    expect(again.choices[0]?.message.content).toBe(content);
    expect(again.id).not.toBe(data.id);
  });

  it('streams chunks that add up to exactly the non-streamed answer, then the usage chunk', async () => {
    const whole = await client.chat.completions.create({ model: 'tier:fast', messages: MESSAGES });
    const { data: stream, response } = await client.chat.completions
      .create({
        model: 'tier:fast',
        messages: MESSAGES,
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(response.headers.get('x-aob-deployment')).toBe('local-fast');
    expect(Number(response.headers.get('x-aob-overhead-ms'))).toBeGreaterThanOrEqual(0);
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    const ids = new Set(chunks.map((c) => c.id));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^chatcmpl-/);
    expect(
      chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'sim-small'),
    ).toBe(true);
    expect(chunks[0]?.choices[0]?.delta.role).toBe('assistant');
    const content = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(content).toBe(whole.choices[0]?.message.content);
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finish.map((c) => c.choices[0]?.finish_reason)).toEqual(['stop']);
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toEqual(whole.usage);
    expect((last?.usage as UsageWithCost).completion_tokens).toBe(countTextTokens(content));
    // every other chunk says usage: null when usage was asked for, as OpenAI does
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);

    const withoutUsage = await streamed({ model: 'tier:fast', messages: MESSAGES });
    expect(withoutUsage.every((c) => c.usage === undefined && c.choices.length === 1)).toBe(true);
  });

  it('cuts at max_tokens with finish_reason length, streamed or not', async () => {
    const whole = await client.chat.completions.create({ model: 'local-fast', messages: MESSAGES });
    const cut = await client.chat.completions.create({
      model: 'local-fast',
      messages: MESSAGES,
      max_tokens: 5,
    });
    expect(cut.choices[0]?.finish_reason).toBe('length');
    expect(cut.usage?.completion_tokens).toBe(5);
    expect(
      whole.choices[0]?.message.content?.startsWith(cut.choices[0]?.message.content ?? ''),
    ).toBe(true);

    const chunks = await streamed({
      model: 'local-fast',
      messages: MESSAGES,
      max_completion_tokens: 5,
      stream_options: { include_usage: true },
    });
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(
      cut.choices[0]?.message.content,
    );
    expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0]?.finish_reason).toBe(
      'length',
    );
    expect(chunks.at(-1)?.usage?.completion_tokens).toBe(5);
  });

  it('lists deployments, aliases and served tiers', async () => {
    const ids: string[] = [];
    for await (const model of client.models.list()) {
      expect(model).toEqual({
        id: model.id,
        object: 'model',
        created: expect.any(Number),
        owned_by: expect.any(String),
      });
      ids.push(model.id);
    }
    expect(ids).toEqual(['local-fast', 'local-slow', 'gpt-4o-mini', 'tier:fast', 'tier:quality']);
    expect(await client.models.retrieve('tier:fast')).toMatchObject({
      id: 'tier:fast',
      owned_by: 'aob',
    });
  });

  it("answers an unknown model 404 model_not_found in OpenAI's shape", async () => {
    const err = await client.chat.completions
      .create({ model: 'gpt-9', messages: MESSAGES })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err).toMatchObject({
      status: 404,
      code: 'model_not_found',
      type: 'invalid_request_error',
      param: 'model',
      error: { message: 'The model `gpt-9` does not exist or you do not have access to it.' },
    });
    const stream = await client.chat.completions
      .create({ model: 'gpt-9', messages: MESSAGES, stream: true })
      .catch((e: unknown) => e);
    expect(stream).toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.models.retrieve('gpt-9')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('answers a bad request 400 naming the field, malformed JSON included', async () => {
    const err = await client.chat.completions
      .create({ model: 'local-fast', messages: MESSAGES, n: 2 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, type: 'invalid_request_error', param: 'n' });

    const roleErr = await client.chat.completions
      .create({
        model: 'local-fast',
        messages: [
          { role: 'robot', content: 'x' },
        ] as unknown as OpenAI.ChatCompletionMessageParam[],
      })
      .catch((e: unknown) => e);
    expect(roleErr).toMatchObject({ status: 400, param: 'messages[0].role' });

    const res = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: '{"model": "local-fast", "messages": [',
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({
      error: {
        message: expect.stringContaining('could not parse the JSON body'),
        type: 'invalid_request_error',
        param: null,
        code: null,
      },
    });

    const big = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'local-fast',
        messages: [{ role: 'user', content: 'x'.repeat(1_100_000) }],
      }),
    });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({
      error: { type: 'invalid_request_error', code: 'request_too_large' },
    });
  });

  it('answers alike on its raw path and through express (a gzip body takes the express route)', async () => {
    const body = JSON.stringify({ model: 'local-fast', messages: MESSAGES });
    const headers = {
      authorization: `Bearer ${ADMIN_KEY}`,
      'content-type': 'application/json',
      'x-request-id': 'same-answer-1',
    };
    const url = `${baseUrl}/v1/chat/completions`;
    const raw = await fetch(url, { method: 'POST', headers, body });
    const viaExpress = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-encoding': 'gzip' },
      body: gzipSync(body),
    });
    expect(raw.status).toBe(200);
    expect(viaExpress.status).toBe(200);
    const [a, b] = (await Promise.all([raw.json(), viaExpress.json()])) as OpenAI.ChatCompletion[];
    expect(b?.choices[0]?.message.content).toBe(a?.choices[0]?.message.content);
    const names = (res: Response) => [...res.headers.keys()].filter((n) => n !== 'date').sort();
    expect(names(raw)).toEqual(names(viaExpress));
    for (const name of ['content-security-policy', 'x-content-type-options', 'content-type']) {
      expect(raw.headers.get(name)).toBe(viaExpress.headers.get(name));
    }
    expect(raw.headers.get('x-content-type-options')).toBe('nosniff');
    expect(raw.headers.get('x-request-id')).toBe('same-answer-1');
    expect(raw.headers.get('x-aob-deployment')).toBe('local-fast');

    // a body over 1 MiB announced by its length is refused before it is read
    const big = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        model: 'local-fast',
        messages: [{ role: 'user', content: 'x'.repeat(2 ** 20) }],
      }),
    });
    expect(big.status).toBe(413);
    expect(big.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it("answers a missing or wrong key 401 in OpenAI's shape with WWW-Authenticate", async () => {
    const wrong = new OpenAI({ apiKey: 'not-the-key', baseURL: `${baseUrl}/v1`, maxRetries: 0 });
    const err = await wrong.chat.completions
      .create({ model: 'local-fast', messages: MESSAGES })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err).toMatchObject({
      status: 401,
      type: 'invalid_request_error',
      code: 'invalid_api_key',
    });
    await expect(wrong.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);

    const res = await fetch(`${baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'local-fast', messages: MESSAGES }),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await res.json()).toEqual({
      error: {
        message: expect.any(String),
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_api_key',
      },
    });
  });

  it('answers an unknown route 404 in OpenAI shape', async () => {
    const res = await fetch(`${baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: {
        message: 'Invalid URL (POST /v1/completions)',
        type: 'invalid_request_error',
        param: null,
        code: null,
      },
    });
  });

  it('publishes a usage event per completion on METERING, attributed to the run when the executor calls', async () => {
    const executor = new OpenAI({
      apiKey: SERVICE_KEY,
      baseURL: `${baseUrl}/v1`,
      maxRetries: 0,
      defaultHeaders: {
        'x-aob-tenant-id': 'tenant-7',
        'x-aob-run-id': 'run-42',
        'x-aob-agent': 'chat',
      },
    });
    const chunks = await streamed(
      { model: 'tier:fast', messages: MESSAGES, stream_options: { include_usage: true } },
      executor,
    );
    const id = chunks[0]?.id as string;
    const event = await usageEvent(id);
    expect(event).toMatchObject({ id, tenantid: 'tenant-7', subject: 'run-42' });
    expect(event.data).toEqual({
      tenantId: 'tenant-7',
      runId: 'run-42',
      agent: 'chat',
      requested: 'tier:fast',
      model: 'sim-small',
      deployment: 'local-fast',
      promptTokens: PROMPT_TOKENS,
      completionTokens: 48,
      costUsd: costOf(PROMPT_TOKENS, 48, 0.15, 0.6),
      latencyMs: expect.any(Number),
      at: expect.any(String),
    });

    // a user key cannot bill its calls to someone's run: the headers are ignored
    const user = new OpenAI({
      apiKey: ADMIN_KEY,
      baseURL: `${baseUrl}/v1`,
      maxRetries: 0,
      defaultHeaders: { 'x-aob-run-id': 'run-42', 'x-aob-agent': 'chat' },
    });
    const plain = await user.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES });
    const userEvent = await usageEvent(plain.id);
    expect(userEvent.tenantid).toBe('acme');
    expect(userEvent.data).toMatchObject({
      tenantId: 'acme',
      requested: 'gpt-4o-mini',
      deployment: 'local-fast',
    });
    expect(userEvent.data).not.toHaveProperty('runId');
    expect(userEvent.data).not.toHaveProperty('agent');
  });

  it('stops generating when the client aborts a stream, and bills what was generated', async () => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'tier:quality', messages: MESSAGES, stream: true },
      { signal: controller.signal },
    );
    let received = 0;
    let id = '';
    try {
      for await (const chunk of stream) {
        id = chunk.id;
        if (chunk.choices[0]?.delta.content) received++;
        if (received === 5) controller.abort();
      }
    } catch (err) {
      // the SDK ends the iteration quietly or with its abort error, depending on timing
      expect(err).toBeInstanceOf(OpenAI.APIUserAbortError);
    }
    expect(received).toBe(5);
    const event = await usageEvent(id);
    // 400 tokens at 40/s would take 10 s; the abort came after 5 (slack for a loaded machine)
    expect(event.data.completionTokens).toBeGreaterThanOrEqual(5);
    expect(event.data.completionTokens).toBeLessThan(100);
    expect(event.data.costUsd).toBe(
      costOf(event.data.promptTokens, event.data.completionTokens, 5, 20),
    );
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /aob_model_gateway_requests_total\{deployment="local-slow",status="499"\} 1/,
    );
  });

  it('keeps answering while NATS restarts, and the usage event still lands', async () => {
    const restarting = nats.restart();
    const during = await client.chat.completions.create({
      model: 'local-fast',
      messages: MESSAGES,
    });
    expect(during.choices[0]?.finish_reason).toBe('stop');
    await restarting;
    const event = await usageEvent(during.id);
    expect(event.data.completionTokens).toBe(48);
  });

  it('is ready when NATS is, and serves metrics', async () => {
    const ready = await fetch(`${baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ checks: { nats: { status: 'up' } } });
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /aob_model_gateway_requests_total\{deployment="local-fast",status="200"\} \d+/,
    );
    expect(metrics).toMatch(
      /aob_model_gateway_requests_total\{deployment="none",status="401"\} \d+/,
    );
    expect(metrics).toMatch(
      /aob_model_gateway_requests_total\{deployment="none",status="404"\} \d+/,
    );
    expect(metrics).toMatch(
      /aob_model_gateway_tokens_total\{deployment="local-fast",kind="completion"\} \d+/,
    );
    expect(metrics).toMatch(/aob_model_gateway_ttft_seconds_bucket/);
    expect(metrics).toMatch(/aob_model_gateway_usage_events_total\{outcome="published"\} \d+/);
  });
});
