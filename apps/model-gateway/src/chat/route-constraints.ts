import type { IncomingHttpHeaders } from 'node:http';
import { invalidParam } from '../openai/openai-errors';

/** A request's own routing limits, from AOB's request headers. */
export interface RouteConstraints {
  /** `x-aob-max-latency-ms`: only deployments whose measured time to first token is at most this. */
  maxLatencyMs?: number;
  /** `x-aob-max-cost-usd`: only deployments whose cost for the prompt plus max_tokens is at most this. */
  maxCostUsd?: number;
}

/** @throws DomainError InvalidRequest when a header is not a positive number */
export function routeConstraintsFrom(headers: IncomingHttpHeaders): RouteConstraints {
  const out: RouteConstraints = {};
  const latency = positiveNumber(headers, 'x-aob-max-latency-ms');
  if (latency !== undefined) out.maxLatencyMs = latency;
  const cost = positiveNumber(headers, 'x-aob-max-cost-usd');
  if (cost !== undefined) out.maxCostUsd = cost;
  return out;
}

function positiveNumber(headers: IncomingHttpHeaders, name: string): number | undefined {
  const raw = headers[name];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined || value.trim() === '') return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw invalidParam(null, `${name} must be a positive number, got "${value}"`);
  return n;
}
