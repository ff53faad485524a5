import { DomainError, httpStatusFor, isDomainError } from '@aob/errors';

/** OpenAI's error body: `{error: {message, type, param, code}}`. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** The OpenAI-specific fields a DomainError carries in `details.openai`. */
export interface OpenAiErrorFields {
  /** The request field at fault, e.g. `messages[0].role`. */
  param?: string | null;
  /** OpenAI's machine-readable code, e.g. `model_not_found`. */
  code?: string | null;
  /** Overrides the type derived from the status. */
  type?: string;
}

const withFields = (fields: OpenAiErrorFields) => ({ openai: fields });

/** 400 naming the request field at fault. */
export function invalidParam(
  param: string | null,
  message: string,
  code: string | null = null,
): DomainError {
  return new DomainError('InvalidRequest', message, { details: withFields({ param, code }) });
}

/** 404 in OpenAI's words, for a model that is neither a deployment, an alias nor a served tier. */
export function modelNotFound(model: string): DomainError {
  return new DomainError(
    'NotFound',
    `The model \`${model}\` does not exist or you do not have access to it.`,
    {
      details: withFields({ param: 'model', code: 'model_not_found' }),
    },
  );
}

/** 400 in OpenAI's words: the prompt (plus max_tokens) fits no deployment of the model. */
export function contextLengthExceeded(
  model: string,
  largestWindow: number,
  promptTokens: number,
  maxTokens: number | undefined,
): DomainError {
  const asked =
    maxTokens === undefined
      ? `your messages resulted in ${promptTokens} tokens`
      : `you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion)`;
  return new DomainError(
    'InvalidRequest',
    `This model's maximum context length is ${largestWindow} tokens. However, ${asked}. Please reduce the length of the messages or completion. (model: ${model})`,
    { details: withFields({ param: 'messages', code: 'context_length_exceeded' }) },
  );
}

/** No deployment can take the request: 400 when it never could (cost), 503 when it may later. */
export function noDeploymentFits(model: string, message: string, status: 400 | 503): DomainError {
  if (status === 400) {
    return new DomainError('InvalidRequest', message, {
      details: withFields({ param: null, code: 'max_cost_exceeded' }),
    });
  }
  return new DomainError('Unavailable', message, {
    retryable: true,
    details: { ...withFields({ code: 'no_deployment_available' }), retryAfterSeconds: 1, model },
  });
}

/** What a failed upstream call tells the client (see UpstreamDispatcher). */
export function upstreamFailed(
  status: 400 | 429 | 502 | 503 | 504,
  message: string,
  opts: { code: string; retryAfterMs?: number; headers?: Record<string, string> },
): DomainError {
  const code =
    status === 400
      ? 'InvalidRequest'
      : status === 429
        ? 'QuotaExceeded'
        : status === 503
          ? 'Unavailable'
          : status === 504
            ? 'Timeout'
            : 'UpstreamError';
  const details: Record<string, unknown> = withFields({ code: opts.code });
  if (opts.retryAfterMs !== undefined) details.retryAfterSeconds = opts.retryAfterMs / 1000;
  if (opts.headers) details.headers = opts.headers;
  return new DomainError(code, message, { retryable: status !== 400, details });
}

/** The fields stored by the helpers above, if `details` has them. */
export function openAiFieldsOf(details: Record<string, unknown> | undefined): OpenAiErrorFields {
  const fields = details?.openai;
  return typeof fields === 'object' && fields !== null ? fields : {};
}

export interface OpenAiErrorResponse {
  status: number;
  body: OpenAiErrorBody;
  headers: Record<string, string>;
}

const INTERNAL_MESSAGE = 'The server had an error while processing your request.';

/**
 * The one place where anything thrown becomes OpenAI's error shape and an HTTP status: domain
 * errors by their code, Nest's HTTP exceptions (unknown route), body-parser errors. Internal
 * errors never leak their message.
 */
