import { isDomainError } from '@aob/errors';
import { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import { modelError } from './model-client';

const apiError = (status: number, headers: Record<string, string> = {}) =>
  APIError.generate(
    status,
    { error: { message: `status ${status}` } },
    undefined,
    new Headers(headers),
  );

describe('modelError', () => {
  it.each([400, 401, 403, 404, 413, 422])('%i is not retryable', (status) => {
    const err = modelError(apiError(status));
    expect(isDomainError(err) && !err.retryable).toBe(true);
  });

  it.each([408, 429, 500, 502, 503, 504])('%i is retryable', (status) => {
    const err = modelError(apiError(status));
    expect(isDomainError(err) && err.retryable).toBe(true);
  });

  it('passes Retry-After on as retryAfterMs', () => {
    const err = modelError(apiError(429, { 'retry-after': '3' }));
    expect(isDomainError(err) && err.details?.retryAfterMs).toBe(3_000);
    const ms = modelError(apiError(503, { 'retry-after-ms': '250' }));
    expect(isDomainError(ms) && ms.details?.retryAfterMs).toBe(250);
  });

  it('treats network errors as retryable', () => {
    const err = modelError(new APIConnectionError({ message: 'ECONNREFUSED' }));
    expect(isDomainError(err) && err.code === 'Unavailable' && err.retryable).toBe(true);
  });

  it("keeps the run signal's reason when the call was aborted", () => {
    const controller = new AbortController();
    const reason = new Error('time limit');
    controller.abort(reason);
    expect(modelError(new APIUserAbortError(), controller.signal)).toBe(reason);
  });
});
