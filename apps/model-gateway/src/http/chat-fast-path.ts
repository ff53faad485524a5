import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AuthGuard, AuthorizableRequest } from '@aob/auth';
import { histogram, setRequestRoute } from '@aob/observability';
import type { ChatCompletionsService } from '../chat/chat-completions.service';
import { serveChatCompletion } from '../chat/serve-chat-completion';
import type { ModelGatewayMetrics } from '../metrics/model-gateway.metrics';
import { sendOpenAiError } from '../openai/openai-exception.filter';
import type { ModelQuotaService } from '../quotas/model-quota.service';

export const CHAT_COMPLETIONS_PATH = '/v1/chat/completions';
const PERMISSION = 'models:invoke';
/** A request id a client may choose (the observability module's rule). */
const GIVEN_REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The request log (pino): one line per answered request, as pino-http writes it. */
export interface RequestLog {
  isLevelEnabled(level: string): boolean;
  info(obj: object, msg: string): void;
}

export interface ChatFastPathOptions {
  /** App name: the `app` label of `aob_http_request_duration_seconds`. */
  app: string;
  guard: AuthGuard;
  chat: ChatCompletionsService;
  quotas: ModelQuotaService;
  metrics: ModelGatewayMetrics;
  /** Headers of every answer (helmet's), set as the express stack sets them. */
  securityHeaders: ReadonlyArray<readonly [string, string]>;
  /** Request body cap in bytes (the express stack's `1mb`). */
  bodyLimitBytes: number;
  /** The request logger, once there is one (nestjs-pino makes it when the app starts). */
  requestLog: () => RequestLog | undefined;
  /** The client address as express computes `req.ip` (its trust proxy setting). */
  clientIp: (req: IncomingMessage) => string | undefined;
}

