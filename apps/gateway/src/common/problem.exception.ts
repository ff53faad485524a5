import { type ArgumentsHost, Catch, type ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';
import { PROBLEM_BASE, sendProblem, type ProblemDetails } from '@aob/observability';

/**
 * A problem+json answer whose status has no DomainError code (422, 501). Everything else is a
 * DomainError mapped by the shared ProblemDetailsFilter.
 */
export class ProblemException extends Error {
  readonly problem: ProblemDetails;

  constructor(
    status: number,
    slug: string,
    title: string,
    detail: string,
    extra: Record<string, unknown> = {},
  ) {
    super(detail);
    this.name = 'ProblemException';
    const code = slug.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
    this.problem = { type: PROBLEM_BASE + slug, title, status, detail, code, ...extra };
  }
}

/** Controller-scoped (scoped filters run before the global catch-all one). */
@Catch(ProblemException)
export class ProblemExceptionFilter implements ExceptionFilter<ProblemException> {
  catch(exception: ProblemException, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    sendProblem(http.getResponse<Response>(), {
      ...exception.problem,
      instance: http.getRequest<Request>().originalUrl,
    });
  }
}