export function toOpenAiError(
  err: unknown,
  req?: { method?: string; originalUrl?: string },
): OpenAiErrorResponse {
  if (isDomainError(err)) {
    const status = httpStatusFor(err.code);
    const fields = openAiFieldsOf(err.details);
    const headers: Record<string, string> = {};
    if (status === 401) headers['WWW-Authenticate'] = 'Bearer realm="aob"';
    const retryAfter = err.details?.retryAfterSeconds;
    if (typeof retryAfter === 'number') headers['Retry-After'] = String(Math.ceil(retryAfter));
    // e.g. the upstream's x-ratelimit-* of a 429, passed through
    const extra = err.details?.headers;
    if (typeof extra === 'object' && extra !== null) {
      for (const [name, value] of Object.entries(extra)) {
        if (typeof value === 'string') headers[name] = value;
      }
    }
    return {
      status,
      headers,
      body: errorBody(
        status >= 500 && err.code === 'Internal' ? INTERNAL_MESSAGE : err.message,
        fields.type ?? typeForStatus(status),
        fields.param ?? null,
        fields.code !== undefined ? fields.code : defaultCode(status),
      ),
    };
  }
  const e = err as {
    status?: unknown;
    type?: unknown;
    getStatus?: () => number;
    getResponse?: () => unknown;
  };
  if (typeof e?.getStatus === 'function') {
    const status = e.getStatus();
    if (status === 404 && req) {
      return {
        status,
        headers: {},
        body: errorBody(
          `Invalid URL (${req.method ?? 'GET'} ${req.originalUrl ?? ''})`,
          typeForStatus(status),
          null,
          null,
        ),
      };
    }
    const response = e.getResponse?.();
    const message =
      typeof response === 'string'
        ? response
        : typeof response === 'object' &&
            response !== null &&
            'message' in response &&
            typeof response.message === 'string'
          ? response.message
          : 'request failed';
    return {
      status,
      headers: {},
      body: errorBody(message, typeForStatus(status), null, defaultCode(status)),
    };
  }
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    if (e.type === 'entity.parse.failed') {
      return {
        status: 400,
        headers: {},
        body: errorBody(
          'We could not parse the JSON body of your request. The API expects a JSON payload, but what was sent was not valid JSON.',
          'invalid_request_error',
          null,
          null,
        ),
      };
    }
    if (e.type === 'entity.too.large') {
      return {
        status: 413,
        headers: {},
        body: errorBody(
          'The request body exceeds the size limit.',
          'invalid_request_error',
          null,
          'request_too_large',
        ),
      };
    }
    if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
      return {
        status: 415,
        headers: {},
        body: errorBody(
          'Unsupported content encoding or charset.',
          'invalid_request_error',
          null,
          null,
        ),
      };
    }
    return {
      status: e.status,
      headers: {},
      body: errorBody('Bad request.', 'invalid_request_error', null, null),
    };
  }
  return {
    status: 500,
    headers: {},
    body: errorBody(INTERNAL_MESSAGE, 'server_error', null, null),
  };
}

function errorBody(
  message: string,
  type: string,
  param: string | null,
  code: string | null,
): OpenAiErrorBody {
  return { error: { message, type, param, code } };
}

function typeForStatus(status: number): string {
  if (status === 403) return 'permission_error';
  if (status === 429) return 'rate_limit_error';
  if (status === 402) return 'insufficient_quota';
  if (status >= 500) return 'server_error';
  // OpenAI answers 401 (bad key), 404 (unknown model) and 413 with this type too
  return 'invalid_request_error';
}

function defaultCode(status: number): string | null {
  switch (status) {
    case 401:
      return 'invalid_api_key';
    case 402:
      return 'insufficient_quota';
    case 403:
      return 'permission_denied';
    case 429:
      return 'rate_limit_exceeded';
    case 503:
      return 'service_unavailable';
    default:
      return null;
  }
}
