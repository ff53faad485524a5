import { Catch, type RpcExceptionFilter } from '@nestjs/common';
import { throwError, type Observable } from 'rxjs';

/**
 * Nest's default RPC exception filter replaces every non-RpcException with
 * `{status: 'error', message: 'Internal server error'}`, which hides a DomainError's code and
 * `retryable` from the JetStream transport (a non-retryable error would then be retried).
 * Register this filter for JetStream handlers so the transport sees the original error:
 * `app.useGlobalFilters(new JetStreamExceptionFilter())` on the microservice, or `@UseFilters(...)`.
 */
@Catch()
export class JetStreamExceptionFilter implements RpcExceptionFilter<unknown> {
  catch(exception: unknown): Observable<never> {
    return throwError(() => exception);
  }
}
