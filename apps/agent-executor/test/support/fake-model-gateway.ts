import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedCall {
  headers: IncomingHttpHeaders;
  body: {
    model: string;
    stream?: boolean;
    stream_options?: { include_usage?: boolean };
    messages: { role: string; content: string }[];
    max_tokens?: number;
  };
  /** When the call arrived (ms since the epoch). */
  receivedAt: number;
  /** When the client closed the connection before the answer was complete (an aborted call). */
  abortedAt?: number;
}

export interface FakeReply {
  /** Tokens streamed as content deltas, in order. */
  tokens: string[];
  /** HTTP status instead of a stream (an OpenAI-shaped error body). */
  status?: number;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Wait this long before each token (a slow model stream). */
  tokenDelayMs?: number;
}

/**
 * A minimal OpenAI-compatible `/v1/chat/completions` that streams SSE chunks and a final usage
 * chunk with `cost_usd`, like the model gateway does. Stands in for apps/model-gateway in tests.
 */
export class FakeModelGateway {
  readonly calls: RecordedCall[] = [];
  private server: Server | undefined;
  /** Decides the answer of each call. @default echoes the last message back word by word */
  reply: (call: RecordedCall) => FakeReply = (call) => ({
    tokens: `You said: ${call.body.messages.at(-1)?.content ?? ''}`.split(/(?<= )/),
  });

  get url(): string {
    const { port } = this.server!.address() as AddressInfo;
    return `http://127.0.0.1:${port}/v1`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
          res.writeHead(404, { 'content-type': 'application/json' }).end(
            JSON.stringify({
              error: { message: 'not found', type: 'invalid_request_error', code: null },
            }),
          );
          return;
        }
        const call: RecordedCall = {
          headers: req.headers,
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
          receivedAt: Date.now(),
        };
        this.calls.push(call);
        res.on('close', () => {
          if (!res.writableFinished) call.abortedAt = Date.now();
        });
        const reply = this.reply(call);
        setTimeout(() => void this.answer(res, call, reply), reply.delayMs ?? 0);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
  }

  private async answer(res: ServerResponse, call: RecordedCall, reply: FakeReply): Promise<void> {
    if (call.abortedAt !== undefined) return;
    if (reply.status !== undefined) {
      res.writeHead(reply.status, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          error: { message: `fake failure ${reply.status}`, type: 'server_error', code: null },
        }),
      );
      return;
    }
    const id = `chatcmpl-fake${this.calls.length}`;
    const base = {
      id,
      object: 'chat.completion.chunk',
      created: Math.floor(Date.now() / 1000),
      model: 'sim-small',
    };
    res.writeHead(200, { 'content-type': 'text/event-stream', 'x-aob-deployment': 'local-fast' });
    const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
    send({
      ...base,
      choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
    });
    for (const token of reply.tokens) {
      if (reply.tokenDelayMs) {
        await new Promise((r) => setTimeout(r, reply.tokenDelayMs));
        if (call.abortedAt !== undefined) return;
      }
      send({ ...base, choices: [{ index: 0, delta: { content: token }, finish_reason: null }] });
    }
    send({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    const prompt = call.body.messages.reduce((n, m) => n + m.content.split(/\s+/).length, 0);
    send({
      ...base,
      choices: [],
      usage: {
        prompt_tokens: prompt,
        completion_tokens: reply.tokens.length,
        total_tokens: prompt + reply.tokens.length,
        cost_usd: 0.00042,
      },
    });
    res.end('data: [DONE]\n\n');
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }
}
