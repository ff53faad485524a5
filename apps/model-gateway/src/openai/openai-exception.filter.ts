import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ArgumentsHost, Catch, type ExceptionFilter, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { toOpenAiError } from './openai-errors';

/** Answers every error of the app in OpenAI's shape (the model gateway has no problem+json). */
@Catch()
export class OpenAiExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('http');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    sendOpenAiError(exception, ctx.getRequest<Request>(), ctx.getResponse<Response>(), this.logger);
  }
}

const defaultLogger = new Logger('http');

/**
 * Writes `err` as an OpenAI error response; also the body-parser error responder of main.ts and
 * the error answer of the raw chat completions path.
 */
export function sendOpenAiError(
  err: unknown,
  req: IncomingMessage & { originalUrl?: string },
  res: ServerResponse,
  logger = defaultLogger,
): void {
  // the client went away (aborted stream or call): nobody is left to answer
  if (res.destroyed || res.writableEnded) return;
  const url = req.originalUrl ?? req.url;
  const answer = toOpenAiError(err, { method: req.method, originalUrl: url });
  if (answer.status >= 500) logger.error({ err, url }, 'request failed');
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const name in answer.headers) res.setHeader(name, answer.headers[name] as string);
  writeJson(res, answer.status, answer.body);
}

/** A JSON answer, as express's `res.json` writes it (without its ETag, meaningless here). */
export function writeJson(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  res.end(json);
}
