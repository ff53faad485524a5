import type { IncomingHttpHeaders } from 'node:http';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { parseRetryAfter, UpstreamError, upstreamErrorForStatus } from './upstream-error';
import type { Deployment } from '../catalog/catalog.schema';
import type { UpstreamHttpClient, UpstreamResponse } from './upstream-http-client';

/** Server-sent events of a response body, as they arrive. An event cut off by the end of the body is dropped (as the SSE spec says). */
export async function* readServerSentEvents(
  body: AsyncIterable<Buffer>,
): AsyncGenerator<EventSourceMessage> {
  const ready: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => ready.push(event) });
  const decoder = new TextDecoder();
  for await (const bytes of body) {
    parser.feed(decoder.decode(bytes, { stream: true }));
    while (ready.length > 0) yield ready.shift() as EventSourceMessage;
  }
}

/** The upstream's OpenAI-style `x-ratelimit-*` headers, passed on to the client as they are. */
export function openAiRateLimitHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith('x-ratelimit-') && typeof value === 'string') out[name] = value;
  }
  return out;
}

export interface ErrorBodyReader {
  /** Pulls the message and code out of the upstream's error JSON. */
  (body: unknown): { message?: string; code?: string };
}

/**
 * Reads a non-2xx answer and turns it into an `UpstreamError` (rate-limit headers and
 * Retry-After included). The body is read to the end so the socket goes back to the pool.
 */
export async function upstreamErrorOf(
  res: UpstreamResponse,
  rateLimit: Record<string, string>,
  readError: ErrorBodyReader,
): Promise<UpstreamError> {
  let text = '';
  try {
    text = await res.body.text();
  } catch {
    // the status says enough
  }
  let found: { message?: string; code?: string } = {};
  try {
    found = readError(JSON.parse(text));
  } catch {
    // not JSON (a proxy's HTML page): keep a short excerpt
  }
  const message = found.message ?? (text.slice(0, 200) || `HTTP ${res.status}`);
  const retryAfterMs = parseRetryAfter(res.headers);
  return upstreamErrorForStatus(res.status, message, {
    code: found.code,
    rateLimit,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}

/** Parses one JSON payload of an event stream; garbage is a protocol failure of the upstream. */
export function parseJsonEvent(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch (err) {
    throw new UpstreamError(
      'protocol',
      `upstream sent an unreadable event: ${data.slice(0, 100)}`,
      {
        cause: err,
      },
    );
  }
}

/** Reads the body as JSON; a body that is not JSON is a protocol failure. */
export async function readJsonBody(res: UpstreamResponse): Promise<unknown> {
  const text = await res.body.text();
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UpstreamError(
      'protocol',
      `upstream answered ${res.status} with a body that is not JSON`,
      {
        cause: err,
      },
    );
  }
}

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * One health probe: GET `url` with the deployment's auth headers. Alive = any answer below 500
 * within the probe timeout (a 401 or 404 still proves the server is up; requests will tell more).
 */
export async function probeUpstream(
  http: UpstreamHttpClient,
  url: URL,
  headers: Record<string, string>,
  signal: AbortSignal,
  deployment: Deployment,
): Promise<boolean> {
  const check = deployment.healthCheck;
  const timeoutMs = check === false ? 2_000 : check.timeoutMs;
  const probeSignal = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
  try {
    const res = await http.send({
      method: 'GET',
      url,
      headers: { ...headers, accept: 'application/json' },
      signal: probeSignal,
      idleTimeoutMs: timeoutMs,
    });
    // read to the end: the socket goes back to the pool warm
    await res.body.text();
    return res.status < 500;
  } catch {
    return false;
  }
}
