/**
 * Why an upstream call failed, in the terms routing needs:
 * - `rate_limited` (429): retry after `retryAfterMs`, else fail over;
 * - `server` (5xx, Anthropic's 529), `connection` (refused, reset), `timeout`, `protocol` (a
 *   malformed or cut answer): retry with backoff, then fail over;
 * - `auth` (401/403: our upstream key is wrong), `not_found` (the upstream does not serve the
 *   model): the deployment is misconfigured, fail over at once;
 * - `context_length`: the prompt does not fit this deployment, fail over to one it fits;
 * - `bad_request`: the request itself is wrong, answer the client 400 with the upstream's message.
 */
export type UpstreamFailure =
  | 'rate_limited'
  | 'server'
  | 'connection'
  | 'timeout'
  | 'protocol'
  | 'auth'
  | 'not_found'
  | 'context_length'
  | 'bad_request';

export interface UpstreamErrorOptions {
  /** The upstream's HTTP status, when it answered. */
  status?: number;
  /** From `Retry-After` / `retry-after-ms`. */
  retryAfterMs?: number;
  /** OpenAI-style `x-ratelimit-*` headers of the failed answer. */
  rateLimit?: Record<string, string>;
  cause?: unknown;
}

/** A failed upstream call. The message is safe to log; it never contains the upstream's key. */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;
  readonly rateLimit: Record<string, string>;

  constructor(
    readonly failure: UpstreamFailure,
    message: string,
    opts: UpstreamErrorOptions = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
    this.rateLimit = opts.rateLimit ?? {};
  }

  /** Worth another attempt at the same deployment (after a backoff). */
  get retryable(): boolean {
    return (
      this.failure === 'rate_limited' ||
      this.failure === 'server' ||
      this.failure === 'connection' ||
      this.failure === 'timeout' ||
      this.failure === 'protocol'
    );
  }

  /** Says something about the deployment's health (counts towards its circuit breaker). */
  get countsAgainstDeployment(): boolean {
    return this.failure !== 'bad_request' && this.failure !== 'context_length';
  }
}

export const isUpstreamError = (err: unknown): err is UpstreamError => err instanceof UpstreamError;

/** Classifies an upstream HTTP error status; `message` is the upstream's own, when it gave one. */
export function upstreamErrorForStatus(
  status: number,
  message: string,
  opts: Omit<UpstreamErrorOptions, 'status'> & { code?: string | undefined } = {},
): UpstreamError {
  const text = `upstream answered ${status}: ${message}`;
  const withStatus = { ...opts, status };
  if (status === 429) return new UpstreamError('rate_limited', text, withStatus);
  if (status === 401 || status === 403) return new UpstreamError('auth', text, withStatus);
  if (status === 404) return new UpstreamError('not_found', text, withStatus);
  if (status === 408) return new UpstreamError('timeout', text, withStatus);
  if (status === 413 || looksLikeContextOverflow(opts.code, message)) {
    return new UpstreamError('context_length', text, withStatus);
  }
  if (status >= 500) return new UpstreamError('server', text, withStatus);
  if (status >= 400) return new UpstreamError('bad_request', message, withStatus);
  return new UpstreamError('protocol', `unexpected upstream status ${status}`, withStatus);
}

/**
 * OpenAI says `context_length_exceeded`; vLLM, llama.cpp and Anthropic say it in words
 * ("maximum context length", "prompt is too long", "exceeds the context window").
 */
function looksLikeContextOverflow(code: string | undefined, message: string): boolean {
  if (code === 'context_length_exceeded') return true;
  return /context length|context window|prompt is too long|too many tokens|max_model_len/i.test(
    message,
  );
}

/**
 * `Retry-After` (seconds or an HTTP date) or OpenAI's `retry-after-ms`, in milliseconds.
 * Undefined when absent or unreadable.
 */
export function parseRetryAfter(
  headers: Record<string, string | string[] | undefined>,
  now = Date.now(),
): number | undefined {
  const ms = first(headers['retry-after-ms']);
  if (ms !== undefined && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const value = first(headers['retry-after'])?.trim();
  if (value === undefined || value === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
