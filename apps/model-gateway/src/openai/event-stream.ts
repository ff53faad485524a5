import { once } from 'node:events';
import { Logger } from '@nestjs/common';
import type { Response } from 'express';
import { toOpenAiError } from './openai-errors';

const logger = new Logger('event-stream');

/** An AbortSignal that fires when the client goes away before the response is complete. */
export function abortWhenClientLeaves(res: Response): AbortSignal {
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
 */
export async function writeEventStream(
  res: Response,
  headers: Record<string, string>,
  chunks: AsyncIterable<unknown>,
  signal: AbortSignal,
): Promise<void> {
  res.status(200).set({
    ...headers,
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    // proxies such as nginx would otherwise buffer the stream
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  try {
    for await (const chunk of chunks) {
      if (!res.write(`data: ${JSON.stringify(chunk)}\n\n`)) await once(res, 'drain', { signal });
    }
    res.end('data: [DONE]\n\n');
  } catch (err) {
    if (signal.aborted || res.destroyed) return; // the client left; generation already stopped
    logger.error({ err, url: res.req.originalUrl }, 'stream failed after it started');
    res.end(`data: ${JSON.stringify(toOpenAiError(err).body)}\n\n`);
  }
}
