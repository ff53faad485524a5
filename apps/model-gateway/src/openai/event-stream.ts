import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { Logger } from '@nestjs/common';
import { toOpenAiError } from './openai-errors';

const logger = new Logger('event-stream');

/** An AbortSignal that fires when the client goes away before the response is complete. */
export function abortWhenClientLeaves(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  // `res` 'close' (not `req` 'close', which fires once the body is read) tells a lost client
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

const uncork = (res: ServerResponse) => res.uncork();

/**
 * Writes OpenAI's server-sent events: `data: <json>\n\n` per chunk, then `data: [DONE]\n\n`.
 * Honours back-pressure. An error after the first byte cannot change the status any more, so it
 * goes out as a final `data: {"error": ...}` frame, as OpenAI does.
 *
 * The headers, the role chunk and the first token (the upstream's first chunk, in hand before
 * the stream starts) leave in one socket write: the response is corked until the next tick.
 * Later frames go out as they come, one by one, so a client that stops reading sees no frame
 * it was not sent on its own.
 */
export async function writeEventStream(
  res: ServerResponse,
  headers: Record<string, string>,
  chunks: AsyncIterable<unknown>,
  signal: AbortSignal,
): Promise<void> {
  res.statusCode = 200;
  for (const name in headers) res.setHeader(name, headers[name] as string);
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('Connection', 'keep-alive');
  // proxies such as nginx would otherwise buffer the stream
  res.setHeader('X-Accel-Buffering', 'no');
  res.cork();
  process.nextTick(uncork, res);
  try {
    for await (const chunk of chunks) {
      if (!res.write(`data: ${JSON.stringify(chunk)}\n\n`)) await once(res, 'drain', { signal });
    }
    res.end('data: [DONE]\n\n');
  } catch (err) {
    if (signal.aborted || res.destroyed) return; // the client left; generation already stopped
    logger.error({ err, url: res.req.url }, 'stream failed after it started');
    res.end(`data: ${JSON.stringify(toOpenAiError(err).body)}\n\n`);
  }
}
