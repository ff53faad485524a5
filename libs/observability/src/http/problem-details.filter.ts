import { type ArgumentsHost, Catch, type ExceptionFilter, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { isDomainError } from '@aob/errors';
import { sendProblem, toProblem } from './problem-details';

/** The one place where HTTP errors become RFC 9457 problem+json. */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  private readonly logger = new Logger('http');

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const req = ctx.getRequest<Request>();
    const res = ctx.getResponse<Response>();
    const p = { ...toProblem(exception), instance: req.originalUrl };
    if (p.status >= 500) {
      this.logger.error({ err: exception, url: req.originalUrl }, 'request failed');
    }
    const headers: Record<string, string> = {};
    if (isDomainError(exception)) {
      const d = exception.details ?? {};
      if (typeof d.retryAfterSeconds === 'number')
        headers['Retry-After'] = String(Math.ceil(d.retryAfterSeconds));
      if (exception.code === 'Unauthorized') headers['WWW-Authenticate'] = 'Bearer realm="aob"';
    }
    sendProblem(res, p, headers);
  }
}