/** A body-parser-shaped error: `toOpenAiError` answers it as the express stack's would be. */
class BodyError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `POST /v1/chat/completions` served straight from node's HTTP server, in front of express: the
 * request never goes through express's router, body parser, helmet, pino-http or Nest's guards,
 * pipes and interceptors, which cost more than the gateway's own work. It does the same things
 * as that stack, in the same order and with the same answers: helmet's headers, `x-request-id`,
 * the 1 MiB JSON body (413 / 400 in OpenAI's shape), the request metrics, the auth guard's
 * decision (`AuthGuard.authorize`: API key / OIDC / service key, tenant, audit, counters),
 * then the controller's work (serveChatCompletion), errors through sendOpenAiError and one
 * request log line.
 *
 * It takes only the plain case — `POST` on the exact path, `Content-Type: application/json`
 * (charset utf-8 or none), no `Content-Encoding`, a body announced by length or chunking —;
 * anything else (compressed or other bodies, trailing slash, other methods) returns false
 * untouched and goes on to express, where the Nest controller answers it the same way.
 */
export function chatFastPath(
  opts: ChatFastPathOptions,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const duration = histogram({
    name: 'aob_http_request_duration_seconds',
    help: 'HTTP request duration by method, route template and status code',
    labelNames: ['app', 'method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });

  const serve = async (
    req: IncomingMessage,
    res: ServerResponse,
    id: string,
    body: unknown,
  ): Promise<void> => {
    const startedAt = performance.now();
    opts.metrics.countRequestOnClose(res);
    try {
      const authorizable: AuthorizableRequest = {
        headers: req.headers,
        method: 'POST',
        path: CHAT_COMPLETIONS_PATH,
        id,
        get ip() {
          return opts.clientIp(req);
        },
      };
      const principal = await opts.guard.authorize(authorizable, PERMISSION);
      await serveChatCompletion(opts.chat, opts.quotas, {
        body,
        principal,
        headers: req.headers,
        res,
        startedAt,
      });
    } catch (err) {
      sendOpenAiError(err, req, res);
    }
  };

  return (req, res) => {
    if (!takes(req)) return false;
    const arrived = performance.now();
    for (const [name, value] of opts.securityHeaders) res.setHeader(name, value);
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && GIVEN_REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('x-request-id', id);
    // the express stack labels body errors `unmatched`: they never reach its router
    let route = 'unmatched';
    res.once('close', () => {
      const status = res.statusCode;
      duration.observe(
        { app: opts.app, method: 'POST', route, status: String(status) },
        (performance.now() - arrived) / 1000,
      );
      if (route !== 'unmatched') logRequest(opts.requestLog(), req, res, id, arrived);
    });
    readJsonBody(req, opts.bodyLimitBytes, (err, body) => {
      if (err) {
        sendOpenAiError(err, req, res);
        return;
      }
      route = CHAT_COMPLETIONS_PATH;
      setRequestRoute(req, route); // the server span's name, when tracing
      // serve answers its own errors; should answering fail too, the connection is dropped
      serve(req, res, id, body).catch(() => res.destroy());
    });
    return true;
  };
}

/** Puts the fast path in front of the server's request listeners (express). */
export function installChatFastPath(
  server: Server,
  take: (req: IncomingMessage, res: ServerResponse) => boolean,
): void {
  const listeners = server.listeners('request') as ((
    req: IncomingMessage,
    res: ServerResponse,
  ) => void)[];
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (take(req, res)) return;
    for (const listener of listeners) listener.call(server, req, res);
  });
}

/** The plain requests the fast path serves; see chatFastPath. */
function takes(req: IncomingMessage): boolean {
  if (req.method !== 'POST') return false;
  const url = req.url ?? '';
  if (
    !url.startsWith(CHAT_COMPLETIONS_PATH) ||
    (url.length > CHAT_COMPLETIONS_PATH.length && url[CHAT_COMPLETIONS_PATH.length] !== '?')
  ) {
    return false;
  }
  const h = req.headers;
  const encoding = h['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') return false;
  // type-is' hasBody: without either header express leaves the body undefined
  if (h['transfer-encoding'] === undefined && h['content-length'] === undefined) return false;
  return isPlainJson(h['content-type']);
}

/** `application/json`, with no parameter but `charset=utf-8`. */
function isPlainJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const ct = contentType.toLowerCase();
  const semi = ct.indexOf(';');
  if (semi === -1) return ct.trim() === 'application/json';
  if (ct.slice(0, semi).trim() !== 'application/json') return false;
  const param = ct.slice(semi + 1).trim();
  return param === 'charset=utf-8' || param === 'charset="utf-8"';
}

/**
 * Reads and parses the JSON body as express.json({limit, strict: false}) does: 413 past the
 * limit (announced or counted), an empty body is `{}`, a leading BOM is dropped, bad JSON is a
 * 400 `entity.parse.failed`.
 */
function readJsonBody(
  req: IncomingMessage,
  limit: number,
  done: (err: BodyError | undefined, body?: unknown) => void,
): void {
  const announced = Number(req.headers['content-length']);
  if (announced > limit) {
    req.resume();
    done(new BodyError(413, 'entity.too.large', 'request entity too large'));
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  let failed = false;
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > limit) {
      failed = true;
      req.off('data', onData);
      req.resume();
      done(new BodyError(413, 'entity.too.large', 'request entity too large'));
      return;
    }
    chunks.push(chunk);
  };
  req.on('data', onData);
  req.once('end', () => {
    if (failed) return;
    let text =
      chunks.length === 1
        ? (chunks[0] as Buffer).toString('utf8')
        : Buffer.concat(chunks).toString('utf8');
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.length === 0) {
      done(undefined, {});
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      done(new BodyError(400, 'entity.parse.failed', (err as Error).message));
      return;
    }
    done(undefined, body);
  });
  // a client that leaves mid-body: nobody is left to answer
  req.once('error', () => {
    failed = true;
  });
}

/** The line pino-http logs when a response is over (same fields, same messages). */
function logRequest(
  log: RequestLog | undefined,
  req: IncomingMessage,
  res: ServerResponse,
  id: string,
  arrived: number,
): void {
  if (!log?.isLevelEnabled('info')) return;
  const fields: Record<string, unknown> = {
    req: { id, method: req.method, url: req.url },
    // pino's `res` serializer reports statusCode only once headersSent says the head went out
    res: { statusCode: res.statusCode, headersSent: res.headersSent },
    responseTime: Math.round(performance.now() - arrived),
  };
  if (res.statusCode >= 500) {
    fields.err = new Error(`failed with status code ${res.statusCode}`);
    log.info(fields, 'request errored');
    return;
  }
  log.info(
    fields,
    !req.readableAborted && res.writableEnded ? 'request completed' : 'request aborted',
  );
}
