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

/**
 * Writes OpenAI's server-sent events: `data: <json>\n\n` per chunk, then `data: [DONE]\n\n`.
 * Honours back-pressure. An error after the first byte cannot change the status any more, so it
 * goes out as a final `data: {"error": ...}` frame, as OpenAI does.
 *
 * Frames that are ready in the same turn of the event loop leave in one socket write: the
 * response is corked at the first of them and uncorked on the next tick. So the headers, the
 * role chunk and the first token (the upstream's first chunk, in hand before the stream starts)
 * go out together, and so do the frames parsed from one read of the upstream's body; nothing
 * waits for a later read.
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
  let corked = false;
  const flush = () => {
    corked = false;
    res.uncork();
  };
  const corkUntilNextTick = () => {
    if (corked) return;
    corked = true;
    res.cork();
    process.nextTick(flush);
  };
  corkUntilNextTick();
  try {
    for await (const chunk of chunks) {
      corkUntilNextTick();
      if (!res.write(`data: ${JSON.stringify(chunk)}\n\n`)) await once(res, 'drain', { signal });
    }
    res.end('data: [DONE]\n\n');
  } catch (err) {
    if (signal.aborted || res.destroyed) return; // the client left; generation already stopped
    logger.error({ err, url: res.req.url }, 'stream failed after it started');
    res.end(`data: ${JSON.stringify(toOpenAiError(err).body)}\n\n`);
  }
}
