import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A fake LLM server for tests, speaking either OpenAI's chat completions or Anthropic's Messages
 * API on the wire (JSON and SSE framing as the real ones send them). Each request takes the next
 * queued behaviour, else the default one, so a test can script "429 then OK" or "hang".
 */

export type WireFormat = 'openai' | 'anthropic';

export interface FakeToolCall {
  id: string;
  name: string;
  /** JSON text; streamed in two pieces. */
  arguments: string;
}

export type Behaviour =
  | {
      kind: 'answer';
      /** Streamed word by word. @default 'Hello from the fake upstream.' */
      text?: string;
      toolCalls?: FakeToolCall[];
      /** Report usage (OpenAI: only when stream_options.include_usage asks, as OpenAI does). @default true */
      usage?: boolean;
      /** Before the status line. @default 0 */
      delayMs?: number;
      /** Between streamed chunks. @default 0 */
      chunkDelayMs?: number;
      /** Extra response headers (rate-limit headers...). */
      headers?: Record<string, string>;
      /** Streams only: after this many content chunks, cut the connection (or send an error event). */
      failAfterChunks?: number;
      failWith?: 'cut' | 'error-event';
    }
  | { kind: 'status'; status: number; headers?: Record<string, string>; message?: string }
  /** Reads the request and never answers. */
  | { kind: 'hang' };

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
  at: number;
  /** The client closed the connection before the response ended. */
  closedEarly: boolean;
}

export const FAKE_USAGE = { prompt: 11, completion: 7 };

export class FakeLlmUpstream {
  readonly requests: RecordedRequest[] = [];
  /** Probe answers: `/health` and the models list answer 503 while true. */
  down = false;
  probes = 0;
  private readonly queue: Behaviour[] = [];
  private fallback: Behaviour = { kind: 'answer' };
  private readonly server: Server;
  private readonly open = new Set<ServerResponse>();

  private constructor(readonly format: WireFormat) {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  static async start(format: WireFormat): Promise<FakeLlmUpstream> {
    const fake = new FakeLlmUpstream(format);
    fake.server.listen(0, '127.0.0.1');
    await once(fake.server, 'listening');
    return fake;
  }

  get origin(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** What a catalog's baseUrl says: `<origin>/v1` for OpenAI, the origin for Anthropic. */
  get baseUrl(): string {
    return this.format === 'openai' ? `${this.origin}/v1` : this.origin;
  }

  /** Completion requests only (not probes). */
  get calls(): RecordedRequest[] {
    return this.requests.filter((r) => r.method === 'POST');
  }

  /** The next requests take these behaviours, in order. */
  next(...behaviours: Behaviour[]): this {
    this.queue.push(...behaviours);
    return this;
  }

  /** What requests get once the queue is empty. */
  always(behaviour: Behaviour): this {
    this.fallback = behaviour;
    return this;
  }

  reset(): this {
    this.requests.length = 0;
    this.queue.length = 0;
    this.fallback = { kind: 'answer' };
    this.down = false;
    this.probes = 0;
    return this;
  }

  async close(): Promise<void> {
    for (const res of this.open) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = '';
    for await (const chunk of req) raw += String(chunk);
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: req.headers,
      body: raw ? (JSON.parse(raw) as Record<string, unknown>) : {},
      at: performance.now(),
      closedEarly: false,
    };
    this.requests.push(record);
    this.open.add(res);
    res.on('close', () => {
      this.open.delete(res);
      if (!res.writableFinished) record.closedEarly = true;
    });
    if (req.method === 'GET') return this.probe(res);
    const expected = this.format === 'openai' ? '/v1/chat/completions' : '/v1/messages';
    if (record.path !== expected)
      return json(res, 404, { error: { message: `no route ${record.path}` } });
    const behaviour = this.queue.shift() ?? this.fallback;
    if (behaviour.kind === 'hang') return;
    if (behaviour.kind === 'status') {
      const message = behaviour.message ?? `fake failure ${behaviour.status}`;
      const body =
        this.format === 'openai'
          ? { error: { message, type: 'server_error', param: null, code: null } }
          : {
              type: 'error',
              error: { type: behaviour.status === 429 ? 'rate_limit_error' : 'api_error', message },
            };
      return json(res, behaviour.status, body, behaviour.headers);
    }
    if (behaviour.delayMs) await sleep(behaviour.delayMs);
    if (res.destroyed) return;
    const stream = record.body.stream === true;
    if (this.format === 'openai') {
      if (stream) await this.openAiStream(res, record.body, behaviour);
      else json(res, 200, openAiCompletion(record.body, behaviour), behaviour.headers);
    } else if (stream) await this.anthropicStream(res, record.body, behaviour);
    else json(res, 200, anthropicMessage(record.body, behaviour), behaviour.headers);
  }

  private probe(res: ServerResponse): void {
    this.probes++;
    if (this.down) return json(res, 503, { error: { message: 'engine dead' } });
    json(res, 200, { object: 'list', data: [{ id: 'fake', object: 'model' }] });
  }

  private async openAiStream(
    res: ServerResponse,
    body: Record<string, unknown>,
    b: Extract<Behaviour, { kind: 'answer' }>,
  ): Promise<void> {
    startEvents(res, b.headers);
    const base = {
      id: 'chatcmpl-fake',
      object: 'chat.completion.chunk',
      created: 1,
      model: String(body.model),
    };
    const send = (chunk: unknown) => res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    const choice = (delta: unknown, finish: string | null = null) => ({
      ...base,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    });
    send(choice({ role: 'assistant', content: '' }));
    let sent = 0;
    for (const word of words(b.text)) {
      if (await this.failHere(res, b, sent++)) return;
      send(choice({ content: word }));
      if (b.chunkDelayMs) await sleep(b.chunkDelayMs);
      if (res.destroyed) return;
    }
    (b.toolCalls ?? []).forEach((call, index) => {
      const half = Math.ceil(call.arguments.length / 2);
      send(
        choice({
          tool_calls: [
            { index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } },
          ],
        }),
      );
      send(
        choice({ tool_calls: [{ index, function: { arguments: call.arguments.slice(0, half) } }] }),
      );
      send(
        choice({ tool_calls: [{ index, function: { arguments: call.arguments.slice(half) } }] }),
      );
    });
    send(choice({}, b.toolCalls?.length ? 'tool_calls' : 'stop'));
    const wantsUsage = (body.stream_options as { include_usage?: boolean } | undefined)
      ?.include_usage;
    if (b.usage !== false && wantsUsage) send({ ...base, choices: [], usage: openAiUsage() });
    res.end('data: [DONE]\n\n');
  }

