import { Injectable } from '@nestjs/common';
import { DomainError, type ErrorCode } from '@aob/errors';
import { type ModelAdmission, ModelQuotaGuard } from '@aob/quotas';
import type { ChatCompletionRequest } from '../openai/chat-completion-request';

/**
 * The tenant's quota taken by one admitted request: its `x-ratelimit-*` headers and the
 * settlement of the tokens it reserved.
 */
export interface QuotaTicket {
  /** OpenAI's `x-ratelimit-*` of the tenant's limits (empty for a limit that is not set). */
  headers: Record<string, string>;
  /**
   * Returns the unused part of the reservation: `actualTokens` is what the request really used
   * (prompt + completion; 0 when no upstream answered). The first call counts, later ones do
   * nothing; runs off the request path and never throws.
   */
  settle(actualTokens: number): void;
}

/** The domain code whose HTTP status is the refusal's. */
function codeOf(status: NonNullable<ModelAdmission['error']>['status']): ErrorCode {
  switch (status) {
    case 400:
      return 'InvalidRequest';
    case 402:
      return 'BudgetExceeded';
    case 429:
      return 'QuotaExceeded';
    case 503:
      return 'Unavailable';
  }
}

/**
 * Admission of model calls against the tenant's quotas (libs/quotas `ModelQuotaGuard`, scope
 * `models`: a request bucket of its own, so a run's LLM calls never use up the gateway's `runs`
 * bucket; tokens per minute and the monthly budget are the tenant's, shared with everything).
 */
@Injectable()
export class ModelQuotaService {
  constructor(private readonly guard: ModelQuotaGuard) {}

  /**
   * Takes a request from the tenant's bucket and reserves the request's worst case (prompt
   * estimate + max_tokens) from its tokens per minute.
   * @throws DomainError QuotaExceeded (429), BudgetExceeded (402), InvalidRequest (400, the
   *   worst case exceeds the whole limit) or Unavailable (503, quota state unknown and
   *   QUOTA_FAIL_MODE=closed), carrying OpenAI's type and code, Retry-After and the headers
   */
  async admit(tenantId: string, body: ChatCompletionRequest): Promise<QuotaTicket> {
    const admission = await this.guard.admit(tenantId, body);
    if (!admission.allowed) throw refused(admission);
    return {
      headers: admission.headers,
      settle: (actualTokens) => void admission.settle(actualTokens),
    };
  }
}

function refused(admission: ModelAdmission): DomainError {
  const error = admission.error;
  if (!error) return new DomainError('Internal', 'quota refusal without an answer');
  const details: Record<string, unknown> = {
    openai: { type: error.body.error.type, code: error.body.error.code, param: null },
    headers: admission.headers,
  };
  if (error.retryAfterSeconds !== undefined) details.retryAfterSeconds = error.retryAfterSeconds;
  return new DomainError(codeOf(error.status), error.body.error.message, {
    retryable: error.status === 429 || error.status === 503,
    details,
  });
}
