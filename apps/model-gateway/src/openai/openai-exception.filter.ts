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

/** Writes `err` as an OpenAI error response; also the body-parser error responder of main.ts. */
export function sendOpenAiError(
  err: unknown,
  req: Request,
  res: Response,
  logger = new Logger('http'),
): void {
  // the client went away (aborted stream or call): nobody is left to answer
  if (res.destroyed || res.writableEnded) return;
  const answer = toOpenAiError(err, req);
  if (answer.status >= 500) logger.error({ err, url: req.originalUrl }, 'request failed');
  if (res.headersSent) {
    res.end();
    return;
  }
  res.status(answer.status).set(answer.headers).json(answer.body);
}