  private async anthropicStream(
    res: ServerResponse,
    body: Record<string, unknown>,
    b: Extract<Behaviour, { kind: 'answer' }>,
  ): Promise<void> {
    startEvents(res, b.headers);
    const send = (event: string, data: Record<string, unknown>) =>
      res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`);
    const usage = b.usage !== false;
    send('message_start', {
      message: {
        id: 'msg_fake',
        type: 'message',
        role: 'assistant',
        content: [],
        model: body.model,
        stop_reason: null,
        stop_sequence: null,
        ...(usage ? { usage: { input_tokens: FAKE_USAGE.prompt, output_tokens: 1 } } : {}),
      },
    });
    send('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
    send('ping', {});
    let sent = 0;
    for (const word of words(b.text)) {
      if (await this.failHere(res, b, sent++)) return;
      send('content_block_delta', { index: 0, delta: { type: 'text_delta', text: word } });
      if (b.chunkDelayMs) await sleep(b.chunkDelayMs);
      if (res.destroyed) return;
    }
    send('content_block_stop', { index: 0 });
    (b.toolCalls ?? []).forEach((call, i) => {
      const index = i + 1;
      const half = Math.ceil(call.arguments.length / 2);
      send('content_block_start', {
        index,
        content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} },
      });
      send('content_block_delta', {
        index,
        delta: { type: 'input_json_delta', partial_json: call.arguments.slice(0, half) },
      });
      send('content_block_delta', {
        index,
        delta: { type: 'input_json_delta', partial_json: call.arguments.slice(half) },
      });
      send('content_block_stop', { index });
    });
    send('message_delta', {
      delta: { stop_reason: b.toolCalls?.length ? 'tool_use' : 'end_turn', stop_sequence: null },
      ...(usage ? { usage: { output_tokens: FAKE_USAGE.completion } } : {}),
    });
    send('message_stop', {});
    res.end();
  }

  /** Cuts the stream or sends an error event when the behaviour says so. */
  private async failHere(
    res: ServerResponse,
    b: Extract<Behaviour, { kind: 'answer' }>,
    sent: number,
  ): Promise<boolean> {
    if (b.failAfterChunks === undefined || sent < b.failAfterChunks) return false;
    if (b.failWith === 'error-event') {
      if (this.format === 'openai') {
        res.end(
          `data: ${JSON.stringify({ error: { message: 'fake failure mid-stream', type: 'server_error' } })}\n\n`,
        );
      } else {
        res.end(
          `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })}\n\n`,
        );
      }
    } else {
      // let what was written reach the client, then drop the connection mid-stream
      await sleep(20);
      res.socket?.destroy();
    }
    return true;
  }
}

const DEFAULT_TEXT = 'Hello from the fake upstream.';

function words(text = DEFAULT_TEXT): string[] {
  return text.match(/\S+\s*/g) ?? [];
}

function openAiUsage() {
  return {
    prompt_tokens: FAKE_USAGE.prompt,
    completion_tokens: FAKE_USAGE.completion,
    total_tokens: FAKE_USAGE.prompt + FAKE_USAGE.completion,
  };
}

function openAiCompletion(
  body: Record<string, unknown>,
  b: Extract<Behaviour, { kind: 'answer' }>,
) {
  const calls = b.toolCalls ?? [];
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: 1,
    model: body.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: calls.length && b.text === undefined ? null : (b.text ?? DEFAULT_TEXT),
          ...(calls.length
            ? {
                tool_calls: calls.map((c) => ({
                  id: c.id,
                  type: 'function',
                  function: { name: c.name, arguments: c.arguments },
                })),
              }
            : {}),
        },
        logprobs: null,
        finish_reason: calls.length ? 'tool_calls' : 'stop',
      },
    ],
    ...(b.usage === false ? {} : { usage: openAiUsage() }),
  };
}

function anthropicMessage(
  body: Record<string, unknown>,
  b: Extract<Behaviour, { kind: 'answer' }>,
) {
  const calls = b.toolCalls ?? [];
  const content: unknown[] = [];
  if (!(calls.length && b.text === undefined))
    content.push({ type: 'text', text: b.text ?? DEFAULT_TEXT });
  for (const c of calls)
    content.push({ type: 'tool_use', id: c.id, name: c.name, input: JSON.parse(c.arguments) });
  return {
    id: 'msg_fake',
    type: 'message',
    role: 'assistant',
    model: body.model,
    content,
    stop_reason: calls.length ? 'tool_use' : 'end_turn',
    stop_sequence: null,
    ...(b.usage === false
      ? {}
      : { usage: { input_tokens: FAKE_USAGE.prompt, output_tokens: FAKE_USAGE.completion } }),
  };
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function startEvents(res: ServerResponse, headers: Record<string, string> = {}): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    ...headers,
  });
  res.flushHeaders();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
