/**
 * Domain errors carry a stable code. Each transport maps codes in one place:
 * HTTP -> problem+json status (see `httpStatusFor`), JetStream -> ack / nak(delay) / term.
 */
export type ErrorCode =
  | 'InvalidRequest'
  | 'InvalidEvent'
  | 'UnknownAgent'
  | 'NotFound'
  | 'Conflict'
  | 'Unauthorized'
  | 'Forbidden'
  | 'PayloadTooLarge'
  | 'QuotaExceeded'
  | 'BudgetExceeded'
  | 'Cancelled'
  | 'Timeout'
  | 'Unavailable'
  | 'UpstreamError'
  | 'AgentFailed'
  | 'Internal';

export interface DomainErrorOptions {
  /** Whether retrying the same work later may succeed. @default false */
  retryable?: boolean;
  /** Extra machine-readable fields (problem+json extension members). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class DomainError extends Error {
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options: DomainErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }
}

export const invalidRequest = (message: string, details?: Record<string, unknown>) =>
  new DomainError('InvalidRequest', message, { details });
export const notFound = (what: string) => new DomainError('NotFound', `${what} not found`);

/** True when `err` is a DomainError (also across package copies). */
export function isDomainError(err: unknown): err is DomainError {
  return (
    err instanceof DomainError || (err instanceof Error && 'code' in err && 'retryable' in err)
  );
}

const STATUS: Record<ErrorCode, number> = {
  InvalidRequest: 400,
  InvalidEvent: 400,
  UnknownAgent: 400,
  NotFound: 404,
  Conflict: 409,
  Unauthorized: 401,
  Forbidden: 403,
  PayloadTooLarge: 413,
  QuotaExceeded: 429,
  BudgetExceeded: 402,
  Cancelled: 409,
  Timeout: 504,
  Unavailable: 503,
  UpstreamError: 502,
  AgentFailed: 500,
  Internal: 500,
};

export function httpStatusFor(code: ErrorCode): number {
  return STATUS[code];
}

/** kebab-case slug used in problem+json `type` URIs: QuotaExceeded -> quota-exceeded. */
export function problemSlug(code: ErrorCode): string {
  return code.replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
}

/** Normalises anything thrown into { code, message, retryable } for events and logs. */
export function describeError(err: unknown): { code: string; message: string; retryable: boolean } {
  if (isDomainError(err)) return { code: err.code, message: err.message, retryable: err.retryable };
  if (err instanceof Error) return { code: 'Internal', message: err.message, retryable: true };
  return { code: 'Internal', message: String(err), retryable: true };
}
