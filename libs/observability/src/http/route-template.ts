import { tracingEnabled } from '../tracing/state';

const ROUTE = Symbol('aob.route');

/**
 * The matched route template of an express request (`/v1/runs/:runId`), never the raw URL: ids
 * in paths would explode metric label cardinality and span names. `undefined` when no route matched.
 */
export function routeTemplate(req: object): string | undefined {
  const r = req as { route?: { path?: unknown }; baseUrl?: unknown; [ROUTE]?: string };
  const path = r.route?.path;
  if (typeof path !== 'string') return r[ROUTE];
  return (typeof r.baseUrl === 'string' ? r.baseUrl : '') + path;
}

/**
 * Names the route of a request served outside express's router (model-gateway's chat fast path),
 * for its server span. Does nothing while tracing is off.
 */
export function setRequestRoute(req: object, route: string): void {
  if (tracingEnabled()) (req as { [ROUTE]?: string })[ROUTE] = route;
}
