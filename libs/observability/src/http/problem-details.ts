import type { Response } from 'express';
import { type ErrorCode, httpStatusFor, isDomainError, problemSlug } from '@aob/errors';

/** RFC 9457 problem details. Extension members (code, errors, ...) sit beside the standard ones. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  code: string;
  [extension: string]: unknown;
}

export const PROBLEM_BASE = 'https://aob.dev/problems/';
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

const TITLES: Partial<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function problem(
  code: ErrorCode,
  detail: string,
  extra: Record<string, unknown> = {},
): ProblemDetails {
  const status = httpStatusFor(code);
  return {
    type: PROBLEM_BASE + problemSlug(code),
    title: TITLES[status] ?? code,
    status,
    detail,
    code,
    ...extra,
  };
}

export function problemFromStatus(
  status: number,
  detail: string,
  code = `Http${status}`,
): ProblemDetails {
  return { type: 'about:blank', title: TITLES[status] ?? 'Error', status, detail, code };
}

/** Turns anything thrown into problem details. Internal errors never leak their message. */
export function toProblem(err: unknown): ProblemDetails {
  if (isDomainError(err)) {
    return problem(err.code, err.message, err.details ?? {});
  }
  const e = err as {
    status?: unknown;
    getStatus?: () => number;
    getResponse?: () => unknown;
    type?: string;
  };
  if (typeof e?.getStatus === 'function') {
    // Nest HttpException (404 route not found, 405, guards ...)
    const status = e.getStatus();
    const body = e.getResponse?.();
    const msg =
      typeof body === 'object' && body !== null && 'message' in body
        ? String(body.message)
        : typeof body === 'string'
          ? body
          : '';
    return problemFromStatus(status, msg);
  }
  // body-parser errors carry a status and a type
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    if (e.type === 'entity.too.large')
      return problem('PayloadTooLarge', 'request body exceeds the size limit');
    if (e.type === 'entity.parse.failed')
      return problem('InvalidRequest', 'request body is not valid JSON');
    if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported')
      return problemFromStatus(415, 'unsupported content encoding or charset');
    return problemFromStatus(e.status, 'bad request');
  }
  return problemFromStatus(500, 'internal error', 'Internal');
}

export function sendProblem(
  res: Response,
  p: ProblemDetails,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.status(p.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(p));
}
