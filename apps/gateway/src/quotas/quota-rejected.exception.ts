import { type ArgumentsHost, Catch, type ExceptionFilter } from '@nestjs/common';
import type { Request, Response } from 'express';
import { DomainError } from '@aob/errors';
import { sendProblem, toProblem } from '@aob/observability';

/**
 * A request refused by a quota: 429 `quota-exceeded`, 402 `budget-exceeded` or 503 `unavailable`
 * (QUOTA_FAIL_MODE=closed), carrying the headers the answer needs (Retry-After, RateLimit-*).
 */
export class QuotaRejectedException extends DomainError {
  constructor(
    code: 'QuotaExceeded' | 'BudgetExceeded' | 'Unavailable',
    message: string,
    readonly headers: Record<string, string>,
    details: Record<string, unknown> = {},
  ) {
    super(code, message, { retryable: code !== 'BudgetExceeded', details });
  }
}

/** Controller-scoped on routes that check quotas: problem+json plus the quota headers. */
@Catch(QuotaRejectedException)
export class QuotaRejectedFilter implements ExceptionFilter<QuotaRejectedException> {
  catch(exception: QuotaRejectedException, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    sendProblem(
      http.getResponse<Response>(),
      { ...toProblem(exception), instance: http.getRequest<Request>().originalUrl },
      exception.headers,
    );
  }
}
